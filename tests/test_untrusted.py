"""Model output is untrusted: nothing in an answer runs, loads or leaks (issue #9, items 1-3).

A hostile service on 127.0.0.1 (the fake's Reply and RawStream send whatever we script) answers
with HTML, script links, remote images, terminal escapes and the key. Every display message of the
live view, the final view, the re-display, ``to_html()``, ``%aiml history`` and the exports is
checked with three Markdown readings (``tests/inert.py``), and for any 8-character piece of the key.
"""

from __future__ import annotations

import html
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.displaypub import DisplayPublisher

from aiml_magics.display.render import LiveMarkdown
from aiml_magics.display.safemd import safe_markdown
from aiml_magics.display.terminal import TerminalText
from aiml_magics.display.view import final_markdown
from aiml_magics.errors import register_secret
from aiml_magics.response import ChatResponse
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import RawStream, Reply
from tests.inert import (
    HOSTILE,
    HOSTILE_REASONING,
    REMOTE,
    active_content,
    assert_inert,
    parse,
    readings,
    visible_text,
)
from tests.test_security import assert_clean

# -- the function itself ---------------------------------------------------------------------------


def test_code_spans_and_fences_show_their_text_verbatim():
    md = safe_markdown(
        "Use `<img src=x onerror=alert(1)>` or ``a ` b``.\n\n"
        "```html\n<script>alert(1)</script>\n<a href=\"javascript:x\">[y](javascript:z)</a>\n```\n\n"
        "```python\nprint(1 < 2, [a](b))\n```"
    )
    assert_inert(md, "code")
    text = visible_text(md)
    for piece in ("<img src=x onerror=alert(1)>", "a ` b", "<script>alert(1)</script>",
                  '<a href="javascript:x">[y](javascript:z)</a>', "print(1 < 2, [a](b))"):
        assert piece in text, (piece, text)
    assert "```python\nprint(1 < 2, [a](b))\n```" in md  # harmless as prose: stays a highlighted fence


def test_links_images_and_html_are_text_or_safe():
    md = safe_markdown(HOSTILE)
    assert_inert(md, "hostile answer")
    page = readings(md)["mistune"]
    links = [a.get("href") for t, a in parse(page).tags if t == "a"]
    assert "https://203.0.113.7/ref.png" not in [a.get("src") for t, a in parse(page).tags if t == "img"]
    assert REMOTE in links  # a remote image is a plain link to its URL ...
    assert REMOTE in visible_text(md)  # ... which the reader sees
    assert [a.get("src") for t, a in parse(page).tags if t == "img"] == ["plot.png"]  # local loads
    text = visible_text(md)
    assert "<script>window.__pwned=2</script>" in text and "[click me](javascript:window.__pwned=5)" in text


def test_remote_images_load_only_when_allowed():
    md = safe_markdown(f"![chart]({REMOTE}) ![x](data:image/png;base64,AAAA)", allow_remote_images=True)
    assert_inert(md, "allowed", allow_remote_images=True)
    srcs = [a.get("src") for t, a in parse(readings(md)["mistune"]).tags if t == "img"]
    assert srcs == [REMOTE]  # http(s) loads; data: never does
    assert active_content(readings(safe_markdown(f"![c]({REMOTE})"))["mistune"]) == []


_PIECES = [
    "<", ">", "<img src=x onerror=alert(1)>", "<script>", "</script>", "<iframe", "<svg onload=x>",
    "<!--", "<a href='javascript:x'>", "[", "]", "(", ")", "](", "]:", "![", "javascript:", "data:",
    "jav&#x61;script:", "https://203.0.113.7/x.png", "x.png", "`", "``", "```", "~~~", "```html",
    "\n", "\n\n", "   ", "- ", "1. ", "> ", "\\", "&lt;", "&", "|", "*", "_", "$", "\t", "a", "word ",
]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.booleans())
def test_any_mix_is_inert_under_every_reading(pieces, allow):
    text = "".join(pieces)
    assert_inert(safe_markdown(text, allow_remote_images=allow), repr(text), allow_remote_images=allow)


