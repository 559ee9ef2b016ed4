"""The API key: masking, redaction before any clipping, and a registry whose repr is masked.

A key can come back from anywhere: an error page that echoes it (whole, cut by an excerpt,
upper-cased, wrapped over lines, base64- or URL-encoded), or an answer that quotes it. Redaction
looks for every form ``secretforms.py`` derives from a known secret, ignoring case and whitespace,
and runs on the full text before anything is clipped. A cut piece must carry enough of the key's
entropy, so a key made of words does not eat the words of an answer. No IPython here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from .secretforms import Forms, forms

_WS = re.compile(r"\s+")
_NOT_WS = re.compile(r"\S")
# What str.isspace() (and so re's \s) calls whitespace: dropped by translate, which makes one copy
# in C instead of re.sub's list of pieces.
_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)
# Keys are printable ASCII, so folding ASCII letters is enough; str.lower() on non-ASCII text
# would allocate several times the text.
_FOLD: dict[int, int | None] = {**dict.fromkeys(map(ord, _SPACES)), **{c: c + 32 for c in range(65, 91)}}


def mask_key(key: str | None) -> str:
    """The most of a key we ever show: its last 4 characters, and only for long keys."""
    if not key:
        return "(not set)"
    key = str.__str__(key)
    return "****" + key[-4:] if len(key) >= 16 else "****"


class Secret(str):
    """A str that never shows itself: repr/str/format give the masked form; ``reveal()`` the value.

    Used wherever a key sits in an object a user, a variable inspector or a verbose traceback can
    reach (settings, IPython's config, the client, the Authorization header value).
    """

    def __repr__(self) -> str:
        return repr(mask_key(self.reveal()))

    def __str__(self) -> str:
        return mask_key(self.reveal())

    def __format__(self, spec: str) -> str:
        return format(mask_key(self.reveal()), spec)

    def reveal(self) -> str:
        return str.__str__(self)


class BearerHeader(Secret):
    """``Bearer <key>`` for the Authorization header; its repr and str stay masked."""

    def __repr__(self) -> str:
        return repr(f"Bearer {mask_key(self.reveal()[7:])}")

    def __str__(self) -> str:
        return f"Bearer {mask_key(self.reveal()[7:])}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def reveal(value: str | None) -> str | None:
    """The plain value of a possibly wrapped secret."""
    return None if value is None else str.__str__(value)


class SecretRegistry:
    """The secrets every message and view scrubs. Copy-on-write: a reader never sees a set that
    another thread is changing, and no lock is held while text is scanned (writers take one, so
    two sessions registering keys at once both stay registered)."""

    def __init__(self) -> None:
        self._items: tuple[Secret, ...] = ()
        self._forms: tuple[Forms, ...] = ()  # one per item, same order
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SecretRegistry: {len(self._items)} secret(s), masked>"

    def __len__(self) -> int:
        return len(self._items)

    def add(self, secret: str | None) -> None:
        """Remember a secret (stripped of surrounding whitespace) so every later message scrubs it."""
        value = _WS.sub("", reveal(secret) or "")
        if len(value) < 4:
            return
        if value in self._items:
            return
        found = forms(value)
        with self._lock:
            if value not in self._items:
                self._forms = (*self._forms, found)
                self._items = (*self._items, Secret(value))

    def items(self) -> tuple[Secret, ...]:
        return self._items

    def longest(self) -> int:
        """The longest form of any secret: a streaming reader holds back at least this much."""
        return max((f.longest for f in self._forms), default=0)

    def redacted(self, text: str) -> tuple[str, bool]:
        """(the text redacted, whether anything was masked): for ``.warnings``."""
        out = self.redact(text)
        return out, out is not text

    def redact(self, text: str, extra: Iterable[str | None] = ()) -> str:
        """Mask every form of a known secret (case and whitespace ignored); the text itself when
        nothing was found."""
        out, last = [], 0
        for start, end, mask in self.spans(text, extra):
            out.append(text[last:start])
            out.append(mask)
            last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def spans(self, text: str, extra: Iterable[str | None] = ()) -> list[tuple[int, int, str]]:
        """(start, end, mask) of every stretch of ``text`` that is a piece of a secret, in order."""
        known = self._items
        extras = [forms(v) for v in (_WS.sub("", reveal(s) or "") for s in extra if s)
                  if len(v) >= 4 and v not in known]  # a registered key's forms are at hand
        every = (*self._forms, *extras)
        if not text or not every:
            return []
        squeezed = text.translate(_FOLD)
        hits = [g for f in every for g in (*f.wholes, *f.pieces) if g in squeezed]
        if not hits:
            return []
        keys = {f.wholes[0] for f in every}
        return _spans(text, squeezed, hits, keys)


def _spans(text: str, squeezed: str, hits: list[str], keys: set[str]) -> list[tuple[int, int, str]]:
    """The stretches covered by the found forms; one that is exactly a whole key keeps its tail."""
    positions = [m.start() for m in _NOT_WS.finditer(text)]
    covered: list[tuple[int, int]] = []
    for gram in hits:
        at = squeezed.find(gram)
        while at >= 0:
            end = at + len(gram)
            if _laid_out_like_a_key(text, positions, at, end):
                covered.append((at, end))
            at = squeezed.find(gram, at + 1)
    covered.sort()
    merged: list[list[int]] = []
    for a, b in covered:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for a, b in merged:
        whole = squeezed[a:b] in keys and b - a >= 16
        tail = "".join(text[p] for p in positions[b - 4 : b]) if whole else ""
        out.append((positions[a], positions[b - 1] + 1, "****" + tail))
    return out


def _laid_out_like_a_key(text: str, positions: list[int], at: int, end: int) -> bool:
    """Whether the found stretch is spaced as a quoted key is: in one piece, broken once, spaced
    out a character at a time, or wrapped at one width (full middle lines). Prose that happens to
    spell a word-like key across words ("token\n- abc123") is none of these."""
    first, last = positions[at], positions[end - 1]
    if last - first == end - 1 - at:
        return True  # no whitespace inside
    chunks = text[first : last + 1].split()
    if len(chunks) <= 2:
        return True
    widths = [len(c) for c in chunks]
    if max(widths) == 1:
        return True
    width = widths[1]
    return all(w == width for w in widths[1:-1]) and widths[0] <= width and widths[-1] <= width


def redact_obj(obj: Any, registry: SecretRegistry) -> Any:
    """JSON-like data with every string redacted, field names too (bodies kept in ``.raw``): a
    copy when anything was masked, else ``obj`` itself. One scan of all its strings first: a
    piece of a secret in any one string is a piece of their whitespace-joined text too (spans
    ignore whitespace), so an answer without one costs one scan, not one per string (map() reads
    thousands)."""
    if not any_piece_in(registry, strings_of(obj)):
        return obj
    return _redact_obj(obj, registry)


def any_piece_in(registry: SecretRegistry, strings: list[str]) -> bool:
    """Whether any of ``strings`` holds a piece of a secret: the short ones in one scan of them
    joined, each long one on its own, and the same string object once (an answer's text is also
    in its ``.raw``): joining a long answer would copy it, and its folded copy, again."""
    seen: set[int] = set()
    short: list[str] = []
    for text in strings:
        if id(text) in seen:
            continue
        seen.add(id(text))
        if len(text) > LONG_STRING:
            if registry.spans(text):
                return True
        else:
            short.append(text)
    return bool(short) and bool(registry.spans("\n".join(short)))


LONG_STRING = 1 << 16  # characters: scanned on its own rather than joined with the rest


def strings_of(obj: Any, out: list[str] | None = None) -> list[str]:
    """Every string in JSON-like data, the names of fields too (a service can echo a key as
    one), in order."""
    out = [] if out is None else out
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str):
                out.append(k)
            strings_of(v, out)
    elif isinstance(obj, list):
        for v in obj:
            strings_of(v, out)
    return out


def _redact_obj(obj: Any, registry: SecretRegistry) -> Any:
    if isinstance(obj, str):
        return registry.redact(obj)
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            name = registry.redact(k) if isinstance(k, str) else k
            while name in out:  # a masked name meeting another: both kept
                name = f"{name}'"
            out[name] = _redact_obj(v, registry)
        return out
    if isinstance(obj, list):
        return [_redact_obj(v, registry) for v in obj]
    return obj


def forget_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames under a user-facing error, and of the errors it
    came from: ``%tb``, ``%debug`` and ``%xmode Verbose`` would otherwise show a response body or
    header that quotes the key. The error's own message is already redacted."""
    import traceback

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        todo += [e.__cause__, e.__context__]
    exc.__context__ = None
