"""``Session``: settings, a source of answers, and the history of exchanges. Plain Python.

The notebook's ``%%aiml`` cells, ``chat()``, ``compare()`` and ``map()`` go the same way:
``prepare`` checks everything and returns one frozen ``Request`` before anything is sent;
``send`` asks the source, keeps the exchange, then raises if the answer did not end normally
(what arrived is kept first). The notebook layer only parses cells and adds advice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .connection import Connection
from .endpoints import RESPONSES, endpoint_for
from .errors import AIMLError, IncompleteAnswer, ParameterError, StreamInterrupted, mask_key
from .history import Exchange, History
from .params import BY_NAME, REQUEST_PARAMS, build_payload, check_prompt
from .protocols import CallbackView, NoView, View, ViewFactory
from .remember import answer_one, how_to_answer
from .request import Request
from .response import ChatResponse
from .responses_api import check_responses
from .secrets import Secret, forget_frames
from .settings import Settings
from .sources import LiveSource, ReadFirst, Source


class Session:
    """One conversation with the service: settings, the transport, the answer source, history.

    ``Session(api_key=None, base_url=None, **settings)``: the key and base URL default to
    ``AIML_API_KEY`` / ``AIML_API_BASE``; every other setting (model, temperature, timeout, ...)
    is checked when it is set. ``settings`` may be given instead as a ``Settings`` object, which
    is how the notebook shares its ``%config`` traits with the session.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        settings: Settings | None = None,
        source: Source | None = None,
        **values: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ParameterError(
                f"Unknown setting {unknown[0]!r}: use one of {', '.join(sorted(BY_NAME))}."
            )
        from traitlets import TraitError

        try:
            for name, value in values.items():
                setattr(self.settings, name, value)
            if base_url is not None:
                self.settings.base_url = base_url
            if api_key is not None:
                self.settings.api_key = api_key
        except TraitError as exc:
            raise ParameterError(str(exc)) from None
        key_source = "argument" if api_key else "%config" if self.settings.api_key else None
        self.connection = Connection(self.settings, key_source)
        self.source: Source = source if source is not None else LiveSource()
        self.history = History(self.settings.max_history)
        self.settings.observe(self._settings_changed, ["max_history", "api_key"])
        self.last_request: dict[str, Any] | None = None
        self.last_response: ChatResponse | None = None
        self.last_comparison: Any = None  # the latest Comparison (comparison.py)
        # Called with each stored answer (None when the conversation is reset): the panel's
        # status line listens here. A failing listener is reported, never fails the request.
        self.on_answer: list[Callable[[ChatResponse | None], Any]] = []

    def __repr__(self) -> str:
        key, _ = self.effective_key()
        base, _ = self.effective_base()
        return (
            f"Session(model={self.settings.model!r}, base_url={base!r}, key={mask_key(key)!r}, "
            f"source={self.source.name!r}, exchanges={len(self.history)})"
        )

    def _settings_changed(self, change: Any) -> None:
        if change["name"] == "max_history":
            self.history.bound(change["new"])
        elif change["name"] == "api_key":
            self.key_source = "%config" if change["new"] else None

    # -- where to, with what key (connection.py) -------------------------------------------------

    @property
    def key_source(self) -> str | None:
        return self.connection.key_source

    @key_source.setter
    def key_source(self, value: str | None) -> None:
        self.connection.key_source = value

    def effective_key(self) -> tuple[Secret | None, str]:
        return self.connection.effective_key()

    def effective_base(self) -> tuple[str, str]:
        return self.connection.effective_base()

    def endpoint(self, payload: dict[str, Any]) -> str:
        """Chat completions or Responses (``endpoints.py``), with what the client learnt."""
        client = self._client
        return str(client.outgoing_endpoint(payload)) if client else endpoint_for(payload.get("model"))

    def client(self) -> Any:
        """The shared client, rebuilt only when key, base URL or transport settings change."""
        return self.connection.client()

    def fresh_client(self) -> Any:
        return self.connection.fresh_client()

    @property
    def _client(self) -> Any:
        return self.connection.client_obj

    def close(self) -> None:
        self.connection.close()

    # -- one request -----------------------------------------------------------------------------

    def prepare(
        self,
        prompt: str,
        *,
        new: bool = False,
        json: bool = False,
        schema: Any = None,
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        images: Any = None,
        confirm_tools: bool | Callable[[Any], bool] | None = None,
        **options: Any,
    ) -> Request:
        """The ``Request`` that ``send`` would send, checked; nothing is sent.

        ``options`` override the settings for this request only: any request parameter (model,
        temperature, ...), and ``system``, ``stream``, ``memory``. None means "use the setting".
        ``tools``: plain functions the model may call (each call checked against the function's
        schema and run, its result sent back, until the model answers in text; ``.tool_calls``
        lists them); ``tool_choice``: auto, none, required or one tool's name;
        ``confirm_tools``: ask before each call (True: ``input()``, or a function of the call).
        ``images``: figures, arrays, PIL images, bytes, paths or URLs (``images.py``).
        """
        check_prompt(prompt)
        s = self.settings
        pick = chooser(s, options)
        params = {p.name: pick(p.name) for p in REQUEST_PARAMS}
        remember = bool(pick("memory"))
        parts = image_parts(images, s.max_image_edge, s.max_image_bytes)
        keep = s.keep_images_in_history
        history = self.history if remember and not new else History(0)
        messages = history.messages(prompt, pick("system"), parts, keep, check=True)
        payload = build_payload(pick("model"), messages, params, stream=bool(pick("stream")),
                                json_mode=json, checked=True)
        if schema is not None:  # a JSON schema or pydantic class: schema.py
            from .schema import response_format

            payload["response_format"] = response_format(schema)
        if tools or tool_choice is not None:
            from .toolloop import add_tools

            add_tools(payload, tools, tool_choice, parallel=bool(pick("parallel_tool_calls")))
        if self.endpoint(payload) == RESPONSES:  # what that endpoint lacks: refused now
            check_responses(payload)
        return Request(payload, prompt, remember=remember, new=new, schema=schema,
                       tools=tuple(tools or ()), confirm=confirm_tools, **how_to_answer(options))

    def chat(self, prompt: str, *, display: bool = False, on_delta: Callable[[str], Any] | None = None,
             on_reasoning: Callable[[str], Any] | None = None, view: ViewFactory | None = None,
             **options: Any) -> ChatResponse:
        """Send ``prompt`` (with the conversation so far) and return the answer.

        ``options`` are ``prepare``'s (parameters, ``new``, ``json``, ``schema``, ``tools``,
        ``tool_choice``, ``confirm_tools``, ``images``). Nothing is shown unless asked:
        ``display=True`` renders it in the notebook (or terminal), ``on_delta`` gets each piece of
        answer text as it streams. An answer that did not end normally raises
        (``IncompleteAnswer``, or ``StreamInterrupted`` for Ctrl-C) after it is kept.
        """
        try:
            request = self.prepare(prompt, **options)
        except AIMLError as exc:
            forget_frames(exc)
            raise
        allow = self.settings.allow_remote_images
        return self.send(request, view=view_factory(display, on_delta, on_reasoning, view, allow))

    def send(self, request: Request, *, view: ViewFactory | None = None) -> ChatResponse:
        """Send a prepared ``Request`` through the source, keep the exchange, raise if it did not
        end well. Images for a model that cannot see them are refused first; ``request.new``
        forgets the conversation only now, so a refused request leaves it as it was.

        With tools, answers that ask for tool calls are answered (the calls run) and the
        request goes on, at most ``max_tool_rounds`` times. With a schema, the answer is
        validated once kept: ``.data`` is the value, or None and ``SchemaMismatch`` is raised."""
        payload = request.payload
        try:
            from .vision import check_vision

            check_vision(self, payload)
        except AIMLError as exc:
            forget_frames(exc)
            raise
        if request.new:
            self.reset()
        self.last_request = payload
        started = time.time()
        views: list[ReadFirst] = []
        shown = reading_first(view or no_view, request, self.settings.allow_remote_images, views)
        try:
            resp = answer_one(self, self.client, payload, request.stream, shown, request=request)
            if request.tools:
                from .toolloop import ToolLoop

                loop = ToolLoop(self, request.tools, request.confirm, views, request)
                resp = loop.run(payload, resp, shown)
            mismatch = None
            if request.schema is not None:
                from .schema import apply

                mismatch = apply(request.schema, resp)
            self.keep(resp, request.prompt, request.remember, started)
            if mismatch is not None:
                raise mismatch
        except (AIMLError, StreamInterrupted) as exc:
            forget_frames(exc)  # the frames below may hold a body or header that quotes the key
            raise
        if not request.tools and resp.complete and getattr(resp, "_stream_error", None) is None:
            self.source.keep(payload, resp, self.effective_base()[0])
        return resp

    def keep(self, resp: ChatResponse, prompt: str, remember: bool, started: float) -> None:
        """Add the exchange to the history and tell the listeners, then raise if the answer did
        not end normally (it is kept first)."""
        request = resp.request or self.last_request or {}
        self.last_response = resp
        self.history.add(
            Exchange(request, resp, prompt, started=started, seconds=resp.elapsed, remember=remember)
        )
        self._notify(resp)
        raise_for_outcome(resp)

    def compare(self, prompt: str, models: Any, *, display: bool = False, board: Any = None,
                **options: Any) -> Any:
        """Ask every model in ``models`` at once, with the same messages and parameters, and
        return a ``Comparison`` (``cmp[model]`` is that model's answer). See comparison.py."""
        from .comparison import ask

        return ask(self, prompt, models, display=display, board=board, **options)

    # -- the conversation ------------------------------------------------------------------------

    def reset(self) -> int:
        """Forget the conversation (the history keeps every exchange); returns the turns dropped."""
        dropped = self.history.reset()
        self._notify(None)
        return dropped

    def _notify(self, resp: ChatResponse | None) -> None:
        for callback in list(self.on_answer):
            try:
                callback(resp)
            except Exception as exc:  # a broken listener must not fail the request
                import logging

                logging.getLogger(__name__).warning("aiml_magics: on_answer callback failed: %s", exc)

    @property
    def totals(self) -> dict[str, Any]:
        return self.history.totals()


