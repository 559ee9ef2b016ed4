"""A question with the notebook's record as context: ``%aiml explain``, ``%aiml fix``,
``%%aiml --context`` and ``explain()``/``fix()`` build it here, the same way.

The message sent is the context (``context.py``) followed by the question; the conversation keeps
the question only (``context_memory`` keeps the context too): a context is up to
``context_budget`` characters of code that is stale by the next cell, and carrying it in every
later request would multiply the tokens paid for it. The shell is read through its attributes
(``executions.py``); with no shell (plain Python), only the last error's traceback is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .context import EXPLAIN, Context, build, explain_prompt, first_python_block, fix_question
from .executions import Recorder, cells, last_failure

NO_ERROR = "No error to explain: no cell has failed since the kernel started."
NO_FIX = "No error to fix: no cell has failed since the kernel started."


@dataclass(frozen=True)
class Asking:
    """What goes out (``content``: context, then question) and what the conversation keeps."""

    content: str
    remembered: str
    context: Context


def _limits(session: Any, last: int | None) -> tuple[int, int, bool]:
    s = session.settings
    count = s.context_cells if last is None else last
    return int(count), int(s.context_budget), bool(s.context_memory)


def _secrets(session: Any) -> list[str]:
    from .secrets import reveal

    key, _ = session.effective_key()  # registers a key from the environment, too
    return [k for k in (reveal(key),) if k]


def with_context(shell: Any, recorder: Recorder | None, session: Any, question: str,
                 last: int | None = None) -> Asking:
    """``%%aiml --context [N]``: the last N cells that ran before this one, then the question."""
    count, budget, memory = _limits(session, last)
    ran = [] if shell is None else cells(shell, recorder, last=count,
                                         before=getattr(shell, "execution_count", None))
    ctx = build(ran, last=count, budget=budget, secrets=_secrets(session))
    content = ctx.message(question)
    return Asking(content, content if memory else question, ctx)


def for_error(shell: Any, recorder: Recorder | None, session: Any, *, fix: bool) -> Asking | None:
    """``%aiml explain`` / ``%aiml fix``: the last error with its cells; None when there is none."""
    failure = last_failure(shell, recorder)
    if failure is None:
        return None
    count, budget, memory = _limits(session, None)
    required = [n for n in (failure.cell, *failure.defining_cells) if n is not None]
    before = failure.cell if failure.cell is not None else getattr(shell, "execution_count", None)
    ran = [] if shell is None else cells(shell, recorder, last=count, before=before,
                                         required=required)
    ctx = build(ran, failure=failure, last=count, budget=budget, secrets=_secrets(session))
    question = fix_question(failure) if fix else EXPLAIN
    content = ctx.message(question)
    remembered = explain_prompt(failure)
    if fix:
        remembered = remembered.replace("Explain", "Fix", 1)
    return Asking(content, content if memory else remembered, ctx)


def place_fix(shell: Any, answer: str) -> str | None:
    """The code of the answer's first Python block, put into a new cell below (never run); from
    plain Python (no shell), printed. None when the answer has no code block."""
    code = first_python_block(answer)
    if code is None:
        return None
    if shell is not None and hasattr(shell, "set_next_input"):
        shell.set_next_input(code, replace=False)
    else:
        print(code)
    return code
