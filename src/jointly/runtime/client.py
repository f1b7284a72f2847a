"""Submit a job to a node and follow it on every party's node until it ends.

Used by the CLI and the local runner.  It authenticates as one party (with that
party's certificate) and sees the other parties' progress and errors, never
their results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jointly.config.federation import Federation
from jointly.config.job import JobSpec
from jointly.errors import ConfigError, JointlyError, ProtocolAborted, TransportError
from jointly.runtime.states import TERMINAL
from jointly.transport.grpc import ControlClient

StatusCallback = Callable[[Mapping[str, dict[str, Any] | None]], None]


@dataclass
class JobOutcome:
    """How a job ended, as seen by the party that followed it."""

    job_id: str
    views: dict[str, dict[str, Any] | None]
    unreachable: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return all(v is not None and v["state"] == "succeeded" for v in self.views.values())

    def failure(self) -> ProtocolAborted | None:
        """The first recorded failure: the party that failed, its stage and reason."""
        errors = [v["error"] for v in self.views.values() if v is not None and v.get("error")]
        # a party that failed on its own is more telling than partners that saw it abort
        own = [e for e in errors if any(e["party"] == p for p in self.views)]
        for err in own or errors:
            return ProtocolAborted(err["party"], err["stage"], err["reason"])
        for party, since in self.unreachable.items():
            return ProtocolAborted(party, "unknown", f"node unreachable for {time.monotonic() - since:.0f}s")
        return None


class JobClient:
    """Talks to party nodes as ``as_party``."""

    def __init__(self, federation: Federation, as_party: str) -> None:
        federation.party(as_party)
        self.federation = federation
        self.as_party = as_party
        self._clients: dict[str, ControlClient] = {}

    def _client(self, party: str) -> ControlClient:
        if party not in self._clients:
            self._clients[party] = ControlClient(self.federation, self.as_party, party)
        return self._clients[party]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self, party: str, *, timeout: float = 5.0) -> dict[str, Any]:
        reply = self._client(party).call("health", {}, timeout=timeout)
        if not isinstance(reply, dict):
            raise TransportError(f"node {party!r} gave a malformed health reply")
        return reply

    def wait_ready(self, parties: list[str], *, timeout: float = 60.0, warm: bool = False) -> None:
        """Wait until every party's node answers ``health`` (and, with ``warm``, reports itself warm).

        A warm node has loaded its federated-learning runtime, so a job's start-up does not include
        loading torch; nodes older than that report leave ``warm`` out and count as warm.
        """
        deadline = time.monotonic() + timeout
        pending = list(parties)
        while pending:
            party = pending[0]
            try:
                reply = self.health(party, timeout=2.0)
            except JointlyError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"node {party!r} did not come up within {timeout:g}s: {exc}") from exc
                time.sleep(0.2)
                continue
            if not warm or reply.get("warm", True):
                pending.pop(0)
            elif time.monotonic() > deadline:
                raise TransportError(f"node {party!r} answers but did not warm up within {timeout:g}s")
            else:
                time.sleep(0.1)

    def submit(self, spec: JobSpec, *, job_id: str | None = None) -> str:
        """Submit ``spec`` to this party's own node, which proposes it to the partners."""
        if self.as_party not in spec.parties:
            raise ConfigError(f"{self.as_party!r} is not a party of the job and cannot submit it")
        payload: dict[str, Any] = {"spec": spec.to_dict()}
        if job_id:
            payload["job_id"] = job_id
        reply = self._client(self.as_party).call("submit", payload, timeout=60.0)
        if not isinstance(reply, dict) or not isinstance(reply.get("job_id"), str):
            raise TransportError("node gave a malformed submit reply")
        return str(reply["job_id"])

    def status(self, party: str, job_id: str, *, timeout: float = 5.0) -> dict[str, Any]:
        reply = self._client(party).call("status", {"job_id": job_id}, timeout=timeout)
        if not isinstance(reply, dict):
            raise TransportError(f"node {party!r} gave a malformed status reply")
        return reply

    def cancel(self, job_id: str) -> None:
        self._client(self.as_party).call("cancel", {"job_id": job_id})

    def watch(
        self,
        job_id: str,
        parties: list[str],
        *,
        on_update: StatusCallback | None = None,
        poll: float = 0.25,
        unreachable_grace: float = 45.0,
        timeout: float | None = None,
    ) -> JobOutcome:
        """Poll every party's node until each has ended the job or stayed unreachable for ``unreachable_grace``."""
        views: dict[str, dict[str, Any] | None] = dict.fromkeys(parties)
        unreachable: dict[str, float] = {}
        start = time.monotonic()
        while True:
            for party in parties:
                view = views[party]
                if view is not None and view["state"] in TERMINAL:
                    continue
                try:
                    views[party] = self.status(party, job_id, timeout=2.0)
                    unreachable.pop(party, None)
                except JointlyError:
                    unreachable.setdefault(party, time.monotonic())
            if on_update is not None:
                on_update(views)
            now = time.monotonic()
            done = all(
                (v is not None and v["state"] in TERMINAL)
                or (p in unreachable and now - unreachable[p] > unreachable_grace)
                for p, v in views.items()
            )
            # once every reachable party has ended and at least one failed, an unreachable one is the culprit
            reachable_done = all(
                v is not None and v["state"] in TERMINAL for p, v in views.items() if p not in unreachable
            )
            if done or (unreachable and reachable_done and any(v and v["state"] == "failed" for v in views.values())):
                return JobOutcome(job_id, views, unreachable)
            if timeout is not None and now - start > timeout:
                raise TransportError(f"job {job_id} did not finish within {timeout:g}s")
            time.sleep(poll)
