"""The ``%%aiml`` cell magic and ``%aiml`` line commands: parse, wire, store. Thin on purpose.

Settings are traitlets on ``AIMLMagics`` (one source of truth: ``%config``, ``ipython_config.py``
and the panel all move the same traits); per-cell flags override them for one cell only.
"""

from __future__ import annotations

import argparse
import functools
import json
import keyword
import shlex
import time
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
from .conversation import Conversation
from .errors import (
    AIMLError,
    ParameterError,
    StreamInterrupted,
    check_key_text,
    mask_key,
    register_secret,
)
from .params import (
    DEFAULT_MODEL,
    build_payload,
    check_model,
    check_number,
    check_prompt,
    shown_value,
)
from .render import is_terminal, make_renderer
from .response import ChatResponse, parse_json_answer
from .traits import Bool, Float, Int, Unicode

RESPONSE_VAR = "aiml_response"

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
)


class Secret(str):
    """A str that never shows itself: repr/str/format give the masked form.

    ``%config AIMLMagics`` prints every trait's current value; this keeps the key out of it.
    """

    def __repr__(self) -> str:
        return repr(mask_key(self.reveal()))

    def __str__(self) -> str:
        return mask_key(self.reveal())

    def __format__(self, spec: str) -> str:
        return format(mask_key(self.reveal()), spec)

    def reveal(self) -> str:
        return str.__str__(self)


@magic_arguments()
@argument("--model", "-m", help="model id for this cell (see %%aiml models)")
@argument("--max-completion-tokens", "-n", help="upper bound on generated tokens (>= 1)")
@argument("--max-tokens", help="legacy upper bound on generated tokens (>= 1)")
@argument("--temperature", "-t", help="sampling temperature, 0 to 2 (0 to 1 for Claude)")
@argument("--top-p", help="nucleus sampling, 0.01 to 1")
@argument("--stop", action="append", help="stop sequence (repeatable, at most 4)")
@argument("--frequency-penalty", help="-2 to 2")
@argument("--presence-penalty", help="-2 to 2")
@argument("--seed", help="integer >= 1 for more repeatable answers")
@argument("--system", "-s", help="system prompt for this cell")
@argument("--json", action="store_true", help="ask for a JSON object; parsed into .data")
@argument("--no-stream", action="store_true", help="wait for the whole answer")
@argument("--new", action="store_true", help="start a fresh conversation before this cell")
@argument("--no-memory", action="store_true", help="send this cell alone and do not record it")
@argument("--out", "-o", help="also store the response in this variable")
@argument("--dry-run", action="store_true", help="show the request that would be sent; send nothing")
def _cell_flags(line: str, cell: str) -> None:
    """Send the cell body as the user message and stream the answer."""


_cell_flags.parser.prog = "%%aiml"  # type: ignore[attr-defined]


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


