"""Measurements that need an IPython shell: run in a fresh process by ``run.py``, prints JSON.

``python benchmarks/worker.py PORT [--quick]``. The shell is IPython's ``InteractiveShell`` (what
a kernel runs) with a recording display publisher in place of the ZMQ one.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
import tracemalloc
from typing import Any

import corpus
from frontend import Recorder, replay, structure, visible

KEY = "sk-bench-0123456789abcdef"
PROMPT = "Tell me about streaming Markdown in notebooks."


def control(port: int, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def setup(port: int) -> tuple[Any, Recorder, float]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    recorder = Recorder(shell=shell)
    shell.display_pub = recorder
    t = time.perf_counter()
    shell.run_line_magic("load_ext", "aiml_magics")
    load_ms = (time.perf_counter() - t) * 1e3
    shell.run_line_magic("config", f"AIMLMagics.base_url = 'http://127.0.0.1:{port}/v1'")
    shell.run_line_magic("config", f"AIMLMagics.api_key = {KEY!r}")
    shell.run_line_magic("config", "AIMLMagics.memory = False")  # the same payload every cell
    return shell, recorder, load_ms


class RendererTimer:
    """While active, the magic's renderer is wrapped so the time spent displaying (the waiting
    note, building and publishing the final rendering) can be taken out of a cell's time."""

    def __init__(self) -> None:
        self.spent = 0.0

    def __enter__(self) -> RendererTimer:
        import aiml_magics
        from aiml_magics.display.render import make_renderer

        self._magics = aiml_magics.instance()
        self._real = make_renderer
        timer = self

        class Timed:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> Any:
                method = getattr(self._inner, name)

                def timed(*args: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return method(*args)
                    finally:
                        timer.spent += time.perf_counter() - t

                return timed

        def make(shell: Any, label: str = "", **kwargs: Any) -> Any:
            t = time.perf_counter()
            renderer = Timed(timer._real(shell, label, **kwargs))
            timer.spent += time.perf_counter() - t
            return renderer

        self._magics.make_renderer = make  # the magic's injection point for views
        return self

    def __exit__(self, *exc: object) -> None:
        self._magics.make_renderer = None


# -- (2) request overhead ---------------------------------------------------------------------------


def overhead(shell: Any, recorder: Recorder, port: int, quick: bool) -> dict[str, Any]:
    import aiml_magics

    control(port, "POST", "/bench/scenario", {"tokens": corpus.tokenize("Hello! " * 20 + "Done."), "rate": 0})
    control(port, "POST", "/bench/reset")
    t = time.perf_counter()
    shell.run_cell_magic("aiml", "--no-stream", PROMPT)
    first_ms = (time.perf_counter() - t) * 1e3
    payload = aiml_magics.instance().last_request
    assert aiml_magics.instance().last_response.text.startswith("Hello!")

    import requests

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}  # json= sets the Content-Type
    session = requests.Session()
    t = time.perf_counter()
    assert session.post(url, json=payload, headers=headers, timeout=30).content
    bare_first_ms = (time.perf_counter() - t) * 1e3

    n = 40 if quick else 300
    cell, cell_nodisplay, bare, full_cell = [], [], [], []
    timer = RendererTimer()
    for i in range(n):
        timer.spent = 0.0
        with timer:
            t = time.perf_counter()
            shell.run_cell_magic("aiml", "--no-stream", PROMPT)
            dt = time.perf_counter() - t
        cell.append(dt * 1e3)
        cell_nodisplay.append((dt - timer.spent) * 1e3)
        t = time.perf_counter()
        resp = session.post(url, json=payload, headers=headers, timeout=30)
        bare.append((time.perf_counter() - t) * 1e3)
        assert resp.status_code == 200
        if i % 4 == 0:  # the whole notebook cell, IPython's own machinery included
            t = time.perf_counter()
            shell.run_cell(f"%%aiml --no-stream\n{PROMPT}", store_history=False)
            full_cell.append((time.perf_counter() - t) * 1e3)
    for _ in range(3):  # streamed cells must reuse the same connection too
        shell.run_cell_magic("aiml", "", PROMPT)
    stats = control(port, "GET", "/bench/stats")
    recorder.messages.clear()
    return {
        "first_cell_ms": first_ms,
        "bare_first_post_ms": bare_first_ms,
        "cell_ms": spread(cell),
        "cell_minus_display_ms": spread(cell_nodisplay),
        "run_cell_ms": spread(full_cell),
        "bare_post_ms": spread(bare),
        "ratio": statistics.median(cell_nodisplay) / statistics.median(bare),
        "ratio_with_display": statistics.median(cell) / statistics.median(bare),
        "connections": stats["connections"],
        "requests": stats["requests"],
    }


