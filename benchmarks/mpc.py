"""MPC benchmark: jointly's two-party secret-sharing engine against MPyC (3 local parties), same tasks, same run.

    python benchmarks/mpc.py [--quick] [--datasets mult-10k,cmp-2k,...]

Tasks (fixed point with 16 fractional bits on both sides):

* ``mult-N``: ``N`` element-wise secret x secret multiplications (with truncation), inputs already
  shared; metric ``mult_per_s``.
* ``cmp-N``: ``N`` secret comparisons ``x < y``; metric ``cmp_per_s``.
* ``pearson-Nx2``: joint Pearson correlation of two columns of ``N`` aligned rows held by two parties
  (vertical); each owner standardises its column locally, then one secret dot product; the clock
  covers input sharing, the MPC and the output to the result party; metric ``seconds``.

jointly: two compute parties plus a dealer (Beaver triples and truncation pairs from PRG seeds) as
threads of this process over the in-memory channel (``MemoryHub``; messages go through the real
msgpack codec; no network).  MPyC 0.11: ``-M3`` (party 0 starts two more local processes,
loopback TCP), ``SecFxp(64, 16)``, secure numpy arrays; its ``bytes_sent`` is party 0's own count.
MPyC is run at the smaller sizes only (``mult-1m`` and ``cmp-100k`` would take over an hour there);
the larger jointly-only rows show how the vectorised engine scales.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MemorySampler, Row, parse_args, write_results
from jointly.channel import Channel
from jointly.channel.memory import MemoryHub
from jointly.crypto.shares import encode_fixed, split
from jointly.protocols.mpc import MpcRoles, StatRequest, joint_statistic, make_engine, run_dealer

HERE = Path(__file__).resolve().parent
DATASETS = ["mult-10k", "mult-1m", "cmp-2k", "cmp-100k", "pearson-100kx2", "pearson-1mx2"]
QUICK = ["mult-10k", "cmp-2k", "pearson-100kx2"]
MPYC_SKIP = {"mult-1m", "cmp-100k"}
SEED = 1
FRAC = 16


def size_of(dataset: str) -> int:
    token = dataset.split("-")[1].split("x")[0]
    return int(float(token[:-1]) * (1_000 if token.endswith("k") else 1_000_000))


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=n) * 10
    y = 0.5 * x + rng.normal(size=n) * 10
    return x, y


def jointly_micro(task: str, n: int) -> dict[str, Any]:
    x, y = data(n)
    xs, ys = split(encode_fixed(x, FRAC)), split(encode_fixed(y, FRAC))
    roles = MpcRoles(data=("p0", "p1"), compute=("p0", "p1"), result=("p0",), dealer="dealer")
    hub = MemoryHub(["p0", "p1", "dealer"])
    ready = threading.Barrier(2)
    timing: dict[str, float] = {}

    def party(ch: Channel) -> np.ndarray:
        eng = make_engine(ch, roles)
        i = eng.party_index
        a, b = eng.tensor(xs[i]), eng.tensor(ys[i])
        ready.wait()
        start = time.perf_counter()
        z = a * b if task == "mult" else a < b
        timing[ch.party] = time.perf_counter() - start
        out = eng.reveal(z)
        eng.close()
        return out

    with MemorySampler([os.getpid()], interval=0.2) as mem:
        res = hub.run({"p0": party, "p1": party, "dealer": lambda ch: run_dealer(ch, ("p0", "p1"))}, timeout=3600)
    ref = x * y if task == "mult" else (x < y).astype(float)
    seconds = max(timing.values())
    bytes_sent = sum(len(d) for src, _dst, tag, d in hub.log if not tag.endswith(f"x{_last_round(hub)}"))
    return {"seconds": seconds, "check": float(np.abs(res["p0"] - ref).max()), "bytes": bytes_sent, "peak": mem.peak_mb}


def _last_round(hub: MemoryHub) -> int:
    """The reveal after the timed op is not part of it: its round number (the highest)."""
    rounds = [int(m.group(1)) for _s, _d, tag, _b in hub.log if (m := re.fullmatch(r"x(\d+)", tag))]
    return max(rounds) if rounds else -1


def jointly_pearson(n: int) -> dict[str, Any]:
    x, y = data(n)
    roles = MpcRoles(data=("bank", "telco"), compute=("bank", "telco"), result=("bank",), dealer="dealer")
    req = StatRequest(op="pearson", layout="vertical", columns=("x", "y"))
    inputs = {"bank": {"x": x}, "telco": {"y": y}}
    hub = MemoryHub(["bank", "telco", "dealer"])
    with MemorySampler([os.getpid()], interval=0.2) as mem:
        start = time.perf_counter()
        res = hub.run({p: (lambda ch, p=p: joint_statistic(ch, roles, req, inputs.get(p))) for p in hub.parties})
        seconds = time.perf_counter() - start
    check = abs(res["bank"]["value"] - float(np.corrcoef(x, y)[0, 1]))
    return {"seconds": seconds, "check": check, "bytes": sum(len(d) for *_, d in hub.log), "peak": mem.peak_mb}


def mpyc(task: str, n: int) -> dict[str, Any]:
    env = {**os.environ, "MPC_TASK": task, "MPC_N": str(n), "MPC_SEED": str(SEED)}
    cmd = [sys.executable, str(HERE / "_mpyc_peer.py"), "-M3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=HERE)
    with MemorySampler([proc.pid], interval=0.5) as mem:
        output, _ = proc.communicate(timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(f"MPyC {task} failed:\n{output[-2000:]}")
    line = next(ln for ln in output.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    sent = re.findall(r"bytes sent: (\d+)", output)
    return {
        "seconds": out["seconds"],
        "check": out["check"],
        "bytes": int(sent[-1]) if sent else 0,
        "peak": mem.peak_mb,
    }


def main() -> None:
    _args, chosen = parse_args("mpc", DATASETS, QUICK)
    rows: list[Row] = []
    for dataset in chosen:
        task = dataset.split("-")[0]
        n = size_of(dataset)
        systems = ["jointly"] + ([] if dataset in MPYC_SKIP else ["mpyc"])
        for system in systems:
            if task == "pearson":
                m = jointly_pearson(n) if system == "jointly" else mpyc(task, n)
                metric, value = "seconds", m["seconds"]
            else:
                m = jointly_micro(task, n) if system == "jointly" else mpyc(task, n)
                metric, value = f"{task}_per_s", n / m["seconds"]
            params: dict[str, Any] = {"n": n, "frac_bits": FRAC, "max_abs_error": m["check"]}
            if system == "jointly":
                params["setup"] = "2 compute parties + dealer, threads of one process, in-memory channel"
            else:
                params["setup"] = "MPyC 0.11 -M3: 3 local processes over loopback TCP, SecFxp(64, 16)"
                params["bytes_sent_of"] = "party 0"
            rows.append(
                Row(
                    task=task,
                    dataset=dataset,
                    system=system,
                    metric=metric,
                    value=value,
                    seconds=m["seconds"],
                    bytes_sent=m["bytes"],
                    peak_mb=m["peak"],
                    params=params,
                )
            )
            print(
                f"{dataset:16s} {system:8s} {metric}={value:,.1f} seconds={m['seconds']:.3f} err={m['check']:.2g}",
                flush=True,
            )
    write_results(
        "mpc",
        rows,
        notes=[
            f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine).",
            "jointly's compute parties and dealer are threads of one process (GIL, in-memory channel);",
            "MPyC's three parties are separate processes.  MPyC runs at the smaller sizes only.",
        ],
    )


if __name__ == "__main__":
    main()
