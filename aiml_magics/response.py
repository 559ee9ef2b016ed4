"""The answer as a Python object: text, reasoning, usage, credits, and what was sent.

A ``ChatResponse`` is a plain value: its repr never does I/O, ``str()`` is the answer, and in a
notebook evaluating it renders the answer again. ``StreamAssembler`` turns stream chunks into
the same object, so a streamed answer and a non-streamed one look alike afterwards (``.raw``
holds the equivalent non-streamed body).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

# finish_reason values we set ourselves when an answer did not end normally.
INTERRUPTED = "interrupted"
CUT = "cut"
ERROR = "error"  # a model of a comparison that failed before any answer arrived


@dataclass
class Usage:
    """Token counts as the service reports them (None where it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        if not isinstance(data, dict):
            return cls()
        details = data.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if reasoning is None:
            reasoning = data.get("reasoning_tokens")
        return cls(
            _int(data.get("prompt_tokens")),
            _int(data.get("completion_tokens")),
            _int(data.get("total_tokens")),
            _int(reasoning),
        )

    def as_dict(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    def __getitem__(self, key: str) -> int | None:
        return self.as_dict()[key]


_BIGGEST = 2**63  # token counts beyond this are not counts: read them as absent


def _int(value: Any) -> int | None:
    """A count from loosely typed JSON; None for anything that is not a sensible integer
    (``1e999``, ``NaN``, 400-digit numbers, strings, lists), so no later arithmetic can overflow."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -_BIGGEST < number < _BIGGEST else None


def _float(value: Any) -> float | None:
    """A finite number from loosely typed JSON (int, float or numeric string); None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _str(value: Any) -> str | None:
    """A string field, or None when the service (or a cassette) put something else there."""
    return value if isinstance(value, str) else None


def first_choice(choices: Any) -> dict[str, Any] | None:
    """The answer's choice: the one with ``index`` 0 (or none given). Another choice (a server
    that sends ``n`` > 1 anyway) is never merged into the answer."""
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0]
    if isinstance(choice, dict) and choice.get("index") in (0, None):
        return choice
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index") in (0, None):
            return choice
    return None


def _credits(body: Any) -> tuple[float | None, float | None]:
    meta = body.get("meta") if isinstance(body, dict) else None
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None, None
    return _float(usage.get("credits_used")), _float(usage.get("usd_spent"))


@dataclass(repr=False, eq=False)
class ToolCall:
    """One call the model asked for, and what came of it: ``.result`` text, or ``.error``
    ("ExcType: message", also sent to the model), ``.declined`` when the user said no."""

    id: str
    name: str
    arguments_text: str = "{}"
    result: str | None = None
    error: str | None = None
    seconds: float = 0.0
    declined: bool = False
    replayed: bool = False  # the result came from a cassette: nothing was run

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments, parsed (an empty dict when they are not a JSON object)."""
        value, _ = self._parsed()
        return value if isinstance(value, dict) else {}

    @property
    def parse_error(self) -> str | None:
        value, problem = self._parsed()
        if problem is None and not isinstance(value, dict):
            return "the arguments are not a JSON object"
        return problem

    def _parsed(self) -> tuple[Any, str | None]:
        from .safejson import loads

        try:
            return loads(self.arguments_text or "{}"), None
        except ValueError as exc:
            return None, f"the arguments are not valid JSON ({str(exc)[:80]})"

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def content(self) -> str:
        """What the model reads back for this call."""
        return self.error if self.error is not None else (self.result or "")

    def wire(self) -> dict[str, Any]:
        """The call as the assistant message's ``tool_calls`` entry."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments_text or "{}"}}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments_text,
                "result": self.result, "error": self.error, "seconds": round(self.seconds, 3),
                "declined": self.declined}

    @classmethod
    def from_dict(cls, data: Any, replayed: bool = False) -> ToolCall | None:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        args = data.get("arguments")
        return cls(
            id=_str(data.get("id")) or "call_0",
            name=data["name"],
            arguments_text=args if isinstance(args, str) else "{}",
            result=_str(data.get("result")),
            error=_str(data.get("error")),
            seconds=_float(data.get("seconds")) or 0.0,
            declined=data.get("declined") is True,
            replayed=replayed,
        )

    def __repr__(self) -> str:
        from .errors import redact

        outcome = f"error={self.error!r}" if self.error is not None else f"result={self.result!r}"
        if len(outcome) > 80:
            outcome = outcome[:77] + "..."
        return redact(f"ToolCall({self.name}({self.arguments_text[:60]}), {outcome})")


