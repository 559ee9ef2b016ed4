"""``map()`` on a 2-worker dask ``LocalCluster`` against ``map()`` on its own threads.

1,000 prompts, a loopback server that answers each after 100 ms, concurrency 32, the store off
and new prompts on every repetition (the engine is measured, not a cache). The ideal wall time is
1,000 x 0.1 s / 32 = 3.1 s. The two are run alternately, in one process, against one server that
runs in its own process (asyncio: it waits without a thread per request and is never the
bottleneck). Reported: each run's wall time, the cluster's time over the threads' (the median of
the repetitions' ratios), the tasks sent and the TCP connections the server accepted.
``--per-prompt`` adds a run with one task per prompt (chunks of one), the shape before chunks.

Run: ``python benchmarks/cluster.py [--reps 5] [--per-prompt] [--json benchmarks/cluster-results.json]``;
the exit status is 1 when the median ratio is over 1.5 or an answer is missing or out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEY = "sk-bench-0123456789abcdef0123"
HOST = "127.0.0.1"


# -- the server (its own process) ---------------------------------------------------------------


class Counts:
    def __init__(self) -> None:
        self.connections = self.requests = self.in_flight = self.peak = 0


def _answer(prompt: str) -> bytes:
    return json.dumps({
        "id": "b", "object": "chat.completion", "model": "bench/model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"re: {prompt}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        "meta": {"usage": {"credits_used": 21, "usd_spent": 0.0000105}},
    }, separators=(",", ":")).encode()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            counts: Counts, delay: float) -> None:
    counted = False
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if path.endswith("/chat/completions") and method == "POST":
                if not counted:
                    counted, counts.connections = True, counts.connections + 1
                counts.requests += 1
                counts.in_flight += 1
                counts.peak = max(counts.peak, counts.in_flight)
                await asyncio.sleep(delay)
                counts.in_flight -= 1
                data = _answer(json.loads(body)["messages"][-1]["content"])
            elif path == "/bench/stats":
                data = json.dumps(vars(counts)).encode()
                counts.__init__()  # type: ignore[misc]  # read and reset
            else:
                data = b"{}"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(data) + data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(delay: float) -> None:
    counts = Counts()
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, counts, delay), HOST, 0, backlog=512)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# -- the client ---------------------------------------------------------------------------------


def _stats(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://{HOST}:{port}/bench/stats", timeout=10) as answer:
        return json.loads(answer.read())


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far (Linux), for the share a run kept busy."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import distributed

    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"distributed {distributed.__version__}, {platform.system()} {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--per-prompt", action="store_true", help="also one task per prompt")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(args.delay))
        return 0

    import distributed

    import aiml_magics.chunks
    from aiml_magics import Session
    from aiml_magics.batch import Failure, run_map

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--delay", str(args.delay)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    session = Session(api_key=KEY, base_url=f"http://{HOST}:{port}/v1", model="bench/model", store="")
    runs: list[dict[str, Any]] = []
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=args.threads_per_worker,
                                      processes=True, dashboard_address=None, host=HOST) as cluster, \
                distributed.Client(cluster) as client:
            executor = client.get_executor()

            def one(mode: str, rep: int) -> dict[str, Any]:
                prompts = [f"{mode} {rep} {time.time_ns()} prompt {i}" for i in range(args.n)]
                _stats(port)
                with distributed.get_task_stream(client) as stream:
                    busy0, total0 = _cpu_busy()
                    started = time.perf_counter()
                    batch = run_map(session, prompts, concurrency=args.concurrency, progress=False,
                                    executor=None if mode == "threads" else executor, cache=False)
                    wall = time.perf_counter() - started
                    busy1, total1 = _cpu_busy()
                seen = _stats(port)
                ok = [r.text for r in batch if not isinstance(r, Failure)] == [f"re: {p}" for p in prompts]
                return {"mode": mode, "rep": rep, "wall_s": round(wall, 3), "in_order_all_answered": ok,
                        "tasks": len(stream.data), "connections": seen["connections"],
                        "requests": seen["requests"], "peak_in_flight": seen["peak"],
                        "cpu_busy": round((busy1 - busy0) / max(total1 - total0, 1.0), 2)}

            for mode in ("threads", "cluster"):  # warm: imports, worker clients, connections
                run_map(session, [f"warm {mode} {i}" for i in range(64)], concurrency=args.concurrency,
                        progress=False, executor=None if mode == "threads" else executor, cache=False)
            for rep in range(args.reps):
                order = ("threads", "cluster") if rep % 2 == 0 else ("cluster", "threads")
                for mode in order:
                    runs.append(one(mode, rep))
                    print(json.dumps(runs[-1]), flush=True)
            if args.per_prompt:
                chunking = aiml_magics.chunks.slots
                aiml_magics.chunks.slots = lambda executor: 1 << 20  # type: ignore[assignment]
                try:
                    runs.append(one("per-prompt", 0))
                finally:
                    aiml_magics.chunks.slots = chunking
                print(json.dumps(runs[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(10)
    ideal = args.n * args.delay / args.concurrency
    walls = {m: [r["wall_s"] for r in runs if r["mode"] == m] for m in ("threads", "cluster")}
    ratios = [c / t for t, c in zip(walls["threads"], walls["cluster"], strict=True)]
    summary = {
        "machine": _machine(), "n": args.n, "delay_s": args.delay, "concurrency": args.concurrency,
        "threads_per_worker": args.threads_per_worker, "ideal_s": round(ideal, 3),
        "threads_median_s": statistics.median(walls["threads"]),
        "cluster_median_s": statistics.median(walls["cluster"]),
        "cluster_over_threads": [round(r, 3) for r in ratios],
        "cluster_over_threads_median": round(statistics.median(ratios), 3), "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["cluster_over_threads_median"] <= 1.5 and all(r["in_order_all_answered"]
                                                                      for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
