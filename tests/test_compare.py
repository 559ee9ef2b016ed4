"""Comparing models (issue #16): one prompt, several models, asked at once, shown side by side.

Against the loopback fake of the service, from notebook cells (a real IPython shell), from Python,
from a plain ``python -c`` process and from terminal IPython. Concurrency is proved without any
timing: the fake answers no model until all of them have arrived (a barrier), so asking one model
after another could never finish.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import aiml_magics
from aiml_magics import BadRequestError, ComparisonError, CreditsError, ParameterError
from aiml_magics.cassette import Cassette
from aiml_magics.comparison import Comparison
from aiml_magics.display.columns import ColumnsBoard, TerminalBoard
from aiml_magics.sources import RecordingSource, ReplaySource
from tests.conftest import KEY_VARS, ROOT, TEST_KEY, run_cell
from tests.fakeapi import Error, Reply

MODELS = ["gpt-4o-mini", "anthropic/claude-sonnet-4.5", "deepseek/deepseek-chat"]
HIDDEN = TEST_KEY[:-4]


def all_at_once(n: int, reply=None, failing: dict | None = None):
    """A behaviour that answers no request until ``n`` have arrived (then each its own answer).

    ``broken`` records a barrier that timed out: the requests did not overlap.
    """
    barrier = threading.Barrier(n, timeout=10)
    broken: list[str] = []

    def behaviour(rec):
        model = rec.json["model"]
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            broken.append(model)
        if failing and model in failing:
            return failing[model]
        return reply(model) if reply else Reply(content=f"Answer of {model}.", delay=0.02)

    behaviour.broken = broken
    return behaviour


def displays(run) -> dict[str, dict]:
    """The last state of each display the cell published, by display id."""
    shown: dict[str, dict] = {}
    for i, out in enumerate(run.outputs):
        ident = (out.transient or {}).get("display_id") if hasattr(out, "transient") else None
        shown[ident or f"anon-{i}"] = out.data
    return shown


# -- the magic ---------------------------------------------------------------------------------------


def test_three_models_are_asked_at_once_with_the_same_messages_and_shown_side_by_side(shell, api):
    api.default = behaviour = all_at_once(3)
    run = run_cell(shell, f"%%aiml --compare {' '.join(MODELS)} --temperature 0.3\nName a prime.")
    assert run.error is None, run.shown
    assert behaviour.broken == []  # every request arrived before any model was answered
    sent = [r.json for r in api.chat_requests]
    assert sorted(b["model"] for b in sent) == sorted(MODELS)
    same = [{k: v for k, v in b.items() if k != "model"} for b in sent]
    assert all(b == same[0] for b in same)  # the same messages and parameters for every model
    assert same[0]["temperature"] == 0.3 and same[0]["messages"][-1]["content"] == "Name a prime."
    # Each model's own client: three connections, one a model.
    assert api.connections == 3

    cmp = shell.user_ns["aiml_response"]
    assert isinstance(cmp, Comparison) and list(cmp) == MODELS  # the given order
    for model in MODELS:
        assert cmp[model].text == f"Answer of {model}." and cmp[model].error is None
        assert cmp[model].first_token_seconds is not None
        assert cmp[model].first_token_seconds <= cmp[model].elapsed

    # One display, updated in place; its final state holds every column with its footer.
    shown = [d for d in displays(run).values() if d.get("text/markdown")]
    assert len(shown) == 1
    md = shown[0]["text/markdown"]
    assert md.startswith('<div class="aiml-compare" style="display:flex;flex-wrap:wrap')
    columns = md.split('<div class="aiml-compare-column"')[1:]
    assert len(columns) == 3
    for model, column in zip(MODELS, columns, strict=True):
        assert f'padding:4px 0">{model}</div>' in column  # headed by its model
        assert f"Answer of {model}." in column
        footer = re.search(r"<sub>(.*?)</sub>", column).group(1)
        assert re.match(r"first token \d+\.\d s · \d+\.\d s · [\d,]+ tokens/s · \d+ \+ \d+ tokens · "
                        r"2,002 credits$", footer), footer
    assert "not added to the conversation" in md.rsplit("</div>", 1)[1]
    plain = shown[0]["text/plain"]
    assert [plain.index(f"== {m} ==") for m in MODELS] == sorted(plain.index(f"== {m} ==") for m in MODELS)


def test_one_failing_model_shows_its_error_in_its_column_while_the_others_answer(shell, api):
    models = ["gpt-4o-mini", "no-such-model", "deepseek/deepseek-chat", "mistralai/mistral-nemo"]
    # no-such-model: the fake refuses it (400, unknown model) before any behaviour runs;
    # mistral-nemo: out of credits (403). The other two still arrive together.
    api.default = behaviour = all_at_once(3, failing={"mistralai/mistral-nemo": Error(403)})
    run = run_cell(shell, f"%%aiml --compare {' '.join(models)}\nHello")
    assert run.error is None, run.shown  # the cell fails only when every model fails
    assert behaviour.broken == []
    cmp = shell.user_ns["aiml_response"]
    assert list(cmp) == models and cmp.answered == ["gpt-4o-mini", "deepseek/deepseek-chat"]
    assert isinstance(cmp["no-such-model"].error, BadRequestError)
    assert isinstance(cmp["mistralai/mistral-nemo"].error, CreditsError)
    assert cmp["no-such-model"].finish_reason == "error" and not cmp["no-such-model"].complete
    md = run.final_markdown()
    columns = md.split('<div class="aiml-compare-column"')[1:]
    assert "Answer of gpt-4o-mini." in columns[0] and "<sub>first token" in columns[0]
    assert "⚠ Failed:" in columns[1] and "Invalid model" in columns[1]
    assert "⚠ Failed:" in columns[3] and "run out of credits" in columns[3]
    assert "Answer of deepseek/deepseek-chat." in columns[2]
    assert "4 models asked at once, 2 answered" in md
    assert HIDDEN not in run.shown


def test_the_cell_fails_only_when_every_model_fails_and_the_next_cell_works(shell, api):
    api.default = lambda rec: Error(403)
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nHello")
    assert isinstance(run.error, ComparisonError)
    text = "".join(run.error._render_traceback_())
    assert "Every model of the comparison failed" in text and "gpt-4o-mini:" in text
    assert "\n" not in text and "Traceback" not in run.shown
    cmp = shell.user_ns["aiml_response"]  # kept even though the cell failed
    assert isinstance(cmp, Comparison) and set(cmp.errors) == {"gpt-4o-mini", "deepseek/deepseek-chat"}
    assert run.final_markdown().count("⚠ Failed:") == 2
    api.default = Reply(echo=True)
    assert run_cell(shell, "%%aiml\nAgain?").error is None


def test_a_per_model_limit_is_checked_for_every_model_before_anything_is_sent(shell, api):
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini anthropic/claude-sonnet-4.5 -t 1.5\nHello")
    assert isinstance(run.error, ParameterError)
    assert "out of range for anthropic/claude-sonnet-4.5: use a number from 0 to 1" in str(run.error)
    assert api.chat_requests == []
    for line in ("--compare gpt-4o-mini", "--compare gpt-4o-mini gpt-4o-mini",
                 "--compare gpt-4o-mini deepseek/deepseek-chat --model gpt-4o"):
        assert isinstance(run_cell(shell, f"%%aiml {line}\nHello").error, ParameterError), line
    assert api.chat_requests == []
    assert "aiml_response" not in shell.user_ns


def test_the_comparison_does_not_extend_the_conversation(shell, api, magics):
    run_cell(shell, "%%aiml\nFirst question")
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nWhich is better?")
    assert run.error is None
    compared = [r.json for r in api.chat_requests[1:]]
    for body in compared:  # the comparison itself carries the conversation so far
        assert [m["content"] for m in body["messages"]] == [
            "First question", "echo: First question", "Which is better?"
        ]
    assert len(magics.conversation) == 1  # ... but adds nothing to it
    history = magics.session.history
    assert len(history) == 3 and [e.in_conversation for e in history] == [True, False, False]
    assert [e.request["model"] for e in history[1:]] == ["gpt-4o-mini", "deepseek/deepseek-chat"]
    assert "not in the conversation" in history.to_markdown()
    assert "not added to the conversation" in run.final_markdown()
    run_cell(shell, "%%aiml\nAnd next?")
    assert [m["content"] for m in api.last_json["messages"]] == [
        "First question", "echo: First question", "And next?"
    ]


def test_to_dataframe_has_one_row_per_model(shell, api):
    pd = pytest.importorskip("pandas")
    api.default = all_at_once(3, reply=lambda m: Reply(
        content="one two three four", reasoning="hmm well" if "deepseek" in m else None, credits=10,
    ), failing={"anthropic/claude-sonnet-4.5": Error(403)})
    run_cell(shell, f"%%aiml --compare {' '.join(MODELS)}\nCount")
    frame = shell.user_ns["aiml_response"].to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "model", "first_token_seconds", "seconds", "tokens_per_second", "prompt_tokens",
        "completion_tokens", "reasoning_tokens", "credits", "finish_reason", "error",
    ]
    assert list(frame["model"]) == MODELS
    ok, failed, thinking = (frame.iloc[i] for i in range(3))
    assert ok["completion_tokens"] == 4 and ok["reasoning_tokens"] == 0 and ok["credits"] == 10
    assert ok["prompt_tokens"] == 1 and ok["finish_reason"] == "stop" and pd.isna(ok["error"])
    assert 0 < ok["first_token_seconds"] <= ok["seconds"] and ok["tokens_per_second"] > 0
    assert thinking["reasoning_tokens"] == 2 and thinking["completion_tokens"] == 6
    assert failed["finish_reason"] == "error" and "run out of credits" in failed["error"]
    assert pd.isna(failed["seconds"]) and pd.isna(failed["completion_tokens"])


def test_dry_run_shows_every_request_and_sends_nothing(shell, api):
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat --dry-run\nHi")
    assert run.error is None and api.chat_requests == []
    assert run.shown.count("Dry run: nothing was sent.") == 2
    assert '"model": "gpt-4o-mini"' in run.shown and '"model": "deepseek/deepseek-chat"' in run.shown


def test_answers_are_untrusted_in_the_columns_too(shell, api):
    hostile = ("</div></div><script>alert(1)</script><img src=x onerror=alert(2)> "
               f"![t](http://203.0.113.7/leak.png) key {TEST_KEY}\n\n```\nopen fence")
    api.default = lambda rec: Reply(content=hostile if rec.json["model"] == "gpt-4o-mini" else "fine")
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nHi")
    assert run.error is None
    for out in run.outputs:  # live and final: no tag of the answer's, no remote image, no key
        md = out.data.get("text/markdown", "")
        assert "<script" not in md and "<img" not in md and "![t](http" not in md
        assert HIDDEN not in md
        # Only our own markup opens and closes blocks: every <div we wrote is closed once.
        assert md.count("<div") == md.count("</div>")
    md = run.final_markdown()
    assert "&lt;/div>&lt;/div>&lt;script>" in md
    col = md.split('<div class="aiml-compare-column"')[1]
    assert col.rstrip().endswith("</div>") and "```\nopen fence\n```" in col  # the fence is closed


# -- Python, scripts, the terminal -------------------------------------------------------------------


def test_compare_from_python_shows_nothing_unless_asked(session, api):
    api.default = behaviour = all_at_once(3)
    cmp = session.compare("Hi", MODELS, max_completion_tokens=50)
    assert behaviour.broken == [] and list(cmp) == MODELS
    assert {r.json["max_completion_tokens"] for r in api.chat_requests} == {50}
    assert [cmp[m].text for m in MODELS] == [f"Answer of {m}." for m in MODELS]
    assert session.last_comparison is cmp and len(session.history.conversation) == 0
    with pytest.raises(ParameterError):
        session.compare("Hi", "gpt-4o-mini")  # a string is not a list of models
    board = ColumnsBoard(lambda data, ident, update: published.append((data, ident, update)))
    published: list = []
    api.default = all_at_once(2)
    session.compare("Hi", MODELS[:2], board=board)
    assert len({ident for _, ident, _ in published}) == 1  # one display, updated in place
    assert [u for _, _, u in published][:1] == [False] and all(u for _, _, u in published[1:])
    assert "Answer of gpt-4o-mini." in published[-1][0]["text/markdown"]


def test_live_columns_stay_within_their_byte_budget(session, api):
    """A long answer in small pieces: the columns are re-sent only while the bytes sent stay
    within the budget (a ratio of two sizes of the same run), and the text still streams."""
    text = "word " * 3000
    api.default = lambda rec: Reply(content=text, chunk_chars=5, delay=0.0005)
    published: list = []
    board = ColumnsBoard(lambda data, ident, update: published.append(data))
    cmp = session.compare("Long", MODELS[:2], board=board)
    total = sum(len(cmp[m].text) for m in cmp)
    final = sum(len(v) for v in published[-1].values())
    assert board.bytes_published - final <= board._budget * total + board.SLACK + 4 * final
    assert len(published) >= 2


def test_compare_from_a_plain_python_process(api):
    script = textwrap.dedent(
        """
        import sys, aiml_magics
        cmp = aiml_magics.compare("hello", models=["gpt-4o-mini", "deepseek/deepseek-chat"],
                                  temperature=0.5)
        print("MODELS", list(cmp))
        print("TEXT", cmp["deepseek/deepseek-chat"].text)
        print("REPR", repr(cmp))
        print("IMPORTED", sorted(m for m in ("IPython", "ipywidgets") if m in sys.modules))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(AIML_API_KEY=TEST_KEY, AIML_API_BASE=api.base_url, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MODELS ['gpt-4o-mini', 'deepseek/deepseek-chat']" in out.stdout
    assert "TEXT echo: hello" in out.stdout and "IMPORTED []" in out.stdout
    assert "REPR Comparison('gpt-4o-mini': ok, 'deepseek/deepseek-chat': ok)" in out.stdout
    assert {r.json["temperature"] for r in api.chat_requests} == {0.5}


def test_terminal_board_prints_one_answer_after_another_each_with_its_footer(session, api):
    # The last model answers first; the terminal still prints them in the given order.
    api.default = lambda rec: Reply(
        content=f"Answer of {rec.json['model']}.\nSecond line.",
        delay=0.0 if rec.json["model"] == MODELS[-1] else 0.02,
    )
    out = io.StringIO()
    session.compare("Hi", MODELS, board=TerminalBoard(out))
    text = out.getvalue()
    heads = [text.index(f"== {m} ==") for m in MODELS]
    assert heads == sorted(heads)
    for i, model in enumerate(MODELS):
        part = text[heads[i]: heads[i + 1] if i + 1 < len(MODELS) else len(text)]
        assert f"Answer of {model}.\nSecond line.\n" in part
        assert re.search(r"— first token \d+\.\d s · \d+\.\d s · .* tokens/s · .* credits", part), part
    assert text.rstrip().endswith("the next cell continues from before this comparison")


def test_terminal_board_prints_each_answer_up_to_what_a_column_shows(session, api):
    """A terminal comparison is bounded like the columns: COLUMN_CHARS of each answer and of its
    reasoning, a note naming where the whole text is, and the whole text kept in the result."""
    from aiml_magics.display.columns import COLUMN_CHARS

    big = "word " * (COLUMN_CHARS // 5 * 3)  # three times what a column shows
    api.default = lambda rec: Reply(content=big if rec.json["model"] == MODELS[0] else "short.",
                                    reasoning="thinking " * (COLUMN_CHARS // 9 * 2),
                                    chunk_chars=2000)
    out = io.StringIO()
    result = session.compare("Hi", MODELS, board=TerminalBoard(out))
    text = out.getvalue()
    assert result[MODELS[0]].text == big  # nothing lost
    assert text.count("word") <= COLUMN_CHARS // 5 + 1 and text.count("word") > COLUMN_CHARS // 10
    assert f"clipped: {COLUMN_CHARS:,} of {len(big):,} characters shown" in text
    assert f"aiml_response[{MODELS[0]!r}]" in text
    assert len(text) < 2 * COLUMN_CHARS * len(MODELS) + 10_000  # reasoning included, all bounded
    assert "short." in text


def test_terminal_ipython_compares_one_answer_after_another(tmp_path):
    script = tmp_path / "typed.ipy"
    script.write_text(
        "%load_ext aiml_magics\n%aiml replay\n"
        "get_ipython().run_cell('%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\\nHello\\n')\n"
        "print('KIND', type(aiml_response).__name__, list(aiml_response))\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", str(script)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "KIND Comparison ['gpt-4o-mini', 'deepseek/deepseek-chat']" in out
    first, second = out.index("== gpt-4o-mini =="), out.index("== deepseek/deepseek-chat ==")
    assert first < second
    assert out[first:second].count("— first token") == 1 and "offline echo" in out[first:second]
    assert "<div" not in out and "<sub>" not in out  # text, not the notebook's markup


# -- record and replay -------------------------------------------------------------------------------


def test_a_recorded_comparison_replays_per_model_offline(session, api, tmp_path):
    path = tmp_path / "compare.json"
    api.default = lambda rec: Reply(content=f"Live answer of {rec.json['model']}.")
    session.source = RecordingSource(Cassette.open_or_create(path))
    live = session.compare("Pick a colour", MODELS, temperature=0.7)
    assert len(api.chat_requests) == 3
    session.source = ReplaySource(Cassette.load(path))
    replayed = session.compare("Pick a colour", MODELS, temperature=0.7)
    assert len(api.chat_requests) == 3  # nothing sent
    for model in MODELS:
        assert replayed[model].text == live[model].text == f"Live answer of {model}."
        assert replayed[model].source == "replayed"
    other = session.compare("Pick a colour", MODELS, temperature=0.2)  # not recorded: the echo
    assert {other[m].source for m in MODELS} == {"offline echo"}


def test_record_and_replay_a_comparison_from_cells(shell, api, tmp_path):
    path = tmp_path / "cells.json"
    api.default = lambda rec: Reply(content=f"Recorded {rec.json['model']}.")
    assert run_cell(shell, f"%aiml record {path}").error is None
    cell = "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nWhich colour?"
    assert run_cell(shell, cell).error is None
    sent = len(api.chat_requests)
    assert run_cell(shell, f"%aiml replay {path}").error is None
    run = run_cell(shell, cell)
    assert run.error is None and len(api.chat_requests) == sent
    md = run.final_markdown()
    assert "Recorded gpt-4o-mini." in md and "Recorded deepseek/deepseek-chat." in md
    assert md.count("· replayed</sub>") == 2
    assert aiml_magics.instance().session.last_comparison["gpt-4o-mini"].source == "replayed"


def test_ctrl_c_stops_every_model_and_keeps_what_arrived(session, api):
    """Ctrl-C reaches the calling thread (here: while it shows the lanes): every worker stops at
    its next piece of text, each partial answer is kept, none joins the conversation."""
    from aiml_magics import StreamInterrupted

    api.default = lambda rec: Reply(content="word " * 400, chunk_chars=5, delay=0.01)

    class CtrlC(TerminalBoard):
        def tick(self, lanes):
            if all(lane.chars for lane in lanes):
                raise KeyboardInterrupt

    with pytest.raises(StreamInterrupted):
        session.compare("Long", MODELS[:2], board=CtrlC(io.StringIO()))
    cmp = session.last_comparison
    for model in MODELS[:2]:
        resp = cmp[model]
        assert resp.finish_reason == "interrupted" and 0 < len(resp.text) < len("word " * 400)
    assert len(session.history) == 2 and len(session.history.conversation) == 0


def test_no_key_fails_once_before_anything_is_shown_or_sent(bare_shell, api):
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    run = run_cell(bare_shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nHi")
    assert type(run.error).__name__ == "MissingKeyError" and "%aiml key" in str(run.error)
    assert api.chat_requests == [] and run.outputs == []
    assert "aiml_response" not in bare_shell.user_ns


def test_out_stores_the_comparison_too(shell, api):
    run = run_cell(shell, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat -o pair\nHi")
    assert run.error is None
    assert shell.user_ns["pair"] is shell.user_ns["aiml_response"]
    assert shell.user_ns["pair"]["deepseek/deepseek-chat"].text == "echo: Hi"


def test_a_lane_keeps_only_what_its_board_shows(session, api):
    """While answers stream, each lane holds at most ``board.shows`` characters of them (the
    whole text is held once, in the response); the column's note still counts all of it."""
    from aiml_magics.comparison import Lane
    from aiml_magics.display.columns import COLUMN_CHARS, live_column

    lane = Lane("m/a", {}, False, shown=COLUMN_CHARS)
    for _ in range(30):
        lane.content("x" * 5_000)
    assert len(lane.text()) == COLUMN_CHARS and lane.chars == 150_000
    assert f"clipped: {COLUMN_CHARS:,} of 150,000 characters shown" in live_column(lane, False)
    seen: list[int] = []

    class Watching(ColumnsBoard):
        def tick(self, lanes):
            seen.extend(len(lane.text()) for lane in lanes)
            super().tick(lanes)

    big = "y" * (3 * COLUMN_CHARS)
    api.default = Reply(content=big, chunk_chars=20_000)
    out = session.compare("Hi", MODELS, board=Watching(lambda data, ident, update: None))
    assert all(out[m].text == big for m in MODELS) and max(seen) <= COLUMN_CHARS
