"""The ``%%aiml`` cell magic: parse the cell, call the session with a live view, push the result.

``AIMLMagics`` *is* the notebook's settings (a ``Settings``: traits generated from the parameter
table), so ``%config``, ``ipython_config.py``, the panel and ``chat()`` all read the same values;
per-cell flags override them for one cell only. Everything else (the session, the commands, the
renderers) is built on first use, which keeps ``%load_ext`` to registering the magic.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..settings import Settings
from .flags import cell_usage, parse_flags, request_options
from .names import image_flags, named_schema, named_tools

if TYPE_CHECKING:
    from ..session import Session

RESPONSE_VAR = "aiml_response"
HISTORY_VAR = "aiml_history"

def _scrub_config(config: Any) -> None:
    """Replace a raw ``AIMLMagics.api_key`` in a traitlets Config with its masked ``Secret``.

    ``%config AIMLMagics.api_key = '...'`` merges the typed string into the shell's config, which
    every configurable shares and whose repr shows it; the value itself still works as a key.
    """
    from ..errors import register_secret
    from ..secrets import Secret

    try:
        section = config["AIMLMagics"] if "AIMLMagics" in config else None
    except (KeyError, TypeError):
        return
    if section is not None and "api_key" in section:
        value = section["api_key"]
        if isinstance(value, str) and not isinstance(value, Secret):
            register_secret(value)
            section["api_key"] = Secret(value)


@magics_class
class AIMLMagics(Magics, Settings):
    """Chat with the AI/ML API from notebook cells."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        if "AIMLMagics" in self.config:  # a key from ipython_config.py, say
            _scrub_config(self.config)
        self._session: Session | None = None
        self._panels: list[Any] = []
        # What cells printed, the last error and the cell running now (executions.Recorder).
        self.recorder: Any = None
        # Called with no argument after `%aiml replay`, `record` or `live` (the panels listen).
        self.on_mode: list[Any] = []
        # How answers are shown: (shell, label, owns_cell) -> view. Benchmarks and tests swap it.
        self.make_renderer: Any = None
        from .lastimage import LastImage

        self.last_image = LastImage.watch(shell)  # what `--image` alone sends

    @property
    def session(self) -> Session:
        """The notebook's session (built on first use): these traits are its settings."""
        if self._session is None:
            from ..session import Session

            self._session = Session(settings=self)
            if self.shell is not None:
                self.shell.push({HISTORY_VAR: self._session.history})
        return self._session

    # -- what other parts of the notebook layer read ----------------------------------------------

    @property
    def answer_mode(self) -> str:
        """Where answers come from: "live", "replay" or "record"."""
        return self.session.source.name

    def mode_changed(self) -> None:
        """Tell the panels that answers now come from elsewhere (a failing one is only logged)."""
        for callback in list(self.on_mode):
            try:
                callback()
            except Exception as exc:  # a broken listener must not fail the command
                import logging

                logging.getLogger(__name__).warning("aiml_magics: on_mode callback failed: %s", exc)

    @property
    def conversation(self) -> Any:
        return self.session.history.conversation

    @property
    def on_answer(self) -> list[Any]:
        return self.session.on_answer

    @property
    def last_response(self) -> Any:
        return self.session.last_response

    @property
    def last_request(self) -> dict[str, Any] | None:
        return self.session.last_request

    @property
    def session_tokens(self) -> int:
        return int(self.session.totals["tokens"])

    @property
    def session_credits(self) -> float:
        return float(self.session.totals["credits"])

    @property
    def _client(self) -> Any:
        return self._session._client if self._session is not None else None

    def client(self) -> Any:
        return self.session.client()

    def effective_key(self) -> tuple[str | None, str]:
        return self.session.effective_key()

    def effective_base(self) -> tuple[str, str]:
        return self.session.effective_base()

    def settings_table(self) -> list[tuple[str, str, str]]:
        from .commands import settings_table

        return settings_table(self)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def update_config(self, config: Any) -> None:
        """``%config`` and friends: load as usual, then keep the raw key out of every Config
        (the incoming one is merged into the other configurables after us)."""
        super().update_config(config)
        _scrub_config(config)
        _scrub_config(self.config)

    # -- the raw cell ----------------------------------------------------------------------------

    def typed_body(self, cell: str, raw: str | None = None) -> str:
        """The cell body exactly as typed.

        IPython strips ``>>> `` and ``In [1]: `` prompts when the first body line has one (a pasted
        session) and adds a final newline; the raw cell is used when it is the one that gave
        ``cell``, so the prompt sent is byte-exact.
        """
        typed = cell[:-1] if cell.endswith("\n") else cell
        raw = raw if raw is not None else self._own_raw_cell(cell)
        if raw is None:
            return typed
        raw_lines = raw.splitlines(keepends=True)
        first = next(i for i, line in enumerate(raw_lines) if line.strip())
        return "".join(raw_lines[first + 1 :])

    def _own_raw_cell(self, cell: str) -> str | None:
        """The raw source of the ``%%aiml`` cell that gave ``cell``; None when the magic was
        called from code (``run_cell_magic`` in a loop, another thread), which owns no cell."""
        raw = self.recorder.raw_cell if self.recorder is not None else None
        if not raw or self.shell is None:
            return None
        lines = (raw if raw.endswith("\n") else raw + "\n").splitlines(keepends=True)
        for transform in self.shell.input_transformer_manager.cleanup_transforms:
            lines = transform(lines)
        if not lines or not lines[0].startswith("%%aiml") or "".join(lines[1:]) != cell:
            return None
        return raw

    # -- the magic ---------------------------------------------------------------------------------

    @line_cell_magic
    def aiml(self, line: str = "", cell: str | None = None) -> Any:
        from ..errors import AIMLError, StreamInterrupted
        from ..secrets import forget_frames

        try:
            if cell is None:
                from . import explain  # noqa: F401 - registers %aiml explain and %aiml fix
                from .advice import advised
                from .storecmds import run_command  # the commands, log and spend included

                with advised():
                    return run_command(self, line)
            args = parse_flags(line)
            # A whole %%aiml cell is ours: its live outputs can be cleared for the final
            # rendering. Called from code, other outputs share the cell: they are emptied instead.
            raw = self._own_raw_cell(cell)
            self.ask(self.typed_body(cell, raw), args, owns_cell=raw is not None)
        except (AIMLError, StreamInterrupted) as exc:
            forget_frames(exc)  # %tb, %debug, Verbose: no frame under it shows a body or header
            raise
        return None

    aiml.__doc__ = cell_usage() + "\n\n%aiml COMMAND manages the session: `%aiml help` lists them."

    def ask(self, prompt: str, args: argparse.Namespace, owns_cell: bool = False) -> Any:
        """Parse, expand, prepare, then show the request (``--dry-run``) or send it. Every check
        runs before anything is sent."""
        from ..prompt import trim_prompt
        from .advice import advised
        from .explain import remembering, show_request, with_notebook
        from .flags import check_out_name

        session = self.session
        prompt = trim_prompt(prompt)
        with advised():
            if args.out is not None:
                check_out_name(args.out)
            options = request_options(args)
            namespace: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
            options["schema"] = named_schema(args.schema, namespace)
            prompt, expanded = self._expand(prompt, args)
            prompt, asking = with_notebook(self, prompt, args.context)  # --context: what ran first
            if args.compare:
                return self._compare(prompt, args, options)
            options["parallel_tool_calls"] = False if args.no_parallel_tool_calls else None
            images = None
            if args.image:
                images = image_flags(args.image, namespace, self.last_image, self.max_image_edge,
                                     self.max_image_bytes)
            request = remembering(asking, session.prepare(
                prompt, tools=named_tools(args.tools, namespace), tool_choice=args.tool_choice,
                images=images,
                confirm_tools=True if args.confirm_tools else None, **options,
            ))
            if args.dry_run:
                return show_request(self, request.payload, expanded, asking)
            from ..promptnotes import with_cut_notes  # the live view and footer say what was cut

            request = with_cut_notes(request, self.last_expansion if self.shell is not None else None)
            before = session.last_response
            try:
                return session.send(request, view=self._view(owns_cell))
            finally:
                if session.last_response is not before:
                    self._push(session.last_response, args.out)

    def _expand(self, prompt: str, args: argparse.Namespace) -> tuple[str, list[str]]:
        """``{name}`` references replaced by the notebook's plain values (``prompt.py``)."""
        if self.shell is None:
            return prompt, []
        self.last_expansion = expand_cell(self, prompt, not args.no_expand_variables)
        return self.last_expansion.text, self.last_expansion.names

    def _view(self, owns_cell: bool) -> Any:
        make = self.make_renderer
        if make is None:
            from ..display.render import make_renderer as make
        shell, allow = self.shell, self.allow_remote_images
        return lambda label: make(
            shell, label=label, owns_cell=owns_cell, allow_remote_images=allow
        )

    def _compare(self, prompt: str, args: argparse.Namespace, options: dict[str, Any]) -> Any:
        """``--compare``: every model at once; ``aiml_response`` holds the Comparison, even when
        every model failed (then the cell fails too)."""
        from ..comparison import prepare_all, run
        from ..display.columns import make_board
        from .dryrun import show_dry_run

        session = self.session
        requests = prepare_all(session, prompt, args.compare, **options)
        if args.dry_run:
            for request in requests.values():
                show_dry_run(self, request.payload)
            return None
        board = make_board(self.shell, allow_remote_images=self.allow_remote_images)
        before = session.last_comparison
        try:
            return run(session, prompt, requests, board)
        finally:
            if session.last_comparison is not before:
                self._push(session.last_comparison, args.out)

    def _push(self, result: Any, out: str | None) -> None:
        """``aiml_response`` (and ``--out NAME``) now hold ``result``, even when the cell fails."""
        if self.shell is not None:
            values = {RESPONSE_VAR: result}
            if out:
                values[out] = result
            self.shell.push(values)


def expand_cell(magics: Any, prompt: str, flag_on: bool) -> Any:
    """The whole ``Expansion`` of a cell (what stayed as typed and why included); one line when a
    value held the key, which is masked in the prompt."""
    from ..prompt import Limits, expand

    limits = Limits(magics.expand_max_rows, magics.expand_max_columns, magics.expand_max_chars)
    done = expand(prompt, magics.shell.user_ns, limits, enabled=bool(magics.expand_variables and flag_on))
    if done.masked:
        names = ", ".join(f"{{{n}}}" for n in done.masked)
        print(f"Masked the API key in the value of {names}: it is not sent, shown or kept.")
    from ..promptnotes import left_line

    line = left_line(done.left, magics.shell.user_ns)
    if line:  # one line outside the answer: which {names} went out as typed, and why
        print(line)
    return done
