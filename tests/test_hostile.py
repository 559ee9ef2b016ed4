"""A hostile or broken service never breaks a cell, hangs it, or exhausts the machine.

Each probe runs through the real ``%%aiml`` magic in a real IPython shell against
``tests/hostile.py`` (raw sockets on 127.0.0.1, exact bytes). After each one: a readable paragraph
(never a traceback), what arrived is kept, no connection is left checked out, the next cell works.
The kernel probes (peak RSS around a gzip bomb, a held stream) are in ``test_hostile_kernel.py``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
import tracemalloc
import zlib
from contextlib import contextmanager

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.utils.capture import capture_output

from aiml_magics.errors import ParameterError, StreamInterrupted
from aiml_magics.http.sse import LineTooLong, SSEParser
from tests.conftest import run_cell
from tests.fakeapi import Error, FakeAIMLAPI, Reply
from tests.hostile import (
    END,
    USAGE,
    HostileServer,
    answer,
    answer_events,
    chunk,
    completion,
    delta,
    event,
    gzip_bomb,
    head,
    send,
    stream,
    whole,
)
from tests.test_faults import assert_one_paragraph, connections_in_use

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def hostile(shell):
    with HostileServer() as server:
        shell.run_line_magic("config", f"AIMLMagics.base_url = {server.base_url!r}")
        shell.run_line_magic("config", "AIMLMagics.timeout = 30.0")
        yield server


def next_cell_works(shell, hostile, magics) -> None:
    """Nothing checked out; a normal answer from the same server; still nothing checked out."""
    assert connections_in_use(magics) == 0
    hostile.queue(answer("still here"))
    run = run_cell(shell, "%%aiml --no-memory\nping")
    assert run.error is None, run.shown
    assert shell.user_ns["aiml_response"].text == "still here"
    assert connections_in_use(magics) == 0


def timed_cell(shell, source: str):
    started = time.monotonic()
    run = run_cell(shell, source)
    return run, time.monotonic() - started


# -- deep or huge JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize("flags", ["--no-stream", ""])
def test_a_body_nested_100000_deep_is_one_paragraph(shell, hostile, magics, flags):
    hostile.queue(whole(DEEP))  # application/json, also for a streamed request
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    assert_one_paragraph(run, "200", "not with an answer", "nested more than 200 levels deep")
    assert "RecursionError" not in run.shown and len(magics.conversation) == 0
    next_cell_works(shell, hostile, magics)


def test_a_deep_stream_chunk_is_skipped_and_the_text_around_it_kept(shell, hostile, magics):
    events = [event(delta("before ")), event(b'{"choices": ' + DEEP + b"}"), *answer_events("after")]
    hostile.queue(stream(events))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "before after" and resp.complete
    assert any("nested more than 200 levels deep" in w for w in resp.warnings)
    assert "malformed chunk" in run.final_markdown()
    next_cell_works(shell, hostile, magics)


def test_a_json_answer_nested_100000_deep(shell, hostile, magics):
    hostile.queue(stream(answer_events(DEEP.decode())))
    run = run_cell(shell, "%%aiml --json\ngive me JSON")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.data is None and resp.text == DEEP.decode()
    assert any("nested more than 200 levels deep" in w for w in resp.warnings)
    assert "RecursionError" not in run.shown
    next_cell_works(shell, hostile, magics)


def test_usage_and_credits_like_1e999_are_read_as_absent(shell, hostile, magics):
    huge = b'{"prompt_tokens": 1e999, "completion_tokens": -1e999, "total_tokens": ' + b"9" * 400
    huge += b', "completion_tokens_details": {"reasoning_tokens": NaN}}'
    events = [event(delta("ok")), event(delta("", finish="stop")),
              event(b'{"choices": [], "usage": ' + huge + b"}"),
              event(b'{"choices": [], "meta": {"usage": {"credits_used": 1e999}}}'), event(b"[DONE]")]
    hostile.queue(stream(events))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "ok" and resp.complete
    assert resp.usage.as_dict() == dict.fromkeys(resp.usage.as_dict())  # all None
    assert resp.credits_used is None
    body = b'{"choices": [{"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"}],'
    body += b' "usage": ' + huge + b', "meta": {"usage": {"credits_used": 1e999, "usd_spent": 1e999}}}'
    hostile.queue(whole(body, then="keep"))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "fine" and resp.usage.total_tokens is None and resp.credits_used is None
    assert "OverflowError" not in run.shown
    next_cell_works(shell, hostile, magics)


def test_models_list_deep_or_of_the_wrong_type(shell, hostile, magics):
    hostile.queue(whole(b'{"data": ' + DEEP + b"}"))
    run = run_cell(shell, "%aiml models")
    assert_one_paragraph(run, "models list", "nested more than 200 levels deep")
    hostile.queue(whole(b'{"data": 5}'))
    run = run_cell(shell, "%aiml models --refresh")
    assert_one_paragraph(run, "models list", "not a list of models")
    models = {"data": [{"id": 5, "type": "chat-completion"}, "junk",
                       {"id": "good/model", "type": "chat-completion", "info": {"contextLength": 1e999}}]}
    hostile.queue(whole(json.dumps(models).replace("Infinity", "1e999").encode()))
    run = run_cell(shell, "%aiml models --refresh")
    assert run.error is None, run.shown
    assert "good/model" in run.shown and "1 chat models" in run.shown
    next_cell_works(shell, hostile, magics)


def test_cassettes_nested_deep_or_with_wrong_types(shell, magics, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"format": "aiml-magics-cassette", "version": 1, "recordings": ' + DEEP + b"}")
    run = run_cell(shell, f"%aiml replay {deep}")
    assert_one_paragraph(run, "Cannot read the cassette", "nested more than 200 levels deep")
    odd = tmp_path / "odd.json"
    recording = {
        "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "parameters": {}},
        "response": {"text": 5, "reasoning": ["x"], "model": {"a": 1}, "finish_reason": 7,
                     "usage": {"total_tokens": "1e999"}, "credits_used": "1e999"},
    }
    text = json.dumps({"format": "aiml-magics-cassette", "version": 1, "recordings": [recording]})
    odd.write_text(text.replace('"1e999"', "1e999"), encoding="utf-8")
    assert run_cell(shell, f"%aiml replay {odd}").error is None
    run = run_cell(shell, "%%aiml -m m\nhi")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "" and resp.reasoning is None and resp.model is None
    assert resp.finish_reason == "stop" and resp.usage.total_tokens is None and resp.credits_used is None
    assert "TypeError" not in run.shown


# -- the end of a stream -------------------------------------------------------------------------------


@pytest.mark.parametrize("then", ["hold", "keepalive"])
@pytest.mark.parametrize("done", [True, False], ids=["after-DONE", "finish-and-usage"])
def test_a_complete_answer_ends_the_cell_at_once(shell, hostile, magics, then, done):
    """The server keeps the connection open (silent, or `: keep-alive` every 50 ms) after the
    answer: the cell ends without waiting for the 30 s read timeout, and the answer is complete."""
    hostile.queue(stream(answer_events("complete answer", done=done), end=False, then=then))
    run, seconds = timed_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "complete answer" and resp.complete and resp.finish_reason == "stop"
    assert resp.credits_used == 10 and resp.usage.total_tokens == 5
    assert "partial" not in run.final_markdown()
    assert seconds < 10  # the read timeout is 30 s; the probe held the connection for ever
    assert hostile.wait_closed(1)  # the client closed the held connection, it did not keep it
    next_cell_works(shell, hostile, magics)


def test_a_normal_stream_still_reuses_its_connection(shell, hostile, magics):
    for i in range(3):
        hostile.queue(answer(f"answer {i}"))
        assert run_cell(shell, f"%%aiml\nq{i}").error is None
    # The grace given to the end of a stream must not stick to the reused connection: a model
    # that takes 0.6 s to start answering, on the same connection, is waited for.
    body = b"".join(chunk(e) for e in answer_events("slow but fine")) + END
    hostile.queue(send(head(), body, delay=0.6, then="keep"))
    run = run_cell(shell, "%%aiml\nslow")
    assert run.error is None, run.shown
    assert shell.user_ns["aiml_response"].text == "slow but fine"
    assert hostile.connections == 1 and len(hostile.chat_requests) == 4


# -- error frames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (event({"error": {"message": "upstream exploded", "type": "server_error"}}, name="error"),
         "upstream exploded"),
        (event(b"upstream fell over", name="error"), "upstream fell over"),
        (event({"error": {"message": "quota exceeded upstream", "code": 429}}), "quota exceeded upstream"),
        (event({"choices": [], "error": "provider timeout"}), "provider timeout"),
    ],
    ids=["event-error", "event-error-text", "data-error", "data-error-string"],
)
@pytest.mark.parametrize("later_done", [True, False])
def test_an_error_frame_marks_the_answer_incomplete(shell, hostile, magics, frame, words, later_done):
    events = [event(delta("partial ")), frame]
    if later_done:
        events += [event(delta("", finish="stop")), event({"choices": [], "usage": USAGE}),
                   event(b"[DONE]")]
    hostile.queue(stream(events))
    run = run_cell(shell, "%%aiml\nhello")
    text = assert_one_paragraph(run, "reported an error", words, "incomplete", "aiml_response")
    assert "8 characters" in text
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "partial " and not resp.complete and resp.finish_reason == "cut"
    assert "partial answer" in run.final_markdown()
    turn = magics.conversation.turns[-1]
    assert turn.partial and turn.answer == "partial "
    next_cell_works(shell, hostile, magics)


def test_a_200_body_that_carries_an_error(shell, hostile, magics):
    hostile.queue(whole(json.dumps({"error": {"message": "model is warming up"}}).encode()))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert_one_paragraph(run, "200", "with an error", "model is warming up")
    next_cell_works(shell, hostile, magics)


# -- bounded memory and time ------------------------------------------------------------------------


@contextmanager
def peak_memory():
    tracemalloc.start()
    result = {}
    try:
        yield result
    finally:
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


BOMB = 64 << 20  # inflated size of the bombs below; about 64 KB on the wire


def test_gzip_bomb_body_is_inflated_only_up_to_the_limit(shell, hostile, magics):
    shell.run_line_magic("config", "AIMLMagics.max_answer_bytes = 1048576")
    bomb = gzip_bomb(BOMB, b" ", prefix=b'{"choices": [')
    hostile.queue(whole(bomb, headers=[("Content-Encoding", "gzip")]))
    with peak_memory() as mem:
        run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert_one_paragraph(run, "larger than 1 MiB", "max_answer_bytes")
    assert mem["peak"] < 8 << 20, mem  # 64 MiB inflated would be 64 MiB here
    next_cell_works(shell, hostile, magics)


def test_gzip_bomb_stream_stops_at_the_limit_and_keeps_what_arrived(shell, hostile, magics):
    shell.run_line_magic("config", "AIMLMagics.max_answer_bytes = 1048576")
    one = event(delta("x" * 200))
    bomb = gzip_bomb(BOMB, one)
    hostile.queue(send(head(headers=[("Content-Encoding", "gzip")]), chunk(bomb), END))
    with peak_memory() as mem:
        run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "larger than 1 MiB", "max_answer_bytes", "kept in aiml_response")
    resp = shell.user_ns["aiml_response"]
    assert not resp.complete and 0 < len(resp.text) <= 1 << 20 and set(resp.text) == {"x"}
    assert mem["peak"] < 16 << 20, mem
    next_cell_works(shell, hostile, magics)


def test_gzip_bomb_error_body_needs_only_a_few_kilobytes(shell, hostile, magics):
    bomb = gzip_bomb(BOMB, b" ", prefix=b'{"message": "refused, and here is a lot of nothing"')
    hostile.queue(whole(bomb, status=400, headers=[("Content-Encoding", "gzip")]))
    with peak_memory() as mem:
        run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "400")
    assert mem["peak"] < 4 << 20, mem
    next_cell_works(shell, hostile, magics)


@pytest.mark.parametrize("wbits", [15, -15], ids=["deflate", "raw-deflate"])
def test_deflate_bodies_are_read_both_ways_and_a_deflate_bomb_stays_bounded(shell, hostile, magics, wbits):
    """gzip and deflate are inflated by the package in bounded steps (urllib3 before 2.6, as in
    Google Colab, inflates a whole read at once); deflate comes with or without its zlib header."""

    def deflated(data: bytes) -> bytes:
        comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
        return comp.compress(data) + comp.flush()

    body = json.dumps(completion("deflated fine")).encode()
    hostile.queue(whole(deflated(body), headers=[("Content-Encoding", "deflate")]))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert run.error is None and shell.user_ns["aiml_response"].text == "deflated fine"
    shell.run_line_magic("config", "AIMLMagics.max_answer_bytes = 1048576")
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    bomb = comp.compress(b'{"choices": [') + b"".join(comp.compress(b" " * (1 << 20)) for _ in range(64))
    hostile.queue(whole(bomb + comp.flush(), headers=[("Content-Encoding", "deflate")]))
    with peak_memory() as mem:
        run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert_one_paragraph(run, "larger than 1 MiB", "max_answer_bytes")
    assert mem["peak"] < 8 << 20, mem
    next_cell_works(shell, hostile, magics)


def test_a_body_that_is_not_the_gzip_it_claims_is_one_paragraph(shell, hostile, magics):
    hostile.queue(whole(b"this is not gzip at all" * 10, headers=[("Content-Encoding", "gzip")]))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert run.error is not None and len(run.error._render_traceback_()) == 1
    assert "Traceback" not in run.stdout + run.stderr
    next_cell_works(shell, hostile, magics)


def test_a_line_without_end_is_refused_past_its_limit(shell, hostile, magics):
    piece = b"x" * 1024
    parts = [head(), chunk(event(delta("kept "))), chunk(b'data: {"choices": "')]
    parts += [chunk(piece)] * 2048  # 2 MiB of one line, in 1 KiB pieces
    hostile.queue(send(*parts, then="hold"))
    with peak_memory() as mem:
        run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "stopped early", "longer than 1 MiB", "5 characters", "aiml_response")
    assert shell.user_ns["aiml_response"].text == "kept "
    assert mem["peak"] < 8 << 20, mem
    assert hostile.wait_closed(1)
    next_cell_works(shell, hostile, magics)


def test_a_long_line_costs_linear_time():
    """The same line of 1 MiB and of 4 MiB arriving in 1 KiB pieces, no newline yet: holding it
    costs ~4x for 4x the bytes; the old parser re-joined the whole line on every read, 16x (the
    line's end, joined and decoded once, is linear either way and kept out of the timing: its
    big allocations measure the memory allocator, not the parser). CPU time of this thread,
    interleaved, best of 7: a busy machine slows single runs, not all of them."""

    def cost(size: int) -> float:
        parser = SSEParser(max_line=16 << 20)
        piece = b"x" * 1024
        parser.feed(b"data: ")
        started = time.thread_time()
        for _ in range(size // 1024):
            parser.feed(piece)
        elapsed = time.thread_time() - started
        (data,) = parser.feed(b"\n\n")
        assert len(data) == size
        return elapsed

    gc.disable()
    try:
        small, large = [], []
        for _ in range(7):
            small.append(cost(1 << 20))
            large.append(cost(4 << 20))
    finally:
        gc.enable()
    ratio = min(large) / min(small)
    print(f"long-line cost, 4 MiB / 1 MiB line in 1 KiB pieces: {ratio:.2f}x")
    assert ratio < 8, ratio
    with pytest.raises(LineTooLong):  # and the default parser stops such a line at 1 MiB
        parser = SSEParser()
        for _ in range(2048):
            parser.feed(b"x" * 1024)


# -- odd but legal input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "1.5", "-1", "9" * 400])
def test_odd_retry_after_is_ignored_or_bounded(shell, api, magics, value):
    api.queue(Error(429, headers={"Retry-After": value}), Reply(content="answered"))
    run = run_cell(shell, "%%aiml\nhello")
    if value == "9" * 400:  # a wait of ~forever: not made, and said so in numbers people read
        assert_one_paragraph(run, "429", "before retrying")
        assert len(api.chat_requests) == 1
        return
    assert run.error is None, run.shown
    assert shell.user_ns["aiml_response"].text == "answered"
    assert len(api.chat_requests) == 2


def test_a_second_choice_is_not_merged(shell, hostile, magics):
    both = {"choices": [{"index": 1, "delta": {"content": "OTHER"}},
                        {"index": 0, "delta": {"content": "answer"}}]}
    events = [event(delta("my ")), event(delta("NOT MINE", index=1)), event(both),
              event(delta(" IGNORED", index=1, finish="length")), *answer_events("!")]
    hostile.queue(stream(events))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "my answer!" and resp.finish_reason == "stop"
    body = completion("first")
    body["choices"].insert(0, {"index": 1, "message": {"content": "second"}, "finish_reason": "x"})
    hostile.queue(whole(json.dumps(body).encode()))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert run.error is None and shell.user_ns["aiml_response"].text == "first"
    next_cell_works(shell, hostile, magics)


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_150_response_headers(shell, hostile, magics, flags):
    many = [(f"X-Noise-{i}", "v") for i in range(150)]
    hostile.queue(whole(json.dumps(completion("never read")).encode(), headers=many))
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    text = assert_one_paragraph(run, "answered", "more than 100 header lines", "may have been billed")
    assert "could not be sent" not in text and "HTTPException" not in text and "(" not in text
    assert len(hostile.chat_requests) == 1  # sent once, never resent
    next_cell_works(shell, hostile, magics)


def test_a_content_length_that_lies(shell, hostile, magics):
    body = json.dumps(completion("the whole answer")).encode()
    hostile.queue(whole(body[:20], length=len(body)))  # announces more than it sends, then closes
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    text = assert_one_paragraph(run, "was cut", f"ended after 20 bytes, {len(body) - 20:,} fewer")
    assert "may have been billed" in text and "could not be sent" not in text
    assert len(hostile.chat_requests) == 1
    next_cell_works(shell, hostile, magics)
    # ... and one that announces less: the answer is what was announced; the extra bytes left on
    # the connection never become the next cell's answer.
    hostile.queue(whole(body + b"HTTP/1.1 200 OK\r\n\r\ngarbage", length=len(body), then="keep"))
    run = run_cell(shell, "%%aiml --no-stream\nhello")
    assert run.error is None and shell.user_ns["aiml_response"].text == "the whole answer"
    next_cell_works(shell, hostile, magics)


@pytest.mark.parametrize(
    ("flags", "script", "words"),
    [
        ("", send(head(), then="reset"), ["stopped early", "connection was reset", "0 characters"]),
        ("", send(head(), chunk(event(delta("half "))), then="reset"),
         ["stopped early", "connection was reset", "5 characters"]),
        ("--no-stream", send(head(headers=[("Content-Length", "500")], chunked=False,
                                  content_type="application/json"), b'{"cho', then="reset"),
         ["was cut", "may have been billed"]),
        ("", send(then="reset"), ["reached", "connection was reset before an answer came",
                                  "may have been billed"]),
        ("--no-stream", send(then="close"), ["reached", "closed the connection without answering"]),
    ],
    ids=["stream-reset-after-headers", "stream-reset-mid", "body-reset", "reset-before-headers",
         "closed-before-headers"],
)
def test_a_broken_connection_says_what_happened(shell, hostile, magics, flags, script, words):
    hostile.queue(script)
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    text = assert_one_paragraph(run, *words)
    assert "could not be sent" not in text and "Could not connect" not in text
    assert "Error(" not in text and "Errno" not in text
    assert len(hostile.chat_requests) == 1
    if "5 characters" in words:
        assert shell.user_ns["aiml_response"].text == "half "
    next_cell_works(shell, hostile, magics)


# -- connect timeouts -------------------------------------------------------------------------------------


def test_a_connect_timeout_is_one_deadline_not_one_per_retry(shell, api, magics, monkeypatch):
    import urllib3.util.connection

    attempts = []
    real = urllib3.util.connection.create_connection

    def counting(*args, **kwargs):
        attempts.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    shell.run_line_magic("config", "AIMLMagics.timeout = 1.0")  # the connect timeout is min(10, timeout)
    shell.run_line_magic("config", "AIMLMagics.max_retries = 2")
    with FakeAIMLAPI.backlog_full() as base:
        shell.run_line_magic("config", f"AIMLMagics.base_url = {base!r}")
        run, seconds = timed_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "Could not connect", "within 1 s")
    print(f"connect timeout 1 s, max_retries 2: {len(attempts)} attempt(s), {seconds:.2f} s")
    assert len(attempts) == 1  # not 3 attempts of 1 s each
    assert seconds < 3
    shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    assert run_cell(shell, "%%aiml\nhello").error is None


# -- bad values never stick --------------------------------------------------------------------------------


def run_cell_log(shell, caplog, assignment: str) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        run_cell(shell, f"%config AIMLMagics.{assignment}")
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_huge_numbers_are_refused_and_do_not_stick(shell, api, magics, caplog):
    for setting in ("max_completion_tokens", "temperature", "top_p", "timeout", "max_answer_bytes",
                    "max_retries"):
        before = getattr(magics, setting)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            run = run_cell(shell, f"%config AIMLMagics.{setting} = 10**400")
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].startswith(setting), (setting, errors, run.shown)
        assert "Overflow" not in errors[0] + run.shown and len(errors[0]) < 300
        assert getattr(magics, setting) == before, setting
    assert "too large" in run_cell_log(shell, caplog, "max_completion_tokens = 10**400")
    digits = "9" * 300
    for flag in (f"-n {digits}", f"--seed {digits}", f"--max-tokens {digits}", f"-t {digits}",
                 "--seed 9007199254740993"):
        run = run_cell(shell, f"%%aiml {flag}\nhello")
        assert isinstance(run.error, ParameterError), (flag, run.shown)
        assert "\n" not in str(run.error) and len(str(run.error)) < 300
    assert api.chat_requests == []
    assert run_cell(shell, "%%aiml -n 10 --seed 42\nhello").error is None
    assert api.last_json["max_completion_tokens"] == 10 and api.last_json["seed"] == 42


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--stop 'ab\ud83dcd'", ["stop sequence", "U+D83D", "position 2"]),
        ("--stop END --stop '\udc00x'", ["Stop sequence 2", "U+DC00", "position 0"]),
        ("--model 'gpt-4o\ud83d'", ["model id", "U+D83D", "position 6"]),
    ],
)
def test_a_lone_surrogate_in_a_flag_is_refused_with_its_position(shell, api, magics, line, words):
    # Called as the cell would call it, but kept out of IPython's history database, which cannot
    # store a lone surrogate (it would fail a later test, not this one).
    with pytest.raises(ParameterError) as refused:
        shell.run_cell_magic("aiml", line, "hello\n")
    assert "\n" not in str(refused.value)
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))
    assert api.chat_requests == []
    with pytest.raises(Exception, match="U\\+D83D"):
        magics.model = "bad\ud83d"
    assert run_cell(shell, "%%aiml\nhello").error is None


# -- Ctrl-C at any moment ----------------------------------------------------------------------------------


class InterruptOnFinal(DisplayPublisher):
    """A frontend whose stop button is pressed (a real SIGINT) while the final rendering of the
    answer is being published: the moment the complete Markdown with its footer goes out."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fired = 0
        self.finals = 0

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # noqa: ANN001
        if "credits" in str(data.get("text/markdown", "")):
            self.finals += 1
            if not self.fired:
                self.fired += 1
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs here, inside the publish

    def clear_output(self, wait=False):
        pass


