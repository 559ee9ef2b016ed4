"""Variables in prompts: ``{name}`` from the notebook, brace-safe, never running code.

The expansion rules are checked on the function (prompt.py), then through ``%%aiml`` cells in a
real IPython shell against the loopback fake: what the service received is the proof.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiml_magics
from aiml_magics.prompt import Limits, expand
from tests.conftest import run_cell

NS = {"x": 7, "name": "Ada", "d": {"k": [10, 20], "s": "v"}, "items": [1, 2, 3]}

AS_TYPED = [
    '{"a": 1, "b": [1, 2]}',  # JSON
    "def f(x):\n    return {k: v for k, v in x.items()}",  # code
    'print(f"{x!r} and {x:>10}")',  # f-string conversions and format specs
    "{x:>10}",
    "{{ x }} and {% if x %}yes{% endif %}",  # Jinja
    r"\frac{x}{2} + e^{x} + a_{x}",  # LaTeX
    "{unknown} and {unknown.attr}",
    "{x + 1} {x()} {d.keys()} {d[k]}",  # expressions, calls, unquoted keys
    "{}",
    "{ x }",
    "```python\nprint({x})\n```",  # fenced code
]


@pytest.mark.parametrize("text", AS_TYPED)
def test_everything_but_a_reference_stays_as_typed(text):
    assert expand(text, NS).text == text


def test_references_expand_and_double_braces_escape():
    out = expand('Hi {name}, x={x}, k1={d["k"][1]}, s={d[\'s\']}, last={items[-1]} {{name}}', NS)
    assert out.text == "Hi Ada, x=7, k1=20, s=v, last=3 {name}"
    assert out.names == ["name", "x", 'd["k"][1]', "d['s']", "items[-1]"]


def test_json_prompt_with_a_variable_inside_keeps_its_braces():
    text = 'Return {"user": "{name}", "scores": [{x}, 2]} exactly.'
    assert expand(text, NS).text == 'Return {"user": "Ada", "scores": [7, 2]} exactly.'


class Loaded:
    def __init__(self) -> None:
        self.value = "plain"
        self._private = "hidden"

    @property
    def danger(self) -> str:
        raise AssertionError("a property ran")

    def method(self) -> str:
        raise AssertionError("a method ran")

    def __getattr__(self, name: str) -> str:
        raise AssertionError("__getattr__ ran")


class Indexable:
    def __getitem__(self, key: object) -> str:
        raise AssertionError("__getitem__ ran")


@pytest.mark.parametrize("text", [
    "{o.__class__}", "{o.__dict__}", "{o._private}", "{o.danger}", "{o.method}", "{o.missing}",
    "{i[0]}", "{i['a']}", "{__builtins__}", "{o.value.__class__.__mro__}",
])
def test_no_code_runs_and_dunders_stay_as_typed(text):
    ns = {"o": Loaded(), "i": Indexable(), "__builtins__": __builtins__}
    assert expand(text, ns).text == text


def test_plain_attribute_is_read_without_running_code():
    assert expand("{o.value}", {"o": Loaded()}).text == "plain"


def test_dataframe_is_a_compact_truncated_table():
    df = pd.DataFrame({f"c{i}": range(100) for i in range(30)})
    df["c0"] = ["x" * 500] + list(range(1, 100))  # a long cell
    out = expand("{df}", {"df": df}, Limits(max_rows=5, max_columns=4, max_cell_chars=20)).text
    lines = out.splitlines()
    assert lines[0] == "|  | c0 | c1 | c2 | c3 |"
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 5  # header + 5 rows
    assert "x" * 20 not in out and "x" * 19 + "…" in out
    assert "5 of 100 rows and 4 of 30 columns shown" in out


def test_series_and_long_values_are_clipped_with_a_note():
    s = pd.Series([1.5, 2.5], index=["a", "b"], name="v")
    assert expand("{s}", {"s": s}).text.splitlines()[2] == "| a | 1.5 |"
    out = expand("{t}", {"t": "y" * 5000}, Limits(max_chars=100)).text
    assert out.startswith("y" * 100 + "…") and "100 of 5,000 characters" in out


# -- through %%aiml cells ---------------------------------------------------------------------------


def test_cell_expands_from_the_namespace_and_request_shows_it(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "city", "Paris")
    monkeypatch.setitem(shell.user_ns, "cfg", {"n": 3})
    run = run_cell(shell, '%%aiml\nTell me about {city} in {cfg["n"]} words. JSON: {"a": {1}}')
    assert run.error is None
    sent = api.last_json["messages"][-1]["content"]
    assert sent == 'Tell me about Paris in 3 words. JSON: {"a": {1}}'
    assert shell.user_ns["aiml_response"].request["messages"][-1]["content"] == sent


def test_no_expand_flag_and_setting_send_as_typed(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "city", "Paris")
    assert run_cell(shell, "%%aiml --no-expand\nabout {city}").error is None
    assert api.last_json["messages"][-1]["content"] == "about {city}"
    shell.run_line_magic("config", "AIMLMagics.expand_variables = False")
    assert run_cell(shell, "%%aiml\nagain {city}").error is None
    assert api.last_json["messages"][-1]["content"] == "again {city}"


def test_dry_run_names_what_was_expanded(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "df", pd.DataFrame({"a": [1, 2]}))
    run = run_cell(shell, "%%aiml --dry-run\nSummarise {df} and {nothing}")
    assert run.error is None and not api.chat_requests
    assert "Expanded from the notebook: {df}." in run.shown
    assert "| 0 | 1 |" in json.dumps(aiml_magics.instance().last_request)
    assert "{nothing}" in run.shown


@given(st.text())
def test_text_without_a_known_reference_is_never_changed(text):
    assert expand(text, {}).text == text
    if "{x" not in text:
        assert expand(text, {"x": 1}).text == text


def test_limits_are_settings_and_are_checked(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "df", pd.DataFrame({"a": range(50)}))
    shell.run_line_magic("config", "AIMLMagics.expand_max_rows = 3")
    assert run_cell(shell, "%%aiml\n{df}").error is None
    assert "3 of 50 rows" in api.last_json["messages"][-1]["content"]
    from traitlets import TraitError

    with pytest.raises(TraitError, match="expand_max_rows = 0 is out of range"):
        aiml_magics.instance().expand_max_rows = 0
    assert aiml_magics.instance().expand_max_rows == 3
