"""The provider corpus replayed byte for byte over loopback, through ``Session.chat`` and a cell.

Each fixture (``tests/fixtures/providers``, own text in the wire shape of a public recording) is
served verbatim by the fake: one HTTP chunk per event, then cut every 7 bytes. Whatever the
provider's form, the answer text, the reasoning (``reasoning_content``, ``reasoning``, a leading
``<think>`` block, Mistral's thinking parts, a Responses summary), the usage (also Groq's
``x_groq.usage``) and the tool calls come out the same.
"""

from __future__ import annotations

import pytest

from aiml_magics import Session
from tests import corpus
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import FakeAIMLAPI, Reply

FIXTURES = corpus.fixtures()
IDS = [f["file"] for f in FIXTURES]


def check(resp, expect):
    assert resp.text == expect["text"]
    assert (resp.reasoning or None) == expect["reasoning"]
    assert resp.usage.total_tokens == expect["total_tokens"]
    assert resp.finish_reason == expect["finish_reason"]
    if "reasoning_tokens" in expect:
        assert resp.usage.reasoning_tokens == expect["reasoning_tokens"]
    calls = [{"name": c.name, "arguments": c.arguments_text} for c in resp.tool_calls]
    assert calls == expect.get("tool_calls", [])
    assert "<think>" not in resp.text and "</think>" not in resp.text


@pytest.mark.parametrize("size", [None, 7], ids=["events", "7-byte reads"])
@pytest.mark.parametrize("entry", FIXTURES, ids=IDS)
def test_each_recorded_shape_reads_right(session, api, entry, size):
    api.queue(corpus.replay(entry, size))
    resp = session.chat("Which tea?", model=entry["model"], stream=entry["stream"])
    check(resp, entry["expect"])
    sent = api.requests[-1]
    assert sent.path.endswith("/responses" if entry["endpoint"] == "responses" else "/chat/completions")
    assert session.history[-1].response is resp


@pytest.mark.parametrize("name", ["hf_r1_think_split_stream.sse", "mistral_magistral_stream.sse",
                                  "responses_reasoning_stream.sse", "groq_raw_think_stream.sse"])
def test_a_cell_shows_the_answer_and_folds_the_reasoning(shell, api, name):
    entry = next(f for f in FIXTURES if f["file"] == name)
    api.queue(corpus.replay(entry))
    run = run_cell(shell, f"%%aiml -m {entry['model']}\nWhich tea?")
    assert run.error is None
    resp = shell.user_ns["aiml_response"]
    check(resp, entry["expect"])
    shown = run.final_markdown()
    assert entry["expect"]["text"].split()[0] in shown
    assert "<think>" not in shown and "&lt;think" not in shown
    assert f"{resp.usage.completion_tokens} completion" in shown  # the footer has the usage


