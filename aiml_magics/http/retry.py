"""Retries with one overall deadline, and urllib3's retry chatter kept out of the cell.

429 and 5xx are retried with backoff (honouring ``Retry-After``), within one wait budget per
request; a read failure is never retried (the request may have been billed) and a connect
timeout is not either (connecting has one deadline in all). No IPython here.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER = 86400.0 * 365  # a Retry-After beyond a year is "never": no float overflow


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta or HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes '²' and other digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@functools.cache
def _retry_class() -> type:
    from urllib3.exceptions import MaxRetryError, ResponseError
    from urllib3.util.retry import Retry

    class BudgetRetry(Retry):
        """urllib3's Retry with a bound on the total wait of one request.

        A retry whose wait (Retry-After, else backoff) would take the total past ``wait_budget``
        is not made: the last answer goes back to the caller, so a cell never hangs for an hour.
        An unreadable Retry-After falls back to the backoff instead of raising. A connect
        timeout is not retried: connecting has one deadline, ``connect_timeout``, in all.
        """

        wait_budget = 30.0
        waited = 0.0

        def new(self, **kw: Any) -> BudgetRetry:
            retry = super().new(**kw)
            retry.wait_budget, retry.waited = self.wait_budget, self.waited
            return retry

        def get_retry_after(self, response: Any) -> float | None:
            return parse_retry_after(response.headers.get("Retry-After"))

        def increment(self, method: Any = None, url: Any = None, response: Any = None,
                      error: Any = None, _pool: Any = None, _stacktrace: Any = None) -> BudgetRetry:
            from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

            # (urllib3 2 makes a refused connection or a failed lookup a ConnectTimeoutError too:
            # those fail fast, and are retried.)
            if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
                # The attempt already took the whole connect deadline: another would double it.
                raise MaxRetryError(_pool, url, error)
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
            wait = None
            if response is not None and self.respect_retry_after_header:
                wait = retry.get_retry_after(response)
            wait = wait or retry.get_backoff_time()
            if retry.waited + wait > retry.wait_budget:
                raise MaxRetryError(_pool, url, error or ResponseError("wait budget spent"))
            retry.waited += wait
            return retry

    return BudgetRetry


_requesting = threading.local()  # .on while this thread is inside one of our requests


class _RetryNoise(logging.Filter):
    """Drops urllib3's "Retrying (Retry(total=...))" warnings for our own requests.

    With any logging handler configured they reach the cell as red ``WARNING:urllib3...`` lines
    above the error, which already says how many retries were made. Other code's requests in the
    same process keep their warnings.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        noise = isinstance(record.msg, str) and record.msg.startswith("Retrying")
        return not (noise and getattr(_requesting, "on", False))


@functools.cache
def _install_retry_filter() -> None:
    logging.getLogger("urllib3.connectionpool").addFilter(_RetryNoise())


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """Inside: urllib3's retry warnings for this thread's request are not logged."""
    _install_retry_filter()
    before = getattr(_requesting, "on", False)
    _requesting.on = True
    try:
        yield
    finally:
        _requesting.on = before