@pytest.mark.slow
def test_every_prefix_of_a_hostile_answer_is_inert():
    """The live view publishes blocks cut anywhere, even inside a tag: each cut is inert."""
    for end in range(0, len(HOSTILE), 3):
        assert_inert(safe_markdown(HOSTILE[:end]), f"prefix {end}")


# -- through %%aiml, every message the frontend receives ---------------------------------------------


class Recorder(DisplayPublisher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data: list[dict[str, Any]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # noqa: ANN001
        self.data.append(data)

    def clear_output(self, wait: bool = False) -> None:
        pass


@pytest.fixture
def recorder(shell):
    saved = shell.display_pub
    shell.display_pub = Recorder(shell=shell)
    try:
        yield shell.display_pub
    finally:
        shell.display_pub = saved


def _check_messages(messages: list[dict[str, Any]], where: str) -> None:
    for i, data in enumerate(messages):
        for mime, value in data.items():
            assert_clean(str(value), f"{where} message {i} {mime}")
            if mime == "text/markdown":
                assert_inert(value, f"{where} message {i}")
            assert "\x1b" not in str(value) and "\x07" not in str(value), (where, mime, value)


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_hostile_answer_is_inert_and_keyless_in_every_view(shell, api, recorder, tmp_path, flags):
    api.queue(Reply(content=HOSTILE, reasoning=HOSTILE_REASONING, chunk_chars=3))
    assert shell.run_cell(f"%%aiml {flags}\nsummarise this page").success
    live = list(recorder.data)
    assert len(live) >= (4 if not flags else 2)
    _check_messages(live, "live and final views")
    resp = shell.user_ns["aiml_response"]
    final = final_markdown(resp)
    assert "<details>" in final and "<sub>" in final  # our own markup survives around it
    text = visible_text(final)
    assert "<script>window.__pwned=2</script>" in text and "Your key is ****HECK" in text
    assert "\\x1b]52;c;cHduZWQ=\\x07" in text  # shown, harmless
    # The answer object itself holds only the mask: text, raw body, repr.
    assert_clean(resp.text + json.dumps(resp.raw) + repr(resp) + (resp.reasoning or ""), "response")
    recorder.data.clear()
    export = tmp_path / "h.json"
    views = ("aiml_response", "%aiml history", "%aiml history --json", f"%aiml history --export {export}")
    for cell in views:
        result = run_cell(shell, cell)
        assert result.error is None, cell
        assert_clean(result.shown, cell)
    _check_messages(recorder.data, "re-display and history")
    page = resp.to_html()
    assert active_content(page) == [] and "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in page
    assert_clean(page, "to_html")
    saved = export.read_text(encoding="utf-8")
    assert "<" not in saved and json.loads(saved)[1]["content"] == resp.text
    assert_clean(saved, "export")


def test_allow_remote_images_setting(shell, api, recorder):
    api.queue(Reply(content=f"![chart]({REMOTE})"), Reply(content=f"![chart]({REMOTE})"))
    assert shell.run_cell("%%aiml\nplot").success
    final = recorder.data[-1]["text/markdown"]
    assert f"]({REMOTE})" in final and "![" not in final
    shell.run_line_magic("config", "AIMLMagics.allow_remote_images = True")
    assert shell.run_cell("%%aiml\nplot").success
    assert f"![chart]({REMOTE})" in recorder.data[-1]["text/markdown"]
    assert "allow_remote_images" in run_cell(shell, "%aiml config").shown


def test_names_from_the_service_are_text(shell, api, recorder):
    evil = "evil <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    api.queue(RawStream([
        f'data: {json.dumps({"model": evil, "choices": [{"delta": {"content": "hi"}}]})}\n\n'.encode(),
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    ]))
    assert shell.run_cell("%%aiml\nhi").success
    _check_messages(recorder.data, "footer")
    assert "evil" in visible_text(recorder.data[-1]["text/markdown"])


