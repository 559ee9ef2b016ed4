"""``map()``: many prompts against the loopback fake, on threads, processes and a dask cluster, and
the behaviour tests on both engines (threads and asyncio: the ``engine`` fixture).

Behaviour, not timing: order and index, what each request carried, what the server saw while a
429 pause was on, items lost (none), a failure among good items, Ctrl-C, budget, progress.
"""

from __future__ import annotations

import _thread
import functools
import io
import json
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest
from pydantic import BaseModel

import aiml_magics
from aiml_magics import Batch, Failure, ParameterError
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import Error, Reply


def _prompt(rec) -> str:
    return rec.json["messages"][-1]["content"]


@pytest.fixture(params=["threads", "async"])
def engine(request, monkeypatch):
    """The test's map() calls on one engine, then the other (the async one needs aiohttp)."""
    if request.param == "async":
        pytest.importorskip("aiohttp")
    monkeypatch.setattr(aiml_magics, "map", functools.partial(aiml_magics.map, engine=request.param))
    return request.param


def test_template_over_a_dataframe_keeps_order_and_index(session, api, engine):
    df = pd.DataFrame({"city": ["Oslo", "Lima", "Pune", "Nice", "Kobe"]},
                      index=pd.Index([50, 10, 40, 20, 30], name="id"))
    # Later rows are answered sooner: order must come from the input, not from arrival.
    delays = {"Oslo": 0.25, "Lima": 0.2, "Pune": 0.15, "Nice": 0.1, "Kobe": 0.0}

    def reply(rec):
        city = _prompt(rec).split()[-1]
        return Reply(echo=True, delay=delays[city])

    api.default = reply
    batch = aiml_magics.map("About {city}", df, session=session, concurrency=5, progress=False)
    assert isinstance(batch, Batch) and len(batch) == 5
    assert [r.text for r in batch] == [f"echo: About {c}" for c in df.city]
    frame = batch.to_dataframe()
    assert list(frame.index) == [50, 10, 40, 20, 30] and frame.index.name == "id"
    joined = df.join(frame[["text", "credits"]])
    assert list(joined.text) == [f"echo: About {c}" for c in df.city]
    assert list(frame.credits) == [2002] * 5 and frame.error.isna().all()


def test_prompts_list_and_request_ids_tie_to_rows(session, api, engine):
    rows = [{"q": "a b"}, {"q": "c/d"}]
    batch = aiml_magics.map("Q: {q}", rows, session=session, progress=False)
    assert batch.texts() == ["echo: Q: a b", "echo: Q: c/d"]
    sent = {_prompt(r): r.headers["x-client-request-id"] for r in api.chat_requests}
    for i, (prompt, rid) in enumerate(zip(batch.prompts, batch.request_ids, strict=True)):
        assert sent[prompt] == rid and rid.endswith(f"-{i}-{i}")
        assert len(rid) <= 128 and all(c.isalnum() or c in "._:-" for c in rid)
    assert list(batch.to_dataframe().request_id) == batch.request_ids
    odd = aiml_magics.map(pd.Series(["x"], index=["row one/ü" + "z" * 200]), session=session,
                          progress=False)
    rid = odd.request_ids[0]
    assert len(rid) == 128 and "row-one--" in rid
    assert api.chat_requests[-1].headers["x-client-request-id"] == rid


def test_a_failed_item_among_good_ones_and_retries_on_5xx(session, api, engine):
    seen: dict[str, int] = {}

    def reply(rec):
        p = _prompt(rec)
        seen[p] = seen.get(p, 0) + 1
        if p == "bad":
            return Error(400, "Body validation error! nope")
        if p == "flaky" and seen[p] < 3:
            return Error(503)
        return Reply(echo=True)

    api.default = reply
    batch = aiml_magics.map(["ok1", "bad", "flaky", "ok2"], session=session, progress=False,
                            backoff=0.01)
    assert [type(r).__name__ for r in batch] == ["ChatResponse", "Failure", "ChatResponse",
                                                 "ChatResponse"]
    failure = batch[1]
    assert failure.status == 400 and "nope" in failure.message and seen["bad"] == 1
    assert seen["flaky"] == 3 and batch[2].text == "echo: flaky"
    frame = batch.to_dataframe()
    assert frame.status[1] == 400 and "nope" in frame.error[1] and frame.text.isna().sum() == 1


def test_429_with_retry_after_pauses_every_worker(session, api, engine):
    first = threading.Event()
    log: list[tuple[float, str, int]] = []

    def reply(rec):
        if not first.is_set():
            first.set()
            log.append((time.monotonic(), _prompt(rec), 429))
            return Error(429, headers={"Retry-After": "1"})
        log.append((time.monotonic(), _prompt(rec), 200))
        return Reply(echo=True, delay=0.05)

    api.default = reply
    batch = aiml_magics.map([f"p{i}" for i in range(6)], session=session, concurrency=3,
                            progress=False)
    assert not batch.failures and batch.texts() == [f"echo: p{i}" for i in range(6)]
    limited_at = log[0][0]
    # The other two first requests were already in flight; after those, nothing is sent
    # until the asked second has passed.
    later = [t for t, _, _ in log[3:]]
    assert later and min(later) >= limited_at + 0.9
    assert sum(1 for _, p, _ in log if p == log[0][1]) == 2  # the limited item was sent again


