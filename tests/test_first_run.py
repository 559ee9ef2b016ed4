"""What a new user, a teacher without a key and a user of another OpenAI-compatible server meet
first (issue 11), each driven the way they met it: a real IPython shell (terminal IPython in a
subprocess where it matters) against the loopback fake service, asserting on what it received.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aiml_magics import instance
from aiml_magics.errors import AIMLError, ParameterError
from aiml_magics.http.status import http_error
from aiml_magics.models import FALLBACK_MODELS
from aiml_magics.params import DEFAULT_MODEL
from tests.conftest import ROOT, TEST_KEY, run_cell
from tests.fakeapi import Error, Reply

DOCS_PROMPT = "Hi! What do you think about mankind?"


def visible_markdown(run) -> str:
    """The last state of each display the cell made, the non-empty Markdown ones joined."""
    last: dict[str, str] = {}
    for i, out in enumerate(run.outputs):
        last[(out.transient or {}).get("display_id", f"plain-{i}")] = out.data.get("text/markdown", "")
    return "\n".join(md for md in last.values() if md.strip())


# -- prompts and replay ----------------------------------------------------------------------------


def test_ends_of_the_cell_are_trimmed_and_the_inside_is_byte_exact(shell, api):
    body = "\n  \n\t\n    indented first line {x}\n  inner  \n\n\tlast line \\n  \t\n\n"
    run = run_cell(shell, "%%aiml\n" + body)
    assert run.error is None, run.shown
    sent = api.last_json["messages"][-1]["content"]
    assert sent == "    indented first line {x}\n  inner  \n\n\tlast line \\n"
    assert shell.user_ns["aiml_response"].request["messages"][-1]["content"].startswith("    indented")


@pytest.mark.parametrize("typed", [f"{DOCS_PROMPT}\n", f"\n\n{DOCS_PROMPT}   \n\n", f"{DOCS_PROMPT}\t"])
def test_the_shipped_answer_matches_the_question_typed_with_enter(bare_shell, api, typed):
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%%aiml\n" + typed)
    assert run.error is None, run.shown
    resp = bare_shell.user_ns["aiml_response"]
    assert resp.source == "replayed" and resp.credits_used == 2002
    assert api.requests == []


def test_a_cassette_recorded_with_a_trailing_newline_still_matches(bare_shell, tmp_path):
    from aiml_magics.cassette import Cassette, Recording

    tape = tmp_path / "tape.json"
    Cassette(tape, [Recording(
        {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "\nCount to 3\n\n"}],
         "parameters": {}},
        {"text": "1, 2, 3"},
        {"description": "hand-written"},
    )]).save()
    run_cell(bare_shell, f"%aiml replay {tape}")
    run = run_cell(bare_shell, "%%aiml\nCount to 3")
    assert run.error is None and bare_shell.user_ns["aiml_response"].text == "1, 2, 3"
    run_cell(bare_shell, "%%aiml --new\nCount to 3 ")
    assert bare_shell.user_ns["aiml_response"].source == "replayed"
    run_cell(bare_shell, "%%aiml --new\n  Count to 3")  # the first line's indentation counts
    assert bare_shell.user_ns["aiml_response"].source == "offline echo"


def test_terminal_ipython_replays_the_docs_answer_readably(tmp_path):
    """Terminal IPython always ends the cell with a newline: it must still get the recording,
    printed as readable text with the reasoning summarised in one line."""
    script = tmp_path / "typed.ipy"
    script.write_text(
        "%load_ext aiml_magics\n%aiml replay\n"
        f"get_ipython().run_cell('%%aiml\\n{DOCS_PROMPT}\\n')\n"
        "print('SOURCE', aiml_response.source)\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("AIML_API_KEY", "AIMLAPI_API_KEY")}
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", str(script)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0 and "SOURCE replayed" in out, out + proc.stderr
    assert "[reasoning: 1,956 chars, not shown; print(aiml_response.reasoning) to read it]" in out
    assert "The user wants my" not in out  # the reasoning itself is not dumped
    assert "\n1. The Ultimate Paradox\n" in out and "###" not in out  # a heading, not its markers
    assert "• Creation vs. Destruction: Humans build" in out and "**" not in out
    assert out.index("[reasoning:") < out.index("As an AI, I don’t have feelings")
    assert "replayed" in out.splitlines()[-2]  # the footer


def test_the_offline_echo_never_becomes_context(shell, api, magics):
    """Replay, the docs question (a real recorded answer), an echoed question, then live."""
    run_cell(shell, "%aiml replay")
    run_cell(shell, f"%%aiml\n{DOCS_PROMPT}")
    echo = run_cell(shell, "%%aiml\nSum that up in one sentence.")
    assert shell.user_ns["aiml_response"].source == "offline echo" and echo.error is None
    assert len(magics.conversation) == 1  # the echo is not a turn
    run_cell(shell, "%aiml live")
    api.queue(Reply(content="One sentence."))
    assert run_cell(shell, "%%aiml\nAnd now, live?").error is None
    messages = api.last_json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"].startswith("As an AI, I don’t have feelings")
    assert "Offline echo" not in json.dumps(messages) and "Sum that up" not in json.dumps(messages)


def test_replay_sends_nothing_for_the_models_list(bare_shell, api, monkeypatch):
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%aiml models")
    assert run.error is None, run.shown
    assert api.requests == []
    md = run.outputs[0].data["text/markdown"]
    (note,) = [line for line in md.splitlines() if "Replay mode" in line]
    assert "built-in list" in note and "nothing was sent" in note
    assert f"| {DEFAULT_MODEL} |" in md and "| baidu/ernie-5.0 |" in md  # ids shown as inert text
    assert f"**{len(FALLBACK_MODELS)} chat models**" in md
    assert "deepseek" in run_cell(bare_shell, "%aiml models deepseek").outputs[0].data["text/markdown"]
    assert DEFAULT_MODEL in FALLBACK_MODELS
    assert api.requests == []


def test_replay_panel_uses_the_built_in_list_and_says_so_in_one_quiet_line(bare_shell, api, monkeypatch):
    from aiml_magics.notebook.panel import MUTED, build_panel

    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    run_cell(bare_shell, "%aiml replay")
    panel = build_panel(instance())
    try:
        assert panel.wait_models(5)
        assert api.requests == []
        assert panel.model_picker.options == FALLBACK_MODELS
        note = panel.models_note.value
        assert "Replay: built-in model list, nothing is sent." in note and MUTED in note
        assert MUTED in panel.key_note.value and "No key: answers are offline" in panel.key_note.value
        assert panel.model_info.layout.display == "none"  # no empty line under the model box
        # Going live fetches the service's list (GET /models needs no key at the AI/ML API).
        run_cell(bare_shell, "%aiml live")
        assert panel.wait_models(30)
        assert "flux/schnell" not in panel.model_picker.options and "gpt-4o" in panel.model_picker.options
        assert [r.path for r in api.requests] == ["/v1/models"] and panel._listed
        assert panel.models_note.value == ""
        assert panel.models_note.layout.display == "none"
    finally:
        panel.close()


# -- other OpenAI-compatible servers ---------------------------------------------------------------

OPENAI_STYLE = [
    {"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"},
    {"id": "local-llama", "object": "model", "owned_by": "litellm"},
]


@pytest.mark.parametrize("status", [500, 401])  # LiteLLM answers 500 without the key; vLLM 401
def test_models_list_sends_the_key_like_litellm_needs(shell, api, status):
    api.models_auth = status
    api.models = OPENAI_STYLE
    run = run_cell(shell, "%aiml models")
    assert run.error is None, run.shown
    (asked,) = [r for r in api.requests if r.path.endswith("/models")]
    assert asked.headers["authorization"] == f"Bearer {TEST_KEY}"
    md = run.outputs[0].data["text/markdown"]
    assert "**2 chat models**" in md and "| local-llama |" in md and "litellm" in md
    assert TEST_KEY not in run.shown


def test_the_panel_lists_models_of_a_server_that_needs_the_key(shell, api, magics):
    from aiml_magics.notebook.panel import build_panel

    api.models_auth = 500
    api.models = OPENAI_STYLE
    panel = build_panel(magics)
    try:
        assert panel.wait_models(30)
        assert panel.model_picker.options == ("gpt-4o-mini", "local-llama")
        assert panel.models_note.value == ""
    finally:
        panel.close()


def test_messages_name_the_server_that_answered(shell, api):
    api.queue(Error(401))
    run = run_cell(shell, "%%aiml\nhello")
    text = str(run.error)
    assert text.startswith(f"The service at 127.0.0.1:{api.port} answered 401 Unauthorized"), text
    assert "AI/ML API answered" not in text
    err = http_error(401, b'{"message": "bad key"}', url="https://api.aimlapi.com/v1/chat/completions")
    assert str(err).startswith("The AI/ML API answered 401")
    err = http_error(500, b"x", url="https://user:secret@llm.example.org:8443/v1/models")
    assert str(err).startswith("The service at llm.example.org:8443 answered 500")
    assert "secret" not in str(err)
    assert str(http_error(502, b"x", url="http://[::1]:4000/v1")).startswith("The service at [::1]:4000")


@pytest.mark.parametrize(
    "refusal",
    [
        Error(400, "Body validation error! model: Invalid enum value, received "
                   "'baidu/ernie-5-0-thinking-preview'"),
        Error(400, "Model is deprecated and no longer available"),
    ],
)
def test_the_retired_model_is_named_with_its_successor(shell, api, refusal):
    api.queue(refusal)
    run = run_cell(shell, "%%aiml -m baidu/ernie-5-0-thinking-preview\nHi!")
    assert isinstance(run.error, AIMLError)
    text = str(run.error)
    assert "`baidu/ernie-5-0-thinking-preview` was retired" in text and "default model" not in text
    assert "`baidu/ernie-5.0`" in text and '%config AIMLMagics.model = "baidu/ernie-5.0"' in text
    assert "%aiml panel" in text
    assert run_cell(shell, '%config AIMLMagics.model = "baidu/ernie-5.0"').error is None
    api.queue(Reply(content="ok"))
    assert run_cell(shell, "%%aiml\nHi!").error is None and api.last_json["model"] == "baidu/ernie-5.0"


def test_only_the_aiml_apis_own_answer_says_a_model_was_retired(shell, api):
    # A LiteLLM proxy (OpenAI's error shape, another host) that does not know the model.
    api.queue(Error(404, "The model `baidu/ernie-5-0-thinking-preview` does not exist", shape="openai"))
    text = str(run_cell(shell, "%%aiml -m baidu/ernie-5-0-thinking-preview\nHi!").error)
    assert "retired" not in text and "The service at 127.0.0.1" in text
    body = b'{"error": {"message": "The model `baidu/ernie-5-0-thinking-preview` does not exist"}}'
    own = http_error(404, body, url="https://api.aimlapi.com/v1/chat/completions",
                     model="baidu/ernie-5-0-thinking-preview")
    assert "` was retired" in str(own) and own.successor == "baidu/ernie-5.0"


def test_other_refusals_do_not_blame_the_model(shell, api):
    api.queue(Error(400, "Body validation error! temperature: Number must be less than or equal to 2"))
    text = str(run_cell(shell, "%%aiml -t 1.5\nHi!").error)
    assert "retired" not in text and "check `temperature`, named above" in text
    api.queue(Error(400, "model: Invalid enum value, received 'gpt-4o-typo'"))
    assert "retired" not in str(run_cell(shell, "%%aiml -m gpt-4o-typo\nHi!").error)


def test_a_400_points_at_what_the_service_named_or_says_it_named_nothing():
    words = "Body validation error! temperature: Number must be less than or equal to 2"
    text = str(http_error(400, json.dumps({"message": words}), model="gpt-4o",
                          sent=("model", "messages", "temperature", "stream")))
    assert "check `temperature`, named above" in text
    text = str(http_error(400, b'{"message": "model: Invalid enum value, received \'gpt-4o-typo\'"}',
                          model="gpt-4o-typo", sent=("model", "messages")))
    assert "check the model id `gpt-4o-typo`, named above" in text
    text = str(http_error(400, b'{"message": "Bad request"}', model="gpt-4o", sent=("model", "top_p")))
    assert "named above" not in text
    assert "the answer does not say which part: check the model id (`gpt-4o`) and the parameters" in text


def test_no_urllib3_warning_reaches_the_cell(bare_shell, monkeypatch):
    """A host name that does not resolve (the lookup fails inside the test, nothing leaves the
    machine), retried twice, with a logging handler configured as many setups have."""
    lookups: list[str] = []

    def no_such_host(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("no connection"))
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bare_shell.run_line_magic("config", "AIMLMagics.base_url = 'https://aiml-gateway.invalid/v1'")
        bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
        bare_shell.run_line_magic("config", "AIMLMagics.max_retries = 2")
        run = run_cell(bare_shell, "%%aiml\nhello")
        models = run_cell(bare_shell, "%aiml models")
    finally:
        root.removeHandler(handler)
    assert lookups and set(lookups) == {"aiml-gateway.invalid"}
    assert len(lookups) >= 3  # the first try and two retries: urllib3 did retry
    assert isinstance(run.error, AIMLError)
    assert "Could not connect to https://aiml-gateway.invalid/v1" in str(run.error)
    assert isinstance(models.error, AIMLError)
    assert "Retrying" not in seen.getvalue() and "urllib3" not in seen.getvalue()
    assert "Retrying" not in run.shown + models.shown and "WARNING" not in run.shown
    # Other code's urllib3 warnings are left alone.
    logging.getLogger("urllib3.connectionpool").addHandler(handler)
    try:
        logging.getLogger("urllib3.connectionpool").warning("Retrying (someone else's request)")
    finally:
        logging.getLogger("urllib3.connectionpool").removeHandler(handler)
    assert "someone else's request" in seen.getvalue()


# -- output ---------------------------------------------------------------------------------------


def test_json_answers_are_shown_as_a_json_code_block(shell, api):
    answer = '{"path": "C:\\\\new\\\\table", "quote": "say \\"hi\\"", "list": [1, 2], "md": "*not* _em_"}'
    api.queue(Reply(content=answer))
    run = run_cell(shell, "%%aiml --json\nGive me JSON")
    assert run.error is None, run.shown
    md = run.final_markdown()
    block = re.search(r"^```json\n(.*?)\n```$", md, re.S | re.M)
    assert block, md
    assert json.loads(block.group(1)) == json.loads(answer) == shell.user_ns["aiml_response"].data
    assert '"C:\\\\new\\\\table"' in block.group(1)  # the escapes are shown, not eaten
    # Invalid JSON is shown as it came, in the block too.
    api.queue(Reply(content='{"a": 1,'))
    md = run_cell(shell, "%%aiml --json\nagain").final_markdown()
    assert '```json\n{"a": 1,\n```' in md and "not valid JSON" in md


def test_opened_reasoning_is_quoted_and_separated_from_the_answer(shell, api):
    api.queue(Reply(content="The answer.", reasoning="Step one.\n\n```py\nx = 1\n```\nStep two."))
    md = run_cell(shell, "%%aiml\nq").final_markdown()
    inside = md[md.index("</summary>") : md.index("</details>")]
    assert "> Step one.\n>\n> ```py\n> x = 1\n> ```\n> Step two." in inside
    assert inside.rstrip().endswith("---")  # a rule between the opened reasoning and the answer
    assert md.index("</details>") < md.index("The answer.")


# -- commands -------------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["AIML_API_KEY", "AIMLAPI_API_KEY"])
def test_snippet_runs_as_printed(shell, api, var):
    api.queue(Reply(content="first"), Reply(content="second"))
    shell.run_line_magic("config", "AIMLMagics.system = 'Be brief.'")
    run_cell(shell, "%%aiml -t 0.5\nfirst question")
    run_cell(shell, "%%aiml -t 0.5 --seed 3\nsecond question")
    run = run_cell(shell, "%aiml snippet")
    code = run.outputs[0].data["text/plain"]
    assert TEST_KEY not in code and "2 earlier messages of the conversation left out" in code
    env = {k: v for k, v in os.environ.items() if k not in ("AIML_API_KEY", "AIMLAPI_API_KEY")}
    env[var] = TEST_KEY
    api.reset()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "echo: second question"
    (sent,) = api.chat_requests
    assert sent.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert sent.json == {
        "model": DEFAULT_MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "second question"},
        ],
        "temperature": 0.5,
        "seed": 3,
    }
    full = run_cell(shell, "%aiml snippet --full").outputs[0].data["text/plain"]
    api.reset()
    proc = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(api.last_json["messages"]) == 4 and "left out" not in full


def test_snippet_without_a_key_says_so(shell, api):
    run_cell(shell, "%%aiml --json\nq")
    code = run_cell(shell, "%aiml snippet").outputs[0].data["text/plain"]
    env = {k: v for k, v in os.environ.items() if k not in ("AIML_API_KEY", "AIMLAPI_API_KEY")}
    api.reset()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "Set AIML_API_KEY" in proc.stderr
    assert api.requests == []


@pytest.mark.parametrize(
    "name", ["print", "get_ipython", "In", "Out", "display", "exit", "quit", "_", "__", "_3", "_i2", "len"]
)
def test_out_refuses_builtin_and_ipython_names(shell, api, name):
    before = shell.user_ns.get(name)
    run = run_cell(shell, f"%%aiml --out {name}\nhi")
    assert isinstance(run.error, ParameterError), run.shown
    assert f"--out {name}" in str(run.error) and "Pick another name" in str(run.error)
    assert api.chat_requests == []  # refused before sending
    assert shell.user_ns.get(name) is before
    assert run_cell(shell, "%%aiml --out answer\nstill works").error is None
    assert run_cell(shell, "%aiml config").error is None


@pytest.mark.parametrize(
    "line",
    ["history --exprot f.json", "reset --all", "models --refrsh", "config --verbose", "snippet --ful",
     "replay a.json b.json", "live now", "history --json --export f.json"],
)
def test_line_commands_refuse_unknown_options_with_the_usage_line(shell, api, magics, tmp_path, line):
    os.chdir(tmp_path)
    api.queue(Reply(content="kept"))
    run_cell(shell, "%%aiml\nremember me")
    before = list(api.requests)
    run = run_cell(shell, f"%aiml {line}")
    assert type(run.error).__name__ == "UsageError", run.shown
    command = line.split()[0]
    assert f"usage: %aiml {command}" in str(run.error), str(run.error)
    assert len(magics.conversation) == 1  # `reset --all` forgot nothing
    assert not list(tmp_path.iterdir())  # nothing was written
    assert api.requests == before and magics.answer_mode == "live"


def test_line_commands_still_take_what_they_document(shell, api, magics, tmp_path):
    run_cell(shell, "%%aiml\none")
    path = tmp_path / "h.json"
    run = run_cell(shell, f"%aiml history --export {path}")
    assert run.stdout.strip() == f"Saved 1 turn to {path}."
    assert json.loads(path.read_text(encoding="utf-8"))[0]["content"] == "one"
    assert "claude" in run_cell(shell, "%aiml models claude --refresh").outputs[0].data["text/markdown"]
    assert "usage: %aiml history" in run_cell(shell, "%aiml history -h").stdout
    assert run_cell(shell, "%aiml reset").stdout.strip() == "Conversation cleared (1 turn forgotten)."


def test_help_reads_cleanly_and_agrees_with_the_readme(shell):
    text = run_cell(shell, "%aiml help").stdout
    assert "%%%aiml" not in text and "::" not in text
    assert "usage: %%aiml [--model MODEL]" in text.replace("\n ", " ") or "%%aiml [--model" in text
    assert "0 to 2 (0 to 1 for Claude and MiniMax models)" in " ".join(text.split())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "0 to 2 (0 to 1 for Claude and MiniMax models)" in readme
    assert "0 to 1 for Claude)" not in readme and "0..1 for Claude)" not in Path(
        ROOT / "aiml_magics" / "notebook" / "flags.py"
    ).read_text(encoding="utf-8")


def test_the_quickstart_says_what_replay_does():
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Watch the answer stream in" not in text and "replayed, it appears at once" in text
    assert "baidu/ernie-5.0" in text and "model default" in text


def test_the_readme_leads_with_use_and_links_the_benchmark_detail():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## (.+)$", readme, re.M)
    assert heads[0] == "Quick start" and heads.index("Performance") > heads.index("Quick start")
    perf = readme[readme.index("## Performance") : readme.index("## Reliability")]
    assert perf.count("\n|---") == 1 and "(docs/performance.md)" in perf  # one summary table
    detail = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "Machine:" in detail and "## What the numbers showed, and what changed" in detail


def test_a_flag_typo_gets_did_you_mean_not_the_whole_usage(shell, api):
    run = run_cell(shell, "%%aiml --temprature 0.3\nHi!")
    text = str(run.error)
    assert "unknown flag --temprature: did you mean --temperature?" in text
    assert "%aiml help" in text and "usage" not in text and "--max-completion-tokens" not in text
    assert "did you mean --no-stream?" in str(run_cell(shell, "%%aiml --no-stram\nHi!").error)
    assert "unknown flag --xyzzy." in str(run_cell(shell, "%%aiml --xyzzy\nHi!").error)
    text = str(run_cell(shell, "%%aiml What is 2+2?\nThanks.").error)
    assert "the prompt goes on the lines below it" in text
    assert api.chat_requests == []


def test_help_says_what_each_no_flag_does(shell):
    text = " ".join(run_cell(shell, "%aiml help").stdout.split())
    assert "--no-stream this cell waits for the whole answer" in text
    assert "--no-memory this cell is sent alone" in text
    assert "--no-expand this cell is sent as typed" in text
    assert "--no-parallel-tool-calls in this cell the model asks for one tool call at a time" in text
    assert "stream answers as they are generated" not in text.split("flags:")[-1]


def test_the_footer_says_when_earlier_turns_went_along(shell, api):
    api.queue(Reply(content="A" * 1000), Reply(content="ok"), Reply(content="ok"))
    first = run_cell(shell, "%%aiml --system 'Be brief.'\nHi!")
    assert "earlier" not in first.final_markdown()
    second = run_cell(shell, "%%aiml\nAnd then?")
    # "Hi!" (3) + the answer (1,000): sent again with this cell; the system prompt is not counted.
    assert "+2 earlier messages, 1,003 characters" in second.final_markdown()
    alone = run_cell(shell, "%%aiml --no-memory\nAlone?")
    assert "earlier" not in alone.final_markdown()


def test_an_answers_headings_sit_below_the_notebooks(shell, api):
    api.queue(Reply(content="# Title\n\n## Part\n\n### Detail\n\n```python\n# a comment\n```\n\n> # quoted"))
    md = run_cell(shell, "%%aiml\nHi!").final_markdown()
    assert "\n### Title\n" in f"\n{md}" and "\n### Part\n" in md and "\n#### Detail\n" in md
    assert "\n# a comment\n" in md and "> ### quoted" in md  # code untouched, quotes too
    assert shell.user_ns["aiml_response"].text.startswith("# Title")  # the text itself is kept


def test_every_typed_error_the_readme_lists_is_importable_from_the_package():
    import aiml_magics

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("`ParameterError` (refused before sending)"):]
    listed = listed[:listed.index("HTTP ones carry")]
    names = re.findall(r"`([A-Z][A-Za-z]+)`", listed)
    assert len(names) == 14 and "LimitError" in names and "ResponseTimeout" in names
    missing = [n for n in names if not isinstance(getattr(aiml_magics, n, None), type)]
    assert missing == [] and set(names) <= set(aiml_magics.__all__)