@pytest.fixture
def default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_ctrl_c_during_the_final_rendering_keeps_the_answer(shell, api, magics, default_sigint, flags):
    long = "A long answer paragraph. " * 4000
    api.queue(Reply(content=long, chunk_chars=500))
    saved = shell.display_pub
    shell.display_pub = frontend = InterruptOnFinal(shell=shell)
    try:
        with capture_output(display=False) as cap:  # display messages go to the frontend
            result = shell.run_cell(f"%%aiml {flags}\nwrite a lot")
    finally:
        shell.display_pub = saved
    assert frontend.fired == 1 and frontend.finals == 2  # the final rendering was shown again
    error = result.error_in_exec
    assert isinstance(error, StreamInterrupted), cap.stdout
    assert "Traceback" not in cap.stdout and cap.stdout.strip().count("\n") == 0
    assert "KeyboardInterrupt" in cap.stdout
    assert "complete" in str(error) and "aiml_response" in str(error)
    resp = shell.user_ns["aiml_response"]
    assert resp.text == long and resp.complete and resp.finish_reason == "stop"
    assert magics.conversation.turns[-1].answer == long and not magics.conversation.turns[-1].partial
    assert connections_in_use(magics) == 0
    api.queue(Reply(content="next"))
    assert run_cell(shell, "%%aiml\nnext").error is None


