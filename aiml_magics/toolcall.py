"""``ToolCall``: one call the model asked for, and what came of it. A module of its own so the
tools, the tool loop, cassettes and views can all name it without importing the response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .safejson import _float, _str, loads


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
    # Keys the provider put on the call besides id/type/function (Gemini's extra_content with its
    # thought signature): sent back with the call within one tool loop only.
    extra: dict[str, Any] = field(default_factory=dict)

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

    def wire(self, provider: bool = False) -> dict[str, Any]:
        """The call as the assistant message's ``tool_calls`` entry (``provider``: with the keys
        the provider attached, for the next round of the same loop)."""
        entry = {"id": self.id, "type": "function",
                 "function": {"name": self.name, "arguments": self.arguments_text or "{}"}}
        return {**self.extra, **entry} if provider and self.extra else entry

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
                            args if isinstance(args, str) and args.strip() else "{}",
                            extra=provider_keys(item)))
    return out


_CALL_KEYS = frozenset({"id", "type", "function", "index"})


def provider_keys(item: dict[str, Any]) -> dict[str, Any]:
    """The keys of a tool-call entry beyond the standard ones (Gemini's ``extra_content``)."""
    return {k: v for k, v in item.items() if k not in _CALL_KEYS and isinstance(k, str)}


def tool_messages(assistant_text: str, calls: list[ToolCall],
                  provider_fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The assistant message with its ``tool_calls``, then one ``role: tool`` message per call.

    ``provider_fields`` (the next round of the same loop only): what the provider attached to
    its message and calls goes back with them (DeepSeek's ``reasoning_content``, Gemini's
    thought signatures); the history's copy, sent in later turns, has none of it."""
    provider = provider_fields is not None
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": assistant_text or None,
        **(provider_fields or {}),
        "tool_calls": [c.wire(provider) for c in calls],
    }
    return [assistant, *({"role": "tool", "tool_call_id": c.id, "content": c.content} for c in calls)]
