"""One thread that does an event loop's blocking work (the store's SQLite) in bursts.

Why: ``asyncio.to_thread`` per call costs a thread-pool submission and a wake-up of the loop for
every call, and its threads then queue on the store's lock. A ``map()`` of thousands of quick
answers spent more on those hops than on SQLite. Here calls queue without waking anyone; the
worker takes all that waited at once, runs them in order (``grouped`` calls in two steps, so
rows queued in one burst are committed in one transaction), and hands the results back with
one wake-up of the loop per burst.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

IDLE = 2.0  # seconds without work before the thread ends (the next call starts another)
_STOP = object()

_lock = threading.Lock()
_workers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWorker] = (
    weakref.WeakKeyDictionary())


def run(fn: Callable[..., Any], *args: Any, grouped: bool = False, **kwargs: Any) -> asyncio.Future[Any]:
    """``fn(*args, **kwargs)`` on the running loop's worker thread. ``grouped``: ``fn`` returns
    a function finishing the work, called after every call of the burst has started (the store
    queues its row, then commits every queued row at once)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    with _lock:  # a worker that is about to end for idleness takes the same lock first
        worker = _workers.get(loop)
        if worker is None or not worker.alive:
            worker = _workers[loop] = LoopWorker(loop)
        worker.todo.put((fut, fn, args, kwargs, grouped))
    return fut


def close(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Let the loop's worker finish what it was given, then end it (its loop is shutting down)."""
    with _lock:
        worker = _workers.pop(loop, None)
    if worker is not None:
        worker.todo.put(_STOP)
        worker.thread.join(timeout)


class LoopWorker:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.alive = True
        self.thread = threading.Thread(target=self._work, name="aiml-loop-worker", daemon=True)
        self.thread.start()

    def _next(self) -> Any:
        try:
            return self.todo.get(timeout=IDLE)
        except queue.Empty:
            with _lock:
                if not self.todo.empty():  # a call came in as the wait ended
                    return self.todo.get()
                self.alive = False
                if _workers.get(self.loop) is self:
                    del _workers[self.loop]
            return _STOP

    def _work(self) -> None:
        while True:
            first = self._next()
            if first is _STOP:
                return
            burst, stop = [first], False
            while True:
                try:
                    item = self.todo.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                burst.append(item)
            self._run_burst(burst)
            if stop:
                return

    def _run_burst(self, burst: list[Any]) -> None:
        """Plain calls first, handed back at once (a cache lookup holds up a request about to
        go); then the grouped ones: every first step, every second step, handed back."""
        self._settle([_call(fut, fn, args, kwargs) for fut, fn, args, kwargs, grouped in burst
                      if not grouped])
        later = [_call(fut, fn, args, kwargs) for fut, fn, args, kwargs, grouped in burst
                 if grouped]
        self._settle([(fut, None, exc) if exc is not None else _call(fut, finish, (), {})
                      for fut, finish, exc in later])

    def _settle(self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        if not outcomes:
            return
        try:
            self.loop.call_soon_threadsafe(_hand_back, outcomes)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            pass


def _call(fut: asyncio.Future[Any], fn: Callable[..., Any], args: Any,
          kwargs: Any) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
    try:
        return fut, fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - it belongs to the caller's await
        return fut, None, exc


def _hand_back(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in outcomes:
        if fut.done():  # cancelled (Ctrl-C): the work was done, nobody reads it
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
