"""Request parameters: names, ranges and the payload, checked before anything is sent.

The ranges are the service's own schema (AIMLAPI.md), so a typo fails here with the parameter,
the value and the allowed range instead of a round trip and a 400. Unset (None) parameters are
never sent: the model's own default applies.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError

DEFAULT_MODEL = "baidu/ernie-5-0-thinking-preview"
MAX_STOP = 4
#: The largest number any parameter takes: JSON's exact-integer range (2**53 - 1). A 400-digit
#: value is a typo, and would overflow wherever it is turned into a float.
MAX_MAGNITUDE = 2**53 - 1


@dataclass(frozen=True)
class Range:
    """A numeric parameter's allowed values."""

    low: float | None
    high: float | None
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.high is None:
            return f"{kind} >= {_num(self.low)}"
        return f"{kind} from {_num(self.low)} to {_num(self.high)}"


RANGES: dict[str, Range] = {
    "max_completion_tokens": Range(1, None, integer=True),
    "max_tokens": Range(1, None),
    "temperature": Range(0, 2),
    "top_p": Range(0.01, 1),
    "frequency_penalty": Range(-2, 2),
    "presence_penalty": Range(-2, 2),
    "seed": Range(1, None, integer=True),
}

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
    """A model id is a non-empty string without whitespace."""
    if not isinstance(model, str) or not model.strip():
        raise ParameterError(
            f"model = {model!r} is not a model id: use e.g. 'gpt-4o-mini' (`%aiml models` lists them)."
        )
    model = model.strip()
    check_encodable("The model id", model)
    if any(c.isspace() for c in model):
        raise ParameterError(f"model = {model!r} contains spaces: model ids have none.")
    return model


_BLANK = " \t\r\f\v"


def trim_prompt(text: str) -> str:
    """The prompt as meant: leading blank lines and trailing whitespace are dropped.

    Enter after the last line (and, in terminal IPython, always) would otherwise send
    ``"...?\n"``, a different request from the one a cassette recorded. Everything between the
    first non-blank line (its indentation included) and the last non-blank character is kept
    byte-exact. Only ASCII whitespace counts as blank.
    """
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0 or text[start:end].strip(_BLANK):
            break
        start = end + 1
    return text[start:].rstrip(_BLANK + "\n")


def check_prompt(prompt: str) -> str:
    """An empty cell is refused rather than sent (it costs credits and answers nothing)."""
    if not prompt or not prompt.strip():
        raise ParameterError(
            "The cell is empty: write the prompt below the %%aiml line (e.g. %%aiml then a question)."
        )
    return prompt


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_encodable(what: str, text: str) -> None:
    """``text`` must be encodable as UTF-8: a lone surrogate (a broken emoji half) is not."""
    bad = _SURROGATE.search(text)
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
) -> dict[str, Any]:
    """Validate everything and build the JSON body; unset parameters are left out entirely."""
    model = check_model(model)
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
