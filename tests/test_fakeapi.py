"""Checks of the fake AI/ML API itself, with plain requests and raw sockets.

Why: every client test trusts this server to reproduce the service's quirks; if it lied (buffered a
stream, kept no connection alive, never really split UTF-8), those tests would prove nothing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakeapi import DEFAULT_MODELS, Error, FakeAIMLAPI, Hang, RawStream, Reply

KEY = "sk-test-KEY"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hi"}]}


@pytest.fixture
def api() -> Any:
    with FakeAIMLAPI(key=KEY) as server:
        yield server


def chat(api: FakeAIMLAPI, session: Any = requests, **extra: Any) -> requests.Response:
    return session.post(
        f"{api.base_url}/chat/completions",
        json={**BODY, **extra},
        headers=AUTH,
        stream=bool(extra.get("stream")),
        timeout=5,
    )


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE byte stream (CRLF tolerated, comments dropped)."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    out = []
    for block in text.split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out


def stream_text(events: list[str]) -> tuple[str, str]:
    content, reasoning = [], []
    for event in events:
        if event == "[DONE]":
            continue
        for choice in json.loads(event).get("choices", []):
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
    return "".join(content), "".join(reasoning)


def raw_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send a raw request with Connection: close and read everything back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


def chunk_frames(response: bytes) -> list[bytes]:
    """Split a raw chunked HTTP response into its chunk payloads."""
    _, _, rest = response.partition(b"\r\n\r\n")
    frames = []
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        frames.append(rest[:size])
        rest = rest[size + 2 :]
    return frames


def test_non_stream_shape_and_headers(api: FakeAIMLAPI) -> None:
    r = chat(api)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["x-inference-id"]
    assert r.headers["x-aimlapi-credits-used"] == "2002"
    assert float(r.headers["x-aimlapi-usd-spent"]) == pytest.approx(2002 / 2_000_000)
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert body["choices"][0]["message"] == {
        "role": "assistant", "content": "echo: Say hi", "refusal": None
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3  # words
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert body["meta"] == {"usage": {"credits_used": 2002, "usd_spent": 0.001001}}
    assert api.last_json == BODY
    rec = api.chat_requests[0]
    assert rec.headers["AUTHORIZATION"] == f"Bearer {KEY}" and rec.json == BODY

    api.queue(Reply(content=None, reasoning="hmm", model="upstream-x", credits=None, usd=None))
    body = chat(api).json()
    assert body["choices"][0]["message"]["content"] is None
    assert body["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert body["model"] == "upstream-x" and body["meta"] is None


def test_base_without_v1(api: FakeAIMLAPI) -> None:
    r = requests.post(f"{api.root_url}/chat/completions", json=BODY, headers=AUTH, timeout=5)
    assert r.json()["choices"][0]["message"]["content"] == "echo: Say hi"
    assert requests.get(f"{api.root_url}/models", timeout=5).status_code == 200
    assert len(api.chat_requests) == 1


def test_stream_events_and_usage(api: FakeAIMLAPI) -> None:
    text = "# Hi\n- a\n- b, ünïcödé ✓"
    api.queue(Reply(content=text, reasoning="Let me think", chunk_chars=3))
    r = chat(api, stream=True)
    assert r.headers["Content-Type"] == "text/event-stream"  # no charset, like the service
    assert r.headers["Transfer-Encoding"] == "chunked"
    events = sse_events(r.content)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert stream_text(events) == (text, "Let me think")
    assert any(c.get("id") == "" for c in chunks)  # quirks a client must ignore
    assert any(c["choices"] and "delta" not in c["choices"][0] for c in chunks)
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["stop"]
    usage = [c for c in chunks if c.get("usage")]
    assert len(usage) == 1 and usage[0]["choices"] == []
    assert usage[0]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3
    assert chunks[-1] == {"choices": [], "meta": {"usage": {"credits_used": 2002,
                                                            "usd_spent": 0.001001}}}

    api.queue(Reply(content="ok", usage_chunk="finish", credits=None, done=False,
                    extra_keys=False))
    events = sse_events(chat(api, stream=True).content)
    assert events[-1] != "[DONE]"
    last = json.loads(events[-1])
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["total_tokens"] > 0


def test_stream_arrives_incrementally(api: FakeAIMLAPI) -> None:
    api.queue(Reply(content="abcd", chunk_chars=2, delay=0.1))  # 9 events, 0.8 s in all
    start = time.monotonic()
    r = chat(api, stream=True)
    lines = r.iter_lines(chunk_size=None)
    first = next(line for line in lines if line.startswith(b"data:"))
    t_first = time.monotonic() - start
    rest = list(lines)
    t_end = time.monotonic() - start
    assert json.loads(first[5:])["choices"][0]["delta"]["role"] == "assistant"
    assert t_first < 0.3 and t_end > 0.7  # the first event came long before the end
    assert [line for line in rest if line][-1] == b"data: [DONE]"


def test_crlf_and_comments(api: FakeAIMLAPI) -> None:
    api.queue(Reply(content="Hello there", crlf=True, comments=True))
    raw = chat(api, stream=True).content
    assert b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert raw.count(b": keep-alive") >= 3
    assert stream_text(sse_events(raw))[0] == "Hello there"


def test_split_utf8_cuts_inside_characters(api: FakeAIMLAPI) -> None:
    text = "Grüße, 世界 ✓"
    api.queue(Reply(content=text, split_utf8=True, chunk_chars=5))
    payload = json.dumps({**BODY, "stream": True}).encode()
    raw = raw_http(api.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   b"Authorization: Bearer " + KEY.encode() + b"\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(payload), payload))
    frames = chunk_frames(raw)
    broken = 0
    for frame in frames:
        try:
            frame.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken >= 4  # HTTP chunk boundaries really fall inside multi-byte characters
    assert stream_text(sse_events(b"".join(frames)))[0] == text


def test_close_after_drops_connection(api: FakeAIMLAPI) -> None:
    api.queue(Reply(content="abcdefgh", chunk_chars=2, close_after=2))
    r = chat(api, stream=True)
    got = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in r.iter_content(None):
            got.append(chunk)
    events = sse_events(b"".join(got))
    assert stream_text(events)[0] == "abcd" and "[DONE]" not in events


@pytest.mark.parametrize("shape", ["gateway", "gateway_str", "openai", "html", "text"])
def test_error_shapes(api: FakeAIMLAPI, shape: str) -> None:
    api.queue(Error(502, "upstream broke", shape=shape, headers={"Retry-After": "0"}))
    r = chat(api)
    assert r.status_code == 502 and r.headers["Retry-After"] == "0"
    if shape.startswith("gateway"):
        body = r.json()
        assert set(body) == {"message", "path", "requestId", "statusCode", "timestamp"}
        assert body["message"] == "upstream broke" and body["path"] == "/v1/chat/completions"
        assert body["statusCode"] == (502 if shape == "gateway" else "502")
    elif shape == "openai":
        assert r.json()["error"]["message"] == "upstream broke"
        assert set(r.json()["error"]) == {"message", "type", "code"}
    elif shape == "html":
        assert r.headers["Content-Type"].startswith("text/html")
        assert "<title>502 Bad Gateway</title>" in r.text and "nginx" in r.text
    else:
        assert r.text == "upstream broke"


def test_queue_fifo_then_default_and_reset(api: FakeAIMLAPI) -> None:
    api.queue(Error(429), Reply(content="second"))
    assert chat(api).status_code == 429
    assert chat(api).json()["choices"][0]["message"]["content"] == "second"
    assert chat(api).json()["choices"][0]["message"]["content"] == "echo: Say hi"
    api.default = Reply(content="fixed")
    assert chat(api).json()["choices"][0]["message"]["content"] == "fixed"
    api.queue(lambda rec: Reply(content=rec.json["model"]))
    assert chat(api).json()["choices"][0]["message"]["content"] == "gpt-4o"
    api.reset()
    assert api.requests == [] and api.connections == 0 and api.last_json is None
    assert chat(api).json()["choices"][0]["message"]["content"] == "echo: Say hi"


def test_auth(api: FakeAIMLAPI) -> None:
    api.queue(Reply(content="not for you"))
    for headers in ({}, {"Authorization": "Bearer sk-wrong-SECRET"}):
        r = requests.post(f"{api.base_url}/chat/completions", json=BODY, headers=headers,
                          timeout=5)
        assert r.status_code == 401
        assert r.json()["statusCode"] == 401
        assert "Unauthorized" in r.json()["message"] and "SECRET" not in r.text
    assert len(api.chat_requests) == 2 and api.pending == 1  # rejected: queue untouched
    assert requests.get(f"{api.base_url}/models", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"temperature": 2.5}, "temperature: Number must be less than or equal to 2"),
        ({"temperature": 1.5, "model": "anthropic/claude-sonnet-4.5"},
         "temperature: Number must be less than or equal to 1"),
        ({"temperature": -0.1}, "temperature: Number must be greater than or equal to 0"),
        ({"top_p": 0}, "top_p: Number must be greater than or equal to 0.01"),
        ({"max_completion_tokens": 0}, "max_completion_tokens: Number must be greater"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens: Expected integer"),
        ({"frequency_penalty": 3}, "frequency_penalty: Number must be less than or equal to 2"),
        ({"seed": 0}, "seed: Number must be greater than or equal to 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop: Array must contain at most 4"),
        ({"temperature": "hot"}, "temperature: Expected number, received string"),
        ({"model": "no-such-model"}, "model: Invalid model"),
        ({"model": None}, "model: Required"),
        ({"messages": None}, "messages: Required"),
    ],
)
def test_validation(api: FakeAIMLAPI, extra: dict[str, Any], message: str) -> None:
    r = chat(api, **extra)
    assert r.status_code == 400
    assert r.json()["message"].startswith(f"Body validation error! {message}")


def test_valid_edges_and_non_json(api: FakeAIMLAPI) -> None:
    ok = {"temperature": 0, "top_p": 1, "max_completion_tokens": 1, "seed": 1, "stop": "x",
          "presence_penalty": -2, "max_tokens": 1.5}
    assert chat(api, **ok).status_code == 200
    r = requests.post(f"{api.base_url}/chat/completions", data=b"{nope", headers=AUTH, timeout=5)
    assert r.status_code == 400 and r.json()["message"].startswith("Body validation error!")


def test_keep_alive_reuse_including_stream(api: FakeAIMLAPI) -> None:
    with requests.Session() as session:
        assert chat(api, session).status_code == 200
        api.queue(Reply(content="streamed", delay=0.01))
        assert stream_text(sse_events(chat(api, session, stream=True).content))[0] == "streamed"
        assert session.get(f"{api.base_url}/models", timeout=5).status_code == 200
        assert chat(api, session).status_code == 200
    assert api.connections == 1
    assert [r.method for r in api.requests] == ["POST", "POST", "GET", "POST"]


def test_models_etag_and_failure(api: FakeAIMLAPI) -> None:
    r = requests.get(f"{api.base_url}/models", timeout=5)
    data = r.json()["data"]
    assert [m["id"] for m in data] == [m["id"] for m in DEFAULT_MODELS]
    assert {"image", "embedding", "video", "tts", "chat-completion",
            "openai/chat-completions"} <= {m["type"] for m in data}
    assert {"baidu/ernie-5.0", "gpt-4o", "deepseek/deepseek-r1"} <= {m["id"] for m in data}
    assert set(data[0]["info"]) >= {"name", "developer", "contextLength", "outputMax"}
    etag = r.headers["ETag"]
    r304 = requests.get(f"{api.base_url}/models", headers={"If-None-Match": etag}, timeout=5)
    assert r304.status_code == 304 and r304.content == b""
    api.models = data[:2]
    r = requests.get(f"{api.base_url}/models", headers={"If-None-Match": etag}, timeout=5)
    assert r.status_code == 200 and len(r.json()["data"]) == 2 and r.headers["ETag"] != etag
    api.models_fail = 503
    r = requests.get(f"{api.base_url}/models", timeout=5)
    assert r.status_code == 503 and r.json()["statusCode"] == 503


def test_unknown_path(api: FakeAIMLAPI) -> None:
    r = requests.post(f"{api.base_url}/whatever", json={}, headers=AUTH, timeout=5)
    assert r.status_code == 404 and r.json()["message"] == "Cannot POST /v1/whatever"


def test_raw_stream(api: FakeAIMLAPI) -> None:
    api.queue(RawStream([b"data: {not json}\n\n", b"data: [DONE]\n\n"]),
              RawStream([b"<html>oops</html>"], content_type="text/html"),
              RawStream([b"data: {}\n\n"], close=True))
    assert chat(api, stream=True).content == b"data: {not json}\n\ndata: [DONE]\n\n"
    r = chat(api)
    assert r.status_code == 200 and r.text == "<html>oops</html>"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        chat(api, stream=True).content  # noqa: B018


def test_hang_read_timeouts(api: FakeAIMLAPI) -> None:
    api.queue(Hang(5), Hang(5, after_headers=True, after_events=[b"data: {}\n\n"]))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{api.base_url}/chat/completions", json=BODY, headers=AUTH,
                      timeout=(1, 0.3))
    r = requests.post(f"{api.base_url}/chat/completions", json={**BODY, "stream": True},
                      headers=AUTH, timeout=(1, 0.3), stream=True)
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):  # urllib3 ReadTimeoutError inside
        list(r.iter_content(None))


def test_stop_is_prompt_with_hung_handler() -> None:
    api = FakeAIMLAPI(key=None).start()
    api.default = Hang(30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(f"{api.base_url}/chat/completions", json=BODY, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not api.chat_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    api.stop()
    assert time.monotonic() - start < 1.0
    thread.join(2)
    assert not thread.is_alive() and errors  # the client saw the connection drop


def test_backlog_full_connect_timeout() -> None:
    with FakeAIMLAPI.backlog_full() as url:
        start = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectTimeout):
            requests.get(f"{url}/models", timeout=(0.5, 5))
        assert time.monotonic() - start < 2


def test_closed_port_refused() -> None:
    url = FakeAIMLAPI.closed_port()
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        requests.get(f"{url}/models", timeout=(2, 2))
    assert not isinstance(info.value, requests.exceptions.ConnectTimeout)
    assert "refused" in str(info.value).lower()


def test_standalone_process() -> None:
    script = Path(__file__).with_name("fakeapi.py")
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--key", "K"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:") and line.endswith("/v1")
        base = line.split()[1]
        assert requests.get(f"{base}/models", timeout=5).status_code == 200
        r = requests.post(f"{base}/chat/completions", json=BODY,
                          headers={"Authorization": "Bearer K"}, timeout=5)
        assert r.json()["choices"][0]["message"]["content"] == "echo: Say hi"
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
