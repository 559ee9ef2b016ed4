"""A loopback HTTP server that behaves like the AI/ML API (see /work/shared/AIMLAPI.md).

Why: no machine here reaches the live service, and the client must survive its quirks (SSE
with CRLF, comments, no ``[DONE]``, usage in a ``choices: []`` chunk, UTF-8 split across reads,
three error body shapes, timeouts). Tests, benchmarks and notebook runs drive this server instead,
scripting the next ``chat/completions`` answers and inspecting what the client really sent.

Standard library only, so it also runs as a standalone process::

    python tests/fakeapi.py --port 0 --key sk-test-KEY   # prints "READY http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import select
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

try:  # as a package module (tests) or run as a script
    from . import fake_responses
except ImportError:
    import fake_responses  # type: ignore[no-redef]

__all__ = [
    "DEFAULT_MODELS",
    "Error",
    "FakeAIMLAPI",
    "Hang",
    "Headers",
    "RawStream",
    "Recorded",
    "Reply",
    "main",
]

HOST = "127.0.0.1"
DEFAULT_KEY = "sk-test-KEY"
CREDITS_PER_USD = 2_000_000


def _model(
    model_id: str,
    kind: str,
    name: str,
    developer: str,
    context: int | None,
    output: int | None,
    tags: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "id": model_id,
        "type": kind,
        "aliases": list(aliases),
        "info": {
            "name": name,
            "developer": developer,
            "description": f"{name} by {developer}",
            "contextLength": context,
            "outputMax": output,
            "url": f"https://aimlapi.com/models/{model_id.replace('/', '-')}",
        },
        "tags": list(tags),
        "features": [],
        "endpoints": [],
    }


_CHAT = "openai/chat-completions"

#: What ``GET /models`` serves by default: chat models of both type spellings plus non-chat models
#: (image, embedding, video, tts) that a client must filter out.
DEFAULT_MODELS: list[dict[str, Any]] = [
    _model("baidu/ernie-5.0", _CHAT, "ERNIE 5.0", "Baidu", 128000, 32000, ["chat"]),
    _model(
        "baidu/ernie-5-0-thinking-preview", _CHAT, "ERNIE 5.0 Thinking Preview", "Baidu",
        128000, 64000, ["chat", "reasoning", "deprecated"],
    ),
    _model("gpt-4o", _CHAT, "GPT-4o", "Open AI", 128000, 16384, ["chat"], ["openai/gpt-4o"]),
    _model("gpt-4o-mini", _CHAT, "GPT-4o mini", "Open AI", 128000, 16384, ["chat"]),
    _model(
        "openai/gpt-5-mini-2025-08-07", _CHAT, "GPT-5 mini", "Open AI", 400000, 128000,
        ["chat", "reasoning"], ["gpt-5-mini"],
    ),
    _model(
        "anthropic/claude-sonnet-4.5", _CHAT, "Claude 4.5 Sonnet", "Anthropic", 200000, 64000,
        ["chat", "reasoning"], ["claude-sonnet-4-5"],
    ),
    _model("google/gemini-2.5-flash", _CHAT, "Gemini 2.5 Flash", "Google", 1048576, 65536),
    _model("deepseek/deepseek-chat", _CHAT, "DeepSeek V3", "DeepSeek", 128000, 8000, ["chat"]),
    _model(
        "deepseek/deepseek-r1", _CHAT, "DeepSeek R1", "DeepSeek", 128000, 32000,
        ["chat", "reasoning"],
    ),
    _model(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat-completion",
        "Llama 3.3 70B Instruct Turbo", "Meta", 128000, None, ["chat"],
    ),
    _model(
        "mistralai/mistral-nemo", "chat-completion", "Mistral Nemo", "Mistral AI", 128000, None,
        ["chat"],
    ),
    _model(
        "alibaba/qwen3-235b-a22b-thinking-2507", _CHAT, "Qwen3 235B A22B Thinking", "Alibaba Cloud",
        262144, 32768, ["chat", "reasoning"],
    ),
    _model("moonshotai/kimi-k2", _CHAT, "Kimi K2", "Moonshot", 131072, 16384, ["chat"]),
    _model("flux/schnell", "image", "FLUX.1 [schnell]", "Black Forest Labs", None, None, ["image"]),
    _model(
        "text-embedding-3-small", "embedding", "Text Embedding 3 Small", "Open AI", 8000, None,
        ["embedding"],
    ),
    _model("kling-video/v1/standard/text-to-video", "video", "Kling 1.0", "Kling AI", None, None),
    _model("#g1_aura-asteria-en", "tts", "Aura Asteria", "Deepgram", None, None, ["audio"]),
]

#: Models the fake's list marks as able to read images (``features``, as the service's items do);
#: every chat model lists its features, so the others are known to lack vision.
VISION_MODELS = ("gpt-4o", "gpt-4o-mini", "openai/gpt-5-mini-2025-08-07",
                 "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash")
for _m in DEFAULT_MODELS:
    if _m["type"] in (_CHAT, "chat-completion"):
        _m["features"] = ["openai/chat-completion"] + (
            ["openai/chat-completion.vision"] if _m["id"] in VISION_MODELS else [])


# --------------------------------------------------------------------------------------------------
# Recorded requests and behaviours


class Headers(dict[str, str]):
    """Request headers: keys are stored lower-case and every lookup is case-insensitive.

    Why: clients send ``Authorization`` or ``authorization`` alike; tests should not care.
    Repeated headers are joined with ``", "``.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            low = key.lower()
            if super().__contains__(low):
                value = f"{super().__getitem__(low)}, {value}"
            super().__setitem__(low, value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    """One request as the server received it, so tests can assert on what the client really sent."""

    method: str
    path: str  # as sent, including any query string
    headers: Headers
    body: bytes
    json: Any | None  # parsed body, None if absent or not JSON
    time: float  # time.monotonic() once the body was fully read

    @property
    def images(self) -> list[dict[str, Any]]:
        """The decoded images of the last user message (``decode_image``), in order."""
        users = [m for m in (self.json or {}).get("messages") or []
                 if isinstance(m, dict) and m.get("role") == "user"]
        return [decode_image(p) for p in image_parts_of(users[-1])] if users else []


@dataclass
class Reply:
    """A successful chat completion, streamed or not depending on the request's ``stream`` flag."""

    content: str | None = "Hello!"
    reasoning: str | None = None
    model: str | None = None  # None: the model id that was requested
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # None: number of words in all messages
    completion_tokens: int | None = None  # None: words in content + reasoning_tokens
    reasoning_tokens: int | None = None  # None: words in reasoning
    credits: float | None = 2002  # None: no meta (null in JSON, no final meta chunk, no headers)
    usd: float | None = None  # None: credits / 2,000,000
    done: bool = True  # send the final "data: [DONE]"
    crlf: bool = False  # SSE lines end in \r\n
    comments: bool = False  # interleave ": keep-alive" comment lines
    chunk_chars: int = 4  # characters of content (and reasoning) per delta
    delay: float = 0.0  # seconds between SSE events (non-streamed: once, before answering)
    usage_chunk: str = "separate"  # "separate" (choices: []), "finish" (on finish chunk) or "none"
    split_utf8: bool = False  # cut writes inside multi-byte UTF-8 characters
    close_after: int | None = None  # drop the connection after N content deltas
    extra_keys: bool = True  # unknown keys, a chunk without delta, id "", like the real service
    status_headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    echo: bool = False  # content becomes "echo: <last user message text>"
    # Tool calls to answer with: {"name", "arguments" (dict or JSON text), "id" (optional)}.
    tool_calls: list[dict[str, Any]] | None = None
    # How tool calls are streamed: "standard" (fragments by index, like OpenAI), or a known
    # deviation: "reuse_index" (every call at index 0), "fresh_ids" (a new id on every
    # fragment), "null_arguments" (arguments null instead of a string).
    tool_style: str = "standard"


@dataclass
class Error:
    """An error answer in one of the body shapes the service (or a proxy before it) produces."""

    status: int
    message: str | None = None  # None: a typical message for the status
    shape: str = "gateway"  # "gateway", "gateway_str", "openai", "html" or "text"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawStream:
    """Verbatim byte pieces, each flushed as its own HTTP chunk (malformed or odd streams)."""

    events: list[bytes]
    delay: float = 0.0  # seconds between pieces
    status: int = 200
    content_type: str = "text/event-stream"
    close: bool = False  # drop the connection instead of ending the chunked body


@dataclass
class Hang:
    """Stall to trigger a client read timeout, before or after the headers (and some events).

    After ``seconds`` (or when the server stops) the connection is closed without a complete answer.
    """

    seconds: float = 30.0
    after_headers: bool = False
    after_events: list[bytes] = field(default_factory=list)


@dataclass
class ToolModel:
    """A model that uses tools (a callable behaviour: queue it, or set it as ``default``).

    When the request has ``tools`` it asks for ``calls`` (name, arguments) that ``tool_choice``
    allows: all at once, or one per round when ``parallel_tool_calls`` is false; once every call
    has a tool result it answers in text quoting the results. ``forever``: it never stops asking
    (the round limit). Tool messages are checked like a strict server: each ``tool_call_id`` must
    answer a call of the assistant message before it, in order (else a 400).
    """

    calls: list[tuple[str, Any]] = field(default_factory=list)
    style: str = "standard"
    forever: bool = False
    content: str | None = None  # text sent with the tool calls (some models say what they do)
    only_offered: bool = True  # False: it also calls tools the request did not offer

    def __call__(self, rec: Recorded) -> Behaviour:
        body = rec.json if isinstance(rec.json, dict) else {}
        messages = body.get("messages") or []
        problem = _tool_message_problem(messages)
        if problem:
            return Error(400, f"Body validation error! {problem}")
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
        results = [m.get("content") for m in messages[last_user:] if m.get("role") == "tool"]
        tools = body.get("tools") or []
        names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)]
        choice = body.get("tool_choice", "auto")
        wanted = [c for c in self.calls if c[0] in names or not self.only_offered]
        if isinstance(choice, dict):
            name = choice.get("function", {}).get("name")
            wanted = [c for c in wanted if c[0] == name] or [(name, {})]
        pending = wanted if self.forever else wanted[len(results):]
        if body.get("parallel_tool_calls") is False:
            pending = pending[:1]
        if choice == "none" or not tools or not pending:
            text = "Tool results: " + " | ".join(str(r) for r in results) if results else "No tools."
            return Reply(content=text)
        calls = [{"name": n, "arguments": a, "id": f"call_{uuid.uuid4().hex[:12]}"} for n, a in pending]
        return Reply(content=self.content, finish_reason="tool_calls", tool_calls=calls,
                     tool_style=self.style)


