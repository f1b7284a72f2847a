"""Deterministic synthetic data for tests, demos and benchmarks.  Nothing here is real.

The same arguments and ``seed`` always give the same output (numpy's ``PCG64``
through :func:`numpy.random.default_rng`), on any machine, for the pinned numpy.

>>> a, b = overlapping_ids(5, 4, 2, seed=1)
>>> len(set(a) & set(b))
2
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np
import pandas as pd

from jointly.errors import ConfigError

__all__ = ["COLUMN_GENERATORS", "ID_DIGITS", "IdKind", "customer_table", "format_customer_id", "overlapping_ids"]

IdKind = Literal["str", "int"]
#: string ids are ``"C"`` followed by this many digits, e.g. ``"C0000123456"``
ID_DIGITS = 10
_ID_SPACE = 10**ID_DIGITS - 1  # ids are drawn from 1 .. 10**ID_DIGITS - 1


def format_customer_id(number: int) -> str:
    """The string form of a customer number: ``123456 -> "C0000123456"``."""
    return f"C{number:0{ID_DIGITS}d}"


@overload
def overlapping_ids(
    n_a: int, n_b: int, overlap: int, *, seed: int = 0, kind: Literal["str"] = "str"
) -> tuple[list[str], list[str]]: ...
@overload
def overlapping_ids(
    n_a: int, n_b: int, overlap: int, *, seed: int = 0, kind: Literal["int"]
) -> tuple[list[int], list[int]]: ...
def overlapping_ids(
    n_a: int, n_b: int, overlap: int, *, seed: int = 0, kind: IdKind = "str"
) -> tuple[list[str], list[str]] | tuple[list[int], list[int]]:
    """Two lists of distinct ids, of sizes ``n_a`` and ``n_b``, sharing exactly ``overlap`` ids.

    Each list is shuffled (the shared ids are not at the front).  ``kind="str"``
    gives customer numbers like ``"C0000123456"``; ``kind="int"`` gives the same
    numbers as Python ints (``123456``).  1M x 1M takes about a second.
    """
    if min(n_a, n_b, overlap) < 0:
        raise ConfigError(f"sizes must be non-negative, got n_a={n_a}, n_b={n_b}, overlap={overlap}")
    if overlap > min(n_a, n_b):
        raise ConfigError(f"overlap={overlap} is larger than the smaller list (n_a={n_a}, n_b={n_b})")
    if kind not in ("str", "int"):
        raise ConfigError(f"kind must be 'str' or 'int', got {kind!r}")
    total = n_a + n_b - overlap
    if total > _ID_SPACE // 10:
        raise ConfigError(f"{total} distinct ids requested; at most {_ID_SPACE // 10} are supported")
    rng = np.random.default_rng(seed)
    pool = rng.choice(_ID_SPACE, size=total, replace=False) + 1  # distinct, in 1 .. _ID_SPACE
    a = rng.permutation(pool[:n_a])  # the first `overlap` of the pool are shared
    b = rng.permutation(np.concatenate([pool[:overlap], pool[n_a:]]))
    if kind == "int":
        return a.tolist(), b.tolist()
    return _as_strings(a), _as_strings(b)


def _as_strings(numbers: np.ndarray) -> list[str]:
    return [f"C{v:0{ID_DIGITS}d}" for v in numbers.tolist()]


# ------------------------------------------------------------------- columns

ColumnGenerator = Callable[[np.random.Generator, int], np.ndarray]


def _age(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(np.rint(rng.normal(45, 15, n)), 18, 90).astype(np.int64)


def _income(rng: np.random.Generator, n: int) -> np.ndarray:
    """Yearly income in whole currency units, log-normal around 45,000."""
    return (np.rint(rng.lognormal(np.log(45_000), 0.5, n) / 100) * 100).astype(np.int64)


def _balance(rng: np.random.Generator, n: int) -> np.ndarray:
    """Account balance with cents; about 5% of accounts are overdrawn."""
    overdrawn = rng.random(n) < 0.05
    amount = rng.lognormal(np.log(3_000), 1.2, n)
    return np.round(np.where(overdrawn, -amount / 10, amount), 2)


def _credit_score(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(np.rint(rng.normal(680, 70, n)), 300, 850).astype(np.int64)


def _num_products(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(rng.poisson(1.0, n) + 1, 6).astype(np.int64)


def _monthly_spend(rng: np.random.Generator, n: int) -> np.ndarray:
    """Monthly phone bill with cents, gamma-distributed around 50."""
    return np.round(rng.gamma(4.0, 12.5, n), 2)


def _tenure_months(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(rng.geometric(1 / 30, n), 240).astype(np.int64)


def _data_gb(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.round(rng.exponential(8.0, n), 1)


#: every column :func:`customer_table` can make, by name
COLUMN_GENERATORS: dict[str, ColumnGenerator] = {
    "age": _age,
    "income": _income,
    "balance": _balance,
    "credit_score": _credit_score,
    "num_products": _num_products,
    "monthly_spend": _monthly_spend,
    "tenure_months": _tenure_months,
    "data_gb": _data_gb,
}


def customer_table(
    ids: Sequence[str] | Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    columns: Sequence[str] = ("age", "income", "balance"),
    id_column: str = "customer_id",
) -> pd.DataFrame:
    """A frame with ``id_column`` (the ``ids``, in order) and one plausible numeric column per name in ``columns``.

    Each column has its own random stream derived from ``seed`` and the column's
    name, so adding or reordering columns does not change the others' values.
    See :data:`COLUMN_GENERATORS` for the names.
    """
    unknown = [c for c in columns if c not in COLUMN_GENERATORS]
    if unknown:
        raise ConfigError(f"unknown column(s) {unknown}; available: {sorted(COLUMN_GENERATORS)}")
    if id_column in columns or len(set(columns)) != len(columns):
        raise ConfigError(f"columns must be distinct and not the id column {id_column!r}, got {list(columns)}")
    n = len(ids)
    data: dict[str, object] = {id_column: list(ids) if not isinstance(ids, np.ndarray) else ids}
    for name in columns:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        data[name] = COLUMN_GENERATORS[name](rng, n)
    return pd.DataFrame(data)
