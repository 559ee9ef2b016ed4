"""A hostile (or just broken) service on 127.0.0.1, speaking exact bytes over raw sockets.

Why not ``fakeapi.py``: that server is a friendly copy of the service built on ``http.server``,
which always writes well-formed HTTP. The probes here need what no well-behaved server sends: 150
headers, a ``Content-Length`` that lies, a reset right after the headers, a gzip bomb, a body held
open after ``[DONE]``, keep-alive comments forever. Each request (any path) is answered by the
next queued *script*, a callable ``(conn, server) -> bool`` that writes what it likes and returns
True to keep the connection for another request. With nothing queued, a normal streamed answer
is sent, so "the next cell works" is checked against the same server.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
Script = Callable[[socket.socket, "HostileServer"], bool]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HostileServer:
    """Start with ``with HostileServer() as server``; queue scripts; inspect ``requests``."""

    requests: list[Request] = field(default_factory=list)
    connections: int = 0  # accepted so far
    closed_by_client: int = 0  # held connections the client closed (it did not wait on them)
    _scripts: deque[Script] = field(default_factory=deque)
    _open: set[socket.socket] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> HostileServer:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="HostileServer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._listener.getsockname()[1]}/v1"

    def queue(self, *scripts: Script) -> None:
        with self._lock:
            self._scripts.extend(scripts)

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_closed(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until the client has closed ``count`` held connections (True) or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.closed_by_client >= count:
                return True
            time.sleep(0.01)
        return False

    def stopping(self, seconds: float) -> bool:
        return self._stop.wait(seconds)

    # -- serving ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                request = _read_request(conn, self._stop)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                    script = self._scripts.popleft() if self._scripts else answer("fine")
                if not script(conn, self):
                    break
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def client_closed(self) -> None:
        with self._lock:
            self.closed_by_client += 1

    def hold(self, conn: socket.socket, keepalive: float | None = None) -> bool:
        """Keep the connection open (silent, or sending ``: keep-alive`` chunks) until the client
        closes it or the server stops. Counts the client's close; never keeps the connection."""
        next_comment = time.monotonic() + (keepalive or 0)
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.02)
            if readable:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.client_closed()
                    return False
            if keepalive is not None and time.monotonic() >= next_comment:
                next_comment = time.monotonic() + keepalive
                try:
                    conn.sendall(chunk(b": keep-alive\n\n"))
                except OSError:
                    self.client_closed()
                    return False
        return False


def _read_request(conn: socket.socket, stop: threading.Event) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        if stop.is_set() or len(data) > 1 << 20:
            return None
        readable, _, _ = select.select([conn], [], [], 0.05)
        if not readable:
            continue
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return None
        body += piece
    return Request(method, path, headers, body[:length])


# -- bytes on the wire --------------------------------------------------------------------------


def head(status: int = 200, headers: list[tuple[str, str]] | None = None, *,
         chunked: bool = True, content_type: str = "text/event-stream") -> bytes:
    """A status line and headers, exactly as given (a chunked SSE answer by default)."""
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}",
             f"Content-Type: {content_type}"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


END = b"0\r\n\r\n"


def event(obj: Any, name: str | None = None) -> bytes:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return (f"event: {name}\n".encode() if name else b"") + b"data: " + data + b"\n\n"


def delta(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-hostile", "model": "hostile-model", "created": 1,
            "choices": [{"index": index, "delta": {"content": text}, "finish_reason": finish}]}


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def answer_events(text: str, *, usage: dict[str, Any] | None = None, done: bool = True,
                  credits: float | None = 10) -> list[bytes]:
    """A normal streamed answer, one SSE event per item."""
    out = [event(delta(text)), event(delta("", finish="stop"))]
    out.append(event({"choices": [], "usage": usage if usage is not None else USAGE}))
    if credits is not None:
        out.append(event({"choices": [], "meta": {"usage": {"credits_used": credits}}}))
    if done:
        out.append(event(b"[DONE]"))
    return out


def body_json(obj: Any) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


def completion(text: str, usage: Any = None) -> dict[str, Any]:
    return {"id": "x", "model": "hostile-model",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": usage if usage is not None else USAGE}


def gzip_bomb(size: int, fill: bytes = b"0", prefix: bytes = b"", level: int = 9) -> bytes:
    """``prefix`` then ``size`` bytes of ``fill``, gzip-compressed (about 1,000:1 for zeros at
    level 9, 230:1 at the much faster level 1)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    parts = [comp.compress(prefix)]
    block = fill * max(1, (1 << 20) // len(fill))
    for _ in range(max(1, size // len(block))):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    return b"".join(parts)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


# -- scripts ----------------------------------------------------------------------------------


def send(*parts: bytes, then: str = "close", delay: float = 0.0, keepalive: float = 0.05) -> Script:
    """Write ``parts`` (``delay`` seconds apart), then "close", "keep" (for another request),
    "hold" (silent until the client closes), "keepalive" (comments until it closes) or "reset"."""

    def script(conn: socket.socket, server: HostileServer) -> bool:
        for i, part in enumerate(parts):
            if i and delay and server.stopping(delay):
                return False
            try:
                conn.sendall(part)
            except OSError:  # the client closed (reset) the connection before all was sent
                server.client_closed()
                return False
        if then == "keep":
            return True
        if then == "hold":
            return server.hold(conn)
        if then == "keepalive":
            return server.hold(conn, keepalive=keepalive)
        if then == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False

    return script


def answer(text: str, **kw: Any) -> Script:
    """A well-formed streamed answer on a keep-alive connection."""
    events = answer_events(text, **kw)
    return send(head() + b"".join(chunk(e) for e in events) + END, then="keep")


def stream(events: list[bytes], *, end: bool = True, then: str = "close",
           headers: list[tuple[str, str]] | None = None) -> Script:
    """An SSE stream, one HTTP chunk per event, ending the chunked body or not."""
    headers = [*(headers or []), *_closing(then)]
    parts = [head(headers=headers)] + [chunk(e) for e in events] + ([END] if end else [])
    return send(*parts, then=then)


def _closing(then: str) -> list[tuple[str, str]]:
    """A server that closes after its answer says so, or a client may reuse the connection in
    the instant before the close arrives (a race of the probe, not of the client)."""
    return [("Connection", "close")] if then == "close" else []


def whole(body: bytes, *, status: int = 200, headers: list[tuple[str, str]] | None = None,
          length: int | None = None, then: str = "close",
          content_type: str = "application/json") -> Script:
    """A body with a Content-Length (``length`` may lie)."""
    n = len(body) if length is None else length
    hdrs = [("Content-Length", str(n)), *(headers or []), *_closing(then)]
    return send(head(status, hdrs, chunked=False, content_type=content_type) + body, then=then)


@contextlib.contextmanager
def running() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server
