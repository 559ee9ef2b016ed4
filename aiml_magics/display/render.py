"""Showing an answer while it streams, without re-sending it on every token.

Peers re-publish the whole Markdown on each chunk: O(n^2) bytes to the browser. Here a delta
costs a list append; the text is looked at only on a *tick*, at most ``max_rate`` times a
second, and each tick sends at most one display message:

- complete Markdown blocks (cut at blank lines outside code fences; very long code blocks are
  split and their fence reopened) are *sealed*: published once into the output that showed them,
  never sent again, and the rest continues in a new output below;
- otherwise the open block is re-sent in place, as long as the bytes sent so far stay within
  ``budget`` times the answer's length plus a small slack (the final rendering adds about twice
  the length: Markdown and plain text), so the total stays O(n) whatever the chunking.

The first token is shown at once. At the end one complete rendering (reasoning folded, answer,
footer) replaces all the live outputs: ``clear_output(wait=True)`` and one display, two messages
however long the answer (the saved notebook keeps that one output). No network here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .safemd import literal
from .view import FENCE_LINE, closes_fence, final_bundle, shown, shown_plain

if TYPE_CHECKING:
    from ..response import ChatResponse

Publisher = Callable[[dict[str, str], str, bool], None]

EMPTY: dict[str, str] = {"text/plain": ""}


def ipython_publisher(data: dict[str, str], display_id: str, update: bool) -> None:
    """Publish through IPython's display machinery (display_data / update_display_data)."""
    from IPython.display import publish_display_data

    publish_display_data(data, transient={"display_id": display_id}, update=update)


def ipython_clear() -> None:
    """Clear the cell's outputs when the next one arrives (no flicker)."""
    from IPython.display import clear_output

    clear_output(wait=True)


