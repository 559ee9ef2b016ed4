"""The API key never leaks, and never travels in clear to another machine.

The test key is recognisable (``conftest.TEST_KEY``); every check greps for it, and for all of it
but the last 4 characters (the only part a masked key shows). The insecure-http tests patch the
socket layer to fail on any connection or name lookup, so no test traffic can leave 127.0.0.1.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import pytest

import aiml_magics
from aiml_magics.errors import AIMLError, ParameterError
from aiml_magics.http import client as client_module
from aiml_magics.http.client import AIMLClient, InsecureTransportWarning, is_loopback
from aiml_magics.http.status import http_error
from aiml_magics.params import BY_NAME as SETTINGS
from aiml_magics.secrets import Secret
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import Error, FakeAIMLAPI, RawStream, Reply
from tests.inert import HOSTILE, HOSTILE_REASONING, assert_inert
from tests.kernels import run_cells
from tests.keyscan import found

HIDDEN = TEST_KEY[:-4]  # everything a mask never shows
# What says too much, looked for in any case and with the whitespace removed (a key wrapped over
# lines or padded with spaces): any 16 characters of the key, or 10 of its random middle (40 bits;
# its word-like prefix "sk-aiml-TEST" alone is words, and masking words destroyed answers).
RANDOM_PART = "3f9c2a7e5b1d4c8f"
assert RANDOM_PART in TEST_KEY
PIECES = sorted(
    {TEST_KEY[i : i + 16].lower() for i in range(len(TEST_KEY) - 15)}
    | {RANDOM_PART[i : i + 10].lower() for i in range(len(RANDOM_PART) - 9)}
)


def assert_clean(text: str, where: str = "") -> None:
    assert TEST_KEY not in text, f"key leaked in {where}"
    assert HIDDEN not in text, f"key (all but its tail) leaked in {where}"
    readable = found(text, PIECES)  # as it is, URL-decoded, base64-decoded at any offset
    assert not readable, f"pieces of the key leaked in {where}: {readable}"


def leaky_faults() -> list:
    """Failures whose bodies echo the key, as some gateways and proxies do."""
    return [
        Error(401, f"Incorrect API key provided: {TEST_KEY}"),
        Error(400, f"Bad header Authorization: Bearer {TEST_KEY}", shape="openai"),
        Error(502, f"<html><title>Bad gateway for {TEST_KEY}</title></html>", shape="text"),
    ]


# -- outputs, objects, exports, logs -------------------------------------------------------------------


def test_key_in_no_cell_output(shell, api, tmp_path):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.queue(Reply(content="fine", reasoning="thinking"), Reply(content="again"), *leaky_faults())
    api.queue(RawStream([b'data: {"choices":[{"delta":{"content":"cut"}}]}\n\n'], close=True))
    export = tmp_path / "history.json"
    cells = [
        "%%aiml\nhello",
        "%%aiml --no-stream\nhello again",
        "%%aiml\nfails 401",
        "%%aiml\nfails 400",
        "%%aiml\nfails 502",
        "%%aiml\ncut short",
        "%%aiml --dry-run\nwhat would be sent",
        "%%aiml -t 9\nrefused",
        "aiml_response",
        "print(repr(aiml_response), str(aiml_response))",
        "%aiml config",
        "%config AIMLMagics",
        "%aiml history",
        "%aiml history --json",
        f"%aiml history --export {export}",
        "%aiml snippet",
        "%aiml models",
        "%aiml help",
    ]
    shown = []
    for cell in cells:
        run = run_cell(shell, cell)
        assert_clean(run.shown, cell)
        if run.error is not None:
            assert_clean(str(run.error), cell)
            assert_clean("".join(getattr(run.error, "_render_traceback_", list)()), cell)
        shown.append(run.shown)
    everything = "\n".join(shown)
    assert "Incorrect API key provided: ****HECK" in everything  # the echo was redacted, not lost
    assert "****HECK" in everything  # `%aiml config` and the dry run name the key, masked
    assert len(api.chat_requests) == 6  # the cells above really talked to the server
    assert_clean(export.read_text(encoding="utf-8"), "history export")
    assert json.loads(export.read_text(encoding="utf-8"))[0] == {"role": "user", "content": "hello"}


def test_key_in_no_repr_or_str(shell, api, magics):
    assert run_cell(shell, "%%aiml\nhello").error is None
    resp = shell.user_ns["aiml_response"]
    client = magics.client()
    secret = magics.api_key
    assert isinstance(secret, Secret)
    err = http_error(401, json.dumps({"message": f"bad key {TEST_KEY}"}), url=client.base_url)
    objects = {
        "ChatResponse": resp,
        "ChatResponse.raw": resp.raw,
        "ChatResponse.request": resp.request,
        "ChatResponse bundle": resp._repr_mimebundle_(),
        "AIMLClient": client,
        "AIMLMagics": magics,
        # (Not the inherited ``config`` trait: `%config AIMLMagics.api_key = ...`, which the
        # shell fixture uses, puts the key in the cell and every configurable's config as typed.)
        "AIMLMagics settings": {k: v for k, v in magics.trait_values().items() if k in SETTINGS},
        "settings table": magics.settings_table(),
        "Secret": secret,
        "http_error": err,
        "AIMLError": AIMLError(f"something about {TEST_KEY}"),
        "ParameterError": ParameterError(f"key {TEST_KEY} is not a number"),
        "conversation": magics.conversation.to_json() + magics.conversation.to_markdown(),
    }
    for where, obj in objects.items():
        for text in (repr(obj), str(obj), f"{obj}", "%s" % (obj,), f"{obj!r:>10}"):  # noqa: UP031
            assert_clean(text, where)
    for exc in (err, objects["AIMLError"], objects["ParameterError"]):
        assert_clean(repr(exc.args), "exception args")
        assert "****HECK" in str(exc)
    assert secret.reveal() == TEST_KEY  # held, and usable: the request carried it
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_key_in_no_log_record(shell, api, caplog):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 1")
    api.queue(Error(429, headers={"Retry-After": "0"}), Reply(content="ok"), *leaky_faults()[:2])
    api.queue(RawStream([b'data: {"choices":[{"delta":{"content":"cut"}}]}\n\n'], close=True))
    with (
        caplog.at_level(logging.DEBUG),
        caplog.at_level(logging.DEBUG, logger="urllib3"),
        caplog.at_level(logging.DEBUG, logger="requests"),
        caplog.at_level(logging.DEBUG, logger="aiml_magics"),
    ):
        for i in range(4):
            run_cell(shell, f"%%aiml\nlog me {i}")
        run_cell(shell, "%aiml models --refresh")
    assert len(api.chat_requests) == 5
    text = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert "POST /v1/chat/completions" in text and "Retry" in text  # urllib3 did log at DEBUG
    assert_clean(text, "logs")


@pytest.mark.kernel
def test_key_in_no_saved_notebook(monkeypatch, api, tmp_path):
    """A notebook run in a real kernel and saved, as it would be shared, holds no key; a hostile
    answer's outputs there hold no active content (issue #9 through `%%aiml` in a kernel)."""
    api.queue(
        Reply(content="first answer", reasoning="some thinking"),
        *leaky_faults(),
        Reply(content="after the errors"),
        Reply(content=HOSTILE, reasoning=HOSTILE_REASONING, chunk_chars=5),
    )
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    cells = [
        "%load_ext aiml_magics\nimport logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)",
        "%config AIMLMagics.max_retries = 0",
        "%%aiml\nHi!",
        "%%aiml\nthis fails with 401",
        "%xmode Verbose",
        "%%aiml\nthis fails with 400",
        # What %debug would walk: the frames of the last error.
        "tb = sys.last_traceback\nwhile tb is not None:\n"
        "    print(tb.tb_frame.f_code.co_name, {k: v for k, v in tb.tb_frame.f_locals.items()\n"
        "          if not k.startswith('_') and k not in ('In', 'Out', 'tb')})\n"
        "    tb = tb.tb_next",
        "%tb",
        "%%aiml\nthis fails with 502",
        "%%aiml\nand this works",
        "aiml_response",
        "print(repr(aiml_response), aiml_response.raw, aiml_response.request)",
        "import aiml_magics\nm = aiml_magics.instance()\nprint(m, m.client(), m.trait_values(), vars(m))",
        "%aiml config",
        "%config AIMLMagics",
        "%aiml history",
        "%aiml snippet",
        "%%aiml --dry-run\nshow me",
        "%%aiml\nsummarise this page",
        "aiml_response",
        "%aiml history",
        "print(repr(get_ipython().config))",
    ]
    nb = run_cells(cells, tmp_path, save_as="shared.ipynb")
    path = tmp_path / "shared.ipynb"
    saved = path.read_text(encoding="utf-8")
    assert_clean(saved, "saved notebook")
    assert_clean(json.dumps(json.loads(saved), ensure_ascii=True), "saved notebook (escaped)")
    assert "after the errors" in saved and "****HECK" in saved  # it ran, and masked what it named
    assert "POST /v1/chat/completions" in saved  # debug logging was on in the kernel
    assert "ask {}" in saved  # the frames under the error were walked, and hold nothing
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    # Typed errors (all AIMLError subclasses): 401, 400, %tb's replay of the 400, the proxy's 502.
    assert [e.ename for e in errors] == ["AuthenticationError", "BadRequestError", "BadRequestError",
                                         "ServerError"]
    assert all(len(e.traceback) == 1 for e in errors)  # one paragraph, even in Verbose mode
    assert len(api.chat_requests) == 6
    hostile = [c for c in nb.cells if c.source in ("%%aiml\nsummarise this page", "aiml_response",
                                                      "%aiml history")][-3:]
    markdowns = [o.data["text/markdown"] for c in hostile for o in c.outputs
                 if "text/markdown" in o.get("data", {})]
    assert len(markdowns) == 3 and "Your key is ****HECK" in markdowns[0]
    for md in markdowns:
        assert_inert(md, "kernel output")
        assert "\x1b" not in md


