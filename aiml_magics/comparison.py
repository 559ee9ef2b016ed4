"""One prompt, several models, at once: the same messages and parameters to every model.

Every model's request is built and checked before any is sent, so a per-model limit (Claude's
temperature 0..1) refuses the whole comparison with nothing sent. Each model is then asked on a
thread of its own, with a client of its own: an open stream holds its connection for the whole
answer, and ``requests.Session`` promises no thread safety, so nothing is shared between them.

The workers never touch a display. Each fills a :class:`Lane` (text so far, first-token time,
the answer or the error); the calling thread looks at the lanes on each tick and hands them to a
*board* (the notebook's columns, the terminal's one-after-another, or nothing), so outputs are
only ever published from the thread that runs the cell. When all are done, the answers join the
history in the given order as exchanges that are *not* in the conversation: no single answer of
a comparison is the one to continue from. Plain Python: no IPython here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import AIMLError, ParameterError, StreamInterrupted, import_pandas
from .protocols import Board, NoBoard
from .response import ERROR, ChatResponse, tokens_per_second
from .secrets import forget_frames

if TYPE_CHECKING:
    from .request import Request
    from .session import Session

MAX_MODELS = 8  # a comparison is for reading side by side; more is a batch job
TICK = 0.25  # seconds between looks at the lanes
STOP_GRACE = 2.0  # after Ctrl-C, how long the workers get to stop before they are left behind


class ComparisonError(AIMLError):
    """Every model of a comparison failed; ``.comparison`` holds each model's error."""

    def __init__(self, message: str, comparison: Comparison) -> None:
        super().__init__(message, kind="comparison")
        self.comparison = comparison


class Lane:
    """One model's answer as it arrives: a view fed by a worker thread, read by the caller."""

    def __init__(self, model: str, payload: dict[str, Any], allow_remote_images: bool,
                 shown: int | None = None) -> None:
        self.model = model
        self.payload = payload
        self._allow = allow_remote_images
        # What the board reads of the text as it streams (``Board.shows``): a lane keeps only
        # that much, so a huge answer is held once (in its response), not again per lane.
        self._shown = shown
        self._lock = threading.Lock()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.chars = 0
        self.reasoning_chars = 0
        self.version = 0  # grows with every change, so a board sees whether to look again
        self.response: ChatResponse | None = None
        self.error: BaseException | None = None
        self.done = False
        self.stop = threading.Event()  # set by the caller on Ctrl-C: the next delta stops it

    # -- the View a source feeds (worker thread) -------------------------------------------------

    def reasoning(self, delta: str) -> None:
        self._check_stop()
        with self._lock:
            self._keep(self._reasoning, self.reasoning_chars, delta)
            self.reasoning_chars += len(delta)
            self.version += 1

    def content(self, delta: str) -> None:
        self._check_stop()
        with self._lock:
            self._keep(self._content, self.chars, delta)
            self.chars += len(delta)
            self.version += 1

    def _keep(self, parts: list[str], had: int, delta: str) -> None:
        if self._shown is None:
            parts.append(delta)
        elif had < self._shown:
            parts.append(delta[: self._shown - had])

    def finish(self, resp: ChatResponse) -> None:
        from .cassette import ECHO
        from .response import read_json

        if resp.source == ECHO and "response_format" not in self.payload:
            from .offline import column_echo  # offline: what differs between the models asked

            resp.text = column_echo(self.payload)
            with self._lock:
                self._content, self.chars = [], 0
                self._keep(self._content, 0, resp.text)
                self.chars = len(resp.text)
                self.version += 1
        read_json(resp)
        resp.allow_remote_images = self._allow
        self.response = resp

    def abandon(self) -> None:
        pass

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt

    # -- read by the caller ----------------------------------------------------------------------

    def text(self) -> str:
        """The answer so far, up to what the board shows (``chars`` counts all of it)."""
        with self._lock:
            joined = "".join(self._content)
            self._content = [joined]
            return joined

    def reasoning_text(self) -> str:
        with self._lock:
            joined = "".join(self._reasoning)
            self._reasoning = [joined]
            return joined


