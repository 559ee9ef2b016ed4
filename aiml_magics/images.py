"""Images for a vision model: figures, arrays, PIL images, bytes, files and URLs -> content parts.

Every value is checked and encoded before anything is sent, so a wrong value fails with what it
was and what is accepted. Local images travel as ``data:`` URLs held in :class:`DataURL`, a
``str`` whose repr is a short description (``[image 800×600 PNG, 41 KB]``): the request body is
sent as is, and every view of it (``repr``, dry run, snippet, history, exports) shows the
description, never megabytes of base64. A URL is passed on as the URL and never fetched here.
Pillow (it comes with matplotlib) scales and re-encodes; without it, images that need neither
still work. Plain Python: no IPython, no network.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ParameterError
from .imagefile import header_size, png_from_array, sniff

MAX_EDGE = 2048  # px on the long edge (max_image_edge)
MAX_BYTES = 4_000_000  # per image, encoded (max_image_bytes)
MAX_FILE_BYTES = 64 << 20  # a file larger than this is not read
ACCEPTED = (
    "a matplotlib Figure or Axes, a PIL image, a numpy array (H×W, H×W×3 or H×W×4; uint8, or "
    "floats in 0..1), bytes of a PNG/JPEG/GIF/WEBP, an IPython.display.Image, a path to an image "
    "file, or an http(s) URL"
)
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
HASH_PREFIX = "sha256:"


class DataURL(str):
    """A ``data:`` URL that describes itself instead of printing its base64."""

    image_format: str
    width: int
    height: int
    nbytes: int
    sha256: str

    def __new__(cls, data: bytes, fmt: str, width: int, height: int) -> DataURL:
        url = f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
        self = super().__new__(cls, url)
        self.image_format, self.width, self.height, self.nbytes = fmt, width, height, len(data)
        self.sha256 = hashlib.sha256(data).hexdigest()
        return self

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


def size_words(n: int) -> str:
    """Bytes as people read them: 812 B, 41 KB, 3.2 MB."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{round(n / 1000)} KB"
    return f"{n / 1_000_000:.1f} MB"


# -- what a value is -------------------------------------------------------------------------------


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def _needs_pillow(what: str, why: str) -> ParameterError:
    return ParameterError(
        f"{what}: {why}, which needs Pillow, and Pillow is not installed. Install it "
        "(`pip install Pillow`, or `pip install aiml-magics[images]`), or pass a smaller image."
    )


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
    return _part(_fit(data, fmt, what, max_edge, max_bytes))


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
        return _figure_png(value), "PNG"
    if kind.startswith("matplotlib.") and hasattr(value, "get_figure"):  # Axes
        return _figure_png(value.get_figure()), "PNG"
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


def _figure_png(figure: Any) -> bytes:
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    return buf.getvalue()


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


def _fit(data: Any, fmt: str, what: str, max_edge: int, max_bytes: int) -> DataURL:
    """The image as sent: unchanged when it fits, else scaled and re-encoded with Pillow."""
    Image = _pillow()
    if fmt == "ARRAY":
        h, w = data.shape[:2]
        if max(w, h) <= max_edge and Image is None:
            png = png_from_array(data)
            if len(png) <= max_bytes:
                return DataURL(png, "PNG", w, h)
        if Image is None:
            raise _needs_pillow(what, f"this {w}×{h} array must be scaled to {max_edge} px")
        return _encode(Image.fromarray(data), what, max_edge, max_bytes, Image)
    if fmt == "PIL":
        return _encode(data, what, max_edge, max_bytes, Image)
    size = header_size(data, fmt)
    if size is not None and max(size) <= max_edge and len(data) <= max_bytes:
        return DataURL(data, fmt, *size)
    if Image is None:
        if size is None:
            raise _needs_pillow(what, f"the size of this {fmt} cannot be read from its header")
        why = (f"this {size[0]}×{size[1]} {fmt} must be scaled to {max_edge} px"
               if max(size) > max_edge else f"this {size_words(len(data))} {fmt} must be re-encoded "
               f"to fit {size_words(max_bytes)}")
        raise _needs_pillow(what, why)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same to the user
        raise ParameterError(f"{what}: this {fmt} cannot be decoded ({exc}).") from None
    if size is None:
        size = img.size
        if max(size) <= max_edge and len(data) <= max_bytes:
            return DataURL(data, fmt, *size)
    return _encode(img, what, max_edge, max_bytes, Image)


def _encode(img: Any, what: str, max_edge: int, max_bytes: int, Image: Any) -> DataURL:
    """Scale to ``max_edge`` on the long edge (aspect kept), then PNG; JPEG when PNG is too big."""
    w, h = img.size
    if max(w, h) > max_edge:
        scale = max_edge / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB") if img.mode not in (
            "RGB", "RGBA", "L", "LA") else img
        img = img.resize(size, Image.Resampling.LANCZOS)
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")
    w, h = img.size
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    png = buf.getvalue()
    if len(png) <= max_bytes:
        return DataURL(png, "PNG", w, h)
    rgb = img.convert("RGB")
    for quality in (90, 80, 65, 50):
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= max_bytes:
            return DataURL(buf.getvalue(), "JPEG", w, h)
    raise ParameterError(
        f"{what}: even as a {w}×{h} JPEG this image is over max_image_bytes "
        f"({size_words(max_bytes)}): lower max_image_edge or raise max_image_bytes."
    )


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


# -- views of a request --------------------------------------------------------------------------


def parts_of(content: Any) -> list[dict[str, Any]]:
    """The image parts of a message's content (none for plain text)."""
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]


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
                    data = base64.b64decode(url.split(",", 1)[1])
                    url = HASH_PREFIX + hashlib.sha256(data).hexdigest()
                except (ValueError, IndexError):
                    pass
            return dict(value, image_url=dict(value["image_url"], url=url))
        return {k: hashed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hashed(v) for v in value]
    return value


def request_images(payload: dict[str, Any] | None) -> list[str]:
    """The image URLs of a request's last user message (what this request adds)."""
    messages = (payload or {}).get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return [url_of(p) for p in parts_of(users[-1].get("content"))] if users else []


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


class NoImageYet(ParameterError):
    """``--image`` with no value, and the notebook has shown no image yet."""
