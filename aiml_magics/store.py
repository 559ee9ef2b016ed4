"""The SQLite store: every exchange kept on disk, searchable, summed, and the cache's memory.

One file, the standard library's ``sqlite3``, no server. The schema has a version number
(``PRAGMA user_version``) and numbered migrations from the first day, applied inside one
``BEGIN IMMEDIATE`` so two processes opening a new file at once migrate it once. WAL mode and a
busy timeout let the threads of a ``map()``, several kernels and several processes write at the
same time; each exchange is one short transaction, committed when it ends, with
``synchronous=NORMAL`` (no fsync per exchange: a crashed process keeps every committed row, a
power cut may lose the last few). ``sqlite3`` is imported on first use, never at ``%load_ext``.

Everything here is plain data in and out: the caller (``remember.py``) redacts before writing.
Any failure is a :class:`StoreUnavailable` with a short reason, so a broken store is one line of
warning for the caller, never a failed answer.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .storefailure import StoreBusy, StoreUnavailable, reason_of
from .storeschema import COLUMNS, INSERT, JSON_COLUMNS, MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another to finish before giving up
SQLITE_WAIT = 1.0  # of which SQLite's own busy handler waits at most this long per try
T = TypeVar("T")

class _Slot:
    """One row waiting to be written, and its id once its transaction committed."""

    __slots__ = ("values", "id")

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.id: int | None = None


class JSONText(str):
    """A JSON column's value already dumped (and redacted) by the caller: written as it is."""


