"""``log()``: the stored exchanges read back, newest first, as a sequence, a table or totals.

The store outlives the kernel, so this is how last week's answers, what a notebook asked and
what it spent come back. Rows were redacted when written; what is shown is redacted again (a
key registered since). No IPython here: ``%aiml log`` and ``%aiml spend`` format these values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from .errors import AIMLError, ParameterError, redact
from .store import Store, since_seconds
from .storefailure import StoreUnavailable


class Logged:
    """One stored exchange: its fields as attributes (``prompt``, ``answer``, ``model``, ...)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_row"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._row[name]

    def record(self) -> dict[str, Any]:
        """The same flat row as ``Exchange.record()`` (so both make the same table)."""
        r = self._row
        return {
            "prompt": r.get("prompt") or "",
            "answer": r.get("answer") or "",
            "model_requested": r.get("model_requested"),
            "model": r.get("model"),
            "parameters": r.get("parameters") or {},
            "prompt_tokens": r.get("prompt_tokens"),
            "completion_tokens": r.get("completion_tokens"),
            "reasoning_tokens": r.get("reasoning_tokens"),
            "credits": r.get("credits"),
            "seconds": r.get("seconds"),
            "finish_reason": r.get("finish_reason"),
            "source": r.get("source"),
            "started": r.get("started"),
            "images": r.get("images") or [],
        }

    def __repr__(self) -> str:
        prompt = str(self._row.get("prompt") or "")
        preview = prompt if len(prompt) <= 40 else prompt[:37] + "..."
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(self._row.get("started") or 0)))
        return redact(f"Logged({when}, model={self._row.get('model')!r}, prompt={preview!r}, "
                      f"source={self._row.get('source')!r})")


class Log(Sequence[Logged]):
    """Stored exchanges, newest first."""

    def __init__(self, rows: list[dict[str, Any]], store: Store) -> None:
        self._items = [Logged(r) for r in rows]
        self.store = store

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Logged: ...

    @overload
    def __getitem__(self, index: slice) -> list[Logged]: ...

    def __getitem__(self, index: int | slice) -> Logged | list[Logged]:
        return self._items[index]

    def __iter__(self) -> Iterator[Logged]:
        return iter(self._items)

    def __repr__(self) -> str:
        t = self.totals()
        return (f"Log({t['exchanges']} exchanges from {self.store.path}, {t['tokens']:,} tokens, "
                f"{t['credits']:,.0f} credits)")

    def records(self) -> list[dict[str, Any]]:
        return [e.record() for e in self._items]

    def to_dataframe(self) -> Any:
        """One row an exchange, the columns of ``aiml_history.to_dataframe()``; needs pandas."""
        from .history import records_frame

        return records_frame(self.records())

    def totals(self, by: str | None = None) -> Any:
        """Tokens, credits and dollars of the answers the service gave (cached, replayed and
        echoed answers cost nothing): one dict, or one per ``by="day"`` (UTC) or ``"model"``."""
        if by not in (None, "day", "model"):
            raise ParameterError(f"by = {by!r}: use 'day' or 'model'.")
        groups: dict[Any, dict[str, Any]] = {}
        for e in self._items:
            r = e._row
            if by == "day":
                k = time.strftime("%Y-%m-%d", time.gmtime(float(r.get("started") or 0)))
            elif by == "model":
                k = r.get("model") or r.get("model_requested") or "?"
            else:
                k = "all"
            g = groups.setdefault(k, {by or "all": k, "exchanges": 0, "prompt_tokens": 0,
                                      "completion_tokens": 0, "tokens": 0, "credits": 0.0,
                                      "usd": 0.0})
            g["exchanges"] += 1
            if r.get("source") == "live":
                g["prompt_tokens"] += r.get("prompt_tokens") or 0
                g["completion_tokens"] += r.get("completion_tokens") or 0
                g["tokens"] += r.get("total_tokens") or 0
                g["credits"] += r.get("credits") or 0.0
                g["usd"] += r.get("usd") or 0.0
        if by is None:
            total = groups.get("all") or {"all": "all", "exchanges": 0, "prompt_tokens": 0,
                                          "completion_tokens": 0, "tokens": 0, "credits": 0.0,
                                          "usd": 0.0}
            total.pop("all", None)
            return total
        return [groups[k] for k in sorted(groups, key=str)]

    def to_cassette(self, path: str | Path, description: str = "") -> Any:
        """Write these exchanges as a cassette (``%aiml replay PATH`` answers them offline);
        only complete answers from the service, the newest for each request."""
        from .cassette import Cassette, Recording, request_key
        from .storerow import stored_response

        cassette = Cassette(Path(path).expanduser(), description=description
                            or "Answers exported from the aiml_magics store.")
        seen: set[str] = set()
        for e in reversed(self._items):  # oldest first, so the newest answer wins
            r = e._row
            if not r.get("cacheable") or not isinstance(r.get("request"), dict):
                continue
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(r.get("started") or 0)))
            recording = Recording(request_key(r["request"]), stored_response(r),
                                  {"kind": "stored", "recorded_at": stamp,
                                   "description": f"answered live from {r.get('endpoint')}"})
            if r["request_key"] in seen:
                cassette.recordings = [x for x in cassette.recordings
                                       if x.request != recording.request]
            seen.add(r["request_key"])
            cassette.recordings.append(recording)
        cassette.save()
        return cassette


def read(store: Store | None, search: str | None = None, model: str | None = None,
         since: Any = None, limit: int | None = None) -> Log:
    """The rows of ``store`` (see ``log``); a store that cannot be read is one clear error."""
    if store is None:
        raise AIMLError("The store is off (the `store` setting or AIML_STORE is empty): nothing "
                        "is kept, so there is nothing to read.", kind="store")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ParameterError(f"limit = {limit!r}: use a whole number >= 0.")
    start = _since(since)
    try:
        rows = store.rows(search=search or None, model=model, since=start, limit=limit)
    except StoreUnavailable as exc:
        raise AIMLError(f"Cannot read the store {exc.path}: {exc.reason}.", kind="store") from None
    return Log(rows, store)


def _since(since: Any) -> float | None:
    if since is None:
        return None
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return float(since)
    if hasattr(since, "timestamp"):  # a datetime (naive: UTC)
        from datetime import timezone

        if getattr(since, "tzinfo", None) is None and hasattr(since, "replace"):
            since = since.replace(tzinfo=timezone.utc)
        return float(since.timestamp())
    if isinstance(since, str):
        return since_seconds(since)
    raise ParameterError(f"since = {since!r}: use 7d, 12h, 30m, 2w, a date or a datetime.")
