"""The Jupyter face: the only code that imports ``IPython.core.magic`` or ``ipywidgets``.

This ``__init__`` holds the one loaded ``AIMLMagics`` and imports nothing heavy itself:
``aiml_magics.chat()`` asks it whether a notebook session exists.

``%load_ext`` registers ``%aiml``/``%%aiml`` and starts watching what cells print and display,
then stops: the settings (``AIMLMagics``, 37 traits, the parameter table, the key masking) are
built by the first thing that needs them (a ``%aiml``/``%%aiml`` cell, ``%config``, ``instance()``,
``panel()``, ``chat()`` in the notebook), through the stand-ins below (kept in this module: each
module imported at load costs about a tenth of a millisecond). With an ``AIMLMagics`` section
already in the shell's config (``ipython_config.py``), they are built at load, so a key from there
is masked at once and a bad value is refused there.
"""

from __future__ import annotations

import threading
from typing import Any

_magics: Any = None
# Loaded, but the settings not built yet: the stand-ins (Pending).
_pending: Any = None
# The shell's AIMLMagics config section as it was at load (ipython_config.py, say): unloading
# puts it back, so `%reload_ext aiml_magics` starts afresh, without this session's `%config`s.
_config_at_load: Any = None
# One build at a time: threads that ask for the settings at once (chat() from a pool) share one.
_building = threading.RLock()


def loaded() -> Any:
    """The loaded ``AIMLMagics`` (built now if only its stand-ins are), or None before
    ``%load_ext aiml_magics``."""
    if _magics is None and _pending is not None:
        return build()
    return _magics


def load(ipython: Any) -> None:
    global _pending, _config_at_load
    for current in (_magics, _pending):
        if current is not None and current.shell is ipython:
            return
    config = getattr(ipython, "config", None)
    section = config.get("AIMLMagics") if config is not None and "AIMLMagics" in config else None
    if section is not None:
        import copy

        section = copy.deepcopy(section)
    _config_at_load = section
    recorder = None
    if hasattr(ipython, "events"):  # what each cell printed, the last error (executions.py)
        from ..executions import Recorder

        recorder = Recorder(ipython)
        recorder.start()
    _pending = Pending(ipython, recorder)
    if section is not None or not _pending.registered:
        try:
            build()
        except BaseException:  # a bad value in the config file: nothing stays loaded
            _drop_pending()
            raise


def build() -> Any:
    """The settings and the real magics, in place of the stand-ins (once)."""
    with _building:
        return _build()


def _build() -> Any:
    global _magics, _pending
    pending = _pending
    if _magics is not None or pending is None:
        return _magics
    from ..http.urls import register_env_keys
    from .magics import AIMLMagics

    register_env_keys()  # masked before any answer (even a replayed one)
    shell = pending.shell
    _pending = None  # a failure below leaves the stand-ins out of the way, not half-registered
    pending.withdraw()
    before = list(getattr(shell, "configurables", []))
    try:
        magics = AIMLMagics(shell=shell)
    except BaseException:
        # A bad %config value: refused, and the next use tries again. The half-made instance
        # (IPython lists a Magics among the configurables before its config is read) goes.
        if isinstance(getattr(shell, "configurables", None), list):
            shell.configurables[:] = [c for c in shell.configurables
                                      if c in before or not isinstance(c, AIMLMagics)]
        _pending = pending
        pending.register()
        raise
    shell.register_magics(magics)
    magics.recorder = pending.recorder  # it saw the cell running now, before the magics existed
    _magics = magics
    return magics


def _drop_pending() -> None:
    """The stand-ins withdrawn and their recorder stopped (a failed load, or an unload)."""
    global _pending
    pending, _pending = _pending, None
    if pending is not None:
        pending.withdraw()
        if pending.recorder is not None:
            pending.recorder.stop()


