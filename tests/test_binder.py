"""The Binder build, simulated: a fresh venv from binder/, then every notebook runs in it (about a minute)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_binder_build_runs_the_notebooks():
    if shutil.which("bash") is None:
        pytest.skip("bash is needed for scripts/binder_check.sh")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "binder_check.sh")],
        capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "BINDER CHECK OK" in proc.stdout
    assert "kernel runs in" in proc.stdout and "quickstart.ipynb: " in proc.stdout
