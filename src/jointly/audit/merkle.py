"""Merkle trees, inclusion proofs and consistency proofs exactly as RFC 9162 section 2.1 defines them.

Hashing (RFC 9162 2.1.1), with SHA-256:

* the empty tree's head is ``SHA-256("")``;
* a leaf's hash is ``SHA-256(0x00 || data)``;
* an inner node's hash is ``SHA-256(0x01 || left || right)``;
* the head of ``n > 1`` leaves splits them at ``k``, the largest power of two smaller than ``n``:
  ``MTH(D[0:n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

The distinct leaf and node prefixes stop a second-preimage attack that passes an
inner node off as a leaf.  What this protects: given a tree head (size, root)
that its holder trusts, nobody can make an inclusion proof for data that is not
the leaf at that index, nor a consistency proof from a head to one that does not
extend it (both up to SHA-256 collisions).  A head itself proves nothing about
who made it: that is what the signed heads in :mod:`jointly.audit.heads` add.

:class:`MerkleTree` keeps, for every level ``k``, the hashes of all *complete*
subtrees of ``2**k`` leaves aligned on a multiple of ``2**k`` (level 0 holds the
leaf hashes), each level one contiguous ``bytearray`` of 32-byte hashes.  So an
append costs one hash per completed level (amortised < 2), and the head of the
first ``m`` leaves, any inclusion proof and any consistency proof cost
``O(log n)`` hashes: every sub-range the RFC's recursion asks for is a fold of at
most ``log2 n`` stored complete subtrees.  A million leaves take 64 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from jointly.errors import ConfigError

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a leaf holding ``data``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``): where RFC 9162 splits ``n`` leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: is ``leaf`` (a leaf *hash*) at ``index`` of the tree of ``size`` leaves with ``root``?

    Returns False (never raises) for any malformed, tampered or mismatched input.
    """
    if not _is_hash(leaf) or not _is_hash(root) or not _all_hashes(proof):
        return False
    if not (isinstance(index, int) and isinstance(size, int)) or index < 0 or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 2.1.4.2: is the tree ``(size2, root2)`` an append-only extension of ``(size1, root1)``?

    A tree is consistent with itself only with an empty proof, and every tree
    extends the empty tree (size 0, root ``SHA-256("")``) with an empty proof.
    Returns False (never raises) for any malformed, tampered or mismatched input.
    """
    if not _is_hash(root1) or not _is_hash(root2) or not _all_hashes(proof):
        return False
    if not (isinstance(size1, int) and isinstance(size2, int)) or size1 < 0 or size2 < size1:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof and root1 == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


class MerkleTree:
    """An append-only RFC 9162 Merkle tree over leaf hashes, with O(log n) heads and proofs of any prefix.

    Not thread-safe on its own: :class:`jointly.audit.ledger.Ledger` and the
    replica hold a lock around it.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """A tree over the given leaf *data* (each hashed with :func:`leaf_hash`)."""
        return cls.from_leaf_hashes([_sha256(LEAF_PREFIX + d).digest() for d in leaves])

    @classmethod
    def from_leaf_hashes(cls, hashes: Sequence[bytes] | bytes) -> MerkleTree:
        """Bulk build from leaf hashes (a sequence of 32-byte hashes, or their concatenation), level by level."""
        blob = hashes if isinstance(hashes, bytes) else b"".join(hashes)
        count = len(hashes) if not isinstance(hashes, bytes) else len(blob) // HASH_BYTES
        if len(blob) != count * HASH_BYTES:
            raise ConfigError(f"leaf hashes must be {HASH_BYTES} bytes each")
        tree = cls()
        tree._levels = [bytearray(blob)]
        level = blob
        while len(level) >= 2 * HASH_BYTES:
            pairs = len(level) // (2 * HASH_BYTES)
            level = b"".join([_sha256(NODE_PREFIX + level[i : i + 64]).digest() for i in range(0, pairs * 64, 64)])
            tree._levels.append(bytearray(level))
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) // HASH_BYTES

    def __len__(self) -> int:
        return self.size

    def append(self, data: bytes) -> int:
        """Append a leaf holding ``data``; returns its index."""
        return self.append_hash(_sha256(LEAF_PREFIX + data).digest())

    def append_hash(self, leaf: bytes) -> int:
        """Append a leaf by its hash; returns its index.  Hashes one node per level the new leaf completes."""
        if not _is_hash(leaf):
            raise ConfigError(f"a leaf hash is {HASH_BYTES} bytes")
        levels = self._levels
        index = len(levels[0]) // HASH_BYTES
        levels[0] += leaf
        n, k = index + 1, 0
        while not n & 1:
            level = levels[k]
            parent = _sha256(NODE_PREFIX + level[-64:]).digest()
            if len(levels) == k + 1:
                levels.append(bytearray())
            levels[k + 1] += parent
            n >>= 1
            k += 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaves holding each of ``leaves`` (data, not hashes)."""
        for data in leaves:
            self.append(data)

    def truncate(self, size: int) -> None:
        """Drop every leaf from index ``size`` on (used to roll back a rejected batch)."""
        if not 0 <= size <= self.size:
            raise ConfigError(f"cannot truncate a tree of {self.size} leaves to {size}")
        for k, level in enumerate(self._levels):
            del level[(size >> k) * HASH_BYTES :]
        while len(self._levels) > 1 and not self._levels[-1]:
            self._levels.pop()

    def leaf(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        self._check_index(index, self.size)
        return bytes(self._levels[0][index * HASH_BYTES : (index + 1) * HASH_BYTES])

    def leaf_hashes(self) -> bytes:
        """All leaf hashes, concatenated."""
        return bytes(self._levels[0])

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all), in O(log n) hashes."""
        size = self._check_size(size)
        return self._range(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size]): sibling hashes from the leaf up to the root."""
        size = self._check_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = split_point(end - start)
            if m < k:
                path.append(self._range(start + k, end))
                end = start + k
            else:
                path.append(self._range(start, start + k))
                start += k
                m -= k
        path.reverse()
        return path

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(size1, D[0:size2]); empty when ``size1`` is 0 or equals ``size2``."""
        size2 = self._check_size(size2)
        if not isinstance(size1, int) or not 0 <= size1 <= size2:
            raise ConfigError(f"a consistency proof needs 0 <= old size <= new size, got {size1} and {size2}")
        if size1 in (0, size2):
            return []
        path: list[bytes] = []
        start, end, m, complete = 0, size2, size1, True
        while m != end - start:
            k = split_point(end - start)
            if m <= k:
                path.append(self._range(start + k, end))
                end = start + k
            else:
                path.append(self._range(start, start + k))
                start += k
                m -= k
                complete = False
        if not complete:
            path.append(self._range(start, end))
        path.reverse()
        return path

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (``start`` aligned to the range's span)."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        parts: list[bytes] = []
        while n:
            k = n.bit_length() - 1  # the largest complete subtree first, as the RFC's split does
            width = 1 << k
            if start & (width - 1):
                raise ConfigError(f"leaf range [{start}, {end}) is not a subtree of the RFC 9162 tree")
            i = (start >> k) * HASH_BYTES
            parts.append(bytes(self._levels[k][i : i + HASH_BYTES]))
            start += width
            n -= width
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = _sha256(NODE_PREFIX + part + acc).digest()
        return acc

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= self.size:
            raise ConfigError(f"tree size {size!r} is out of range (the tree has {self.size} leaves)")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise ConfigError(f"leaf index {index!r} is out of range for a tree of {size} leaves")


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_BYTES


def _all_hashes(proof: Sequence[bytes]) -> bool:
    return isinstance(proof, (list, tuple)) and all(_is_hash(p) for p in proof)