class LiveMarkdown:
    """Notebook renderer: block-wise live Markdown, then one final full rendering.

    ``publish`` and ``clear`` are the frontend (IPython's display machinery by default).
    """

    FENCE_SPLIT = 2000  # past this, a growing code block is split for the live view
    SLACK = 2048  # bytes allowed beyond the budget, so a short answer still updates smoothly

    def __init__(
        self,
        publish: Publisher = ipython_publisher,
        *,
        clear: Callable[[], None] | None = ipython_clear,
        label: str = "",
        max_rate: float = 8.0,
        budget: float = 2.2,
        clock: Callable[[], float] = time.monotonic,
        allow_remote_images: bool = False,
    ) -> None:
        self._allow_images = allow_remote_images
        self._publish_fn = publish
        self._clear_fn = clear
        self._clock = clock
        self._interval = 1.0 / max_rate
        self._budget = budget
        self._prefix = f"aiml-{id(self):x}-{int(clock() * 1e6):x}"
        self._status_id = f"{self._prefix}-0"
        self._handles: list[str] = [self._status_id]  # every output we created, in order
        self._current: str | None = None  # the output showing the open block
        self._parts: list[str] = []  # deltas not yet looked at
        self._live = ""  # the text after the sealed outputs
        self._sealed: list[str] = []  # complete blocks waiting to be sealed
        self._shown = -1  # length of _live as last published (-1: not in the current output)
        self._scan = 0  # index in _live up to which complete lines were scanned
        self._fence: str | None = None  # open fence marker at _scan
        self._fence_line = ""  # the line that opened it (to reopen after a split)
        self._blank_at: int | None = None  # a blank line outside fences ended here
        self._next = 0.0  # no tick before this time
        self._chars = 0
        self._reasoning_chars = 0
        self._reasoning_parts: list[str] = []
        self._reasoning_next = 0.0
        self.bytes_published = 0
        self.updates = 0
        self._label = label
        self._publish(
            {"text/markdown": f"*⏳ Waiting for {literal(label or 'the model')}…*", "text/plain": ""},
            self._status_id,
            False,
        )

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, data: dict[str, str], display_id: str, update: bool) -> None:
        self.bytes_published += sum(len(v) for v in data.values())
        self.updates += 1
        self._publish_fn(data, display_id, update)

    def _put(self, text: str) -> None:
        """Show ``text`` in the current output, creating one below the others if needed.

        Each block is published as its own Markdown document, so each is made inert on its own
        (a block cut anywhere, even inside a tag, is still text) and any piece of a key masked."""
        text = shown(text, self._allow_images)
        if self._current is None:
            self._current = f"{self._prefix}-{len(self._handles)}"
            self._handles.append(self._current)
            self._publish({"text/markdown": text}, self._current, False)
        else:
            self._publish({"text/markdown": text}, self._current, True)

    # -- streaming --------------------------------------------------------------------------

    def reasoning(self, delta: str) -> None:
        """Reasoning stays folded: a one-line progress note, not the text itself."""
        if not delta or self._chars:
            return
        self._reasoning_chars += len(delta)
        self._reasoning_parts.append(delta)
        now = self._clock()
        if now < self._reasoning_next:
            return
        self._reasoning_next = now + max(self._interval, 0.25)
        self._next = now + self._interval
        recent = "".join(self._reasoning_parts)[-200:]
        self._reasoning_parts = [recent]
        glimpse = " ".join(recent.split())[-80:]
        self._publish(
            {
                "text/markdown": f"*💭 Reasoning… {self._reasoning_chars:,} chars* "
                f"<sub>{literal(shown_plain(glimpse))}</sub>",
                "text/plain": "",
            },
            self._status_id,
            True,
        )

    def content(self, delta: str) -> None:
        if not delta:
            return
        self._parts.append(delta)
        self._chars += len(delta)
        if self._chars == len(delta):
            self._first()
        else:
            now = self._clock()
            if now >= self._next:
                self._tick(now)

    def _first(self) -> None:
        """The first visible text goes out at once, whatever the rate."""
        self._reasoning_parts = []
        if self._reasoning_chars:
            self._publish(
                {
                    "text/markdown": f"*💭 Reasoned {self._reasoning_chars:,} chars "
                    "(folded above the answer when it is done)*",
                    "text/plain": "",
                },
                self._status_id,
                True,
            )
        else:
            self._current = self._status_id  # the waiting note becomes the first block
        self._tick(self._clock(), force=True)

    def _tick(self, now: float, force: bool = False) -> None:
        """Look at the new text and send at most one message: seal complete blocks, or
        refresh the open block if that fits the byte budget. With nothing sent, the next look
        is a quarter tick away: text held back by the budget is not re-joined on every delta."""
        self._next = now + self._interval / 4
        if self._parts:
            self._live += "".join(self._parts)
            self._parts.clear()
            self._scan_lines()
        if self._sealed:
            text = "".join(self._sealed)
            self._sealed = []
            self._put(text)
            self._current = None
            self._shown = -1
        elif (
            self._live
            and len(self._live) != self._shown
            and (force or self.bytes_published + len(self._live) <= self._budget * self._chars + self.SLACK)
        ):
            self._put(self._live)
            self._shown = len(self._live)
        else:
            return
        self._next = now + self._interval

    def _scan_lines(self) -> None:
        """Advance over the complete lines of ``_live``, moving finished blocks to ``_sealed``."""
        live = self._live
        start = 0  # where the open block begins
        scan = self._scan
        blank_at = self._blank_at
        fence = self._fence
        while True:
            end = live.find("\n", scan)
            if end < 0:
                break
            line = live[scan:end]
            scan = end + 1
            if fence is not None:
                if closes_fence(line, fence):
                    fence = None
                elif scan - start > self.FENCE_SPLIT:
                    # A code block too long to re-send: seal what we have, reopen the fence below.
                    self._sealed.append(f"{live[start:scan]}{fence}\n")
                    reopen = f"{self._fence_line}\n"
                    live = reopen + live[scan:]
                    start, scan = 0, len(reopen)
                continue
            if not line.strip():
                blank_at = scan
                continue
            if blank_at is not None and not line[:1].isspace() and live[start:blank_at].strip():
                self._sealed.append(live[start:blank_at])  # a new block begins: the last is final
                start = blank_at
            blank_at = None
            m = FENCE_LINE.match(line)
            if m:
                fence, self._fence_line = m.group(1), line
        rest = live[scan : scan + 1]
        if blank_at is not None and rest and not rest.isspace() and live[start:blank_at].strip():
            self._sealed.append(live[start:blank_at])  # the next block has begun mid-line
            start, blank_at = blank_at, None
        if start:
            live = live[start:]
            scan -= start
            blank_at = None if blank_at is None else blank_at - start
        self._live, self._scan, self._blank_at, self._fence = live, scan, blank_at, fence

    # -- the end ------------------------------------------------------------------------------

    def finish(self, resp: ChatResponse) -> None:
        """One complete rendering replaces the live outputs."""
        if len(self._handles) == 1 or self._clear_fn is None:
            self._publish(final_bundle(resp), self._status_id, True)
            for handle in self._handles[1:]:
                self._publish(EMPTY, handle, True)
        else:
            self.updates += 1
            self._clear_fn()
            self._publish(final_bundle(resp), f"{self._prefix}-final", False)
        self._handles = []

    def abandon(self) -> None:
        """Nothing to show (the request failed before any answer): remove the waiting note."""
        for handle in self._handles:
            self._publish(EMPTY, handle, True)
        self._handles = []


def is_terminal(shell: Any) -> bool:
    """Terminal IPython shows plain text only; every other frontend renders Markdown."""
    return type(shell).__name__ == "TerminalInteractiveShell"


def make_renderer(
    shell: Any, label: str = "", owns_cell: bool = False, allow_remote_images: bool = False
) -> Any:
    """Terminal IPython prints text; every other frontend gets live Markdown.

    Only a renderer that owns its cell (a whole ``%%aiml`` cell) may clear it at the end; one
    called from code shares the cell with other outputs, so it empties its own instead.
    """
    if is_terminal(shell):
        from .terminal import TerminalText

        return TerminalText(label=label)
    return LiveMarkdown(
        label=label,
        clear=ipython_clear if owns_cell else None,
        allow_remote_images=allow_remote_images,
    )


def current_shell() -> Any:
    """The running IPython shell, or None outside one (a script's ``chat(display=True)``)."""
    from IPython import get_ipython

    return get_ipython()
