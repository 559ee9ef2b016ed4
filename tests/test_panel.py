"""The control panel in a real IPython shell: widgets move the traits, the loopback server sees it.

Widget values are set with ``set_state`` (what the comm handler does when a browser changes a
control) and buttons with ``click()``, so the same validation and observers run as in a notebook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

try:  # ipywidgets 8
    from ipywidgets.widgets.widget import _instances as widget_instances
except ImportError:  # ipywidgets 7 (Google Colab): the same registry, as a class attribute
    from ipywidgets import Widget

    widget_instances = Widget.widgets

import aiml_magics
from aiml_magics.errors import ParameterError
from aiml_magics.models import FALLBACK_MODELS
from aiml_magics.notebook.panel import AIMLPanel, build_panel
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import FakeAIMLAPI, Reply
from tests.kernels import run_cells

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def make_panel(magics):
    """Build panels bound to the shell's settings; each waits for its models list, all are closed."""
    built: list[AIMLPanel] = []

    def make() -> AIMLPanel:
        panel = build_panel(magics)
        built.append(panel)
        assert panel.wait_models(30)
        return panel

    yield make
    for panel in built:
        panel.close()


@pytest.fixture
def panel(make_panel):
    return make_panel()


def shown_panels(run) -> list[AIMLPanel]:
    """The panels a cell displayed, looked up from the widget views it published."""
    ids = [o.data[WIDGET_MIME]["model_id"] for o in run.outputs if WIDGET_MIME in o.data]
    return [widget_instances[i] for i in ids]


def models_requests(api) -> int:
    return sum(1 for r in api.requests if r.method == "GET" and r.path.endswith("/models"))


def widget_states(panel: AIMLPanel) -> str:
    """Every synced value of the panel and of everything inside it, as the front end would get it."""
    states = []
    stack = [panel]
    while stack:
        widget = stack.pop()
        states.append(widget.get_state())
        stack.extend(getattr(widget, "children", ()))
        stack.extend(w for w in (getattr(widget, "layout", None), getattr(widget, "style", None)) if w)
    return json.dumps(states, default=str)


# -- showing it ----------------------------------------------------------------------------------


def test_line_magic_and_function_show_a_linked_panel(shell, api, magics):
    run = run_cell(shell, "%aiml panel")
    assert run.error is None, run.stdout + run.stderr
    (first,) = shown_panels(run)
    assert isinstance(first, AIMLPanel) and first.magics is magics
    run = run_cell(shell, "import aiml_magics\naiml_magics.panel()")
    assert run.error is None
    (second,) = shown_panels(run)
    assert second is not first and second.magics is magics
    # Showing a panel imports the controls module; the package function must survive that.
    assert callable(aiml_magics.panel)
    assert first.wait_models(30) and second.wait_models(30)
    assert models_requests(api) == 1  # the list is fetched once per session
    assert "gpt-4o-mini" in first.model_picker.options
    first.close()
    second.close()


def test_help_lists_the_panel(shell):
    assert "%aiml panel" in run_cell(shell, "%aiml help").stdout


# -- widgets -> request ----------------------------------------------------------------------------


def test_hover_texts_reach_the_front_end(panel):
    """ipywidgets 8 calls the hover text ``tooltip``, 7 (Google Colab's) ``description_tooltip``
    except on buttons; a keyword the installed one does not know would be dropped silently."""
    states = widget_states(panel)
    for text in ("Type to search; aliases are accepted", "Later cells continue the conversation",
                 "Sampling temperature: 0 to 2", "temperature is not sent and the model's own default",
                 "Reload the models list from the service"):
        assert text in states, text


