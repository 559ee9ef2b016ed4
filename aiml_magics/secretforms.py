"""The forms a key can come back in, and which pieces of it are worth hiding.

Redaction must catch a key whole, cut by an excerpt, upper-cased, spaced or wrapped, base64-encoded
at any byte alignment (a Basic auth header, a JSON-in-base64 error) and URL-encoded; and it must
not eat ordinary words when the key is made of words (``sk-litellm-test``, ``token-abc123``).

The rule: the whole key, in any of its forms, is always masked. A cut piece is masked only when it
carries at least ``MIN_BITS`` of the key's guessing entropy, estimated per character from the
key's own shape: a run of letters that reads like a word (all lower, all upper, Capitalised) is
worth about 12 bits per 6 letters, a run of mixed-case letters 5.7 bits a letter, other letters
4.7, digits 3.3, separators (``-_.:``) 1, other symbols 5. A random 40-character key is thus
caught from any 8 of its characters, as before; ``sk-litellm-test`` only from 13 or more
(``sk-litellm-te``), so "Hello from LiteLLM - a list" stays as it was. Matching ignores case and
whitespace. No IPython here.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

MIN_BITS = 40.0  # a piece with less than this is a guess a reader could make anyway
MIN_PIECE = 8  # never mask fewer characters than this from a cut piece
MIN_ENCODED = 10  # the stable middle of an encoded key must be this long to be looked for
_RUNS = re.compile(r"[A-Za-z]+|[0-9]+|.", re.S)
_SEPARATORS = frozenset("-_.:")


class _Hidden(str):
    """A form of a key: a plain str to search with, masked for any inspector that walks here."""

    def __repr__(self) -> str:
        return "'****'"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class Forms:
    """What to look for (already lower-cased, without whitespace): ``wholes`` are masked entirely
    (the key itself first), ``pieces`` are the shortest cuts that carry ``MIN_BITS``. Its repr
    shows nothing of the key."""

    wholes: tuple[str, ...]
    pieces: frozenset[str]

    def __repr__(self) -> str:
        return f"<Forms: {len(self.wholes)} whole form(s), {len(self.pieces)} piece(s), masked>"

    @property
    def longest(self) -> int:
        return max((len(w) for w in self.wholes), default=0)


def char_bits(key: str) -> list[float]:
    """The estimated guessing entropy of each character of ``key`` (see the module)."""
    bits: list[float] = []
    for run in _RUNS.findall(key):
        n = len(run)
        if run.isalpha() and run.isascii():
            wordy = n >= 4 and (run.islower() or run.isupper() or (run[0].isupper() and run[1:].islower()))
            if wordy:
                bits += [12.0 * math.ceil(n / 6) / n] * n
            elif n > 1 and not (run.islower() or run.isupper()):
                bits += [5.7] * n
            else:
                bits += [4.7] * n
        elif run.isdigit():
            bits += [3.3] * n
        else:
            bits.append(1.0 if run in _SEPARATORS else 5.0)
    return bits


def pieces(key: str) -> frozenset[str]:
    """For each start, the shortest piece of ``key`` that carries ``MIN_BITS`` (and is at least
    ``MIN_PIECE`` long): any longer piece contains one of these."""
    bits = char_bits(key)
    found = set()
    for start in range(len(key)):
        total = 0.0
        for end in range(start, len(key)):
            total += bits[end]
            if total >= MIN_BITS and end + 1 - start >= MIN_PIECE:
                found.add(key[start : end + 1].lower())
                break
    return frozenset(found)


def base64_cores(key: str) -> list[str]:
    """The part of ``base64(... + key + ...)`` that is the same whatever surrounds the key, for each
    of the 3 byte alignments, in the standard and URL-safe alphabets."""
    raw = key.encode()
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0\0").decode()
        first = math.ceil(shift * 8 / 6)
        last = (shift + len(raw)) * 8 // 6  # characters wholly inside the key's bits
        core = encoded[first:last]
        if len(core) >= MIN_ENCODED:
            out += [core, core.replace("+", "-").replace("/", "_")]
    return out


def url_forms(key: str) -> list[str]:
    """The key URL-encoded: as a path or query would quote it, and every byte as ``%XX``."""
    every = "".join(f"%{b:02X}" for b in key.encode())
    return [quote(key, safe=""), quote_plus(key), every]


@functools.lru_cache(maxsize=16)
def forms(key: str) -> Forms:
    """Everything to look for to hide ``key`` (whitespace already removed). Kept for the last
    few keys: a worker process that was handed the key redacts every row with it."""
    whole = key.lower()
    others = [f.lower() for f in [*base64_cores(key), *url_forms(key)]]
    wholes = tuple(_Hidden(w) for w in dict.fromkeys([whole, *(f for f in others if f != whole)]))
    cuts = frozenset(_Hidden(p) for p in pieces(key)) if len(key) > MIN_PIECE else frozenset()
    return Forms(wholes, cuts)
