"""Bad input, property-based: the SSE parser on any bytes, wrong flags and settings, odd prompts.

hypothesis drives the inputs; the magic runs in the real shell against the loopback fake, and what
the server received (or that it received nothing) is the check.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aiml_magics.errors import AIMLError, ParameterError
from aiml_magics.http.sse import DONE, SSEParser, iter_events
from aiml_magics.params import MAX_MAGNITUDE, RANGES
from tests.conftest import run_cell
from tests.fakeapi import RawStream, Reply

FIXTURES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the SSE parser ------------------------------------------------------------------------------


def parse(chunks: list[bytes]) -> list[str]:
    parser = SSEParser()
    events: list[str] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events + parser.close()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (sorted, deduplicated; empty pieces included)."""
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# Bytes that matter to SSE, mixed with arbitrary ones: line ends, field names, multi-byte UTF-8.
SSE_PIECES = st.sampled_from(
    [b"data:", b"data: ", b"\n", b"\r\n", b"\r", b":", b": keep-alive", b"event: x", b"id: 1",
     b"[DONE]", b"{}", b'{"a": 1}', "é".encode(), "😀".encode(), "日".encode()[:2], b"\xff", b" "]
)
STREAM_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(SSE_PIECES, st.binary(max_size=8)), max_size=60).map(b"".join),
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(data=STREAM_BYTES, points=st.lists(st.integers(min_value=0), max_size=20))
def test_sse_parser_never_raises_and_chunking_does_not_matter(data, points):
    whole = parse([data])
    assert parse(cut(data, points)) == whole
    assert parse([data[i : i + 1] for i in range(len(data))]) == whole  # one byte at a time
    assert all(isinstance(event, str) for event in whole)
    events = list(iter_events(cut(data, points)))
    assert events == list(iter_events([data]))
    assert DONE not in events  # iteration stops at [DONE]


EOLS = st.sampled_from(["\n", "\r\n", "\r"])
LINE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.lists(LINE_TEXT, min_size=1, max_size=3), max_size=8),
    eol=EOLS,
    comments=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=20),
    done=st.booleans(),
)
def test_sse_parser_round_trips_well_formed_streams(events, eol, comments, points, done):
    text = ""
    for lines in events:
        if comments:
            text += f": keep-alive{eol}"
        text += "".join(f"data: {line}{eol}" for line in lines) + eol
    if done:
        text += f"data: [DONE]{eol}{eol}"
    data = text.encode("utf-8")
    expected = ["\n".join(lines) for lines in events]
    assert parse(cut(data, points)) == expected + ([DONE] if done else [])
    until_done = expected[: expected.index(DONE)] if DONE in expected else expected
    assert list(iter_events(cut(data, points))) == until_done


@FIXTURES
@given(pieces=st.lists(STREAM_BYTES, min_size=1, max_size=4))
def test_arbitrary_stream_through_the_magic_fails_cleanly(shell, api, pieces):
    """Whatever bytes a 200 stream carries, the cell answers or fails with our message."""
    api.reset()
    api.queue(RawStream(pieces))
    run = run_cell(shell, "%%aiml --no-memory\nhello")
    assert run.error is None or isinstance(run.error, AIMLError), repr(run.error)
    assert "Traceback" not in run.shown
    api.queue(Reply(content="fine"))
    assert run_cell(shell, "%%aiml --no-memory\nnext").error is None
    assert shell.user_ns["aiml_response"].text == "fine"


# -- per-cell flags ------------------------------------------------------------------------------

NUMERIC_FLAGS = {
    "max_completion_tokens": "--max-completion-tokens",
    "max_tokens": "--max-tokens",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "frequency_penalty": "--frequency-penalty",
    "presence_penalty": "--presence-penalty",
    "seed": "--seed",
}
SHORT = {"max_completion_tokens": "-n", "temperature": "-t"}


def is_valid(name: str, value: float) -> bool:
    rng = RANGES[name]
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:  # 2**53 - 1: JSON's exact integers
        return False
    if rng.integer and not float(value).is_integer():
        return False
    return (rng.low is None or value >= rng.low) and (rng.high is None or value <= rng.high)


def number_text(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


FLAG_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=0, max_size=12
)


