"""The notebook-as-context core on plain data: order, budget, masking, frames (no shell)."""

from __future__ import annotations

import json
import os

import pytest

from aiml_magics.context import (
    Cell,
    Failure,
    Frame,
    build,
    cell_of,
    failure_of,
    fence,
    first_python_block,
    short_path,
)
from aiml_magics.errors import register_secret
from tests.conftest import TEST_KEY
from tests.test_security import assert_clean


def _raise_in_cells(names: dict[str, int]) -> BaseException:
    """Run two 'cells' compiled under cell file names, the second calling the first's function."""
    ns: dict = {}
    exec(compile("def ratio(x):\n    return 1 / x\n", "<ipython-input-3-0123456789ab>", "exec"), ns)
    try:
        exec(compile("y = 2\nratio(0)\n", "/tmp/ipykernel_42/12345.py", "exec"), ns)
    except ZeroDivisionError as exc:
        return exc
    raise AssertionError("no error")


def test_cell_names_of_both_ipython_generations():
    assert cell_of("<ipython-input-12-0123456789ab>", {}) == 12
    assert cell_of("/tmp/ipykernel_7/3141.py", {"/tmp/ipykernel_7/3141.py": 4}) == 4
    assert cell_of("/usr/lib/python3.11/json/decoder.py", {}) is None


def test_failure_maps_frames_to_cells_and_finds_the_defining_cell():
    exc = _raise_in_cells({})
    failure = failure_of(exc, {"/tmp/ipykernel_42/12345.py": 5})
    assert failure.kind == "ZeroDivisionError" and failure.message == "division by zero"
    assert [f.cell for f in failure.frames] == [5, 3]  # the test's own frame is dropped
    assert failure.cell == 5 and failure.defining_cells == [3]


def test_cells_in_execution_order_with_the_failing_and_defining_cells():
    cells = [Cell(5, "ratio(0)"), Cell(1, "import math"), Cell(4, "z = 3", result="3"),
             Cell(3, "def ratio(x):\n    return 1 / x"), Cell(6, "print('after')")]
    failure = failure_of(_raise_in_cells({}), {"/tmp/ipykernel_42/12345.py": 5})
    ctx = build(cells, failure=failure)
    text = ctx.text
    assert ctx.cells == [1, 3, 4, 5]  # In[6] ran after the error: not context for it
    assert text.index("In[1]:") < text.index("In[3] (defines ratio") < text.index("In[4]:") \
        < text.index("In[5] (the cell that failed)")
    assert "listed in the order they ran" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "In[3], line 2, in ratio\n    return 1 / x" in text  # the line, from the cell's source
    assert "Out[4]:\n```\n3\n```" in text


def test_oldest_go_first_and_the_budget_holds():
    cells = [Cell(n, f"x{n} = {n}\n" + "# filler\n" * 40, printed="p" * 3000) for n in range(1, 300)]
    ctx = build(cells, last=50, budget=6000)
    assert len(ctx.text) <= 6000
    assert ctx.cells == list(range(300 - len(ctx.cells), 300))  # the newest, contiguous
    assert ctx.left_out and max(ctx.left_out) < min(ctx.cells)
    assert "Left out to stay within 6,000 characters" in ctx.text
    assert "what In[299] printed" in ctx.text  # printed text clipped, and said so


def test_failing_and_defining_cells_are_never_dropped_only_clipped():
    long_def = "def ratio(x):\n" + "    # a long comment line\n" * 2000 + "    return 1 / x\n"
    cells = [Cell(3, long_def), *(Cell(n, "a = 1\n" * 300) for n in range(4, 40)),
             Cell(40, "ratio(0)\n" + "b = 2\n" * 3000)]
    failure = Failure("ZeroDivisionError", "division by zero",
                      (Frame("x", 1, "<module>", None, 40), Frame("y", 2, "ratio", None, 3)), 40)
    ctx = build(cells, failure=failure, budget=5000)
    assert len(ctx.text) <= 5000
    assert 3 in ctx.cells and 40 in ctx.cells
    assert "the source of In[3]" in ctx.text and "return 1 / x" in ctx.text  # the tail is kept


def test_a_key_printed_by_a_cell_is_sent_masked():
    register_secret(TEST_KEY)
    cells = [Cell(1, "import os\nk = os.environ['AIML_API_KEY']"),
             Cell(2, "print(k)", printed=f"the key is {TEST_KEY}\n"),
             Cell(3, "k[10:30]", result=repr(TEST_KEY[10:30])),
             Cell(4, f"print('{TEST_KEY.upper()}')")]
    text = build(cells).text
    assert_clean(text, "context")  # the key's words alone ("-aiml-TESTKE") are not a leak (issue 21)
    assert "****" in text


