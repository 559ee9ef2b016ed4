"""Redaction both ways: every hostile echo of a key is caught; ordinary text is never touched.

The checks that a key was caught are independent of the code under test: the output is searched
for 16 characters of the key in clear, after removing whitespace and folding case, after
URL-decoding it, and after base64-decoding every base64-looking run at every offset.
"""

from __future__ import annotations

import base64
import inspect
import random
import string
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiml_magics.secrets import SecretRegistry
from tests.keyscan import found

WORDY_KEYS = ["sk-litellm-test", "token-abc123", "sk-my-team-key"]
SEEN = 16  # this many characters of a key in clear is a leak


def registry(*keys: str) -> SecretRegistry:
    r = SecretRegistry()
    for k in keys:
        r.add(k)
    return r


def leaked(text: str, key: str, seen: int = SEEN) -> str | None:
    """A stretch of ``seen`` characters of ``key`` readable in ``text``, in clear or decoded."""
    seen = min(seen, len(key))
    hits = found(text, {key[i : i + seen].lower() for i in range(len(key) - seen + 1)})
    return hits[0] if hits else None


def random_key(rnd: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + rnd.choice(["", "-_", "+/="])
    body = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(24, 64)))
    return rnd.choice(["sk-", "sk-proj-", "", "aiml_"]) + body


def echoes(key: str, rnd: random.Random) -> list[str]:
    """The ways a service, a proxy or a model has quoted a key back."""
    start = rnd.randrange(0, max(1, len(key) - SEEN))
    cut = key[start : start + rnd.randint(min(SEEN, len(key)), len(key))]
    prefix, suffix = rnd.randbytes(rnd.randint(0, 5)), rnd.randbytes(rnd.randint(0, 5))
    width = rnd.randint(3, 20)
    return [
        f"Incorrect API key provided: {key}.",
        f"AUTH {key.upper()} refused",
        f"the excerpt ends with …{cut}… and more",
        " ".join(key),
        "\n".join(key[i : i + width] for i in range(0, len(key), width)),
        "Basic " + base64.b64encode(prefix + key.encode() + suffix).decode(),
        "token=" + base64.urlsafe_b64encode(prefix + b":" + key.encode()).decode(),
        "https://proxy.invalid/v1?key=" + quote(key, safe=""),
        "form: k=" + quote_plus(key),
        "".join(f"%{b:02x}" for b in key.encode()),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True))
def test_every_echo_of_a_random_key_is_caught(rnd):
    key = random_key(rnd)
    r = registry(key)
    for echo in echoes(key, rnd):
        out = r.redact(echo)
        assert leaked(out, key) is None, (echo, out)
        assert "****" in out


WORDS = st.sampled_from("sk my team key token abc abc123 123 litellm LiteLLM proxy master test".split())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.sampled_from(WORDY_KEYS),
                 st.lists(WORDS, min_size=2, max_size=5).map("-".join).filter(lambda k: len(k) >= 12)),
       st.randoms(use_true_random=True))
def test_every_whole_echo_of_a_word_like_key_is_caught(key, rnd):
    r = registry(key)
    for echo in echoes(key, rnd):
        if "excerpt" in echo:
            continue  # a cut word-like key is words; see test_cut_pieces_of_word_like_keys
        out = r.redact(echo)
        assert leaked(out, key, seen=len(key)) is None, (echo, out)


def test_cut_pieces_of_word_like_keys_are_caught_when_they_carry_enough():
    r = registry("sk-litellm-test")
    assert r.redact("bad key sk-litellm-te…") == "bad key ****…"
    assert r.redact("bad key …k-litellm-test") == "bad key …****"
    assert r.redact("use litellm-test to try") == "use litellm-test to try"  # 12 letters of words


def corpus(lines: int = 10_000) -> str:
    """Ordinary prose and code: the standard library's own source (docstrings, comments, code),
    first ``lines`` lines. (Not this project's README: it quotes the example keys on purpose.)"""
    import argparse
    import configparser
    import email.message
    import http.client
    import logging
    import secrets
    import textwrap
    import tokenize
    import unittest.case
    import urllib.parse

    texts = []
    for module in (secrets, tokenize, argparse, textwrap, logging, http.client, urllib.parse,
                   email.message, configparser, unittest.case, base64, inspect, random):
        texts.append(Path(inspect.getsourcefile(module)).read_text(encoding="utf-8"))
    out = "\n".join(texts).splitlines()
    assert len(out) >= lines
    return "\n".join(out[:lines])


@pytest.mark.parametrize("key", WORDY_KEYS)
def test_ten_thousand_lines_of_prose_and_code_are_untouched(key):
    text = corpus() + "\n## Hello from LiteLLM\n\n- a list item\n- my team key, a token: abc123\n"
    r = registry(key)
    assert r.redact(text) is text  # nothing masked, not one character changed


