"""How an answer reads: the final Markdown (reasoning folded, answer, footer) and plain text.

Pure string work shared by the live renderer, ``ChatResponse``'s rich repr and the terminal.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import redact, visible_controls
from .safemd import literal, safe_markdown

if TYPE_CHECKING:
    from ..response import ChatResponse

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def closes_fence(line: str, marker: str) -> bool:
    """True when ``line`` closes a code block opened with ``marker`` (same character, at least
    as long, nothing after it)."""
    m = FENCE_LINE.match(line)
    if not m:
        return False
    fence = m.group(1)
    return fence[0] == marker[0] and len(fence) >= len(marker) and not line.strip()[len(fence) :].strip()


def open_fence(text: str) -> str | None:
    """The fence marker left open at the end of ``text`` (None if every fence is closed)."""
    marker: str | None = None
    for line in text.split("\n"):
        if marker is not None:
            if closes_fence(line, marker):
                marker = None
            continue
        m = FENCE_LINE.match(line)
        if m:
            marker = m.group(1)
    return marker


def close_fences(text: str) -> str:
    """Close a code fence a cut-off answer left open, so it cannot swallow what follows."""
    marker = open_fence(text)
    return f"{text}\n{marker}" if marker else text


#: The largest heading an answer shows: its "#" and "##" become "###", "###" becomes "####" (the
#: notebook's own sections are "#" and "##"; five levels down would be body-sized in JupyterLab).
TOP_HEADING = 3


def shown(text: str, allow_remote_images: bool = False) -> str:
    """Untrusted text as we publish it: every piece of a key masked, no active content, control
    characters (terminal escapes) shown as ``\\x1b`` rather than passed on, headings one level
    down and none above ``TOP_HEADING`` (an answer's "# Title" must not look like the notebook's)."""
    return safe_markdown(visible_controls(redact(text)), allow_remote_images=allow_remote_images,
                         top_heading=TOP_HEADING)


def shown_plain(text: str) -> str:
    """Untrusted text for a terminal: the key masked, control sequences made visible."""
    return visible_controls(redact(text))


def _count(n: int | float | None) -> str:
    if n is None:
        return "?"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def footer(resp: ChatResponse) -> str:
    """One line: model, tokens, credits, seconds, and anything unusual about the answer."""
    parts = [resp.model or resp.requested_model or "unknown model"]
    u = resp.usage
    if u.prompt_tokens is not None or u.completion_tokens is not None:
        tokens = f"{_count(u.prompt_tokens)} prompt + {_count(u.completion_tokens)} completion"
        if u.reasoning_tokens:
            tokens += f" ({_count(u.reasoning_tokens)} reasoning)"
        parts.append(tokens + " tokens")
    if resp.credits_used is not None:
        parts.append(f"{_count(resp.credits_used)} credits")
    parts.append(f"{resp.elapsed:.1f} s")
    from ..imageparts import request_images, summary

    images = summary(request_images(resp.request))
    if images:
        parts.append(images)
    earlier = earlier_words(resp.request)
    if earlier:
        parts.append(earlier)
    if resp.source != "live":  # a cached answer says when it was first answered
        parts.append(resp.provenance if resp.source == "cache" and resp.provenance else resp.source)
    if resp.tool_calls:
        n = len(resp.tool_calls)
        calls = f"{n} tool call{'s' if n != 1 else ''}"
        failed = sum(1 for c in resp.tool_calls if c.failed or c.declined)
        if failed:
            calls += f" ({failed} failed or declined)"
        if any(c.replayed for c in resp.tool_calls):
            calls += ": recorded results, nothing re-run"
        parts.append(calls)
    if not resp.complete:
        reason = resp.finish_reason or "incomplete"
        parts.append(f"⚠ {reason}: partial answer")
    elif resp.finish_reason == "length":
        parts.append("⚠ stopped at the token limit")
    parts.extend(f"⚠ {w}" for w in resp.warnings)
    return " · ".join(parts)


def earlier_words(request: dict[str, Any] | None) -> str:
    """"+8 earlier messages, 1,689 characters": what of the conversation went along with this
    cell (each cell sends it again, tables included), or "" when nothing did. The system prompt
    and this turn's own messages (its question, its tool rounds) are not counted."""
    from ..imageparts import text_of

    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return ""
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    before = [m for m in messages[: users[-1]] if isinstance(m, dict) and m.get("role") != "system"]
    if not before:
        return ""
    chars = sum(len(text_of(m.get("content"))) for m in before)
    n = len(before)
    return f"+{n:,} earlier message{'s' if n != 1 else ''}, {chars:,} character{'s' if chars != 1 else ''}"


