"""`%load_ext aiml_magics` on several IPython versions (Colab's 7.34 beside current ones), one run.

    python benchmarks/load_ipython.py PYTHON [PYTHON ...] [--n 30]

Each PYTHON is an interpreter (a venv) with the IPython to measure; this checkout's package is
put on its path. Fresh processes, interleaved across the interpreters (so a burst of load from
other jobs hits all alike): per interpreter a bare IPython shell and one that also runs
``%load_ext``. Reported per interpreter: the ``load_ext`` call timed inside the process, the time it
adds to a fresh process, wall and CPU (medians of paired differences), and the ratios to the
first interpreter's. Prints a Markdown table and writes ``benchmarks/load-ipython.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from run import _LOAD, HEAVY, ROOT, _env, machine, spread

HERE = Path(__file__).resolve().parent


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1e3


def _once(python: str, with_ext: bool) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU time of one fresh process, and what it reported."""
    code = _LOAD.format(load=with_ext, heavy=HEAVY)
    cpu, t = _cpu_ms(), time.perf_counter()
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=_env(ROOT),
                         cwd=ROOT, check=True).stdout
    return (time.perf_counter() - t) * 1e3, _cpu_ms() - cpu, json.loads(out)


def measure(pythons: list[str], n: int) -> list[dict[str, Any]]:
    calls: dict[str, list[float]] = {p: [] for p in pythons}
    bare: dict[str, list[float]] = {p: [] for p in pythons}
    ext: dict[str, list[float]] = {p: [] for p in pythons}
    bare_cpu: dict[str, list[float]] = {p: [] for p in pythons}
    ext_cpu: dict[str, list[float]] = {p: [] for p in pythons}
    heavy: dict[str, list[str]] = {}
    for p in pythons:  # byte-code caches, as after a pip install
        _once(p, True)
    for _ in range(n):
        for p in pythons:
            wall, cpu, _info = _once(p, False)
            bare[p].append(wall)
            bare_cpu[p].append(cpu)
            wall, cpu, info = _once(p, True)
            ext[p].append(wall)
            ext_cpu[p].append(cpu)
            calls[p].append(info["load_ms"])
            assert info["module"].startswith(str(ROOT)), info["module"]
            heavy[p] = info["heavy"]
    rows = []
    for p in pythons:
        version = subprocess.run([p, "-c", "import IPython; print(IPython.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        rows.append({
            "python": p, "ipython": version, "load_ext_call_ms": spread(calls[p]),
            "added_ms": statistics.median(e - b for b, e in zip(bare[p], ext[p], strict=True)),
            "added_cpu_ms": statistics.median(e - b for b, e in zip(bare_cpu[p], ext_cpu[p], strict=True)),
            "bare_process_ms": spread(bare[p]), "heavy_imported": heavy[p],
        })
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pythons", nargs="+", help="interpreters, each with the IPython to measure")
    ap.add_argument("--n", type=int, default=30, help="processes per interpreter and variant")
    args = ap.parse_args()
    rows = measure(args.pythons, args.n)
    first = rows[0]
    print(f"| IPython, {args.n} processes each | `load_ext` call: min / median | ratio (median) "
          f"| added to a fresh process, wall / CPU (median) | ratio (CPU) | bare IPython process |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        call, base = r["load_ext_call_ms"], first["load_ext_call_ms"]
        print(f"| {r['ipython']} | {call['min']:.1f} / {call['median']:.1f} ms "
              f"| {call['median'] / base['median']:.2f}x "
              f"| {r['added_ms']:+.1f} / {r['added_cpu_ms']:+.1f} ms "
              f"| {r['added_cpu_ms'] / first['added_cpu_ms']:.2f}x "
              f"| {r['bare_process_ms']['median']:.0f} ms |")
    out = HERE / "load-ipython.json"
    out.write_text(json.dumps({"machine": machine(), "n": args.n, "rows": rows}, indent=1) + "\n",
                   encoding="utf-8")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