def wire_tool_calls(message: Any) -> list[ToolCall]:
    """The ``tool_calls`` of a non-streamed message (arguments null or missing read as {})."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    out: list[ToolCall] = []
    for i, item in enumerate(calls if isinstance(calls, list) else []):
        fn = item.get("function") if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        args = fn.get("arguments")
        if isinstance(args, dict):  # some servers send an object rather than a JSON string
            import json

            args = json.dumps(args)
        out.append(ToolCall(_str(item.get("id")) or f"call_{i}", fn["name"],
                            args if isinstance(args, str) and args.strip() else "{}"))
    return out


@dataclass(repr=False, eq=False)
class ChatResponse:
    """One answer. ``complete`` is False when it was interrupted or cut (``finish_reason`` says)."""

    text: str = ""
    reasoning: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    credits_used: float | None = None
    usd_spent: float | None = None
    elapsed: float = 0.0
    raw: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    data: Any = None
    inference_id: str | None = None
    source: str = "live"
    provenance: str | None = None  # where a replayed answer came from
    warnings: list[str] = field(default_factory=list)
    allow_remote_images: bool = False  # views show remote images as links unless this is set
    # Every tool call of this exchange, in order, across rounds (the answer's own request asked
    # for none when it is the final text). ``tool_messages``: what went between the user's
    # message and this answer (assistant tool_calls, then one tool message per call, per round).
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_messages: list[dict[str, Any]] = field(default_factory=list)
    tool_rounds: int = 0
    first_token_seconds: float | None = None  # when the first text (or reasoning) arrived
    error: Exception | None = None  # why it failed, for a model's slot in a comparison

    @property
    def complete(self) -> bool:
        return self.finish_reason not in (INTERRUPTED, CUT, ERROR)

    @property
    def requested_model(self) -> str | None:
        return (self.request or {}).get("model")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        from .errors import redact

        text = redact(self.text)  # before the preview is cut, so no piece of a key survives
        preview = text if len(text) <= 60 else text[:57] + "..."
        return redact(
            f"ChatResponse(model={self.model!r}, finish_reason={self.finish_reason!r}, "
            f"text={preview!r} ({len(self.text)} chars), "
            f"tokens={self.usage.total_tokens}, credits_used={self.credits_used})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .view import final_bundle

        return final_bundle(self)

    def to_html(self, allow_remote_images: bool | None = None) -> str:
        """The answer as standalone HTML, for reports and exports outside Jupyter.

        The same inert Markdown as the notebook view, rendered, then cleaned by a maintained
        sanitiser (nh3): python-markdown reads some constructs differently from JupyterLab, so
        the HTML itself is checked too. Only http(s) and mailto links survive.
        """
        import markdown
        import nh3

        from .view import shown

        allow = self.allow_remote_images if allow_remote_images is None else allow_remote_images
        page = markdown.markdown(shown(self.text, allow), extensions=["fenced_code", "tables"])
        attributes = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
        attributes.setdefault("code", set()).add("class")

        def no_remote_src(element: str, attribute: str, value: str) -> str | None:
            remote = value.lstrip().startswith(("//", "\\", "/\\")) or ":" in value.split("/")[0]
            return None if element == "img" and attribute == "src" and remote and not allow else value

        return nh3.clean(
            page,
            attributes=attributes,
            attribute_filter=no_remote_src,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )

    @classmethod
    def from_body(
        cls, body: dict[str, Any], request: dict[str, Any] | None = None, **extra: Any
    ) -> ChatResponse:
        """Build from a non-streamed JSON body, tolerating missing or odd fields."""
        choice = first_choice(body.get("choices") if isinstance(body, dict) else None) or {}
        message = choice.get("message") if isinstance(choice, dict) else None
        message = message if isinstance(message, dict) else {}
        content = message.get("content")
        if isinstance(content, list):  # some providers send content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        reasoning = message.get("reasoning_content") or message.get("reasoning") or None
        credits, usd = _credits(body)
        extra.setdefault("tool_calls", wire_tool_calls(message))
        return cls(
            text=content if isinstance(content, str) else "",
            reasoning=reasoning if isinstance(reasoning, str) else None,
            model=_str(body.get("model")) if isinstance(body, dict) else None,
            finish_reason=_str(choice.get("finish_reason")),
            usage=Usage.from_dict(body.get("usage") if isinstance(body, dict) else None),
            credits_used=credits,
            usd_spent=usd,
            raw=body,
            request=request,
            **extra,
        )


_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """Parse a ``--json`` answer; models often wrap it in a code fence, so strip one."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    from .safejson import loads

    try:
        return loads(candidate), None
    except ValueError as exc:
        return None, f"the answer is not valid JSON ({exc}); .data is None, .text has the answer"


