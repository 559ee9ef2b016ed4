"""The fault matrix, interrupts and concurrency: through the real magic, against 127.0.0.1 only.

Each test produces one fault on the loopback fake of the service and checks what a person sees
(one readable paragraph, no traceback), what ``aiml_response`` and the conversation hold, that the
HTTP connection was released, and that the next cell works. Faults already covered in
``test_magic.py`` (401/403/400/404, HTML 502, 429 once, refused, cut stream, malformed chunk,
Ctrl-C mid-stream) are not repeated here.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aiml_magics.errors import AIMLError, StreamInterrupted
from tests.conftest import run_cell
from tests.fakeapi import Error, FakeAIMLAPI, Hang, RawStream, Reply


@contextmanager
def ctrl_c_after(seconds: float) -> Iterator[None]:
    """A real SIGINT to this process, as the notebook's stop button sends to the kernel.

    Python's own handler is installed for the duration: a test runner started with SIGINT
    ignored (nohup, some CI) would otherwise swallow the signal and the test would hang or lie."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def connections_in_use(magics) -> int:
    """Connections checked out of the client's pools: anything but 0 after a cell is a leak."""
    client = magics._client
    if client is None or client._session is None:
        return 0
    in_use = 0
    for adapter in client._session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            pool = pools[key]
            in_use += pool.pool.maxsize - pool.pool.qsize()
    return in_use


