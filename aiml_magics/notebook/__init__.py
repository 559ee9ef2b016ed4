"""The Jupyter face: the only code that imports ``IPython.core.magic`` or ``ipywidgets``.

This ``__init__`` holds the one loaded ``AIMLMagics`` (``%load_ext`` makes it) and imports nothing
heavy itself: ``aiml_magics.chat()`` asks it whether a notebook session exists.
"""

from __future__ import annotations

from typing import Any

_magics: Any = None


def loaded() -> Any:
    """The loaded ``AIMLMagics``, or None before ``%load_ext aiml_magics``."""
    return _magics


def load(ipython: Any) -> None:
    global _magics
    from .magics import AIMLMagics

    if _magics is not None and _magics.shell is ipython:
        return
    _magics = AIMLMagics(shell=ipython)
    ipython.register_magics(_magics)


def unload(ipython: Any) -> None:
    global _magics
    if _magics is None:
        return
    ipython.magics_manager.magics["line"].pop("aiml", None)
    ipython.magics_manager.magics["cell"].pop("aiml", None)
    if _magics in getattr(ipython, "configurables", []):
        ipython.configurables.remove(_magics)
    try:
        ipython.events.unregister("pre_run_cell", _magics._remember_raw_cell)
    except (AttributeError, ValueError):
        pass
    _magics.close()
    _magics = None
