"""Offline answers that still teach: shaped for where they land, never passed off as a model's.

The offline echo (``cassette.offline_echo``) mirrors a whole request in a cell. Elsewhere that is
noise, so: a structured request gets a placeholder value shaped like its schema (it validates,
so the columns of a ``map()`` fill; its strings say "offline placeholder"); a comparison's column
shows what differs between the models asked (developer, the temperature each accepts); a batch's
cell is one short plain line with the part of its prompt that differs from the other rows. Pure.
"""

from __future__ import annotations

import json
import os
from typing import Any

PLACEHOLDER = "offline placeholder"
ROW_ECHO = "offline echo"
ROW_CHARS = 80  # a batch cell: one short line
_NOTHING = object()  # no placeholder could be built for this (sub)schema
_MAX_DEPTH = 32

# Who makes a model, from the first part of its id (what the service's ids start with).
_DEVELOPERS = {
    "openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "deepseek": "DeepSeek",
    "baidu": "Baidu", "meta-llama": "Meta", "mistralai": "Mistral AI", "alibaba": "Alibaba",
    "moonshotai": "Moonshot AI", "x-ai": "xAI", "minimax": "MiniMax", "qwen": "Alibaba",
}
_BARE_PREFIXES = (("gpt-", "OpenAI"), ("o1", "OpenAI"), ("o3", "OpenAI"), ("o4", "OpenAI"),
                  ("claude", "Anthropic"), ("gemini", "Google"), ("deepseek", "DeepSeek"))


# -- a placeholder shaped like a schema ------------------------------------------------------------


def placeholder(schema: Any) -> Any:
    """The simplest value that fits ``schema`` (a cleaned JSON schema), or None when the schema
    asks for something this cannot build (a pattern, a format): the caller falls back to the echo.
    The result is checked against the schema before it is used."""
    from .schema import _UNAVAILABLE, _jsonschema_first, first_violation

    value = _build(schema, 0)
    if value is _NOTHING:
        return None
    problem = _jsonschema_first(schema, value)
    if problem is _UNAVAILABLE:
        problem = first_violation(schema, value)
    return None if problem is not None else value


