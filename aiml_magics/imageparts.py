"""Views of the image parts in messages and requests: find them, describe them, hash them.

A request's images are ``image_url`` content parts of its user messages. Everything that shows
or keeps a request (history, dry run, snippet, cassettes, the store) reads them through these
functions, which never decode pixels and never fetch a URL. Plain Python, no Pillow.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from .dataurl import HASH_PREFIX, DataURL, sha256_hex, size_words
from .imagefile import header_size, sniff


def parts_of(content: Any) -> list[dict[str, Any]]:
    """The image parts of a message's content (none for plain text)."""
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]


def last_user(messages: Iterable[Any] | None) -> dict[str, Any] | None:
    """The last user message, found from the end (a long conversation is not walked)."""
    if not isinstance(messages, list):
        messages = list(messages or [])
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    return None


def url_of(part: dict[str, Any]) -> str:
    inner = part.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else None
    return url if isinstance(url, str) else ""


def describe_url(url: str) -> str:
    """A short description of an image URL: ``[image 800×600 PNG, 41 KB]`` or the http(s) URL."""
    if isinstance(url, DataURL):
        return url.description
    if url.startswith("data:"):
        try:
            data = base64.b64decode(url.split(",", 1)[1], validate=False)
        except (ValueError, IndexError):
            return "[image data]"
        fmt = sniff(data) or "?"
        size = header_size(data, fmt) if fmt != "?" else None
        dims = f"{size[0]}×{size[1]} " if size else ""
        return f"[image {dims}{fmt}, {size_words(len(data))}]"
    if url.startswith(HASH_PREFIX):
        return f"[image {url}]"
    return url


def described(value: Any) -> Any:
    """A copy of a request (or messages) with every data: URL replaced by its description."""
    if isinstance(value, dict):
        if value.get("type") == "image_url" and isinstance(value.get("image_url"), dict):
            inner = dict(value["image_url"], url=describe_url(url_of(value)))
            return dict(value, image_url=inner)
        return {k: described(v) for k, v in value.items()}
    if isinstance(value, list):
        return [described(v) for v in value]
    return value


def hashed(value: Any) -> Any:
    """A copy of a request with every data: URL replaced by ``sha256:<hash of the image bytes>``:
    how cassettes store and match requests with images (an http(s) URL stays as it is)."""
    if isinstance(value, dict):
        if value.get("type") == "image_url" and isinstance(value.get("image_url"), dict):
            url = url_of(value)
            if isinstance(url, DataURL):
                url = HASH_PREFIX + url.sha256
            elif url.startswith("data:"):
                try:
                    url = HASH_PREFIX + sha256_hex(base64.b64decode(url.split(",", 1)[1]))
                except (ValueError, IndexError):
                    pass
            return dict(value, image_url=dict(value["image_url"], url=url))
        return {k: hashed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hashed(v) for v in value]
    return value


def request_images(payload: dict[str, Any] | None) -> list[str]:
    """The image URLs of a request's last user message (what this request adds)."""
    user = last_user((payload or {}).get("messages"))
    return [url_of(p) for p in parts_of(user.get("content"))] if user else []


def summary(urls: list[str]) -> str:
    """``2 images, 83 KB`` (sizes of local images; URLs are counted, not sized)."""
    if not urls:
        return ""
    local = sum(u.nbytes for u in urls if isinstance(u, DataURL))
    sized = f", {size_words(local)}" if local else ""
    return f"{len(urls)} image{'s' if len(urls) != 1 else ''}{sized}"


def text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return ""


def user_content(prompt: str, images: list[dict[str, Any]] | None) -> Any:
    """A user message's content: the text alone, or the text first and then the image parts."""
    if not images:
        return prompt
    return [{"type": "text", "text": prompt}, *images]
