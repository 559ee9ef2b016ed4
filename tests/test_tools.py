"""Tools: Python functions the model can call, from a ``%%aiml`` cell and from ``chat()``.

Against the loopback fake, whose ``ToolModel`` asks for tool calls when a request has ``tools``
(streamed in fragments by index, or with the known deviations), honours ``tool_choice`` and
``parallel_tool_calls``, rejects tool messages that do not answer its calls (like a strict
server), and answers in text quoting the tool results.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Literal, Optional, TypedDict

import pydantic
import pytest

from aiml_magics import ParameterError, ToolRoundsExceeded
from aiml_magics.display.terminal import TerminalText
from aiml_magics.tools import tool_from_function
from tests.conftest import TEST_KEY, run_cell
from tests.fakeapi import RawStream, ToolModel

WEATHER = ToolModel(calls=[("get_weather", {"city": "Paris"})])


def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """The current weather in a city.

    Args:
        city: The city's name.
        unit: Celsius or Fahrenheit.
    """
    return "Sunny, 21 °C" if unit == "C" else "Sunny, 70 °F"


# -- schemas from the function itself ---------------------------------------------------------------


class Address(pydantic.BaseModel):
    street: str
    zip: Optional[int] = None  # noqa: UP045 - the Optional spelling is what is tested


class Order(pydantic.BaseModel):
    ship_to: Address
    items: list[str]


class Point(TypedDict):
    x: float
    y: float


def test_schema_from_hints_docstrings_and_nested_models():
    def plan(
        city: str,
        days: int,
        budget: float = 100.0,
        tags: list[str] | None = None,
        options: dict = None,
        mode: Literal["fast", "cheap"] = "fast",
        strict: bool = False,
        order: Order = None,
        where: Point = None,
    ) -> str:
        """Plan a trip to a city.

        The rest of the docstring is not the description.

        Parameters
        ----------
        city : str
            Where to go,
            the city's name.
        days : int
            How long.
        """
        return ""

    spec = tool_from_function(plan).spec()
    fn = spec["function"]
    assert spec["type"] == "function" and fn["name"] == "plan"
    assert fn["description"] == "Plan a trip to a city."
    params = fn["parameters"]
    props = params["properties"]
    assert params["required"] == ["city", "days"]
    assert props["city"] == {"type": "string", "description": "Where to go, the city's name."}
    assert props["days"] == {"type": "integer", "description": "How long."}
    assert props["budget"] == {"type": "number", "default": 100.0}
    assert props["tags"]["anyOf"] == [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
    assert props["options"]["anyOf"][0] == {"type": "object"}
    assert props["mode"] == {"enum": ["fast", "cheap"], "type": "string", "default": "fast"}
    assert props["strict"] == {"type": "boolean", "default": False}
    order = props["order"]["anyOf"][0]
    # The nested model is inlined: no $ref, $defs or title survives (the service strips them).
    text = json.dumps(spec)
    assert "$ref" not in text and "$defs" not in text and '"title"' not in text
    assert order["properties"]["ship_to"]["properties"]["street"] == {"type": "string"}
    assert order["properties"]["items"] == {"type": "array", "items": {"type": "string"}}
    assert props["where"]["anyOf"][0]["properties"] == {"x": {"type": "number"}, "y": {"type": "number"}}
    # Google style too.
    google = tool_from_function(get_weather).spec()["function"]
    assert google["parameters"]["properties"]["city"]["description"] == "The city's name."
    assert google["parameters"]["properties"]["unit"]["enum"] == ["C", "F"]


def test_a_non_function_or_an_unschemable_hint_is_refused():
    with pytest.raises(ParameterError, match="not a function"):
        tool_from_function(42)

    def odd(x: complex) -> None:
        """Odd."""

    with pytest.raises(ParameterError, match="has no JSON schema"):
        tool_from_function(odd)


# -- the loop, from Python ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("style", ["standard", "reuse_index", "fresh_ids", "null_arguments"])
def test_a_single_call_streamed_and_not(session, api, stream, style):
    api.default = ToolModel(calls=[("get_weather", {"city": "Paris"})], style=style)
    resp = session.chat("Weather in Paris?", tools=[get_weather], stream=stream)
    assert resp.text == "Tool results: Sunny, 21 °C"
    (call,) = resp.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"}
    assert call.result == "Sunny, 21 °C" and call.error is None and call.seconds >= 0
    first, second = api.chat_requests
    assert first.json["tools"][0]["function"]["name"] == "get_weather"
    assistant, tool = second.json["messages"][1:3]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
    assert tool == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"],
                    "content": "Sunny, 21 °C"}
    assert len(session.history) == 1  # one exchange, the whole loop in it


def test_null_arguments_read_as_an_empty_object(session, api):
    def now() -> str:
        """The time."""
        return "noon"

    api.default = ToolModel(calls=[("now", {})], style="null_arguments")
    resp = session.chat("Time?", tools=[now])
    assert resp.tool_calls[0].arguments == {} and resp.text == "Tool results: noon"


@pytest.mark.parametrize("style", ["standard", "reuse_index"])
def test_parallel_calls_run_together_in_a_thread_pool(session, api, style):
    # Each call waits for the other: both finish only if they run at the same time.
    barrier = threading.Barrier(2, timeout=10)

    def lookup(city: str) -> dict:
        """Look a city up."""
        barrier.wait()
        return {"city": city, "ok": True}

    api.default = ToolModel(calls=[("lookup", {"city": "Paris"}), ("lookup", {"city": "Oslo"})],
                            style=style)
    resp = session.chat("Both?", tools=[lookup])
    assert [c.arguments["city"] for c in resp.tool_calls] == ["Paris", "Oslo"]
    assert all(c.error is None for c in resp.tool_calls)
    # Dicts go back as JSON, in the calls' order.
    assert resp.text == ('Tool results: {"city": "Paris", "ok": true} | {"city": "Oslo", "ok": true}')
    assert len(api.chat_requests) == 2


def test_no_parallel_calls_runs_them_in_order_one_round_each(session, api):
    order = []

    def step(n: int) -> str:
        """One step."""
        order.append(n)
        return f"done {n}"

    api.default = ToolModel(calls=[("step", {"n": 1}), ("step", {"n": 2})])
    resp = session.chat("Go", tools=[step], parallel_tool_calls=False)
    assert order == [1, 2] and resp.tool_rounds == 2
    assert all(r.json["parallel_tool_calls"] is False for r in api.chat_requests)
    assert resp.text == "Tool results: done 1 | done 2"


def test_a_server_that_ignores_stream_and_sends_one_json_body(session, api):
    body = {"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    api.queue(RawStream([json.dumps(body).encode()], content_type="application/json"))
    api.default = ToolModel()
    resp = session.chat("Oslo?", tools=[get_weather], stream=True)
    assert resp.tool_calls[0].arguments == {"city": "Oslo"}
    assert resp.text == "Tool results: Sunny, 21 °C"
    assert resp.usage.prompt_tokens is not None and resp.usage.prompt_tokens > 3  # both rounds


def test_a_key_in_tool_arguments_never_shows(session, api):
    seen = []

    def note(text: str) -> str:
        """Take a note."""
        seen.append(text)
        return f"noted {text}"

    api.default = ToolModel(calls=[("note", {"text": f"the key is {TEST_KEY}"})])
    resp = session.chat("?", tools=[note])
    from aiml_magics.display.view import final_markdown, final_plain

    shown = final_markdown(resp) + final_plain(resp) + repr(resp.tool_calls)
    assert TEST_KEY not in shown and TEST_KEY[:-4] not in shown
    assert TEST_KEY not in json.dumps(resp.tool_messages) and TEST_KEY not in seen[0]


def test_a_failing_tool_goes_back_to_the_model(session, api):
    def divide(a: int, b: int) -> float:
        """Divide."""
        return a / b

    api.default = ToolModel(calls=[("divide", {"a": 1, "b": 0})])
    resp = session.chat("1/0?", tools=[divide])
    (call,) = resp.tool_calls
    assert call.failed and call.error == "ZeroDivisionError: division by zero"
    assert resp.text == "Tool results: ZeroDivisionError: division by zero"
    from aiml_magics.display.view import final_markdown, footer

    assert "1 tool call (1 failed or declined)" in footer(resp)
    assert "✗ divide(a=1, b=0) → ZeroDivisionError: division by zero" in final_markdown(resp)


def test_bad_arguments_and_unknown_tools_are_results_not_crashes(session, api):
    api.default = ToolModel(calls=[("get_weather", {"city": 3}), ("get_weather", {}),
                                   ("nope", {}), ("get_weather", '{"city": ')],
                            only_offered=False)
    resp = session.chat("?", tools=[get_weather])
    errors = [c.error for c in resp.tool_calls]
    assert errors[0] == "InvalidArguments: city must be a string, not 3"
    assert errors[1] == "InvalidArguments: city is required"
    assert errors[2].startswith("UnknownTool: no tool named 'nope'")
    assert errors[3].startswith("InvalidArguments: the arguments are not valid JSON")


def test_a_declined_call_is_not_run(session, api, monkeypatch):
    ran = []

    def delete_file(path: str) -> str:
        """Delete a file."""
        ran.append(path)
        return "deleted"

    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    api.default = ToolModel(calls=[("delete_file", {"path": "/tmp/x"})])
    resp = session.chat("Clean up", tools=[delete_file], confirm_tools=True)
    assert ran == [] and asked == ["Run the tool call delete_file(path='/tmp/x')? [y/N] "]
    assert resp.tool_calls[0].declined and resp.text == "Tool results: declined by the user"
    # Yes runs it; the setting asks too.
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    session.settings.confirm_tools = True
    session.chat("Clean up", tools=[delete_file])
    assert ran == ["/tmp/x"]


def test_the_round_limit_is_a_typed_error_that_keeps_what_happened(session, api):
    count = []

    def ping() -> str:
        """Ping."""
        count.append(1)
        return "pong"

    session.settings.max_tool_rounds = 2
    api.default = ToolModel(calls=[("ping", {})], forever=True)
    with pytest.raises(ToolRoundsExceeded) as info:
        session.chat("Loop", tools=[ping])
    assert "after 2 rounds (max_tool_rounds = 2)" in str(info.value)
    assert len(count) == 2 and len(api.chat_requests) == 3
    kept = session.history[-1].response
    assert kept is info.value.response and len(kept.tool_calls) == 3
    assert kept.tool_calls[-1].error.startswith("NotRun")
    assert session.chat("next", tools=[ping], tool_choice="none").text == "No tools."


def test_tool_choice_and_flags_are_checked_and_sent(session, api):
    def other() -> str:
        """Other."""
        return "x"

    api.default = ToolModel(calls=[("get_weather", {"city": "Rome"})])
    resp = session.chat("?", tools=[get_weather, other], tool_choice="other")
    first, second = api.chat_requests
    assert first.json["tool_choice"] == {"type": "function", "function": {"name": "other"}}
    assert [c.name for c in resp.tool_calls] == ["other"]  # the fake honoured the named choice
    # Forced again, the model could only ever call tools: the next round leaves it free.
    assert second.json["tool_choice"] == "auto" and resp.text == "Tool results: x"
    session.chat("?", tools=[get_weather], tool_choice="none")
    assert api.last_json["tool_choice"] == "none"
    before = len(api.requests)
    for bad in ("sometimes", "missing_tool"):
        with pytest.raises(ParameterError, match="use auto, none, required or the name"):
            session.chat("?", tools=[get_weather], tool_choice=bad)
    with pytest.raises(ParameterError, match="needs tools"):
        session.chat("?", tool_choice="auto")
    assert len(api.requests) == before


def test_ctrl_c_in_a_tool_keeps_what_happened(session, api):
    from aiml_magics import StreamInterrupted

    def slow() -> str:
        """Slow."""
        raise KeyboardInterrupt

    api.default = ToolModel(calls=[("slow", {})])
    with pytest.raises(StreamInterrupted):
        session.chat("?", tools=[slow])
    kept = session.history[-1].response
    assert kept.finish_reason == "interrupted" and kept.tool_calls[0].error.startswith("Interrupted")
    assert len(api.chat_requests) == 1
    assert session.chat("Hello").text == "No tools."  # the next request works


def test_the_next_turn_carries_the_tool_messages(session, api):
    api.default = WEATHER
    session.chat("Weather?", tools=[get_weather])
    session.chat("Thanks", tools=[get_weather], tool_choice="none")
    messages = api.last_json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2]["content"] == "Sunny, 21 °C"
    assert messages[3]["content"] == "Tool results: Sunny, 21 °C"


def test_terminal_shows_one_plain_line_per_call():
    from aiml_magics.toolcall import ToolCall

    out = io.StringIO()
    view = TerminalText(out)
    hostile = ToolCall("c1", "fetch", '{"url": "x"}', result="\x1b]52;c;AAAA\x07 <img src=x>")
    view.tool_calls([ToolCall("c0", "get_weather", '{"city": "Paris"}', result="Sunny, 21 °C"),
                     hostile])
    lines = out.getvalue().splitlines()
    assert lines == ["⚙ get_weather(city='Paris') → Sunny, 21 °C",
                     "⚙ fetch(url='x') → \\x1b]52;c;AAAA\\x07 <img src=x>"]


def test_terminal_view_through_the_loop_prints_each_call_before_the_answer(session, api):
    out = io.StringIO()
    api.default = ToolModel(calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": 1})])
    resp = session.chat("Weather?", tools=[get_weather], view=lambda label: TerminalText(out))
    text = out.getvalue()
    assert text.index("⚙ get_weather(city='Paris') → Sunny, 21 °C\n") < text.index(
        "⚙ ✗ get_weather(city=1) → InvalidArguments: city must be a string, not 1") < text.index(
        "Tool results:")
    assert "2 tool calls (1 failed or declined)" in text and resp.tool_rounds == 1
    assert "2 tool calls" in session.history.to_markdown()


# -- from a cell ------------------------------------------------------------------------------------


def test_cell_with_tools_shows_each_call_folded_above_the_answer(shell, api):
    api.default = ToolModel(calls=[("get_weather", {"city": "Paris"}), ("leak", {})])
    run_cell(shell, "from tests.test_tools import get_weather\n"
                    "def leak():\n    '''Leaks.'''\n"
                    "    return '<img src=\"https://evil.example/x?q=1\"> <script>alert(1)</script>'")
    cell = run_cell(shell, "%%aiml --tools get_weather,leak\nWeather in Paris?")
    assert cell.error is None
    md = cell.final_markdown()
    # One folded line per call (our markup; the text in it is literal), above the answer.
    first = md.index("<details>\n<summary>get&#95;weather(city='Paris') → Sunny, 21 °C</summary>")
    assert first < md.index("<summary>leak() → &#60;img") < md.index("Tool results:")
    # The tool's output is untrusted: no live image, no script, anywhere in the rendering.
    assert "<img" not in md and "<script" not in md
    assert "2 tool calls" in md
    resp = shell.user_ns["aiml_response"]
    assert [c.name for c in resp.tool_calls] == ["get_weather", "leak"]


def test_cell_flags_go_into_the_request(shell, api):
    api.default = WEATHER
    run_cell(shell, "from tests.test_tools import get_weather")
    cell = run_cell(shell, "%%aiml --tools get_weather --tool-choice get_weather "
                           "--no-parallel-tool-calls --no-stream\nWeather?")
    assert cell.error is None
    body = api.chat_requests[0].json
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False and "stream" not in body
    assert shell.user_ns["aiml_response"].text == "Tool results: Sunny, 21 °C"


def test_unknown_or_non_callable_names_are_refused_before_sending(shell, api):
    run_cell(shell, "not_a_function = 3")
    for line, words in (("--tools nope", "no 'nope' in the notebook"),
                        ("--tools not_a_function", "is a int, not a function"),
                        ("--tool-choice auto", "needs tools")):
        cell = run_cell(shell, f"%%aiml {line}\nHi")
        assert cell.error is not None and words in "".join(cell.error._render_traceback_())
    assert api.requests == []


def test_dry_run_shows_the_tools(shell, api):
    run_cell(shell, "from tests.test_tools import get_weather")
    cell = run_cell(shell, "%%aiml --tools get_weather --dry-run\nWeather?")
    assert '"name": "get_weather"' in cell.shown and '"description": "The current weather' in cell.shown
    assert api.requests == []


def test_confirm_tools_flag_in_a_cell(shell, api, monkeypatch):
    api.default = WEATHER
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    run_cell(shell, "from tests.test_tools import get_weather")
    cell = run_cell(shell, "%%aiml --tools get_weather --confirm-tools\nWeather?")
    assert cell.error is None
    assert shell.user_ns["aiml_response"].text == "Tool results: declined by the user"


def test_round_limit_fails_the_cell_in_one_paragraph(shell, api):
    api.default = ToolModel(calls=[("get_weather", {"city": "Paris"})], forever=True)
    run_cell(shell, "from tests.test_tools import get_weather")
    run_cell(shell, "%config AIMLMagics.max_tool_rounds = 1")
    cell = run_cell(shell, "%%aiml --tools get_weather\nLoop")
    assert isinstance(cell.error, ToolRoundsExceeded)
    (text,) = cell.error._render_traceback_()
    assert "max_tool_rounds = 1" in text and "\n" not in text
    assert len(shell.user_ns["aiml_response"].tool_calls) == 2
    assert run_cell(shell, "%%aiml\nHello").error is None  # the next cell works


def test_chat_with_tools_in_a_notebook(shell, api):
    api.default = WEATHER
    cell = run_cell(shell, "import aiml_magics\nfrom tests.test_tools import get_weather\n"
                           "r = aiml_magics.chat('Weather?', tools=[get_weather])\n"
                           "print(r.text, r.tool_calls[0].result)")
    assert "Tool results: Sunny, 21 °C Sunny, 21 °C" in cell.stdout


def test_replay_of_a_recorded_tool_exchange_runs_nothing(shell, api, tmp_path):
    tape = tmp_path / "tools.json"
    api.default = WEATHER
    run_cell(shell, "calls = []\n"
                    "def get_weather(city: str) -> str:\n"
                    "    '''The weather.'''\n"
                    "    calls.append(city)\n"
                    "    return 'Sunny, 21 °C'")
    run_cell(shell, f"%aiml record {tape}")
    assert run_cell(shell, "%%aiml --tools get_weather --new\nWeather in Paris?").error is None
    assert shell.user_ns["calls"] == ["Paris"]
    recorded = json.loads(tape.read_text())["recordings"]
    assert len(recorded) == 2 and recorded[0]["response"]["tool_calls"][0]["result"] == "Sunny, 21 °C"
    sent = len(api.requests)
    run_cell(shell, f"%aiml replay {tape}")
    cell = run_cell(shell, "%%aiml --tools get_weather --new\nWeather in Paris?")
    assert cell.error is None and len(api.requests) == sent  # nothing sent
    assert shell.user_ns["calls"] == ["Paris"]  # nothing re-run
    resp = shell.user_ns["aiml_response"]
    assert resp.text == "Tool results: Sunny, 21 °C" and resp.tool_calls[0].replayed
    assert "recorded results, nothing re-run" in cell.final_markdown()
