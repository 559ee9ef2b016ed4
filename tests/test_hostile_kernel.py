"""Hostile-service probes in a real Jupyter kernel (ipykernel over ZMQ, run by nbclient).

One kernel runs them all: its peak RSS (VmHWM) before and after two gzip bombs that inflate to
1 GiB each, a stream held open after ``[DONE]``, one held with ``: keep-alive`` comments after a
finish and the usage, an error frame; after each, no connection is checked out; the last cell
works. The same points are probed one by one in-process in ``test_hostile.py``.
"""

from __future__ import annotations

import json
import re

from tests.conftest import TEST_KEY
from tests.hostile import (
    END,
    HostileServer,
    answer,
    answer_events,
    chunk,
    delta,
    event,
    gzip_bomb,
    gzipped,
    head,
    send,
    stream,
    whole,
)
from tests.kernels import run_cells

BOMB = 1 << 30  # inflated size of each bomb (about 4.7 MB on the wire)

HELPERS = '''
import time, aiml_magics
def peak_mib():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
def in_use():
    client = aiml_magics.instance()._client
    if client is None or client._session is None:
        return 0
    total = 0
    for adapter in client._session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            total += pools[key].pool.maxsize - pools[key].pool.qsize()
    return total
def report(name, **extra):
    print("REPORT", name, json.dumps(dict(peak=peak_mib(), in_use=in_use(), **extra)))
import json
%config AIMLMagics.timeout = 30.0
'''


def test_hostile_service_in_a_real_kernel(monkeypatch, tmp_path):
    zeros = gzip_bomb(BOMB, b"0", level=1)
    with HostileServer() as server:
        server.queue(
            whole(gzipped(b'{"choices": "') + zeros, headers=[("Content-Encoding", "gzip")]),
            send(head(headers=[("Content-Encoding", "gzip")]),
                 chunk(gzipped(event(delta("kept ")) + b'data: {"x": "') + zeros), END),
            stream(answer_events("done, then held", done=True), end=False, then="hold"),
            stream(answer_events("finished, then keep-alives", done=False), end=False,
                   then="keepalive"),
            stream([event(delta("half ")), event({"error": {"message": "upstream exploded"}},
                                                name="error"), event(b"[DONE]")]),
            answer("still here"),
        )
        monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
        monkeypatch.setenv("AIML_API_BASE", server.base_url)
        cells = [
            "%load_ext aiml_magics",
            HELPERS,
            "report('before')",
            "%%aiml --no-stream\ngzip bomb body",
            "report('after body bomb')",
            "%%aiml\ngzip bomb stream",
            "report('after stream bomb', text=aiml_response.text)",
            "started = time.monotonic()",
            "%%aiml\nheld after DONE",
            "report('held', seconds=time.monotonic() - started, complete=aiml_response.complete,"
            " text=aiml_response.text)\nstarted = time.monotonic()",
            "%%aiml\nkeep-alives after finish and usage",
            "report('keepalive', seconds=time.monotonic() - started, complete=aiml_response.complete,"
            " text=aiml_response.text, credits=aiml_response.credits_used)",
            "%%aiml\nerror frame",
            "report('error frame', complete=aiml_response.complete, text=aiml_response.text)",
            "%%aiml\nnext",
            "report('next', text=aiml_response.text)",
        ]
        nb = run_cells(cells, tmp_path)
        closed = server.wait_closed(2)
    reports = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                match = re.match(r"REPORT (.+?) (\{.*\})$", line)
                if match:
                    reports[match.group(1)] = json.loads(match.group(2))
    errors = {i: o for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.output_type == "error"}
    print("kernel peak RSS (MiB):", {k: round(v["peak"], 1) for k, v in reports.items()})
    print("held stream cells (s):", round(reports["held"]["seconds"], 2),
          round(reports["keepalive"]["seconds"], 2))
    assert set(errors) == {3, 5, 12}, errors  # the two bombs and the error frame fail their cells
    typed = {3: "LimitError", 5: "IncompleteAnswer", 12: "IncompleteAnswer"}  # AIMLError subclasses
    for i, words in ((3, "larger than 32 MiB"), (5, "longer than 1 MiB"), (12, "upstream exploded")):
        assert errors[i].ename == typed[i] and len(errors[i].traceback) == 1, errors[i]
        assert "AIMLError" in errors[i].traceback[0]
        assert words in errors[i].traceback[0], errors[i].traceback
    grown = reports["after stream bomb"]["peak"] - reports["before"]["peak"]
    assert grown < 256, reports  # each bomb inflates to 1,024 MiB; what we read is capped
    assert reports["after stream bomb"]["text"] == "kept "
    assert reports["held"]["complete"] and reports["held"]["text"] == "done, then held"
    assert reports["keepalive"]["complete"] and reports["keepalive"]["credits"] == 10
    assert reports["held"]["seconds"] < 10 and reports["keepalive"]["seconds"] < 10  # timeout 30 s
    assert not reports["error frame"]["complete"] and reports["error frame"]["text"] == "half "
    assert reports["next"]["text"] == "still here"
    assert all(r["in_use"] == 0 for r in reports.values()), reports
    assert closed  # the held connections were closed by the kernel, not left open
