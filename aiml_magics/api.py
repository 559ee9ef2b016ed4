"""One call from a script or a cell: ``chat()``, ``compare()``, ``map()`` on the default session.

In a notebook where ``%load_ext aiml_magics`` ran, the default session is the notebook's, so
``%config`` and the panel apply; elsewhere it is one session for the process, configured from
the environment. This is also where a batch's progress bar is chosen: a widget in a Jupyter
kernel (the notebook layer's), a text bar in a terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from .batch import Batch, run_map
from .comparison import Comparison
from .response import ChatResponse
from .session import Session
from .storelog import Log

_default: Session | None = None
_default_lock = threading.Lock()


def default_session() -> Session:
    """The notebook's session when the extension is loaded (so ``%config`` and the panel apply),
    else one session for this process, configured from the environment."""
    from .notebook import loaded

    magics = loaded()
    if magics is not None:
        return magics.session
    global _default
    with _default_lock:
        if _default is None:
            _default = Session()
        return _default


def chat(prompt: str, **options: Any) -> ChatResponse:
    """``default_session().chat(prompt, **options)``: one call from a script or a cell."""
    return default_session().chat(prompt, **options)


def compare(prompt: str, models: Sequence[str], **options: Any) -> Comparison:
    """``default_session().compare(prompt, models, **options)``: one call from a script or a cell."""
    return default_session().compare(prompt, models, **options)


def map(  # noqa: A001 - the public name: aiml_magics.map
    prompts_or_template: Any,
    rows: Any = None,
    *,
    concurrency: int = 8,
    executor: Executor | None = None,
    progress: Any = None,
    schema: Any = None,
    budget: float | None = None,
    session: Session | None = None,
    cache: bool = True,
    max_wait: float | None = None,
    deadline: float | None = None,
    retry_maybe_billed: bool = False,
    engine: str = "auto",
    **params: Any,
) -> Batch:
    """Send many prompts and return a ``Batch`` in input order.

    Either a list of prompts, or a template and ``rows`` (a DataFrame, or an iterable of
    mappings), each row expanded with the ``{name}`` rules of a cell. ``executor`` is any
    ``concurrent.futures.Executor`` (default: ``concurrency`` threads); ``schema`` a JSON-schema
    dict or pydantic class (one column per field in ``to_dataframe()``); ``budget`` credits after
    which nothing more is sent. ``params`` override the settings (model, temperature, ...);
    ``retries`` and ``backoff`` tune the per-item retries. Uses the notebook's session unless
    ``session`` is given. An item's failure never raises: it is a ``Failure`` in the batch.
    ``progress``: None picks (a widget in a notebook, a text bar on a terminal), True forces a
    bar, False none, a file gets a text bar (``progress.py``). Every wait is bounded
    (``batchrun.py``): an item waits at most ``max_wait`` seconds in total for retries (default:
    the ``max_wait`` setting, 30 s), the batch sends nothing after ``deadline`` seconds, and a
    request that may have been billed is not resent unless ``retry_maybe_billed``.
    ``cache``: an item the store already answered (same request) is not sent again, so a rerun
    costs nothing and a batch that died resumes; ``cache=False`` sends every item,
    ``refresh=True`` sends every item and stores the new answers.
    ``engine``: "async" sends on one asyncio event loop (aiohttp, ``pip install
    'aiml-magics[fast]'``: a fraction of the CPU per request), "threads" on a thread pool; "auto"
    (the default) picks async when aiohttp can be imported and no ``executor`` is given.
    """
    return run_map(session or default_session(), prompts_or_template, rows,
                   concurrency=concurrency, executor=executor, progress=progress, widget=widget_bar(),
                   schema=schema, budget=budget, cache=cache, max_wait=max_wait, deadline=deadline,
                   retry_maybe_billed=retry_maybe_billed, engine=engine, **params)


def log(search: str | None = None, model: str | None = None, since: Any = None,
        limit: int | None = None, *, session: Session | None = None) -> Log:
    """Exchanges kept in the store (newest first), from every kernel and script that used it.

    ``search``: words in the prompt or the answer; ``model``: asked or reported; ``since``: "7d",
    "12h", a date or a datetime; ``limit``: at most this many. Uses the notebook's session's store
    unless ``session`` is given. ``.to_dataframe()``, ``.totals(by="day")``, ``.to_cassette(path)``.
    """
    from .storelog import read

    return read((session or default_session()).connection.store, search, model, since, limit)


def explain(*, dry_run: bool = False, **options: Any) -> None:
    """``%aiml explain`` from code: the kernel's last error, with the cells that led to it, is
    sent and the answer shown (``default_session().last_response``). ``dry_run``: show the
    message, send nothing. ``options``: parameters such as ``model``, as for ``chat()``."""
    _about_error(fix=False, dry_run=dry_run, options=options)


def fix(*, dry_run: bool = False, **options: Any) -> None:
    """``%aiml fix`` from code: a corrected failing cell is put into a new cell below (never run);
    in plain Python, with no notebook, its code is printed."""
    _about_error(fix=True, dry_run=dry_run, options=options)


def _about_error(*, fix: bool, dry_run: bool, options: dict[str, Any]) -> None:
    from .display.render import current_shell
    from .notebook import loaded
    from .notebook.explain import FromCode, ask_about_error

    face = loaded() or FromCode(default_session(), current_shell())
    ask_about_error(face, fix=fix, dry_run=dry_run, **options)


def widget_bar() -> Any:
    """The notebook's progress widget class when running in a Jupyter kernel, else None."""
    from .progress import in_kernel

    if not in_kernel():
        return None
    from .notebook.progress import WidgetProgress

    return WidgetProgress
