"""Server-sent events: bytes in, event payloads out, in linear time and bounded memory.

Pure and incremental so it can be fed whatever the network hands us: the service sends
``text/event-stream`` with no charset, may end lines in CRLF, interleaves ``: keep-alive``
comments and sometimes omits the final ``data: [DONE]``. A multi-byte UTF-8 character can be split
across two reads, so we split on newline *bytes* (never part of a multi-byte sequence) and decode
whole lines only. A line that has not ended yet is kept as a list of pieces, joined once when its
end arrives (a long line in small pieces costs linear time, not quadratic), and a line or event
larger than ``max_line`` bytes stops the stream with :class:`LineTooLong`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DONE = "[DONE]"
#: Longest line (and event) accepted: a stream chunk is well under 1 KiB; a whole answer sent as
#: one event still fits.
MAX_LINE = 1 << 20


class LineTooLong(ValueError):
    """The stream sent a line or event longer than the parser's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a line of the stream is longer than {limit:,} bytes")
        self.limit = limit


class Event(str):
    """An event's data with its ``event:`` name (only events that named one get this type)."""

    name: str = "message"

    def __new__(cls, data: str, name: str) -> Event:
        event = super().__new__(cls, data)
        event.name = name
        return event


class SSEParser:
    """Incremental SSE decoder: ``feed()`` bytes, get the data payloads of completed events.

    Hot path of a stream (one call per network read, often one per event), so it does the
    least Python work per line: ``bytes.splitlines`` (C) splits on LF, CRLF and CR at once and
    data lines stay bytes until their event is complete. An event with an ``event:`` field comes
    out as an :class:`Event` (a ``str`` with ``.name``), so ``event: error`` frames are seen.
    """

    __slots__ = ("_pending", "_pending_len", "_data", "_name", "max_line")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._pending: list[bytes] = []  # pieces of the line that has not ended yet
        self._pending_len = 0
        self._data: list[bytes] = []
        self._name: bytes | None = None
        self.max_line = max_line

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_len += len(piece)
        if self._pending_len > self.max_line:
            raise LineTooLong(self.max_line)

    def feed(self, chunk: bytes) -> list[str]:
        """Return the data payloads of the events completed by ``chunk``."""
        events: list[str] = []
        if self._pending:
            if b"\n" not in chunk and b"\r" not in chunk and self._pending[-1][-1:] != b"\r":
                self._hold(chunk)  # the line goes on: no join, no scan of what came before
                return events
            if self._pending_len < 4096 or self._pending[-1][-1:] == b"\r":
                self._pending.append(chunk)  # a short line cut by a read: join and go on
                chunk = b"".join(self._pending)
                self._pending, self._pending_len = [], 0
            else:
                chunk = self._complete_long_line(chunk)
        if not chunk:
            return events
        last = chunk[-1]
        if last == 13:  # a trailing CR may be half a CRLF: keep its line until the next byte
            lines = chunk[:-1].splitlines()
            tail = (lines.pop() if lines and chunk[-2:-1] not in (b"\n", b"\r") else b"") + b"\r"
        else:
            lines = chunk.splitlines()
            tail = lines.pop() if last != 10 else b""  # an unfinished line waits
        if tail:  # nothing is held at this point
            self._pending, self._pending_len = [tail], len(tail)
            if len(tail) > self.max_line:
                raise LineTooLong(self.max_line)
        if len(chunk) > self.max_line and any(len(line) > self.max_line for line in lines):
            raise LineTooLong(self.max_line)
        data = self._data
        for line in lines:
            if not line:
                if data:
                    text = data[0].decode("utf-8", "replace") if len(data) == 1 else _join(data)
                    events.append(text if self._name is None else self._named(text))
                    data.clear()
                elif self._name is not None:
                    self._name = None
            elif line.startswith(b"data: "):
                data.append(line[6:])
                if len(data) > 1:
                    self._check_event(data)
            elif line.startswith(b"data:"):
                data.append(line[5:])
                if len(data) > 1:
                    self._check_event(data)
            elif line.startswith(b"event:"):
                self._name = line[6:].strip()
            # Comments (":"), "id:", "retry:" and unknown fields carry nothing we use.
        return events

    def _complete_long_line(self, chunk: bytes) -> bytes:
        """A long held line ends in ``chunk``: take it whole, return the rest of ``chunk``.

        Its pieces are joined once (the ``data:`` prefix cut off the first piece beforehand) and
        decoded once when its event ends: linear time, and about twice its size in memory.
        """
        lf, cr = chunk.find(b"\n"), chunk.find(b"\r")
        cut = lf if cr < 0 or 0 <= lf < cr else cr
        if chunk[cut] == 13 and cut == len(chunk) - 1:  # a CR that may be half a CRLF: wait
            self._hold(chunk)
            return b""
        pending = self._pending
        pending.append(chunk[:cut])
        first = pending[0]
        field = b"other"
        if first.startswith(b"data:") and len(first) > 5:
            pending[0] = first[6:] if first[5] == 32 else first[5:]
            field = b"data"
        elif first.startswith(b"event:"):
            field = b"event"
        line = b"".join(pending)
        self._pending, self._pending_len = [], 0
        if len(line) > self.max_line:
            raise LineTooLong(self.max_line)
        if field == b"data":
            self._data.append(line)
            if len(self._data) > 1:
                self._check_event(self._data)
        elif field == b"event":
            self._name = line[6:].strip()
        elif line.startswith(b"data:"):  # the prefix itself was cut by a read
            self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            if len(self._data) > 1:
                self._check_event(self._data)
        elif line.startswith(b"event:"):
            self._name = line[6:].strip()
        end = 2 if chunk[cut : cut + 2] == b"\r\n" else 1
        return chunk[cut + end :]

    def _check_event(self, data: list[bytes]) -> None:
        """An event of many data lines is bounded like one line."""
        if sum(len(d) + 1 for d in data) > self.max_line:
            raise LineTooLong(self.max_line)

    def _named(self, text: str) -> str:
        name = (self._name or b"").decode("utf-8", "replace")
        self._name = None
        return text if name in ("", "message") else Event(text, name)

    def close(self) -> list[str]:
        """Flush at end of stream: an unterminated last event still counts (the service may cut)."""
        rest = b"".join(self._pending)
        self._pending, self._pending_len = [], 0
        events = self.feed(rest.rstrip(b"\r") + b"\n") if rest else []
        if self._data:
            text = _join(self._data)
            events.append(text if self._name is None else self._named(text))
            self._data = []
        self._name = None
        return events


def _join(data: list[bytes]) -> str:
    """One event's data lines, joined by LF and decoded (a bad byte becomes U+FFFD, never a crash)."""
    raw = data[0] if len(data) == 1 else b"\n".join(data)
    return raw.decode("utf-8", "replace")


def iter_events(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield event payloads until ``[DONE]`` or the end of the byte stream, whichever comes first."""
    parser = SSEParser()
    for chunk in chunks:
        for event in parser.feed(chunk):
            if event == DONE:
                return
            yield event
    for event in parser.close():
        if event == DONE:
            return
        yield event
