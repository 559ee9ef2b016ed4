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

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import redact
from .store import Store, StoreUnavailable

if TYPE_CHECKING:
    from .response import ChatResponse
    from .sources import ViewFactory

ENV = "AIML_STORE"
CACHE_SOURCE = "cache"
# Not what was asked: how it travels, how long to wait, how it is labelled.
NOT_ASKED = ("timeout", "request_timeout", "request_id", "stream", "stream_options")


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


_origin: list[str | None] = []


def origin() -> str | None:
    """The notebook (Jupyter tells its kernel) or the script this process runs, when known."""
    if not _origin:
        name = os.environ.get("JPY_SESSION_NAME") or None
        if name is None and "ipykernel" not in sys.modules:
            script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
            name = str(Path(script).resolve()) if script else None
        _origin.append(name)
    return _origin[0]


# -- the request's identity ---------------------------------------------------------------------


def request_hash(payload: dict[str, Any], endpoint: str) -> str:
    """What makes two requests the same: endpoint, model, messages (images by hash), tools,
    schema and sampling parameters; not stream, timeouts or request ids. 1 and 1.0 are equal."""
    import hashlib

    from .cassette import request_key

    key = request_key({k: v for k, v in payload.items() if k not in NOT_ASKED})
    text = json.dumps({"endpoint": endpoint.rstrip("/"), **_canon(key)}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canon(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


# -- a row ---------------------------------------------------------------------------------------


def prompt_of(payload: dict[str, Any]) -> str:
    """The text of the request's last user message (what this exchange asked)."""
    from .images import text_of

    messages = payload.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    return content if isinstance(content, str) else text_of(content) if isinstance(
        content, list) else ""


def row_of(
    payload: dict[str, Any], resp: ChatResponse, *, endpoint: str, started: float,
    prompt: str | None = None, secret: str | None = None, keep_images: bool = False,
    cached_from: int | None = None,
) -> dict[str, Any]:
    """One exchange as the store keeps it, redacted (``secret`` too, for a worker process that
    never registered the key)."""
    from .cassette import response_fields
    from .images import hashed, request_images

    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text, secret)

    def clean_json(value: Any) -> Any:
        text = json.dumps(value, ensure_ascii=False, default=str)
        cleaned = redact(text, secret)
        if cleaned == text:
            return value
        try:
            return json.loads(cleaned)
        except ValueError:
            return cleaned

    error = getattr(resp, "_stream_error", None) or resp.error
    u = resp.usage
    cacheable = (resp.source == "live" and resp.complete and error is None
                 and not getattr(resp, "_stopped", False))
    return {
        "started": started,
        "seconds": round(resp.elapsed or 0.0, 4),
        "prompt": clean(prompt if prompt is not None else prompt_of(payload)) or "",
        "answer": clean(resp.text) or "",
        "reasoning": clean(resp.reasoning),
        "model_requested": payload.get("model"),
        "model": resp.model,
        "parameters": clean_json({k: v for k, v in payload.items()
                                  if k not in ("model", "messages", "stream", "stream_options")}),
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "total_tokens": u.total_tokens,
        "credits": resp.credits_used,
        "usd": resp.usd_spent,
        "finish_reason": resp.finish_reason,
        "source": resp.source,
        "images": [_describe(u) for u in request_images(payload)],
        "tool_calls": clean_json([c.as_dict() for c in resp.tool_calls]) or None,
        "error": clean(str(error)) if error is not None else None,
        "origin": origin(),
        "endpoint": endpoint,
        "request_key": request_hash(payload, endpoint),
        "request": clean_json(payload if keep_images else hashed(payload)),
        "response": clean_json(response_fields(resp)),
        "cacheable": cacheable,
        "cached_from": cached_from,
    }


def _describe(url: str) -> str:
    from .images import describe_url

    return describe_url(url)


def cached_response(row: dict[str, Any], payload: dict[str, Any]) -> ChatResponse:
    """A stored answer as a fresh response: same text, no request, no credits."""
    from .cassette import Recording

    stored = row.get("response")
    fields: dict[str, Any] = stored if isinstance(stored, dict) else {}
    resp = Recording({}, {"finish_reason": row.get("finish_reason"), **fields}).to_response(payload)
    resp.source = CACHE_SOURCE
    first = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(row.get("started") or 0)))
    resp.provenance = f"from the cache, first answered {first}"
    resp.credits_used, resp.usd_spent = 0.0, 0.0
    for call in resp.tool_calls:  # the model's request, cached: the tools run again here
        call.replayed, call.result, call.error = False, None, None
    resp._cached_from = row.get("id")  # type: ignore[attr-defined]
    return resp


def not_stored(exc: StoreUnavailable) -> str:
    return f"not stored in {exc.path}: {exc.reason}"


def lookup(store: Store, payload: dict[str, Any], endpoint: str) -> ChatResponse | None:
    """The cached answer to this request, or None. Raises ``StoreUnavailable``."""
    row = store.cached(request_hash(payload, endpoint))
    return cached_response(row, payload) if row is not None else None


def keep(store: Store | None, payload: dict[str, Any], resp: ChatResponse, *, endpoint: str,
         started: float, prompt: str | None = None, secret: str | None = None,
         keep_images: bool = False) -> None:
    """Write one exchange; a store that fails adds one warning line to the answer instead."""
    if store is None:
        return
    try:
        row = row_of(payload, resp, endpoint=endpoint, started=started, prompt=prompt,
                     secret=secret, keep_images=keep_images,
                     cached_from=getattr(resp, "_cached_from", None))
        store.write(row)
    except StoreUnavailable as exc:
        resp.warnings.append(not_stored(exc))


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
    never on the loop); ``complete`` is the wire's coroutine function."""
    import asyncio

    keeping = job.keeping or Keeping(None)
    store, started = open_store(keeping.path), time.time()
    found = None if store is None else await asyncio.to_thread(
        _from_cache, store, job.payload, job.base_url, keeping.cache and not keeping.refresh)
    if isinstance(found, str) or found is None:
        resp = await complete(job.payload, request_id=job.request_id)
        if found:
            resp.warnings.append(found)
    else:
        resp = found
    if store is not None:
        await asyncio.to_thread(keep, store, job.payload, resp, endpoint=job.base_url,
                                started=started, secret=job.api_key)
    return resp


def send_one(
    store: Store | None, payload: dict[str, Any], send: Callable[[], ChatResponse], *,
    endpoint: str, cache: bool = False, refresh: bool = False, secret: str | None = None,
) -> ChatResponse:
    """A worker's one request: the cache first (when on), else ``send()``; kept either way."""
    started = time.time()
    resp = _from_cache(store, payload, endpoint, cache and not refresh)
    if isinstance(resp, str) or resp is None:
        warning = resp
        resp = send()
        if warning:
            resp.warnings.append(warning)
    keep(store, payload, resp, endpoint=endpoint, started=started, secret=secret)
    return resp


def _from_cache(store: Store | None, payload: dict[str, Any], endpoint: str,
                use: bool) -> ChatResponse | str | None:
    """The cached answer, None, or the warning line of a store that could not be read."""
    if store is None or not use:
        return None
    try:
        return lookup(store, payload, endpoint)
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
