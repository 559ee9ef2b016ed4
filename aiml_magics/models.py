"""Chat model ids for pickers: the service's list when it answers, a built-in list when it does not.

Pure (no I/O, no IPython): the panel feeds it what ``AIMLClient.list_models()`` returned, so a
notebook offline or behind a proxy still offers sensible choices instead of an empty box.
"""

from __future__ import annotations

from typing import Any

#: Common chat models of the service (AIMLAPI.md, 2026-08), offered when ``GET /models`` fails
#: and in replay mode (which sends nothing). The default model comes second: it is what the shipped
#: cassette answers with, though the service has moved it to its deprecated list.
#: Not authoritative: the service adds and retires models often, and any typed id is accepted.
FALLBACK_MODELS: tuple[str, ...] = (
    "baidu/ernie-5.0",
    "baidu/ernie-5-0-thinking-preview",
    "gpt-4o",
    "gpt-4o-mini",
    "openai/gpt-5-mini-2025-08-07",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-r1",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "mistralai/mistral-nemo",
    "alibaba/qwen3-235b-a22b-thinking-2507",
    "moonshotai/kimi-k2",
)


def builtin_models() -> list[dict[str, Any]]:
    """The built-in list in the shape ``GET /models`` items have (ids only)."""
    return [{"id": ident} for ident in FALLBACK_MODELS]


def model_ids(models: list[dict[str, Any]]) -> list[str]:
    """The ids of a models list, in the service's order, without duplicates."""
    seen: dict[str, None] = {}
    for model in models:
        ident = model.get("id")
        if isinstance(ident, str) and ident.strip():
            seen.setdefault(ident.strip(), None)
    return list(seen)


def alias_map(models: list[dict[str, Any]]) -> dict[str, str]:
    """alias -> id, so a name people know (``gpt-5-mini``) selects the id the service lists.

    An id always wins over another model's alias of the same spelling.
    """
    ids = set(model_ids(models))
    out: dict[str, str] = {}
    for model in models:
        ident = model.get("id")
        aliases = model.get("aliases")
        if not isinstance(ident, str) or not isinstance(aliases, list):
            continue
        for alias in aliases:
            if isinstance(alias, str) and alias.strip() and alias.strip() not in ids:
                out.setdefault(alias.strip(), ident.strip())
    return out


def resolve_model(text: str, aliases: dict[str, str]) -> str:
    """What a typed model name means: an alias becomes its id, anything else stays as typed."""
    text = text.strip()
    return aliases.get(text, text)


def info_of(model: dict[str, Any]) -> dict[str, Any]:
    """A listed model's ``info`` block ({} when absent or not an object)."""
    info = model.get("info")
    return info if isinstance(info, dict) else {}


def describe_model(model: dict[str, Any] | None) -> str:
    """One line about a listed model (name, developer, context), or '' when nothing is known."""
    if not model:
        return ""
    info = info_of(model)
    parts = [str(info[k]) for k in ("name", "developer") if info.get(k)]
    ctx = info.get("contextLength")
    if isinstance(ctx, int) and not isinstance(ctx, bool):
        parts.append(f"{ctx:,} tokens context")
    return " · ".join(parts)
