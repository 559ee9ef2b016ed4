"""`{name}` mistakes pointed out (issue 26's words on issue 21's rules): what went out as typed and
why, in one line outside the answer; what was cut, beside the answer and in its footer; a map()
template field that names no column refused before anything is sent."""

from __future__ import annotations

import pandas as pd
import pytest

import aiml_magics
from aiml_magics import ParameterError
from tests.conftest import run_cell
from tests.fakeapi import Reply


@pytest.fixture
def reviews():
    return pd.DataFrame({"product": ["kettle"] * 200, "stars": [5] * 200, "review": ["ok"] * 200,
                         "id": range(200)})


def test_map_refuses_a_field_that_names_no_column_before_sending(session, api, reviews):
    with pytest.raises(ParameterError) as caught:
        aiml_magics.map("{prodcut}: {review}", reviews, session=session, progress=False)
    text = str(caught.value)
    assert "{prodcut}" in text and "product, stars, review, id" in text and "Nothing was sent" in text
    with pytest.raises(ParameterError, match=r"\{nme\}.*row 1 \(there are: name\)"):
        aiml_magics.map("{name} {nme}", [{"name": "a", "nme": "b"}, {"name": "c"}], session=session,
                        progress=False)
    assert api.requests == []


def test_a_cell_says_which_names_went_out_as_typed_and_why(shell, api, reviews):
    shell.user_ns["reviews"] = reviews
    api.queue(Reply(content="ok"), Reply(content="ok"), Reply(content="ok"))
    run = run_cell(shell, "%%aiml\nSummarise {revews} and {reviews.stars}, not {json: true}.")
    assert run.error is None, run.shown
    line = run.stdout.strip().splitlines()[-1]
    assert line.startswith("Sent as typed: {revews} (no such variable)")
    assert "{reviews.stars} (write {reviews['stars']}: a column is read by key" in line
    assert "json" not in line  # not a reference: nothing to say
    assert "{revews}" in api.last_json["messages"][-1]["content"]
    assert line not in run.final_markdown()  # outside the answer
    run = run_cell(shell, "%%aiml --no-expand\nAbout {reviews}?")
    assert "Sent as typed (expansion is off for this cell): {reviews}." in run.stdout
    run = run_cell(shell, "%%aiml\nPlain question.")
    assert "Sent as typed" not in run.stdout


def test_a_cut_value_is_said_in_the_live_view_and_the_footer(shell, api, reviews):
    shell.user_ns["reviews"] = reviews
    api.queue(Reply(content="ok"))
    run = run_cell(shell, "%%aiml\nWhat stands out in {reviews}?")
    assert run.error is None, run.shown
    note = "{reviews}: 20 of 200 rows, 4 of 4 columns sent"
    live = run.outputs[0].data["text/markdown"]  # while waiting for the answer
    assert live.startswith("*⏳ Waiting for baidu/ernie-5.0") and note in live
    assert f"⚠ {note}</sub>" in run.final_markdown()
    assert note in shell.user_ns["aiml_response"].warnings
