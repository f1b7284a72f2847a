"""Where the Paillier kernels run: settings, the worker process pool and the obfuscation pool.

Private module behind :mod:`jointly.crypto.paillier`.  Heavy vector operations
are split into chunks for a :class:`~concurrent.futures.ProcessPoolExecutor`
(forkserver, never fork: nodes run gRPC threads), every core by default
(:func:`set_workers`); small ones stay in this process, decided by an estimate
of their cost in modular multiplications.

**Obfuscation pool**: randomisers for a key are made ahead of time by a daemon
thread (in the worker pool when one is already running, else in the thread
with the GIL released around gmpy2 arithmetic), up to a size that follows use
(the largest request seen, capped by :func:`set_precompute`); each randomiser
is handed out exactly once and then forgotten.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

import gmpy2
import numpy as np

from jointly.crypto._paillier_engine import (
    SOURCES_PER_PROCESS,
    Mpz,
    RandomiserKey,
    clear_local_sources,
    forget_local_source,
    from_blob,
    local_source,
    w_randomisers,
)
from jointly.errors import ConfigError, JointlyError

_PARALLEL_MIN_UNITS = 12_000.0  # modular multiplications (2048-bit-key equivalent) worth a trip to the pool
_CHUNKS_PER_WORKER = 3
#: ciphertext bytes per job of an elementwise operation: bounds the memory of each worker and of the
#: jobs in flight (at most ``2 * workers``), whatever the vector's length
MAX_CHUNK_BYTES = 8 << 20


# -- configuration ------------------------------------------------------------------------------
class _Settings:
    workers: int | None = None  # None: every core
    precompute_max: int = 1 << 16  # randomisers kept ready per key (0: no background pool)


SETTINGS = _Settings()


def set_workers(n: int | None) -> None:
    """Processes for heavy operations: ``None`` every core, ``1`` this process only."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"workers must be a positive integer or None, got {n!r}")
    SETTINGS.workers = n


def set_precompute(max_randomisers: int) -> None:
    """Upper bound of randomisers made ahead of time per key (``0`` turns the background pool off)."""
    if isinstance(max_randomisers, bool) or not isinstance(max_randomisers, int) or max_randomisers < 0:
        raise ConfigError(f"max_randomisers must be a non-negative integer, got {max_randomisers!r}")
    SETTINGS.precompute_max = max_randomisers
    if max_randomisers == 0:
        with _OBF_LOCK:
            pools = list(_OBFUSCATION.values())
            _OBFUSCATION.clear()
        for pool in pools:
            pool.stop()


def workers() -> int:
    if SETTINGS.workers is not None:
        return SETTINGS.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _cost_scale(bits: int) -> float:
    """Cost of one mulmod mod ``n^2`` relative to a 2048-bit key."""
    return float((bits / 2048) ** 1.6)


def parallel_workers(units: float, bits: int) -> int:
    """Workers to use for ``units`` mulmods at key size ``bits`` (1: stay in this process)."""
    w = workers()
    if w == 1 or units * _cost_scale(bits) < _PARALLEL_MIN_UNITS:
        return 1
    return w


# -- the process pool ---------------------------------------------------------------------------
_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ProcessPoolExecutor:
    """The pool of ``n`` processes (forkserver, never fork: nodes run gRPC threads)."""
    with _POOL_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
            _POOLS[n] = pool
        return pool


def _ready() -> int:
    """Run in a fresh worker: import the kernels, report the worker's pid."""
    from jointly.crypto import _paillier_engine  # noqa: F401

    return os.getpid()


def prestart() -> int:
    """Start the worker processes now rather than on first use; returns how many are up.

    A long-lived node calls this once at start, so its first job does not pay for
    starting processes and importing the kernels (about a second per worker).
    """
    n = workers()
    if n <= 1:
        return 0
    pool = _pool(n)
    return len({f.result() for f in [pool.submit(_ready) for _ in range(n)]})


def shutdown_pools() -> None:
    """Stop the background randomiser threads and every worker pool (they restart lazily)."""
    with _OBF_LOCK:
        obfs = list(_OBFUSCATION.values())
        _OBFUSCATION.clear()
    for obf in obfs:
        obf.stop()
    clear_local_sources()
    with _POOL_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)


