"""One exception type for everything a user can cause, rendered as one short paragraph.

IPython calls ``_render_traceback_`` when present, so a failed request shows the service's
message and what to do instead of a 40-line traceback, and the cell still fails (Run All stops).
Every message passes through :func:`redact` so a key can never leak through an error.
One class per thing a caller handles differently (``http/status.py`` picks the HTTP ones)::

    AIMLError
    ├── ParameterError (also ValueError)   refused before anything was sent
    ├── ConfigError                        the setup: base URL, settings
    │   ├── BadKeyError                    a key that cannot be a key (spaces, control characters)
    │   └── MissingKeyError                no key anywhere
    ├── APIStatusError (.status)           the service answered with an error
    │   ├── BadRequestError      400/422   ├── AuthenticationError  401
    │   ├── CreditsError         403       ├── NotFoundError        404
    │   ├── RateLimitError       429       └── ServerError          5xx
    ├── ConnectError                       never reached the service
    ├── ResponseTimeout                    reached it, no answer in time
    ├── ProtocolError                      answered in a way that cannot be read
    ├── IncompleteAnswer (.response)       the answer stopped early; what arrived is kept
    └── LimitError                         a bound of ours was reached
        └── ToolRoundsExceeded
    StreamInterrupted (a KeyboardInterrupt): Ctrl-C, with what arrived kept
"""

from __future__ import annotations

import re
from typing import Any

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


class NoImageYet(ParameterError):
    """``--image`` with no value, and the notebook has shown no image yet."""
