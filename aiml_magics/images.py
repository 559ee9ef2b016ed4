"""Images for a vision model: figures, arrays, PIL images, bytes, files and URLs -> content parts.

Every value is checked and encoded before anything is sent, so a wrong value fails with what it
was and what is accepted. Local images travel as ``data:`` URLs held in ``dataurl.DataURL``,
whose repr is a short description; how they are drawn, scaled and encoded is ``imageencode``,
how a request's images are found and shown is ``imageparts`` (both re-exported here). A URL is
passed on as the URL and never fetched here. Plain Python: no IPython, no network.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .dataurl import HASH_PREFIX, MIME, DataURL, size_words
from .errors import NoImageYet, ParameterError
from .imageencode import figure_png, fit
from .imagefile import sniff
from .imageparts import (
    describe_url,
    described,
    hashed,
    last_user,
    parts_of,
    request_images,
    summary,
    text_of,
    url_of,
    user_content,
)

__all__ = [
    "ACCEPTED", "HASH_PREFIX", "MAX_BYTES", "MAX_EDGE", "MIME", "DataURL", "NoImageYet",
    "describe_url", "described", "hashed", "image_part", "image_parts", "is_url", "last_user",
    "parts_of", "request_images", "resolve", "size_words", "summary", "text_of", "url_of",
    "user_content",
]

MAX_EDGE = 2048  # px on the long edge (max_image_edge)
MAX_BYTES = 4_000_000  # per image, encoded (max_image_bytes)
MAX_FILE_BYTES = 64 << 20  # a file larger than this is not read
ACCEPTED = (
    "a matplotlib Figure or Axes, a PIL image, a numpy array (H×W, H×W×3 or H×W×4; uint8, or "
    "floats in 0..1), bytes of a PNG/JPEG/GIF/WEBP, an IPython.display.Image, a path to an image "
    "file, or an http(s) URL"
)


# -- what a value is -------------------------------------------------------------------------------


def _label(value: Any, name: str | None) -> str:
    """How a refusal names the value: its name (``--image x``, ``images[0]``) and a short repr."""
    text = " ".join(repr(value).split())
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        text = f"a {type(value).__name__} of shape {tuple(value.shape)}"
    text = text if len(text) <= 60 else text[:57] + "..."
    if name and isinstance(value, (str, Path)) and name.endswith(str(value)):
        return name
    return f"{name} = {text}" if name else text


def is_url(text: str) -> bool:
    return text[:8].lower().startswith(("http://", "https://"))


def image_part(
    value: Any, *, max_edge: int = MAX_EDGE, max_bytes: int = MAX_BYTES, name: str | None = None
) -> dict[str, Any]:
    """One ``image_url`` content part for ``value``; refuses, naming it, what is not an image."""
    what = _label(value, name)
    if isinstance(value, dict) and value.get("type") == "image_url" and url_of(value):
        return value  # already a part (the notebook resolves --image values itself)
    if isinstance(value, DataURL):
        return _part(value)
    if isinstance(value, str) and is_url(value.strip()):
        return _part(value.strip())
    try:
        data, fmt = _to_bytes(value, what, max_edge, max_bytes)
    except _UseURL as use:  # an IPython Image of a URL: passed on, never fetched
        return _part(use.url)
    return _part(fit(data, fmt, what, max_edge, max_bytes))


def image_parts(values: Iterable[Any], *, max_edge: int = MAX_EDGE, max_bytes: int = MAX_BYTES,
                names: Iterable[str | None] | None = None) -> list[dict[str, Any]]:
    """Parts for several values, in order (``names`` label them in messages: the flag's text)."""
    values = list(values)
    labels = list(names) if names is not None else [None] * len(values)
    return [image_part(v, max_edge=max_edge, max_bytes=max_bytes, name=n)
            for v, n in zip(values, labels, strict=True)]


def _part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _to_bytes(value: Any, what: str, max_edge: int, max_bytes: int) -> tuple[Any, str]:
    """(bytes, format) for an encoded image, or (PIL image, "PIL") for pixels to encode."""
    if isinstance(value, (bool, int, float, complex)) or value is None:
        raise ParameterError(f"{what} is not an image: use {ACCEPTED}.")
    kind = _type_name(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        fmt = sniff(data)
        if fmt is None:
            raise ParameterError(
                f"{what}: these {len(data):,} bytes are not a PNG, JPEG, GIF or WEBP image."
            )
        return data, fmt
    if isinstance(value, (str, Path)):
        return _read_file(Path(value).expanduser(), what)
    if kind.startswith("matplotlib.") and hasattr(value, "savefig"):
        return figure_png(value, max_edge), "PNG"  # drawn at the size it is sent at
    if kind.startswith("matplotlib.") and hasattr(value, "get_figure"):  # Axes
        return figure_png(value.get_figure(), max_edge), "PNG"
    if kind.startswith("PIL.") and hasattr(value, "mode") and hasattr(value, "size"):
        return value, "PIL"
    if kind.startswith("numpy.") and hasattr(value, "shape") and hasattr(value, "dtype"):
        return _array(value, what), "ARRAY"
    if kind.startswith("IPython.") and hasattr(value, "data"):  # IPython.display.Image
        url = getattr(value, "url", None)
        if isinstance(value.data, (bytes, bytearray)):
            return _to_bytes(bytes(value.data), what, max_edge, max_bytes)
        if isinstance(url, str) and is_url(url):
            raise _UseURL(url)
        filename = getattr(value, "filename", None)
        if filename:
            return _read_file(Path(filename), what)
    raise ParameterError(f"{what} ({type(value).__name__}) is not an image: use {ACCEPTED}.")


class _UseURL(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


def _read_file(path: Path, what: str) -> tuple[bytes, str]:
    try:
        if not path.is_file():
            raise ParameterError(
                f"{what}: no image file at {path}" + (" (it is a folder)." if path.is_dir() else ".")
            )
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ParameterError(f"{what}: {path} is larger than {size_words(MAX_FILE_BYTES)}.")
        data = path.read_bytes()
    except OSError as exc:
        raise ParameterError(f"{what}: cannot read {path}: {exc.strerror or exc}.") from None
    fmt = sniff(data)
    if fmt is None:
        raise ParameterError(f"{what}: {path} is not an image (PNG, JPEG, GIF or WEBP).")
    return data, fmt


def _array(array: Any, what: str) -> Any:
    """An array of pixels as uint8 (H×W, H×W×3 or H×W×4), refused with its shape and type."""
    import numpy as np

    shape, dtype = tuple(array.shape), array.dtype
    ok_shape = len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))
    if not ok_shape or 0 in shape:
        raise ParameterError(
            f"{what}: an array of shape {shape} is not an image: use H×W (grey), H×W×3 (RGB) or "
            "H×W×4 (RGBA)."
        )
    if dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ParameterError(
                f"{what}: a float array must hold values in 0..1 (this one has "
                f"{float(np.nanmin(array)):g} to {float(np.nanmax(array)):g}, or nan/inf)."
            )
        return np.ascontiguousarray(np.round(array * 255).astype(np.uint8))
    raise ParameterError(f"{what}: an array of {dtype} is not an image: use uint8, or floats in 0..1.")


def resolve(expr: str, namespace: dict[str, Any]) -> Any:
    """What ``--image EXPR`` names: an http(s) URL, a variable (or an expression over the
    namespace, like ``figs[0]``), or an image file; refused when it is none of them."""
    expr = expr.strip()
    if is_url(expr):
        return expr
    if expr.isidentifier() and expr in namespace:
        return namespace[expr]
    path = Path(expr).expanduser()
    if path.is_file():
        return path
    try:
        compiled = compile(expr, "<--image>", "eval")
    except SyntaxError:
        compiled = None
    if compiled is not None:
        try:
            return eval(compiled, namespace)  # noqa: S307 - the user's own expression, like a cell
        except NameError as exc:
            missing = getattr(exc, "name", None) or expr
            raise ParameterError(
                f"--image {expr}: there is no variable {missing!r} and no file {expr!r}. Use a "
                f"name defined in the notebook, a path to an image file, or an http(s) URL."
            ) from None
        except Exception as exc:  # noqa: BLE001 - the expression failed: say how
            raise ParameterError(
                f"--image {expr}: no file {expr!r}, and as an expression it failed "
                f"({type(exc).__name__}: {exc})."
            ) from None
    raise ParameterError(
        f"--image {expr}: no image file at {path}. Use a name defined in the notebook, a path to "
        "an image file, or an http(s) URL."
    )
