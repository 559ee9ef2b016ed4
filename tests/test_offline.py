"""First run, offline and with the defaults: the default model, AIML_MODEL, and offline answers that
teach (a comparison's columns say what differs, a batch's cells are short, a schema validates).

Offline is replay with nothing recorded for the request: nothing may reach the loopback service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import aiml_magics
from aiml_magics import ParameterError, Session
from aiml_magics.offline import column_echo, placeholder, row_echoes
from aiml_magics.params import DEFAULT_MODEL
from aiml_magics.sources import ReplaySource
from tests.conftest import KEY_VARS, ROOT, TEST_KEY, run_cell
from tests.fakeapi import Reply

VERDICT = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "mixed", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "why": {"type": "string", "maxLength": 12},
    },
    "required": ["sentiment", "score", "why"],
    "additionalProperties": False,
}


@pytest.fixture
def offline(api, monkeypatch):
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    s = Session(base_url=api.base_url, source=ReplaySource(None))
    yield s
    assert api.requests == []  # offline: nothing reached the service
    s.close()


# -- the default model -----------------------------------------------------------------------------


def test_the_default_model_is_current_and_the_old_id_is_still_accepted(session, api):
    assert DEFAULT_MODEL == "baidu/ernie-5.0"
    api.queue(Reply(content="ok"), Reply(content="ok"))
    session.chat("hi")
    assert api.last_json["model"] == "baidu/ernie-5.0"
    session.chat("hi", model="baidu/ernie-5-0-thinking-preview")
    assert api.last_json["model"] == "baidu/ernie-5-0-thinking-preview"


def test_the_seed_question_replays_the_docs_answer_with_the_default_model(bare_shell, api):
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%%aiml\nHi! What do you think about mankind?")
    assert run.error is None, run.shown
    md = run.final_markdown()
    assert "As an AI, I don’t have feelings" in md and md.rstrip().endswith("replayed</sub>")
    assert "ernie-5.0-thinking-preview" in md  # the footer names the model that wrote it
    reply = bare_shell.user_ns["aiml_response"]
    assert reply.requested_model == "baidu/ernie-5.0" and "baidu/ernie-5.0" in reply.provenance
    assert api.requests == []


@pytest.mark.parametrize("typed", ["5", "0.7", "1e3", " 42 "])
def test_a_number_is_not_a_model_id(session, api, typed):
    with pytest.raises(ParameterError, match="is a number, not a model id"):
        session.chat("hi", model=typed)
    with pytest.raises(ParameterError, match="is a number, not a model id"):
        Session(api_key=TEST_KEY, model=typed)
    assert api.requests == []


def test_aiml_model_sets_the_default_for_scripts_and_notebooks(api, monkeypatch, bare_shell):
    script = textwrap.dedent(
        """
        from aiml_magics import Session
        s = Session()
        print("MODEL", s.settings.model)
        print("TEXT", s.chat("hi").text)
        print("OVERRIDE", Session(model="gpt-4o").settings.model)
        """
    )
    api.queue(Reply(echo=True))
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(AIML_API_KEY=TEST_KEY, AIML_API_BASE=api.base_url, PYTHONPATH=str(ROOT),
               AIML_MODEL="deepseek/deepseek-chat")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MODEL deepseek/deepseek-chat" in out.stdout and "OVERRIDE gpt-4o" in out.stdout
    assert api.last_json["model"] == "deepseek/deepseek-chat"
    # In a notebook: the environment's model, unless %config or a flag says otherwise.
    monkeypatch.setenv("AIML_MODEL", "gpt-4o-mini")
    aiml_magics.unload_ipython_extension(bare_shell)
    bare_shell.extension_manager.loaded.discard("aiml_magics")
    bare_shell.run_line_magic("load_ext", "aiml_magics")
    run_cell(bare_shell, "%aiml replay")
    assert run_cell(bare_shell, "%%aiml\nhi").error is None
    assert bare_shell.user_ns["aiml_response"].requested_model == "gpt-4o-mini"
    assert run_cell(bare_shell, "%%aiml -m gpt-4o\nhi").error is None
    assert bare_shell.user_ns["aiml_response"].requested_model == "gpt-4o"


def test_a_bad_aiml_model_is_refused_in_one_paragraph_naming_the_variable(monkeypatch, offline):
    monkeypatch.setenv("AIML_MODEL", "0.7")
    with pytest.raises(ParameterError) as caught:
        Session(source=ReplaySource(None)).chat("hi")
    text = str(caught.value)
    assert "AIML_MODEL" in text and "'0.7' is a number" in text and "\n" not in text


# -- offline answers that teach --------------------------------------------------------------------


def test_compare_offline_columns_show_what_differs_between_the_models(bare_shell, api):
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%%aiml --compare gpt-4o-mini anthropic/claude-sonnet-4.5 -t 0.2\nHi")
    assert run.error is None, run.shown
    comparison = bare_shell.user_ns["aiml_response"]
    gpt, claude = comparison["gpt-4o-mini"].text, comparison["anthropic/claude-sonnet-4.5"].text
    assert gpt != claude
    assert "OpenAI" in gpt and "accepts 0 to 2" in gpt
    assert "Anthropic" in claude and "accepts 0 to 1 (most models: 0 to 2)" in claude
    assert "`temperature` = `0.2`" in gpt and "no model was asked" in gpt
    md = run.final_markdown()
    assert md.count("no model was asked") == 2 and md.count("offline echo") == 2
    assert "Your prompt" not in md  # not the whole cell echo three times
    assert api.requests == []


def test_map_offline_gives_short_plain_cells_that_show_what_each_row_sent(offline):
    pd = pytest.importorskip("pandas")
    rows = pd.DataFrame({"product": ["kettle", "backpack"],
                         "review": ["Boils in two minutes.", "Roomy, but the straps dig in."]})
    batch = aiml_magics.map("How does this customer feel about the {product}? Review: {review}",
                            rows, session=offline, progress=False)
    texts = batch.texts()
    assert texts == ["offline echo: …kettle? Review: Boils in two minutes.",
                     "offline echo: …backpack? Review: Roomy, but the straps dig in."]
    frame = batch.to_dataframe()
    assert list(frame["source"]) == ["offline echo", "offline echo"]
    assert all("\n" not in t and "**" not in t and len(t) < 120 for t in texts)


def test_row_echoes_cut_at_words_and_stay_short():
    assert row_echoes(["Rate: apple pie", "Rate: apricot"]) == ["offline echo: …apple pie",
                                                                "offline echo: …apricot"]
    assert row_echoes(["one prompt"]) == ["offline echo: one prompt"]
    long = row_echoes(["x " + "y" * 300, "x " + "z" * 300])
    assert all(len(t) <= len("offline echo: …") + 80 for t in long)


def test_a_schema_offline_gets_a_placeholder_that_validates_and_says_so(offline):
    pytest.importorskip("pandas")
    batch = aiml_magics.map(["first", "second"], session=offline, schema=VERDICT, progress=False)
    assert batch.failures == []
    frame = batch.to_dataframe()
    assert list(frame["sentiment"]) == ["positive", "positive"] and list(frame["score"]) == [0, 0]
    assert list(frame["why"]) == ["offline plac"] * 2  # clipped to maxLength, still says offline
    assert list(frame["source"]) == ["offline echo"] * 2
    assert "offline placeholder" in batch[0].warnings[0]


def test_a_schema_cell_offline_validates_and_the_footer_says_placeholder(bare_shell, api):
    bare_shell.user_ns["verdict"] = VERDICT
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%%aiml --schema verdict\nRate this.")
    assert run.error is None, run.shown
    assert bare_shell.user_ns["aiml_response"].data == {"sentiment": "positive", "score": 0,
                                                         "why": "offline plac"}
    assert "offline placeholder" in run.final_markdown()


def test_placeholder_gives_up_where_it_cannot_promise_a_match():
    assert placeholder({"type": "string", "pattern": "^[A-Z]{3}$"}) is None
    assert placeholder({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}) is None
    assert placeholder({"type": "array", "items": {"type": "integer", "minimum": 3}, "minItems": 2}) == [3, 3]
    assert placeholder({"anyOf": [{"type": "null"}, {"type": "boolean"}]}) is None
    assert placeholder({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}) == 0.5


def test_column_echo_names_no_developer_it_does_not_know():
    text = column_echo({"model": "my-local-model", "messages": [{}]})
    assert "developer" not in text and "accepts 0 to 2" in text and "1 message" in text