# -- plain http ------------------------------------------------------------------------------------


class NetworkBlocked(OSError):
    """Raised by the patched socket layer: reaching it means a real connection was attempted."""


@pytest.fixture
def no_network(monkeypatch):
    """Record and refuse every connection attempt and name lookup in this process."""
    calls: list[tuple[str, object]] = []

    def refuse(kind):
        def fail(*args, **kwargs):
            target = args[1] if kind.startswith("socket.") else args[0]
            calls.append((kind, target if isinstance(target, str) else target[0]))
            raise NetworkBlocked(f"{kind} blocked by the test")

        return fail

    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    return calls


@pytest.mark.parametrize(
    "base",
    [
        "http://api.aimlapi.com/v1",
        "HTTP://api.aimlapi.com/v1",
        "http://10.1.2.3:8080/v1",
        "http://[2001:db8::1]/v1",
        "http://0.0.0.0:8000",
        "http://127.0.0.1.example.com/v1",
        "http://service.localhost.example/v1",
    ],
)
def test_key_is_not_sent_over_plain_http_to_another_host(bare_shell, no_network, base):
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {base!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_cell(bare_shell, "%%aiml\nhello")
    assert isinstance(run.error, AIMLError), run.shown
    text = str(run.error)
    assert "Refusing to send the API key over plain http://" in text
    assert "https://" in text and "allow_insecure_http" in text
    assert_clean(run.shown + text)
    assert no_network == []  # refused before any lookup or connection
    assert not [w for w in caught if issubclass(w.category, InsecureTransportWarning)]


def test_allowed_plain_http_warns_once(bare_shell, no_network):
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    bare_shell.run_line_magic("config", "AIMLMagics.base_url = 'http://api.aimlapi.com/v1'")
    bare_shell.run_line_magic("config", "AIMLMagics.allow_insecure_http = True")
    bare_shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = [run_cell(bare_shell, f"%%aiml\nhello {i}") for i in range(3)]
    insecure = [w for w in caught if issubclass(w.category, InsecureTransportWarning)]
    assert len(insecure) == 1
    message = str(insecure[0].message)
    assert "api.aimlapi.com" in message and "plain http://" in message
    assert_clean(message)
    # Allowed, so the client went for the network, where the test's socket layer stopped it.
    assert no_network and all(host == "api.aimlapi.com" for _, host in no_network)
    for run in runs:
        assert isinstance(run.error, AIMLError) and "Could not connect" in str(run.error)
        assert_clean(run.shown + str(run.error))


def test_models_list_needs_no_key_so_plain_http_is_not_refused(no_network):
    client = AIMLClient(TEST_KEY, "http://api.aimlapi.com/v1", max_retries=0)
    with pytest.raises(AIMLError, match="Could not list models"):
        client.list_models()
    assert no_network and no_network[0][0] in ("getaddrinfo", "create_connection")


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.9.9.9/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://LOCALHOST/v1", True),
        ("http://api.localhost/v1", False),
        ("http://localhost.example.com/v1", False),
        ("http://127.0.0.1.nip.io/v1", False),
        ("http://10.0.0.1/v1", False),
        ("http://0.0.0.0/v1", False),
        ("http://2130706433/v1", False),
    ],
)
def test_loopback_is_decided_from_the_text_alone(no_network, url, loopback):
    assert is_loopback(url) is loopback
    assert no_network == []


