"""The tool loop: answer the model's tool calls until it answers in text, at most
``max_tool_rounds`` rounds; and the request's ``tools`` / ``tool_choice`` fields. No IPython here.

Schemas, argument checks and running one round of calls are in ``tools.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ParameterError
from .toolcall import ToolCall, tool_messages
from .tools import (
    Confirm,
    as_tools,
    check_tool_choice,
    run_calls,
)
from .typeschema import short_repr


def add_tools(payload: dict[str, Any], functions: Sequence[Any] | None, choice: Any,
              *, parallel: bool = True) -> None:
    """Put the tools (and ``tool_choice``, and ``parallel_tool_calls`` when off) in a body."""
    tools = as_tools(functions)
    if not tools:
        raise ParameterError(f"tool_choice = {short_repr(choice)} needs tools: pass tools too.")
    payload["tools"] = [t.spec() for t in tools]
    checked = check_tool_choice(choice, tools)
    if checked is not None:
        payload["tool_choice"] = checked
    if not parallel:
        payload["parallel_tool_calls"] = False


#: Tool calls run in one round; the rest get an error the model reads (it can ask again).
MAX_CALLS_PER_ROUND = 32
#: Characters of a call's arguments shown by ``--confirm-tools`` before the count of the rest.
CONFIRM_CHARS = 4000


def ask_yes_no(call: ToolCall) -> bool:
    """``input()``: run this call? The arguments are shown whole (up to ``CONFIRM_CHARS``, then
    how much is hidden), so what is approved is what runs. Anything but y/yes (or no terminal at
    all) is a no."""
    from .display.view import shown_plain

    parsed = call.arguments
    args = ", ".join(f"{k}={v!r}" for k, v in parsed.items()) if parsed else ""
    if call.parse_error and not parsed:
        args = call.arguments_text
    if len(args) > CONFIRM_CHARS:
        args = f"{args[:CONFIRM_CHARS]}… ({len(args) - CONFIRM_CHARS:,} more characters not shown)"
    try:
        answer = input(f"Run the tool call {shown_plain(f'{call.name}({args})')}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


class ToolLoop:
    """Answers tool calls until the model answers in text, at most ``max_tool_rounds`` rounds.

    Each round's answer (with its calls' results) is kept by the source, so a cassette replays
    the whole exchange: a replayed round brings its recorded results and nothing runs.
    """

    def __init__(self, session: Any, functions: Sequence[Any], confirm: Any, views: list[Any],
                 request: Any = None) -> None:
        self.session = session
        self.cache = getattr(request, "cache", None)  # each round is cached like the first
        self.refresh = bool(getattr(request, "refresh", False))
        self.tools = {t.name: t for t in as_tools(functions)}
        wanted = session.settings.confirm_tools if confirm is None else confirm
        self.confirm: Confirm | None = (
            ask_yes_no if wanted is True else wanted if callable(wanted) else None
        )
        self.max_rounds = int(session.settings.max_tool_rounds)
        self.views = views

    def run(self, payload: dict[str, Any], resp: Any, shown: Any) -> Any:
        session = self.session
        origin = session.effective_base()[0]
        made: list[ToolCall] = []
        messages: list[dict[str, Any]] = []
        earlier: list[Any] = []
        rounds = 0

        def merged_view(label: str) -> Any:  # the final answer is shown with every call
            view = shown(label)
            view.before_finish = lambda r: _merged(r, made, messages, earlier, rounds)
            return view

        while (resp.tool_calls and not getattr(resp, "_merged", False) and resp.complete
               and getattr(resp, "_stream_error", None) is None):
            if rounds >= self.max_rounds:
                return self._exceeded(resp, made, messages, earlier, rounds)
            rounds += 1
            calls = resp.tool_calls
            for extra in calls[MAX_CALLS_PER_ROUND:]:  # 5,000 calls in one round ran before the cap
                extra.error = (f"NotRun: the model asked for {len(calls):,} tool calls in one round; "
                               f"at most {MAX_CALLS_PER_ROUND} run")
            if resp.source not in ("live", "cache"):
                for call in calls:  # a replayed round: its recorded results, nothing runs
                    if call.result is None and call.error is None:
                        call.error = "NotRecorded: the cassette has no result for this call"
            else:
                try:
                    run_calls(calls[:MAX_CALLS_PER_ROUND], self.tools, confirm=self.confirm,
                              parallel=payload.get("parallel_tool_calls") is not False)
                except KeyboardInterrupt:  # Ctrl-C in a tool: keep what happened, then stop
                    return self._interrupted(resp, calls, made, messages, earlier, rounds)
            if self.views:
                self.views[-1].tool_calls(calls)
            session.source.keep(payload, resp, origin)
            step = tool_messages(resp.text, calls, resp.provider_fields)
            messages.extend(tool_messages(resp.text, calls))  # the history's copy: no provider keys
            made.extend(calls)
            earlier.append(resp)
            payload = dict(payload, messages=[*payload["messages"], *step])
            if payload.get("tool_choice") not in (None, "auto", "none"):
                # "required" or a named tool was honoured: forced again, the model could never
                # answer in text, so later rounds leave the choice to it.
                payload["tool_choice"] = "auto"
            session.last_request = payload
            from .remember import answer_one

            resp = answer_one(session, session.client, payload, bool(payload.get("stream")),
                              merged_view, cache=self.cache, refresh=self.refresh)
        if resp.complete and getattr(resp, "_stream_error", None) is None:
            session.source.keep(payload, resp, origin)
        return _merged(resp, made, messages, earlier, rounds)

    def _interrupted(self, resp: Any, calls: list[ToolCall], made: list[ToolCall],
                     messages: list[dict[str, Any]], earlier: list[Any], rounds: int) -> Any:
        from .response import INTERRUPTED

        for call in calls:
            if call.result is None and call.error is None:
                call.error = "Interrupted: stopped by the user"
        final = _merged(resp, [*made, *calls], messages, earlier, rounds)
        final.finish_reason = INTERRUPTED
        return final

    def _exceeded(self, resp: Any, made: list[ToolCall], messages: list[dict[str, Any]],
                  earlier: list[Any], rounds: int) -> Any:
        from .errors import ToolRoundsExceeded

        not_run = list(resp.tool_calls)  # counted now: the merge below puts every call there
        for call in not_run:
            call.error = f"NotRun: the limit of {self.max_rounds} tool rounds was reached"
        final = _merged(resp, [*made, *not_run], messages, earlier, rounds)
        final._stream_error = ToolRoundsExceeded(
            f"The model still asked for tools after {rounds} round{'s' if rounds != 1 else ''} "
            f"(max_tool_rounds = {self.max_rounds}): {_calls(len(made))} ran, the last "
            f"{_calls(len(not_run))} did not. Every call is kept in .tool_calls and the history.",
            response=final,
            hint="Raise max_tool_rounds, or ask for less at once.",
        )
        if self.views:
            self.views[-1].tool_calls(not_run)
        return final


def _calls(n: int) -> str:
    return f"{n} call{'s' if n != 1 else ''}"


def _merged(resp: Any, made: list[ToolCall], messages: list[dict[str, Any]],
            earlier: list[Any], rounds: int) -> Any:
    """The last answer carrying the whole exchange: every call, the messages between, the
    tokens, credits and time of every round added up."""
    if (not rounds and not made) or getattr(resp, "_merged", False):
        return resp
    resp._merged = True
    resp.tool_calls = list(made)
    resp.tool_messages = list(messages)
    resp.tool_rounds = rounds
    answers = [*earlier, resp]
    for name in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        values = [getattr(r.usage, name) for r in answers if getattr(r.usage, name) is not None]
        if values:
            setattr(resp.usage, name, sum(values))
    for name in ("credits_used", "usd_spent"):
        values = [getattr(r, name) for r in answers if getattr(r, name) is not None]
        if values:
            setattr(resp, name, sum(values))
    resp.elapsed = sum(r.elapsed for r in answers) + sum(c.seconds for c in made)
    return resp
