"""Python functions the model can call: schemas from the function itself, and running the calls.

A function's name, the first paragraph of its docstring and its type hints are its tool schema;
per-parameter descriptions come from a Google (``Args:``) or numpy (``Parameters``) section.
Schemas are sent the way the service accepts them: every ``$ref`` inlined, no ``title``,
``$defs`` or ``strict``. The gateway does not enforce the schema, so arguments are checked here
before the function runs. A call that fails (bad arguments, an exception, a refusal) becomes a
text result the model can read and recover from; it never fails the request. No IPython here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import inspect
import json
import re
import time
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ParameterError
from .toolcall import ToolCall

MAX_RESULT_CHARS = 100_000  # a tool result past this is clipped: it is sent with every later turn
DECLINED = "declined by the user"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DROP = ("title", "$defs", "definitions", "strict", "$schema")


@dataclasses.dataclass
class Tool:
    """One function and the schema the model sees for it."""

    name: str
    function: Callable[..., Any]
    description: str
    parameters: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        """The ``tools`` entry of a request body."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


def as_tools(functions: Sequence[Any] | None) -> list[Tool]:
    """Tools for these callables (a ``Tool`` is kept as it is); anything else is refused."""
    tools: list[Tool] = []
    for item in functions or ():
        tools.append(item if isinstance(item, Tool) else tool_from_function(item))
    names = [t.name for t in tools]
    for name in names:
        if names.count(name) > 1:
            raise ParameterError(f"Two tools are named {name!r}: tool names must be unique.")
    return tools


def tool_from_function(function: Any) -> Tool:
    """The tool schema of one function, from its name, docstring and type hints."""
    if not callable(function) or isinstance(function, type):
        raise ParameterError(
            f"{_short_repr(function)} is not a function, so it cannot be a tool: pass functions."
        )
    name = getattr(function, "__name__", "") or type(function).__name__
    if not _NAME.match(name):
        raise ParameterError(
            f"{name!r} cannot be a tool name: use letters, digits, _ and - (at most 64)."
        )
    doc = inspect.getdoc(function) or ""
    described = param_descriptions(doc)
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=False)
    except (TypeError, ValueError, NameError) as exc:
        raise ParameterError(f"Cannot read the parameters of {name}: {exc}.") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema = schema_for(hints.get(pname, Any))
        if param.default is None and schema and not _allows_null(schema):
            schema = {"anyOf": [schema, {"type": "null"}]}  # ``x: Addr = None``
        if pname in described:
            schema = {**schema, "description": described[pname]}
        if param.default is param.empty:
            required.append(pname)
        elif _jsonable(param.default):
            schema = {**schema, "default": param.default}
        properties[pname] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return Tool(name, function, first_paragraph(doc), parameters)


