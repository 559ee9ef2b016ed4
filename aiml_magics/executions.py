"""The kernel's record of what ran, read into plain data for ``context.py``.

While the extension is loaded, :class:`Recorder` listens to the shell's ``pre_run_cell`` and
``post_run_cell`` events: it keeps a bounded copy of what each cell printed (stdout and stderr are
passed through unchanged; only the head and tail of each cell's text are kept) and, when a cell
fails, the error as plain data (not the exception, whose frames would keep every local alive).
:func:`cells` reads the rest from the shell's history: ``In`` (raw, as typed), ``Out``, and the
compiler's map of code file names to execution numbers. The shell is only read through its
attributes, so this works from IPython 7.34 on; no IPython import.
"""

from __future__ import annotations

import re
import reprlib
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Cell, LastError

# Loaded with the extension, so ``context`` (the message builder) is imported on first use only.
KEEP_PRINTED = 4800  # of one cell's printed text (4 x context.PRINTED_CHARS), clipped later
KEEP_CELLS = 200  # cells whose printed text is kept


def is_own_cell(source: str) -> bool:
    """A ``%aiml``/``%%aiml`` cell (a question to the model, not code the notebook ran) or the
    one that loads the extension."""
    text = source.strip()
    return text.startswith(("%aiml", "%%aiml")) or text in ("%load_ext aiml_magics",
                                                             "%reload_ext aiml_magics")


# Compiled on first use (re's own cache): loading the extension compiles nothing.
_ANSI = r"\x1b\[[0-9;?]*[A-Za-z]"
_TRACEBACK = r"^-{20,}\n\S*(Error|Exception|Exit|Interrupt)\S*\s+Traceback"
_PROMPT = r"^Out\[\d+\]: "


def terminal_noise(text: str) -> str:
    """What a terminal shell itself wrote to stdout (kernels send these as messages instead):
    colour codes, the ``Out[n]:`` value shown last (the context has ``Out``), and the traceback of
    a failing cell, which the context gives in its own plain form."""
    text = re.sub(_ANSI, "", text)
    for pattern in (_TRACEBACK, _PROMPT):
        cut = re.search(pattern, text, re.M)
        if cut:
            text = text[: cut.start()]
    return text


class _Printed:
    """One cell's printed text: the first and last ``KEEP_PRINTED // 2`` characters, and a count."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.head_len = 0
        self.tail: deque[str] = deque()
        self.tail_len = 0
        self.total = 0

    def add(self, text: str) -> None:
        half = KEEP_PRINTED // 2
        self.total += len(text)
        if self.head_len < half:
            take = text[: half - self.head_len]
            self.head.append(take)
            self.head_len += len(take)
            text = text[len(take) :]
        if len(text) >= half:  # one long write: only its end can stay
            self.tail.clear()
            self.tail_len = 0
            text = text[-half:]
        if text:
            self.tail.append(text)
            self.tail_len += len(text)
            while self.tail and self.tail_len - len(self.tail[0]) >= half:
                self.tail_len -= len(self.tail.popleft())

    def text(self) -> str:
        head, tail = "".join(self.head), "".join(self.tail)[-(KEEP_PRINTED // 2) :]
        cut = self.total - len(head) - len(tail)
        return f"{head}\n[… {cut:,} characters left out …]\n{tail}" if cut > 0 else head + tail


class _Tee:
    """A stream that writes through to the one it wraps and keeps a copy."""

    def __init__(self, inner: Any, sink: _Printed) -> None:
        self._inner = inner
        self._sink = sink

    def write(self, text: str) -> Any:
        written = self._inner.write(text)
        try:
            self._sink.add(text if isinstance(text, str) else str(text))
        except Exception:  # noqa: BLE001 - a copy must never break the cell's output
            pass
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Recorder:
    """Printed text and the last error of the cells that run while the extension is loaded."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.printed: OrderedDict[int, str] = OrderedDict()
        self.failure: LastError | None = None
        self._current: _Printed | None = None
        self._streams: tuple[Any, Any] | None = None
        self._own = False
        self.raw_cell: str | None = None  # the cell running now, as typed
        self.initial = _last_shown()  # an error from before the extension was loaded
        self._shown: object = self.initial

    def __repr__(self) -> str:
        return f"<Recorder: {len(self.printed)} cell(s) of printed text>"

    def start(self) -> None:
        events = self.shell.events
        events.register("pre_run_cell", self.pre_run_cell)
        events.register("post_run_cell", self.post_run_cell)

    def stop(self) -> None:
        for name, callback in (("pre_run_cell", self.pre_run_cell),
                               ("post_run_cell", self.post_run_cell)):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                pass
        self._restore()

    def pre_run_cell(self, info: Any = None) -> None:
        raw = getattr(info, "raw_cell", None) or ""
        self.raw_cell = raw
        self._own = is_own_cell(raw)
        self._shown = _last_shown()
        if getattr(info, "silent", False) or not getattr(info, "store_history", True) or self._own:
            return
        self._restore()
        self._current = _Printed()
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self._current)
        sys.stderr = _Tee(sys.stderr, self._current)

    def post_run_cell(self, result: Any = None) -> None:
        current = self._current
        self._restore()
        number = getattr(result, "execution_count", None)
        if number is None:
            return
        text = terminal_noise(current.text()) if current is not None and current.total else ""
        if text.strip():
            self.printed[number] = text
            while len(self.printed) > KEEP_CELLS:
                self.printed.popitem(last=False)
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if error is None and _last_shown() is not self._shown:
            error = _last_shown()  # caught, and shown with showtraceback(): the cell went on
        ours = type(error).__module__.startswith("aiml_magics")  # a failed request: not the code's
        if isinstance(error, BaseException) and not self._own and not ours:
            try:
                from .context import failure_of

                self.failure = failure_of(error, code_names(self.shell), cell=number)
            except Exception:  # noqa: BLE001 - a side path never breaks the cell
                self.failure = None

    def _restore(self) -> None:
        """Put the streams back, unless the cell replaced them itself (then it keeps its own)."""
        if self._streams is not None:
            out, err = self._streams
            if isinstance(sys.stdout, _Tee) and sys.stdout._sink is self._current:
                sys.stdout = out
            if isinstance(sys.stderr, _Tee) and sys.stderr._sink is self._current:
                sys.stderr = err
        self._streams = None
        self._current = None


