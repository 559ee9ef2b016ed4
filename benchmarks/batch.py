"""``map()`` throughput on both engines against a hand-written aiohttp loop, and rate-limit safety.

The loopback server runs in its own process (``batchserver.py``: asyncio, pre-encoded answers),
so the client's CPU is the client's alone. The store is off and every repetition asks new
prompts: this measures the engine, not a cache.

1. Throughput: N prompts, a server that answers each after 50 ms, at concurrency C; for each
   of map(engine="threads"), map(engine="async") and a bare aiohttp loop (a semaphore, one
   ClientSession, json.loads of each answer): wall time, its ratio to the aiohttp loop's, and
   CPU seconds of this process per 1,000 requests; the CPU ratio both of the least CPU of each
   and as the median of each repetition's ratio to the loop run beside it. Runs: 3,000 at 128 and
   10,000 at 256
   (``--quick``: 3,000 at 128 only). Targets: wall within 1.3x and CPU within 1.5x of the loop.
2. Rate limits: 200 prompts at concurrency 8 against a server that answers 429 whenever more
   than 3 are in flight, on each engine: items lost (must be 0), 429s met.

Run: ``python benchmarks/batch.py [--quick] [--reps R] [--json PATH]``; figures are ratios from
one run on one machine, never targets for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

os.environ["AIML_STORE"] = ""  # the store off: no SQLite writes measured
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiml_magics import Session  # noqa: E402
from aiml_magics.batch import Failure, run_map  # noqa: E402

KEY = "sk-bench-0123456789abcdef0123"
DELAY = 0.05


class Server:
    """``batchserver.py`` in a child process."""

    def __init__(self, delay: float, limit: int | None = None) -> None:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "batchserver.py"), "--delay", str(delay)]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        self.port = int(line.split()[1])
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/bench/{'reset' if reset else 'stats'}"
        req = urllib.request.Request(url, data=b"" if reset else None)
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def prompts_for(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]  # new prompts every repetition
    return [f"prompt {tag} {i}" for i in range(n)]


def timed(fn: Any) -> tuple[Any, float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall0, time.process_time() - cpu0


def run_engine(base: str, n: int, c: int, engine: str) -> tuple[float, float, int]:
    session = Session(api_key=KEY, base_url=base, model="bench/model", store="")
    prompts = prompts_for(n)
    batch, wall, cpu = timed(lambda: run_map(session, prompts, concurrency=c, progress=False,
                                             cache=False, engine=engine, backoff=0.05))
    bad = sum(1 for r in batch if isinstance(r, Failure))
    assert [r.text for r in batch[:3]] == [f"re: {p}" for p in prompts[:3]] or bad, "wrong answers"
    session.close()
    return wall, cpu, bad


def run_aiohttp(base: str, n: int, c: int) -> tuple[float, float, int]:
    import aiohttp

    prompts = prompts_for(n)

    async def go() -> int:
        sem = asyncio.Semaphore(c)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as http:
            async def one(prompt: str) -> str:
                body = json.dumps({"model": "bench/model",
                                   "messages": [{"role": "user", "content": prompt}]})
                async with sem, http.post(f"{base}/chat/completions", data=body,
                                          headers=headers) as resp:
                    data = json.loads(await resp.read())
                    return data["choices"][0]["message"]["content"]

            texts = await asyncio.gather(*(one(p) for p in prompts))
        return sum(1 for t, p in zip(texts, prompts, strict=True) if t != f"re: {p}")

    bad, wall, cpu = timed(lambda: asyncio.run(go()))
    return wall, cpu, bad


def throughput(n: int, c: int, reps: int) -> dict[str, Any]:
    server = Server(DELAY)
    rows: dict[str, list[tuple[float, float, int]]] = {"aiohttp loop": [], "map async": [],
                                                      "map threads": []}
    try:
        run_aiohttp(server.base, min(n, 500), c)  # warm: imports, the server's first connections
        run_engine(server.base, min(n, 500), c, "async")
        for _ in range(reps):  # alternated, so a busy moment of the machine hits all three
            rows["aiohttp loop"].append(run_aiohttp(server.base, n, c))
            rows["map async"].append(run_engine(server.base, n, c, "async"))
            rows["map threads"].append(run_engine(server.base, n, c, "threads"))
    finally:
        server.close()
    # The fastest wall time and the least CPU of each (apart: a busy moment hits one or the other).
    best = {k: (min(r[0] for r in v), min(r[1] for r in v), max(r[2] for r in v))
            for k, v in rows.items()}
    loop_wall, loop_cpu = best["aiohttp loop"][0], best["aiohttp loop"][1]
    out: dict[str, Any] = {"items": n, "concurrency": c, "delay_s": DELAY,
                           "ideal_s": round(n * DELAY / c, 3), "reps": reps}
    loops = rows["aiohttp loop"]
    for name, (wall, cpu, bad) in best.items():
        # Beside the ratio of the bests: the median of each repetition's ratio to the loop's run
        # next to it (a busy moment of the machine slows both; one lucky run moves the bests).
        paired = statistics.median(r[1] / o[1] for r, o in zip(rows[name], loops, strict=True))
        out[name] = {"wall_s": round(wall, 3), "x_loop_wall": round(wall / loop_wall, 2),
                     "cpu_s_per_1000": round(cpu * 1000 / n, 3),
                     "x_loop_cpu": round(cpu / loop_cpu, 2),
                     "x_loop_cpu_paired_median": round(paired, 2), "failed": bad,
                     "walls": [round(r[0], 3) for r in rows[name]],
                     "cpu_s": [round(r[1], 3) for r in rows[name]]}
    return out


def rate_limited(engine: str) -> dict[str, Any]:
    server = Server(0.1, limit=3)
    try:
        session = Session(api_key=KEY, base_url=server.base, model="bench/model", store="")
        prompts = prompts_for(200)
        batch, wall, _ = timed(lambda: run_map(session, prompts, concurrency=8, progress=False,
                                               cache=False, engine=engine, backoff=0.05))
        stats = server.stats()
    finally:
        server.close()
    answered = [r for r in batch if not isinstance(r, Failure)]
    return {"items": 200, "lost": 200 - len(answered), "wall_s": round(wall, 3),
            "ideal_s": round(200 * 0.1 / 3, 3), "refused_429": stats["refused"],
            "peak_in_flight": stats["peak"],
            "in_order": [r.text for r in answered] == [f"re: {p}" for p in prompts]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 at 128 only")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = [(3000, 128)] if args.quick else [(3000, 128), (10000, 256)]
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    for n, c in runs:
        results[f"{n}x50ms_c{c}"] = throughput(n, c, args.reps)
        print(json.dumps(results[f"{n}x50ms_c{c}"], indent=1), flush=True)
    for engine in ("threads", "async"):
        results[f"limit_3_in_flight_{engine}"] = rate_limited(engine)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    lost = sum(results[f"limit_3_in_flight_{e}"]["lost"] for e in ("threads", "async"))
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
