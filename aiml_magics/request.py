"""``Request``: everything one question needs, checked and frozen before anything is sent.

``Session.prepare`` builds it; ``Session.send`` takes it whole. The magic, ``chat()``,
``compare()`` and ``map()`` all go through that pair, so what a request carries beside its body
(the prompt to remember, the schema to validate against, the tools to run) travels inside it
instead of beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    """One checked request. ``payload`` is the JSON body exactly as it will be sent (the key is
    never in it); the other fields say how the answer is handled here."""

    payload: dict[str, Any]
    prompt: str
    remember: bool = True  # the exchange joins the conversation
    new: bool = False  # forget the conversation when (and only when) this is sent
    schema: Any = None  # a JSON-schema dict or pydantic class the answer must match
    tools: tuple[Callable[..., Any], ...] = ()
    confirm: bool | Callable[[Any], bool] | None = None  # ask before each tool call
    cache: bool | None = None  # answer from the store if it knows it (None: the setting)
    refresh: bool = False  # ask again even if the store knows the answer (and store the new one)
    notes: tuple[str, ...] = ()  # facts about what was sent ("{reviews}: 20 of 200 rows ... sent"),
    # shown beside the answer while it arrives and in its footer

    @property
    def model(self) -> str:
        return str(self.payload.get("model"))

    @property
    def stream(self) -> bool:
        return bool(self.payload.get("stream"))
