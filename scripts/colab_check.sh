#!/usr/bin/env bash
# The second test environment: Google Colab's preinstalled packages (colab/constraints.txt).
#
# A fresh virtual environment (no system site-packages), the package and the test tools installed
# with `pip install -c colab/constraints.txt` as a Colab user's `pip install` would meet them, then
# scripts/check_pins.py fails if any pin changed (IPython 7.34, ipywidgets 7.7, traitlets 5.7, ...).
# Then the kernel-level tests and the notebooks run there, on that IPython, in that venv's kernel.
#
# Usage: scripts/colab_check.sh [pytest args]   (prints "COLAB CHECK OK" at the end on success)
#   COLAB_VENV=DIR  keep the environment in DIR and reuse it when its constraints are unchanged
#   COLAB_MARK      the pytest marker expression to run (default below)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/colab/constraints.txt"
# The tests marked `colab` (tests/conftest.py): every test that starts a real kernel (the magic,
# the notebooks, hostile servers, the key), the panel's widgets, and the magic in IPython's own shell
# (flags, _render_traceback_, magic_arguments). COLAB_MARK picks others.
COLAB_MARK="${COLAB_MARK:-colab and not slow and not browser}"
# What those tests import besides the package; each one Colab ships is pinned by the constraints.
TEST_TOOLS=(pytest hypothesis ipykernel nbclient nbformat pandas matplotlib pydantic jsonschema Pillow mistune)

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
unset PYTHONPATH VIRTUAL_ENV PIP_CONSTRAINT PIP_REQUIREMENT
step() { printf '[colab-check %4ss] %s\n' "$SECONDS" "$*"; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/colab-check.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
VENV="${COLAB_VENV:-$TMP/venv}"
STAMP="$(sha256sum "$CONSTRAINTS" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
quiet() { "$@" >"$TMP/step.log" 2>&1 || { grep -v 'is ignored' "$TMP/step.log" | tail -40; exit 1; }; }

if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.colab-stamp" 2>/dev/null)" = "$STAMP" ]; then
  step "reusing $VENV (same constraints and pyproject.toml)"
else
  step "fresh venv in $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  step "pip install -c colab/constraints.txt: the package, then the test tools"
  # Two installs, as in Colab: what is already there must not move for the package either.
  quiet "$VENV/bin/python" -m pip install -c "$CONSTRAINTS" ipython ipywidgets traitlets ipykernel \
    jupyter_client notebook requests urllib3 Markdown nh3 "${TEST_TOOLS[@]}"
  quiet "$VENV/bin/python" -m pip install -c "$CONSTRAINTS" "$ROOT"
  echo "$STAMP" >"$VENV/.colab-stamp"
fi
VPY="$VENV/bin/python"

step "no pin changed"
"$VPY" "$ROOT/scripts/check_pins.py" "$CONSTRAINTS"

step "the venv's kernel runs Colab's IPython"
(cd "$TMP" && "$VPY" - <<'EOF'
import sys

import nbformat
from nbclient import NotebookClient

probe = nbformat.v4.new_notebook()
probe.cells = [nbformat.v4.new_code_cell("import sys, IPython; print(sys.prefix, IPython.__version__)")]
NotebookClient(probe, timeout=120, kernel_name="python3").execute()
prefix, version = probe.cells[0].outputs[0].text.split()
assert prefix == sys.prefix, (prefix, sys.prefix)
print(f"  kernel: {prefix}, IPython {version}")
EOF
)

step "kernel-level tests and notebooks: -m \"$COLAB_MARK\""
cd "$ROOT"
# Its own temporary folder: CI runs this beside the main suite, which numbers its own.
"$VPY" -m pytest -p no:cacheprovider -q --basetemp="$TMP/pytest" -m "$COLAB_MARK" "$@"
step "COLAB CHECK OK"
