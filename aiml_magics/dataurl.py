"""``DataURL``: an encoded image as the ``data:`` URL that is sent, describing itself when shown.

A local image travels in the request body as a ``data:`` URL; every view of that body (``repr``,
dry run, snippet, history, exports) shows ``[image 800×600 PNG, 41 KB]`` instead of megabytes
of base64. The bytes are encoded to base64 once, here; their hash (how cassettes and the store
match an image) is computed only when asked, so ``hashlib`` waits until something needs it.
"""

from __future__ import annotations

import base64
from functools import cached_property
from typing import Any

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
HASH_PREFIX = "sha256:"


class DataURL(str):
    """A ``data:`` URL that describes itself instead of printing its base64."""

    image_format: str
    width: int
    height: int
    nbytes: int

    def __new__(cls, data: bytes, fmt: str, width: int, height: int) -> DataURL:
        url = f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
        self = super().__new__(cls, url)
        self.image_format, self.width, self.height, self.nbytes = fmt, width, height, len(data)
        return self

    @cached_property
    def sha256(self) -> str:
        """The hex SHA-256 of the image bytes (decoded from the URL when first asked)."""
        return sha256_hex(self.data)

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.split(",", 1)[1])

    @property
    def description(self) -> str:
        return f"[image {self.width}×{self.height} {self.image_format}, {size_words(self.nbytes)}]"

    def __repr__(self) -> str:
        return self.description

    def __deepcopy__(self, memo: Any) -> DataURL:  # immutable: copies are the same image
        return self

    def __copy__(self) -> DataURL:
        return self

    def __reduce__(self) -> Any:
        return (_rebuild, (str(self), self.image_format, self.width, self.height))


def _rebuild(url: str, fmt: str, width: int, height: int) -> DataURL:
    return DataURL(base64.b64decode(url.split(",", 1)[1]), fmt, width, height)


def sha256_hex(data: bytes) -> str:
    import hashlib  # libcrypto: loaded when an image is first hashed, not with the package

    return hashlib.sha256(data).hexdigest()


def size_words(n: int) -> str:
    """Bytes as people read them: 812 B, 41 KB, 3.2 MB."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{round(n / 1000)} KB"
    return f"{n / 1_000_000:.1f} MB"
