"""The message history that later cells continue.

A turn (user message plus answer) is recorded atomically under a lock, so two threads running
cells at once cannot interleave half-turns. The system prompt is not stored: the current
setting applies to every request, so changing it takes effect at once.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from .errors import redact


@dataclass(repr=False)
class Turn:
    """One exchange; ``partial`` marks an answer that was interrupted or cut."""

    prompt: str
    answer: str
    partial: bool = False

    def __repr__(self) -> str:  # a variable inspector shows this: no piece of a key in it
        return redact(f"Turn(prompt={self.prompt!r}, answer={self.answer!r}, partial={self.partial})")


class Conversation:
    """User/assistant turns, bounded to the last ``max_turns`` (None: unbounded)."""

    def __init__(self, max_turns: int | None = 20) -> None:
        self.max_turns = max_turns
        self._turns: list[Turn] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._turns)

    @property
    def turns(self) -> list[Turn]:
        with self._lock:
            return list(self._turns)

    def messages(self, prompt: str, system: str | None = None) -> list[dict[str, Any]]:
        """What to send: the system prompt, the kept turns, then the new user message."""
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        with self._lock:
            for turn in self._turns:
                out.append({"role": "user", "content": turn.prompt})
                out.append({"role": "assistant", "content": turn.answer})
        out.append({"role": "user", "content": prompt})
        return out

    def record(self, prompt: str, answer: str, *, partial: bool = False) -> None:
        """Add a finished (or, marked, a partial) turn; drop the oldest past the bound."""
        with self._lock:
            self._turns.append(Turn(prompt, answer, partial))
            if self.max_turns is not None and len(self._turns) > self.max_turns:
                del self._turns[: len(self._turns) - self.max_turns]

    def bound(self, max_turns: int | None) -> None:
        """Change the bound and apply it at once, so the next request already respects it."""
        with self._lock:
            self.max_turns = max_turns
            if max_turns is not None and len(self._turns) > max_turns:
                del self._turns[: len(self._turns) - max_turns]

    def reset(self) -> None:
        with self._lock:
            self._turns.clear()

    def export(self) -> list[dict[str, Any]]:
        """The history as OpenAI-style messages, a fresh copy (it never holds a key)."""
        return self.messages("")[:-1]

    def to_json(self) -> str:
        """The export as JSON; ``<``, ``>`` and ``&`` as \\u escapes, so the file holds no markup
        even if something serves it as HTML (``json.loads`` gives the same text back)."""
        text = redact(json.dumps(self.export(), ensure_ascii=False, indent=2))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def to_text(self) -> str:
        lines = []
        for i, turn in enumerate(self.turns, 1):
            mark = " (partial)" if turn.partial else ""
            lines.append(f"[{i}] You:\n{turn.prompt}\n[{i}] Answer{mark}:\n{turn.answer}")
        return redact("\n\n".join(lines)) or "The conversation is empty."

    def to_markdown(self) -> str:
        """The conversation as Markdown: prompts (often pasted from elsewhere) and answers are
        untrusted, so both are made inert; remote images stay links here."""
        from .view import close_fences, shown

        turns = self.turns
        if not turns:
            return "*The conversation is empty.*"
        parts = []
        for i, turn in enumerate(turns, 1):
            mark = " *(partial)*" if turn.partial else ""
            prompt, answer = (shown(close_fences(t)) for t in (turn.prompt, turn.answer))
            parts.append(f"**{i}. You**\n\n{prompt}\n\n**Answer**{mark}\n\n{answer}")
        return "\n\n---\n\n".join(parts)