def _tool_message_problem(messages: list[Any]) -> str | None:
    expected: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if not expected or message.get("tool_call_id") != expected[0]:
                return f"messages.{i}.tool_call_id: does not answer the pending tool call"
            if not isinstance(message.get("content"), str):
                return f"messages.{i}.content: Expected string"
            expected.pop(0)
            continue
        if expected:
            return f"messages.{i}: tool calls {expected} have no tool message"
        if role == "assistant" and message.get("tool_calls"):
            for j, call in enumerate(message["tool_calls"]):
                fn = call.get("function") or {}
                if not isinstance(fn.get("arguments"), str) or not call.get("id"):
                    return f"messages.{i}.tool_calls.{j}: needs an id and arguments as a string"
                expected.append(call["id"])
    return f"tool calls {expected} have no tool message" if expected else None


def _tool_args(call: dict[str, Any]) -> str:
    args = call.get("arguments", {})
    return args if isinstance(args, str) else json.dumps(args)


Behaviour = Reply | Error | RawStream | Hang
BehaviourSource = Behaviour | Callable[[Recorded], Behaviour]


# --------------------------------------------------------------------------------------------------
# Validation like the service's (zod-style messages)

_ERROR_MESSAGES = {
    400: "Body validation error!",
    401: "Unauthorized: invalid or missing API key",
    403: "You've run out of credits. Please top up your balance to continue",
    404: "Not Found",
    429: "Too many requests, please try again later",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable: the model is under maintenance",
    504: "Generation timeout",
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _check_number(
    body: dict[str, Any], name: str, lo: float, hi: float | None = None, integer: bool = False
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if _json_type(value) != "number":
        return f"{name}: Expected number, received {_json_type(value)}"
    if integer and not float(value).is_integer():
        return f"{name}: Expected integer, received float"
    if value < lo:
        return f"{name}: Number must be greater than or equal to {_num(lo)}"
    if hi is not None and value > hi:
        return f"{name}: Number must be less than or equal to {_num(hi)}"
    return None


def _validate_chat(body: Any) -> str | None:
    """Return the first validation problem as "field: message", or None when the body is fine."""
    if not isinstance(body, dict):
        return f"body: Expected object, received {_json_type(body)}"
    model = body.get("model")
    if model is None:
        return "model: Required"
    if not isinstance(model, str):
        return f"model: Expected string, received {_json_type(model)}"
    if model == "no-such-model" or not model.strip():
        return "model: Invalid model"
    messages = body.get("messages")
    if messages is None:
        return "messages: Required"
    if not isinstance(messages, list):
        return f"messages: Expected array, received {_json_type(messages)}"
    if not messages:
        return "messages: Array must contain at least 1 element(s)"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Expected object, received {_json_type(message)}"
        if not isinstance(message.get("role"), str):
            return f"messages.{i}.role: Required"
    low = model.lower()
    max_temperature = 1 if ("claude" in low or "minimax" in low) else 2
    for problem in (
        _check_number(body, "temperature", 0, max_temperature),
        _check_number(body, "top_p", 0.01, 1),
        _check_number(body, "max_completion_tokens", 1, integer=True),
        _check_number(body, "max_tokens", 1),
        _check_number(body, "frequency_penalty", -2, 2),
        _check_number(body, "presence_penalty", -2, 2),
        _check_number(body, "seed", 1, integer=True),
    ):
        if problem:
            return problem
    stop = body.get("stop")
    if isinstance(stop, list):
        if len(stop) > 4:
            return "stop: Array must contain at most 4 element(s)"
        for i, item in enumerate(stop):
            if not isinstance(item, str):
                return f"stop.{i}: Expected string, received {_json_type(item)}"
    elif stop is not None and not isinstance(stop, str):
        return f"stop: Expected string, received {_json_type(stop)}"
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return f"stream: Expected boolean, received {_json_type(stream)}"
    return None


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return ""


def decode_image(part: Any) -> dict[str, Any]:
    """What an ``image_url`` part carries, as a vision model would see it: for a data: URL the
    decoded image's format, size in pixels, byte count and sha256; for an http(s) URL only the
    URL (the fake never fetches it, like the client)."""
    url = ((part or {}).get("image_url") or {}).get("url") if isinstance(part, dict) else None
    if not isinstance(url, str) or not url:
        raise ValueError("image_url.url: Required")
    if not url.startswith("data:"):
        if not url.startswith(("http://", "https://")):
            raise ValueError("image_url.url: Expected an http(s) or data: URL")
        return {"kind": "url", "url": url}
    header, _, encoded = url.partition(",")
    if not header.endswith(";base64") or not encoded:
        raise ValueError("image_url.url: Expected a base64 data: URL")
    import base64
    import hashlib
    import io

    data = base64.b64decode(encoded, validate=True)
    with pillow().open(io.BytesIO(data)) as img:
        info = {"kind": "data", "mime": header[5:-7], "format": img.format, "width": img.width,
                "height": img.height, "mode": img.mode}
    info.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return info


_PIL: list[Any] = []


def pillow() -> Any:
    """PIL.Image, imported once (a test that hides Pillow from the client calls this first)."""
    if not _PIL:
        from PIL import Image

        _PIL.append(Image)
    return _PIL[0]


def image_parts_of(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]


def _validate_images(body: Any) -> str | None:
    """A malformed image part is a 400, like the service's body validation."""
    for i, message in enumerate(body.get("messages") or []):
        for part in image_parts_of(message):
            try:
                decode_image(part)
            except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad part
                return f"messages.{i}.content: invalid image ({exc})"
    return None


def _image_echo(message: Any) -> str:
    """The echo's words for the images it received: `[image PNG 640x480, 23456 bytes]`."""
    words = []
    for part in image_parts_of(message):
        d = decode_image(part)
        if d["kind"] == "url":
            words.append(f" [image url {d['url']}]")
        else:
            words.append(f" [image {d['format']} {d['width']}x{d['height']}, {d['bytes']} bytes]")
    return "".join(words)


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _pieces(text: str | None, size: int) -> list[str]:
    if not text:
        return []
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _split_utf8(data: bytes) -> list[bytes]:
    """Cut ``data`` after the first byte of every multi-byte UTF-8 character."""
    cuts: list[int] = []
    pos = 0
    for ch in data.decode("utf-8"):
        n = len(ch.encode("utf-8"))
        if n > 1:
            cuts.append(pos + 1)
        pos += n
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _route(path: str) -> str:
    """The endpoint a request path names: the service accepts it with or without ``/v1``."""
    route = urlsplit(path).path.rstrip("/")
    return route[3:] if route.startswith("/v1/") else route


def _dumps(obj: Any) -> bytes:
    # ensure_ascii=False: the real service sends raw UTF-8, which is what can split across reads.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _gateway_body(status: int, message: str, path: str, as_str: bool = False) -> dict[str, Any]:
    return {
        "message": message,
        "path": path,
        "requestId": str(uuid.uuid4()),
        "statusCode": str(status) if as_str else status,
        "timestamp": _now_iso(),
    }


def _openai_error_type(status: int) -> tuple[str, str | None]:
    if status == 401:
        return "authentication_error", "invalid_api_key"
    if status == 403:
        return "insufficient_quota", "insufficient_quota"
    if status == 429:
        return "rate_limit_error", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class _Aborted(Exception):
    """The handler dropped the connection on purpose (or the server is stopping)."""


_DISCONNECT = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, _Aborted)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, api: FakeAIMLAPI, port: int) -> None:
        self.api = api
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn(): reverse DNS can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small SSE writes go out now
        self.api._connected(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        self.api._disconnected(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | _Aborted):
            return  # a client (or stop()) closed the socket: not interesting
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def version_string(self) -> str:
        return "nginx"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest output is for test failures."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # ---- framing helpers ----

    @property
    def api(self) -> FakeAIMLAPI:
        return self.server.api

    def _stopped(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the server is stopping (so hung handlers return)."""
        if seconds > 0:
            return self.api._stop_event.wait(seconds)
        return self.api._stop_event.is_set()

    def _abort(self) -> None:
        """Drop the connection without completing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Aborted

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_body(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._headers(
            status,
            {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})},
        )
        self.wfile.write(body)

    def _gateway_error(self, status: int, message: str, as_str: bool = False) -> None:
        body = _dumps(_gateway_body(status, message, urlsplit(self.path).path, as_str))
        self._send_body(status, body, "application/json; charset=utf-8")

    def _start_chunked(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        self._headers(
            status, {"Content-Type": content_type, "Transfer-Encoding": "chunked", **headers}
        )

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    return None
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        n = int(length)
        body = self.rfile.read(n) if n > 0 else b""
        return body if len(body) == n else None

    # ---- routing ----

    def _dispatch(self) -> None:
        try:
            try:
                body = self._read_body()
            except ValueError:
                body = None
            if body is None:
                self.close_connection = True
                self._gateway_error(400, "Bad request: unreadable body")
                return
            parsed: Any = None
            json_ok = False
            if body:
                try:
                    parsed = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
                    json_ok = True
                except ValueError:
                    parsed = None
            rec = Recorded(
                method=self.command,
                path=self.path,
                headers=Headers(self.headers.items()),
                body=body,
                json=parsed,
                time=time.monotonic(),
            )
            self.api._record(rec)
            route = _route(self.path)
            if route == "/chat/completions" and self.command == "POST":
                self._chat(rec, json_ok)
            elif route == "/responses" and self.command == "POST":
                self._responses(rec, json_ok)
            elif route == "/models" and self.command == "GET":
                self._models(rec)
            else:
                path = urlsplit(self.path).path
                self._gateway_error(404, f"Cannot {self.command} {path}")
        except _DISCONNECT:
            self.close_connection = True

    def _models(self, rec: Recorded) -> None:
        api = self.api
        if api.models_fail is not None:
            status = int(api.models_fail)
            self._gateway_error(status, _ERROR_MESSAGES.get(status, _phrase(status)))
            return
        if api.models_auth is not None:  # like LiteLLM (500), vLLM --api-key and OpenAI (401)
            scheme, _, token = rec.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != api.key:
                status = int(api.models_auth)
                self._gateway_error(status, "Authentication Error, No api key passed in.")
                return
        payload: Any = {"object": "list", "data": api.models} if api.models_envelope else api.models
        body = _dumps(payload)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        wanted = rec.headers.get("if-none-match")
        if wanted is not None:
            tags = [t.strip().removeprefix("W/") for t in wanted.split(",")]
            if "*" in tags or etag in tags:
                self._headers(304, {"ETag": etag, "Cache-Control": "public, max-age=60"})
                return
        self._send_body(
            200, body, "application/json; charset=utf-8",
            {"ETag": etag, "Cache-Control": "public, max-age=60"},
        )

    def _chat(self, rec: Recorded, json_ok: bool) -> None:
        api = self.api
        if api.key is not None:
            scheme, _, token = rec.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != api.key:
                self._gateway_error(401, _ERROR_MESSAGES[401])
                return
        if not json_ok:
            self._gateway_error(400, "Body validation error! body: Expected a JSON object")
            return
        problem = (_validate_chat(rec.json) or _validate_images(rec.json)
                   or fake_responses.chat_problem(api, rec.json))
        if problem:
            self._gateway_error(400, f"Body validation error! {problem}")
            return
        with api._lock:
            api.in_flight += 1
            api.peak_in_flight = max(api.peak_in_flight, api.in_flight)
            crowded = api.max_in_flight is not None and api.in_flight > api.max_in_flight
            api.rate_limited += crowded
        try:
            if crowded:
                self._error(Error(429))
            else:
                self._answer(api._next_behaviour(rec), rec)
        finally:
            with api._lock:
                api.in_flight -= 1

    def _responses(self, rec: Recorded, json_ok: bool) -> None:
        """``POST /responses``: the queued behaviour, answered in the Responses shapes."""
        api = self.api
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if api.key is not None and (scheme.lower() != "bearer" or token.strip() != api.key):
            self._gateway_error(401, _ERROR_MESSAGES[401])
            return
        problem = (fake_responses.responses_problem(api, rec.json) if json_ok
                   else "body: Expected a JSON object")
        if problem:
            self._gateway_error(400, f"Body validation error! {problem}")
            return
        behaviour = api._next_behaviour(rec)
        if not isinstance(behaviour, Reply):
            self._answer(behaviour, rec)
            return
        headers = {"x-inference-id": str(uuid.uuid4())}
        if rec.json.get("stream") is not True:
            self._send_body(200, _dumps(fake_responses.response_object(behaviour, rec.json)),
                            "application/json", headers)
            return
        self._start_chunked(200, "text/event-stream; charset=utf-8", headers)
        for i, (name, data) in enumerate(fake_responses.response_events(behaviour, rec.json)):
            if i and self._stopped(behaviour.delay):
                self._abort()
            self._chunk(f"event: {name}\n".encode() + b"data: " + _dumps(data) + b"\n\n")
        self._end_chunked()

    def _answer(self, behaviour: Behaviour, rec: Recorded) -> None:
        if isinstance(behaviour, Reply):
            self._reply(behaviour, rec.json)
        elif isinstance(behaviour, Error):
            self._error(behaviour)
        elif isinstance(behaviour, RawStream):
            self._raw(behaviour)
        elif isinstance(behaviour, Hang):
            self._hang(behaviour)
        else:
            raise TypeError(f"not a behaviour: {behaviour!r}")

    # ---- behaviours ----

    def _error(self, err: Error) -> None:
        status = err.status
        message = err.message if err.message is not None else _ERROR_MESSAGES.get(
            status, _phrase(status)
        )
        path = urlsplit(self.path).path
        if err.shape in ("gateway", "gateway_str"):
            body = _dumps(_gateway_body(status, message, path, err.shape == "gateway_str"))
            ctype = "application/json; charset=utf-8"
        elif err.shape == "openai":
            kind, code = _openai_error_type(status)
            body = _dumps({"error": {"message": message, "type": kind, "code": code}})
            ctype = "application/json"
        elif err.shape == "html":
            title = f"{status} {_phrase(status)}"
            body = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            ).encode()
            ctype = "text/html"
        elif err.shape == "text":
            body = message.encode("utf-8")
            ctype = "text/plain; charset=utf-8"
        else:
            raise ValueError(f"unknown Error shape {err.shape!r}")
        self._send_body(status, body, ctype, err.headers)

    def _raw(self, raw: RawStream) -> None:
        self._start_chunked(raw.status, raw.content_type, {"x-inference-id": str(uuid.uuid4())})
        for i, piece in enumerate(raw.events):
            if i and self._stopped(raw.delay):
                self._abort()
            self._chunk(piece)
        if raw.close:
            self._abort()
        self._end_chunked()

    def _hang(self, hang: Hang) -> None:
        if hang.after_headers:
            self._start_chunked(200, "text/event-stream", {"x-inference-id": str(uuid.uuid4())})
            for piece in hang.after_events:
                self._chunk(piece)
        self._stopped(hang.seconds)
        self._abort()

    def _reply(self, reply: Reply, request: dict[str, Any]) -> None:
        messages = request["messages"]
        content = reply.content
        if reply.echo:
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            content = "echo: " + (_message_text(users[-1]) + _image_echo(users[-1]) if users else "")
        model = reply.model if reply.model is not None else request["model"]
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else sum(_words(_message_text(m)) for m in messages)
        )
        reasoning_tokens = (
            _words(reply.reasoning) if reply.reasoning_tokens is None else reply.reasoning_tokens
        )
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else _words(content) + reasoning_tokens
        )
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }
        if reply.extra_keys:
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
        meta = None
        headers = {"x-inference-id": str(uuid.uuid4())}
        if reply.credits is not None and self.api.flavor != "openai":
            usd = reply.usd if reply.usd is not None else reply.credits / CREDITS_PER_USD
            meta = {"usage": {"credits_used": reply.credits, "usd_spent": usd}}
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model,
        }
        if request.get("stream") is True:
            headers.update(reply.status_headers)
            if not fake_responses.usage_wanted(self.api, request):
                reply = dataclasses.replace(reply, usage_chunk="none")
            self._stream(reply, base, content, usage, meta, headers)
        else:
            if meta is not None:
                headers["x-aimlapi-credits-used"] = str(meta["usage"]["credits_used"])
                headers["x-aimlapi-usd-spent"] = str(meta["usage"]["usd_spent"])
            headers.update(reply.status_headers)
            self._complete(reply, base, content, usage, meta, headers)

    def _complete(
        self,
        reply: Reply,
        base: dict[str, Any],
        content: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.reasoning is not None:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.get("id") or f"call_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": None
                              if reply.tool_style == "null_arguments" and not c.get("arguments")
                              else _tool_args(c)}}
                for i, c in enumerate(reply.tool_calls)
            ]
        choice: dict[str, Any] = {
            "index": 0, "message": message, "finish_reason": reply.finish_reason
        }
        if reply.extra_keys:
            message["refusal"] = None
            choice["logprobs"] = None
            if "ernie" in str(base["model"]).lower():
                choice["flag"] = 0
        body_obj: dict[str, Any] = {
            "id": base["id"],
            "object": "chat.completion",
            "created": base["created"],
            "model": base["model"],
            "choices": [choice],
            "usage": usage,
            "meta": meta,
        }
        if reply.extra_keys:
            body_obj["system_fingerprint"] = None
            body_obj["service_tier"] = "default"
        body = _dumps(body_obj)
        if self._stopped(reply.delay):
            self._abort()
        self._headers(
            200,
            {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers},
        )
        if reply.close_after is not None:
            self.wfile.write(body[: len(body) // 2])
            self._abort()
        for piece in _split_utf8(body) if reply.split_utf8 else [body]:
            self.wfile.write(piece)
            self.wfile.flush()

    def _events(
        self,
        reply: Reply,
        base: dict[str, Any],
        content: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any] | None,
    ) -> Iterator[tuple[str, Any]]:
        """Yield (kind, payload): kind is "event", "content" (counts for close_after),
        "finish" (first event a close_after stream never sends) or "done"."""

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict:
            choice: dict[str, Any] = {"index": 0}
            if delta is not None:
                choice["delta"] = delta
            choice["finish_reason"] = finish
            return {"id": base["id"], "object": "chat.completion.chunk",
                    "created": base["created"], "model": base["model"],
                    "choices": [choice], **extra}

        first_extra = {"service_tier": "default", "system_fingerprint": None}
        yield "event", chunk(
            {"role": "assistant", "content": ""}, **(first_extra if reply.extra_keys else {})
        )
        for piece in _pieces(reply.reasoning, reply.chunk_chars):
            yield "event", chunk({"reasoning_content": piece, "content": None})
        oddities = reply.extra_keys
        for piece in _pieces(content, reply.chunk_chars):
            extra = {"obfuscation": "Zx3q"} if reply.extra_keys else {}
            yield "content", chunk({"content": piece}, **extra)
            if oddities:
                oddities = False
                yield "event", {**chunk(None), "id": ""}  # no delta, empty id
                yield "event", chunk({"content": None})
        if oddities:
            yield "event", {**chunk(None), "id": ""}
        for i, call in enumerate(reply.tool_calls or []):
            style = reply.tool_style
            index = 0 if style == "reuse_index" else i
            ident = call.get("id") or f"call_{i}"
            args = _tool_args(call)
            first_args = None if style == "null_arguments" else ""
            yield "event", chunk({"tool_calls": [{"index": index, "id": ident, "type": "function",
                                                  "function": {"name": call["name"],
                                                               "arguments": first_args}}]})
            if style == "null_arguments" and not call.get("arguments"):
                continue
            for piece in _pieces(args, 5):
                fragment: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
                if style == "fresh_ids":
                    fragment["id"] = f"call_{uuid.uuid4().hex[:8]}"
                yield "event", chunk({"tool_calls": [fragment]})
        finish = chunk({}, reply.finish_reason)
        if reply.usage_chunk == "finish":
            finish["usage"] = usage
        yield "finish", finish
        if reply.usage_chunk == "separate":
            usage_chunk = {**chunk(None), "choices": [], "usage": usage}
            yield "event", usage_chunk
        if meta is not None:
            yield "event", {"choices": [], "meta": meta}
        if reply.done:
            yield "done", "[DONE]"

    def _stream(
        self,
        reply: Reply,
        base: dict[str, Any],
        content: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> None:
        eol = "\r\n" if reply.crlf else "\n"
        comment = f": keep-alive{eol}".encode()
        self._start_chunked(200, "text/event-stream", {"Cache-Control": "no-cache", **headers})
        sent_content = 0
        for index, (kind, payload) in enumerate(self._events(reply, base, content, usage, meta)):
            if reply.close_after is not None and (
                kind == "finish" or (kind == "content" and sent_content >= reply.close_after)
            ):
                self._abort()
            if index and self._stopped(reply.delay):
                self._abort()
            data = payload.encode() if kind == "done" else _dumps(payload)
            event = b"data: " + data + (eol * 2).encode()
            if reply.comments:
                if index % 2 == 0:  # a comment block of its own
                    self._write_pieces(comment + eol.encode(), reply.split_utf8)
                else:  # a comment line inside the event block
                    event = comment + event
            self._write_pieces(event, reply.split_utf8)
            if kind == "content":
                sent_content += 1
        self._end_chunked()

    def _write_pieces(self, data: bytes, split_utf8: bool) -> None:
        for piece in _split_utf8(data) if split_utf8 else [data]:
            self._chunk(piece)


# --------------------------------------------------------------------------------------------------
# The public server


class FakeAIMLAPI:
    """The fake service: start it (or use ``with``), queue behaviours, inspect recorded requests.

    ``key``: the bearer key chat requests must carry (None: no auth check). ``GET /models`` is open.
    Requests that fail auth or validation are answered 401/400 and do not consume the queue.
    """

    def __init__(
        self,
        key: str | None = DEFAULT_KEY,
        *,
        models: list[dict[str, Any]] | None = None,
        port: int = 0,
        flavor: str = "aimlapi",
    ) -> None:
        self.key = key
        self.models: list[dict[str, Any]] = copy.deepcopy(
            DEFAULT_MODELS if models is None else models
        )
        self.models_fail: int | None = None
        self.models_envelope = True  # False: GET /models answers a bare JSON list
        # None: GET /models is open (the AI/ML API); a status: what it answers without the key.
        self.models_auth: int | None = None
        self.default: BehaviourSource = Reply(echo=True)
        # "aimlapi", or "openai": an OpenAI-style server (OpenAI, LiteLLM, vLLM): no credits,
        # streamed usage only when asked with stream_options (fake_responses.py).
        self.flavor = flavor
        self.responses_only: list[str] = []  # more models refused on chat, served on /responses
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[BehaviourSource] = deque()
        self._requests: list[Recorded] = []
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # map() tests: above this many chat requests in flight, answer 429 (None: no limit).
        self.max_in_flight: int | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rate_limited = 0  # 429s sent because of max_in_flight

    # ---- lifecycle ----

    def start(self) -> FakeAIMLAPI:
        """Bind 127.0.0.1 (ephemeral port unless given) and serve in a daemon thread."""
        if self._server is None:
            self._stop_event = threading.Event()
            self._server = _Server(self, self._port)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"FakeAIMLAPI:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop within a fraction of a second, even with hung or streaming handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop_event.set()  # wakes Hang and delays
        server.shutdown()
        with self._lock:
            open_socks = list(self._open)
        for sock in open_socks:  # wakes handlers blocked reading an idle keep-alive connection
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def __enter__(self) -> FakeAIMLAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses ----

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._server is None:
            raise RuntimeError("FakeAIMLAPI is not started")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``: the service accepts the base without ``/v1`` too."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, like ``https://api.aimlapi.com/v1``."""
        return self.root_url + "/v1"

    # ---- scripting and inspection ----

    def queue(self, *behaviours: BehaviourSource) -> None:
        """Answer the next chat/completions requests with these, in order (FIFO).

        A behaviour may also be a callable taking the Recorded request and returning a behaviour.
        """
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """How many queued behaviours are still unused."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request received (all paths), in order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[Recorded]:
        """Only the ``POST .../chat/completions`` requests."""
        return [
            r for r in self.requests if r.method == "POST" and _route(r.path) == "/chat/completions"
        ]

    @property
    def last_json(self) -> Any | None:
        """JSON body of the last chat request, or None."""
        chats = self.chat_requests
        return chats[-1].json if chats else None

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (1 after several requests = keep-alive reuse)."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Forget the queue, recorded requests and connection count; default back to echo."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._connections = 0
        self.default = Reply(echo=True)
        self.models_fail = None
        self.models_auth = None

    # ---- called from handler threads ----

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    def _next_behaviour(self, rec: Recorded) -> Behaviour:
        with self._lock:
            source = self._queue.popleft() if self._queue else self.default
        if isinstance(source, Reply | Error | RawStream | Hang):
            return source
        return source(rec)

    def _connected(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)

    def _disconnected(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    # ---- network failure helpers ----

    _reserved: list[socket.socket] = []

    @classmethod
    @contextlib.contextmanager
    def backlog_full(cls, max_fillers: int = 64) -> Iterator[str]:
        """Yield a base_url whose listening socket never accepts and has a full accept queue.

        Why: a reliable CONNECT timeout on loopback. On Linux, ``listen(0)`` queues one connection;
        once the queue is full the kernel drops new SYNs (SYN cookies do not apply to a full accept
        queue), so a client's connect hangs until its connect timeout. Fillers are added until a
        probe connect does not complete within 0.2 s.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fillers: list[socket.socket] = []
        try:
            listener.bind((HOST, 0))
            listener.listen(0)
            port = listener.getsockname()[1]
            for _ in range(max_fillers):
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                probe.setblocking(False)
                fillers.append(probe)
                probe.connect_ex((HOST, port))
                _, writable, _ = select.select([], [probe], [], 0.2)
                if not writable:
                    break  # this SYN was dropped: the queue is full
                if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    raise RuntimeError("backlog_full: a filler connection failed")
            else:
                raise RuntimeError("backlog_full: could not fill the accept queue")
            yield f"http://{HOST}:{port}/v1"
        finally:
            for sock in fillers:
                sock.close()
            listener.close()

    @classmethod
    def closed_port(cls) -> str:
        """A base_url on 127.0.0.1 where connections are refused.

        The port stays bound (never listening) for the life of the process, so nobody else takes it.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))
        cls._reserved.append(sock)
        return f"http://{HOST}:{sock.getsockname()[1]}/v1"


def main(argv: list[str] | None = None) -> int:
    """Run standalone: print ``READY <base_url>`` once listening, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Fake AI/ML API on 127.0.0.1 (for tests).")
    parser.add_argument("--port", type=int, default=0, help="0 = a free ephemeral port")
    parser.add_argument(
        "--key", default=DEFAULT_KEY, help="bearer key chat requests need; '' disables the check"
    )
    args = parser.parse_args(argv)
    api = FakeAIMLAPI(key=args.key or None, port=args.port).start()
    finished = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: finished.set())
    print(f"READY {api.base_url}", flush=True)
    try:
        while not finished.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
