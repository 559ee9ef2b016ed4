"""``map()`` on an executor it was given (a dask cluster, a process pool): the work sent in chunks.

Why: one task per prompt pays a task's cost (scheduling, pickling, a trip through the scheduler)
per request, and a worker with one thread sends one request at a time, so a cluster was slower
than ``map()``'s own threads. A chunk carries several jobs; the worker sends them at once on a
small thread pool of the chunk's own, through one client per worker process (one connection pool,
so connections, and on a real cluster TLS sessions, are reused from chunk to chunk).

The pacing stays in ``batchrun.Runner``, one copy: it still submits item by item, within its
window of ``concurrency`` items in flight, so the cluster never has more requests out than that. A
``Chunker`` queues each round's items and sends them as chunks when the Runner flushes, sized so
the executor's slots share the round; each item's ``Outcome`` comes back on the item's own future,
so retries, 429 backoff, budget, deadline and progress work per item as on threads.

The key travels only inside the jobs (``Job`` hides it from its repr, ``Chunk`` shows request ids
only); a dask task's key is made from the function's name and a hash, never from the values.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from .batchrun import Outcome
from .remember import send_job

if TYPE_CHECKING:
    from .batch import Job
    from .response import ChatResponse

    Attempt = Callable[[Callable[[], ChatResponse]], Outcome]

POOL_SIZE = 256  # connections one worker process keeps per host (map()'s largest concurrency)


class Chunk:
    """Several jobs sent as one task (picklable; its repr names request ids, never the key).
    ``attempt`` turns one send into an Outcome (batch.py's, passed in: no import cycle)."""

    def __init__(self, jobs: list[Job], attempt: Attempt) -> None:
        self.jobs, self.attempt = jobs, attempt

    def __repr__(self) -> str:
        ids = [job.request_id for job in self.jobs]
        span = ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"
        return f"Chunk({len(ids)} jobs: {span})" if ids else "Chunk(0 jobs)"

    __str__ = __repr__


_clients: dict[tuple[Any, ...], Any] = {}  # one client per worker process and settings
_clients_lock = threading.Lock()


def _client_for(job: Job) -> Any:
    """The worker process's client for the job's settings, built on first use."""
    ident = (job.base_url, job.api_key, job.timeout, job.allow_insecure_http, job.max_answer_bytes)
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            from .http.client import AIMLClient

            client = _clients[ident] = AIMLClient(
                job.api_key, job.base_url, timeout=job.timeout, max_retries=0,
                allow_insecure_http=job.allow_insecure_http, max_answer_bytes=job.max_answer_bytes,
                pool_size=POOL_SIZE,
            )
    return client


def run_chunk(chunk: Chunk) -> list[Outcome]:
    """Send a chunk's jobs at once on one client; an Outcome per job, in order; never raises
    for a failed request (a raise would put the task, and its arguments' repr, in the logs)."""

    def one(job: Job) -> Outcome:
        return chunk.attempt(lambda: send_job(job, _client_for(job)))

    _give_back_the_slot()
    if len(chunk.jobs) <= 1:
        return [one(job) for job in chunk.jobs]
    with ThreadPoolExecutor(len(chunk.jobs), thread_name_prefix="aiml-chunk") as pool:
        return list(pool.map(one, chunk.jobs))


def _give_back_the_slot() -> None:
    """On a dask worker, leave its thread pool (``secede``): a chunk waits on the network, not
    the CPU, so a chunk queued behind it may start (the Runner's window still bounds the requests
    in flight). Elsewhere, nothing: dask is only used when this process already runs it."""
    worker = sys.modules.get("distributed.worker")
    if worker is None:
        return
    try:
        worker.get_worker()  # raises outside a dask task
        worker.secede()
    except Exception:  # noqa: BLE001 - not a dask task, or a dask without secede: keep the slot
        return


class _Item(Future[Outcome]):
    """One job's future: cancellable while queued here; once its chunk is handed over, whether it
    has started cannot be seen (dask's futures never say), so it counts as in flight."""

    chunk: Future[list[Outcome]] | None = None

    def cancel(self) -> bool:
        if self.chunk is None:
            return super().cancel()
        self.chunk.cancel()  # Ctrl-C: a chunk still queued on the cluster is not sent
        return False


def slots(executor: Executor) -> int:
    """How many chunks the executor runs at once: a dask cluster's worker threads, a pool's
    workers, else 1 (then one chunk carries a whole round, still sent at once in the worker)."""
    client = getattr(executor, "_client", None)  # distributed's ClientExecutor
    if client is not None and hasattr(client, "nthreads"):
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a scheduler that does not answer: assume one slot
            return 1
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else 1


class Chunker:
    """Queues the Runner's items and sends each round to the executor as chunks."""

    def __init__(self, executor: Executor, concurrency: int, attempt: Attempt) -> None:
        self.executor, self.attempt = executor, attempt
        self.size = max(1, -(-concurrency // slots(executor)))  # a round shared by the slots
        self.queued: list[tuple[Job, _Item]] = []

    def submit(self, job: Job) -> Future[Outcome]:
        item = _Item()
        self.queued.append((job, item))
        return item

    def flush(self) -> None:
        queued = [(job, item) for job, item in self.queued if not item.cancelled()]
        self.queued = []
        parts = -(-len(queued) // self.size)
        for i in range(parts):  # equal parts: 20 items in chunks of 16 go as 10 and 10
            part = queued[i * len(queued) // parts:(i + 1) * len(queued) // parts]
            items = [item for _, item in part]
            try:
                future = self.executor.submit(run_chunk, Chunk([job for job, _ in part], self.attempt))
            except Exception as exc:  # noqa: BLE001 - a closed executor: each item fails, none raises
                for item in items:
                    item.set_exception(exc)
                continue
            for item in items:
                item.chunk = future
            future.add_done_callback(partial(_deliver, items))


def _deliver(items: Sequence[_Item], chunk: Future[list[Outcome]]) -> None:
    """A finished chunk's outcomes onto its items' futures (a lost chunk fails each item)."""
    if chunk.cancelled():
        for item in items:
            Future.cancel(item)
            item.set_running_or_notify_cancel()  # wakes a wait() on it
        return
    try:
        outcomes = chunk.result()
        if len(outcomes) != len(items):
            raise RuntimeError(f"a chunk of {len(items)} jobs returned {len(outcomes)} outcomes")
    except BaseException as exc:  # noqa: BLE001 - a worker that died, a pickling failure
        for item in items:
            item.set_exception(exc)
        return
    for item, out in zip(items, outcomes, strict=True):
        item.set_result(out)