def raise_for_outcome(resp: ChatResponse) -> None:
    """Raise what an answer that did not end normally means: Ctrl-C, a stream error, a cut."""
    error = getattr(resp, "_stream_error", None)
    if getattr(resp, "_stopped", False) and resp.complete:
        raise StreamInterrupted(
            f"stopped after the answer was complete: all {len(resp.text):,} characters are "
            "kept in the history.",
            response=resp,
        )
    if resp.finish_reason == "interrupted":
        raise StreamInterrupted(
            f"stopped after {len(resp.text):,} characters; the partial answer is kept in "
            "the history.",
            response=resp,
        )
    if error is not None:
        if isinstance(error, IncompleteAnswer) and error.response is None:
            error.response = resp
        raise error
    if not resp.complete:
        raise IncompleteAnswer(
            f"The answer stopped early: the stream ended without a finish after "
            f"{len(resp.text):,} characters. What arrived is kept in the history; ask again "
            "for a full answer.",
            response=resp,
        )


def chooser(settings: Settings, options: dict[str, Any]) -> Callable[[str], Any]:
    """``pick(name)``: the option given for this request, else the setting. Unknown options are
    refused here, naming what there is."""
    unknown = sorted(set(options) - set(BY_NAME) - {"refresh"})  # refresh: how_to_answer
    if unknown:
        raise ParameterError(
            f"Unknown parameter {unknown[0]!r}: use one of "
            f"{', '.join(p.name for p in REQUEST_PARAMS)}, model, system, stream or memory."
        )

    def pick(name: str) -> Any:
        value = options.get(name)
        return getattr(settings, name) if value is None else value

    return pick


