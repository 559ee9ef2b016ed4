"""The readings of a text in which a leaked key could still be read: as it is, URL-decoded, and
base64-decoded from every base64-looking run at every offset (standard and URL-safe alphabets).
Independent of the package's redaction, so a scanner built on it can catch what redaction missed."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_plus

_B64_RUN = re.compile(r"[A-Za-z0-9+/_=-]{12,}")
_WS = re.compile(r"\s+")


def readings(text: str) -> list[str]:
    """``text`` and its decoded readings, each lower-cased with whitespace removed."""
    out = [text, unquote_plus(text)]
    for run in _B64_RUN.findall(_WS.sub("", text)):
        run = run.replace("-", "+").replace("_", "/").rstrip("=")
        for off in range(4):
            part = run[off:]
            part = part[: len(part) - len(part) % 4]
            try:
                out.append(base64.b64decode(part).decode("latin-1"))
            except (binascii.Error, ValueError):
                pass
    return [_WS.sub("", r).lower() for r in out]


def found(text: str, pieces: list[str] | set[str]) -> list[str]:
    """The pieces (lower-case) readable in any reading of ``text``."""
    views = readings(text)
    return sorted({p for p in pieces for v in views if p in v})
