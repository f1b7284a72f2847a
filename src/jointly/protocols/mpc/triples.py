"""Correlated randomness for the two-party engine: Beaver triples, AND triples and truncation pairs.

Two sources give the compute parties the same material:

* :class:`DealerSource` + :func:`run_dealer` -- a third party (the *dealer*) deals it.
  At the start the dealer sends a 32-byte PRG seed to each compute party.  For request
  ``k`` both parties expand their seed (AES-256-CTR, nonce ``k``) into their shares of the
  random operands; party 0 also expands its share of the result, and the dealer sends
  party 1 only the correction ``c1 = c - c0`` (8 bytes per result word).  Party 0 tells the
  dealer what it needs (kind and shape: public); requests are served in order.
  Trust: the dealer knows every triple; it must not collude with a compute party (it sees
  no input and no message between the compute parties).  Semi-honest.

* :class:`PaillierSource` -- no third party: party 0 owns a Paillier key; for an
  arithmetic triple it sends ``Enc(a0), Enc(b0)``, party 1 answers
  ``Enc(a0*b1 + a1*b0 + r)`` (re-randomised, ``r`` uniform in ``[0, 2**(129 + log2 k + 40))``
  so the decrypted value hides the cross terms statistically, to ``2**-40``), and keeps
  ``-r``.  Matrix triples do the same with homomorphic dot products; AND triples bit by
  bit (one ciphertext per bit: this mode is slow and meant for small circuits).  Party 1
  sees only ciphertexts; party 0 sees masked sums.  No truncation pairs: the engine
  falls back to local probabilistic truncation (see :mod:`.engine`).

Every array is a ``np.uint64`` vector; XOR-shared words carry 64 independent bits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from jointly.channel import Channel
from jointly.channel.codec import message
from jointly.crypto.paillier import PaillierPrivateKey, PaillierPublicKey, generate_paillier_keypair
from jointly.crypto.shares import prg_words, random_words
from jointly.errors import ConfigError, ProtocolViolation

U64 = np.uint64
MAX_REQUEST_WORDS = 1 << 28  #: refuse a single request for more than 2 GiB of material
_MASK63 = U64((1 << 63) - 1)
STAT_BITS = 40  #: statistical hiding of the Paillier masks

Arrays = tuple[np.ndarray, ...]


@message("jointly.mpc.DealRequest")
@dataclass(frozen=True)
class DealRequest:
    """Party 0 asks the dealer for material ``kind`` (arith, matmul, and, trunc, stop) of ``dims``."""

    kind: str
    dims: list[int]
    shift: np.ndarray


class TripleSource(Protocol):
    """Correlated randomness, called by both compute parties in the same order."""

    exact_truncation: bool

    def arith(self, n: int) -> Arrays:
        """Shares ``(a, b, c)`` of ``n`` triples with ``c = a * b mod 2**64``."""
        ...

    def matmul(self, m: int, k: int, n: int) -> Arrays:
        """Shares of ``A (m x k)``, ``B (k x n)``, ``C = A @ B``."""
        ...

    def bits(self, n: int) -> Arrays:
        """XOR shares of ``n`` words ``a, b, c`` with ``c = a & b``."""
        ...

    def trunc(self, n: int, shift: np.ndarray) -> Arrays:
        """Shares of ``r`` (uniform), ``(r mod 2**63) >> shift`` and ``r >> 63``."""
        ...

    def close(self) -> None: ...


def _check_words(value: object, count: int, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype != U64 or value.shape != (count,):
        raise ProtocolViolation(f"{what}: expected {count} uint64 words")
    return value


def _dims_words(kind: str, dims: list[int]) -> int:
    if kind == "matmul":
        m, k, n = dims
        return m * k + k * n + m * n
    return dims[0]


# -- dealer --------------------------------------------------------------------------------------
def _expand(seed: bytes, nonce: int, sizes: list[int]) -> list[np.ndarray]:
    words = prg_words(seed, nonce, sum(sizes))
    out, at = [], 0
    for s in sizes:
        out.append(words[at : at + s])
        at += s
    return out


def _deal(kind: str, dims: list[int], shift: np.ndarray, s0: bytes, s1: bytes, k: int) -> np.ndarray:
    """The correction the dealer sends party 1 for request ``k``."""
    if kind == "arith":
        (n,) = dims
        a0, b0, c0 = _expand(s0, k, [n, n, n])
        a1, b1 = _expand(s1, k, [n, n])
        return np.asarray((a0 + a1) * (b0 + b1) - c0, dtype=U64)
    if kind == "and":
        (n,) = dims
        a0, b0, c0 = _expand(s0, k, [n, n, n])
        a1, b1 = _expand(s1, k, [n, n])
        return np.asarray(((a0 ^ a1) & (b0 ^ b1)) ^ c0, dtype=U64)
    if kind == "matmul":
        m, kk, n = dims
        a0, b0, c0 = _expand(s0, k, [m * kk, kk * n, m * n])
        a1, b1 = _expand(s1, k, [m * kk, kk * n])
        c = (a0 + a1).reshape(m, kk) @ (b0 + b1).reshape(kk, n)
        return np.asarray(c.reshape(-1) - c0, dtype=U64)
    if kind == "trunc":
        (n,) = dims
        r0, t0, h0 = _expand(s0, k, [n, n, n])
        (r1,) = _expand(s1, k, [n])
        r = r0 + r1
        t = ((r & _MASK63) >> shift.astype(U64)) - t0
        h = (r >> U64(63)) - h0
        return np.asarray(np.concatenate([t, h]), dtype=U64)
    raise ProtocolViolation(f"unknown dealer request {kind!r}")  # pragma: no cover - checked by run_dealer


def run_dealer(channel: Channel, compute: tuple[str, str]) -> int:
    """Serve the compute parties until party 0 says stop; returns how many requests were served.

    The dealer sees only the kinds and shapes of the requests (public), never an input.
    """
    s0, s1 = secrets.token_bytes(32), secrets.token_bytes(32)
    channel.send(compute[0], "seed", s0)
    channel.send(compute[1], "seed", s1)
    k = 0
    while True:
        req = channel.recv(compute[0], f"q{k}")
        if not isinstance(req, DealRequest) or req.kind not in ("arith", "and", "matmul", "trunc", "stop"):
            raise ProtocolViolation("the dealer got a malformed request")
        if req.kind == "stop":
            return k
        dims = [int(d) for d in req.dims]
        if (len(dims) != (3 if req.kind == "matmul" else 1)) or min(dims) < 0:
            raise ProtocolViolation("the dealer got a malformed request shape")
        if _dims_words(req.kind, dims) > MAX_REQUEST_WORDS:
            raise ProtocolViolation("the dealer got an oversized request")
        shift = np.asarray(req.shift, dtype=np.int64)
        if req.kind == "trunc" and (
            shift.size not in (1, dims[0]) or (shift.size and (shift.min() < 0 or shift.max() > 62))
        ):
            raise ProtocolViolation("the dealer got malformed truncation shifts")
        channel.send(compute[1], f"c{k}", _deal(req.kind, dims, shift.reshape(-1), s0, s1, k))
        k += 1


class DealerSource:
    """The compute parties' side of :func:`run_dealer`."""

    exact_truncation = True

    def __init__(self, channel: Channel, compute: tuple[str, str], dealer: str) -> None:
        self._ch = channel
        self._idx = compute.index(channel.party)
        self._dealer = dealer
        seed = channel.recv(dealer, "seed")
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise ProtocolViolation("the dealer sent a malformed seed")
        self._seed = seed
        self._k = 0

    def _request(self, kind: str, dims: list[int], sizes0: list[int], sizes1: list[int], shift: Any = 0) -> Arrays:
        k = self._k
        self._k += 1
        if self._idx == 0:
            self._ch.send(self._dealer, f"q{k}", DealRequest(kind, dims, np.asarray(shift, dtype=np.int64).reshape(-1)))
            return tuple(_expand(self._seed, k, sizes0))
        mine = _expand(self._seed, k, sizes1)
        extra = sum(sizes0) - sum(sizes1)
        corr = _check_words(self._ch.recv(self._dealer, f"c{k}"), extra, "dealer correction")
        return (*mine, *np.split(corr, np.cumsum(sizes0[len(sizes1) :])[:-1]))

    def arith(self, n: int) -> Arrays:
        return self._request("arith", [n], [n, n, n], [n, n])

    def bits(self, n: int) -> Arrays:
        return self._request("and", [n], [n, n, n], [n, n])

    def matmul(self, m: int, k: int, n: int) -> Arrays:
        return self._request("matmul", [m, k, n], [m * k, k * n, m * n], [m * k, k * n])

    def trunc(self, n: int, shift: np.ndarray) -> Arrays:
        return self._request("trunc", [n], [n, n, n], [n], shift)

    def close(self) -> None:
        if self._idx == 0:
            self._ch.send(self._dealer, f"q{self._k}", DealRequest("stop", [0], np.zeros(1, dtype=np.int64)))


