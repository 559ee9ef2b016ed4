"""A batch's progress: a widget bar in a notebook, a text bar in a terminal, or nothing.

``progress=None`` picks: a widget bar inside a Jupyter kernel, a text bar when stderr is a
terminal, else nothing; ``True`` forces a bar (widget in a kernel, else text), ``False`` none.
Both show done/total, failures and credits so far. The widget bar is the notebook layer's
(``notebook/progress.py``), handed in by ``aiml_magics.map``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


class NoProgress:
    def update(self, done: int, failed: int, credits: float) -> None:
        pass

    def close(self) -> None:
        pass


def words(done: int, total: int, failed: int, credits: float) -> str:
    return f"{done}/{total} done, {failed} failed, {credits:,.0f} credits"


class TextProgress:
    """``[#####.....] 12/40 done, 1 failed, 24,024 credits`` on one line, redrawn in place."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._state = (0, 0, 0.0)
        self._draw()

    def _draw(self) -> None:
        done, failed, credits = self._state
        filled = int(self.width * done / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {words(done, self.total, failed, credits)}")
        self.stream.flush()

    def update(self, done: int, failed: int, credits: float) -> None:
        self._state = (done, failed, credits)
        now = time.monotonic()
        if now - self._last >= 0.1 or done == self.total:  # a redraw per answer is too many
            self._last = now
            self._draw()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook), without importing IPython for it."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_progress(progress: Any, total: int, widget: Callable[[int], Any] | None = None) -> Any:
    """The bar ``progress`` asks for (see the module); ``widget`` makes the notebook's bar (the
    notebook layer's ``WidgetProgress``, which this plain-Python module cannot import)."""
    if progress is False:
        return NoProgress()
    if progress is None or progress is True:
        if widget is not None and in_kernel():
            try:
                return widget(total)
            except ImportError:
                pass
        if progress is True or getattr(sys.stderr, "isatty", lambda: False)():
            return TextProgress(total)
        return NoProgress()
    if hasattr(progress, "write"):  # a file: the text bar goes there
        return TextProgress(total, progress)
    from .errors import ParameterError

    raise ParameterError("progress must be None, True, False or a file to write a text bar to.")
