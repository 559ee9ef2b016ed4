"""Deterministic Markdown answers cut into tokens, like a model's stream.

Every block kind that can break when a stream is rendered piecewise is here: headings, long
paragraphs, bullet and numbered lists, a table, a blockquote and code fences.
"""

from __future__ import annotations

import re

_WORDS = (
    "the model streams tokens while the notebook keeps rendering markdown blocks and every frozen "
    "paragraph is sent once so bytes stay linear in the answer length instead of quadratic when "
    "chunks arrive quickly over a loopback connection with keep alive reuse across cells"
).split()

_TOKEN = re.compile(r"\s*\S{1,5}")


def _sentence(i: int, n: int) -> str:
    words = [_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(n)]
    return " ".join(words).capitalize() + "."


def _section(i: int) -> str:
    para = " ".join(_sentence(i + k, 9 + (i + k) % 7) for k in range(4))
    kind = i % 4
    if kind == 0:
        extra = "\n".join(f"- item {k}: {_sentence(i + k, 6)}" for k in range(5))
    elif kind == 1:
        extra = "| name | value | note |\n|---|---:|---|\n" + "\n".join(
            f"| row{k} | {i * 10 + k} | {_sentence(k, 3)} |" for k in range(6)
        )
    elif kind == 2:
        extra = (
            "```python\n"
            + "\n".join(
                f"def step_{i}_{k}(x):\n    return x * {k} + {i}  # {_WORDS[k % len(_WORDS)]}"
                for k in range(6)
            )
            + "\n```"
        )
    else:
        extra = "\n".join(f"{k + 1}. {_sentence(i * 2 + k, 5)}" for k in range(4)) + (
            f"\n\n> {_sentence(i, 12)}"
        )
    return f"## Section {i + 1}\n\n{para}\n\n{extra}\n\n{_sentence(i + 5, 14)}"


def tokenize(text: str) -> list[str]:
    """Split into word-sized pieces (leading whitespace attached, at most 5 visible chars)."""
    tokens = _TOKEN.findall(text)
    assert "".join(tokens) == text, "text must not end in whitespace"
    return tokens


def answer_tokens(n_tokens: int) -> list[str]:
    """Exactly ``n_tokens`` tokens of a Markdown answer made of whole sections plus a last paragraph."""
    parts = ["# A streamed answer"]
    i = 0
    while True:
        candidate = "\n\n".join([*parts, _section(i)])
        if len(tokenize(candidate)) > n_tokens - 20:
            break
        parts.append(_section(i))
        i += 1
    tokens = tokenize("\n\n".join(parts) + "\n\nDone")
    while len(tokens) < n_tokens:
        tokens.insert(-1, " " + _WORDS[len(tokens) % len(_WORDS)])
    return tokens[:n_tokens]


def answer_chars(n_chars: int) -> list[str]:
    """A Markdown answer of at least ``n_chars`` characters, as tokens."""
    parts = ["# A long answer"]
    i = 0
    while sum(len(p) + 2 for p in parts) < n_chars:
        parts.append(_section(i))
        i += 1
    return tokenize("\n\n".join(parts))
