"""What the store keeps of an exchange, where the store is, and the cache: one request at a time.

The function that answers ONE request (``answer_one`` for a session's source, ``send_one`` for a
worker of ``map()`` that holds its own client) asks the store first when the cache is on, and
writes the exchange when it ends. Every batch engine and every caller goes through one of the
two, so the cache and the log behave the same everywhere. What is written is redacted first:
the key, and anything the secret redaction masks, never reaches the file; images are kept by
hash and description, their bytes only with the ``store_images`` setting.

A store that cannot be used (corrupt, read-only, full, locked, newer) never fails an answer:
the answer gets one warning line saying it was not stored and why.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import Store
from .storefailure import StoreBusy, StoreUnavailable
from .storerow import cached_response, request_hash, row_of

if TYPE_CHECKING:
    from .response import ChatResponse
    from .sources import ViewFactory

ENV = "AIML_STORE"


def default_path() -> Path:
    """``$XDG_DATA_HOME/aiml_magics/store.db``, else ``~/.local/share/aiml_magics/store.db``."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "aiml_magics" / "store.db"


def store_path(setting: str | None) -> Path | None:
    """Where the store is: the setting, else ``AIML_STORE``, else the default; "" turns it off."""
    value = setting if setting is not None else os.environ.get(ENV)
    if value is None:
        return default_path()
    value = str(value).strip()
    return Path(value).expanduser() if value else None


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()
MAX_OPEN = 8  # files with an open connection; the least recently used one is closed past it


def open_store(path: Path | str | None) -> Store | None:
    """One ``Store`` per file in this process (its connection reused by every session and
    thread); nothing is opened until it is used. A closed store reopens on its next use."""
    if path is None:
        return None
    path = Path(path).expanduser()
    with _stores_lock:
        store = _stores.pop(path, None) or Store(path)
        _stores[path] = store  # now the most recently used
        old = list(_stores)[:-MAX_OPEN]
        for p in old:
            _stores.pop(p).close()
        return store


def not_stored(exc: StoreUnavailable) -> str:
    return f"not stored in {exc.path}: {exc.reason}"


def lookup(store: Store, payload: dict[str, Any], endpoint: str,
           key: str | None = None, *, at_once: bool = False) -> ChatResponse | None:
    """The cached answer to this request, or None. Raises ``StoreUnavailable``. ``key``: its
    ``request_hash``, when the caller has it already. ``at_once``: read with ``Store.peek``
    (on an event loop's thread: never waits, raises ``StoreBusy`` instead)."""
    key = key or request_hash(payload, endpoint)
    row = store.peek(key) if at_once else store.cached(key)
    return cached_response(row, payload) if row is not None else None


def keep(store: Store | None, payload: dict[str, Any], resp: ChatResponse, *, endpoint: str,
         started: float, prompt: str | None = None, secret: str | None = None,
         keep_images: bool = False, key: str | None = None) -> None:
    """Write one exchange; a store that fails adds one warning line to the answer instead."""
    keep_later(store, payload, resp, endpoint=endpoint, started=started, prompt=prompt,
               secret=secret, keep_images=keep_images, key=key)()


def keep_later(store: Store | None, payload: dict[str, Any], resp: ChatResponse, *,
               endpoint: str, started: float, prompt: str | None = None,
               secret: str | None = None, keep_images: bool = False,
               key: str | None = None) -> Callable[[], None]:
    """``keep`` in two steps: the row is built and queued now; the function returned commits it
    (with every row queued meanwhile, in one transaction)."""
    if store is None:
        return _nothing
    try:
        slot = store.enqueue(row_of(payload, resp, endpoint=endpoint, started=started,
                                    prompt=prompt, secret=secret, keep_images=keep_images,
                                    cached_from=getattr(resp, "_cached_from", None), key=key))
    except StoreUnavailable as exc:
        resp.warnings.append(not_stored(exc))
        return _nothing

    def commit() -> None:
        try:
            store.commit(slot)
        except StoreUnavailable as exc:
            resp.warnings.append(not_stored(exc))

    return commit


def _nothing() -> None:
    return None


# -- one request ---------------------------------------------------------------------------------


def how_to_answer(options: dict[str, Any]) -> dict[str, Any]:
    """``cache`` and ``refresh`` of ``Session.prepare``'s options, for the ``Request``."""
    cache = options.get("cache")
    return {"cache": None if cache is None else bool(cache), "refresh": bool(options.get("refresh"))}


def no_view(label: str) -> Any:
    from .protocols import NoView

    return NoView()


@dataclass(frozen=True)
class Keeping:
    """What a worker of ``map()`` needs to use the store (picklable: a path and two switches)."""

    path: str | None
    cache: bool = True
    refresh: bool = False

    @classmethod
    def of(cls, session: Any, cache: Any, refresh: Any) -> Keeping:
        store = session.connection.store
        if store is not None:
            store.ready()
        return cls(str(store.path) if store is not None else None, bool(cache), bool(refresh))


def send_job(job: Any, client: Any) -> ChatResponse:
    """``map()``'s unit of work (any engine's): one job's request through the cache and store."""
    keeping = job.keeping or Keeping(None)
    return send_one(open_store(keeping.path), job.payload,
                    lambda: client.complete(job.payload, request_id=job.request_id),
                    endpoint=job.base_url, cache=keeping.cache, refresh=keeping.refresh,
                    secret=job.api_key)


