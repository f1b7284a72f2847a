"""Arithmetic kernels behind :mod:`jointly.crypto.paillier`: randomisers, vector kernels, multi-exponentiation.

Private module: no key or vector types here, only integers (``gmpy2.mpz``) and
fixed-width big-endian byte rows, so every kernel runs in this process or, via
the ``w_*`` entry points, in a pool worker (:mod:`._paillier_pool`).  Workers get
flat ``bytes`` (ciphertext rows, int64 arrays) and return flat ``bytes``: a
4096-bit ``mpz`` converts to or from its 512 bytes in about 1.2 us (a fifth of
one modular multiplication); pickling ``mpz`` lists is slower than that.

**Randomisers** (``r^n mod n^2`` in textbook Paillier) follow Damgård, Jurik and
Nielsen, "A generalization of Paillier's public-key system with applications
to electronic voting", Int. J. Inf. Secur. 9(6), 2010: pick ``x`` in ``Z_n^*``,
``h = -x^2 mod n``, ``hs = h^n mod n^2`` once, then every randomiser is
``hs^a mod n^2`` for a fresh uniform ``a`` of ``ceil(bits / 2)`` bits (1024 bits
for a 2048-bit key; the exponent length of DJN, also used by secretflow HEU and
ABY).  ``hs^a`` is an ``n``-th power, so the ciphertexts are ordinary Paillier
ciphertexts.  Semantic security rests on the decisional composite residuosity
assumption plus DJN's assumption that ``hs^a`` with a half-length exponent is
indistinguishable from a uniform ``n``-th power (a short-exponent assumption;
the best known generic attack on a ``bits/2``-bit exponent costs about
``2^(bits/4)`` group operations, 2^512 here, far above the 2^112 of the
modulus).  Each process draws its own ``hs`` from the OS CSPRNG and keeps it.
``hs^a`` is evaluated with a fixed-base windowed table: ``ceil(bits/2 / w)``
multiplications (128 for 2048 bits with ``w = 8``; table about 16 MiB).  The key
owner evaluates the same product mod ``p^2`` and ``q^2`` and joins by CRT.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import gmpy2
import numpy as np

from jointly.errors import JointlyError, ProtocolViolation

Mpz = Any  # gmpy2.mpz has no type stubs
_mpz = gmpy2.mpz
_from_bytes = gmpy2.mpz.from_bytes
_powmod = gmpy2.powmod

_TABLE_BUDGET = 24 << 20  # bytes per fixed-base table
SOURCES_PER_PROCESS = 4  # keys whose randomiser tables a process keeps (LRU)


# -- conversions --------------------------------------------------------------------------------
def to_rows(cts: Sequence[Mpz], width: int) -> np.ndarray:
    """Fixed-width big-endian rows, a ``(len, width)`` uint8 array."""
    blob = b"".join([c.to_bytes(width, "big") for c in cts])
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(cts), width)


def from_blob(blob: bytes | memoryview, width: int) -> list[Mpz]:
    fb = _from_bytes
    return [fb(blob[i : i + width], "big") for i in range(0, len(blob), width)]


def from_rows(rows: np.ndarray) -> list[Mpz]:
    return from_blob(rows.tobytes(), rows.shape[1]) if rows.size else []


def first_out_of_range(rows: np.ndarray, modulus: int) -> int:
    """Index of the first row that is 0 or ``>= modulus`` (big-endian), or -1."""
    width = rows.shape[1]
    top = np.frombuffer(modulus.to_bytes(width, "big"), dtype=np.uint8)
    for lo in range(0, len(rows), 1 << 15):
        block = rows[lo : lo + (1 << 15)]
        diff = block != top
        first = diff.argmax(axis=1)
        below = diff.any(axis=1) & (block[np.arange(len(block)), first] < top[first])
        bad = np.flatnonzero(~(below & block.any(axis=1)))
        if len(bad):
            return lo + int(bad[0])
    return -1


def ints_to_blob(values: Sequence[int], width: int) -> bytes:
    return b"".join([int(v).to_bytes(width, "big") for v in values])


def blob_to_ints(blob: bytes, width: int) -> list[int]:
    fb = int.from_bytes
    return [fb(blob[i : i + width], "big") for i in range(0, len(blob), width)]


# -- fixed-base exponentiation for randomisers --------------------------------------------------
def _window(mod_bytes: int, exp_bits: int, budget: int) -> int:
    for w in (8, 7, 6, 5, 4):
        if math.ceil(exp_bits / w) * ((1 << w) - 1) * mod_bytes <= budget:
            return w
    return 4


class FixedBase:
    """``base^a mod modulus`` for exponents of ``exp_bits`` bits, by a windowed table."""

    __slots__ = ("exp_bits", "modulus", "table", "window", "windows")

    def __init__(self, base: Mpz, modulus: Mpz, exp_bits: int, *, budget: int = _TABLE_BUDGET) -> None:
        self.modulus = modulus
        self.exp_bits = exp_bits
        self.window = _window((int(modulus).bit_length() + 7) // 8, exp_bits, budget)
        self.windows = math.ceil(exp_bits / self.window)
        size = 1 << self.window
        table: list[list[Mpz]] = []
        g = base % modulus
        for _ in range(self.windows):
            row = [_mpz(1), g]
            for _ in range(size - 2):
                row.append(row[-1] * g % modulus)
            table.append(row)
            g = row[-1] * g % modulus  # g^(2^w)
        self.table = table

    def digits(self, count: int) -> list[list[int]]:
        """Fresh uniform exponents of ``windows * window`` bits, as base-``2^window`` digit lists."""
        w, k = self.window, self.windows
        if w == 8:
            raw = np.frombuffer(secrets.token_bytes(count * k), dtype=np.uint8).astype(np.int64)
        else:
            raw = np.frombuffer(secrets.token_bytes(count * k * 2), dtype=np.uint16) & ((1 << w) - 1)
        digits: list[list[int]] = raw.reshape(count, k).tolist()
        return digits

    def powers(self, digits: Iterable[Sequence[int]]) -> list[Mpz]:
        table, mod = self.table, self.modulus
        out = []
        for ds in digits:
            acc = None
            for row, d in zip(table, ds, strict=True):
                if d:
                    acc = row[d] if acc is None else acc * row[d] % mod
            out.append(_mpz(1) if acc is None else acc)
        return out


class PublicRandomiser:
    """Randomisers ``hs^a mod n^2`` from the public key only."""

    def __init__(self, n: Mpz) -> None:
        n2 = n * n
        x = _mpz(secrets.randbelow(int(n) - 2) + 2)
        h = (-x * x) % n
        hs = _powmod(h, n, n2)
        self.fb = FixedBase(hs, n2, (int(n).bit_length() + 1) // 2)

    def make(self, count: int) -> list[Mpz]:
        return self.fb.powers(self.fb.digits(count))


class CrtRandomiser:
    """The same randomisers computed mod ``p^2`` and ``q^2`` and joined by CRT (key owner only)."""

    def __init__(self, p: Mpz, q: Mpz) -> None:
        n = p * q
        self.p2, self.q2 = p * p, q * q
        self.q2_inv = gmpy2.invert(self.q2, self.p2)
        x = _mpz(secrets.randbelow(int(n) - 2) + 2)
        h = (-x * x) % n
        bits = (int(n).bit_length() + 1) // 2
        hs_p = _powmod(h, n % (p * (p - 1)), self.p2)  # h^n mod p^2 via the order of Z_{p^2}^*
        hs_q = _powmod(h, n % (q * (q - 1)), self.q2)
        self.fp = FixedBase(hs_p, self.p2, bits, budget=_TABLE_BUDGET // 2)
        self.fq = FixedBase(hs_q, self.q2, bits, budget=_TABLE_BUDGET // 2)
        if self.fp.window != self.fq.window:  # pragma: no cover - p and q have equal length
            raise JointlyError("CRT randomiser tables disagree")

    def make(self, count: int) -> list[Mpz]:
        digits = self.fp.digits(count)
        rp = self.fp.powers(digits)
        rq = self.fq.powers(digits)
        p2, q2, k = self.p2, self.q2, self.q2_inv
        return [b + q2 * ((a - b) * k % p2) for a, b in zip(rp, rq, strict=True)]


RandomiserKey = tuple[bytes, ...]  # (b"pub", n) or (b"crt", p, q), big-endian
_LOCAL_SOURCES: OrderedDict[RandomiserKey, PublicRandomiser | CrtRandomiser] = OrderedDict()
_LOCAL_LOCK = threading.Lock()


def local_source(key: RandomiserKey) -> PublicRandomiser | CrtRandomiser:
    """This process's randomiser table for ``key`` (built once, under a lock; LRU-cached)."""
    with _LOCAL_LOCK:
        src = _LOCAL_SOURCES.get(key)
        if src is None:
            if key[0] == b"pub":
                src = PublicRandomiser(_from_bytes(key[1], "big"))
            else:
                src = CrtRandomiser(_from_bytes(key[1], "big"), _from_bytes(key[2], "big"))
            _LOCAL_SOURCES[key] = src
            while len(_LOCAL_SOURCES) > SOURCES_PER_PROCESS:
                _LOCAL_SOURCES.popitem(last=False)
        _LOCAL_SOURCES.move_to_end(key)
        return src


