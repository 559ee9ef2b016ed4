"""Server-sent events: bytes in, event payloads out.

Pure and incremental so it can be fed whatever the network hands us: the service sends
``text/event-stream`` with no charset, may end lines in CRLF, interleaves ``: keep-alive``
comments and sometimes omits the final ``data: [DONE]``. A multi-byte UTF-8 character can be split
across two reads, so we split on newline *bytes* (never part of a multi-byte sequence) and decode
whole lines only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DONE = "[DONE]"


class SSEParser:
    """Incremental SSE decoder: ``feed()`` bytes, get the data payloads of completed events.

    Hot path of a stream (one call per network read, often one per event), so it does the
    least Python work per line: ``bytes.splitlines`` (C) splits on LF, CRLF and CR at once and
    data lines stay bytes until their event is complete.
    """

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Return the data payloads of the events completed by ``chunk``."""
        if self._buf:
            chunk = self._buf + chunk
        if not chunk:
            return []
        last = chunk[-1]
        if last == 13:  # a trailing CR may be half a CRLF: keep its line until the next byte
            lines = chunk[:-1].splitlines()
            self._buf = (lines.pop() if lines and chunk[-2:-1] not in (b"\n", b"\r") else b"") + b"\r"
        else:
            lines = chunk.splitlines()
            self._buf = lines.pop() if last != 10 else b""  # an unfinished line waits
        events: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0].decode("utf-8", "replace") if len(data) == 1 else _join(data))
                    data.clear()
            elif line.startswith(b"data: "):
                data.append(line[6:])
            elif line.startswith(b"data:"):
                data.append(line[5:])
            # Comments (":"), "event:", "id:", "retry:" and unknown fields carry nothing we use.
        return events

    def close(self) -> list[str]:
        """Flush at end of stream: an unterminated last event still counts (the service may cut)."""
        rest, self._buf = self._buf, b""
        events = self.feed(rest.rstrip(b"\r") + b"\n") if rest else []
        if self._data:
            events.append(_join(self._data))
            self._data = []
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
