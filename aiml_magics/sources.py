"""Where answers come from, behind one interface: the service, a cassette, or both.

A source turns a validated request body into a ``ChatResponse``, feeding a view (anything with
``reasoning``, ``content``, ``finish`` and ``abandon``) as the answer arrives. The session holds
one source; ``%aiml replay`` / ``record`` / ``live`` swap it. Tests and benchmarks inject their
own instead of patching module globals. No IPython here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import StreamInterrupted
from .protocols import CallbackView, NoView, Source, View, ViewFactory
from .response import ChatResponse

if TYPE_CHECKING:
    from .cassette import Cassette
    from .http.client import AIMLClient

__all__ = ["CallbackView", "LiveSource", "NoView", "ReadFirst", "Source", "View", "ViewFactory"]


class LiveSource:
    """The service, through the session's client (built on first use)."""

    name = "live"
    needs_key = True

    def answer(
        self, client: Callable[[], AIMLClient], payload: dict[str, Any], stream: bool, view: ViewFactory
    ) -> ChatResponse:
        http = client()
        http._headers()  # no key: fail here, before any display or request
        shown = view(payload["model"])
        started = time.monotonic()
        try:
            opened = http.stream(payload) if stream else http.complete(payload)
        except KeyboardInterrupt:
            shown.abandon()
            raise StreamInterrupted("stopped before any answer arrived.") from None
        except BaseException:
            shown.abandon()
            raise
        if isinstance(opened, ChatResponse):
            opened.elapsed = time.monotonic() - started
            opened.first_token_seconds = opened.elapsed  # the whole answer arrives at once
            _note_transport(http, opened)
            finish_view(shown, opened)
            return opened
        chat = opened
        stopped = False
        first: float | None = None
        try:
            for content, reasoning in chat:
                if first is None and (content or reasoning):
                    first = time.monotonic() - started
                if reasoning:
                    shown.reasoning(reasoning)
                if content:
                    shown.content(content)
        except KeyboardInterrupt:
            if not chat.ended:  # a Ctrl-C after the answer was complete leaves it complete
                chat.interrupted = True
            stopped = True
            chat.close()
        resp = chat.response()
        resp.first_token_seconds = first
        _note_transport(http, resp)
        if stopped:
            resp._stopped = True  # type: ignore[attr-defined]
        finish_view(shown, resp)
        resp._stream_error = chat.error  # type: ignore[attr-defined]
        return resp

    def keep(self, payload: dict[str, Any], resp: ChatResponse, origin: str) -> None:
        pass

    def __repr__(self) -> str:
        return "LiveSource()"


def finish_view(view: View, resp: ChatResponse) -> None:
    """Show the final rendering; a Ctrl-C meanwhile must not lose the answer. The rendering is
    tried once more (so the cell shows the answer) and ``resp._stopped`` is marked: the request
    stops with one line once the answer is stored."""
    try:
        view.finish(resp)
        return
    except KeyboardInterrupt:
        resp._stopped = True  # type: ignore[attr-defined]
    try:
        view.finish(resp)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: the display may be incomplete, the answer is still stored


def _note_transport(client: AIMLClient, resp: ChatResponse) -> None:
    """Every answer that put the key on plain http:// says so in its footer."""
    if client.key_in_clear:
        resp.warnings.append("the API key was sent over plain http:// (allow_insecure_http)")


class RecordingSource(LiveSource):
    """The service, with every complete answer also saved to a cassette (never the key)."""

    name = "record"

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette

    def keep(self, payload: dict[str, Any], resp: ChatResponse, origin: str) -> None:
        self.cassette.record(payload, resp, origin)

    def __repr__(self) -> str:
        return f"RecordingSource({str(self.cassette.path)!r})"


class ReplaySource:
    """Recorded answers; a request with no recording gets the offline echo. Sends nothing."""

    name = "replay"
    needs_key = False

    def __init__(self, cassette: Cassette | None) -> None:
        self.cassette = cassette

    def answer(
        self, client: Callable[[], AIMLClient], payload: dict[str, Any], stream: bool, view: ViewFactory
    ) -> ChatResponse:
        from .cassette import offline_echo, pieces
        from .http.maskanswer import mask_answer
        from .http.urls import register_env_keys

        register_env_keys()  # a key exported since the session began: masked here too
        started = time.monotonic()
        recording = self.cassette.find(payload) if self.cassette is not None else None
        # A cassette is a file anyone may have edited: the same redaction as a live answer.
        resp = mask_answer(recording.to_response(payload) if recording else offline_echo(payload))
        shown = view(f"{payload['model']} ({resp.source})")
        resp.first_token_seconds = time.monotonic() - started
        if stream:
            for piece in pieces(resp.reasoning):
                shown.reasoning(piece)
            for piece in pieces(resp.text):
                shown.content(piece)
        resp.elapsed = time.monotonic() - started
        finish_view(shown, resp)
        return resp

    def keep(self, payload: dict[str, Any], resp: ChatResponse, origin: str) -> None:
        pass

    def __repr__(self) -> str:
        name = str(self.cassette.path) if self.cassette is not None else None
        return f"ReplaySource({name!r})"


class ReadFirst:
    """A view whose ``finish`` sees the answer with its ``.data`` parsed and the session's image
    rule on it (re-displays of ``aiml_response`` follow the same rule)."""

    def __init__(self, inner: View, allow_remote_images: bool, tools_on: bool = False,
                 notes: tuple[str, ...] = ()) -> None:
        self._inner = inner
        self._notes = notes  # the request's facts, added to the answer's footer
        self._allow = allow_remote_images
        self._tools_on = tools_on
        self.waiting = False  # this round asked for tools: its view shows them, not an answer
        self.before_finish: Callable[[ChatResponse], Any] | None = None  # the tool loop's merge

    def reasoning(self, delta: str) -> None:
        self._inner.reasoning(delta)

    def content(self, delta: str) -> None:
        self._inner.content(delta)

    def finish(self, resp: ChatResponse) -> None:
        if self._tools_on and resp.tool_calls and resp.complete:
            self.waiting = True  # the tools run next; the final answer shows every call
            self._inner.abandon()
            return
        if self.before_finish is not None:
            self.before_finish(resp)
        from .response import read_json

        read_json(resp)
        resp.allow_remote_images = self._allow
        resp.warnings.extend(n for n in self._notes if n not in resp.warnings)
        self._inner.finish(resp)

    def tool_calls(self, calls: list[Any]) -> None:
        """One round's calls have run: a view that can (a terminal) shows one line each."""
        show = getattr(self._inner, "tool_calls", None)
        if show is not None:
            show(calls)

    def abandon(self) -> None:
        self._inner.abandon()
