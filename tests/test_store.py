"""The SQLite store on real files: schema, concurrent writers, search, totals, broken stores.

Every test uses a fresh file in a temporary folder; writers in other processes are real
processes. Nothing here touches the user's data folder.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aiml_magics import remember
from aiml_magics import store as store_module
from aiml_magics.errors import ParameterError, register_secret
from aiml_magics.response import ChatResponse, Usage
from aiml_magics.store import SCHEMA_VERSION, Store
from aiml_magics.storefailure import StoreUnavailable
from aiml_magics.storelog import read
from tests.conftest import ROOT, TEST_KEY

ENDPOINT = "http://127.0.0.1:9/v1"


def payload(prompt: str, model: str = "m/one", **params: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            **params}


def answer(text: str, model: str = "m/one", credits: float = 10.0, source: str = "live",
           finish: str = "stop") -> ChatResponse:
    return ChatResponse(text=text, model=model, finish_reason=finish, source=source,
                        usage=Usage(3, 5, 8), credits_used=credits, usd_spent=credits / 2e6,
                        elapsed=0.25)


def keep(st: Store, prompt: str, text: str, **kw: object) -> ChatResponse:
    resp = answer(text, **kw)  # type: ignore[arg-type]
    remember.keep(st, payload(prompt, model=str(kw.get("model", "m/one"))), resp,
                  endpoint=ENDPOINT, started=time.time())
    return resp


def test_round_trip_search_and_totals(tmp_path: Path) -> None:
    st = Store(tmp_path / "a" / "store.db")  # the folder is made on first use
    keep(st, "What is a heron?", "A wading bird.")
    keep(st, "And a stork?", "Another wading bird.", model="m/two", credits=30.0)
    keep(st, "Replayed", "x", source="replayed", credits=999.0)
    with sqlite3.connect(st.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    log = read(st)
    assert [e.prompt for e in log] == ["Replayed", "And a stork?", "What is a heron?"]  # newest first
    assert len(read(st, search="wading")) == 2
    assert [e.prompt for e in read(st, search="heron")] == ["What is a heron?"]
    assert [e.model for e in read(st, model="m/two")] == ["m/two"]
    assert len(read(st, limit=1)) == 1
    assert len(read(st, since="1h")) == 3 and len(read(st, since=time.time() + 60)) == 0
    # FTS syntax in a search is only text
    assert len(read(st, search='wading" OR "x')) == 0
    st.fts = False  # a Python whose SQLite lacks FTS5: LIKE on the whole text
    assert len(read(st, search="WADING")) == 2
    assert len(read(st, search="100%")) == 0
    t = log.totals()
    assert t["exchanges"] == 3 and t["credits"] == 40.0 and t["tokens"] == 16  # replay is free
    by_model = {g["model"]: g["credits"] for g in log.totals(by="model")}
    assert by_model == {"m/one": 10.0, "m/two": 30.0}
    assert st.totals(by="model")[1]["credits"] == 30.0
    assert [g["day"] for g in st.totals(by="day")] == [time.strftime("%Y-%m-%d", time.gmtime())]
    with pytest.raises(ParameterError):
        log.totals(by="week")
    with pytest.raises(ParameterError):
        read(st, since="yesterday-ish")


def test_dataframe_has_the_history_columns(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from aiml_magics.history import _COLUMNS

    st = Store(tmp_path / "s.db")
    keep(st, "p", "a")
    frame = read(st).to_dataframe()
    assert list(frame.columns) == list(_COLUMNS)
    assert frame.loc[0, "answer"] == "a" and str(frame["started"].dtype).startswith("datetime64")


def test_cache_key_ignores_transport_not_sampling(tmp_path: Path) -> None:
    base = payload("hi", temperature=1)
    h = remember.request_hash(base, ENDPOINT)
    assert remember.request_hash(payload("hi", temperature=1.0, stream=False,
                                         stream_options={"include_usage": True}), ENDPOINT) == h
    assert remember.request_hash(dict(base, timeout=3, request_id="x"), ENDPOINT) == h
    assert remember.request_hash(payload("hi", temperature=0.5), ENDPOINT) != h
    assert remember.request_hash(payload("hi", model="m/two", temperature=1), ENDPOINT) != h
    assert remember.request_hash(base, "http://127.0.0.1:10/v1") != h
    assert remember.request_hash(dict(base, tools=[{"type": "function"}]), ENDPOINT) != h
    st = Store(tmp_path / "c.db")
    assert remember.lookup(st, base, ENDPOINT) is None
    remember.keep(st, base, answer("first"), endpoint=ENDPOINT, started=1_700_000_000.0)
    remember.keep(st, base, answer("cut", finish="interrupted"), endpoint=ENDPOINT,
                  started=time.time())  # incomplete: never served from the cache
    hit = remember.lookup(st, payload("hi", temperature=1.0, stream=False), ENDPOINT)
    assert hit is not None and hit.text == "first" and hit.source == "cache"
    assert hit.credits_used == 0 and "first answered 2023-11-14" in str(hit.provenance)


def test_key_never_reaches_the_file(tmp_path: Path) -> None:
    register_secret(TEST_KEY)
    st = Store(tmp_path / "k.db")
    resp = answer(f"the key is {TEST_KEY} and upper {TEST_KEY.upper()}")
    resp.reasoning = f"I saw {TEST_KEY[5:30]}"
    remember.keep(st, payload(f"my key {TEST_KEY}", system=TEST_KEY), resp,
                  endpoint=ENDPOINT, started=time.time())
    # a worker process that never registered it passes it along
    remember.keep(st, payload(f"other {TEST_KEY}"), answer("x"), endpoint=ENDPOINT,
                  started=time.time(), secret=TEST_KEY)
    st.close()
    assert_no_key(tmp_path)


def assert_no_key(folder: Path) -> None:
    key = TEST_KEY.encode()
    forms = [key, key.upper(), key.lower(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in forms:
                for i in range(0, len(form) - 12):
                    assert form[i:i + 12] not in data, (path.name, form[i:i + 12])


WRITER = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, sys.argv[3])
    from aiml_magics import remember
    from aiml_magics.store import Store
    from aiml_magics.response import ChatResponse, Usage
    st = Store(sys.argv[1])
    tag = sys.argv[2]
    def work(t):
        for i in range(15):
            p = {"model": "m", "messages": [{"role": "user", "content": f"{tag}-{t}-{i}"}]}
            r = ChatResponse(text="ok", model="m", finish_reason="stop", usage=Usage(1, 1, 2),
                             credits_used=1.0)
            remember.keep(st, p, r, endpoint="http://x/v1", started=time.time())
            failed.extend(f"{tag}-{t}-{i}: {w}" for w in r.warnings)
    failed = []
    threading.excepthook = lambda a: failed.append(repr(a.exc_value))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    [t.start() for t in threads]; [t.join() for t in threads]
    sys.exit("; ".join(failed[:5]) if failed else 0)  # a thread's failure fails the process
""")


