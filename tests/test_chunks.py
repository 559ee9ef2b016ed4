"""``map(executor=...)`` sends its work in chunks: on a real dask ``LocalCluster`` with worker
processes (listening on 127.0.0.1 only) against the loopback fake, and on a plain pool.

What is checked: answers in input order; fewer tasks than prompts and fewer TCP connections than
requests (one client per worker process); retries and 429 pauses per item; the store reached from
the workers; the key in no task key, task repr, scheduler or worker log, pickled chunk's repr, or
Failure message. Behaviour, never timing.
"""

from __future__ import annotations

import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import aiml_magics
from aiml_magics.batch import Job, _attempt
from aiml_magics.chunks import Chunk, Chunker, run_chunk, slots
from tests.conftest import TEST_KEY
from tests.fakeapi import Error, FakeAIMLAPI, Reply

distributed = pytest.importorskip("distributed")


def _prompt(rec: Any) -> str:
    return rec.json["messages"][-1]["content"]


@pytest.fixture(scope="module")
def client() -> Any:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


class TaskWatch:
    """Polls the scheduler and the workers while a batch runs: every task key and task repr seen."""

    def __init__(self, dask_client: Any) -> None:
        self.client, self.seen = dask_client, set[str]()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        def shown(key: Any, ts: Any) -> str:  # the key, the state, the task and its arguments
            return f"{key!r} {ts!r} {ts.run_spec!r} {getattr(ts.run_spec, 'args', None)!r}"

        def on_scheduler(dask_scheduler: Any) -> list[str]:
            return [shown(key, ts) for key, ts in dask_scheduler.tasks.items()]

        def on_worker(dask_worker: Any) -> list[str]:
            return [shown(key, ts) for key, ts in dask_worker.state.tasks.items()]

        while not self.stop.is_set():
            self.seen.update(self.client.run_on_scheduler(on_scheduler))
            for found in self.client.run(on_worker).values():
                self.seen.update(found)
            time.sleep(0.02)

    def __enter__(self) -> TaskWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(30)


def _logs(dask_client: Any) -> str:
    worker_logs = dask_client.get_worker_logs()
    return "\n".join([str(dask_client.get_scheduler_logs(n=10_000)), str(worker_logs),
                      str(dask_client.get_events())])


@pytest.mark.slow
def test_a_cluster_gets_chunks_answers_come_back_in_order(session, api, client):
    api.default = lambda rec: Reply(echo=True, delay=0.05)
    prompts = [f"p{i}" for i in range(40)]
    with distributed.get_task_stream(client) as stream, TaskWatch(client) as watch:
        batch = aiml_magics.map(prompts, session=session, executor=client.get_executor(),
                                concurrency=8, progress=False)
    assert not batch.failures and batch.texts() == [f"echo: {p}" for p in prompts]
    chats = api.chat_requests
    assert {r.headers["x-client-request-id"] for r in chats} == set(batch.request_ids)
    assert all(r.headers["authorization"] == f"Bearer {TEST_KEY}" for r in chats)
    tasks = {t["key"] for t in stream.data}
    # 8 in flight shared by 2 worker slots: chunks of up to 4, not one task per prompt.
    assert 10 <= len(tasks) <= 20 and all(str(k).startswith("run_chunk-") for k in tasks)
    # One client per worker process, kept alive: at most 8 connections in each of the 2.
    assert api.connections <= 2 * 8 < len(chats)
    assert any("run_chunk" in seen and "Chunk(4 jobs: aiml-" in seen for seen in watch.seen)
    assert not [seen for seen in watch.seen if TEST_KEY in seen]
    assert TEST_KEY not in _logs(client)


@pytest.mark.slow
def test_retries_and_429_pauses_stay_per_item_on_a_cluster(session, api, client):
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def reply(rec: Any) -> Any:
        p = _prompt(rec)
        with lock:
            seen[p] = seen.get(p, 0) + 1
        if p == "bad":
            return Error(400, f"Body validation error! nope, not {TEST_KEY}")
        if p == "flaky" and seen[p] < 3:
            return Error(503)
        if p == "busy" and seen[p] == 1:
            return Error(429, headers={"Retry-After": "0.3"})
        return Reply(echo=True, delay=0.02)

    api.default = reply
    prompts = ["ok1", "bad", "flaky", "busy", *[f"ok{i}" for i in range(2, 12)]]
    with TaskWatch(client) as watch:
        batch = aiml_magics.map(prompts, session=session, executor=client.get_executor(),
                                concurrency=6, backoff=0.05, progress=False)
    assert [i for i, _ in batch.failures] == [1]
    failure = batch[1]
    assert failure.status == 400 and "nope" in failure.message and failure.attempts == 1
    assert TEST_KEY not in failure.message and TEST_KEY not in repr(failure)
    assert seen["bad"] == 1 and seen["flaky"] == 3 and seen["busy"] == 2
    assert batch[2].text == "echo: flaky" and batch[3].text == "echo: busy"
    assert [r.text for i, r in enumerate(batch) if i != 1] == [f"echo: {p}" for p in prompts if p != "bad"]
    assert not [s for s in watch.seen if TEST_KEY in s] and TEST_KEY not in _logs(client)
    assert TEST_KEY not in str(batch.to_dataframe().to_dict())


