"""What every PSI protocol shares: its configuration, its result, and how ids are read.

An id is a ``str`` or an ``int`` (numpy integers are accepted as ints); its
canonical form is ``str(id).encode("utf-8")``, so the int ``123`` and the string
``"123"`` are the same id.  Results give a party's ids back as the party gave
them, sorted by canonical string, so every receiver lists them in the same order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

from jointly.errors import ConfigError, DataError

Id: TypeAlias = str | int
PsiMode: TypeAlias = Literal["intersection", "cardinality"]
PSI_PROTOCOLS = ("ecdh",)
PSI_MODES = ("intersection", "cardinality")
MIN_TRUNCATE_BYTES = 8
MAX_BATCH_SIZE = 1 << 22  #: 128 MiB of points per message
#: refuse truncations whose chance of one false match could exceed 2**-FALSE_MATCH_BITS
FALSE_MATCH_BITS = 40
ID_SOURCE = "PSI ids"


@dataclass(frozen=True)
class PsiConfig:
    """How a private set intersection runs; every party must pass the same values.

    ``receivers``: the parties that learn the result (in cardinality mode only
    its size); empty means the job's first party.  ``batch_size``: ids per
    message.  ``workers``: processes for the curve arithmetic (``None``: every
    core; a local choice that may differ between parties, like ``batch_size``).

    ``truncate_bytes``: how many bytes of each doubly-encrypted value are
    compared.  Those values behave like random strings, so comparing ``T``
    values in all against each other yields a false match with probability at
    most ``T**2 / 2**(8 * truncate_bytes)``; with the default 16 bytes and two
    sets of a million ids that is below ``2**-88``.  A run whose total set size
    ``T`` would push the bound above ``2**-40`` is refused.
    """

    protocol: Literal["ecdh"] = "ecdh"
    mode: PsiMode = "intersection"
    receivers: tuple[str, ...] = ()
    batch_size: int = 1 << 16
    workers: int | None = None
    truncate_bytes: int = 16

    def __post_init__(self) -> None:
        if self.protocol not in PSI_PROTOCOLS:
            raise ConfigError(f"unknown PSI protocol {self.protocol!r} (known: {', '.join(PSI_PROTOCOLS)})")
        if self.mode not in PSI_MODES:
            raise ConfigError(f"unknown PSI mode {self.mode!r} (known: {', '.join(PSI_MODES)})")
        given: object = self.receivers
        if not isinstance(given, tuple | list) or not all(isinstance(r, str) for r in given):
            raise ConfigError(f"receivers must be a tuple of party names, got {self.receivers!r}")
        object.__setattr__(self, "receivers", tuple(self.receivers))
        if len(set(self.receivers)) != len(self.receivers):
            raise ConfigError(f"receivers {list(self.receivers)} name a party twice")
        if not _positive_int(self.batch_size) or self.batch_size > MAX_BATCH_SIZE:
            raise ConfigError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {self.batch_size!r}")
        if self.workers is not None and not _positive_int(self.workers):
            raise ConfigError(f"workers must be a positive integer or None, got {self.workers!r}")
        if not _positive_int(self.truncate_bytes) or not MIN_TRUNCATE_BYTES <= self.truncate_bytes <= 32:
            raise ConfigError(
                f"truncate_bytes must be between {MIN_TRUNCATE_BYTES} and 32, got {self.truncate_bytes!r}"
            )

    def resolved_receivers(self, parties: Sequence[str]) -> tuple[str, ...]:
        """The receivers in job order, defaulting to the first party; unknown names are a ConfigError."""
        if len(parties) < 2:
            raise ConfigError(f"PSI needs at least two parties, got {list(parties)}")
        unknown = [r for r in self.receivers if r not in parties]
        if unknown:
            raise ConfigError(f"PSI receivers {unknown} are not parties of this job (parties: {', '.join(parties)})")
        if not self.receivers:
            return (parties[0],)
        return tuple(p for p in parties if p in self.receivers)

    def check_truncation(self, total_ids: int) -> None:
        """Refuse a run where truncated comparisons could give a false match with probability over 2**-40."""
        if total_ids * total_ids > 1 << (8 * self.truncate_bytes - FALSE_MATCH_BITS):
            raise ConfigError(
                f"truncate_bytes={self.truncate_bytes} is too small for {total_ids} ids in all: a false match "
                f"could happen with probability over 2**-{FALSE_MATCH_BITS}; use more bytes"
            )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class PsiResult:
    """One party's outcome of a PSI run.

    ``size`` is ``None`` for a party that learns nothing; ``intersection`` is
    this party's own ids in the intersection (as given, sorted by canonical
    string), and ``None`` in cardinality mode or for a party that learns nothing.
    """

    party: str
    mode: PsiMode
    size: int | None
    intersection: list[Id] | None


def canonical_ids(ids: Sequence[object]) -> list[bytes]:
    """Canonical encodings of ``ids``; a :class:`DataError` for an unsupported type or a duplicate."""
    out: list[bytes] = []
    for pos, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise DataError(ID_SOURCE, f"id {value!r} has type {type(value).__name__}; ids must be str or int", row=pos)
        text = _text(value)
        try:
            out.append(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DataError(ID_SOURCE, f"id {value!r} is not valid Unicode text: {exc.reason}", row=pos) from None
    if len(set(out)) != len(out):
        seen: dict[bytes, int] = {}
        for pos, canon in enumerate(out):
            first = seen.setdefault(canon, pos)
            if first != pos:
                raise DataError(
                    ID_SOURCE,
                    f"duplicate id {ids[pos]!r} (same as {ids[first]!r} at position {first}); ids must be unique",
                    row=pos,
                )
    return out


def sorted_ids(ids: Sequence[Id]) -> list[Id]:
    """Ids ordered by canonical string, the order every receiver reports."""
    return sorted(ids, key=_text)


def _text(value: object) -> str:
    return str(int(value)) if isinstance(value, np.integer) else str(value)


def secure_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` from the OS CSPRNG (sorting 128-bit random keys)."""
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    keys = np.frombuffer(secrets.token_bytes(16 * n), dtype="<u8").reshape(n, 2)
    order: np.ndarray = np.lexsort((keys[:, 1], keys[:, 0]))
    return order.astype(np.int64)
