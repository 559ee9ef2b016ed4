"""The answer as a Python object: text, reasoning, usage, credits, and what was sent.

A ``ChatResponse`` is a plain value: its repr never does I/O, ``str()`` is the answer, and in a
notebook evaluating it renders the answer again (the rich-display hook and ``to_html`` import
``display.view`` lazily: the one reference from the core up to the display layer). Streamed
answers become the same object (``assembler.py``), so the two look alike afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .reasoning import content_parts, split_think
from .safejson import _float, _int, _str
from .toolcall import ToolCall, wire_tool_calls

# finish_reason values we set ourselves when an answer did not end normally.
INTERRUPTED = "interrupted"
CUT = "cut"
ERROR = "error"  # a model of a comparison that failed before any answer arrived


@dataclass
class Usage:
    """Token counts as the service reports them (None where it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        if not isinstance(data, dict):
            return cls()
        details = data.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if reasoning is None:
            reasoning = data.get("reasoning_tokens")
        return cls(
            _int(data.get("prompt_tokens")),
            _int(data.get("completion_tokens")),
            _int(data.get("total_tokens")),
            _int(reasoning),
        )

    def as_dict(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    def __getitem__(self, key: str) -> int | None:
        return self.as_dict()[key]


def first_choice(choices: Any) -> dict[str, Any] | None:
    """The answer's choice: the one with ``index`` 0 (or none given). Another choice (a server
    that sends ``n`` > 1 anyway) is never merged into the answer."""
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0]
    if isinstance(choice, dict) and choice.get("index") in (0, None):
        return choice
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index") in (0, None):
            return choice
    return None


def _credits(body: Any) -> tuple[float | None, float | None]:
    meta = body.get("meta") if isinstance(body, dict) else None
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None, None
    return _float(usage.get("credits_used")), _float(usage.get("usd_spent"))


def whole_credits(value: Any) -> Any:
    """Credits as the footer counts them: ``2002`` for 2002.0, fractions kept (``0.5``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


@dataclass(repr=False, eq=False)
class ChatResponse:
    """One answer. ``complete`` is False when it was interrupted or cut (``finish_reason`` says)."""

    text: str = ""
    reasoning: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    credits_used: float | None = None  # a whole number of credits is an int: 2002, not 2002.0
    usd_spent: float | None = None
    elapsed: float = 0.0
    raw: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    data: Any = None
    inference_id: str | None = None
    source: str = "live"
    provenance: str | None = None  # where a replayed answer came from
    warnings: list[str] = field(default_factory=list)
    allow_remote_images: bool = False  # views show remote images as links unless this is set
    # Every tool call of this exchange, in order, across rounds (the answer's own request asked
    # for none when it is the final text). ``tool_messages``: what went between the user's
    # message and this answer (assistant tool_calls, then one tool message per call, per round).
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_messages: list[dict[str, Any]] = field(default_factory=list)
    tool_rounds: int = 0
    first_token_seconds: float | None = None  # when the first text (or reasoning) arrived
    # Fields of the assistant message the provider wants back within one tool loop (DeepSeek's
    # reasoning_content); never sent across turns.
    provider_fields: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None  # why it failed, for a model's slot in a comparison

    @property
    def complete(self) -> bool:
        return self.finish_reason not in (INTERRUPTED, CUT, ERROR)

    @property
    def requested_model(self) -> str | None:
        return (self.request or {}).get("model")

    def __str__(self) -> str:
        return self.text

    def __post_init__(self) -> None:
        self.credits_used = whole_credits(self.credits_used)  # from a body, a stream, a cassette

    def __repr__(self) -> str:
        from .errors import redact

        text = redact(self.text)  # before the preview is cut, so no piece of a key survives
        preview = text if len(text) <= 60 else text[:57] + "..."
        return redact(
            f"ChatResponse(model={self.model!r}, finish_reason={self.finish_reason!r}, "
            f"text={preview!r} ({len(self.text)} chars), "
            f"tokens={self.usage.total_tokens}, credits_used={self.credits_used})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display.view import final_bundle

        return final_bundle(self)

    def to_html(self, allow_remote_images: bool | None = None) -> str:
        """The answer as standalone HTML, for reports and exports outside Jupyter.

        The same inert Markdown as the notebook view, rendered, then cleaned by a maintained
        sanitiser (nh3): python-markdown reads some constructs differently from JupyterLab, so
        the HTML itself is checked too. Only http(s) and mailto links survive.
        """
        import markdown
        import nh3

        from .display.view import shown

        allow = self.allow_remote_images if allow_remote_images is None else allow_remote_images
        page = markdown.markdown(shown(self.text, allow), extensions=["fenced_code", "tables"])
        attributes = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
        attributes.setdefault("code", set()).add("class")

        def no_remote_src(element: str, attribute: str, value: str) -> str | None:
            remote = value.lstrip().startswith(("//", "\\", "/\\")) or ":" in value.split("/")[0]
            return None if element == "img" and attribute == "src" and remote and not allow else value

        return nh3.clean(
            page,
            attributes=attributes,
            attribute_filter=no_remote_src,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )

    @classmethod
    def from_body(
        cls, body: dict[str, Any], request: dict[str, Any] | None = None, **extra: Any
    ) -> ChatResponse:
        """Build from a non-streamed JSON body, tolerating missing or odd fields; a Responses
        body (``object: response``) is read as its chat-completions equivalent."""
        if isinstance(body, dict) and body.get("object") == "response":
            from .responses_api import chat_body

            body = chat_body(body)
        choice = first_choice(body.get("choices") if isinstance(body, dict) else None) or {}
        message = choice.get("message") if isinstance(choice, dict) else None
        message = message if isinstance(message, dict) else {}
        content, thought = content_parts(message.get("content"))  # text, or Mistral's parts
        content, think = split_think(content)  # a leading <think> block
        given = message.get("reasoning_content")
        if isinstance(given, str) and given:
            extra.setdefault("provider_fields", {"reasoning_content": given})
        reasoning = given or message.get("reasoning") or thought or think or None
        credits, usd = _credits(body)
        extra.setdefault("tool_calls", wire_tool_calls(message))
        return cls(
            text=content if isinstance(content, str) else "",
            reasoning=reasoning if isinstance(reasoning, str) else None,
            model=_str(body.get("model")) if isinstance(body, dict) else None,
            finish_reason=_str(choice.get("finish_reason")),
            usage=Usage.from_dict(body.get("usage") if isinstance(body, dict) else None),
            credits_used=credits,
            usd_spent=usd,
            raw=body,
            request=request,
            **extra,
        )


ECHO_SOURCE = "offline echo"  # the source of an answer the offline echo made


def read_json(resp: ChatResponse) -> None:
    """A JSON-mode answer is parsed into ``.data`` before it is shown, so the final view can show
    the value (and its footer can say when it is not valid JSON)."""
    fmt = (resp.request or {}).get("response_format")
    if resp.text and isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        from .safejson import parse_json_answer

        resp.data, warning = parse_json_answer(resp.text)
        if warning:
            resp.warnings.append(warning)


def tokens_per_second(resp: ChatResponse) -> float | None:
    """Completion tokens per second of generation: after the first token when the answer
    streamed (the wait before it is reported apart), else over the whole request."""
    tokens = resp.usage.completion_tokens
    if not tokens or resp.elapsed <= 0:
        return None
    first = resp.first_token_seconds
    span = resp.elapsed - first if first is not None and resp.elapsed - first > 0.05 else resp.elapsed
    return tokens / span
