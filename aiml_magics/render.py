"""Showing an answer while it streams, without re-sending it on every token.

Peers re-publish the whole Markdown on each chunk: O(n^2) bytes to the browser. Here the answer
is cut into Markdown blocks at blank lines outside code fences: a finished block is published
once and never again, only the growing last block is updated in place, at most ``max_rate``
times a second and only while the bytes sent stay within ``budget`` times the answer's length.
At the end one complete rendering (reasoning folded, answer, footer) replaces it all, so the
final output is correct whatever the live view did. No network here.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .response import ChatResponse
from .view import final_bundle, footer

Publisher = Callable[[dict[str, str], str, bool], None]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
EMPTY: dict[str, str] = {"text/plain": ""}


def ipython_publisher(data: dict[str, str], display_id: str, update: bool) -> None:
    """Publish through IPython's display machinery (display_data / update_display_data)."""
    from IPython.display import display

    display(data, raw=True, display_id=display_id, update=update)


class LiveMarkdown:
    """Notebook renderer: block-wise live Markdown, then one final full rendering."""

    FENCE_SPLIT = 2000  # past this, a growing code block is split for the live view

    def __init__(
        self,
        publish: Publisher = ipython_publisher,
        *,
        label: str = "",
        max_rate: float = 10.0,
        budget: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish_fn = publish
        self._clock = clock
        self._interval = 1.0 / max_rate
        self._budget = budget
        self._prefix = f"aiml-{id(self):x}-{int(clock() * 1e6):x}"
        self._status_id = f"{self._prefix}-0"
        self._handles: list[str] = []  # block outputs, in order
        self._current: str | None = None  # the handle showing the tail
        self._tail = ""
        self._tail_shown = 0  # length of the tail as last published (0: not yet)
        self._scan = 0  # tail index up to which complete lines were scanned
        self._fence: str | None = None  # open fence marker at _scan
        self._fence_line = ""  # the line that opened it (to reopen after a split)
        self._blank_at: int | None = None  # a blank line outside fences ended here
        self._last = -1e9
        self._started = clock()
        self._chars = 0
        self._reasoning_chars = 0
        self._reasoning_tail = ""
        self._reasoning_shown = -1e9
        self.bytes_published = 0
        self.updates = 0
        self._label = label
        self._publish(
            {"text/markdown": f"*⏳ Waiting for {label or 'the model'}…*", "text/plain": ""},
            self._status_id,
            False,
        )

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, data: dict[str, str], display_id: str, update: bool) -> None:
        self.bytes_published += sum(len(v) for v in data.values())
        self.updates += 1
        self._publish_fn(data, display_id, update)

    def _show(self, display_id: str, text: str, update: bool) -> None:
        self._publish({"text/markdown": text}, display_id, update)

    # -- streaming --------------------------------------------------------------------------

    def reasoning(self, delta: str) -> None:
        """Reasoning stays folded: a one-line progress note, not the text itself."""
        if not delta:
            return
        self._reasoning_chars += len(delta)
        self._reasoning_tail = (self._reasoning_tail + delta)[-200:]
        now = self._clock()
        if self._chars == 0 and now - self._reasoning_shown >= max(self._interval, 0.25):
            self._reasoning_shown = now
            glimpse = " ".join(self._reasoning_tail.split())[-80:]
            self._publish(
                {
                    "text/markdown": f"*💭 Reasoning… {self._reasoning_chars:,} chars* "
                    f"<sub>{_escape(glimpse)}</sub>",
                    "text/plain": "",
                },
                self._status_id,
                True,
            )

    def content(self, delta: str) -> None:
        if not delta:
            return
        if self._chars == 0 and self._reasoning_chars:
            self._publish(
                {
                    "text/markdown": f"*💭 Reasoned {self._reasoning_chars:,} chars "
                    "(folded above the answer when it is done)*",
                    "text/plain": "",
                },
                self._status_id,
                True,
            )
        elif self._chars == 0:
            self._publish(EMPTY, self._status_id, True)
        self._chars += len(delta)
        self._tail += delta
        self._scan_lines()
        rest = self._tail[self._scan :]
        if self._blank_at is not None and rest and not rest[:1].isspace():
            self._freeze(self._blank_at)  # a new block has begun: the last one is final
        now = self._clock()
        if self._tail_shown == 0 or (
            now - self._last >= self._interval
            and self.bytes_published + len(self._tail) <= self._budget * self._chars
        ):
            self._show_tail(now)

    def _show_tail(self, now: float) -> None:
        if not self._tail or len(self._tail) == self._tail_shown:
            return
        if self._current is None:
            self._current = f"{self._prefix}-{len(self._handles) + 1}"
            self._handles.append(self._current)
            self._show(self._current, self._tail, False)
        else:
            self._show(self._current, self._tail, True)
        self._tail_shown = len(self._tail)
        self._last = now

    def _scan_lines(self) -> None:
        """Advance over complete lines; freeze finished blocks as soon as one is certain."""
        tail = self._tail
        while True:
            end = tail.find("\n", self._scan)
            if end < 0:
                return
            line = tail[self._scan : end]
            self._scan = end + 1
            if self._fence is not None:
                m = _FENCE.match(line)
                if m and m.group(1)[0] == self._fence[0] and len(m.group(1)) >= len(self._fence):
                    if not line.strip()[len(m.group(1)) :].strip():
                        self._fence = None
                elif self._scan > self.FENCE_SPLIT:
                    self._split_fence()
                    tail = self._tail
                continue
            if not line.strip():
                self._blank_at = self._scan
                continue
            if self._blank_at is not None and not line[:1].isspace():
                cut = self._blank_at
                if self._tail[:cut].strip():
                    self._freeze(cut)
                    tail = self._tail
                    continue  # the line just read now starts the new tail; rescan it
            self._blank_at = None
            m = _FENCE.match(line)
            if m:
                self._fence, self._fence_line = m.group(1), line

    def _freeze(self, cut: int) -> None:
        """Publish ``tail[:cut]`` for good and start a new block with the rest."""
        if not self._tail[:cut].strip():
            self._blank_at = None
            return
        self._publish_frozen(self._tail[:cut])
        self._tail = self._tail[cut:]
        self._scan = 0
        self._blank_at = None

    def _split_fence(self) -> None:
        """A code block too long to re-send: freeze what we have, reopen the fence below."""
        done = self._tail[: self._scan]
        self._publish_frozen(f"{done}{self._fence}\n")
        reopen = f"{self._fence_line}\n"
        self._tail = reopen + self._tail[self._scan :]
        self._scan = len(reopen)

    def _publish_frozen(self, text: str) -> None:
        if self._current is None:
            handle = f"{self._prefix}-{len(self._handles) + 1}"
            self._handles.append(handle)
            self._show(handle, text, False)
        else:
            self._show(self._current, text, True)
        self._current = None
        self._tail_shown = 0

    # -- the end ------------------------------------------------------------------------------

    def finish(self, resp: ChatResponse) -> None:
        """One complete rendering in the first output; the live blocks are emptied."""
        self._publish(final_bundle(resp), self._status_id, True)
        for handle in self._handles:
            self._publish(EMPTY, handle, True)
        self._handles = []

    def abandon(self) -> None:
        """Nothing to show (the request failed before any answer): remove the waiting note."""
        self._publish(EMPTY, self._status_id, True)
        for handle in self._handles:
            self._publish(EMPTY, handle, True)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class TerminalText:
    """Terminal IPython: print the answer as it arrives, reasoning dimmed, then the footer."""

    def __init__(self, out: TextIO | None = None, *, label: str = "") -> None:
        self._out = out or sys.stdout
        self._mode = ""
        self._color = getattr(self._out, "isatty", lambda: False)()

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def reasoning(self, delta: str) -> None:
        if not delta:
            return
        if self._mode != "reasoning":
            self._write(self._dim("[reasoning]\n"))
            self._mode = "reasoning"
        self._write(self._dim(delta))

    def content(self, delta: str) -> None:
        if not delta:
            return
        if self._mode == "reasoning":
            self._write(self._dim("\n[/reasoning]\n\n"))
        self._mode = "content"
        self._write(delta)

    def finish(self, resp: ChatResponse) -> None:
        if self._mode == "":
            if resp.reasoning:
                self.reasoning(resp.reasoning)
            self.content(resp.text)
        self._write("\n\n" + self._dim(f"— {footer(resp)}") + "\n")

    def abandon(self) -> None:
        pass

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._color else text


def make_renderer(shell: Any, label: str = "") -> Any:
    """Terminal IPython prints text; every other frontend gets live Markdown."""
    if type(shell).__name__ == "TerminalInteractiveShell":
        return TerminalText(label=label)
    return LiveMarkdown(label=label)
