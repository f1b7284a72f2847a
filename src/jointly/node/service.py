"""A party's long-lived node: takes part in joint jobs on behalf of one organisation.

The node owns the party's TLS identity, signing key, database (jobs, datasets,
approvals, users, audit ledger) and data directory.  Partners reach it only
through the mutual-TLS peer server; people reach it through the REST API (with
a per-user token) or, for the party's own operator, with the party's
certificate (``jointly run`` / ``jointly status``).  Raw data never leaves the
node: only protocol messages produced by the job's protocol do.

Control methods (caller identity proven by its certificate):

``health``        any federation member
``submit``        this party only: propose a job it initiates to every partner
``propose``       the job's initiator: ask this node to take part (stored pending)
``decide``        a party of the job: its signed approval or rejection
``start``         the initiator: every party approved; carries all signed approvals
``status``        any party of the job; results only to this party itself
``cancel``        any party of the job
``ledger_push``   any member: new entries and a signed head of its ledger; answered with a cosignature
``ledger_fetch``  any member: this node's copy of a party's ledger (for cross-checks)
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from jointly import __version__
from jointly.audit.ledger import Ledger
from jointly.channel import Channel
from jointly.config.federation import Federation
from jointly.config.job import JobSpec
from jointly.crypto import paillier
from jointly.errors import (
    AuthenticationError,
    ConfigError,
    JointlyError,
    NotFound,
    ProtocolAborted,
)
from jointly.node.approvals import ApprovalPolicy
from jointly.node.proposals import ProposalFlow
from jointly.node.records import JobError, JobRecord
from jointly.node.replication import LedgerReplicator
from jointly.node.storage import Storage
from jointly.node.trail import MessageDigests, Trail, file_digests
from jointly.runtime.jobs import PartyContext, check_spec, run_party
from jointly.runtime.states import CANCELLED, RUNNING
from jointly.transport.grpc import GrpcEndpoint, PeerServer

log = logging.getLogger("jointly.node")

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
RESTART_REASON = "the node restarted while the job was running"


class _RecordProgress:
    """Feeds protocol progress into the job record (read by ``status``)."""

    def __init__(self, node: Node, job_id: str, endpoint: GrpcEndpoint) -> None:
        self._node = node
        self._job_id = job_id
        self._endpoint = endpoint
        self._stage = ""

    def update(self, task: str, done: int, total: int) -> None:
        store = self._node.store
        store.set_progress(self._job_id, task, done, total)
        stage = self._endpoint.stage
        store.set_stage(self._job_id, stage)
        top = stage.split("/", 1)[0]
        if top != self._stage:
            self._stage = top
            self._node.trail.timeline(self._job_id, "stage", top, f"entered {top}")

    def note(self, message: str) -> None:
        """A progress note (a round's metrics, a client that dropped out) on the job's timeline."""
        self._node.trail.timeline(self._job_id, "note", self._endpoint.stage.split("/", 1)[0], message)


class Node:
    """One party's node: peer server, storage, approvals, audit ledger, and a thread per running job."""

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
        db_url: str | None = None,
        policy: ApprovalPolicy | None = None,
        replicate_interval: float = 2.0,
    ) -> None:
        entry = federation.party(party)  # raises ConfigError for an unknown party
        self.federation = federation
        self.party = party
        self.workdir = workdir
        self.data_dir = data_dir
        self.workers = workers
        self.signing_key = entry.load_signing_key()
        self.verify_keys = {p: federation.party(p).load_verify_key() for p in federation.party_names}
        workdir.mkdir(parents=True, exist_ok=True)
        self.storage = Storage.open(workdir, url=db_url)
        self.store = self.storage.jobs
        self.ledger = Ledger(party, self.signing_key, self.storage.ledger)
        self.trail = Trail(self.ledger, self.storage.events)
        self.server = PeerServer(
            federation,
            party,
            control=self._control,
            heartbeat_interval=heartbeat_interval,
            peer_dead_after=peer_dead_after,
            bind_host=bind_host,
        )
        self.proposals = ProposalFlow(
            party=party,
            signing_key=self.signing_key,
            verify_keys=self.verify_keys,
            jobs=self.store,
            approvals=self.storage.approvals,
            call=self._call,
            launch=self._launch,
            record=self.trail.record,
            policy=policy or ApprovalPolicy({}),
        )
        self.replicator = LedgerReplicator(
            party=party,
            ledger=self.ledger,
            store=self.storage.ledger,
            verify_keys=self.verify_keys,
            signing_key=self.signing_key,
            call=self._call,
            peers=[p for p in federation.party_names if p != party],
            interval=replicate_interval,
        )
        self._endpoints: dict[str, GrpcEndpoint] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._warm = threading.Event()  # set by warm_up

    def _call(self, peer: str, method: str, payload: object) -> object:
        return self.server.call(peer, method, payload, timeout=30.0)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        if self.storage.users.ensure_admin(self.workdir / "admin.token"):
            log.info("node %s: created user 'admin'; its API token is in %s", self.party, self.workdir / "admin.token")
        for job_id in self.store.fail_interrupted(RESTART_REASON):
            log.warning("job %s was interrupted by a restart of this node: marked failed", job_id)
            self.trail.record(job_id, "job_failed", "restart", {"party": self.party, "reason": RESTART_REASON})
        self.server.start()
        log.info("node %s listening on port %d", self.party, self.server.port)
        # homomorphic encryption uses the node's worker processes; start them now, not in the first job
        paillier.set_workers(self.workers)
        threading.Thread(target=self._prestart_workers, name="paillier-prestart", daemon=True).start()
        threading.Thread(target=self._housekeeping, name="node-housekeeping", daemon=True).start()
        self.replicator.start()

    def warm_up(self) -> None:
        """Load torch and the federated-learning runtime on a background thread, so jobs do not wait for it.

        Call it once the node answers (its peer server and REST API are up): loading takes a second or
        two of CPU and about 200 MB of memory.  A job that arrives meanwhile waits only for the rest of
        the load.  ``health()["warm"]`` turns true when it is done (or has failed: the first
        federated-learning job then loads it, or reports why it cannot); ``JOINTLY_PRELOAD=none``
        skips the load and marks the node warm at once.
        """
        if os.environ.get("JOINTLY_PRELOAD", "learning") == "none":
            self._warm.set()
            return
        threading.Thread(target=self._preload_learning, name="preload-torch", daemon=True).start()

    def _preload_learning(self) -> None:
        began = time.perf_counter()
        try:
            import jointly.runtime.horizontal  # noqa: F401
        except Exception:
            log.exception("could not preload the federated-learning runtime")
        else:
            log.info(
                "node %s warm: federated-learning runtime loaded in %.2f s", self.party, time.perf_counter() - began
            )
        finally:
            self._warm.set()

    def _prestart_workers(self) -> None:
        try:
            started = paillier.prestart()
        except Exception:  # a failure here only costs the first job its start-up time
            log.exception("could not start the encryption worker processes")
            return
        if started:
            log.info("node %s: %d encryption worker processes ready", self.party, started)

    def _housekeeping(self) -> None:
        while not self._stopping.wait(1.0):
            try:
                for job_id in self.proposals.expire_due():
                    log.info("job %s expired before every party approved it", job_id)
                self.store.flush()  # running jobs' progress survives a crash to within a second
            except Exception:
                log.exception("housekeeping failed")

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
        self.replicator.stop()
        self.server.stop()
        paillier.shutdown_pools()
        self.storage.close()

    # -- control RPC ----------------------------------------------------------------
    def _control(self, caller: str, method: str, payload: object) -> object:
        if not isinstance(payload, dict):
            raise ConfigError(f"control call {method!r} needs a mapping payload")
        if method == "health":
            return self.health()
        if method == "submit":
            if caller != self.party:
                raise AuthenticationError(f"only {self.party!r} may submit jobs to its node, not {caller!r}")
            spec = JobSpec.from_dict(payload.get("spec"), source="submitted job")
            job_id = self.propose(spec, user=f"{self.party} operator (certificate)", job_id=payload.get("job_id"))
            return {"job_id": job_id}
        if method == "propose":
            return self._on_propose(caller, payload)
        if method == "decide":
            self._member_record(caller, payload)
            return self.proposals.receive(caller, payload)
        if method == "start":
            self._member_record(caller, payload)
            return self.proposals.on_start(caller, payload)
        if method == "status":
            record = self._member_record(caller, payload)
            return self.store.view(record.job_id, include_result=caller == self.party)
        if method == "cancel":
            record = self._member_record(caller, payload)
            self.cancel(record.job_id, by=caller)
            return {"job_id": record.job_id}
        if method == "jobs":
            if caller != self.party:
                raise AuthenticationError("only the node's own party may list its jobs")
            return [r.public_view(include_result=False) for r in self.store.list(limit=500)]
        if method == "ledger_push":
            return self.replicator.on_push(caller, payload)
        if method == "ledger_fetch":
            return self.replicator.on_fetch(caller, payload)
        raise ConfigError(f"unknown control method {method!r}")

    def health(self) -> dict[str, Any]:
        running = self.store.count(state=RUNNING)
        return {"party": self.party, "version": __version__, "jobs_running": running, "warm": self._warm.is_set()}

    def _member_record(self, caller: str, payload: dict[Any, Any]) -> JobRecord:
        job_id = payload.get("job_id")
        record = self.store.get(job_id) if isinstance(job_id, str) else None
        if record is None:
            raise NotFound(f"unknown job {job_id!r} on node {self.party!r}")
        if caller not in record.spec["parties"]:
            raise AuthenticationError(f"{caller!r} is not a party of job {job_id}")
        return record

    # -- proposing, deciding, cancelling -------------------------------------------------------
    def propose(self, spec: JobSpec, *, user: str, job_id: object = None) -> str:
        """Propose ``spec`` (initiated by this party) to every partner; it starts once all approved."""
        self._check_spec(spec)
        job_id = job_id or _new_job_id(spec.name)
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ConfigError(f"invalid job id {job_id!r}")
        record = JobRecord(
            job_id=job_id, spec=spec.to_dict(), initiator=self.party, party=self.party, name=spec.name, kind=spec.kind
        )
        self.proposals.propose(record, spec, user=user)
        return job_id

    def _on_propose(self, caller: str, payload: dict[Any, Any]) -> dict[str, Any]:
        spec = JobSpec.from_dict(payload.get("spec"), source=f"job proposed by {caller}")
        job_id = payload.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ConfigError(f"invalid job id {job_id!r}")
        if payload.get("initiator") != caller or caller not in spec.parties:
            raise AuthenticationError(f"{caller!r} cannot propose a job it does not initiate and take part in")
        self._check_spec(spec)
        record = JobRecord(
            job_id=job_id, spec=spec.to_dict(), initiator=caller, party=self.party, name=spec.name, kind=spec.kind
        )
        return self.proposals.on_propose(caller, payload, record, spec)

    def decide(self, job_id: str, approve: bool, *, user: str, reason: str = "") -> None:
        """This party's decision on a pending job (from the REST API or CLI)."""
        self.proposals.decide(job_id, "approve" if approve else "reject", user=user, reason=reason)

    def cancel(self, job_id: str, *, by: str) -> None:
        """Cancel a job: a pending one ends everywhere; a running one is aborted (partners are told)."""
        record = self.store.get(job_id)
        if record is None:
            raise NotFound(f"unknown job {job_id!r} on node {self.party!r}")
        if self.proposals.cancel_pending(job_id, by):
            if by == self.party or by not in record.spec["parties"]:
                self.proposals.withdraw(job_id, (p for p in record.spec["parties"] if p != self.party))
            return
        with self._lock:
            endpoint = self._endpoints.get(job_id)
        if endpoint is not None:
            endpoint.abort(f"cancelled by {by}")

    def _check_spec(self, spec: JobSpec) -> None:
        if self.party not in spec.parties:
            raise ConfigError(f"party {self.party!r} is not in the job")
        unknown = [p for p in spec.parties if p not in self.federation.party_names]
        if unknown:
            raise ConfigError(f"parties {unknown} are not members of federation {self.federation.name!r}")
        if self._stopping.is_set():
            raise ConfigError(f"node {self.party!r} is shutting down")
        check_spec(spec)
        self.resolve_spec(spec)

    def resolve_spec(self, spec: JobSpec) -> JobSpec:
        """``spec`` with this party's registered dataset (if it names one) replaced by its path here.

        The path stays on this node: the spec every party approved names only the dataset.
        """
        ref = spec.parties[self.party]
        if ref.dataset is None:
            return spec
        dataset = self.storage.datasets.get(ref.dataset)
        if dataset is None:
            raise NotFound(f"party {self.party!r} has no registered dataset {ref.dataset!r}")
        update: dict[str, Any] = {"data": dataset.path, "dataset": None}
        if "id_column" not in ref.model_fields_set:
            update["id_column"] = dataset.id_column
        parties = dict(spec.parties)
        parties[self.party] = ref.model_copy(update=update)
        return spec.model_copy(update={"parties": parties})

    # -- running jobs ------------------------------------------------------------------
    def _launch(self, job_id: str) -> None:
        record = self.store.get(job_id)
        if record is None:
            raise NotFound(f"unknown job {job_id!r}")
        spec = JobSpec.from_dict(record.spec, source=f"job {job_id}")
        endpoint = self.server.open_job(job_id, spec.party_names)
        # heartbeats detect a dead partner within seconds; a live one may compute for long (1M-row
        # encryption, say), so a single wait is bounded only by the job's own time limit
        endpoint.default_timeout = max(endpoint.default_timeout, spec.timeout_s)
        digests = MessageDigests()
        endpoint.on_message = digests
        with self._lock:
            self._endpoints[job_id] = endpoint
        self.store.update(job_id, state=RUNNING, started=time.time())
        self.trail.record(job_id, "job_started", "", {"parties": list(spec.party_names)})
        thread = threading.Thread(
            target=self._run, args=(job_id, spec, endpoint, digests), name=f"job-{job_id}", daemon=True
        )
        self._threads[job_id] = thread
        thread.start()

    def _run(self, job_id: str, spec: JobSpec, endpoint: GrpcEndpoint, digests: MessageDigests) -> None:
        out = self.store.job_dir(job_id) / "output"
        timer = threading.Timer(spec.timeout_s, endpoint.abort, args=(f"job timed out after {spec.timeout_s:g}s",))
        timer.daemon = True
        timer.start()
        succeeded = False
        try:
            ctx = PartyContext(
                spec=self.resolve_spec(spec),
                party=self.party,
                job_id=job_id,
                data_dir=self.data_dir,
                progress=_RecordProgress(self, job_id, endpoint),
                workers=self.workers,
                jobs_dir=self.store.root,
            )
            summary = run_party(ctx, Channel(endpoint), out)
            succeeded = True
            self._finish(job_id, endpoint, digests, state="succeeded", result=summary, output_dir=str(out))
            log.info("job %s succeeded", job_id)
        except ProtocolAborted as exc:
            log.warning("job %s aborted: %s", job_id, exc)
            self._finish(job_id, endpoint, digests, state="failed", error=JobError(exc.party, exc.stage, exc.reason))
        except Exception as exc:
            stage = endpoint.stage
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, JointlyError):
                log.exception("job %s crashed in stage %s", job_id, stage)
            else:
                log.warning("job %s failed in stage %s: %s", job_id, stage, reason)
            endpoint.abort(reason)
            self._finish(job_id, endpoint, digests, state="failed", error=JobError(self.party, stage, reason))
        finally:
            timer.cancel()
            endpoint.close(succeeded=succeeded)
            with self._lock:
                self._endpoints.pop(job_id, None)

    def _finish(self, job_id: str, endpoint: GrpcEndpoint, digests: MessageDigests, **changes: Any) -> None:
        stats = endpoint.stats
        record = self.store.get(job_id)
        if record is not None and record.state == CANCELLED:
            changes.pop("state", None)
        self.store.update(
            job_id,
            finished=time.time(),
            stage=endpoint.stage,
            bytes_sent=stats.get("bytes_sent", 0),
            bytes_received=stats.get("bytes_received", 0),
            **changes,
        )
        try:
            self._ledger_outcome(job_id, digests, changes)
        except Exception:  # the job's outcome is stored; a ledger problem must not hide it
            log.exception("could not write job %s's outcome to the ledger", job_id)
        self.replicator.poke()

    def _ledger_outcome(self, job_id: str, digests: MessageDigests, changes: dict[str, Any]) -> None:
        for stage, data in digests.stages():
            self.trail.record(job_id, "stage", stage, data)
        if changes.get("state") != "succeeded":
            err: JobError | None = changes.get("error")
            data = {"party": err.party, "reason": err.reason[:200]} if err else {}
            self.trail.record(job_id, "job_failed", err.stage if err else "", data)
            return
        out = Path(str(changes.get("output_dir", "")))
        result: dict[str, Any] = changes.get("result") or {}
        self.trail.record(job_id, "job_succeeded", "", file_digests(out, limit=8))
        if (out / "model").is_dir():
            meta = {k: result[k] for k in ("kind", "role") if isinstance(result.get(k), str)}
            self.trail.record(job_id, "model_stored", "", meta | file_digests(out / "model", limit=4))
        if result.get("kind") == "predict" and result.get("predictions_file"):
            self.trail.record(job_id, "prediction_served", "", {"rows": int(result.get("scored_rows", 0))})

    # -- API helpers -----------------------------------------------------------------------
    def write_api_info(self, url: str) -> Path:
        """Tell local tools (CLI, launcher) where this node's REST API listens."""
        path = self.workdir / "api.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "party": self.party}))
        tmp.replace(path)
        return path


def _new_job_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "job"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