class Comparison(Mapping[str, ChatResponse]):
    """The answers of one comparison: ``cmp[model]`` is that model's ``ChatResponse``.

    Iteration gives the model ids in the order they were given. A model that failed keeps its
    error in its slot: its response has ``finish_reason == "error"`` and ``.error`` set (an answer
    cut short keeps what arrived, with ``.error`` saying why); ``errors`` maps those models to
    their errors.
    """

    def __init__(self, prompt: str, responses: dict[str, ChatResponse]) -> None:
        self.prompt = prompt
        self._responses = responses

    def __getitem__(self, model: str) -> ChatResponse:
        return self._responses[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._responses)

    def __len__(self) -> int:
        return len(self._responses)

    @property
    def models(self) -> list[str]:
        return list(self._responses)

    @property
    def errors(self) -> dict[str, Exception]:
        return {m: r.error for m, r in self._responses.items() if r.error is not None}

    @property
    def answered(self) -> list[str]:
        """The models that gave a whole answer."""
        return [m for m, r in self._responses.items() if r.error is None and r.complete]

    def records(self) -> list[dict[str, Any]]:
        """One flat row a model, for tables (no key: requests never hold one)."""
        rows = []
        for model, r in self._responses.items():
            u = r.usage
            speed = tokens_per_second(r)
            rows.append({
                "model": model,
                "first_token_seconds": _round(r.first_token_seconds),
                "seconds": _round(r.elapsed) if r.finish_reason != ERROR else None,
                "tokens_per_second": None if speed is None else round(speed, 1),
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "credits": r.credits_used,
                "finish_reason": r.finish_reason,
                "error": str(r.error) if r.error is not None else None,
            })
        return rows

    def to_dataframe(self) -> Any:
        """One row a model; needs pandas (an optional dependency)."""
        pd = import_pandas()
        return pd.DataFrame.from_records(self.records(), columns=list(COLUMNS))

    def __repr__(self) -> str:
        from .errors import redact

        parts = []
        for model, r in self._responses.items():
            state = "ok" if r.error is None and r.complete else (r.finish_reason or "failed")
            parts.append(f"{model!r}: {state}")
        return redact(f"Comparison({', '.join(parts)})")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display.columns import final_bundle

        return final_bundle(self)


