"""What the performance work relies on, checked functionally (no timing asserts).

Coalesced live display with blocks sealed once, one final rendering that replaces the live
outputs, one keep-alive connection for a run of cells, nothing heavy imported at ``%load_ext``,
an SSE parser that gives the same events however the bytes are cut, and a flag parser cache
that hands out independent results. The benchmarks in ``benchmarks/`` measure the speed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import markdown
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.displaypub import DisplayPublisher

from aiml_magics.display.render import LiveMarkdown
from aiml_magics.display.view import final_bundle
from aiml_magics.http.sse import SSEParser
from aiml_magics.notebook.magics import parse_flags
from aiml_magics.response import ChatResponse
from tests.conftest import TEST_KEY
from tests.fakeapi import Error, Reply

PARAGRAPHS = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 8 for i in range(12)]
ANSWER = (
    "# Title\n\n"
    + "\n\n".join(PARAGRAPHS[:4])
    + "\n\n- one\n- two\n- three\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n"
    + "\n\n".join(PARAGRAPHS[4:])
    + "\n\n```python\n"
    + "x = 1\n" * 40
    + "```\n\n> quoted\n\nDone."
)
LONG = "\n\n".join([ANSWER] * 3)  # about 9 KB: past the renderer's fixed slack


# -- a frontend that records every display message ---------------------------------------------------


class Frontend(DisplayPublisher):
    """Records display / update / clear messages, as a notebook frontend receives them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[tuple[str, str | None, dict[str, Any]]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # noqa: ANN001
        self.messages.append(("update" if update else "display", (transient or {}).get("display_id"), data))

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append(("clear_wait" if wait else "clear", None, {}))


def publish_to(frontend: Frontend) -> tuple[Any, Any]:
    """LiveMarkdown's publish/clear callables, writing into ``frontend``."""

    def publish(data: dict[str, str], display_id: str, update: bool) -> None:
        frontend.publish(data, transient={"display_id": display_id}, update=update)

    return publish, lambda: frontend.clear_output(wait=True)


def replay(messages: list[tuple[str, str | None, dict[str, Any]]]) -> list[tuple[str | None, dict[str, Any]]]:
    """The output area after these messages, as JupyterLab builds it: display appends, update
    replaces every output with that id, clear(wait) empties the area before the next display."""
    outputs: list[tuple[str | None, dict[str, Any]]] = []
    clear_next = False
    for kind, display_id, data in messages:
        if kind == "clear":
            outputs = []
        elif kind == "clear_wait":
            clear_next = True
        elif kind == "display":
            if clear_next:
                outputs, clear_next = [], False
            outputs.append((display_id, data))
        else:
            outputs = [(i, data if i == display_id else d) for i, d in outputs]
    return outputs


def visible(outputs: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d for _, d in outputs if any(str(v).strip() for v in d.values())]


def payload_bytes(messages: list[tuple[str, str | None, dict[str, Any]]]) -> int:
    return sum(len(str(v).encode()) for kind, _, d in messages if kind != "clear_wait" for v in d.values())


def structure(text: str) -> dict[str, int]:
    """Counts of the structural elements of a Markdown rendering (what a broken fence, table
    or list would change)."""
    html = markdown.markdown(text, extensions=["fenced_code", "tables"])
    tags = ("table", "tr", "pre", "ul", "li", "blockquote")
    counts = {t: len(re.findall(rf"<{t}[ >]", html)) for t in tags}
    counts["headings"] = len(re.findall(r"<h[1-6][ >]", html))
    return counts


@pytest.fixture
def frontend(shell: Any) -> Iterator[Frontend]:
    """The shell's display messages go to a recorder (run cells with shell.run_cell, not run_cell)."""
    saved = shell.display_pub
    recorder = Frontend(shell=shell)
    shell.display_pub = recorder
    try:
        yield recorder
    finally:
        shell.display_pub = saved


class Clock:
    """A clock the test moves by hand: the renderer's rate limit becomes deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tokens(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_into(renderer: LiveMarkdown, clock: Clock, text: str, step: float = 0.01) -> None:
    """Feed ``text`` as 4-character deltas, ``step`` simulated seconds apart (0.01: 100/s)."""
    for piece in tokens(text):
        clock.now += step
        renderer.content(piece)


def done(text: str, **extra: Any) -> ChatResponse:
    return ChatResponse(text=text, model="m", finish_reason="stop", request={"model": "m"}, **extra)


# -- the live renderer, under a simulated clock ------------------------------------------------------


def test_live_updates_are_rate_limited_and_bytes_bounded():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock, max_rate=8, budget=2.2)
    start = clock.now
    stream_into(renderer, clock, LONG)
    deltas = len(tokens(LONG))
    seconds = clock.now - start
    live = list(recorder.messages)
    # One waiting note, the first token at once, then at most one message per 1/8 s tick.
    assert len(live) <= 2 + seconds * 8 + 1
    assert len(live) < deltas / 10
    # Refreshes stay within the budget; sealed blocks are sent once (at most one past the check).
    longest_block = max(len(block) for block in LONG.split("\n\n"))
    assert payload_bytes(live) <= 2.2 * len(LONG) + LiveMarkdown.SLACK + longest_block
    renderer.finish(done(LONG))
    assert payload_bytes(recorder.messages) <= 5 * len(LONG)
    assert renderer.updates == len(recorder.messages)


def test_first_token_is_shown_at_once_in_the_waiting_output():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock, label="gpt-4o")
    assert recorder.messages[0][0] == "display" and "gpt-4o" in recorder.messages[0][2]["text/markdown"]
    renderer.content("Hel")
    kind, display_id, data = recorder.messages[-1]
    assert (kind, display_id, data["text/markdown"]) == ("update", recorder.messages[0][1], "Hel")
    renderer.content("lo")  # within the same tick: nothing sent
    assert len(recorder.messages) == 2
    clock.now += 1
    renderer.content("!")
    assert recorder.messages[-1][2]["text/markdown"] == "Hello!"


def test_sealed_blocks_are_sent_once_and_the_live_view_is_the_answer_so_far():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock)
    from aiml_magics.display.safemd import _demoted
    from aiml_magics.display.view import TOP_HEADING

    text = ANSWER.split("```python")[0]  # no long code block: the live view is the text verbatim
    fed = ""
    for piece in tokens(text):
        clock.now += 0.01
        fed += piece
        before = len(recorder.messages)
        renderer.content(piece)
        if len(recorder.messages) > before:  # after every message, the outputs read as the text so far
            shown = "".join(d.get("text/markdown", "") for _, d in replay(recorder.messages))
            # the text so far, with its headings a level down as every view shows them
            assert _demoted(fed, TOP_HEADING).startswith(shown) and len(shown) > 0
    ids = [i for kind, i, _ in recorder.messages if kind == "display"]
    assert len(ids) > 5  # the answer was cut into several sealed outputs
    for older, newer in zip(ids, ids[1:], strict=False):
        last_touch = max(n for n, (_, i, _) in enumerate(recorder.messages) if i == older)
        created = next(n for n, (k, i, _) in enumerate(recorder.messages) if k == "display" and i == newer)
        assert last_touch < created  # once a block is below, the one above is never sent again
    for data in visible(replay(recorder.messages)):
        assert data["text/markdown"].count("|---|") in (0, 1)  # a table is never cut in two


def test_long_code_block_is_split_and_its_fence_reopened_while_live():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock)
    code = "```python\n" + "".join(f"value_{i} = {i} * 2\n" for i in range(400)) + "```\n\nAfter."
    stream_into(renderer, clock, code)
    live = [d["text/markdown"] for d in visible(replay(recorder.messages))]
    assert len(live) > 2
    for text in live[:-1]:
        assert text.startswith("```python\n") and text.rstrip().endswith("```")  # each part renders alone
    renderer.finish(done(code))
    (final,) = visible(replay(recorder.messages))
    assert code in final["text/markdown"] and structure(final["text/markdown"])["pre"] == 1


def test_finish_replaces_every_live_output_with_one_rendering():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock)
    stream_into(renderer, clock, ANSWER)
    live_outputs = len(replay(recorder.messages))
    assert live_outputs > 2
    sent = len(recorder.messages)
    resp = done(ANSWER, reasoning="thinking hard")
    renderer.finish(resp)
    assert len(recorder.messages) - sent == 2  # clear(wait) + one display, however many outputs
    assert [kind for kind, _, _ in recorder.messages[sent:]] == ["clear_wait", "display"]
    (final,) = replay(recorder.messages)
    assert final[1] == final_bundle(resp)
    assert structure(final[1]["text/markdown"]) == structure(ANSWER)


def test_a_short_answer_ends_in_its_single_output_without_clearing():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock)
    renderer.content("Short answer.")
    renderer.finish(done("Short answer."))
    assert all(kind in ("display", "update") for kind, _, _ in recorder.messages)
    assert len(recorder.messages) == 3
    (final,) = replay(recorder.messages)
    assert final[1] == final_bundle(done("Short answer."))


def test_reasoning_shows_a_rate_limited_note_then_the_answer_below():
    recorder, clock = Frontend(), Clock()
    publish, clear = publish_to(recorder)
    renderer = LiveMarkdown(publish, clear=clear, clock=clock)
    for piece in tokens("let me think " * 200):
        clock.now += 0.01
        renderer.reasoning(piece)
    notes = [d["text/markdown"] for _, _, d in recorder.messages[1:]]
    assert 1 < len(notes) <= 26 * 4 + 1  # 26 simulated seconds, at most 4 notes a second
    assert "2,600 chars" in notes[-1] or "Reasoning" in notes[-1]
    assert all(len(n) < 200 for n in notes)  # a glimpse, never the whole reasoning
    renderer.content("The answer.")
    outputs = replay(recorder.messages)
    assert "Reasoned 2,600 chars" in outputs[0][1]["text/markdown"]
    assert outputs[1][1]["text/markdown"] == "The answer."


# -- the magic, end to end ---------------------------------------------------------------------------------


def test_streaming_display_is_coalesced_and_final_is_complete(shell, api, frontend):
    api.queue(Reply(content=LONG, chunk_chars=3))
    result = shell.run_cell("%%aiml\nlong")
    assert result.success
    chunks = len(LONG) // 3
    messages = frontend.messages
    assert len(messages) < chunks / 5  # coalesced, not one update per chunk
    assert payload_bytes(messages) <= 5 * len(LONG)
    outputs = replay(messages)
    assert len(outputs) == 1 and len(visible(outputs)) == 1  # one rendering is left, nothing else
    final = outputs[0][1]["text/markdown"]
    assert final.startswith("### Title") and LONG.replace("# Title", "### Title") in final
    assert structure(final) == structure(LONG)  # fences, tables, lists and quotes intact
    assert shell.user_ns["aiml_response"].text == LONG


def test_paced_stream_sends_far_fewer_messages_than_chunks(shell, api, frontend):
    text = "\n\n".join(PARAGRAPHS[:3])
    api.queue(Reply(content=text, chunk_chars=4, delay=0.005))
    assert shell.run_cell("%%aiml\nparagraphs").success
    assert len(frontend.messages) < len(text) // 4 / 3
    (final,) = visible(replay(frontend.messages))
    assert text in final["text/markdown"]


def test_non_streamed_answer_is_one_output_updated_once(shell, api, frontend):
    api.queue(Reply(content="Plain **answer**."))
    assert shell.run_cell("%%aiml --no-stream\nx").success
    kinds = [kind for kind, _, _ in frontend.messages]
    assert kinds == ["display", "update"]  # the waiting note, then the answer in its place
    (final,) = replay(frontend.messages)
    assert "Plain **answer**." in final[1]["text/markdown"]


def test_failed_request_leaves_no_output_behind(shell, api, frontend):
    api.queue(Error(403))
    result = shell.run_cell("%%aiml\nx")
    assert not result.success
    assert visible(replay(frontend.messages)) == []


def test_keep_alive_one_connection_for_many_cells(shell, api):
    for i in range(3):
        assert shell.run_cell(f"%%aiml\nq{i}").success
    assert shell.run_cell("%%aiml --no-stream\nq").success
    api.queue(Error(400, "Body validation error! model: Invalid model"))
    assert not shell.run_cell("%%aiml\nrefused by the service").success
    api.queue(Reply(content="a longer streamed answer " * 50, chunk_chars=7))
    assert shell.run_cell("%%aiml\nlong").success
    assert shell.run_cell("%%aiml --no-stream\nlast").success
    assert len(api.chat_requests) == 7
    assert api.connections == 1


def test_netrc_entries_never_replace_the_key_nor_reach_the_service(shell, api, monkeypatch, tmp_path):
    # requests consults ~/.netrc on every request unless an auth is given; a `default` entry
    # would replace the Bearer key (and send its password to the service).
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert shell.run_cell("%%aiml\nhello").success
    assert shell.run_cell("%%aiml --no-stream\nhello").success
    shell.run_cell("%aiml models")
    auths = [r.headers.get("authorization") for r in api.requests]
    assert auths[:2] == [f"Bearer {TEST_KEY}"] * 2
    # GET /models carries the key too (LiteLLM, vLLM and OpenAI need it there), never netrc's.
    assert len(auths) == 3 and auths[2] == f"Bearer {TEST_KEY}"
    assert not any("netrc-secret" in str(r.headers) or "someone" in str(r.headers) for r in api.requests)


def test_load_ext_imports_nothing_heavy_and_a_cell_only_what_it_needs(api):
    code = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        # IPython 9 no longer imports these itself (8.x does): forget them, so that loading the
        # extension shows whether it imports them again (ssl and http.client cost ~20 ms).
        # IPython imports hashlib (libcrypto) and sqlite3 for its own history: forgotten too, so
        # an `import hashlib` anywhere in loading the extension would put it back.
        stdlib = ("ssl", "http.client", "email.utils", "html.entities", "http", "hashlib", "sqlite3")
        tops = ("ssl", "http", "email", "html", "hashlib", "sqlite3")
        for name in [m for m in sys.modules if m.split(".")[0] in tops]:
            del sys.modules[name]
        shell.run_line_magic("load_ext", "aiml_magics")
        heavy = ("requests", "urllib3", "ipywidgets", "markdown")
        print("AFTER_LOAD", [m for m in heavy if m in sys.modules])
        print("LOAD_ADDED", sorted(m for m in stdlib if m in sys.modules))
        print("LOAD_OTHERS", sorted(m for m in sys.modules if m.split(".")[0] in ("PIL", "aiohttp", "numpy")
                                    or m.startswith(("aiml_magics.image", "aiml_magics.dataurl"))))
        shell.run_cell("%%aiml --dry-run\\nhello")
        print("AFTER_DRY_RUN", [m for m in heavy if m in sys.modules])
        ok = shell.run_cell("%%aiml\\nhello").success
        print("AFTER_CELL", ok, [m for m in heavy if m in sys.modules])
        """
    )
    env = {**os.environ, "AIML_API_KEY": TEST_KEY, "AIML_API_BASE": api.base_url}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    out = proc.stdout + proc.stderr
    assert "AFTER_LOAD []" in out and "LOAD_ADDED []" in out and "LOAD_OTHERS []" in out, out
    # The dry run shows the base URL as urllib3 reads it (the parser the transport connects with),
    # so urllib3 is imported then; requests, widgets and Markdown still wait for a real request.
    assert "AFTER_DRY_RUN ['urllib3']" in out, out
    assert "AFTER_CELL True ['requests', 'urllib3']" in out, out  # no widgets, no markdown library
    assert TEST_KEY not in out


