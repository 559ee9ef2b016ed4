"""Brace-safe expansion of ``{name}`` references in a prompt, from a namespace. Plain Python.

``str.format`` breaks on the first ``{`` of a JSON example or a code snippet; here only a
reference that is exactly ``{name}``, ``{name.attr}`` or ``{name[key]}`` (int or quoted-string
keys, chained), whose ``name`` exists in the namespace, is replaced. Everything else stays as
typed: format specs, Jinja's ``{{ x }}``, LaTeX, unknown names. ``{{name}}`` gives ``{name}``.

No code runs: attributes are read with ``inspect.getattr_static`` (a property, a method or a
``__getattr__`` is not called, and names starting with ``_`` are not followed), and indexing is
done only on dicts, lists, tuples, strings and pandas objects. A notebook from Binder may hold
prompt text nobody checked.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# One reference: a name, then .attr / [int] / ['str'] / ["str"] steps, nothing else.
_STEP = r"(?:\.[A-Za-z_]\w*|\[-?\d+\]|\['[^'\\\]\n]*'\]|\[\"[^\"\\\]\n]*\"\])"
_REF = rf"[A-Za-z_]\w*{_STEP}*"
_PATTERN = re.compile(rf"\{{\{{({_REF})\}}\}}|\{{({_REF})\}}")
_STEPS = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_MISSING = object()
# Text that is code or markup, where a brace is never ours: fenced code blocks.
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.M | re.S)
# A brace right after these is LaTeX or code (\frac{x}{y}, x^{n}, a_{i}, f"{x}"): left alone.
_GLUED = re.compile(r"(?:[\w\\^}$]|\b[rRbB]?[fF][rR]?[\"'])\Z")


@dataclass(frozen=True)
class Limits:
    """How much of a value goes into a prompt (the ``expand_max_*`` settings)."""

    max_rows: int = 20
    max_columns: int = 20
    max_chars: int = 2000
    max_cell_chars: int = 80


@dataclass
class Expansion:
    """The expanded text and the references that were replaced, in order of appearance."""

    text: str
    names: list[str]


def expand(text: str, namespace: Mapping[str, Any], limits: Limits | None = None) -> Expansion:
    """Replace the references in ``text`` whose root name is in ``namespace``; see the module."""
    limits = limits or Limits()
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        escaped, ref = match.group(1), match.group(2)
        if _GLUED.search(match.string, max(0, match.start() - 3), match.start()):
            return match.group()
        if escaped is not None:  # {{name}}: a literal {name} when name would have expanded
            root = re.match(r"[A-Za-z_]\w*", escaped)
            return "{" + escaped + "}" if root and root.group() in namespace else match.group()
        value = resolve(ref, namespace)
        if value is _MISSING:
            return match.group()
        if ref not in names:
            names.append(ref)
        return render(value, limits)

    pieces, last = [], 0
    for fence in _FENCE.finditer(text):
        pieces.append(_PATTERN.sub(replace, text[last : fence.start()]))
        pieces.append(fence.group())
        last = fence.end()
    pieces.append(_PATTERN.sub(replace, text[last:]))
    return Expansion("".join(pieces), names)


def resolve(ref: str, namespace: Mapping[str, Any]) -> Any:
    """The value a reference names, or ``_MISSING`` (unknown name, private attribute, a value
    that only code could produce, a missing key)."""
    root = re.match(r"[A-Za-z_]\w*", ref)
    if root is None or root.group() not in namespace or root.group().startswith("__"):
        return _MISSING
    value = namespace[root.group()]
    for step in _STEPS.finditer(ref, root.end()):
        attr, index, single, double = step.groups()
        if attr is not None:
            value = _attribute(value, attr)
        else:
            key: Any = int(index) if index is not None else (single if single is not None else double)
            value = _item(value, key)
        if value is _MISSING:
            return _MISSING
    return value


def _attribute(value: Any, name: str) -> Any:
    if name.startswith("_"):
        return _MISSING
    try:
        found = inspect.getattr_static(value, name)
    except AttributeError:
        return _MISSING
    # A property, method, classmethod or any other descriptor would run code when read.
    if hasattr(type(found), "__get__"):
        return _MISSING
    return found


def _is_pandas(value: Any) -> bool:
    module = type(value).__module__ or ""
    in_pandas = module == "pandas" or module.startswith("pandas.")
    return in_pandas and type(value).__name__ in ("DataFrame", "Series")


def _item(value: Any, key: Any) -> Any:
    if not (type(value) in (dict, list, tuple, str) or _is_pandas(value)):
        return _MISSING
    if isinstance(key, int) and _is_pandas(value):
        try:
            return value.iloc[key]
        except (IndexError, TypeError, ValueError):
            return _MISSING
    try:
        return value[key]
    except (KeyError, IndexError, TypeError, ValueError):
        return _MISSING


def render(value: Any, limits: Limits) -> str:
    """A value as prompt text: a DataFrame or Series as a compact Markdown table, else ``str()``,
    clipped with a note that says how much there was."""
    if _is_pandas(value):
        return table(value, limits)
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception as exc:  # noqa: BLE001 - a broken __str__ must not break the cell
        text = f"<{type(value).__name__}: str() failed: {type(exc).__name__}>"
    return clip(text, limits.max_chars)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [clipped: {limit:,} of {len(text):,} characters shown]"


def _cell(value: Any, limit: int) -> str:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = "?"
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def table(value: Any, limits: Limits) -> str:
    """A DataFrame or Series as a Markdown table: the first ``max_rows`` rows and ``max_columns``
    columns, long cells clipped, and a note when anything was left out."""
    frame = value.to_frame() if type(value).__name__ == "Series" else value
    n_rows, n_cols = frame.shape
    shown = frame.iloc[: limits.max_rows, : limits.max_columns]
    width = limits.max_cell_chars
    index_name = _cell(frame.index.name or "", width)
    header = [index_name] + [_cell(c, width) for c in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        cells = [_cell(label, width)] + [_cell(v, width) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    if n_rows > shown.shape[0] or n_cols > shown.shape[1]:
        lines.append(
            f"\n(Table truncated: {shown.shape[0]:,} of {n_rows:,} rows and "
            f"{shown.shape[1]:,} of {n_cols:,} columns shown.)"
        )
    return "\n".join(lines)
