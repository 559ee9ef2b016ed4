"""``%aiml explain``, ``%aiml fix`` and ``%%aiml --context`` in a real kernel (ipykernel over ZMQ).

Cells run through nbclient in the order a test gives (so a cell can be re-run out of the file's
order, as a person does); every request is read back from the loopback server's log.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import TEST_KEY
from tests.fakeapi import Reply

pytestmark = pytest.mark.kernel


class Kernel:
    """A notebook whose cells run one by one, in any order, in one live kernel."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client
        self.replies: dict[int, dict[str, Any]] = {}
        client.on_cell_executed = self._executed

    def _executed(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        self.replies[cell_index] = execute_reply

    def add(self, source: str) -> int:
        nb = self.client.nb
        nb.cells.append(nbformat.v4.new_code_cell(source))
        return len(nb.cells) - 1

    def run(self, index: int) -> Any:
        return self.client.execute_cell(self.client.nb.cells[index], index)

    def cell(self, source: str) -> Any:
        """Add a cell at the end and run it; its outputs."""
        index = self.add(source)
        self.run(index)
        return self.client.nb.cells[index].outputs

    def text(self, outputs: Any) -> str:
        parts = []
        for out in outputs:
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
            parts.extend(out.get("traceback", []))
        return "\n".join(parts)


@pytest.fixture
def kernel(monkeypatch, api, tmp_path):
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        k = Kernel(client)
        k.cell("%load_ext aiml_magics")
        yield k


def _sent(api) -> list[str]:
    """The last user message of every chat request the server received."""
    return [r.json["messages"][-1]["content"] for r in api.chat_requests]


def _no_key_piece(text: str) -> None:
    low = text.lower()
    for i in range(len(TEST_KEY) - 7):
        assert TEST_KEY[i : i + 8].lower() not in low, TEST_KEY[i : i + 8]


def test_explain_sends_the_defining_cell_the_failing_cell_and_no_key(kernel, api):
    quiet = kernel.cell("%aiml explain")
    assert "no error to explain" in kernel.text(quiet).lower()
    assert len(kernel.text(quiet).strip().splitlines()) == 1 and api.chat_requests == []
    kernel.cell("import os\nkey = os.environ['AIML_API_KEY']\nprint('my key is', key)")
    kernel.cell("def ratio(a, b):\n    return a / b  # the cause")
    kernel.cell("x = 1\nx")
    failed = kernel.cell("total = ratio(x, 0)")
    assert failed[-1].output_type == "error"

    dry = kernel.text(kernel.cell("%aiml explain --dry-run"))
    assert "nothing was sent" in dry.lower() and "return a / b  # the cause" in dry
    assert api.chat_requests == []

    api.queue(Reply(content="You divided by zero in `ratio`."))
    answer = kernel.text(kernel.cell("%aiml explain"))
    assert "You divided by zero" in answer
    (sent,) = _sent(api)
    assert "ZeroDivisionError: division by zero" in sent
    assert "def ratio(a, b):\n    return a / b  # the cause" in sent  # two cells before the error
    assert "(defines ratio, in the traceback)" in sent
    assert "total = ratio(x, 0)" in sent and "(the cell that failed)" in sent
    assert "print('my key is', key)" in sent and "Printed by" in sent
    _no_key_piece(json.dumps(api.chat_requests[0].json))
    assert sent.index("(defines ratio") < sent.index("x = 1\nx") < sent.index("(the cell that failed)")
    # The conversation remembers the question, not the context.
    kernel.cell("print(aiml_history[-1].prompt)")
    api.queue(Reply(content="ok"))
    kernel.cell("%%aiml\nand in one line?")
    messages = api.chat_requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "def ratio" not in messages[0]["content"]
    assert messages[0]["content"].startswith("Explain the last error (ZeroDivisionError")


def test_library_frames_are_file_and_line_only(kernel, api):
    kernel.cell("import json")
    kernel.cell("def load(text):\n    return json.loads(text)")
    kernel.cell("load('{not json')")
    api.queue(Reply(content="Bad JSON."))
    kernel.cell("%aiml explain")
    (sent,) = _sent(api)
    assert "JSONDecodeError" in sent and "(defines load, in the traceback)" in sent
    frames = [line for line in sent.splitlines() if "json/decoder.py:" in line]
    assert frames and all("source not sent" in line for line in frames)
    assert "scan_once" not in sent and "def raw_decode" not in sent  # no library source
    assert "site-packages" not in sent and "/usr/" not in sent
    # The same from Python code in the kernel: aiml_magics.fix() puts the code in a new cell.
    api.queue(Reply(content="```python\nload('{}')\n```"))
    index = kernel.add("import aiml_magics\naiml_magics.fix()")
    kernel.run(index)
    payload = kernel.replies[index]["content"]["payload"]
    assert [p["text"] for p in payload if p.get("source") == "set_next_input"] == ["load('{}')"]
    assert "JSONDecodeError" in _sent(api)[-1]


def test_fix_puts_the_code_in_a_new_cell_and_runs_nothing(kernel, api):
    kernel.cell("import math")
    kernel.cell("math.sqroot(2)")
    code = "print('FIX-RAN')\nmath.sqrt(2)"
    api.queue(Reply(content=f"Use `sqrt`:\n\n```python\n{code}\n```\n\nThat is all."))
    index = kernel.add("%aiml fix")
    kernel.run(index)
    shown = kernel.text(kernel.client.nb.cells[index].outputs)
    assert "Use `sqrt`" in shown
    payload = kernel.replies[index]["content"]["payload"]
    assert {"source": "set_next_input", "text": code, "replace": False} in payload
    (sent,) = _sent(api)
    assert "math.sqroot(2)" in sent and "AttributeError" in sent and "```python" in sent
    everything = "".join(kernel.text(c.outputs) for c in kernel.client.nb.cells)
    assert "FIX-RAN" not in everything.replace("print('FIX-RAN')", "")
    history = kernel.text(kernel.cell("print(repr(In[-2]))"))
    assert "FIX-RAN" not in history


def test_context_follows_execution_order_not_the_file(kernel, api):
    first = kernel.add("a = 1")
    second = kernel.add("b = a + 1\nprint('b is', b)")
    kernel.run(first)
    kernel.run(second)
    kernel.client.nb.cells[first].source = "a = 100  # changed and re-run"
    kernel.run(first)
    api.queue(Reply(content="b is 2 but a is 100."))
    kernel.cell("%%aiml --context\nWhy is b not 101?")
    (sent,) = _sent(api)
    assert sent.index("a = 1\n") < sent.index("b = a + 1") < sent.index("a = 100  # changed")
    assert "in the order they ran" in sent and "b is 2" in sent  # the printed text came along
    assert sent.endswith("Why is b not 101?")
    api.queue(Reply(content="ok"))
    kernel.cell("%%aiml --context 1\nJust the last one?")
    last = _sent(api)[-1]
    assert "a = 100" in last and "b = a + 1" not in last


def test_a_very_long_notebook_stays_within_the_budget(kernel, api):
    kernel.cell("%config AIMLMagics.context_budget = 5000")
    for n in range(40):
        kernel.cell(f"v{n} = {n}\n" + "# a long comment line in the cell\n" * 30 + "print('x' * 5000)")
    kernel.cell("%%aiml --context 30 --dry-run\nsummarise")
    api.queue(Reply(content="ok"))
    kernel.cell("%%aiml --context 30\nsummarise")
    (sent,) = _sent(api)
    context = sent[: sent.rindex("\n\n---\n\n")]
    assert len(context) <= 5000
    assert "v39 = 39" in context and "Left out to stay within 5,000 characters" in context
