"""``%aiml snippet``: a request as plain Python with ``requests``, runnable as printed.

Why: people want to see (and reuse) the one HTTP request under a cell. The code finds the key the
way the package does and never contains it. No IPython here.
"""

from __future__ import annotations

import json
from typing import Any

from ..endpoints import CHAT, RESPONSES, wire_body

_CHAT_TEXT = 'print(resp.json()["choices"][0]["message"]["content"])'
# The answer text of a Responses body: its message items' output_text parts.
_RESPONSES_TEXT = (
    'print("".join(part["text"] for item in resp.json()["output"] if item["type"] == "message"\n'
    '              for part in item["content"] if part["type"] == "output_text"))'
)


def request_snippet(payload: dict[str, Any], base: str, full: bool = False,
                    endpoint: str = CHAT) -> str:
    """Plain-Python equivalent of a request, runnable as printed; the key from the environment.

    By default only the new message (and the system prompt) is sent, so the code stays short
    enough to read; ``full`` sends the conversation as the magic did.
    """
    body = {k: v for k, v in payload.items() if k != "stream"}
    messages = list(payload.get("messages") or [])
    note = ""
    if not full and len(messages) > 1:
        kept = [m for m in messages[:-1] if m.get("role") == "system"] + messages[-1:]
        left = len(messages) - len(kept)
        if left:
            note = (
                f"# {left} earlier message{'s' if left != 1 else ''} of the conversation left out; "
                "`%aiml snippet --full` includes them.\n"
            )
        body["messages"] = kept
    from ..imageparts import described, request_images

    if any(u.startswith("data:") for m in body["messages"] for u in request_images({"messages": [m]})):
        note += ("# Local images are shown as [image ...] descriptions: put data: URLs (or http(s) "
                 "URLs) in their place to run this.\n")
    body["messages"] = described(body["messages"])
    endpoint, body = wire_body(body, base, endpoint)
    url = f"{base}/{endpoint}"
    show = _RESPONSES_TEXT if endpoint == RESPONSES else _CHAT_TEXT

    return (
        "import os\n\nimport requests\n\n"
        "# The key, found as aiml_magics finds it: AIML_API_KEY, then AIMLAPI_API_KEY.\n"
        'key = os.environ.get("AIML_API_KEY") or os.environ.get("AIMLAPI_API_KEY")\n'
        "if not key:\n"
        '    raise SystemExit("Set AIML_API_KEY (or AIMLAPI_API_KEY) in the environment first.")\n'
        f"{note}"
        f"resp = requests.post(\n    {json.dumps(url)},\n"
        '    headers={"Authorization": f"Bearer {key}"},\n'
        f"    json={_literal(body, 4)},\n"
        "    timeout=120,\n)\nresp.raise_for_status()\n"
        f"{show}"
    )


def _literal(value: Any, indent: int) -> str:
    """``value`` as Python source laid out like JSON (JSON strings are valid Python literals;
    true/false/null are not, so they are written as Python's)."""
    pad = " " * (indent + 4)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_literal(v, indent + 4)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f",\n{' ' * indent}}}"
    if isinstance(value, (list, tuple)) and value:
        items = [f"{pad}{_literal(v, indent + 4)}" for v in value]
        return "[\n" + ",\n".join(items) + f",\n{' ' * indent}]"
    if value is None or isinstance(value, bool):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
