"""The control panel's parts: the number control with a "model default" box, grey and amber
notes, and the models list fetched in the background (``panel.py`` assembles them)."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import AIMLError, redact
from ..models import FALLBACK_MODELS, alias_map, model_ids
from ..params import RANGES, Param, range_words

LABEL_STYLE = {"description_width": "13em"}  # room for "max_completion_tokens"
INDENT = "0 0 0 13.5em"  # lines up with the controls, past the labels
WIDE = "36em"  # the widest a control grows; narrower windows shrink it
MUTED = "#6b7280"  # a normal state (offline, replay): grey, not a warning
WARN = "#92400e"  # something did not work, but cells still do
ALARM = "#b91c1c"  # cells will fail until this is fixed
UNSET_CLASS = "aiml-unset"  # a number box whose value is not sent (dimmed by UNSET_STYLE)
UNSET_STYLE = f"<style>.{UNSET_CLASS} input {{ opacity: 0.45; }}</style>"
TOKENS_MAX = 2**31 - 1  # the trait has no upper bound; a widget needs one
MAX_PANELS = 4  # live panels per session; showing another closes the oldest
# One models fetch at a time: a second panel shown meanwhile waits and then reads the client's cache.
_LIST_LOCK = threading.Lock()


class _Optional:
    """An optional numeric trait: a value control, a "model default" checkbox, a state tag.

    Moving the control (or typing a number) sets the value; ticking "model default" puts it back
    to unset (None: nothing is sent and the model's own default applies). Unset shows at a
    glance: the box is ticked, a slider hides its number and greys its handle, and the tag says
    "not sent" (a number box's number is dimmed). ``high`` narrows the control's maximum
    (temperature is 0..1 for some models) without ever clamping a value set elsewhere, and a note
    under the row says why the control stops there. A slider's value is rounded to its step, so
    0.505 goes out, not 0.5050000000000001.
    """

    def __init__(
        self,
        magics: Any,
        name: str,
        control: W.ValueWidget,
        high: Callable[[], float | None] | None = None,
    ) -> None:
        self.magics, self.name, self.control, self.high = magics, name, control, high
        # Every row is laid out alike, so the "model default" boxes line up at the right; in a
        # narrow window they move below their control instead of squeezing it or being cut off.
        control.layout.flex = "1 1 24em"
        control.layout.width = "auto"
        control.layout.min_width = "0"
        control.layout.max_width = WIDE
        self.unset = W.Checkbox(
            description="model default",
            indent=False,
            **_tip(W.Checkbox, f"Ticked: {name} is not sent and the model's own default applies."),
            layout=W.Layout(width="auto"),
        )
        self.state = W.HTML(layout=W.Layout(width="4.5em"))
        self.note = W.HTML(layout=W.Layout(display="none", margin=INDENT))
        self.note.observe(_hide_when_empty, "value")
        self.row = W.VBox([W.HBox(
            [control, W.HBox([self.unset, self.state], layout=W.Layout(margin="0 0 0 auto"))],
            layout=W.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        ), self.note], layout=W.Layout(width="100%"))
        self._busy = False
        self._show(getattr(magics, name))
        control.observe(self._control_changed, "value")
        self.unset.observe(self._unset_changed, "value")
        magics.observe(self._trait_changed, name)

    def _show(self, value: Any) -> None:
        self._busy = True
        try:
            self.refit(value)
            unset = value is None
            self.unset.value = unset
            if not unset:
                self.control.value = value
            if isinstance(self.control, W.FloatSlider):
                self.control.readout = not unset
                self.control.style.handle_color = "#9ca3af" if unset else None
            elif unset:  # the number in the box is not what is sent: dimmed, like the slider
                self.control.add_class(UNSET_CLASS)
            else:
                self.control.remove_class(UNSET_CLASS)
            self.state.value = _note("not sent", MUTED) if unset else ""
        finally:
            self._busy = False

    def refit(self, value: Any = None) -> None:
        """Set the control's maximum for the current model; a value above it stays visible."""
        if self.high is None:
            return
        high = self.high()
        if high is not None:
            busy, self._busy = self._busy, True
            try:
                self.control.max = max(high, value or 0)
            finally:
                self._busy = busy
            usual = RANGES[self.name].high
            self.note.value = "" if usual is None or high >= usual else _note(
                f"{self.magics.model} takes {self.name} {self.control.min:g} to {high:g} "
                f"(Claude and MiniMax models; most take up to {usual:g}): a larger value, "
                f"typed or set, stops at {high:g}.", MUTED)

    def _trait_changed(self, change: dict[str, Any]) -> None:
        self._show(change["new"])

    def _control_changed(self, change: dict[str, Any]) -> None:
        if not self._busy:  # moving the control is enough: it sets the value
            setattr(self.magics, self.name, self._rounded(change["new"]))

    def _rounded(self, value: Any) -> Any:
        """A slider's value on its step's grid: 0.01 + 50 * 0.0099 would go out with 16 digits."""
        step = getattr(self.control, "step", None)
        if not isinstance(self.control, W.FloatSlider) or not step or value is None:
            return value
        places = len(f"{step:.10f}".rstrip("0").split(".")[1])
        return round(value, places)

    def _unset_changed(self, change: dict[str, Any]) -> None:
        if not self._busy:
            setattr(self.magics, self.name, None if change["new"] else self.control.value)

    def unlink(self) -> None:
        self.magics.unobserve(self._trait_changed, self.name)


class ModelList:
    """The panel's models list: fetched once a session in the background, the built-in list when
    replaying or when the service cannot be reached. Mixed into ``AIMLPanel``."""

    magics: Any
    model_picker: Any
    models_note: Any
    refresh_button: Any
    _aliases: dict[str, str]
    _by_id: dict[str, dict[str, Any]]
    _listed: bool
    _loader: threading.Thread | None

    def _show_model_info(self) -> None:
        raise NotImplementedError

    def load_models(self, refresh: bool = False) -> threading.Thread | None:
        """Fetch the chat models in the background (a slow network must not freeze the kernel).

        The client caches the list, so only the first panel of a session (or a refresh) asks.
        Replay mode sends nothing at all: the built-in list is offered, and says so.
        """
        if self.magics.answer_mode == "replay":
            self._loader = None
            if not self._listed:
                self.model_picker.options = FALLBACK_MODELS
                self.models_note.value = _note(
                    "Replay: built-in model list, nothing is sent.", MUTED
                )
            self._show_model_info()
            return None
        client = self.magics.client()  # built here, in the kernel's thread
        self.refresh_button.disabled = True
        if not self._listed:
            self.models_note.value = _note("Loading the models list…", MUTED)
        thread = threading.Thread(
            target=self._fetch, args=(client, refresh), name="aiml-models", daemon=True
        )
        self._loader = thread
        thread.start()
        return thread

    def wait_models(self, timeout: float | None = None) -> bool:
        """Block until the current models fetch is done (for scripts and tests)."""
        if self._loader is not None:
            self._loader.join(timeout)
            return not self._loader.is_alive()
        return True

    def _fetch(self, client: Any, refresh: bool) -> None:
        try:
            with _LIST_LOCK:
                models = client.list_models(refresh=refresh)
            ids = model_ids(models)
            problem = None if ids else "the service listed no chat models"
        except AIMLError as exc:
            models, ids, problem = [], [], str(exc)
        except Exception as exc:  # an odd payload must not leave the panel half-built
            models, ids, problem = [], [], redact(f"{type(exc).__name__}: {exc}")
        try:
            if problem is None:
                self._aliases = alias_map(models)
                self._by_id = {m["id"]: m for m in models if m.get("id") in ids}
                self._listed = True
                self.model_picker.options = tuple(ids)
                self.models_note.value = ""
            elif not self._listed:
                self.model_picker.options = FALLBACK_MODELS
                self.models_note.value = _note(
                    f"Could not load the models list ({_short(problem)}): built-in list "
                    "offered; ↻ tries again.",
                    WARN,
                    title=problem,
                )
            else:  # a failed refresh keeps the list that worked
                self.models_note.value = _note(
                    f"Refresh failed ({_short(problem)}); the list is from earlier.", WARN,
                    title=problem,
                )
            self._show_model_info()
        finally:
            self.refresh_button.disabled = False


SLIDER_STEPS = {"temperature": 0.05, "top_p": 0.01}  # else a hundredth of the range


def _number_control(param: Param) -> W.ValueWidget:
    """The control for a ranged parameter: a slider over the range the service accepts, or a
    number box when the range has no upper end (a token count)."""
    rng = param.range
    assert rng is not None
    tooltip = f"{param.help[:1].upper()}{param.help[1:]}: {range_words(param.name)}."
    if rng.high is None:
        box = W.BoundedIntText if rng.integer else W.BoundedFloatText
        return box(
            value=1024 if rng.integer else rng.low, min=rng.low, max=TOKENS_MAX,
            description=param.name, style=LABEL_STYLE, **_tip(box, tooltip),
        )
    low = rng.low if rng.low is not None else 0.0
    step = SLIDER_STEPS.get(param.name, round((rng.high - low) / 100, 4) or 0.01)
    return W.FloatSlider(
        value=min(1.0, rng.high),
        min=low,
        max=rng.high,
        step=step,
        readout_format=".2f",
        continuous_update=False,
        description=param.name,
        style=LABEL_STYLE,
        **_tip(W.FloatSlider, tooltip),
        layout=W.Layout(width=WIDE),
    )


def _tip(cls: type[W.Widget], text: str) -> dict[str, str]:
    """A control's hover text. ipywidgets 8 calls it ``tooltip``; 7 (Google Colab's) calls it
    ``description_tooltip`` on every control but Button, and drops a keyword it does not know."""
    return {"tooltip" if "tooltip" in cls.class_trait_names() else "description_tooltip": text}


def _note(text: str, color: str, escape: bool = True, title: str = "") -> str:
    body = html.escape(text) if escape else text
    hover = f' title="{html.escape(title)}"' if title else ""
    return f'<span style="color:{color}; font-size:0.9em"{hover}>{body}</span>'


def _short(problem: str, limit: int = 60) -> str:
    """The gist of an error for a one-line note (the whole message is in the note's tooltip)."""
    parts = problem.rstrip(".").split(": ")
    text = parts[-1] if parts[0].startswith("Could not") else parts[0]
    text = text.split(" answered ", 1)[-1]  # "The service at HOST answered 500 ...": the status
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hide_when_empty(change: dict[str, Any]) -> None:
    """An empty label or note takes no room."""
    change["owner"].layout.display = "" if change["new"] else "none"


def _descendants(box: W.Box) -> list[W.Widget]:
    out: list[W.Widget] = []
    for child in box.children:
        if isinstance(child, W.Box):
            out.extend(_descendants(child))
        out.append(child)
    return out
