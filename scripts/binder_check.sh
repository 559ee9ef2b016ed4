#!/usr/bin/env bash
# Simulate the Binder build and run the notebooks in what it builds.
#
# Like repo2docker: a fresh virtual environment (no system site-packages), binder/requirements.txt,
# then binder/postBuild from a copy of the repository's root. Then every notebook runs top to bottom
# in that environment's own kernel, offline (no key: replay). The base URL points at the loopback fake
# service, so nothing in the run can reach any other address. pip reuses its cache between runs.
#
# Usage: scripts/binder_check.sh            (prints "BINDER CHECK OK" at the end on success)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/binder-check.XXXXXX")"
FAKE_PID=""
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
unset PYTHONPATH AIML_API_KEY AIMLAPI_API_KEY AIML_API_BASE AIMLAPI_API_BASE VIRTUAL_ENV

step() { printf '[binder-check %4ss] %s\n' "$SECONDS" "$*"; }

step "fresh venv in $WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
export PATH="$WORK/venv/bin:$PATH"

step "pip install -r binder/requirements.txt"
quiet() { "$@" >"$WORK/step.log" 2>&1 || { cat "$WORK/step.log"; exit 1; }; }
quiet "$VPY" -m pip install -r "$ROOT/binder/requirements.txt"

step "binder/postBuild from a copy of the repository root"
mkdir "$WORK/repo"
(cd "$ROOT" && tar --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' --exclude=build \
  --exclude=dist --exclude=.pytest_cache --exclude=.ruff_cache -cf - .) | (cd "$WORK/repo" && tar -xf -)
(cd "$WORK/repo" && quiet bash binder/postBuild)

step "the installed package is the venv's copy, with its cassette; widgets in JupyterLab"
"$WORK/venv/bin/jupyter" labextension list 2>&1 | grep -q "@jupyter-widgets/jupyterlab-manager.*enabled" \
  || { echo "the ipywidgets JupyterLab extension is missing"; exit 1; }
(cd "$WORK" && "$VPY" - <<'EOF'
import sys
import aiml_magics
from aiml_magics.cassette import Cassette, shipped_cassette
assert aiml_magics.__file__.startswith(sys.prefix), aiml_magics.__file__
assert len(Cassette.load(shipped_cassette())) == 1
print("  aiml_magics", aiml_magics.__version__, "from", aiml_magics.__file__)
EOF
)

step "loopback fake service (so nothing can reach another address)"
"$VPY" "$ROOT/tests/fakeapi.py" --port 0 --key binder-check-unused >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do
  grep -q '^READY ' "$WORK/fake.log" 2>/dev/null && break
  sleep 0.1
done
AIML_API_BASE="$(sed -n 's/^READY //p' "$WORK/fake.log")"
[ -n "$AIML_API_BASE" ] || { echo "fake service did not start"; cat "$WORK/fake.log"; exit 1; }
export AIML_API_BASE

step "execute every notebook in the venv's kernel, offline"
cd "$WORK"
"$VPY" - "$WORK/repo/notebooks" <<'EOF'
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from aiml_magics.notebook.magics import AIMLMagics

panel = hasattr(AIMLMagics, "_cmd_panel")
probe = nbformat.v4.new_notebook()
probe.cells = [nbformat.v4.new_code_cell("import sys, aiml_magics; print(sys.prefix)")]
NotebookClient(probe, timeout=120, kernel_name="python3").execute()
kernel_prefix = probe.cells[0].outputs[0].text.strip()
assert kernel_prefix == sys.prefix, (kernel_prefix, sys.prefix)
print("  kernel runs in", kernel_prefix)

failed = []
for path in sorted(Path(sys.argv[1]).glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    text = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type != "code" or (not panel and cell.source.strip() == "%aiml panel"):
            continue
        for out in cell.outputs:
            err = out.output_type == "error" or (
                out.output_type == "stream" and out.name == "stderr"
                and ("Error" in out.text or "Traceback" in out.text)
            )
            if err:
                failed.append(f"{path.name}: {cell.source[:60]!r}: {out.get('evalue') or out.get('text')}")
    if path.name == "quickstart.ipynb":
        assert "replayed</sub>" in text and "### 1. The Ultimate Paradox" in text, "no replayed answer"
        assert "offline echo</sub>" in text, "no offline echo"
        if panel:
            assert "application/vnd.jupyter.widget-view+json" in text, "no panel widget"
    print(f"  {path.name}: {sum(c.cell_type == 'code' for c in nb.cells)} code cells ran")
if not panel:
    print("  note: %aiml panel is not in this build yet; its cell was not checked")
assert not failed, "\n".join(failed)
EOF
step "BINDER CHECK OK"