# -- the key prompt ------------------------------------------------------------------------------


def test_aiml_key_is_masked_and_held_in_memory_only(bare_shell, api, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    prompts = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt) or TEST_KEY)

    def no_echoing_input(*args):
        raise AssertionError("the key must be read with getpass, which does not echo it")

    monkeypatch.setattr("builtins.input", no_echoing_input)
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    env_before = dict(os.environ)
    started = time.time() - 1
    run = run_cell(bare_shell, "%aiml key")
    assert run.error is None and len(prompts) == 1
    assert_clean(run.shown)
    assert run_cell(bare_shell, "%%aiml\nhi").error is None
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert aiml_magics.instance().session.key_source == "%aiml key"
    # Memory only: not in the environment (inherited by subprocesses), the namespace, the
    # session's input history, the shell's config, or any file written meanwhile.
    assert dict(os.environ) == env_before
    assert_clean(repr({k: v for k, v in bare_shell.user_ns.items() if not k.startswith("__")}))
    history = bare_shell.history_manager
    history.writeout_cache()
    assert_clean(repr(history.input_hist_raw), "input history")
    assert_clean(repr(list(history.get_range(history.session_number, raw=True))), "history db")
    assert_clean(repr(bare_shell.config), "shell config")
    written = [
        p
        for root in (tmp_path, Path(bare_shell.profile_dir.location))
        for p in root.rglob("*")
        if p.is_file() and p.stat().st_mtime >= started and not p.name.startswith("history.sqlite")
    ]
    for path in written:
        assert TEST_KEY.encode() not in path.read_bytes(), path