# -- Paillier ------------------------------------------------------------------------------------
def _ints(words: np.ndarray, signed: bool = False) -> np.ndarray:
    vals = words.view(np.int64) if signed else words
    out = np.empty(words.shape, dtype=object)
    out.reshape(-1)[:] = vals.reshape(-1).tolist()
    return out


def _mask(count: int, bits: int) -> np.ndarray:
    """``count`` uniform integers below ``2**bits`` (object array)."""
    words = -(-bits // 64)
    raw = random_words((count, words))
    out = np.zeros(count, dtype=object)
    for j in range(words):
        out = out * (1 << 64) + _ints(raw[:, j])
    return out % (1 << bits)


def _mod64(values: np.ndarray) -> np.ndarray:
    mod = 1 << 64
    return np.array([int(v) % mod for v in values.tolist()], dtype=U64)


class PaillierSource:
    """Triples made by the two compute parties themselves with Paillier (party 0 owns the key)."""

    exact_truncation = False

    def __init__(
        self, channel: Channel, compute: tuple[str, str], *, key_bits: int = 2048, allow_unsafe_key_size: bool = False
    ) -> None:
        self._ch = channel
        self._idx = compute.index(channel.party)
        self._peer = compute[1 - self._idx]
        self._k = 0
        self._sk: PaillierPrivateKey | None = None
        if self._idx == 0:
            self._pk, self._sk = generate_paillier_keypair(key_bits, allow_unsafe_key_size=allow_unsafe_key_size)
            channel.send(self._peer, "pk", self._pk.to_wire())
        else:
            self._pk = PaillierPublicKey.from_wire(channel.recv(self._peer, "pk"), allow_unsafe_key_size=True)
            if self._pk.bits < 512 and not allow_unsafe_key_size:
                raise ConfigError("the peer's Paillier key is too small")
        if self._pk.bits < 2 * 129 + 2 * STAT_BITS + 64:
            raise ConfigError("the Paillier key is too small to hide 64-bit triple cross terms")

    def _tag(self) -> str:
        self._k += 1
        return f"p{self._k}"

    def _cross(self, left: list[np.ndarray], right_fn: Any, count: int, mask_bits: int) -> np.ndarray:
        """Party 0 sends ``Enc(left)``; party 1 returns ``right_fn(encs) + r``; returns party's share (uint64)."""
        tag = self._tag()
        if self._idx == 0:
            assert self._sk is not None
            for i, arr in enumerate(left):
                self._ch.send(self._peer, f"{tag}/e{i}", self._pk.encrypt_ints(_ints(arr)).to_wire())
            reply = self._pk_vector(self._ch.recv(self._peer, f"{tag}/r"), count)
            return _mod64(self._sk.decrypt_ints(reply))
        encs = [self._pk_vector(self._ch.recv(self._peer, f"{tag}/e{i}"), arr.size) for i, arr in enumerate(left)]
        r = _mask(count, mask_bits)
        out = (right_fn(encs) + r).rerandomize()
        self._ch.send(self._peer, f"{tag}/r", out.to_wire())
        return U64(0) - _mod64(r)

    def _pk_vector(self, msg: object, count: int) -> Any:
        from jointly.crypto.paillier import EncryptedVector

        try:
            ev = EncryptedVector.from_wire(self._pk, msg)
        except Exception as exc:
            raise ProtocolViolation(f"malformed ciphertexts from {self._peer}: {exc}") from exc
        if len(ev) != count:
            raise ProtocolViolation(f"expected {count} ciphertexts from {self._peer}, got {len(ev)}")
        return ev

    def arith(self, n: int) -> Arrays:
        a, b = random_words(n), random_words(n)
        cross = self._cross([a, b], lambda e: e[0] * _ints(b) + e[1] * _ints(a), n, 129 + STAT_BITS)
        return a, b, a * b + cross

    def matmul(self, m: int, k: int, n: int) -> Arrays:
        a, b = random_words(m * k), random_words(k * n)
        am, bm = a.reshape(m, k), b.reshape(k, n)
        bits = 129 + max(k, 1).bit_length() + STAT_BITS

        def right(e: list[Any]) -> Any:
            from jointly.crypto.paillier import EncryptedVector

            ea, eb = e
            parts = []  # (A0 @ B1)[i, :] and (A1 @ B0)[i, :], row-major m x n
            b_signed = _ints(bm, signed=True)
            a_signed_t = _ints(am.T.copy(), signed=True)
            left = [ea[i * k : (i + 1) * k].dot(b_signed) for i in range(m)]  # m vectors of n
            cols = [eb.take(np.arange(j, k * n, n)).dot(a_signed_t) for j in range(n)]  # n vectors of m
            for i in range(m):
                parts.append(left[i] + EncryptedVector.concat([cols[j][i : i + 1] for j in range(n)]))
            return EncryptedVector.concat(parts)

        cross = self._cross([a, b], right, m * n, bits)
        return a, b, np.asarray((am @ bm).reshape(-1) + cross, dtype=U64)

    def bits(self, n: int) -> Arrays:
        a, b = random_words(n), random_words(n)
        abits = np.unpackbits(a.view(np.uint8)).astype(np.int64)
        bbits = np.unpackbits(b.view(np.uint8)).astype(np.int64)
        cross = self._cross(
            [abits.astype(U64), bbits.astype(U64)],
            lambda e: e[0] * _ints(bbits.astype(U64)) + e[1] * _ints(abits.astype(U64)),
            64 * n,
            2 + STAT_BITS,
        )
        packed = np.packbits((cross & U64(1)).astype(np.uint8)).view(U64)
        return a, b, (a & b) ^ packed

    def trunc(self, n: int, shift: np.ndarray) -> Arrays:
        raise ConfigError("truncation pairs need a dealer; the engine truncates locally in Paillier mode")

    def close(self) -> None:
        return None
