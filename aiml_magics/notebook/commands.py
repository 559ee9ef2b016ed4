"""``%aiml`` line commands: one strict parser each, a router, and the displays they share.

An unknown option is refused with the command's usage line, never silently taken for something
else (``%aiml reset --all`` must not forget the conversation by accident, ``%aiml history
--exprot f`` must not print instead of saving). ``%aiml COMMAND -h`` prints one command's help.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ..display.render import is_terminal
from ..display.safemd import literal, safe_markdown
from ..errors import AIMLError, mask_key, visible_controls
from ..models import info_of
from ..params import PARAMS


class _HelpShown(Exception):
    """``-h`` printed the command's help: nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (one paragraph) instead of exiting the kernel."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(message or self.format_usage().strip())
        raise _HelpShown

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            missing = [a for a in self._actions if a.required and not a.option_strings]
            if missing:
                message = f"name {missing[0].help}"
        raise UsageError(f"{self.prog}: {message}.\n{self.format_usage().strip()}")


Handler = Callable[[Any, argparse.Namespace], Any]
COMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Handler, str]] = {}


def command(name: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``%aiml NAME``; the decorated function adds its arguments to a fresh parser."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        def parser() -> argparse.ArgumentParser:
            p = _Parser(prog=f"%aiml {name}", allow_abbrev=False, description=summary)
            build.arguments(p)  # type: ignore[attr-defined]
            return p

        COMMANDS[name] = (parser, build, summary)
        return build

    return register


def arguments(setup: Callable[[argparse.ArgumentParser], None]) -> Callable[..., Any]:
    def attach(func: Callable[..., Any]) -> Callable[..., Any]:
        func.arguments = setup  # type: ignore[attr-defined]
        return func

    return attach


def _none(p: argparse.ArgumentParser) -> None:
    pass


def run_command(magics: Any, line: str) -> Any:
    """Route ``%aiml COMMAND ...`` to its handler after strict parsing."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%aiml {line}: {exc} (check the quotes).") from None
    name, rest = (words[0].lower(), words[1:]) if words else ("help", [])
    if name not in COMMANDS:
        raise UsageError(f"%aiml {name}: unknown command.\n\n{line_help()}")
    parser, handler, _ = COMMANDS[name]
    try:
        args = parser().parse_args(rest)
    except _HelpShown:
        return None
    return handler(magics, args)


def line_help() -> str:
    rows = ["%%aiml [flags]".ljust(44) + " send the cell body to the model (the flags are below)"]
    for parser, _, summary in COMMANDS.values():
        usage = parser().format_usage().strip().removeprefix("usage: ").replace(" [-h]", "")
        rows.append(f"{usage:<44} {summary}")
    return "\n".join(rows)


def display_markdown(magics: Any, markdown: str, plain: str) -> None:
    """Show our own Markdown (whose untrusted parts the caller made inert), or plain text in a
    terminal, where control characters are shown, never sent."""
    if is_terminal(magics.shell):
        print(visible_controls(plain))
        return
    from IPython.display import display

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


# -- the commands -------------------------------------------------------------------------------


@command("help", "this help, and the %%aiml flags")
@arguments(_none)
def _help(magics: Any, args: argparse.Namespace) -> None:
    from .flags import cell_parser, cell_usage

    usage = cell_parser().format_usage().strip()
    print(f"{line_help()}\n\nFlags of a %%aiml cell (they apply to that cell only):\n{usage}\n\n"
          f"{cell_usage()}")


@command("reset", "forget the conversation (the history keeps every exchange)")
@arguments(_none)
def _reset(magics: Any, args: argparse.Namespace) -> None:
    print(f"Conversation cleared ({_turns(magics.session.reset())} forgotten).")


def _history_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="the conversation as JSON messages")
    group.add_argument("--export", metavar="FILE", help="save the conversation to FILE (JSON)")


@command("history", "show the exchanges, or save the conversation")
@arguments(_history_args)
def _history(magics: Any, args: argparse.Namespace) -> None:
    history = magics.session.history
    if args.export:
        text = history.conversation_json()
        try:
            with open(args.export, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise AIMLError(
                f"Could not save the history to {args.export}: {exc.strerror or exc}.", kind="io"
            ) from None
        print(f"Saved {_turns(len(history.turns))} to {args.export}.")
    elif args.json:
        print(history.conversation_json())
    else:
        display_markdown(magics, history.to_markdown(), history.to_text())


def settings_table(magics: Any) -> list[tuple[str, str, str]]:
    """(name, shown value, where it came from) for every setting; the key masked."""
    session = magics.session
    rows = []
    for p in PARAMS:
        if p.name == "api_key":
            key, source = session.effective_key()
            rows.append((p.name, mask_key(key), source))
        elif p.name in ("base_url", "store"):
            base, source = session.effective_base() if p.name == "base_url" else session.connection.where()
            rows.append((p.name, base, source))
        else:
            value = getattr(magics, p.name)
            source = "default" if value == p.default else "set (%config or panel)"
            rows.append((p.name, "unset (model default)" if value is None else repr(value), source))
    rows.append(("source", session.source.name, "%aiml live / replay / record"))
    return rows


@command("config", "effective settings, where each came from (key masked)")
@arguments(_none)
def _config(magics: Any, args: argparse.Namespace) -> None:
    rows = settings_table(magics)
    md = "| setting | value | from |\n|---|---|---|\n" + "\n".join(
        f"| <code>{literal(n)}</code> | <code>{literal(v)}</code> | {literal(s)} |" for n, v, s in rows
    )
    width = max(len(n) for n, _, _ in rows)
    plain = "\n".join(f"{n:<{width}}  {v}  ({s})" for n, v, s in rows)
    display_markdown(magics, md, plain)


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="*", metavar="TEXT", help="only models whose id or name has TEXT")
    p.add_argument("--refresh", action="store_true", help="reload the list from the service")
    p.add_argument("--vision", action="store_true", help="only models that can read images")


@command("models", "chat models, optionally filtered by TEXT")
@arguments(_models_args)
def _models(magics: Any, args: argparse.Namespace) -> None:
    needle = " ".join(args.text).lower()
    if magics.answer_mode == "replay":  # replay sends nothing, not even GET /models
        from ..models import builtin_models

        models = builtin_models()
        note = (
            "*Replay mode: the built-in list of common chat models (nothing was sent); "
            "`%aiml live` lists the service's own.*\n\n"
        )
    else:
        models = magics.client().list_models(refresh=args.refresh)
        note = ""
    hits = [m for m in models if not needle or needle in _model_text(m)]
    if args.vision:
        from ..vision import can_see, has_capability_data

        if not has_capability_data(models):
            note += ("*This models list says nothing about capabilities, so no model can be "
                     "ruled out: images are sent to any model.*\n\n")
        else:
            hits = [m for m in hits if can_see(m)]
            needle = f"{needle} (vision)".strip()
    rows = [_model_row(m) for m in hits]
    md = note + f"**{len(hits)} chat models**" + (f" matching {literal(needle)}" if needle else "")
    md += "\n\n| id | name | developer | context |\n|---|---|---|---|\n"
    # Names come from the service: shown as text, never as markup.
    md += "\n".join(f"| {' | '.join(literal(x) for x in r)} |" for r in rows)
    plain = "\n".join(f"{r[0]:<45} {r[1]} ({r[2]}, {r[3]})" for r in rows) or "no chat models match"
    if note:
        plain = note.strip().strip("*").replace("`", "") + "\n" + plain
    display_markdown(magics, md, plain)


@command("key", "enter the API key at a masked prompt (kept in memory only)")
@arguments(_none)
def _key(magics: Any, args: argparse.Namespace) -> None:
    import getpass

    value = getpass.getpass("AI/ML API key (input hidden): ").strip()
    if not value:
        print("No key entered; nothing changed.")
        return
    magics.api_key = value
    magics.session.key_source = "%aiml key"
    print(f"Key set for this session only ({mask_key(value)}); it is not saved anywhere.")


@command("panel", "controls for model, max_completion_tokens, temperature, ... (ipywidgets)")
@arguments(_none)
def _panel(magics: Any, args: argparse.Namespace) -> None:
    from .panel import show_panel

    show_panel(magics)


def _snippet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--full", action="store_true", help="send the whole conversation, not only the new message"
    )


@command("snippet", "the last request as runnable Python `requests` code (--full: the whole "
         "conversation)")
@arguments(_snippet_args)
def _snippet(magics: Any, args: argparse.Namespace) -> None:
    from ..display.snippet import request_snippet

    request = magics.session.last_request
    if request is None:
        raise UsageError("No request yet: run an %%aiml cell (or --dry-run) first.")
    base, _ = magics.session.effective_base()
    code = request_snippet(request, base, full=args.full, endpoint=magics.session.endpoint(request))
    display_markdown(magics, safe_markdown(f"```python\n{code}\n```"), code)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", metavar="PATH", help="a cassette file (default: the shipped one)")


@command("replay", "answer from a cassette (no key needed); unrecorded prompts get an offline echo")
@arguments(_replay_args)
def _replay(magics: Any, args: argparse.Namespace) -> None:
    from ..cassette import Cassette, shipped_cassette
    from ..sources import ReplaySource

    cassette = Cassette.load(args.path or shipped_cassette())
    magics.session.source = ReplaySource(cassette)
    n = len(cassette)
    print(
        f"Replay: answers come from {cassette.path.name} ({n} recording{'s' if n != 1 else ''}); "
        "each is labelled 'replayed'. A prompt with no recording gets an offline echo, which is "
        "not a model. Nothing is sent and no key is needed. `%aiml live` goes back to the service."
    )
    for recording in cassette.recordings[:3]:
        print(f"  - {recording.provenance}")
    magics.mode_changed()


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the cassette file to save answers to")


@command("record", "live answers are also saved to the cassette PATH")
@arguments(_record_args)
def _record(magics: Any, args: argparse.Namespace) -> None:
    from ..cassette import Cassette
    from ..sources import RecordingSource

    cassette = Cassette.open_or_create(args.path)
    magics.session.source = RecordingSource(cassette)
    print(
        f"Recording: live answers are also saved to {cassette.path} ({len(cassette)} so far; "
        "never the key). `%aiml live` stops recording."
    )
    magics.mode_changed()


@command("live", "answers come from the service (the default)")
@arguments(_none)
def _live(magics: Any, args: argparse.Namespace) -> None:
    from ..sources import LiveSource

    session = magics.session
    session.source = LiveSource()
    base, _ = session.effective_base()
    key, _ = session.effective_key()
    hint = "" if key else " No key is set yet: set AIML_API_KEY or run `%aiml key`."
    print(f"Live: answers come from {base}.{hint}")
    magics.mode_changed()


def _turns(n: int) -> str:
    return f"{n} turn{'' if n == 1 else 's'}"


def _model_text(model: dict[str, Any]) -> str:
    info = info_of(model)
    listed = model.get("aliases")
    aliases: list[Any] = listed if isinstance(listed, list) else []
    fields = [model.get("id"), info.get("name"), info.get("developer"), model.get("owned_by")]
    return " ".join(str(x) for x in [*fields, *aliases] if x).lower()


def _model_row(model: dict[str, Any]) -> tuple[str, str, str, str]:
    info = info_of(model)
    ctx = info.get("contextLength")
    return (
        str(model.get("id")),
        str(info.get("name") or ""),
        str(info.get("developer") or model.get("owned_by") or ""),
        f"{ctx:,}" if isinstance(ctx, int) else "",
    )