def test_allowed_plain_http_says_so_in_every_footer(shell, api, monkeypatch):
    """The once-per-host warning goes to stderr, which the final render may clear: the footer
    of every such answer carries it too. Traffic stays on 127.0.0.1; only the verdict is forced."""
    monkeypatch.setattr(client_module, "is_loopback", lambda url: False)
    shell.run_line_magic("config", "AIMLMagics.allow_insecure_http = True")
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = run_cell(shell, "%%aiml\nhello")
        assert run.error is None, run.shown
        assert "sent over plain http://" in run.final_markdown()


@pytest.mark.parametrize("bad", [TEST_KEY[:10] + "\n" + TEST_KEY[10:], TEST_KEY + " x", TEST_KEY + "\u201d"])
def test_malformed_key_is_refused_without_echo(bare_shell, api, bad, caplog, monkeypatch):
    bare_shell.run_line_magic("config", f"AIMLMagics.base_url = {api.base_url!r}")
    run = run_cell(bare_shell, f"%config AIMLMagics.api_key = {bad!r}")
    assert "unexpected character at position" in caplog.text
    monkeypatch.setenv("AIML_API_KEY", bad)  # the same key from the environment
    run = run_cell(bare_shell, "%%aiml\nhello")
    assert isinstance(run.error, AIMLError) and "unexpected character" in str(run.error)
    for text in (run.shown, str(run.error), caplog.text):
        assert TEST_KEY[:10] not in text and TEST_KEY[10:20] not in text
    assert api.requests == []


