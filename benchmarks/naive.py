"""The baseline: what peers do, re-publishing the whole Markdown on every chunk.

Same interface as ``aiml_magics.display.render.LiveMarkdown`` so the magic can drive it unchanged.
"""

from __future__ import annotations

from typing import Any

from aiml_magics.display.view import final_bundle


class NaiveMarkdown:
    def __init__(self, label: str = "") -> None:
        from IPython.display import display

        self._display = display
        self._id = f"naive-{id(self):x}"
        self._text = ""
        self._display({"text/markdown": "*waiting…*"}, raw=True, display_id=self._id)

    def reasoning(self, delta: str) -> None:
        pass

    def content(self, delta: str) -> None:
        self._text += delta
        self._display({"text/markdown": self._text}, raw=True, display_id=self._id, update=True)

    def finish(self, resp: Any) -> None:
        self._display(final_bundle(resp), raw=True, display_id=self._id, update=True)

    def abandon(self) -> None:
        self._display({"text/plain": ""}, raw=True, display_id=self._id, update=True)


def make_naive_renderer(shell: Any, label: str = "", **_: Any) -> NaiveMarkdown:
    return NaiveMarkdown(label)
