"""What can go wrong with the store, in words for people: one exception with a short reason (a
broken store is one line of warning, never a failed answer), and the one that says a read could
not be answered without waiting."""

from __future__ import annotations

from pathlib import Path

LOCKED = "the database stayed locked by another process"


class StoreUnavailable(Exception):
    """The store cannot be read or written; ``reason`` says why in a few words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason
        self.transient = reason.startswith(LOCKED)  # another writer holds it: worth another try


class StoreBusy(Exception):
    """``Store.peek`` cannot answer without waiting (ask ``Store.cached`` instead)."""


def reason_of(exc: BaseException, busy_timeout: float) -> str:
    """A few words for people: what SQLite or the OS said, without a traceback."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return "the file is not a readable SQLite database (corrupt?)"
    if "readonly" in lowered or "read-only" in lowered or "permission" in lowered:
        return "the file or its folder is read-only"
    if "locked" in lowered or "busy" in lowered:
        return f"{LOCKED} for {busy_timeout:.0f} s"
    if "disk is full" in lowered or "no space" in lowered:
        return "the disk is full"
    if "unable to open" in lowered:
        return "the file cannot be opened (missing folder or no permission)"
    return text[:200]