PROSE_WORDS = st.sampled_from(
    "sk my team key token abc abc123 123 litellm LiteLLM test tests testing hello from the a list item "
    "proxy master Key Token ask task mask desk 'sk' sk-learn scikit-learn my-team team-key".split()
)
LINE = st.tuples(
    st.sampled_from(["", "- ", "## ", "1. ", "> "]),
    st.lists(st.tuples(PROSE_WORDS, st.sampled_from(["", "", ",", ".", ":", "!"])), min_size=3, max_size=12),
).map(lambda t: t[0] + " ".join(w + p for w, p in t[1]))


@pytest.mark.slow  # about 25 s: CI runs it, the inner loop does not
@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=8).map("\n".join))
def test_prose_made_of_the_keys_own_words_is_untouched(text):
    r = registry(*WORDY_KEYS)
    assert r.redact(text) == text


@pytest.mark.parametrize("text", [
    "sk sk token\n- abc123 sk sk",  # a list item after a line ending in "token" spells token-abc123
    "my team\n- sk\n- my-team\n- key",
    "> token\n> - abc123",
])
def test_a_key_spelt_across_list_items_is_prose(text):
    assert registry(*WORDY_KEYS).redact(text) == text


@pytest.mark.parametrize("echo", ["token-\nabc123", "token\n-abc123", "t o k e n - a b c 1 2 3",
                                  "tok\nen-\nabc\n123", "  to\n  ken-ab\n  c123"])
def test_a_word_like_key_broken_over_lines_or_spaced_is_still_masked(echo):
    out = registry("token-abc123").redact(f"key: {echo} refused")
    assert "abc" not in out and "****" in out, out


def test_registry_says_when_it_masked():
    r = registry("sk-litellm-test")
    assert r.redacted("plain") == ("plain", False)
    assert r.redacted("key sk-litellm-test") == ("key ****", True)


# -- an answer read from a body: wherever the body puts the key ------------------------------------

BODY_KEY = "sk-mask-0123456789abcdefGHIJ"
_FRAGMENTS = [BODY_KEY, BODY_KEY[3:14], BODY_KEY.upper(), " ".join(BODY_KEY), BODY_KEY[:12] + "\n"
              + BODY_KEY[12:], base64.b64encode(BODY_KEY.encode()).decode(), quote(BODY_KEY),
              "positive", "re: answer", "é ü", '"quoted"', "a\\b", "<think>hm</think>", " ", ""]
_FRAGMENT = st.lists(st.sampled_from(_FRAGMENTS), max_size=3).map("".join)


@st.composite
def _bodies(draw: st.DrawFn) -> dict:
    content = draw(st.one_of(_FRAGMENT, st.lists(
        st.fixed_dictionaries({"type": st.just("text"), "text": _FRAGMENT}), max_size=3)))
    message: dict = {"role": "assistant", "content": content}
    if draw(st.booleans()):
        message["tool_calls"] = [{"id": "c1", "type": "function", "function": {
            "name": "f", "arguments": draw(_FRAGMENT)}}]
    body = {"id": draw(_FRAGMENT), "model": draw(_FRAGMENT), "choices": [
        {"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    body[draw(_FRAGMENT) or "extra"] = draw(st.one_of(_FRAGMENT, st.lists(_FRAGMENT, max_size=2)))
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies(), st.booleans())
def test_an_answer_read_from_any_body_keeps_no_piece_of_the_key(body, ascii_only):
    """Wherever a body puts the key (the text, the model, a tool call, any field, a field's
    name), in clear, spaced, wrapped or encoded, the answer read from it shows only the mask.
    (A field named with the key stayed in ``.raw`` until this test found it.)"""
    import json

    from aiml_magics.errors import register_secret
    from aiml_magics.http.answer import answer_of

    register_secret(BODY_KEY)
    raw = json.dumps(body, ensure_ascii=ascii_only).encode()
    resp = answer_of(raw, 200, {}, {"model": "m"}, 0.1)
    shown = json.dumps([resp.text, resp.reasoning, resp.model, resp.raw,
                        [c.arguments_text for c in resp.tool_calls]], ensure_ascii=False)
    assert leaked(shown, BODY_KEY) is None


def test_fields_named_with_the_key_are_masked_and_all_kept():
    from aiml_magics.secrets import redact_obj

    r = registry(BODY_KEY)
    out = redact_obj({BODY_KEY: 1, f"{BODY_KEY} ": 2, "plain": {BODY_KEY: [BODY_KEY]}}, r)
    assert leaked(repr(out), BODY_KEY) is None
    assert sorted(v for v in out.values() if isinstance(v, int)) == [1, 2]  # both names kept
    assert list(out["plain"].values()) == [["****GHIJ"]]
    both = redact_obj({BODY_KEY: 1, "****GHIJ": 2}, r)  # a name already reading as the mask
    assert sorted(both.values()) == [1, 2]
