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
    """Incremental SSE decoder: ``feed()`` bytes, get the data payloads of completed events."""

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Return the data payloads of the events completed by ``chunk``."""
        buf = self._buf + chunk if self._buf else chunk
        # A trailing CR may be the first half of a CRLF: hold it until the next byte arrives.
        hold = b""
        if buf[-1:] == b"\r":
            buf, hold = buf[:-1], b"\r"
        end = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if end < 0:
            self._buf = buf + hold
            return []
        self._buf = buf[end + 1 :] + hold
        return self._lines(buf[: end + 1])

    def close(self) -> list[str]:
        """Flush at end of stream: an unterminated last event still counts (the service may cut)."""
        rest, self._buf = self._buf, b""
        events = self._lines(rest + b"\n") if rest else []
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _lines(self, block: bytes) -> list[str]:
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[str] = []
        data = self._data
        for raw in block.split(b"\n")[:-1]:
            if not raw:
                if data:
                    events.append("\n".join(data))
                    data.clear()
                continue
            if raw[:5] == b"data:":
                value = raw[6:] if raw[5:6] == b" " else raw[5:]
                data.append(value.decode("utf-8", "replace"))
            # Comments (":"), "event:", "id:", "retry:" and unknown fields carry nothing we use.
        return events


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
