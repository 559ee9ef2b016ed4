"""An HTTP failure as one typed error: the status, the service's own words (``message``, else
``error.message``, else a short excerpt of the page), what it means and what to do.

The body is redacted before anything is clipped from it, so no piece of a key survives the cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import AIMLError, redact, status_error_class, visible_controls

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
    from ..safejson import loads

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


def _gateway_shaped(body: bytes | str) -> bool:
    """The AI/ML API gateway's own error body: ``message``, ``path``, ``requestId``, ``statusCode``."""
    from ..safejson import loads

    try:
        data = loads(body[:65536])
    except ValueError:
        return False
    return isinstance(data, dict) and {"requestId", "statusCode", "path"} <= data.keys()


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
    # Only the AI/ML API's own answer can mean its model was retired: its host, or its gateway's
    # error shape passed on by a proxy. Another server that does not know the model says nothing.
    own = service_name(url) == "The AI/ML API" or _gateway_shaped(body)
    retired = _retired(status, msg, model) if own else None
    if retired is not None:
        new, when = retired
        text += (f" `{model}` was retired: the service moved it to its deprecated list in "
                 f"{when}.")
        hint = f"The current ERNIE 5 model is `{new}`: use model={new!r}."
    elif meaning is _MEANING[400]:
        text += " " + _invalid(msg, model, sent)
    else:
        text += " " + meaning.format(url=url, retried=retried)
    error = status_error_class(status)(text, status=status, service_message=msg, hint=hint)
    error.successor = retired[0] if retired else None
    return error
