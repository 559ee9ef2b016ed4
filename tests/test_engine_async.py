"""``map()``'s asyncio engine (aiohttp) against the loopback fakes, side by side with the thread
engine: the same answers, retries, stops and failure kinds, and the key in none of them.

Behaviour, not timing (durations are loose bounds a hang would blow, never speed targets).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

import aiml_magics
from aiml_magics import Failure, ParameterError, Session
from tests.conftest import KEY_VARS, TEST_KEY
from tests.fakeapi import Error, Reply
from tests.hostile import (
    HostileServer,
    body_json,
    completion,
    gzip_bomb,
    head,
    send,
    whole,
)

pytest.importorskip("aiohttp")

ENGINES = ["threads", "async"]


def _prompt(rec) -> str:
    return rec.json["messages"][-1]["content"]


def run(session, prompts, engine, **kw):
    kw.setdefault("progress", False)
    return aiml_magics.map(prompts, session=session, engine=engine, **kw)


def test_auto_picks_the_async_engine_and_threads_remain_a_choice(session, api):
    seen: list[set[str]] = []

    def reply(rec):
        seen.append({t.name for t in threading.enumerate()})
        return Reply(echo=True)

    api.default = reply
    run(session, ["a"], "auto")
    assert "aiml-map-loop" in seen[-1]
    run(session, ["b"], "threads")
    assert "aiml-map-loop" not in seen[-1]  # and the first batch's loop has ended
    with pytest.raises(ParameterError, match="engine"):
        run(session, ["a"], "fibers")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool, pytest.raises(ParameterError, match="executor"):
        run(session, ["a"], "async", executor=pool)
    assert len(api.chat_requests) == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_answers_in_input_order_with_request_ids(session, api, engine):
    delays = {f"p{i}": 0.02 * (7 - i) for i in range(8)}  # later items are answered sooner
    api.default = lambda rec: Reply(echo=True, delay=delays[_prompt(rec)])
    batch = run(session, list(delays), engine, concurrency=8)
    assert batch.texts() == [f"echo: {p}" for p in delays]
    sent = {_prompt(r): r.headers["x-client-request-id"] for r in api.chat_requests}
    assert [sent[p] for p in delays] == batch.request_ids
    assert batch.credits == 8 * 2002 and all(r.usage.total_tokens for r in batch)


@pytest.mark.parametrize("engine", ENGINES)
def test_429_with_retry_after_then_success(session, api, engine):
    first = threading.Event()
    log: list[tuple[float, str]] = []

    def reply(rec):
        log.append((time.monotonic(), _prompt(rec)))
        if not first.is_set():
            first.set()
            return Error(429, headers={"Retry-After": "1"})
        return Reply(echo=True, delay=0.05)

    api.default = reply
    batch = run(session, [f"p{i}" for i in range(6)], engine, concurrency=3)
    assert not batch.failures and batch.texts() == [f"echo: p{i}" for i in range(6)]
    assert min(t for t, _ in log[3:]) >= log[0][0] + 0.9  # the pause held every new send
    assert [p for _, p in log].count(log[0][1]) == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_500_is_retried_and_a_400_is_not(session, api, engine):
    seen: dict[str, int] = {}

    def reply(rec):
        p = _prompt(rec)
        seen[p] = seen.get(p, 0) + 1
        if p == "bad":
            return Error(400, "Body validation error! nope")
        if p == "flaky" and seen[p] < 3:
            return Error(500)
        return Reply(echo=True)

    api.default = reply
    batch = run(session, ["ok", "bad", "flaky"], engine, backoff=0.01)
    assert batch.texts() == ["echo: ok", "", "echo: flaky"]
    assert batch[1].status == 400 and "nope" in batch[1].message and seen == {
        "ok": 1, "bad": 1, "flaky": 3}


@pytest.mark.parametrize("engine", ENGINES)
def test_budget_stops_submitting(session, api, engine):
    api.default = Reply(echo=True, credits=2002)
    batch = run(session, [f"p{i}" for i in range(10)], engine, concurrency=1, budget=5000)
    assert batch.stopped == "budget" and len(api.chat_requests) == 3
    assert [r.message for r in batch[3:]] == ["not sent: budget"] * 7


@pytest.mark.parametrize("engine", ENGINES)
def test_the_deadline_stops_new_sends(session, api, engine):
    api.default = Reply(echo=True, delay=0.3)
    started = time.monotonic()
    batch = run(session, [f"p{i}" for i in range(20)], engine, concurrency=2, deadline=0.5)
    assert time.monotonic() - started < 5
    assert batch.stopped == "deadline"
    answered = [r for r in batch if not isinstance(r, Failure)]
    assert 2 <= len(answered) <= 6 and batch[-1].kind == "not sent: deadline"


# -- a hostile service: each script answers one request, the same on both engines ---------------

def _ok(text: str) -> object:
    return whole(body_json(completion(text)))


HOSTILE = {
    "huge": lambda: whole(b'{"choices": [' + b" " * (3 << 20) + b"]}"),
    "endless": lambda: send(head(content_type="application/json")
                            + b"".join(b"%x\r\n%s\r\n" % (65536, b" " * 65536) for _ in range(64)),
                            then="hold"),
    "not json": lambda: whole(b"<html>gateway says hi</html>", content_type="text/html"),
    "not an answer": lambda: whole(b"[1, 2, 3]"),
    "gzip bomb": lambda: whole(gzip_bomb(64 << 20, prefix=b'{"x": "'),
                               headers=[("Content-Encoding", "gzip")]),
    "cut body": lambda: whole(body_json(completion("hi"))[:20], length=400),
    "reset": lambda: send(b"", then="reset"),
    "not http": lambda: send(b"SSH-2.0-OpenSSH_9.0\r\n\r\n"),
    "error 200": lambda: whole(json.dumps({"error": {"message": "upstream fell over"}}).encode()),
}


@pytest.fixture
def hostile(monkeypatch):
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    with HostileServer() as server:
        yield server


def _hostile_batch(server, engine, scripts):
    s = Session(api_key=TEST_KEY, base_url=server.base_url, max_retries=0,
                max_answer_bytes=1 << 20, timeout=5)
    server.queue(*scripts)
    try:
        started = time.monotonic()
        batch = run(s, [f"p{i}" for i in range(len(scripts))], engine, concurrency=1, retries=0)
        return batch, time.monotonic() - started
    finally:
        s.close()


def test_hostile_answers_are_failures_of_the_same_kind_on_both_engines(hostile):
    names = list(HOSTILE)
    seen = {}
    for engine in ENGINES:
        scripts = [HOSTILE[n]() for n in names] + [_ok("after all that")]
        batch, took = _hostile_batch(hostile, engine, scripts)
        assert took < 30, engine  # nothing hung on a body that never ends
        assert batch[-1].text == "after all that", (engine, batch[-1])
        seen[engine] = [(n, type(r).__name__, getattr(r, "kind", ""), getattr(r, "status", None))
                        for n, r in zip(names, batch, strict=False)]
        for n, r in zip(names, batch, strict=False):
            assert isinstance(r, Failure), (engine, n, r)
            assert TEST_KEY not in r.message and TEST_KEY not in repr(r)
            assert "Traceback" not in r.message
        kinds = dict((n, k) for n, _, k, _ in seen[engine])
        assert kinds["huge"] == kinds["endless"] == kinds["gzip bomb"] == "LimitError"
        assert kinds["not json"] == kinds["not an answer"] == "ProtocolError"
        assert kinds["error 200"] == "ServerError"
    assert seen["threads"] == seen["async"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_key_is_in_no_failure_and_no_repr(session, api, engine):
    api.default = lambda rec: Error(401) if _prompt(rec) == "p0" else Error(
        400, f"you sent {TEST_KEY} and {rec.headers.get('authorization')}")
    batch = run(session, ["p0", "p1"], engine)
    for r in batch:
        assert isinstance(r, Failure)
        for text in (r.message, repr(r), str(r), repr(batch)):
            assert TEST_KEY not in text and TEST_KEY[8:20] not in text
    frame = batch.to_dataframe()
    assert TEST_KEY not in frame.to_string()


def test_parity_of_a_mixed_batch(session, api):
    seen: dict[str, int] = {}

    def reply(rec):
        p = _prompt(rec)
        seen[p] = seen.get(p, 0) + 1
        if p.startswith("bad"):
            return Error(422, "nope")
        if p.startswith("flaky") and seen[p] % 2:
            return Error(503)
        if p.startswith("html"):
            return Error(502, shape="html")
        return Reply(echo=True)

    api.default = reply
    prompts = ["ok0", "bad1", "flaky2", "html3", "ok4", "flaky5", "bad6"]
    out = {}
    for engine in ENGINES:
        seen.clear()
        batch = run(session, prompts, engine, backoff=0.01, retries=1, cache=False)
        out[engine] = [(r.text, getattr(r, "kind", None), getattr(r, "status", None),
                        getattr(r, "message", None)) for r in batch]
    assert out["threads"] == out["async"]
    assert out["async"][0][0] == "echo: ok0" and out["async"][1][2] == 422


def test_the_store_and_cache_serve_the_async_engine(session, api):
    api.default = Reply(echo=True)
    first = run(session, ["a", "b"], "async")
    again = run(session, ["a", "b"], "async")
    assert len(api.chat_requests) == 2  # the second batch came from the cache
    assert again.texts() == first.texts() and {r.source for r in again} == {"cache"}
    assert len(aiml_magics.log(session=session)) >= 2


def test_without_aiohttp_auto_falls_back_to_threads_and_async_says_what_to_install(
        session, api, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if the extra were not installed
    seen: list[set[str]] = []

    def reply(rec):
        seen.append({t.name for t in threading.enumerate()})
        return Reply(echo=True)

    api.default = reply
    batch = run(session, ["a", "b"], "auto")
    assert batch.texts() == ["echo: a", "echo: b"] and "aiml-map-loop" not in seen[-1]
    with pytest.raises(ParameterError, match=r"aiml-magics\[fast\]"):
        run(session, ["c"], "async")
    assert len(api.chat_requests) == 2
