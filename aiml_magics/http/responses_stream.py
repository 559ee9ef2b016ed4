"""A streamed answer from ``POST /responses``: the chat stream's reader, Responses events.

Everything about reading (bounded reads, deadlines, error frames, Ctrl-C, what arrived kept) is
``ChatStream``'s; only the folding differs (``responses_events.ResponsesAssembler``) and the end:
the Responses stream ends at ``response.completed`` / ``incomplete`` / ``failed`` and sends no
``[DONE]``, so reading stops there instead of waiting on the server to close.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..responses_events import ResponsesAssembler
from .stream import ChatStream


class ResponsesStream(ChatStream):
    """An open streamed Responses answer; iterating yields (content, reasoning) deltas."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assembler = ResponsesAssembler()

    def _take(self, events: list[str]) -> Generator[tuple[str, str], None, bool]:
        over = yield from super()._take(events)
        assembler = self.assembler
        if not over and isinstance(assembler, ResponsesAssembler) and assembler.terminal:
            self.done = self.error is None  # the terminal event is this stream's [DONE]
            return True
        return over