@st.composite
def bad_numeric_flag(draw):
    name = draw(st.sampled_from(sorted(NUMERIC_FLAGS)))
    kind = draw(st.sampled_from(["number", "text", "special"]))
    if kind == "number":
        value = draw(st.floats(allow_nan=False, allow_infinity=False, width=64))
        assume(not is_valid(name, value))
        text = repr(value) if draw(st.booleans()) else f"{value:g}"
        assume(not is_valid(name, float(text)))
    elif kind == "special":
        text = draw(st.sampled_from(["nan", "inf", "-inf", "1e400", "", " ", "1,5", "0x10",
                                     "True", "None", "½", "2.5.1", "--", "1 2"]))
    else:
        text = draw(FLAG_TEXT)
    parsed = number_text(text)
    assume(parsed is None or not is_valid(name, parsed))
    option = draw(st.sampled_from([NUMERIC_FLAGS[name], SHORT.get(name, NUMERIC_FLAGS[name])]))
    return name, option, text


@FIXTURES
@given(case=bad_numeric_flag(), glued=st.booleans())
def test_bad_numeric_flag_is_refused_naming_the_range(shell, api, case, glued):
    name, option, text = case
    if not glued:
        assume(not text.startswith("-") or number_text(text) is not None)
    flag = f"{option}={shlex.quote(text)}" if glued else f"{option} {shlex.quote(text)}"
    api.reset()
    run = run_cell(shell, f"%%aiml {flag}\nhello")
    assert isinstance(run.error, ParameterError), (flag, run.error)
    message = str(run.error)
    assert name in message and RANGES[name].describe() in message, message
    assert "\n" not in message and len(message) < 300
    assert api.requests == []
    assert run.outputs == []  # nothing was shown before the refusal


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ("--stop a --stop b --stop c --stop d --stop e", ["stop", "at most 4"]),
        ("--stop ''", ["stop", "empty"]),
        ("--model 'two words'", ["model", "spaces"]),
        ("--model ' '", ["model", "model id"]),
        ("--out class", ["--out", "variable name"]),
        ("--out 'a-b'", ["--out", "variable name"]),
        ("--out 1x", ["--out", "variable name"]),
        ("-t -1e-5", ["temperature", "from 0 to 2"]),
        ("--frequency-penalty -3e0", ["frequency_penalty", "from -2 to 2"]),
        ("-m anthropic/claude-sonnet-4.5 -t 1.01", ["temperature", "from 0 to 1", "claude"]),
    ],
)
def test_other_bad_flags_are_refused(shell, api, flags, words):
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    assert isinstance(run.error, ParameterError), run.error
    for word in words:
        assert word in str(run.error), (word, str(run.error))
    assert api.requests == []


def test_negative_exponent_values_are_taken_as_values(shell, api):
    run = run_cell(shell, "%%aiml --frequency-penalty -1e-3 -t 5e-1\nhello")
    assert run.error is None, run.shown
    assert api.last_json["frequency_penalty"] == -0.001 and api.last_json["temperature"] == 0.5


# -- %config settings ------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("temperature", "'hot'", "from 0 to 2"),
    ("temperature", "True", "from 0 to 2"),
    ("temperature", "2.01", "from 0 to 2"),
    ("temperature", "-0.5", "from 0 to 2"),
    ("temperature", "float('nan')", "from 0 to 2"),
    ("temperature", "[1]", "from 0 to 2"),
    ("top_p", "0", "from 0.01 to 1"),
    ("top_p", "1.5", "from 0.01 to 1"),
    ("top_p", "'high'", "from 0.01 to 1"),
    ("max_completion_tokens", "0", ">= 1"),
    ("max_completion_tokens", "2.5", ">= 1"),
    ("max_completion_tokens", "'100'", ">= 1"),
    ("max_completion_tokens", "False", ">= 1"),
    ("timeout", "0", "above 0"),
    ("timeout", "-1", "above 0"),
    ("timeout", "float('inf')", "at most 3600"),
    ("timeout", "'fast'", "above 0"),
    ("max_retries", "-1", "from 0 to 10"),
    ("max_retries", "11", "from 0 to 10"),
    ("max_retries", "'two'", "from 0 to 10"),
    ("max_retries", "True", "from 0 to 10"),
    ("max_history", "-1", ">= 0"),
    ("max_history", "'x'", ">= 0"),
    ("stream", "'yes'", "True or False"),
    ("memory", "2", "True or False"),
    ("allow_insecure_http", "None", "True or False"),
    ("model", "''", "model id"),
    ("model", "'two words'", "model id"),
    ("model", "5", "model id"),
    ("system", "3", "a string"),
    ("base_url", "'ftp://example.invalid'", "http(s) URL"),
    ("base_url", "5", "http(s) URL"),
    ("api_key", "12345", "a string"),
]


