"""Shared fixtures: a loopback fake of the service and a real IPython shell with the extension.

The shell is IPython's own ``InteractiveShell`` (what a kernel runs, minus ZMQ), so display
outputs, ``_render_traceback_`` and ``shell.push`` behave as in a notebook; the terminal variant
is tested separately.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import aiml_magics
from tests.fakeapi import FakeAIMLAPI

# Subprocesses (kernels, terminal IPython) must import this checkout's package, not another copy.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

# Test traffic stays on loopback even on a machine with a proxy configured.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"

# Nothing a test does reaches the user's data folder (the per-test fixture below narrows it).
_SESSION_STORE_DIR = tempfile.mkdtemp(prefix="aiml-store-")
atexit.register(shutil.rmtree, _SESSION_STORE_DIR, True)
os.environ["AIML_STORE"] = str(Path(_SESSION_STORE_DIR) / "store.db")

# Recognisable, so any leak is easy to grep for; its tail is the only part that may ever show.
TEST_KEY = "sk-aiml-TESTKEY-3f9c2a7e5b1d4c8f-LEAKCHECK"
KEY_VARS = ("AIML_API_KEY", "AIMLAPI_API_KEY", "AIML_API_BASE", "AIMLAPI_API_BASE")


@dataclass
class CellRun:
    """What a person would see after running one cell, and what it did."""

    result: Any
    stdout: str
    stderr: str
    outputs: list[Any] = field(default_factory=list)

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec

    @property
    def shown(self) -> str:
        """Everything the cell printed or displayed, as one string (for leak and text checks)."""
        parts = [self.stdout, self.stderr]
        for out in self.outputs:
            parts.extend(str(v) for v in out.data.values())
        return "\n".join(parts)

    def final_markdown(self) -> str:
        """The last non-empty text/markdown published: the final rendering of an answer."""
        for out in reversed(self.outputs):
            md = out.data.get("text/markdown")
            if md:
                return md
        return ""


def run_cell(shell: InteractiveShell, source: str) -> CellRun:
    with capture_output(display=True) as cap:
        result = shell.run_cell(source, store_history=True)
    return CellRun(result, cap.stdout, cap.stderr, list(cap.outputs))


@pytest.fixture(autouse=True)
def _store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its exchanges in a store of its own (kernels and subprocesses it starts
    inherit the variable): never the user's data folder, never another test's cached answers."""
    path = tmp_path_factory.mktemp("store") / "store.db"
    monkeypatch.setenv("AIML_STORE", str(path))
    return path


@pytest.fixture
def api() -> Iterator[FakeAIMLAPI]:
    with FakeAIMLAPI(key=TEST_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def _ipython() -> InteractiveShell:
    shell = InteractiveShell.instance()
    shell._aiml_test_names = set(shell.user_ns)  # what a fresh shell has
    return shell


@pytest.fixture
def bare_shell(_ipython: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A shell with the extension freshly loaded and no key or base URL from the environment."""
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    aiml_magics.unload_ipython_extension(_ipython)
    _ipython.extension_manager.loaded.discard("aiml_magics")
    _ipython.config.pop("AIMLMagics", None)  # %config values outlive the instance
    _ipython.run_line_magic("load_ext", "aiml_magics")
    # Each test starts from a fresh namespace: a variable another test left behind would be
    # expanded into this test's prompts ({b} with `b` defined).
    for name in list(_ipython.user_ns):
        if name not in _ipython._aiml_test_names or name.startswith("aiml_"):
            del _ipython.user_ns[name]
    # ... and a fresh input history: `In` and the history database would otherwise hold the cells
    # of earlier tests (one types the key on purpose), which are not this test's to judge.
    _ipython.history_manager.reset(new_session=True)
    _ipython.execution_count = 1  # as %reset does: cell numbers and In stay in step
    yield _ipython
    aiml_magics.unload_ipython_extension(_ipython)
    _ipython.extension_manager.loaded.discard("aiml_magics")
    _ipython.config.pop("AIMLMagics", None)


@pytest.fixture
def shell(bare_shell: Any, api: FakeAIMLAPI) -> Any:
    """The extension pointed at the fake service with the test key (set through %config)."""
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    bare_shell.run_line_magic("config", "AIMLMagics.max_retries = 2")
    return bare_shell


@pytest.fixture
def session(api: FakeAIMLAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A plain-Python Session against the fake, no key from the environment, no retries."""
    from aiml_magics import Session

    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    s = Session(api_key=TEST_KEY, base_url=api.base_url, max_retries=0)
    yield s
    s.close()


@pytest.fixture
def magics(shell: Any) -> Any:
    return aiml_magics.instance()


KERNEL_FILES = ("test_kernel.py", "test_hostile_kernel.py", "test_notebooks.py")
# Also run in Google Colab's environment (scripts/colab_check.sh: IPython 7.34, ipywidgets 7.7), with
# every ``kernel`` test: the panel's widgets and the magic in IPython's own shell.
COLAB_FILES = ("test_panel.py", "test_magic.py")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Files whose tests start real kernels (those above, and every ``*_kernel.py``) are marked
    ``kernel`` whole (single tests elsewhere carry the marker themselves), so ``-m "not kernel"``
    is the quick loop. Kernel tests and the files above are marked ``colab`` too (others may
    carry that marker themselves)."""
    for item in items:
        if item.path.name in KERNEL_FILES or item.path.name.endswith("_kernel.py"):
            item.add_marker(pytest.mark.kernel)
        if item.path.name in COLAB_FILES or item.get_closest_marker("kernel"):
            item.add_marker(pytest.mark.colab)
