"""``%aiml replay`` / ``record`` / ``live`` in a real IPython shell, against the loopback fake service.

What the server received is the proof: nothing at all in replay mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from aiml_magics.params import DEFAULT_MODEL
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import Reply

DOCS_PROMPT = "Hi! What do you think about mankind?"
DOCS_URL = "https://docs.aimlapi.com/api-references/text-models-llm/baidu/ernie-5.0-thinking-preview"


def visible_outputs(run) -> list[dict]:
    """Each display's last state (live blocks are updated in place): what a person finally sees."""
    last: dict[str, dict] = {}
    for i, out in enumerate(run.outputs):
        last[(out.transient or {}).get("display_id", f"plain-{i}")] = out.data
    return [d for d in last.values() if any(v.strip() for v in d.values())]


def test_replay_needs_no_key_and_sends_nothing(bare_shell, api, monkeypatch):
    monkeypatch.setenv("AIML_API_BASE", api.base_url)  # a service is there, and still never asked
    status = run_cell(bare_shell, "%aiml replay")
    assert status.error is None
    assert "quickstart.json (1 recording)" in status.stdout and DOCS_URL in status.stdout
    assert "offline echo" in status.stdout and "%aiml live" in status.stdout
    run = run_cell(bare_shell, f"%%aiml\n{DOCS_PROMPT}")
    assert run.error is None, run.shown
    assert api.requests == []
    # The live renderer did the work: its live outputs were cleared (the escape sequence is how a
    # plain shell shows clear_output) and one final rendering replaced them.
    assert "\x1b[2K" in run.stdout and len(run.outputs) == 1
    (final,) = visible_outputs(run)
    md = final["text/markdown"]
    assert md.index("<details>") < md.index("The user wants my") < md.index("</details>")
    assert md.index("</details>") < md.index("As an AI, I don’t have feelings")
    assert "### 1. The Ultimate Paradox" in md and "*   **Creation vs. Destruction**" in md
    assert md.rstrip().endswith("replayed</sub>")
    assert "ernie-5.0-thinking-preview · 13 prompt + 1,048 completion (450 reasoning) tokens" in md
    assert "2,002 credits" in md
    resp = bare_shell.user_ns["aiml_response"]
    assert resp.source == "replayed" and resp.credits_used == 2002 and DOCS_URL in resp.provenance
    assert resp.usage.total_tokens == 1061 and resp.request["stream"] is True
    from aiml_magics import instance

    magics = instance()
    assert magics.session_credits == 0 and magics.session_tokens == 0  # nothing was spent now
    assert len(magics.conversation) == 1


def test_follow_up_without_recording_gets_the_offline_echo(bare_shell, api):
    run_cell(bare_shell, "%aiml replay")
    run_cell(bare_shell, f"%%aiml\n{DOCS_PROMPT}")
    run = run_cell(bare_shell, "%%aiml -t 0.3 --out short\nAnd in one line?")
    assert run.error is None, run.shown
    assert api.requests == []
    (final,) = visible_outputs(run)
    md = final["text/markdown"]
    assert md.startswith("**Offline echo: no language model was asked.**")
    # Code spans are published as our own <code> elements (their text verbatim, never markup).
    assert "> And in one line?" in md and "<code>temperature</code> = <code>0.3</code>" in md
    assert "1 earlier turn (3 messages in this request)" in md
    assert md.rstrip().endswith("no model · 0.0 s · offline echo</sub>")
    short = bare_shell.user_ns["short"]
    assert short is bare_shell.user_ns["aiml_response"] and short.source == "offline echo"
    assert short.request["messages"][1]["content"].startswith("As an AI")


def test_json_and_no_stream_in_replay_mode(bare_shell, api):
    run_cell(bare_shell, "%aiml replay")
    run = run_cell(bare_shell, "%%aiml --json --no-stream --seed 5\nThree planets as JSON")
    assert run.error is None, run.shown
    data = bare_shell.user_ns["aiml_response"].data
    assert data["offline_echo"] is True and data["would_send"]["seed"] == 5
    assert "stream" not in data["would_send"]
    assert len(run.outputs) == 2  # not streamed: the waiting note, then the final rendering
    assert api.requests == []


