"""``%aiml`` line commands: one small parser each, as strict as the ``%%aiml`` flags.

Why: a mistyped option (``%aiml reset --all``, ``%aiml history --exprot f``) used to be ignored
or read as something else; here it is refused with the command's usage line, before anything
happens. Parsing only: the commands themselves live on ``AIMLMagics``.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError

LINE_HELP = """\
%%aiml [flags]        send the cell body to the model (the flags are listed below)
%aiml reset           forget the conversation
%aiml history [--json | --export FILE]   show (or save) the conversation
%aiml config          effective settings, where each came from (key masked)
%aiml models [TEXT] [--refresh]          chat models, optionally filtered by TEXT
%aiml key             enter the API key at a masked prompt (kept in memory only)
%aiml panel           controls for model, max_completion_tokens, temperature, ... (ipywidgets)
%aiml snippet [--full]   the last request as runnable Python `requests` code (--full: with the
                      whole conversation, not only the new message)
%aiml replay [PATH]   answer from a cassette of recorded answers (default: the shipped quickstart);
                      prompts with no recording get an offline echo; no key needed
%aiml record PATH     live answers are also saved to the cassette PATH
%aiml live            back to the service (the default)
%aiml help            this help
"""


class _HelpShown(Exception):
    """``-h`` printed the command's help: nothing else to do."""


class CommandParser(argparse.ArgumentParser):
    """argparse that refuses with a UsageError (usage line included) instead of exiting."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(prog=f"%aiml {name}", description=description, allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}.\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(message or self.format_usage().strip())
        raise _HelpShown


def _parsers() -> dict[str, CommandParser]:
    out: dict[str, CommandParser] = {}

    def add(name: str, description: str) -> CommandParser:
        out[name] = parser = CommandParser(name, description)
        return parser

    add("help", "Every command and %%aiml flag.")
    add("reset", "Forget the conversation (the settings stay).")
    history = add("history", "Show the conversation, print it as JSON, or save it to a file.")
    how = history.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the messages as JSON")
    how.add_argument("--export", metavar="FILE", help="save the messages as JSON to FILE")
    add("config", "The effective settings and where each came from (the key masked).")
    models = add("models", "Chat models, optionally only those whose id, name or developer has TEXT.")
    models.add_argument("text", nargs="*", metavar="TEXT", help="words to look for")
    models.add_argument("--refresh", action="store_true", help="ask the service again")
    add("key", "Enter the API key at a masked prompt; it is kept in memory for this session only.")
    add("panel", "Controls for the settings of the next %%aiml cells (ipywidgets).")
    snippet = add("snippet", "The last request as plain Python with `requests`.")
    snippet.add_argument(
        "--full", action="store_true", help="send the whole conversation, not only the new message"
    )
    replay = add("replay", "Answer from a cassette of recorded answers; nothing is sent.")
    replay.add_argument("path", nargs="?", metavar="PATH", help="a cassette (default: the shipped one)")
    record = add("record", "Also save live answers to a cassette.")
    record.add_argument("path", nargs="?", metavar="PATH", help="the cassette file to save to")
    add("live", "Answers come from the service again (the default).")
    return out


PARSERS = _parsers()


def parse_command(line: str) -> tuple[str, Any] | None:
    """``(command, options)`` for a ``%aiml`` line; None when ``-h`` printed the help.

    Unknown commands, unknown options and missing values raise a UsageError that names them.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%aiml {line}: {exc} (check the quotes).") from None
    command, rest = (words[0].lower(), words[1:]) if words else ("help", [])
    parser = PARSERS.get(command.replace("_", "-"))
    if parser is None:
        raise UsageError(f"%aiml {command}: unknown command.\n\n{LINE_HELP}")
    try:
        opts = parser.parse_args(rest)
    except _HelpShown:
        return None
    if command == "record" and not opts.path:
        parser.error("name the cassette file to save answers to")
    return command, opts
