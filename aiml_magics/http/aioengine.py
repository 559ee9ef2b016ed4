"""``map()``'s asyncio transport on aiohttp (the ``fast`` extra): one event loop on its own
thread, one connection pool, no thread per request.

Why: with requests under the GIL a batch costs about 2 CPU-seconds per 1,000 requests and stalls
far below the concurrency asked for; aiohttp does the same work for a fifth of that. The rules
stay where they are: ``batchloop.LoopRunner`` is ``batchrun.Runner`` run on this loop, so it
paces, retries and stops this engine exactly as it does the thread pool, and
``AsyncWire.complete`` is ``AIMLClient.complete`` on another wire: the same endpoint choice,
headers (the key checked once, never in a repr), refusal of plain http://, bounded reads and the
same reading of the answer and of every failure (``answer.py``). Only non-streamed requests.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import loopworker
from ..endpoints import CHAT, refuses_chat
from ..errors import AIMLError
from ..response import ChatResponse
from ..version import __version__
from . import answer
from .bounded import ERROR_BODY_BYTES, READ_BLOCK, failure_words, inflated
from .urls import is_loopback, url_host, url_scheme

if TYPE_CHECKING:
    import aiohttp

    from .client import AIMLClient

CLOSE_WAIT = 5.0  # seconds to let cancelled requests end when the loop shuts down


def available() -> bool:
    """Whether aiohttp can be imported (found, not imported: that costs ~0.1 s)."""
    return importlib.util.find_spec("aiohttp") is not None


class LoopThread:
    """An event loop on a thread of its own, where ``batchloop.LoopRunner`` runs a batch."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aiml-map-loop",
                                       daemon=True)
        self.thread.start()

    def close(self, last: Callable[[], Awaitable[None]] | None = None) -> None:
        """Cancel what is still running, run ``last`` (closing the pool), stop the loop."""

        async def stop() -> None:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if last is not None:
                await last()
            await self.loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(CLOSE_WAIT)
        except Exception:  # noqa: BLE001 - a pool that will not close is left to the collector
            pass
        loopworker.close(self.loop, CLOSE_WAIT)  # the store's rows handed in are written
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CLOSE_WAIT)
        if not self.thread.is_alive():
            self.loop.close()


