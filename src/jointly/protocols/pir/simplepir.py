"""Single-server index PIR in the style of SimplePIR (learning with errors, one hint).

Steps (``D``: the database as a ``rows`` x ``cols`` matrix of centred bytes ``b - 128``;
``A``: a uniform ``cols`` x ``n`` matrix over ``Z_q``, ``q = 2**32``, expanded from a public
seed; ``Delta = q / 256``; parameters in :mod:`jointly.protocols.pir.params`):

1. *setup* (server, once): ``hint = D A mod q``; :class:`PirSetup` (seed, hint, shape) is
   public and may be cached by any number of clients.
2. *query* (client): for record ``i`` in column ``c``, a fresh secret ``s`` (uniform in
   ``Z_q^n``) and error ``e`` (discrete Gaussian): ``qu = A s + e + Delta * u_c mod q``.
3. *answer* (server): ``ans = D qu mod q`` -- one pass over the database.
4. *decode* (client): ``ans - hint s = Delta * D[:, c] + D e``; rounding to multiples of
   ``Delta`` gives column ``c``, and the record's bytes in it.

What is protected from whom.  The server sees only ``qu``, a vector of ``cols`` words
whose size does not depend on ``i``, and which is indistinguishable from uniform under
decision-LWE: it learns nothing about ``i`` (semi-honest or malicious, it cannot make the
client reveal ``i`` either; it can only return garbage).  The client learns the whole
column ``c``: its record and the ``per_column - 1`` records sharing the column.  This is
PIR, not symmetric PIR: the database is not hidden from the client beyond that.

Speed.  The online answer is exact integer arithmetic mod ``2**32`` done with float64 BLAS:
a query word read as a signed 32-bit integer times a centred byte is below ``2**38`` in
magnitude, so a dot product over at most ``2**14`` columns stays below ``2**52`` and every
float partial sum is an exact integer.  The database stays in memory as int8 (one byte per
entry) and is widened to float64 a few rows at a time, so the scan reads each byte once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from jointly.channel.codec import message
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.pir.params import (
    LOG_P,
    PirParams,
    choose_params,
    sample_error,
    uniform_u32,
)

SEED_BYTES = 16
_EXACT_COLS = 1 << 14  # column block whose float64 dot products are exact (see the module docstring)
_MASK32 = np.int64(0xFFFFFFFF)
_CHUNK_BYTES = 3 << 20  # float64 working set of one row chunk of the scan (fits L2/L3)
_GEMV_MAX = 8  # BLAS packs the matrix for a product with few columns: up to this many, use gemv per column


@message("jointly.pir.PirSetup")
@dataclass(frozen=True)
class PirSetup:
    """The server's public preprocessing: parameters, the seed of ``A`` and the hint ``D A mod q``."""

    params: PirParams
    seed: bytes
    hint: np.ndarray  # uint32, (rows, lwe_n)

    @property
    def nbytes(self) -> int:
        return len(self.seed) + int(self.hint.nbytes)


@message("jointly.pir.PirQuery")
@dataclass(frozen=True)
class PirQuery:
    """One query: ``cols`` uniform-looking words (uint32) of ``Z_(2**32)``."""

    vector: np.ndarray


@message("jointly.pir.PirAnswer")
@dataclass(frozen=True)
class PirAnswer:
    """The server's answer to one query: ``rows`` words (uint32)."""

    vector: np.ndarray


@dataclass(frozen=True)
class QueryState:
    """What the client keeps between :meth:`PirClient.query` and :meth:`PirClient.decode` (never sent)."""

    index: int
    column: int
    offset: int  # first row of the record in its column
    hint_s: np.ndarray  # (hint s) mod q on the record's rows, uint32


def expand_matrix(seed: bytes, rows: int, cols: int) -> np.ndarray:
    """The public uniform matrix ``A`` (``rows`` x ``cols`` words mod ``2**32``) from ``seed``: AES-128-CTR."""
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise ProtocolViolation(f"the seed of A must be {SEED_BYTES} bytes")
    key = hashlib.sha256(b"jointly.pir.v1/A" + seed).digest()[:16]
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(4 * rows * cols)) + encryptor.finalize()
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32).reshape(rows, cols)


def _signed(words: np.ndarray) -> np.ndarray:
    """uint32 words as float64 values of their signed representatives in ``[-2**31, 2**31)``."""
    return words.view(np.int32).astype(np.float64)


