"""Request parameters: names, ranges and the payload, checked before anything is sent.

The ranges are the service's own schema (AIMLAPI.md), so a typo fails here with the parameter,
the value and the allowed range instead of a round trip and a 400. Unset (None) parameters are
never sent: the model's own default applies.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from .errors import ParameterError

#: The model a cell asks when nothing else is set (``AIML_MODEL`` in the environment wins): the
#: current ERNIE 5 model. Its thinking preview, the model of the service's docs example, was moved
#: to the deprecated list in 2026-06; that id is still accepted like any other.
DEFAULT_MODEL = "baidu/ernie-5.0"
#: The environment variable a script or a notebook server sets to pick the default model.
MODEL_VAR = "AIML_MODEL"
MAX_ANSWER_BYTES = 32 << 20  # an answer past 32 MiB is not read (max_answer_bytes)
MAX_STOP = 4
#: The largest number any parameter takes: JSON's exact-integer range (2**53 - 1). A 400-digit
#: value is a typo, and would overflow wherever it is turned into a float.
MAX_MAGNITUDE = 2**53 - 1


class Range:
    """A numeric parameter's allowed values (a plain class: the table loads with ``%load_ext``)."""

    __slots__ = ("low", "high", "integer")

    def __init__(self, low: float | None, high: float | None, integer: bool = False) -> None:
        self.low, self.high, self.integer = low, high, integer

    def __repr__(self) -> str:
        return f"Range({self.low!r}, {self.high!r}, integer={self.integer!r})"

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.high is None:
            return f"{kind} >= {_num(self.low)}"
        return f"{kind} from {_num(self.low)} to {_num(self.high)}"


class Param:
    """One setting or request parameter, declared once.

    ``kind`` is its type ("str", "int", "float", "bool", "list"); ``flags`` its cell-flag
    spellings (an empty tuple: a setting only; ``--no-x`` turns a default-True switch off for a
    cell, and ``flag_help`` says what that flag does, where ``help`` says what the setting does);
    ``request`` marks what goes into the request body; ``panel`` what the control panel shows.
    The traits, the cell flags, validation, the payload, ``%aiml config``, the help and the panel
    all read this table.
    """

    __slots__ = ("name", "kind", "default", "help", "flags", "range", "request", "panel", "none",
                 "flag_help")

    def __init__(
        self,
        name: str,
        kind: str,
        default: Any = None,
        help: str = "",
        *,
        flags: tuple[str, ...] = (),
        range: Range | None = None,
        request: bool = False,
        panel: bool = False,
        none: bool = True,
        flag_help: str = "",
    ) -> None:
        self.name, self.kind, self.default, self.help = name, kind, default, help
        self.flag_help = flag_help
        self.flags, self.range, self.request, self.panel = flags, range, request, panel
        self.none = none  # None is accepted (unset: the model's default applies)

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.kind!r})"


