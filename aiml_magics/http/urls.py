"""Base URLs and where the key may go: parsed once, with the parser the transport uses.

The loopback check and the connection must agree on the host: ``urllib.parse`` and urllib3 read
``http://evil.example\\@127.0.0.1/v1`` differently, so every check here uses urllib3's parser and
anything two parsers could read two ways is refused. No IPython, no network.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from typing import Any

from ..errors import AIMLError, ConfigError, register_secret

DEFAULT_BASE_URL = "https://api.aimlapi.com/v1"
BASE_VARS = ("AIML_API_BASE", "AIMLAPI_API_BASE")
KEY_VARS = ("AIML_API_KEY", "AIMLAPI_API_KEY")


def register_env_keys() -> None:
    """Every key set in the environment is masked from the moment it can be seen, not from the
    first live request: a replayed or cached answer may quote it before any request is made."""
    for name in KEY_VARS:
        register_secret(os.environ.get(name, "").strip() or None)


def env_value(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first set variable among ``names``: (value, variable name)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value, name
    return None, None


def _parse(url: str) -> Any:
    """The URL as urllib3 reads it: the parser requests and urllib3 use to pick where to connect,
    so the host we check is the host we connect to."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        return parse_url(url)
    except (LocationParseError, ValueError):
        return None


def _refuse(problem: str) -> AIMLError:
    # The URL itself is not repeated: a refused one may carry a password or a key.
    return ConfigError(
        f"base_url is refused: it {problem}; write it as scheme://host[:port]/path, such as "
        f"{DEFAULT_BASE_URL!r}."
    )


@functools.lru_cache(maxsize=32)
def normalize_base_url(url: str) -> str:
    """Accept the base with or without ``/v1`` (the service does) and trailing slashes; refuse
    anything parsers could read two ways, or that would put credentials in the URL."""
    url = url.strip().rstrip("/")
    if "\\" in url:
        raise _refuse("contains a backslash, which URL parsers read differently (one may see "
                      "another host than the one checked)")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise _refuse("contains a space or a control character")
    parts = _parse(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.host:
        if parts is not None and parts.auth:
            raise _refuse("contains user-info (user:password@ before the host)")
        raise ConfigError(f"base_url = {url!r} is not an http(s) URL: use e.g. {DEFAULT_BASE_URL!r}.")
    if parts.auth is not None or "@" in (url.split("://", 1)[-1].split("/", 1)[0]):
        raise _refuse("contains user-info (user:password@ before the host); the key is sent as "
                      "a header, never in the URL")
    if parts.query is not None or "?" in url:
        raise _refuse("has a query string (?...)")
    if parts.fragment is not None or "#" in url:
        raise _refuse("has a fragment (#...)")
    if parts.path in (None, "", "/"):
        url += "/v1"
    return url


def url_host(url: str) -> str:
    """The host urllib3 connects to for ``url`` (lower-case, IPv6 without brackets)."""
    parts = _parse(url)
    return ((parts.host if parts is not None else None) or "").lower().strip("[]")


def url_scheme(url: str) -> str:
    parts = _parse(url)
    return ((parts.scheme if parts is not None else None) or "").lower()


@functools.lru_cache(maxsize=32)
def is_loopback(url: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: decided from the text, no name lookup.

    Only the exact name ``localhost``: a resolver may send ``x.localhost`` to DNS.
    """
    host = url_host(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