class InterruptOnText(DisplayPublisher):
    """The stop button pressed the moment ``text`` is first shown (a real SIGINT)."""

    def __init__(self, text: str, **kwargs):
        super().__init__(**kwargs)
        self.text, self.fired = text, 0

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # noqa: ANN001
        if self.text in str(data.get("text/markdown", "")) and not self.fired:
            self.fired += 1
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    def clear_output(self, wait=False):
        pass


def test_ctrl_c_after_the_answer_is_complete_leaves_it_complete(shell, hostile, magics, default_sigint):
    """The last chunk carries the text, the finish and the usage; the server then holds the
    connection. A Ctrl-C as that text is shown must not mark the complete answer interrupted."""
    last = {"choices": [{"index": 0, "delta": {"content": "all of it"}, "finish_reason": "stop"}],
            "usage": USAGE}
    hostile.queue(stream([event(last)], end=False, then="hold"))
    saved = shell.display_pub
    shell.display_pub = frontend = InterruptOnText("all of it", shell=shell)
    try:
        with capture_output(display=False) as cap:
            result = shell.run_cell("%%aiml\nhello")
    finally:
        shell.display_pub = saved
    assert frontend.fired == 1
    assert isinstance(result.error_in_exec, StreamInterrupted), cap.stdout
    assert "complete" in str(result.error_in_exec) and "Traceback" not in cap.stdout
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "all of it" and resp.complete and resp.finish_reason == "stop"
    assert not magics.conversation.turns[-1].partial
    assert hostile.wait_closed(1)
    next_cell_works(shell, hostile, magics)
