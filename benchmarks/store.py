"""The store's cost: ``chat()`` and ``map()`` with the SQLite store on against off, same run.

Both talk to ``benchmarks/server.py`` (a zero-latency loopback server in its own process), so the
request itself is as cheap as it can be and the store's share is as large as it can be: a real
service answers in hundreds of milliseconds, and the ratio there is closer to 1. Every
repetition asks new prompts (nothing comes from the cache), and on/off blocks alternate so
drift in the machine's load hits both sides alike.

    python benchmarks/store.py            # 300 chat() calls x 4 blocks; map() of 10,000 x 2;
                                          # map() of 3,000 50 ms answers at concurrency 32 x 3
    python benchmarks/store.py --quick    # smoke run

Prints a Markdown table and writes ``benchmarks/store-results.json``. Targets (issue 23): both
ratios at most 1.1x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from batch import Server  # noqa: E402

from aiml_magics import Session  # noqa: E402
from aiml_magics.api import map as amap  # noqa: E402

LATENCY = 0.05
KEY = "sk-bench-0123456789abcdef0123"


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, str(HERE / "server.py")], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"benchmark server did not start: {line!r}")
    return proc, int(line.split()[1])


def scenario(port: int, rate: float) -> None:
    body = json.dumps({"tokens": ["Hello", " from", " the", " bench", " server", "."],
                       "rate": rate}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/bench/scenario", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def session(port: int, store: str) -> Session:
    return Session(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", store=store, memory=False,
                   max_retries=0)


def chat_block(s: Session, n: int, tag: str) -> float:
    """Seconds per chat() over n new prompts."""
    started = time.perf_counter()
    for i in range(n):
        s.chat(f"question {tag}-{i}: what is a heron?")
    return (time.perf_counter() - started) / n


def map_run(s: Session, n: int, tag: str, concurrency: int = 8) -> float:
    started = time.perf_counter()
    batch = amap([f"row {tag}-{i}" for i in range(n)], session=s, concurrency=concurrency,
                 progress=False)
    elapsed = time.perf_counter() - started
    assert not batch.failures, batch.failures[:1]
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    n_chat, blocks, n_map, map_reps = (50, 2, 1000, 1) if opts.quick else (300, 4, 10_000, 2)
    n_slow = 500 if opts.quick else 3_000
    proc, port = start_server()
    folder = Path(tempfile.mkdtemp(prefix="aiml-store-bench-"))
    on, off = session(port, str(folder / "store.db")), session(port, "")
    results: dict[str, Any] = {}
    try:
        for label, rate in (("chat, zero latency", 0), ("chat, 6 tokens at 300/s (~20 ms)", 300)):
            scenario(port, rate)
            chat_block(on, 10, f"warm-{rate}")  # connections, the file, the schema
            chat_block(off, 10, f"warm-{rate}")
            times: dict[str, list[float]] = {"on": [], "off": []}
            for b in range(blocks):
                for name, s in (("on", on), ("off", off)) if b % 2 == 0 else (("off", off), ("on", on)):
                    times[name].append(chat_block(s, n_chat, f"{rate}-{b}-{name}"))
            results[label] = _ratio(times, unit_ms=True)
        scenario(port, 0)
        map_times: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(map_reps):
            for name, s in (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on)):
                map_times[name].append(map_run(s, n_map, f"{r}-{name}"))
        results[f"map() of {n_map:,}, concurrency 8, zero latency"] = _ratio(map_times, unit_ms=False)
        results["store size after the run (bytes)"] = on.connection.store.size()
    finally:
        proc.kill()
    # The same map() where each answer takes 50 ms (batch.py's server, its own process), as a
    # real service's answers take longer still: the store's work then overlaps the waiting.
    slow = Server(LATENCY)
    try:
        on = Session(api_key=KEY, base_url=slow.base, store=str(folder / "store-slow.db"),
                     memory=False, max_retries=0)
        off = Session(api_key=KEY, base_url=slow.base, store="", memory=False, max_retries=0)
        map_run(on, 200, "warm-slow", concurrency=32)
        map_run(off, 200, "warm-slow", concurrency=32)
        slow_times: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(map_reps + 1):
            for name, s in (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on)):
                slow_times[name].append(map_run(s, n_slow, f"slow-{r}-{name}", concurrency=32))
        results[f"map() of {n_slow:,}, concurrency 32, 50 ms answers"] = _ratio(slow_times,
                                                                                 unit_ms=False)
    finally:
        slow.close()
    print("| measurement | store off | store on | ratio (target <= 1.1x) |\n|---|--:|--:|--:|")
    for label, r in results.items():
        if isinstance(r, dict):
            unit = r["unit"]
            print(f"| {label} | {r['off']:.3f} {unit} | {r['on']:.3f} {unit} | {r['ratio']:.3f}x |")
    out = HERE / ("store-results-quick.json" if opts.quick else "store-results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _ratio(times: dict[str, list[float]], unit_ms: bool) -> dict[str, Any]:
    scale = 1000.0 if unit_ms else 1.0
    on, off = statistics.median(times["on"]) * scale, statistics.median(times["off"]) * scale
    return {"on": on, "off": off, "ratio": on / off, "unit": "ms" if unit_ms else "s",
            "runs": {k: [v * scale for v in vals] for k, vals in times.items()}}


if __name__ == "__main__":
    sys.exit(main())
