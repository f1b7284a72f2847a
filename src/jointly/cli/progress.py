"""Rich progress display of a job followed on every party's node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class JobProgressView:
    """One bar per (party, task) reported by the nodes, plus each party's state and stage."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[party]:>8}[/]"),
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._states: dict[str, TaskID] = {}

    def __enter__(self) -> JobProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, views: Mapping[str, dict[str, Any] | None]) -> None:
        for party, view in views.items():
            if view is None:
                state = "[yellow]unreachable[/]"
                tasks: dict[str, list[int]] = {}
            else:
                state = _state_text(view)
                tasks = view.get("progress") or {}
            if party not in self._states:
                self._states[party] = self.progress.add_task("node", total=None, party=party, state=state)
            self.progress.update(self._states[party], state=state, description=f"stage: {_stage(view)}")
            for task, (done, total) in tasks.items():
                key = (party, task)
                if key not in self._tasks:
                    self._tasks[key] = self.progress.add_task(task, total=total or None, party=party, state="")
                self.progress.update(self._tasks[key], completed=done, total=total or None)


def _stage(view: dict[str, Any] | None) -> str:
    return "?" if view is None else str(view.get("stage") or "-")


def _state_text(view: dict[str, Any]) -> str:
    state = str(view["state"])
    colour = {"succeeded": "green", "failed": "red", "running": "cyan"}.get(state, "white")
    return f"[{colour}]{state}[/]"
