"""Ctrl-C at the edges of a ``map()``: as its pacing is being scheduled, during the last drawing of
its bar, and a second press while its engine shuts down. In each, ``map()`` returns every item
(none that reached the server called "not sent") and leaves no engine thread behind.

The presses are placed, not timed: a patched step calls ``_thread.interrupt_main()`` and then
runs bytecodes for the interrupt to land on, inside that step.
"""

from __future__ import annotations

import _thread
import asyncio
import io
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import aiml_magics
from aiml_magics import Failure
from aiml_magics import batch as batch_module
from tests.fakeapi import Reply


@pytest.fixture
def sigint():
    """Python's own Ctrl-C handler (a runner started in the background may ignore SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _press() -> None:
    _thread.interrupt_main()
    for _ in range(100_000):  # bytecodes for the interrupt to land on, inside the patched step
        pass


def _mapped(prompts: list[str], **kwargs):
    """``map()``, where a Ctrl-C escaping it (its results lost) fails the test instead of ending
    the test run."""
    try:
        return aiml_magics.map(prompts, **kwargs)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped map(): its results were lost")


def _sent(api) -> set[int]:
    return {int(r.json["messages"][-1]["content"][1:]) for r in api.chat_requests}


def test_ctrl_c_as_the_pacing_is_scheduled_loses_no_sent_request(session, api, sigint, monkeypatch):
    pytest.importorskip("aiohttp")
    api.default = Reply(echo=True, delay=0.2)
    real = asyncio.run_coroutine_threadsafe
    calls: list[object] = []

    def scheduled_then_pressed(coro, loop):
        fut = real(coro, loop)
        calls.append(coro)
        if len(calls) == 1:  # the pacing: the caller's thread gets the GIL back late, then Ctrl-C
            time.sleep(0.3)
            _press()
        return fut

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", scheduled_then_pressed)
    batch = _mapped([f"p{i}" for i in range(6)], session=session, concurrency=3,
                    progress=False, engine="async", cache=False)
    assert batch.stopped == "interrupted" and len(batch) == 6
    time.sleep(0.3)  # a request still on its way has arrived
    sent = _sent(api)
    assert sent, "the pacing had started sending before the press"
    for i in sent:
        assert not (isinstance(batch[i], Failure) and batch[i].kind.startswith("not sent")), batch[i]
    assert all(batch[i].kind == "not sent: interrupted" for i in range(6) if i not in sent)


class _PressingBar(io.StringIO):
    """A text bar's file that presses Ctrl-C the first time the bar shows the batch complete."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.pressed = n, False

    def write(self, text: str) -> int:
        if not self.pressed and f"{self.n}/{self.n} done" in text:
            self.pressed = True
            _press()
        return super().write(text)


@pytest.mark.parametrize("engine", ["threads", "async"])
def test_ctrl_c_during_the_last_drawing_keeps_every_answer(session, api, sigint, engine):
    if engine == "async":
        pytest.importorskip("aiohttp")
    api.default = Reply(echo=True)
    bar = _PressingBar(6)
    batch = _mapped([f"p{i}" for i in range(6)], session=session, concurrency=3,
                    progress=bar, engine=engine, cache=False)
    assert bar.pressed
    assert batch.texts() == [f"echo: p{i}" for i in range(6)] and not batch.failures


@pytest.mark.parametrize("engine", ["threads", "async"])
def test_a_second_ctrl_c_while_the_engine_closes_keeps_the_results(session, api, sigint, engine,
                                                                   monkeypatch):
    if engine == "async":
        pytest.importorskip("aiohttp")
        from aiml_magics.http import aioengine

        real_close = aioengine.LoopThread.close

        def close(self, last=None):
            _press()
            return real_close(self, last)

        monkeypatch.setattr(aioengine.LoopThread, "close", close)
    else:
        class Pool(ThreadPoolExecutor):
            def shutdown(self, *args, **kwargs):
                _press()
                return super().shutdown(*args, **kwargs)

        monkeypatch.setattr(batch_module, "ThreadPoolExecutor", Pool)
    released = threading.Event()
    lock = threading.Lock()
    arrivals: list[int] = []

    def reply(rec):
        with lock:
            arrivals.append(1)
            mine = len(arrivals)
        if mine == 4:
            _thread.interrupt_main()  # the first press, mid-batch
        if mine >= 4:
            released.wait(10)
        return Reply(echo=True)

    api.default = reply
    try:
        batch = _mapped([f"p{i}" for i in range(10)], session=session, concurrency=2,
                        progress=False, engine=engine, cache=False)
    finally:
        released.set()
    assert batch.stopped == "interrupted" and len(batch) == 10
    answered = [r for r in batch if not isinstance(r, Failure)]
    assert 2 <= len(answered) <= 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.name == "aiml-map-loop" for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "aiml-map-loop" for t in threading.enumerate())
