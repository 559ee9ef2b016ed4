"""The Responses endpoint (``POST {base}/responses``): which models go there, and the body.

The rest of the package speaks chat completions: the conversation, the tool loop, cassettes and
the store keep chat-shaped bodies. A model served only on ``/responses`` gets that body mapped
here just before it is sent (``system`` -> ``instructions``, messages -> ``input`` items, the
schema -> ``text.format``, tools flattened, images as ``input_image``), and its answer mapped back
to a chat-shaped body, so everything after the wire is the same. The conversation is sent again
as ``input`` items each time, as chat does: never ``previous_response_id`` or ``store``, which
would keep it on the service. What has no equivalent is refused before sending. Pure, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ParameterError

#: Chat fields with no Responses equivalent: refused for a routed model, before sending.
NO_EQUIVALENT = ("stop", "seed", "frequency_penalty", "presence_penalty", "max_tokens", "n",
                 "logprobs", "top_logprobs", "logit_bias")
#: Chat fields sent unchanged.
_SAME = ("model", "temperature", "top_p", "parallel_tool_calls", "reasoning_effort")


def check_responses(payload: dict[str, Any]) -> None:
    """Refuse, before sending, what a Responses model cannot be asked."""
    present = [name for name in NO_EQUIVALENT if payload.get(name) is not None]
    if present:
        raise ParameterError(
            f"{payload.get('model')} is served on the Responses endpoint, which has no "
            f"{', '.join(present)}: leave {'it' if len(present) == 1 else 'them'} unset for this "
            "model (max_completion_tokens is sent as max_output_tokens)."
        )
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text", "json_object", "json_schema"):
        raise ParameterError(f"response_format type {fmt.get('type')!r} has no Responses equivalent.")


def _part(part: Any, role: str) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        item: dict[str, Any] = {"type": "input_image", "image_url": url}
        if isinstance(image, dict) and image.get("detail"):
            item["detail"] = image["detail"]
        else:
            item["detail"] = "auto"
        return item
    return None


def _message_item(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role"))
    role = role if role in ("user", "assistant", "system", "developer") else "user"
    content = message.get("content")
    if isinstance(content, list):
        parts = [p for p in (_part(c, role) for c in content) if p is not None]
        return {"type": "message", "role": role, "content": parts}
    return {"type": "message", "role": role, "content": content if isinstance(content, str) else ""}


def input_items(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items) for chat messages: a leading system message becomes the
    instructions; tool calls and results become ``function_call`` / ``function_call_output``."""
    instructions: str | None = None
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "system" and i == 0 and isinstance(message.get("content"), str):
            instructions = message["content"]
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": str(message.get("tool_call_id")),
                          "output": str(message.get("content") or "")})
        elif role == "assistant" and message.get("tool_calls"):
            if message.get("content"):
                items.append(_message_item(message))
            for call in message["tool_calls"]:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    items.append({"type": "function_call", "call_id": str(call.get("id")),
                                  "name": str(fn.get("name")),
                                  "arguments": str(fn.get("arguments") or "{}")})
        else:
            items.append(_message_item(message))
    return instructions, items


def _tool(spec: Any) -> Any:
    fn = spec.get("function") if isinstance(spec, dict) else None
    if not isinstance(fn, dict):
        return spec
    flat = {"type": "function", "name": fn.get("name")}
    for key in ("description", "parameters", "strict"):
        if key in fn:
            flat[key] = fn[key]
    return flat


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _text_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        out = {"type": "json_schema", "name": spec.get("name") or "answer",
               "schema": spec.get("schema") or {}}
        if "strict" in spec:
            out["strict"] = spec["strict"]
        return out
    return {"type": fmt.get("type") or "text"}


def to_responses(payload: dict[str, Any]) -> dict[str, Any]:
    """The Responses body for a chat-shaped ``payload`` (checked by ``check_responses``)."""
    check_responses(payload)
    instructions, items = input_items(list(payload.get("messages") or []))
    body: dict[str, Any] = {"model": payload.get("model"), "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    for key in _SAME:
        if key in payload and key != "model":
            body[key] = payload[key]
    effort = body.pop("reasoning_effort", None)
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    if payload.get("max_completion_tokens") is not None:
        body["max_output_tokens"] = payload["max_completion_tokens"]
    if isinstance(payload.get("response_format"), dict):
        body["text"] = {"format": _text_format(payload["response_format"])}
    if payload.get("tools"):
        body["tools"] = [_tool(t) for t in payload["tools"]]
    if "tool_choice" in payload:
        body["tool_choice"] = _tool_choice(payload["tool_choice"])
    if payload.get("stream"):
        body["stream"] = True
    return body


def output_parts(output: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """(text, reasoning summary, chat-shaped tool calls) of a response's ``output`` items."""
    text: list[str] = []
    thought: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
        elif kind == "reasoning":  # the summary, else the reasoning text some servers send
            parts = item.get("summary") or item.get("content") or []
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    thought.append(part["text"])
        elif kind == "function_call" and isinstance(item.get("name"), str):
            args = item.get("arguments")
            calls.append({"id": str(item.get("call_id") or item.get("id") or f"call_{len(calls)}"),
                          "type": "function",
                          "function": {"name": item["name"], "arguments": args
                                       if isinstance(args, str) else json.dumps(args or {})}})
    return "".join(text), "\n\n".join(thought), calls


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Responses ``usage`` in chat terms (input/output tokens -> prompt/completion)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("output_tokens_details")
    out: dict[str, Any] = {"prompt_tokens": usage.get("input_tokens"),
                           "completion_tokens": usage.get("output_tokens"),
                           "total_tokens": usage.get("total_tokens")}
    if isinstance(details, dict) and "reasoning_tokens" in details:
        out["completion_tokens_details"] = {"reasoning_tokens": details["reasoning_tokens"]}
    return out


def finish_of(body: dict[str, Any], has_calls: bool) -> str | None:
    """The chat ``finish_reason`` a response's status means."""
    status = body.get("status")
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "length" if reason == "max_output_tokens" else "content_filter" if reason else "length"
    return None


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """A whole Responses answer as the equivalent chat-completions body."""
    text, thought, calls = output_parts(body.get("output"))
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if thought:
        message["reasoning_content"] = thought
    if calls:
        message["tool_calls"] = calls
    return {
        "id": body.get("id"), "object": "chat.completion", "created": body.get("created_at"),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_of(body, bool(calls))}],
        "usage": chat_usage(body.get("usage")), "meta": body.get("meta"),
        "error": body.get("error"),
    }
