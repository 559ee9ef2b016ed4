"""Ctrl-C (the kernel's interrupt: a real SIGINT) in the middle of a ``map()`` in a real kernel.

The batch comes back marked interrupted, with what finished; no item whose request reached the
service is reported "not sent"; the kernel goes on working.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from tests.fakeapi import Reply
from tests.test_context_kernel import kernel  # noqa: F401 - the fixture: a kernel, extension loaded


def test_interrupting_the_kernel_during_map_keeps_what_finished_and_hides_nothing_sent(kernel, api):  # noqa: F811
    arrivals: list[int] = []
    lock = threading.Lock()
    pid = int(kernel.text(kernel.cell("import os\nprint(os.getpid())")).strip())

    def reply(rec):
        with lock:
            arrivals.append(int(rec.json["messages"][-1]["content"][1:]))
            mine = len(arrivals)
        if mine == 6:
            os.kill(pid, signal.SIGINT)  # what the stop button sends (interrupt_mode "signal")
        time.sleep(0.3)
        return Reply(echo=True)

    api.default = reply
    cell = kernel.cell(
        "import json, aiml_magics\n"
        "b = aiml_magics.map([f'p{i}' for i in range(60)], concurrency=4, progress=False)\n"
        "print('KINDS', json.dumps([getattr(r, 'kind', 'answered') for r in b]), b.stopped)")
    text = kernel.text(cell)
    assert "KINDS" in text, text
    line = next(x for x in text.splitlines() if x.startswith("KINDS"))
    kinds_json, stopped = line[len("KINDS "):].rsplit(" ", 1)
    kinds = json.loads(kinds_json)
    assert stopped == "interrupted" and len(kinds) == 60
    time.sleep(0.5)  # a request still on its way has arrived
    with lock:
        seen = sorted(set(arrivals))
    assert 6 <= len(seen) < 60
    for i in seen:
        assert not kinds[i].startswith("not sent"), (i, kinds[i], seen)
    assert "answered" in kinds
    assert all(kinds[i] == "not sent: interrupted" for i in range(60) if i not in seen)
    api.default = Reply(echo=True)
    after = kernel.text(kernel.cell("%%aiml\nStill here?"))
    assert "echo" in after.lower() or "Still here?" in after