class AsyncWire:
    """``AIMLClient.complete`` on aiohttp; built on any thread, used on one loop's thread."""

    def __init__(self, client: AIMLClient, connections: int) -> None:
        self.client = client  # its rules: endpoint, headers, transport check, limits, timeouts
        self.connections = connections
        self._http: aiohttp.ClientSession | None = None
        self._timeout: aiohttp.ClientTimeout | None = None
        self._fixed: dict[str, str] | None = None
        self._proxy, self._ssl = _proxy_for(client.base_url), _ssl_context(client.base_url)

    @classmethod
    def of(cls, api_key: str | None, base_url: str, timeout: float, allow_insecure_http: bool,
           max_answer_bytes: int, connections: int) -> AsyncWire:
        """A wire with ``run_job``'s client rules (no retries inside: map() decides them)."""
        from .client import AIMLClient

        client = AIMLClient(api_key, base_url, timeout=timeout, max_retries=0,
                            allow_insecure_http=allow_insecure_http,
                            max_answer_bytes=max_answer_bytes)
        return cls(client, connections)

    def __repr__(self) -> str:
        return f"AsyncWire({self.client!r})"

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=0,
                                             ssl=self._ssl)
            # trust_env off: no ~/.netrc may replace the key, no proxy for loopback (as AIMLClient).
            # Compressed bodies are inflated here, in bounded steps (bounded.inflated).
            # At most 100 header lines, as http.client reads (aiohttp's own limit where it has one).
            limits: dict[str, Any] = {"max_headers": 100} if "max_headers" in inspect.signature(
                aiohttp.ClientSession).parameters else {}
            self._http = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                max_line_size=8190, max_field_size=8190, **limits,
            )
        return self._http

    def _fixed_headers(self) -> dict[str, str]:
        """The client's headers but the request id, built (and the key checked) once per wire.

        aiohttp calls str() on header values, which masks a BearerHeader: the plain text goes on
        the wire only (no aiohttp error is ever shown; answer.py words them). Sent with each
        request rather than as the session's defaults: one dict, no merge per request."""
        if self._fixed is None:
            fixed = {k: str.__str__(v) for k, v in self.client._headers().items()}
            del fixed["X-Client-Request-Id"]
            self._fixed = {**fixed, "User-Agent": f"aiml-magics/{__version__}",
                           "Accept-Encoding": "gzip, deflate"}
        return self._fixed

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def complete(self, payload: dict[str, Any], request_id: str | None = None) -> ChatResponse:
        """One non-streamed request; never anything but an answer or an ``AIMLError``."""
        import aiohttp

        c = self.client
        started = time.monotonic()
        if "stream" in payload:
            payload = {k: v for k, v in payload.items() if k != "stream"}
        timeout = self._timeout = self._timeout or aiohttp.ClientTimeout(
            total=None, sock_connect=c.connect_timeout, sock_read=c.timeout)
        while True:
            endpoint, sent = c.outgoing(payload)
            url = f"{c.base_url}/{endpoint}"
            headers = {**self._fixed_headers(),
                       "X-Client-Request-Id": answer.request_id_header(request_id)}
            c._check_transport(url, True)
            body = json.dumps(sent, ensure_ascii=False).encode("utf-8")
            try:
                async with self._session().post(url, data=body, headers=headers, timeout=timeout,
                                                proxy=self._proxy) as resp:
                    if resp.status >= 400:
                        error = await self._failed(resp, url, payload, started)
                        if endpoint == CHAT and refuses_chat(resp.status, error.service_message or ""):
                            c._responses_models.add(str(payload.get("model")))
                            continue  # this model answers on /responses only: go there
                        raise error
                    raw = await self._read(resp, c.max_answer_bytes, "the answer",
                                           " (the max_answer_bytes setting)")
                    status, got = resp.status, resp.headers
            except (AIMLError, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - every wire failure, in the thread engine's words
                raise self._words(exc) from None
            return answer.answer_of(raw, status, got, payload, time.monotonic() - started)

    async def _failed(self, resp: Any, url: str, payload: dict[str, Any],
                      started: float) -> AIMLError:
        try:
            body, _ = await read_capped(resp, ERROR_BODY_BYTES)
        except Exception:  # noqa: BLE001 - the status says enough; the body is a bonus
            body = b""
        c = self.client
        return answer.failed_status(resp.status, body, resp.headers, url=url, payload=payload,
                                    retries=0, waited=time.monotonic() - started,
                                    max_retries=c.max_retries, max_wait=c.max_wait)

    async def _read(self, resp: Any, limit: int, what: str, hint: str) -> bytes:
        try:
            body, more = await read_capped(resp, limit, keep=False)
        except Exception as exc:  # noqa: BLE001 - worded below, or raised as it came
            worded = self._read_failure(exc, what)
            if worded is None:
                raise
            raise worded from None
        if more:
            raise answer.too_large(self.client.base_url, what, limit, hint)
        return body

    def _read_failure(self, exc: Exception, what: str) -> AIMLError | None:
        """A body that could not be read, in the thread engine's words (None: not a read's)."""
        import aiohttp
        from urllib3.exceptions import DecodeError

        base = self.client.base_url
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return answer.read_timeout(base, self.client.timeout)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return answer.cut(base, what, "the body ended before its announced end")
        if isinstance(exc, (aiohttp.ClientError, DecodeError, OSError)):
            return answer.cut(base, what, failure_words(exc)[0])
        return None

    def _words(self, exc: BaseException) -> AIMLError:
        """A failure before the status line arrived, as ``AIMLClient._post`` says it."""
        import aiohttp

        c = self.client
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return answer.connect_timeout(c.base_url, c.connect_timeout)
        if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
            return answer.read_timeout(c.base_url, c.timeout)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return answer.network_error(c.base_url, failure_words(exc)[0], "connect")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return answer.network_error(
                c.base_url, "the server closed the connection without answering", "sent")
        if isinstance(exc, aiohttp.ClientResponseError):  # the status line or headers unreadable
            text = str(exc).lower()
            words = ("it answered with a header line too long to read" if "too long" in text
                     else "it answered with more than 100 header lines, which no client reads"
                     if "header" in text and "many" in text
                     else "it answered with something that is not HTTP")
            return answer.network_error(c.base_url, words, "answered")
        if isinstance(exc, (aiohttp.InvalidURL, ValueError)):
            return answer.not_sent(c.base_url, exc)
        return answer.network_error(c.base_url, *failure_words(exc))


async def read_capped(resp: Any, limit: int, keep: bool = True) -> tuple[bytes, bool]:
    """``bounded.read_capped`` for an aiohttp response opened with ``auto_decompress=False``:
    up to ``limit`` inflated bytes, (body, more); past the limit the connection is closed.

    What arrives compressed is read up to the limit (plus a block: a body that compresses
    nothing grows a little) and then inflated in bounded steps, so neither a gzip bomb nor an
    endless body costs more than about twice ``limit``."""
    coding = str(resp.headers.get("Content-Encoding") or "").strip().lower()
    cap = limit if coding in ("", "identity") else limit + READ_BLOCK
    length = resp.content_length
    if coding in ("", "identity") and length is not None and length <= limit:
        try:  # announced and within the limit: aiohttp reads exactly that many bytes
            return await resp.read(), False
        except BaseException:
            resp.close()
            raise
    parts: list[bytes] = []
    size = 0
    try:
        while size <= cap:
            block = await resp.content.read(READ_BLOCK)
            if not block:
                break
            parts.append(block)
            size += len(block)
    except BaseException:
        resp.close()
        raise
    if size > cap:
        resp.close()
        if coding in ("", "identity"):
            return (b"".join(parts)[:limit] if keep else b""), True
    if coding in ("", "identity"):
        return b"".join(parts), False
    out, total = _inflate(resp.headers, parts, limit)
    if total > limit or size > cap:
        resp.close()
        return (out[:limit] if keep else b""), True
    return out, False


class _Raw:
    """What ``bounded.inflated`` reads of a response: its headers."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers


def _inflate(headers: Mapping[str, str], parts: list[bytes], limit: int) -> tuple[bytes, int]:
    out: list[bytes] = []
    total = 0
    for block in inflated(_Raw(headers), lambda decode: iter(parts)):
        out.append(block)
        total += len(block)
        if total > limit:
            break
    return b"".join(out), total


def _proxy_for(base_url: str) -> str | None:
    """The environment's proxy for this URL (none for loopback), read once, as AIMLClient does."""
    if is_loopback(base_url):
        return None
    import urllib.request

    if urllib.request.proxy_bypass(url_host(base_url)):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url_scheme(base_url)) or proxies.get("all")


def _ssl_context(base_url: str) -> Any:
    """requests' trust store (certifi, or ``REQUESTS_CA_BUNDLE``), so both engines trust alike."""
    if url_scheme(base_url) != "https":
        return True
    import ssl

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle) if bundle else True


__all__ = ["AsyncWire", "LoopThread", "available", "read_capped"]
