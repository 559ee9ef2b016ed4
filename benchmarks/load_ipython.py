"""`%load_ext aiml_magics` on several IPython versions (Colab's 7.34 beside current ones), one run.

    python benchmarks/load_ipython.py PYTHON [PYTHON ...] [--n 30]

Each PYTHON is an interpreter (a venv) with the IPython to measure; this checkout's package is
put on its path. Fresh processes, interleaved across the interpreters (so a burst of load from
other jobs hits all alike): per interpreter a bare IPython shell and one that also runs
``%load_ext``. Reported per interpreter: the ``load_ext`` call timed inside the process, the time it
adds to a fresh process, wall and CPU (medians of paired differences), and the ratios to the
first interpreter's. Prints a Markdown table and writes ``benchmarks/load-ipython.json``.

    python benchmarks/load_ipython.py PYTHON --minimal [--n 40]

measures ``%load_ext aiml_magics`` against ``%load_ext minimal_magic`` (``benchmarks/minimal_magic.py``:
one configurable cell magic, the least a magic can be), fresh processes alternating with a bare
shell, and writes ``benchmarks/load-minimal.json``. Target (issue 25): at most 3x the minimal magic.
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


_LOAD_ONE = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
if {name!r}:
    shell.run_line_magic("load_ext", {name!r})
print(json.dumps({{"load_ms": (time.perf_counter() - t) * 1e3,
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def against_minimal(python: str, n: int) -> dict[str, Any]:
    """``%load_ext aiml_magics`` and ``%load_ext minimal_magic``, each in fresh processes taking
    turns with a bare shell: the call timed inside the process, and the CPU each adds to one."""
    heavy = (*HEAVY, "hashlib", "sqlite3", "PIL")
    names = {"bare": "", "aiml_magics": "aiml_magics", "minimal": "minimal_magic"}
    calls: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    imported: dict[str, list[str]] = {}

    def once(key: str) -> None:
        code = _LOAD_ONE.format(name=names[key], heavy=heavy)
        cpu = _cpu_ms()
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=_env(ROOT),
                             cwd=ROOT, check=True).stdout
        cpus[key].append(_cpu_ms() - cpu)
        info = json.loads(out)
        calls[key].append(info["load_ms"])
        imported[key] = info["heavy"]

    for key in names:  # byte-code caches, as after a pip install
        once(key)
    for k in calls:
        calls[k].clear()
        cpus[k].clear()
    for i in range(n):
        order = ["bare", "aiml_magics", "minimal"] if i % 2 == 0 else ["bare", "minimal", "aiml_magics"]
        for key in order:
            once(key)
    added = {k: statistics.median(c - b for b, c in zip(cpus["bare"], cpus[k], strict=True))
             for k in ("aiml_magics", "minimal")}
    ours, mini = (statistics.median(calls[k]) for k in ("aiml_magics", "minimal"))
    return {"n": n, "call_ms": {k: spread(calls[k]) for k in ("aiml_magics", "minimal")},
            "call_ratio": ours / mini, "added_cpu_ms": added,
            "added_cpu_ratio": added["aiml_magics"] / added["minimal"] if added["minimal"] > 0 else None,
            "bare_process_cpu_ms": statistics.median(cpus["bare"]), "imported": imported}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pythons", nargs="+", help="interpreters, each with the IPython to measure")
    ap.add_argument("--n", type=int, default=30, help="processes per interpreter and variant")
    ap.add_argument("--minimal", action="store_true", help="against a minimal magic (first PYTHON)")
    args = ap.parse_args()
    if args.minimal:
        r = against_minimal(args.pythons[0], args.n)
        c, a = r["call_ms"], r["added_cpu_ms"]
        print(f"| {args.n} processes each | `load_ext` call: min / median | added CPU per process (median) |")
        print("|---|--:|--:|")
        for k in ("aiml_magics", "minimal"):
            print(f"| {k} | {c[k]['min']:.2f} / {c[k]['median']:.2f} ms | {a[k]:+.1f} ms |")
        ratio = r["added_cpu_ratio"]
        print(f"| ratio (target <= 3x) | {r['call_ratio']:.2f}x | "
              f"{f'{ratio:.2f}x' if ratio is not None else 'n/a'} |")
        print(f"imported at load: {r['imported']}")
        out = HERE / "load-minimal.json"
        out.write_text(json.dumps({"machine": machine(), **r}, indent=1) + "\n", encoding="utf-8")
        return 0
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
