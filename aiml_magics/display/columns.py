"""A comparison on screen: one column a model in a notebook, one answer after another in a terminal.

The notebook view is ONE Markdown display, updated in place on the caller's ticks: a flex row of
columns that wrap under each other on a narrow screen, each headed by its model and ending with
its own footer (time to first token, seconds, tokens per second, tokens, credits). The markup
around the columns is ours; every piece of model text inside goes through ``view.shown`` (inert,
key masked) exactly as a single answer does, between blank lines so it is read as Markdown of its
own. A tick re-sends the columns only while the bytes sent stay within ``budget`` times the text
shown (plus slack), so the total stays linear in the answers' length; a model finishing is always
shown at once. A frontend that strips our styles still shows the columns one under another.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..response import ECHO_SOURCE
from .safemd import literal
from .view import close_fences, json_block, reasoning_block, shown, shown_plain

if TYPE_CHECKING:
    from ..comparison import Comparison, Lane
    from ..response import ChatResponse

Publisher = Callable[[dict[str, str], str, bool], None]

ROW = '<div class="aiml-compare" style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
COLUMN = (
    '<div class="aiml-compare-column" style="flex:1 1 220px;min-width:0;max-width:100%;'
    'overflow-x:auto;box-sizing:border-box;padding:4px 12px;'
    'border:1px solid rgba(128,128,128,0.35);border-radius:6px">'
)
HEAD = (
    '<div class="aiml-compare-model" style="font-weight:bold;'
    'border-bottom:1px solid rgba(128,128,128,0.35);padding:4px 0">'
)
#: Characters of one answer (and of its reasoning) shown in a column. Eight models streaming
#: 30 MB each made a 503 MB display message; the whole text stays in ``aiml_response[model]``.
COLUMN_CHARS = 50_000
NOT_IN_CONVERSATION = (
    "not added to the conversation (no single answer to continue from): "
    "the next cell continues from before this comparison"
)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"


def column_footer(resp: ChatResponse) -> str:
    """first token · seconds · tokens/s · tokens · credits (those the service reported), and
    anything unusual, as plain text."""
    from ..response import tokens_per_second
    from .view import _count

    parts = [f"first token {_seconds(resp.first_token_seconds)}", f"{resp.elapsed:.1f} s"]
    speed = tokens_per_second(resp)
    if speed is not None:
        parts.append(f"{speed:,.0f} tokens/s")
    u = resp.usage
    if u.prompt_tokens is not None or u.completion_tokens is not None:  # not for the echo
        tokens = f"{_count(u.prompt_tokens)} + {_count(u.completion_tokens)} tokens"
        if u.reasoning_tokens:
            tokens += f" ({_count(u.reasoning_tokens)} reasoning)"
        parts.append(tokens)
    if resp.credits_used is not None:
        parts.append(f"{_count(resp.credits_used)} credits")
    if resp.model and resp.model != resp.requested_model and resp.source != ECHO_SOURCE:
        parts.append(f"served as {resp.model}")
    if resp.source != "live":  # a cached answer says when it was first answered
        parts.append(resp.provenance if resp.source == "cache" and resp.provenance else resp.source)
    if not resp.complete:
        parts.append(f"⚠ {resp.finish_reason or 'incomplete'}: partial answer")
    elif resp.finish_reason == "length":
        parts.append("⚠ stopped at the token limit")
    parts.extend(f"⚠ {w}" for w in resp.warnings)
    return " · ".join(parts)


def summary_line(comparison: Comparison) -> str:
    n, ok = len(comparison), len(comparison.answered)
    return f"{n} models asked at once, {ok} answered · {NOT_IN_CONVERSATION}"


def _error_markdown(error: BaseException) -> str:
    return f"**⚠ Failed:** {literal(shown_plain(str(error)))}"


def _column(model: str, body: str) -> str:
    # Blank lines around the body: our HTML blocks end there, so the body is read as Markdown.
    # The model id is service text too: control characters shown visibly, the key masked.
    return f"{COLUMN}\n{HEAD}{literal(shown_plain(model))}</div>\n\n{body}\n\n</div>"


def clipped(text: str, model: str, total: int | None = None) -> tuple[str, str]:
    """(what a column shows of ``text``, the note saying what was left out, or ""); ``total``:
    the answer's length when ``text`` is already only its start (a lane keeps no more)."""
    total = len(text) if total is None else max(total, len(text))
    if total <= COLUMN_CHARS:
        return text, ""
    note = (f"clipped: {COLUMN_CHARS:,} of {total:,} characters shown; the whole text is in "
            f"aiml_response[{model!r}]")
    return text[:COLUMN_CHARS], note


