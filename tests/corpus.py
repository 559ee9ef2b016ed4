"""The provider corpus (``tests/fixtures/providers``): load it, and serve a fixture byte for byte.

Each fixture is a body a provider sent, written for this project with its own text in the wire
shape of a public recording (``index.json`` names it). ``replay()`` hands the bytes to the fake
as a ``RawStream``: one HTTP chunk per SSE event (the recordings' boundaries), or cut every
``size`` bytes to prove nothing depends on where reads end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .fakeapi import RawStream

HERE = Path(__file__).parent / "fixtures" / "providers"


def fixtures() -> list[dict[str, Any]]:
    return list(json.loads((HERE / "index.json").read_text("utf-8"))["fixtures"])


def body(entry: dict[str, Any]) -> bytes:
    return (HERE / entry["file"]).read_bytes()


def replay(entry: dict[str, Any], size: int | None = None) -> RawStream:
    """The fixture as the fake's next answer: verbatim bytes and the recorded content type."""
    data = body(entry)
    if size is not None:
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
    elif entry["stream"]:
        pieces = [p for p in re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)", data) if p]
    else:
        pieces = [data]
    return RawStream(pieces, content_type=entry["content_type"])
