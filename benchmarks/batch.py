"""``map()`` throughput and rate-limit safety against loopback servers.

1. 200 prompts, a server that adds 100 ms to every request, concurrency 8: the ideal wall time
   is 200 x 0.1 s / 8 = 2.5 s; the figure reported is the measured wall time and its ratio to it.
2. The same batch against a server that answers 429 whenever more than 3 requests are in flight:
   items lost (must be 0), 429s met, and the wall time against that server's ideal
   (200 x 0.1 s / 3 = 6.7 s).

Run: ``python benchmarks/batch.py`` (prints a JSON summary; ``--json PATH`` also writes it).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiml_magics import Session  # noqa: E402
from aiml_magics.batch import Failure, run_map  # noqa: E402

KEY = "sk-bench-0123456789abcdef0123"
N, DELAY, CONCURRENCY = 200, 0.1, 8


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, limit: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.limit, self.in_flight, self.peak, self.refused = limit, 0, 0, 0
        self.lock = threading.Lock()

    def get_request(self) -> Any:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stall
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.in_flight += 1
            srv.peak = max(srv.peak, srv.in_flight)
            crowded = srv.limit is not None and srv.in_flight > srv.limit
            srv.refused += crowded
        try:
            if crowded:
                self._send(429, {"message": "Too many requests", "statusCode": 429})
                return
            time.sleep(DELAY)
            prompt = body["messages"][-1]["content"]
            self._send(200, {
                "id": "b", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"re: {prompt}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
                "meta": {"usage": {"credits_used": 21, "usd_spent": 0.0000105}},
            })
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run(limit: int | None) -> dict[str, Any]:
    server = _Server(limit)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    session = Session(api_key=KEY, base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                      model="bench/model")
    prompts = [f"prompt {i}" for i in range(N)]
    started = time.perf_counter()
    batch = run_map(session, prompts, concurrency=CONCURRENCY, progress=False, backoff=0.05)
    wall = time.perf_counter() - started
    server.shutdown()
    server.server_close()
    ideal = N * DELAY / (min(CONCURRENCY, limit) if limit else CONCURRENCY)
    answered = [r for r in batch if not isinstance(r, Failure)]
    in_order = [r.text for r in answered] == [f"re: {p}" for p in prompts]
    return {
        "items": N, "answered": len(answered), "lost": N - len(answered), "in_order": in_order,
        "wall_s": round(wall, 3), "ideal_s": round(ideal, 3), "ratio": round(wall / ideal, 3),
        "peak_in_flight": server.peak, "refused_429": server.refused,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"delay_100ms_c8": run(None), "limit_3_in_flight": run(3)}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    ok = results["delay_100ms_c8"]["ratio"] <= 1.15 and results["limit_3_in_flight"]["lost"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
