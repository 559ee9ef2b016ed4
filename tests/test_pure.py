"""The pure modules on their own: no shell, no server."""

from __future__ import annotations

import pytest

from aiml_magics.assembler import StreamAssembler
from aiml_magics.display.render import LiveMarkdown
from aiml_magics.display.view import close_fences, final_markdown, open_fence
from aiml_magics.errors import mask_key
from aiml_magics.http.sse import SSEParser, iter_events
from aiml_magics.http.status import http_error, service_message
from aiml_magics.params import build_payload, check_number, check_stop
from aiml_magics.response import ChatResponse
from aiml_magics.safejson import parse_json_answer


def test_sse_basics():
    stream = (
        b'data: {"a":1}\r\n\r\n: keep-alive\r\ndata: caf\xc3\xa9\r\n\r\n'
        b"data: x\ndata: y\n\ndata: [DONE]\n\nlate"
    )
    expected = ['{"a":1}', "café", "x\ny"]
    assert list(iter_events([stream])) == expected
    assert list(iter_events([stream[i : i + 1] for i in range(len(stream))])) == expected


def test_sse_unterminated_last_event_counts():
    parser = SSEParser()
    assert parser.feed(b"data: one\n\ndata: tw") == ["one"]
    assert parser.close() == ["tw"]


def test_sse_lone_cr_line_ends():
    assert list(iter_events([b"data: a\r\rdata: b\r", b"\r"])) == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("temperature", "0", 0), ("temperature", 0.0, 0.0), ("max_completion_tokens", "12", 12),
     ("seed", 3.0, 3), ("top_p", "0.01", 0.01), ("frequency_penalty", "-2", -2), ("max_tokens", None, None)],
)
def test_numbers_accepted(name, value, expected):
    got = check_number(name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [("temperature", True, "not a number"), ("temperature", float("nan"), "out of range"),
     ("temperature", float("inf"), "out of range"), ("seed", 1.5, "not an integer"),
     ("top_p", "abc", "not a number"), ("max_completion_tokens", -1, ">= 1")],
)
def test_numbers_refused(name, value, words):
    with pytest.raises(ValueError) as err:
        check_number(name, value)
    assert name in str(err.value) and words in str(err.value)


def test_temperature_narrowed_for_claude_and_minimax():
    assert check_number("temperature", 1.5, "gpt-4o") == 1.5
    for model in ("anthropic/claude-sonnet-4.5", "MiniMax/minimax-m2"):
        with pytest.raises(ValueError, match="0 to 1"):
            check_number("temperature", 1.5, model)


def test_stop_and_payload():
    assert check_stop("END") == ["END"]
    with pytest.raises(ValueError, match="empty"):
        check_stop(["a", ""])
    payload = build_payload("m", [{"role": "user", "content": "x"}], {"temperature": 0, "top_p": None},
                            stream=False, json_mode=True)
    assert payload == {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0,
                       "response_format": {"type": "json_object"}}


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        ('{"message":"Body validation error! x","statusCode":"400"}', "application/json",
         "Body validation error! x"),
        ('{"error":{"message":"quota","type":"t"}}', "application/json", "quota"),
        ('{"message":["a must be","b must be"]}', "application/json", "a must be; b must be"),
        ("<html><head><title>504 Gateway Time-out</title></head><body>x</body></html>", "text/html",
         "504 Gateway Time-out"),
        ("upstream connect error", "text/plain", "upstream connect error"),
        ("", "", "(empty response body)"),
    ],
)
def test_service_message_shapes(body, ctype, expected):
    assert expected in service_message(body.encode(), ctype)


def test_http_error_paragraph_and_masking():
    err = http_error(403, b'{"message":"out of credits"}', url="u")
    assert str(err).startswith("The AI/ML API answered 403 Forbidden: out of credits.")
    assert "\n" not in str(err) and err._render_traceback_()[0].endswith(str(err))
    assert mask_key("sk-0123456789abcdefWXYZ") == "****WXYZ"
    assert mask_key("short") == "****" and mask_key(None) == "(not set)"


def test_fences():
    assert open_fence("```python\nx\n") == "```"
    assert open_fence("```\nx\n```\n") is None
    assert open_fence("~~~~\n```\n") == "~~~~"
    assert close_fences("```\ncode") == "```\ncode\n```"


def test_from_body_tolerates_odd_shapes():
    resp = ChatResponse.from_body({"choices": [], "meta": None, "usage": "?"})
    assert resp.text == "" and resp.credits_used is None and resp.usage.total_tokens is None
    resp = ChatResponse.from_body(
        {"choices": [{"message": {"content": None, "reasoning_content": "r"}, "finish_reason": "length"}],
         "meta": {"usage": {"credits_used": "10", "usd_spent": 0.000005}}}
    )
    assert resp.text == "" and resp.reasoning == "r" and resp.credits_used == 10.0
    assert "token limit" in final_markdown(resp)


