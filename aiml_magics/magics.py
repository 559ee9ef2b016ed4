"""The ``%%aiml`` cell magic and ``%aiml`` line commands: parse, wire, store. Thin on purpose.

Settings are traitlets on ``AIMLMagics`` (one source of truth: ``%config``, ``ipython_config.py``
and the panel all move the same traits); per-cell flags override them for one cell only.
"""

from __future__ import annotations

import argparse
import builtins
import functools
import json
import keyword
import shlex
import time
import traceback
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import TraitError, observe, validate

from .client import (
    BASE_VARS,
    DEFAULT_BASE_URL,
    KEY_VARS,
    MAX_ANSWER_BYTES,
    AIMLClient,
    env_value,
    normalize_base_url,
)
from .commands import LINE_HELP, parse_command
from .conversation import Conversation
from .errors import (
    AIMLError,
    ParameterError,
    StreamInterrupted,
    check_key_text,
    mask_key,
    register_secret,
    visible_controls,
)
from .params import (
    DEFAULT_MODEL,
    build_payload,
    check_model,
    check_number,
    check_prompt,
    shown_value,
    trim_prompt,
)
from .render import is_terminal, make_renderer
from .response import ChatResponse, parse_json_answer
from .safemd import literal, safe_markdown
from .secrets import Secret
from .snippet import request_snippet
from .traits import Bool, Float, Int, Unicode

RESPONSE_VAR = "aiml_response"
# ChatResponse.source of the offline echo (cassette.ECHO; not imported: %load_ext stays light).
ECHO_SOURCE = "offline echo"
# Names IPython itself puts in the user namespace: `--out In` would break the session.
IPYTHON_NAMES = frozenset(
    {"In", "Out", "get_ipython", "exit", "quit", "display", "_ih", "_oh", "_dh", "_i", "_ii",
     "_iii", "_", "__", "___"}
)

# Trait name -> how it is shown in `%aiml config`.
SETTINGS = (
    "model",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "system",
    "stream",
    "memory",
    "max_history",
    "timeout",
    "max_retries",
    "max_answer_bytes",
    "base_url",
    "api_key",
    "allow_insecure_http",
    "allow_remote_images",
)
__all__ = ["AIMLMagics", "Secret", "SETTINGS", "parse_flags", "request_snippet"]


def _scrub_config(config: Any) -> None:
    """Replace a raw ``AIMLMagics.api_key`` in a traitlets Config with its masked ``Secret``.

    ``%config AIMLMagics.api_key = '...'`` merges the typed string into the shell's config, which
    every configurable shares and whose repr shows it; the value itself still works as a key.
    """
    try:
        section = config["AIMLMagics"] if "AIMLMagics" in config else None
    except (KeyError, TypeError):
        return
    if section is not None and "api_key" in section:
        value = section["api_key"]
        if isinstance(value, str) and not isinstance(value, Secret):
            register_secret(value)
            section["api_key"] = Secret(value)


@magic_arguments()
@argument("--model", "-m", metavar="ID", help="model id for this cell (see %%aiml models)")
@argument("--max-completion-tokens", "-n", metavar="N", help="upper bound on generated tokens (>= 1)")
@argument("--max-tokens", metavar="N", help="legacy upper bound on generated tokens (>= 1)")
@argument(
    "--temperature", "-t", metavar="T",
    help="sampling temperature, 0 to 2 (0 to 1 for Claude and MiniMax models)",
)
@argument("--top-p", metavar="P", help="nucleus sampling, 0.01 to 1")
@argument("--stop", action="append", metavar="TEXT", help="stop sequence (repeatable, at most 4)")
@argument("--frequency-penalty", metavar="X", help="-2 to 2")
@argument("--presence-penalty", metavar="X", help="-2 to 2")
@argument("--seed", metavar="N", help="integer >= 1 for more repeatable answers")
@argument("--system", "-s", metavar="TEXT", help="system prompt for this cell")
@argument("--json", action="store_true", help="ask for a JSON object; parsed into .data")
@argument("--no-stream", action="store_true", help="wait for the whole answer")
@argument("--new", action="store_true", help="start a fresh conversation before this cell")
@argument("--no-memory", action="store_true", help="send this cell alone and do not record it")
@argument("--out", "-o", metavar="NAME", help="also store the response in this variable")
@argument("--dry-run", action="store_true", help="show the request that would be sent; send nothing")
def _cell_flags(line: str, cell: str) -> None:
    """Send the cell body as the user message and stream the answer."""


