"""Paillier micro-benchmark: operations per second, jointly against python-paillier (``phe`` 1.5.0).

    python benchmarks/paillier.py [--quick] [--datasets 2k,30k]

Both systems use 2048-bit keys generated in this run and the same data (standard
normal floats; ``phe`` encrypts with a fixed precision of 2**-40, i.e. the same
fixed point as ours, so its additions never realign exponents).  ``phe`` runs
one number at a time in this process (it has no vectors and no parallelism);
because it is slow, it runs on a prefix of the data (``params.n``), which is
fine for a rate.  Ours runs on every core this process may use (process pool
started, and per-process randomiser tables built, before timing), except the
``*_w1`` rows, which stay in this process (one core).

Rows: ``metric = ops_per_s``, ``value`` = operations per second, ``seconds`` = seconds per
1,000 operations (so the table's ours-vs-peer ratio compares rates although ``params.n``
differs), ``params.seconds_total`` = wall time of the ``params.n`` operations measured.

* ``encrypt``: public-key encryption, no precomputed randomisers;
  ``encrypt_pool_warm``: after ``warm_up`` filled the obfuscation pool (ours only);
  ``encrypt_owner``: the key owner's CRT encryption (``PaillierPrivateKey.encrypt``);
* ``decrypt`` / ``decrypt_w1``: CRT decryption on every core / on one;
* ``add`` (ciphertext + ciphertext), ``add_plain`` (+ float), ``mul_scalar``
  (* float, elementwise), ``dot`` (vector . matrix of floats, per multiply-add);
* ``segment_sum``: 30k ciphertexts (or the dataset size) into 32 bins, per
  ciphertext; the ``gmpy2-raw`` row is the bare ``acc = acc * c % n2`` loop on one
  core, the floor for one core (``params.ratio_vs_raw`` = our rate / raw rate);
* ``wire``: ``to_wire`` + codec encode + decode + ``from_wire`` (``bytes_sent`` = encoded size).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gmpy2
import numpy as np

from _common import Row, parse_args, peak_mb_of, write_results
from jointly.channel.codec import decode, encode
from jointly.crypto import _paillier_pool as runner
from jointly.crypto import paillier

# dataset -> (n for element-wise ops, n for segment_sum, n for phe's slow ops, dot shape)
DATASETS: dict[str, tuple[int, int, int, tuple[int, int]]] = {
    "2k": (2_000, 10_000, 200, (500, 10)),
    "30k": (30_000, 30_000, 1_000, (5_000, 20)),
}
BITS = 2048
BINS = 32


def _row(task: str, dataset: str, system: str, n: int, seconds: float, **params: Any) -> Row:
    rate = n / seconds if seconds > 0 else float("inf")
    print(f"  {task:20s} {system:10s} {rate:12.1f} ops/s  ({seconds:7.3f} s for {n:,})", flush=True)
    return Row(
        task=task,
        dataset=dataset,
        system=system,
        metric="ops_per_s",
        value=rate,
        seconds=seconds / n * 1000,  # per 1,000 operations, so rows with different n compare
        bytes_sent=int(params.pop("bytes_sent", 0)),
        peak_mb=peak_mb_of([os.getpid()]),
        params={"n": n, "seconds_total": round(seconds, 4), "key_bits": BITS, **params},
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_jointly(name: str, x: np.ndarray, seg: np.ndarray, mat: np.ndarray, cores: int) -> list[Row]:
    n, n_seg = len(x), len(seg)
    rows: list[Row] = []
    pk, sk = paillier.generate_paillier_keypair(BITS)
    paillier.set_workers(None)
    paillier.set_precompute(0)
    # start the pool and build every worker's randomiser tables outside the timings
    for blob in runner.run_chunks(cores, runner.w_randomisers, [(pk._rkey, 1, pk.ciphertext_bytes)] * (2 * cores)):
        assert blob
    for blob in runner.run_chunks(cores, runner.w_randomisers, [(sk._rkey, 1, pk.ciphertext_bytes)] * (2 * cores)):
        assert blob
    sk.decrypt(pk.encrypt(x[:4]))
    par = {"workers": cores}

    t, ev = _timed(lambda: pk.encrypt(x))
    rows.append(_row("encrypt", name, "jointly", n, t, **par))
    t, ev_owner = _timed(lambda: sk.encrypt(x))
    rows.append(_row("encrypt_owner", name, "jointly", n, t, **par))
    paillier.set_precompute(max(n, 1 << 16))
    t_warm, ready = _timed(lambda: pk.warm_up(n, timeout=3600))
    t, _ = _timed(lambda: pk.encrypt(x))
    rows.append(_row("encrypt_pool_warm", name, "jointly", n, t, warm_up_seconds=round(t_warm, 2), ready=ready, **par))
    paillier.set_precompute(0)
    runner.shutdown_pools()  # stop the filler thread; restart the pool below
    for blob in runner.run_chunks(cores, runner.w_randomisers, [(pk._rkey, 1, pk.ciphertext_bytes)] * (2 * cores)):
        assert blob

    n_dec = min(n, 4000)
    t, out = _timed(lambda: sk.decrypt(ev[:n_dec]))
    if np.abs(out - x[:n_dec]).max() > 1e-9:
        raise SystemExit("jointly decrypted wrong values")
    rows.append(_row("decrypt", name, "jointly", n_dec, t, **par))
    paillier.set_workers(1)
    n_dec1 = min(n, 600)
    t, _ = _timed(lambda: sk.decrypt(ev_owner[:n_dec1]))
    rows.append(_row("decrypt_w1", name, "jointly", n_dec1, t, workers=1))

    t, _ = _timed(lambda: ev + ev_owner)
    rows.append(_row("add", name, "jointly", n, t, workers=1))
    t, _ = _timed(lambda: ev + x)
    rows.append(_row("add_plain", name, "jointly", n, t, workers=1))
    paillier.set_workers(None)
    t, prod = _timed(lambda: ev * x)
    rows.append(_row("mul_scalar", name, "jointly", n, t, **par))
    if np.abs(sk.decrypt(prod[:50]) - x[:50] ** 2).max() > 1e-6:
        raise SystemExit("jointly multiplied wrong")

    r, c = mat.shape
    vec = ev[:r]
    t, d = _timed(lambda: vec.dot(mat))
    if np.abs(sk.decrypt(d) - x[:r] @ mat).max() > 1e-6:
        raise SystemExit("jointly dot is wrong")
    rows.append(_row("dot", name, "jointly", r * c, t, shape=[r, c], **par))

    # segment_sum: n_seg ciphertexts (gathered from the encrypted vector, as a histogram does)
    picks = np.arange(n_seg) % n
    gathered = ev.take(picks)
    want = np.bincount(seg, weights=x[picks], minlength=BINS)
    cts = gathered._cipher_list()
    n2 = pk._n2

    def raw() -> Any:
        acc: list[Any] = [gmpy2.mpz(1)] * BINS
        for cc, s in zip(cts, seg.tolist(), strict=True):
            acc[s] = acc[s] * cc % n2
        return acc

    t_raw, _ = _timed(raw)
    raw_rate = n_seg / t_raw
    paillier.set_workers(1)
    t1, hist = _timed(lambda: gathered.segment_sum(seg, BINS))
    if np.abs(sk.decrypt(hist) - want).max() > 1e-6:
        raise SystemExit("jointly segment_sum is wrong")
    paillier.set_workers(None)
    received = paillier.EncryptedVector.from_wire(pk, decode(encode(ev.to_wire()))).take(picks)
    t2, hist2 = _timed(lambda: received.segment_sum(seg, BINS))
    if np.abs(sk.decrypt(hist2) - want).max() > 1e-6:
        raise SystemExit("jointly segment_sum (pool) is wrong")
    rows.append(_row("segment_sum", name, "gmpy2-raw", n_seg, t_raw, bins=BINS, workers=1))
    rows.append(
        _row("segment_sum_w1", name, "jointly", n_seg, t1, bins=BINS, workers=1, ratio_vs_raw=round(t_raw / t1, 3))
    )
    rows.append(_row("segment_sum", name, "jointly", n_seg, t2, bins=BINS, ratio_vs_raw=round(t_raw / t2, 3), **par))
    print(f"  raw gmpy2 (a*b) % n^2 at 4096 bits: {1e6 / raw_rate:.2f} us per mulmod", flush=True)

    def wire() -> int:
        data = encode(ev.to_wire())
        back = paillier.EncryptedVector.from_wire(pk, decode(data))
        assert len(back) == n
        return len(data)

    t, size = _timed(wire)
    rows.append(_row("wire", name, "jointly", n, t, bytes_sent=size, bytes_per_ciphertext=round(size / n, 1)))
    runner.shutdown_pools()
    return rows


def bench_phe(name: str, x: np.ndarray, seg: np.ndarray, mat: np.ndarray, n_slow: int) -> list[Row]:
    from phe import paillier as phe

    rows: list[Row] = []
    pub, priv = phe.generate_paillier_keypair(n_length=BITS)
    prec = 2.0**-40
    xs = x.tolist()
    t, enc = _timed(lambda: [pub.encrypt(v, precision=prec) for v in xs[:n_slow]])
    rows.append(_row("encrypt", name, "phe", n_slow, t))
    t, out = _timed(lambda: [priv.decrypt(e) for e in enc])
    if max(abs(a - b) for a, b in zip(out, xs, strict=False)) > 1e-9:
        raise SystemExit("phe decrypted wrong values")
    rows.append(_row("decrypt", name, "phe", n_slow, t))
    rows.append(_row("decrypt_w1", name, "phe", n_slow, t))
    # cheap ops on the full size: cycle the encrypted prefix
    n = len(xs)
    full = [enc[i % n_slow] for i in range(n)]
    t, _ = _timed(lambda: [a + b for a, b in zip(full, full, strict=True)])
    rows.append(_row("add", name, "phe", n, t))
    t, _ = _timed(lambda: [a + v for a, v in zip(full, xs, strict=True)])
    rows.append(_row("add_plain", name, "phe", n, t))
    t, _ = _timed(lambda: [a * v for a, v in zip(enc, xs, strict=False)])
    rows.append(_row("mul_scalar", name, "phe", n_slow, t))
    r = min(mat.shape[0], max(n_slow // 4, 10))
    c = mat.shape[1]

    def dot() -> list[Any]:
        cols = []
        for j in range(c):
            acc = enc[0] * float(mat[0, j])
            for i in range(1, r):
                acc = acc + enc[i % n_slow] * float(mat[i, j])
            cols.append(acc)
        return cols

    t, _ = _timed(dot)
    rows.append(_row("dot", name, "phe", r * c, t, shape=[r, c]))
    n_seg = len(seg)
    gathered = [enc[i % n_slow] for i in range(n_seg)]

    def segsum() -> list[Any]:
        acc: list[Any] = [None] * BINS
        for e, s in zip(gathered, seg.tolist(), strict=True):
            acc[s] = e if acc[s] is None else acc[s] + e
        return acc

    t, _ = _timed(segsum)
    rows.append(_row("segment_sum", name, "phe", n_seg, t, bins=BINS))
    return rows


def main() -> None:
    _args, chosen = parse_args("paillier", list(DATASETS), quick=["2k"])
    cores = runner.workers()
    rows: list[Row] = []
    for name in chosen:
        n, n_seg, n_slow, shape = DATASETS[name]
        rng = np.random.default_rng(2024)
        x = rng.standard_normal(n)
        seg = rng.integers(0, BINS, size=n_seg)
        mat = rng.standard_normal(shape)
        print(f"paillier {name}: n={n:,}, segment_sum {n_seg:,} -> {BINS}, {BITS}-bit keys, {cores} cores", flush=True)
        rows.extend(bench_jointly(name, x, seg, mat, cores))
        rows.extend(bench_phe(name, x, seg, mat, n_slow))
    out = write_results("paillier", rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
