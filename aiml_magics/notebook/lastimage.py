"""The most recent image this notebook displayed, for ``%%aiml --image`` with no value.

The inline matplotlib backend, ``display(Image(...))`` and a cell whose value renders as an image
all end in the shell's display publisher or display hook with an ``image/png`` (or jpeg) bundle;
both are wrapped on this shell's instances to remember the last such image (bytes only, nothing
else changes). Notebook layer: it touches the shell, never the network.
"""

from __future__ import annotations

import base64
from typing import Any

MIMES = ("image/png", "image/jpeg")


class LastImage:
    """Remembers the last PNG/JPEG a shell displayed."""

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.mime: str | None = None
        self.count = 0

    @classmethod
    def watch(cls, shell: Any) -> LastImage:
        """One watcher per shell (a second ``%load_ext`` reuses it)."""
        existing = getattr(shell, "_aiml_last_image", None)
        if isinstance(existing, LastImage):
            return existing
        watcher = cls()
        if shell is None:
            return watcher
        # display() goes through the publisher; a cell's last value through the display hook.
        _spy(getattr(shell, "display_pub", None), "publish", watcher)
        _spy(getattr(shell, "displayhook", None), "write_format_data", watcher)
        try:
            shell._aiml_last_image = watcher
        except AttributeError:
            pass
        return watcher

    def seen(self, bundle: Any) -> None:
        """Keep the image of a display bundle, if it has one (never fails the display)."""
        try:
            if not isinstance(bundle, dict):
                return
            for mime in MIMES:
                value = bundle.get(mime)
                if isinstance(value, str):
                    value = base64.b64decode(value)
                if isinstance(value, (bytes, bytearray)) and value:
                    self.data, self.mime = bytes(value), mime
                    self.count += 1
                    return
        except Exception:  # noqa: BLE001 - a display must never fail because of us
            return

    def value(self) -> bytes:
        """The bytes of the last image shown, or a refusal before anything is sent."""
        if self.data is None:
            from ..errors import NoImageYet

            raise NoImageYet(
                "--image with no value sends the last image this notebook displayed, and none "
                "has been displayed yet: plot or display one first, or name one (--image fig, "
                "--image plot.png, --image https://...)."
            )
        return self.data


def _spy(owner: Any, name: str, watcher: LastImage) -> None:
    """Let ``watcher`` see the mime bundle passed to ``owner.name`` before it goes on as before."""
    original = getattr(owner, name, None) if owner is not None else None
    if original is None:
        return

    def spy(data: Any, *args: Any, **kwargs: Any) -> Any:
        watcher.seen(data)
        return original(data, *args, **kwargs)

    setattr(owner, name, spy)
