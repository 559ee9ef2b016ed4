"""The store's worker thread for the asyncio engine (loopworker.py): order, groups, failures,
cancellation, closing and idling, on a real event loop and real threads."""

from __future__ import annotations

import asyncio
import threading
import time

from aiml_magics import loopworker


def _in_loop(coro_fn, handler_errors: list | None = None):
    loop = asyncio.new_event_loop()
    if handler_errors is not None:
        loop.set_exception_handler(lambda _loop, ctx: handler_errors.append(ctx))
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        loopworker.close(loop, 5)
        loop.close()


def test_a_grouped_burst_starts_every_call_before_finishing_any():
    seen: list[str] = []
    gate = threading.Event()

    def grouped(i: int):
        seen.append(f"start {i}")
        return lambda: seen.append(f"finish {i}") or i

    async def main(loop):
        blocker = loopworker.run(gate.wait, 5)  # holds the worker while five calls queue
        calls = [loopworker.run(grouped, i, grouped=True) for i in range(5)]
        gate.set()
        await blocker
        return await asyncio.gather(*calls)

    assert _in_loop(main) == [0, 1, 2, 3, 4]
    assert seen == [f"start {i}" for i in range(5)] + [f"finish {i}" for i in range(5)]


def test_a_failure_reaches_its_own_caller_only():
    def boom():
        raise ValueError("disk full")

    async def main(loop):
        results = await asyncio.gather(loopworker.run(boom), loopworker.run(lambda: 7),
                                       loopworker.run(lambda: (lambda: 1 / 0), grouped=True),
                                       return_exceptions=True)
        return results

    bad, good, finished_badly = _in_loop(main)
    assert isinstance(bad, ValueError) and str(bad) == "disk full"
    assert good == 7
    assert isinstance(finished_badly, ZeroDivisionError)


def test_a_cancelled_caller_leaves_the_work_done_and_the_loop_quiet():
    done = threading.Event()
    gate = threading.Event()
    errors: list = []

    async def main(loop):
        loopworker.run(gate.wait, 5)
        fut = loopworker.run(done.set)
        fut.cancel()  # Ctrl-C in map(): nobody reads the answer
        gate.set()
        for _ in range(200):
            if done.is_set():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the hand-back runs on the loop
        return fut.cancelled()

    assert _in_loop(main, errors) is True
    assert done.is_set()
    assert errors == []


def test_close_waits_for_what_was_handed_in():
    written: list[int] = []

    async def main(loop):
        for i in range(20):
            loopworker.run(lambda i=i: (time.sleep(0.005), written.append(i)))
        return None

    _in_loop(main)  # closes the loop's worker
    assert written == list(range(20))


def test_an_idle_worker_ends_and_the_next_call_starts_another(monkeypatch):
    monkeypatch.setattr(loopworker, "IDLE", 0.05)

    async def main(loop):
        first = await loopworker.run(threading.current_thread)
        await asyncio.sleep(0.3)
        assert not first.is_alive()
        second = await loopworker.run(threading.current_thread)
        return first, second

    first, second = _in_loop(main)
    assert first is not second and first.name == second.name == "aiml-loop-worker"


def test_a_burst_of_rows_lands_in_the_store_in_few_transactions(tmp_path, monkeypatch):
    n = 500
    import aiml_magics.store as store_module
    from aiml_magics.storeschema import COLUMNS

    store = store_module.Store(tmp_path / "s.db")
    commits: list[int] = []
    real_insert = store_module._insert

    def counting_insert(conn, batch):
        commits.append(len(batch))
        return real_insert(conn, batch)

    monkeypatch.setattr(store_module, "_insert", counting_insert)

    row = {name: None for name in COLUMNS} | {"answer": "yes", "source": "live", "cacheable": 1}

    def later(i: int):
        slot = store.enqueue({**row, "prompt": f"row {i}", "started": float(i)})
        return lambda: store.commit(slot)

    async def main(loop):
        return await asyncio.gather(*(loopworker.run(later, i, grouped=True) for i in range(n)))

    ids = _in_loop(main)
    assert sorted(ids) == list(range(1, n + 1))
    assert store.count() == n
    assert sum(commits) == n and len(commits) < n // 5, commits[:10]
    store.close()
