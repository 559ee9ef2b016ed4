"""A loopback server for ``benchmarks/batch.py``, run as its own process: asyncio, one coroutine
per connection, pre-encoded answers, so it serves far more than the client asks.

Every chat request is answered after ``--delay`` seconds (non-streamed JSON). With ``--limit N``
a request that arrives while N are already in flight gets a 429 at once. ``GET /bench/stats``
returns the most in flight and the 429s sent; ``POST /bench/reset`` forgets them.

Run: ``python benchmarks/batchserver.py --delay 0.05`` prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys

ANSWER = (b'{"id":"b","object":"chat.completion","model":"bench/model","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"re: %s"},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6},'
          b'"meta":{"usage":{"credits_used":21,"usd_spent":0.0000105}}}')
LIMITED = b'{"message":"Too many requests","statusCode":429}'


def _reply(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, len(body)) + body)


class Stats:
    def __init__(self, delay: float, limit: int | None) -> None:
        self.delay, self.limit = delay, limit
        self.in_flight = self.peak = self.refused = self.served = 0


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: Stats) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            first, _, rest = head.partition(b"\r\n")
            length = 0
            for line in rest.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if b"/bench/stats" in first:
                writer.write(_reply(b"200 OK", json.dumps(
                    {"peak": st.peak, "refused": st.refused, "served": st.served}).encode()))
                continue
            if b"/bench/reset" in first:
                st.peak = st.refused = st.served = 0
                writer.write(_reply(b"200 OK", b"{}"))
                continue
            st.in_flight += 1
            st.peak = max(st.peak, st.in_flight)
            try:
                if st.limit is not None and st.in_flight > st.limit:
                    st.refused += 1
                    writer.write(_reply(b"429 Too Many Requests", LIMITED))
                    continue
                await asyncio.sleep(st.delay)
                marker = body.rfind(b'"content":')
                prompt = body[marker + 10:].split(b'"')[1] if marker >= 0 else b""
                writer.write(_reply(b"200 OK", ANSWER % prompt))
                st.served += 1
            finally:
                st.in_flight -= 1
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(delay: float, limit: int | None) -> None:
    st = Stats(delay, limit)
    server = await asyncio.start_server(lambda r, w: serve(r, w, st), "127.0.0.1", 0, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.delay, args.limit))
    except KeyboardInterrupt:
        sys.exit(0)
