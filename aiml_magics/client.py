"""HTTP to the AI/ML API: one keep-alive session, bounded retries, streams that keep what arrived.

No IPython here: usable from plain Python. ``requests`` is imported when a client is first
built, not when the package loads.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import ipaddress
import json
import logging
import os
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import __version__
from .bounded import READ_BLOCK, failure_words, finish_quickly, read_capped, set_read_timeout
from .errors import (
    SECRETS,
    AIMLError,
    ConfigError,
    ConnectError,
    IncompleteAnswer,
    LimitError,
    MissingKeyError,
    ProtocolError,
    ResponseTimeout,
    ServerError,
    StreamInterrupted,
    check_key_text,
    error_words,
    http_error,
    register_secret,
    service_message,
)
from .params import MAX_ANSWER_BYTES
from .response import CUT, INTERRUPTED, ChatResponse, StreamAssembler
from .safejson import JSONRefused, describe_size, loads
from .secrets import BearerHeader, Secret, redact_obj
from .sse import DONE, LineTooLong, SSEParser

if TYPE_CHECKING:
    import requests

DEFAULT_BASE_URL = "https://api.aimlapi.com/v1"
# Plain-Python hints; the notebook layer says the same in its terms (advice.py).
AGAIN = "Ask again for an answer."
KEPT = "What arrived is kept (the error's .response, and the history); ask again for a full answer."
BASE_VARS = ("AIML_API_BASE", "AIMLAPI_API_BASE")
KEY_VARS = ("AIML_API_KEY", "AIMLAPI_API_KEY")
RETRY_STATUSES = (429, 500, 502, 503, 504)
MALFORMED = "skipped a malformed chunk: the answer may have a gap"
MAX_RETRY_AFTER = 86400.0 * 365  # a Retry-After beyond a year is "never": no float overflow
#: Limits on what the service may send (README "Limits"). An error body needs a few KB.
ERROR_BODY_BYTES = 8 * 1024
MODELS_BYTES = 16 * 1024 * 1024
#: Once an answer is complete ([DONE], or a finish and the usage), the few bytes that may still
#: come (credits, [DONE], the end of the body) must arrive within this many seconds.
END_GRACE = 0.5
CHAT_TYPES = ("openai/chat-completions", "chat-completion", "chat-completions", "chat")


def env_value(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first set variable among ``names``: (value, variable name)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value, name
    return None, None


def _parse(url: str) -> Any:
    """The URL as urllib3 reads it: the parser requests and urllib3 use to pick where to connect,
    so the host we check is the host we connect to."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        return parse_url(url)
    except (LocationParseError, ValueError):
        return None


def _refuse(problem: str) -> AIMLError:
    # The URL itself is not repeated: a refused one may carry a password or a key.
    return ConfigError(
        f"base_url is refused: it {problem}; write it as scheme://host[:port]/path, such as "
        f"{DEFAULT_BASE_URL!r}."
    )


