"""The plain-Python core: ``Session``, ``chat()``, typed errors, the history of exchanges.

Against the loopback fake of the service: from a plain ``python -c`` process (no IPython), from
Python in this process, and from notebook cells, where ``chat()`` shares the magic's session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import aiml_magics
from aiml_magics import (
    AIMLError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    CreditsError,
    IncompleteAnswer,
    MissingKeyError,
    NotFoundError,
    ParameterError,
    RateLimitError,
    ServerError,
    Session,
)
from aiml_magics.params import DEFAULT_MODEL
from tests.conftest import KEY_VARS, ROOT, TEST_KEY, run_cell
from tests.fakeapi import Error, RawStream, Reply

HIDDEN = TEST_KEY[:-4]


# -- a script, no IPython --------------------------------------------------------------------------


def test_chat_and_session_from_a_plain_python_process(api):
    script = textwrap.dedent(
        f"""
        import sys, aiml_magics
        from aiml_magics import Session, chat, CreditsError
        s = Session(base_url={api.base_url!r}, temperature=0.2)
        print(repr(s))
        r = s.chat("hello there")
        print("TEXT", r.text)
        r2 = chat("second", max_completion_tokens=5)
        print("CHAT", r2.text, len(aiml_magics.default_session().history))
        try:
            s.chat("no credits")
        except CreditsError as exc:
            print("ERROR", type(exc).__name__, exc.status)
        print("HISTORY", len(s.history), [e.source for e in s.history])
        print("IMPORTED", sorted(m for m in ("IPython", "ipywidgets", "markdown") if m in sys.modules))
        """
    )
    api.queue(Reply(echo=True), Reply(echo=True), Error(403))
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(AIML_API_KEY=TEST_KEY, AIML_API_BASE=api.base_url, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"Session(model='{DEFAULT_MODEL}'")
    assert "****HECK" in lines[0] and HIDDEN not in out.stdout + out.stderr
    assert "TEXT echo: hello there" in lines
    assert "CHAT echo: second 1" in lines
    assert "ERROR CreditsError 403" in lines
    assert "HISTORY 1 ['live']" in lines  # the refused request left no exchange
    assert "IMPORTED []" in lines
    first, second = api.chat_requests[0].json, api.chat_requests[1].json
    assert first["temperature"] == 0.2 and first["stream"] is True  # settings' default: stream
    assert second["max_completion_tokens"] == 5 and "temperature" not in second


# -- Session and chat() ------------------------------------------------------------------------


def test_session_keeps_the_conversation_and_the_exchanges(session, api):
    r1 = session.chat("first")
    r2 = session.chat("second", temperature=0)
    assert (r1.text, r2.text) == ("echo: first", "echo: second")
    sent = api.chat_requests[1].json
    assert [m["content"] for m in sent["messages"]] == ["first", "echo: first", "second"]
    assert sent["temperature"] == 0 and sent["stream"] is True
    assert len(session.history) == 2 and session.history[1].response is r2
    assert session.history[1].parameters == {"temperature": 0}
    session.chat("aside", memory=False)
    assert [m["content"] for m in api.last_json["messages"]] == ["aside"]
    assert len(session.history.turns) == 2 and len(session.history) == 3
    assert session.reset() == 2 and len(session.history) == 3
    session.chat("fresh")
    assert [m["content"] for m in api.last_json["messages"]] == ["fresh"]


def test_values_are_refused_before_anything_is_sent(session, api):
    with pytest.raises(ParameterError, match="temperature = 5 is out of range"):
        session.chat("hi", temperature=5)
    claude = "anthropic/claude-sonnet-4.5"
    with pytest.raises(ParameterError, match=f"out of range for {claude}: use a number from 0 to 1"):
        session.chat("hi", model=claude, temperature=1.5)
    with pytest.raises(ParameterError, match="Unknown parameter 'temprature'"):
        session.chat("hi", temprature=0.5)
    with pytest.raises(ParameterError, match="empty"):
        session.chat("   ")
    with pytest.raises(ParameterError, match="top_p = 7"):
        Session(top_p=7)
    with pytest.raises(ParameterError, match="Unknown setting 'colour'"):
        Session(colour="red")
    assert api.requests == [] and len(session.history) == 0


def test_no_key_is_a_typed_error_and_sends_nothing(api, monkeypatch):
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    s = Session(base_url=api.base_url)
    with pytest.raises(MissingKeyError):
        s.chat("hi")
    assert api.requests == []


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (Error(400), BadRequestError, 400),
        (Error(422, shape="openai"), BadRequestError, 422),
        (Error(401), AuthenticationError, 401),
        (Error(403), CreditsError, 403),
        (Error(404), NotFoundError, 404),
        (Error(429), RateLimitError, 429),
        (Error(500), ServerError, 500),
        (Error(503, shape="gateway_str"), ServerError, 503),
        (Error(502, shape="html"), ServerError, 502),
    ],
)
def test_each_status_is_its_own_error_type(session, api, error, kind, status):
    api.queue(error)
    with pytest.raises(kind) as caught:
        session.chat("hi")
    exc = caught.value
    assert isinstance(exc, AIMLError) and exc.status == status
    assert str(status) in str(exc) and "\n" not in str(exc)
    assert "%aiml" not in str(exc) and "AIMLMagics" not in str(exc)  # core words: no magic commands


def test_connection_refused_is_a_connect_error(api, monkeypatch):
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    port = api.port
    api.stop()
    s = Session(api_key=TEST_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ConnectError, match="connection refused"):
        s.chat("hi")


def test_a_cut_stream_raises_with_the_partial_answer_kept(session, api):
    api.queue(RawStream([b'data: {"choices":[{"delta":{"content":"half an"}}]}\n\n'], close=True))
    with pytest.raises(IncompleteAnswer) as caught:
        session.chat("tell me")
    partial = caught.value.response
    assert partial is session.last_response and partial.text == "half an" and not partial.complete
    assert session.history[-1].partial and session.history.turns[-1].answer == "half an"


def test_streaming_callback_and_quiet_by_default(session, api, capsys):
    api.queue(Reply(content="one two three", chunk_chars=3))
    pieces: list[str] = []
    resp = session.chat("count", on_delta=pieces.append)
    assert "".join(pieces) == "one two three" and len(pieces) > 1 and resp.text == "one two three"
    session.chat("quiet")
    assert capsys.readouterr().out == ""


def test_history_to_dataframe_and_both_save_formats(session, api, tmp_path):
    pd = pytest.importorskip("pandas")
    api.queue(Reply(echo=True, reasoning="think", credits=10), Reply(content=f"key {TEST_KEY}"))
    session.chat("first")
    session.chat("second", seed=3)
    frame = session.history.to_dataframe()
    assert list(frame.columns) == [
        "prompt", "answer", "model_requested", "model", "parameters", "prompt_tokens",
        "completion_tokens", "reasoning_tokens", "credits", "seconds", "finish_reason", "source",
        "started", "images",
    ]
    assert list(frame["prompt"]) == ["first", "second"] and frame["credits"][0] == 10
    assert frame["parameters"][1] == {"seed": 3} and frame["source"][0] == "live"
    assert frame["reasoning_tokens"][0] == 1 and isinstance(frame["started"][0], pd.Timestamp)
    saved_json = session.history.save(tmp_path / "h.json").read_text(encoding="utf-8")
    rows = json.loads(saved_json)
    assert [r["prompt"] for r in rows] == ["first", "second"] and rows[0]["answer"] == "echo: first"
    saved_md = session.history.save(tmp_path / "h.md").read_text(encoding="utf-8")
    assert "**1. You**" in saved_md and "echo: first" in saved_md
    for text in (saved_json, saved_md, frame.to_csv(), repr(session.history)):
        assert HIDDEN not in text
    with pytest.raises(AIMLError, match=r"\.json or \.md"):
        session.history.save(tmp_path / "h.txt")


# -- the notebook session --------------------------------------------------------------------------


def test_chat_in_a_notebook_uses_the_magic_session(shell, api):
    shell.run_line_magic("config", "AIMLMagics.temperature = 0.3")
    run = run_cell(shell, "%%aiml\nfrom a cell")
    assert run.error is None
    run = run_cell(shell, "import aiml_magics\nr = aiml_magics.chat('from python')")
    assert run.error is None and run.outputs == []  # no display unless asked
    assert api.last_json["temperature"] == 0.3
    sent = [m["content"] for m in api.last_json["messages"]]
    assert sent == ["from a cell", "echo: from a cell", "from python"]
    history = shell.user_ns["aiml_history"]
    assert [e.prompt for e in history] == ["from a cell", "from python"]
    assert history is aiml_magics.instance().session.history
    shown = run_cell(shell, "aiml_magics.chat('shown', display=True)")
    assert "echo: shown" in shown.final_markdown()


def test_chat_errors_in_a_cell_are_one_paragraph(shell, api):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.queue(Error(401))
    run = run_cell(shell, "import aiml_magics\naiml_magics.chat('hi')")
    assert isinstance(run.error, AuthenticationError)
    assert "Traceback" not in run.stdout and "AIMLError" in run.stdout
    run = run_cell(shell, "aiml_magics.chat('hi', top_p=9)")
    assert isinstance(run.error, ParameterError) and "Traceback" not in run.stdout


def test_magic_errors_add_notebook_advice(shell, api):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.queue(Error(401))
    run = run_cell(shell, "%%aiml\nhi")
    assert isinstance(run.error, AuthenticationError) and "%aiml key" in str(run.error)


def test_history_after_cells(shell, api):
    run_cell(shell, "%%aiml\none")
    run_cell(shell, "%%aiml --no-memory\naside")
    run_cell(shell, "%%aiml -t 0\ntwo")
    history = shell.user_ns["aiml_history"]
    assert len(history) == 3 and len(history.turns) == 2
    assert [e.in_conversation for e in history] == [True, False, True]
    assert history[2].request["temperature"] == 0 and history[2].seconds >= 0
    assert "not in the conversation" in history.to_markdown()


# -- strict line commands and help -----------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["history --exprot f.json", "reset --all", "models --refrsh", "config extra", "replay a b"]
)
def test_line_commands_refuse_unknown_options(shell, api, line):
    run_cell(shell, "%%aiml\nkeep me")
    run = run_cell(shell, f"%aiml {line}")
    assert type(run.error).__name__ == "UsageError"
    assert f"usage: %aiml {line.split()[0]}" in str(run.error)
    assert len(aiml_magics.instance().conversation) == 1  # nothing was done
    assert not os.path.exists("f.json")


def test_cell_magic_help_lists_every_flag(shell):
    from aiml_magics.params import PARAMS

    doc = shell.find_cell_magic("aiml").__doc__
    flags = [f for p in PARAMS for f in p.flags] + ["--json", "--new", "--out", "--dry-run"]
    for flag in flags:
        assert flag in doc, flag
    assert "sampling temperature, 0 to 2 (0 to 1 for Claude and MiniMax models)" in doc
    run = run_cell(shell, "%aiml help")
    for flag in flags:
        assert flag in run.stdout
    for command in ("reset", "history", "config", "models", "key", "panel", "snippet", "replay"):
        assert f"%aiml {command}" in run.stdout
    assert "%%%aiml" not in run.stdout


def test_the_readme_settings_table_names_every_setting():
    from aiml_magics.params import PARAMS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") : readme.index("## The control panel")]
    missing = [p.name for p in PARAMS if f"`{p.name}`" not in table]
    assert missing == [], missing
