"""What the browser would receive: an IPython DisplayPublisher that records every message.

A kernel's publisher serialises each message to JSON and sends it over ZMQ; this one serialises
it too (so a renderer that publishes more pays for it, as in a kernel) and records the time, the
kind (display / update / clear), the display id and the payload size, then drops it.
``replay`` rebuilds the cell's output area the way JupyterLab does.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from IPython.core.displaypub import DisplayPublisher


@dataclass
class Message:
    t: float
    kind: str  # "display", "update" or "clear"
    display_id: str | None
    nbytes: int  # UTF-8 bytes of the data values (what the frontend renders)
    data: dict[str, Any] | None


class Recorder(DisplayPublisher):
    def __init__(self, keep_data: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_data = keep_data
        self.messages: list[Message] = []
        self.busy = 0.0  # seconds spent inside publish (the kernel's share of a display)

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):  # noqa: ANN001
        t = time.monotonic()
        json.dumps({"data": data, "metadata": metadata or {}, "transient": transient or {}})
        nbytes = sum(len(v.encode("utf-8")) for v in data.values() if isinstance(v, str))
        self.messages.append(
            Message(
                t,
                "update" if update else "display",
                (transient or {}).get("display_id"),
                nbytes,
                data if self.keep_data else None,
            )
        )
        self.busy += time.monotonic() - t

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append(Message(time.monotonic(), "clear" if not wait else "clear_wait", None, 0, None))

    def since(self, t0: float) -> list[Message]:
        return [m for m in self.messages if m.t >= t0]


def replay(messages: list[Message]) -> list[dict[str, Any]]:
    """The output area after these messages: display appends, update replaces every output
    with that id, clear(wait) empties it before the next display."""
    outputs: list[tuple[str | None, dict[str, Any]]] = []
    clear_next = False
    for m in messages:
        if m.kind == "clear":
            outputs.clear()
        elif m.kind == "clear_wait":
            clear_next = True
        elif m.kind == "display":
            if clear_next:
                outputs.clear()
                clear_next = False
            outputs.append((m.display_id, m.data or {}))
        elif m.kind == "update":
            outputs = [(i, m.data or {}) if i == m.display_id else (i, d) for i, d in outputs]
    return [d for _, d in outputs]


def visible(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in outputs if any(isinstance(v, str) and v.strip() for v in d.values())]


_TAGS = ("h1", "h2", "h3", "table", "tr", "pre", "ul", "ol", "li", "blockquote")


def structure(markdown_text: str) -> dict[str, int]:
    """Counts of the structural HTML elements a Markdown rendering of the text contains."""
    import markdown

    html = markdown.markdown(markdown_text, extensions=["fenced_code", "tables"])
    return {tag: len(re.findall(rf"<{tag}[ >]", html)) for tag in _TAGS}
