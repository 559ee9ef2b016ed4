"""The models list: ``GET {base}/models``, cached on the client, revalidated with ETag, read within
a size limit; only chat models kept (image, audio and embedding models share the list)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SECRETS, ConnectError, ProtocolError
from ..safejson import loads
from ..secrets import redact_obj
from .bounded import ERROR_BODY_BYTES, failure_words, read_capped
from .retry import quiet_retries
from .status import http_error
from .stream import is_read_timeout, parse_problem

if TYPE_CHECKING:
    from .client import AIMLClient

MODELS_BYTES = 16 * 1024 * 1024  # the models list (README "Limits")
CHAT_TYPES = ("openai/chat-completions", "chat-completion", "chat-completions", "chat")


def fetch_models(client: AIMLClient, *, chat_only: bool = True) -> list[dict[str, Any]]:
    """Ask for the service's models (revalidated with ETag when the client has a list) and cache them
    on the client.

    The AI/ML API needs no key here, but LiteLLM, vLLM with ``--api-key`` and OpenAI do: the
    key goes along whenever it is set and may travel (never in clear to another host unless
    allowed; then the list is asked for without it).
    """
    import requests

    url = f"{client.base_url}/models"
    headers = {"If-None-Match": client._models_etag} if client._models_etag else {}
    if client._key and (client.allow_insecure_http or not client.key_in_clear):
        headers["Authorization"] = client._headers()["Authorization"]
        client._check_transport(url, True)  # allowed in clear: the once-per-host warning
    try:
        with quiet_retries():
            resp = client.session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(client.connect_timeout, min(client.timeout, 30)),
            )
    except requests.exceptions.RequestException as exc:
        words = "no answer within the timeout" if is_read_timeout(exc) else failure_words(exc)[0]
        raise ConnectError(f"Could not list models at {url}: {words}.") from None
    if resp.status_code == 304 and client._models is not None:
        read_capped(resp, ERROR_BODY_BYTES)  # an empty body: read, so the connection is reused
        return client._models
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
    raw = client._read_body(resp, MODELS_BYTES, "the models list")
    try:
        body = loads(raw)
    except ValueError as exc:
        raise ProtocolError(
            f"The models list at {url} is not readable JSON ({parse_problem(exc)})."
        ) from None
    items = body.get("data", body.get("models")) if isinstance(body, dict) else body
    if items is not None and not isinstance(items, list):
        raise ProtocolError(f"The models list at {url} is not a list of models.")
    items = [m for m in items or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    # Ids and names are shown in `%aiml models`, the panel, comparison headers: a proxy that
    # echoes the key in them keeps only the mask.
    items = [redact_obj(m, SECRETS) for m in items]
    if chat_only:
        items = [m for m in items if is_chat_model(m)]
    client._models = items
    client._models_etag = resp.headers.get("ETag")
    return items


def is_chat_model(model: dict[str, Any]) -> bool:
    """Chat models by their ``type``. Other OpenAI-compatible servers (LiteLLM, vLLM, OpenAI)
    list ``{"id", "object", "owned_by"}`` only: with no type to go by, every item is kept."""
    if "type" not in model:
        return True
    kind = str(model.get("type", "")).lower()
    return kind in CHAT_TYPES or kind.endswith("chat-completions")