@pytest.mark.slow
def test_workers_find_the_store_and_the_cache(session, api, client, _store):
    api.default = lambda rec: Reply(echo=True)
    prompts = [f"remember {i}" for i in range(6)]
    first = aiml_magics.map(prompts, session=session, executor=client.get_executor(), progress=False)
    assert [r.source for r in first] == ["live"] * 6 and len(api.chat_requests) == 6
    again = aiml_magics.map(prompts, session=session, executor=client.get_executor(), progress=False)
    assert again.texts() == first.texts() and [r.source for r in again] == ["cache"] * 6
    assert len(api.chat_requests) == 6  # the workers read the store the session names
    assert _store.exists() and TEST_KEY.encode() not in _store.read_bytes()


@pytest.mark.slow
def test_an_unreachable_service_fails_each_item_in_one_paragraph(session, client):
    nobody = aiml_magics.Session(api_key=TEST_KEY, base_url=FakeAIMLAPI.closed_port(), max_retries=0)
    batch = aiml_magics.map(["a", "b", "c"], session=nobody, executor=client.get_executor(),
                            retries=0, progress=False)
    nobody.close()
    assert len(batch.failures) == 3
    for _, failure in batch.failures:
        assert failure.kind == "ConnectError" and "\n" not in failure.message
        assert TEST_KEY not in failure.message
    assert TEST_KEY not in _logs(client)


def _jobs(n: int, base_url: str) -> list[Job]:
    return [Job({"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}, f"rid-{i}",
                base_url, TEST_KEY) for i in range(n)]


def test_a_chunk_carries_the_key_inside_only(api):
    chunk = Chunk(_jobs(3, api.base_url), _attempt)
    back = pickle.loads(pickle.dumps(chunk))
    assert [job.api_key for job in back.jobs] == [TEST_KEY] * 3  # it travels, inside
    for shown in (repr(chunk), str(chunk), repr(back), str(back), repr(back.jobs), str(back.jobs[0])):
        assert TEST_KEY not in shown
    assert repr(chunk) == "Chunk(3 jobs: rid-0 .. rid-2)"


def test_a_chunk_shares_one_client_and_its_connections(api):
    api.default = lambda rec: Reply(echo=True, delay=0.05)
    outs = run_chunk(Chunk(_jobs(12, api.base_url), _attempt))
    assert [o.response.text for o in outs if o.response] == [f"echo: q{i}" for i in range(12)]
    run_chunk(Chunk(_jobs(12, api.base_url), _attempt))
    assert len(api.chat_requests) == 24 and api.connections <= 12  # the second reused the first's


def test_queued_items_cancel_and_handed_over_ones_count_as_in_flight(api):
    api.default = lambda rec: Reply(echo=True, delay=0.2)
    with ThreadPoolExecutor(1) as pool:
        chunker = Chunker(pool, 4, _attempt)
        assert slots(pool) == 1 and chunker.size == 4
        sent = [chunker.submit(job) for job in _jobs(2, api.base_url)]
        chunker.flush()
        while len(api.chat_requests) < 2:  # the chunk has started: both requests are out
            time.sleep(0.01)
        queued = chunker.submit(_jobs(1, api.base_url)[0])
        assert queued.cancel()  # never handed to the executor: not sent
        assert not sent[0].cancel()  # handed over: cannot tell whether it started
        chunker.flush()  # the cancelled one is dropped
        assert [f.result(10).response.text for f in sent] == ["echo: q0", "echo: q1"]
    assert len(api.chat_requests) == 2


def _explode(send: Any) -> Any:
    raise RuntimeError("the worker broke mid-chunk")


@pytest.mark.slow
def test_a_chunk_that_raises_fails_its_items_and_logs_no_key(api, client):
    chunker = Chunker(client.get_executor(), 4, _explode)
    items = [chunker.submit(job) for job in _jobs(3, api.base_url)]
    chunker.flush()
    for item in items:
        with pytest.raises(RuntimeError, match="broke mid-chunk"):
            item.result(60)
    deadline = time.monotonic() + 10
    while "Compute Failed" not in (logs := _logs(client)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the worker's log line arrives on its own
    assert "Compute Failed" in logs and "run_chunk" in logs  # dask told of the task it ran
    assert TEST_KEY not in logs and not api.chat_requests