def test_library_frames_are_file_and_line_only():
    try:
        exec(compile("import json\njson.loads('{nope')\n", "<ipython-input-7-aaaaaaaaaaaa>", "exec"), {})
    except json.JSONDecodeError as exc:
        failure = failure_of(exc, {})
    ctx = build([Cell(7, "import json\njson.loads('{nope')")], failure=failure)
    lib = [line for line in ctx.text.splitlines() if "decoder.py:" in line]
    assert lib and all("source not sent" in line for line in lib)
    assert os.path.dirname(os.__file__) not in ctx.text  # no machine paths
    assert "raise JSONDecodeError" not in ctx.text and "def raw_decode" not in ctx.text


def test_short_paths():
    sep = os.sep
    assert short_path(f"{sep}x{sep}lib{sep}site-packages{sep}pandas{sep}core.py") == f"pandas{sep}core.py"
    assert short_path(os.path.join(os.path.dirname(os.__file__), "json", "decoder.py")).endswith(
        "json/decoder.py")


def test_syntax_error_names_its_cell():
    try:
        compile("x = (1,\n", "<ipython-input-9-bbbbbbbbbbbb>", "exec")
    except SyntaxError as exc:
        failure = failure_of(exc, {})
    assert failure.cell == 9 and failure.kind == "SyntaxError"


def test_deep_traceback_keeps_its_ends():
    frames = tuple(Frame("<ipython-input-2-cccccccccccc>", 2, "f", "return f(n - 1)", 2)
                   for _ in range(500))
    failure = Failure("RecursionError", "maximum recursion depth exceeded", frames, 2)
    ctx = build([Cell(2, "def f(n):\n    return f(n - 1)\nf(1)")], failure=failure)
    assert "470 frames left out" in ctx.text and ctx.text.count("in f\n") == 30


def test_fences_and_first_python_block():
    assert fence("a\n```\nb", "python").startswith("````python\n")
    answer = "Here:\n\n```text\nnot this\n```\n\n```python\ndef f():\n    return 1\n```\nDone."
    assert first_python_block(answer) == "def f():\n    return 1"
    assert first_python_block("```\nx = 1\n```") == "x = 1"
    assert first_python_block("no code") is None


@pytest.mark.parametrize("budget", [800, 2000, 12_000])
def test_chained_errors_and_small_budgets(budget):
    try:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("bad column " + "x" * 5000) from exc
    except ValueError as exc:
        failure = failure_of(exc, {})
    ctx = build([Cell(n, "pass\n" * 100) for n in range(1, 20)], failure=failure, budget=budget)
    assert len(ctx.text) <= budget
    assert "It happened while handling: KeyError: 'missing'" in ctx.text or budget < 2000


def test_recorder_in_a_real_shell_keeps_printed_text_and_the_error(bare_shell):
    from aiml_magics.context import build
    from aiml_magics.executions import Recorder, cells, last_failure
    from tests.conftest import run_cell

    shell = bare_shell
    recorder = Recorder(shell)
    recorder.start()
    try:
        first = shell.execution_count
        run_cell(shell, "def ratio(x):\n    return 1 / x")
        shown = run_cell(shell, "print('hello ' * 3000)\n41 + 1")
        run_cell(shell, "%aiml help")
        failed = run_cell(shell, "ratio(0)")
    finally:
        recorder.stop()
    assert "hello hello" in shown.stdout and len(shown.stdout) > 17_000  # passed through whole
    assert failed.error is not None
    failure = last_failure(shell, recorder)
    assert failure is not None and failure.cell == first + 3
    assert failure.defining_cells == [first]
    got = cells(shell, recorder, last=10, before=failure.cell, required=[failure.cell])
    numbers = [c.number for c in got]
    assert numbers[-3:] == [first, first + 1, first + 3]  # the %aiml cell is not context
    printed = got[-2].printed
    assert printed is not None and "characters left out" in printed and len(printed) < 6000
    assert got[-2].result == "42"
    text = build(got, failure=failure).text
    assert f"In[{first}] (defines ratio, in the traceback)" in text
    assert f"In[{first}], line 2, in ratio\n    return 1 / x" in text