# -- a long conversation ---------------------------------------------------------------------------


def test_a_turn_scans_and_checks_only_what_is_new_however_long_the_conversation(session, api, monkeypatch):
    """With ``max_history=None`` every past turn is sent again (that is linear in what is sent);
    what must not grow is the work around it: looking for images in stored requests and checking
    text already checked. Counted on the real functions, turn by turn, over 60 turns."""
    from aiml_magics import history, imageparts, params
    from aiml_magics.imagefile import png_from_array

    np = pytest.importorskip("numpy")
    counts = {"scan": 0, "check": 0}
    real_parts, real_check = imageparts.parts_of, params.check_encodable

    def parts_of(content: Any) -> list[dict[str, Any]]:
        counts["scan"] += 1
        return real_parts(content)

    def check_encodable(what: str, text: str) -> None:
        counts["check"] += 1
        real_check(what, text)

    monkeypatch.setattr(imageparts, "parts_of", parts_of)
    monkeypatch.setattr(history, "parts_of", parts_of)
    monkeypatch.setattr(params, "check_encodable", check_encodable)
    png = png_from_array(np.full((8, 12, 3), 200, dtype=np.uint8))
    session.settings.max_history = None
    per_turn, requests = [], []
    for i in range(60):
        before = dict(counts)
        session.chat(f"turn {i}", images=png if i % 3 == 0 else None, model="gpt-4o", system="Be brief.")
        per_turn.append((counts["scan"] - before["scan"], counts["check"] - before["check"]))
        requests.append(session.last_request)
    sent = api.chat_requests[-1].json["messages"]
    assert len(sent) == 1 + 2 * 59 + 1  # the whole conversation went out, images included
    assert sum(len(imageparts.parts_of(m["content"])) for m in sent) == 20
    # An image turn and two text turns cost the same near the start and at the end.
    assert per_turn[3:6] == per_turn[57:60], per_turn
    assert max(per_turn[3:]) == max(per_turn[3:6]), per_turn
    # Past turns are built once: the last request holds the very messages the tenth one did.
    early, last = requests[9]["messages"], requests[-1]["messages"]
    assert all(a is b for a, b in zip(early[1:-1], last[1:len(early) - 1], strict=True))


