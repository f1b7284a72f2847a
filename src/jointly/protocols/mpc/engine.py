"""The two-party engine: Beaver multiplication, matrix products, truncation, comparison, input and output.

Two compute parties hold additive shares over ``Z_2^64`` (:class:`~jointly.crypto.shares.SharedTensor`)
and run every operation on whole arrays, one message per round per party:

* *mul*: with a triple ``(a, b, c = ab)`` open ``d = x - a`` and ``e = y - b``; then
  ``xy = c + d b + e a + d e`` (party 0 adds the public ``d e``).  One round.
* *matmul*: the same with a matrix triple ``C = A @ B``; opens ``m k + k n`` words.
* *truncate* (after a fixed-point product): with a dealer, exact up to one unit in the last
  place: with dealer shares of a uniform ``r``, of ``(r mod 2**63) >> s`` and of the bit
  ``r >> 63``, open ``z = x + 2**62 + r`` (uniform) and correct for the carry into bit 63,
  which is linear in the shared bit since ``x + 2**62`` has a zero top bit.  Never fails
  for ``|x| < 2**62`` (ring units).  Without a dealer (Paillier triples) each party shifts its
  own share (SecureML): error at most one unit, but the result is wrong (off by
  ``2**(64 - s)``) with probability at most ``|x| / 2**63`` per element, e.g. ``2**-16`` for a
  product of two values of magnitude ``2**7`` with 16 fractional bits.  Keep values small
  in Paillier mode.
* *ltz* (``[x < 0]``): the top bit of ``x0 + x1`` where party ``i`` holds ``x_i`` in the clear:
  ``msb = x0_63 ^ x1_63 ^ carry``; the carry into bit 63 comes from a Kogge-Stone
  parallel-prefix adder over XOR-shared bit-packed words (one AND of the private inputs,
  then six levels of two ANDs; each AND is a Beaver AND triple on whole uint64 words),
  and the shared bit is made arithmetic with one Beaver product (``b0 + b1 - 2 b0 b1``).
  Eight rounds, 13 AND words + 1 triple per element.  Correct when ``|x| < 2**63``.

Security model: semi-honest compute parties that do not collude with each other (or with
the dealer).  Each party sees only uniformly random shares and opened values ``x - a``
masked by fresh uniform triples; see :mod:`.triples` for what the dealer and the Paillier
key owner see.  Sizes and shapes of everything are public.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np

from jointly.channel import Channel
from jointly.crypto.shares import DEFAULT_MPC_FRAC_BITS, SharedTensor, decode_fixed, prg_words
from jointly.errors import ConfigError, ProtocolViolation
from jointly.protocols.mpc.triples import TripleSource

U64 = np.uint64
_MASK63 = U64((1 << 63) - 1)
_OFFSET = U64(1 << 62)


class TwoPartyEngine:
    """One compute party's side of the two-party engine (implements :class:`~jointly.crypto.shares.ShareEngine`)."""

    def __init__(
        self,
        channel: Channel,
        compute: tuple[str, str],
        source: TripleSource,
        *,
        frac_bits: int = DEFAULT_MPC_FRAC_BITS,
    ) -> None:
        if len(compute) != 2 or compute[0] == compute[1]:
            raise ConfigError("the engine runs between exactly two distinct compute parties")
        if channel.party not in compute:
            raise ConfigError(f"{channel.party!r} is not a compute party")
        if not 0 < frac_bits <= 24:
            raise ConfigError(f"frac_bits must lie in (0, 24], got {frac_bits}")
        self._ch = channel
        self._idx = compute.index(channel.party)
        self._peer = compute[1 - self._idx]
        self._source = source
        self._frac = frac_bits
        self._round = 0
        self.rounds = 0  #: communication rounds so far
        self.words_sent = 0  #: uint64 words sent to the other compute party so far

    @property
    def party_index(self) -> int:
        return self._idx

    @property
    def frac_bits(self) -> int:
        return self._frac

    @property
    def peer(self) -> str:
        return self._peer

    def close(self) -> None:
        self._source.close()

    # -- exchange ---------------------------------------------------------------------------------
    def _swap(self, words: np.ndarray) -> np.ndarray:
        """Send our uint64 words, receive the peer's (same count)."""
        tag = f"x{self._round}"
        self._round += 1
        self.rounds += 1
        flat = np.ascontiguousarray(words, dtype=U64).reshape(-1)
        self.words_sent += flat.size
        self._ch.send(self._peer, tag, flat)
        got = self._ch.recv(self._peer, tag)
        if not isinstance(got, np.ndarray) or got.dtype != U64 or got.shape != flat.shape:
            raise ProtocolViolation(f"{self._peer} sent a malformed opening in round {tag}")
        return got

    def open_words(self, parts: Sequence[np.ndarray], *, xor: bool = False) -> list[np.ndarray]:
        """Open several shared uint64 arrays in one round (sum, or XOR for binary shares)."""
        flat = np.concatenate([np.asarray(p, dtype=U64).reshape(-1) for p in parts]) if parts else np.zeros(0, U64)
        other = self._swap(flat)
        total = flat ^ other if xor else flat + other
        out, at = [], 0
        for p in parts:
            out.append(total[at : at + p.size].reshape(p.shape))
            at += p.size
        return out

    # -- input / output ---------------------------------------------------------------------------
    def tensor(self, share: np.ndarray, frac_bits: int | None = None) -> SharedTensor:
        return SharedTensor(self, np.asarray(share, dtype=U64), self._frac if frac_bits is None else frac_bits)

    def reveal(self, x: SharedTensor) -> np.ndarray:
        """Open ``x`` to both compute parties (float64)."""
        (ring,) = self.open_words([x.share])
        return decode_fixed(ring, x.frac_bits)

    # -- multiplication ---------------------------------------------------------------------------
    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        shape = np.broadcast_shapes(x.shape, y.shape)
        xs = np.broadcast_to(x.share, shape).reshape(-1)
        ys = np.broadcast_to(y.share, shape).reshape(-1)
        z = self._mul_words(xs, ys).reshape(shape)
        return self._rescale_product(z, x.frac_bits, y.frac_bits)

    def mul_many(self, pairs: Sequence[tuple[SharedTensor, SharedTensor]]) -> list[SharedTensor]:
        """Several element-wise products in one round (and one truncation round)."""
        shapes = [np.broadcast_shapes(x.shape, y.shape) for x, y in pairs]
        xs = np.concatenate([np.broadcast_to(x.share, s).reshape(-1) for (x, _), s in zip(pairs, shapes, strict=True)])
        ys = np.concatenate([np.broadcast_to(y.share, s).reshape(-1) for (_, y), s in zip(pairs, shapes, strict=True)])
        z = self._mul_words(xs, ys)
        fx = np.concatenate([np.full(int(np.prod(s)), x.frac_bits) for (x, _), s in zip(pairs, shapes, strict=True)])
        fy = np.concatenate([np.full(int(np.prod(s)), y.frac_bits) for (_, y), s in zip(pairs, shapes, strict=True)])
        shift = np.where((fx > 0) & (fy > 0), np.minimum(fx, fy), 0)
        z = self._truncate_words(z, shift) if shift.any() else z
        out, at = [], 0
        for (x, y), s in zip(pairs, shapes, strict=True):
            n = int(np.prod(s))
            f = max(x.frac_bits, y.frac_bits) if x.frac_bits and y.frac_bits else x.frac_bits + y.frac_bits
            out.append(SharedTensor(self, z[at : at + n].reshape(s), f))
            at += n
        return out

    def _mul_words(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        n = xs.size
        a, b, c = self._source.arith(n)
        d, e = self.open_words([xs - a, ys - b])
        z = c + d * b + e * a
        if self._idx == 0:
            z += d * e
        return np.asarray(z, dtype=U64)

    def _rescale_product(self, z: np.ndarray, fx: int, fy: int) -> SharedTensor:
        prod = SharedTensor(self, z, fx + fy)
        if fx and fy:
            return self.truncate(prod, min(fx, fy))
        return prod

    def matmul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        xm = x.share if x.ndim == 2 else x.share.reshape(1, -1)
        ym = y.share if y.ndim == 2 else y.share.reshape(-1, 1)
        m, k = xm.shape
        k2, n = ym.shape
        if k != k2:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not align")
        a, b, c = self._source.matmul(m, k, n)
        am, bm = a.reshape(m, k), b.reshape(k, n)
        d, e = self.open_words([xm - am, ym - bm])
        z = c.reshape(m, n) + d @ bm + am @ e
        if self._idx == 0:
            z += d @ e
        z = np.asarray(z, dtype=U64)
        if x.ndim == 1 and y.ndim == 1:
            z = z.reshape(())
        elif x.ndim == 1:
            z = z.reshape(n)
        elif y.ndim == 1:
            z = z.reshape(m)
        return self._rescale_product(z, x.frac_bits, y.frac_bits)

    # -- truncation -------------------------------------------------------------------------------
    def truncate(self, x: SharedTensor, bits: int) -> SharedTensor:
        if not 0 <= bits <= x.frac_bits:
            raise ValueError(f"cannot drop {bits} of {x.frac_bits} fractional bits")
        if bits == 0:
            return x
        z = self._truncate_words(x.share.reshape(-1), np.asarray(bits)).reshape(x.shape)
        return SharedTensor(self, z, x.frac_bits - bits)

    def truncate_by(self, x: SharedTensor, shifts: np.ndarray) -> SharedTensor:
        """Divide each element by its own power of two ``2**shifts`` (same ``frac_bits``)."""
        z = self._truncate_words(x.share.reshape(-1), np.broadcast_to(shifts, x.shape).reshape(-1))
        return SharedTensor(self, z.reshape(x.shape), x.frac_bits)

    def _truncate_words(self, xs: np.ndarray, shift: np.ndarray) -> np.ndarray:
        s = np.asarray(shift, dtype=np.int64)
        if s.size and (s.min() < 0 or s.max() > 62):
            raise ValueError("truncation shifts must lie in [0, 62]")
        su = s.astype(U64)
        if not self._source.exact_truncation:
            if self._idx == 0:
                return np.asarray(xs >> su, dtype=U64)
            return np.asarray(U64(0) - ((U64(0) - xs) >> su), dtype=U64)
        n = xs.size
        r, rt, rh = self._source.trunc(n, s.reshape(-1) if s.size > 1 else s.reshape(1))
        y = xs + _OFFSET if self._idx == 0 else xs
        (z,) = self.open_words([y + r])
        z_top = z >> U64(63)
        z_low = z & _MASK63
        sign = U64(1) - U64(2) * z_top  # 1 or -1 (mod 2**64)
        carry = rh * sign + (z_top if self._idx == 0 else U64(0))
        out = carry * (U64(1) << (U64(63) - su)) - rt
        if self._idx == 0:
            out += (z_low >> su) - (_OFFSET >> su)
        return np.asarray(out, dtype=U64)

    # -- binary circuits --------------------------------------------------------------------------
    def and_words(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> list[np.ndarray]:
        """Several element-wise ANDs of XOR-shared uint64 words in one round."""
        sizes = [x.size for x in xs]
        x = np.concatenate([v.reshape(-1) for v in xs])
        y = np.concatenate([v.reshape(-1) for v in ys])
        a, b, c = self._source.bits(x.size)
        d, e = self.open_words([x ^ a, y ^ b], xor=True)
        z = c ^ (d & b) ^ (e & a)
        if self._idx == 0:
            z ^= d & e
        return np.split(z, np.cumsum(sizes)[:-1])

    def msb_bits(self, xs: np.ndarray) -> np.ndarray:
        """XOR shares (0/1 in uint64) of the top bit of the shared words ``xs``."""
        mine = xs & _MASK63
        zero = np.zeros_like(mine)
        # generate g = x0 & x1 (each party's own low 63 bits), propagate p = x0 ^ x1 (local)
        (g,) = self.and_words([mine if self._idx == 0 else zero], [zero if self._idx == 0 else mine])
        p = mine
        for k in (1, 2, 4, 8, 16, 32):
            sh = U64(k)
            if k == 32:
                (t,) = self.and_words([p], [g << sh])
                g = g ^ t
            else:
                t, p2 = self.and_words([p, p], [g << sh, p << sh])
                g, p = g ^ t, p2
        carry = (g >> U64(62)) & U64(1)
        return np.asarray((xs >> U64(63)) ^ carry, dtype=U64)

    def bits_to_arith(self, bits: np.ndarray) -> np.ndarray:
        """Arithmetic shares of XOR-shared bits: ``b0 + b1 - 2 b0 b1``."""
        zero = np.zeros_like(bits)
        prod = self._mul_words(bits if self._idx == 0 else zero, zero if self._idx == 0 else bits)
        return np.asarray(bits - U64(2) * prod, dtype=U64)

    def ltz(self, x: SharedTensor) -> SharedTensor:
        flat = x.share.reshape(-1)
        bits = self.msb_bits(flat)
        return SharedTensor(self, self.bits_to_arith(bits).reshape(x.shape), 0)


def share_input(
    channel: Channel, compute: tuple[str, str], owner: str, values: np.ndarray | None, *, tag: str
) -> np.ndarray | None:
    """Secret-share ring ``values`` held by ``owner``; compute parties get their share, others ``None``.

    One share is the AES-CTR expansion of a fresh 32-byte seed, so it travels as the seed: an owner that
    is a compute party sends the other one only the seed and keeps ``values - PRG(seed)``; any other owner
    sends the seed to ``compute[0]`` and ``values - PRG(seed)`` to ``compute[1]``.  Either share alone is
    uniformly random; the compute parties learn only the shape.
    """
    me = channel.party
    if me == owner:
        if values is None:
            raise ConfigError(f"{owner} owns input {tag!r} but passed none")
        ring = np.asarray(values, dtype=U64)
        seed = secrets.token_bytes(32)
        masked = np.asarray(ring.reshape(-1) - prg_words(seed, 0, ring.size), dtype=U64).reshape(ring.shape)
        if me in compute:
            channel.send(compute[1 - compute.index(me)], f"in/{tag}", [seed, list(ring.shape)])
            return masked
        channel.send(compute[0], f"in/{tag}", [seed, list(ring.shape)])
        channel.send(compute[1], f"in/{tag}", masked)
        return None
    if me not in compute:
        return None
    got = channel.recv(owner, f"in/{tag}")
    if isinstance(got, np.ndarray) and got.dtype == U64:
        return got
    if isinstance(got, list) and len(got) == 2 and isinstance(got[0], bytes) and len(got[0]) == 32:
        shape = got[1]
        if isinstance(shape, list) and all(isinstance(d, int) and 0 <= d < 1 << 40 for d in shape):
            count = int(np.prod(shape, dtype=np.int64))
            if count <= 1 << 31:
                return prg_words(got[0], 0, count).reshape(shape)
    raise ProtocolViolation(f"{owner} sent a malformed share for {tag!r}")


def reveal_to(
    channel: Channel, compute: tuple[str, str], result: Sequence[str], share: np.ndarray | None, *, tag: str
) -> np.ndarray | None:
    """Open a shared ring array to the ``result`` parties only; they get the ring values, others ``None``."""
    me = channel.party
    if me in compute:
        if share is None:
            raise ConfigError("a compute party must pass its share")
        for p in result:
            if p != me:
                channel.send(p, f"out/{tag}", np.asarray(share, dtype=U64))
    if me not in result:
        return None
    parts = []
    for p in compute:
        if p == me:
            assert share is not None
            parts.append(np.asarray(share, dtype=U64))
        else:
            got = channel.recv(p, f"out/{tag}")
            if not isinstance(got, np.ndarray) or got.dtype != U64:
                raise ProtocolViolation(f"{p} sent a malformed result share")
            parts.append(got)
    if parts[0].shape != parts[1].shape:
        raise ProtocolViolation("result shares of different shapes")
    return np.asarray(parts[0] + parts[1], dtype=U64)
