"""A Python function's type hints and docstring as the JSON Schema of a tool's parameters.

Type hints (builtins, ``Literal``, unions, lists and dicts, ``TypedDict``, dataclasses, pydantic
models) become schema; a Google (``Args:``) or numpy (``Parameters``) section gives each
parameter's description. Schemas come out the way the service accepts them: every ``$ref``
inlined, no ``title``, ``$defs`` or ``strict``. Pure Python; ``tools.py`` builds tools with it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from .errors import ParameterError

_DROP = ("title", "$defs", "definitions", "strict", "$schema")


def allows_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(o.get("type") == "null" for o in schema.get("anyOf", []))


def first_paragraph(doc: str) -> str:
    """The docstring's first paragraph, on one line."""
    head = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0] if doc.strip() else ""
    return " ".join(head.split())


_GOOGLE = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")


def param_descriptions(doc: str) -> dict[str, str]:
    """Per-parameter descriptions from a Google (``Args:``) or numpy (``Parameters``) section."""
    lines = doc.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        numpy = stripped == "Parameters" and i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1].strip())
        if _GOOGLE.match(stripped):
            _google_section(lines[i + 1 :], out)
            break
        if numpy:
            _numpy_section(lines[i + 2 :], out)
            break
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_section(lines: list[str], out: dict[str, str]) -> None:
    base: int | None = None
    current: str | None = None
    for line in lines:
        if not line.strip():
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) < base:
            break
        m = re.match(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
        if _indent(line) == base and m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif _indent(line) > base and current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
        else:
            break


def _numpy_section(lines: list[str], out: dict[str, str]) -> None:
    current: str | None = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1].strip()):
            break  # the next section
        if _indent(line) == 0:
            current = line.split(":", 1)[0].strip()
            out[current] = ""
        elif current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()


# -- type hints -> JSON schema --------------------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def schema_for(hint: Any) -> dict[str, Any]:
    """The JSON schema of one type hint, with nested models inlined."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        values = list(args)
        schema: dict[str, Any] = {"enum": values}
        kinds = {_SIMPLE.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X or null
            inner = schema_for(options[0])
            return {"anyOf": [inner, {"type": "null"}]} if inner else {}
        return {"anyOf": [schema_for(a) for a in args]}
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        items = [a for a in args if a is not Ellipsis]
        out: dict[str, Any] = {"type": "array"}
        if items and (origin is not tuple or len(items) == 1):
            out["items"] = schema_for(items[0])
        return out
    if hint is dict or origin is dict:
        out = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            out["additionalProperties"] = schema_for(args[1])
        return out
    if _is_typeddict(hint):
        return _typeddict_schema(hint)
    if hasattr(hint, "model_json_schema"):  # a pydantic model
        return clean_schema(hint.model_json_schema())
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_schema(hint)
    raise ParameterError(
        f"The type hint {short_repr(hint)} has no JSON schema: use str, int, float, bool, list, "
        "dict, Literal, Optional, a TypedDict or a pydantic model."
    )


def _is_typeddict(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__total__")


def _typeddict_schema(hint: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(hint)
    required = sorted(getattr(hint, "__required_keys__", set(hints)))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {k: schema_for(v) for k, v in hints.items()},
    }
    if required:
        schema["required"] = [k for k in hints if k in required]
    return schema


def _dataclass_schema(hint: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(hint)
    fields = dataclasses.fields(hint)
    required = [
        f.name for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: schema_for(hints.get(f.name, Any)) for f in fields},
    }
    if required:
        schema["required"] = required
    return schema


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema as the service accepts it: ``$ref`` inlined from ``$defs``, then ``title``,
    ``$defs`` and ``strict`` dropped (the SDK strips them, which would orphan every ``$ref``)."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(n, seen) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen or name not in defs:
                raise ParameterError(f"The schema refers to {name!r} recursively or without a "
                                     "definition: tools need schemas without cycles.")
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[name], **rest}, (*seen, name))
        return {k: walk(v, seen) for k, v in node.items() if k not in _DROP or not _is_keyword(node, k)}

    return dict(walk(schema, ()))


def _is_keyword(node: dict[str, Any], key: str) -> bool:
    """``title`` as a schema keyword (a string), not a property that happens to be named title."""
    return not (key == "title" and isinstance(node.get(key), dict))


def jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