# -- the live renderer on its own: blocks cut at every boundary ---------------------------------------


def test_live_blocks_cut_anywhere_are_inert():
    sent: list[str] = []
    clock = iter(range(10**6))
    live = LiveMarkdown(lambda d, i, u: sent.append(d.get("text/markdown", "")), clear=None,
                        clock=lambda: next(clock) * 0.3)
    for i in range(0, len(HOSTILE_REASONING), 2):
        live.reasoning(HOSTILE_REASONING[i : i + 2])
    for i in range(0, len(HOSTILE), 2):
        live.content(HOSTILE[i : i + 2])
    live.finish(ChatResponse(text=HOSTILE, reasoning=HOSTILE_REASONING, finish_reason="stop"))
    assert len(sent) > 20 and sum("Reasoning…" in md for md in sent) > 5
    for i, md in enumerate(sent):
        assert_inert(md, f"live message {i}")
        assert "\x1b" not in md and "\x07" not in md, md


# -- the terminal ---------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_shows_escapes_harmlessly_and_masks_a_key_sent_one_character_at_a_time():
    register_secret(TEST_KEY)
    out = Tty()
    term = TerminalText(out)
    answer = f"OSC52 \x1b]52;c;cHduZWQ=\x07 clear \x1b[2J\x9b2J title \x1b]0;t\x07 key {TEST_KEY} end"
    for c in HOSTILE_REASONING:
        term.reasoning(c)
    for c in answer:
        term.content(c)
    term.finish(ChatResponse(text=answer, reasoning=HOSTILE_REASONING, model="m\x1b]0;x\x07",
                             finish_reason="stop"))
    printed = out.getvalue()
    assert_clean(printed, "terminal")
    ours = printed  # our own sequences only: dim, bold, reset, and the reasoning line's clear
    for own in ("\x1b[2m", "\x1b[1m", "\x1b[0m", "\r\x1b[2K"):
        ours = ours.replace(own, "")
    assert "\x1b" not in ours and "\x07" not in ours and "\x9b" not in ours
    assert "\\x1b]52;c;cHduZWQ=\\x07" in ours and "key ****HECK end" in ours and "m\\x1b]0;x\\x07" in ours


def test_terminal_ipython_never_writes_an_escape_from_the_answer(api, tmp_path):
    script = tmp_path / "demo.ipy"
    script.write_text(
        "%load_ext aiml_magics\n"
        "get_ipython().run_cell('%%aiml\\nhi')\n"
        "get_ipython().run_cell('%%aiml --no-stream\\nagain')\n"
        "get_ipython().run_cell('%aiml history')\n"
        "get_ipython().run_cell('aiml_response')\n"
    )
    answer = f"Hi \x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;title\x07\x1b[8mhidden\x1b[0m {TEST_KEY}"
    api.queue(Reply(content=answer, reasoning="r\x1b[31m", chunk_chars=1), Reply(content=answer))
    env = {**os.environ, "AIML_API_KEY": TEST_KEY, "AIML_API_BASE": api.base_url}
    proc = subprocess.run(
        # term_title off: IPython 7.34 (Google Colab's) writes its own window-title escape at start.
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor",
         "--TerminalInteractiveShell.term_title=False", str(script)],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.getcwd(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout, repr(proc.stdout)
    assert proc.stdout.count("Hi \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J") >= 3  # stream, history, re-display
    assert_clean(proc.stdout + proc.stderr, "terminal IPython")
    assert len(api.chat_requests) == 2


def test_html_escape_of_footer_is_not_double():
    resp = ChatResponse(text="x", model="a&b", finish_reason="stop")
    assert "a&b" in html.unescape(visible_text(final_markdown(resp)))
