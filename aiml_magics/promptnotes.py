"""What a prompt's ``{name}`` expansion did, in words: the references left as typed and why, and
the values that were cut short. The rules of what expands are ``prompt.py``'s; these are the
sentences a person reads (one line each, outside the answer). Pure: no IPython.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ParameterError

_WHY = {
    "no-such-name": "no such variable",
    "not-plain-data": "not plain data",
    "no-such-item": "nothing at",
    "private-name": "a private name, starting with _",
    "expansion-off": "expansion is off for this cell",
}


def _is_frame(value: Any) -> bool:
    module = type(value).__module__ or ""
    return type(value).__name__ == "DataFrame" and module.split(".")[0] == "pandas"


def column_hint(ref: str, namespace: Mapping[str, Any]) -> str | None:
    """``{df.price}`` names a DataFrame column as an attribute, which expansion never reads
    (it would run pandas' ``__getattr__``): the spelling that works, ``{df['price']}``."""
    root, dot, rest = ref.partition(".")
    if not dot or not rest:
        return None
    attr = rest.split(".", 1)[0].split("[", 1)[0]
    value = namespace.get(root) if isinstance(namespace, Mapping) else None
    if not _is_frame(value):
        return None
    return f"write {{{root}['{attr}']}}: a column is read by key, not as an attribute"


def _why(item: Any, namespace: Mapping[str, Any]) -> str:
    if item.reason in ("not-plain-data", "no-such-item"):
        hint = column_hint(item.ref, namespace)
        if hint:
            return hint
    words = _WHY.get(item.reason, item.reason)
    if item.reason == "no-such-item":
        return f"{words} {item.detail}" if item.detail else "no such item"
    return f"{words}: {item.detail}" if item.detail and item.reason == "not-plain-data" else words


def left_line(left: Iterable[Any], namespace: Mapping[str, Any]) -> str:
    """One line naming every ``{ref}`` sent as typed, each with why ("" when there is none)."""
    items = list(left)
    if not items:
        return ""
    if all(i.reason == "expansion-off" for i in items):
        refs = ", ".join(f"{{{i.ref}}}" for i in items)
        return f"Sent as typed (expansion is off for this cell): {refs}."
    parts = [f"{{{i.ref}}} ({_why(i, namespace)})" for i in items]
    return "Sent as typed: " + "; ".join(parts) + "."


def cut_notes(truncated: Iterable[Any]) -> list[str]:
    """``{reviews}: 20 of 200 rows, 4 of 4 columns sent``, one per value that was cut short."""
    return [f"{{{t.ref}}}: {t.note} sent" for t in truncated]


def check_fields(template: str, left: Iterable[Any], row: Mapping[str, Any], position: int) -> None:
    """``map()``: a template field that names no column or key is refused before anything is sent
    (sent as typed, every row would ask about the literal ``{prodcut}``)."""
    missing = [i.ref for i in left if i.reason == "no-such-name"]
    if not missing:
        return
    names = [str(k) for k in row]
    shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    fields = ", ".join(f"{{{m}}}" for m in missing)
    where = "row 0" if position == 0 else f"row {position}"
    raise ParameterError(
        f"map(): the template's {fields} names no column or key of {where} (there are: "
        f"{shown or 'none'}). Nothing was sent: fix the field's spelling."
    )


def with_cut_notes(request: Any, expansion: Any) -> Any:
    """``request`` with notes saying what expansion cut (rows, columns, characters), if anything."""
    cut = getattr(expansion, "truncated", ())
    if not cut:
        return request
    from dataclasses import replace

    return replace(request, notes=tuple(cut_notes(cut)))
