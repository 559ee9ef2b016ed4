"""The Jupyter face: the only code that imports ``IPython.core.magic`` or ``ipywidgets``.

This ``__init__`` holds the one loaded ``AIMLMagics`` (``%load_ext`` makes it) and imports nothing
heavy itself: ``aiml_magics.chat()`` asks it whether a notebook session exists.
"""

from __future__ import annotations

from typing import Any

_magics: Any = None
# The shell's AIMLMagics config section as it was at load (ipython_config.py, say): unloading
# puts it back, so `%reload_ext aiml_magics` starts afresh, without this session's `%config`s.
_config_at_load: Any = None


def loaded() -> Any:
    """The loaded ``AIMLMagics``, or None before ``%load_ext aiml_magics``."""
    return _magics


def load(ipython: Any) -> None:
    global _magics, _config_at_load
    import copy

    from ..http.urls import register_env_keys
    from .magics import AIMLMagics

    register_env_keys()  # masked from %load_ext on, before any answer (even a replayed one)
    if _magics is not None and _magics.shell is ipython:
        return
    config = getattr(ipython, "config", None)
    section = config.get("AIMLMagics") if config is not None and "AIMLMagics" in config else None
    _config_at_load = copy.deepcopy(section)
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
    config = getattr(ipython, "config", None)
    if config is not None:  # this session's %config values go with it
        config.pop("AIMLMagics", None)
        if _config_at_load is not None:
            config["AIMLMagics"] = _config_at_load