def unload(ipython: Any) -> None:
    global _magics
    if _magics is None and _pending is None:
        return
    _drop_pending()
    if _magics is not None:
        ipython.magics_manager.magics["line"].pop("aiml", None)
        ipython.magics_manager.magics["cell"].pop("aiml", None)
        if _magics in getattr(ipython, "configurables", []):
            ipython.configurables.remove(_magics)
        recorder = getattr(_magics, "recorder", None)
        if recorder is not None:
            recorder.stop()
        _magics.close()
        _magics = None
    config = getattr(ipython, "config", None)
    if config is not None:  # this session's %config values go with it
        config.pop("AIMLMagics", None)
        if _config_at_load is not None:
            config["AIMLMagics"] = _config_at_load


# -- the stand-ins -----------------------------------------------------------------------------------
# The settings are an ``AIMLMagics`` of 37 traits over the parameter table, with the key masking
# beside them; building them costs several times a minimal magic's whole load. Until something needs
# them, ``%aiml``/``%%aiml`` is a small callable and ``shell.configurables`` holds an object named
# ``AIMLMagics`` whose class reads as the real class's, so ``%config`` lists, describes, reads and
# sets the settings as before: whatever touches a setting builds them first (``build``), and from
# then on the real magics are registered in their place.


class _RealClass(type):
    """Class-level reads (``class_traits``, ``class_get_help``, ...) answered by the real class,
    which is imported for them but not instantiated."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from .magics import AIMLMagics as Real

        return getattr(Real, name)


class AIMLMagics(metaclass=_RealClass):
    """The settings' place in ``shell.configurables`` until they are built (same class name, so
    ``%config AIMLMagics...`` finds it); any other attribute read builds them and reads theirs."""

    def __setattr__(self, name: str, value: Any) -> None:
        """A setting assigned here is the settings' (built first), checked as theirs are."""
        setattr(build(), name, value)

    @classmethod
    def class_get_help(cls, inst: Any = None) -> str:
        """``%config AIMLMagics``: the real class's help, with the built settings' values."""
        if isinstance(inst, cls):
            built = build()
            return str(type(built).class_get_help(built))
        from .magics import AIMLMagics as Real

        return str(Real.class_get_help())

    def update_config(self, config: Any) -> None:
        """``%config AIMLMagics.name = value``: the settings are built, then take the value (a bad
        one is refused as usual)."""
        build().update_config(config)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probing for hooks
            raise AttributeError(name)
        return getattr(build(), name)

    def __repr__(self) -> str:
        return "<AIMLMagics: settings built on first use>"


class _Magic:
    """``%aiml`` / ``%%aiml`` until the settings exist: the first call builds them, then runs."""

    def __call__(self, line: str = "", cell: str | None = None) -> Any:
        return build().aiml(line, cell)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]  # `%%aiml?` shows the real usage
        from .magics import AIMLMagics as Real

        return Real.aiml.__doc__


class Pending:
    """The stand-ins registered on ``shell``, and the recorder started at load."""

    def __init__(self, shell: Any, recorder: Any) -> None:
        self.shell = shell
        self.recorder = recorder
        self.standin = AIMLMagics()
        self.magic = _Magic()
        self.registered = False
        from .lastimage import LastImage

        LastImage.watch(shell)  # from load on, what `--image` alone sends
        self.register()

    def register(self) -> None:
        shell = self.shell
        configurables = getattr(shell, "configurables", None)
        if not hasattr(shell, "register_magic_function") or not isinstance(configurables, list):
            return  # not an IPython shell: the settings are built at once
        shell.register_magic_function(self.magic, "line_cell", "aiml")
        if self.standin not in configurables:
            configurables.append(self.standin)
        self.registered = True

    def withdraw(self) -> None:
        if not self.registered:
            return
        self.registered = False
        manager = self.shell.magics_manager
        for kind in ("line", "cell"):
            if manager.magics[kind].get("aiml") is self.magic:
                del manager.magics[kind]["aiml"]
        if getattr(manager.user_magics, "aiml", None) is self.magic:
            delattr(manager.user_magics, "aiml")
        if self.standin in self.shell.configurables:
            self.shell.configurables.remove(self.standin)