def view_factory(
    display: bool,
    on_delta: Callable[[str], Any] | None,
    on_reasoning: Callable[[str], Any] | None,
    view: ViewFactory | None,
    allow_remote_images: bool,
) -> ViewFactory:
    """How ``chat()`` shows an answer: the given factory, the notebook or terminal renderer, a
    callback, or nothing."""
    if view is not None:
        return view
    if display:
        from .display.render import current_shell, make_renderer

        return lambda label: make_renderer(
            current_shell(), label=label, allow_remote_images=allow_remote_images
        )
    if on_delta is not None or on_reasoning is not None:
        return lambda label: CallbackView(on_delta, on_reasoning)
    return no_view


def reading_first(make: ViewFactory, request: Request, allow_remote_images: bool,
                  views: list[ReadFirst]) -> ViewFactory:
    """The views of one request, each a ``ReadFirst`` (kept in ``views`` for the tool loop),
    labelled with what is being sent when images go along."""
    from .imageparts import request_images, summary

    sending = summary(request_images(request.payload))
    notes = "".join(f" · {n}" for n in request.notes)

    def shown(label: str) -> View:
        views.append(ReadFirst(make((f"{label}, sent {sending}" if sending else label) + notes),
                               allow_remote_images, tools_on=bool(request.tools),
                               notes=request.notes))
        return views[-1]

    return shown


def no_view(label: str) -> View:
    return NoView()


def image_parts(images: Any, max_edge: int, max_bytes: int) -> list[dict[str, Any]]:
    """The ``image_url`` parts of ``images`` (one value or a list), each checked and encoded."""
    if images is None:
        return []
    from .images import image_parts as parts

    if not isinstance(images, (list, tuple)):
        images = [images]  # one figure, one path: the common case
    names = [f"images[{i}]" for i in range(len(images))]
    return parts(images, max_edge=max_edge, max_bytes=max_bytes, names=names)