def syn_sent(port: int) -> int:
    """Sockets of this machine still trying to connect to ``port`` (Linux /proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as fh:
        for line in fh.read().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "02":
                count += 1
    return count


def assert_one_paragraph(run, *words: str) -> str:
    """The cell failed with our own short message: no traceback, every word present."""
    assert isinstance(run.error, AIMLError), (type(run.error), run.shown)
    text = str(run.error)
    for word in words:
        assert word in text, (word, text)
    assert "\n" not in text
    assert "Traceback" not in run.shown
    return text


def next_cell_works(shell, api, magics) -> None:
    """The session is fine after a fault: a normal cell answers and nothing is left checked out."""
    assert connections_in_use(magics) == 0
    api.reset()
    api.queue(Reply(content="still here"))
    run = run_cell(shell, "%%aiml --no-memory\nping")
    assert run.error is None, run.shown
    assert shell.user_ns["aiml_response"].text == "still here"
    assert api.last_json["messages"] == [{"role": "user", "content": "ping"}]
    assert connections_in_use(magics) == 0


def seconds_stated(text: str) -> float:
    match = re.search(r"over (\d+(?:\.\d+)?) s", text)
    assert match, text
    return float(match.group(1))


# -- busy and failing gateway ------------------------------------------------------------------------


def test_429_always_retries_a_bounded_number_of_times_and_says_so(shell, api, magics):
    api.default = Error(429, headers={"Retry-After": "0"})
    run = run_cell(shell, "%%aiml\nhello")
    text = assert_one_paragraph(run, "429", "Too many requests", "after 2 retries")
    assert len(api.chat_requests) == 3  # the first try and max_retries = 2 retries
    assert 0 <= seconds_stated(text) <= 30  # the wait is stated, and within the bound
    assert "aiml_response" not in shell.user_ns
    assert len(magics.conversation) == 0
    next_cell_works(shell, api, magics)


def test_retry_after_beyond_the_wait_bound_gives_up_at_once(shell, api, magics):
    api.queue(Error(429, headers={"Retry-After": "3600"}), Reply(content="never asked for"))
    run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "429", "asked to wait 3600 s")
    assert len(api.chat_requests) == 1 and api.pending == 1  # no hour-long wait, no retry
    next_cell_works(shell, api, magics)


def test_unreadable_retry_after_falls_back_to_backoff(shell, api, magics):
    api.queue(Error(429, headers={"Retry-After": "soon, maybe"}), Reply(content="answered"))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    assert shell.user_ns["aiml_response"].text == "answered"
    assert len(api.chat_requests) == 2


def test_500_once_is_retried_with_the_same_request(shell, api, magics):
    api.queue(Error(500), Reply(content="recovered"))
    run = run_cell(shell, "%%aiml\nhello")
    assert run.error is None, run.shown
    first, second = api.chat_requests
    assert first.body == second.body
    assert first.headers["x-client-request-id"] == second.headers["x-client-request-id"]
    assert shell.user_ns["aiml_response"].text == "recovered"
    assert [(t.prompt, t.answer) for t in magics.conversation.turns] == [("hello", "recovered")]
    next_cell_works(shell, api, magics)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (Error(503), ["503", "Service Unavailable", "under maintenance", "after 1 retry"]),
        (Error(503, "upstream overloaded", shape="openai"), ["503", "upstream overloaded"]),
        (Error(504), ["504", "Gateway Timeout", "Generation timeout", "after 1 retry"]),
        (Error(504, "upstream request timeout", shape="text"), ["504", "upstream request timeout"]),
    ],
)
def test_5xx_always_fails_after_bounded_retries(shell, api, magics, error, words):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 1")
    api.default = error
    run = run_cell(shell, "%%aiml\nhello")
    text = assert_one_paragraph(run, *words, "try again")
    assert len(api.chat_requests) == 2
    assert seconds_stated(text) >= 0
    assert "aiml_response" not in shell.user_ns
    next_cell_works(shell, api, magics)


# -- the network -----------------------------------------------------------------------------------


def test_connect_timeout_on_a_full_backlog(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.timeout = 0.3")
    shell.run_line_magic("config", "AIMLMagics.max_retries = 1")
    with FakeAIMLAPI.backlog_full() as base:
        shell.run_line_magic("config", f"AIMLMagics.base_url = {base!r}")
        run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "Could not connect", base, "0.3 s")
    assert api.requests == []
    shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    shell.run_line_magic("config", "AIMLMagics.timeout = 30.0")
    next_cell_works(shell, api, magics)


def test_read_timeout_before_headers_is_not_resent(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.timeout = 0.3")
    api.queue(Hang(seconds=10))
    run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "did not answer within 0.3 s", "timeout")
    assert not str(run.error).startswith("Could not connect")
    assert len(api.chat_requests) == 1  # a request that may be billed is never sent twice
    assert "aiml_response" not in shell.user_ns
    shell.run_line_magic("config", "AIMLMagics.timeout = 30.0")
    next_cell_works(shell, api, magics)


def test_read_timeout_mid_stream_keeps_the_partial_answer(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.timeout = 0.3")
    first = b'data: {"choices":[{"delta":{"content":"partial "}}]}\n\n'
    api.queue(Hang(seconds=10, after_headers=True, after_events=[first]))
    run = run_cell(shell, "%%aiml\nhello")
    assert_one_paragraph(run, "stopped early", "read timeout", "8 characters", "aiml_response")
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "partial " and resp.finish_reason == "cut" and not resp.complete
    assert "partial answer" in run.final_markdown()
    turn = magics.conversation.turns[-1]
    assert turn.partial and turn.answer == "partial "
    assert len(api.chat_requests) == 1
    shell.run_line_magic("config", "AIMLMagics.timeout = 30.0")
    next_cell_works(shell, api, magics)


# -- odd bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "ctype", "body"),
    [
        ("", "text/html", b"<html><body>Service temporarily moved</body></html>"),
        ("", "application/json", b"this is not json"),
        ("", "text/plain", b"upstream said: maintenance until noon"),
        ("--no-stream", "text/html", b"<html><body>Service temporarily moved</body></html>"),
    ],
)
def test_200_with_a_body_that_is_not_an_answer(shell, api, magics, flags, ctype, body):
    api.queue(RawStream([body], content_type=ctype))
    run = run_cell(shell, f"%%aiml {flags}\nhello")
    text = assert_one_paragraph(run, "200")
    excerpt = re.sub(r"<[^>]+>", " ", body.decode()).split()[0]
    assert excerpt in text  # the user sees what came back instead of an answer
    assert len(magics.conversation) == 0
    next_cell_works(shell, api, magics)


def test_huge_answer_arrives_whole(shell, api, magics):
    paragraph = "All work and no play makes a long answer. Ünïcödé ✓ 😀 " * 20 + "\n\n"
    answer = paragraph * (1_000_000 // len(paragraph))
    api.queue(Reply(content=answer, chunk_chars=4000))
    run = run_cell(shell, "%%aiml\nwrite a lot")
    assert run.error is None, run.shown[:500]
    resp = shell.user_ns["aiml_response"]
    assert len(answer) > 900_000 and resp.text == answer and resp.complete
    assert answer.strip() in run.final_markdown()
    published = sum(len(v) for o in run.outputs for v in o.data.values())
    assert published <= 5 * len(answer)  # bounded, not quadratic
    assert magics.conversation.turns[-1].answer == answer
    next_cell_works(shell, api, magics)


@pytest.mark.parametrize("content", ["", None])
@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_empty_answer_is_shown_and_explained(shell, api, magics, content, flags):
    api.queue(Reply(content=content))
    run = run_cell(shell, f"%%aiml {flags}\nsay nothing")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "" and resp.complete and resp.finish_reason == "stop"
    final = run.final_markdown()
    assert "no answer text" in final
    assert any("no answer text" in w for w in resp.warnings)
    assert len(magics.conversation) == 0  # no empty assistant message is sent next time
    next_cell_works(shell, api, magics)


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_reasoning_only_answer_keeps_the_reasoning(shell, api, magics, flags):
    thoughts = "First, consider the question. Then consider it again. " * 5
    api.queue(Reply(content=None, reasoning=thoughts, finish_reason="length"))
    run = run_cell(shell, f"%%aiml {flags} -n 50\nthink hard")
    assert run.error is None, run.shown
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "" and resp.reasoning == thoughts
    final = run.final_markdown()
    assert "<details>" in final and thoughts.strip() in final
    warning = " ".join(resp.warnings)
    assert "only reasoning" in warning and "max_completion_tokens" in warning
    next_cell_works(shell, api, magics)


# -- interrupts ------------------------------------------------------------------------------------


def test_ctrl_c_during_connect_releases_the_socket(shell, api, magics):
    shell.run_line_magic("config", "AIMLMagics.timeout = 20.0")
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    with FakeAIMLAPI.backlog_full() as base:
        port = int(base.rsplit(":", 1)[1].split("/")[0])
        fillers = syn_sent(port)
        shell.run_line_magic("config", f"AIMLMagics.base_url = {base!r}")
        with ctrl_c_after(0.3):
            run = run_cell(shell, "%%aiml\nhello")
        assert isinstance(run.error, StreamInterrupted), run.shown
        assert "KeyboardInterrupt" in run.stdout and "Traceback" not in run.stdout
        assert "before any answer" in str(run.error)
        assert syn_sent(port) == fillers  # our half-open connection is gone, not left to the GC
    assert "aiml_response" not in shell.user_ns
    shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    next_cell_works(shell, api, magics)


def test_ctrl_c_during_a_retry_wait(shell, api, magics):
    api.default = Error(429, headers={"Retry-After": "20"})
    with ctrl_c_after(0.5):
        run = run_cell(shell, "%%aiml\nhello")
    assert isinstance(run.error, StreamInterrupted), run.shown
    assert "KeyboardInterrupt" in run.stdout and "Traceback" not in run.stdout
    assert run.stdout.strip().count("\n") == 0  # one line
    assert len(api.chat_requests) == 1  # stopped while waiting, before the retry
    assert len(magics.conversation) == 0
    next_cell_works(shell, api, magics)


# -- concurrency -----------------------------------------------------------------------------------


def test_two_threads_running_cells_keep_the_conversation_whole(shell, api, magics):
    api.default = Reply(echo=True, chunk_chars=2, delay=0.002)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            for i in range(4):
                shell.run_cell_magic("aiml", "", f"{name} question {i}\n")
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    background = threading.Thread(target=worker, args=("background",))
    background.start()
    worker("foreground")
    background.join(timeout=60)
    assert not background.is_alive() and errors == []
    turns = magics.conversation.turns
    assert len(turns) == 8
    assert all(t.answer == f"echo: {t.prompt}" and not t.partial for t in turns)
    assert sorted(t.prompt for t in turns) == sorted(
        f"{n} question {i}" for n in ("background", "foreground") for i in range(4)
    )
    for rec in api.chat_requests:  # every request carried whole user/assistant pairs
        messages = rec.json["messages"]
        roles = [m["role"] for m in messages]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
        for user, answer in zip(messages[0:-1:2], messages[1::2], strict=True):
            assert answer["content"] == "echo: " + user["content"]
    next_cell_works(shell, api, magics)