# -- parsing -----------------------------------------------------------------------------------------------


def _events(stream: bytes, cuts: list[int]) -> list[str]:
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    parser = SSEParser()
    out: list[str] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out += parser.feed(stream[a:b])
    return out + parser.close()


_event = st.builds(
    lambda text, comment: (b": keep-alive\n" if comment else b"")
    + b"data: "
    + json.dumps({"choices": [{"delta": {"content": text}}]}, ensure_ascii=False).encode(),
    st.text(max_size=12),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    done=st.booleans(),
)
@pytest.mark.slow
def test_sse_events_do_not_depend_on_how_the_bytes_are_cut(events, eol, cuts, done):
    stream = b"".join(e.replace(b"\n", eol) + eol + eol for e in events)
    if done:
        stream += b"data: [DONE]" + eol + eol
    elif stream:
        stream = stream[: -len(eol)]  # the service may end without [DONE] or a last blank line
    whole = _events(stream, [])
    assert _events(stream, cuts) == whole
    assert _events(stream, list(range(len(stream)))) == whole  # one byte at a time, UTF-8 split too
    expected = [e.split(b"data: ", 1)[1].decode() for e in events] + (["[DONE]"] if done else [])
    assert whole == expected


def test_parsed_flags_are_independent_copies():
    first = parse_flags("--stop END --stop '###' -t 0")
    first.stop.append("MUTATED")
    first.temperature = "9"
    again = parse_flags("--stop END --stop '###' -t 0")
    assert again.stop == ["END", "###"] and again.temperature == "0"
    assert again is not first
    with pytest.raises(Exception, match="quotes"):
        parse_flags("--system 'unclosed")
    with pytest.raises(Exception, match="quotes"):
        parse_flags("--system 'unclosed")  # errors are raised every time, never cached
