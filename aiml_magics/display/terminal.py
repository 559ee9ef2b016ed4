"""Answers in terminal IPython: plain text as it streams, Markdown reduced to what a terminal
shows (headings, bullets, bold), control sequences made visible and every piece of a key masked
even when it arrives one character at a time."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import SECRETS, visible_controls
from .view import FENCE_LINE, closes_fence, footer, shown_plain

if TYPE_CHECKING:
    from ..response import ChatResponse


class TerminalGuard:
    """Streamed text made safe for a terminal: control sequences shown as ``\\x1b``..., and
    every piece of a key masked even when it arrives one character per delta.

    The last ``HOLD`` characters wait until more text (or the end) shows whether they belong to
    a key; a masked stretch is never split between two writes.
    """

    HOLD = 128

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        buf = self._pending + delta
        if not len(SECRETS):
            self._pending = ""
            return visible_controls(buf)
        cut = len(buf) - max(self.HOLD, SECRETS.longest())  # a %XX-encoded key is 3x as long
        if cut <= 0:
            self._pending = buf
            return ""
        spans = SECRETS.spans(buf)
        for start, end, _ in spans:
            if start < cut < end:
                cut = start
        self._pending = buf[cut:]
        return _masked(buf[:cut], [s for s in spans if s[1] <= cut])

    def flush(self) -> str:
        buf, self._pending = self._pending, ""
        return _masked(buf, SECRETS.spans(buf))


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, mask in spans:
        out += [text[last:start], mask]
        last = end
    out.append(text[last:])
    return visible_controls("".join(out))


class TerminalText:
    """Terminal IPython: the answer printed line by line as readable text, then the footer.

    Markdown markers are turned into what they mean on a terminal (headings bold, bullets as •,
    emphasis markers dropped, links as "text (url)"); code blocks are printed as they are. The
    reasoning is not dumped before the answer: one line gives its size and how to read it.
    Nothing from the service reaches the terminal raw: escape and control sequences (clipboard
    writes, titles, screen clears, hidden text) are printed visibly as ``\\x1b[...``; only our
    own bold and dimming are real escape sequences.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        label: str = "",
        footer: Callable[[ChatResponse], str] = footer,
    ) -> None:
        self._out = out or sys.stdout
        self._footer = footer
        self._mode = ""
        self._color = getattr(self._out, "isatty", lambda: False)()
        self._reasoning_chars = 0
        self._progress_at = 0.0
        self._pending = ""  # content after the last complete line
        self._fence: str | None = None
        self._guard = TerminalGuard()

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()

    def reasoning(self, delta: str) -> None:
        if not delta or self._mode == "content":
            return
        self._mode = "reasoning"
        self._reasoning_chars += len(delta)
        now = time.monotonic()
        if self._color and now >= self._progress_at:  # a live count on a real terminal only
            self._progress_at = now + 0.25
            self._write(f"\r{self._dim(f'[reasoning… {self._reasoning_chars:,} chars]')}")

    def _summary(self) -> None:
        if self._reasoning_chars:
            clear = "\r\x1b[2K" if self._color else ""
            self._write(
                clear + self._dim(
                    f"[reasoning: {self._reasoning_chars:,} chars, not shown; "
                    "print(aiml_response.reasoning) to read it]"
                ) + "\n\n"
            )

    def content(self, delta: str) -> None:
        if not delta:
            return
        if self._mode != "content":
            self._summary()
            self._mode = "content"
        text = self._pending + self._guard.feed(delta)
        cut = text.rfind("\n")
        if cut < 0:
            self._pending = text
            return
        self._pending = text[cut + 1 :]
        self._write("".join(self._line(line) + "\n" for line in text[:cut].split("\n")))

    def finish(self, resp: ChatResponse) -> None:
        if self._mode == "":
            if resp.reasoning:
                self.reasoning(resp.reasoning)
            self.content(resp.text)
        elif self._mode == "reasoning":
            self._summary()
        rest = self._pending + self._guard.flush()
        self._pending = ""
        if rest:
            self._write("".join(self._line(line) + "\n" for line in rest.split("\n")))
        self._write("\n" + self._dim(f"— {shown_plain(self._footer(resp))}") + "\n")

    def abandon(self) -> None:
        pass

    def tool_calls(self, calls: list[Any]) -> None:
        """A round of tool calls ran: one plain line each, above the answer to come."""
        from .view import plain_tool_lines

        rest = self._pending + self._guard.flush()
        self._pending = ""
        if rest.strip():
            self._write(rest + "\n")
        self._write(self._dim(plain_tool_lines(calls).rstrip("\n")) + "\n")

    def _line(self, line: str) -> str:
        """One line of Markdown as terminal text."""
        if self._fence is not None:
            if closes_fence(line, self._fence):
                self._fence = None
                return self._dim(line)
            return line
        m = FENCE_LINE.match(line)
        if m:
            self._fence = m.group(1)
            return self._dim(line)
        heading = _HEADING.match(line)
        if heading:
            return self._bold(_inline(heading.group(2), self._bold))
        if _RULE.match(line):
            return self._dim("─" * 40)
        bullet = _BULLET.match(line)
        if bullet:
            line = f"{bullet.group(1)}• {line[bullet.end():]}"
        return _inline(line, self._bold)

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._color and text else text

    def _bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self._color else text


_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_BULLET = re.compile(r"^(\s*)[*+-]\s+")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![*\w])\*(?=\S)([^*]+?)(?<=\S)\*(?![*\w])")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(text: str, bold: Callable[[str], str]) -> str:
    """Strong text bold, emphasis markers dropped, links as "text (url)"; code spans kept."""
    text = _STRONG.sub(lambda m: bold(m.group(2)), text)
    text = _EMPHASIS.sub(lambda m: m.group(1), text)
    return _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