def test_widgets_set_what_the_next_cell_sends(shell, api, panel):
    panel.model_picker.set_state({"value": "gpt-4o"})
    panel.max_completion_tokens_unset.set_state({"value": False})
    panel.max_completion_tokens.set_state({"value": 300})
    panel.temperature_unset.set_state({"value": False})
    panel.temperature.set_state({"value": 0.0})  # 0 is a value, not "unset"
    panel.top_p_unset.set_state({"value": False})
    panel.top_p.set_state({"value": 0.5})
    panel.system.set_state({"value": "Answer in one word."})
    panel.stream.set_state({"value": False})
    run = run_cell(shell, "%%aiml\nName a colour.")
    assert run.error is None, run.stdout
    sent = api.last_json
    assert sent["model"] == "gpt-4o"
    assert sent["max_completion_tokens"] == 300
    assert sent["temperature"] == 0 and sent["top_p"] == 0.5
    assert sent["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert "stream" not in sent


def test_unset_states_are_not_sent(shell, api, panel, magics):
    for name in ("max_completion_tokens", "temperature", "top_p"):
        getattr(panel, f"{name}_unset").set_state({"value": False})
    assert magics.max_completion_tokens == 1024 and magics.temperature == 1.0
    for name in ("max_completion_tokens", "temperature", "top_p"):
        getattr(panel, f"{name}_unset").set_state({"value": True})
        assert getattr(magics, name) is None
        assert not getattr(panel, name).disabled  # moving it again is enough to set it
        assert "not sent" in panel._optionals[name].state.value
    assert panel.temperature.readout is False and panel.top_p.readout is False  # no "1.00" shown
    panel.system.set_state({"value": "  \n"})
    assert magics.system is None
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None
    sent = api.last_json
    for name in ("max_completion_tokens", "temperature", "top_p"):
        assert name not in sent
    assert [m["role"] for m in sent["messages"]] == ["user"]
    # Moving the control sets the value and unticks "model default"; the tag goes.
    panel.temperature.set_state({"value": 0.7})
    assert magics.temperature == 0.7 and panel.temperature_unset.value is False
    assert panel.temperature.readout is True and panel._optionals["temperature"].state.value == ""
    panel.max_completion_tokens.set_state({"value": 64})  # typing a number is the same
    assert magics.max_completion_tokens == 64 and not panel.max_completion_tokens_unset.value
    # "model default" puts it back to unset; unticking brings back the value the control kept.
    panel.temperature_unset.set_state({"value": True})
    assert magics.temperature is None and panel.temperature.readout is False
    panel.temperature_unset.set_state({"value": False})
    assert magics.temperature == 0.7


def test_memory_toggle_and_new_conversation(shell, api, panel, magics):
    run_cell(shell, "%%aiml\nfirst")
    run_cell(shell, "%%aiml\nsecond")
    assert len(api.last_json["messages"]) == 3
    assert "2 turns" in panel.status.value
    panel.new_button.click()
    assert len(magics.conversation) == 0 and "0 turns" in panel.status.value
    run_cell(shell, "%%aiml\nthird")
    assert [m["content"] for m in api.last_json["messages"]] == ["third"]
    panel.memory.set_state({"value": False})
    assert magics.memory is False
    run_cell(shell, "%%aiml\nfourth")
    assert [m["content"] for m in api.last_json["messages"]] == ["fourth"]


def test_per_cell_flags_override_without_moving_the_panel(shell, api, panel, magics):
    panel.temperature_unset.set_state({"value": False})
    panel.temperature.set_state({"value": 0.3})
    run = run_cell(shell, "%%aiml -t 1.5 -m gpt-4o -n 50\nflagged")
    assert run.error is None
    sent = api.last_json
    assert sent["temperature"] == 1.5 and sent["model"] == "gpt-4o" and sent["max_completion_tokens"] == 50
    assert panel.temperature.value == 0.3 and magics.temperature == 0.3
    assert panel.model_picker.value == magics.model != "gpt-4o"
    assert panel.max_completion_tokens_unset.value is True
    run_cell(shell, "%%aiml\nplain")
    assert api.last_json["temperature"] == 0.3 and "max_completion_tokens" not in api.last_json


# -- traits -> widgets -----------------------------------------------------------------------------


def test_config_moves_the_widgets(shell, panel):
    shell.run_line_magic("config", "AIMLMagics.temperature = 0.3")
    assert panel.temperature.value == 0.3 and panel.temperature_unset.value is False
    assert not panel.temperature.disabled
    shell.run_line_magic("config", "AIMLMagics.temperature = None")
    assert panel.temperature_unset.value is True and panel.temperature.readout is False
    shell.run_line_magic("config", "AIMLMagics.max_completion_tokens = 777")
    assert panel.max_completion_tokens.value == 777 and not panel.max_completion_tokens_unset.value
    shell.run_line_magic("config", "AIMLMagics.top_p = 0.25")
    assert panel.top_p.value == 0.25
    shell.run_line_magic("config", "AIMLMagics.model = 'deepseek/deepseek-r1'")
    assert panel.model_picker.value == "deepseek/deepseek-r1"
    assert "DeepSeek R1" in panel.model_info.value
    shell.run_line_magic("config", "AIMLMagics.system = 'Be brief.'")
    assert panel.system.value == "Be brief."
    shell.run_line_magic("config", "AIMLMagics.stream = False")
    shell.run_line_magic("config", "AIMLMagics.memory = False")
    assert panel.stream.value is False and panel.memory.value is False


def test_two_panels_stay_in_step(make_panel, magics):
    one, two = make_panel(), make_panel()
    one.temperature_unset.set_state({"value": False})
    one.temperature.set_state({"value": 1.25})
    assert two.temperature_unset.value is False and two.temperature.value == 1.25
    two.top_p_unset.set_state({"value": False})
    two.top_p.set_state({"value": 0.9})
    assert one.top_p.value == 0.9 and magics.top_p == 0.9
    two.temperature_unset.set_state({"value": True})
    assert one.temperature_unset.value is True and magics.temperature is None
    one.model_picker.set_state({"value": "moonshotai/kimi-k2"})
    assert two.model_picker.value == "moonshotai/kimi-k2"
    two.stream.set_state({"value": False})
    assert one.stream.value is False and magics.stream is False
    one.system.set_state({"value": "Shared."})
    assert two.system.value == "Shared."


def test_closed_panel_lets_go(make_panel, magics, shell):
    one, two = make_panel(), make_panel()
    one.close()
    assert one._answered not in magics.on_answer and two._answered in magics.on_answer
    shell.run_line_magic("config", "AIMLMagics.temperature = 0.5")
    assert two.temperature.value == 0.5 and one.temperature_unset.value is True


# -- bounds ----------------------------------------------------------------------------------------


def test_out_of_range_values_cannot_be_entered(panel, magics):
    for name in ("max_completion_tokens", "temperature", "top_p"):
        getattr(panel, f"{name}_unset").set_state({"value": False})
    for sent, kept in ((5, 2.0), (-1, 0.0)):
        panel.temperature.set_state({"value": sent})
        assert magics.temperature == kept
    panel.top_p.set_state({"value": 0})
    assert magics.top_p == 0.01
    panel.top_p.set_state({"value": 3})
    assert magics.top_p == 1.0
    for sent in (0, -5):
        panel.max_completion_tokens.set_state({"value": sent})
        assert magics.max_completion_tokens == 1


def test_temperature_narrows_for_claude(shell, api, panel, magics):
    panel.temperature_unset.set_state({"value": False})
    panel.model_picker.set_state({"value": "claude-sonnet-4-5"})  # an alias
    assert magics.model == "anthropic/claude-sonnet-4.5"
    assert panel.temperature.max == 1.0
    panel.temperature.set_state({"value": 1.8})
    assert magics.temperature == 1.0
    panel.model_picker.set_state({"value": "gpt-4o"})
    assert panel.temperature.max == 2.0
    # A value set elsewhere is shown as it is, never silently rewritten; the cell names the range.
    shell.run_line_magic("config", "AIMLMagics.temperature = 1.5")
    panel.model_picker.set_state({"value": "anthropic/claude-sonnet-4.5"})
    assert panel.temperature.value == 1.5 and magics.temperature == 1.5
    shell.run_line_magic("config", "AIMLMagics.temperature = 0.5")
    assert panel.temperature.max == 1.0
    shell.run_line_magic("config", "AIMLMagics.temperature = 1.5")
    assert panel.temperature.value == 1.5 and magics.temperature == 1.5
    run = run_cell(shell, "%%aiml\nhi")
    assert isinstance(run.error, ParameterError) and "0 to 1" in str(run.error)
    assert api.chat_requests == []


def test_bad_model_text_is_refused_and_not_applied(panel, magics):
    before = magics.model
    panel.model_picker.set_state({"value": "gpt 4o"})
    assert magics.model == before and panel.model_picker.value == before
    assert "spaces" in panel.model_info.value
    panel.model_picker.set_state({"value": ""})
    assert magics.model == before and "not changed" in panel.model_info.value


# -- models list -----------------------------------------------------------------------------------


def test_models_come_from_the_server(shell, api, panel, magics):
    options = panel.model_picker.options
    assert "deepseek/deepseek-r1" in options and "mistralai/mistral-nemo" in options
    for non_chat in ("flux/schnell", "text-embedding-3-small", "#g1_aura-asteria-en"):
        assert non_chat not in options
    assert panel.models_note.value == ""
    panel.model_picker.set_state({"value": "gpt-5-mini"})
    assert magics.model == "openai/gpt-5-mini-2025-08-07"
    assert panel.model_picker.value == "openai/gpt-5-mini-2025-08-07"
    assert "GPT-5 mini" in panel.model_info.value and "400,000" in panel.model_info.value
    panel.model_picker.set_state({"value": "acme/brand-new-model"})
    assert magics.model == "acme/brand-new-model"
    assert "not in the service's list" in panel.model_info.value
    run_cell(shell, "%%aiml\nhi")
    assert api.last_json["model"] == "acme/brand-new-model"


def test_models_fallback_on_server_error_then_refresh(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.models_fail = 500
    panel = build_panel(magics)
    try:
        assert panel.wait_models(30)
        assert panel.model_picker.options == FALLBACK_MODELS
        assert "Could not load" in panel.models_note.value and "500" in panel.models_note.value
        api.models_fail = None
        panel.refresh_button.click()
        assert panel.wait_models(30)
        assert "flux/schnell" not in panel.model_picker.options
        assert "baidu/ernie-5-0-thinking-preview" in panel.model_picker.options
        assert panel.models_note.value == ""
        # A refresh that fails keeps the list that worked and says so.
        api.models_fail = 503
        panel.refresh_button.click()
        assert panel.wait_models(30)
        assert "baidu/ernie-5-0-thinking-preview" in panel.model_picker.options
        assert "Refresh failed" in panel.models_note.value
    finally:
        panel.close()


def test_models_fallback_when_service_unreachable(shell, magics):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    shell.run_line_magic("config", f"AIMLMagics.base_url = {FakeAIMLAPI.closed_port()!r}")
    panel = build_panel(magics)
    try:
        assert panel.wait_models(30)
        assert panel.model_picker.options == FALLBACK_MODELS
        assert "Could not load" in panel.models_note.value
        assert "connection refused" in panel.models_note.value
        assert not panel.refresh_button.disabled
        panel.model_picker.set_state({"value": "gpt-4o-mini"})
        assert magics.model == "gpt-4o-mini"
    finally:
        panel.close()


# -- status, key -----------------------------------------------------------------------------------


def test_status_line_after_every_answer(shell, api, panel, magics):
    assert "0 turns" in panel.status.value and "0 tokens" in panel.status.value
    api.queue(Reply(content="one", credits=2002), Reply(content="two", credits=1000.5))
    run_cell(shell, "%%aiml\nfirst")
    assert "1 turn ·" in panel.status.value
    assert f"{magics.session_tokens:,} tokens" in panel.status.value and magics.session_tokens > 0
    assert "2,002 credits" in panel.status.value
    run_cell(shell, "%%aiml --no-stream\nsecond")
    assert "2 turns" in panel.status.value and "3,002.50 credits" in panel.status.value
    run_cell(shell, "%aiml reset")
    assert "0 turns" in panel.status.value and "3,002.50 credits" in panel.status.value
    store = magics.session.connection.store  # where the exchanges went, and how big that is now
    assert store is not None and store.count() >= 2 and store.size() > 0
    assert f"store: {store.path} (" in panel.status.value
    assert re.search(r"store: .* \(\d[\d.,]* (B|KB|MB)\)", panel.status.value), panel.status.value


def test_no_key_says_how_to_set_one(bare_shell, api):
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    magics = aiml_magics.instance()
    panel = build_panel(magics)
    try:
        assert panel.wait_models(30)
        assert "No API key is set" in panel.key_note.value
        assert "%aiml key" in panel.key_note.value and "AIML_API_KEY" in panel.key_note.value
        assert "gpt-4o" in panel.model_picker.options  # the models list needs no key
        run_cell(bare_shell, "%aiml replay")
        run_cell(bare_shell, "%%aiml\nanything")  # answered offline; the note follows the mode
        assert "No key: answers are offline" in panel.key_note.value
        assert "%aiml live" in panel.key_note.value and "%aiml key" in panel.key_note.value
        bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
        assert panel.key_note.value == ""
    finally:
        panel.close()


def test_key_never_reaches_a_widget(shell, api, panel):
    run = run_cell(shell, "%%aiml\nhi")
    assert run.error is None
    shown = run_cell(shell, "%aiml panel")
    for p in (panel, *shown_panels(shown)):
        states = widget_states(p)
        assert "gpt-4o-mini" in states  # the walk really reached the controls
        assert TEST_KEY not in states and TEST_KEY[:-4] not in states
        p.wait_models(30)
    assert TEST_KEY not in shown.shown


# -- load cost -------------------------------------------------------------------------------------


def test_ipywidgets_is_imported_only_when_a_panel_is_shown(api):
    code = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "aiml_magics")
        shell.run_line_magic("aiml", "help")
        shell.run_line_magic("aiml", "config")
        print("BEFORE", "ipywidgets" in sys.modules)
        shell.run_line_magic("aiml", "panel")
        print("AFTER", "ipywidgets" in sys.modules)
        """
    )
    env = {**os.environ, "AIML_API_BASE": api.base_url, "AIML_API_KEY": TEST_KEY}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert "BEFORE False" in proc.stdout, proc.stdout + proc.stderr
    assert "AFTER True" in proc.stdout, proc.stdout + proc.stderr
    assert TEST_KEY not in proc.stdout + proc.stderr


# -- a real kernel ---------------------------------------------------------------------------------


@pytest.mark.kernel
def test_panel_in_a_real_kernel_and_saved_notebook(monkeypatch, api, tmp_path):
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    api.queue(Reply(content="kernel answer", credits=2002))
    cells = [
        "%load_ext aiml_magics",
        "%aiml panel",
        textwrap.dedent(
            """
            import aiml_magics
            from aiml_magics.notebook.panel import build_panel
            p = build_panel(aiml_magics.instance())
            display(p)
            print("LOADED", p.wait_models(30), len(p.model_picker.options), repr(p.models_note.value))
            p.temperature_unset.value = False
            p.temperature.value = 0.25
            """
        ),
        "%%aiml\nhi from the kernel",
        "print(p.status.value)",
    ]
    nb = run_cells(cells, tmp_path, allow_errors=False, save_as="panel.ipynb")
    assert any(WIDGET_MIME in o.get("data", {}) for o in nb.cells[1].outputs)
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "LOADED True 13 ''" in printed
    assert api.last_json["temperature"] == 0.25
    status = "".join(o.get("text", "") for o in nb.cells[4].outputs)
    assert "1 turn ·" in status and "2,002 credits" in status
    path = tmp_path / "panel.ipynb"
    saved = path.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in saved  # widget values are saved too
    assert TEST_KEY not in saved and TEST_KEY[:-4] not in saved


def test_reshown_panels_are_bounded(shell, api, magics):
    """Re-running `%aiml panel` must not pile up listeners: the oldest beyond the limit close."""
    from aiml_magics.notebook.panel import MAX_PANELS

    before = len(magics.on_answer)
    for _ in range(MAX_PANELS + 3):
        assert run_cell(shell, "%aiml panel").error is None
    panels = magics._panels
    assert len(panels) == MAX_PANELS and len(magics.on_answer) == before + MAX_PANELS
    run_cell(shell, "%%aiml\nhi")
    assert all("1 turn" in p.status.value for p in panels)
    for p in list(panels):
        p.close()


def test_first_run_slips_in_the_panel_are_caught_and_explained(shell, api, panel, magics):
    # top_p goes out on its step (0.01), never as 0.5050000000000001.
    panel.top_p.set_state({"value": 0.5050000000000001})
    assert magics.top_p == 0.51 or magics.top_p == 0.5  # rounded to two places
    panel.top_p.set_state({"value": 0.01 + 50 * 0.0099})
    assert repr(magics.top_p) in ("0.5", "0.51")
    api.queue(Reply(content="ok"))
    assert run_cell(shell, "%%aiml\nhi").error is None
    assert len(json.dumps(api.last_json["top_p"])) <= 4
    # With Claude the slider stops at 1, and the panel says why under it.
    assert panel._optionals["temperature"].note.value == ""
    panel.model_picker.set_state({"value": "anthropic/claude-sonnet-4.5"})
    assert magics.model == "anthropic/claude-sonnet-4.5" and panel.temperature.max == 1
    note = panel._optionals["temperature"].note.value
    assert "takes temperature 0 to 1" in note and "stops at 1" in note
    panel.model_picker.set_state({"value": "gpt-4o"})
    assert panel._optionals["temperature"].note.value == ""
    # A number typed as a model id is refused, and the panel keeps showing what will be sent.
    panel.model_picker.set_state({"value": "0.7"})
    assert magics.model == "gpt-4o" and panel.model_picker.value == "gpt-4o"
    assert "is a number, not a model id" in panel.model_info.value
    # An unset token limit: its number is dimmed beside "not sent"; set, it is not.
    box = panel.max_completion_tokens
    assert magics.max_completion_tokens is None and "aiml-unset" in box._dom_classes
    box.set_state({"value": 64})
    assert "aiml-unset" not in box._dom_classes
    panel.max_completion_tokens_unset.set_state({"value": True})
    assert "aiml-unset" in box._dom_classes