def forget_local_source(key: RandomiserKey) -> None:
    """Drop this process's table for ``key`` (the owner's CRT tables reveal ``p`` and ``q``)."""
    with _LOCAL_LOCK:
        _LOCAL_SOURCES.pop(key, None)


def clear_local_sources() -> None:
    with _LOCAL_LOCK:
        _LOCAL_SOURCES.clear()


def _key_modulus(key: RandomiserKey) -> tuple[Mpz, Mpz]:
    n = _from_bytes(key[1], "big")
    if key[0] == b"crt":
        n = n * _from_bytes(key[2], "big")
    return n, n * n


# -- in-process kernels (also what workers run) -------------------------------------------------
def encrypt_with(n: Mpz, n2: Mpz, ms: Sequence[int], rs: Sequence[Mpz]) -> list[Mpz]:
    """``(1 + m n) r mod n^2`` computed as ``r + n ((m r) mod n)``: one multiplication mod ``n``."""
    half = 1 << (int(n).bit_length() // 2)
    out = []
    for m, r in zip(ms, rs, strict=True):
        if not m:
            out.append(r)
        elif m < half:
            out.append((r + n * ((m * r) % n)) % n2)
        else:
            out.append((r + n * ((m * (r % n)) % n)) % n2)
    return out


def add_plain(n: Mpz, n2: Mpz, cts: Sequence[Mpz], ms: Sequence[int]) -> list[Mpz]:
    """``c (1 + m n) mod n^2`` for plaintext ``m`` (already reduced mod ``n``)."""
    return encrypt_with(n, n2, ms, cts)


def mul_pairs(n2: Mpz, a: Sequence[Mpz], b: Sequence[Mpz]) -> list[Mpz]:
    return [x * y % n2 for x, y in zip(a, b, strict=True)]


def invert_all(n2: Mpz, cts: Sequence[Mpz]) -> list[Mpz]:
    """Inverses mod ``n^2`` with Montgomery's trick: three multiplications each and one inversion."""
    size = len(cts)
    if size == 0:
        return []
    prefix = [None] * size
    acc = _mpz(1)
    for i, c in enumerate(cts):
        acc = acc * c % n2
        prefix[i] = acc
    try:
        inv = gmpy2.invert(acc, n2)
    except ZeroDivisionError:
        raise ProtocolViolation("a ciphertext shares a factor with n (not a valid ciphertext)") from None
    out: list[Mpz] = [None] * size
    for i in range(size - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % n2
        inv = inv * cts[i] % n2
    out[0] = inv
    return out


def segment_product(n2: Mpz, cts: Sequence[Mpz], seg: Sequence[int], k: int) -> list[Mpz | None]:
    """Product of ``cts[i]`` per ``seg[i]``; ``None`` for empty segments."""
    acc: list[Mpz | None] = [None] * k
    for c, s in zip(cts, seg, strict=True):
        a = acc[s]
        acc[s] = c if a is None else a * c % n2
    return acc


def segment_product_rows(n2: Mpz, cts: Sequence[Mpz], seg: Sequence[Sequence[int]], k: int) -> list[Mpz | None]:
    """Product of ``cts[i]`` into every segment of ``seg[i]`` (a row of ids); ``None`` for empty segments."""
    acc: list[Mpz | None] = [None] * k
    for c, ss in zip(cts, seg, strict=True):
        for s in ss:
            a = acc[s]
            acc[s] = c if a is None else a * c % n2
    return acc


def powmod_pairs(n2: Mpz, cts: Sequence[Mpz], exps: Sequence[int]) -> list[Mpz]:
    """``c_i^e_i mod n^2``; a negative exponent inverts (the caller made sure ``c`` is invertible)."""
    pm = _powmod
    try:
        return [pm(c, e, n2) for c, e in zip(cts, exps, strict=True)]
    except ZeroDivisionError:
        raise ProtocolViolation("a ciphertext shares a factor with n (not a valid ciphertext)") from None


def powmod_scalar(n2: Mpz, cts: Sequence[Mpz], k: int) -> list[Mpz]:
    if not cts:
        return []
    if k < 0:
        cts = invert_all(n2, cts)
        k = -k
    return list(gmpy2.powmod_base_list(list(cts), k, n2))


def pack_groups(n2: Mpz, cts: Sequence[Mpz], slot_bits: int, per: int) -> list[Mpz]:
    """Horner's rule per group of ``per``: ``c_0 * (c_1 * (...)^(2^s))^(2^s)``."""
    shift = _mpz(1) << slot_bits
    out = []
    for lo in range(0, len(cts), per):
        group = cts[lo : lo + per]
        acc = group[-1]
        for c in reversed(group[:-1]):
            acc = _powmod(acc, shift, n2) * c % n2
        out.append(acc)
    return out


def decrypt_crt(p: Mpz, q: Mpz, cts: Sequence[Mpz]) -> list[Mpz]:
    """Plaintexts in ``[0, n)``: ``m_p = L_p(c^(p-1) mod p^2) h_p mod p``, same for ``q``, joined by CRT.

    With ``g = n + 1``, ``g^(p-1) = 1 + (p-1) n mod p^2``, so ``h_p = L_p(1 + (p-1) n)^-1 mod p``.
    """
    if not cts:
        return []
    p2, q2, n = p * p, q * q, p * q
    hp = gmpy2.invert(((1 + (p - 1) * n) % p2 - 1) // p, p)
    hq = gmpy2.invert(((1 + (q - 1) * n) % q2 - 1) // q, q)
    p_inv_q = gmpy2.invert(p, q)
    xs = gmpy2.powmod_base_list(list(cts), p - 1, p2)
    ys = gmpy2.powmod_base_list(list(cts), q - 1, q2)
    out = []
    for x, y in zip(xs, ys, strict=True):
        mp = (x - 1) // p * hp % p
        mq = (y - 1) // q * hq % q
        out.append(mp + ((mq - mp) * p_inv_q % q) * p)
    return out


# -- multi-exponentiation (dot products) --------------------------------------------------------
def _bucket_cost(rows: int, bits: int) -> tuple[float, int]:
    best = (math.inf, 1)
    for c in range(1, 17):
        cost = math.ceil(bits / c) * (rows + (1 << (c + 1))) + bits
        best = min(best, (cost, c))
    return best


def _table_cost(rows: int, cols: int, bits: int) -> tuple[float, int]:
    best = (math.inf, 1)
    for w in range(1, 11):
        k = math.ceil(bits / w)
        cost = rows * (k * ((1 << w) - 2 + w) + cols * k)
        best = min(best, (cost, w))
    return best


def multiexp_cost(rows: int, cols: int, bits: int) -> float:
    """Estimated mulmods of :func:`multiexp` (for the parallel decision)."""
    bits = max(bits, 1)
    return min(
        cols * _bucket_cost(rows, bits)[0] + 8 * cols,
        _table_cost(rows, cols, bits)[0] + 8 * cols,
        rows * cols * 1.2 * bits,
    )


def multiexp(n2: Mpz, bases: Sequence[Mpz], exps: np.ndarray) -> list[tuple[Mpz, Mpz]]:
    """For each column ``j``: ``(prod_{e>0} b_i^e, prod_{e<0} b_i^-e)`` with ``e = exps[i, j]`` (int64).

    Picks per call the cheapest of Pippenger's bucket method per column (many rows),
    per-row fixed-base tables shared by all columns (many columns) and plain powmods.
    """
    rows, cols = exps.shape
    if rows == 0 or cols == 0:
        return [(_mpz(1), _mpz(1))] * cols
    mags = np.abs(exps).astype(np.uint64)
    bits = max(int(mags.max()).bit_length(), 1)
    bucket, c = _bucket_cost(rows, bits)
    table, w = _table_cost(rows, cols, bits)
    plain = rows * cols * 1.2 * bits
    if plain <= min(bucket * cols, table):
        return _multiexp_plain(n2, bases, exps)
    if bucket * cols <= table:
        return [_multiexp_buckets(n2, bases, mags[:, j], exps[:, j] < 0, bits, c) for j in range(cols)]
    return _multiexp_tables(n2, bases, mags, exps < 0, bits, w)


def _multiexp_plain(n2: Mpz, bases: Sequence[Mpz], exps: np.ndarray) -> list[tuple[Mpz, Mpz]]:
    pm = _powmod
    out = []
    for j in range(exps.shape[1]):
        pos, neg = _mpz(1), _mpz(1)
        for b, e in zip(bases, exps[:, j].tolist(), strict=True):
            if e > 0:
                pos = pos * pm(b, e, n2) % n2
            elif e < 0:
                neg = neg * pm(b, -e, n2) % n2
        out.append((pos, neg))
    return out


def _aggregate(n2: Mpz, buckets: list[Mpz | None]) -> Mpz | None:
    """``prod_d B_d^d`` by running products (``2 * len`` multiplications at most)."""
    running = total = None
    for d in range(len(buckets) - 1, 0, -1):
        b = buckets[d]
        if b is not None:
            running = b if running is None else running * b % n2
        if running is not None:
            total = running if total is None else total * running % n2
    return total


def _multiexp_buckets(
    n2: Mpz, bases: Sequence[Mpz], mags: np.ndarray, negative: np.ndarray, bits: int, c: int
) -> tuple[Mpz, Mpz]:
    mask = (1 << c) - 1
    windows = math.ceil(bits / c)
    results = []
    for sign_rows in (np.flatnonzero(~negative & (mags > 0)), np.flatnonzero(negative)):
        acc = None
        sub = mags[sign_rows]
        picked = [bases[i] for i in sign_rows.tolist()]
        for win in range(windows - 1, -1, -1):
            if acc is not None:
                acc = _powmod(acc, 1 << c, n2)
            digits = ((sub >> np.uint64(win * c)) & np.uint64(mask)).tolist()
            buckets: list[Mpz | None] = [None] * (mask + 1)
            for b, d in zip(picked, digits, strict=True):
                if d:
                    cur = buckets[d]
                    buckets[d] = b if cur is None else cur * b % n2
            total = _aggregate(n2, buckets)
            if total is not None:
                acc = total if acc is None else acc * total % n2
        results.append(_mpz(1) if acc is None else acc)
    return results[0], results[1]


def _multiexp_tables(
    n2: Mpz, bases: Sequence[Mpz], mags: np.ndarray, negative: np.ndarray, bits: int, w: int
) -> list[tuple[Mpz, Mpz]]:
    rows, cols = mags.shape
    k = math.ceil(bits / w)
    mask = np.uint64((1 << w) - 1)
    pos: list[Mpz | None] = [None] * cols
    neg: list[Mpz | None] = [None] * cols
    for i in range(rows):
        row_mags = mags[i]
        live = np.flatnonzero(row_mags)
        if not len(live):
            continue
        table = _row_table(bases[i], n2, w, k)
        digits = np.stack([(row_mags[live] >> np.uint64(win * w)) & mask for win in range(k)], axis=1).tolist()
        neg_row = negative[i, live].tolist()
        for j, ds, is_neg in zip(live.tolist(), digits, neg_row, strict=True):
            acc = None
            for trow, d in zip(table.table, ds, strict=True):
                if d:
                    acc = trow[d] if acc is None else acc * trow[d] % n2
            if acc is None:
                continue
            target = neg if is_neg else pos
            cur = target[j]
            target[j] = acc if cur is None else cur * acc % n2
    one = _mpz(1)
    return [(one if a is None else a, one if b is None else b) for a, b in zip(pos, neg, strict=True)]


class _RowTable:
    __slots__ = ("table",)

    def __init__(self, table: list[list[Mpz]]) -> None:
        self.table = table


def _row_table(base: Mpz, n2: Mpz, w: int, k: int) -> Any:
    size = 1 << w
    table = []
    g = base
    for _ in range(k):
        row = [_mpz(1), g]
        for _ in range(size - 2):
            row.append(row[-1] * g % n2)
        table.append(row)
        g = row[-1] * g % n2
    return _RowTable(table)


# -- worker entry points (flat bytes in, flat bytes out) ----------------------------------------
def w_randomisers(key: RandomiserKey, count: int, width: int) -> bytes:
    return b"".join([r.to_bytes(width, "big") for r in local_source(key).make(count)])


def w_encrypt(key: RandomiserKey, m_blob: bytes, m_width: int, width: int) -> bytes:
    n, n2 = _key_modulus(key)
    ms = blob_to_ints(m_blob, m_width)
    rs = local_source(key).make(len(ms))
    return b"".join([c.to_bytes(width, "big") for c in encrypt_with(n, n2, ms, rs)])


def _unpack_operand(blob: bytes, width: int, idx: bytes | None) -> list[Mpz]:
    base = from_blob(blob, width)
    if idx is None:
        return base
    return [base[i] for i in np.frombuffer(idx, dtype=np.int64).tolist()]


def w_decrypt(p: bytes, q: bytes, blob: bytes, width: int, idx: bytes | None) -> bytes:
    pm, qm = _from_bytes(p, "big"), _from_bytes(q, "big")
    out_width = ((pm * qm).bit_length() + 7) // 8
    return b"".join([m.to_bytes(out_width, "big") for m in decrypt_crt(pm, qm, _unpack_operand(blob, width, idx))])


def w_segment(n2: bytes, blob: bytes, width: int, idx: bytes | None, seg: bytes, k: int, cols: int = 0) -> bytes:
    """Segment products of a chunk; ``seg`` holds int64 ids, one per element (``cols == 0``) or ``cols`` each."""
    ids = np.frombuffer(seg, dtype=np.int64)
    cts = _unpack_operand(blob, width, idx)
    if cols:
        acc = segment_product_rows(_from_bytes(n2, "big"), cts, ids.reshape(-1, cols).tolist(), k)
    else:
        acc = segment_product(_from_bytes(n2, "big"), cts, ids.tolist(), k)
    zero = bytes(width)
    return b"".join([zero if a is None else a.to_bytes(width, "big") for a in acc])


def w_powmod_pairs(n2: bytes, blob: bytes, width: int, idx: bytes | None, exps: bytes, e_width: int) -> bytes:
    es = [int.from_bytes(exps[i : i + e_width], "big", signed=True) for i in range(0, len(exps), e_width)]
    out = powmod_pairs(_from_bytes(n2, "big"), _unpack_operand(blob, width, idx), es)
    return b"".join([c.to_bytes(width, "big") for c in out])


def w_powmod_scalar(n2: bytes, blob: bytes, width: int, idx: bytes | None, k: int) -> bytes:
    out = powmod_scalar(_from_bytes(n2, "big"), _unpack_operand(blob, width, idx), k)
    return b"".join([c.to_bytes(width, "big") for c in out])


def w_pack(n2: bytes, blob: bytes, width: int, idx: bytes | None, slot_bits: int, per: int) -> bytes:
    out = pack_groups(_from_bytes(n2, "big"), _unpack_operand(blob, width, idx), slot_bits, per)
    return b"".join([c.to_bytes(width, "big") for c in out])


def w_multiexp(n2: bytes, blob: bytes, width: int, idx: bytes | None, exps: bytes, cols: int) -> bytes:
    bases = _unpack_operand(blob, width, idx)
    mat = np.frombuffer(exps, dtype=np.int64).reshape(len(bases), cols)
    out = multiexp(_from_bytes(n2, "big"), bases, mat)
    return b"".join([a.to_bytes(width, "big") + b.to_bytes(width, "big") for a, b in out])
