"""Recorded answers and the offline echo: how a notebook runs with no key, and stays honest.

A cassette is a JSON file of request/response pairs. A request is matched on its model, its
messages and its parameters (``stream`` is how an answer travels, not what was asked, so it is
ignored). Each recording says where it came from, so a replayed answer is never passed off as
something it is not. A request with no recording gets the offline echo: a reply that reflects the
request and says plainly that no model was asked. No IPython and no network here.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import AIMLError, redact
from .prompt import trim_prompt
from .response import ChatResponse, Usage
from .safejson import JSONRefused, _float, _str, describe_size, loads
from .toolcall import ToolCall

FORMAT = "aiml-magics-cassette"
VERSION = 1
REPLAYED = "replayed"
ECHO = "offline echo"
# How an answer travels, not what was asked: left out when matching.
TRANSPORT_KEYS = ("stream", "stream_options")
MAX_CASSETTE_BYTES = 64 * 1024 * 1024  # a cassette is read whole: bounded like an answer
GO_LIVE = "To get real answers: set `AIML_API_KEY` (or run `%aiml key`), then `%aiml live`."


def shipped_cassette(name: str = "quickstart") -> Path:
    """A cassette that ships inside the package (``%aiml replay`` with no path uses quickstart)."""
    return Path(str(resources.files("aiml_magics") / "cassettes" / f"{name}.json"))


def request_key(payload: dict[str, Any]) -> dict[str, Any]:
    """What identifies a request: model, messages and every other parameter except transport.

    User messages are compared as the magic sends them (``prompt.trim_prompt``): a recording made
    or hand-written with a trailing newline still matches the prompt typed without one. Images
    are compared by a hash of their bytes (``imageparts.hashed``), never stored as base64.
    """
    from .imageparts import hashed

    params = {
        k: v for k, v in payload.items() if k not in ("model", "messages", *TRANSPORT_KEYS)
    }
    return normalised(
        {"model": payload.get("model"), "messages": hashed(payload.get("messages")),
         "parameters": params}
    )


def normalised(key: dict[str, Any]) -> dict[str, Any]:
    """A request key with every user message trimmed as the magic trims it. The messages it
    changes are new objects (the caller's request is never touched); the rest is shared, not
    deep-copied: a key is hashed or written out at once, and copying a long conversation for
    every request of a batch was most of what a key cost."""
    messages = key.get("messages")
    return {**key, "messages": [_trimmed(m) for m in messages] if isinstance(messages, list)
            else []}


def _trimmed(message: Any) -> Any:
    if not isinstance(message, dict) or message.get("role") != "user":
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": trim_prompt(content)}
    if isinstance(content, list):
        return {**message, "content": [
            {**part, "text": trim_prompt(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str) else part
            for part in content]}
    return message


@dataclass
class Recording:
    """One request and the answer that came back, with where that answer came from."""

    request: dict[str, Any]
    response: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)

    def matches(self, payload: dict[str, Any]) -> bool:
        # Plain equality: 1 == 1.0 and key order does not matter. The recording's own request is
        # read by the same rule, so a hand-edited cassette with a trailing newline matches too.
        # A recording's "model" may list several ids: an answer kept for a model and the id that
        # replaced it (its source says so), so a renamed default still replays it.
        mine, asked = normalised(self.request), request_key(payload)
        models = mine.get("model")
        if isinstance(models, list) and asked.get("model") in models:
            mine["model"] = asked["model"]
        return mine == asked

    @property
    def provenance(self) -> str:
        """One line for people: what the source says, and its address if it has one."""
        text = str(self.source.get("description") or self.source.get("kind") or "unknown source")
        url = self.source.get("url")
        return f"{text} ({url})" if url else text

    def to_response(self, payload: dict[str, Any]) -> ChatResponse:
        """The recorded answer as a fresh ``ChatResponse`` labelled ``replayed``."""
        r = self.response
        usage = Usage.from_dict(r.get("usage"))
        raw = copy.deepcopy(r["raw"]) if isinstance(r.get("raw"), dict) else _body(r)
        listed = r.get("tool_calls")
        calls: list[Any] = listed if isinstance(listed, list) else []
        return ChatResponse(
            tool_calls=[c for c in (ToolCall.from_dict(d, replayed=True) for d in calls) if c],
            text=_str(r.get("text")) or "",
            reasoning=_str(r.get("reasoning")) or None,
            model=_str(r.get("model")),
            finish_reason=_str(r.get("finish_reason")) or "stop",
            usage=usage,
            credits_used=_float(r.get("credits_used")),
            usd_spent=_float(r.get("usd_spent")),
            raw=raw,
            request=payload,
            source=REPLAYED,
            provenance=self.provenance,
        )

    def as_dict(self) -> dict[str, Any]:
        return {"request": self.request, "response": self.response, "source": self.source}


def _body(r: dict[str, Any]) -> dict[str, Any]:
    """The non-streamed body the recorded fields amount to (for ``.raw`` when none was stored)."""
    message: dict[str, Any] = {"role": "assistant", "content": _str(r.get("text")) or ""}
    if _str(r.get("reasoning")):
        message["reasoning_content"] = r["reasoning"]
    return {
        "object": "chat.completion",
        "model": r.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": r.get("finish_reason")}],
        "usage": r.get("usage"),
        "meta": {"usage": {"credits_used": r.get("credits_used"), "usd_spent": r.get("usd_spent")}},
    }


def response_fields(resp: ChatResponse) -> dict[str, Any]:
    """What a cassette keeps of an answer: never headers, never the key."""
    fields: dict[str, Any] = {
        "text": resp.text,
        "reasoning": resp.reasoning,
        "model": resp.model,
        "finish_reason": resp.finish_reason,
        "usage": resp.usage.as_dict(),
        "credits_used": resp.credits_used,
        "usd_spent": resp.usd_spent,
    }
    if resp.tool_calls and not resp.tool_rounds:  # a tool round's own calls and results:
        # replay runs nothing (a final answer lists every call of the loop: not recorded here)
        fields["tool_calls"] = [c.as_dict() for c in resp.tool_calls]
    return fields


class Cassette:
    """Recordings kept in one JSON file; writes are atomic so a crash never leaves half a file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        recordings: list[Recording] | None = None,
        description: str = "",
    ) -> None:
        self.path = Path(path)
        self.recordings: list[Recording] = recordings or []
        self.description = description

    def __len__(self) -> int:
        return len(self.recordings)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read a cassette, refusing (with the reason) anything that is not one."""
        path = Path(path).expanduser()
        try:
            if path.stat().st_size > MAX_CASSETTE_BYTES:
                raise JSONRefused(f"larger than {describe_size(MAX_CASSETTE_BYTES)}")
            data = loads(path.read_bytes())
        except FileNotFoundError:
            raise AIMLError(
                f"No cassette at {path}: check the path, or use `%aiml record {path}` to make one.",
                kind="cassette",
            ) from None
        except UnicodeDecodeError:
            raise AIMLError(f"Cannot read the cassette {path}: it is not UTF-8 text.",
                            kind="cassette") from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise AIMLError(f"Cannot read the cassette {path}: {reason}.", kind="cassette") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise AIMLError(
                f"{path} is not an aiml-magics cassette (its \"format\" is not {FORMAT!r}).",
                kind="cassette",
            )
        version = data.get("version")
        if not isinstance(version, int) or not 1 <= version <= VERSION:
            raise AIMLError(
                f"{path} has cassette version {version!r}; this aiml-magics reads versions 1 to "
                f"{VERSION}: upgrade aiml-magics to replay it.",
                kind="cassette",
            )
        items = data.get("recordings")
        if not isinstance(items, list):
            raise AIMLError(f"{path}: \"recordings\" must be a list.", kind="cassette")
        recordings = []
        for i, item in enumerate(items):
            ok = isinstance(item, dict) and isinstance(item.get("request"), dict)
            ok = ok and isinstance(item.get("response"), dict)
            if not ok:
                raise AIMLError(
                    f"{path}: recording {i} needs a \"request\" and a \"response\" object.",
                    kind="cassette",
                )
            source = item.get("source")
            source = source if isinstance(source, dict) else {"description": str(source or "")}
            recordings.append(Recording(item["request"], item["response"], source))
        return cls(path, recordings, str(data.get("description") or ""))

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> Cassette:
        """For recording: the existing cassette, or a new empty one (written on first answer)."""
        path = Path(path).expanduser()
        if path.exists():
            return cls.load(path)
        return cls(path, description="Answers recorded with `%aiml record`.")

    def find(self, payload: dict[str, Any]) -> Recording | None:
        """The recording for this request (the newest, if several match), or None."""
        for recording in reversed(self.recordings):
            if recording.matches(payload):
                return recording
        return None

    def record(self, payload: dict[str, Any], resp: ChatResponse, origin: str) -> Recording:
        """Keep a live answer (replacing an older one for the same request) and save at once."""
        recording = Recording(
            request_key(payload),
            response_fields(resp),
            {
                "kind": "recorded",
                "description": f"recorded live from {origin}",
                "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        self.recordings = [r for r in self.recordings if r.request != recording.request]
        self.recordings.append(recording)
        self.save()
        return recording

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "description": self.description,
            "recordings": [r.as_dict() for r in self.recordings],
        }
        # Scrub any key the session knows, in case one was typed into a prompt.
        return redact(json.dumps(data, ensure_ascii=False, indent=2)) + "\n"

    def save(self) -> None:
        text = self.to_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- the offline echo ---------------------------------------------------------------------------


def _prompt_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        from .imageparts import text_of

        return text_of(content)
    return json.dumps(content, ensure_ascii=False)


def _image_words(message: dict[str, Any]) -> list[str]:
    from .imageparts import describe_url, parts_of, url_of

    return [describe_url(url_of(p)) for p in parts_of(message.get("content"))]


def offline_echo(payload: dict[str, Any]) -> ChatResponse:
    """A reply that only mirrors the request: plainly not a language model, labelled as such."""
    messages = payload.get("messages") or []
    prompt = _prompt_text(messages[-1]) if messages else ""
    images = _image_words(messages[-1]) if messages else []
    system = [m for m in messages if m.get("role") == "system"]
    earlier = (len(messages) - len(system) - 1) // 2
    would_send = {k: v for k, v in payload.items() if k != "messages"}
    json_mode = (payload.get("response_format") or {}).get("type") in ("json_object", "json_schema")
    from .offline import placeholder_text

    shaped = placeholder_text(payload)
    if shaped is not None:  # a schema: values of its shape, so the structured path runs
        return ChatResponse(
            text=shaped,
            model="no model",
            finish_reason="stop",
            request=payload,
            source=ECHO,
            provenance="built-in offline placeholder: values shaped like the schema, no model was asked",
            warnings=["offline placeholder: shaped like the schema, no model was asked"],
        )
    if json_mode:
        text = json.dumps(
            {
                "offline_echo": True,
                "note": "No language model was asked: this only mirrors the request.",
                "prompt": prompt,
                "images": images,
                "would_send": would_send,
                "earlier_turns": earlier,
                "messages": len(messages),
                "go_live": GO_LIVE,
            },
            ensure_ascii=False,
            indent=2,
        )
    else:
        text = echo_markdown(prompt, would_send, earlier, len(messages), bool(system), images)
    return ChatResponse(
        text=text,
        model="no model",
        finish_reason="stop",
        raw=None,
        request=payload,
        source=ECHO,
        provenance="built-in offline echo: no recording matched this request",
    )


def echo_markdown(
    prompt: str, would_send: dict[str, Any], earlier: int, messages: int, system: bool,
    images: list[str] | None = None,
) -> str:
    """The echo as Markdown: the prompt, the parameters, the conversation length, how to go live."""
    shown = prompt if len(prompt) <= 600 else prompt[:599] + "…"
    quoted = "\n".join("> " + line if line else ">" for line in shown.split("\n"))
    params = " · ".join(f"`{k}` = `{json.dumps(v, ensure_ascii=False)}`" for k, v in would_send.items())
    turns = f"{earlier} earlier turn{'s' if earlier != 1 else ''}"
    extra = ", plus a system prompt" if system else ""
    return (
        "**Offline echo: no language model was asked.** There is no recording of this request, "
        "so this reply only mirrors what would be sent.\n\n"
        f"**Your prompt**\n\n{quoted}\n\n"
        + (f"**Images** {' · '.join(f'`{d}`' for d in images)}\n\n" if images else "")
        + f"**Would send** {params}\n\n"
        f"**Conversation** {turns} ({messages} message{'s' if messages != 1 else ''} "
        f"in this request{extra})\n\n"
        f"*{GO_LIVE}*"
    )


def pieces(text: str | None, size: int = 48) -> list[str]:
    """Cut a recorded text into stream-sized pieces, so replay goes through the live renderer."""
    if not text:
        return []
    return [text[i : i + size] for i in range(0, len(text), size)]