# IPython's help formatter puts a "%" before the name: this shows as "%%aiml".
_cell_flags.parser.prog = "%aiml"  # type: ignore[attr-defined]


def parse_flags(line: str) -> Any:
    """Parse the ``%%aiml`` line with POSIX quoting, so ``--system 'Be terse.'`` loses its quotes.

    A notebook repeats the same few flag lines: each is parsed once (argparse takes tens of
    microseconds, a visible share of a loopback round trip) and every call gets its own copy.
    """
    parsed = _parse_cached(line)
    return argparse.Namespace(**{k: list(v) if isinstance(v, list) else v for k, v in vars(parsed).items()})


@functools.lru_cache(maxsize=128)
def _parse_cached(line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%aiml {line}: {exc} (check the quotes).") from None
    return _cell_flags.parser.parse_args(_glue_values(argv))  # type: ignore[attr-defined]


def _glue_values(argv: list[str]) -> list[str]:
    """``-t -1e-5``: argparse takes a value like ``-1e-5`` for an option; glue it as ``-t=-1e-5``."""
    parser = _cell_flags.parser  # type: ignore[attr-defined]
    takes_value = {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}
    out: list[str] = []
    for word in argv:
        if out and out[-1] in takes_value and word.startswith("-") and _is_number(word):
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@magics_class
class AIMLMagics(Magics):
    """Chat with the AI/ML API from notebook cells."""

    # Where answers come from: "live", "replay" (cassette, then offline echo) or "record".
    answer_mode: str = "live"
    cassette: Any = None

    model = Unicode(DEFAULT_MODEL, help="Model id sent with every request.").tag(config=True)
    max_completion_tokens = Int(
        None, allow_none=True, help="Upper bound on generated tokens; None: model default."
    ).tag(config=True)
    temperature = Float(
        None, allow_none=True, help="0..2 (0..1 for Claude and MiniMax models); None: unset."
    ).tag(
        config=True
    )
    top_p = Float(None, allow_none=True, help="0.01..1; None: unset.").tag(config=True)
    system = Unicode(None, allow_none=True, help="System prompt sent first.").tag(config=True)
    stream = Bool(True, help="Stream answers as they are generated.").tag(config=True)
    memory = Bool(True, help="Later cells continue the conversation.").tag(config=True)
    max_history = Int(20, allow_none=True, help="Turns kept in the conversation.").tag(
        config=True
    )
    timeout = Float(120.0, help="Seconds to wait for data before giving up.").tag(config=True)
    max_retries = Int(2, help="Retries on 429 and 5xx (with backoff, Retry-After).").tag(
        config=True
    )
    max_answer_bytes = Int(
        MAX_ANSWER_BYTES,
        help="Largest answer read, in bytes after decompression (stream or body); past it the "
        "rest is not read and what arrived is kept.",
    ).tag(config=True)
    base_url = Unicode(
        None, allow_none=True, help=f"API base URL; default AIML_API_BASE or {DEFAULT_BASE_URL}."
    ).tag(config=True)
    api_key = Unicode(
        None, allow_none=True, help="API key; default AIML_API_KEY. Prefer `%aiml key`."
    ).tag(config=True)
    allow_insecure_http = Bool(
        False, help="Allow sending the key over plain http:// to a non-loopback host."
    ).tag(config=True)
    allow_remote_images = Bool(
        False,
        help="Load remote images in answers. Off: an image URL can carry what the model read to "
        "any server, so remote images are shown as links.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        _scrub_config(self.config)  # a key from ipython_config.py, say
        self.conversation = Conversation(self.max_history)
        self.last_response: ChatResponse | None = None
        self.last_request: dict[str, Any] | None = None
        self._client: AIMLClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self._key_source: str | None = None
        self.session_tokens = 0
        self.session_credits = 0.0
        # Called with each stored answer (or None when the conversation is reset): the panel's
        # status line listens here. A failing listener is reported, never fails the cell.
        self.on_answer: list[Any] = []
        # Called with no argument after `%aiml replay`, `record` or `live` (the panels listen).
        self.on_mode: list[Any] = []
        if self.api_key:
            self._key_source = "%config"
        self._raw_cell: str | None = None
        if shell is not None and hasattr(shell, "events"):
            shell.events.register("pre_run_cell", self._remember_raw_cell)

    def update_config(self, config: Any) -> None:
        """``%config`` and friends: load as usual, then keep the raw key out of every Config
        (the incoming one is merged into the other configurables after us)."""
        super().update_config(config)
        _scrub_config(config)
        _scrub_config(self.config)

    def _remember_raw_cell(self, info: Any) -> None:
        self._raw_cell = getattr(info, "raw_cell", None)

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
        raw = self._raw_cell
        if not raw or self.shell is None:
            return None
        lines = (raw if raw.endswith("\n") else raw + "\n").splitlines(keepends=True)
        for transform in self.shell.input_transformer_manager.cleanup_transforms:
            lines = transform(lines)
        if not lines or not lines[0].startswith("%%aiml") or "".join(lines[1:]) != cell:
            return None
        return raw

    # -- trait validation: refuse bad values where they are set --------------------------------

    @validate("max_completion_tokens", "temperature", "top_p")
    def _check_range(self, proposal: Any) -> Any:
        try:
            return check_number(proposal["trait"].name, proposal["value"])
        except ParameterError as exc:
            raise TraitError(str(exc)) from None

    @validate("max_history")
    def _check_history(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 0:
            raise TraitError(
                f"max_history = {shown_value(value)} must be >= 0 (or None for no limit)."
            )
        return value

    @validate("timeout")
    def _check_timeout(self, proposal: Any) -> Any:
        if not 0 < proposal["value"] <= 3600:  # also refuses nan and inf (sockets cannot wait that)
            raise TraitError(
                f"timeout = {shown_value(proposal['value'])} is out of range: use a number of "
                "seconds above 0, at most 3600."
            )
        return proposal["value"]

    @validate("model")
    def _check_model(self, proposal: Any) -> Any:
        try:
            return check_model(proposal["value"])
        except ParameterError as exc:
            raise TraitError(str(exc)) from None

    @validate("max_retries")
    def _check_retries(self, proposal: Any) -> Any:
        if not 0 <= proposal["value"] <= 10:
            raise TraitError(f"max_retries = {shown_value(proposal['value'])} must be from 0 to 10.")
        return proposal["value"]

    @validate("max_answer_bytes")
    def _check_answer_bytes(self, proposal: Any) -> Any:
        if not 1024 <= proposal["value"] <= 1 << 30:
            raise TraitError(
                f"max_answer_bytes = {shown_value(proposal['value'])} must be from 1024 to "
                f"{1 << 30:,} (1 GiB)."
            )
        return proposal["value"]

    @validate("base_url")
    def _check_base(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value:
            try:
                normalize_base_url(value)
            except AIMLError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("api_key")
    def _wrap_key(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is None or value == "":
            return None
        key = str.__str__(value).strip()
        register_secret(key)
        register_secret(str.__str__(value))
        try:
            check_key_text(key)
        except AIMLError as exc:
            raise TraitError(str(exc)) from None
        return Secret(key)

    @observe("api_key")
    def _key_changed(self, change: Any) -> None:
        self._key_source = "%config" if change["new"] else None

    @observe("max_history")
    def _history_changed(self, change: Any) -> None:
        if hasattr(self, "conversation"):
            self.conversation.bound(change["new"])

    # -- effective settings --------------------------------------------------------------------

    def effective_key(self) -> tuple[Secret | None, str]:
        """The key (masked in any repr, so no frame or attribute shows it) and where it came from."""
        if self.api_key:
            return Secret(str.__str__(self.api_key)), self._key_source or "%config"
        value, var = env_value(KEY_VARS)
        if value:
            register_secret(value)
            return Secret(value), f"environment {var}"
        return None, "not set"

    def effective_base(self) -> tuple[str, str]:
        if self.base_url:
            return normalize_base_url(self.base_url), "%config"
        value, var = env_value(BASE_VARS)
        if value:
            return normalize_base_url(value), f"environment {var}"
        return DEFAULT_BASE_URL, "default"

    def client(self) -> AIMLClient:
        """The shared client, rebuilt only when key, base URL or transport settings change."""
        key, _ = self.effective_key()
        base, _ = self.effective_base()
        ident = (
            key, base, self.timeout, self.max_retries, self.allow_insecure_http,
            self.max_answer_bytes,
        )
        if self._client is None or ident != self._client_key:
            old = self._client
            self._client = AIMLClient(
                key,
                base,
                timeout=self.timeout,
                max_retries=self.max_retries,
                allow_insecure_http=self.allow_insecure_http,
                max_answer_bytes=self.max_answer_bytes,
            )
            self._client_key = ident
            if old is not None:
                old.close()
                if old.base_url == self._client.base_url:  # the models list: once per session
                    self._client.adopt_models(old)
        return self._client

    # -- the magic -----------------------------------------------------------------------------

    @line_cell_magic
    def aiml(self, line: str = "", cell: str | None = None) -> Any:
        """%%aiml [flags] sends the cell to the model; %aiml COMMAND manages the session."""
        try:
            if cell is None:
                return self._line(line)
            args = parse_flags(line)
            # A whole %%aiml cell is ours: its live outputs can be cleared for the final rendering.
            # Called from code, other outputs share the cell, so live outputs are emptied instead.
            raw = self._own_raw_cell(cell)
            args.owns_cell = raw is not None
            self.ask(self.typed_body(cell, raw), args)
        except (AIMLError, StreamInterrupted) as exc:
            _forget_frames(exc)
            raise
        return None

    def ask(self, prompt: str, args: Any) -> ChatResponse | None:
        """Validate, send, show, store. Every check runs before anything is sent."""
        prompt = check_prompt(trim_prompt(prompt))
        if args.out is not None:
            check_out_name(args.out)
        model = _pick(args.model, self.model)
        params = {
            "max_completion_tokens": _pick(args.max_completion_tokens, self.max_completion_tokens),
            "max_tokens": args.max_tokens,
            "temperature": _pick(args.temperature, self.temperature),
            "top_p": _pick(args.top_p, self.top_p),
            "frequency_penalty": args.frequency_penalty,
            "presence_penalty": args.presence_penalty,
            "seed": args.seed,
            "stop": args.stop,
        }
        system = args.system if args.system is not None else self.system
        stream = self.stream and not args.no_stream
        remember = self.memory and not args.no_memory
        if remember and not args.new:
            messages = self.conversation.messages(prompt, system)
        else:
            messages = Conversation(0).messages(prompt, system)
        payload = build_payload(model, messages, params, stream=stream, json_mode=args.json)
        if args.dry_run:
            self._show_dry_run(payload)
            return None
        if args.new:  # only now: a refused or dry-run cell leaves the conversation as it was
            self.conversation.reset()
            self._notify(None)
        if self.answer_mode == "replay":
            self.last_request = payload
            resp = self._run_offline(payload, stream, getattr(args, "owns_cell", False))
            return self._store(resp, prompt, remember, args)
        client = self.client()
        client._headers()  # no key: fail here, before any display or request
        self.last_request = payload
        resp = self._run(client, payload, stream, getattr(args, "owns_cell", False))
        stored = self._store(resp, prompt, remember, args)
        if self.answer_mode == "record" and self.cassette is not None:
            self.cassette.record(payload, stored, self.effective_base()[0])
        return stored

    def _run(
        self, client: AIMLClient, payload: dict[str, Any], stream: bool, owns_cell: bool = False
    ) -> ChatResponse:
        renderer = make_renderer(
            self.shell, label=payload["model"], owns_cell=owns_cell,
            allow_remote_images=self.allow_remote_images,
        )
        started = time.monotonic()
        try:
            opened = client.stream(payload) if stream else client.complete(payload)
        except KeyboardInterrupt:
            renderer.abandon()
            raise StreamInterrupted("stopped before any answer arrived.") from None
        except BaseException:
            renderer.abandon()
            raise
        if isinstance(opened, ChatResponse):
            opened.elapsed = time.monotonic() - started
            opened.allow_remote_images = self.allow_remote_images
            self._note_transport(client, opened)
            _read_json(opened)
            _finish_render(renderer, opened)
            return opened
        chat = opened
        stopped = False
        try:
            for content, reasoning in chat:
                if reasoning:
                    renderer.reasoning(reasoning)
                if content:
                    renderer.content(content)
        except KeyboardInterrupt:
            if not chat.ended:  # a Ctrl-C after the answer was complete leaves it complete
                chat.interrupted = True
            stopped = True
            chat.close()
        resp = chat.response()
        resp.allow_remote_images = self.allow_remote_images
        self._note_transport(client, resp)
        _read_json(resp)
        if stopped:
            resp._stopped = True  # type: ignore[attr-defined]
        _finish_render(renderer, resp)
        resp._stream_error = chat.error  # type: ignore[attr-defined]
        return resp

    @staticmethod
    def _note_transport(client: AIMLClient, resp: ChatResponse) -> None:
        """Every answer that put the key on plain http:// says so in its footer (a warning
        printed in the cell would be cleared with the live outputs)."""
        if client.key_in_clear:
            resp.warnings.append("the API key was sent over plain http:// (allow_insecure_http)")

    def _run_offline(
        self, payload: dict[str, Any], stream: bool, owns_cell: bool = False
    ) -> ChatResponse:
        """Replay mode: the recorded answer, else the offline echo, through the live renderer."""
        from .cassette import offline_echo, pieces

        started = time.monotonic()
        recording = self.cassette.find(payload) if self.cassette is not None else None
        resp = recording.to_response(payload) if recording else offline_echo(payload)
        label = f"{payload['model']} ({resp.source})"
        resp.allow_remote_images = self.allow_remote_images
        renderer = make_renderer(
            self.shell, label=label, owns_cell=owns_cell, allow_remote_images=self.allow_remote_images
        )
        if stream:
            for piece in pieces(resp.reasoning):
                renderer.reasoning(piece)
            for piece in pieces(resp.text):
                renderer.content(piece)
        resp.elapsed = time.monotonic() - started
        _read_json(resp)
        _finish_render(renderer, resp)
        return resp

    def _store(
        self, resp: ChatResponse, prompt: str, remember: bool, args: Any
    ) -> ChatResponse:
        self.last_response = resp
        values = {RESPONSE_VAR: resp}
        if args.out:
            values[args.out] = resp
        self.shell.push(values)
        if resp.source == "live":  # a replayed answer cost nothing now
            self.session_tokens += resp.usage.total_tokens or 0
            self.session_credits += resp.credits_used or 0.0
        if remember and resp.text and resp.source != ECHO_SOURCE:
            # An empty answer is not recorded: some providers refuse an empty assistant message.
            # The offline echo is no model's answer: sent later as context, a real model would
            # read its boilerplate as something it said.
            self.conversation.record(prompt, resp.text, partial=not resp.complete)
        self._notify(resp)
        error = getattr(resp, "_stream_error", None)
        if getattr(resp, "_stopped", False) and resp.complete:
            raise StreamInterrupted(
                f"stopped after the answer was complete: all {len(resp.text):,} characters are "
                f"kept in {RESPONSE_VAR} and the conversation."
            )
        if resp.finish_reason == "interrupted":
            raise StreamInterrupted(
                f"stopped after {len(resp.text):,} characters; the partial answer is kept in "
                f"{RESPONSE_VAR} and the conversation."
            )
        if error is not None:
            raise error
        if not resp.complete:
            raise AIMLError(
                f"The answer stopped early: the stream ended without a finish after "
                f"{len(resp.text):,} characters. What arrived is kept in {RESPONSE_VAR} and the "
                "conversation; run the cell again for a full answer.",
                kind="stream",
            )
        return resp

    def _show_dry_run(self, payload: dict[str, Any]) -> None:
        base, _ = self.effective_base()
        key, _ = self.effective_key()
        text = (
            f"POST {base}/chat/completions\n"
            f"Authorization: Bearer {mask_key(key)}\n"
            "Content-Type: application/json\n\n"
            f"{json.dumps(payload, ensure_ascii=False, indent=2)}"
        )
        # The payload quotes earlier answers (untrusted): the fence is made inert like any answer.
        self._display_markdown(
            "**Dry run: nothing was sent.**\n\n" + safe_markdown(f"```http\n{text}\n```"), text
        )
        self.last_request = payload

    # -- line commands -------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        parsed = parse_command(line)
        if parsed is None:  # `-h` printed the command's help
            return None
        command, opts = parsed
        return getattr(self, f"_cmd_{command.replace('-', '_')}")(opts)

    def _cmd_help(self, opts: Any) -> None:
        flags = _cell_flags.parser.format_help().replace("::\n\n", "")  # type: ignore[attr-defined]
        print(LINE_HELP + "\nFlags of a %%aiml cell (they apply to that cell only):\n\n" + flags.strip())

    def _cmd_reset(self, opts: Any) -> None:
        turns = len(self.conversation)
        self.conversation.reset()
        self._notify(None)
        print(f"Conversation cleared ({_turns(turns)} forgotten).")

    def _cmd_history(self, opts: Any) -> Any:
        if opts.export is not None:
            path = opts.export
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(self.conversation.to_json())
            except OSError as exc:
                raise AIMLError(
                    f"Could not save the history to {path}: {exc.strerror or exc}.", kind="io"
                ) from None
            print(f"Saved {_turns(len(self.conversation))} to {path}.")
            return None
        if opts.json:
            print(self.conversation.to_json())
            return None
        self._display_markdown(self.conversation.to_markdown(), self.conversation.to_text())
        return None

    def settings_table(self) -> list[tuple[str, str, str]]:
        """(name, shown value, where it came from) for every setting; the key masked."""
        rows = []
        for name in SETTINGS:
            if name == "api_key":
                key, source = self.effective_key()
                rows.append((name, mask_key(key), source))
            elif name == "base_url":
                base, source = self.effective_base()
                rows.append((name, base, source))
            else:
                value = getattr(self, name)
                default = self.traits()[name].default_value
                source = "default" if value == default else "set (%config or panel)"
                rows.append((name, "unset (model default)" if value is None else repr(value), source))
        return rows

    def _cmd_config(self, opts: Any) -> None:
        rows = self.settings_table()
        md = "| setting | value | from |\n|---|---|---|\n" + "\n".join(
            f"| <code>{literal(n)}</code> | <code>{literal(v)}</code> | {literal(s)} |" for n, v, s in rows
        )
        width = max(len(n) for n, _, _ in rows)
        plain = "\n".join(f"{n:<{width}}  {v}  ({s})" for n, v, s in rows)
        self._display_markdown(md, plain)

    def _cmd_models(self, opts: Any) -> None:
        needle = " ".join(opts.text).lower()
        if self.answer_mode == "replay":  # replay sends nothing, not even GET /models
            from .models import builtin_models

            models = builtin_models()
            note = (
                "*Replay mode: the built-in list of common chat models (nothing was sent); "
                "`%aiml live` lists the service's own.*\n\n"
            )
        else:
            models = self.client().list_models(refresh=opts.refresh)
            note = ""
        hits = [m for m in models if not needle or needle in _model_text(m)]
        rows = [_model_row(m) for m in hits]
        md = note + f"**{len(hits)} chat models**" + (f" matching {literal(needle)}" if needle else "")
        md += "\n\n| id | name | developer | context |\n|---|---|---|---|\n"
        # Names come from the service: shown as text, never as markup.
        md += "\n".join(f"| {' | '.join(literal(x) for x in r)} |" for r in rows)
        plain = "\n".join(f"{r[0]:<45} {r[1]} ({r[2]}, {r[3]})" for r in rows)
        plain = plain or "no chat models match"
        if note:
            plain = note.strip().strip("*").replace("`", "") + "\n" + plain
        self._display_markdown(md, plain)

    def _cmd_key(self, opts: Any) -> None:
        import getpass

        value = getpass.getpass("AI/ML API key (input hidden): ").strip()
        if not value:
            print("No key entered; nothing changed.")
            return
        self.api_key = value
        self._key_source = "%aiml key"
        print(f"Key set for this session only ({mask_key(value)}); it is not saved anywhere.")

    def _cmd_panel(self, opts: Any) -> None:
        from .controls import show_panel

        show_panel(self)

    def _notify(self, resp: ChatResponse | None) -> None:
        for callback in list(self.on_answer):
            try:
                callback(resp)
            except Exception as exc:  # a broken listener must not fail the user's cell
                import logging

                logging.getLogger(__name__).warning("aiml_magics: on_answer callback failed: %s", exc)

    def _cmd_snippet(self, opts: Any) -> None:
        if self.last_request is None:
            raise UsageError("No request yet: run an %%aiml cell (or --dry-run) first.")
        base, _ = self.effective_base()
        code = request_snippet(self.last_request, base, full=opts.full)
        self._display_markdown(safe_markdown(f"```python\n{code}\n```"), code)

    def _cmd_replay(self, opts: Any) -> None:
        from .cassette import Cassette, shipped_cassette

        cassette = Cassette.load(opts.path if opts.path else shipped_cassette())
        self.cassette, self.answer_mode = cassette, "replay"
        n = len(cassette)
        print(
            f"Replay: answers come from {cassette.path.name} ({n} recording{'s' if n != 1 else ''}); "
            "each is labelled 'replayed'. A prompt with no recording gets an offline echo, which is "
            "not a model. Nothing is sent and no key is needed. `%aiml live` goes back to the service."
        )
        for recording in cassette.recordings[:3]:
            print(f"  - {recording.provenance}")
        self._panels_follow_mode()

    def _cmd_record(self, opts: Any) -> None:
        from .cassette import Cassette

        cassette = Cassette.open_or_create(opts.path)
        self.cassette, self.answer_mode = cassette, "record"
        print(
            f"Recording: live answers are also saved to {cassette.path} ({len(cassette)} so far; "
            "never the key). `%aiml live` stops recording."
        )
        self._panels_follow_mode()

    def _cmd_live(self, opts: Any) -> None:
        self.cassette, self.answer_mode = None, "live"
        base, _ = self.effective_base()
        key, _ = self.effective_key()
        hint = "" if key else " No key is set yet: set AIML_API_KEY or run `%aiml key`."
        print(f"Live: answers come from {base}.{hint}")
        self._panels_follow_mode()

    def _panels_follow_mode(self) -> None:
        """Panels switch between the built-in models list (replay) and the service's."""
        for callback in list(self.on_mode):
            try:
                callback()
            except Exception as exc:  # a broken listener must not fail the command
                import logging

                logging.getLogger(__name__).warning("aiml_magics: on_mode callback failed: %s", exc)

    def _display_markdown(self, markdown: str, plain: str) -> None:
        if is_terminal(self.shell):
            print(visible_controls(plain))
            return
        from IPython.display import display

        display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def check_out_name(name: str) -> str:
    """``--out NAME`` must be a variable name that shadows nothing Python or IPython relies on
    (``--out get_ipython`` would break every later magic of the session)."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"--out {name!r} is not a valid Python variable name.")
    if name in IPYTHON_NAMES or hasattr(builtins, name) or _is_output_name(name):
        raise ParameterError(
            f"--out {name}: that name belongs to Python or IPython (`{name}`), and replacing it "
            f"would break later cells. Pick another name, e.g. --out {name.strip('_') or 'answer'}_answer."
        )
    return name


def _is_output_name(name: str) -> bool:
    """IPython's numbered history names: _1, _i1, _ii, ..."""
    return name.startswith("_") and (name[1:].isdigit() or (name[1:2] == "i" and name[2:].isdigit()))


def _turns(n: int) -> str:
    return f"{n} turn{'' if n == 1 else 's'}"


def _read_json(resp: ChatResponse) -> None:
    """A ``--json`` answer is parsed into ``.data`` before it is shown, so a footer can say when
    it is not valid JSON."""
    fmt = (resp.request or {}).get("response_format")
    if resp.text and isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        resp.data, warning = parse_json_answer(resp.text)
        if warning:
            resp.warnings.append(warning)


def _forget_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames under a user-facing error, and of the errors it
    came from: ``%tb``, ``%debug`` and ``%xmode Verbose`` would otherwise show a response body or
    header that quotes the key. The error's own message is already redacted."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        todo += [e.__cause__, e.__context__]
    exc.__context__ = None


def _finish_render(renderer: Any, resp: ChatResponse) -> None:
    """Show the final rendering; a Ctrl-C meanwhile must not lose the answer. The rendering is
    tried once more (so the cell shows the answer) and ``resp._stopped`` is marked: the cell
    stops with one line once the answer is stored."""
    try:
        renderer.finish(resp)
        return
    except KeyboardInterrupt:
        resp._stopped = True  # type: ignore[attr-defined]
    try:
        renderer.finish(resp)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: the display may be incomplete, the answer is still stored


def _pick(flag: Any, setting: Any) -> Any:
    """A flag given on the cell wins over the setting, even when it is 0."""
    return setting if flag is None else flag


def _model_text(model: dict[str, Any]) -> str:
    info = model.get("info") if isinstance(model.get("info"), dict) else {}
    aliases = model.get("aliases") if isinstance(model.get("aliases"), list) else []
    fields = [model.get("id"), info.get("name"), info.get("developer"), model.get("owned_by")]
    return " ".join(str(x) for x in [*fields, *aliases] if x).lower()


def _model_row(model: dict[str, Any]) -> tuple[str, str, str, str]:
    info = model.get("info") if isinstance(model.get("info"), dict) else {}
    ctx = info.get("contextLength")
    return (
        str(model.get("id")),
        str(info.get("name") or ""),
        str(info.get("developer") or model.get("owned_by") or ""),
        f"{ctx:,}" if isinstance(ctx, int) else "",
    )
