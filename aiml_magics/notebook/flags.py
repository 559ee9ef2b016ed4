"""The ``%%aiml`` flags: generated from the parameter table plus the cell-only ones, parsed with
POSIX quoting. Pure: no shell, no session; ``%%aiml?`` and ``%aiml help`` read the same table."""

from __future__ import annotations

import argparse
import builtins
import functools
import keyword
from typing import Any

from ..errors import ParameterError
from ..params import PARAMS, Param


def _cells(text: str) -> int:
    """``--context N``: a number of cells from 1 to 1000."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of cells from 1 to 1000")
    return value


# Flags of one cell that are not settings: (spellings, argparse options, help).
CELL_ONLY: tuple[tuple[tuple[str, ...], dict[str, Any], str], ...] = (
    (("--json",), {"action": "store_true"}, "ask for a JSON object; the parsed value lands in .data"),
    (("--new",), {"action": "store_true"}, "start a fresh conversation before this cell"),
    (("--out", "-o"), {"metavar": "NAME"}, "also store the response in this variable"),
    (("--dry-run",), {"action": "store_true"}, "show the request that would be sent; send nothing"),
    (("--schema",), {"metavar": "NAME"},
     "a JSON-schema dict or pydantic class in the notebook: the answer is checked, into .data"),
    (("--tools",), {"metavar": "F,G"}, "functions (by name) the model may call"),
    (("--tool-choice",), {"metavar": "CHOICE"}, "auto, none, required or a tool's name"),
    (("--confirm-tools",), {"action": "store_true"}, "ask yes/no before each tool call"),
    (("--image",), {"action": "append", "nargs": "?", "const": "", "metavar": "EXPR"},
     "send an image (repeatable): a variable, a file or an http(s) URL; alone, the last image shown"),
    (("--context",), {"nargs": "?", "const": 0, "type": _cells, "metavar": "N"},
     "put the last N cells that ran (default: the context_cells setting) before the question"),
    (("--cache",), {"action": "store_true"},
     "answer from the store if this exact request was answered before (sends nothing)"),
    (("--refresh",), {"action": "store_true"}, "ask again even if cached; store the new answer"),
    (("--compare",), {"nargs": "+", "metavar": "MODEL"},
     "ask these models at once, side by side (not added to the conversation)"),
)
METAVARS = {"model": "ID", "temperature": "T", "top_p": "P"}
KIND_METAVARS = {"str": "TEXT", "int": "N", "float": "X", "list": "TEXT"}


def _flag_options(param: Param) -> dict[str, Any]:
    if param.kind == "bool":
        return {"action": "store_true", "dest": f"no_{param.name}"}
    metavar = METAVARS.get(param.name) or KIND_METAVARS[param.kind]
    if param.kind == "list":
        return {"action": "append", "dest": param.name, "metavar": metavar}
    return {"dest": param.name, "metavar": metavar}


def _flag_help(param: Param) -> str:
    from ..params import range_words

    return f"{param.help}, {range_words(param.name)}" if param.range is not None else param.help


def flag_table() -> list[tuple[tuple[str, ...], dict[str, Any], str]]:
    """Every cell flag: the table's (settings that have flags), then the cell-only ones."""
    rows = [(p.flags, _flag_options(p), _flag_help(p)) for p in PARAMS if p.flags]
    return [*rows, *CELL_ONLY]


def cell_usage() -> str:
    """The flags with their help, for ``%%aiml?`` and ``%aiml help`` (no argparse needed)."""
    lines = ["%%aiml [flags]: send the cell body as the user message and stream the answer.",
             "A flag overrides the setting for this cell only; values are checked before sending.",
             "", "flags:"]
    for spellings, options, text in flag_table():
        meta = options.get("metavar")
        names = ", ".join(f"{s} {meta}" if meta else s for s in spellings)
        lines.append(f"  {names:<36} {text}")
    return "\n".join(lines)


def request_options(args: argparse.Namespace) -> dict[str, Any]:
    """What a cell's flags ask of ``Session.prepare`` (None: the setting applies)."""
    options = {p.name: getattr(args, p.name) for p in PARAMS if p.flags and p.kind != "bool"}
    options["stream"] = False if args.no_stream else None
    options["memory"] = False if args.no_memory else None
    options.update(new=args.new, json=args.json, refresh=args.refresh,
                   cache=True if args.cache or args.refresh else None)
    return options


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        from IPython.core.error import UsageError

        raise UsageError(f"%%aiml: {message}.\n\n{self.format_usage()}")


@functools.cache
def cell_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%aiml", add_help=False, allow_abbrev=False)
    for spellings, options, text in flag_table():
        parser.add_argument(*spellings, help=text, **options)
    return parser


def parse_flags(line: str) -> argparse.Namespace:
    """Parse the ``%%aiml`` line with POSIX quoting, so ``--system 'Be terse.'`` loses its quotes.

    A notebook repeats the same few flag lines: each is parsed once (argparse takes tens of
    microseconds, a visible share of a loopback round trip) and every call gets its own copy.
    """
    parsed = _parse_cached(line)
    return argparse.Namespace(**{k: list(v) if isinstance(v, list) else v for k, v in vars(parsed).items()})


@functools.lru_cache(maxsize=128)
def _parse_cached(line: str) -> argparse.Namespace:
    import shlex

    from IPython.core.error import UsageError

    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%aiml {line}: {exc} (check the quotes).") from None
    return cell_parser().parse_args(_glue_values(argv))


def _glue_values(argv: list[str]) -> list[str]:
    """``-t -1e-5``: argparse takes a value like ``-1e-5`` for an option; glue it as ``-t=-1e-5``."""
    parser = cell_parser()
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


# Names IPython itself puts in the user namespace: `--out In` would break the session.
IPYTHON_NAMES = frozenset(
    {"In", "Out", "get_ipython", "exit", "quit", "display", "_ih", "_oh", "_dh", "_i", "_ii",
     "_iii", "_", "__", "___"}
)


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
