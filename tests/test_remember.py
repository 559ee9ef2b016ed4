"""The store and the cache behind cells, ``chat()``, ``map()`` and comparisons, end to end.

Real SQLite files in temporary folders (the conftest points ``AIML_STORE`` at one per test), the
loopback fake service (its request log says what was really sent), a real IPython shell, real
kernels, and a ``map()`` in a process killed with SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import aiml_magics
from aiml_magics import Session
from tests.conftest import ROOT, TEST_KEY, run_cell
from tests.fakeapi import Reply
from tests.test_store import assert_no_key


def chats(api: Any) -> int:
    return len(api.chat_requests)


def test_aiml_magics_exports_log() -> None:
    assert "log" in aiml_magics.__all__ and "Log" in aiml_magics.__all__
    from aiml_magics.api import log

    assert aiml_magics.log is log


def test_a_cached_cell_sends_nothing_the_second_time(shell: Any, api: Any, _store: Path) -> None:
    first = run_cell(shell, "%%aiml --no-memory -t 0.3\nName a heron.")
    assert first.error is None and chats(api) == 1
    again = run_cell(shell, "%%aiml --no-memory -t 0.3 --cache\nName a heron.")
    assert again.error is None and chats(api) == 1  # nothing sent
    resp = shell.user_ns["aiml_response"]
    assert resp.source == "cache" and resp.text == "echo: Name a heron."
    assert "from the cache, first answered" in again.final_markdown()
    assert shell.user_ns["aiml_history"][-1].source == "cache"
    other = run_cell(shell, "%%aiml --no-memory -t 0.4 --cache\nName a heron.")
    assert other.error is None and chats(api) == 2  # another temperature: another request
    refreshed = run_cell(shell, "%%aiml --no-memory -t 0.3 --refresh\nName a heron.")
    assert refreshed.error is None and chats(api) == 3
    assert shell.user_ns["aiml_response"].source == "live"
    no_flag = run_cell(shell, "%%aiml --no-memory -t 0.3\nName a heron.")  # off by default
    assert no_flag.error is None and chats(api) == 4
    with sqlite3.connect(_store) as conn:
        sources = [r[0] for r in conn.execute("SELECT source FROM exchanges ORDER BY id")]
    assert sources == ["live", "cache", "live", "live", "live"]


def test_chat_cache_and_the_store_setting(session: Session, api: Any, tmp_path: Path) -> None:
    a = session.chat("hello", memory=False)
    b = session.chat("hello", memory=False, cache=True, stream=False)  # stream is not asked
    assert (a.source, b.source, b.text, chats(api)) == ("live", "cache", a.text, 1)
    assert b.credits_used == 0 and session.history.totals()["credits"] == a.credits_used
    other = Session(api_key=TEST_KEY, base_url=api.base_url, store=str(tmp_path / "own.db"))
    assert other.chat("hello", memory=False, cache=True).source == "live"  # its own file
    assert len(aiml_magics.log(session=other)) == 1
    off = Session(api_key=TEST_KEY, base_url=api.base_url, store="")
    assert off.connection.store is None and off.chat("x", memory=False).text
    with pytest.raises(aiml_magics.AIMLError, match="store is off"):
        aiml_magics.log(session=off)


def test_every_exchange_is_kept_and_found(session: Session, api: Any) -> None:
    pytest.importorskip("pandas")
    session.chat("the first question about herons", memory=False)
    aiml_magics.map(["alpha {x}", "beta"], session=session)
    cmp = session.compare("compare them", ["m/one", "m/two"])
    assert len(cmp) == 2
    log = aiml_magics.log(session=session)
    assert len(log) == 5 and log[-1].prompt == "the first question about herons"
    assert {e.prompt for e in log} >= {"alpha {x}", "beta", "compare them"}
    assert len(aiml_magics.log(search="herons", session=session)) == 1
    assert len(aiml_magics.log(model="m/two", session=session)) == 1
    assert list(log.to_dataframe().columns) == list(session.history.to_dataframe().columns)
    assert log.totals()["credits"] == sum(e.credits for e in log)


def test_broken_stores_never_break_a_cell(shell: Any, api: Any, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"garbage, not SQLite " * 500)
    shell.run_line_magic("config", f"AIMLMagics.store = {str(bad)!r}")
    cell = run_cell(shell, "%%aiml\nStill there?")
    assert cell.error is None and shell.user_ns["aiml_response"].text == "echo: Still there?"
    md = cell.final_markdown()
    assert md.count("not stored in") == 1 and "not a readable SQLite database" in md
    assert len(shell.user_ns["aiml_history"]) == 1
    cached = run_cell(shell, "%%aiml --cache --no-memory\nStill there?")  # cache unreadable: sent
    assert cached.error is None and "cache not read" in cached.final_markdown()
    (tmp_path / "file").write_text("x")
    shell.run_line_magic("config", f"AIMLMagics.store = {str(tmp_path / 'file' / 's.db')!r}")
    assert run_cell(shell, "%%aiml\nAnd now?").error is None
    assert "not stored in" in run_cell(shell, "%%aiml\nAnd now?").final_markdown()


@pytest.mark.parametrize("engine", ["threads", "async"])
def test_a_broken_store_never_breaks_a_map(session: Session, api: Any, tmp_path: Path,
                                           engine: str) -> None:
    """Every answer of the batch is there, each with the one line saying it was not stored
    (the asyncio engine writes a row after handing its answer back, and says so all the same)."""
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"garbage, not SQLite " * 500)
    s = Session(api_key=TEST_KEY, base_url=session.settings.base_url, store=str(bad),
                max_retries=0)
    batch = aiml_magics.map([f"row {i}" for i in range(30)], session=s, concurrency=8,
                            progress=False, engine=engine)
    assert [r.text for r in batch] == [f"echo: row {i}" for i in range(30)]
    for r in batch:
        stored = [w for w in r.warnings if w.startswith("not stored in")]
        assert len(stored) == 1 and "not a readable SQLite database" in stored[0], r.warnings
    assert bad.read_bytes() == b"garbage, not SQLite " * 500  # untouched


def test_log_spend_and_config_commands(shell: Any, api: Any, _store: Path) -> None:
    for prompt in ("Tell me about *herons* | pipes", "Storks?"):
        assert run_cell(shell, f"%%aiml\n{prompt}").error is None
    log = run_cell(shell, "%aiml log heron")
    md = log.outputs[-1].data["text/markdown"]
    assert "1 stored exchange" in md and str(_store) in md and "Storks" not in md
    assert "\\*herons\\*" in md or "&#42;herons" in md or "*herons*" not in md  # shown literally
    assert run_cell(shell, "%aiml log --limit 1").outputs[-1].data["text/markdown"].count("\n| 20") == 1
    spend = run_cell(shell, "%aiml spend --by model").outputs[-1].data["text/markdown"]
    assert "4,004 credits" in spend and "(2 exchanges)" in spend
    config = run_cell(shell, "%aiml config").outputs[-1].data["text/plain"]
    assert re.search(rf"^store +{re.escape(str(_store))} \(\d+ KB\) +\(environment AIML_STORE\)$",
                     config, re.M), config
    bad = run_cell(shell, "%aiml spend --since soon")
    assert bad.error is not None and "since" in bad.stderr + str(bad.error)


def test_the_key_never_reaches_the_store(shell: Any, api: Any, _store: Path) -> None:
    # typed in Python, not in a cell: the shared shell's input history must never hold the key
    aiml_magics.instance().session.chat(f"Repeat this: {TEST_KEY}")
    api.queue(Reply(content=f"The key is {TEST_KEY}", reasoning=f"it was {TEST_KEY.upper()}"))
    assert run_cell(shell, "%%aiml --no-stream\nAgain").error is None
    aiml_magics.map([f"x {TEST_KEY}"], session=aiml_magics.instance().session)
    for conn in list(__import__("aiml_magics.remember").remember._stores.values()):
        conn.close()  # the WAL checkpointed into the main file as well
    assert_no_key(_store.parent)


MAP_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    import aiml_magics
    from aiml_magics import Session
    s = Session(api_key=os.environ["KEY"], base_url=os.environ["BASE"], max_retries=0)
    batch = aiml_magics.map([f"row {i}" for i in range(40)], session=s, concurrency=4,
                            progress=False)
    print("TEXTS", [r.text for r in batch] == [f"echo: row {i}" for i in range(40)],
          [r.source for r in batch].count("cache"))
""")


