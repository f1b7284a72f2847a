"""The benchmark contract shared by every script in benchmarks/.

``python benchmarks/NAME.py [--quick] [--datasets a,b]`` writes
``benchmarks/results/NAME.json``: a list of rows
``{task, dataset, system, params, metric, value, seconds, bytes_sent, peak_mb}``,
one per system measured (ours and each peer, same data, same run), plus a
markdown table ``NAME.md`` next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Row:
    task: str
    dataset: str
    system: str
    metric: str
    value: float
    seconds: float
    bytes_sent: int
    peak_mb: float
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def timing(
        cls,
        *,
        task: str,
        dataset: str,
        system: str,
        seconds: float,
        bytes_sent: int,
        peak_mb: float,
        params: dict[str, Any] | None = None,
    ) -> Row:
        """A row whose measured value is the time taken (metric ``seconds``, value = ``seconds``)."""
        return cls(task, dataset, system, "seconds", seconds, seconds, bytes_sent, peak_mb, params or {})


def parse_args(
    name: str,
    datasets: Sequence[str],
    quick: Sequence[str],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog=f"benchmarks/{name}.py")
    if extra is not None:
        extra(parser)
    parser.add_argument("--quick", action="store_true", help=f"small sets only ({', '.join(quick)})")
    parser.add_argument("--datasets", default=None, help=f"comma-separated subset of {', '.join(datasets)}")
    args = parser.parse_args()
    chosen = list(quick) if args.quick else list(datasets)
    if args.datasets:
        chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
        unknown = [d for d in chosen if d not in datasets]
        if unknown:
            parser.error(f"unknown datasets {unknown}; known: {', '.join(datasets)}")
    return args, chosen


def peak_mb_of(pids: Iterable[int]) -> float:
    """Sum of the peak resident sizes (VmHWM) of the given processes and their live children."""
    import psutil

    total_kb = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            total_kb += _vmhwm_kb(proc.pid)
    return total_kb / 1024


def wait_until_idle(
    pids: Iterable[int], *, busy_cores: float = 0.05, window: float = 0.5, limit: float = 30.0
) -> float:
    """Wait until the processes use less than ``busy_cores`` of a core over ``window`` seconds (at most ``limit``).

    Nodes keep working after a job ends (the ledger entries are signed and replicated to every
    party); a job measured meanwhile shares the CPU with that.  Returns the seconds waited.
    """
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue

    def cpu() -> float:
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    began = time.monotonic()
    while time.monotonic() - began < limit:
        before = cpu()
        time.sleep(window)
        if cpu() - before < busy_cores * window:
            break
    return time.monotonic() - began


class MemorySampler:
    """The largest memory footprint a set of processes (and their children) had *at one time*.

    Samples, every ``interval`` seconds, the sum of the proportional set size (PSS: shared pages
    divided among the processes sharing them) over the process trees.  Summing each process's own
    peak (:func:`peak_mb_of`) overstates: peaks happen at different times and forked workers count
    the pages they share with their parent again.
    """

    def __init__(self, pids: Iterable[int], *, interval: float = 1.0) -> None:
        import threading

        self.pids = list(pids)  # processes started later may be appended while sampling
        self._interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        import psutil

        total = 0
        seen: set[int] = set()
        for pid in list(self.pids):
            try:
                procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                try:
                    total += proc.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._sample())

    def start(self) -> MemorySampler:
        self.peak_mb = self._sample()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _vmhwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def self_peak_mb() -> float:
    return _vmhwm_kb(os.getpid()) / 1024


def write_results(name: str, rows: list[Row], *, ratio_metric: str = "seconds", notes: Sequence[str] = ()) -> Path:
    """Write NAME.json (the contract) and NAME.md (a table with ours-vs-peer ratios)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    tmp.replace(out)
    lines = [
        f"# {name} benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| task | dataset | system | metric | value | seconds | bytes sent | peak MB | ours ÷ peer (seconds) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    ours = {(r.task, r.dataset): r for r in rows if r.system == "jointly"}
    for r in rows:
        base = ours.get((r.task, r.dataset))
        ratio = f"{base.seconds / r.seconds:.2f}" if base and r.system != "jointly" and r.seconds > 0 else ""
        lines.append(
            f"| {r.task} | {r.dataset} | {r.system} | {r.metric} | {r.value:.4g} | {r.seconds:.2f} | "
            f"{r.bytes_sent:,} | {r.peak_mb:.0f} | {ratio} |"
        )
    if notes:
        lines += ["", *notes]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out