def test_proxy_from_the_environment_is_bypassed_for_loopback(shell, api, monkeypatch):
    # A proxy that would refuse everything: the request only works if it goes straight to the fake.
    monkeypatch.setenv("HTTP_PROXY", FakeAIMLAPI.closed_port())
    monkeypatch.setenv("ALL_PROXY", FakeAIMLAPI.closed_port())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    run = run_cell(shell, "%%aiml --no-stream\nstraight")
    assert run.error is None, run.shown
    assert api.last_json["messages"][-1]["content"] == "straight"
    assert run_cell(shell, "%aiml models").error is None


def test_history_views_and_export_mask_a_key_pasted_into_a_prompt(shell, api, tmp_path):
    run_cell(shell, f"%%aiml\nmy key is {TEST_KEY}, keep it secret")
    target = tmp_path / "h.json"
    shown = run_cell(shell, f"%aiml history --export {target}").shown
    shown += run_cell(shell, "%aiml history").shown + run_cell(shell, "%aiml history --json").shown
    assert TEST_KEY not in shown and TEST_KEY not in target.read_text()
    assert "****HECK" in target.read_text()


def test_proxy_from_the_environment_is_kept_for_the_real_service(monkeypatch, no_network):
    """Read once when the session is built (no connection made): corporate proxies still work."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    remote = AIMLClient(TEST_KEY, "https://api.aimlapi.com/v1").session
    assert remote.proxies.get("https") == "http://proxy.example:3128"
    local = AIMLClient(TEST_KEY, "http://127.0.0.1:9/v1").session
    assert not local.proxies and local.trust_env is False
    assert no_network == []


# -- issue #9: whatever the service sends back, no piece of the key shows ----------------------------


def _echoes() -> list:
    """Error bodies that quote the key the ways gateways and proxies do: whole, past an excerpt
    limit (so the cut falls inside the key), upper-cased, wrapped over lines, padded."""
    wrapped = f"  {TEST_KEY[:15]}\n    {TEST_KEY[15:30]} \t{TEST_KEY[30:]}  "
    return [
        Error(401, "x" * 385 + f" {TEST_KEY}"),  # the 400-character clip cuts inside the key
        Error(401, f"INVALID KEY {TEST_KEY.upper()}", shape="openai"),
        Error(400, f"bad header: Bearer {wrapped}", shape="gateway_str"),
        Error(502, f"<html><title>{'A' * 100} {TEST_KEY}</title></html>", shape="text"),  # 120 clip
        Error(502, f"<html><body><h1>proxy</h1>{TEST_KEY[:9]}&#45;{TEST_KEY[9:]}</body></html>",
              shape="text"),
        Error(403, f"   {TEST_KEY}   ", shape="text"),
    ]


def test_error_pages_that_echo_the_key_show_no_piece_of_it(shell, api):
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.queue(*_echoes())
    for i in range(len(_echoes())):
        run = run_cell(shell, f"%%aiml --no-stream\nfails {i}")
        assert isinstance(run.error, AIMLError), run.shown
        shown = "".join(run.error._render_traceback_()) + str(run.error) + run.shown
        shown += repr(run.error.args) + repr(run.error.service_message)
        assert_clean(shown, f"echo {i}")
        assert "****" in shown, shown  # masked, not dropped
    assert len(api.chat_requests) == len(_echoes())


def test_verbose_tracebacks_hold_no_frame_with_the_key(shell, api):
    """`%xmode Verbose` shows locals; `%tb` and `%debug` read the frames of the last error."""
    shell.run_line_magic("config", "AIMLMagics.max_retries = 0")
    api.queue(Error(401, f"Incorrect API key provided: {TEST_KEY}"), RawStream(
        [f'data: {{"choices":[{{"delta":{{"content":"{TEST_KEY}"}}}}]}}\n\n'.encode()], close=True))
    assert run_cell(shell, "%xmode Verbose").error is None
    try:
        for cell in ("%%aiml\nfails", "%%aiml\ncut with the key in it"):
            run = run_cell(shell, cell)
            assert isinstance(run.error, AIMLError), run.shown
            assert len(run.error._render_traceback_()) == 1  # one paragraph, even in Verbose mode
            frames, tb = [], sys.last_traceback
            while tb is not None:
                frames.append(tb.tb_frame)
                tb = tb.tb_next
            assert len(frames) >= 3
            for frame in frames:
                if frame.f_code.co_name == "<module>":
                    continue  # the user's namespace: what they typed (the fixture's %config line)
                assert_clean(repr(frame.f_locals), f"frame {frame.f_code.co_name}")
            assert sys.last_value.__context__ is None
            tb_out = run_cell(shell, "%tb")
            assert_clean(tb_out.shown, "%tb")
    finally:
        run_cell(shell, "%xmode Context")


def _reachable(root: object, depth: int = 4) -> list[tuple[str, object]]:
    """Every object a variable inspector reaches from ``root`` in a few steps (ours only)."""
    out, seen, todo = [], set(), [("root", root, 0)]
    while todo:
        path, obj, d = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append((path, obj))
        if d >= depth:
            continue
        if isinstance(obj, dict):
            todo += [(f"{path}[{k!r}]", v, d + 1) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo += [(f"{path}[{i}]", v, d + 1) for i, v in enumerate(obj)]
        elif type(obj).__module__.startswith("aiml_magics") and hasattr(obj, "__dict__"):
            todo += [(f"{path}.{k}", v, d + 1) for k, v in vars(obj).items() if k != "shell"]
    return out


def test_objects_a_variable_inspector_reaches_are_masked(shell, api, magics):
    api.queue(Reply(content=f"the key is {TEST_KEY}"))
    assert run_cell(shell, "%%aiml\nwhat is my key?").error is None
    client = magics.client()
    assert client.session is not None
    roots = {
        "magics": magics, "client": client, "registry": aiml_magics.errors.SECRETS,
        "conversation turns": magics.conversation.turns, "last response": magics.last_response,
    }
    for name, root in roots.items():
        for path, obj in _reachable(root):
            assert_clean(repr(obj), f"{name}: {path}")
    assert_clean(repr(magics.trait_values()), "trait values (config included)")
    assert_clean(repr(magics.session.connection._ident_built), "client identity")
    # Still the real key where it is used.
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_config_holds_no_raw_key_after_percent_config(shell, api):
    """The shell fixture ran `%config AIMLMagics.api_key = '<key>'`: IPython's config object
    (shared by every configurable) holds the masked Secret, and the key still works."""
    for text in (repr(shell.config), str(shell.config), repr(shell.config.AIMLMagics)):
        assert_clean(text, "shell.config")
    for configurable in shell.configurables:  # %config merges into each one's config
        assert_clean(repr(configurable.config), type(configurable).__name__)
    for cell in ("%config", "%config AIMLMagics", "print(get_ipython().config)"):
        run = run_cell(shell, cell)
        assert run.error is None
        assert_clean(run.shown, cell)
    cell = f"%config AIMLMagics.api_key = {TEST_KEY.lower()!r}\nprint(repr(get_ipython().config))"
    run = run_cell(shell, cell)
    assert_clean(run.shown, "config set and printed in one cell")
    run_cell(shell, f"%config AIMLMagics.api_key = {TEST_KEY!r}")
    assert run_cell(shell, "%%aiml\nstill works").error is None
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_key_from_an_ipython_config_file_is_masked_too(bare_shell, api):
    aiml_magics.unload_ipython_extension(bare_shell)
    bare_shell.extension_manager.loaded.discard("aiml_magics")
    bare_shell.config.AIMLMagics.api_key = TEST_KEY  # what c.AIMLMagics.api_key in a profile does
    bare_shell.config.AIMLMagics.base_url = api.base_url
    bare_shell.run_line_magic("load_ext", "aiml_magics")
    assert_clean(repr(bare_shell.config), "config from a profile")
    assert run_cell(bare_shell, "%%aiml\nhi").error is None
    assert api.chat_requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


# -- issue #9 item 5: the URL we check is the URL we connect to ---------------------------------------


@pytest.fixture
def only_loopback_names(monkeypatch):
    """Name lookups of anything but a loopback name fail (and are recorded): a wrong connection
    is detected without any traffic leaving the machine."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost", "::1"):
            looked_up.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: blocked by the test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


