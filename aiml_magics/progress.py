"""A batch's progress: an ipywidgets bar in a notebook, a text bar in a terminal, or nothing.

``progress=None`` picks: a widget bar inside a Jupyter kernel, a text bar when stderr is a
terminal, else nothing; ``True`` forces a bar (widget in a kernel, else text), ``False`` none.
Both show done/total, failures and credits so far. Nothing is imported until a bar is made.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class NoProgress:
    def update(self, done: int, failed: int, credits: float) -> None:
        pass

    def close(self) -> None:
        pass


def _words(done: int, total: int, failed: int, credits: float) -> str:
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
        self.stream.write(f"\r[{bar}] {_words(done, self.total, failed, credits)}")
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


class WidgetProgress:
    """An ipywidgets ``IntProgress`` with a label beside it."""

    def __init__(self, total: int) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.total = total
        self.bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), description="map")
        self.label = widgets.Label(_words(0, total, 0, 0.0))
        self.box = widgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, done: int, failed: int, credits: float) -> None:
        self.bar.value = done
        self.bar.bar_style = "warning" if failed else ""
        self.label.value = _words(done, self.total, failed, credits)

    def close(self) -> None:
        self.bar.bar_style = "warning" if "0 failed" not in self.label.value else "success"


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook), without importing IPython for it."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_progress(progress: Any, total: int) -> Any:
    """The bar ``progress`` asks for (see the module)."""
    if progress is False:
        return NoProgress()
    if progress is None or progress is True:
        if in_kernel():
            try:
                return WidgetProgress(total)
            except ImportError:
                pass
        if progress is True or getattr(sys.stderr, "isatty", lambda: False)():
            return TextProgress(total)
        return NoProgress()
    if hasattr(progress, "write"):  # a file: the text bar goes there
        return TextProgress(total, progress)
    from .errors import ParameterError

    raise ParameterError("progress must be None, True, False or a file to write a text bar to.")
