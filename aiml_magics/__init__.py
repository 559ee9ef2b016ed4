"""Chat completions from the AI/ML API in notebooks (``%%aiml``) and in plain Python (``chat``).

``import aiml_magics`` and ``%load_ext aiml_magics`` import no HTTP, widget or Markdown library:
the public names below load on first use (``aiml_magics.Session`` imports the core, never
IPython), and the extension hook imports only the magic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "Session": "session",
    "chat": "session",
    "default_session": "session",
    "map": "batch",
    "Batch": "batch",
    "Failure": "batch",
    "SchemaMismatch": "schema",
    "compare": "comparison",
    "Comparison": "comparison",
    "ComparisonError": "comparison",
    "ChatResponse": "response",
    "Usage": "response",
    "History": "history",
    "Exchange": "history",
    "Settings": "settings",
    "AIMLError": "errors",
    "ParameterError": "errors",
    "ConfigError": "errors",
    "MissingKeyError": "errors",
    "APIStatusError": "errors",
    "BadRequestError": "errors",
    "AuthenticationError": "errors",
    "CreditsError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "ConnectError": "errors",
    "ResponseTimeout": "errors",
    "ProtocolError": "errors",
    "IncompleteAnswer": "errors",
    "StreamInterrupted": "errors",
    "ToolRoundsExceeded": "errors",
    "ToolCall": "response",
    "Tool": "tools",
}

__all__ = [
    "AIMLError", "APIStatusError", "AuthenticationError", "BadRequestError", "Batch", "ChatResponse",
    "Comparison", "ComparisonError", "compare",
    "ConfigError", "ConnectError", "CreditsError", "Exchange", "Failure", "History", "IncompleteAnswer",
    "MissingKeyError", "NotFoundError", "ParameterError", "ProtocolError", "RateLimitError",
    "ResponseTimeout", "SchemaMismatch", "ServerError", "Session", "Settings", "StreamInterrupted",
    "Tool", "ToolCall", "ToolRoundsExceeded", "Usage", "__version__", "chat", "default_session",
    "instance", "load_ipython_extension", "map", "panel",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .batch import Batch, Failure, map
    from .comparison import Comparison, ComparisonError, compare
    from .errors import (
        AIMLError,
        APIStatusError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        ConnectError,
        CreditsError,
        IncompleteAnswer,
        MissingKeyError,
        NotFoundError,
        ParameterError,
        ProtocolError,
        RateLimitError,
        ResponseTimeout,
        ServerError,
        StreamInterrupted,
        ToolRoundsExceeded,
    )
    from .history import Exchange, History
    from .response import ChatResponse, ToolCall, Usage
    from .schema import SchemaMismatch
    from .session import Session, chat, default_session
    from .settings import Settings
    from .tools import Tool

_magics: Any = None
# The shell's AIMLMagics config section as it was at load (ipython_config.py, say): unloading
# puts it back, so `%reload_ext aiml_magics` starts afresh, without this session's `%config`s.
_config_at_load: Any = None


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiml_magics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%aiml`` / ``%aiml`` (called by ``%load_ext aiml_magics``)."""
    global _magics, _config_at_load
    import copy

    from .magics import AIMLMagics  # the one deferred import: the notebook layer

    if _magics is not None and _magics.shell is ipython:
        return
    config = getattr(ipython, "config", None)
    section = config.get("AIMLMagics") if config is not None and "AIMLMagics" in config else None
    _config_at_load = copy.deepcopy(section)
    _magics = AIMLMagics(shell=ipython)
    ipython.register_magics(_magics)


def unload_ipython_extension(ipython: Any) -> None:
    global _magics
    if _magics is not None:
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


def instance() -> Any:
    """The loaded ``AIMLMagics`` instance (its traits are the settings)."""
    if _magics is None:
        raise RuntimeError("Run `%load_ext aiml_magics` first.")
    return _magics


def panel() -> None:
    """Show the control panel (as ``%aiml panel`` does): widgets bound to the loaded settings."""
    from .controls import show_panel

    show_panel(instance())
