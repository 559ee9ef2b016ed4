"""A streamed answer: bytes in, deltas out, the answer so far at any moment.

The stream ends at ``[DONE]``, or once a finish and the usage have come, without waiting on a
server that holds the connection open; error frames end it as incomplete; every read is bounded.
``response()`` gives what arrived whatever happened, so an error or Ctrl-C keeps it. No IPython.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from ..assembler import BAD_FRAGMENT, StreamAssembler
from ..errors import AIMLError, IncompleteAnswer, ProtocolError
from ..params import MAX_ANSWER_BYTES
from ..response import CUT, INTERRUPTED, ChatResponse
from ..safejson import JSONRefused, describe_size, loads
from .bounded import (
    READ_BLOCK,
    failure_words,
    finish_quickly,
    inflated,
    read_capped,
    set_read_timeout,
)
from .maskanswer import mask_answer
from .sse import DONE, LineTooLong, SSEParser
from .status import error_words, service_message

if TYPE_CHECKING:
    import requests

MALFORMED = "skipped a malformed chunk: the answer may have a gap"
KEPT = "What arrived is kept (the error's .response, and the history); ask again for a full answer."
#: Once an answer is complete ([DONE], or a finish and the usage), the few bytes that may still
#: come (credits, [DONE], the end of the body) must arrive within this many seconds.
END_GRACE = 0.5


def parse_problem(exc: BaseException) -> str:
    """A parse error's own words, one short line (never the text that failed to parse)."""
    text = str(exc).split(":", 1)[0] if not isinstance(exc, JSONRefused) else str(exc)
    return text[:120] or type(exc).__name__


def not_an_answer_excerpt(raw: bytes, ctype: str, problem: BaseException | None) -> str:
    """What came instead of an answer: JSON too large or deep is named, anything else quoted."""
    if isinstance(problem, JSONRefused):
        return f"JSON {problem}"
    return service_message(raw[:4096], ctype)


def note_empty(resp: ChatResponse) -> None:
    """A finished answer with no text gets a warning that says why, so an empty cell is explained."""
    if resp.text or not resp.complete or resp.tool_calls:
        return
    if resp.reasoning:
        note = "the model sent only reasoning, no answer text"
        if resp.finish_reason == "length":
            note += ": it hit the token limit while thinking, raise max_completion_tokens"
    else:
        note = "the model sent no answer text"
    resp.warnings.append(note)


def is_read_timeout(exc: BaseException) -> bool:
    """requests wraps a read timeout met while reading a body in a ConnectionError."""
    from urllib3.exceptions import ReadTimeoutError

    seen: BaseException | None = exc
    for _ in range(4):
        if isinstance(seen, ReadTimeoutError):
            return True
        inner = seen.args[0] if seen is not None and seen.args else None
        seen = getattr(inner, "reason", inner) if isinstance(inner, BaseException) else None
    return False


