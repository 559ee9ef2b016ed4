"""The most recent image this notebook displayed, for ``%%aiml --image`` with no value.

The inline matplotlib backend, ``display(Image(...))`` and a cell whose value renders as an image
all end in the shell's display publisher or display hook with an ``image/png`` (or jpeg) bundle;
both are wrapped on this shell's instances to remember the last such image (bytes only, nothing
else changes). Notebook layer: it touches the shell, never the network.
"""

from __future__ import annotations

import base64
from typing import Any

from .images import NoImageYet

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
        pub = getattr(shell, "display_pub", None)
        if pub is not None and hasattr(pub, "publish"):
            original = pub.publish

            def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
                watcher.seen(data)
                return original(data, *args, **kwargs)

            pub.publish = publish
        hook = getattr(shell, "displayhook", None)
        if hook is not None and hasattr(hook, "write_format_data"):
            original_write = hook.write_format_data

            def write_format_data(format_dict: Any, *args: Any, **kwargs: Any) -> Any:
                watcher.seen(format_dict)
                return original_write(format_dict, *args, **kwargs)

            hook.write_format_data = write_format_data
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
            raise NoImageYet(
                "--image with no value sends the last image this notebook displayed, and none "
                "has been displayed yet: plot or display one first, or name one (--image fig, "
                "--image plot.png, --image https://...)."
            )
        return self.data