def _allows_null(schema: dict[str, Any]) -> bool:
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
        f"The type hint {_short_repr(hint)} has no JSON schema: use str, int, float, bool, list, "
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


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- checking arguments ---------------------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def check_arguments(value: Any, schema: dict[str, Any], path: str = "arguments") -> str | None:
    """The first way ``value`` breaks ``schema`` (the subset tool schemas use), or None."""
    if "anyOf" in schema:
        problems = [check_arguments(value, s, path) for s in schema["anyOf"]]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} must be one of {', '.join(json.dumps(v) for v in schema['enum'])}"
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _JSON_TYPES:
        ok = isinstance(value, _JSON_TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{path} must be {article} {kind}, not {json.dumps(value, default=str)[:40]}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{path}.{name} is required" if path != "arguments" else f"{name} is required"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            where = name if path == "arguments" else f"{path}.{name}"
            if name in properties:
                problem = check_arguments(item, properties[name], where)
            elif isinstance(extra, dict):
                problem = check_arguments(item, extra, where)
            elif properties and extra is not True and path == "arguments":
                problem = f"unexpected argument {name!r}"
            else:
                problem = None
            if problem:
                return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = check_arguments(item, schema["items"], f"{path}[{i}]")
            if problem:
                return problem
    return None


# -- running calls --------------------------------------------------------------------------------

Confirm = Callable[[ToolCall], bool]


def result_text(value: Any) -> str:
    """What the model reads: text as it is, JSON for dicts, lists and numbers, clipped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, tuple, int, float, bool)) or value is None:
        text = json.dumps(value, ensure_ascii=False, default=str)
    elif hasattr(value, "model_dump_json"):
        text = value.model_dump_json()
    else:
        text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… [clipped: {len(text):,} characters in all]"
    return text


def _convert(function: Callable[..., Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments for nested pydantic/dataclass/TypedDict parameters become those types."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - the schema step already read them; be lenient here
        return arguments
    out = dict(arguments)
    for name, value in arguments.items():
        hint = hints.get(name)
        if isinstance(value, dict) and hasattr(hint, "model_validate"):
            out[name] = hint.model_validate(value)  # type: ignore[union-attr]
        elif isinstance(value, dict) and dataclasses.is_dataclass(hint) and isinstance(hint, type):
            out[name] = hint(**value)
    return out


def run_call(call: ToolCall, tools: dict[str, Tool], confirm: Confirm | None = None) -> ToolCall:
    """Run one call in place: parse, check, ask, call; any failure becomes ``call.error``."""
    started = time.monotonic()
    try:
        tool = tools.get(call.name)
        if tool is None:
            call.error = f"UnknownTool: no tool named {call.name!r}; the tools are " + (
                ", ".join(sorted(tools)) or "none"
            )
            return call
        if call.parse_error:
            call.error = f"InvalidArguments: {call.parse_error}"
            return call
        problem = check_arguments(call.arguments, tool.parameters)
        if problem:
            call.error = f"InvalidArguments: {problem}"
            return call
        if confirm is not None and not confirm(call):
            call.declined = True
            call.result = DECLINED
            return call
        try:
            value = tool.function(**_convert(tool.function, call.arguments))
        except Exception as exc:  # noqa: BLE001 - the model reads the failure and can recover
            call.error = f"{type(exc).__name__}: {exc}"
            return call
        call.result = result_text(value)
        return call
    finally:
        call.seconds = time.monotonic() - started


def run_calls(
    calls: list[ToolCall],
    tools: dict[str, Tool],
    *,
    parallel: bool = False,
    confirm: Confirm | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> list[ToolCall]:
    """Run the calls of one round, in order; in a thread pool when ``parallel`` (and no one has
    to confirm each call: questions are asked one at a time, in order)."""
    if not parallel or len(calls) < 2 or confirm is not None:
        return [run_call(c, tools, confirm) for c in calls]
    if executor is not None:
        futures = [executor.submit(run_call, c, tools) for c in calls]
        return [f.result() for f in futures]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
        return list(pool.map(lambda c: run_call(c, tools), calls))


def check_tool_choice(choice: Any, tools: list[Tool]) -> Any:
    """``auto``/``none``/``required`` or a tool's name (sent as a named function); checked."""
    if choice is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
    elif choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise ParameterError("tool_choice 'required' needs tools: pass tools as well.")
        return choice
    else:
        name = choice
    names = [t.name for t in tools]
    if not isinstance(name, str) or name not in names:
        raise ParameterError(
            f"tool_choice = {_short_repr(choice)}: use auto, none, required or the name of one "
            f"of the tools ({', '.join(names) or 'no tools given'})."
        )
    return {"type": "function", "function": {"name": name}}


def call_line(call: ToolCall, width: int = 80) -> str:
    """``get_weather(city='Paris') → Sunny, 21 °C``: one line, the result clipped."""
    args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items()) if call.arguments else ""
    if call.parse_error and not call.arguments:
        args = call.arguments_text
    head = f"{call.name}({_clip(args, width // 2)})"
    if call.error is not None:
        return f"✗ {head} → {_clip(call.error, width)}"
    if call.declined:
        return f"✗ {head} → {DECLINED}"
    return f"{head} → {_clip(call.result or '', width)}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

