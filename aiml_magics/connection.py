"""Where requests go and with what key: the session's settings resolved, and its shared client.

The key is looked up when a request needs it (the setting, else the environment), wrapped in a
``Secret`` so no repr or frame shows it; the client is rebuilt only when what it was built from
changes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import register_secret
from .http.urls import BASE_VARS, KEY_VARS, env_value, register_env_keys
from .secrets import Secret

if TYPE_CHECKING:
    from .http.client import AIMLClient
    from .settings import Settings


class Connection:
    """The key, the base URL and the shared client of one session."""

    def __init__(self, settings: Settings, key_source: str | None) -> None:
        self.settings = settings
        self.key_source = key_source
        self.client_obj: AIMLClient | None = None
        self._ident_built: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        register_env_keys()

    @property
    def store(self) -> Any:
        """Where exchanges are kept: the ``store`` setting, else ``AIML_STORE``, else the user's
        data folder; None when turned off (``remember.py``). Opened on first use."""
        from .remember import open_store, store_path

        return open_store(store_path(self.settings.store))

    def where(self) -> tuple[str, str]:
        """The store for people: its path and size, and what chose it."""
        import os

        store = self.store
        chosen = ("%config" if self.settings.store is not None
                  else "environment AIML_STORE" if os.environ.get("AIML_STORE") is not None
                  else "default")
        if store is None:
            return "off (nothing is kept)", chosen
        from .dataurl import size_words

        return f"{store.path} ({size_words(store.size())})", chosen

    def effective_key(self) -> tuple[Secret | None, str]:
        """The key that will be sent and where it came from (the setting, else the environment)."""
        key = self.settings.api_key
        if key:
            return Secret(str.__str__(key)), self.key_source or "%config"
        value, var = env_value(KEY_VARS)
        if value:
            register_secret(value)
            return Secret(value), f"environment {var}"
        return None, "not set"

    def effective_base(self) -> tuple[str, str]:
        from .http.urls import DEFAULT_BASE_URL, normalize_base_url

        if self.settings.base_url:
            return normalize_base_url(self.settings.base_url), "%config"
        value, var = env_value(BASE_VARS)
        if value:
            return normalize_base_url(value), f"environment {var}"
        return DEFAULT_BASE_URL, "default"

    def _ident(self) -> tuple[Any, ...]:
        s = self.settings
        key, _ = self.effective_key()
        base, _ = self.effective_base()
        return (key, base, s.timeout, s.max_retries, s.allow_insecure_http, s.max_answer_bytes, s.max_wait)

    @staticmethod
    def _build(ident: tuple[Any, ...]) -> AIMLClient:
        from .http.client import AIMLClient

        key, base, timeout, max_retries, insecure, max_bytes, max_wait = ident
        return AIMLClient(key, base, timeout=timeout, max_retries=max_retries, max_wait=max_wait,
                          allow_insecure_http=insecure, max_answer_bytes=max_bytes)

    def client(self) -> AIMLClient:
        """The shared client, rebuilt only when key, base URL or transport settings change."""
        ident = self._ident()
        with self._lock:
            if self.client_obj is None or ident != self._ident_built:
                old = self.client_obj
                self.client_obj, self._ident_built = self._build(ident), ident
                if old is not None:
                    old.close()
                    if old.base_url == self.client_obj.base_url:  # the models list: once per session
                        self.client_obj.adopt_models(old)
            return self.client_obj

    def fresh_client(self) -> AIMLClient:
        """A client of its own with the shared one's settings, for a thread that must not share a
        connection pool (each model of a comparison). The caller closes it."""
        return self._build(self._ident())

    def close(self) -> None:
        with self._lock:
            if self.client_obj is not None:
                self.client_obj.close()
                self.client_obj = None
