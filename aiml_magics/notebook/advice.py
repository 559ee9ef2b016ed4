"""What to do about an error, in notebook terms: the commands and variables a cell user has.

The core's messages state facts and plain-Python fixes; in a notebook the same error also says
which ``%aiml`` command or ``%config`` setting helps and where the partial answer went.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import errors as E

KEPT = "What arrived is kept in aiml_response and the conversation."

KEY_HOW = ("`%aiml key` (masked prompt), the AIML_API_KEY environment variable set before "
           "starting Jupyter, or `%config AIMLMagics.api_key`")

ADVICE: tuple[tuple[type[BaseException], str], ...] = (
    (E.MissingKeyError, f"Set one with {KEY_HOW}. Avoid `%env`, which prints the key into the "
     "notebook."),
    (E.BadKeyError, "Enter it again with `%aiml key`."),
    (E.AuthenticationError, f"Set a valid key with {KEY_HOW}."),
    (E.BadRequestError, "(`%aiml config` shows what is set, `%aiml models` lists model ids.)"),
    (E.NotFoundError, "(`%config AIMLMagics.base_url` sets the base URL; `%aiml models` lists "
     "model ids.)"),
    (E.ResponseTimeout, "Try again, pick another model, or raise `%config AIMLMagics.timeout`."),
    (E.ProtocolError, "Check the base URL (`%aiml config`); if it is right, try again."),
    (E.IncompleteAnswer, KEPT + " Run the cell again for a full answer."),
    (E.ConnectError, "Check the network and `%config AIMLMagics.base_url`; run the cell again."),
)
RAISE_LIMIT = "raise `%config AIMLMagics.max_answer_bytes` for longer answers."
INSECURE = ("Use https://, or if you really mean it, "
            "`%config AIMLMagics.allow_insecure_http = True`.")


def notebook_advice(exc: BaseException) -> str:
    """The hint a notebook user needs for ``exc`` ("" keeps the core's own)."""
    from ..http.answer import AGAIN

    if isinstance(exc, E.AIMLError) and exc.hint == AGAIN:  # nothing to fix: ask once more
        return "Run the cell again for an answer."
    if isinstance(exc, E.ConfigError) and exc.kind == "insecure":
        return INSECURE
    if isinstance(exc, E.IncompleteAnswer) and exc.limit == "max_answer_bytes":
        return f"{KEPT[:-1]}; {RAISE_LIMIT}"
    if isinstance(exc, E.LimitError) and "max_answer_bytes" in exc.facts:
        return RAISE_LIMIT[:1].upper() + RAISE_LIMIT[1:]
    successor = getattr(exc, "successor", None)
    if successor:
        return (f"The current ERNIE 5 model is `{successor}`: run "
                f"`%config AIMLMagics.model = \"{successor}\"`, or pick it in `%aiml panel`.")
    from ..vision import NoVision

    if isinstance(exc, NoVision):
        return "`%aiml models --vision` lists the models that can; pick one with `-m ID`."
    for kind, text in ADVICE:
        if isinstance(exc, kind):
            return text
    return ""


@contextmanager
def advised() -> Iterator[None]:
    """Re-raise the session's errors with notebook advice added (still one paragraph).

    The magic clears the frames under them once they are finished (``secrets.forget_frames``).
    """
    try:
        yield
    except E.AIMLError as exc:
        raise exc.advise(notebook_advice(exc)) from None
    except E.StreamInterrupted as exc:
        exc.message = f"{exc.message.replace(' in the history', '')} {KEPT}"
        exc.args = (exc.message,)
        raise exc from None