def _row(columns: list[str], note: str = "") -> str:
    tail = f"\n\n<sub>{literal(shown_plain(note))}</sub>\n" if note else "\n"
    return f"{ROW}\n\n" + "\n\n".join(columns) + f"\n\n</div>{tail}"


def final_column(model: str, resp: ChatResponse) -> str:
    allow = resp.allow_remote_images
    parts = []
    if resp.reasoning:
        parts.append(reasoning_block(clipped(resp.reasoning, model)[0], allow).rstrip())
    text, note = clipped(resp.text, model)
    answer = json_block(resp) if not note else None
    answer = answer or (close_fences(text) if text else None)
    if answer is not None:
        parts.append(shown(answer, allow))
    elif resp.error is None:
        parts.append("*(no answer text)*")
    if note:
        parts.append(f"<sub>{literal(shown_plain(note))}</sub>")
    if resp.error is not None:
        parts.append(_error_markdown(resp.error))
    if resp.finish_reason != "error":
        parts.append(f"<sub>{literal(shown_plain(column_footer(resp)))}</sub>")
    return _column(model, "\n\n".join(parts))


def final_markdown(comparison: Comparison) -> str:
    columns = [final_column(m, comparison[m]) for m in comparison]
    return _row(columns, summary_line(comparison))


def final_plain(comparison: Comparison) -> str:
    parts = []
    for model in comparison:
        resp = comparison[model]
        parts.append(f"== {model} ==")
        text, note = clipped(resp.text, model)
        if text:
            parts.append(text + (f"\n[{note}]" if note else ""))
        if resp.error is not None:
            parts.append(f"⚠ Failed: {resp.error}")
        if resp.finish_reason != "error":
            parts.append(f"— {column_footer(resp)}")
        parts.append("")
    parts.append(summary_line(comparison))
    return shown_plain("\n".join(parts))


def final_bundle(comparison: Comparison) -> dict[str, str]:
    return {"text/markdown": final_markdown(comparison), "text/plain": final_plain(comparison)}


def live_column(lane: Lane, allow_remote_images: bool) -> str:
    if lane.done and lane.response is not None:
        resp = lane.response
        if lane.error is not None and resp.error is None:
            resp.error = lane.error if isinstance(lane.error, Exception) else None
        return final_column(lane.model, resp)
    if lane.done and lane.error is not None:
        return _column(lane.model, _error_markdown(lane.error))
    text, note = clipped(lane.text(), lane.model, lane.chars)
    if text:
        body = shown(close_fences(text), allow_remote_images) + (f"\n\n*({literal(note)})*" if note else "")
    elif lane.reasoning_chars:
        body = f"*💭 Reasoning… {lane.reasoning_chars:,} chars*"
    else:
        body = "*⏳ Waiting…*"
    return _column(lane.model, body)


