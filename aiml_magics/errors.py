"""One exception type for everything a user can cause, rendered as one short paragraph.

IPython calls ``_render_traceback_`` when present, so a failed request shows the service's
message and what to do instead of a 40-line traceback, and the cell still fails (Run All stops).
Every message passes through :func:`redact` so a key can never leak through an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .secrets import SecretRegistry, mask_key

__all__ = ["SECRETS", "mask_key", "redact", "register_secret"]

# The keys every message and view scrubs; registered by whoever holds one. Its repr is masked.
SECRETS = SecretRegistry()


def register_secret(secret: str | None) -> None:
    """Remember a secret so every later message and render scrubs it."""
    SECRETS.add(secret)


def redact(text: str, *secrets: str | None) -> str:
    """Mask every piece (8+ characters, any case, whitespace ignored) of a known secret."""
    return SECRETS.redact(text, secrets)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible_controls(text: str) -> str:
    """Control characters (ESC, CSI, BEL, ...) shown as ``\\x1b`` and the like, so text from the
    service can never drive a terminal (clipboard writes, titles, clears, hidden text)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


def check_key_text(key: str) -> None:
    """A key is printable ASCII without spaces: anything else breaks the Authorization header
    (and the header error would quote it). The refusal names the position, never the key."""
    bad = next((i for i, c in enumerate(key) if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise BadKeyError(
            f"The API key has an unexpected character at position {bad + 1} (a space, line break "
            "or non-ASCII character, often from copy-paste).",
            hint="Enter it again.",
        )


class AIMLError(Exception):
    """An error the user can act on: ``kind`` says what failed, ``status`` the HTTP status if any.

    The text is the facts, then a ``hint`` (what to do, in plain-Python terms); the notebook layer
    swaps the hint for one that names its commands (:meth:`advise`).
    """

    kind_name = "error"  # each subclass names what failed; ``kind=`` can say more precisely

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        service_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.facts = visible_controls(redact(message))  # it may quote the service, reach a terminal
        self.hint = redact(hint) if hint else ""
        super().__init__(self.message)
        self.kind = kind or self.kind_name
        self.status = status
        self.service_message = redact(service_message) if service_message else None

    @property
    def message(self) -> str:
        return f"{self.facts.rstrip()} {self.hint}" if self.hint else self.facts

    def __str__(self) -> str:
        return self.message

    def advise(self, hint: str) -> AIMLError:
        """Replace the hint (the notebook layer names its commands here); returns self to raise."""
        if hint:
            self.hint = redact(hint).strip()
            self.args = (self.message,)
        return self

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mAIMLError\x1b[0m: {self.message}"]


def import_pandas() -> Any:
    """pandas for ``to_dataframe()``: an optional dependency, so its absence is one paragraph."""
    try:
        import pandas
    except ImportError:
        raise AIMLError(
            "to_dataframe() needs pandas, which is not installed: `pip install pandas`.",
            kind="dependency",
        ) from None
    return pandas


class ParameterError(AIMLError, ValueError):
    """A parameter outside what the service accepts; raised before any request is sent."""

    kind_name = "parameter"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ConfigError(AIMLError):
    """A setting that cannot work (base URL, key text, plain http); nothing was sent."""

    kind_name = "config"


class BadKeyError(ConfigError):
    """The key cannot be sent as typed (a space, a line break, a non-ASCII character)."""


class MissingKeyError(ConfigError):
    """No API key is set; nothing was sent."""

    kind_name = "no_key"


class APIStatusError(AIMLError):
    """The service answered with an HTTP error status (``.status``)."""

    kind_name = "http"
    default_status = 0
    successor: str | None = None  # the current model id, when the requested one was retired

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        service_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message, status=status or self.default_status, service_message=service_message, hint=hint
        )


class BadRequestError(APIStatusError):
    """400/422 (and other 4xx): the request was refused as invalid; sending it again won't help."""

    default_status = 400


class AuthenticationError(APIStatusError):
    """401: the key was refused."""

    default_status = 401


class CreditsError(APIStatusError):
    """403: out of credits, or the key may not use this model."""

    default_status = 403


class NotFoundError(APIStatusError):
    """404: wrong base URL or path, or an unknown model on some servers."""

    default_status = 404


class RateLimitError(APIStatusError):
    """429: too many requests, still after the retries."""

    default_status = 429


class ServerError(APIStatusError):
    """5xx: the service or the model failed, still after the retries."""

    default_status = 500


class ConnectError(AIMLError):
    """The connection failed: before the request was sent (nothing billed), or before an answer
    came; the message says which."""

    kind_name = "connection"


class ResponseTimeout(AIMLError):
    """The request was sent but no answer came within the read timeout (it may be billed)."""

    kind_name = "timeout"


class ProtocolError(AIMLError):
    """Something answered, but not with a chat completion (a wrong base URL, a proxy page)."""

    kind_name = "protocol"


class IncompleteAnswer(AIMLError):
    """The answer stopped early (cut, error frame, size limit); ``.response`` holds what arrived.

    ``limit`` names the setting that stopped it, when one did (``max_answer_bytes``).
    """

    kind_name = "stream"

    def __init__(
        self,
        message: str,
        response: Any = None,
        hint: str | None = None,
        *,
        limit: str | None = None,
        service_message: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, service_message=service_message)
        self.response = response
        self.limit = limit


class LimitError(AIMLError):
    """Something from the service was larger than a limit allows, so it was not read."""

    kind_name = "limit"


class ToolRoundsExceeded(LimitError):
    """The model still asked for tools after ``max_tool_rounds`` rounds; ``.response`` holds
    every call made and the last answer (kept in the history too)."""

    def __init__(self, message: str, response: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.response = response


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: CreditsError,
    404: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The error class a caller catches for ``status``."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else BadRequestError


class StreamInterrupted(KeyboardInterrupt):
    """Ctrl-C during an answer: still an interrupt (Run All stops) but a one-line message."""

    def __init__(self, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mKeyboardInterrupt\x1b[0m: {self.message}"]


_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_SPACE = re.compile(r"\s+")


def _message_of(data: Any) -> str | None:
    """``message``, else ``error.message`` (or a string ``error``), of a parsed error body."""
    if not isinstance(data, dict):
        return None
    msg = data.get("message")
    err = data.get("error")
    if msg is None and isinstance(err, dict):
        msg = err.get("message")
    elif msg is None and isinstance(err, str):
        msg = err
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg[:20])
    return _clip(str(msg)) if msg not in (None, "") and not isinstance(msg, dict) else None


def error_words(error: Any) -> str:
    """The words of an error the service sent inside a stream (an object or a string)."""
    if isinstance(error, str):
        return _clip(service_message(error)) if error.strip() else "no message given"
    words = _message_of(error) or _message_of({"error": error})
    if words:
        return words
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        if isinstance(code, (str, int)) and not isinstance(code, bool):
            return _clip(f"error {code}")
    return "no message given"


def service_message(body: bytes | str, content_type: str = "") -> str:
    """The service's own words: ``message``, else ``error.message``, else a short text excerpt.

    The whole body is redacted first: a key cut in half by the excerpt would escape the mask.
    """
    from .safejson import loads

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact(text)
    try:
        data = loads(text, max_bytes=1 << 20)
    except ValueError:
        data = None
    msg = _message_of(data)
    if msg:
        return msg
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        import html  # (html.entities costs a millisecond: not at %load_ext)

        title = _TITLE.search(text)
        page = _clip(html.unescape(title.group(1) if title else _TAG.sub(" ", text)), 120)
        return f"an HTML error page (“{page}”), likely from a proxy in front of the service"
    text = _SPACE.sub(" ", text).strip()
    return _clip(text) if text else "(empty response body)"


def _clip(text: str, limit: int = 400) -> str:
    text = visible_controls(redact(_SPACE.sub(" ", text).strip()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# What a status means (facts, said in every setting); then what to do in plain Python, which the
# notebook layer replaces with its own commands.
_MEANING = {
    400: "The request was refused as invalid.",  # what to check: _invalid(), from the words
    401: "The API key was refused.",
    403: "The account behind this key is out of credits (or may not use this model): top up the "
    "balance in the AI/ML API dashboard, or pick another model.",
    404: "Nothing answers at {url}: check the base URL and the model id.",
    413: "The request is too large: shorten the prompt or start a new conversation.",
    429: "Too many requests{retried}: wait a little before the next request, or lower the rate.",
    500: "The service or the model failed{retried}: try again shortly, or pick another model.",
}
_HINTS = {401: "Use a valid key (the AIML_API_KEY environment variable, or api_key= for a Session)."}


#: Models the service retired, with the one that replaces each and when it was retired.
RETIRED_MODELS = {"baidu/ernie-5-0-thinking-preview": ("baidu/ernie-5.0", "2026-06")}
_REFUSED_WORDS = ("unknown", "not found", "deprecated", "retired", "invalid", "does not exist",
                  "no longer", "not supported", "unsupported", "unavailable", "not available")


def service_name(url: str) -> str:
    """Who answered, for messages: the AI/ML API, or the host (and port) of another server
    (a local LiteLLM is not "the AI/ML API"). Never the user:password part of a URL."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "The service"
    if not host or host == "aimlapi.com" or host.endswith(".aimlapi.com"):
        return "The AI/ML API"
    shown = f"[{host}]" if ":" in host else host
    return f"The service at {shown}:{port}" if port else f"The service at {shown}"


def _invalid(message: str, model: str | None, sent: Sequence[str]) -> str:
    """What to check after a 400: what the service's words name (the model id, a field that was
    sent), or, when they name nothing, that they do not, and what could be wrong."""
    low = message.lower()
    named = [f"`{k}`" for k in sent if k not in ("model", "messages", "stream") and (
        k.lower() in low or k.lower().replace("_", " ") in low)]
    if model and model.lower() in low:
        named.insert(0, f"the model id `{model}`")
    if named:
        return f"The request was refused as invalid: check {' and '.join(named[:3])}, named above."
    which = f"the model id (`{model}`)" if model else "the model id"
    return (f"The request was refused as invalid, and the answer does not say which part: check "
            f"{which} and the parameters that were sent.")


def _retired(status: int, message: str, model: str | None) -> tuple[str, str] | None:
    """(successor, when) if a retired model was refused as unknown or retired, else None."""
    if status not in (400, 404) or model not in RETIRED_MODELS:
        return None
    low = message.lower()
    if model.lower() not in low and not ("model" in low and any(w in low for w in _REFUSED_WORDS)):
        return None
    return RETIRED_MODELS[model]


def http_error(
    status: int,
    body: bytes | str,
    *,
    content_type: str = "",
    url: str = "",
    model: str | None = None,
    sent: Sequence[str] = (),
    retries: int = 0,
    waited: float | None = None,
    retry_after: float | None = None,
    wait_budget: float | None = None,
) -> AIMLError:
    """Turn a failed response into one readable paragraph: status, the service's words, a fix.

    ``sent`` names the request's fields (so a 400 can point at the one the service named);
    ``retries`` and ``waited`` say how hard we tried; ``retry_after`` is set when the service asked
    for a longer wait than ``wait_budget`` allows, so no (further) retry was made.
    """
    msg = service_message(body, content_type)
    try:
        from http import HTTPStatus

        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "HTTP error"
    notes = []
    if retries:
        over = f" over {waited:.1f} s" if waited is not None else ""
        notes.append(f"after {retries} retr{'y' if retries == 1 else 'ies'}{over}")
    if retry_after is not None:
        budget = f", more than the {wait_budget:g} s a cell waits in all" if wait_budget else ""
        notes.append(f"it asked to wait {retry_after:.0f} s before retrying{budget}")
    retried = f" ({'; '.join(notes)})" if notes else ""
    meaning = _MEANING.get(status) or _MEANING[500 if status >= 500 else 400]
    text = f"{service_name(url)} answered {status} {reason}: {msg.rstrip('.')}."
    hint = _HINTS.get(status)
    retired = _retired(status, msg, model)
    if retired is not None:
        new, when = retired
        text += (f" `{model}` was retired: the service moved it to its deprecated list in "
                 f"{when}.")
        hint = f"The current ERNIE 5 model is `{new}`: use model={new!r}."
    elif status == 400 or meaning is _MEANING[400]:
        text += " " + _invalid(msg, model, sent)
    else:
        text += " " + meaning.format(url=url, retried=retried)
    error = status_error_class(status)(text, status=status, service_message=msg, hint=hint)
    error.successor = retired[0] if retired else None
    return error
