"""Structured answers: the schema sent as the service accepts it, the answer checked locally.

Against the loopback fake: a dict schema and a pydantic model, from ``chat(schema=)`` and from
``%%aiml --schema`` cells in a real IPython shell; a violating answer fails in one paragraph.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from aiml_magics.schema import SchemaMismatch, clean, first_violation, response_format
from tests.conftest import run_cell
from tests.fakeapi import Reply


class Address(BaseModel):
    city: str
    zip: str


class Person(BaseModel):
    name: str
    age: int
    title: str  # a property called "title" must survive the cleaning
    address: Address


PERSON = {"name": "Ada", "age": 36, "title": "Countess",
          "address": {"city": "London", "zip": "W1"}}
DICT_SCHEMA = {
    "title": "Score",
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["good", "bad"]},
                   "score": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["label", "score"],
    "additionalProperties": False,
    "strict": True,
}


def _walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_pydantic_schema_is_inlined_and_cleaned():
    fmt = response_format(Person)
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    schema = fmt["json_schema"]["schema"]
    keys = {k for node in _walk(schema) if isinstance(node, dict) for k in node}
    assert not keys & {"$ref", "$defs", "strict"}
    assert all("title" not in node or node is schema["properties"] for node in _walk(schema)
               if isinstance(node, dict))
    assert "title" in schema["properties"]  # the field, not the keyword
    assert schema["properties"]["address"]["properties"]["city"] == {"type": "string"}


def test_recursive_schema_is_refused_in_words():
    from aiml_magics import ParameterError

    loop = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
            "$ref": "#/$defs/N"}
    with pytest.raises(ParameterError, match="refers to itself"):
        clean(loop)


def test_own_validator_names_the_first_violation():
    schema = clean(DICT_SCHEMA)
    assert first_violation(schema, {"label": "good", "score": 0.5}) is None
    assert first_violation(schema, {"label": "meh", "score": 0.5}) == (
        "answer.label: 'meh' is not one of ['good', 'bad']")
    assert "answer.score: 2 breaks maximum 1" == first_violation(schema, {"label": "good", "score": 2})
    assert "'score' is a required property" in first_violation(schema, {"label": "good"})
    assert "additional property 'x'" in first_violation(schema, {"label": "bad", "score": 0, "x": 1})
    assert "not of type number" in first_violation(schema, {"label": "bad", "score": True})


def test_chat_with_a_dict_schema_sends_it_and_parses_data(session, api):
    api.queue(Reply(content='```json\n{"label": "good", "score": 0.9}\n```'))
    resp = session.chat("rate it", schema=DICT_SCHEMA)
    sent = api.last_json["response_format"]
    assert sent["json_schema"]["name"] == "Score"
    assert "strict" not in sent["json_schema"]["schema"] and "title" not in sent["json_schema"]["schema"]
    assert resp.data == {"label": "good", "score": 0.9}


def test_chat_with_a_pydantic_model_gives_an_instance(session, api):
    api.queue(Reply(content=json.dumps(PERSON)))
    resp = session.chat("who", schema=Person)
    assert isinstance(resp.data, Person) and resp.data.address.city == "London"


def test_violating_answer_raises_one_paragraph_and_keeps_the_text(session, api):
    api.queue(Reply(content='{"label": "good", "score": 7}'))
    with pytest.raises(SchemaMismatch) as info:
        session.chat("rate", schema=DICT_SCHEMA)
    message = str(info.value)
    assert "\n" not in message and "score" in message and "maximum" in message
    assert session.last_response.text == '{"label": "good", "score": 7}'
    assert session.last_response.data is None
    assert len(session.history) == 1


def test_cell_schema_from_a_dict_and_from_a_model(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "Score", DICT_SCHEMA)
    monkeypatch.setitem(shell.user_ns, "Person", Person)
    api.queue(Reply(content='{"label": "bad", "score": 0.1}'), Reply(content=json.dumps(PERSON)))
    assert run_cell(shell, "%%aiml --schema Score\nrate this").error is None
    assert shell.user_ns["aiml_response"].data == {"label": "bad", "score": 0.1}
    assert api.last_json["response_format"]["type"] == "json_schema"
    assert run_cell(shell, "%%aiml --schema Person\nwho").error is None
    assert shell.user_ns["aiml_response"].data.name == "Ada"


def test_cell_with_a_violating_answer_fails_and_the_next_cell_works(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "Person", Person)
    api.queue(Reply(content='{"name": "Ada", "age": "old"}'))
    run = run_cell(shell, "%%aiml --schema Person\nwho")
    assert run.error is not None
    text = "".join(run.error._render_traceback_())
    assert "Person" in text and "age" in text and "Traceback" not in text
    assert shell.user_ns["aiml_response"].text == '{"name": "Ada", "age": "old"}'
    assert shell.user_ns["aiml_response"].data is None
    assert run_cell(shell, "%%aiml\nnext").error is None


def test_unknown_schema_name_fails_before_sending(shell, api, monkeypatch):
    monkeypatch.setitem(shell.user_ns, "notaschema", 5)
    run = run_cell(shell, "%%aiml --schema notaschema\nwho")
    assert run.error is not None and "int" in str(run.error) and not api.chat_requests
