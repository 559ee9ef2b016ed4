"""Structured answers: a JSON schema (a dict or a pydantic model class) in, a checked value out.

The schema is sent the way the service accepts it (``$ref`` inlined, then ``$defs``, ``title``
and ``strict`` left out: AIMLAPI.md), and since the gateway does not enforce it, the answer is
validated here: by pydantic for a model class, by ``jsonschema`` when installed for a dict, else
by the small validator below (types, properties, required, enum, const, items, bounds, anyOf).
Plain Python; pydantic and jsonschema are optional and imported on first use.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import AIMLError, ParameterError
from .response import ChatResponse
from .safejson import parse_json_answer
from .typeschema import short_repr

_DROP = ("$defs", "definitions", "title", "strict", "$schema")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_MAX_DEPTH = 64


class SchemaMismatch(AIMLError):
    """The answer does not match the schema: ``.response`` keeps it (``.data`` is None)."""

    def __init__(self, message: str, response: ChatResponse | None = None, violation: str = "",
                 **kw: Any) -> None:
        super().__init__(message, kind="schema", **kw)
        self.response = response
        self.violation = violation


def is_model_class(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_json_schema") and hasattr(
        schema, "model_validate"
    )


def json_schema_of(schema: Any) -> dict[str, Any]:
    """The raw JSON schema of a dict or a pydantic model class."""
    if is_model_class(schema):
        return dict(schema.model_json_schema())
    if isinstance(schema, dict):
        return schema
    raise ParameterError(
        f"schema must be a JSON-schema dict or a pydantic model class, not {type(schema).__name__}."
    )


def schema_name(schema: Any) -> str:
    raw = schema.__name__ if is_model_class(schema) else json_schema_of(schema).get("title")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(raw or "answer"))[:64]
    return name or "answer"


def clean(schema: dict[str, Any]) -> dict[str, Any]:
    """``$ref`` inlined from ``$defs`` / ``definitions``, then the keys the service drops removed.

    Only schema keywords are removed: a property *called* ``title`` stays.
    """
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})

    def walk(node: Any, depth: int, seen: tuple[str, ...]) -> Any:
        if depth > _MAX_DEPTH:
            raise ParameterError("The schema is nested too deeply (more than 64 levels).")
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                raise ParameterError(
                    f"The schema refers to itself ({ref}): the service takes no recursive schemas."
                )
            if ref not in defs:
                raise ParameterError(f"The schema's $ref {ref!r} points to no definition.")
            merged = {**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged, depth + 1, (*seen, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP:
                continue
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                out[key] = {name: walk(sub, depth + 1, seen) for name, sub in value.items()}
            elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
                out[key] = [walk(sub, depth + 1, seen) for sub in value]
            elif key in _SUBSCHEMA:
                out[key] = walk(value, depth + 1, seen)
            else:
                out[key] = value
        return out

    return walk(schema, 0, ())


def response_format(schema: Any) -> dict[str, Any]:
    """The ``response_format`` body field for ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema_name(schema), "schema": clean(json_schema_of(schema))},
    }


def field_names(schema: Any) -> list[str]:
    """The top-level fields of an object schema (one DataFrame column each in ``map``)."""
    props = clean(json_schema_of(schema)).get("properties")
    return list(props) if isinstance(props, dict) else []


def check(schema: Any, text: str) -> tuple[Any, str | None]:
    """Parse and validate an answer: (value, None), or (None, the first violation in words)."""
    value, problem = parse_json_answer(text)
    if problem is not None:
        return None, "the answer is not valid JSON"
    if is_model_class(schema):
        from pydantic import ValidationError

        try:
            return schema.model_validate(value), None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _path(first.get("loc", ()))
            return None, f"{where}: {first.get('msg', 'invalid')}"
    cleaned = clean(json_schema_of(schema))
    violation = _jsonschema_first(cleaned, value)
    if violation is _UNAVAILABLE:
        violation = first_violation(cleaned, value)
    return (value, None) if violation is None else (None, violation)


def apply(schema: Any, resp: ChatResponse) -> SchemaMismatch | None:
    """Validate ``resp`` in place: ``.data`` becomes the value (a model instance for a model
    class) or None; returns the error to raise once the answer is kept."""
    if not resp.complete:
        return None
    data, problem = check(schema, resp.text)
    resp.data = data
    if problem is None:
        return None
    name = schema_name(schema)
    called = "the schema" if name == "answer" else f"the schema {name}"
    return SchemaMismatch(
        f"The answer does not match {called}: {problem}. The raw text is kept in .text and "
        ".data is None; ask again, or loosen the schema.",
        response=resp,
        violation=problem,
    )


def _path(loc: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc]
    return "answer" + "".join(parts) if parts else "answer"


_UNAVAILABLE = object()


def _jsonschema_first(schema: dict[str, Any], value: Any) -> Any:
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return _UNAVAILABLE
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return None
    message = errors[0].message
    message = message if len(message) <= 200 else message[:197] + "..."
    return f"{_path(errors[0].absolute_path)}: {message}"


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    kind = _TYPES.get(name)
    return kind is None or isinstance(value, kind)


def first_violation(schema: Any, value: Any, where: str = "answer") -> str | None:
    """A small JSON-schema check (used when jsonschema is not installed): the first violation."""
    if not isinstance(schema, dict):
        return None
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is_type(value, k) for k in names):
            return f"{where}: {short_repr(value)} is not of type {' or '.join(map(str, names))}"
    if "const" in schema and value != schema["const"]:
        return f"{where}: {short_repr(value)} is not {short_repr(schema['const'])}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {short_repr(value)} is not one of {short_repr(schema['enum'])}"
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            if all(first_violation(sub, value, where) for sub in schema[key]):
                return f"{where}: {short_repr(value)} matches none of the allowed shapes"
    for sub in schema.get("allOf", []) if isinstance(schema.get("allOf"), list) else []:
        problem = first_violation(sub, value, where)
        if problem:
            return problem
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok in (("minimum", lambda b: value >= b), ("maximum", lambda b: value <= b),
                        ("exclusiveMinimum", lambda b: value > b),
                        ("exclusiveMaximum", lambda b: value < b)):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not ok(bound):
                return f"{where}: {short_repr(value)} breaks {key} {bound}"
    if isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return f"{where}: {short_repr(value)} is shorter than {schema['minLength']} characters"
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            return f"{where}: {short_repr(value)} is longer than {schema['maxLength']} characters"
    if isinstance(value, dict):
        for name in schema.get("required", []) or []:
            if name not in value:
                return f"{where}: {name!r} is a required property"
        found = schema.get("properties")
        props: dict[str, Any] = found if isinstance(found, dict) else {}
        for name, sub in props.items():
            if name in value:
                problem = first_violation(sub, value[name], f"{where}.{name}")
                if problem:
                    return problem
        extra = schema.get("additionalProperties", True)
        for name in value:
            if name in props:
                continue
            if extra is False:
                return f"{where}: additional property {name!r} is not allowed"
            if isinstance(extra, dict):
                problem = first_violation(extra, value[name], f"{where}.{name}")
                if problem:
                    return problem
    if isinstance(value, list):
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return f"{where}: has {len(value)} items, fewer than {schema['minItems']}"
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return f"{where}: has {len(value)} items, more than {schema['maxItems']}"
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                problem = first_violation(schema["items"], item, f"{where}[{i}]")
                if problem:
                    return problem
    return None