def matmul_mod32(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right mod 2**32`` for uint32 matrices or vectors, exactly.

    Integer matmul in uint64 wraps modulo ``2**64``, a multiple of ``2**32``; it does not use
    BLAS threads, which suits the client's small products.
    """
    return _matmul_u64(np.asarray(left, dtype=np.uint64), right)


def _matmul_u64(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """:func:`matmul_mod32` with ``left`` already widened to uint64."""
    return ((left @ right.astype(np.uint64)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _as_matrix(records: Sequence[bytes] | np.ndarray, record_bytes: int) -> np.ndarray:
    if isinstance(records, np.ndarray):
        if records.dtype != np.uint8 or records.ndim != 2 or records.shape[1] != record_bytes:
            got = f"{records.dtype} {records.shape}"
            raise DataError("records", f"expected a uint8 array of shape (n, {record_bytes}), got {got}")
        return records
    out = np.zeros((len(records), record_bytes), dtype=np.uint8)
    for i, record in enumerate(records):
        if not isinstance(record, bytes | bytearray) or len(record) != record_bytes:
            raise DataError("records", f"every record must be {record_bytes} bytes", row=i)
        out[i] = np.frombuffer(record, dtype=np.uint8)
    return out


class PirServer:
    """Holds the database, computes the hint once, and answers queries by one matrix-vector product each."""

    def __init__(
        self, records: Sequence[bytes] | np.ndarray, *, record_bytes: int, params: PirParams | None = None
    ) -> None:
        matrix = _as_matrix(records, record_bytes)
        if len(matrix) == 0:
            raise DataError("records", "the database is empty")
        if params is None:
            params = choose_params(len(matrix), record_bytes)
        if params.num_records != len(matrix) or params.record_bytes != record_bytes:
            raise ConfigError("params were chosen for another number or size of records")
        if not params.secure:
            raise ConfigError("only the documented LWE parameters are supported")
        self.params = params
        padded = np.full((params.cols * params.per_column, record_bytes), 128, dtype=np.uint8)
        padded[: len(matrix)] = matrix
        # column c holds records c*per_column ... : (cols, rows) -> transpose; centre bytes to int8
        by_column = padded.reshape(params.cols, params.rows)
        self._db = np.ascontiguousarray(by_column.T ^ np.uint8(0x80)).view(np.int8)
        self._setup: PirSetup | None = None

    @property
    def db_bytes(self) -> int:
        return int(self._db.nbytes)

    def setup(self) -> PirSetup:
        """The public setup message; computed on first call (``hint = D A mod q``), then cached."""
        if self._setup is None:
            seed = os.urandom(SEED_BYTES)
            a = expand_matrix(seed, self.params.cols, self.params.lwe_n)
            self._setup = PirSetup(params=self.params, seed=seed, hint=self._hint(a))
        return self._setup

    def _hint(self, a: np.ndarray) -> np.ndarray:
        p = self.params
        a_signed = _signed(a)
        hint = np.empty((p.rows, p.lwe_n), dtype=np.uint32)
        step = max(1, min(p.rows, (64 << 20) // (8 * p.cols)))
        for r in range(0, p.rows, step):
            block = self._db[r : r + step].astype(np.float64)
            acc = np.zeros((block.shape[0], p.lwe_n), dtype=np.int64)
            for c in range(0, p.cols, _EXACT_COLS):
                part = block[:, c : c + _EXACT_COLS] @ a_signed[c : c + _EXACT_COLS]
                acc += part.astype(np.int64) & _MASK32
            hint[r : r + step] = (acc & _MASK32).astype(np.uint32)
        return hint

    def check_query(self, query: object) -> np.ndarray:
        """The query's vector, or :class:`ProtocolViolation` if it is not ``cols`` uint32 words."""
        if not isinstance(query, PirQuery):
            raise ProtocolViolation(f"expected a PirQuery, got {type(query).__name__}")
        vec = query.vector
        if not isinstance(vec, np.ndarray) or vec.dtype != np.uint32 or vec.shape != (self.params.cols,):
            shape = getattr(vec, "shape", None)
            dtype = getattr(vec, "dtype", type(vec).__name__)
            raise ProtocolViolation(f"a PIR query must be {self.params.cols} uint32 words, got {dtype} {shape}")
        return vec

    def answer(self, query: PirQuery) -> PirAnswer:
        """The online work for one query: ``D qu mod 2**32``."""
        return self.answer_batch([query])[0]

    def answer_batch(self, queries: Sequence[PirQuery]) -> list[PirAnswer]:
        """Answer several queries in one pass over the database (a matrix-matrix product)."""
        if len(queries) == 0:
            return []
        vectors = [self.check_query(q) for q in queries]
        x = np.asfortranarray(_signed(np.stack(vectors, axis=1)))  # (cols, k); columns contiguous for gemv
        rows, cols = self._db.shape
        out = np.empty((rows, x.shape[1]), dtype=np.int64)
        step = max(8, min(rows, _CHUNK_BYTES // (8 * min(cols, _EXACT_COLS))))
        buf = np.empty((step, min(cols, _EXACT_COLS)), dtype=np.float64)
        for c in range(0, cols, _EXACT_COLS):
            width = min(_EXACT_COLS, cols - c)
            xs = x[c : c + width]
            for r in range(0, rows, step):
                n = min(step, rows - r)
                chunk = buf[:n, :width]
                np.copyto(chunk, self._db[r : r + n, c : c + width], casting="unsafe")
                if xs.shape[1] <= _GEMV_MAX:
                    part = np.stack([chunk @ xs[:, k] for k in range(xs.shape[1])], axis=1)
                else:
                    part = chunk @ xs
                part = part.astype(np.int64) & _MASK32
                if c == 0:
                    out[r : r + n] = part
                else:
                    out[r : r + n] += part
        words = (out & _MASK32).astype(np.uint32)
        return [PirAnswer(vector=np.ascontiguousarray(words[:, k])) for k in range(words.shape[1])]


class PirClient:
    """Makes queries for record indices and decodes the answers; caches ``A`` from the setup's seed."""

    def __init__(self, setup: PirSetup) -> None:
        if not isinstance(setup, PirSetup) or not isinstance(setup.params, PirParams):
            raise ProtocolViolation("expected a PirSetup")
        params = setup.params
        if not params.secure:
            raise ProtocolViolation("the server proposed LWE parameters other than the documented secure ones")
        hint = setup.hint
        if not isinstance(hint, np.ndarray) or hint.dtype != np.uint32 or hint.shape != (params.rows, params.lwe_n):
            raise ProtocolViolation(f"the hint must be a ({params.rows}, {params.lwe_n}) uint32 matrix")
        self.setup = setup
        self.params = params
        self._a = expand_matrix(setup.seed, params.cols, params.lwe_n).astype(np.uint64)

    def query(self, index: int) -> tuple[PirQuery, QueryState]:
        """A query for record ``index``; its size and distribution do not depend on ``index``."""
        p = self.params
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < p.num_records:
            raise ConfigError(f"record index must be in [0, {p.num_records}), got {index!r}")
        index = int(index)
        column, slot = divmod(index, p.per_column)
        offset = slot * p.record_bytes
        secret = uniform_u32(p.lwe_n)
        noise = sample_error(p.cols, p.sigma)
        vec = _matmul_u64(self._a, secret).astype(np.int64) + noise
        vec[column] += p.delta
        qvec = (vec & _MASK32).astype(np.uint32)
        hint_s = matmul_mod32(self.setup.hint[offset : offset + p.record_bytes], secret)
        return PirQuery(vector=qvec), QueryState(index=index, column=column, offset=offset, hint_s=hint_s)

    def decode(self, answer: PirAnswer, state: QueryState) -> bytes:
        """The record's bytes from the server's answer."""
        p = self.params
        if not isinstance(answer, PirAnswer):
            raise ProtocolViolation(f"expected a PirAnswer, got {type(answer).__name__}")
        vec = answer.vector
        if not isinstance(vec, np.ndarray) or vec.dtype != np.uint32 or vec.shape != (p.rows,):
            raise ProtocolViolation(f"a PIR answer must be {p.rows} uint32 words")
        part = vec[state.offset : state.offset + p.record_bytes].astype(np.int64) - state.hint_s.astype(np.int64)
        shift = p.log_q - LOG_P
        rounded = ((part + (1 << (shift - 1))) & _MASK32) >> shift
        return ((rounded + 128) & 0xFF).astype(np.uint8).tobytes()