class ChatStream:
    """An open streamed answer. Iterating yields (content, reasoning) deltas; ``response()``
    gives the answer so far at any time, so an error or Ctrl-C keeps what arrived.

    Reading stops as soon as the answer is complete: at ``[DONE]``, or once a finish reason and
    the usage have arrived and nothing more comes within ``END_GRACE`` (a server may hold the
    connection open, silent or sending ``: keep-alive``). It also stops at an error frame, past
    ``max_bytes`` of (inflated) stream, or at a line longer than the SSE parser's limit.
    """

    def __init__(
        self,
        resp: requests.Response,
        payload: dict[str, Any],
        started: float,
        max_bytes: int = MAX_ANSWER_BYTES, timeout: float | None = None,
    ) -> None:
        self._resp, self.timeout = resp, timeout  # timeout: seconds without a data event
        self.payload = payload
        self.started = started
        self.max_bytes = max_bytes
        self.assembler = StreamAssembler()
        self.done = False  # [DONE] seen
        self.error: AIMLError | None = None
        self.warnings: list[str] = []
        self.interrupted = False
        self.inference_id = resp.headers.get("x-inference-id")
        self._head = b""  # the first bytes of the body, quoted if it turns out not to be a stream

    @property
    def ended(self) -> bool:
        """The answer is complete: [DONE], or a finish reason and the usage (no error since)."""
        a = self.assembler
        return self.error is None and (
            self.done or (a.finish_reason is not None and a.usage is not None)
        )

    def _take(self, events: list[str]) -> Generator[tuple[str, str], None, bool]:
        """Yield the deltas of ``events``; True when the stream is over: ``[DONE]`` (``done`` is
        set) or an error frame (``error`` is set)."""
        assembler = self.assembler
        for event in events:
            if event == DONE:
                self.done = True
                return True
            delta = self._decode(event)
            if delta is None:
                continue
            if type(event) is not str and getattr(event, "name", "") == "error":
                self._error_frame(delta)
                return True
            yield assembler.add(delta)
            if assembler.error is not None:
                self._error_frame(assembler.error)
                return True
        return False

    def _byte_chunks(self) -> Iterator[bytes]:
        raw = self._resp.raw

        def blocks(decode: bool) -> Iterator[bytes]:
            if getattr(raw, "chunked", False):
                # Each HTTP chunk as soon as it arrives (the service flushes one per event).
                yield from raw.read_chunked(READ_BLOCK, decode_content=decode)
                return
            while block := raw.read1(READ_BLOCK, decode_content=decode):
                yield block

        # At most READ_BLOCK inflated bytes at a time: a gzip bomb is inflated only as far as read.
        yield from inflated(raw, blocks)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        ctype = self._resp.headers.get("Content-Type", "")
        chunks = self._byte_chunks()
        clean = False
        tail_until: float | None = None  # set once the answer is complete without [DONE]
        try:
            if "json" in ctype.lower():
                # Some models ignore "stream": the whole answer comes as one JSON body.
                yield from self._whole_body()
                clean = self.error is None
                return
            parser = SSEParser()
            feed, assembler = parser.feed, self.assembler
            received = 0
            quiet = _DataClock(self._resp.raw, self.timeout)
            for block in chunks:
                received += len(block)
                if received > self.max_bytes:
                    self.error = self._too_large()
                    return
                if len(self._head) < 512:
                    self._head += block[: 512 - len(self._head)]
                if (yield from self._take(quiet.seen(feed(block)))):
                    clean = self.done
                    return
                if tail_until is None:
                    if assembler.finish_reason is not None and assembler.usage is not None:
                        # Complete: what may still come (credits, [DONE]) comes at once or not.
                        tail_until = time.monotonic() + END_GRACE
                        set_read_timeout(self._resp.raw, END_GRACE)
                elif time.monotonic() >= tail_until:
                    return
            if (yield from self._take(parser.close())) and not self.done:
                return
            clean = self.error is None
            if not self.done and self.assembler.chunks == 0 and self._head.strip():
                self.error = self._not_an_answer(self._head, ctype)
        except KeyboardInterrupt:
            if not self.ended:
                self.interrupted = True
            raise
        except LineTooLong as exc:
            self.error = self._stopped(
                f"the stream sent a line longer than {describe_size(exc.limit)}, the most "
                "a stream line may take"
            )
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if tail_until is not None and self.ended:
                return  # the answer was complete; the server just did not end the body
            self.error = self._stopped(_stream_failure(exc))
        finally:
            self._finish(chunks, clean)

    def _stopped(self, why: str) -> AIMLError:
        got = self.assembler.content_chars
        return IncompleteAnswer(
            f"The answer stopped early: {why} after {got:,} characters.",
            hint=KEPT,
        )

    def _too_large(self) -> AIMLError:
        got = self.assembler.content_chars
        return IncompleteAnswer(
            f"The answer is larger than {describe_size(self.max_bytes)} (the max_answer_bytes "
            f"setting), so the rest was not read after the first {got:,} characters.",
            hint="What arrived is kept (the error's .response, and the history); raise "
            "max_answer_bytes for longer answers.",
            limit="max_answer_bytes",
        )

    def _error_frame(self, error: Any) -> None:
        """An ``event: error`` frame or a chunk carrying ``error``: the answer ends, incomplete."""
        if isinstance(error, dict) and isinstance(error.get("error"), (dict, str)):
            error = error["error"]
        words = error_words(error)
        got = self.assembler.content_chars
        self.error = IncompleteAnswer(
            f"The service reported an error in the middle of the answer: {words.rstrip('.')}. "
            f"The answer is incomplete after {got:,} characters.",
            hint=KEPT,
            service_message=words,
        )

    def _finish(self, chunks: Iterator[bytes], clean: bool) -> None:
        """Give a fully read connection back to the pool (keep-alive); close anything else.

        After [DONE] the end of the chunked body is a few bytes that are already there or come at
        once; a server that holds the connection open instead gets it closed, not waited on.
        """
        if clean:
            try:
                if finish_quickly(self._resp.raw, chunks, END_GRACE):
                    return
            except KeyboardInterrupt:
                self.close()
                raise
        self.close()

    def _decode(self, event: str) -> Any:
        try:
            return loads(event)
        except ValueError as exc:
            if type(event) is not str and getattr(event, "name", "") == "error":
                return event  # an error frame in plain text: its words are the message
            note = MALFORMED + (f" ({exc})" if isinstance(exc, JSONRefused) else "")
            self.warnings.append(note)
            return None

    def _whole_body(self) -> Iterator[tuple[str, str]]:
        raw, more = read_capped(self._resp, self.max_bytes, keep=False)
        if more:
            self.error = self._too_large()
            return
        try:
            body = loads(raw)
        except ValueError as exc:
            body = None
            if isinstance(exc, JSONRefused):
                self.error = self._not_an_answer(f"JSON {exc}".encode(), ctype="text/plain")
                return
        if not isinstance(body, dict):
            self.error = self._not_an_answer(raw[:4096], ctype="")
            return
        single = ChatResponse.from_body(body)
        chunk = {
            "id": body.get("id"),
            "model": body.get("model"),
            "usage": body.get("usage"),
            "meta": body.get("meta"),
            "choices": [
                {
                    "delta": {"content": single.text, "reasoning_content": single.reasoning,
                              "tool_calls": [dict(c.wire(provider=True), index=i)
                                             for i, c in enumerate(single.tool_calls)]},
                    "finish_reason": single.finish_reason,
                }
            ],
        }
        yield self.assembler.add(chunk)
        if body.get("error"):
            self._error_frame(body["error"])
            return
        self.done = True

    def _not_an_answer(self, head: bytes, ctype: str) -> AIMLError:
        excerpt = service_message(head, ctype)
        return ProtocolError(
            f"The service answered {self._resp.status_code} but not with an answer: {excerpt}.",
            hint="Check the base URL; if it is right, try again.",
        )

    def close(self) -> None:
        """Release the connection; a half-read stream closes it rather than reuse it."""
        try:
            self._resp.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real outcome
            pass

    def response(self) -> ChatResponse:
        """The answer so far, marked interrupted or cut when it did not end normally."""
        a = self.assembler
        finish = a.finish_reason
        if self.interrupted:
            finish = INTERRUPTED
        elif self.error is not None or (finish is None and not self.done):
            finish = CUT
        warnings = list(dict.fromkeys(self.warnings + [BAD_FRAGMENT] * bool(a.skipped_fragments)))
        result = a.build(
            request=self.payload,
            finish_reason=finish,
            elapsed=time.monotonic() - self.started,
            inference_id=self.inference_id,
            warnings=warnings,
        )
        note_empty(result)
        return mask_answer(result)