AMBIGUOUS = [
    ("http://evil.example\\@127.0.0.1:{port}/v1", "backslash"),
    ("http://evil.example\\\\@127.0.0.1:{port}/v1", "backslash"),
    ("http://user:hunter2pass@127.0.0.1:{port}/v1", "user-info"),
    ("http://127.0.0.1:{port}@evil.example/v1", "user-info"),
    ("https://token@api.aimlapi.com/v1", "user-info"),
    ("http://127.0.0.1:{port}/v1?key=hunter2pass", "query string"),
    ("http://127.0.0.1:{port}/v1#hunter2pass", "fragment"),
    ("http://127.0.0.1:{port}/v1 evil", "space"),
]


def test_requests_itself_would_go_to_the_backslash_host(api, only_loopback_names):
    """Why item 5 matters: the transport's parser sees evil.example where urllib.parse sees
    127.0.0.1 (so the old check passed). The patched lookup catches it; nothing leaves."""
    from urllib.parse import urlsplit

    import requests

    url = f"http://evil.example\\@127.0.0.1:{api.port}/v1/models"
    assert urlsplit(url).hostname == "127.0.0.1"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)
    assert only_loopback_names == ["evil.example"]
    assert api.requests == []


@pytest.mark.parametrize(("template", "problem"), AMBIGUOUS)
def test_ambiguous_base_urls_are_refused_before_any_connection(
    bare_shell, api, only_loopback_names, monkeypatch, caplog, template, problem
):
    url = template.format(port=api.port)
    bare_shell.run_line_magic("config", f"AIMLMagics.api_key = {TEST_KEY!r}")
    run_cell(bare_shell, f"%config AIMLMagics.base_url = {url!r}")  # %config logs the refusal
    assert "base_url is refused: it " in caplog.text and problem in caplog.text, caplog.text
    assert "hunter2pass" not in caplog.text
    assert aiml_magics.instance().base_url is None  # the setting kept its old value
    monkeypatch.setenv("AIML_API_BASE", url)  # the same URL from the environment
    for cell in ("%%aiml\nhello", "%%aiml --dry-run\nhello", "%aiml models"):
        run = run_cell(bare_shell, cell)
        assert isinstance(run.error, AIMLError), (cell, run.shown)
        message = str(run.error)
        assert message.startswith("base_url is refused: it ") and problem in message
        assert message.count(". ") == 0  # one sentence
        for text in (message, run.shown):
            assert "hunter2pass" not in text and "evil.example" not in text
    assert api.requests == [] and only_loopback_names == []


def test_secret_registry_is_masked_and_keeps_every_key_registered_from_threads():
    import threading

    from aiml_magics.secrets import SecretRegistry

    registry = SecretRegistry()
    keys = [[f"sk-thread{i}-{j:05d}-{TEST_KEY[-12:]}" for j in range(200)] for i in range(8)]
    threads = [threading.Thread(target=lambda ks=ks: [registry.add(k) for k in ks]) for ks in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry) == 1600  # no registration lost to a concurrent one
    assert_clean(repr(registry) + repr(vars(registry)) + repr(registry.items()), "registry")
    assert registry.redact(f"echo {keys[3][7]} end") == "echo ****HECK end"