def aiml_cell(shell: Any) -> None:
    """A %%aiml cell as a person runs it: the whole cell is the magic's, so it may clear it."""
    result = shell.run_cell(f"%%aiml\n{PROMPT}", store_history=False)
    result.raise_error()


# -- (3) streaming display -------------------------------------------------------------------------


def stream_run(shell: Any, recorder: Recorder, port: int, tokens: list[str]) -> dict[str, Any]:
    answer = "".join(tokens)
    recorder.messages.clear()
    t0 = time.monotonic()
    aiml_cell(shell)
    msgs = recorder.since(t0)
    timeline = control(port, "GET", "/bench/stats")["timeline"]
    first_sent, end = timeline["content"][0], timeline["end"]
    first = tokens[0].strip()
    shown = next(
        m.t for m in msgs if m.t >= first_sent and m.data and first in str(m.data.get("text/markdown"))
    )
    sent = [m for m in msgs if m.kind in ("display", "update")]
    during = [m for m in msgs if first_sent <= m.t <= end]
    window = 0
    times = [m.t for m in msgs]
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        window = max(window, i - j + 1)
    lags = _visible_lags(msgs, tokens, timeline["content"])
    left = replay(msgs)
    final = visible(left)
    final_md = final[0].get("text/markdown", "") if len(final) == 1 else ""
    return {
        "answer_bytes": len(answer.encode("utf-8")),
        "bytes": sum(m.nbytes for m in sent),
        "bytes_ratio": sum(m.nbytes for m in sent) / len(answer.encode("utf-8")),
        "messages": len(msgs),
        "stream_s": end - first_sent,
        "updates_per_s": len(during) / (end - first_sent),
        "max_updates_in_1s": window,
        "first_token_ms": (shown - first_sent) * 1e3,
        "lag_p50_ms": lags[len(lags) // 2] * 1e3,
        "lag_p95_ms": lags[int(len(lags) * 0.95)] * 1e3,
        "lag_max_ms": lags[-1] * 1e3,
        "final_ms": (msgs[-1].t - end) * 1e3,
        "final_outputs": len(final),
        "outputs_left": len(left),
        "final_complete": answer in final_md and _same_structure(final_md, answer),
    }


def _visible_lags(msgs: list[Any], tokens: list[str], sent: list[float]) -> list[float]:
    """For every token, how long after it was sent the text up to it was on screen (sorted).

    The live outputs are replayed message by message; what is visible is measured as the
    characters of answer text shown (status notes excluded), up to the final rendering.
    """
    ends, total = [], 0
    for token in tokens:
        total += len(token)
        ends.append(total)
    lags: list[float] = []
    outputs: dict[str | None, str] = {}
    order: list[str | None] = []
    i = 0
    for m in msgs:
        if m.kind.startswith("clear"):
            break  # the final rendering follows: everything is visible from here
        md = str((m.data or {}).get("text/markdown", ""))
        if md.startswith(("*⏳", "*💭", "*waiting")):
            md = ""
        if m.kind == "display":
            order.append(m.display_id)
        outputs[m.display_id] = md
        shown = sum(len(outputs[d]) for d in order)
        while i < len(tokens) and ends[i] <= shown:
            lags.append(max(0.0, m.t - sent[i]))
            i += 1
    last = msgs[-1].t
    lags += [max(0.0, last - s) for s in sent[i:]]
    return sorted(lags)


def _same_structure(final_md: str, answer: str) -> bool:
    return structure(final_md) == structure(answer)


def streaming(shell: Any, recorder: Recorder, port: int, quick: bool) -> dict[str, Any]:
    import naive

    import aiml_magics

    tokens = corpus.answer_tokens(300 if quick else 2000)
    control(port, "POST", "/bench/scenario", {"tokens": tokens, "rate": 100})
    runs = 1 if quick else 3
    ours, base = [], []
    magics = aiml_magics.instance()
    for _ in range(runs):
        ours.append(stream_run(shell, recorder, port, tokens))
        magics.make_renderer = naive.make_naive_renderer
        try:
            base.append(stream_run(shell, recorder, port, tokens))
        finally:
            magics.make_renderer = None
    return {"tokens": len(tokens), "rate": 100, "ours": _collect(ours), "naive": _collect(base)}


def _collect(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = spread(values) if isinstance(values[0], float) else values
    return out


# -- (4) long answer at full speed -----------------------------------------------------------------


def long_answer(shell: Any, recorder: Recorder, port: int, quick: bool) -> dict[str, Any]:
    import aiml_magics

    tokens = corpus.answer_chars(60_000)
    answer = "".join(tokens)
    control(port, "POST", "/bench/scenario", {"tokens": tokens, "rate": 0})
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    aiml_cell(shell)  # warm-up, and the payload to replay
    payload = aiml_magics.instance().last_request
    headers = {"Authorization": f"Bearer {KEY}"}  # json= sets the Content-Type
    import requests

    session = requests.Session()

    def baseline() -> str:
        parts = []
        with session.post(url, json=payload, headers=headers, stream=True, timeout=30) as resp:
            for line in resp.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                choices = chunk.get("choices")
                if choices and (choices[0].get("delta") or {}).get("content"):
                    parts.append(choices[0]["delta"]["content"])
        return "".join(parts)

    assert baseline() == answer
    runs = 3 if quick else 9
    ours, base = [], []
    recorder.keep_data = False
    for _ in range(runs):
        recorder.messages.clear()
        t = time.perf_counter()
        aiml_cell(shell)
        ours.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        baseline()
        base.append((time.perf_counter() - t) * 1e3)
    assert aiml_magics.instance().last_response.text == answer
    updates = len(recorder.messages)
    published = sum(m.nbytes for m in recorder.messages)

    def peak(fn: Any) -> int:
        recorder.messages.clear()
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    ours_peak = peak(lambda: aiml_cell(shell))
    base_peak = peak(baseline)
    recorder.keep_data = True
    return {
        "chars": len(answer),
        "events": len(tokens),
        "cell_ms": spread(ours),
        "baseline_ms": spread(base),
        "ratio": statistics.median(ours) / statistics.median(base),
        "display_messages": updates,
        "bytes_ratio": published / len(answer.encode("utf-8")),
        "peak_kb": ours_peak / 1024,
        "baseline_peak_kb": base_peak / 1024,
        "peak_per_answer_byte": ours_peak / len(answer.encode("utf-8")),
    }


def main() -> int:
    port = int(sys.argv[1])
    quick = "--quick" in sys.argv
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
    shell, recorder, load_ms = setup(port)
    results: dict[str, Any] = {"load_ext_in_process_ms": load_ms}
    for name, fn in (("overhead", overhead), ("streaming", streaming), ("long", long_answer)):
        if not only or name in only[0].split(","):
            results[name] = fn(shell, recorder, port, quick)
    print("RESULT " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
