"""MPyC side of benchmarks/mpc.py: one task with 3 local MPyC parties (``-M3``: party 0 starts the other two
as local processes, talking over loopback TCP).  Run by mpc.py as

    MPC_TASK=mult MPC_N=10000 MPC_SEED=1 python benchmarks/_mpyc_peer.py -M3

and prints one JSON line on party 0: ``{"task", "n", "seconds", "check"}``.  Fixed point ``SecFxp(64, 16)``
(16 fractional bits like jointly's shares).  Inputs are shared before the clock starts for mult/cmp;
for pearson the clock covers input sharing, the secure dot product and the output, as on jointly's side.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from mpyc.runtime import mpc


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 10
    y = 0.5 * x + rng.normal(size=n) * 10
    return x, y


async def main() -> None:
    task, n, seed = os.environ["MPC_TASK"], int(os.environ["MPC_N"]), int(os.environ.get("MPC_SEED", "1"))
    await mpc.start()
    secfxp = mpc.SecFxp(64, 16)
    x, y = data(n, seed)
    out: dict[str, object] = {"task": task, "n": n}
    if task in ("mult", "cmp"):
        xs = mpc.input(secfxp.array(x), senders=0)
        ys = mpc.input(secfxp.array(y), senders=0)
        await mpc.barrier()
        start = time.perf_counter()
        z = xs * ys if task == "mult" else xs < ys
        got = np.asarray(await mpc.output(z), dtype=np.float64)
        out["seconds"] = time.perf_counter() - start
        ref = x * y if task == "mult" else (x < y).astype(float)
        out["check"] = float(np.abs(got - ref).max())
    elif task == "pearson":
        # vertical: party 0 holds x, party 1 holds y; each standardises its own column locally
        await mpc.barrier()
        start = time.perf_counter()
        xn = (x - x.mean()) / (x.std() * np.sqrt(n))
        yn = (y - y.mean()) / (y.std() * np.sqrt(n))
        xs = mpc.input(secfxp.array(xn), senders=0)
        ys = mpc.input(secfxp.array(yn), senders=1)
        r = await mpc.output(xs @ ys)
        out["seconds"] = time.perf_counter() - start
        out["check"] = abs(float(r) - float(np.corrcoef(x, y)[0, 1]))
    else:
        raise SystemExit(f"unknown task {task}")
    await mpc.shutdown()
    if mpc.pid == 0:
        print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    mpc.run(main())