@functools.lru_cache(maxsize=32)
def normalize_base_url(url: str) -> str:
    """Accept the base with or without ``/v1`` (the service does) and trailing slashes; refuse
    anything parsers could read two ways, or that would put credentials in the URL."""
    url = url.strip().rstrip("/")
    if "\\" in url:
        raise _refuse("contains a backslash, which URL parsers read differently (one may see "
                      "another host than the one checked)")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise _refuse("contains a space or a control character")
    parts = _parse(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.host:
        if parts is not None and parts.auth:
            raise _refuse("contains user-info (user:password@ before the host)")
        raise ConfigError(f"base_url = {url!r} is not an http(s) URL: use e.g. {DEFAULT_BASE_URL!r}.")
    if parts.auth is not None or "@" in (url.split("://", 1)[-1].split("/", 1)[0]):
        raise _refuse("contains user-info (user:password@ before the host); the key is sent as "
                      "a header, never in the URL")
    if parts.query is not None or "?" in url:
        raise _refuse("has a query string (?...)")
    if parts.fragment is not None or "#" in url:
        raise _refuse("has a fragment (#...)")
    if parts.path in (None, "", "/"):
        url += "/v1"
    return url


def url_host(url: str) -> str:
    """The host urllib3 connects to for ``url`` (lower-case, IPv6 without brackets)."""
    parts = _parse(url)
    return ((parts.host if parts is not None else None) or "").lower().strip("[]")


def url_scheme(url: str) -> str:
    parts = _parse(url)
    return ((parts.scheme if parts is not None else None) or "").lower()


@functools.lru_cache(maxsize=32)
def is_loopback(url: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: decided from the text, no name lookup.

    Only the exact name ``localhost``: a resolver may send ``x.localhost`` to DNS.
    """
    host = url_host(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta or HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes '²' and other digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@functools.cache
def _retry_class() -> type:
    from urllib3.exceptions import MaxRetryError, ResponseError
    from urllib3.util.retry import Retry

    class BudgetRetry(Retry):
        """urllib3's Retry with a bound on the total wait of one request.

        A retry whose wait (Retry-After, else backoff) would take the total past ``wait_budget``
        is not made: the last answer goes back to the caller, so a cell never hangs for an hour.
        An unreadable Retry-After falls back to the backoff instead of raising. A connect
        timeout is not retried: connecting has one deadline, ``connect_timeout``, in all.
        """

        wait_budget = 30.0
        waited = 0.0

        def new(self, **kw: Any) -> BudgetRetry:
            retry = super().new(**kw)
            retry.wait_budget, retry.waited = self.wait_budget, self.waited
            return retry

        def get_retry_after(self, response: Any) -> float | None:
            return parse_retry_after(response.headers.get("Retry-After"))

        def increment(self, method: Any = None, url: Any = None, response: Any = None,
                      error: Any = None, _pool: Any = None, _stacktrace: Any = None) -> BudgetRetry:
            from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

            # (urllib3 2 makes a refused connection or a failed lookup a ConnectTimeoutError too:
            # those fail fast, and are retried.)
            if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
                # The attempt already took the whole connect deadline: another would double it.
                raise MaxRetryError(_pool, url, error)
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
            wait = None
            if response is not None and self.respect_retry_after_header:
                wait = retry.get_retry_after(response)
            wait = wait or retry.get_backoff_time()
            if retry.waited + wait > retry.wait_budget:
                raise MaxRetryError(_pool, url, error or ResponseError("wait budget spent"))
            retry.waited += wait
            return retry

    return BudgetRetry


_requesting = threading.local()  # .on while this thread is inside one of our requests


class _RetryNoise(logging.Filter):
    """Drops urllib3's "Retrying (Retry(total=...))" warnings for our own requests.

    With any logging handler configured they reach the cell as red ``WARNING:urllib3...`` lines
    above the error, which already says how many retries were made. Other code's requests in the
    same process keep their warnings.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        noise = isinstance(record.msg, str) and record.msg.startswith("Retrying")
        return not (noise and getattr(_requesting, "on", False))


@functools.cache
def _install_retry_filter() -> None:
    logging.getLogger("urllib3.connectionpool").addFilter(_RetryNoise())


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """Inside: urllib3's retry warnings for this thread's request are not logged."""
    _install_retry_filter()
    before = getattr(_requesting, "on", False)
    _requesting.on = True
    try:
        yield
    finally:
        _requesting.on = before


class InsecureTransportWarning(UserWarning):
    """The key is about to travel over plain http:// because the user allowed it."""


_warned_insecure: set[str] = set()  # hosts already warned about in this process


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
    ) -> None:
        # Wrapped: the client is reachable from the magics instance, a variable inspector or a
        # traceback frame, and none of them may show the key.
        self._key = Secret(str.__str__(api_key)) if api_key else None
        self.max_answer_bytes = max_answer_bytes
        register_secret(api_key)
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait  # total seconds one request may spend waiting between retries
        self.allow_insecure_http = allow_insecure_http
        self._key_checked = False
        # True when requests carry the key over plain http:// to a non-loopback host.
        self.key_in_clear = url_scheme(self.base_url) == "http" and not is_loopback(self.base_url)
        self._session: requests.Session | None = None
        self._models_etag: str | None = None
        self._models: list[dict[str, Any]] | None = None

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
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
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
        if not with_key or url_scheme(url) != "http" or is_loopback(url):
            return
        if not self.allow_insecure_http:
            raise ConfigError(
                f"Refusing to send the API key over plain http:// to {self.base_url}: anyone on "
                "the network could read it.",
                kind="insecure",
                hint="Use https://, or if you really mean it, set allow_insecure_http = True.",
            )
        host = url_host(url)
        if host not in _warned_insecure:
            _warned_insecure.add(host)
            warnings.warn(
                f"aiml_magics: sending the API key over plain http:// to {host} because "
                "allow_insecure_http is True; anyone on the network path can read it. "
                "(Shown once per host.)",
                InsecureTransportWarning,
                stacklevel=2,
            )

    def _headers(self) -> dict[str, str]:
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
            "X-Client-Request-Id": f"aiml-magics-{uuid.uuid4().hex}",
        }

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        """Send one request; the body is left unread (``stream=True``) so it is read in bounds."""
        url = f"{self.base_url}/chat/completions"
        headers = self._headers()
        self._check_transport(url, True)
        import requests

        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
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
            raise ConnectError(
                f"Could not connect to {self.base_url} within {self.connect_timeout:g} s.",
                hint="Check the network and the base URL.",
            ) from None
        except requests.exceptions.ReadTimeout:
            raise self._read_timeout() from None
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):  # a body that stalled after the headers
                raise self._read_timeout() from None
            raise self._network_error(exc) from None
        except (requests.RequestException, ValueError) as exc:  # a malformed URL or header
            raise ConnectError(
                f"The request to {self.base_url} could not be sent: {_reason(exc)}."
            ) from None
        if resp.status_code >= 400:
            try:
                body_bytes, _ = read_capped(resp, ERROR_BODY_BYTES)
            except Exception:  # noqa: BLE001 - the status says enough; the body is a bonus
                body_bytes = b""
            retries = _retries_done(resp)
            asked = parse_retry_after(resp.headers.get("Retry-After"))
            raise http_error(
                resp.status_code,
                body_bytes,
                content_type=resp.headers.get("Content-Type", ""),
                url=url,
                model=payload.get("model"),
                retries=retries,
                waited=time.monotonic() - started,
                retry_after=asked if retries < self.max_retries and asked else None,
                wait_budget=self.max_wait,
            )
        return resp

    def _network_error(self, exc: BaseException) -> AIMLError:
        """What happened, in words: not connected, answered unreadably, or sent and then broken."""
        words, phase = failure_words(exc)
        if phase == "connect":
            return ConnectError(
                f"Could not connect to {self.base_url}: {words}.",
                hint="Check the network and the base URL.",
            )
        if phase == "answered":
            return ProtocolError(
                f"{self.base_url} answered, but the answer could not be read: {words}. The request "
                "was sent and may have been billed, so it was not resent.",
                hint=AGAIN,
            )
        if phase == "sent":
            return ConnectError(
                f"The request reached {self.base_url}, but {words} before an answer came. It may "
                "have been billed, so it was not resent.",
                hint=AGAIN,
            )
        return ConnectError(
            f"The request to {self.base_url} failed: {words}; it may or may not have reached the "
            "service.",
            hint=AGAIN,
        )

    def _read_timeout(self) -> AIMLError:
        return ResponseTimeout(
            f"{self.base_url} did not answer within {self.timeout:g} s: the model may be "
            "overloaded.",
            hint="Try again, pick another model, or raise the timeout setting.",
        )

    def _read_body(self, resp: requests.Response, limit: int, what: str, hint: str = "") -> bytes:
        """The whole body within ``limit`` inflated bytes, or one paragraph saying what broke."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            body, more = read_capped(resp, limit, keep=False)
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if _is_read_timeout(exc):
                raise self._read_timeout() from None
            words, _ = failure_words(exc)
            raise IncompleteAnswer(
                f"{what.capitalize()} from {self.base_url} was cut: {words}. The request was sent "
                "and may have been billed.",
                hint=AGAIN,
            ) from None
        if more:
            raise LimitError(
                f"{what.capitalize()} from {self.base_url} is larger than {describe_size(limit)}, "
                f"so it was not read{hint}.",
                hint="Raise max_answer_bytes for longer answers." if "max_answer_bytes" in hint
                else None,
            )
        return body

    def complete(self, payload: dict[str, Any]) -> ChatResponse:
        """One non-streamed request; the response keeps the body and the payload sent."""
        started = time.monotonic()
        payload = {k: v for k, v in payload.items() if k != "stream"}
        resp = self._post(payload)
        raw = self._read_body(
            resp, self.max_answer_bytes, "the answer",
            " (the max_answer_bytes setting)",
        )
        problem: ValueError | None = None
        try:
            body = loads(raw)
        except ValueError as exc:
            body, problem = None, exc
        if not isinstance(body, dict):
            excerpt = _excerpt(raw, resp.headers.get("Content-Type", ""), problem)
            raise ProtocolError(
                f"The service answered {resp.status_code} but not with an answer: {excerpt}.",
                hint="Check the base URL; if it is right, try again.",
            )
        if body.get("error") and not body.get("choices"):  # a 200 that carries an error
            words = error_words(body["error"])
            raise ServerError(
                f"The service answered {resp.status_code} with an error instead of an answer: "
                f"{words.rstrip('.')}. Try again, or pick another model.",
                status=resp.status_code,
                service_message=words,
            )
        result = ChatResponse.from_body(
            body,
            request=payload,
            elapsed=time.monotonic() - started,
            inference_id=resp.headers.get("x-inference-id"),
        )
        if result.credits_used is None and resp.headers.get("x-aimlapi-credits-used"):
            result.credits_used = _number(resp.headers["x-aimlapi-credits-used"])
            result.usd_spent = _number(resp.headers.get("x-aimlapi-usd-spent"))
        note_empty(result)
        return mask_answer(result)

    def stream(self, payload: dict[str, Any]) -> ChatStream:
        """Open a streamed request; iterate the result for (content, reasoning) deltas."""
        payload = dict(payload, stream=True)
        started = time.monotonic()
        return ChatStream(self._post(payload), payload, started, self.max_answer_bytes)

    def adopt_models(self, other: AIMLClient) -> None:
        """Take over another client's cached models list (same service, new key or timeouts)."""
        self._models, self._models_etag = other._models, other._models_etag

    def list_models(self, *, chat_only: bool = True, refresh: bool = False) -> list[dict[str, Any]]:
        """The service's models; cached, revalidated with ETag on refresh.

        The AI/ML API needs no key here, but LiteLLM, vLLM with ``--api-key`` and OpenAI do: the
        key goes along whenever it is set and may travel (never in clear to another host unless
        allowed; then the list is asked for without it).
        """
        if self._models is not None and not refresh:
            return self._models
        import requests

        url = f"{self.base_url}/models"
        headers = {"If-None-Match": self._models_etag} if self._models_etag else {}
        if self._key and (self.allow_insecure_http or not self.key_in_clear):
            headers["Authorization"] = self._headers()["Authorization"]
            self._check_transport(url, True)  # allowed in clear: the once-per-host warning
        try:
            with quiet_retries():
                resp = self.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    timeout=(self.connect_timeout, min(self.timeout, 30)),
                )
        except requests.exceptions.RequestException as exc:
            words = "no answer within the timeout" if _is_read_timeout(exc) else failure_words(exc)[0]
            raise ConnectError(f"Could not list models at {url}: {words}.") from None
        if resp.status_code == 304 and self._models is not None:
            read_capped(resp, ERROR_BODY_BYTES)  # an empty body: read, so the connection is reused
            return self._models
        if resp.status_code >= 400:
            try:
                body_bytes, _ = read_capped(resp, ERROR_BODY_BYTES)
            except Exception:  # noqa: BLE001 - the status says enough
                body_bytes = b""
            raise http_error(
                resp.status_code,
                body_bytes,
                content_type=resp.headers.get("Content-Type", ""),
                url=url,
            )
        raw = self._read_body(resp, MODELS_BYTES, "the models list")
        try:
            body = loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"The models list at {url} is not readable JSON ({_short(exc)}).") from None
        items = body.get("data", body.get("models")) if isinstance(body, dict) else body
        if items is not None and not isinstance(items, list):
            raise ProtocolError(f"The models list at {url} is not a list of models.")
        items = [m for m in items or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if chat_only:
            items = [m for m in items if is_chat_model(m)]
        self._models = items
        self._models_etag = resp.headers.get("ETag")
        return items


def mask_answer(resp: ChatResponse) -> ChatResponse:
    """An answer that quotes a key (a prompt injection asking for it, a service echoing it) keeps
    only the mask, in ``.text``, ``.reasoning`` and ``.raw``, so no later view, history, cassette or
    next request carries it."""
    if not len(SECRETS):
        return resp
    resp.text = SECRETS.redact(resp.text)
    resp.reasoning = SECRETS.redact(resp.reasoning) if resp.reasoning else resp.reasoning
    resp.model = SECRETS.redact(resp.model) if resp.model else resp.model
    resp.raw = redact_obj(resp.raw, SECRETS)
    for call in resp.tool_calls:
        call.arguments_text = SECRETS.redact(call.arguments_text)
    return resp


def _short(exc: BaseException) -> str:
    """A parse error's own words, one short line (never the text that failed to parse)."""
    text = str(exc).split(":", 1)[0] if not isinstance(exc, JSONRefused) else str(exc)
    return text[:120] or type(exc).__name__


def _excerpt(raw: bytes, ctype: str, problem: BaseException | None) -> str:
    """What came instead of an answer: JSON too large or deep is named, anything else quoted."""
    if isinstance(problem, JSONRefused):
        return f"JSON {problem}"
    return service_message(raw[:4096], ctype)


def note_empty(resp: ChatResponse) -> None:
    """A finished answer with no text gets a warning that says why, so an empty cell is explained."""
    if resp.text or not resp.complete or resp.tool_calls:
        return
    if resp.reasoning:
        note = "the model sent only reasoning, no answer text"
        if resp.finish_reason == "length":
            note += ": it hit the token limit while thinking, raise max_completion_tokens"
    else:
        note = "the model sent no answer text"
    resp.warnings.append(note)


def is_chat_model(model: dict[str, Any]) -> bool:
    """Chat models by their ``type``. Other OpenAI-compatible servers (LiteLLM, vLLM, OpenAI)
    list ``{"id", "object", "owned_by"}`` only: with no type to go by, every item is kept."""
    if "type" not in model:
        return True
    kind = str(model.get("type", "")).lower()
    return kind in CHAT_TYPES or kind.endswith("chat-completions")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _retries_done(resp: Any) -> int:
    retries = getattr(getattr(resp, "raw", None), "retries", None)
    history = getattr(retries, "history", None)
    return len(history) if history else 0


def _is_read_timeout(exc: BaseException) -> bool:
    """requests wraps a read timeout met while reading a body in a ConnectionError."""
    from urllib3.exceptions import ReadTimeoutError

    seen: BaseException | None = exc
    for _ in range(4):
        if isinstance(seen, ReadTimeoutError):
            return True
        inner = seen.args[0] if seen is not None and seen.args else None
        seen = getattr(inner, "reason", inner) if isinstance(inner, BaseException) else None
    return False


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a requests/urllib3 error, without the URL noise."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "Remote end closed", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text[:200]


class ChatStream:
    """An open streamed answer. Iterating yields (content, reasoning) deltas; ``response()``
    gives the answer so far at any time, so an error or Ctrl-C keeps what arrived.

    Reading stops as soon as the answer is complete: at ``[DONE]``, or once a finish reason and
    the usage have arrived and nothing more comes within ``END_GRACE`` (a server may hold the
    connection open, silent or sending ``: keep-alive``). It also stops at an error frame, past
    ``max_bytes`` of (inflated) stream, or at a line longer than the SSE parser's limit.
    """

    def __init__(
        self,
        resp: requests.Response,
        payload: dict[str, Any],
        started: float,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._resp = resp
        self.payload = payload
        self.started = started
        self.max_bytes = max_bytes
        self.assembler = StreamAssembler()
        self.done = False  # [DONE] seen
        self.error: AIMLError | None = None
        self.warnings: list[str] = []
        self.interrupted = False
        self.inference_id = resp.headers.get("x-inference-id")
        self._head = b""  # the first bytes of the body, quoted if it turns out not to be a stream

    @property
    def ended(self) -> bool:
        """The answer is complete: [DONE], or a finish reason and the usage (no error since)."""
        a = self.assembler
        return self.error is None and (
            self.done or (a.finish_reason is not None and a.usage is not None)
        )

    def _byte_chunks(self) -> Iterator[bytes]:
        raw = self._resp.raw
        chunked = getattr(raw, "chunked", False)
        if chunked:
            # Each HTTP chunk as soon as it arrives (the service flushes one per event), at most
            # READ_BLOCK inflated bytes at a time: a gzip bomb is inflated only as far as read.
            yield from raw.read_chunked(READ_BLOCK, decode_content=True)
        else:
            while True:
                block = raw.read1(READ_BLOCK, decode_content=True)
                if not block:
                    break
                yield block

    def __iter__(self) -> Iterator[tuple[str, str]]:
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        ctype = self._resp.headers.get("Content-Type", "")
        chunks = self._byte_chunks()
        clean = False
        tail_until: float | None = None  # set once the answer is complete without [DONE]
        try:
            if "json" in ctype.lower():
                # Some models ignore "stream": the whole answer comes as one JSON body.
                yield from self._whole_body()
                clean = self.error is None
                return
            parser = SSEParser()
            feed, add, decode = parser.feed, self.assembler.add, self._decode
            assembler = self.assembler
            received = 0
            for block in chunks:
                received += len(block)
                if received > self.max_bytes:
                    self.error = self._too_large()
                    return
                if len(self._head) < 512:
                    self._head += block[: 512 - len(self._head)]
                for event in feed(block):
                    if event == DONE:
                        self.done = clean = True
                        return
                    delta = decode(event)
                    if delta is None:
                        continue
                    if type(event) is not str and getattr(event, "name", "") == "error":
                        self._error_frame(delta)
                        return
                    yield add(delta)
                    if assembler.error is not None:
                        self._error_frame(assembler.error)
                        return
                if tail_until is None:
                    if assembler.finish_reason is not None and assembler.usage is not None:
                        # Complete: what may still come (credits, [DONE]) comes at once or not.
                        tail_until = time.monotonic() + END_GRACE
                        set_read_timeout(self._resp.raw, END_GRACE)
                elif time.monotonic() >= tail_until:
                    return
            for event in parser.close():
                if event == DONE:
                    self.done = True
                    break
                delta = decode(event)
                if delta is None:
                    continue
                if type(event) is not str and getattr(event, "name", "") == "error":
                    self._error_frame(delta)
                    return
                yield add(delta)
                if assembler.error is not None:
                    self._error_frame(assembler.error)
                    return
            clean = self.error is None
            if not self.done and self.assembler.chunks == 0 and self._head.strip():
                self.error = self._not_an_answer(self._head, ctype)
        except KeyboardInterrupt:
            if not self.ended:
                self.interrupted = True
            raise
        except LineTooLong as exc:
            self.error = self._stopped(
                f"the stream sent a line longer than {describe_size(exc.limit)}, the most "
                "a stream line may take"
            )
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if tail_until is not None and self.ended:
                return  # the answer was complete; the server just did not end the body
            self.error = self._stopped(_stream_failure(exc))
        finally:
            self._finish(chunks, clean)

    def _stopped(self, why: str) -> AIMLError:
        got = self.assembler.content_chars
        return IncompleteAnswer(
            f"The answer stopped early: {why} after {got:,} characters.",
            hint=KEPT,
        )

    def _too_large(self) -> AIMLError:
        got = self.assembler.content_chars
        return IncompleteAnswer(
            f"The answer is larger than {describe_size(self.max_bytes)} (the max_answer_bytes "
            f"setting), so the rest was not read after the first {got:,} characters.",
            hint="What arrived is kept (the error's .response, and the history); raise "
            "max_answer_bytes for longer answers.",
            limit="max_answer_bytes",
        )

    def _error_frame(self, error: Any) -> None:
        """An ``event: error`` frame or a chunk carrying ``error``: the answer ends, incomplete."""
        if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
            error = error["error"]
        words = error_words(error)
        got = self.assembler.content_chars
        self.error = IncompleteAnswer(
            f"The service reported an error in the middle of the answer: {words.rstrip('.')}. "
            f"The answer is incomplete after {got:,} characters.",
            hint=KEPT,
            service_message=words,
        )

    def _finish(self, chunks: Iterator[bytes], clean: bool) -> None:
        """Give a fully read connection back to the pool (keep-alive); close anything else.

        After [DONE] the end of the chunked body is a few bytes that are already there or come at
        once; a server that holds the connection open instead gets it closed, not waited on.
        """
        if clean:
            try:
                if finish_quickly(self._resp.raw, chunks, END_GRACE):
                    return
            except KeyboardInterrupt:
                self.close()
                raise
        self.close()

    def _decode(self, event: str) -> Any:
        try:
            return loads(event)
        except ValueError as exc:
            if type(event) is not str and getattr(event, "name", "") == "error":
                return event  # an error frame in plain text: its words are the message
            note = MALFORMED + (f" ({exc})" if isinstance(exc, JSONRefused) else "")
            self.warnings.append(note)
            return None

    def _whole_body(self) -> Iterator[tuple[str, str]]:
        raw, more = read_capped(self._resp, self.max_bytes, keep=False)
        if more:
            self.error = self._too_large()
            return
        try:
            body = loads(raw)
        except ValueError as exc:
            body = None
            if isinstance(exc, JSONRefused):
                self.error = self._not_an_answer(f"JSON {exc}".encode(), ctype="text/plain")
                return
        if not isinstance(body, dict):
            self.error = self._not_an_answer(raw[:4096], ctype="")
            return
        single = ChatResponse.from_body(body)
        chunk = {
            "id": body.get("id"),
            "model": body.get("model"),
            "usage": body.get("usage"),
            "meta": body.get("meta"),
            "choices": [
                {
                    "delta": {"content": single.text, "reasoning_content": single.reasoning,
                              "tool_calls": [dict(c.wire(), index=i)
                                             for i, c in enumerate(single.tool_calls)]},
                    "finish_reason": single.finish_reason,
                }
            ],
        }
        yield self.assembler.add(chunk)
        if body.get("error"):
            self._error_frame(body["error"])
            return
        self.done = True

    def _not_an_answer(self, head: bytes, ctype: str) -> AIMLError:
        excerpt = service_message(head, ctype)
        return ProtocolError(
            f"The service answered {self._resp.status_code} but not with an answer: {excerpt}.",
            hint="Check the base URL; if it is right, try again.",
        )

    def close(self) -> None:
        """Release the connection; a half-read stream closes it rather than reuse it."""
        try:
            self._resp.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real outcome
            pass

    def response(self) -> ChatResponse:
        """The answer so far, marked interrupted or cut when it did not end normally."""
        a = self.assembler
        finish = a.finish_reason
        if self.interrupted:
            finish = INTERRUPTED
        elif self.error is not None or (finish is None and not self.done):
            finish = CUT
        warnings = list(dict.fromkeys(self.warnings))
        result = a.build(
            request=self.payload,
            finish_reason=finish,
            elapsed=time.monotonic() - self.started,
            inference_id=self.inference_id,
            warnings=warnings,
        )
        note_empty(result)
        return mask_answer(result)


def _stream_failure(exc: BaseException) -> str:
    if _is_read_timeout(exc) or "timed out" in str(exc).lower():
        return "no data within the read timeout"
    words, _ = failure_words(exc)
    return words if words != "the connection broke" else "the connection closed"


__all__ = [
    "AIMLClient",
    "ChatStream",
    "DEFAULT_BASE_URL",
    "InsecureTransportWarning",
    "StreamInterrupted",
    "env_value",
    "is_chat_model",
    "is_loopback",
    "mask_answer",
    "normalize_base_url",
    "url_host",
]