def test_an_openai_style_server_gives_usage_because_we_ask(monkeypatch):
    for var in ("AIML_API_KEY", "AIMLAPI_API_KEY", "AIML_API_BASE", "AIMLAPI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    with FakeAIMLAPI(key=TEST_KEY, flavor="openai") as api:
        s = Session(api_key=TEST_KEY, base_url=api.base_url, max_retries=0)
        streamed = s.chat("Green or black?", stream=True)
        assert api.requests[-1].json["stream_options"] == {"include_usage": True}
        assert streamed.usage.total_tokens and s.totals["tokens"]
        whole = s.chat("And now?", stream=False)
        assert "stream_options" not in api.requests[-1].json and whole.usage.total_tokens
        s.close()


def kettle(tea: str) -> str:
    """The water temperature for a tea."""
    return f"{tea}: 80 °C"


@pytest.mark.parametrize("stream", [True, False])
def test_provider_fields_go_back_within_one_tool_loop_not_across_turns(session, api, stream):
    for name in ("deepseek_tool_call.json", "gemini_thought_signature.json"):
        entry = next(f for f in FIXTURES if f["file"] == name)
        api.queue(corpus.replay(entry), Reply(content="80 °C."))
        session.chat("How hot?", model=entry["model"], tools=[kettle], stream=stream)
        again = [m for m in api.requests[-1].json["messages"] if m.get("tool_calls")][-1]
        if name.startswith("deepseek"):
            assert again["reasoning_content"].startswith("The user wants the water temperature")
        else:
            assert again["tool_calls"][0]["extra_content"]["google"]["thought_signature"]
        session.chat("Thanks. And oolong?", model=entry["model"], stream=stream)
        later = api.requests[-1].json["messages"]
        assert not any("reasoning_content" in m or "extra_content" in str(m) for m in later)


@pytest.mark.parametrize("stream", [True, False])
def test_a_responses_only_model_streams_folds_and_continues(session, api, stream):
    api.queue(Reply(content="Sencha.", reasoning="A green tea, then."))
    first = session.chat("A green tea?", model="openai/gpt-5-4-pro", stream=stream,
                         system="Be brief.", max_completion_tokens=200)
    sent = api.requests[-1]
    assert sent.path.endswith("/responses") and sent.json["instructions"] == "Be brief."
    assert sent.json["max_output_tokens"] == 200 and "messages" not in sent.json
    assert (first.text, first.reasoning) == ("Sencha.", "A green tea, then.")
    assert first.usage.total_tokens and first.finish_reason == "stop"
    api.queue(Reply(content="Gyokuro."))
    session.chat("Another?", model="openai/gpt-5-4-pro", stream=stream)
    items = api.requests[-1].json["input"]
    assert [i.get("role") for i in items] == ["user", "assistant", "user"]
    assert items[1]["content"] == "Sencha." and "previous_response_id" not in api.requests[-1].json


def test_a_responses_tool_loop(session, api):
    api.queue(Reply(content=None, finish_reason="tool_calls",
                    tool_calls=[{"name": "kettle", "arguments": {"tea": "green"}, "id": "call_k"}]),
              Reply(content="Use 80 °C."))
    resp = session.chat("How hot?", model="openai/gpt-5-4", tools=[kettle])
    assert resp.text == "Use 80 °C." and resp.tool_calls[0].result == "green: 80 °C"
    items = api.requests[-1].json["input"]
    assert items[-2]["type"] == "function_call" and items[-1] == {
        "type": "function_call_output", "call_id": "call_k", "output": "green: 80 °C"}


def test_the_services_refusal_on_chat_routes_a_model_to_responses(session, api):
    api.responses_only.append("vendor/new-responses-model")
    api.queue(Reply(content="Hello from /responses."))
    resp = session.chat("hi", model="vendor/new-responses-model")
    assert resp.text == "Hello from /responses."
    paths = [r.path.rsplit("/", 1)[-1] for r in api.requests]
    assert paths[-2:] == ["completions", "responses"]
    api.queue(Reply(content="Again."))
    session.chat("again", model="vendor/new-responses-model")
    assert api.requests[-1].path.endswith("/responses")  # remembered: no second refusal


def test_dry_run_and_snippet_name_the_endpoint(shell, api):
    run = run_cell(shell, '%%aiml --dry-run -m openai/gpt-5-4 -s "Be brief."\nTea?')
    assert run.error is None and "/v1/responses" in run.shown and '"instructions": "Be brief."' in run.shown
    assert '"input"' in run.shown and '"messages"' not in run.shown
    run = run_cell(shell, "%%aiml --dry-run\nTea?")
    assert "/v1/chat/completions" in run.shown and '"include_usage": true' in run.shown
    assert api.chat_requests == [] and not [r for r in api.requests if r.path.endswith("/responses")]
    api.queue(Reply(content="Sencha."))
    assert run_cell(shell, "%%aiml -m openai/gpt-5-4\nTea?").error is None
    code = shell.user_ns["aiml_response"] and run_cell(shell, "%aiml snippet").shown
    assert "/v1/responses" in code and '"input"' in code and "output_text" in code
    compile(code.split("```python\n")[-1].split("```")[0], "snippet", "exec")


def test_a_cell_refuses_what_the_responses_endpoint_lacks_before_sending(shell, api):
    run = run_cell(shell, "%%aiml -m openai/gpt-5-4 --seed 3\nTea?")
    assert "Responses endpoint" in str(run.error) and "seed" in str(run.error)
    assert api.requests == []
