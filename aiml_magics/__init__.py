"""Jupyter magics for the AI/ML API: ``%load_ext aiml_magics``, then ``%%aiml`` cells.

Loading the extension imports no HTTP, widget or Markdown library: those load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "instance",
    "load_ipython_extension",
    "panel",
    "unload_ipython_extension",
]

_magics: Any = None


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%aiml`` / ``%aiml`` (called by ``%load_ext aiml_magics``)."""
    global _magics
    from .magics import AIMLMagics

    if _magics is not None and _magics.shell is ipython:
        return
    _magics = AIMLMagics(shell=ipython)
    ipython.register_magics(_magics)


def unload_ipython_extension(ipython: Any) -> None:
    global _magics
    if _magics is not None:
        ipython.magics_manager.magics["line"].pop("aiml", None)
        ipython.magics_manager.magics["cell"].pop("aiml", None)
        if _magics in getattr(ipython, "configurables", []):
            ipython.configurables.remove(_magics)
        client = _magics._client
        if client is not None:
            client.close()
        _magics = None


def instance() -> Any:
    """The loaded ``AIMLMagics`` instance (its traits are the settings)."""
    if _magics is None:
        raise RuntimeError("Run `%load_ext aiml_magics` first.")
    return _magics


def panel() -> None:
    """Show the control panel (as ``%aiml panel`` does): widgets bound to the loaded settings."""
    from .controls import show_panel

    show_panel(instance())