def test_a_server_that_refuses_more_than_3_in_flight_loses_nothing(session, api, engine):
    api.max_in_flight = 3
    api.default = Reply(echo=True, delay=0.05)
    batch = aiml_magics.map([f"p{i}" for i in range(24)], session=session, concurrency=8,
                            progress=False, backoff=0.02)
    assert not batch.failures
    assert batch.texts() == [f"echo: p{i}" for i in range(24)]
    assert api.rate_limited > 0  # the limit was really hit, and slowed the batch instead


def test_ctrl_c_returns_what_finished_and_marks_the_rest(session, api, engine):
    # No timing: the 4th request to arrive presses Ctrl-C and it, and any request after it, is
    # held by the server until map() has returned. With 2 in flight at most, two answers were
    # read before the 4th was sent, and at most one more can be sent before both slots are held,
    # however slowly the main thread gets to the interrupt. Requests may arrive out of item
    # order (a loaded machine delayed p1's request past p2's), so items are told by arrival.
    arrivals: list[int] = []
    released = threading.Event()
    lock = threading.Lock()

    def reply(rec):
        with lock:
            arrivals.append(int(rec.json["messages"][-1]["content"][1:]))
            mine = len(arrivals)
        if mine == 4:
            _thread.interrupt_main()
        if mine >= 4:
            released.wait(30)
        return Reply(echo=True)

    api.default = reply
    # interrupt_main() does nothing where SIGINT is ignored (a runner started in the background
    # of a script, as CI starts the Colab check): Python's own handler for the duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        batch = aiml_magics.map([f"p{i}" for i in range(20)], session=session, concurrency=2,
                                progress=False)
    finally:
        released.set()
        signal.signal(signal.SIGINT, previous)
    assert batch.stopped == "interrupted" and len(batch) == 20
    assert 4 <= len(arrivals) <= 5 and len(set(arrivals)) == len(arrivals)
    answered = {i for i, r in enumerate(batch) if not isinstance(r, Failure)}
    assert 2 <= len(answered) <= 3 and answered <= set(arrivals[:3]), (answered, arrivals)
    for i in arrivals[3:]:  # held by the server: in flight when Ctrl-C came
        assert isinstance(batch[i], Failure) and batch[i].kind == "interrupted", batch[i]
    never_sent = [batch[i] for i in range(20) if i not in arrivals]
    assert len(never_sent) >= 15
    assert all(r.message == "not sent: interrupted" for r in never_sent)
    assert len(api.chat_requests) == len(arrivals)


class _InterruptingPool(ThreadPoolExecutor):
    """A pool whose second submission presses Ctrl-C after the work was queued, before submit
    returns: where a real Ctrl-C can land at any moment."""

    submits = 0

    def submit(self, *args, **kwargs):
        fut = super().submit(*args, **kwargs)
        type(self).submits += 1
        if type(self).submits == 2:
            _thread.interrupt_main()
            for _ in range(1000):  # bytecodes for the interrupt to land on, still inside submit
                pass
        return fut


def test_a_ctrl_c_inside_the_executors_submit_never_hides_a_sent_request(session, api):
    """Every request the server received belongs to an item reported answered or interrupted,
    none to one reported 'not sent' (before the Runner held Ctrl-C around the hand-over, the
    interrupted submission's request went out and its item said 'not sent')."""
    arrivals: list[int] = []
    lock = threading.Lock()

    def reply(rec):
        with lock:
            arrivals.append(int(rec.json["messages"][-1]["content"][1:]))
        time.sleep(0.2)
        return Reply(echo=True)

    api.default = reply
    _InterruptingPool.submits = 0
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _InterruptingPool(4) as pool:
            batch = aiml_magics.map([f"p{i}" for i in range(12)], session=session, concurrency=4,
                                    progress=False, executor=pool)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert batch.stopped == "interrupted" and _InterruptingPool.submits >= 2
    time.sleep(0.5)  # any request the pool still sent has arrived
    for i in set(arrivals):
        assert not (isinstance(batch[i], Failure) and batch[i].kind.startswith("not sent")), (
            i, batch[i], arrivals)
    assert any(isinstance(r, Failure) and r.kind == "not sent: interrupted" for r in batch)


