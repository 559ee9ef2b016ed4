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
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ParameterError
from .toolcall import ToolCall
from .typeschema import allows_null, first_paragraph, jsonable, param_descriptions, schema_for, short_repr

MAX_RESULT_CHARS = 100_000  # a tool result past this is clipped: it is sent with every later turn
DECLINED = "declined by the user"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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
            f"{short_repr(function)} is not a function, so it cannot be a tool: pass functions."
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
        if param.default is None and schema and not allows_null(schema):
            schema = {"anyOf": [schema, {"type": "null"}]}  # ``x: Addr = None``
        if pname in described:
            schema = {**schema, "description": described[pname]}
        if param.default is param.empty:
            required.append(pname)
        elif jsonable(param.default):
            schema = {**schema, "default": param.default}
        properties[pname] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return Tool(name, function, first_paragraph(doc), parameters)


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
            f"tool_choice = {short_repr(choice)}: use auto, none, required or the name of one "
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

