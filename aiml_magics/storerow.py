"""One exchange as the store keeps it: its row (redacted), its request's identity for the
cache, and the answer a stored row gives back. Plain data; ``remember.py`` reads and writes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import redact
from .store import JSONText

if TYPE_CHECKING:
    from .response import ChatResponse

CACHE_SOURCE = "cache"
# Not what was asked: how it travels, how long to wait, how it is labelled.
NOT_ASKED = ("timeout", "request_timeout", "request_id", "stream", "stream_options")


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
    from .imageparts import last_user, text_of

    user = last_user(payload.get("messages"))
    if user is None:
        return ""
    content = user.get("content")
    return content if isinstance(content, str) else text_of(content) if isinstance(
        content, list) else ""


def row_of(
    payload: dict[str, Any], resp: ChatResponse, *, endpoint: str, started: float,
    prompt: str | None = None, secret: str | None = None, keep_images: bool = False,
    cached_from: int | None = None, key: str | None = None,
) -> dict[str, Any]:
    """One exchange as the store keeps it, redacted (``secret`` too, for a worker process that
    never registered the key)."""
    from .cassette import response_fields
    from .imageparts import hashed, request_images

    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text, secret)

    def clean_json(value: Any) -> JSONText:
        # Dumped once, redacted as text, written as it is (no second dump in the store).
        text = json.dumps(value, ensure_ascii=False, default=str)
        cleaned = redact(text, secret)
        if cleaned != text:
            try:
                json.loads(cleaned)
            except ValueError:
                cleaned = json.dumps(cleaned, ensure_ascii=False)
        return JSONText(cleaned)

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
        "tool_calls": clean_json([c.as_dict() for c in resp.tool_calls]) if resp.tool_calls else None,
        "error": clean(str(error)) if error is not None else None,
        "origin": origin(),
        "endpoint": endpoint,
        "request_key": key or request_hash(payload, endpoint),
        "request": clean_json(payload if keep_images else hashed(payload)),
        # The text and reasoning are the answer and reasoning columns: not kept twice.
        "response": clean_json({k: v for k, v in response_fields(resp).items()
                                if k not in ("text", "reasoning")}),
        "cacheable": cacheable,
        "cached_from": cached_from,
    }


def _describe(url: str) -> str:
    from .imageparts import describe_url

    return describe_url(url)


def cached_response(row: dict[str, Any], payload: dict[str, Any]) -> ChatResponse:
    """A stored answer as a fresh response: same text, no request, no credits."""
    from .cassette import Recording

    resp = Recording({}, stored_response(row)).to_response(payload)
    resp.source = CACHE_SOURCE
    first = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(row.get("started") or 0)))
    resp.provenance = f"from the cache, first answered {first}"
    resp.credits_used, resp.usd_spent = 0.0, 0.0
    for call in resp.tool_calls:  # the model's request, cached: the tools run again here
        call.replayed, call.result, call.error = False, None, None
    resp._cached_from = row.get("id")  # type: ignore[attr-defined]
    return resp


def stored_response(row: dict[str, Any]) -> dict[str, Any]:
    """A row's answer as a cassette's response fields (the text from the answer column)."""
    stored = row.get("response")
    fields: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    fields.setdefault("text", row.get("answer") or "")
    fields.setdefault("reasoning", row.get("reasoning"))
    fields.setdefault("finish_reason", row.get("finish_reason"))
    return fields