def code_names(shell: Any) -> dict[str, int]:
    """The compiler's map of code file names to execution numbers.

    IPython 8 keeps one (``_filename_map``). IPython 7 with ipykernel 6 names cells by a hash of
    their source, so each cell's name is computed again with the compiler's own ``get_code_name``;
    older ``<ipython-input-N-...>`` names carry N themselves (``context.cell_of``).
    """
    compiler = getattr(shell, "compile", None)
    known = getattr(compiler, "_filename_map", None)
    if isinstance(known, dict) and known:
        return {str(k): int(v) for k, v in known.items()}
    name_of = getattr(compiler, "get_code_name", None)
    history = getattr(shell, "history_manager", None)
    if name_of is None or history is None:
        return {}
    names: dict[str, int] = {}
    pairs = zip(history.input_hist_raw, history.input_hist_parsed, strict=False)
    for number, (raw, parsed) in enumerate(pairs):
        for text in (raw, raw + "\n"):  # the history keeps sources without their last newline
            try:
                names[str(name_of(text, parsed, number))] = number
            except Exception:  # noqa: BLE001
                break
    return names


def _last_shown() -> object:
    """The last error the shell showed (IPython keeps it in ``sys``)."""
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


def last_failure(shell: Any, recorder: Recorder | None) -> LastError | None:
    """The last error: the one the recorder saw (errors of ``%aiml`` cells do not count), else the
    one the shell showed before the extension was loaded (or, with no recorder, last of all)."""
    if recorder is not None:
        if recorder.failure is not None:
            return recorder.failure
        exc = recorder.initial
    else:
        exc = _last_shown()
    if not isinstance(exc, BaseException):
        return None
    from .context import failure_of

    return failure_of(exc, code_names(shell) if shell is not None else {})


def short_result(value: Any) -> str:
    """``Out[n]`` as short text (bounded even for a list of a million items)."""
    from .context import RESULT_CHARS

    bounded = reprlib.Repr()
    bounded.maxstring = bounded.maxother = 2 * RESULT_CHARS
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 20
    bounded.maxlevel = 3
    try:
        return bounded.repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the context
        return f"<{type(value).__name__}: repr() failed: {type(exc).__name__}>"


def cells(shell: Any, recorder: Recorder | None, *, last: int, before: int | None,
          required: Iterable[int] = ()) -> list[Cell]:
    """The notebook's executed cells that can go into a context: the ``last`` before ``before``
    (the asking cell or the failing one) and the ``required`` ones, as plain data."""
    from .context import Cell

    history = shell.history_manager
    sources = history.input_hist_raw
    outputs = getattr(history, "output_hist", {}) or {}
    printed = recorder.printed if recorder is not None else {}
    stop = len(sources) if before is None else min(before, len(sources))
    wanted = [n for n in range(stop - 1, 0, -1)
              if sources[n].strip() and not is_own_cell(sources[n])][:last]
    numbers = sorted({*wanted, *(n for n in required if 0 < n < len(sources))})
    return [
        Cell(n, sources[n], short_result(outputs[n]) if n in outputs else None, printed.get(n))
        for n in numbers
    ]
