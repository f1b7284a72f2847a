"""Job records kept by a node: state, stage, progress, error and result of each job it takes part in.

:class:`JobRecord` and :class:`JobError` are the node's value types for jobs; the node's
database (:class:`jointly.node.storage.SqlJobStore`) stores them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class JobError:
    """Which party failed the job, in which stage, and why."""

    party: str
    stage: str
    reason: str


@dataclass
class JobRecord:
    job_id: str
    spec: dict[str, Any]
    initiator: str
    party: str
    state: str = "accepted"  # see jointly.runtime.states: pending -> approved -> running -> succeeded | failed ...
    stage: str = ""
    progress: dict[str, list[int]] = field(default_factory=dict)
    error: JobError | None = None
    result: dict[str, Any] | None = None
    output_dir: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    name: str = ""
    kind: str = ""
    started: float | None = None
    expires_at: float | None = None

    def public_view(self, *, include_result: bool) -> dict[str, Any]:
        """What a job member may see; results only for this node's own party."""
        view = asdict(self)
        if not include_result:
            view["result"] = None
            view["output_dir"] = ""
        return view
