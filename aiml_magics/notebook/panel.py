"""The control panel (``%aiml panel``): ipywidgets bound to the ``AIMLMagics`` traits.

Why bound, not copied: the traits stay the one source of truth, so ``%config`` moves the widgets,
two panels stay in step, and the next ``%%aiml`` cell sends exactly what the panel shows. Plain
ipywidgets (8, or 7.7 as Google Colab ships it), no custom JavaScript, so it renders wherever
widgets do (JupyterLab, Notebook 7, VS Code, Binder, Colab). ipywidgets is imported here only,
and this module only when a panel is shown.

The parts (the optional-number control, notes, the models list) are in ``panelparts.py``.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as W
from traitlets import TraitError

from ..display.render import is_terminal
from ..errors import AIMLError
from ..models import FALLBACK_MODELS, describe_model, resolve_model
from ..params import PARAMS, check_model, range_for
from .panelparts import (
    ALARM,
    INDENT,
    LABEL_STYLE,
    MAX_PANELS,
    MUTED,
    UNSET_STYLE,
    WIDE,
    ModelList,
    _descendants,
    _hide_when_empty,
    _note,
    _number_control,
    _Optional,
    _tip,
)


class AIMLPanel(ModelList, W.VBox):
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

        title = W.HTML(UNSET_STYLE + "<b>AI/ML API</b> &middot; settings for the next "
                       "<code>%%aiml</code> cells")
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
            f"{self.magics.session_tokens:,} tokens, {shown} credits · store: "
            f"{html.escape(self.magics.session.connection.where()[0])}")

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
