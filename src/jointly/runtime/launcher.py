"""Start every party's node as its own OS process on this machine (for demos, tests and benchmarks).

Each node is ``python -m jointly node start ...``: a separate process with its
own keys, talking to the others only over loopback mutual-TLS gRPC, exactly as
nodes on separate machines do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from jointly.config.federation import Federation
from jointly.errors import TransportError
from jointly.runtime.client import JobClient


class LocalFederation:
    """Node processes for some or all parties of a federation, stopped on exit."""

    def __init__(
        self,
        federation_path: Path,
        root: Path,
        *,
        parties: Sequence[str] | None = None,
        data_dir: Path | None = None,
        heartbeat_interval: float = 1.0,
        peer_dead_after: float = 10.0,
        workers: int | None = None,
        log_level: str = "INFO",
        auto_approve: Sequence[str] = ("*",),
    ) -> None:
        self.federation_path = federation_path
        self.federation = Federation.load(federation_path)
        self.parties = list(parties) if parties is not None else list(self.federation.party_names)
        self.root = root
        self.data_dir = data_dir or root
        self.heartbeat_interval = heartbeat_interval
        self.peer_dead_after = peer_dead_after
        self.workers = workers
        self.log_level = log_level
        self.auto_approve = tuple(auto_approve)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, party: str) -> Path:
        return self.root / "logs" / f"{party}.log"

    def workdir(self, party: str) -> Path:
        return self.root / "nodes" / party

    def start(self, *, ready_timeout: float = 60.0) -> None:
        for party in self.parties:
            self.start_party(party)
        with JobClient(self.federation, self.parties[0]) as client:
            try:
                client.wait_ready(self.parties, timeout=ready_timeout)
            except TransportError as exc:
                dead = [p for p, proc in self.processes.items() if proc.poll() is not None]
                detail = f" (exited: {', '.join(dead)}; see {self.root / 'logs'})" if dead else ""
                self.stop()
                raise TransportError(f"{exc}{detail}") from exc
        for party in self.parties:
            self.api_url(party, timeout=ready_timeout)

    def wait_warm(self, *, timeout: float = 120.0) -> None:
        """Wait until every started node has loaded its federated-learning runtime (see ``Node.warm_up``)."""
        with JobClient(self.federation, self.parties[0]) as client:
            client.wait_ready(self.parties, timeout=timeout, warm=True)

    def start_party(self, party: str) -> None:
        self.log_path(party).parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "jointly", "node", "start",
            "--party", party,
            "--federation", str(self.federation_path),
            "--workdir", str(self.workdir(party)),
            "--data-dir", str(self.data_dir),
            "--heartbeat-interval", str(self.heartbeat_interval),
            "--peer-dead-after", str(self.peer_dead_after),
            "--log-level", self.log_level,
        ]  # fmt: skip
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        for rule in self.auto_approve:
            cmd += ["--auto-approve", rule]
        (self.workdir(party) / "api.json").unlink(missing_ok=True)
        with open(self.log_path(party), "ab") as log:
            self.processes[party] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy()
            )

    def restart_party(self, party: str, *, timeout: float = 60.0) -> None:
        """Start a (killed or stopped) party's node again and wait until it answers."""
        self.start_party(party)
        with JobClient(self.federation, party) as client:
            client.wait_ready([party], timeout=timeout)
        self.api_url(party, timeout=timeout)

    def api_url(self, party: str, *, timeout: float = 30.0) -> str:
        """The REST API address of ``party``'s node (written by the node once it listens)."""
        path = self.workdir(party) / "api.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TransportError(f"{party}'s node did not publish its REST API address ({path})")
            time.sleep(0.05)
        return str(json.loads(path.read_text())["url"])

    def admin_token(self, party: str) -> str:
        """The admin API token ``party``'s node created on its first start."""
        return (self.workdir(party) / "admin.token").read_text().strip()

    def kill(self, party: str) -> None:
        """Kill a party's node abruptly (SIGKILL), as a crash would."""
        proc = self.processes[party]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, *, grace: float = 10.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LocalFederation:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
