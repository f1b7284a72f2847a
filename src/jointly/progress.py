"""Progress reporting that algorithms can call without knowing who is watching."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives ``(task, done, total)`` updates from long-running work."""

    def update(self, task: str, done: int, total: int) -> None: ...


class NullProgress:
    """A progress sink that ignores every update."""

    def update(self, task: str, done: int, total: int) -> None:
        return None


def note(progress: Progress, message: str) -> None:
    """Pass a one-line note (say, a round's metrics) to ``progress`` if it keeps notes; otherwise drop it."""
    sink = getattr(progress, "note", None)
    if callable(sink):
        sink(message)
