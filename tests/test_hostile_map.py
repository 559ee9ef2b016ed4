"""``map()`` against a hostile service: every wait has a deadline, billed requests are not resent,
and the credit budget cannot be talked out of stopping (issue 21).

Durations are bounds a hostile server would otherwise stretch to half an hour; they are checked
loosely (several times the expected figure), never as speed targets.
"""

from __future__ import annotations

import json
import time

import pytest

from aiml_magics import Session
from aiml_magics.batch import Failure
from aiml_magics.errors import ParameterError
from tests.conftest import KEY_VARS, TEST_KEY
from tests.hostile import HostileServer, body_json, completion, send, whole


@pytest.fixture
def hostile(monkeypatch):
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    with HostileServer() as server:
        yield server


def session_for(server: HostileServer, **kw) -> Session:
    return Session(api_key=TEST_KEY, base_url=server.base_url, max_retries=0, **kw)


def rate_limited(retry_after: str) -> object:
    body = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
    return whole(body, status=429, headers=[("Retry-After", retry_after)])


def ok(text: str, credits: object = 10) -> object:
    body = completion(text)
    body["meta"] = {"usage": {"credits_used": credits}}
    return whole(body_json(body))


def timed_map(s: Session, prompts: list[str], **kw):
    from aiml_magics import map as aiml_map

    started = time.monotonic()
    batch = aiml_map(prompts, session=s, progress=False, concurrency=2, **kw)
    return batch, time.monotonic() - started


def test_a_retry_after_past_max_wait_fails_the_item_at_once(hostile):
    hostile.queue(*[rate_limited("60") for _ in range(40)])
    batch, took = timed_map(session_for(hostile), ["a", "b", "c"], max_wait=5)
    assert took < 10  # was: 60 s honoured 30 times per item
    assert all(isinstance(r, Failure) and r.kind == "rate-limit" for r in batch), batch.results
    assert "max_wait = 5 s" in batch[0].message and batch[0].status == 429


def test_endless_short_retry_afters_stop_at_each_items_max_wait(hostile):
    hostile.queue(*[rate_limited("1") for _ in range(200)])
    batch, took = timed_map(session_for(hostile, max_wait=2.0), ["a", "b", "c"])  # the setting
    assert took < 12
    assert [r.kind for r in batch] == ["rate-limit"] * 3
    assert len(hostile.chat_requests) < 3 * 6


def test_a_batch_ends_by_its_deadline_plus_one_request_timeout(hostile):
    hang = send(b"", then="hold")  # accepts the request, never answers
    hostile.queue(*[hang for _ in range(10)])
    s = session_for(hostile, timeout=1.0)
    batch, took = timed_map(s, [f"p{i}" for i in range(10)], deadline=1.5)
    assert took < 1.5 + 1.0 + 2.0  # deadline + one request's timeout (+ slack for a busy machine)
    kinds = [r.kind for r in batch]
    assert "not sent: deadline" in kinds and batch.stopped == "deadline"
    assert all(isinstance(r, Failure) for r in batch)


def test_a_request_that_may_have_been_billed_is_not_resent(hostile):
    hang = send(b"", then="hold")
    hostile.queue(hang)
    s = session_for(hostile, timeout=0.5)
    batch, _ = timed_map(s, ["only once"], retries=3)
    assert batch[0].kind == "ResponseTimeout" and batch[0].attempts == 1
    assert len(hostile.chat_requests) == 1
    hostile.queue(hang, hang, ok("third time"))
    again, _ = timed_map(s, ["asked to"], retries=3, backoff=0.01, retry_maybe_billed=True)
    assert again[0].text == "third time" and len(hostile.chat_requests) == 4


@pytest.mark.parametrize("credits", [-1000, None, "NaN", 1e308 * 10])
def test_the_budget_is_not_defeated_by_negative_or_missing_credits(hostile, credits):
    hostile.queue(*[ok(f"a{i}", credits) for i in range(20)])
    batch, _ = timed_map(session_for(hostile), [f"p{i}" for i in range(20)], budget=5)
    assert batch.stopped == "budget"
    answered = [r for r in batch if not isinstance(r, Failure)]
    assert 1 <= len(answered) <= 2  # at most what was in flight (concurrency 2)


def test_the_budget_overshoots_by_at_most_the_requests_in_flight(hostile):
    hostile.queue(*[ok(f"a{i}", 10) for i in range(30)])
    batch, _ = timed_map(session_for(hostile), [f"p{i}" for i in range(30)], budget=35)
    answered = [r for r in batch if not isinstance(r, Failure)]
    assert 4 <= len(answered) <= 4 + 2 and batch.stopped == "budget"


@pytest.mark.parametrize("arg", [{"max_wait": 0}, {"max_wait": -1}, {"deadline": float("nan")},
                                 {"deadline": True}])
def test_bad_bounds_are_refused_before_anything_is_sent(hostile, arg):
    with pytest.raises(ParameterError, match="use a number of seconds > 0"):
        timed_map(session_for(hostile), ["x"], **arg)
    assert hostile.requests == []