LINE_HELP = """\
%%aiml [flags]        send the cell body to the model (flags: %aiml help)
%aiml reset           forget the conversation
%aiml history [--json | --export FILE]   show (or save) the conversation
%aiml config          effective settings, where each came from (key masked)
%aiml models [TEXT] [--refresh]          chat models, optionally filtered by TEXT
%aiml key             enter the API key at a masked prompt (kept in memory only)
%aiml panel           controls for model, max_completion_tokens, temperature, ... (ipywidgets)
%aiml snippet         the last request as a runnable Python `requests` snippet
%aiml replay [PATH]   answer from a cassette of recorded answers (default: the shipped quickstart);
                      prompts with no recording get an offline echo; no key needed
%aiml record PATH     live answers are also saved to the cassette PATH
%aiml live            back to the service (the default)
%aiml help            this help
"""


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
    temperature = Float(None, allow_none=True, help="0..2 (0..1 for Claude); None: unset.").tag(
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

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
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
        if self.api_key:
            self._key_source = "%config"
        self._raw_cell: str | None = None
        if shell is not None and hasattr(shell, "events"):
            shell.events.register("pre_run_cell", self._remember_raw_cell)

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

    def effective_key(self) -> tuple[str | None, str]:
        if self.api_key:
            return str.__str__(self.api_key), self._key_source or "%config"
        value, var = env_value(KEY_VARS)
        if value:
            register_secret(value)
            return value, f"environment {var}"
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
        if cell is None:
            return self._line(line)
        args = parse_flags(line)
        # A whole %%aiml cell is ours: its live outputs can be cleared for the final rendering.
        # Called from code, other outputs share the cell, so live outputs are emptied instead.
        raw = self._own_raw_cell(cell)
        args.owns_cell = raw is not None
        self.ask(self.typed_body(cell, raw), args)
        return None

    def ask(self, prompt: str, args: Any) -> ChatResponse | None:
        """Validate, send, show, store. Every check runs before anything is sent."""
        check_prompt(prompt)
        if args.out is not None and (not args.out.isidentifier() or keyword.iskeyword(args.out)):
            raise ParameterError(f"--out {args.out!r} is not a valid Python variable name.")
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
        renderer = make_renderer(self.shell, label=payload["model"], owns_cell=owns_cell)
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
            self._note_transport(client, opened)
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
        self._note_transport(client, resp)
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
        renderer = make_renderer(self.shell, label=label, owns_cell=owns_cell)
        if stream:
            for piece in pieces(resp.reasoning):
                renderer.reasoning(piece)
            for piece in pieces(resp.text):
                renderer.content(piece)
        resp.elapsed = time.monotonic() - started
        _finish_render(renderer, resp)
        return resp

    def _store(
        self, resp: ChatResponse, prompt: str, remember: bool, args: Any
    ) -> ChatResponse:
        if args.json and resp.text:
            resp.data, warning = parse_json_answer(resp.text)
            if warning:
                resp.warnings.append(warning)
        self.last_response = resp
        values = {RESPONSE_VAR: resp}
        if args.out:
            values[args.out] = resp
        self.shell.push(values)
        if resp.source == "live":  # a replayed answer cost nothing now
            self.session_tokens += resp.usage.total_tokens or 0
            self.session_credits += resp.credits_used or 0.0
        if remember and resp.text:
            # An empty answer is not recorded: some providers refuse an empty assistant message.
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
        self._display_markdown(f"**Dry run: nothing was sent.**\n\n```http\n{text}\n```", text)
        self.last_request = payload

    # -- line commands -------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%aiml {line}: {exc} (check the quotes).") from None
        command, rest = (words[0].lower(), words[1:]) if words else ("help", [])
        handler = getattr(self, f"_cmd_{command.replace('-', '_')}", None)
        if handler is None:
            raise UsageError(f"%aiml {command}: unknown command.\n\n{LINE_HELP}")
        return handler(rest)

    def _cmd_help(self, rest: list[str]) -> None:
        flags = _cell_flags.parser.format_help().replace("::\n\n", "")  # type: ignore[attr-defined]
        print(LINE_HELP + "\n" + flags)

    def _cmd_reset(self, rest: list[str]) -> None:
        turns = len(self.conversation)
        self.conversation.reset()
        self._notify(None)
        print(f"Conversation cleared ({turns} turn{'s' if turns != 1 else ''} forgotten).")

    def _cmd_history(self, rest: list[str]) -> Any:
        if "--export" in rest:
            i = rest.index("--export")
            if i + 1 >= len(rest):
                raise UsageError("%aiml history --export FILE: name the file to write.")
            path = rest[i + 1]
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(self.conversation.to_json())
            except OSError as exc:
                raise AIMLError(
                    f"Could not save the history to {path}: {exc.strerror or exc}.", kind="io"
                ) from None
            print(f"Saved {len(self.conversation)} turns to {path}.")
            return None
        if "--json" in rest:
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

    def _cmd_config(self, rest: list[str]) -> None:
        rows = self.settings_table()
        md = "| setting | value | from |\n|---|---|---|\n" + "\n".join(
            f"| `{n}` | `{v}` | {s} |" for n, v, s in rows
        )
        width = max(len(n) for n, _, _ in rows)
        plain = "\n".join(f"{n:<{width}}  {v}  ({s})" for n, v, s in rows)
        self._display_markdown(md, plain)

    def _cmd_models(self, rest: list[str]) -> None:
        refresh = "--refresh" in rest
        needle = " ".join(w for w in rest if w != "--refresh").lower()
        models = self.client().list_models(refresh=refresh)
        hits = [m for m in models if not needle or needle in _model_text(m)]
        rows = [_model_row(m) for m in hits]
        md = f"**{len(hits)} chat models**" + (f" matching `{needle}`" if needle else "") + "\n\n"
        md += "| id | name | developer | context |\n|---|---|---|---|\n"
        md += "\n".join(f"| `{r[0]}` | {r[1]} | {r[2]} | {r[3]} |" for r in rows)
        plain = "\n".join(f"{r[0]:<45} {r[1]} ({r[2]}, {r[3]})" for r in rows)
        self._display_markdown(md, plain or "no chat models match")

    def _cmd_key(self, rest: list[str]) -> None:
        import getpass

        value = getpass.getpass("AI/ML API key (input hidden): ").strip()
        if not value:
            print("No key entered; nothing changed.")
            return
        self.api_key = value
        self._key_source = "%aiml key"
        print(f"Key set for this session only ({mask_key(value)}); it is not saved anywhere.")

    def _cmd_panel(self, rest: list[str]) -> None:
        from .controls import show_panel

        show_panel(self)

    def _notify(self, resp: ChatResponse | None) -> None:
        for callback in list(self.on_answer):
            try:
                callback(resp)
            except Exception as exc:  # a broken listener must not fail the user's cell
                import logging

                logging.getLogger(__name__).warning("aiml_magics: on_answer callback failed: %s", exc)

    def _cmd_snippet(self, rest: list[str]) -> None:
        if self.last_request is None:
            raise UsageError("No request yet: run an %%aiml cell (or --dry-run) first.")
        base, _ = self.effective_base()
        code = request_snippet(self.last_request, base)
        self._display_markdown(f"```python\n{code}\n```", code)

    def _cmd_replay(self, rest: list[str]) -> None:
        from .cassette import Cassette, shipped_cassette

        if len(rest) > 1:
            raise UsageError("%aiml replay [PATH]: at most one cassette file.")
        cassette = Cassette.load(rest[0] if rest else shipped_cassette())
        self.cassette, self.answer_mode = cassette, "replay"
        n = len(cassette)
        print(
            f"Replay: answers come from {cassette.path.name} ({n} recording{'s' if n != 1 else ''}); "
            "each is labelled 'replayed'. A prompt with no recording gets an offline echo, which is "
            "not a model. Nothing is sent and no key is needed. `%aiml live` goes back to the service."
        )
        for recording in cassette.recordings[:3]:
            print(f"  - {recording.provenance}")

    def _cmd_record(self, rest: list[str]) -> None:
        from .cassette import Cassette

        if len(rest) != 1:
            raise UsageError("%aiml record PATH: name the cassette file to save answers to.")
        cassette = Cassette.open_or_create(rest[0])
        self.cassette, self.answer_mode = cassette, "record"
        print(
            f"Recording: live answers are also saved to {cassette.path} ({len(cassette)} so far; "
            "never the key). `%aiml live` stops recording."
        )

    def _cmd_live(self, rest: list[str]) -> None:
        self.cassette, self.answer_mode = None, "live"
        base, _ = self.effective_base()
        key, _ = self.effective_key()
        hint = "" if key else " No key is set yet: set AIML_API_KEY or run `%aiml key`."
        print(f"Live: answers come from {base}.{hint}")

    def _display_markdown(self, markdown: str, plain: str) -> None:
        if is_terminal(self.shell):
            print(plain)
            return
        from IPython.display import display

        display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def request_snippet(payload: dict[str, Any], base: str) -> str:
    """Plain-Python equivalent of a request; the key is read from the environment."""
    body = {k: v for k, v in payload.items() if k != "stream"}
    return (
        "import os\nimport requests\n\n"
        f"resp = requests.post(\n    {base + '/chat/completions'!r},\n"
        '    headers={"Authorization": f"Bearer {os.environ[\'AIML_API_KEY\']}"},\n'
        f"    json={json.dumps(body, ensure_ascii=False, indent=4).replace(chr(10), chr(10) + '    ')},\n"
        "    timeout=120,\n)\nresp.raise_for_status()\n"
        'print(resp.json()["choices"][0]["message"]["content"])'
    )


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
    aliases = model.get("aliases") or []
    return " ".join(
        str(x) for x in [model.get("id"), info.get("name"), info.get("developer"), *aliases]
    ).lower()


def _model_row(model: dict[str, Any]) -> tuple[str, str, str, str]:
    info = model.get("info") if isinstance(model.get("info"), dict) else {}
    ctx = info.get("contextLength")
    return (
        str(model.get("id")),
        str(info.get("name") or ""),
        str(info.get("developer") or ""),
        f"{ctx:,}" if isinstance(ctx, int) else "",
    )
