"""Tool calls from a hostile stream: malformed fragments are skipped with a warning (never a
traceback), one round runs at most ``MAX_CALLS_PER_ROUND`` calls, and ``--confirm-tools`` shows the
arguments whole or says how much is hidden (issue 21)."""

from __future__ import annotations

import json

import pytest

from aiml_magics.toolloop import CONFIRM_CHARS, MAX_CALLS_PER_ROUND
from tests.conftest import run_cell
from tests.fakeapi import ToolModel
from tests.hostile import HostileServer, chunk, event, head, send

RAN: list[str] = []


def ping(n: int = 0, note: str = "") -> str:
    """Say pong."""
    RAN.append(str(n))
    return "pong"


@pytest.fixture
def hostile(shell):
    with HostileServer() as server:
        shell.run_line_magic("config", f"AIMLMagics.base_url = {server.base_url!r}")
        shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
        yield server


def tool_stream(fragments: list[object]) -> object:
    events = [event({"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [f]}}]})
              for f in fragments]
    events += [event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), event(b"[DONE]")]
    return send(head() + b"".join(chunk(e) for e in events) + b"0\r\n\r\n")


@pytest.mark.parametrize("bad", [
    {"index": [1], "function": {"name": "ping", "arguments": "{}"}},
    {"index": 10**12, "function": {"name": "ping", "arguments": "{}"}},
    {"index": -1, "function": {"name": "ping", "arguments": "{}"}},
    {"index": "0", "function": {"name": "ping", "arguments": "{}"}},
    {"index": True, "function": {"name": "ping", "arguments": "{}"}},
    {"index": {"a": 1}, "function": {"name": "ping", "arguments": "{}"}},
    {"index": 0, "function": {"name": {"evil": 1}, "arguments": "{}"}},
    {"index": 0, "function": {"name": ["ping"], "arguments": "{}"}},
], ids=["list", "huge", "negative", "string", "bool", "dict", "dict-name", "list-name"])
def test_a_malformed_fragment_is_skipped_with_a_warning(shell, hostile, bad):
    hostile.queue(tool_stream([bad]))
    run = run_cell(shell, "%%aiml\nhello")
    assert "Traceback" not in run.shown and not isinstance(run.error, TypeError), run.shown
    resp = shell.user_ns["aiml_response"]
    assert any("malformed tool-call fragment" in w for w in resp.warnings), resp.warnings
    assert resp.tool_calls == []


def test_one_round_runs_at_most_the_cap(session, api):
    RAN.clear()
    api.queue(ToolModel(calls=[("ping", {"n": i}) for i in range(MAX_CALLS_PER_ROUND + 50)]))
    resp = session.chat("many", tools=[ping], display=False)
    assert len(RAN) == MAX_CALLS_PER_ROUND  # was: 5,000 ran in one round
    errors = [c.error for c in resp.tool_calls if c.error]
    assert len(errors) == 50 and f"at most {MAX_CALLS_PER_ROUND} run" in errors[0]


def test_confirm_shows_the_arguments_whole_or_how_much_is_hidden(session, api, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    long = "x" * 300
    api.queue(ToolModel(calls=[("ping", {"n": 1, "note": long})]))
    session.chat("one", tools=[ping], confirm_tools=True, display=False)
    assert long in asked[0]  # the whole arguments: what is approved is what runs
    huge = "y" * (CONFIRM_CHARS + 5000)
    api.queue(ToolModel(calls=[("ping", {"n": 2, "note": huge})]))
    session.chat("two", tools=[ping], confirm_tools=True, display=False)
    assert "more characters not shown" in asked[1] and len(asked[1]) < CONFIRM_CHARS + 300
    assert json.dumps(huge)[:50].strip('"') in asked[1]
