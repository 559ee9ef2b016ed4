"""The cassette module on its own: file format, matching, recording, the offline echo. No IPython."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiml_magics.cassette import (
    ECHO,
    FORMAT,
    REPLAYED,
    VERSION,
    Cassette,
    offline_echo,
    pieces,
    request_key,
    shipped_cassette,
)
from aiml_magics.errors import AIMLError, register_secret
from aiml_magics.response import ChatResponse, Usage
from tests.conftest import TEST_KEY

DOCS_MODEL = "baidu/ernie-5-0-thinking-preview"
DOCS_PROMPT = "Hi! What do you think about mankind?"
DOCS_URL = "https://docs.aimlapi.com/api-references/text-models-llm/baidu/ernie-5.0-thinking-preview"


def payload(prompt: str = DOCS_PROMPT, **params) -> dict:
    return {"model": DOCS_MODEL, "messages": [{"role": "user", "content": prompt}], **params}


# -- the shipped cassette ------------------------------------------------------------------------


def test_shipped_cassette_is_the_published_docs_answer():
    cassette = Cassette.load(shipped_cassette())
    assert len(cassette) == 1
    rec = cassette.recordings[0]
    assert rec.source["url"] == DOCS_URL and "published" in rec.source["kind"]
    # The fields replay uses agree with the published body kept verbatim beside them.
    published = ChatResponse.from_body(rec.response["raw"])
    resp = rec.to_response(payload())
    assert resp.text == published.text and resp.reasoning == published.reasoning
    assert resp.model == published.model == "ernie-5.0-thinking-preview"
    assert resp.usage.as_dict() == published.usage.as_dict() == {
        "prompt_tokens": 13, "completion_tokens": 1048, "total_tokens": 1061, "reasoning_tokens": 450,
    }
    assert resp.credits_used == published.credits_used == 2002
    assert resp.finish_reason == "stop" and resp.complete
    assert resp.text.startswith("As an AI, I don’t have feelings")
    assert "### 1. The Ultimate Paradox" in resp.text and "\n*   **Creation vs. Destruction**" in resp.text
    assert resp.reasoning.startswith('The user wants my "opinion" on mankind.')
    assert rec.response["raw"]["id"] == "as-yhapvjf5ht" and rec.response["raw"]["created"] == 1768941527
    assert resp.source == REPLAYED and DOCS_URL in resp.provenance


def test_shipped_cassette_matches_the_docs_request_streamed_or_not():
    cassette = Cassette.load(shipped_cassette())
    assert cassette.find(payload()) is cassette.recordings[0]
    assert cassette.find(payload(stream=True, stream_options={"include_usage": True})) is not None
    assert cassette.find(payload(temperature=0.7)) is None
    assert cassette.find(payload("Hi! What do you think about mankind")) is None
    # The default model (the docs model's successor) gets it too, any other model does not.
    assert cassette.find({**payload(), "model": "baidu/ernie-5.0"}) is cassette.recordings[0]
    assert cassette.find({**payload(), "model": "gpt-4o"}) is None
    assert cassette.find({**payload(), "model": ["baidu/ernie-5.0"]}) is None
    assert "baidu/ernie-5.0" in cassette.recordings[0].source["note"]


def test_a_recording_may_name_several_models(tmp_path):
    path = tmp_path / "c.json"
    request = {"model": ["m-new", "m-old"], "messages": [{"role": "user", "content": "hi"}],
               "parameters": {"temperature": 0.5}}
    path.write_text(json.dumps({"format": "aiml-magics-cassette", "version": 1, "recordings": [
        {"request": request, "response": {"text": "hello"}, "source": {"description": "kept"}}]}))
    cassette = Cassette.load(path)
    asked = {"messages": [{"role": "user", "content": "hi\n"}], "temperature": 0.5, "stream": True}
    assert cassette.find({**asked, "model": "m-old"}).to_response(asked).text == "hello"
    assert cassette.find({**asked, "model": "m-new"}) is not None
    assert cassette.find({**asked, "model": "m-other"}) is None
    assert cassette.find({**asked, "model": "m-new", "temperature": 0.6}) is None
    assert cassette.recordings[0].request["model"] == ["m-new", "m-old"]  # matching copies, keeps


# -- matching ----------------------------------------------------------------------------------------


def test_request_key_ignores_transport_only():
    base = request_key(payload(temperature=1))
    assert base == request_key(payload(temperature=1.0, stream=True))
    assert base == {"model": DOCS_MODEL, "messages": payload()["messages"], "parameters": {"temperature": 1}}
    for other in (payload(temperature=1.1), payload(temperature=1, seed=3), payload("other", temperature=1)):
        assert request_key(other) != base
    json_mode = request_key(payload(response_format={"type": "json_object"}))
    assert json_mode["parameters"] == {"response_format": {"type": "json_object"}}


# -- recording and the file ----------------------------------------------------------------------


def answer(text: str = "## Recorded\n\n- one") -> ChatResponse:
    return ChatResponse(
        text=text, reasoning="why", model="upstream-name", finish_reason="stop",
        usage=Usage(5, 7, 12, 2), credits_used=40.0, usd_spent=0.00002,
    )


def test_record_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "tape.json"
    tape = Cassette.open_or_create(path)
    assert len(tape) == 0 and not path.exists()
    tape.record(payload("q1", temperature=0), answer("first"), "http://127.0.0.1:1/v1")
    tape.record(payload("q2"), answer(), "http://127.0.0.1:1/v1")
    tape.record(payload("q1", temperature=0), answer("first, again"), "http://127.0.0.1:1/v1")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert [r["response"]["text"] for r in data["recordings"]] == ["## Recorded\n\n- one", "first, again"]
    first = data["recordings"][1]
    assert first["request"] == {"model": DOCS_MODEL, "messages": [{"role": "user", "content": "q1"}],
                                "parameters": {"temperature": 0}}
    assert first["response"]["usage"]["reasoning_tokens"] == 2 and first["response"]["credits_used"] == 40
    assert first["source"]["kind"] == "recorded" and "127.0.0.1:1" in first["source"]["description"]
    assert first["source"]["recorded_at"].endswith("+00:00")
    assert [p.name for p in path.parent.iterdir()] == ["tape.json"]  # no temp file left behind
    again = Cassette.load(path)
    resp = again.find(payload("q1", temperature=0.0, stream=True)).to_response(payload("q1"))
    assert resp.text == "first, again" and resp.reasoning == "why" and resp.usage.total_tokens == 12
    assert resp.source == REPLAYED and "recorded live" in resp.provenance
    assert resp.raw["choices"][0]["message"]["content"] == "first, again"


def test_a_known_key_never_reaches_the_file(tmp_path):
    register_secret(TEST_KEY)
    tape = Cassette(tmp_path / "t.json")
    tape.record(payload(f"my key is {TEST_KEY}"), answer(f"echoing {TEST_KEY}"), "http://127.0.0.1:1/v1")
    text = (tmp_path / "t.json").read_text(encoding="utf-8")
    assert TEST_KEY not in text and "****HECK" in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "No cassette at"),
        ("{not json", "Cannot read the cassette"),
        ('{"recordings": []}', "is not an aiml-magics cassette"),
        (json.dumps({"format": FORMAT, "version": VERSION + 1, "recordings": []}), "upgrade aiml-magics"),
        (json.dumps({"format": FORMAT, "version": 1, "recordings": {}}), "must be a list"),
        (json.dumps({"format": FORMAT, "version": 1, "recordings": [{"request": {}}]}), "recording 0 needs"),
    ],
)
def test_bad_cassettes_are_refused_with_the_reason(tmp_path, content, words):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(AIMLError) as info:
        Cassette.load(path)
    assert words in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


# -- the offline echo ------------------------------------------------------------------------------


def test_offline_echo_mirrors_the_request_and_says_it_is_no_model():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "What about {braces}?\n\nSecond line."},
    ]
    resp = offline_echo({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2, "stream": True})
    text = resp.text
    assert text.startswith("**Offline echo: no language model was asked.**")
    assert "> What about {braces}?\n>\n> Second line." in text
    assert "`model` = `\"gpt-4o-mini\"`" in text and "`temperature` = `0.2`" in text
    assert "1 earlier turn (4 messages in this request, plus a system prompt)" in text
    assert "%aiml live" in text and "AIML_API_KEY" in text
    assert resp.source == ECHO and resp.model == "no model" and resp.reasoning is None
    assert resp.credits_used is None and resp.usage.total_tokens is None and resp.complete
    assert resp.requested_model == "gpt-4o-mini"


def test_offline_echo_in_json_mode_is_valid_json():
    resp = offline_echo(payload("list planets", response_format={"type": "json_object"}, seed=4))
    data = json.loads(resp.text)
    assert data["offline_echo"] is True and data["prompt"] == "list planets"
    assert data["would_send"]["seed"] == 4 and data["earlier_turns"] == 0
    assert "no language model" in data["note"].lower()


def test_pieces_rejoin_to_the_text():
    text = "Ünïcödé ✓ " * 30
    assert "".join(pieces(text)) == text and len(pieces(text)) > 3
    assert pieces(None) == [] and pieces("") == []


def test_cassette_module_is_pure():
    code = (
        "import sys, aiml_magics.cassette; "
        "print([m for m in ('IPython', 'ipywidgets', 'requests') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_loosely_typed_numbers_in_a_hand_edited_cassette_do_not_crash(tmp_path):
    data = json.loads(shipped_cassette().read_text(encoding="utf-8"))
    data["recordings"][0]["response"]["credits_used"] = "n/a"
    data["recordings"][0]["response"]["usd_spent"] = "0.001"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    resp = Cassette.load(path).find(payload()).to_response(payload())
    assert resp.credits_used is None and resp.usd_spent == 0.001
    assert resp.text.startswith("As an AI")
