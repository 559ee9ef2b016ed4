"""Setting types whose refusals say what is accepted.

traitlets' own message for ``%config AIMLMagics.temperature = 'hot'`` names the setting and the
wrong type but not what would do; these drop-in replacements of ``Float``, ``Int``, ``Bool`` and
``Unicode`` name the setting, the value and the accepted range, like the per-cell flags do. They
also refuse ``True``/``False`` for numbers (traitlets takes ``True`` as 1). The API key's refusal
never repeats the value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets

from .params import RANGES, shown_value

# What each setting accepts, for the ones the request parameters' ranges do not describe.
ACCEPTS = {
    "model": "a model id such as 'gpt-4o-mini' (`%aiml models` lists them)",
    "system": "a string, or None for no system prompt",
    "timeout": "a number of seconds above 0, at most 3600",
    "max_retries": "an integer from 0 to 10",
    "max_history": "an integer >= 0, or None for no limit",
    "max_answer_bytes": "an integer number of bytes from 1024 to 1073741824 (1 GiB)",
    "base_url": "an http(s) URL such as 'https://api.aimlapi.com/v1', or None for the default",
    "api_key": "a string (better: `%aiml key`, a masked prompt)",
}
SECRET = ("api_key",)


def accepts(name: str, kind: str, allow_none: bool) -> str:
    """The accepted values of setting ``name`` in words."""
    if name in ACCEPTS:
        return ACCEPTS[name]
    if name in RANGES:
        text = RANGES[name].describe()
    else:
        text = {"bool": "True or False", "int": "an integer", "float": "a number",
                "list": "a string or a list of strings"}.get(kind, "a string")
    return f"{text}, or None for the model's default" if allow_none else text


class _Explained:
    """Mixin for a traitlets type: a wrong value is refused with what is accepted."""

    kind = "str"
    if TYPE_CHECKING:  # provided by the traitlets type this is mixed into
        name: str | None
        allow_none: bool

    def error(self, obj: Any, value: Any, error: Any = None, info: Any = None) -> Any:
        name = self.name or "setting"
        shown = f"<a {type(value).__name__}>" if name in SECRET else shown_value(value)
        raise traitlets.TraitError(
            f"{name} = {shown} is not accepted: use {accepts(name, self.kind, self.allow_none)}."
        )


class _Number(_Explained):
    """traitlets takes True as 1: a number setting refuses booleans."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool):
            self.error(obj, value)
        try:
            return super().validate(obj, value)  # type: ignore[misc]
        except OverflowError:  # Float(10**400): too large for a float
            self.error(obj, value)


class Float(_Number, traitlets.Float):
    kind = "float"


class Int(_Number, traitlets.Int):
    kind = "int"

    def validate(self, obj: Any, value: Any) -> Any:
        # 1024.0 is taken as 1024, as flags take it: traitlets 5.10+ does so itself, 5.7 (Colab's) not.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super().validate(obj, value)


class Bool(_Explained, traitlets.Bool):
    kind = "bool"


class Unicode(_Explained, traitlets.Unicode):
    kind = "str"


class List(_Explained, traitlets.List):
    """A list of strings (stop sequences); a single string counts as one."""

    kind = "list"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(traitlets.Unicode(), **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return super().validate(obj, value)
