"""``--dry-run``: the exact request a cell would send, shown (key masked, images described),
nothing sent."""

from __future__ import annotations

import json
from typing import Any

from ..display.safemd import safe_markdown
from ..errors import mask_key
from .commands import display_markdown


def show_dry_run(magics: Any, payload: dict[str, Any], expanded: Any = ()) -> None:
    from ..imageparts import described

    session = magics.session
    base, _ = session.effective_base()
    key, _ = session.effective_key()
    from ..endpoints import wire_body

    endpoint, sent = wire_body(payload, base, session.endpoint(payload))
    text = (
        f"POST {base}/{endpoint}\n"
        f"Authorization: Bearer {mask_key(key)}\n"
        "Content-Type: application/json\n\n"
        f"{json.dumps(described(sent), ensure_ascii=False, indent=2)}"
    )
    # The payload quotes earlier answers (untrusted): the fence is made inert like any answer.
    names = ", ".join(f"{{{n}}}" for n in expanded)
    note = f"Expanded from the notebook: {names}." if names else "No names were expanded."
    display_markdown(
        magics,
        "**Dry run: nothing was sent.** " + safe_markdown(note)
        + "\n\n" + safe_markdown(f"```http\n{text}\n```"),
        f"{note}\n\n{text}",
    )
    session.last_request = payload
