"""An answer that quotes the key keeps only the mask: before any view, history or store sees it.

A prompt injection asking for the key, or a service echoing it, puts it in ``.text``,
``.reasoning``, ``.model``, a tool call's arguments or anywhere in ``.raw``; every one of them is
masked here, for streamed, non-streamed and replayed answers alike.
"""

from __future__ import annotations

from ..errors import SECRETS
from ..response import ChatResponse
from ..secrets import any_piece_in, redact_obj, strings_of

MASKED = "the answer quoted the API key (or a form of it): masked as ****"


def mask_answer(resp: ChatResponse) -> ChatResponse:
    """An answer that quotes a key (a prompt injection asking for it, a service echoing it) keeps
    only the mask, in ``.text``, ``.reasoning`` and ``.raw``, so no later view, history, cassette or
    next request carries it."""
    if not len(SECRETS):
        return resp
    every = [resp.text, resp.reasoning or "", resp.model or "",
             *(c.arguments_text or "" for c in resp.tool_calls)]
    if not any_piece_in(SECRETS, strings_of(resp.raw, every)):
        return resp  # one scan finds no piece of a key in any of them (redact_obj says why)
    before = (resp.text, resp.reasoning, resp.model, [c.arguments_text for c in resp.tool_calls])
    resp.text = SECRETS.redact(resp.text)
    resp.reasoning = SECRETS.redact(resp.reasoning) if resp.reasoning else resp.reasoning
    resp.model = SECRETS.redact(resp.model) if resp.model else resp.model
    resp.raw = redact_obj(resp.raw, SECRETS)
    for call in resp.tool_calls:
        call.arguments_text = SECRETS.redact(call.arguments_text)
    after = (resp.text, resp.reasoning, resp.model, [c.arguments_text for c in resp.tool_calls])
    if after != before and MASKED not in resp.warnings:
        resp.warnings.append(MASKED)
    return resp