@pytest.mark.parametrize(("name", "value", "accepted"), BAD_SETTINGS)
def test_bad_config_value_is_refused_naming_the_range(shell, api, magics, caplog, name, value,
                                                      accepted):
    before = getattr(magics, name)
    with caplog.at_level(logging.ERROR):
        run_cell(shell, f"%config AIMLMagics.{name} = {value}")
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith(name) and accepted in message, message
    if name == "api_key":
        assert "12345" not in message
    assert getattr(magics, name) == before  # unchanged
    assert api.requests == []
    api.queue(Reply(content="settings unchanged"))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    # stream_options: the fake is a server other than the AI/ML API, so streamed usage is asked for
    assert set(api.last_json) == {"model", "messages", "stream", "stream_options"}


@FIXTURES
@given(
    name=st.sampled_from(["temperature", "top_p", "max_completion_tokens"]),
    value=st.one_of(st.floats(width=64), st.integers(min_value=-(10**6), max_value=10**6)),
)
def test_config_numbers_property(shell, api, magics, name, value):
    """Any number through %config: either taken and sent as is, or refused with the range."""
    api.reset()
    ok = is_valid(name, value)  # integer-valued floats are taken for integer settings, like flags
    previous = getattr(magics, name)
    try:
        setattr(magics, name, value)
        taken = True
    except Exception as exc:  # noqa: BLE001 - the refusal is the subject of the test
        taken = False
        assert name in str(exc) and RANGES[name].describe() in str(exc)
    assert taken == ok, (name, value)
    run = run_cell(shell, "%%aiml --no-memory\nhello")
    assert run.error is None, run.shown
    assert api.last_json.get(name) == (value if ok else previous)
    setattr(magics, name, None)


# -- prompts byte-exact -----------------------------------------------------------------------------

NASTY = [
    'JSON {"a": {"b": [1, 2]}} and {0} {name} {{double}} }{',
    "C:\\path\\to\\file \\n \\t \\\\ \\u00e9 \\x00",
    "$HOME ${x} $$ $1 `$(rm -rf /)` %s %(name)s",
    "null\x00byte\x00\x00 and bell \x07 and escape \x1b[31m",
    "עברית وَالعربية \u202eRTL override\u202c \u200f mark",
    "emoji 😀👩‍👩‍👧‍👦🏳️‍🌈 flags 🇫🇷 skin 👍🏽 and ZWJ",
    ">>> import this\n... and a doctest\nIn [1]: too",
    "trailing blank lines\n\n\n",
    "  leading spaces and\ttabs\t",
    "CRLF\r\nlines\rand CR",
]


def as_sent(prompt: str) -> str:
    """The prompt as the magic sends it: leading blank lines and trailing whitespace dropped,
    everything between byte-exact (written here with regexes, apart from the code's loop)."""
    prompt = re.sub(r"\A(?:[ \t\r\f\v]*\n)+", "", prompt)
    return re.sub(r"[ \t\r\f\v\n]+\Z", "", prompt)


@pytest.mark.parametrize("prompt", NASTY)
def test_nasty_prompt_is_sent_byte_exact(shell, api, prompt):
    run = run_cell(shell, "%%aiml\n" + prompt)
    assert run.error is None, run.shown
    rec = api.chat_requests[-1]
    sent = as_sent(prompt)
    assert sent == prompt or prompt.endswith(("\n", "\t")), "only the ends are trimmed"
    assert rec.json["messages"][-1]["content"] == sent
    assert json.dumps(sent, ensure_ascii=False).encode("utf-8") in rec.body  # no re-encoding
    assert shell.user_ns["aiml_response"].request["messages"][-1]["content"] == sent


def test_one_megabyte_prompt_is_sent_byte_exact(shell, api):
    block = "Lorem {ipsum} $x \\n 😀 שלום ٣ \x00\n"
    prompt = (block * (1_000_000 // len(block) + 1))[:1_000_000]
    api.queue(Reply(content="read it"))
    run = run_cell(shell, "%%aiml\n" + prompt)
    assert run.error is None, run.shown[:300]
    assert api.last_json["messages"][-1]["content"] == prompt
    assert len(api.chat_requests[-1].body) > 1_000_000


@FIXTURES
@given(prompt=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
def test_any_prompt_is_sent_byte_exact(shell, api, prompt):
    assume(prompt.strip())
    api.reset()
    api.queue(Reply(content="ok"))
    run = run_cell(shell, "%%aiml --no-memory\n" + prompt)
    assert run.error is None, run.shown
    assert api.last_json["messages"] == [{"role": "user", "content": as_sent(prompt)}]


def test_lone_surrogate_is_refused_before_sending(shell, api):
    run = run_cell(shell, "%%aiml\nhalf an emoji: \ud83d here")
    assert isinstance(run.error, ParameterError), run.error
    assert "U+D83D" in str(run.error) and "position 15" in str(run.error)
    assert api.requests == []
