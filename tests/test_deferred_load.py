"""``%load_ext`` registers stand-ins; the settings are built by the first thing that needs them.

Each test starts from a fresh load (the ``bare_shell`` fixture) and touches the settings first in
a different way, then checks that the user sees what an eager load gave: ``%config`` lists,
describes, reads, sets and refuses; ``%%aiml?`` shows the usage; the first cell is sent byte-exact;
what was printed or displayed before the first ``%%aiml`` is still there to send.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

import aiml_magics
from aiml_magics.params import DEFAULT_MODEL, PARAMS
from aiml_magics.settings import Settings
from tests.conftest import ROOT, TEST_KEY, run_cell
from tests.fakeapi import Reply

pytestmark = pytest.mark.colab


@pytest.fixture
def keyed(bare_shell, api, monkeypatch):
    """A fresh load whose key and base URL come from the environment (no ``%config`` first)."""
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    return bare_shell


def _sent(api) -> dict:
    return api.chat_requests[-1].json


def test_load_registers_the_magic_and_builds_no_settings():
    code = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "aiml_magics")
        print("OURS", sorted(m for m in sys.modules if m.startswith("aiml_magics")))
        print("MAGIC", "aiml" in shell.magics_manager.magics["cell"],
              "aiml" in shell.magics_manager.magics["line"])
        print("CONFIGURABLE", [type(c).__name__ for c in shell.configurables].count("AIMLMagics"))
        shell.run_line_magic("config", "AIMLMagics.temperature = 0.25")
        print("BUILT", "aiml_magics.settings" in sys.modules,
              type(shell.magics_manager.registry["AIMLMagics"]).__module__)
        print("CONFIGURABLE", [type(c).__name__ for c in shell.configurables].count("AIMLMagics"))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert ("OURS ['aiml_magics', 'aiml_magics.executions', 'aiml_magics.notebook', "
            "'aiml_magics.notebook.lastimage']") in out, out
    assert "MAGIC True True" in out, out
    assert "BUILT True aiml_magics.notebook.magics" in out, out
    assert out.count("CONFIGURABLE 1") == 2, out  # the stand-in, then the settings in its place


def test_config_set_first_is_sent(keyed, api):
    keyed.run_line_magic("config", "AIMLMagics.temperature = 0.3")
    keyed.run_line_magic("config", "AIMLMagics.max_retries = 0")
    assert run_cell(keyed, "%%aiml\nhello").error is None
    assert _sent(api)["temperature"] == 0.3
    assert aiml_magics.instance().max_retries == 0


def test_a_bad_config_value_first_is_refused_and_the_next_cell_works(keyed, api, caplog):
    run_cell(keyed, "%config AIMLMagics.temperature = 5")  # IPython logs what %config refused
    assert "temperature = 5 is out of range: use a number from 0 to 2." in caplog.text
    assert aiml_magics.instance().temperature != 5
    assert run_cell(keyed, "%%aiml\nhello").error is None
    assert "temperature" not in _sent(api) or _sent(api)["temperature"] != 5


def test_config_describes_and_reads_the_settings_first(keyed):
    listing = run_cell(keyed, "%config")
    assert listing.stdout.count("AIMLMagics") == 1
    described = run_cell(keyed, "%config AIMLMagics")
    for p in PARAMS:
        assert f"AIMLMagics.{p.name}" in described.stdout, p.name
    assert keyed.run_line_magic("config", "AIMLMagics.model") == DEFAULT_MODEL
    assert run_cell(keyed, "%config").stdout.count("AIMLMagics") == 1  # built: still once


def test_cell_magic_help_before_first_use_is_the_full_usage(bare_shell):
    doc = bare_shell.find_cell_magic("aiml").__doc__
    for flag in [f for p in PARAMS for f in p.flags] + ["--json", "--new", "--out", "--dry-run"]:
        assert flag in doc, flag
    help_cell = run_cell(bare_shell, "%%aiml?")
    assert "--temperature" in help_cell.stdout or "--temperature" in str(help_cell.outputs)


def test_instance_before_first_use_is_the_settings(bare_shell):
    magics = aiml_magics.instance()
    assert isinstance(magics, Settings) and magics.model == DEFAULT_MODEL
    assert aiml_magics.instance() is magics
    assert bare_shell.magics_manager.magics["cell"]["aiml"].__self__ is magics


def test_the_first_cell_after_load_is_sent_as_typed(keyed, api):
    body = ">>> x = 1\n>>> print(x)\n1"  # a pasted session: IPython strips the prompts
    assert run_cell(keyed, f"%%aiml\n{body}").error is None
    assert _sent(api)["messages"][-1]["content"] == body


def test_what_was_printed_and_shown_before_the_first_cell_is_there(keyed, api):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buf, format="PNG")
    keyed.user_ns["png"] = buf.getvalue()
    assert run_cell(keyed, "print('printed-before-first-use')").error is None
    # Not through run_cell: its capture swaps the display publisher, which the watcher wraps.
    assert keyed.run_cell("from IPython.display import Image, display\n"
                          "display(Image(data=png))", store_history=True).error_in_exec is None
    api.queue(Reply(content="a green square"), Reply(content="it printed"))
    assert run_cell(keyed, "%%aiml -m gpt-4o --image\nWhat is shown?").error is None
    assert [(i["width"], i["height"]) for i in api.chat_requests[-1].images] == [(8, 6)]
    assert run_cell(keyed, "%%aiml --context 4\nWhat did the cells print?").error is None
    assert "printed-before-first-use" in str(_sent(api)["messages"])


def test_unload_before_first_use_then_load_again(bare_shell, api):
    aiml_magics.unload_ipython_extension(bare_shell)
    bare_shell.extension_manager.loaded.discard("aiml_magics")
    assert "aiml" not in bare_shell.magics_manager.magics["cell"]
    assert [type(c).__name__ for c in bare_shell.configurables].count("AIMLMagics") == 0
    bare_shell.run_line_magic("load_ext", "aiml_magics")
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    assert run_cell(bare_shell, "%%aiml\nhi").error is None
    assert [type(c).__name__ for c in bare_shell.configurables].count("AIMLMagics") == 1
    assert len(api.chat_requests) == 1


def _named(shell) -> list:
    return [c for c in shell.configurables if type(c).__name__ == "AIMLMagics"]


def test_threads_asking_at_once_share_one_build(bare_shell):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(8)

    def first_use(_: int):
        start.wait()
        return aiml_magics.instance()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(first_use, range(8)))
    assert len({id(m) for m in got}) == 1
    assert _named(bare_shell) == [got[0]]


def test_a_bad_value_in_the_config_file_leaves_nothing_loaded(bare_shell):
    from traitlets import TraitError

    aiml_magics.unload_ipython_extension(bare_shell)
    bare_shell.extension_manager.loaded.discard("aiml_magics")
    hooks = len(bare_shell.events.callbacks["pre_run_cell"])
    bare_shell.config.AIMLMagics.temperature = 5  # as c.AIMLMagics.temperature = 5 in a profile
    with pytest.raises(TraitError, match="temperature = 5 is out of range"):
        bare_shell.run_line_magic("load_ext", "aiml_magics")
    assert "aiml" not in bare_shell.magics_manager.magics["cell"]
    assert _named(bare_shell) == []
    assert len(bare_shell.events.callbacks["pre_run_cell"]) == hooks  # no recorder left running
    bare_shell.config.AIMLMagics.temperature = 0.5
    bare_shell.run_line_magic("load_ext", "aiml_magics")
    assert aiml_magics.instance().temperature == 0.5


def test_a_failed_first_use_leaves_only_the_stand_in_and_is_tried_again(bare_shell):
    from traitlets import TraitError

    bare_shell.config.AIMLMagics.temperature = 5  # put there behind %config's back
    for _ in range(2):
        with pytest.raises(TraitError):
            aiml_magics.instance()
        assert len(_named(bare_shell)) == 1  # the stand-in; no half-made settings pile up
    bare_shell.config.AIMLMagics.temperature = 0.4
    assert aiml_magics.instance().temperature == 0.4
    assert _named(bare_shell) == [aiml_magics.instance()]


def test_a_setting_assigned_on_the_stand_in_is_the_settings(bare_shell):
    from traitlets import TraitError

    (standin,) = _named(bare_shell)
    with pytest.raises(TraitError):
        standin.temperature = 5
    standin.temperature = 0.3
    assert aiml_magics.instance().temperature == 0.3