class ChunkRunner:
    """Run ``fn(*job)`` for each job in ``n`` worker processes; iterate for the results in order.

    The first ``2 n`` jobs are submitted at once (so the caller can compute
    something else meanwhile); later ones as results come back, which keeps
    memory bounded and lets the caller's chunk preparation overlap the work.
    """

    def __init__(self, n: int, fn: Callable[..., bytes], jobs: Iterable[tuple[object, ...]]) -> None:
        self.n = n
        self.fn = fn
        self.jobs = iter(jobs)
        self.pool = _pool(n)
        self.pending: deque[Future[bytes]] = deque()
        self._fill()

    def _fill(self) -> None:
        try:
            while len(self.pending) < 2 * self.n:
                job = next(self.jobs, None)
                if job is None:
                    return
                self.pending.append(self.pool.submit(self.fn, *job))
        except BrokenProcessPool as exc:
            self._broken(exc)

    def _broken(self, exc: BaseException) -> None:
        with _POOL_LOCK:
            if _POOLS.get(self.n) is self.pool:
                del _POOLS[self.n]
        for f in self.pending:
            f.cancel()
        raise JointlyError(f"a Paillier worker process died: {exc}") from exc

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self.pending:
                try:
                    result = self.pending.popleft().result()
                except BrokenProcessPool as exc:
                    self._broken(exc)
                self._fill()
                yield result
        finally:
            for f in self.pending:
                f.cancel()


def run_chunks(n: int, fn: Callable[..., bytes], jobs: Iterable[tuple[object, ...]]) -> Iterator[bytes]:
    """Results of ``fn(*job)`` per job, in order, computed in ``n`` worker processes."""
    return iter(ChunkRunner(n, fn, jobs))