async def send_job_async(job: Any, complete: Callable[..., Any]) -> ChatResponse:
    """``send_job`` for the asyncio engine: the same cache and store (SQLite on a worker thread,
    never on the loop); ``complete`` is the wire's coroutine function. The row is written
    after the answer is handed back (the engine's close waits for it; a process killed first
    sends that item again on the next run, as one in flight)."""
    from . import loopworker

    keeping = job.keeping or Keeping(None)
    store, started = open_store(keeping.path), time.time()
    key = None if store is None else request_hash(job.payload, job.base_url)  # once per item
    use = keeping.cache and not keeping.refresh
    found = None
    if store is not None and use and key is not None:
        try:  # on the loop itself: a few microseconds, no hand-over to another thread
            found = lookup(store, job.payload, job.base_url, key, at_once=True)
        except StoreBusy:
            found = await loopworker.run(_from_cache, store, job.payload, job.base_url, use, key)
    if isinstance(found, str) or found is None:
        resp = await complete(job.payload, request_id=job.request_id)
        if found:
            resp.warnings.append(found)
    else:
        resp = found
    if store is not None:  # committed with its burst; the answer does not wait for it
        kept = loopworker.run(keep_later, store, job.payload, resp, grouped=True,
                              endpoint=job.base_url, started=started, secret=job.api_key, key=key)
        kept.add_done_callback(lambda fut: _unexpected(fut, resp))
    return resp


def _unexpected(fut: Any, resp: ChatResponse) -> None:
    """A write nobody awaits: a failure ``keep`` did not put into words becomes its line."""
    if not fut.cancelled() and fut.exception() is not None:
        resp.warnings.append(f"not stored: {fut.exception()}")


def send_one(
    store: Store | None, payload: dict[str, Any], send: Callable[[], ChatResponse], *,
    endpoint: str, cache: bool = False, refresh: bool = False, secret: str | None = None,
) -> ChatResponse:
    """A worker's one request: the cache first (when on), else ``send()``; kept either way."""
    started = time.time()
    key = request_hash(payload, endpoint) if store is not None else None  # once per item
    resp = _from_cache(store, payload, endpoint, cache and not refresh, key)
    if isinstance(resp, str) or resp is None:
        warning = resp
        resp = send()
        if warning:
            resp.warnings.append(warning)
    keep(store, payload, resp, endpoint=endpoint, started=started, secret=secret, key=key)
    return resp


def _from_cache(store: Store | None, payload: dict[str, Any], endpoint: str,
                use: bool, key: str | None = None) -> ChatResponse | str | None:
    """The cached answer, None, or the warning line of a store that could not be read."""
    if store is None or not use:
        return None
    try:
        return lookup(store, payload, endpoint, key)
    except StoreUnavailable as exc:
        return f"cache not read ({exc.path}: {exc.reason})"


def answer_one(
    session: Any, client: Callable[[], Any], payload: dict[str, Any], stream: bool,
    view: ViewFactory, *, cache: bool | None = None, refresh: bool = False,
    prompt: str | None = None, request: Any = None,
) -> ChatResponse:
    """A session's one request: from the cache when it is on and knows the answer (shown like a
    replay), else from the session's source; the exchange is written before its footer shows,
    so a store that failed is said there. ``request``: a ``Request`` whose cache, refresh and
    prompt apply."""
    if request is not None:
        cache, refresh, prompt = request.cache, request.refresh, request.prompt
    started = time.time()
    store = session.connection.store
    endpoint = session.effective_base()[0]
    use = (session.settings.cache if cache is None else cache) and session.source.name != "replay"
    found = _from_cache(store, payload, endpoint, use and not refresh)
    warning = found if isinstance(found, str) else None
    keep_images = bool(session.settings.store_images)

    def writing(label: str) -> Any:
        return _Keeping(view(label), store, payload, endpoint, started, prompt, keep_images,
                        warning)

    if found is not None and not isinstance(found, str):
        return _replay(found, payload, stream, writing)
    return session.source.answer(client, payload, stream, writing)


def _replay(resp: ChatResponse, payload: dict[str, Any], stream: bool,
            view: ViewFactory) -> ChatResponse:
    from .cassette import pieces
    from .sources import finish_view

    started = time.monotonic()
    shown = view(f"{payload.get('model')} (from the cache)")
    if stream:
        for piece in pieces(resp.reasoning):
            shown.reasoning(piece)
        for piece in pieces(resp.text):
            shown.content(piece)
    resp.elapsed = resp.first_token_seconds = time.monotonic() - started
    finish_view(shown, resp)
    return resp


class _Keeping:
    """A view that writes the exchange to the store just before the answer's final rendering."""

    def __init__(self, inner: Any, store: Store | None, payload: dict[str, Any], endpoint: str,
                 started: float, prompt: str | None, keep_images: bool,
                 warning: str | None) -> None:
        self._inner, self._store, self._payload = inner, store, payload
        self._endpoint, self._started, self._prompt = endpoint, started, prompt
        self._keep_images, self._warning = keep_images, warning
        self._kept = False

    def __getattr__(self, name: str) -> Any:  # tool_calls, waiting, before_finish ...
        return getattr(self._inner, name)

    def reasoning(self, delta: str) -> None:
        self._inner.reasoning(delta)

    def content(self, delta: str) -> None:
        self._inner.content(delta)

    def finish(self, resp: ChatResponse) -> None:
        if not self._kept:  # a finish tried again after Ctrl-C writes once
            self._kept = True
            if self._warning:
                resp.warnings.append(self._warning)
            keep(self._store, self._payload, resp, endpoint=self._endpoint,
                 started=self._started, prompt=self._prompt, keep_images=self._keep_images)
        self._inner.finish(resp)

    def abandon(self) -> None:
        self._inner.abandon()
