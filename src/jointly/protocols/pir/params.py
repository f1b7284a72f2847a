"""LWE parameters, database shape and the error distribution of SimplePIR-style PIR.

Security.  The query is a Regev/LWE encryption ``A s + e + Delta * u`` with a uniform
secret ``s`` in ``Z_q^n``, a public uniform matrix ``A`` (``cols`` x ``n``, expanded from a
seed) and an error ``e`` drawn from the discrete Gaussian over the integers with standard
deviation ``sigma``.  We use the LWE parameters of SimplePIR -- Henzinger, Hong,
Corrigan-Gibbs, Meiklejohn and Vaikuntanathan, "One Server for the Price of Two: Simple
and Fast Single-Server Private Information Retrieval", USENIX Security 2023 (ePrint
2022/949), Section 4 and its parameter table: ``n = 1024``, ``q = 2**32``, ``sigma = 6.4``,
for which the authors report at least 128-bit classical security with the lattice estimator
of Albrecht, Player and Scott, for databases of up to ``2**20`` columns (LWE samples per
secret, :data:`MAX_COLS`).  Every query uses a fresh secret, so the server's view of any
number of queries is a set of independent LWE samples; distinguishing them from uniform
(and so learning anything about the queried index) is the decision-LWE problem.

Correctness.  The client recovers ``Delta * d + D e`` with ``Delta = q / p`` and must round
it to ``d``: decoding fails only if ``|<D_row, e>| >= Delta / 2`` for some row.  Database
entries are centred bytes (``|D| <= 128``), so with ``e`` subgaussian of parameter
``sigma`` (Hoeffding's bound) a row fails with probability at most
``2 exp(-(Delta/2)**2 / (2 sigma**2 cols 128**2))``; :attr:`PirParams.failure_log2` is the
base-2 log of that bound summed over all rows, and :func:`choose_params` refuses shapes
where it is above ``-40`` (SimplePIR's correctness target).  For 1M records of 32 bytes
(5650 columns) it is about ``-13000``, for 100k records of 1 KiB (10000 columns) about
``-7500``: a decoding error never happens in practice.  We use ``p = 2**8`` (one byte per
matrix entry), below the plaintext moduli SimplePIR's table allows for these sizes (up to
about ``2**10``), which buys this margin and lets the server scan raw bytes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jointly.channel.codec import message
from jointly.errors import ConfigError

LWE_N = 1024
LOG_Q = 32
LOG_P = 8
SIGMA = 6.4
#: most LWE samples (database columns) the cited security estimate covers
MAX_COLS = 1 << 20
#: largest database matrix we build (entries = bytes); keeps the server within memory
MAX_ENTRIES = 1 << 34
#: decoding-failure target, as in SimplePIR
FAILURE_LOG2_TARGET = -40.0
_TAIL_SIGMAS = 14  # the sampler's support is [-14 sigma, 14 sigma]; the cut mass is below 2**-140


@message("jointly.pir.PirParams")
@dataclass(frozen=True)
class PirParams:
    """LWE parameters and the shape of the database matrix.

    The database is a ``rows`` x ``cols`` matrix of bytes.  Record ``i`` occupies rows
    ``(i % per_column) * record_bytes`` onwards of column ``i // per_column``: a query
    fetches one column, so the client receives ``per_column`` records (its own among them).
    """

    num_records: int
    record_bytes: int
    per_column: int
    rows: int
    cols: int
    lwe_n: int = LWE_N
    log_q: int = LOG_Q
    log_p: int = LOG_P
    sigma: float = SIGMA

    def __post_init__(self) -> None:
        for name in ("num_records", "record_bytes", "per_column", "rows", "cols", "lwe_n", "log_q", "log_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"PirParams.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.sigma, int | float) or not math.isfinite(self.sigma) or self.sigma <= 0:
            raise ConfigError(f"PirParams.sigma must be a positive number, got {self.sigma!r}")
        if self.rows != self.per_column * self.record_bytes:
            raise ConfigError("PirParams.rows must equal per_column * record_bytes")
        if self.cols != -(-self.num_records // self.per_column):
            raise ConfigError("PirParams.cols must equal ceil(num_records / per_column)")
        if self.cols > MAX_COLS:
            raise ConfigError(f"{self.cols} columns is more than the {MAX_COLS} the security estimate covers")
        if self.rows * self.cols > MAX_ENTRIES:
            raise ConfigError(f"a {self.rows} x {self.cols} database is larger than {MAX_ENTRIES} bytes")

    @property
    def secure(self) -> bool:
        """True for exactly the LWE parameters whose security is documented above."""
        return (self.lwe_n, self.log_q, self.log_p, float(self.sigma)) == (LWE_N, LOG_Q, LOG_P, SIGMA)

    @property
    def delta(self) -> int:
        return 1 << (self.log_q - self.log_p)

    @property
    def failure_log2(self) -> float:
        """log2 of an upper bound on the probability that one query decodes a wrong byte."""
        half = self.delta / 2
        exponent = half * half / (2 * self.sigma**2 * self.cols * 128.0**2)
        return math.log2(2 * self.rows) - exponent / math.log(2)

    @property
    def db_bytes(self) -> int:
        """Bytes of the padded database matrix (what the server scans per query)."""
        return self.rows * self.cols

    @property
    def query_bytes(self) -> int:
        return 4 * self.cols

    @property
    def answer_bytes(self) -> int:
        return 4 * self.rows

    @property
    def hint_bytes(self) -> int:
        return 4 * self.rows * self.lwe_n


def choose_params(num_records: int, record_bytes: int, *, per_column: int | None = None) -> PirParams:
    """The shape for ``num_records`` records of ``record_bytes`` bytes, with the documented LWE parameters.

    By default the matrix is about square (``rows ~ cols ~ sqrt(num_records * record_bytes)``),
    which balances the query (``4 cols`` bytes) against the answer (``4 rows``) as SimplePIR
    does; ``per_column`` fixes how many records share a column (keyword PIR puts one bucket
    per column).
    """
    if isinstance(num_records, bool) or not isinstance(num_records, int) or num_records < 1:
        raise ConfigError(f"num_records must be a positive integer, got {num_records!r}")
    if isinstance(record_bytes, bool) or not isinstance(record_bytes, int) or record_bytes < 1:
        raise ConfigError(f"record_bytes must be a positive integer, got {record_bytes!r}")
    if per_column is None:
        side = math.sqrt(num_records * record_bytes)
        per_column = max(1, min(num_records, round(side / record_bytes)))
    elif isinstance(per_column, bool) or not isinstance(per_column, int) or per_column < 1:
        raise ConfigError(f"per_column must be a positive integer, got {per_column!r}")
    per_column = min(per_column, num_records)
    cols = -(-num_records // per_column)
    params = PirParams(
        num_records=num_records,
        record_bytes=record_bytes,
        per_column=per_column,
        rows=per_column * record_bytes,
        cols=cols,
    )
    if params.failure_log2 > FAILURE_LOG2_TARGET:
        raise ConfigError(f"a {params.rows} x {cols} database would decode wrongly too often")
    return params


@lru_cache(maxsize=4)
def _gaussian_thresholds(sigma: float) -> tuple[np.ndarray, int]:
    bound = math.ceil(_TAIL_SIGMAS * sigma)
    support = np.arange(-bound, bound + 1, dtype=np.float64)
    weights = np.exp(-(support**2) / (2 * sigma * sigma))
    cdf = np.cumsum(weights / weights.sum())[:-1]
    thresholds = np.array([min(int(c * 2.0**64), (1 << 64) - 1) for c in cdf], dtype=np.uint64)
    return thresholds, bound


def sample_error(count: int, sigma: float = SIGMA) -> np.ndarray:
    """``count`` samples of the discrete Gaussian (standard deviation ``sigma``) as int64, from the OS CSPRNG.

    Inverse-CDF sampling on 64-bit uniform words; the table's rounding changes any
    probability by at most ``2**-53`` relative, and the support is cut at 14 sigma.
    """
    thresholds, bound = _gaussian_thresholds(float(sigma))
    words = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    return np.searchsorted(thresholds, words, side="right").astype(np.int64) - bound


def uniform_u32(count: int) -> np.ndarray:
    """``count`` uniform words of ``Z_(2**32)`` from the OS CSPRNG."""
    return np.frombuffer(os.urandom(4 * count), dtype="<u4").astype(np.uint32)
