"""JSON from the service or from files, parsed within bounds: hostile input never crashes us.

``json.loads`` recurses once per nesting level (a body nested 100,000 deep raises
``RecursionError``), reads ``1e999`` as ``inf`` (``int(inf)`` later raises ``OverflowError``) and
takes any size. :func:`loads` refuses oversized text and deep nesting *before* parsing (fast
passes in C for the usual shallow chunk), and reads non-finite numbers as absent (``None``).
Every refusal is a :class:`JSONRefused`, a ``ValueError``, so callers treat it as bad JSON.
One loader for bodies, stream chunks, ``--json`` answers, cassettes and the models list.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deepest nesting accepted. Real bodies nest under 10 levels; json's C parser recurses per
#: level, and a notebook's stack is already some 100 frames deep below the 1,000 limit.
MAX_DEPTH = 200
#: Default size bound (characters of text, or bytes): a caller with a tighter need passes its own.
MAX_BYTES = 64 * 1024 * 1024

# A JSON string, escapes included (unrolled loop: no backtracking on long strings).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class JSONRefused(ValueError):
    """Text that is too large or nested too deeply to parse safely."""


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _absent(_name: str) -> None:
    """NaN, Infinity and -Infinity are not JSON: read them as absent."""
    return None


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_absent)  # built once: hot path


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """True when ``text`` nests arrays/objects deeper than ``limit`` (strings do not count)."""
    if text.count("[") + text.count("{") <= limit:  # cannot nest deeper than it opens
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON with a size and depth bound; non-finite numbers become None.

    Raises :class:`JSONRefused` (a ``ValueError``) with a reason a person can read, or the
    ``ValueError`` of ``json.loads`` for text that is simply not JSON.
    """
    if len(data) > max_bytes:
        raise JSONRefused(f"larger than {describe_size(max_bytes)}")
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if too_deep(text, max_depth):
        raise JSONRefused(f"nested more than {max_depth} levels deep")
    return _DECODER.decode(text)


def describe_size(n: int) -> str:
    """A byte count as people say it (1 MiB, 8 KiB, 300 bytes)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


__all__ = ["JSONRefused", "MAX_BYTES", "MAX_DEPTH", "describe_size", "loads", "too_deep"]


_BIGGEST = 2**63  # token counts beyond this are not counts: read them as absent


def _int(value: Any) -> int | None:
    """A count from loosely typed JSON; None for anything that is not a sensible integer
    (``1e999``, ``NaN``, 400-digit numbers, strings, lists), so no later arithmetic can overflow."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -_BIGGEST < number < _BIGGEST else None


def _float(value: Any) -> float | None:
    """A finite number from loosely typed JSON (int, float or numeric string); None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _str(value: Any) -> str | None:
    """A string field, or None when the service (or a cassette) put something else there."""
    return value if isinstance(value, str) else None


_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """Parse a ``--json`` answer; models often wrap it in a code fence, so strip one."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    try:
        return loads(candidate), None
    except ValueError as exc:
        return None, f"the answer is not valid JSON ({exc}); .data is None, .text has the answer"
