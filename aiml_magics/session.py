"""``Session``: settings, a source of answers, and the history of exchanges. Plain Python.

The notebook's ``%%aiml`` cells and a script's ``chat()`` are the same call: validate everything
before anything is sent, ask the source, keep the exchange, then raise if the answer did not end
normally (what arrived is kept first). The notebook layer only parses cells and adds advice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import (
    AIMLError,
    IncompleteAnswer,
    ParameterError,
    StreamInterrupted,
    mask_key,
    register_secret,
)
from .history import Exchange, History
from .params import BY_NAME, REQUEST_PARAMS, build_payload, check_prompt
from .response import ChatResponse, parse_json_answer
from .secrets import Secret, forget_frames
from .settings import Settings
from .sources import CallbackView, LiveSource, NoView, Source, View, ViewFactory
from .urls import BASE_VARS, KEY_VARS, env_value


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
        self.key_source: str | None = (
            "argument" if api_key else "%config" if self.settings.api_key else None
        )
        self.source: Source = source if source is not None else LiveSource()
        self.history = History(self.settings.max_history)
        self.settings.observe(self._settings_changed, ["max_history", "api_key"])
        self.last_request: dict[str, Any] | None = None
        self.last_response: ChatResponse | None = None
        self.last_comparison: Any = None  # the latest Comparison (comparison.py)
        # Called with each stored answer (None when the conversation is reset): the panel's
        # status line listens here. A failing listener is reported, never fails the request.
        self.on_answer: list[Callable[[ChatResponse | None], Any]] = []
        self._client: Any = None
        self._client_ident: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

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

    # -- where to, with what key -----------------------------------------------------------------

    def effective_key(self) -> tuple[Secret | None, str]:
        """The key that will be sent (masked in any repr, so no frame or attribute shows it) and
        where it came from (the setting, else the environment)."""
        key = self.settings.api_key
        if key:
            return Secret(str.__str__(key)), self.key_source or "%config"
        value, var = env_value(KEY_VARS)
        if value:
            register_secret(value)
            return Secret(value), f"environment {var}"
        return None, "not set"

    def effective_base(self) -> tuple[str, str]:
        from .urls import DEFAULT_BASE_URL, normalize_base_url

        if self.settings.base_url:
            return normalize_base_url(self.settings.base_url), "%config"
        value, var = env_value(BASE_VARS)
        if value:
            return normalize_base_url(value), f"environment {var}"
        return DEFAULT_BASE_URL, "default"

    def client(self) -> Any:
        """The shared client, rebuilt only when key, base URL or transport settings change."""
        from .client import AIMLClient

        s = self.settings
        key, _ = self.effective_key()
        base, _ = self.effective_base()
        ident = (key, base, s.timeout, s.max_retries, s.allow_insecure_http, s.max_answer_bytes)
        with self._lock:
            if self._client is None or ident != self._client_ident:
                old = self._client
                self._client = AIMLClient(
                    key,
                    base,
                    timeout=s.timeout,
                    max_retries=s.max_retries,
                    allow_insecure_http=s.allow_insecure_http,
                    max_answer_bytes=s.max_answer_bytes,
                )
                self._client_ident = ident
                if old is not None:
                    old.close()
                    if old.base_url == self._client.base_url:  # the models list: once per session
                        self._client.adopt_models(old)
            return self._client

    def fresh_client(self) -> Any:
        """A client of its own, with the shared one's settings: for a thread that must not share
        a connection pool (each model of a comparison). The caller closes it."""
        from .client import AIMLClient

        s = self.settings
        key, _ = self.effective_key()
        base, _ = self.effective_base()
        return AIMLClient(
            key, base, timeout=s.timeout, max_retries=s.max_retries,
            allow_insecure_http=s.allow_insecure_http, max_answer_bytes=s.max_answer_bytes,
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

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
        **options: Any,
    ) -> dict[str, Any]:
        """The request body ``chat`` would send, checked; nothing is sent.

        ``options`` override the settings for this request only: any request parameter (model,
        temperature, ...), and ``system``, ``stream``, ``memory``. None means "use the setting".
        ``tools`` (functions) become the body's ``tools``; ``tool_choice`` is auto, none,
        required or one tool's name.
        ``images``: values to send with the prompt (figures, arrays, files, URLs: ``images.py``).
        """
        check_prompt(prompt)
        s = self.settings
        unknown = sorted(set(options) - set(BY_NAME))
        if unknown:
            raise ParameterError(
                f"Unknown parameter {unknown[0]!r}: use one of "
                f"{', '.join(p.name for p in REQUEST_PARAMS)}, model, system, stream or memory."
            )

        def pick(name: str) -> Any:
            value = options.get(name)
            return getattr(s, name) if value is None else value

        params = {p.name: pick(p.name) for p in REQUEST_PARAMS}
        remember = bool(pick("memory"))
        parts = self._image_parts(images)
        keep = s.keep_images_in_history
        if remember and not new:
            messages = self.history.messages(prompt, pick("system"), parts, keep)
        else:
            messages = History(0).messages(prompt, pick("system"), parts, keep)
        payload = build_payload(
            pick("model"), messages, params, stream=bool(pick("stream")), json_mode=json
        )
        if schema is not None:  # a JSON schema or pydantic class: schema.py
            from .schema import response_format

            payload["response_format"] = response_format(schema)
        if tools or tool_choice is not None:
            from .toolloop import add_tools

            add_tools(payload, tools, tool_choice, parallel=bool(pick("parallel_tool_calls")))
        return payload

    def chat(
        self,
        prompt: str,
        *,
        display: bool = False,
        on_delta: Callable[[str], Any] | None = None,
        on_reasoning: Callable[[str], Any] | None = None,
        view: ViewFactory | None = None,
        new: bool = False,
        json: bool = False,
        schema: Any = None,
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        confirm_tools: bool | Callable[[Any], bool] | None = None,
        images: Any = None,
        **options: Any,
    ) -> ChatResponse:
        """Send ``prompt`` (with the conversation so far) and return the answer.

        With ``tools`` (plain functions), the model may call them: each call is checked against
        the function's schema and run, its result sent back, until the model answers in text
        (``.tool_calls`` lists them). ``confirm_tools`` asks before each call (True: ``input()``,
        or a function of the call returning True to run it).

        Nothing is shown unless asked: ``display=True`` renders it in the notebook (or terminal),
        ``on_delta`` is called with each piece of answer text as it streams. An answer that did not
        end normally raises (``IncompleteAnswer``, or ``StreamInterrupted`` for Ctrl-C) after it
        is kept in the history and ``last_response``. ``images``: a list of figures, arrays, PIL
        images, bytes, paths or URLs sent with the prompt to a vision model.
        """
        try:
            payload = self.prepare(prompt, new=new, json=json, schema=schema, tools=tools,
                                   tool_choice=tool_choice, images=images,
                                   **options)
            self.check_vision(payload)
        except AIMLError as exc:
            forget_frames(exc)
            raise
        memory = options.get("memory")
        remember = self.settings.memory if memory is None else bool(memory)
        if new:  # only now: a refused request leaves the conversation as it was
            self.reset()
        return self.send(payload, prompt, remember=remember, view=self._view(display, on_delta,
                                                                              on_reasoning, view),
                         schema=schema, tools=tools, confirm=confirm_tools)

    def send(
        self, payload: dict[str, Any], prompt: str, *, remember: bool = True, view: ViewFactory | None = None,
        schema: Any = None, tools: Sequence[Any] | None = None,
        confirm: bool | Callable[[Any], bool] | None = None,
    ) -> ChatResponse:
        """Send a prepared body through the source, keep the exchange, raise if it did not end well.

        With ``tools``, answers that ask for tool calls are answered (the calls run) and the
        request goes on, at most ``max_tool_rounds`` times; ``confirm`` defaults to the
        ``confirm_tools`` setting. With ``schema``, the answer is validated once kept: ``.data``
        is the value, or None and ``SchemaMismatch`` is raised."""
        self.last_request = payload
        started = time.time()
        make = view or _no_view

        allow_images = self.settings.allow_remote_images
        from .images import request_images, summary

        sending = summary(request_images(payload))  # the live view says what is being sent

        views: list[_ReadFirst] = []

        def shown(label: str) -> View:
            views.append(_ReadFirst(make(f"{label}, sent {sending}" if sending else label),
                                    allow_images, tools_on=bool(tools)))
            return views[-1]

        try:
            resp = self.source.answer(self.client, payload, bool(payload.get("stream")), shown)
            if tools:
                from .toolloop import ToolLoop

                loop = ToolLoop(self, tools, confirm, views)
                resp = loop.run(payload, resp, shown)
            mismatch = None
            if schema is not None:
                from .schema import apply

                mismatch = apply(schema, resp)
            self._keep(resp, prompt, remember, started)
            if mismatch is not None:
                raise mismatch
        except (AIMLError, StreamInterrupted) as exc:
            forget_frames(exc)  # the frames below may hold a body or header that quotes the key
            raise
        if not tools and resp.complete and getattr(resp, "_stream_error", None) is None:
            self.source.keep(payload, resp, self.effective_base()[0])
        return resp

    def _keep(self, resp: ChatResponse, prompt: str, remember: bool, started: float) -> None:
        request = resp.request or self.last_request or {}
        self.last_response = resp
        self.history.add(
            Exchange(request, resp, prompt, started=started, seconds=resp.elapsed, remember=remember)
        )
        self._notify(resp)
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

    def _view(
        self,
        display: bool,
        on_delta: Callable[[str], Any] | None,
        on_reasoning: Callable[[str], Any] | None,
        view: ViewFactory | None,
    ) -> ViewFactory:
        if view is not None:
            return view
        if display:
            from .render import make_renderer

            allow = self.settings.allow_remote_images
            return lambda label: make_renderer(
                _current_shell(), label=label, allow_remote_images=allow
            )
        if on_delta is not None or on_reasoning is not None:
            return lambda label: CallbackView(on_delta, on_reasoning)
        return _no_view

    # -- images ----------------------------------------------------------------------------------

    def _image_parts(self, images: Any) -> list[dict[str, Any]]:
        if images is None:
            return []
        from .images import image_parts

        if not isinstance(images, (list, tuple)):
            images = [images]  # one figure, one path: the common case
        names = [f"images[{i}]" for i in range(len(images))]
        return image_parts(images, max_edge=self.settings.max_image_edge,
                           max_bytes=self.settings.max_image_bytes, names=names)

    def check_vision(self, payload: dict[str, Any]) -> None:
        """Refuse, before sending, images for a model the models list says cannot see them.

        The list is the client's (fetched once a session; in replay mode only one already
        fetched, since replay sends nothing). No list, or no capability data in it: send anyway.
        """
        from .images import request_images
        from .vision import NoVision, lacks_vision

        if not request_images(payload):
            return
        models = None
        if self.source.name == "replay":
            models = getattr(self._client, "_models", None)
        else:
            try:
                models = self.client().list_models()
            except AIMLError:
                models = None
        model = str(payload.get("model"))
        if models and lacks_vision(models, model):
            raise NoVision(model)

    def compare(
        self,
        prompt: str,
        models: Any,
        *,
        display: bool = False,
        board: Any = None,
        new: bool = False,
        json: bool = False,
        **options: Any,
    ) -> Any:
        """Ask every model in ``models`` at once, with the same messages and parameters, and
        return a ``Comparison`` (``cmp[model]`` is that model's answer). See comparison.py."""
        from .comparison import prepare_all, run

        try:
            payloads = prepare_all(self, prompt, models, new=new, json=json, **options)
        except AIMLError as exc:
            forget_frames(exc)
            raise
        if new:  # only now: a refused request leaves the conversation as it was
            self.reset()
        if board is None and display:
            from .columns import make_board

            board = make_board(_current_shell(), allow_remote_images=self.settings.allow_remote_images)
        return run(self, prompt, payloads, board)

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


def _no_view(label: str) -> View:
    return NoView()


def read_json(resp: ChatResponse) -> None:
    """A JSON-mode answer is parsed into ``.data`` before it is shown, so the final view can show
    the value (and its footer can say when it is not valid JSON)."""
    fmt = (resp.request or {}).get("response_format")
    if resp.text and isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        resp.data, warning = parse_json_answer(resp.text)
        if warning:
            resp.warnings.append(warning)


class _ReadFirst:
    """A view whose ``finish`` sees the answer with its ``.data`` parsed and the session's image
    rule on it (re-displays of ``aiml_response`` follow the same rule)."""

    def __init__(self, inner: View, allow_remote_images: bool, tools_on: bool = False) -> None:
        self._inner = inner
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
        read_json(resp)
        resp.allow_remote_images = self._allow
        self._inner.finish(resp)

    def tool_calls(self, calls: list[Any]) -> None:
        """One round's calls have run: a view that can (a terminal) shows one line each."""
        show = getattr(self._inner, "tool_calls", None)
        if show is not None:
            show(calls)

    def abandon(self) -> None:
        self._inner.abandon()


def _current_shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


_default: Session | None = None
_default_lock = threading.Lock()


def default_session() -> Session:
    """The notebook's session when the extension is loaded (so ``%config`` and the panel apply),
    else one session for this process, configured from the environment."""
    from . import _magics

    if _magics is not None:
        return _magics.session
    global _default
    with _default_lock:
        if _default is None:
            _default = Session()
        return _default


def chat(prompt: str, **options: Any) -> ChatResponse:
    """``default_session().chat(prompt, **options)``: one call from a script or a cell."""
    return default_session().chat(prompt, **options)


__all__ = ["AIMLError", "Session", "chat", "default_session"]
