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
