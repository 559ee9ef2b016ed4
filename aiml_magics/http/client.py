"""HTTP to the AI/ML API: one keep-alive session, bounded retries, streams that keep what arrived.

No IPython here: usable from plain Python. ``requests`` is imported when a client is first
built, not when the package loads.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any

from ..endpoints import CHAT, RESPONSES, endpoint_for, refuses_chat, wire_body
from ..errors import (
    AIMLError,
    ConfigError,
    MissingKeyError,
    StreamInterrupted,
    check_key_text,
    register_secret,
)
from ..params import MAX_ANSWER_BYTES
from ..response import ChatResponse
from ..secrets import BearerHeader, Secret
from ..version import __version__
from . import answer
from .answer import AGAIN, clean_request_id, request_id_header
from .bounded import ERROR_BODY_BYTES, failure_words, read_capped
from .catalogue import is_chat_model
from .maskanswer import mask_answer
from .retry import RETRY_STATUSES, _retry_class, quiet_retries
from .stream import ChatStream, is_read_timeout
from .urls import (
    DEFAULT_BASE_URL,
    env_value,
    is_loopback,
    normalize_base_url,
    url_host,
    url_scheme,
)

if TYPE_CHECKING:
    import requests

class InsecureTransportWarning(UserWarning):
    """The key is about to travel over plain http:// because the user allowed it."""


