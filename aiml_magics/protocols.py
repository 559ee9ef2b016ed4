"""The package's extension points on one page: what shows an answer, where answers come from,
where a comparison is shown. Each has a do-nothing implementation here, for scripts and tests.

A ``Source`` turns a request body into a ``ChatResponse`` and feeds a ``View`` as it arrives
(``sources.py``: live, replay, record); a ``ViewFactory`` makes a view for a label (the notebook's
live Markdown, a terminal printer, a callback); a ``Board`` shows the lanes of a comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .comparison import Comparison, Lane
    from .http.client import AIMLClient
    from .response import ChatResponse


class View(Protocol):
    """What a source shows an answer on (the notebook's live Markdown, a terminal, nothing)."""

    def reasoning(self, delta: str) -> None: ...
    def content(self, delta: str) -> None: ...
    def finish(self, resp: ChatResponse) -> None: ...
    def abandon(self) -> None: ...


ViewFactory = Callable[[str], View]


class NoView:
    """Shows nothing: a script's ``chat()`` without ``display`` or a callback."""

    def reasoning(self, delta: str) -> None:
        pass

    def content(self, delta: str) -> None:
        pass

    def finish(self, resp: ChatResponse) -> None:
        pass

    def abandon(self) -> None:
        pass


class CallbackView(NoView):
    """Calls ``on_delta(text)`` with each piece of answer text (and ``on_reasoning`` if given)."""

    def __init__(
        self,
        on_delta: Callable[[str], Any] | None,
        on_reasoning: Callable[[str], Any] | None = None,
    ) -> None:
        self._on_delta, self._on_reasoning = on_delta, on_reasoning

    def reasoning(self, delta: str) -> None:
        if self._on_reasoning is not None:
            self._on_reasoning(delta)

    def content(self, delta: str) -> None:
        if self._on_delta is not None:
            self._on_delta(delta)


class Source(Protocol):
    """Answers a request (the service, a cassette, the offline echo)."""

    name: str
    needs_key: bool

    def answer(
        self, client: Callable[[], AIMLClient], payload: dict[str, Any], stream: bool, view: ViewFactory
    ) -> ChatResponse: ...

    def keep(self, payload: dict[str, Any], resp: ChatResponse, origin: str) -> None: ...


class Board(Protocol):
    """Where a comparison is shown; called on the caller's thread only. A board may say how
    much of each answer it reads while it streams (``shows = N`` characters): the lanes then
    keep no more, and the whole text is only in each response."""

    def tick(self, lanes: Sequence[Lane]) -> None: ...
    def finish(self, comparison: Comparison) -> None: ...


class NoBoard:
    """Shows nothing: ``compare()`` from a script."""

    shows = 0  # reads nothing of the answers as they stream

    def tick(self, lanes: Sequence[Lane]) -> None:
        pass

    def finish(self, comparison: Comparison) -> None:
        pass
