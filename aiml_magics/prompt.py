"""Brace-safe expansion of ``{name}`` references in a prompt, from a namespace. Plain Python.

``str.format`` breaks on the first ``{`` of a JSON example or a code snippet; here only a
reference that is exactly ``{name}``, ``{name.attr}`` or ``{name[key]}`` (int or quoted-string
keys, chained), whose ``name`` exists in the namespace, is replaced. Everything else stays as
typed: format specs, Jinja's ``{{ x }}``, LaTeX, unknown names. ``{{name}}`` gives ``{name}``.

Only plain data expands (``plaindata.py``), read without running any code; a reference left as
typed is reported with a reason (``Expansion.left``) so the notebook can say why. The inserted
text passes through secret redaction, so a value holding the API key is neither sent, shown nor
kept. A notebook from Binder may hold prompt text nobody checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .plaindata import NotPlain, Refused, attribute, cell_text, is_pandas, item, plain_text, type_name

# One reference: a name, then .attr / [int] / ['str'] / ["str"] steps, nothing else.
_STEP = r"(?:\.[A-Za-z_]\w*|\[-?\d+\]|\['[^'\\\]\n]*'\]|\[\"[^\"\\\]\n]*\"\])"
_REF = rf"[A-Za-z_]\w*{_STEP}*"
_PATTERN = re.compile(rf"\{{\{{({_REF})\}}\}}|\{{({_REF})\}}")
_STEPS = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
# Text that is code or markup, where a brace is never ours: fenced code blocks.
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.M | re.S)
# A brace right after these is LaTeX or code (\frac{x}{y}, x^{n}, a_{i}, f"{x}"): left alone.
_GLUED = re.compile(r"(?:[\w\\^}$]|\b[rRbB]?[fF][rR]?[\"'])\Z")

REASONS = ("no-such-name", "not-plain-data", "no-such-item", "private-name", "expansion-off")


@dataclass(frozen=True)
class Limits:
    """How much of a value goes into a prompt (the ``expand_max_*`` settings)."""

    max_rows: int = 20
    max_columns: int = 20
    max_chars: int = 2000
    max_cell_chars: int = 80


@dataclass(frozen=True)
class LeftAsTyped:
    """A reference that stayed as typed: ``reason`` is one of ``REASONS``, ``detail`` a short
    fact (the type that stopped it, or the missing step)."""

    ref: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Truncation:
    """A value that was clipped: ``note`` is ready to show ("20 of 200 rows, 4 of 4 columns")."""

    ref: str
    note: str


@dataclass
class Expansion:
    """The expanded text (already redacted) and what happened to each reference, in order."""

    text: str
    names: list[str]
    left: list[LeftAsTyped] = field(default_factory=list)
    truncated: list[Truncation] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)


def _default_redact(text: str) -> str:
    from .errors import SECRETS

    return SECRETS.redact(text)


def expand(
    text: str,
    namespace: Mapping[str, Any],
    limits: Limits | None = None,
    *,
    enabled: bool = True,
    redact: Callable[[str], str] | None = None,
) -> Expansion:
    """Replace the references in ``text`` that name plain data in ``namespace``; see the module.
    With ``enabled=False`` nothing is replaced and the references that would have been looked
    up are listed as left with reason ``expansion-off``."""
    limits = limits or Limits()
    redact = redact or _default_redact
    done = Expansion(text, [])
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        escaped, ref = match.group(1), match.group(2)
        if _GLUED.search(match.string, max(0, match.start() - 3), match.start()):
            return match.group()
        if escaped is not None:  # {{name}}: a literal {name} when name would have expanded
            root = re.match(r"[A-Za-z_]\w*", escaped)
            known = enabled and root and root.group() in namespace
            return "{" + escaped + "}" if known else match.group()
        first = ref not in seen
        seen.add(ref)
        root = re.match(r"[A-Za-z_]\w*", ref)
        if not enabled:
            if first and root and root.group() in namespace:
                done.left.append(LeftAsTyped(ref, "expansion-off"))
            return match.group()
        value = resolve(ref, namespace)
        rendered = value if type(value) is Refused else _render(value, limits)
        if isinstance(rendered, Refused):  # ours: a tuple or a Refused, never user data
            if first:
                done.left.append(LeftAsTyped(ref, rendered.reason, rendered.detail))
            return match.group()
        shown, note = rendered
        safe = redact(shown)
        if first:
            done.names.append(ref)
            if note:
                done.truncated.append(Truncation(ref, note))
            if safe != shown:
                done.masked.append(ref)
        return safe

    pieces, last = [], 0
    for fence in _FENCE.finditer(text):
        pieces.append(_PATTERN.sub(replace, text[last : fence.start()]))
        pieces.append(fence.group())
        last = fence.end()
    pieces.append(_PATTERN.sub(replace, text[last:]))
    done.text = "".join(pieces)
    return done


def resolve(ref: str, namespace: Mapping[str, Any]) -> Any:
    """The value a reference names, or a :class:`Refused` saying why not (unknown or private
    name, a step through something that is not plain data, a missing attribute or key)."""
    root = re.match(r"[A-Za-z_]\w*", ref)
    if root is None or root.group() not in namespace:
        return Refused("no-such-name")
    if root.group().startswith("_"):
        return Refused("private-name")
    value = namespace[root.group()]
    for step in _STEPS.finditer(ref, root.end()):
        attr, index, single, double = step.groups()
        if attr is not None:
            value = attribute(value, attr)
        else:
            key: Any = int(index) if index is not None else (single if single is not None else double)
            value = item(value, key)
        if type(value) is Refused:
            return value
    return value


def _render(value: Any, limits: Limits) -> tuple[str, str] | Refused:
    """(prompt text, truncation note or "") for plain data; a :class:`Refused` otherwise."""
    if is_pandas(value):
        return table(value, limits)
    try:
        text, cut = plain_text(value, limits.max_chars)
    except NotPlain as exc:
        return Refused("not-plain-data", str(exc.args[0]) if exc.args else type_name(type(value)))
    if not cut:
        return text, ""
    whole = len(value) if type(value) is str else None
    note = f"{limits.max_chars:,} of {whole:,} characters" if whole else (
        f"{limits.max_chars:,} characters, more left out")
    return f"{text}… [clipped: {note} shown]", note


def render(value: Any, limits: Limits) -> str:
    """A value as prompt text (plain data only; anything else as ``<TypeName>``)."""
    done = _render(value, limits)
    return f"<{type_name(type(value))}>" if isinstance(done, Refused) else done[0]


def _cell(value: Any, limit: int) -> str:
    text = " ".join(cell_text(value, limit).split())
    if len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def table(value: Any, limits: Limits) -> tuple[str, str]:
    """A DataFrame or Series as a Markdown table: the first ``max_rows`` rows and ``max_columns``
    columns, long cells clipped, and a note when anything was left out."""
    frame = value.to_frame() if value.ndim == 1 else value
    n_rows, n_cols = frame.shape
    shown = frame.iloc[: limits.max_rows, : limits.max_columns]
    width = limits.max_cell_chars
    label = frame.index.name
    index_name = _cell("" if label is None else label, width)
    header = [index_name] + [_cell(c, width) for c in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        cells = [_cell(label, width)] + [_cell(v, width) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    note = ""
    if n_rows > shown.shape[0] or n_cols > shown.shape[1]:
        note = f"{shown.shape[0]:,} of {n_rows:,} rows, {shown.shape[1]:,} of {n_cols:,} columns"
        lines.append(
            f"\n(Table truncated: {shown.shape[0]:,} of {n_rows:,} rows and "
            f"{shown.shape[1]:,} of {n_cols:,} columns shown.)"
        )
    return "\n".join(lines), note
