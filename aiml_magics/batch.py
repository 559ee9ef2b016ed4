"""``map()``: many prompts, one call, answers in input order. Plain Python.

The unit of work (``run_job``) is a plain picklable function of a ``Job`` that builds its own
client where it runs, so any ``concurrent.futures.Executor`` carries it: threads, processes, a
dask.distributed cluster's ``client.get_executor()`` (an executor passed in gets jobs in chunks,
chunks.py). Retries are decided here, not in the
worker: one shared backoff (a 429 pauses every new submission, for its ``Retry-After`` when it
gives one, and halves the number in flight), per-item retries on 429/5xx/connection failures, a
credit budget, and Ctrl-C returning what finished. No item's failure raises.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from .batchrun import (
    Failure,
    Outcome,
    Rules,
    Runner,
    answered_outcome,
    failed_outcome,
    lazy_payloads,
    seconds,
)
from .errors import ParameterError, import_pandas, redact
from .heldinterrupt import HeldInterrupt
from .remember import Keeping, answer_one, no_view, send_job
from .response import ChatResponse

__all__ = ["Batch", "Failure", "Job", "Outcome", "Rules", "run_job", "run_map"]

if TYPE_CHECKING:
    from .session import Session

@dataclass
class Job:
    """What a worker needs to send one request (picklable; the key is not in its repr)."""

    payload: dict[str, Any]
    request_id: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    allow_insecure_http: bool = False
    max_answer_bytes: int = 32 << 20
    keeping: Keeping | None = None  # the store and the cache (remember.py): opened where it runs


_local = threading.local()  # one client per worker thread (and process): connections reused


def run_job(job: Job) -> Outcome:
    """Send one request with a client built here; never raises for a failed request."""
    from .http.client import AIMLClient

    ident = (job.base_url, job.api_key, job.timeout, job.allow_insecure_http, job.max_answer_bytes)
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    client = clients.get(ident)
    if client is None:
        client = clients[ident] = AIMLClient(
            job.api_key, job.base_url, timeout=job.timeout, max_retries=0,
            allow_insecure_http=job.allow_insecure_http, max_answer_bytes=job.max_answer_bytes,
        )
    return _attempt(lambda: send_job(job, client))


def _attempt(send: Callable[[], ChatResponse]) -> Outcome:
    started = time.monotonic()
    try:
        resp = send()
    except Exception as exc:  # noqa: BLE001 - one item's surprise must not end the batch
        return failed_outcome(exc)
    return answered_outcome(resp, started)


class Batch(Sequence[Any]):
    """The results of ``map``, in input order: a ``ChatResponse`` or a ``Failure`` per item."""

    def __init__(
        self,
        results: list[ChatResponse | Failure],
        prompts: list[str],
        request_ids: list[str],
        index: Any = None,
        fields: list[str] | None = None,
        stopped: str | None = None,
    ) -> None:
        self.results = results
        self.prompts = prompts
        self.request_ids = request_ids
        self.row_index = index  # the DataFrame index of rows (or a Series' index), else None
        self.fields = fields or []
        self.stopped = stopped  # "budget" or "interrupted" when not everything was sent

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: Any) -> Any:
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    @property
    def failures(self) -> list[tuple[int, Failure]]:
        return [(i, r) for i, r in enumerate(self.results) if isinstance(r, Failure)]

    @property
    def credits(self) -> float:
        """What the answers cost, an answer that did not match the schema included (it was billed,
        and counted against the budget)."""
        return sum(a.credits_used or 0 for a in map(_billed, self.results) if a is not None)

    def __repr__(self) -> str:
        failed = len(self.failures)
        stopped = f", stopped: {self.stopped}" if self.stopped else ""
        return (f"Batch({len(self)} items: {len(self) - failed} answered, {failed} failed, "
                f"{self.credits:,.0f} credits{stopped})")

    def texts(self) -> list[str]:
        return [r.text for r in self.results]

    def to_dataframe(self) -> Any:
        """One row per input, with the index of a DataFrame ``rows`` (so it joins back): prompt,
        text, tokens, credits, seconds, error, request id; with a schema, one column per field."""
        pd = import_pandas()

        records = []
        for prompt, rid, r in zip(self.prompts, self.request_ids, self.results, strict=True):
            answer = r if isinstance(r, ChatResponse) else None
            failure = r if isinstance(r, Failure) else None
            record: dict[str, Any] = {"prompt": redact(prompt),
                                      "text": redact(answer.text) if answer else None}
            for name in self.fields:
                record[name] = _field(answer.data, name) if answer is not None else None
            billed = _billed(r)
            record.update(
                tokens=billed.usage.total_tokens if billed else None,
                credits=billed.credits_used if billed else None,
                seconds=round(billed.elapsed, 3) if billed else None,
                error=f"{failure.kind}: {failure.message}" if failure else None,
                status=failure.status if failure else None,
                source=answer.source if answer else None,
                request_id=rid,
            )
            records.append(record)
        frame = pd.DataFrame.from_records(records, columns=_columns(self.fields))
        if self.row_index is not None:
            frame.index = self.row_index
        return frame


def _billed(result: Any) -> ChatResponse | None:
    """The answer an item paid for: its own, or the one that did not match the schema."""
    if isinstance(result, ChatResponse):
        return result
    response = result.response if isinstance(result, Failure) else None
    return response if isinstance(response, ChatResponse) else None


def _columns(fields: list[str]) -> list[str]:
    return ["prompt", "text", *fields, "tokens", "credits", "seconds", "error", "status", "source",
            "request_id"]


def _field(data: Any, name: str) -> Any:
    if isinstance(data, Mapping):
        return data.get(name)
    return getattr(data, name, None) if data is not None else None


# -- inputs -------------------------------------------------------------------------------------


def _items(prompts_or_template: Any, rows: Any, limits: Any) -> tuple[list[str], list[Any], Any]:
    """(prompts, row labels, the DataFrame index or None)."""
    from .prompt import expand
    from .promptnotes import check_fields

    if rows is None:
        if isinstance(prompts_or_template, str):
            raise ParameterError(
                "map() got one prompt: pass a list of prompts, or a template and rows= "
                "(a DataFrame or a list of dicts)."
            )
        prompts = [str(p) for p in prompts_or_template]
        series = type(prompts_or_template).__name__ == "Series"
        index = prompts_or_template.index if series else None  # a Series of prompts joins back
        labels = list(index) if index is not None else list(range(len(prompts)))
        return prompts, labels, index
    if not isinstance(prompts_or_template, str):
        raise ParameterError("map(template, rows): the template must be a string.")
    if _is_frame(rows):
        columns = [str(c) for c in rows.columns]
        mappings: Iterable[Mapping[str, Any]] = (
            dict(zip(columns, values, strict=True))
            for values in rows.itertuples(index=False, name=None)
        )
        index, labels = rows.index, list(rows.index)
    else:
        mappings = list(rows)
        index, labels = None, list(range(len(mappings)))
    prompts = []
    for i, row in enumerate(mappings):
        if not isinstance(row, Mapping):
            raise ParameterError(f"map(): row {i} is a {type(row).__name__}, not a mapping.")
        done = expand(prompts_or_template, row, limits)
        check_fields(prompts_or_template, done.left, row, i)  # a misspelt {field}: nothing sent
        prompts.append(done.text)
    return prompts, labels, index


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples")


def request_id_for(batch_id: str, position: int, label: Any) -> str:
    """``aiml-<batch>-<position>-<row label>``, cleaned to what the service keeps."""
    from .http.answer import clean_request_id

    return clean_request_id(f"aiml-{batch_id}-{position}-{label}") or f"aiml-{batch_id}-{position}"


# -- the run ------------------------------------------------------------------------------------


def run_map(
    session: Session,
    prompts_or_template: Any,
    rows: Any = None,
    *,
    concurrency: int = 8,
    executor: Executor | None = None,
    progress: Any = None,
    widget: Callable[[int], Any] | None = None,
    schema: Any = None,
    budget: float | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    max_wait: float | None = None,
    deadline: float | None = None,
    retry_maybe_billed: bool = False,
    engine: str = "auto",
    **params: Any,
) -> Batch:
    """See ``aiml_magics.map``."""
    from .params import check_prompt, check_text
    from .prompt import Limits

    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 256:
        raise ParameterError(f"concurrency = {concurrency!r}: use an integer from 1 to 256.")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or budget < 0):
        raise ParameterError(f"budget = {budget!r}: use a number of credits >= 0.")
    s = session.settings
    rules = Rules(retries, backoff, budget, seconds("max_wait", max_wait, None) or s.max_wait,
                  seconds("deadline", deadline, None), bool(retry_maybe_billed))
    limits = Limits(s.expand_max_rows, s.expand_max_columns, s.expand_max_chars)
    prompts, labels, index = _items(prompts_or_template, rows, limits)
    params = {"cache": True, **params, "memory": False, "stream": False}
    for p in prompts:  # refused before anything is sent; each payload is built when it is sent
        check_text([{"role": "user", "content": check_prompt(p)}])
    payload = lazy_payloads(lambda p: session.prepare(p, schema=schema, **params).payload, prompts)

    batch_id = uuid.uuid4().hex[:8]
    ids = [request_id_for(batch_id, i, label) for i, label in enumerate(labels)]
    from .schema import field_names

    fields = field_names(schema) if schema is not None else []
    live = session.source.name != "replay"
    use_async = _use_async(engine, executor) and live
    if live:
        key, _ = session.effective_key()
        if key is None:
            session.client()._headers()  # the one-paragraph MissingKeyError, before anything
        base, _ = session.effective_base()
        secret = str.__str__(key) if key is not None else None
        keeping = Keeping.of(session, params["cache"], params.get("refresh", False))

        def job(pos: int) -> Job:
            return Job(payload(pos), ids[pos], base, secret, s.timeout, s.allow_insecure_http,
                       s.max_answer_bytes, keeping)

    from .offline import row_echoes

    echoes = [] if live else row_echoes(prompts)  # offline, each cell shows what its row sent
    own = executor is None or not live
    chunker: Any = None  # someone else's executor: sent in chunks
    if not use_async:
        pool: Executor = ThreadPoolExecutor(concurrency) if own else executor  # type: ignore[assignment]
        if not own:
            from .chunks import Chunker

            chunker = Chunker(pool, concurrency, _attempt)

        def submit(pos: int) -> Future[Outcome]:
            if chunker is not None:
                return chunker.submit(job(pos))
            if live:
                return pool.submit(run_job, job(pos))
            return pool.submit(_local_answer, session, payload(pos), echoes[pos])

    from .progress import make_progress

    bar = make_progress(progress, len(prompts), widget)
    if use_async:
        from .batchloop import LoopRunner
        from .http.aioengine import AsyncWire, LoopThread

        wire = AsyncWire.of(secret, base, s.timeout, s.allow_insecure_http, s.max_answer_bytes,
                            concurrency)
        loop = LoopThread()

        def start(pos: int) -> Coroutine[Any, Any, ChatResponse]:
            work = job(pos)
            if work.keeping is None or work.keeping.path is None:  # no store: straight to the wire
                return wire.complete(work.payload, request_id=work.request_id)
            from .remember import send_job_async

            return send_job_async(work, wire.complete)

        runner: Runner = LoopRunner(len(prompts), start, loop.loop, concurrency, rules, schema, ids,
                                    bar)
    else:
        runner = Runner(len(prompts), _built(submit), concurrency, rules, schema, ids, bar,
                        chunker.flush if chunker is not None else None)
    try:
        results, stopped = runner.run()
    finally:
        # A Ctrl-C while the engine closes (a few seconds at most) is the stop already under
        # way, or comes after the batch: the results are returned and no thread is left behind.
        held = HeldInterrupt()
        held.holding = True
        with held:
            if use_async:
                loop.close(wire.close)
            elif own:
                pool.shutdown(wait=runner.stopped != "interrupted", cancel_futures=True)
            bar.close()
            held.drop()
    return Batch(results, prompts, ids, index, fields, stopped)


ENGINES = ("auto", "threads", "async")


def _built(submit: Callable[[int], Future[Outcome]]) -> Callable[[int], Future[Outcome]]:
    """A payload that cannot be built when its item is sent is that item's failure, not the batch's."""

    def safely(pos: int) -> Future[Outcome]:
        try:
            return submit(pos)
        except Exception as exc:  # noqa: BLE001
            fut: Future[Outcome] = Future()
            fut.set_result(failed_outcome(exc))
        return fut

    return safely


def _use_async(engine: str, executor: Executor | None) -> bool:
    """asyncio on aiohttp when it can be imported and no executor was given; threads otherwise."""
    from .http.aioengine import available

    if engine not in ENGINES:
        raise ParameterError(f"engine = {engine!r}: use one of {', '.join(map(repr, ENGINES))}.")
    if engine == "async" and executor is not None:
        raise ParameterError("engine='async' runs on its own event loop: drop executor=, or use "
                             "engine='threads'.")
    if engine == "async" and not available():
        raise ParameterError("engine='async' needs aiohttp: pip install 'aiml-magics[fast]'.")
    return engine == "async" or (engine == "auto" and executor is None and available())


def _local_answer(session: Session, payload: dict[str, Any], echo: str) -> Outcome:
    """A non-live source (replay, the offline echo) answers in this process (and is stored); an
    echo is the one short line ``echo`` (the whole request mirrored in every cell teaches nothing)."""
    out = _attempt(lambda: answer_one(session, session.client, payload, False, no_view, cache=False))
    resp = out.response
    if resp is not None and resp.source == "offline echo" and "response_format" not in payload:
        resp.text = echo
    return out
