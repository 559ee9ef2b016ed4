"""The session's exchanges (request, answer, timing) and the conversation derived from them.

Every answer a session gets is kept as an :class:`Exchange`; the conversation memory sent with
the next request is computed from those exchanges, so there is one record of what happened and
nothing to keep in step. An exchange joins the conversation only if it was meant to (memory on),
has answer text (some providers refuse an empty assistant message) and came from a model (an
offline echo is not a model's answer and must never become context for one). Nothing here holds
the key: requests are stored as sent, and the key only ever travels in a header.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from .display.safemd import literal
from .errors import AIMLError, import_pandas, redact
from .imageparts import describe_url, described, last_user, parts_of, url_of, user_content
from .params import check_text

if TYPE_CHECKING:
    from .response import ChatResponse

from .response import ECHO_SOURCE

TRANSPORT = ("model", "messages", "stream", "stream_options")


@dataclass(eq=False)
class Exchange:
    """One request and its answer. ``prompt`` is the new user message as it was sent. A record:
    its images are found once, when made, and its messages built and checked once, so a long
    conversation costs each turn only what it sends."""

    request: dict[str, Any]
    response: ChatResponse
    prompt: str
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    remember: bool = True
    images: list[dict[str, Any]] = field(init=False, repr=False)
    _messages: dict[bool, list[dict[str, Any]]] = field(init=False, repr=False, default_factory=dict)
    _checked: bool = field(init=False, repr=False, default=False)

    def __post_init__(self) -> None:
        user = last_user(self.request.get("messages"))
        self.images = parts_of(user.get("content")) if user else []  # none for text alone

    @property
    def source(self) -> str:
        return self.response.source

    @property
    def partial(self) -> bool:
        return not self.response.complete

    @property
    def in_conversation(self) -> bool:
        """Whether later requests carry this exchange as context."""
        return self.remember and bool(self.response.text) and self.source != ECHO_SOURCE

    @property
    def parameters(self) -> dict[str, Any]:
        """What was asked besides the model and the messages."""
        return {k: v for k, v in self.request.items() if k not in TRANSPORT}

    def messages(self, keep_images: bool = True, check: bool = False) -> list[dict[str, Any]]:
        """This exchange as conversation messages: the user's (with its images unless dropped),
        any tool rounds (the assistant's ``tool_calls`` and one ``tool`` message per call), then
        the assistant's answer; later requests hold the same message objects (built once), and
        ``check`` runs ``params.check_text`` on them once."""
        kept = self._messages.get(keep_images)
        if kept is None:
            content: Any = self.prompt
            if keep_images and self.images:
                content = user_content(self.prompt, self.images)
            kept = [
                {"role": "user", "content": content},
                *self.response.tool_messages,
                {"role": "assistant", "content": self.response.text},
            ]
            self._messages[keep_images] = kept
        if check and not self._checked:
            check_text(kept)  # an answer with a broken character is refused, turn after turn
            self._checked = True
        return list(kept)

    @property
    def image_descriptions(self) -> list[str]:
        return [describe_url(url_of(p)) for p in self.images]

    def record(self) -> dict[str, Any]:
        """A flat row for tables and exports (no key: the request never holds one)."""
        r = self.response
        u = r.usage
        return {
            "prompt": self.prompt,
            "answer": r.text,
            "model_requested": self.request.get("model"),
            "model": r.model,
            "parameters": self.parameters,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "credits": r.credits_used,
            "seconds": round(self.seconds, 3),
            "finish_reason": r.finish_reason,
            "source": self.source,
            "started": self.started,
            "images": self.image_descriptions,
        }

    def __repr__(self) -> str:
        preview = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return redact(
            f"Exchange(model={self.request.get('model')!r}, prompt={preview!r}, "
            f"source={self.source!r}, finish_reason={self.response.finish_reason!r})"
        )


@dataclass(repr=False)
class Turn:
    """One turn of the conversation as later requests see it; ``partial`` marks a cut answer."""

    prompt: str
    answer: str
    partial: bool = False

    def __repr__(self) -> str:  # a variable inspector shows this: no piece of a key in it
        return redact(f"Turn(prompt={self.prompt!r}, answer={self.answer!r}, partial={self.partial})")


def _json(value: Any) -> str:
    """JSON with ``<``, ``>`` and ``&`` as \\u escapes, so an export holds no markup even if
    something serves it as HTML (``json.loads`` gives the same text back); key pieces masked."""
    text = redact(json.dumps(value, ensure_ascii=False, indent=2))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inert(text: str) -> str:
    """Prompts (often pasted from elsewhere) and answers are untrusted: shown inert, and remote
    images stay links in history views."""
    from .display.view import close_fences, shown

    return shown(close_fences(text))


class History(Sequence[Exchange]):
    """All exchanges of a session, in order; thread-safe, since batches add from many threads.

    ``max_turns`` bounds the conversation (not the history): past it the oldest turns leave the
    conversation for good, so lowering the bound applies to the very next request.
    """

    def __init__(self, max_turns: int | None = 20) -> None:
        self.max_turns = max_turns
        self._exchanges: list[Exchange] = []
        self._start = 0  # the conversation is made of exchanges from here on
        self._lock = threading.Lock()

    # -- a sequence of exchanges ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._exchanges)

    @overload
    def __getitem__(self, index: int) -> Exchange: ...

    @overload
    def __getitem__(self, index: slice) -> list[Exchange]: ...

    def __getitem__(self, index: int | slice) -> Exchange | list[Exchange]:
        with self._lock:
            return self._exchanges[index]

    def __iter__(self) -> Iterator[Exchange]:
        with self._lock:
            return iter(list(self._exchanges))

    def __repr__(self) -> str:
        t = self.totals()
        return (
            f"History({t['exchanges']} exchanges, {len(self.turns)} turns in the conversation, "
            f"{t['tokens']:,} tokens, {t['credits']:,.0f} credits)"
        )

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)
            self._apply_bound()

    # -- the conversation ----------------------------------------------------------------------

    def _conversation(self) -> list[Exchange]:
        return [e for e in self._exchanges[self._start :] if e.in_conversation]

    def _apply_bound(self) -> None:
        if self.max_turns is None:
            return
        kept = self._conversation()
        if len(kept) > self.max_turns:
            first = kept[len(kept) - self.max_turns] if self.max_turns else None
            self._start = self._exchanges.index(first) if first is not None else len(self._exchanges)

    def bound(self, max_turns: int | None) -> None:
        """Change the bound and apply it at once."""
        with self._lock:
            self.max_turns = max_turns
            self._apply_bound()

    def reset(self) -> int:
        """Forget the conversation (the exchanges stay in the history); returns the turns dropped."""
        with self._lock:
            dropped = len(self._conversation())
            self._start = len(self._exchanges)
            return dropped

    @property
    def conversation(self) -> Conversation:
        return Conversation(self)

    @property
    def turns(self) -> list[Turn]:
        with self._lock:
            return [Turn(e.prompt, e.response.text, e.partial) for e in self._conversation()]

    def messages(
        self,
        prompt: str,
        system: str | None = None,
        images: list[dict[str, Any]] | None = None,
        keep_images: bool = True,
        check: bool = False,
    ) -> list[dict[str, Any]]:
        """What to send: the system prompt, the conversation, then the new user message (its
        text first, then its image parts); earlier images are sent again unless not kept.
        ``check``: refuse text that cannot be sent, in order (each past turn checked once)."""
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if check:
            check_text(out)
        with self._lock:
            for exchange in self._conversation():
                out.extend(exchange.messages(keep_images, check))
        if images:
            out.append({"role": "user", "content": user_content(prompt, images)})
        else:
            out.append({"role": "user", "content": prompt})
        if check:
            check_text(out[-1:])
        return out

    def export(self) -> list[dict[str, Any]]:
        """The conversation as OpenAI-style messages (a fresh copy; images as descriptions)."""
        out: list[dict[str, Any]] = described(self.messages("")[:-1])
        return out

    def conversation_json(self) -> str:
        return _json(self.export())

    # -- analysis and export -------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """Session totals over live answers (a replayed or echoed answer cost nothing now)."""
        with self._lock:
            live = [e for e in self._exchanges if e.source == "live"]
            return {
                "exchanges": len(self._exchanges),
                "tokens": sum(e.response.usage.total_tokens or 0 for e in live),
                "credits": sum(e.response.credits_used or 0.0 for e in live),
                "seconds": sum(e.seconds for e in self._exchanges),
            }

    def records(self) -> list[dict[str, Any]]:
        return [e.record() for e in self]

    def to_dataframe(self) -> Any:
        """One row an exchange; needs pandas (an optional dependency)."""
        return records_frame(self.records())

    def to_json(self) -> str:
        return _json([dict(r, started=_iso(r["started"])) for r in self.records()])

    def to_markdown(self) -> str:
        """Every exchange, for a person; marks what is partial, replayed or not in the memory."""
        exchanges = list(self)
        if not exchanges:
            return "*No exchanges yet.*"
        parts = []
        for i, e in enumerate(exchanges, 1):
            notes = [n for n in (
                "partial" if e.partial else "",
                e.source if e.source != "live" else "",
                "" if e.in_conversation else "not in the conversation",
                _calls(len(e.response.tool_calls)),
            ) if n]
            mark = f" *({', '.join(notes)})*" if notes else ""
            model = literal(str(e.response.model or e.request.get("model") or "?"))
            prompt, answer = _inert(e.prompt), _inert(e.response.text)
            if e.image_descriptions:
                prompt += "\n\n" + " · ".join(literal(d) for d in e.image_descriptions)
            parts.append(f"**{i}. You**\n\n{prompt}\n\n**{model}**{mark}\n\n{answer}")
        return "\n\n---\n\n".join(parts)

    def to_text(self) -> str:
        lines = []
        for i, e in enumerate(self, 1):
            mark = " (partial)" if e.partial else ""
            images = "".join(f"\n{d}" for d in e.image_descriptions)
            lines.append(f"[{i}] You:\n{e.prompt}{images}\n[{i}] Answer{mark}:\n{e.response.text}")
        return redact("\n\n".join(lines)) or "No exchanges yet."

    def save(self, path: str | Path) -> Path:
        """Write the history as JSON (``.json``) or Markdown (``.md``), chosen by the extension."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".json":
            text = self.to_json()
        elif suffix in (".md", ".markdown"):
            text = self.to_markdown() + "\n"
        else:
            raise AIMLError(
                f"Cannot save the history as {target.name!r}: use a .json or .md file name.",
                kind="io",
            )
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise AIMLError(
                f"Could not save the history to {target}: {exc.strerror or exc}.", kind="io"
            ) from None
        return target


class Conversation:
    """The conversation part of a history, as later requests see it: ``len`` counts turns."""

    def __init__(self, history: History) -> None:
        self._history = history

    def __len__(self) -> int:
        return len(self._history.turns)

    @property
    def turns(self) -> list[Turn]:
        return self._history.turns

    def messages(self, prompt: str, system: str | None = None) -> list[dict[str, Any]]:
        return self._history.messages(prompt, system)

    def to_json(self) -> str:
        return self._history.conversation_json()

    def to_markdown(self) -> str:
        turns = self.turns
        if not turns:
            return "*The conversation is empty.*"
        parts = []
        for i, turn in enumerate(turns, 1):
            mark = " *(partial)*" if turn.partial else ""
            parts.append(f"**{i}. You**\n\n{_inert(turn.prompt)}\n\n**Answer**{mark}\n\n"
                         f"{_inert(turn.answer)}")
        return "\n\n---\n\n".join(parts)

    def __repr__(self) -> str:
        return f"Conversation({len(self)} turns)"


_COLUMNS = (
    "prompt", "answer", "model_requested", "model", "parameters", "prompt_tokens",
    "completion_tokens", "reasoning_tokens", "credits", "seconds", "finish_reason", "source",
    "started", "images",
)


def records_frame(records: list[dict[str, Any]]) -> Any:
    """Exchange records (``Exchange.record()``) as a DataFrame: the session's history and the
    store's log make the same table."""
    pd = import_pandas()
    frame = pd.DataFrame.from_records(records, columns=list(_COLUMNS))
    frame["started"] = pd.to_datetime(frame["started"], unit="s", utc=True)
    frame["prompt"] = frame["prompt"].map(redact)
    frame["answer"] = frame["answer"].map(redact)
    return frame


def _calls(n: int) -> str:
    return f"{n} tool call{'s' if n != 1 else ''}" if n else ""


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
