"""CPU per ``chat()`` turn deep into an unbounded conversation, against a bare ``requests`` loop.

    python benchmarks/conversation.py               # 300 turns, the window around turn 285
    python benchmarks/conversation.py --turns 120   # a smoke run

Both sides talk to ``benchmarks/server.py`` (a zero-latency loopback server in its own process),
without streaming, and send the same growing conversation: a ``Session`` with
``max_history=None`` and the store off, and a loop that appends the same messages to a list and
posts it with one ``requests.Session``. Their turns alternate (turn i of one, then turn i of the
other), so drift in the machine's load hits both alike. Reported: the median CPU time of this
process per turn over the last turns (``time.process_time``, so the server's work is not
counted), and their ratio. Target (issue 25): at most 1.6x. Then, apart from the timing, the
memory each side holds after 200 turns (``tracemalloc``: what is allocated and still alive).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import requests  # noqa: E402
from store import KEY, scenario, start_server  # noqa: E402

from aiml_magics import Session  # noqa: E402


def prompt(i: int) -> str:
    return f"Turn {i}: tell me one more thing about herons and the rivers they fish in."


class Bare:
    """The least a client can do: keep the messages, post them, read the answer."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        self.http = requests.Session()
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        self.messages: list[dict[str, Any]] = []

    def turn(self, i: int) -> str:
        self.messages.append({"role": "user", "content": prompt(i)})
        reply = self.http.post(self.url, json={"model": "bench/model", "messages": self.messages},
                               headers=self.headers, timeout=30)
        reply.raise_for_status()
        text = str(reply.json()["choices"][0]["message"]["content"])
        self.messages.append({"role": "assistant", "content": text})
        return text


def run(turns: int, window: int) -> dict[str, Any]:
    proc, port = start_server()
    try:
        scenario(port, 0)
        s = Session(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", store="", max_history=None,
                    stream=False, max_retries=0, model="bench/model")
        bare = Bare(port)
        cpu: dict[str, list[float]] = {"chat": [], "bare": []}
        for i in range(1, turns + 1):
            for name in ("chat", "bare") if i % 2 else ("bare", "chat"):
                t = time.process_time()
                if name == "chat":
                    s.chat(prompt(i))
                else:
                    bare.turn(i)
                cpu[name].append(time.process_time() - t)
        assert len(s.history.turns) == turns and len(bare.messages) == 2 * turns
        sent = len(json.dumps(s.last_request))
        held = held_mb(port, 200)
    finally:
        proc.kill()
    last = {k: v[-window:] for k, v in cpu.items()}
    chat_ms, bare_ms = (statistics.median(last[k]) * 1e3 for k in ("chat", "bare"))
    return {"turns": turns, "window": f"turns {turns - window + 1}-{turns}",
            "request_bytes_at_last_turn": sent, "chat_cpu_ms": chat_ms, "bare_cpu_ms": bare_ms,
            "ratio": chat_ms / bare_ms,
            "early_chat_cpu_ms": statistics.median(cpu["chat"][:window]) * 1e3,
            "early_bare_cpu_ms": statistics.median(cpu["bare"][:window]) * 1e3,
            "held_mb_after_200_turns": held}


def held_mb(port: int, turns: int) -> dict[str, float]:
    """Memory still allocated after ``turns`` turns, each side on its own (MB)."""
    held = {}
    for name in ("chat", "bare"):
        tracemalloc.start()
        if name == "chat":
            keep: Any = Session(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", store="",
                                max_history=None, stream=False, max_retries=0, model="bench/model")
            for i in range(1, turns + 1):
                keep.chat(prompt(i))
        else:
            keep = Bare(port)
            for i in range(1, turns + 1):
                keep.turn(i)
        held[name] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        del keep
    return held


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--window", type=int, default=30, help="turns at the end to take the median of")
    opts = ap.parse_args()
    r = run(opts.turns, opts.window)
    print("| CPU per turn | chat() | bare requests | ratio (target <= 1.6x) |\n|---|--:|--:|--:|")
    print(f"| first {opts.window} turns | {r['early_chat_cpu_ms']:.2f} ms | "
          f"{r['early_bare_cpu_ms']:.2f} ms | {r['early_chat_cpu_ms'] / r['early_bare_cpu_ms']:.2f}x |")
    print(f"| {r['window']} ({r['request_bytes_at_last_turn']:,} bytes sent) | "
          f"{r['chat_cpu_ms']:.2f} ms | {r['bare_cpu_ms']:.2f} ms | {r['ratio']:.2f}x |")
    held = r["held_mb_after_200_turns"]
    print(f"| memory held after 200 turns | {held['chat']:.1f} MB | {held['bare']:.1f} MB | "
          f"{held['chat'] / held['bare']:.2f}x |")
    (HERE / "conversation-results.json").write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