_NOTHING = ("", "")
_COMPACT = 256  # deltas kept as separate strings before they are joined into one


def _compact(parts: list[str]) -> int:
    """Join the last ``_COMPACT`` deltas into one string, in place; return the next mark.

    A token is a few characters but a str object costs ~50 bytes: joined, a long answer takes
    about its own size in memory instead of ten times it, for one extra copy of the text.
    """
    start = len(parts) - _COMPACT
    parts[start:] = ["".join(parts[start:])]
    return start + 1 + _COMPACT


def _starts_new(call: dict[str, Any], ident: Any) -> bool:
    """A named fragment at an index already in use: a new call once the current one's arguments
    are a whole JSON value (servers that put every parallel call at index 0), else more of the
    same call (servers that repeat the name, or send a fresh id, on every fragment)."""
    args = "".join(call["arguments"]).strip()
    if not args:
        return bool(ident) and ident != call["id"]
    import json

    try:
        json.loads(args)
    except ValueError:
        return False
    return True


class StreamAssembler:
    """Folds stream chunks into a ``ChatResponse``; ignores keys it does not know."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.content_chars = 0
        self.model: str | None = None
        self.id: str | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.meta: dict[str, Any] | None = None
        self.created: Any = None
        self.error: Any = None  # an error object the service sent inside the stream
        self.chunks = 0
        self._head = True  # still looking for model / id / created
        self._content_mark = self._reasoning_mark = _COMPACT
        self.tool_calls: list[dict[str, Any]] = []  # {"id", "name", "arguments": [pieces]}
        self._tool_at: dict[Any, int] = {}  # a fragment's index -> the call it continues

    def add(self, chunk: Any) -> tuple[str, str]:
        """Take one parsed chunk; return its (content, reasoning) text deltas.

        Called once per streamed event, so the common chunk (one choice, a content delta) takes
        the fewest steps; rare keys are looked for only when present.
        """
        if not isinstance(chunk, dict):
            return _NOTHING
        self.chunks += 1
        if self._head:
            self._take_head(chunk)
        if "usage" in chunk and isinstance(chunk["usage"], dict):
            self.usage = chunk["usage"]
        if "meta" in chunk and isinstance(chunk["meta"], dict):
            self.meta = chunk["meta"]
        if "error" in chunk and chunk["error"]:
            self.error = chunk["error"]
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return _NOTHING
        choice = choices[0]
        if not isinstance(choice, dict) or choice.get("index") not in (0, None):
            choice = first_choice(choices)  # another choice than the answer's: not merged
            if choice is None:
                return _NOTHING
        finish = choice.get("finish_reason")
        if finish and isinstance(finish, str):
            self.finish_reason = finish
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return _NOTHING
        if "tool_calls" in delta:
            self._take_tool_calls(delta["tool_calls"])
        content = delta.get("content")
        if not isinstance(content, str):
            content = ""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if not isinstance(reasoning, str):
            reasoning = ""
        if content:
            self.content.append(content)
            self.content_chars += len(content)
            if len(self.content) >= self._content_mark:
                self._content_mark = _compact(self.content)
        if reasoning:
            self.reasoning.append(reasoning)
            if len(self.reasoning) >= self._reasoning_mark:
                self._reasoning_mark = _compact(self.reasoning)
        return content, reasoning

    def _take_tool_calls(self, fragments: Any) -> None:
        """Tool-call fragments, joined by ``index``. Tolerated: every parallel call at index 0
        (a fragment with a name starts a new call), a fresh id on every fragment (the first id
        is kept), ``arguments`` null, and no index at all (the latest call continues)."""
        if not isinstance(fragments, list):
            return
        for fragment in fragments:
            if not isinstance(fragment, dict):
                continue
            fn = fragment.get("function")
            fn = fn if isinstance(fn, dict) else {}
            name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
            index = fragment.get("index")
            at = self._tool_at.get(index) if index is not None else (
                len(self.tool_calls) - 1 if self.tool_calls else None
            )
            if at is None or (name is not None and self.tool_calls[at]["name"]
                              and _starts_new(self.tool_calls[at], fragment.get("id"))):
                ident = fragment.get("id")
                self.tool_calls.append({
                    "id": ident if isinstance(ident, str) and ident else None,
                    "name": name or "",
                    "arguments": [],
                })
                at = len(self.tool_calls) - 1
                self._tool_at[index] = at
            call = self.tool_calls[at]
            if name is not None and not call["name"]:
                call["name"] = name
            if call["id"] is None and isinstance(fragment.get("id"), str) and fragment["id"]:
                call["id"] = fragment["id"]
            piece = fn.get("arguments")
            if isinstance(piece, str):
                call["arguments"].append(piece)
            elif isinstance(piece, dict):
                import json

                call["arguments"].append(json.dumps(piece))

    def calls(self) -> list[ToolCall]:
        """The tool calls assembled so far (null or empty arguments read as ``{}``)."""
        out = []
        for i, call in enumerate(self.tool_calls):
            if not call["name"]:
                continue
            args = "".join(call["arguments"])
            out.append(ToolCall(call["id"] or f"call_{i}", call["name"], args if args.strip() else "{}"))
        return out

    def _take_head(self, chunk: dict[str, Any]) -> None:
        """model, id and created come from the first chunks that carry them (some send id "")."""
        if chunk.get("model") and not self.model and isinstance(chunk["model"], str):
            self.model = chunk["model"]
        if chunk.get("id") and not self.id and isinstance(chunk["id"], str):
            self.id = chunk["id"]
        if self.created is None:
            self.created = chunk.get("created")
        self._head = not (self.model and self.id and self.created is not None)

    def build(self, request: dict[str, Any] | None = None, **extra: Any) -> ChatResponse:
        """The response so far: callable at any point, so a cut stream keeps what arrived."""
        text = "".join(self.content)
        reasoning = "".join(self.reasoning) or None
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        calls = self.calls()
        if calls:
            message["tool_calls"] = [c.wire() for c in calls]
            message["content"] = text or None
        raw: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
            "meta": self.meta,
        }
        credits, usd = _credits(raw)
        extra.setdefault("finish_reason", self.finish_reason)
        return ChatResponse(
            text=text,
            reasoning=reasoning,
            model=self.model,
            usage=Usage.from_dict(self.usage),
            credits_used=credits,
            usd_spent=usd,
            raw=raw,
            request=request,
            tool_calls=calls,
            **extra,
        )