def test_record_then_replay(shell, api, tmp_path):
    tape = tmp_path / "tape.json"
    assert "Recording:" in run_cell(shell, f"%aiml record {tape}").stdout
    api.queue(Reply(content="## Live\n\n- from the fake service", reasoning="thinking it over", credits=77))
    run = run_cell(shell, "%%aiml -t 0.5\nRecord me")
    assert run.error is None, run.shown
    assert len(api.chat_requests) == 1 and api.last_json["temperature"] == 0.5
    saved = json.loads(tape.read_text(encoding="utf-8"))
    (rec,) = saved["recordings"]
    assert rec["request"] == {
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": "Record me"}],
        "parameters": {"temperature": 0.5},
    }
    assert rec["response"]["text"] == "## Live\n\n- from the fake service"
    assert rec["response"]["reasoning"] == "thinking it over" and rec["response"]["credits_used"] == 77
    assert api.base_url in rec["source"]["description"]
    text = tape.read_text(encoding="utf-8")
    assert TEST_KEY not in text and TEST_KEY[-4:] not in text and "authorization" not in text.lower()

    run_cell(shell, f"%aiml replay {tape}")
    run_cell(shell, "%aiml reset")
    replayed = run_cell(shell, "%%aiml --temperature 0.5\nRecord me")
    assert replayed.error is None
    assert len(api.chat_requests) == 1  # replay asked nobody
    resp = shell.user_ns["aiml_response"]
    assert resp.source == "replayed" and resp.text == "## Live\n\n- from the fake service"
    assert "thinking it over" in visible_outputs(replayed)[0]["text/markdown"]
    other = run_cell(shell, "%%aiml --temperature 0.6\nRecord me")
    assert shell.user_ns["aiml_response"].source == "offline echo" and other.error is None
    assert len(api.chat_requests) == 1


def test_live_goes_back_to_the_service(shell, api):
    run_cell(shell, "%aiml replay")
    run_cell(shell, "%%aiml\nnot sent")
    assert api.requests == []
    live = run_cell(shell, "%aiml live")
    assert f"Live: answers come from {api.base_url}." in live.stdout
    api.queue(Reply(content="a live answer"))
    run = run_cell(shell, "%%aiml\nsent")
    assert run.error is None
    assert api.last_json["messages"][-1] == {"role": "user", "content": "sent"}
    assert shell.user_ns["aiml_response"].source == "live"
    assert "replayed" not in visible_outputs(run)[0]["text/markdown"]


def test_live_without_key_says_how(bare_shell):
    out = run_cell(bare_shell, "%aiml live").stdout
    assert "https://api.aimlapi.com/v1" in out and "%aiml key" in out


def test_bad_cassette_is_one_paragraph_and_mode_unchanged(shell, api, tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something else"}', encoding="utf-8")
    run = run_cell(shell, f"%aiml replay {tmp_path / 'x.json'}")
    assert type(run.error).__name__ == "AIMLError" and "not an aiml-magics cassette" in str(run.error)
    missing = run_cell(shell, f"%aiml replay {tmp_path / 'nope.json'}")
    assert "No cassette at" in str(missing.error) and "%aiml record" in str(missing.error)
    assert "name the cassette file" in str(run_cell(shell, "%aiml record").error)
    api.queue(Reply(content="still live"))
    assert run_cell(shell, "%%aiml\nq").error is None
    assert len(api.chat_requests) == 1


def test_dry_run_and_snippet_work_in_replay_mode(bare_shell, api):
    run_cell(bare_shell, "%aiml replay")
    dry = run_cell(bare_shell, f"%%aiml --dry-run\n{DOCS_PROMPT}")
    assert "Dry run: nothing was sent" in dry.shown and "aiml_response" not in bare_shell.user_ns
    run_cell(bare_shell, f"%%aiml\n{DOCS_PROMPT}")
    snippet = run_cell(bare_shell, "%aiml snippet")
    assert "requests.post(" in snippet.shown and DOCS_PROMPT in snippet.shown
    assert api.requests == []


def test_replay_imports_no_http_library():
    code = textwrap.dedent(
        f"""
        import os, sys
        for var in ("AIML_API_KEY", "AIMLAPI_API_KEY"):
            os.environ.pop(var, None)
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "aiml_magics")
        shell.run_line_magic("aiml", "replay")
        result = shell.run_cell("%%aiml\\n{DOCS_PROMPT}")
        print("OK", result.success, shell.user_ns["aiml_response"].source)
        print("HTTP", [m for m in ("requests", "urllib3") if m in sys.modules])
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "OK True replayed" in proc.stdout, proc.stdout + proc.stderr
    assert "HTTP []" in proc.stdout, proc.stdout
