"""``StreamAssembler``: stream chunks in, one ``ChatResponse`` out, as if it had not streamed
(``.raw`` holds the equivalent non-streamed body). Bounded work per chunk: deltas are joined
in batches, tool-call fragments are merged by index."""

from __future__ import annotations

import json
from typing import Any

from .reasoning import ThinkSplitter, content_parts, provider_usage
from .response import ChatResponse, Usage, _credits, first_choice
from .toolcall import ToolCall, provider_keys

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


def _joined(parts: list[str]) -> str:
    """The parts as one string, which then replaces them: the response and the assembler share
    one copy of a long answer instead of holding the pieces and the text."""
    if len(parts) != 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def _starts_new(call: dict[str, Any], ident: Any) -> bool:
    """A named fragment at an index already in use: a new call once the current one's arguments
    are a whole JSON value (servers that put every parallel call at index 0), else more of the
    same call (servers that repeat the name, or send a fresh id, on every fragment)."""
    args = "".join(call["arguments"]).strip()
    if not args:
        return bool(ident) and ident != call["id"]

    try:
        json.loads(args)
    except ValueError:
        return False
    return True


#: A tool-call fragment's ``index`` past this is not a call: a hostile stream could otherwise ask
#: for a huge table of calls, or key the table with a list (unhashable).
MAX_TOOL_INDEX = 127
BAD_FRAGMENT = "skipped a malformed tool-call fragment (an index or name of the wrong kind)"


class StreamAssembler:
    """Folds stream chunks into a ``ChatResponse``; ignores keys it does not know."""

    skipped_fragments = 0  # malformed tool-call fragments skipped (ChatStream warns)

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
        # A leading <think> block in content is reasoning (None once the answer is past it).
        self._think: ThinkSplitter | None = ThinkSplitter()
        self.echo_reasoning = False  # the provider sent reasoning_content (it wants it back)

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
        if "x_groq" in chunk and self.usage is None:  # Groq: usage only in x_groq.usage
            self.usage = provider_usage(chunk)
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
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self.echo_reasoning = True
        else:
            reasoning = delta.get("reasoning")
            if not isinstance(reasoning, str):
                reasoning = ""
        if not isinstance(content, str):  # null, or Mistral's list of thinking and text parts
            content, thought = content_parts(content)
            reasoning += thought
        if content and self._think is not None:
            content, thought = self._think.feed(content)
            reasoning += thought
            if self._think.past:
                self._think = None
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
            index = fragment.get("index")
            if not _plain_index(index) or not isinstance(fn.get("name", ""), (str, type(None))):
                self.skipped_fragments += 1
                continue
            name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
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
                    "extra": {},
                })
                at = len(self.tool_calls) - 1
                self._tool_at[index] = at
            call = self.tool_calls[at]
            if len(fragment) > 3:  # more than index/id/function: provider keys (thought signature)
                call.setdefault("extra", {}).update(provider_keys(fragment))
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
            out.append(ToolCall(call["id"] or f"call_{i}", call["name"], args if args.strip() else "{}",
                                extra=dict(call.get("extra") or {})))
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
        held, held_thought = self._think.peek() if self._think is not None else ("", "")
        text = _joined(self.content) + held  # no copy when nothing is held
        reasoning = _joined(self.reasoning) + held_thought or None
        self._content_mark = len(self.content) + _COMPACT
        self._reasoning_mark = len(self.reasoning) + _COMPACT
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
            provider_fields={"reasoning_content": reasoning} if self.echo_reasoning and reasoning
            else {},
            **extra,
        )


def _plain_index(index: Any) -> bool:
    """None (the latest call continues) or a small non-negative integer (not a bool)."""
    return index is None or (type(index) is int and 0 <= index <= MAX_TOOL_INDEX)