def test_assembler_ignores_unknown_and_partial_chunks():
    a = StreamAssembler()
    for chunk in [{"id": "", "obfuscation": "x"}, {"choices": [{}]}, {"choices": [{"delta": None}]},
                  {"choices": [{"delta": {"content": None, "reasoning_content": "th"}}]},
                  {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]},
                  {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
                  "not a dict", {"choices": "nope"}]:
        a.add(chunk)
    resp = a.build()
    assert (resp.text, resp.reasoning, resp.finish_reason, resp.usage.total_tokens) == ("hi", "th", "stop", 3)


def test_json_answer_parsing():
    assert parse_json_answer('{"a": 1}') == ({"a": 1}, None)
    assert parse_json_answer('```json\n[1, 2]\n```') == ([1, 2], None)
    data, warning = parse_json_answer("nope")
    assert data is None and "not valid JSON" in warning


class Recorder:
    """Collects what the renderer publishes, keyed by display id, as a frontend would show it."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, str, bool]] = []
        self.shown: dict[str, dict] = {}

    def clear(self) -> None:
        """clear_output(wait=True): the cell's outputs go when the next one arrives."""
        self.calls.append(({}, "clear", False))
        self.shown.clear()

    def __call__(self, data: dict, display_id: str, update: bool) -> None:
        assert update == (display_id in self.shown)
        self.calls.append((data, display_id, update))
        self.shown[display_id] = data

    def visible(self) -> list[str]:
        return [d.get("text/markdown", "") for d in self.shown.values() if any(v.strip() for v in d.values())]


def feed(
    text: str, step: int = 3, clock_step: float = 0.01, owns_cell: bool = True
) -> tuple[LiveMarkdown, Recorder]:
    rec = Recorder()
    now = [0.0]

    def clock() -> float:
        return now[0]

    live = LiveMarkdown(rec, clear=rec.clear if owns_cell else None, clock=clock)
    for i in range(0, len(text), step):
        now[0] += clock_step
        live.content(text[i : i + step])
    return live, rec


@pytest.mark.parametrize("owns_cell", [True, False])
def test_live_blocks_are_frozen_once_and_final_replaces_all(owns_cell):
    text = "# Title\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(10))
    live, rec = feed(text, owns_cell=owns_cell)
    blocks = [c for c in rec.calls if c[1] != live._status_id]
    # While streaming, the concatenation of the visible blocks is the text so far.
    assert "".join(rec.visible()).startswith("# Title\n\n")
    live.finish(ChatResponse(text=text, finish_reason="stop"))
    assert rec.visible() == [final_markdown(ChatResponse(text=text, finish_reason="stop"))]
    sent = sum(len(v) for d, _, _ in rec.calls for v in d.values())
    # A fixed allowance (waiting note, footer, 2 KiB of early refreshes) on top of 5x the answer.
    assert sent <= 5 * len(text) + 4096
    assert len(blocks) < len(text) / 3 / 4


def test_bytes_for_a_2000_token_answer_stay_within_5x():
    text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 12 for i in range(25))
    assert len(text) > 8000  # about 2,000 tokens
    live, rec = feed(text, step=4, clock_step=0.01)  # 100 tokens/s
    live.finish(ChatResponse(text=text, finish_reason="stop"))
    sent = sum(len(v) for d, _, _ in rec.calls for v in d.values())
    assert sent <= 5 * len(text)


def test_live_updates_respect_rate():
    text = "word " * 400  # one long paragraph, chunks every 10 ms
    live, rec = feed(text, step=5, clock_step=0.01)
    duration = 0.01 * (len(text) / 5)
    # Every display message while streaming (the waiting note becomes the open block), <= 10/s.
    assert 2 <= len(rec.calls) <= duration * 10 + 1


def test_live_does_not_cut_inside_code_fence_or_before_indented_continuation():
    text = "```python\nx = 1\n\ny = 2\n```\n\n- item\n\n    continued\n\nEnd."
    live, rec = feed(text, step=2)
    frozen = [d["text/markdown"] for d, _, _ in rec.calls if d.get("text/markdown")]
    assert not any(f.startswith("y = 2") for f in frozen)
    assert not any(f.startswith("    continued") for f in frozen)


def test_long_code_block_is_split_for_the_live_view_only():
    code = "```python\n" + "".join(f"line_{i} = {i}\n" for i in range(400)) + "```\n"
    live, rec = feed(code, step=7)
    pieces = [d["text/markdown"] for d in rec.shown.values() if d.get("text/markdown")]
    assert len(pieces) >= 2 and all(p.startswith("```python") for p in pieces)
    live.finish(ChatResponse(text=code, finish_reason="stop"))
    assert rec.visible()[0].count("```") == 2
