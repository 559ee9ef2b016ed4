"""A batch's progress as an ipywidgets bar, for ``map()`` in a notebook (``progress.py`` has the
text bar and the choice between them)."""

from __future__ import annotations

from ..progress import words


class WidgetProgress:
    """An ipywidgets ``IntProgress`` with a label beside it."""

    def __init__(self, total: int) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.total = total
        self.bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), description="map")
        self.label = widgets.Label(words(0, total, 0, 0.0))
        self.box = widgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, done: int, failed: int, credits: float) -> None:
        self.bar.value = done
        self.bar.bar_style = "warning" if failed else ""
        self.label.value = words(done, self.total, failed, credits)

    def close(self) -> None:
        self.bar.bar_style = "warning" if "0 failed" not in self.label.value else "success"
