"""Fail when an install changed a pinned package: run it with the environment's own Python.

``pip install -c constraints.txt`` refuses a conflicting requirement, but a constraints file is
easy to bypass (an unconstrained second install, ``--no-deps``, a later ``pip install -U``), so the
environment is checked after the fact: every pinned package that is installed must have exactly
its pinned version, and the packages Colab's runtime depends on must be installed at all.

Usage: VENV/bin/python scripts/check_pins.py colab/constraints.txt
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

# Colab's runtime breaks when one of these is replaced; the package must install beside them.
REQUIRED = ("ipython", "ipywidgets", "traitlets", "ipykernel", "jupyter-client", "notebook",
            "requests", "urllib3", "markdown", "nh3")


def canonical(name: str) -> str:
    """PEP 503 names: ``jupyter_client`` and ``Jupyter-Client`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}: not a NAME==VERSION pin: {raw!r}")
        pins[canonical(name)] = version.strip()
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def check(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    """One line per broken pin: a changed version, or a required package missing."""
    problems = [f"{name}: pinned {want}, installed {have[name]}"
                for name, want in sorted(pins.items()) if name in have and have[name] != want]
    problems += [f"{name}: pinned {pins.get(name, '?')}, not installed"
                 for name in REQUIRED if name not in have]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    pins, have = read_pins(Path(argv[0])), installed()
    problems = check(pins, have)
    if problems:
        print(f"{len(problems)} pin(s) of {argv[0]} changed in {sys.prefix}:", *problems, sep="\n  ")
        return 1
    held = sum(name in have for name in pins)
    print(f"pins held: {held} of {len(pins)} pinned packages installed, none changed "
          f"(ipython {have['ipython']}, ipywidgets {have['ipywidgets']}, traitlets {have['traitlets']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
