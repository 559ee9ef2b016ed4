"""Which listed models can read images, from what the models list says about them. Pure.

The AI/ML API lists capabilities (``capabilities=vision`` in its catalogue; ``features`` such as
``openai/chat-completion.vision`` on its items); other servers list ids alone. Only a list that
says something about capabilities can refuse a model: with no such data, images are sent anyway.
"""

from __future__ import annotations

from typing import Any

from .errors import AIMLError, ParameterError
from .models import alias_map, info_of


class NoVision(ParameterError):
    """Images for a model that the models list says cannot read them (nothing was sent)."""

    def __init__(self, model: str) -> None:
        AIMLError.__init__(
            self,
            f"{model} cannot read images: the models list does not give it the vision "
            "capability, so nothing was sent.",
            kind="parameter",
            hint="Pick a vision model (the list's capabilities=vision), or send the text alone.",
        )


def capabilities(model: dict[str, Any]) -> set[str] | None:
    """What a listed model can do, lower-cased; None when the item says nothing about it."""
    found: set[str] | None = None
    for block in (model.get("capabilities"), info_of(model).get("capabilities"), model.get("features")):
        if isinstance(block, dict):
            found = (found or set()) | {str(k).lower() for k, v in block.items() if v}
        elif isinstance(block, list) and block:
            names = {str(x).lower().rsplit(".", 1)[-1] for x in block if isinstance(x, str)}
            found = (found or set()) | names
    return found


def has_capability_data(models: list[dict[str, Any]]) -> bool:
    return any(capabilities(m) is not None for m in models)


def can_see(model: dict[str, Any]) -> bool:
    caps = capabilities(model)
    return bool(caps) and "vision" in (caps or set())


def lacks_vision(models: list[dict[str, Any]], model_id: str) -> bool:
    """True only when the list knows capabilities and ``model_id`` (or its alias) lacks vision."""
    if not has_capability_data(models):
        return False
    ident = alias_map(models).get(model_id, model_id)
    for model in models:
        if model.get("id") == ident:
            return not can_see(model)
    return False  # not listed: the service decides


def check_vision(session: Any, payload: dict[str, Any]) -> None:
    """Refuse, before sending, images for a model the models list says cannot see them.

    The list is the session's client's (fetched once a session; in replay mode only one already
    fetched, since replay sends nothing). No list, or no capability data in it: send anyway.
    """
    from .imageparts import request_images

    if not request_images(payload):
        return
    models = None
    if session.source.name == "replay":
        models = getattr(session._client, "_models", None)
    else:
        try:
            models = session.client().list_models()
        except AIMLError:
            models = None
    model = str(payload.get("model"))
    if models and lacks_vision(models, model):
        raise NoVision(model)
