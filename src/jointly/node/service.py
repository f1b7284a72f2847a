"""A party's long-lived node: takes part in joint jobs on behalf of one organisation.

The node owns the party's TLS identity and its data directory.  Partners reach
it only through the mutual-TLS peer server; the operator reaches it with the
party's own certificate (``jointly run`` / ``jointly status``).  Raw data never
leaves the node: only protocol messages produced by the job's protocol do.

Control methods (caller identity proven by its certificate):

``health``   any federation member
``submit``   this party only: start a job it initiates; proposes it to every partner
``propose``  the job's initiator: ask this node to take part
``status``   any party of the job; results only to this party itself
``cancel``   any party of the job
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from jointly import __version__
from jointly.channel import Channel
from jointly.config.federation import Federation
from jointly.config.job import JobSpec
from jointly.crypto import paillier
from jointly.errors import AuthenticationError, ConfigError, JointlyError, ProtocolAborted
from jointly.node.records import JobError, JobRecord, RecordStore
from jointly.runtime.jobs import PartyContext, check_spec, run_party
from jointly.runtime.states import TERMINAL
from jointly.transport.grpc import GrpcEndpoint, PeerServer

log = logging.getLogger("jointly.node")

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class _RecordProgress:
    """Feeds protocol progress into the job record (read by ``status``)."""

    def __init__(self, store: RecordStore, job_id: str, endpoint: GrpcEndpoint) -> None:
        self._store = store
        self._job_id = job_id
        self._endpoint = endpoint

    def update(self, task: str, done: int, total: int) -> None:
        self._store.set_progress(self._job_id, task, done, total)
        self._store.set_stage(self._job_id, self._endpoint.stage)


class Node:
    """One party's node: peer server, job records, and a thread per running job."""

    def __init__(
        self,
        federation: Federation,
        party: str,
        *,
        workdir: Path,
        data_dir: Path,
        heartbeat_interval: float = 1.0,
        peer_dead_after: float = 10.0,
        bind_host: str | None = None,
        workers: int | None = None,
    ) -> None:
        federation.party(party)  # raises ConfigError for an unknown party
        self.federation = federation
        self.party = party
        self.workdir = workdir
        self.data_dir = data_dir
        self.workers = workers
        self.store = RecordStore(workdir)
        self.server = PeerServer(
            federation,
            party,
            control=self._control,
            heartbeat_interval=heartbeat_interval,
            peer_dead_after=peer_dead_after,
            bind_host=bind_host,
        )
        self._endpoints: dict[str, GrpcEndpoint] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self.server.start()
        log.info("node %s listening on port %d", self.party, self.server.port)
        # homomorphic encryption uses the node's worker processes; start them now, not in the first job
        paillier.set_workers(self.workers)
        threading.Thread(target=self._prestart_workers, name="paillier-prestart", daemon=True).start()

    def _prestart_workers(self) -> None:
        try:
            started = paillier.prestart()
        except Exception:  # a failure here only costs the first job its start-up time
            log.exception("could not start the encryption worker processes")
            return
        if started:
            log.info("node %s: %d encryption worker processes ready", self.party, started)

    def wait(self) -> None:
        """Block until :meth:`stop` is called (e.g. from a signal handler)."""
        while not self._stopping.wait(0.5):
            pass

    def stop(self) -> None:
        """Abort running jobs (partners are told), then stop serving."""
        self._stopping.set()
        with self._lock:
            endpoints = list(self._endpoints.items())
        for job_id, endpoint in endpoints:
            log.warning("node stopping: aborting job %s", job_id)
            endpoint.abort("node shutting down")
        for thread in list(self._threads.values()):
            thread.join(timeout=5)
        self.server.stop()
        paillier.shutdown_pools()

    # -- control RPC ----------------------------------------------------------------
    def _control(self, caller: str, method: str, payload: object) -> object:
        if not isinstance(payload, dict):
            raise ConfigError(f"control call {method!r} needs a mapping payload")
        if method == "health":
            running = sum(1 for r in self.store.all() if r.state not in TERMINAL)
            return {"party": self.party, "version": __version__, "jobs_running": running}
        if method == "submit":
            if caller != self.party:
                raise AuthenticationError(f"only {self.party!r} may submit jobs to its node, not {caller!r}")
            return self._submit(payload)
        if method == "propose":
            return self._propose(caller, payload)
        if method == "status":
            record = self._member_record(caller, payload)
            return self.store.view(record.job_id, include_result=caller == self.party)
        if method == "cancel":
            record = self._member_record(caller, payload)
            self._cancel(record.job_id, f"cancelled by {caller}")
            return {"job_id": record.job_id}
        if method == "jobs":
            if caller != self.party:
                raise AuthenticationError("only the node's own party may list its jobs")
            return [r.public_view(include_result=False) for r in self.store.all()]
        raise ConfigError(f"unknown control method {method!r}")

    def _member_record(self, caller: str, payload: dict[Any, Any]) -> JobRecord:
        job_id = payload.get("job_id")
        record = self.store.get(job_id) if isinstance(job_id, str) else None
        if record is None:
            raise ConfigError(f"unknown job {job_id!r} on node {self.party!r}")
        if caller not in record.spec["parties"]:
            raise AuthenticationError(f"{caller!r} is not a party of job {job_id}")
        return record

    def _submit(self, payload: dict[Any, Any]) -> dict[str, str]:
        spec = JobSpec.from_dict(payload.get("spec"), source="submitted job")
        self._check_spec(spec)
        job_id = payload.get("job_id") or _new_job_id(spec.name)
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ConfigError(f"invalid job id {job_id!r}")
        record = JobRecord(job_id=job_id, spec=spec.to_dict(), initiator=self.party, party=self.party)
        if not self.store.add(record):
            raise ConfigError(f"job {job_id} already exists on node {self.party!r}")
        accepted: list[str] = []
        try:
            for peer in spec.party_names:
                if peer == self.party:
                    continue
                self.server.call(peer, "propose", {"job_id": job_id, "spec": spec.to_dict(), "initiator": self.party})
                accepted.append(peer)
        except JointlyError as exc:
            stage = "propose"
            failed = next(p for p in spec.party_names if p != self.party and p not in accepted)
            for peer in accepted:
                try:
                    self.server.call(peer, "cancel", {"job_id": job_id})
                except JointlyError:
                    log.warning("could not cancel job %s on %s", job_id, peer)
            self.store.update(
                job_id,
                state="failed",
                stage=stage,
                error=JobError(failed, stage, f"{type(exc).__name__}: {exc}"),
                finished=time.time(),
            )
            raise ProtocolAborted(failed, stage, f"{type(exc).__name__}: {exc}") from exc
        self._launch(record, spec)
        return {"job_id": job_id}

    def _propose(self, caller: str, payload: dict[Any, Any]) -> dict[str, bool]:
        spec = JobSpec.from_dict(payload.get("spec"), source=f"job proposed by {caller}")
        job_id = payload.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ConfigError(f"invalid job id {job_id!r}")
        if payload.get("initiator") != caller or caller not in spec.parties:
            raise AuthenticationError(f"{caller!r} cannot propose a job it does not initiate and take part in")
        self._check_spec(spec)
        # Approval policy: this foundation release accepts jobs between federation members;
        # per-job approval by each party's operators arrives with the node's REST API.
        record = JobRecord(job_id=job_id, spec=spec.to_dict(), initiator=caller, party=self.party)
        if not self.store.add(record):
            raise ConfigError(f"job {job_id} already exists on node {self.party!r}")
        self._launch(record, spec)
        return {"accepted": True}

    def _check_spec(self, spec: JobSpec) -> None:
        if self.party not in spec.parties:
            raise ConfigError(f"party {self.party!r} is not in the job")
        unknown = [p for p in spec.parties if p not in self.federation.party_names]
        if unknown:
            raise ConfigError(f"parties {unknown} are not members of federation {self.federation.name!r}")
        if self._stopping.is_set():
            raise ConfigError(f"node {self.party!r} is shutting down")
        check_spec(spec)

    # -- running jobs ------------------------------------------------------------------
    def _launch(self, record: JobRecord, spec: JobSpec) -> None:
        endpoint = self.server.open_job(record.job_id, spec.party_names)
        with self._lock:
            self._endpoints[record.job_id] = endpoint
        thread = threading.Thread(
            target=self._run, args=(record.job_id, spec, endpoint), name=f"job-{record.job_id}", daemon=True
        )
        self._threads[record.job_id] = thread
        thread.start()

    def _cancel(self, job_id: str, reason: str) -> None:
        with self._lock:
            endpoint = self._endpoints.get(job_id)
        if endpoint is not None:
            endpoint.abort(reason)

    def _run(self, job_id: str, spec: JobSpec, endpoint: GrpcEndpoint) -> None:
        self.store.update(job_id, state="running")
        ctx = PartyContext(
            spec=spec,
            party=self.party,
            job_id=job_id,
            data_dir=self.data_dir,
            progress=_RecordProgress(self.store, job_id, endpoint),
            workers=self.workers,
            jobs_dir=self.store.root,
        )
        out = self.store.job_dir(job_id) / "output"
        timer = threading.Timer(spec.timeout_s, endpoint.abort, args=(f"job timed out after {spec.timeout_s:g}s",))
        timer.daemon = True
        timer.start()
        succeeded = False
        try:
            summary = run_party(ctx, Channel(endpoint), out)
            succeeded = True
            self._finish(job_id, endpoint, state="succeeded", result=summary, output_dir=str(out))
            log.info("job %s succeeded", job_id)
        except ProtocolAborted as exc:
            log.warning("job %s aborted: %s", job_id, exc)
            self._finish(job_id, endpoint, state="failed", error=JobError(exc.party, exc.stage, exc.reason))
        except Exception as exc:
            stage = endpoint.stage
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, JointlyError):
                log.exception("job %s crashed in stage %s", job_id, stage)
            else:
                log.warning("job %s failed in stage %s: %s", job_id, stage, reason)
            endpoint.abort(reason)
            self._finish(job_id, endpoint, state="failed", error=JobError(self.party, stage, reason))
        finally:
            timer.cancel()
            endpoint.close(succeeded=succeeded)
            with self._lock:
                self._endpoints.pop(job_id, None)

    def _finish(self, job_id: str, endpoint: GrpcEndpoint, **changes: Any) -> None:
        stats = endpoint.stats
        self.store.update(
            job_id,
            finished=time.time(),
            stage=endpoint.stage,
            bytes_sent=stats.get("bytes_sent", 0),
            bytes_received=stats.get("bytes_received", 0),
            **changes,
        )


def _new_job_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "job"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
