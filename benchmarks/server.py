"""A zero-latency loopback server speaking just enough of the AI/ML API for the benchmarks.

Why not ``tests/fakeapi.py``: the fake validates, records and builds every reply per request
(http.server, zod-style checks, uuids), which costs more per request than the client does and
would hide the overhead being measured. This server pre-encodes its answers, sends a whole
stream with one ``sendall`` at full speed or paces it on an absolute schedule, and logs when
each content event left (``time.monotonic``, one clock for every process on Linux).

Run as a process: ``python benchmarks/server.py`` prints ``READY <port>``. Control endpoints
(plain JSON, separate connections, not counted as chat connections):

- ``POST /bench/scenario`` ``{"tokens": [...], "rate": tokens_per_s or 0, "reasoning": [...]}``
- ``GET /bench/stats``: chat connections and requests per User-Agent, the last stream's timeline
- ``POST /bench/reset``: forget the counts
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

HOST = "127.0.0.1"
MODEL = "bench/model"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: Any) -> bytes:
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + text.encode("utf-8") + b"\n\n"


def sse_events(tokens: list[str], reasoning: list[str] | None = None) -> list[tuple[bytes, bool]]:
    """The SSE events of a streamed answer, shaped like the service's: (event bytes, is_content)."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if delta is not None:
            choice["delta"] = delta
        return {**base, "choices": [choice]}

    events = [(_event(chunk({"role": "assistant", "content": ""})), False)]
    events += [(_event(chunk({"reasoning_content": t, "content": None})), False) for t in reasoning or []]
    events += [(_event(chunk({"content": t})), True) for t in tokens]
    events.append((_event(chunk({}, "stop")), False))
    usage = {"prompt_tokens": 12, "completion_tokens": len(tokens), "total_tokens": 12 + len(tokens)}
    events.append((_event({**base, "choices": [], "usage": usage}), False))
    events.append(
        (_event({"choices": [], "meta": {"usage": {"credits_used": 2002, "usd_spent": 0.001}}}), False)
    )
    events.append((_event("[DONE]"), False))
    return events


def sse_body(tokens: list[str], reasoning: list[str] | None = None) -> bytes:
    """The whole stream as the bytes on the wire (HTTP chunked framing, one chunk per event)."""
    return b"".join(_chunk(e) for e, _ in sse_events(tokens, reasoning)) + b"0\r\n\r\n"


def completion_body(text: str) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
        "meta": {"usage": {"credits_used": 2002, "usd_spent": 0.001}},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.set_scenario({"tokens": ["Hello", " from", " the", " bench", " server", "."], "rate": 0})
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.connections: dict[str, int] = {}
            self.requests: dict[str, int] = {}
            self.timeline: dict[str, Any] = {}

    def set_scenario(self, spec: dict[str, Any]) -> None:
        tokens = list(spec["tokens"])
        events = sse_events(tokens, spec.get("reasoning"))
        text = completion_body("".join(tokens))
        with self.lock:
            self.rate = float(spec.get("rate") or 0)
            self.events = [(_chunk(e), c) for e, c in events]
            self.burst = b"".join(e for e, _ in self.events) + b"0\r\n\r\n"
            self.completion = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-inference-id: bench\r\n"
                b"Content-Length: %d\r\n\r\n" % len(text)
            ) + text


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"x-inference-id: bench\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _json_reply(conn: socket.socket, obj: Any) -> None:
    body = json.dumps(obj).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def serve_connection(conn: socket.socket, state: State) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    counted_as: str | None = None
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].decode("latin-1").split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip().decode("latin-1")
            length = int(headers.get(b"content-length", "0"))
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            if path.endswith("/chat/completions") and method == "POST":
                agent = headers.get(b"user-agent", "?").split("/")[0]
                with state.lock:
                    if counted_as != agent:
                        counted_as = agent
                        state.connections[agent] = state.connections.get(agent, 0) + 1
                    state.requests[agent] = state.requests.get(agent, 0) + 1
                if b'"stream": true' in body or b'"stream":true' in body:
                    stream(conn, state)
                else:
                    conn.sendall(state.completion)
            elif path == "/bench/scenario":
                state.set_scenario(json.loads(body))
                _json_reply(conn, {"ok": True})
            elif path == "/bench/stats":
                with state.lock:
                    _json_reply(
                        conn,
                        {
                            "connections": state.connections,
                            "requests": state.requests,
                            "timeline": state.timeline,
                        },
                    )
            elif path == "/bench/reset":
                state.reset()
                _json_reply(conn, {"ok": True})
            else:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        return
    finally:
        conn.close()


def stream(conn: socket.socket, state: State) -> None:
    with state.lock:
        rate, events, burst = state.rate, state.events, state.burst
    if rate <= 0:
        start = time.monotonic()
        conn.sendall(STREAM_HEAD + burst)
        end = time.monotonic()
        timeline = {"start": start, "content": [start, end], "end": end}
    else:
        conn.sendall(STREAM_HEAD)
        start = time.monotonic()
        sent: list[float] = []
        step = 1.0 / rate
        for data, is_content in events:
            if is_content:
                due = start + len(sent) * step
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sent.append(time.monotonic())
            conn.sendall(data)
        conn.sendall(b"0\r\n\r\n")
        timeline = {"start": start, "content": sent, "end": time.monotonic()}
    with state.lock:
        state.timeline = timeline


def main() -> int:
    state = State()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    listener.listen(64)
    print(f"READY {listener.getsockname()[1]}", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve_connection, args=(conn, state), daemon=True).start()
    except KeyboardInterrupt:
        return 0
    finally:
        listener.close()


if __name__ == "__main__":
    sys.exit(main())