def reasoning_block(reasoning: str, allow_remote_images: bool = False) -> str:
    """Reasoning folded away under a summary, never mixed into the answer. The markup is ours;
    the reasoning inside it is untrusted text made inert.

    Opened, it reads as a quotation (indented, muted, a bar at its side in every Markdown
    renderer) and a rule separates it from the answer below.
    """
    label = f"Reasoning · {len(reasoning):,} chars"
    quoted = _quote(shown(close_fences(reasoning), allow_remote_images))
    return f"<details>\n<summary>{label}</summary>\n\n{quoted}\n\n---\n\n</details>\n\n"


def _quote(text: str) -> str:
    """Markdown block quote of ``text``: every line behind ``>`` (fences included)."""
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.split("\n"))


def json_block(resp: ChatResponse) -> str | None:
    """A ``--json`` answer as a JSON code block (as Markdown, its escapes would be eaten and the
    JSON shown would be invalid); None for other answers. Still untrusted: shown() follows."""
    fmt = (resp.request or {}).get("response_format")
    if not resp.text or not isinstance(fmt, dict):
        return None
    if fmt.get("type") not in ("json_object", "json_schema"):
        return None
    from ..safejson import parse_json_answer

    data, problem = parse_json_answer(resp.text)
    text = resp.text.strip() if problem else json.dumps(data, ensure_ascii=False, indent=2)
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}json\n{text}\n{fence}"


def tool_block(resp: ChatResponse) -> str:
    """Each tool call as one folded line above the answer: the call and its clipped result in
    the summary, the whole result inside. Results are untrusted (a tool may fetch anything)."""
    from ..tools import call_line

    out = []
    for call in resp.tool_calls:
        line = literal(shown_plain(call_line(call)))
        body = call.content if len(call.content) <= 4000 else call.content[:4000] + "…"
        runs = [len(m) for m in re.findall(r"`+", body)]
        fence = "`" * max(3, max(runs, default=0) + 1)
        out.append(f"<details>\n<summary>{line}</summary>\n\n"
                   f"{shown(f'{fence}text{chr(10)}{body}{chr(10)}{fence}')}\n\n</details>\n")
    return "\n".join(out) + "\n" if out else ""


def final_markdown(resp: ChatResponse) -> str:
    allow = resp.allow_remote_images
    head = reasoning_block(resp.reasoning, allow) if resp.reasoning else ""
    head = tool_block(resp) + head if resp.tool_calls else head
    answer = json_block(resp) or (close_fences(resp.text) if resp.text else None)
    body = shown(answer, allow) if answer is not None else "*(no answer text)*"
    return f"{head}{body}\n\n<sub>{literal(shown_plain(footer(resp)))}</sub>\n"


def final_plain(resp: ChatResponse) -> str:
    head = f"[reasoning: {len(resp.reasoning):,} chars in .reasoning]\n\n" if resp.reasoning else ""
    if resp.tool_calls:
        head = plain_tool_lines(resp.tool_calls) + "\n" + head
    return shown_plain(f"{head}{resp.text}\n\n— {footer(resp)}")


def plain_tool_lines(calls: list[Any]) -> str:
    """One plain line per tool call, for terminals (control characters shown visibly)."""
    from ..tools import call_line

    return "".join(f"⚙ {shown_plain(call_line(c))}\n" for c in calls)


def final_bundle(resp: ChatResponse) -> dict[str, str]:
    """The one complete rendering of an answer, as a display mime bundle."""
    return {"text/markdown": final_markdown(resp), "text/plain": final_plain(resp)}