COLUMNS = (
    "model", "first_token_seconds", "seconds", "tokens_per_second", "prompt_tokens",
    "completion_tokens", "reasoning_tokens", "credits", "finish_reason", "error",
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def check_models(models: Any) -> list[str]:
    """Two to ``MAX_MODELS`` distinct model ids (each checked like any model id)."""
    from .params import check_model

    if isinstance(models, str) or not isinstance(models, Sequence):
        raise ParameterError(
            f"models = {models!r}: give a list of model ids, e.g. ['gpt-4o-mini', 'deepseek/deepseek-chat']."
        )
    ids = [check_model(m) for m in models]
    if len(ids) < 2:
        raise ParameterError("A comparison needs at least two models.")
    if len(ids) > MAX_MODELS:
        raise ParameterError(
            f"A comparison takes at most {MAX_MODELS} models ({len(ids)} given)."
        )
    repeated = sorted({m for m in ids if ids.count(m) > 1})
    if repeated:
        raise ParameterError(f"{repeated[0]!r} is named twice: each model once.")
    return ids


def prepare_all(session: Session, prompt: str, models: Any, **options: Any) -> dict[str, Request]:
    """Every model's ``Request``, all checked; nothing is sent. Apart from the model, the
    bodies are the same: the same messages, the same parameters (``options`` are
    ``Session.prepare``'s). A comparison never joins the conversation."""
    if options.get("model") is not None:
        raise ParameterError("A comparison names its own models: leave `model` out.")
    options.pop("model", None)
    return {model: session.prepare(prompt, model=model, **options) for model in check_models(models)}


def ask(session: Session, prompt: str, models: Any, *, display: bool = False, board: Board | None = None,
        **options: Any) -> Comparison:
    """``Session.compare``: prepare every model's request (all checked first), then ``run``."""
    try:
        requests = prepare_all(session, prompt, models, **options)
    except AIMLError as exc:
        forget_frames(exc)
        raise
    if board is None and display:
        from .display.columns import make_board
        from .display.render import current_shell

        board = make_board(current_shell(), allow_remote_images=session.settings.allow_remote_images)
    return run(session, prompt, requests, board)


def run(
    session: Session,
    prompt: str,
    requests: dict[str, Request],
    board: Board | None = None,
) -> Comparison:
    """Ask every model at once, show the lanes on ``board``, keep the answers, return them.

    Raises ``ComparisonError`` only when every model failed, ``StreamInterrupted`` on Ctrl-C
    (after what arrived is kept).
    """
    board = board or NoBoard()
    source = session.source
    if source.needs_key:
        session.client()._headers()  # no key: fail once, here, before any thread or display
    if any(r.new for r in requests.values()):  # only now: a refused comparison changes nothing
        session.reset()
    allow = session.settings.allow_remote_images
    shown = getattr(board, "shows", None)
    lanes = [Lane(model, r.payload, allow, shown) for model, r in requests.items()]
    wake = threading.Event()
    clients: list[Any] = []
    started = time.time()
    threads = []
    for lane in lanes:
        client = session.fresh_client() if source.needs_key else None
        clients.append(client)
        thread = threading.Thread(
            target=_ask, args=(session, lane, client, wake, requests[lane.model]),
            name=f"aiml-compare:{lane.model}",
            daemon=True,  # a worker still waiting after Ctrl-C must not hold the interpreter
        )
        threads.append(thread)
    session.last_request = lanes[0].payload
    for thread in threads:
        thread.start()
    interrupted = False
    try:
        try:
            while not all(lane.done for lane in lanes):
                wake.wait(TICK)
                wake.clear()
                board.tick(lanes)
        except KeyboardInterrupt:
            interrupted = True
            for lane in lanes:
                lane.stop.set()
            deadline = time.monotonic() + STOP_GRACE
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        comparison = _keep(session, prompt, lanes, started)
        board.finish(comparison)
    finally:
        for client in clients:
            if client is not None:
                client.close()
    if interrupted:
        raise StreamInterrupted(
            "stopped the comparison; what arrived from each model is kept in the history.",
        )
    failed = comparison.errors
    unexpected = [e for e in failed.values() if not isinstance(e, AIMLError | StreamInterrupted)]
    if unexpected:
        raise unexpected[0]
    if len(failed) == len(comparison):
        lines = "; ".join(f"{m}: {_first_sentence(e)}" for m, e in failed.items())
        raise ComparisonError(f"Every model of the comparison failed. {lines}", comparison)
    return comparison


def _ask(session: Session, lane: Lane, client: Any, wake: threading.Event, request: Any) -> None:
    """One model's request on its own thread (from the cache if asked and known, written to
    the store); every outcome lands in the lane."""
    from .remember import answer_one

    try:
        answer_one(session, lambda: client, lane.payload, bool(lane.payload.get("stream")),
                   lambda _: lane, request=request)
    except (AIMLError, StreamInterrupted) as exc:
        forget_frames(exc)  # the frames below may hold a body or header that quotes the key
        lane.error = exc
    except KeyboardInterrupt:
        lane.error = StreamInterrupted("stopped before any answer arrived.")
    except Exception as exc:  # a bug: kept, and raised on the caller's thread
        lane.error = exc
    finally:
        lane.done = True
        wake.set()


def _keep(session: Session, prompt: str, lanes: list[Lane], started: float) -> Comparison:
    """Each answer into the history, in the given order, outside the conversation."""
    origin = session.effective_base()[0]
    responses: dict[str, ChatResponse] = {}
    for lane in lanes:
        resp = lane.response
        error = lane.error
        if resp is None:
            if error is None:  # still running after Ctrl-C: left behind
                error = StreamInterrupted("stopped before any answer arrived.")
            resp = ChatResponse(request=lane.payload, finish_reason=ERROR, source=session.source.name)
        else:
            try:
                session.keep(resp, prompt, False, started)
            except (AIMLError, StreamInterrupted) as exc:
                forget_frames(exc)
                error = error or exc
            if error is None and resp.complete and getattr(resp, "_stream_error", None) is None:
                session.source.keep(lane.payload, resp, origin)
        resp.error = error if isinstance(error, Exception) else None
        responses[lane.model] = resp
    comparison = Comparison(prompt, responses)
    session.last_comparison = comparison
    return comparison


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip()
    cut = text.find(". ")
    return text if cut < 0 else text[: cut + 1]