def test_two_processes_eight_threads_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "many.db"  # new: both processes race to create and migrate it
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, str(ROOT)],
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        prompts = {r[0] for r in conn.execute("SELECT prompt FROM exchanges")}
    assert len(prompts) == 240  # 120 from each process, every one distinct
    assert len(read(Store(db), search="a-7-14")) == 1


def test_corrupt_file(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not a database at all" * 200)
    resp = keep(Store(db), "p", "the answer")
    assert resp.text == "the answer"
    assert resp.warnings == [f"not stored in {db}: the file is not a readable SQLite database "
                             "(corrupt?)"]


def test_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    db = tmp_path / "file" / "store.db"  # its folder is a file (read-only media fail the same way)
    resp = keep(Store(db), "p", "a")
    assert len(resp.warnings) == 1 and resp.warnings[0].startswith(f"not stored in {db}: ")


def test_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    resp = keep(Store(db), "p", "a")
    assert "written by a newer aiml-magics" in resp.warnings[0]
    with sqlite3.connect(db) as conn:  # untouched
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "locked.db"
    keep(Store(db), "first", "a")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        resp = keep(Store(db), "second", "b")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert resp.text == "b" and "locked" in resp.warnings[0]
    assert [e.prompt for e in read(Store(db))] == ["first"]  # readers never wait in WAL mode


def test_a_lock_longer_than_sqlites_own_wait_is_waited_out(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's busy handler gives up after SQLITE_WAIT (and answers "locked" at once in some
    cases); the store tries again until BUSY_TIMEOUT, so a writer that holds the file for a while
    (another kernel's big write, a checkpoint on a slow disk) costs a wait, never a lost row."""
    db = tmp_path / "slow.db"
    keep(Store(db), "first", "a")
    monkeypatch.setattr(store_module, "SQLITE_WAIT", 0.05)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(0.6, lambda: holder.execute("ROLLBACK"))
    released.start()
    began = time.monotonic()
    try:
        resp = keep(Store(db), "second", "b")
    finally:
        released.join()
        holder.close()
    assert resp.warnings == [] and time.monotonic() - began >= 0.5
    assert [e.prompt for e in read(Store(db))] == ["second", "first"]


FULL = textwrap.dedent("""
    import resource, signal, sys, time
    sys.path.insert(0, sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from aiml_magics import remember
    from aiml_magics.store import Store
    from aiml_magics.response import ChatResponse
    st = Store(sys.argv[1])
    st.count()  # created while there is room
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # the disk fills up
    r = ChatResponse(text="y" * 400_000, finish_reason="stop")
    remember.keep(st, {"model": "m", "messages": []}, r, endpoint="e", started=time.time())
    print(r.text == "y" * 400_000, r.warnings)
""")


def test_full_disk(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", FULL, str(tmp_path / "full.db"), str(ROOT)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True ['not stored in "), out.stdout


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert remember.default_path() == tmp_path / "xdg" / "aiml_magics" / "store.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the spec says: absolute only
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert remember.default_path() == tmp_path / "home" / ".local/share/aiml_magics/store.db"
    monkeypatch.delenv("AIML_STORE", raising=False)
    assert remember.store_path(None) == remember.default_path()
    monkeypatch.setenv("AIML_STORE", str(tmp_path / "env.db"))
    assert remember.store_path(None) == tmp_path / "env.db"
    assert remember.store_path(str(tmp_path / "set.db")) == tmp_path / "set.db"
    assert remember.store_path("") is None
    monkeypatch.setenv("AIML_STORE", "")
    assert remember.store_path(None) is None


def test_export_to_cassette(tmp_path: Path) -> None:
    from aiml_magics.cassette import Cassette

    st = Store(tmp_path / "e.db")
    keep(st, "q", "old")
    keep(st, "q", "new")
    keep(st, "r", "echo", source="offline echo")
    path = tmp_path / "out.json"
    read(st).to_cassette(path)
    cassette = Cassette.load(path)
    assert len(cassette) == 1
    found = cassette.find(payload("q"))
    assert found is not None and found.to_response(payload("q")).text == "new"


def test_an_answer_is_kept_once_and_still_comes_back_whole(tmp_path: Path) -> None:
    """The text lives in the answer column only (a 16 MiB answer is not written twice); the
    cache and a cassette export rebuild the response from it, reasoning included."""
    st = Store(tmp_path / "once.db")
    text = "the whole answer " * 1000
    resp = answer(text)
    resp.reasoning = "thought about it"
    remember.keep(st, payload("once"), resp, endpoint=ENDPOINT, started=time.time())
    with sqlite3.connect(tmp_path / "once.db") as conn:
        stored, body = conn.execute("SELECT answer, response FROM exchanges").fetchone()
    assert stored == text and "the whole answer" not in body and '"usage"' in body
    hit = remember.lookup(st, payload("once"), ENDPOINT)
    assert hit is not None and hit.text == text and hit.reasoning == "thought about it"
    read(st).to_cassette(tmp_path / "once.json")
    from aiml_magics.cassette import Cassette

    found = Cassette.load(tmp_path / "once.json").find(payload("once"))
    assert found is not None and found.to_response(payload("once")).text == text


def test_rows_handed_in_at_once_are_committed_together_and_each_caller_gets_its_own(
        tmp_path: Path) -> None:
    """Group commit: 16 threads write 50 rows each through one Store; every write returns the id
    of its own row, committed (another connection reads it) before the call returned."""
    st = Store(tmp_path / "group.db")
    st.ready()
    wrong: list[str] = []
    reader = sqlite3.connect(tmp_path / "group.db", check_same_thread=False)
    reader_lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(50):
            prompt = f"t{t}-{i}"
            rowid = st.write({"started": time.time(), "prompt": prompt, "answer": "a",
                              "source": "live", "cacheable": False})
            with reader_lock:
                found = reader.execute("SELECT prompt FROM exchanges WHERE id = ?",
                                       (rowid,)).fetchone()
            if found != (prompt,):
                wrong.append(f"{prompt} -> {rowid}: {found}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert wrong == [] and st.count() == 800 and st._queue == []


def test_a_row_that_cannot_be_written_fails_only_its_own_caller(tmp_path: Path) -> None:
    """A bad row grouped with a good one (here: NULL where the schema says NOT NULL) fails its
    own write only; the good row is written, and nothing stays queued."""
    st = Store(tmp_path / "bad-row.db")
    st.ready()
    rows = {"good": {"started": time.time(), "prompt": "good", "answer": "a", "source": "live",
                     "cacheable": False},
            "bad": {"started": None, "prompt": "bad", "answer": "a", "source": "live",
                    "cacheable": False}}
    outcome: dict[str, object] = {}

    def write(name: str) -> None:
        try:
            outcome[name] = st.write(rows[name])
        except StoreUnavailable as exc:
            outcome[name] = exc

    with st._lock:  # both rows queue up behind a transaction, so they are grouped
        threads = [threading.Thread(target=write, args=(n,)) for n in rows]
        [t.start() for t in threads]
        deadline = time.monotonic() + 10
        while len(st._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(st._queue) == 2
    [t.join() for t in threads]
    assert isinstance(outcome["good"], int) and outcome["good"] > 0
    assert isinstance(outcome["bad"], StoreUnavailable)
    assert "NOT NULL" in outcome["bad"].reason
    assert [r["prompt"] for r in st.rows()] == ["good"] and st._queue == []


def test_peek_answers_at_once_or_says_it_cannot(tmp_path: Path) -> None:
    """``peek`` (the asyncio engine's cache lookup on its own loop thread) finds what
    ``cached`` finds without waiting; where it cannot (not opened yet), it raises StoreBusy and
    the engine asks on the worker thread."""
    from aiml_magics.storefailure import StoreBusy
    from aiml_magics.storerow import request_hash

    st = Store(tmp_path / "s.db")
    key = request_hash(payload("What is a heron?"), ENDPOINT)
    with pytest.raises(StoreBusy):  # not opened yet: opening (and migrating) is a writer's job
        st.peek(key)
    keep(st, "What is a heron?", "A wading bird.")
    assert st.peek(key) is not None and st.peek(key)["answer"] == "A wading bird."
    assert st.peek(key) == st.cached(key)
    assert st.peek(request_hash(payload("And a stork?"), ENDPOINT)) is None
    held = sqlite3.connect(st.path, isolation_level=None)  # another process, say, holding it
    held.execute("BEGIN EXCLUSIVE")
    try:  # a WAL reader reads a committed row while a writer holds the file (it never waits:
        assert st.peek(key)["answer"] == "A wading bird."  # its busy timeout is 0)
    finally:
        held.execute("ROLLBACK")
        held.close()