class ColumnsBoard:
    """The notebook's side-by-side view: one display, updated in place at most once a tick."""

    SLACK = 8192
    shows = COLUMN_CHARS  # what of each answer the lanes keep while it streams

    def __init__(
        self,
        publish: Publisher | None = None,
        *,
        allow_remote_images: bool = False,
        budget: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if publish is None:
            from .render import ipython_publisher

            publish = ipython_publisher
        self._publish_fn: Publisher = publish
        self._allow = allow_remote_images
        self._budget = budget
        self._id = f"aiml-compare-{id(self):x}-{int(clock() * 1e6):x}"
        self._seen: tuple[tuple[int, bool], ...] = ()
        self._started = False
        self.bytes_published = 0
        self.updates = 0

    def _publish(self, data: dict[str, str]) -> None:
        self.bytes_published += sum(len(v) for v in data.values())
        self.updates += 1
        self._publish_fn(data, self._id, self._started)
        self._started = True

    def tick(self, lanes: Sequence[Lane]) -> None:
        state = tuple((lane.version, lane.done) for lane in lanes)
        if state == self._seen:
            return
        newly_done = not self._seen or any(
            now[1] and not was[1] for now, was in zip(state, self._seen, strict=True)
        )
        chars = sum(min(lane.chars, COLUMN_CHARS) for lane in lanes)  # what a column can show
        markup = _row([live_column(lane, self._allow) for lane in lanes])
        if not newly_done and self.bytes_published + len(markup) > self._budget * chars + self.SLACK:
            return  # held back: the text grows faster than it is worth re-sending
        self._seen = state
        self._publish({"text/markdown": markup, "text/plain": ""})

    def finish(self, comparison: Comparison) -> None:
        self._publish(final_bundle(comparison))


class TerminalBoard:
    """Terminal IPython: the models in the given order, each streamed and ended with its footer
    while the others (asked at the same time) wait their turn to be printed."""

    shows = COLUMN_CHARS  # what of each answer the lanes keep while it streams

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._at = 0
        self._term: Any = None
        self._fed = 0
        self._fed_reasoning = 0

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def tick(self, lanes: Sequence[Lane]) -> None:
        from .terminal import TerminalText

        while self._at < len(lanes):
            lane = lanes[self._at]
            if self._term is None:
                self._write(f"== {shown_plain(lane.model)} ==\n")
                self._term = TerminalText(self._out, label=lane.model, footer=column_footer)
                self._fed = self._fed_reasoning = 0
            self._feed(lane.reasoning_text(), lane.text())
            if not lane.done:
                return
            if lane.response is not None:
                self._term.finish(lane.response)
            self._clip_note(lane.text(), lane.model, lane.chars)
            if lane.error is not None:
                self._write(f"⚠ Failed: {shown_plain(str(lane.error))}\n")
            self._write("\n")
            self._term = None
            self._at += 1

    def _feed(self, reasoning: str, text: str) -> None:
        """What is new of the lane, up to what a column shows (``COLUMN_CHARS`` each)."""
        upto = min(len(reasoning), COLUMN_CHARS)
        if upto > self._fed_reasoning:
            self._term.reasoning(reasoning[self._fed_reasoning : upto])
            self._fed_reasoning = upto
        upto = min(len(text), COLUMN_CHARS)
        if upto > self._fed:
            self._term.content(text[self._fed : upto])
            self._fed = upto

    def _clip_note(self, text: str, model: str, total: int | None = None) -> None:
        note = clipped(text, model, total)[1]
        if note:
            self._write(f"[{shown_plain(note)}]\n")

    def finish(self, comparison: Comparison) -> None:
        """Print what the ticks did not reach (a model that ended after the last look)."""
        from .terminal import TerminalText

        for model in comparison.models[self._at :]:
            resp = comparison[model]
            if self._term is None:
                self._write(f"== {shown_plain(model)} ==\n")
                self._term = TerminalText(self._out, label=model, footer=column_footer)
                self._fed = self._fed_reasoning = 0
            self._feed(resp.reasoning or "", resp.text)
            if resp.finish_reason != "error":
                self._term.finish(resp)
            self._clip_note(resp.text, model)
            if resp.error is not None:
                self._write(f"⚠ Failed: {shown_plain(str(resp.error))}\n")
            self._write("\n")
            self._term = None
        self._at = len(comparison)
        self._write(shown_plain(summary_line(comparison)) + "\n")


def make_board(shell: Any, allow_remote_images: bool = False) -> Any:
    """Terminal IPython prints one answer after another; every other frontend gets columns."""
    from .render import is_terminal

    if is_terminal(shell):
        return TerminalBoard()
    return ColumnsBoard(allow_remote_images=allow_remote_images)
