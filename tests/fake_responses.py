"""The fake's other faces: an OpenAI-style server's rules, and ``POST /v1/responses``.

``FakeAIMLAPI(flavor="openai")`` behaves like OpenAI, LiteLLM or vLLM where it differs from the
AI/ML API: no credits, streamed usage only when the request asks with ``stream_options:
{"include_usage": true}``, and ``stream_options`` on a non-streamed request is a 400. The AI/ML
API flavor refuses Responses-only models on the chat endpoint, as the service does.

The Responses endpoint takes the same queued ``Reply`` behaviours and answers them in the
Responses shapes (AIMLAPI.md): a whole ``response`` object, or named SSE events ending at
``response.completed`` without ``[DONE]``. Standard library only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

#: Models the fake serves only on /responses (the AI/ML API's documented list, in part).
RESPONSES_ONLY = ("openai/gpt-5-4", "openai/gpt-5-4-pro", "openai/gpt-5-pro", "openai/o3-pro",
                  "openai/gpt-5-1-codex")
#: Models served on both endpoints.
RESPONSES_TOO = ("gpt-4o", "gpt-4o-mini", "openai/gpt-5-mini-2025-08-07")
#: Chat fields the Responses schema does not have: a request carrying one is refused.
NOT_RESPONSES = ("messages", "max_tokens", "max_completion_tokens", "stop", "seed",
                 "frequency_penalty", "presence_penalty", "response_format", "stream_options")


def chat_problem(api: Any, body: dict[str, Any]) -> str | None:
    """A chat request the flavor refuses (beyond the common validation), in the service's words."""
    model = str(body.get("model"))
    options = body.get("stream_options")
    if api.flavor == "openai":
        if options is not None and body.get("stream") is not True:
            return "stream_options: The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return None
    if model in RESPONSES_ONLY + tuple(api.responses_only):
        return (f"model: {model} is only supported on the Responses endpoint (POST /v1/responses), "
                "not on chat completions")
    return None


def usage_wanted(api: Any, body: dict[str, Any]) -> bool:
    """Whether a streamed answer carries usage: always from the AI/ML API, when asked elsewhere."""
    if api.flavor != "openai":
        return True
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def responses_problem(api: Any, body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body: Expected object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Required"
    if model not in RESPONSES_ONLY + RESPONSES_TOO + tuple(api.responses_only):
        return f"model: {model} is not available on the Responses endpoint"
    if "input" not in body:
        return "input: Required"
    for name in NOT_RESPONSES:
        if name in body:
            return f"Unrecognized key(s) in object: '{name}'"
    if not isinstance(body["input"], (str, list)):
        return "input: Expected string or array"
    for i, item in enumerate(body["input"] if isinstance(body["input"], list) else []):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ("message", "function_call", "function_call_output"):
            return f"input.{i}.type: Invalid literal value"
    out = body.get("max_output_tokens")
    if out is not None and (not isinstance(out, int) or isinstance(out, bool) or out < 16):
        return "max_output_tokens: Expected integer >= 16"
    return None


def last_user_text(body: dict[str, Any]) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    users = [i for i in items or [] if isinstance(i, dict) and i.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict)
                    and p.get("type") == "input_text")


def response_object(reply: Any, body: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    """The whole ``response`` object a Reply stands for."""
    content = reply.content
    if reply.echo:
        content = "echo: " + last_user_text(body)
    output: list[dict[str, Any]] = []
    if reply.reasoning:
        output.append({"id": "rs_fake", "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": reply.reasoning}]})
    for i, call in enumerate(reply.tool_calls or []):
        args = call.get("arguments")
        output.append({"id": f"fc_fake{i}", "type": "function_call", "status": "completed",
                       "call_id": call.get("id") or f"call_{i}", "name": call["name"],
                       "arguments": args if isinstance(args, str) else json.dumps(args or {})})
    if content:
        output.append({"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "annotations": [], "text": content}]})
    words_in = len(json.dumps(body.get("input")).split())
    words_out = len((content or "").split()) + len((reply.reasoning or "").split())
    usage = {"input_tokens": words_in, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": words_out,
             "output_tokens_details": {"reasoning_tokens": len((reply.reasoning or "").split())},
             "total_tokens": words_in + words_out}
    incomplete = {"reason": "max_output_tokens"} if reply.finish_reason == "length" else None
    return {"id": f"resp_{uuid.uuid4().hex[:24]}", "object": "response", "created_at": 1790000000,
            "status": "incomplete" if incomplete else status, "error": None,
            "incomplete_details": incomplete, "instructions": body.get("instructions"),
            "model": reply.model or body.get("model"), "output": output,
            "usage": usage if status != "in_progress" else None, "store": False}


def response_events(reply: Any, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) of a streamed answer, ``response.completed`` last."""
    whole = response_object(reply, body)
    start = dict(whole, status="in_progress", output=[], usage=None)
    seq = iter(range(10_000))
    events: list[tuple[str, dict[str, Any]]] = []

    def add(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

    add("response.created", response=start)
    add("response.in_progress", response=start)
    for index, item in enumerate(whole["output"]):
        shell = dict(item, summary=[]) if item["type"] == "reasoning" else (
            dict(item, content=[]) if item["type"] == "message" else dict(item, arguments=""))
        add("response.output_item.added", output_index=index, item=shell)
        size = max(1, reply.chunk_chars)
        if item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            for at in range(0, len(text), size):
                add("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index,
                    summary_index=0, delta=text[at:at + size])
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            for at in range(0, len(text), size):
                add("response.output_text.delta", item_id=item["id"], output_index=index,
                    content_index=0, delta=text[at:at + size], logprobs=[])
            add("response.output_text.done", item_id=item["id"], output_index=index,
                content_index=0, text=text)
        else:
            text = item["arguments"]
            for at in range(0, len(text), 5):
                add("response.function_call_arguments.delta", item_id=item["id"],
                    output_index=index, delta=text[at:at + 5])
        add("response.output_item.done", output_index=index, item=item)
    add("response.incomplete" if whole["status"] == "incomplete" else "response.completed",
        response=whole)
    return events
