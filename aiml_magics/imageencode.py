"""Pixels to the bytes that are sent: figures drawn at the size they go at, images scaled only
when over the limit, and every image encoded once (JPEG only when the PNG is over the byte limit).

Drawing a 4000×4000 figure at full size and then scaling it costs several times the time and
hundreds of MB against drawing it at 2048 px; re-encoding an image that already fits costs a
second encode for nothing. Pillow (it comes with matplotlib) scales and encodes; without it,
images that need neither still work.
"""

from __future__ import annotations

import io
from typing import Any

from .dataurl import DataURL, size_words
from .errors import ParameterError
from .imagefile import header_size, png_from_array


def pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def needs_pillow(what: str, why: str) -> ParameterError:
    return ParameterError(
        f"{what}: {why}, which needs Pillow, and Pillow is not installed. Install it "
        "(`pip install Pillow`, or `pip install aiml-magics[images]`), or pass a smaller image."
    )


def figure_png(figure: Any, max_edge: int) -> bytes:
    """A matplotlib figure as PNG, drawn at a dpi that keeps its long side within ``max_edge``
    (the dpi it would be saved at otherwise, when that already fits)."""
    import matplotlib

    chosen = matplotlib.rcParams.get("savefig.dpi", "figure")
    dpi = float(figure.dpi if chosen in (None, "figure") else chosen)
    long_inches = max(float(v) for v in figure.get_size_inches())
    if long_inches > 0 and long_inches * dpi > max_edge:
        dpi = max_edge / long_inches
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def fit(data: Any, fmt: str, what: str, max_edge: int, max_bytes: int) -> DataURL:
    """The image as sent: unchanged when it fits, else scaled and encoded once with Pillow.

    ``fmt`` is the format of encoded ``data`` (PNG, JPEG, GIF, WEBP), or ``PIL`` / ``ARRAY`` for
    pixels still to encode."""
    Image = pillow()
    if fmt == "ARRAY":
        h, w = data.shape[:2]
        if max(w, h) <= max_edge and Image is None:
            png = png_from_array(data)
            if len(png) <= max_bytes:
                return DataURL(png, "PNG", w, h)
        if Image is None:
            raise needs_pillow(what, f"this {w}×{h} array must be scaled to {max_edge} px")
        return encode(Image.fromarray(data), what, max_edge, max_bytes, Image)
    if fmt == "PIL":
        return encode(data, what, max_edge, max_bytes, Image)
    size = header_size(data, fmt)
    if size is not None and max(size) <= max_edge and len(data) <= max_bytes:
        return DataURL(data, fmt, *size)
    if Image is None:
        if size is None:
            raise needs_pillow(what, f"the size of this {fmt} cannot be read from its header")
        why = (f"this {size[0]}×{size[1]} {fmt} must be scaled to {max_edge} px"
               if max(size) > max_edge else f"this {size_words(len(data))} {fmt} must be re-encoded "
               f"to fit {size_words(max_bytes)}")
        raise needs_pillow(what, why)
    try:
        img = Image.open(io.BytesIO(data))
        if fmt == "JPEG" and size is not None and max(size) > max_edge:
            # Decode at a power-of-two fraction no smaller than the target: far less to scale.
            scale = max_edge / max(size)
            img.draft(img.mode, (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same to the user
        raise ParameterError(f"{what}: this {fmt} cannot be decoded ({exc}).") from None
    if size is None:
        size = img.size
        if max(size) <= max_edge and len(data) <= max_bytes:
            return DataURL(data, fmt, *size)
    return encode(img, what, max_edge, max_bytes, Image)


def scaled(img: Any, max_edge: int, Image: Any) -> Any:
    """``img`` with its long edge at most ``max_edge`` (aspect kept); itself when it fits."""
    w, h = img.size
    if max(w, h) <= max_edge:
        return img
    scale = max_edge / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(img: Any, what: str, max_edge: int, max_bytes: int, Image: Any) -> DataURL:
    """Scale to ``max_edge`` on the long edge (aspect kept), then PNG; JPEG when PNG is too big."""
    img = scaled(img, max_edge, Image)
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")
    w, h = img.size
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    if buf.tell() <= max_bytes:
        return DataURL(buf.getvalue(), "PNG", w, h)
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