def chunk_bounds(size: int, n: int, *, min_chunk: int = 1, max_chunk: int | None = None) -> list[tuple[int, int]]:
    """``[lo, hi)`` chunks of ``size`` elements for ``n`` workers (about ``3 n`` of them).

    ``max_chunk`` caps a chunk's length (then there are more chunks): what one job
    holds at a time, in the worker and in this process, stays bounded whatever ``size``.
    """
    step = max(min_chunk, math.ceil(size / (n * _CHUNKS_PER_WORKER)))
    if max_chunk is not None:
        step = max(1, min(step, max(max_chunk, min_chunk)))
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def max_chunk_rows(width: int) -> int:
    """Elements of ``width`` bytes in a chunk of at most :data:`MAX_CHUNK_BYTES` (at least one)."""
    return max(1, MAX_CHUNK_BYTES // max(width, 1))


class RowOperand(Protocol):
    """Ciphertexts as fixed-width rows plus an optional gather index (what workers receive)."""

    def __len__(self) -> int: ...

    def _cipher_rows(self) -> tuple[np.ndarray, np.ndarray | None]: ...


def operand_chunks(
    operand: RowOperand, bounds: Sequence[tuple[int, int]]
) -> Iterator[tuple[int, int, bytes, bytes | None]]:
    """``(lo, hi, rows blob, index blob or None)`` per chunk, sending each needed row once per chunk."""
    rows, idx = operand._cipher_rows()
    for lo, hi in bounds:
        if idx is None:
            yield lo, hi, rows[lo:hi].tobytes(), None
            continue
        sub = idx[lo:hi]
        uniq, inverse = np.unique(sub, return_inverse=True)
        if len(uniq) * 4 < len(sub) * 3:
            yield lo, hi, rows[uniq].tobytes(), inverse.astype(np.int64).tobytes()
        else:
            yield lo, hi, rows[sub].tobytes(), None


# -- the obfuscation pool -----------------------------------------------------------------------
class ObfuscationPool:
    """Randomisers for one key made ahead of time by a daemon thread; each is handed out once.

    The target size follows use: the largest single request seen (at least 64),
    capped by :func:`set_precompute`.  Production goes through the process pool
    when there is one, else runs in the thread with the GIL released around
    gmpy2 arithmetic.
    """

    def __init__(self, key: RandomiserKey, width: int) -> None:
        self.key = key
        self.width = width
        self._ready: deque[Mpz] = deque()
        self._cond = threading.Condition()
        self._target = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def take(self, count: int) -> list[Mpz]:
        """Up to ``count`` ready randomisers (removed from the pool), and note the demand."""
        with self._cond:
            got = min(count, len(self._ready))
            out = [self._ready.popleft() for _ in range(got)]
            cap = SETTINGS.precompute_max
            self._target = min(cap, max(self._target, count, 64))
            if self._thread is None and cap > 0 and not self._stopped:
                self._thread = threading.Thread(target=self._fill, name="paillier-obfuscation", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return out

    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def warm(self, count: int, timeout: float | None = None) -> int:
        """Raise the target to ``count`` (capped), wait until that many are ready; returns how many are."""
        self.take(0)  # starts the filler thread
        with self._cond:
            self._target = max(self._target, min(count, SETTINGS.precompute_max))
            self._cond.notify_all()
            self._cond.wait_for(lambda: len(self._ready) >= self._target or self._stopped, timeout)
            return len(self._ready)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._cond.notify_all()

    def _fill(self) -> None:
        try:
            self._fill_until_stopped()
        finally:
            if self.key[0] == b"crt":  # a table we may have (re)built reveals p and q
                forget_local_source(self.key)

    def _fill_until_stopped(self) -> None:
        ctx = gmpy2.get_context()
        ctx.allow_release_gil = True  # let the caller's thread run while we multiply
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or len(self._ready) < self._target)
                if self._stopped:
                    return
                missing = self._target - len(self._ready)
            try:
                made = self._produce(min(missing, 512))
            except (JointlyError, OSError, RuntimeError, CancelledError):  # pool shut down or broken
                return
            with self._cond:
                if self._is_stopped():
                    return
                self._ready.extend(made)
                self._cond.notify_all()

    def _is_stopped(self) -> bool:
        return self._stopped

    def _produce(self, count: int) -> list[Mpz]:
        n = workers()
        with _POOL_LOCK:
            pooled = n in _POOLS  # never start worker processes just to fill the pool
        if n > 1 and pooled:
            per = max(16, math.ceil(count / n))
            jobs = [(self.key, min(per, count - lo), self.width) for lo in range(0, count, per)]
            out: list[Mpz] = []
            for blob in run_chunks(n, w_randomisers, jobs):
                out.extend(from_blob(blob, self.width))
            return out
        return local_source(self.key).make(count)


_OBFUSCATION: dict[RandomiserKey, ObfuscationPool] = {}
_OBF_LOCK = threading.Lock()


def obfuscation_pool(key: RandomiserKey, width: int) -> ObfuscationPool | None:
    """The background pool of ``key`` (``None`` when precomputation is off)."""
    _drain_forgotten()
    if SETTINGS.precompute_max == 0:
        return None
    with _OBF_LOCK:
        pool = _OBFUSCATION.get(key)
        if pool is None:
            if len(_OBFUSCATION) >= SOURCES_PER_PROCESS:
                oldest = next(iter(_OBFUSCATION))
                _OBFUSCATION.pop(oldest).stop()
            pool = ObfuscationPool(key, width)
            _OBFUSCATION[key] = pool
        return pool


def randomisers(key: RandomiserKey, count: int, width: int, bits: int) -> list[Mpz]:
    """``count`` fresh randomisers: ready ones from the pool first, the rest made now."""
    if count == 0:
        return []
    obf = obfuscation_pool(key, width)
    out = obf.take(count) if obf is not None else []
    missing = count - len(out)
    if missing:
        n = parallel_workers(missing * 140, bits)
        if n == 1:
            out.extend(local_source(key).make(missing))
        else:
            jobs = [(key, hi - lo, width) for lo, hi in chunk_bounds(missing, n)]
            for blob in run_chunks(n, w_randomisers, jobs):
                out.extend(from_blob(blob, width))
    return out


_FORGET: deque[RandomiserKey] = deque()  # keys whose owner object died, cleaned up lazily


def forget(key: RandomiserKey) -> None:
    """Mark ``key``'s tables and pool for removal (a key finalizer: may run in any thread, during GC,
    so it takes no lock; the work happens on the next call into this module)."""
    _FORGET.append(key)


def _drain_forgotten() -> None:
    while True:
        try:
            key = _FORGET.popleft()
        except IndexError:
            return
        with _OBF_LOCK:
            pool = _OBFUSCATION.pop(key, None)
        if pool is not None:
            pool.stop()
        forget_local_source(key)