class AIMLClient:
    """A connection to the service; reuse one instance so cells share a TCP connection."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        allow_insecure_http: bool = False,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        pool_size: int = 10,  # connections kept per host: one per thread sharing this client
    ) -> None:
        # Wrapped: the client is reachable from the magics instance, a variable inspector or a
        # traceback frame, and none of them may show the key.
        self._key = Secret(str.__str__(api_key)) if api_key else None
        self.max_answer_bytes, self.pool_size = max_answer_bytes, pool_size
        self._warned_insecure: set[str] = set()
        self._safe_urls: set[str] = set()
        register_secret(api_key)
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_retries, self.backoff = max_retries, backoff
        self.max_wait = max_wait  # total seconds one request may spend waiting between retries
        self.allow_insecure_http = allow_insecure_http
        self._key_checked = False
        # True when requests carry the key over plain http:// to a non-loopback host.
        self.key_in_clear = url_scheme(self.base_url) == "http" and not is_loopback(self.base_url)
        self._session: requests.Session | None = None
        self._models_etag: str | None = None
        self._models: list[dict[str, Any]] | None = None
        self._responses_models: set[str] = set()  # refused on chat completions: /responses only

    def __repr__(self) -> str:
        return f"AIMLClient(base_url={self.base_url!r}, key={'set' if self._key else 'not set'})"

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            retry = _retry_class()(
                total=self.max_retries,
                connect=self.max_retries,
                read=False,  # a read failure may mean the request was billed: never resend it
                status=self.max_retries,
                other=0,
                allowed_methods=None,
                status_forcelist=RETRY_STATUSES,
                backoff_factor=self.backoff,
                backoff_max=20,
                raise_on_status=False,
                respect_retry_after_header=True,
            )
            retry.wait_budget = self.max_wait
            session = requests.Session()
            # The environment is read once here, not on every request: requests would look up
            # proxies and ~/.netrc each time, and a netrc `default` entry would replace the Bearer
            # key with Basic auth (and send that password). A loopback service is reached
            # directly: a proxy would see the key and take the request off the machine.
            session.trust_env = False
            if not is_loopback(self.base_url):
                session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                if bundle:
                    session.verify = bundle
            session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=self.pool_size))
            session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=self.pool_size))
            session.headers["User-Agent"] = f"aiml-magics/{__version__}"
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- requests ---------------------------------------------------------------------------

    def _check_transport(self, url: str, with_key: bool) -> None:
        """Plain http:// to anything but loopback carries the key in clear: refuse, or warn once."""
        if not with_key or url in self._safe_urls:
            return
        if url_scheme(url) != "http" or is_loopback(url):
            self._safe_urls.add(url)  # parsed once per URL, not once per request of a batch
            return
        if not self.allow_insecure_http:
            raise ConfigError(
                f"Refusing to send the API key over plain http:// to {self.base_url}: anyone on "
                "the network could read it.",
                kind="insecure",
                hint="Use https://, or if you really mean it, set allow_insecure_http = True.",
            )
        host = url_host(url)
        if host not in self._warned_insecure:  # once per host and client, not per process
            self._warned_insecure.add(host)
            warnings.warn(
                f"aiml_magics: sending the API key over plain http:// to {host} because "
                "allow_insecure_http is True; anyone on the network path can read it. "
                "(Shown once per host.)",
                InsecureTransportWarning,
                stacklevel=2,
            )

    def _headers(self, request_id: str | None = None) -> dict[str, str]:
        if not self._key:
            raise MissingKeyError(
                "No API key is set.",
                hint="Set the AIML_API_KEY environment variable, or pass api_key= to Session.",
            )
        if not self._key_checked:  # once per client: the key cannot change under it
            check_key_text(self._key.reveal())
            self._key_checked = True
        return {
            "Authorization": BearerHeader(f"Bearer {self._key.reveal()}"),
            "Content-Type": "application/json",
            "X-Client-Request-Id": request_id_header(request_id),
        }

    def outgoing_endpoint(self, payload: dict[str, Any]) -> str:
        """Chat completions or Responses: the built-in list, the models list, past refusals."""
        return endpoint_for(payload.get("model"), self._models, self._responses_models)

    def outgoing(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(endpoint, body) as sent: ``endpoints.py`` has the rules (Responses-only models,
        ``stream_options`` to servers other than the AI/ML API)."""
        return wire_body(payload, self.base_url, self.outgoing_endpoint(payload))

    def _post(self, payload: dict[str, Any], request_id: str | None = None) -> requests.Response:
        """Send one request; the body is left unread (``stream=True``) so it is read in bounds.
        The response's ``aiml_endpoint`` says where it went (chat completions or Responses)."""
        endpoint, sent = self.outgoing(payload)
        url = f"{self.base_url}/{endpoint}"
        headers = self._headers(request_id)
        self._check_transport(url, True)
        import requests

        body = json.dumps(sent, ensure_ascii=False).encode("utf-8")
        started = time.monotonic()
        try:
            with quiet_retries():
                resp = self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    stream=True,
                    timeout=(self.connect_timeout, self.timeout),
                )
        except KeyboardInterrupt as exc:
            # The frames below hold a half-open socket; free it now, not when the traceback goes.
            traceback.clear_frames(exc.__traceback__)
            raise
        except requests.exceptions.ConnectTimeout:
            raise answer.connect_timeout(self.base_url, self.connect_timeout) from None
        except requests.exceptions.ReadTimeout:
            raise self._read_timeout() from None
        except requests.exceptions.ConnectionError as exc:
            if is_read_timeout(exc):  # a body that stalled after the headers
                raise self._read_timeout() from None
            raise self._network_error(exc) from None
        except (requests.RequestException, ValueError) as exc:  # a malformed URL or header
            raise answer.not_sent(self.base_url, exc) from None
        if resp.status_code >= 400:
            try:
                body_bytes, _ = read_capped(resp, ERROR_BODY_BYTES)
            except Exception:  # noqa: BLE001 - the status says enough; the body is a bonus
                body_bytes = b""
            error = answer.failed_status(
                resp.status_code, body_bytes, resp.headers, url=url, payload=payload,
                retries=_retries_done(resp), waited=time.monotonic() - started,
                max_retries=self.max_retries, max_wait=self.max_wait,
            )
            if endpoint == CHAT and refuses_chat(resp.status_code, error.service_message or ""):
                # The service serves this model on /responses only: go there, now and from now on.
                self._responses_models.add(str(payload.get("model")))
                return self._post(payload, request_id)
            raise error
        resp.aiml_endpoint = endpoint  # type: ignore[attr-defined]
        return resp

    def _network_error(self, exc: BaseException) -> AIMLError:
        return answer.network_error(self.base_url, *failure_words(exc))

    def _read_timeout(self) -> AIMLError:
        return answer.read_timeout(self.base_url, self.timeout)

    def _read_body(self, resp: requests.Response, limit: int, what: str, hint: str = "") -> bytes:
        """The whole body within ``limit`` inflated bytes, or one paragraph saying what broke."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            body, more = read_capped(resp, limit, keep=False)
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if is_read_timeout(exc):
                raise self._read_timeout() from None
            raise answer.cut(self.base_url, what, failure_words(exc)[0]) from None
        if more:
            raise answer.too_large(self.base_url, what, limit, hint)
        return body

    def complete(self, payload: dict[str, Any], request_id: str | None = None) -> ChatResponse:
        """One non-streamed request; the response keeps the body and the payload sent.
        ``request_id`` is sent as ``X-Client-Request-Id`` (cleaned; default: a fresh one)."""
        started = time.monotonic()
        payload = {k: v for k, v in payload.items() if k != "stream"}
        resp = self._post(payload, request_id)
        raw = self._read_body(
            resp, self.max_answer_bytes, "the answer",
            " (the max_answer_bytes setting)",
        )
        return answer.answer_of(raw, resp.status_code, resp.headers, payload,
                                time.monotonic() - started)

    def stream(self, payload: dict[str, Any], request_id: str | None = None) -> ChatStream:
        """Open a streamed request; iterate the result for (content, reasoning) deltas."""
        payload = dict(payload, stream=True)
        started = time.monotonic()
        resp = self._post(payload, request_id)
        if getattr(resp, "aiml_endpoint", CHAT) == RESPONSES:
            from .responses_stream import ResponsesStream

            return ResponsesStream(resp, payload, started, self.max_answer_bytes, timeout=self.timeout)
        return ChatStream(resp, payload, started, self.max_answer_bytes, timeout=self.timeout)

    def adopt_models(self, other: AIMLClient) -> None:
        """Take over another client's cached models list (same service, new key or timeouts)."""
        self._models, self._models_etag = other._models, other._models_etag

    def list_models(self, *, chat_only: bool = True, refresh: bool = False) -> list[dict[str, Any]]:
        """The service's models; cached, revalidated with ETag on refresh (``catalogue.py``)."""
        if self._models is not None and not refresh:
            return self._models
        from .catalogue import fetch_models

        return fetch_models(self, chat_only=chat_only)


def _retries_done(resp: Any) -> int:
    retries = getattr(getattr(resp, "raw", None), "retries", None)
    history = getattr(retries, "history", None)
    return len(history) if history else 0


__all__ = [
    "AGAIN",
    "AIMLClient",
    "ChatStream",
    "DEFAULT_BASE_URL",
    "InsecureTransportWarning",
    "StreamInterrupted",
    "clean_request_id",
    "env_value",
    "is_chat_model",
    "is_loopback",
    "mask_answer",
    "normalize_base_url",
    "url_host",
]
