"""Micro-benchmark of the PSI curve arithmetic: microseconds per element.

    python benchmarks/ecc_micro.py [--quick] [--datasets 20k,100k]

Measures, on ``n`` ids like ``C0000123456``: unkeyed hash-to-curve (RFC 9380
``curve25519_XMD:SHA-512_ELL2_NU_``, Python + gmpy2), ``EcdhKey.hash_encrypt``
(hash then X25519) and ``EcdhKey.reencrypt`` (X25519 of a peer's points), with 1
worker (in process) and with every core (process pool, started before timing).
The peer row is bare X25519 through ``cryptography`` in a Python loop
(``from_public_bytes`` + ``exchange``): the floor our per-element overhead is
measured against.  Wall time, so with N workers the figure is per element of
throughput, not CPU per element.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from _common import Row, parse_args, self_peak_mb, write_results
from jointly.crypto import ecc
from jointly.crypto.ecc import EcdhKey

DATASETS = {"5k": 5_000, "20k": 20_000, "100k": 100_000}


def _row(task: str, dataset: str, system: str, n: int, seconds: float, **params: object) -> Row:
    us = seconds / n * 1e6
    print(f"  {task:28s} {system:12s} {us:7.2f} us/element  ({seconds:6.2f} s for {n:,})", flush=True)
    return Row(
        task=task,
        dataset=dataset,
        system=system,
        metric="us_per_element",
        value=us,
        seconds=seconds,
        bytes_sent=0,
        peak_mb=self_peak_mb(),
        params={"n": n, **params},
    )


def _timed(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _bare_x25519(raw: bytes) -> None:
    key = X25519PrivateKey.generate()
    for off in range(0, len(raw), 32):
        key.exchange(X25519PublicKey.from_public_bytes(raw[off : off + 32]))


def main() -> None:
    _args, chosen = parse_args("ecc_micro", list(DATASETS), quick=["5k"])
    cores = ecc._default_workers()
    rows: list[Row] = []
    for name in chosen:
        n = DATASETS[name]
        ids = [f"C{i:010d}".encode() for i in range(n)]
        print(f"ecc {name}: {n:,} ids, {cores} cores", flush=True)
        t_hash = _timed(ecc.encode_to_curve_points, ids, workers=1)
        rows.append(_row("hash_to_curve", name, "jointly", n, t_hash, workers=1))
        a, b = EcdhKey.generate(), EcdhKey.generate()
        points = a.hash_encrypt(ids[:1000], workers=1)
        for workers in sorted({1, 2, cores}):
            b.reencrypt(points, workers=workers)  # start the pool outside the timing
            enc = a.hash_encrypt(ids, workers=workers)
            t_enc = _timed(a.hash_encrypt, ids, workers=workers)
            t_re = _timed(b.reencrypt, enc, workers=workers)
            rows.append(_row(f"hash_encrypt_w{workers}", name, "jointly", n, t_enc, workers=workers))
            rows.append(_row(f"reencrypt_w{workers}", name, "jointly", n, t_re, workers=workers))
        rows.append(_row("reencrypt_w1", name, "x25519-loop", n, _timed(_bare_x25519, enc.tobytes()), workers=1))
        ours = {r.task: r.value for r in rows if r.dataset == name and r.system == "jointly"}
        per_1m = ours["hash_encrypt_w1"] + ours["reencrypt_w1"]  # us per element = s per million
        print(f"  => one party, 1M ids hashed+encrypted and 1M re-encrypted: ~{per_1m:.0f} s of CPU", flush=True)
    ecc.shutdown_pools()
    out = write_results("ecc_micro", rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
