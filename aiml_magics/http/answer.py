"""One reading of an answer, whatever carried it: a body, a status and headers become a
``ChatResponse`` or one typed error, in the same words for the thread engine (``AIMLClient`` on
requests) and the asyncio engine of ``map()`` (``aioengine.py``). Plain functions; no transport
library is imported here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import (
    AIMLError,
    ConnectError,
    IncompleteAnswer,
    LimitError,
    ProtocolError,
    ResponseTimeout,
    ServerError,
)
from ..response import ChatResponse, whole_credits
from ..safejson import describe_size, loads
from .maskanswer import mask_answer
from .retry import parse_retry_after
from .status import error_words, http_error
from .stream import not_an_answer_excerpt, note_empty

# Plain-Python hints; the notebook layer says the same in its terms (advice.py).
AGAIN = "Ask again for an answer."


def answer_of(raw: bytes, status: int, headers: Mapping[str, str], payload: dict[str, Any],
              elapsed: float) -> ChatResponse:
    """A non-streamed answer from its whole body: credits and usage from the body (else the
    ``x-aimlapi-*`` headers); a body that is not an answer, or a 200 carrying an error, raises."""
    problem: ValueError | None = None
    try:
        body = loads(raw)
    except ValueError as exc:
        body, problem = None, exc
    if not isinstance(body, dict):
        excerpt = not_an_answer_excerpt(raw, headers.get("Content-Type", ""), problem)
        raise ProtocolError(
            f"The service answered {status} but not with an answer: {excerpt}.",
            hint="Check the base URL; if it is right, try again.",
        )
    if body.get("error") and not body.get("choices"):  # a 200 that carries an error
        words = error_words(body["error"])
        raise ServerError(
            f"The service answered {status} with an error instead of an answer: "
            f"{words.rstrip('.')}. Try again, or pick another model.",
            status=status,
            service_message=words,
        )
    result = ChatResponse.from_body(body, request=payload, elapsed=elapsed,
                                    inference_id=headers.get("x-inference-id"))
    if result.credits_used is None and headers.get("x-aimlapi-credits-used"):
        result.credits_used = whole_credits(number(headers["x-aimlapi-credits-used"]))
        result.usd_spent = number(headers.get("x-aimlapi-usd-spent"))
    note_empty(result)
    return mask_answer(result)


def failed_status(status: int, body: bytes, headers: Mapping[str, str], *, url: str,
                  payload: dict[str, Any], retries: int, waited: float, max_retries: int,
                  max_wait: float) -> AIMLError:
    """The typed error of a status >= 400; ``retry_after`` is what the service asked for (read
    by ``map()``'s shared backoff)."""
    asked = parse_retry_after(headers.get("Retry-After"))
    error = http_error(
        status,
        body,
        content_type=headers.get("Content-Type", ""),
        url=url,
        model=payload.get("model"),
        sent=tuple(payload),
        retries=retries,
        waited=waited,
        retry_after=asked if retries < max_retries and asked else None,
        wait_budget=max_wait,
    )
    error.retry_after = asked  # type: ignore[attr-defined]
    return error


def network_error(base_url: str, words: str, phase: str) -> AIMLError:
    """What happened, in words: not connected, answered unreadably, or sent and then broken
    (``phase`` as ``bounded.failure_words`` gives it)."""
    if phase == "connect":
        return ConnectError(f"Could not connect to {base_url}: {words}.",
                            hint="Check the network and the base URL.")
    if phase == "answered":
        return ProtocolError(
            f"{base_url} answered, but the answer could not be read: {words}. The request "
            "was sent and may have been billed, so it was not resent.",
            hint=AGAIN,
        )
    if phase == "sent":
        return ConnectError(
            f"The request reached {base_url}, but {words} before an answer came. It may "
            "have been billed, so it was not resent.",
            hint=AGAIN,
        )
    return ConnectError(
        f"The request to {base_url} failed: {words}; it may or may not have reached the service.",
        hint=AGAIN,
    )


def connect_timeout(base_url: str, seconds: float) -> AIMLError:
    return ConnectError(f"Could not connect to {base_url} within {seconds:g} s.",
                        hint="Check the network and the base URL.")


def read_timeout(base_url: str, seconds: float) -> AIMLError:
    return ResponseTimeout(
        f"{base_url} did not answer within {seconds:g} s: the model may be overloaded.",
        hint="Try again, pick another model, or raise the timeout setting.",
    )


def not_sent(base_url: str, exc: BaseException) -> AIMLError:
    """A request that could not even be sent (a malformed URL or header)."""
    return ConnectError(f"The request to {base_url} could not be sent: {reason(exc)}.")


def cut(base_url: str, what: str, words: str) -> AIMLError:
    return IncompleteAnswer(
        f"{what.capitalize()} from {base_url} was cut: {words}. The request was sent "
        "and may have been billed.",
        hint=AGAIN,
    )


def too_large(base_url: str, what: str, limit: int, hint: str = "") -> AIMLError:
    return LimitError(
        f"{what.capitalize()} from {base_url} is larger than {describe_size(limit)}, "
        f"so it was not read{hint}.",
        hint="Raise max_answer_bytes for longer answers." if "max_answer_bytes" in hint else None,
    )


_REQUEST_ID_BAD = re.compile(r"[^A-Za-z0-9._:-]")


def clean_request_id(text: str | None) -> str | None:
    """An ``X-Client-Request-Id`` the service keeps: 1-128 characters of ``[A-Za-z0-9._:-]``
    (it silently drops any other value). Other characters become ``-``; None when empty."""
    if not text:
        return None
    return _REQUEST_ID_BAD.sub("-", str(text))[:128]


def request_id_header(request_id: str | None) -> str:
    """The ``X-Client-Request-Id`` sent: the caller's id as the service keeps it, else a new one."""
    return clean_request_id(request_id) or f"aiml-magics-{uuid.uuid4().hex}"


def number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def reason(exc: BaseException) -> str:
    """The innermost useful words of a transport error, without the URL noise."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "Remote end closed", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text[:200]


__all__ = ["AGAIN", "answer_of", "clean_request_id", "connect_timeout", "cut", "failed_status",
           "network_error", "not_sent", "read_timeout", "too_large"]
