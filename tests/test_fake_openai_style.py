"""The fake's OpenAI-style face and its Responses endpoint, checked over real HTTP.

So that tests elsewhere can trust it: usage in a stream only when asked (as OpenAI, LiteLLM and
vLLM do), ``stream_options`` refused without ``stream``, Responses-only models refused on the
chat endpoint, and ``POST /v1/responses`` answering in the Responses shapes.
"""

from __future__ import annotations

import json

import requests

from tests.fakeapi import FakeAIMLAPI, Reply

KEY = "sk-test-fake"
AUTH = {"Authorization": f"Bearer {KEY}"}


def events(resp: requests.Response) -> list[dict]:
    out = []
    for block in resp.content.decode().split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            out.append(json.loads(data[0]))
    return out


def test_an_openai_style_server_sends_streamed_usage_only_when_asked():
    with FakeAIMLAPI(key=KEY, flavor="openai") as api:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        plain = events(requests.post(f"{api.base_url}/chat/completions", json=body, headers=AUTH))
        asked = events(requests.post(f"{api.base_url}/chat/completions", headers=AUTH,
                                     json=dict(body, stream_options={"include_usage": True})))
        assert not any(e.get("usage") for e in plain) and not any("meta" in e for e in plain)
        assert asked[-1]["choices"] == [] and asked[-1]["usage"]["total_tokens"] > 0
        refused = requests.post(f"{api.base_url}/chat/completions", headers=AUTH,
                                json=dict(body, stream=False, stream_options={"include_usage": True}))
        assert refused.status_code == 400 and "stream_options" in refused.text


def test_the_responses_endpoint_streamed_and_not():
    with FakeAIMLAPI(key=KEY) as api:
        refused = requests.post(f"{api.base_url}/chat/completions", headers=AUTH, json={
            "model": "openai/gpt-5-4", "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 400 and "Responses endpoint" in refused.text
        api.queue(Reply(content="Green tea.", reasoning="Think of tea."))
        whole = requests.post(f"{api.base_url}/responses", headers=AUTH, json={
            "model": "openai/gpt-5-4",
            "input": [{"type": "message", "role": "user", "content": "tea?"}]}).json()
        assert [item["type"] for item in whole["output"]] == ["reasoning", "message"]
        assert whole["usage"]["output_tokens_details"]["reasoning_tokens"] == 3
        api.queue(Reply(content="Green tea."))
        resp = requests.post(f"{api.base_url}/responses", headers=AUTH, json={
            "model": "openai/gpt-5-4", "input": "tea?", "stream": True})
        streamed = events(resp)
        assert streamed[-1]["type"] == "response.completed" and "[DONE]" not in resp.text
        text = [e["delta"] for e in streamed if e["type"] == "response.output_text.delta"]
        assert "".join(text) == "Green tea."
        bad = requests.post(f"{api.base_url}/responses", headers=AUTH, json={
            "model": "openai/gpt-5-4", "input": "x", "max_tokens": 10})
        assert bad.status_code == 400 and "max_tokens" in bad.text