PARAMS: tuple[Param, ...] = (
    # -- request parameters (sent when set; None: the model's own default) ---------------------
    Param("model", "str", DEFAULT_MODEL, f"model id (`%aiml models` lists them); default "
          f"{MODEL_VAR} or {DEFAULT_MODEL}",
          flags=("--model", "-m"), request=True, panel=True, none=False),
    Param("max_completion_tokens", "int", None,
          "upper bound on generated tokens, reasoning included",
          flags=("--max-completion-tokens", "-n"), range=Range(1, None, integer=True),
          request=True, panel=True),
    Param("max_tokens", "int", None, "legacy upper bound on generated tokens",
          flags=("--max-tokens",), range=Range(1, None, integer=True), request=True),
    Param("temperature", "float", None, "sampling temperature",
          flags=("--temperature", "-t"), range=Range(0, 2), request=True, panel=True),
    Param("top_p", "float", None, "nucleus sampling", flags=("--top-p",), range=Range(0.01, 1),
          request=True, panel=True),
    Param("stop", "list", None, f"stop sequence (repeatable, at most {MAX_STOP})",
          flags=("--stop",), request=True),
    Param("frequency_penalty", "float", None, "penalise frequent tokens",
          flags=("--frequency-penalty",), range=Range(-2, 2), request=True),
    Param("presence_penalty", "float", None, "penalise tokens already present",
          flags=("--presence-penalty",), range=Range(-2, 2), request=True),
    Param("seed", "int", None, "for more repeatable answers", flags=("--seed",),
          range=Range(1, None, integer=True), request=True),
    # -- session settings ------------------------------------------------------------------------
    Param("system", "str", None, "system prompt sent first", flags=("--system", "-s"), panel=True),
    Param("stream", "bool", True, "stream answers as they are generated", flags=("--no-stream",),
          panel=True, none=False,
          flag_help="this cell waits for the whole answer, then shows it (no streaming)"),
    Param("memory", "bool", True, "later cells continue the conversation", flags=("--no-memory",),
          panel=True, none=False,
          flag_help="this cell is sent alone (no earlier turns) and is not remembered"),
    Param("max_history", "int", 20, "turns kept in the conversation (None: no limit)"),
    Param("timeout", "float", 120.0, "seconds to wait for data before giving up", none=False),
    Param("max_retries", "int", 2, "retries on 429 and 5xx, with backoff and Retry-After",
          none=False),
    Param("max_wait", "float", 30.0, "seconds one request, or one map() item, may wait in total "
          "between its retries (429 Retry-After, backoff); past it, it fails", none=False),
    Param("base_url", "str", None, "API base URL; default AIML_API_BASE or "
          "https://api.aimlapi.com/v1"),
    Param("api_key", "str", None, "API key; default AIML_API_KEY (prefer `%aiml key`)"),
    Param("allow_insecure_http", "bool", False,
          "allow sending the key over plain http:// to a non-loopback host", none=False),
    Param("allow_remote_images", "bool", False,
          "load remote images in answers (off: an image URL can carry what the model read to any "
          "server, so remote images are shown as links)", none=False),
    Param("max_answer_bytes", "int", MAX_ANSWER_BYTES,
          "largest answer read, in bytes after decompression; past it the rest is not read and "
          "what arrived is kept", none=False),
    # -- prompt expansion (prompt.py) ---------------------------------------------------------
    Param("expand_variables", "bool", True, "replace {name}, {name.attr} and {name[key]} in a "
          "cell with the value from the notebook", flags=("--no-expand",), none=False,
          flag_help="this cell is sent as typed: no {name} is replaced"),
    Param("expand_max_rows", "int", 20, "rows of a DataFrame put into a prompt", none=False),
    Param("expand_max_columns", "int", 20, "columns of a DataFrame put into a prompt", none=False),
    Param("expand_max_chars", "int", 2000, "characters of any other value put into a prompt",
          none=False),
    # -- tools -----------------------------------------------------------------------------------
    Param("parallel_tool_calls", "bool", True, "let the model ask for several tool calls at once "
          "(run in a thread pool)", flags=("--no-parallel-tool-calls",), none=False,
          flag_help="in this cell the model asks for one tool call at a time"),
    Param("max_tool_rounds", "int", 8, "rounds of tool calls in one request before it stops "
          "with an error", none=False),
    Param("confirm_tools", "bool", False, "ask yes/no before each tool call (for tools with "
          "side effects)", none=False),
    Param("max_image_edge", "int", 2048, "images are scaled down to at most this many pixels on "
          "the long edge (aspect ratio kept)", none=False),
    Param("max_image_bytes", "int", 4_000_000, "largest encoded image sent, in bytes (a larger PNG "
          "is sent as JPEG)", none=False),
    # -- the store and the cache (store.py, remember.py) ---------------------------------------
    Param("store", "str", None, "SQLite file that keeps every exchange (None: AIML_STORE, else "
          "$XDG_DATA_HOME/aiml_magics/store.db; empty: keep nothing)"),
    Param("cache", "bool", False, "answer a request identical to one already answered from the "
          "store, sending nothing (a cell: --cache; map() caches unless cache=False)", none=False),
    Param("store_images", "bool", False, "keep images' bytes in the store (off: their hash and "
          "description only)", none=False),
    Param("keep_images_in_history", "bool", True, "later cells send the images of earlier turns "
          "again (off: only their text, to save tokens)", none=False),
    # -- the notebook as context (context.py) ----------------------------------------------------
    Param("context_cells", "int", 10, "cells that ran before, sent by `%%aiml --context` and "
          "`%aiml explain`/`fix`", none=False),
    Param("context_budget", "int", 12_000, "characters of notebook context sent at most (the "
          "oldest cells are left out first)", none=False),
    Param("context_memory", "bool", False, "later cells carry the notebook context too (off: "
          "the conversation keeps only the question)", none=False),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
REQUEST_PARAMS: tuple[Param, ...] = tuple(p for p in PARAMS if p.request and p.name != "model")
RANGES: dict[str, Range] = {p.name: p.range for p in PARAMS if p.range is not None}

# Claude and MiniMax models take temperature 0..1 only; the service answers 400 above that.
_NARROW_TEMPERATURE = ("claude", "minimax")


def _num(value: float | None) -> str:
    """A number as a person writes it, short even for 1e+235 (a message stays one line)."""
    if value is None:
        return "?"
    try:
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
    except OverflowError:
        return "a number too large to show"
    return str(value) if isinstance(value, float) else f"{float(value):g}"


def _digits(value: int | float) -> str:
    """A huge number, short: '12345' or 'a 401-digit number'."""
    if isinstance(value, int) and len(str(abs(value))) > 20:
        return f"a {len(str(abs(value)))}-digit number"
    return _num(value)


def shown_value(value: Any) -> str:
    """``repr`` of a refused value, clipped: a 1 MB flag value must not make a 1 MB message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def range_words(name: str) -> str:
    """A parameter's range as the help says it: "0 to 2 (0 to 1 for Claude and MiniMax models)"."""
    rng = RANGES[name]
    words = f">= {_num(rng.low)}" if rng.high is None else f"{_num(rng.low)} to {_num(rng.high)}"
    if name == "temperature":
        words += " (0 to 1 for Claude and MiniMax models)"
    return words


def range_for(name: str, model: str | None = None) -> Range:
    """The allowed range of ``name``, narrowed for the models that accept less."""
    rng = RANGES[name]
    if name == "temperature" and model and any(m in model.lower() for m in _NARROW_TEMPERATURE):
        return Range(0, 1)
    return rng


def check_number(name: str, value: Any, model: str | None = None) -> int | float | None:
    """Coerce and range-check one numeric parameter; None means unset and passes."""
    if value is None:
        return None
    rng = range_for(name, model)
    for_model = f" for {model}" if rng is not RANGES[name] else ""
    if isinstance(value, bool):
        raise ParameterError(f"{name} = {shown_value(value)} is not a number: use {rng.describe()}.")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:  # no number people type is this long; int() of 5,000 digits is slow
            raise ParameterError(
                f"{name} = {shown_value(value)} is too long to be a number: use {rng.describe()}."
            )
        try:
            value = int(text) if text.lstrip("+-").isascii() and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise ParameterError(
                f"{name} = {shown_value(value)} is not a number: use {rng.describe()}."
            ) from None
    if not isinstance(value, (int, float)) or isinstance(value, complex):
        raise ParameterError(f"{name} = {shown_value(value)} is not a number: use {rng.describe()}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{name} = {shown_value(value)} is out of range: use {rng.describe()}.")
    if abs(value) > MAX_MAGNITUDE:
        raise ParameterError(
            f"{name} = {_digits(value)} is too large: use {rng.describe()}, at most {MAX_MAGNITUDE:,}."
        )
    if rng.integer:
        if float(value) != int(value):
            raise ParameterError(f"{name} = {shown_value(value)} is not an integer: use {rng.describe()}.")
        value = int(value)
    if (rng.low is not None and value < rng.low) or (rng.high is not None and value > rng.high):
        raise ParameterError(
            f"{name} = {_num(value)} is out of range{for_model}: use {rng.describe()}."
        )
    return value


def check_stop(stop: Any) -> list[str] | None:
    """At most 4 non-empty stop sequences; a single string counts as one."""
    if stop is None or stop == []:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise ParameterError(f"stop = {stop!r} must be a string or a list of strings.")
    if len(stop) > MAX_STOP:
        raise ParameterError(
            f"stop has {len(stop)} sequences: the service takes at most {MAX_STOP}."
        )
    if any(s == "" for s in stop):
        raise ParameterError("stop sequences must not be empty strings.")
    for i, sequence in enumerate(stop):
        check_encodable(f"stop sequence {i + 1}" if len(stop) > 1 else "The stop sequence", sequence)
    return list(stop)


def check_model(model: Any) -> str:
    """A model id is a non-empty string without whitespace, and not a number (a temperature or
    a token count typed into the model box is a slip, not a model the service knows)."""
    if not isinstance(model, str) or not model.strip():
        raise ParameterError(
            f"model = {shown_value(model)} is not a model id: use e.g. 'gpt-4o-mini' (`%aiml models` "
            "lists them)."
        )
    model = model.strip()
    check_encodable("The model id", model)
    if any(c.isspace() for c in model):
        raise ParameterError(f"model = {shown_value(model)} contains spaces: model ids have none.")
    if is_number(model):
        raise ParameterError(
            f"model = {shown_value(model)} is a number, not a model id: use e.g. 'gpt-4o-mini' "
            "(`%aiml models` lists them). A number belongs to a parameter such as temperature or "
            "max_completion_tokens."
        )
    return model


def default_model() -> str:
    """The model a session asks unless told otherwise: ``AIML_MODEL`` when set, else the built-in
    default. A bad value in the variable is refused with its name, before anything is sent."""
    import os

    value = os.environ.get(MODEL_VAR, "").strip()
    if not value:
        return DEFAULT_MODEL
    try:
        return check_model(value)
    except ParameterError as exc:
        raise ParameterError(
            f"The environment variable {MODEL_VAR} is not a usable model id: {exc} Fix or unset "
            f"{MODEL_VAR}, or set the model in the notebook (`%config AIMLMagics.model = ...`) or "
            "with Session(model=...)."
        ) from None


def is_number(text: str) -> bool:
    """``text`` reads as a number (float() takes it: "5", "0.7", "1e3", "nan")."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_prompt(prompt: str) -> str:
    """An empty cell is refused rather than sent (it costs credits and answers nothing)."""
    if not prompt or not prompt.strip():
        raise ParameterError(
            "The cell is empty: write the prompt below the %%aiml line (e.g. %%aiml then a question)."
        )
    return prompt


@functools.cache
def _surrogate() -> re.Pattern[str]:
    return re.compile("[\ud800-\udfff]")


def check_encodable(what: str, text: str) -> None:
    """``text`` must be encodable as UTF-8: a lone surrogate (a broken emoji half) is not."""
    bad = _surrogate().search(text)
    if bad:
        raise ParameterError(
            f"{what[:1].upper()}{what[1:]} has a broken character (a lone surrogate, "
            f"U+{ord(bad.group()):04X}) at position {bad.start()}: it cannot be sent as UTF-8. "
            "Delete it, or paste the text again."
        )


def check_text(messages: list[dict[str, Any]]) -> None:
    """Every message must be encodable as UTF-8: a lone surrogate (a broken emoji half) is not."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            check_encodable(f"The {message.get('role', 'user')} message", content)


def build_payload(
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    stream: bool,
    json_mode: bool = False,
    checked: bool = False,
) -> dict[str, Any]:
    """Validate everything and build the JSON body; unset parameters are left out entirely.
    ``checked``: the messages' text was checked already (``History.messages(check=True)`` checks
    each past turn once, so a long conversation is not checked again every turn)."""
    model = check_model(model)
    if not checked:
        check_text(messages)
    payload: dict[str, Any] = {"model": model, "messages": messages}
    for name in RANGES:
        value = check_number(name, params.get(name), model)
        if value is not None:
            payload[name] = value
    stop = check_stop(params.get("stop"))
    if stop is not None:
        payload["stop"] = stop
    if json_mode:
        payload["response_format"] = {"type": "json_object"}
    if stream:
        payload["stream"] = True
    return payload
