"""Reasoning in the forms providers send it, folded into one ``.reasoning``. Pure, no I/O.

Besides ``reasoning_content`` / ``reasoning`` fields, open reasoning models served without a
reasoning parser (DeepSeek-R1 on Hugging Face, Groq's raw format, vLLM) start ``content`` with
``<think>...</think>``, split across stream chunks like any text; Mistral's magistral sends
``content`` as a list of ``thinking`` and ``text`` parts. Groq puts a stream's usage in
``x_groq.usage``. Only a *leading* think block is reasoning: a tag later in an answer is text.
"""

from __future__ import annotations

from typing import Any

OPEN = "<think>"
CLOSE = "</think>"
#: Leading characters held back while they could still be the start of ``<think>``.
_LEAD_LIMIT = 64
#: Line ends held back inside a block (they may be the last before ``</think>``): a few, so a
#: stream of bare newlines costs linear time, not quadratic.
_HOLD_LINES = 8


def _partial_suffix(text: str, tag: str) -> int:
    """How many trailing characters of ``text`` could begin ``tag`` (held until more arrives)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Splits streamed content into (text, reasoning) when it opens with ``<think>``.

    ``feed`` each content delta, get the text and reasoning it releases; ``flush`` at the end.
    A tag cut between chunks (``<th`` + ``ink>``) is held, never shown; a close tag that never
    comes leaves everything after ``<think>`` as reasoning; content that does not open with the
    tag passes through unchanged after at most a few held characters.
    """

    __slots__ = ("_state", "_held")

    def __init__(self) -> None:
        self._state = "lead"  # lead -> open -> inside -> after -> text (or lead -> text)
        self._held = ""

    @property
    def past(self) -> bool:
        """The answer is past any think block: everything from now on is text."""
        return self._state == "text"

    def peek(self) -> tuple[str, str]:
        """What ``flush`` would give, leaving the state as it is (an answer read mid-stream)."""
        if self._state in ("open", "inside"):
            return "", self._held.rstrip("\r\n")
        return self._held, ""

    @property
    def thinking(self) -> bool:
        """Inside an open think block (its close tag has not come yet)."""
        return self._state in ("open", "inside")

    def feed(self, delta: str) -> tuple[str, str]:
        if self._state == "text":
            return delta, ""
        if self._state == "after":  # the blank lines between the block and the answer
            delta = delta.lstrip("\r\n")
            if delta:
                self._state = "text"
            return delta, ""
        held = self._held + delta
        self._held = ""
        if self._state == "lead":
            body = held.lstrip()
            if body.startswith(OPEN):
                self._state = "open"
                held = body[len(OPEN):]
            elif OPEN.startswith(body) and len(held) < _LEAD_LIMIT:
                self._held = held  # blank, or a tag still arriving
                return "", ""
            else:
                self._state = "text"
                return held, ""
        if self._state == "open":  # line ends right after <think> are not reasoning
            held = held.lstrip("\r\n")
            if not held:
                return "", ""
            self._state = "inside"
        end = held.find(CLOSE)
        if end >= 0:
            self._state = "after"
            return self.feed(held[end + len(CLOSE):])[0], held[:end].rstrip("\r\n")
        keep = _partial_suffix(held, CLOSE)
        body = held[:len(held) - keep]
        keep += min(len(body) - len(body.rstrip("\r\n")), _HOLD_LINES)
        if keep:  # a tag piece, or line ends that may come last before the tag: held
            self._held = held[-keep:]
            held = held[:-keep]
        return "", held

    def flush(self) -> tuple[str, str]:
        """What is still held at the end of the answer: a tag piece inside is reasoning."""
        out = self.peek()
        self._held = ""
        return out


def split_think(text: str) -> tuple[str, str | None]:
    """A whole answer's (text, reasoning): a leading think block is taken out as reasoning."""
    if OPEN not in text[: _LEAD_LIMIT + len(OPEN)]:
        return text, None
    splitter = ThinkSplitter()
    out, thought = splitter.feed(text)
    more, more_thought = splitter.flush()
    reasoning = thought + more_thought
    if not reasoning and not splitter.thinking and out + more == text:
        return text, None
    return out + more, reasoning.strip("\r\n") or None


def content_parts(content: Any) -> tuple[str, str]:
    """Content sent as a list of parts: the (text, thinking) in it. Mistral's magistral sends
    ``{"type": "thinking", "thinking": [{"type": "text", "text"}]}`` beside text parts."""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        return "", ""
    text: list[str] = []
    thought: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thought.append(inner)
            elif isinstance(inner, list):
                thought.extend(p["text"] for p in inner
                               if isinstance(p, dict) and isinstance(p.get("text"), str))
        elif kind in ("text", "output_text", None) and isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), "".join(thought)


def provider_usage(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """Usage a provider put somewhere other than ``usage``: Groq's ``x_groq.usage``."""
    extra = chunk.get("x_groq")
    usage = extra.get("usage") if isinstance(extra, dict) else None
    return usage if isinstance(usage, dict) else None
