"""The control panel (``%aiml panel``): ipywidgets bound to the ``AIMLMagics`` traits.

Why bound, not copied: the traits stay the one source of truth, so ``%config`` moves the widgets,
two panels stay in step, and the next ``%%aiml`` cell sends exactly what the panel shows. Plain
ipywidgets (8, or 7.7 as Google Colab ships it), no custom JavaScript, so it renders wherever
widgets do (JupyterLab, Notebook 7, VS Code, Binder, Colab). ipywidgets is imported here only,
and this module only when a panel is shown.

(The module is not called ``panel.py``: importing a submodule ``aiml_magics.panel`` would replace
the ``aiml_magics.panel()`` function on the package with the module.)
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W
from traitlets import TraitError

from ..display.render import is_terminal
from ..errors import AIMLError, redact
from ..models import FALLBACK_MODELS, alias_map, describe_model, model_ids, resolve_model
from ..params import PARAMS, Param, check_model, range_for, range_words

LABEL_STYLE = {"description_width": "13em"}  # room for "max_completion_tokens"
INDENT = "0 0 0 13.5em"  # lines up with the controls, past the labels
WIDE = "36em"  # the widest a control grows; narrower windows shrink it
MUTED = "#6b7280"  # a normal state (offline, replay): grey, not a warning
WARN = "#92400e"  # something did not work, but cells still do
ALARM = "#b91c1c"  # cells will fail until this is fixed
TOKENS_MAX = 2**31 - 1  # the trait has no upper bound; a widget needs one
MAX_PANELS = 4  # live panels per session; showing another closes the oldest
# One models fetch at a time: a second panel shown meanwhile waits and then reads the client's cache.
_LIST_LOCK = threading.Lock()


class _Optional:
    """An optional numeric trait: a value control, a "model default" checkbox, a state tag.

    Moving the control (or typing a number) sets the value; ticking "model default" puts it back
    to unset (None: nothing is sent and the model's own default applies). Unset shows at a
    glance: the box is ticked, a slider hides its number and greys its handle, and the tag says
    "not sent". ``high`` narrows the control's maximum (temperature is 0..1 for some models)
    without ever clamping a value set elsewhere.
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
        self.row = W.HBox(
            [control, W.HBox([self.unset, self.state], layout=W.Layout(margin="0 0 0 auto"))],
            layout=W.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        )
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

    def _trait_changed(self, change: dict[str, Any]) -> None:
        self._show(change["new"])

    def _control_changed(self, change: dict[str, Any]) -> None:
        if not self._busy:  # moving the control is enough: it sets the value
            setattr(self.magics, self.name, change["new"])

    def _unset_changed(self, change: dict[str, Any]) -> None:
        if not self._busy:
            setattr(self.magics, self.name, None if change["new"] else self.control.value)

    def unlink(self) -> None:
        self.magics.unobserve(self._trait_changed, self.name)


class AIMLPanel(W.VBox):
    """Model, max_completion_tokens, temperature, top_p, system prompt, stream, memory, status.

    Build it with :func:`build_panel`; every control reads and writes the magics' traits.
    """

    def __init__(self, magics: Any, **kwargs: Any) -> None:
        self.magics = magics
        self._busy = False
        self._aliases: dict[str, str] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._listed = False  # True once the service's own list is shown
        self._loader: threading.Thread | None = None

        # -- model -------------------------------------------------------------------------------
        self.model_picker = W.Combobox(
            value=magics.model,
            options=FALLBACK_MODELS,
            ensure_option=False,  # new models appear all the time: any id may be typed
            continuous_update=False,  # change the setting on Enter or leaving the box
            placeholder="type or pick a model id",
            description="model",
            **_tip(W.Combobox, "Type to search; aliases are accepted; any id may be typed."),
            style=LABEL_STYLE,
            layout=W.Layout(flex="1 1 auto", width="auto", min_width="0", max_width=WIDE),
        )
        self.refresh_button = W.Button(
            description="",
            icon="refresh",
            tooltip="Reload the models list from the service",
            layout=W.Layout(width="2.5em", min_width="2.5em", padding="0", margin="0 0 0 0.4em"),
        )
        # Empty lines take no room (display none), so there is no gap under the model box.
        self.model_info = W.Label(layout=W.Layout(display="none", margin="0"))
        self.models_note = W.HTML(layout=W.Layout(display="none", margin="0"))
        self.model_info.observe(_hide_when_empty, "value")
        self.models_note.observe(_hide_when_empty, "value")

        # -- numbers: every ranged parameter the table puts on the panel ---------------------------
        self._optionals: dict[str, _Optional] = {}
        for param in PARAMS:
            if not (param.panel and param.range is not None):
                continue
            control = _number_control(param)
            high = self._temperature_high if param.name == "temperature" else None
            self._optionals[param.name] = _Optional(magics, param.name, control, high=high)
            setattr(self, param.name, control)  # e.g. panel.temperature, panel.top_p_unset
            setattr(self, f"{param.name}_unset", self._optionals[param.name].unset)

        # -- prompt and switches -----------------------------------------------------------------
        self.system = W.Textarea(
            value=magics.system or "",
            placeholder="System prompt sent before every question (optional)",
            continuous_update=False,
            description="system prompt",
            style=LABEL_STYLE,
            layout=W.Layout(width="auto", min_width="0", max_width=WIDE, height="4.5em"),
        )
        self.stream = W.Checkbox(description="stream", indent=False, layout=W.Layout(width="7em"))
        self.memory = W.Checkbox(
            description="memory",
            indent=False,
            **_tip(W.Checkbox, "Later cells continue the conversation"),
            layout=W.Layout(width="7em"),
        )
        self._links = [W.link((magics, "stream"), (self.stream, "value")),
                       W.link((magics, "memory"), (self.memory, "value"))]
        self.new_button = W.Button(
            description="New conversation",
            icon="eraser",
            tooltip="Forget the conversation so far (the settings stay)",
            layout=W.Layout(width="auto"),
        )
        self.status = W.HTML()  # wraps in a narrow window instead of being cut off
        self.key_note = W.HTML(layout=W.Layout(display="none", margin="0 0 0 0.3em"))
        self.key_note.observe(_hide_when_empty, "value")

        self.model_picker.observe(self._picker_changed, "value")
        magics.observe(self._model_changed, "model")
        self.system.observe(self._system_box_changed, "value")
        magics.observe(self._system_changed, "system")
        magics.observe(self._key_changed, "api_key")
        self.refresh_button.on_click(lambda _: self.load_models(refresh=True))
        self.new_button.on_click(self._new_conversation)
        magics.on_answer.append(self._answered)
        magics.on_mode.append(self.mode_changed)
        self._detached = False

        title = W.HTML("<b>AI/ML API</b> &middot; settings for the next <code>%%aiml</code> cells")
        numbers = W.VBox([opt.row for opt in self._optionals.values()], layout=W.Layout(width="100%"))
        kwargs.setdefault("layout", W.Layout(width="100%", max_width="51em", overflow="hidden"))
        super().__init__(
            [
                title,
                W.HBox([self.model_picker, self.refresh_button], layout=W.Layout(width="100%")),
                # Notes start at the left edge: one line fits even in a narrow window.
                W.VBox([self.model_info, self.models_note], layout=W.Layout(margin="0 0 0 0.3em")),
                numbers,
                self.system,
                W.HBox(
                    [self.stream, self.memory, self.new_button],
                    layout=W.Layout(margin=INDENT, flex_flow="row wrap"),
                ),
                W.Box([self.status], layout=W.Layout(margin=INDENT)),
                self.key_note,
            ],
            **kwargs,
        )
        self._show_model_info()
        self._update_key_note()
        self._update_status()
        self.load_models()

    # -- model list ------------------------------------------------------------------------------

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

    # -- model ----------------------------------------------------------------------------------

    def _picker_changed(self, change: dict[str, Any]) -> None:
        if self._busy:
            return
        try:
            model = check_model(resolve_model(change["new"] or "", self._aliases))
            self.magics.model = model
        except (AIMLError, TraitError) as exc:
            self._set_picker(self.magics.model)  # keep showing what will be sent
            self.model_info.value = f"not changed: {exc}"
            return
        self._set_picker(model)  # an alias shows as the id it selected
        self._show_model_info()

    def _model_changed(self, change: dict[str, Any]) -> None:
        self._set_picker(change["new"])
        self._optionals["temperature"].refit(self.magics.temperature)
        self._show_model_info()

    def _set_picker(self, model: str) -> None:
        self._busy = True
        try:
            self.model_picker.value = model
        finally:
            self._busy = False

    def _temperature_high(self) -> float | None:
        return range_for("temperature", self.magics.model).high

    def _show_model_info(self) -> None:
        model = self.magics.model
        if model in self._by_id:
            self.model_info.value = describe_model(self._by_id[model])
        elif self._listed:
            self.model_info.value = "not in the service's list: sent as typed"
        else:
            self.model_info.value = ""

    # -- system prompt, key, status ---------------------------------------------------------------

    def _system_box_changed(self, change: dict[str, Any]) -> None:
        if not self._busy:
            text = change["new"]
            self.magics.system = text if text.strip() else None

    def _system_changed(self, change: dict[str, Any]) -> None:
        self._busy = True
        try:
            self.system.value = change["new"] or ""
        finally:
            self._busy = False

    def _key_changed(self, change: dict[str, Any]) -> None:
        self._update_key_note()

    def _update_key_note(self) -> None:
        how = (
            "run <code>%aiml key</code> (masked prompt, kept in memory only), or set the "
            "<code>AIML_API_KEY</code> environment variable before starting Jupyter"
        )
        if self.magics.effective_key()[0] is None and self.magics.session.source.name == "replay":
            self.key_note.value = _note(
                "No key: answers are offline. Go live: %aiml key, then %aiml live.",
                MUTED,
                escape=False,
            )
        elif self.magics.effective_key()[0] is None:
            self.key_note.value = _note(f"No API key is set: {how}.", ALARM, escape=False)
        else:
            self.key_note.value = ""

    def mode_changed(self) -> None:
        """``%aiml replay`` / ``live`` / ``record``: the models list and the key note follow."""
        self.load_models()
        self._update_key_note()

    def _new_conversation(self, _: Any = None) -> None:
        self.magics.session.reset()  # tells every panel's status line, not just this one

    def _answered(self, resp: Any) -> None:
        self._update_status()
        self._update_key_note()

    def _update_status(self) -> None:
        turns = len(self.magics.conversation)
        credits = self.magics.session_credits
        shown = f"{credits:,.0f}" if float(credits).is_integer() else f"{credits:,.2f}"
        self.status.value = (
            f"conversation: {turns} turn{'' if turns == 1 else 's'} · session: "
            f"{self.magics.session_tokens:,} tokens, {shown} credits"
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach from the settings and close every widget of the panel (again: no-op)."""
        if getattr(self, "_detached", True):
            super().close()
            return
        self._detached = True
        magics = self.magics
        for opt in self._optionals.values():
            opt.unlink()
        for link in self._links:
            link.unlink()
        for callback, name in (
            (self._model_changed, "model"),
            (self._system_changed, "system"),
            (self._key_changed, "api_key"),
        ):
            magics.unobserve(callback, name)
        if self._answered in magics.on_answer:
            magics.on_answer.remove(self._answered)
        if self.mode_changed in magics.on_mode:
            magics.on_mode.remove(self.mode_changed)
        for widget in _descendants(self):
            widget.close()
        super().close()


def build_panel(magics: Any) -> AIMLPanel:
    """A new panel bound to ``magics`` (an ``AIMLMagics``); display it to show it."""
    return AIMLPanel(magics)


def show_panel(magics: Any) -> AIMLPanel | None:
    """Display a panel in the notebook; a terminal has no widgets, so say what to use there."""
    if is_terminal(magics.shell):
        print(
            "The panel needs a notebook front end (JupyterLab, Notebook, VS Code). In a terminal, "
            "use %config AIMLMagics.<setting> = ... (see %aiml config)."
        )
        return None
    from IPython.display import display

    panel = build_panel(magics)
    # Re-running a panel cell leaves the old panel's widgets alive and listening; keep the few
    # most recent ones (several may be on screen, in step) and close the rest.
    shown = magics.__dict__.setdefault("_panels", [])
    shown[:] = [p for p in shown if not p._detached]
    shown.append(panel)
    while len(shown) > MAX_PANELS:
        shown.pop(0).close()
    display(panel)
    return panel


SLIDER_STEPS = {"temperature": 0.05}  # else a hundredth of the range


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
