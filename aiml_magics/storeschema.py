"""The store's schema: the columns of an exchange and the numbered migrations that make them.

The schema has a version number (``PRAGMA user_version``); migration N takes a file from version
N-1 to N and is never edited once shipped (add the next). ``store.py`` applies them.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

#: The columns of one stored exchange, in table order (``id`` aside).
COLUMNS = (
    "started", "seconds", "prompt", "answer", "reasoning", "model_requested", "model",
    "parameters", "prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens",
    "credits", "usd", "finish_reason", "source", "images", "tool_calls", "error", "origin",
    "endpoint", "request_key", "request", "response", "cacheable", "cached_from",
)
JSON_COLUMNS = ("parameters", "images", "tool_calls", "request", "response")

# Numbered migrations: migration N takes a file from version N-1 to N. Never edit one that has
# shipped; add the next. A statement that may fail on some builds (FTS5) is marked optional.
MIGRATIONS: dict[int, list[tuple[str, bool]]] = {
    1: [
        ("""CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL, seconds REAL,
            prompt TEXT NOT NULL DEFAULT '', answer TEXT NOT NULL DEFAULT '', reasoning TEXT,
            model_requested TEXT, model TEXT, parameters TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, reasoning_tokens INTEGER,
            total_tokens INTEGER, credits REAL, usd REAL,
            finish_reason TEXT, source TEXT NOT NULL, images TEXT, tool_calls TEXT, error TEXT,
            origin TEXT, endpoint TEXT, request_key TEXT, request TEXT, response TEXT,
            cacheable INTEGER NOT NULL DEFAULT 0, cached_from INTEGER)""", False),
        ("CREATE INDEX exchanges_started ON exchanges(started)", False),
        ("CREATE INDEX exchanges_cache ON exchanges(request_key, cacheable)", False),
        ("CREATE INDEX exchanges_model ON exchanges(model)", False),
        ("""CREATE VIRTUAL TABLE exchanges_fts USING fts5(prompt, answer,
            content='exchanges', content_rowid='id')""", True),
        ("""CREATE TRIGGER exchanges_fts_insert AFTER INSERT ON exchanges BEGIN
            INSERT INTO exchanges_fts(rowid, prompt, answer)
            VALUES (new.id, new.prompt, new.answer); END""", True),
        ("""CREATE TRIGGER exchanges_fts_delete AFTER DELETE ON exchanges BEGIN
            INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, answer)
            VALUES ('delete', old.id, old.prompt, old.answer); END""", True),
    ],
}


INSERT = (f"INSERT INTO exchanges ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' * len(COLUMNS))})")
