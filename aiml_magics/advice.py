"""What to do about an error, in notebook terms: the commands and variables a cell user has.

The core's messages state facts and plain-Python fixes; in a notebook the same error also says
which ``%aiml`` command or ``%config`` setting helps and where the partial answer went.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import errors as E

KEPT = "What arrived is kept in `aiml_response` and the conversation."

ADVICE: tuple[tuple[type[BaseException], str], ...] = (
    (E.MissingKeyError, "Run `%aiml key` (masked prompt), set the AIML_API_KEY environment variable "
     "before starting Jupyter, or `%config AIMLMagics.api_key`. Avoid `%env`, which prints the key "
     "into the notebook."),
    (E.AuthenticationError, "Set a valid key with `%aiml key`, the AIML_API_KEY environment "
     "variable, or `%config AIMLMagics.api_key`."),
    (E.BadRequestError, "`%aiml config` shows what is set, `%aiml models` lists model ids."),
    (E.NotFoundError, "Check `%config AIMLMagics.base_url` and the model id (`%aiml models`)."),
    (E.ResponseTimeout, "Try again, pick another model, or raise `%config AIMLMagics.timeout`."),
    (E.ProtocolError, "Check the base URL (`%aiml config`); if it is right, try again."),
    (E.IncompleteAnswer, KEPT + " Run the cell again for a full answer."),
)


def notebook_advice(exc: BaseException) -> str:
    if "%aiml" in str(exc) or "AIMLMagics" in str(exc):  # it already says what to run
        return ""
    for kind, text in ADVICE:
        if isinstance(exc, kind):
            return text
    return ""


@contextmanager
def advised() -> Iterator[None]:
    """Re-raise the session's errors with notebook advice added (still one paragraph)."""
    try:
        yield
    except E.AIMLError as exc:
        raise exc.advise(notebook_advice(exc)) from None
    except E.StreamInterrupted as exc:
        exc.message = f"{exc.message} {KEPT}"
        exc.args = (exc.message,)
        raise exc from None
