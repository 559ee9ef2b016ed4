"""The settings as traits, generated from the parameter table: one set of values for everything.

``Settings`` is plain traitlets (no IPython): a script's ``Session(temperature=0.2)`` and the
notebook's ``%config AIMLMagics.temperature = 0.2`` go through the same traits and the same
checks, because ``AIMLMagics`` *is* a ``Settings`` (the notebook session reads its traits). A bad
value is refused where it is set, with what is accepted, so it can never stick and fail every
later request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traitlets import TraitError, default, validate
from traitlets.config import Configurable

from . import traits
from .params import BY_NAME, PARAMS, RANGES, Param, shown_value
from .secrets import Secret

TRAIT_TYPES = {
    "str": traits.Unicode,
    "int": traits.Int,
    "float": traits.Float,
    "bool": traits.Bool,
    "list": traits.List,
}


def make_trait(param: Param) -> Any:
    """The trait for one table entry (``config=True``: settable from ``%config`` and files)."""
    kind = TRAIT_TYPES[param.kind]
    help_text = param.help[:1].upper() + param.help[1:] + "."
    return kind(default_value=param.default, allow_none=param.none, help=help_text).tag(config=True)


def _refuse(check: Any, *args: Any) -> Any:
    """Run a core check; its one-paragraph refusal becomes the TraitError traitlets expects."""
    from .errors import AIMLError

    try:
        return check(*args)
    except AIMLError as exc:
        raise TraitError(str(exc)) from None


def _bounded(name: str, value: Any, low: float, high: float, accepts: str) -> Any:
    if value is not None and not low <= value <= high:  # also refuses nan
        raise TraitError(f"{name} = {shown_value(value)} is out of range: use {accepts}.")
    return value


class Settings(Configurable):
    """Every setting of a session, with the request parameters' defaults (None: not sent)."""

    locals().update({p.name: make_trait(p) for p in PARAMS})

    if TYPE_CHECKING:  # what the generated traits hold, for type checkers
        model: str
        max_completion_tokens: int | None
        max_tokens: float | None
        temperature: float | None
        top_p: float | None
        stop: list[str] | None
        frequency_penalty: float | None
        presence_penalty: float | None
        seed: int | None
        system: str | None
        stream: bool
        memory: bool
        max_history: int | None
        timeout: float
        max_retries: int
        max_wait: float
        base_url: str | None
        api_key: str | None
        allow_insecure_http: bool
        allow_remote_images: bool
        max_answer_bytes: int
        expand_variables: bool
        expand_max_rows: int
        expand_max_columns: int
        expand_max_chars: int
        parallel_tool_calls: bool
        max_tool_rounds: int
        confirm_tools: bool
        max_image_edge: int
        max_image_bytes: int
        keep_images_in_history: bool
        store: str | None
        cache: bool
        store_images: bool

    @default("model")
    def _default_model(self) -> str:
        from .params import default_model

        return default_model()  # AIML_MODEL, read when the model is first needed

    @validate(*RANGES)
    def _check_range(self, proposal: Any) -> Any:
        from .params import check_number

        return _refuse(check_number, proposal["trait"].name, proposal["value"])

    @validate("stop")
    def _check_stop(self, proposal: Any) -> Any:
        from .params import check_stop

        return _refuse(check_stop, proposal["value"])

    @validate("model")
    def _check_model(self, proposal: Any) -> Any:
        from .params import check_model

        return _refuse(check_model, proposal["value"])

    @validate("max_history")
    def _check_history(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 0:
            raise TraitError(
                f"max_history = {shown_value(value)} must be >= 0 (or None for no limit)."
            )
        return value

    @validate("timeout")
    def _check_timeout(self, proposal: Any) -> Any:
        # Refuses 0, nan and inf too: a socket cannot wait that.
        value = proposal["value"]
        if not 0 < value <= 3600:
            raise TraitError(
                f"timeout = {shown_value(value)} is out of range: use a number of seconds above 0, "
                "at most 3600."
            )
        return value

    @validate("max_wait")
    def _check_max_wait(self, proposal: Any) -> Any:
        value = proposal["value"]
        if not 0 < value <= 3600:
            raise TraitError(
                f"max_wait = {shown_value(value)} is out of range: use a number of seconds above 0, "
                "at most 3600."
            )
        return value

    @validate("max_retries")
    def _check_retries(self, proposal: Any) -> Any:
        return _bounded("max_retries", proposal["value"], 0, 10, "an integer from 0 to 10")

    @validate("max_answer_bytes")
    def _check_answer_bytes(self, proposal: Any) -> Any:
        return _bounded("max_answer_bytes", proposal["value"], 1024, 1 << 30,
                        f"an integer from 1024 to {1 << 30:,} (1 GiB)")

    @validate("expand_max_rows", "expand_max_columns", "expand_max_chars")
    def _check_expand(self, proposal: Any) -> Any:
        return _bounded(proposal["trait"].name, proposal["value"], 1, 1_000_000,
                        "an integer from 1 to 1,000,000")

    @validate("max_tool_rounds")
    def _check_tool_rounds(self, proposal: Any) -> Any:
        return _bounded("max_tool_rounds", proposal["value"], 1, 100, "an integer from 1 to 100")

    @validate("max_image_edge")
    def _check_image_edge(self, proposal: Any) -> Any:
        return _bounded("max_image_edge", proposal["value"], 16, 16384, "an integer from 16 to 16384")

    @validate("max_image_bytes")
    def _check_image_bytes(self, proposal: Any) -> Any:
        return _bounded("max_image_bytes", proposal["value"], 10_000, 100_000_000,
                        "an integer from 10,000 to 100,000,000")

    @validate("base_url")
    def _check_base(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value:
            from .http.urls import normalize_base_url

            _refuse(normalize_base_url, value)
        return value

    @validate("api_key")
    def _wrap_key(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is None or value == "":
            return None
        from .errors import check_key_text, register_secret

        key = str.__str__(value).strip()
        register_secret(key)
        register_secret(str.__str__(value))
        _refuse(check_key_text, key)
        return Secret(key)

    def values(self, names: Any = None) -> dict[str, Any]:
        """Current values by name (the key stays a masked ``Secret``)."""
        return {n: getattr(self, n) for n in (names or BY_NAME)}
