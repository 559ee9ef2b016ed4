"""A streamed Responses answer, event by event, folded like a chat stream. Pure, no I/O.

``ResponsesAssembler`` takes the decoded ``data`` of each event (``response.output_text.delta``,
``response.reasoning_summary_text.delta``, function-call items and argument deltas, then
``response.completed`` / ``incomplete`` / ``failed`` or ``error``) and gives the same
(text, reasoning) deltas and the same chat-shaped ``ChatResponse`` as ``StreamAssembler``, so the
views, the tool loop, cassettes and the store see no difference. Unknown events are ignored.
"""

from __future__ import annotations

from typing import Any

from .assembler import StreamAssembler
from .responses_api import chat_usage, finish_of, output_parts

_NOTHING = ("", "")
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class ResponsesAssembler(StreamAssembler):
    """Folds Responses stream events; ``terminal`` is set by the event that ends the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.terminal = False
        self._call_at: dict[Any, int] = {}  # an output item's id or index -> its tool call
        self._summaries: set[Any] = set()

    def add(self, chunk: Any) -> tuple[str, str]:
        if not isinstance(chunk, dict):
            return _NOTHING
        self.chunks += 1
        kind = chunk.get("type")
        if kind == "response.output_text.delta":
            return self._text(chunk.get("delta"))
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._thought(chunk)
        if kind == "response.function_call_arguments.delta":
            call = self._call(chunk)
            if call is not None and isinstance(chunk.get("delta"), str):
                call["arguments"].append(chunk["delta"])
            return _NOTHING
        if kind in ("response.output_item.added", "response.output_item.done"):
            self._item(chunk)
        elif kind in ("response.created", "response.in_progress"):
            self._head_of(chunk.get("response"))
        elif kind in TERMINAL:
            return self._end(chunk.get("response"), failed=kind == "response.failed")
        elif kind == "error":
            self.error = {"message": chunk.get("message"), "code": chunk.get("code")}
        return _NOTHING

    def _text(self, delta: Any) -> tuple[str, str]:
        if not isinstance(delta, str) or not delta:
            return _NOTHING
        self.content.append(delta)
        self.content_chars += len(delta)
        return delta, ""

    def _thought(self, chunk: dict[str, Any]) -> tuple[str, str]:
        delta = chunk.get("delta")
        if not isinstance(delta, str) or not delta:
            return _NOTHING
        part = (chunk.get("item_id"), chunk.get("summary_index"))
        if part not in self._summaries:
            if self._summaries:
                delta = "\n\n" + delta  # a new summary part reads as a new paragraph
            self._summaries.add(part)
        self.reasoning.append(delta)
        return "", delta

    def _head_of(self, response: Any) -> None:
        if not isinstance(response, dict):
            return
        if isinstance(response.get("model"), str) and not self.model:
            self.model = response["model"]
        if isinstance(response.get("id"), str) and not self.id:
            self.id = response["id"]
        if self.created is None:
            self.created = response.get("created_at")

    def _call(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        for key in (chunk.get("item_id"), chunk.get("output_index")):
            if key is not None and key in self._call_at:
                return self.tool_calls[self._call_at[key]]
        return None

    def _item(self, chunk: dict[str, Any]) -> None:
        item = chunk.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return
        call = self._call({"item_id": item.get("id"), "output_index": chunk.get("output_index")})
        if call is None:
            call = {"id": None, "name": "", "arguments": []}
            self.tool_calls.append(call)
            at = len(self.tool_calls) - 1
            for key in (item.get("id"), chunk.get("output_index")):
                if key is not None:
                    self._call_at[key] = at
        if isinstance(item.get("call_id"), str) and not call["id"]:
            call["id"] = item["call_id"]
        if isinstance(item.get("name"), str) and not call["name"]:
            call["name"] = item["name"]
        if isinstance(item.get("arguments"), str) and not "".join(call["arguments"]):
            call["arguments"] = [item["arguments"]]

    def _end(self, response: Any, failed: bool) -> tuple[str, str]:
        """The whole response: usage, status, and any text or calls not streamed as deltas."""
        self.terminal = True
        if not isinstance(response, dict):
            return _NOTHING
        self._head_of(response)
        usage = chat_usage(response.get("usage"))
        if usage is not None:
            self.usage = usage
        if isinstance(response.get("meta"), dict):
            self.meta = response["meta"]
        if failed:
            self.error = response.get("error") or {"message": "the response failed"}
            return _NOTHING
        text, thought, calls = output_parts(response.get("output"))
        if not self.tool_calls:
            for wire in calls:
                self.tool_calls.append({"id": wire["id"], "name": wire["function"]["name"],
                                        "arguments": [wire["function"]["arguments"]]})
        self.finish_reason = finish_of(response, bool(self.tool_calls))
        out = ("", "")
        if text and not self.content:
            out = self._text(text)
        if thought and not self.reasoning:
            self.reasoning.append(thought)
            out = (out[0], thought)
        return out