class _ThreadNotingFile(io.StringIO):
    """A text bar's file that notes which thread wrote each piece."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)


def test_the_bar_is_drawn_on_the_callers_thread_and_ends_exact(session, api, engine):
    """The asyncio engine paces on its own loop's thread; a bar's output belongs to the caller's
    (a kernel routes a thread's output by the cell that started it): every draw happens there,
    and the last one says exactly what came back."""
    api.default = lambda rec: (Error(400) if _prompt(rec) in ("p3", "p7") else
                               Reply(echo=True, delay=0.05 if _prompt(rec) == "p0" else 0.0))
    out = _ThreadNotingFile()
    caller = threading.current_thread().name
    batch = aiml_magics.map([f"p{i}" for i in range(12)], session=session, concurrency=4,
                            progress=out)
    assert out.writers == {caller}, out.writers
    assert len(batch.failures) == 2
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert last == "[########################] 12/12 done, 2 failed, 20,020 credits", last


def test_an_item_waiting_for_a_retry_when_the_batch_stops_says_what_it_met(session, api, engine):
    """Its request reached the service: never "not sent". It says the 429 it met, and why it was
    not sent again; the items never sent say "not sent"."""
    api.default = lambda rec: (Error(429, headers={"Retry-After": "5"}) if _prompt(rec) == "p0"
                               else Reply(echo=True, delay=0.3))
    batch = aiml_magics.map([f"p{i}" for i in range(40)], session=session, concurrency=2,
                            progress=False, deadline=1.0)
    assert batch.stopped == "deadline"
    first = batch[0]
    assert isinstance(first, Failure) and first.kind == "rate-limit" and first.status == 429, first
    assert first.message.endswith("(waiting to be retried; not sent again: deadline)"), first.message
    sent = {_prompt(r) for r in api.chat_requests}
    never = [batch[i] for i in range(40) if f"p{i}" not in sent]
    assert never and all(r.kind == "not sent: deadline" for r in never)


def test_budget_stops_submitting(session, api, engine):
    api.default = Reply(echo=True, credits=2002)
    batch = aiml_magics.map([f"p{i}" for i in range(10)], session=session, concurrency=1,
                            budget=5000, progress=False)
    assert batch.stopped == "budget"
    assert len(api.chat_requests) == 3  # 2 answers spent 4,004 < 5,000; the third passed it
    assert [r.message for r in batch[3:]] == ["not sent: budget"] * 7
    assert batch.credits == 3 * 2002


def test_progress_text_bar_shows_done_failures_and_credits(session, api, engine):
    api.default = lambda rec: Error(400) if _prompt(rec) == "p1" else Reply(echo=True)
    out = io.StringIO()
    aiml_magics.map(["p0", "p1", "p2"], session=session, progress=out)
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert last == "[########################] 3/3 done, 1 failed, 4,004 credits"
    quiet = io.StringIO()
    aiml_magics.map(["p0"], session=session, progress=False)
    assert quiet.getvalue() == ""


class Verdict(BaseModel):
    label: str
    score: float


def test_schema_gives_one_column_per_field_and_a_violation_is_a_failure(session, api, engine):
    def reply(rec):
        p = _prompt(rec)
        if p == "broken":
            return Reply(content='{"label": "x"}')
        return Reply(content=json.dumps({"label": p, "score": 0.5}))

    api.default = reply
    batch = aiml_magics.map(["good", "broken", "fine"], session=session, schema=Verdict,
                            progress=False)
    assert isinstance(batch[0].data, Verdict)
    assert batch[1].kind == "schema" and "score" in batch[1].message
    assert batch[1].response.text == '{"label": "x"}'
    frame = batch.to_dataframe()
    assert list(frame.columns[:4]) == ["prompt", "text", "label", "score"]
    assert frame.label[0] == "good" and pd.isna(frame.label[1]) and frame.label[2] == "fine"
    assert frame.score[2] == 0.5 and "score" in frame.error[1]
    assert api.last_json["response_format"]["json_schema"]["name"] == "Verdict"
    # The answer that did not match was billed: counted in the total and its row, as in the budget.
    assert batch.credits == frame.credits.sum() == 3 * 2002


def test_bad_arguments_fail_before_anything_is_sent(session, api, engine):
    with pytest.raises(ParameterError):
        aiml_magics.map("one prompt", session=session)
    with pytest.raises(ParameterError):
        aiml_magics.map(["a"], session=session, temperature=9)
    with pytest.raises(ParameterError):
        aiml_magics.map(["a"], session=session, concurrency=0)
    assert not api.chat_requests


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_any_executor(session, api, kind):
    pool = ThreadPoolExecutor(3) if kind == "threads" else ProcessPoolExecutor(2)
    with pool:
        batch = aiml_magics.map([f"p{i}" for i in range(6)], session=session, executor=pool,
                                progress=False)
    assert batch.texts() == [f"echo: p{i}" for i in range(6)]
    ids = {r.headers["x-client-request-id"] for r in api.chat_requests}
    assert ids == set(batch.request_ids)


@pytest.mark.slow
def test_dask_distributed_cluster_with_worker_processes(session, api):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        batch = aiml_magics.map([f"p{i}" for i in range(6)], session=session,
                                executor=client.get_executor(), concurrency=4, progress=False)
    assert batch.texts() == [f"echo: p{i}" for i in range(6)]
    assert len(pids) == 2 and __import__("os").getpid() not in pids


def test_map_in_a_notebook_uses_the_notebook_session(shell, api):
    run = run_cell(shell, "import aiml_magics\naiml_b = aiml_magics.map(['x', 'y'], progress=False)")
    assert run.error is None
    assert shell.user_ns["aiml_b"].texts() == ["echo: x", "echo: y"]
    assert api.chat_requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert TEST_KEY not in repr(shell.user_ns["aiml_b"])
