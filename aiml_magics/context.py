"""The notebook as context: what ran, and the last error, as one message a person would agree to.

Plain data in, text out (no IPython here): the notebook layer reads the kernel's record of
executions (``In``/``Out``, what each cell printed, the last exception) into :class:`Cell` and
:class:`LastError` values, and :func:`build` turns them into the text sent before a question.

What goes out is bounded and masked: every piece is redacted (a cell that printed the key is sent
masked) before it is clipped; cells are listed in the order they ran, by execution number; the
oldest cells are left out first to stay within the character budget, but never the failing cell
or a cell that defined a function in the traceback; frames outside the notebook (libraries,
modules) are named by file and line only, their source is not sent. The text says all of that,
so the model and the person reading ``aiml_response.request`` read the same account.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import redact

SOURCE_CHARS = 4000  # of one cell's source
RESULT_CHARS = 600  # of one cell's Out value
PRINTED_CHARS = 1200  # of what one cell printed
MESSAGE_CHARS = 2000  # of the exception's message
HEAD_FRAMES, TAIL_FRAMES = 10, 20  # a deep traceback keeps its ends
MIN_SOURCE = 300  # a kept cell is never cut below this to meet the budget

# IPython 7 names a cell's code object <ipython-input-N-hash>; later kernels use a temporary file
# that only the kernel's compiler cache maps back to N (passed in as ``names``).
_INPUT_NAME = re.compile(r"^<ipython-input-(\d+)-[0-9a-f]+>$")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Cell:
    """One executed cell: its execution number, source, short result and printed text."""

    number: int
    source: str
    result: str | None = None
    printed: str | None = None


@dataclass(frozen=True)
class Frame:
    """One traceback frame as plain data; ``cell`` is the notebook cell it ran in, if any."""

    filename: str
    lineno: int | None
    function: str
    line: str | None = None
    cell: int | None = None


@dataclass(frozen=True)
class LastError:
    """The last error: its type, message, frames (outermost first) and the cell that raised it."""

    kind: str
    message: str
    frames: tuple[Frame, ...] = ()
    cell: int | None = None
    chain: tuple[str, ...] = ()  # "Type: message" of the errors it came from, oldest first

    @property
    def defining_cells(self) -> list[int]:
        """Cells whose code is in the traceback (they defined the functions that ran)."""
        return sorted({f.cell for f in self.frames if f.cell is not None and f.cell != self.cell})


@dataclass
class Context:
    """The built text and an account of it: which cells went, which were left out or clipped."""

    text: str
    cells: list[int]
    left_out: list[int] = field(default_factory=list)
    clipped: list[str] = field(default_factory=list)
    failure: LastError | None = None

    def message(self, question: str) -> str:
        """The user message sent: the context, then the question."""
        return f"{self.text}\n\n---\n\n{question}"


# -- from the kernel's objects to plain data --------------------------------------------------------


def cell_of(filename: str, names: Mapping[str, int]) -> int | None:
    """The execution number of the cell whose code has this file name, or None (not a cell)."""
    if filename in names:
        return names[filename]
    match = _INPUT_NAME.match(filename)
    return int(match.group(1)) if match else None


def failure_of(exc: BaseException, names: Mapping[str, int], cell: int | None = None) -> LastError:
    """An exception as plain data. Frames before the first cell frame (the shell's own) are
    dropped; ``cell`` is the cell that raised it when the caller knows (else the outermost cell
    frame, or a SyntaxError's file)."""
    frames = [
        Frame(fs.filename, fs.lineno, fs.name, fs.line, cell_of(fs.filename, names))
        for fs in traceback.extract_tb(exc.__traceback__)
    ]
    first = next((i for i, f in enumerate(frames) if f.cell is not None), None)
    if first is not None:
        frames = frames[first:]
    if isinstance(exc, SyntaxError) and exc.filename:
        where = cell_of(exc.filename, names)
        frames.append(Frame(exc.filename, exc.lineno, "<module>", exc.text, where))
        cell = cell if cell is not None else where
    if cell is None and first is not None:
        cell = frames[0].cell
    chain: list[str] = []
    seen = {id(exc)}
    link = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while link is not None and id(link) not in seen and len(chain) < 3:
        seen.add(id(link))
        chain.insert(0, f"{_kind(link)}: {_text(link)}")
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else _text(exc)
    return LastError(_kind(exc), message, tuple(frames), cell, tuple(chain))


def _kind(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        return "(the message could not be read)"


def short_path(filename: str) -> str:
    """A library file without the machine's directories: from the package on (site-packages),
    from the standard library's folder, or relative to the working directory; else the file's
    name and its folder's."""
    for marker in ("site-packages", "dist-packages"):
        at = filename.rfind(f"{os.sep}{marker}{os.sep}")
        if at >= 0:
            return filename[at + len(marker) + 2 :]
    stdlib = os.path.dirname(os.__file__)
    if filename.startswith(stdlib + os.sep):
        return f"{os.path.basename(stdlib)}/{filename[len(stdlib) + 1 :]}"
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    if here and filename.startswith(here + os.sep):
        return filename[len(here) + 1 :]
    parts = filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:]) if len(parts) > 1 else filename


# -- clipping ------------------------------------------------------------------------------------


def clean(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Redacted first (a piece of a key never survives a cut), lone surrogates replaced."""
    text = redact(text, *secrets)
    return _SURROGATE.sub("\ufffd", text)


def clip_middle(text: str, limit: int) -> tuple[str, bool]:
    """At most about ``limit`` characters: the head and the tail (where an error usually is), with
    a note saying how much was left out."""
    if len(text) <= limit:
        return text, False
    head = max(limit * 3 // 5, 1)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    end = text[len(text) - tail :] if tail else ""
    return f"{text[:head]}\n[… {cut:,} characters left out …]\n{end}", True


def fence(text: str, info: str = "") -> str:
    """A code block whose fence no line of ``text`` can close."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    marks = "`" * (longest + 1)
    return f"{marks}{info}\n{text}\n{marks}"


# -- building the message ------------------------------------------------------------------------


def build(
    cells: Sequence[Cell],
    *,
    failure: LastError | None = None,
    last: int = 10,
    budget: int = 12_000,
    secrets: Iterable[str | None] = (),
) -> Context:
    """The context text for ``cells`` (the kernel's record, any order) and ``failure``.

    The ``last`` most recent cells go (with a failure: the ones that ran before the failing cell),
    plus the failing cell and every cell defining a function in the traceback, however old. Oldest
    first out to fit ``budget`` characters; the required cells are clipped instead, never dropped.
    """
    secrets = tuple(secrets)
    by_number = {c.number: c for c in cells}
    required: list[int] = []
    if failure is not None:
        required = [n for n in [*failure.defining_cells, failure.cell] if n in by_number]
    upto = failure.cell if failure is not None and failure.cell is not None else None
    before = sorted(n for n in by_number if n not in required and (upto is None or n < upto))
    recent = before[-last:] if last > 0 else []
    trace_notes: list[str] = []
    trace = ""
    if failure is not None:
        sources = {n: c.source for n, c in by_number.items()}
        trace = _failure_block(failure, sources, secrets, trace_notes, min(MESSAGE_CHARS, budget // 6))
    blocks = {n: _cell_block(by_number[n], failure, secrets) for n in [*required, *recent]}

    # Required cells first: clipped further if even they do not fit.
    room = budget - len(trace) - 600  # the header's share
    if required and sum(len(blocks[n][0]) for n in required) > room:
        share = max(room // len(required), MIN_SOURCE)
        for n in required:
            if len(blocks[n][0]) > share:
                blocks[n] = _cell_block(by_number[n], failure, secrets, limit=share)
    kept = list(required)
    for n in reversed(recent):  # newest first, so the oldest are left out first
        if sum(len(blocks[k][0]) for k in kept) + len(blocks[n][0]) <= room:
            kept.append(n)
    kept.sort()
    while True:
        dropped = [n for n in recent if n not in kept]
        text = _render(kept, blocks, trace, trace_notes, dropped, budget, failure)
        optional = [n for n in kept if n not in required]
        if len(text) <= budget or not optional:
            break
        kept.remove(optional[0])
    if len(text) > budget:  # required cells and the traceback alone: cut, and say so
        note = f"\n[… cut to the budget of {budget:,} characters …]"
        text = text[: max(budget - len(note), 0)] + note
    clipped = [*trace_notes, *(note for n in kept for note in blocks[n][1])]
    return Context(text, kept, dropped, clipped, failure)


def _cell_block(
    cell: Cell, failure: LastError | None, secrets: tuple[str | None, ...], limit: int = SOURCE_CHARS,
) -> tuple[str, list[str]]:
    """One cell as text, and what of it was clipped."""
    label = f"In[{cell.number}]"
    if failure is not None and cell.number == failure.cell:
        label += " (the cell that failed)"
    elif failure is not None and cell.number in failure.defining_cells:
        names = sorted({f.function for f in failure.frames if f.cell == cell.number})
        label += f" (defines {', '.join(names)}, in the traceback)"
    notes = []
    source, cut = clip_middle(clean(cell.source.rstrip(), secrets), limit)
    if cut:
        notes.append(f"the source of In[{cell.number}]")
    parts = [f"{label}:", fence(source, "python")]
    if cell.result is not None:
        result, cut = clip_middle(clean(cell.result, secrets), RESULT_CHARS)
        if cut:
            notes.append(f"Out[{cell.number}]")
        parts.append(f"Out[{cell.number}]:\n{fence(result)}")
    if cell.printed:
        printed, cut = clip_middle(clean(cell.printed.rstrip(), secrets), PRINTED_CHARS)
        if cut:
            notes.append(f"what In[{cell.number}] printed")
        parts.append(f"Printed by In[{cell.number}]:\n{fence(printed)}")
    return "\n".join(parts), notes


def _failure_block(
    failure: LastError, sources: Mapping[int, str], secrets: tuple[str | None, ...], clipped: list[str],
    limit: int = MESSAGE_CHARS,
) -> str:
    where = f"In[{failure.cell}]" if failure.cell is not None else "code outside the notebook's cells"
    message, cut = clip_middle(clean(failure.message, secrets), limit)
    if cut:
        clipped.append("the error message")
    lines = [f"The last error, raised by {where}:", f"{failure.kind}: {message}".rstrip(": ")]
    for earlier in failure.chain:
        text, _ = clip_middle(clean(earlier, secrets), limit // 4)
        lines.append(f"(It happened while handling: {text})")
    frames = list(failure.frames)
    lines.append("Traceback (most recent call last):")
    if len(frames) > HEAD_FRAMES + TAIL_FRAMES:
        skipped = len(frames) - HEAD_FRAMES - TAIL_FRAMES
        clipped.append(f"{skipped:,} frames in the middle of the traceback")
        shown: list[Frame | None] = [*frames[:HEAD_FRAMES], None, *frames[-TAIL_FRAMES:]]
    else:
        skipped, shown = 0, list(frames)
    for frame in shown:
        if frame is None:
            lines.append(f"  [… {skipped:,} frames left out …]")
        elif frame.cell is not None:
            lines.append(f"  In[{frame.cell}], line {frame.lineno}, in {frame.function}")
            line = frame.line or _line(sources.get(frame.cell), frame.lineno)
            if line and line.strip():
                lines.append(f"    {clip_middle(clean(line.strip(), secrets), 300)[0]}")
        else:
            path = clean(short_path(frame.filename), secrets)
            lines.append(f"  {path}:{frame.lineno}, in {frame.function} (outside the notebook: "
                         "source not sent)")
    return "\n".join(lines)


def _line(source: str | None, lineno: int | None) -> str | None:
    lines = (source or "").splitlines()
    return lines[lineno - 1] if lineno is not None and 0 < lineno <= len(lines) else None


def _render(
    kept: list[int], blocks: Mapping[int, tuple[str, list[str]]], trace: str,
    trace_notes: list[str], dropped: list[int], budget: int, failure: LastError | None,
) -> str:
    names = ", ".join(f"In[{n}]" for n in kept) or "none"
    head = [
        f"Notebook context, from the kernel's record of what ran: {len(kept)} cell"
        f"{'s' if len(kept) != 1 else ''} ({names}), listed in the order they ran "
        "(In[n] is the execution number, not the position in the file)."
    ]
    if dropped:
        head.append(f"Left out to stay within {budget:,} characters: {_ranges(dropped)} "
                    "(older cells go first).")
    clipped = [*trace_notes, *(note for n in kept for note in blocks[n][1])]
    if clipped:
        head.append("Clipped: " + "; ".join(clipped) + ".")
    if failure is not None and any(f.cell is None for f in failure.frames):
        head.append("Frames outside the notebook are named by file and line only.")
    parts = [" ".join(head)]
    if trace:
        parts.append(trace)
    parts.extend(blocks[n][0] for n in kept)
    return "\n\n".join(parts)


def _ranges(numbers: list[int]) -> str:
    """In[1]–In[4], In[7]: runs of consecutive numbers."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"In[{r[0]}]" if len(r) == 1 else f"In[{r[0]}]–In[{r[-1]}]" for r in runs)


# -- the questions sent with it -----------------------------------------------------------------

EXPLAIN = (
    "Explain the last error above to someone learning Python: what went wrong, in which cell and "
    "line, why (the cause may be in an earlier cell), and how to fix it. Be brief."
)


def fix_question(failure: LastError) -> str:
    where = f"In[{failure.cell}]" if failure.cell is not None else "the failing code"
    return (
        f"Fix the last error above. Reply with a corrected version of {where} as one complete "
        "```python code block (the whole cell, ready to run), then explain the change in a few "
        "sentences."
    )


def explain_prompt(failure: LastError) -> str:
    """What the conversation remembers of an explain request: the question, not the context."""
    where = f" in In[{failure.cell}]" if failure.cell is not None else ""
    return f"Explain the last error ({failure.kind}{where})."


_BLOCK = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.M | re.S)


def first_python_block(answer: str) -> str | None:
    """The code of the answer's first Python block (an untagged block if none is tagged)."""
    untagged = None
    for match in _BLOCK.finditer(answer):
        lang = match.group(2).lower()
        if lang in ("python", "py", "python3", "ipython"):
            return match.group(3).rstrip("\n")
        if not lang and untagged is None:
            untagged = match.group(3).rstrip("\n")
    return untagged


__all__ = [
    "Cell", "Context", "LastError", "Frame", "build", "cell_of", "failure_of", "first_python_block",
    "short_path",
]
