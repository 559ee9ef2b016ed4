"""Ctrl-C held for the moment an item is handed to an engine, then raised.

Why: a ``KeyboardInterrupt`` can land between any two bytecodes. Landing inside an executor's
``submit`` (after the work was queued, before the future came back), it left a request that was
then sent, and answered, reported as "not sent". While ``holding`` is set, a SIGINT is noted
instead of raised; ``release()`` raises it once the item is either in flight (the Runner knows
its future) or was never handed over. Only on the main thread, and only where Python handles
SIGINT (a handler it can call): elsewhere no Ctrl-C arrives to be held.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class HeldInterrupt:
    def __init__(self) -> None:
        self.holding = False
        self.arrived = False
        self._previous: Any = None

    def __enter__(self) -> HeldInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        self.holding = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.arrived = True
            return
        self._previous(signum, frame)

    def release(self) -> None:
        """Stop holding; a Ctrl-C that came meanwhile is raised now (by the handler it was for)."""
        self.holding = False
        if self.arrived and self._previous is not None:
            self.arrived = False
            self._previous(signal.SIGINT, None)

    def drop(self) -> None:
        """Stop holding, and forget a Ctrl-C that came meanwhile: the stop it asked for is the
        one already under way, or came once the work was done."""
        self.holding = self.arrived = False
