"""``map()``'s pacing: what is sent when, what is retried, and when a batch gives up. Plain Python.

Every wait is bounded. An item may spend at most ``max_wait`` seconds waiting between its
attempts (429 pauses, ``Retry-After``, backoff), the same budget a single request has; past it
the item is a ``Failure`` of kind ``rate-limit`` (or of the last error's kind). A ``deadline``
bounds the whole batch: after it nothing new is sent and the items not yet answered fail as
``not sent: deadline``; the requests in flight finish within their own timeout, so a batch never
outlives its deadline by more than one request's timeout. A request that may have been billed
(timed out after sending, cut mid-answer, unreadable) is not sent again unless
``retry_maybe_billed``. The credit budget counts a negative, missing or non-finite cost as the
largest cost seen so far (and stops at once when no answer has reported one), so it overshoots
by at most the requests in flight.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .errors import AIMLError
from .heldinterrupt import HeldInterrupt
from .response import ChatResponse

RETRY_STATUSES = (500, 502, 503, 504)
RETRY_KINDS = ("ConnectError", "ResponseTimeout", "ProtocolError", "IncompleteAnswer")
MAX_RETRY_AFTER = 60.0
MAX_RATE_RETRIES = 30  # 429s one item may meet: the shared backoff slows the batch instead
TICK = 0.1  # the longest the loop sleeps, so deadlines and Ctrl-C are noticed quickly


@dataclass
class Failure:
    """An item without an answer, and why: ``status`` (HTTP, if any), ``kind``, ``message``."""

    message: str
    kind: str = "error"
    status: int | None = None
    request_id: str | None = None
    attempts: int = 0
    response: ChatResponse | None = None  # an answer that arrived but did not match the schema

    ok = False
    text = ""

    def __str__(self) -> str:
        return f"failed: {self.message}"


@dataclass
class Outcome:
    """What came back from a worker: an answer, or the facts of a failure."""

    response: ChatResponse | None = None
    status: int | None = None
    kind: str = ""
    message: str = ""
    retry_after: float | None = None
    maybe_billed: bool = False  # the request was sent and the answer lost: it may cost


def answered_outcome(resp: ChatResponse, started: float) -> Outcome:
    """An answer, with the time it took when its reader did not say."""
    resp.elapsed = resp.elapsed or time.monotonic() - started
    return Outcome(response=resp)


def failed_outcome(exc: Exception) -> Outcome:
    """The facts of a failed request the pacing needs: status, kind, ``Retry-After``, billing."""
    if isinstance(exc, AIMLError):
        return Outcome(status=exc.status, kind=type(exc).__name__, message=str(exc),
                       retry_after=getattr(exc, "retry_after", None), maybe_billed=_maybe_billed(exc))
    return Outcome(kind=type(exc).__name__, message=f"{type(exc).__name__}: {exc}"[:300])


def _maybe_billed(exc: AIMLError) -> bool:
    """Sent, and the answer lost: a timeout after sending, a cut or unreadable answer, or a
    connection that broke once the request was out (only "Could not connect" is before it)."""
    from .errors import ConnectError, IncompleteAnswer, ProtocolError, ResponseTimeout

    if isinstance(exc, ConnectError):
        return not str(exc).startswith("Could not connect")
    return isinstance(exc, (ResponseTimeout, IncompleteAnswer, ProtocolError))


@dataclass(frozen=True)
class Rules:
    """How a batch is paced and bounded (``map()``'s arguments)."""

    retries: int = 3
    backoff: float = 0.5
    budget: float | None = None
    max_wait: float = 30.0
    deadline: float | None = None  # seconds from the start
    retry_maybe_billed: bool = False


class Runner:
    """Submits items to the executor in order, within the shared window and pause."""

    def __init__(self, n: int, submit: Callable[[int], Future[Outcome]], concurrency: int,
                 rules: Rules, schema: Any, ids: list[str], bar: Any,
                 flush: Callable[[], None] | None = None) -> None:
        self.n, self.submit, self.concurrency, self.rules = n, submit, concurrency, rules
        self.flush = flush  # sends what ``submit`` queued (chunks.py): called after each round
        self.schema, self.ids, self.bar = schema, ids, bar
        self.results: list[Any] = [None] * n
        self.pending: list[int] = list(range(n))  # kept sorted: input order first
        self.ready_at = [0.0] * n
        self.attempts = [0] * n
        self.rate_hits = [0] * n
        self.waited = [0.0] * n  # seconds each item has spent waiting to be retried
        self.waiting_since: dict[int, float] = {}
        self.last: dict[int, Outcome] = {}  # the outcome an item waiting for a retry met
        self.inflight: dict[Any, int] = {}  # a concurrent or an asyncio future: its item
        self.finished: queue.SimpleQueue[Future[Outcome]] = queue.SimpleQueue()
        self.window = float(concurrency)  # how many may be in flight now (halved by a 429)
        self.pause_until = 0.0
        self.rate_streak = 0
        self.spent = 0.0
        self.dearest = 0.0  # the largest cost one answer reported
        self.costed = False  # whether any answer reported a usable cost
        self.done = self.failed = 0
        self.stopped: str | None = None
        self.ends_at = time.monotonic() + rules.deadline if rules.deadline is not None else math.inf
        self.held = HeldInterrupt()

    def run(self) -> tuple[list[Any], str | None]:
        try:
            with self.held:
                self._loop()
        except KeyboardInterrupt:
            self._interrupted()
        return self._marked()

    def _interrupted(self) -> None:
        """Ctrl-C: what had not started goes back to pending (not sent), what finished is kept,
        what was in flight is a failure of its own (it may have been sent)."""
        self.stopped = "interrupted"
        for fut, pos in self.inflight.items():
            if self._withdraw(fut):  # had not started: not sent
                self.pending.append(pos)
                continue
            if fut.done():
                self._take(fut, pos, time.monotonic())
            if self.results[pos] is None:
                self.results[pos] = Failure("stopped by Ctrl-C while in flight: no answer kept",
                                            kind="interrupted", request_id=self.ids[pos],
                                            attempts=self.attempts[pos])
        self.inflight.clear()

    @staticmethod
    def _withdraw(fut: Any) -> bool:
        """Whether the item was withdrawn before it started (an executor's queue: never sent)."""
        return bool(fut.cancel())

    def _marked(self) -> tuple[list[Any], str | None]:
        """The results, every item still pending a failure saying why it was not sent (again)."""
        why = self.stopped or "interrupted"
        for pos in sorted(self.pending):
            if self.results[pos] is None:
                self.results[pos] = unsent(self.last.get(pos), why, self.ids[pos],
                                           self.attempts[pos])
        return self.results, self.stopped

    def _loop(self) -> None:
        while self.pending or self.inflight:
            now = time.monotonic()
            self._check_limits(now)
            if self.stopped is None and now >= self.pause_until:
                self._send_ready(now)
                if self.flush is not None:  # chunks handed to the executor: held the same way
                    self.held.holding = True
                    try:
                        self.flush()
                    finally:
                        self.held.release()
            if not self.inflight:
                if self.stopped is not None or not self.pending:
                    return
                time.sleep(self._idle(now))
                continue
            try:  # futures report themselves: no waiter installed on all in flight each turn
                finished = [self.finished.get(timeout=TICK)]
            except queue.Empty:
                continue
            while not self.finished.empty():
                finished.append(self.finished.get_nowait())
            now = time.monotonic()
            for fut in finished:
                self._take(fut, self.inflight.pop(fut), now)

    def _send_ready(self, now: float) -> None:
        """Every pending item whose time has come, in input order, while the window has room."""
        i, window = 0, max(1, int(self.window))
        while i < len(self.pending) and len(self.inflight) < window:
            if self.ready_at[self.pending[i]] <= now:
                self._send(self.pending[i], now)  # takes it off pending
            else:
                i += 1

    def _idle(self, now: float) -> float:
        """Seconds to sleep with nothing in flight: until the next item may go, at most a tick."""
        wake = max(self.pause_until, min(self.ready_at[p] for p in self.pending))
        return min(max(wake - now, 0.001), TICK, max(self.ends_at - now, 0.001))

    def _check_limits(self, now: float) -> None:
        """The budget and the deadline stop new sends; an item waiting past ``max_wait`` fails."""
        if self.stopped is None and self.rules.budget is not None and self.spent >= self.rules.budget:
            self.stopped = "budget"
        if self.stopped is None and now >= self.ends_at:
            self.stopped = "deadline"
        for pos, since in list(self.waiting_since.items()):
            if self.waited[pos] + now - since > self.rules.max_wait and self.results[pos] is None:
                self._give_up(pos, now, "rate-limit" if self.rate_hits[pos] else "error")

    def _send(self, pos: int, now: float) -> None:
        # A Ctrl-C is held while the item is handed over: afterwards it is either in flight
        # (its future known) or still pending (never handed over: not sent), never in between.
        self.attempts[pos] += 1
        self.held.holding = True
        try:
            fut = self.submit(pos)
        except BaseException:
            self.attempts[pos] -= 1
            self.held.release()
            raise
        self._in_flight(pos, fut, self.finished.put, now)
        self.held.release()

    def _in_flight(self, pos: int, fut: Any, done: Callable[[Any], None], now: float) -> None:
        self.inflight[fut] = pos
        fut.add_done_callback(done)
        self.pending.remove(pos)
        since = self.waiting_since.pop(pos, None)
        if since is not None:
            self.waited[pos] += now - since

    def _take(self, fut: Any, pos: int, now: float) -> None:
        out = self._outcome(fut, pos)
        if out.response is not None:
            self._answered(pos, out.response)
        elif out.status == 429 and self.rate_hits[pos] < MAX_RATE_RETRIES:
            self.rate_hits[pos] += 1
            self.attempts[pos] -= 1  # a rate limit is the batch's pace, not the item's fault
            if now >= self.pause_until:  # one halving per pause, however many 429s it brought
                self.window = max(1.0, self.window / 2)
                self.rate_streak += 1
            wait_for = out.retry_after or self.rules.backoff * 2 ** min(self.rate_streak - 1, 6)
            wait_for = min(wait_for, MAX_RETRY_AFTER)
            if self.waited[pos] + wait_for > self.rules.max_wait:
                self._fail(pos, out, "rate-limit",
                           f"still rate-limited after waiting {self.waited[pos]:.0f} s (the service asked "
                           f"for {wait_for:.0f} s more; max_wait = {self.rules.max_wait:g} s)")
                return
            self.pause_until = max(self.pause_until, now + wait_for)
            self._requeue(pos, now, out)
        elif self._retryable(out) and self.attempts[pos] <= self.rules.retries:
            delay = self.rules.backoff * 2 ** (self.attempts[pos] - 1)
            if self.waited[pos] + delay > self.rules.max_wait:
                self._fail(pos, out, out.kind or "error", _first_line(out.message))
                return
            self.ready_at[pos] = now + delay
            self._requeue(pos, now, out)
        else:
            self._fail(pos, out, "rate-limit" if out.status == 429 else out.kind or "error",
                       _first_line(out.message))

    def _outcome(self, fut: Any, pos: int) -> Outcome:
        try:
            out: Outcome = fut.result()
        except KeyboardInterrupt:  # Ctrl-C arriving here is the user's, not the worker's
            raise
        except BaseException as exc:  # noqa: BLE001 - a worker that died, a pickling failure
            out = Outcome(kind=type(exc).__name__, message=f"{type(exc).__name__}: {exc}"[:300])
        return out

    def _retryable(self, out: Outcome) -> bool:
        if out.maybe_billed and not self.rules.retry_maybe_billed:
            return False
        return out.status in RETRY_STATUSES or out.kind in RETRY_KINDS or out.status == 429

    def _requeue(self, pos: int, now: float, out: Outcome) -> None:
        self.last[pos] = out  # what it met: said if the batch stops before it is sent again
        self.waiting_since[pos] = now
        self.pending.append(pos)
        self.pending.sort()

    def _give_up(self, pos: int, now: float, kind: str) -> None:
        """An item that has waited its whole ``max_wait`` for a retry: a failure, not sent again."""
        self.pending.remove(pos)
        self.waited[pos] += now - self.waiting_since.pop(pos)
        message = (f"gave up after waiting {self.waited[pos]:.0f} s in total for retries "
                   f"(max_wait = {self.rules.max_wait:g} s)")
        self._fail(pos, Outcome(status=429 if kind == "rate-limit" else None), kind, message)

    def _cost(self, resp: ChatResponse) -> float:
        """What an answer counts against the budget: its cost, or the dearest seen so far when it
        reports none (or a negative or non-finite one)."""
        cost: Any = resp.credits_used
        if type(cost) in (int, float) and math.isfinite(cost) and cost >= 0:
            self.costed = True
            self.dearest = max(self.dearest, float(cost))
            return float(cost)
        if self.rules.budget is not None and not self.costed:
            self.stopped = self.stopped or "budget"  # no cost to count: the budget cannot be kept
        return self.dearest

    def _answered(self, pos: int, resp: ChatResponse) -> None:
        self.spent += self._cost(resp)
        self.rate_streak = 0
        self.window = min(float(self.concurrency), self.window + 1.0 / max(self.window, 1.0))
        if self.schema is not None:
            from .schema import apply

            problem = apply(self.schema, resp)
            if problem is not None:
                self.results[pos] = Failure(
                    f"does not match the schema: {problem.violation}", kind="schema",
                    request_id=self.ids[pos], attempts=self.attempts[pos], response=resp)
                self._count(failed=True)
                return
        self.results[pos] = resp
        self._count(failed=False)

    def _fail(self, pos: int, out: Outcome, kind: str, message: str) -> None:
        self.results[pos] = Failure(message, kind=kind, status=out.status, request_id=self.ids[pos],
                                    attempts=self.attempts[pos])
        self._count(failed=True)

    def _count(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        else:
            self.done += 1
        self._shown()

    def _shown(self) -> None:
        self.bar.update(self.done + self.failed, self.failed, self.spent)


def unsent(last: Outcome | None, why: str, request_id: str, attempts: int) -> Failure:
    """An item the batch stopped (``why``) before sending it; one waiting to be retried reached
    the service, so it says what it met there, never "not sent"."""
    if last is None:
        return Failure(f"not sent: {why}", kind=f"not sent: {why}", request_id=request_id,
                       attempts=attempts)
    kind = "rate-limit" if last.status == 429 else last.kind or "error"
    said = _first_line(last.message) or kind
    return Failure(f"{said} (waiting to be retried; not sent again: {why})", kind=kind,
                   status=last.status, request_id=request_id, attempts=attempts)


def lazy_payloads(prepare: Callable[[str], dict[str, Any]], prompts: list[str]) -> Callable[[int], Any]:
    """Item ``pos``'s payload. When the first two, built in full, differ only in the last user
    message (the usual batch), the rest are that shape with their own prompt: checking every
    setting again per item cost a third of the runner's time at 10,000 items."""
    first = prepare(prompts[0]) if prompts else {}

    def like(pos: int) -> dict[str, Any]:
        return {**first, "messages": [*first["messages"][:-1], {"role": "user", "content": prompts[pos]}]}

    same = len(prompts) > 1 and first["messages"][-1] == {"role": "user", "content": prompts[0]}
    if same and prepare(prompts[1]) == like(1):
        return like
    return lambda pos: first if pos == 0 else prepare(prompts[pos])


def _first_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 300 else text[:297] + "..."


def seconds(name: str, value: Any, default: float | None) -> float | None:
    """A number of seconds > 0 (or the default when None), refused before anything is sent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        from .errors import ParameterError

        raise ParameterError(f"{name} = {value!r}: use a number of seconds > 0.")
    return float(value)
