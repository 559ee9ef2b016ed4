"""``map()``'s pacing on the asyncio engine's own event loop: the ``Runner``'s rules, no hand-over.

Why: driven from the caller's thread, every item crossed threads twice (a concurrent Future in,
a queue out), and the two threads took turns at the GIL for each answer. Here the same rules
(``batchrun.Runner``: window, shared backoff, retries, budget, deadline, ``max_wait``) run as a
task on the loop that sends the requests, so an item is a task and its answer a callback.

The caller's thread only waits: it redraws the progress bar every tick (a bar is drawn where its
output belongs, on the caller's thread) and turns Ctrl-C into a stop taken on the loop. A task
whose coroutine had not started when Ctrl-C came was never sent; one that had is reported
interrupted, never "not sent". Ctrl-C is held while the pacing is being scheduled (it is then
either running, and stopped as above, or never started) and once every item has come back (the
last drawing of the bar, where it would otherwise lose the results: it stops nothing then).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import TimeoutError as StillRunning
from typing import Any

from .batchrun import TICK, Outcome, Rules, Runner, answered_outcome, failed_outcome
from .response import ChatResponse


class LoopRunner(Runner):
    """A ``Runner`` whose items are tasks on ``loop`` (running on another thread); ``start(pos)``
    is item ``pos``'s request, a coroutine giving its answer."""

    def __init__(self, n: int, start: Callable[[int], Coroutine[Any, Any, ChatResponse]],
                 loop: asyncio.AbstractEventLoop, concurrency: int, rules: Rules, schema: Any,
                 ids: list[str], bar: Any) -> None:
        super().__init__(n, _never, concurrency, rules, schema, ids, bar)
        self.start, self.loop = start, loop
        self.arrived: list[asyncio.Future[ChatResponse]] = []
        self.sent_at = [0.0] * n
        self.waiter: asyncio.Future[None] | None = None
        self.ticker: asyncio.TimerHandle | None = None
        self.drawn: tuple[int, int, float] | None = None

    def run(self) -> tuple[list[Any], str | None]:
        drive = None
        self.held.holding = True  # the pacing is scheduled, or not at all: never half
        with self.held:
            try:
                drive = asyncio.run_coroutine_threadsafe(self._drive(), self.loop)
                self.held.release()  # a Ctrl-C that came meanwhile is raised here, inside the try
                while True:
                    try:
                        drive.result(TICK)
                        break
                    except StillRunning:
                        self._draw()
                self.held.holding = True  # everything has come back: a Ctrl-C now stops nothing
                self._draw()
            except KeyboardInterrupt:
                self.held.holding = True  # a second Ctrl-C while the loop takes stock: the same stop
                if drive is None:
                    self.stopped = "interrupted"  # nothing was scheduled, nothing sent
                else:
                    asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result()
                    drive.result()
                    self._draw()
            self.held.drop()
        return self._marked()

    async def _stop(self) -> None:
        if self.pending or self.inflight:  # a Ctrl-C as the batch ended stops nothing
            self._interrupted()
        self._wake()

    async def _drive(self) -> None:
        self._tick()  # deadlines and waits are checked at least once a tick
        try:
            await self._paced()
        finally:
            if self.ticker is not None:
                self.ticker.cancel()

    def _tick(self) -> None:
        self._wake()
        self.ticker = self.loop.call_later(TICK, self._tick)

    async def _paced(self) -> None:
        while self.pending or self.inflight:
            now = time.monotonic()
            self._check_limits(now)
            if self.stopped is None and now >= self.pause_until:
                self._send_ready(now)
            if not self.inflight:
                if self.stopped is not None or not self.pending:
                    return
                await asyncio.sleep(self._idle(now))
                continue
            if not self.arrived:  # until an answer arrives, or the tick
                self.waiter = self.loop.create_future()
                await self.waiter
            arrived, self.arrived = self.arrived, []
            now = time.monotonic()
            for task in arrived:
                pos = self.inflight.pop(task, None)
                if pos is not None:  # None: settled by a Ctrl-C already
                    self._take(task, pos, now)

    def _send(self, pos: int, now: float) -> None:
        self.attempts[pos] += 1
        self.sent_at[pos] = now
        fut: asyncio.Future[ChatResponse]
        try:
            fut = self.loop.create_task(self.start(pos))
        except Exception as exc:  # noqa: BLE001 - a payload that cannot be built: this item's failure
            fut = self.loop.create_future()
            fut.set_exception(exc)
        self._in_flight(pos, fut, self._arrive, now)

    def _outcome(self, fut: Any, pos: int) -> Outcome:
        """The task's answer, or its failure in the words the pacing reads (no wrapper coroutine
        per item: the task is the request itself)."""
        try:
            resp = fut.result()
        except Exception as exc:  # noqa: BLE001 - one item's surprise must not end the batch
            return failed_outcome(exc)
        except BaseException:  # noqa: BLE001 - cancelled: as any engine's worker that died
            return super()._outcome(fut, pos)
        return answered_outcome(resp, self.sent_at[pos])

    def _arrive(self, task: asyncio.Future[ChatResponse]) -> None:
        self.arrived.append(task)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    @staticmethod
    def _withdraw(fut: Any) -> bool:
        if fut.done():
            return False
        never_ran = inspect.getcoroutinestate(fut.get_coro()) == inspect.CORO_CREATED
        fut.cancel()  # started or not, it ends here: its connection is dropped, not read
        return never_ran

    def _shown(self) -> None:
        pass  # drawn by the caller's thread (``_draw``), where the bar's output belongs

    def _draw(self) -> None:
        state = (self.done + self.failed, self.failed, self.spent)
        if state != self.drawn:
            self.drawn = state
            self.bar.update(*state)


def _never(pos: int) -> Any:
    raise AssertionError("LoopRunner sends its items as tasks")


__all__ = ["LoopRunner"]
