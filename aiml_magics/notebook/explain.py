"""``%aiml explain`` and ``%aiml fix``: the last error, with the cells that led to it, sent like
any cell (same prepare/send, footer, ``aiml_response``, replay and record); ``--dry-run`` shows
exactly the message and sends nothing. Also ``%%aiml --context`` and ``aiml_magics.explain()``/
``fix()``.

The magic imports this module before it routes a line command, which registers the two commands
(``commands`` cannot import it: that would be a cycle).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from ..asking import NO_ERROR, NO_FIX, Asking, for_error, place_fix, with_context
from .commands import arguments, command, display_markdown
from .dryrun import show_dry_run

if TYPE_CHECKING:
    from ..request import Request



def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="show the message that would be sent; send nothing")


@command("explain", "explain the last error, with the cells that led to it (--dry-run: show only)")
@arguments(_args)
def _explain(magics: Any, args: argparse.Namespace) -> Any:
    return ask_about_error(magics, fix=False, dry_run=args.dry_run)


@command("fix", "a corrected failing cell, put into a new cell below (never run)")
@arguments(_args)
def _fix(magics: Any, args: argparse.Namespace) -> Any:
    return ask_about_error(magics, fix=True, dry_run=args.dry_run)


def with_notebook(magics: Any, prompt: str, cells: int | None) -> tuple[str, Asking | None]:
    """``%%aiml --context [N]`` (``cells`` 0: the setting; None: no flag): the message that goes
    (the cells that ran, then the question) and what the conversation keeps."""
    if cells is None:
        return prompt, None
    asking = with_context(magics.shell, getattr(magics, "recorder", None), magics.session, prompt,
                          last=cells or None)
    return asking.content, asking


def remembering(asking: Asking | None, request: Request) -> Request:
    """The request, remembered by its question rather than the whole context."""
    return request if asking is None else dataclasses.replace(request, prompt=asking.remembered)


def show_request(magics: Any, payload: dict[str, Any], expanded: Any, asking: Asking | None) -> None:
    """``--dry-run``: the request; with a context, the message as it reads too."""
    if asking is None:
        show_dry_run(magics, payload, expanded=expanded)
    else:
        show_context(magics, payload, asking, expanded)


def ask_about_error(magics: Any, *, fix: bool, dry_run: bool = False, **options: Any) -> Any:
    """Explain (or fix) the last error; one line and nothing sent when there is none."""
    session = magics.session
    asking = for_error(magics.shell, getattr(magics, "recorder", None), session, fix=fix)
    if asking is None:
        print(NO_FIX if fix else NO_ERROR)
        return None
    request = remembering(asking, session.prepare(asking.content, **options))
    if dry_run:
        if magics.shell is None:  # plain Python: the message as text
            print(f"Dry run: nothing was sent. The message:\n\n{asking.content}")
        else:
            show_context(magics, request.payload, asking)
        return None
    before = session.last_response
    try:
        resp = session.send(request, view=magics._view(False))
    finally:
        if session.last_response is not before:
            magics._push(session.last_response, None)
    if fix:
        from ..history import ECHO_SOURCE

        code = None if resp.source == ECHO_SOURCE else place_fix(magics.shell, resp.text)
        if code is None:
            print("The answer has no Python code block to put into a new cell."
                  if resp.source != ECHO_SOURCE else
                  "Offline echo: no corrected cell (nothing was asked of a model).")
    return None


def show_context(magics: Any, payload: dict[str, Any], asking: Asking, expanded: Any = ()) -> None:
    """The dry run: the request as JSON (exactly what goes), then the context message as it
    reads, with what was left out and clipped."""
    show_dry_run(magics, payload, expanded=expanded)
    from ..context import fence
    from ..display.safemd import safe_markdown

    ctx = asking.context
    note = (f"The notebook context ({len(ctx.text):,} characters; cells {ctx.cells or 'none'}; "
            f"left out: {ctx.left_out or 'none'}), then the question, as the model reads it:")
    text = fence(asking.content, "text")
    display_markdown(magics, safe_markdown(f"{note}\n\n{text}"), f"{note}\n\n{asking.content}")


class FromCode:
    """What ``ask_about_error`` reads, for ``aiml_magics.explain()``/``fix()`` called where the
    extension is not loaded: the default session, the shell if any (no printed text is known),
    answers shown as ``chat(display=True)`` shows them."""

    recorder = None

    def __init__(self, session: Any, shell: Any) -> None:
        self.session = session
        self.shell = shell

    def _view(self, owns_cell: bool) -> Any:
        from ..session import view_factory

        return view_factory(True, None, None, None, self.session.settings.allow_remote_images)

    def _push(self, result: Any, out: str | None) -> None:
        pass