def test_a_killed_map_resumes_with_only_what_was_missing(api: Any, _store: Path) -> None:
    api.default = Reply(echo=True, delay=0.05)
    env = {**os.environ, "KEY": TEST_KEY, "BASE": api.base_url}
    proc = subprocess.Popen([sys.executable, "-c", MAP_SCRIPT, str(ROOT)], env=env,
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and stored < 12:
        time.sleep(0.05)
        try:
            with sqlite3.connect(_store) as conn:
                stored = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        except sqlite3.Error:
            stored = 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with sqlite3.connect(_store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    sent_before = chats(api)
    assert 12 <= kept < 40 and sent_before >= kept
    out = subprocess.run([sys.executable, "-c", MAP_SCRIPT, str(ROOT)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["TEXTS", "True", str(kept)]  # complete, in order
    assert chats(api) - sent_before == 40 - kept  # only the rows that were never stored
    again = subprocess.run([sys.executable, "-c", MAP_SCRIPT, str(ROOT)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.stdout.split() == ["TEXTS", "True", "40"] and chats(api) - sent_before == 40 - kept


def test_a_kernel_writes_and_another_reads(monkeypatch: Any, api: Any, tmp_path: Path,
                                           _store: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)

    def run(cells: list[str]) -> Any:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        return nb

    run(["%load_ext aiml_magics", "%%aiml\nWhat do herons eat?"])
    nb = run(["import aiml_magics\nlog = aiml_magics.log(search='herons')\n"
              "print(len(log), log[0].answer, log[0].source)",
              "%load_ext aiml_magics", "%%aiml --cache\nWhat do herons eat?",
              "print(aiml_response.source, len(aiml_history))"])
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    assert texts[0].strip() == "1 echo: What do herons eat? live"
    assert texts[3].strip() == "cache 1"
    assert chats(api) == 1
