"""Every kind of body the package sends, checked against the official ``openai`` SDK's own types.

The SDK is a test dependency only (the package never imports it): its ``TypedDict`` request
params, validated strictly by pydantic, say what a real OpenAI-compatible server accepts. The
bodies are the ones ``endpoints.wire_body`` gives the transport, so what is checked is what goes.
"""

from __future__ import annotations

import sys
import typing

import pytest

from aiml_magics import ParameterError, Session
from aiml_magics.endpoints import CHAT, RESPONSES, endpoint_for, is_aiml_host, wire_body

pydantic = pytest.importorskip("pydantic")
openai_chat = pytest.importorskip("openai.types.chat.completion_create_params")
openai_responses = pytest.importorskip("openai.types.responses.response_create_params")

PROXY = "http://127.0.0.1:4000/v1"  # a LiteLLM proxy, a vLLM server: not the AI/ML API
AIML = "https://api.aimlapi.com/v1"


def check(body: dict[str, typing.Any], endpoint: str) -> None:
    """Strict validation (no float for an int) and no key the SDK type does not know."""
    if endpoint == CHAT:
        kind = (openai_chat.CompletionCreateParamsStreaming if body.get("stream")
                else openai_chat.CompletionCreateParamsNonStreaming)
    else:
        kind = (openai_responses.ResponseCreateParamsStreaming if body.get("stream")
                else openai_responses.ResponseCreateParamsNonStreaming)
    unknown = set(body) - set(typing.get_type_hints(kind))
    assert not unknown, f"keys the SDK does not know: {unknown}"
    pydantic.TypeAdapter(kind).validate_python(body, strict=True)


def kettle(tea: str, minutes: int = 3) -> str:
    """How hot the water should be for a tea."""
    return f"{tea}: 80 °C"


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
IMAGE = "https://example.org/teapot.png"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("AIML_API_KEY", raising=False)
    s = Session(api_key="sk-test-bodies", base_url=PROXY)
    yield s
    s.close()


KINDS = {
    "plain": dict(stream=False),
    "stream": dict(stream=True, temperature=0.5, max_completion_tokens=200, top_p=0.9),
    "legacy max_tokens": dict(stream=False, max_tokens=100),
    "stop and seed": dict(stream=True, stop=["END"], seed=7, frequency_penalty=0.1),
    "system": dict(stream=True, system="Answer briefly."),
    "tools": dict(stream=True, tools=[kettle], tool_choice="kettle"),
    "schema": dict(stream=False, schema=SCHEMA),
    "json": dict(stream=True, json=True),
    "images": dict(stream=True, images=[IMAGE]),
}


@pytest.mark.parametrize("base", [PROXY, AIML])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_chat_body_is_what_the_sdk_accepts(offline, kind, base):
    payload = offline.prepare("Which tea?", model="gpt-4o", **KINDS[kind]).payload
    path, body = wire_body(payload, base)
    assert path == CHAT
    check(body, CHAT)
    streamed = KINDS[kind]["stream"]
    if streamed and base == PROXY:
        assert body["stream_options"] == {"include_usage": True}
    else:  # never on a non-streamed request; never to the AI/ML API itself
        assert "stream_options" not in body


def test_max_tokens_is_an_integer_and_a_fraction_is_refused_before_sending(offline):
    assert offline.prepare("hi", max_tokens=100).payload["max_tokens"] == 100
    assert type(offline.prepare("hi", max_tokens=100.0).payload["max_tokens"]) is int
    with pytest.raises(ParameterError, match="max_tokens"):
        offline.prepare("hi", max_tokens=100.5)


RESPONSE_KINDS = {
    "plain": dict(stream=False),
    "stream": dict(stream=True, temperature=0.5, top_p=0.9),
    "system -> instructions": dict(stream=True, system="Answer briefly."),
    "max_completion_tokens -> max_output_tokens": dict(stream=False, max_completion_tokens=300),
    "schema -> text.format": dict(stream=False, schema=SCHEMA),
    "json -> text.format": dict(stream=True, json=True),
    "tools flattened": dict(stream=True, tools=[kettle], tool_choice="kettle"),
    "images -> input_image": dict(stream=True, images=[IMAGE]),
}


@pytest.mark.parametrize("kind", list(RESPONSE_KINDS))
def test_every_responses_body_is_what_the_sdk_accepts(offline, kind):
    options = RESPONSE_KINDS[kind]
    payload = offline.prepare("Which tea?", model="openai/gpt-5-4", **options).payload
    assert endpoint_for(payload["model"]) == RESPONSES
    path, body = wire_body(payload, AIML, RESPONSES)
    assert path == RESPONSES
    check(body, RESPONSES)
    assert "previous_response_id" not in body and "store" not in body and "messages" not in body
    if "system" in options:
        assert body["instructions"] == "Answer briefly."
        assert all(item.get("role") != "system" for item in body["input"])
    if "max_completion_tokens" in options:
        assert body["max_output_tokens"] == 300
    if "schema" in options:
        assert body["text"]["format"]["type"] == "json_schema"
        assert body["text"]["format"]["schema"]["properties"] == SCHEMA["properties"]
    if "tools" in options:
        assert body["tools"][0]["name"] == "kettle" and "function" not in body["tools"][0]
        assert body["tool_choice"] == {"type": "function", "name": "kettle"}
    if "images" in options:
        parts = body["input"][-1]["content"]
        assert {"type": "input_image", "image_url": IMAGE, "detail": "auto"} in parts


def test_a_tool_round_goes_back_as_input_items(offline):
    payload = offline.prepare("Which tea?", model="openai/gpt-5-4", stream=False, tools=[kettle]).payload
    payload["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "kettle", "arguments": '{"tea": "green"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "green: 80 °C"},
    ]
    _, body = wire_body(payload, AIML, RESPONSES)
    check(body, RESPONSES)
    assert body["input"][-2:] == [
        {"type": "function_call", "call_id": "call_1", "name": "kettle", "arguments": '{"tea": "green"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "green: 80 °C"},
    ]


@pytest.mark.parametrize("option", [dict(stop=["END"]), dict(seed=3), dict(presence_penalty=0.5),
                                    dict(max_tokens=50)])
def test_what_the_responses_endpoint_lacks_is_refused_before_sending(offline, option):
    with pytest.raises(ParameterError, match="Responses endpoint"):
        offline.prepare("hi", model="openai/gpt-5-4-pro", **option)
    payload = dict(offline.prepare("hi", model="gpt-4o", **option).payload, model="openai/o3-pro")
    with pytest.raises(ParameterError, match="Responses endpoint"):
        wire_body(payload, AIML, RESPONSES)  # and at the wire, for a body built elsewhere


def test_the_aiml_host_rule():
    assert is_aiml_host("https://api.aimlapi.com/v1") and is_aiml_host("https://API.aimlapi.com.")
    assert not is_aiml_host("https://api.aimlapi.com.evil.example/v1")
    assert not is_aiml_host("http://127.0.0.1:8000/v1") and not is_aiml_host("https://api.openai.com/v1")


def test_the_package_never_imports_the_sdk():
    import subprocess

    code = ("import sys, aiml_magics; from aiml_magics import endpoints, responses_api, "
            "responses_events, reasoning; print('openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
