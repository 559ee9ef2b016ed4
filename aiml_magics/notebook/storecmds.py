"""``%aiml log`` and ``%aiml spend``: the store read back in a cell, as compact tables.

Importing this module registers both commands beside the others (``commands.py``); the magic
takes ``run_command`` from here so they are always there. Prompts, answers and model ids are
untrusted text: shown literally, one line each, and redacted.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..display.safemd import literal
from ..errors import redact
from .commands import arguments, command, display_markdown, run_command

__all__ = ["run_command"]

PREVIEW = 60  # characters of a prompt or answer in a row


def _clip(text: Any) -> str:
    flat = " ".join(redact(str(text or "")).split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def _number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="*", metavar="TEXT", help="words in the prompt or the answer")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")


@command("log", "stored exchanges, newest first, optionally those holding TEXT")
@arguments(_log_args)
def _log(magics: Any, args: argparse.Namespace) -> None:
    from ..storelog import read

    session = magics.session
    found = read(session.connection.store, " ".join(args.text) or None, limit=max(args.limit, 0))
    head = f"**{len(found)} stored exchange{'s' if len(found) != 1 else ''}**"
    if args.text:
        head += f" matching {literal(' '.join(args.text))}"
    head += f" · {literal(session.connection.where()[0])}"
    rows = []
    for e in found:
        r = e.record()
        tokens = (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
        rows.append((time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(r["started"] or 0))),
                     str(r["model"] or r["model_requested"] or "?"), str(r["source"]),
                     _number(tokens), _number(r["credits"]), _clip(r["prompt"]), _clip(r["answer"])))
    md = head + "\n\n| UTC | model | source | tokens | credits | prompt | answer |\n"
    md += "|---|---|---|--:|--:|---|---|\n"
    md += "\n".join("| " + " | ".join(literal(x) for x in row) + " |" for row in rows)
    plain = "\n".join("  ".join(row) for row in rows) or "nothing stored yet"
    display_markdown(magics, md, head.replace("**", "") + "\n" + plain)


def _spend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", default="7d", metavar="WHEN",
                   help="7d, 12h, 30m, 2w or a date (default 7d)")
    p.add_argument("--by", choices=("day", "model"), default="day", help="one row a day or a model")


@command("spend", "tokens, credits and dollars the service charged, by day or model")
@arguments(_spend_args)
def _spend(magics: Any, args: argparse.Namespace) -> None:
    from ..errors import AIMLError
    from ..store import since_seconds
    from ..storefailure import StoreUnavailable

    session = magics.session
    store = session.connection.store
    if store is None:
        raise AIMLError("The store is off (the `store` setting or AIML_STORE is empty): "
                        "nothing is kept, so there is no spend to add up.", kind="store")
    try:
        groups = store.totals(by=args.by, since=since_seconds(args.since))
    except StoreUnavailable as exc:
        raise AIMLError(f"Cannot read the store {exc.path}: {exc.reason}.", kind="store") from None
    total = {k: sum(g[k] for g in groups) for k in ("exchanges", "tokens", "credits", "usd")}
    head = (f"**Spend since {literal(args.since)}**: {total['tokens']:,} tokens, "
            f"{_number(total['credits'])} credits, ${total['usd']:.4f} "
            f"({total['exchanges']:,} exchanges)")
    rows = [(str(g[args.by]), f"{g['exchanges']:,}", f"{g['tokens']:,}", _number(g["credits"]),
             f"${g['usd']:.4f}") for g in groups]
    md = head + f"\n\n| {args.by} | exchanges | tokens | credits | dollars |\n|---|--:|--:|--:|--:|\n"
    md += "\n".join("| " + " | ".join(literal(x) for x in row) + " |" for row in rows)
    plain = "\n".join("  ".join(row) for row in rows)
    display_markdown(magics, md, head.replace("**", "") + "\n" + plain)