def _build(schema: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return _NOTHING if depth > _MAX_DEPTH else None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            merged = {**options[0], **{k: v for k, v in schema.items() if k != key}}
            return _build(merged, depth + 1)
    kinds = schema.get("type")
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if "pattern" in schema or "format" in schema:
        return _NOTHING
    return _BUILDERS.get(kind, lambda s, d: _NOTHING)(schema, depth)


def _object(schema: dict[str, Any], depth: int) -> Any:
    found = schema.get("properties")
    props: dict[str, Any] = found if isinstance(found, dict) else {}
    out = {}
    for name, sub in props.items():
        value = _build(sub, depth + 1)
        if value is _NOTHING:
            return _NOTHING
        out[name] = value
    return out


def _array(schema: dict[str, Any], depth: int) -> Any:
    least = schema.get("minItems")
    n = least if isinstance(least, int) else 1
    item = _build(schema.get("items", {}), depth + 1)
    return _NOTHING if item is _NOTHING or n > 100 else [item] * max(n, 0)


def _string(schema: dict[str, Any], depth: int) -> Any:
    least, most = schema.get("minLength"), schema.get("maxLength")
    text = PLACEHOLDER
    if isinstance(least, int) and least > len(text):
        text += "." * (least - len(text))
    return text[:most] if isinstance(most, int) else text


def _number(schema: dict[str, Any], depth: int) -> Any:
    integer = schema.get("type") == "integer" or (
        isinstance(schema.get("type"), list) and "integer" in schema["type"])
    low, high = schema.get("minimum"), schema.get("maximum")
    value: float = 0
    above = schema.get("exclusiveMinimum")
    if isinstance(low, (int, float)):
        value = low
    elif isinstance(above, (int, float)):
        top = high if isinstance(high, (int, float)) else schema.get("exclusiveMaximum")
        value = (above + top) / 2 if isinstance(top, (int, float)) else above + 1
    elif isinstance(high, (int, float)) and high < 0:
        value = high
    return int(value) if integer and float(value).is_integer() else value


_BUILDERS: dict[str, Any] = {
    "object": _object, "array": _array, "string": _string, "number": _number,
    "integer": _number, "boolean": lambda s, d: False, "null": lambda s, d: None,
}


def schema_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks its answer to follow, if any."""
    fmt = payload.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    block = fmt.get("json_schema")
    schema = block.get("schema") if isinstance(block, dict) else None
    return schema if isinstance(schema, dict) else None


def placeholder_text(payload: dict[str, Any]) -> str | None:
    """A structured request's offline answer: placeholder JSON that validates, or None."""
    schema = schema_of(payload)
    if schema is None:
        return None
    value = placeholder(schema)
    return None if value is None else json.dumps(value, ensure_ascii=False)


# -- a comparison's column -------------------------------------------------------------------------


def developer(model: str) -> str | None:
    """Who makes ``model``, from its id ("anthropic/claude-sonnet-4.5" -> "Anthropic")."""
    low = model.lower()
    if "/" in low:
        return _DEVELOPERS.get(low.split("/", 1)[0])
    return next((name for prefix, name in _BARE_PREFIXES if low.startswith(prefix)), None)


def column_echo(payload: dict[str, Any]) -> str:
    """A comparison column offline: what is particular to this model, then what would be sent."""
    from .params import RANGES, range_for

    model = str(payload.get("model") or "")
    lines = []
    who = developer(model)
    if who:
        lines.append(f"- **developer** {who}")
    rng, usual = range_for("temperature", model), RANGES["temperature"]
    narrower = f" (most models: {usual.low:g} to {usual.high:g})" if rng.high != usual.high else ""
    lines.append(f"- **temperature** accepts {rng.low:g} to {rng.high:g}{narrower}")
    sent = {k: v for k, v in payload.items() if k not in ("model", "messages", "stream")}
    n = len(payload.get("messages") or [])
    params = " · ".join(f"`{k}` = `{json.dumps(v, ensure_ascii=False)}`" for k, v in sent.items())
    lines.append(f"- **would send** {n} message{'s' if n != 1 else ''}" + (f" · {params}" if params else ""))
    return (
        "**Offline echo:** no model was asked.\n\n" + "\n".join(lines) + "\n\n"
        "*Live, this column holds the model's answer, its speed and its cost.*"
    )


# -- a batch's cell --------------------------------------------------------------------------------


def row_echoes(prompts: list[str]) -> list[str]:
    """One short line per prompt: ``offline echo: …`` and the part of the prompt that differs from
    the others (a template's filled-in values), so each row of a DataFrame shows what it sent."""
    if len(prompts) < 2:
        return [_row_line("", p, "") for p in prompts]
    prefix = _word_start(os.path.commonprefix(prompts))
    suffix = _word_start(os.path.commonprefix([p[::-1] for p in prompts]))[::-1]
    out = []
    for prompt in prompts:
        cut_end = len(prompt) - len(suffix)
        if len(prefix) > cut_end:  # the common parts overlap in this prompt: show it all
            out.append(_row_line("", prompt, ""))
        else:
            out.append(_row_line(prefix, prompt[len(prefix):cut_end], suffix))
    return out


def _word_start(common: str) -> str:
    """A common prefix cut back to a word boundary, so a shared first letter stays with its word."""
    if not common or common[-1].isspace():
        return common
    cut = max(common.rfind(" "), common.rfind("\n"))
    return common[: cut + 1] if cut >= 0 else ""


def _row_line(prefix: str, middle: str, suffix: str) -> str:
    text = " ".join(middle.split())
    if len(text) > ROW_CHARS:
        text = text[: ROW_CHARS - 1] + "…"
        suffix = ""
    return f"{ROW_ECHO}: {'…' if prefix.strip() else ''}{text}{'…' if suffix.strip() else ''}"