class Store:
    """One store file. Thread-safe: one connection, one lock (a write takes well under a ms)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._conn: Any = None
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []  # rows handed in, not yet in a transaction
        self._queue_lock = threading.Lock()
        self._readers = threading.local()  # peek()'s connection, one per thread that peeks
        self.fts = False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- opening and the schema -----------------------------------------------------------------

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        import sqlite3

        wait = min(SQLITE_WAIT, BUSY_TIMEOUT)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=wait, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(self.path, reason_of(exc, BUSY_TIMEOUT)) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if not mode or str(mode[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = DELETE")  # a file system without shared memory
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
            self.fts = bool(conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'exchanges_fts'").fetchone())
        except StoreUnavailable:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(self.path, reason_of(exc, BUSY_TIMEOUT)) from None
        self._conn = conn
        return conn

    def _migrate(self, conn: Any) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                self.path, f"it was written by a newer aiml-magics (schema {version}; this one "
                f"reads up to {SCHEMA_VERSION}): upgrade aiml-magics, or set another store")
        import sqlite3

        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another may have won
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement, optional in MIGRATIONS[number]:
                    try:
                        conn.execute("SAVEPOINT step")
                        conn.execute(statement)
                        conn.execute("RELEASE step")
                    except sqlite3.OperationalError:
                        conn.execute("ROLLBACK TO step")
                        conn.execute("RELEASE step")
                        if not optional:  # FTS5 missing from this build: search uses LIKE
                            raise
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` under the lock. A "locked" or "busy" answer that SQLite gives
        without waiting (a new file being set up by another process, a checkpoint) is tried again
        after a short pause until ``BUSY_TIMEOUT`` has passed since the first try; any other
        failure, or the deadline, is a :class:`StoreUnavailable`."""
        import sqlite3

        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.005
        while True:
            try:
                with self._lock:
                    return work(self._connect())
            except (sqlite3.Error, OSError, StoreUnavailable) as exc:
                failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(
                    self.path, reason_of(exc, BUSY_TIMEOUT))
                if not failure.transient or time.monotonic() + pause > deadline:
                    raise failure from None
            time.sleep(pause * (0.5 + random.random()))  # two processes must not retry in step
            pause = min(pause * 2, 0.2)

    def ready(self) -> bool:
        """Open (and migrate) now, on the caller's thread, so the first answer of a batch is not
        the one that waits for the schema; False if the store cannot be used."""
        try:
            return self._run(lambda conn: True)
        except StoreUnavailable:
            return False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- writing ----------------------------------------------------------------------------------

    def write(self, row: dict[str, Any]) -> int:
        """Insert one exchange (a dict keyed by ``COLUMNS``; JSON columns as Python values) and
        commit it before returning. Returns its id.

        Group commit: rows that threads hand in while another thread's transaction is being
        written wait for the lock and then go in together, in one transaction (a commit, with
        its FTS5 segment, costs three times an insert). One thread alone writes one row per
        transaction, as before; every caller still returns only once its row is committed, and
        a failure reaches every caller whose row it was."""
        return self.commit(self.enqueue(row))

    def enqueue(self, row: dict[str, Any]) -> _Slot:
        """``write``'s first half: the row waits for the next transaction (``commit`` it)."""
        slot = _Slot([_column(name, row.get(name)) for name in COLUMNS])
        with self._queue_lock:
            self._queue.append(slot)
        return slot

    def commit(self, slot: _Slot) -> int:
        """``write``'s second half: returns once this row is committed, with every row queued
        meanwhile; its id."""
        return self._run(lambda conn: self._flush(conn, slot))

    def _flush(self, conn: Any, slot: _Slot) -> int:
        if slot.id is not None:  # another thread's transaction took it
            return slot.id
        with self._queue_lock:  # under the store's lock: a row not yet written is queued
            if slot not in self._queue:  # this caller's try again, after a failed transaction
                self._queue.append(slot)
            batch, self._queue = self._queue, []
        try:
            _insert(conn, batch)
        except BaseException as exc:
            with self._queue_lock:  # the others' rows wait for their own callers' tries
                self._queue[:0] = [s for s in batch if s is not slot]
            if len(batch) == 1 or not _is_sqlite_error(exc):
                raise
            _insert(conn, [slot])  # another caller's row must not fail this one
        return int(slot.id or 0)

    # -- reading ----------------------------------------------------------------------------------

    def cached(self, request_key: str) -> dict[str, Any] | None:
        """The newest complete live answer to this request, or None."""
        return self._run(lambda conn: _newest(conn, request_key))

    def peek(self, request_key: str) -> dict[str, Any] | None:
        """``cached`` without waiting, for an event loop's own thread: a connection of that
        thread's that never waits for a lock (in WAL mode a reader does not wait for writers).
        Raises ``StoreBusy`` when it cannot answer at once or at all: the caller then asks
        ``cached`` on a worker thread, which waits, retries and words any failure."""
        import sqlite3

        conn = getattr(self._readers, "conn", None)
        try:
            if conn is None:
                if self._conn is None:  # not opened (nor migrated) yet: that is a writer's job
                    raise StoreBusy
                conn = sqlite3.connect(str(self.path), timeout=0, isolation_level=None)
                self._readers.conn = conn
            return _newest(conn, request_key)
        except sqlite3.Error:
            raise StoreBusy from None

    def rows(self, search: str | None = None, model: str | None = None,
             since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored exchanges, newest first. ``search``: words in the prompt or the answer (FTS5
        where this SQLite has it, else a case-insensitive ``LIKE`` on the whole text)."""
        where, args = _filters(model, since)

        def select(conn: Any) -> list[dict[str, Any]]:
            if search and self.fts:
                where.append("id IN (SELECT rowid FROM exchanges_fts WHERE exchanges_fts MATCH ?)")
                args.append(_fts_query(search))
            elif search:
                where.append("(prompt LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\')")
                pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace(
                    "_", "\\_") + "%"
                args.extend([pattern, pattern])
            sql = "SELECT * FROM exchanges"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY id DESC"
            if limit is not None:
                sql += f" LIMIT {max(int(limit), 0)}"
            cur = conn.execute(sql, args)
            return [_row(cur, r) for r in cur.fetchall()]

        return self._run(select)

    def totals(self, by: str | None = None, model: str | None = None,
               since: float | None = None) -> list[dict[str, Any]]:
        """Exchanges, tokens, credits and dollars, over everything or grouped ``by`` "day" (UTC)
        or "model". Only answers the service gave count as spent (a cached, replayed or echoed
        answer cost nothing); ``exchanges`` counts every row."""
        group = {None: "'all'", "day": "date(started, 'unixepoch')",
                 "model": "coalesce(model, model_requested, '?')"}.get(by)
        if group is None:
            from .errors import ParameterError

            raise ParameterError(f"by = {by!r}: use 'day' or 'model'.")
        where, args = _filters(model, since)
        live = "source = 'live'"
        sql = (f"SELECT {group} AS k, count(*), "
               f"sum(CASE WHEN {live} THEN coalesce(prompt_tokens, 0) END), "
               f"sum(CASE WHEN {live} THEN coalesce(completion_tokens, 0) END), "
               f"sum(CASE WHEN {live} THEN coalesce(total_tokens, 0) END), "
               f"sum(CASE WHEN {live} THEN coalesce(credits, 0) END), "
               f"sum(CASE WHEN {live} THEN coalesce(usd, 0) END) FROM exchanges")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " GROUP BY k ORDER BY k"
        found = self._run(lambda conn: conn.execute(sql, args).fetchall())
        return [{by or "all": k, "exchanges": n, "prompt_tokens": pt or 0,
                 "completion_tokens": ct or 0, "tokens": tt or 0, "credits": cr or 0.0,
                 "usd": usd or 0.0} for k, n, pt, ct, tt, cr, usd in found]

    def count(self) -> int:
        return self._run(lambda conn: int(conn.execute("SELECT count(*) FROM exchanges")
                                          .fetchone()[0]))

    def size(self) -> int:
        """Bytes on disk, the write-ahead log included (0 if nothing was written yet)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except OSError:
                pass
        return total


def _insert(conn: Any, batch: list[_Slot]) -> None:
    """The rows in one transaction; their ids are set only once it committed."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        ids = [int(conn.execute(INSERT, s.values).lastrowid or 0) for s in batch]
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    for s, rowid in zip(batch, ids, strict=True):
        s.id = rowid


def _is_sqlite_error(exc: BaseException) -> bool:
    import sqlite3

    return isinstance(exc, sqlite3.Error)


def _roll_back(conn: Any) -> None:
    import sqlite3

    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the connection is closed or broken: the next try reconnects


def _column(name: str, value: Any) -> Any:
    if isinstance(value, JSONText):
        return str(value)
    if name in JSON_COLUMNS:
        return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bool):
        return int(value)
    return value


def _newest(conn: Any, request_key: str) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM exchanges WHERE request_key = ? AND cacheable = 1 "
                       "ORDER BY id DESC LIMIT 1", (request_key,))
    found = cur.fetchone()
    return _row(cur, found) if found else None


def _row(cur: Any, values: tuple[Any, ...]) -> dict[str, Any]:
    row = {d[0]: v for d, v in zip(cur.description, values, strict=True)}
    for name in JSON_COLUMNS:
        if isinstance(row.get(name), str):
            try:
                row[name] = json.loads(row[name])
            except ValueError:
                pass  # a hand-edited row: keep the text
    return row


def _filters(model: str | None, since: float | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if model:
        where.append("(model = ? OR model_requested = ?)")
        args.extend([model, model])
    if since is not None:
        where.append("started >= ?")
        args.append(float(since))
    return where, args


def _fts_query(text: str) -> str:
    """Every word must start a word of the text ("heron" finds "herons"); each is quoted, so
    FTS5 syntax in a search is just text."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words) or '""'


def since_seconds(text: str, now: float | None = None) -> float:
    """``7d``, ``12h``, ``30m``, ``2w`` or an ISO date (``2026-12-01``) -> a Unix time."""
    now = time.time() if now is None else now
    text = text.strip().lower()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    from datetime import datetime, timezone

    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        from .errors import ParameterError

        raise ParameterError(
            f"since = {text!r}: use 7d, 12h, 30m, 2w or a date such as 2026-12-01.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()