class _DataClock:
    """The read timeout counts data events only: a server sending ``: keep-alive`` every few
    seconds and never data must not hold a cell forever. After a block with no event the socket
    waits only for what is left of the timeout, so a silent wait ends on time too."""

    __slots__ = ("raw", "timeout", "until", "shortened")

    def __init__(self, raw: Any, timeout: float | None) -> None:
        self.raw, self.timeout = raw, timeout
        self.until = time.monotonic() + timeout if timeout else None
        self.shortened = False

    def seen(self, events: list[str]) -> list[str]:
        """``events`` (what a block completed); a ``TimeoutError`` once the timeout has passed
        with comments only (read as "no data within the read timeout", what arrived kept)."""
        if self.until is None or self.timeout is None:
            return events
        now = time.monotonic()
        if events:
            self.until = now + self.timeout
            if self.shortened:
                self.shortened = not set_read_timeout(self.raw, self.timeout)
        elif now >= self.until:
            raise TimeoutError("timed out: no data event, only comments")
        else:
            self.shortened = set_read_timeout(self.raw, self.until - now)
        return events


def _stream_failure(exc: BaseException) -> str:
    if is_read_timeout(exc) or "timed out" in str(exc).lower():
        return "no data within the read timeout"
    words, _ = failure_words(exc)
    return words if words != "the connection broke" else "the connection closed"
