"""``%%aiml`` end to end: a real IPython shell talking HTTP to the loopback fake of the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from aiml_magics.errors import AIMLError, StreamInterrupted
from aiml_magics.params import DEFAULT_MODEL
from aiml_magics.response import ChatResponse
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import Error, FakeAIMLAPI, RawStream, Reply

ANSWER = "# Mankind\n\nA few thoughts:\n\n- curious\n- social\n\n```python\nprint('hi')\n```\n\nDone."


def no_leak(run) -> None:
    assert TEST_KEY not in run.shown
    assert TEST_KEY[:-4] not in run.shown


# -- the happy path ------------------------------------------------------------------------------


def test_stream_renders_markdown_reasoning_and_footer(shell, api):
    api.queue(Reply(content=ANSWER, reasoning="Think: humans are varied.", credits=2002))
    run = run_cell(shell, "%%aiml\nHi! What do you think about mankind?")
    assert run.error is None, run.stdout
    sent = api.last_json
    assert sent["messages"] == [{"role": "user", "content": "Hi! What do you think about mankind?"}]
    assert sent["stream"] is True and sent["model"] == DEFAULT_MODEL
    for unset in ("temperature", "top_p", "max_completion_tokens", "max_tokens", "seed", "stop"):
        assert unset not in sent
    final = run.final_markdown()
    assert final.index("<details>") < final.index("Think: humans are varied.") < final.index(
        "</details>"
    ) < final.index("# Mankind")
    assert "- curious" in final and "```python" in final
    assert "2,002 credits" in final and DEFAULT_MODEL in final
    resp = shell.user_ns["aiml_response"]
    assert isinstance(resp, ChatResponse)
    assert resp.text == ANSWER and str(resp) == ANSWER
    assert resp.reasoning == "Think: humans are varied."
    assert resp.finish_reason == "stop" and resp.complete
    assert resp.credits_used == 2002 and resp.usd_spent == pytest.approx(0.001001)
    assert resp.usage.prompt_tokens == 7 and resp.usage.reasoning_tokens == 4
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # The request as built; the wire adds stream_options for a server other than the AI/ML API.
    assert sent.pop("stream_options") == {"include_usage": True} and resp.request == sent
    assert resp.raw["choices"][0]["message"]["content"] == ANSWER
    assert resp.elapsed > 0
    no_leak(run)


def test_non_streamed_answer_and_repr(shell, api):
    api.queue(Reply(content="**bold** answer", reasoning="hmm", credits=12.5))
    run = run_cell(shell, "%%aiml --no-stream\nquick")
    assert run.error is None
    assert "stream" not in api.last_json
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "**bold** answer" and resp.reasoning == "hmm"
    assert resp.credits_used == 12.5 and resp.inference_id
    assert "ChatResponse(" in repr(resp) and "15 chars" in repr(resp)
    bundle = resp._repr_mimebundle_()
    assert "**bold** answer" in bundle["text/markdown"] and "<details>" in bundle["text/markdown"]
    # Evaluating the variable renders it again as Markdown (the displayhook uses this formatter).
    data, _ = shell.display_formatter.format(resp)
    assert "**bold** answer" in data["text/markdown"] and "**bold** answer" in data["text/plain"]


def test_streamed_crlf_comments_split_utf8_no_done(shell, api):
    text = "Ünïcödé ✓ 日本語 😀 — fine.\n\nSecond ¶."
    api.queue(Reply(content=text, crlf=True, comments=True, split_utf8=True, done=False))
    run = run_cell(shell, "%%aiml\nunicode please")
    assert run.error is None, run.stdout
    assert shell.user_ns["aiml_response"].text == text
    assert shell.user_ns["aiml_response"].complete
    assert text in run.final_markdown()


def test_usage_on_finish_chunk(shell, api):
    api.queue(Reply(content="ok", usage_chunk="finish", prompt_tokens=3, completion_tokens=1))
    assert run_cell(shell, "%%aiml\nx").error is None
    usage = shell.user_ns["aiml_response"].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 1, 4)


def test_model_reported_by_service_is_shown(shell, api):
    api.queue(Reply(content="ok", model="ernie-5.0-thinking-upstream"))
    run = run_cell(shell, "%%aiml\nx")
    assert shell.user_ns["aiml_response"].model == "ernie-5.0-thinking-upstream"
    assert shell.user_ns["aiml_response"].requested_model == DEFAULT_MODEL
    assert "ernie-5.0-thinking-upstream" in run.final_markdown()


# -- every flag and setting reaches the server -------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("--model gpt-4o-mini", {"model": "gpt-4o-mini"}),
        ("-m deepseek/deepseek-chat", {"model": "deepseek/deepseek-chat"}),
        ("--max-completion-tokens 64", {"max_completion_tokens": 64}),
        ("--max-tokens 32", {"max_tokens": 32}),
        ("--temperature 0", {"temperature": 0}),
        ("-t 1.5", {"temperature": 1.5}),
        ("--top-p 0.5", {"top_p": 0.5}),
        ("--stop END --stop '###'", {"stop": ["END", "###"]}),
        ("--frequency-penalty -1.5", {"frequency_penalty": -1.5}),
        ("--presence-penalty 2", {"presence_penalty": 2}),
        ("--seed 42", {"seed": 42}),
        ("--json", {"response_format": {"type": "json_object"}}),
    ],
)
def test_flag_is_sent(shell, api, flags, expected):
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    assert run.error is None, run.stdout
    for key, value in expected.items():
        assert api.last_json[key] == value
        assert type(api.last_json[key]) is type(value)


def test_system_flag_and_setting(shell, api):
    run_cell(shell, "%%aiml --system 'Be terse.'\nhello")
    assert api.last_json["messages"][0] == {"role": "system", "content": "Be terse."}
    shell.run_line_magic("config", "AIMLMagics.system = 'Answer in French.'")
    run_cell(shell, "%%aiml\nhello again")
    assert api.last_json["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert api.last_json["messages"][-1] == {"role": "user", "content": "hello again"}


def test_settings_via_config_and_flags_override_for_one_cell(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.model = 'gpt-4o'")
    shell.run_line_magic("config", "AIMLMagics.temperature = 0.0")
    shell.run_line_magic("config", "AIMLMagics.top_p = 0.9")
    shell.run_line_magic("config", "AIMLMagics.max_completion_tokens = 100")
    run_cell(shell, "%%aiml\none")
    sent = api.last_json
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["max_completion_tokens"]) == (
        "gpt-4o",
        0.0,
        0.9,
        100,
    )
    run_cell(shell, "%%aiml -m gpt-4o-mini -t 1 --top-p 0.2 -n 5\ntwo")
    sent = api.last_json
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["max_completion_tokens"]) == (
        "gpt-4o-mini",
        1,
        0.2,
        5,
    )
    run_cell(shell, "%%aiml\nthree")
    assert api.last_json["model"] == "gpt-4o" and api.last_json["temperature"] == 0.0
    assert magics.temperature == 0.0  # the flag did not move the setting


def test_stream_setting_off(shell, api):
    shell.run_line_magic("config", "AIMLMagics.stream = False")
    run_cell(shell, "%%aiml\nx")
    assert "stream" not in api.last_json


def test_json_flag_parses_data(shell, api):
    api.queue(Reply(content='```json\n{"rows": [{"a": 1}, {"a": 2}]}\n```'))
    run = run_cell(shell, "%%aiml --json\nGive JSON rows")
    assert run.error is None
    assert shell.user_ns["aiml_response"].data == {"rows": [{"a": 1}, {"a": 2}]}
    api.queue(Reply(content="not json at all"))
    run = run_cell(shell, "%%aiml --json\nGive JSON rows")
    resp = shell.user_ns["aiml_response"]
    assert resp.data is None and any("not valid JSON" in w for w in resp.warnings)


def test_out_variable(shell, api):
    api.queue(Reply(content="stored"))
    run_cell(shell, "%%aiml --out answer\nx")
    assert shell.user_ns["answer"] is shell.user_ns["aiml_response"]
    assert shell.user_ns["answer"].text == "stored"
    run = run_cell(shell, "%%aiml --out 'not valid'\nx")
    assert isinstance(run.error, AIMLError) and "--out" in str(run.error)


def test_prompt_sent_byte_exact(shell, api):
    prompt = 'JSON {"a": {b}} \\n $HOME {0} %s ${x} `code` \u202eRTL\u202c 😀'
    run_cell(shell, "%%aiml\n" + prompt)
    assert api.chat_requests[-1].json["messages"][-1]["content"] == prompt


# -- the conversation -------------------------------------------------------------------------------


def test_conversation_memory_new_and_no_memory(shell, api, magics):
    api.queue(Reply(content="first answer"), Reply(content="second answer"))
    run_cell(shell, "%%aiml\nfirst")
    run_cell(shell, "%%aiml\nsecond")
    assert [m["content"] for m in api.last_json["messages"]] == ["first", "first answer", "second"]
    run_cell(shell, "%%aiml --no-memory\naside")
    assert [m["content"] for m in api.last_json["messages"]] == ["aside"]
    assert len(magics.conversation) == 2  # the aside was not recorded
    run_cell(shell, "%%aiml --new\nfresh")
    assert [m["content"] for m in api.last_json["messages"]] == ["fresh"]
    shell.run_line_magic("config", "AIMLMagics.memory = False")
    run_cell(shell, "%%aiml\nalone")
    assert [m["content"] for m in api.last_json["messages"]] == ["alone"]


def test_max_history_bounds_turns(shell, api):
    shell.run_line_magic("config", "AIMLMagics.max_history = 2")
    for i in range(4):
        run_cell(shell, f"%%aiml\nq{i}")
    users = [m["content"] for m in api.last_json["messages"] if m["role"] == "user"]
    assert users == ["q1", "q2", "q3"]


def test_reset_history_and_export(shell, api, tmp_path):
    run_cell(shell, "%%aiml\nremember me")
    run = run_cell(shell, "%aiml history")
    assert "remember me" in run.shown and "echo: remember me" in run.shown
    target = tmp_path / "history.json"
    run_cell(shell, f"%aiml history --export {target}")
    saved = json.loads(target.read_text())
    assert saved == [
        {"role": "user", "content": "remember me"},
        {"role": "assistant", "content": "echo: remember me"},
    ]
    assert TEST_KEY not in target.read_text()
    run = run_cell(shell, "%aiml reset")
    assert "1 turn forgotten" in run.stdout
    run_cell(shell, "%%aiml\nafter reset")
    assert len(api.last_json["messages"]) == 1


# -- refusals before any request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ("--temperature 2.5", ["temperature", "2.5", "0 to 2"]),
        ("--temperature -0.1", ["temperature", "-0.1", "0 to 2"]),
        ("-m anthropic/claude-sonnet-4.5 -t 1.5", ["temperature", "1.5", "0 to 1", "claude"]),
        ("--top-p 0", ["top_p", "0", "0.01 to 1"]),
        ("--top-p 1.01", ["top_p", "1.01"]),
        ("--max-completion-tokens 0", ["max_completion_tokens", "0", ">= 1"]),
        ("--max-completion-tokens 2.5", ["max_completion_tokens", "integer"]),
        ("--max-tokens 0", ["max_tokens", ">= 1"]),
        ("--frequency-penalty 3", ["frequency_penalty", "-2 to 2"]),
        ("--presence-penalty -2.01", ["presence_penalty", "-2 to 2"]),
        ("--seed 0", ["seed", ">= 1"]),
        ("--temperature warm", ["temperature", "'warm'", "not a number"]),
        ("--stop a --stop b --stop c --stop d --stop e", ["stop", "5", "at most 4"]),
        ("--model ''", ["model"]),
    ],
)
def test_out_of_range_refused_before_sending(shell, api, flags, words):
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    assert isinstance(run.error, AIMLError)
    for word in words:
        assert word in str(run.error), (word, str(run.error))
    assert api.chat_requests == []
    assert "Traceback" not in run.stdout
    assert "AIMLError" in run.stdout


def test_config_refuses_out_of_range(shell, api, magics, caplog):
    run_cell(shell, "%config AIMLMagics.temperature = 3.0")
    assert magics.temperature is None
    assert "temperature = 3 is out of range: use a number from 0 to 2" in caplog.text
    run_cell(shell, "%%aiml\nstill works")
    assert "temperature" not in api.last_json


def test_empty_cell_refused(shell, api):
    run = run_cell(shell, "%%aiml\n   \n")
    assert isinstance(run.error, AIMLError) and "empty" in str(run.error)
    assert api.chat_requests == []


# -- keys ------------------------------------------------------------------------------------


def test_no_key_says_how_and_sends_nothing(bare_shell, api):
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    run = run_cell(bare_shell, "%%aiml\nhello")
    assert isinstance(run.error, AIMLError)
    message = str(run.error)
    for hint in ("%aiml key", "AIML_API_KEY", "%config", "%env"):
        assert hint in message
    assert api.requests == []
    assert "Traceback" not in run.stdout


@pytest.mark.parametrize("var", ["AIML_API_KEY", "AIMLAPI_API_KEY"])
def test_key_and_base_from_environment(bare_shell, api, monkeypatch, var):
    monkeypatch.setenv(var, TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.root_url)  # without /v1: accepted, /v1 added
    run = run_cell(bare_shell, "%%aiml\nhello")
    assert run.error is None, run.stdout
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert api.chat_requests[-1].path == "/v1/chat/completions"
    run = run_cell(bare_shell, "%aiml config")
    assert f"environment {var}" in run.shown and "****HECK" in run.shown
    no_leak(run)


def test_aiml_key_prompt_is_masked_and_used(bare_shell, api, monkeypatch):
    import getpass

    asked = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return TEST_KEY

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    run = run_cell(bare_shell, "%aiml key")
    assert asked and "hidden" in asked[0]
    assert "****HECK" in run.stdout
    no_leak(run)
    assert run_cell(bare_shell, "%%aiml\nhi").error is None
    config = run_cell(bare_shell, "%aiml config")
    assert "%aiml key" in config.shown
    no_leak(config)
    listing = run_cell(bare_shell, "%config AIMLMagics")
    no_leak(listing)


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (Error(401), ["401", "invalid or missing API key", "%aiml key"]),
        (Error(403), ["403", "run out of credits", "top up"]),
        (Error(400, "Body validation error! temperature: too high", shape="gateway_str"),
         ["400", "Body validation error! temperature", "parameter"]),
        (Error(400, "Body validation error! model: Invalid model", shape="gateway"),
         ["400", "model: Invalid model"]),
        (Error(400, "Unsupported value: 'stop'", shape="openai"), ["400", "Unsupported value"]),
        (Error(404, "Cannot POST /v1/chat/completions"), ["404", "base URL", "Cannot POST"]),
    ],
)
def test_http_errors_are_one_paragraph(shell, api, error, words):
    api.queue(error)
    run = run_cell(shell, "%%aiml\nhello")
    assert isinstance(run.error, AIMLError)
    text = str(run.error)
    for word in words:
        assert word in text, (word, text)
    assert "\n" not in text
    assert "Traceback" not in run.stdout
    assert len(api.chat_requests) == 1  # 4xx is not retried
    assert "aiml_response" not in shell.user_ns
    no_leak(run)


def test_html_proxy_page_reads_sensibly(shell, api):
    api.queue(*[Error(502, shape="html")] * 3)
    run = run_cell(shell, "%%aiml\nhello")
    text = str(run.error)
    assert "502" in text and "HTML error page" in text and "<html>" not in text
    assert "after 2 retries" in text
    assert len(api.chat_requests) == 3


def test_429_retry_after_then_success(shell, api):
    api.queue(Error(429, headers={"Retry-After": "1"}), Reply(content="finally"))
    started = time.monotonic()
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None
    assert shell.user_ns["aiml_response"].text == "finally"
    gap = api.chat_requests[1].time - api.chat_requests[0].time
    assert gap >= 0.9  # Retry-After honoured
    assert time.monotonic() - started < 10


def test_connection_refused_names_base_url(shell, api):
    base = FakeAIMLAPI.closed_port()
    shell.run_line_magic("config", f"AIMLMagics.base_url = {base!r}")
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    run = run_cell(shell, "%%aiml\nhello")
    assert isinstance(run.error, AIMLError)
    assert base in str(run.error) and "refused" in str(run.error)
    assert "Traceback" not in run.stdout


# -- broken streams keep what arrived ------------------------------------------------------------------


def test_stream_cut_keeps_partial_answer(shell, api, magics):
    api.queue(Reply(content="One two three four five six seven eight.", chunk_chars=5, close_after=3))
    run = run_cell(shell, "%%aiml\ncount")
    assert isinstance(run.error, AIMLError) and "stopped early" in str(run.error)
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "One two three f" and resp.finish_reason == "cut" and not resp.complete
    assert "One two three f" in run.final_markdown() and "partial answer" in run.final_markdown()
    turn = magics.conversation.turns[-1]
    assert turn.partial and turn.answer == "One two three f"
    # The kernel is fine: the next cell works and carries the partial turn.
    assert run_cell(shell, "%%aiml\ncontinue").error is None
    assert api.last_json["messages"][1] == {"role": "assistant", "content": "One two three f"}


def test_stream_end_without_finish_is_cut(shell, api):
    events = [b'data: {"choices":[{"delta":{"content":"half an"}}]}\n\n']
    api.queue(RawStream(events))
    run = run_cell(shell, "%%aiml\nx")
    assert isinstance(run.error, AIMLError)
    assert shell.user_ns["aiml_response"].text == "half an"
    assert shell.user_ns["aiml_response"].finish_reason == "cut"


def test_malformed_chunk_is_skipped_and_reported(shell, api):
    events = [
        b'data: {"choices":[{"delta":{"content":"good "}}]}\n\n',
        b"data: {not json\n\n",
        b'data: {"choices":[{"delta":{"content":"rest"},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    api.queue(RawStream(events))
    run = run_cell(shell, "%%aiml\nx")
    assert run.error is None
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "good rest" and resp.complete
    assert any("malformed" in w for w in resp.warnings)
    assert "malformed" in run.final_markdown()


def test_ctrl_c_mid_stream_keeps_partial(shell, api, magics):
    api.queue(Reply(content="word " * 200, chunk_chars=5, delay=0.02))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if SIGINT is ignored
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        run = run_cell(shell, "%%aiml\nlong answer")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert isinstance(run.error, StreamInterrupted)
    assert "KeyboardInterrupt" in run.stdout and "Traceback" not in run.stdout
    resp = shell.user_ns["aiml_response"]
    assert resp.finish_reason == "interrupted" and 0 < len(resp.text) < 1000
    assert resp.text in run.final_markdown() and "interrupted" in run.final_markdown()
    assert magics.conversation.turns[-1].partial
    api.default = Reply(content="next works")
    assert run_cell(shell, "%%aiml\nnext").error is None
    assert shell.user_ns["aiml_response"].text == "next works"


# -- display behaviour ------------------------------------------------------------------------------


def test_dry_run_shows_payload_sends_nothing(bare_shell, api):
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    run = run_cell(bare_shell, "%%aiml --dry-run -t 0 --seed 7\nwhat is {x}?")
    assert api.requests == []
    assert '"temperature": 0' in run.shown and '"seed": 7' in run.shown
    assert "what is {x}?" in run.shown and "****HECK" in run.shown
    no_leak(run)
    snippet = run_cell(bare_shell, "%aiml snippet")
    assert "requests.post(" in snippet.shown
    assert 'os.environ.get("AIML_API_KEY") or os.environ.get("AIMLAPI_API_KEY")' in snippet.shown
    no_leak(snippet)


def test_models_line_command(shell, api):
    run = run_cell(shell, "%aiml models")
    assert "gpt-4o-mini" in run.shown and "deepseek/deepseek-r1" in run.shown
    for non_chat in ("image", "embedding"):
        assert all(non_chat not in str(m.get("type")) for m in aiml_models_listed(api))
    run = run_cell(shell, "%aiml models claude")
    assert "anthropic/claude-sonnet-4.5" in run.shown and "gpt-4o" not in run.shown


def aiml_models_listed(api):
    from aiml_magics import instance

    return instance().client().list_models()


def test_help_and_unknown_command(shell):
    run = run_cell(shell, "%aiml help")
    for word in ("--max-completion-tokens", "--no-memory", "%aiml models", "%aiml key"):
        assert word in run.stdout
    run = run_cell(shell, "%aiml frobnicate")
    assert "unknown command" in run.shown


# -- other frontends and load cost ------------------------------------------------------------------


def test_terminal_ipython_prints_plain_text(api, tmp_path):
    script = tmp_path / "demo.ipy"
    # A script is one cell, so the %%aiml cell is run as its own cell, as a person would type it.
    script.write_text(
        "%load_ext aiml_magics\n"
        "get_ipython().run_cell('%%aiml\\nHi! What do you think about mankind?')\n"
    )
    api.queue(Reply(content="Plain *answer* here.", reasoning="inner thoughts"))
    env = {**os.environ, "AIML_API_KEY": TEST_KEY, "AIML_API_BASE": api.base_url}
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", str(script)],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.getcwd(),
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # Readable text, not Markdown source; the reasoning summarised in one line, not dumped.
    assert "Plain answer here." in out and "inner thoughts" not in out
    assert "[reasoning: 14 chars, not shown; print(aiml_response.reasoning) to read it]" in out
    assert out.index("[reasoning:") < out.index("Plain answer here.")
    assert "2,002 credits" in out
    assert TEST_KEY not in out + proc.stderr


# -- edge cases found in review ----------------------------------------------------------------------


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_answer_without_finish_reason_is_complete(shell, api, magics, flags):
    api.queue(Reply(content="A full answer.", finish_reason=None))
    run = run_cell(shell, f"%%aiml {flags}\nq")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.complete and resp.text == "A full answer."
    assert "partial" not in run.final_markdown()
    assert not magics.conversation.turns[-1].partial


def test_new_flag_keeps_the_conversation_when_the_cell_is_refused_or_dry(shell, api, magics):
    run_cell(shell, "%%aiml\nfirst")
    assert isinstance(run_cell(shell, "%%aiml --new -t 5\nrefused").error, AIMLError)
    assert run_cell(shell, "%%aiml --new --dry-run\nonly looking").error is None
    assert len(magics.conversation) == 1
    run_cell(shell, "%%aiml --new\nreally new")
    assert [m["content"] for m in api.last_json["messages"]] == ["really new"]
    assert len(magics.conversation) == 1


def test_lowering_max_history_applies_to_the_next_request(shell, api, magics):
    for i in range(3):
        run_cell(shell, f"%%aiml\nq{i}")
    shell.run_line_magic("config", "AIMLMagics.max_history = 1")
    run_cell(shell, "%%aiml\nnext")
    assert [m["content"] for m in api.last_json["messages"] if m["role"] == "user"] == ["q2", "next"]


def test_odd_line_command_input_is_one_message(shell, api, tmp_path):
    run = run_cell(shell, '%aiml models "gpt')
    assert "closing quotation" in run.shown.lower() and "Traceback" not in run.stdout
    run_cell(shell, "%%aiml\nsomething")
    run = run_cell(shell, f"%aiml history --export {tmp_path / 'missing' / 'x.json'}")
    assert isinstance(run.error, AIMLError) and "Could not save the history" in str(run.error)
    assert "Traceback" not in run.stdout


def test_models_list_is_fetched_once_across_setting_changes(shell, api):
    assert run_cell(shell, "%aiml models").error is None
    shell.run_line_magic("config", "AIMLMagics.timeout = 30.0")  # rebuilds the client
    assert run_cell(shell, "%aiml models gpt").error is None
    assert len([r for r in api.requests if r.path.endswith("/models")]) == 1
    assert run_cell(shell, "%aiml models --refresh").error is None
    assert len([r for r in api.requests if r.path.endswith("/models")]) == 2
