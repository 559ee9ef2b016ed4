"""Where a request goes and the exact body that goes there. Pure; no I/O, no transport import.

Two rules live here, so the client, ``--dry-run`` and ``%aiml snippet`` agree on them:

* **Usage on streams.** OpenAI, LiteLLM, vLLM and most OpenAI-style servers send usage in a
  stream only when asked with ``stream_options: {"include_usage": true}``. Every streamed request
  to a base URL other than the AI/ML API's own host (proxies and loopback servers included) asks
  for it. The AI/ML API sends usage unasked, and some of its model schemas (Claude, older Gemini)
  do not list the field, so it never gets it. A non-streamed request never carries it.
* **The endpoint.** Models the AI/ML API serves only on ``POST /responses`` go there (the built-in
  list of the documented ones, the models list when it says so, or a model the service already
  refused on the chat endpoint); the body is mapped by ``responses_api.to_responses``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CHAT = "chat/completions"
RESPONSES = "responses"
#: The AI/ML API's own hosts: they send streamed usage without ``stream_options``.
AIML_HOSTS = frozenset({"api.aimlapi.com"})

#: Models the AI/ML API documents with a Responses schema and no chat-completions one.
RESPONSES_ONLY = frozenset({
    "openai/gpt-5-4", "openai/gpt-5-4-pro", "openai/gpt-5-5-pro", "openai/gpt-5-pro",
    "openai/o3-pro", "openai/gpt-5-1-codex", "openai/gpt-5-1-codex-mini",
    "openai/gpt-5-2-codex", "openai/gpt-5-3-codex",
})


def is_aiml_host(base_url: str) -> bool:
    """The base URL is the AI/ML API itself (not a proxy or another server)."""
    try:
        host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return host in AIML_HOSTS


def catalogue_says_responses(entry: Any) -> bool | None:
    """What a models-list entry says: True (Responses only), False (chat), None (silent)."""
    if not isinstance(entry, dict):
        return None
    kinds = entry.get("endpoints") or entry.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    names = [k for k in kinds if isinstance(k, str)]
    if not names:
        return None
    return any("responses" in k for k in names) and not any("chat" in k for k in names)


def endpoint_for(model: Any, catalogue: list[dict[str, Any]] | None = None,
                 refused: frozenset[str] | set[str] = frozenset()) -> str:
    """``RESPONSES`` for a model served only there, else ``CHAT``."""
    model = str(model)
    if model in RESPONSES_ONLY or model in refused:
        return RESPONSES
    for entry in catalogue or ():
        if isinstance(entry, dict) and model in (entry.get("id"), *(entry.get("aliases") or ())):
            return RESPONSES if catalogue_says_responses(entry) else CHAT
    return CHAT


def refuses_chat(status: int, message: str) -> bool:
    """The service's words for "this model is served on /responses, not on chat completions"."""
    words = (message or "").lower()
    return status in (400, 404) and "responses" in words and any(
        w in words for w in ("endpoint", "not supported", "only"))


def wire_body(payload: dict[str, Any], base_url: str, endpoint: str = CHAT) -> tuple[str, dict[str, Any]]:
    """(path under the base URL, JSON body) exactly as sent for the chat-shaped ``payload``."""
    if endpoint == RESPONSES:
        from .responses_api import to_responses

        return RESPONSES, to_responses(payload)
    body = {k: v for k, v in payload.items() if k != "stream_options"}
    if body.get("stream") and not is_aiml_host(base_url):
        body["stream_options"] = {"include_usage": True}
    return CHAT, body
