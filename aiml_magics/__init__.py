"""Chat completions from the AI/ML API in notebooks (``%%aiml``) and in plain Python (``chat``).

``import aiml_magics`` and ``%load_ext aiml_magics`` import no HTTP, widget or Markdown library:
the public names below load on first use (``aiml_magics.Session`` imports the core, never
IPython), and the extension hook imports only the magic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "__version__": "version",
    "Session": "session",
    "chat": "api",
    "default_session": "api",
    "map": "api",
    "log": "api",
    "Log": "storelog",
    "Batch": "batch",
    "Failure": "batch",
    "SchemaMismatch": "schema",
    "compare": "api",
    "explain": "api",
    "fix": "api",
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
    "LimitError": "errors",
    "StreamInterrupted": "errors",
    "ToolRoundsExceeded": "errors",
    "ToolCall": "toolcall",
    "Tool": "tools",
}

__all__ = [
    "AIMLError", "APIStatusError", "AuthenticationError", "BadRequestError", "Batch", "ChatResponse",
    "Comparison", "ComparisonError", "compare",
    "ConfigError", "ConnectError", "CreditsError", "Exchange", "Failure", "History", "IncompleteAnswer",
    "LimitError", "MissingKeyError", "NotFoundError", "ParameterError", "ProtocolError", "RateLimitError",
    "ResponseTimeout", "SchemaMismatch", "ServerError", "Session", "Settings", "StreamInterrupted",
    "Tool", "ToolCall", "ToolRoundsExceeded", "Usage", "__version__", "chat", "default_session",
    "explain", "fix", "instance", "load_ipython_extension", "Log", "log", "map", "panel",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .api import chat, compare, default_session, explain, fix, log, map
    from .batch import Batch, Failure
    from .comparison import Comparison, ComparisonError
    from .errors import (
        AIMLError,
        APIStatusError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        ConnectError,
        CreditsError,
        IncompleteAnswer,
        LimitError,
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
    from .response import ChatResponse, Usage
    from .schema import SchemaMismatch
    from .session import Session
    from .settings import Settings
    from .storelog import Log
    from .toolcall import ToolCall
    from .tools import Tool
    from .version import __version__

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiml_magics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%aiml`` / ``%aiml`` (called by ``%load_ext aiml_magics``)."""
    from .notebook import load  # the one deferred import: the notebook layer

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook import unload

    unload(ipython)


def instance() -> Any:
    """The loaded ``AIMLMagics`` instance (its traits are the settings)."""
    from .notebook import loaded

    magics = loaded()
    if magics is None:
        raise RuntimeError("Run `%load_ext aiml_magics` first.")
    return magics


def panel() -> None:
    """Show the control panel (as ``%aiml panel`` does): widgets bound to the loaded settings."""
    from .notebook.panel import show_panel

    show_panel(instance())
