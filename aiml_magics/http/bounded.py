"""Reading what the service sends within limits, and saying in words what went wrong.

A hostile or broken server can send a gzip bomb, a body that never ends, a connection held open
after the answer, or break the connection at any point. Here: bodies are read in blocks of at
most ``READ_BLOCK`` inflated bytes up to a cap (gzip and deflate are inflated here in bounded
steps, since urllib3 before 2.6 inflates a whole read's input at once);
the end of a finished stream gets a short grace, then the connection is closed rather than waited
on; and a network failure becomes words that say whether the request was sent (and may be
billed), never an exception's repr. No IPython here.
"""

from __future__ import annotations

import http.client
import socket
import zlib
from collections.abc import Callable, Iterator
from typing import Any

READ_BLOCK = 64 * 1024

#: An error body needs a few KB (README "Limits").
ERROR_BODY_BYTES = 8 * 1024


def read_capped(resp: Any, limit: int, keep: bool = True) -> tuple[bytes, bool]:
    """Up to ``limit`` inflated bytes of a ``requests`` response opened with ``stream=True``.

    Returns (body, more): ``more`` is True when the body went on past ``limit``; the connection is
    then closed (a half-read body cannot go back to the keep-alive pool), and the first ``limit``
    bytes are returned only if ``keep`` (an error excerpt needs them, a refused answer does not).
    A body read to its end releases the connection for reuse.
    """
    raw = resp.raw
    parts: list[bytes] = []
    size = 0

    def blocks(decode: bool) -> Iterator[bytes]:
        while block := raw.read(READ_BLOCK, decode_content=decode):
            yield block

    try:
        for block in inflated(raw, blocks):
            parts.append(block)
            size += len(block)
            if size > limit:
                break
    except BaseException:
        resp.close()
        raise
    if size > limit:
        resp.close()
        return (b"".join(parts)[:limit] if keep else b""), True
    raw.release_conn()
    return b"".join(parts), False


def set_read_timeout(raw: Any, seconds: float | None) -> bool:
    """Change the read timeout of the socket under a urllib3 response; False if there is none."""
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if not isinstance(sock, socket.socket):
        return False
    try:
        sock.settimeout(seconds)
    except OSError:
        return False
    return True


def finish_quickly(raw: Any, rest: Iterator[bytes], grace: float) -> bool:
    """After a complete answer: read the end of the body if it comes within ``grace`` seconds.

    True when the body ended (the connection went back to the pool). Anything else (silence, a
    ``: keep-alive`` comment, more data) returns False at once or after ``grace``: the caller
    closes the connection instead of waiting for a server that holds it open.
    """
    if not set_read_timeout(raw, grace):
        return False
    try:
        for block in rest:
            if block:
                return False  # more than the end of the body: not worth waiting on
        raw.release_conn()
        return True
    except Exception:  # noqa: BLE001 - a timeout or a broken end: the connection is closed
        return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (requests -> urllib3 -> http.client / socket), a few levels."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(seen) < 12:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        yield item
        todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        todo.extend(a for a in item.args if isinstance(a, BaseException))


def failure_words(exc: BaseException) -> tuple[str, str]:
    """(words, phase) for a network failure. Phase is "connect" (nothing was sent), "answered"
    (the service answered, unreadably), "sent" (sent, then the connection broke) or "unknown"."""
    from urllib3.exceptions import (
        DecodeError,
        NewConnectionError,
        ProtocolError,
        ProxyError,
        SSLError,
    )

    chain = list(_chain(exc))
    for item in chain:
        text = str(item)
        if isinstance(item, http.client.HTTPException) and "more than 100 headers" in text:
            return "it answered with more than 100 header lines, which no client reads", "answered"
        if isinstance(item, http.client.LineTooLong):
            return "it answered with a header line too long to read", "answered"
        if isinstance(item, http.client.IncompleteRead):
            expected = item.expected if isinstance(item.expected, int) else None
            got = item.partial if isinstance(item.partial, int) else len(item.partial)
            if expected:
                return (f"the body ended after {got:,} bytes, {expected:,} fewer than announced",
                        "answered")
            return f"the body ended after {got:,} bytes, before its announced end", "answered"
        if isinstance(item, http.client.BadStatusLine) and not isinstance(
            item, http.client.RemoteDisconnected
        ):
            return "it answered with something that is not HTTP", "answered"
        if isinstance(item, DecodeError):
            return "its compressed body is broken", "answered"
    connecting = any(isinstance(i, (NewConnectionError, ProxyError, socket.gaierror)) for i in chain)
    if not connecting:
        for kinds, words in (
            (http.client.RemoteDisconnected, "the server closed the connection without answering"),
            (ConnectionResetError, "the connection was reset"),
            ((ProtocolError, BrokenPipeError), "the connection broke"),
        ):
            if any(isinstance(item, kinds) for item in chain):
                return words, "sent"
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused", "connect"
        if isinstance(item, socket.gaierror):
            return "the host name could not be resolved", "connect"
        if isinstance(item, SSLError):
            return "the TLS handshake failed", "connect"
        if isinstance(item, ProxyError):
            return "the proxy refused the connection", "connect"
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Network is unreachable"):
        if any(marker.lower() in str(item).lower() for item in chain):
            return marker.lower(), "connect"
    return f"a network error ({type(chain[-1]).__name__})", "connect" if connecting else "unknown"


__all__ = ["READ_BLOCK", "failure_words", "finish_quickly", "read_capped", "set_read_timeout"]


# zlib window bits for the codings inflated here: gzip, and deflate with its zlib header.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflated(raw: Any, blocks: Callable[[bool], Iterator[bytes]]) -> Iterator[bytes]:
    """A body's bytes, at most ``READ_BLOCK`` inflated bytes at a time, from ``blocks(decode)``
    (reads of the urllib3 response ``raw`` with ``decode_content=decode``).

    Why not urllib3's decoding alone: before urllib3 2.6 (Google Colab ships 2.5) one 64 KiB read
    of a gzip bomb inflates to about 64 MiB at once. gzip and deflate are inflated here with zlib's
    ``max_length``; other codings (br, zstd, stacked ones) are left to urllib3.
    """
    coding = str(raw.headers.get("Content-Encoding") or "").strip().lower()
    if coding not in _WBITS:
        yield from blocks(coding not in ("", "identity"))
        return
    from urllib3.exceptions import DecodeError

    inflater, first, members = zlib.decompressobj(_WBITS[coding]), True, 1
    for data in blocks(False):
        while True:
            if inflater.eof:  # gzip allows several members, one after another
                data = inflater.unused_data + data
                if coding == "deflate" or not data:
                    break
                inflater, members = zlib.decompressobj(_WBITS[coding]), members + 1
            try:
                out = inflater.decompress(data, READ_BLOCK)
            except zlib.error as exc:
                if members > 1:  # bytes after the last member: ignored, as urllib3 does
                    return
                if not (first and coding == "deflate"):
                    raise DecodeError(f"the {coding} body could not be inflated: {exc}") from None
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate sent without its header
                continue
            first = False
            if out:
                yield out
            data = inflater.unconsumed_tail
            # A full block may leave output inside zlib with no input left: ask again until less.
            if not inflater.eof and not data and len(out) < READ_BLOCK:
                break
