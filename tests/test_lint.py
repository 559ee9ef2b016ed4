"""The code stays ruff- and mypy-clean: run as part of the suite so CI's one command checks it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["mypy", "aiml_magics"]],
    ids=["ruff", "mypy"],
)
def test_tool_is_clean(command):
    pytest.importorskip(command[0])
    out = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
