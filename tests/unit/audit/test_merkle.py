"""The Merkle tree against a naive recursive transcription of RFC 9162 2.1, and proof verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from jointly.errors import ConfigError

# --- naive reference: the RFC's recursive definitions, verbatim ---------------------------------------------


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = split_point(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


# RFC 6962 / Certificate Transparency reference vectors (roots of the first 1..8 of these leaves).
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", bytes(range(0x50, 0x58))]
CT_LEAVES.append(bytes(range(0x60, 0x70)))
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashing_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert [split_point(n) for n in (2, 3, 4, 5, 8, 9, 1000)] == [1, 2, 2, 4, 4, 8, 512]


def test_certificate_transparency_vectors() -> None:
    tree = MerkleTree()
    assert tree.root() == EMPTY_ROOT
    for i, data in enumerate(CT_LEAVES):
        tree.append(data)
        assert tree.root().hex() == CT_ROOTS[i]
    bulk = MerkleTree.from_leaves(CT_LEAVES)
    assert [bulk.root(m).hex() for m in range(1, 9)] == CT_ROOTS


def test_every_small_tree_matches_the_reference() -> None:
    data = leaves(40)
    tree = MerkleTree()
    for n in range(1, len(data) + 1):
        tree.append(data[n - 1])
        d = data[:n]
        root = ref_mth(d)
        assert tree.root() == root
        assert MerkleTree.from_leaves(d).root() == root
        for m in range(n):
            path = tree.inclusion_proof(m, n)
            assert path == ref_path(m, d), (m, n)
            assert verify_inclusion(leaf_hash(d[m]), m, n, path, root)
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == ref_proof(m, d), (m, n)
            assert verify_consistency(m, n, proof, ref_mth(data[:m]), root)
    for m in range(41):
        assert tree.root(m) == ref_mth(data[:m])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_random_trees_match_the_reference(n: int, draw: st.DataObject) -> None:
    data = leaves(n)
    size = draw.draw(st.integers(1, n), label="size")
    index = draw.draw(st.integers(0, size - 1), label="index")
    old = draw.draw(st.integers(0, size), label="old")
    tree = MerkleTree.from_leaves(data)
    incremental = MerkleTree()
    incremental.extend(data)
    assert tree.leaf_hashes() == incremental.leaf_hashes()
    assert tree.root(size) == incremental.root(size) == ref_mth(data[:size])
    assert tree.inclusion_proof(index, size) == ref_path(index, data[:size])
    assert tree.consistency_proof(old, size) == ref_proof(old, data[:size])


def _flips(proof: list[bytes]) -> list[list[bytes]]:
    out = []
    for i, p in enumerate(proof):
        for pos in (0, 17, 31):
            bad = bytearray(p)
            bad[pos] ^= 0x01
            out.append([*proof[:i], bytes(bad), *proof[i + 1 :]])
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 130), st.data())
def test_tampered_inclusion_proofs_fail(n: int, draw: st.DataObject) -> None:
    data = leaves(n)
    tree = MerkleTree.from_leaves(data)
    index = draw.draw(st.integers(0, n - 1), label="index")
    proof, root, leaf = tree.inclusion_proof(index), tree.root(), tree.leaf(index)
    assert verify_inclusion(leaf, index, n, proof, root)
    for bad in _flips(proof):
        assert not verify_inclusion(leaf, index, n, bad, root)
    assert not verify_inclusion(leaf, index, n, proof[:-1], root)
    assert not verify_inclusion(leaf, index, n, [*proof, root], root)
    assert not verify_inclusion(leaf, index, n, list(reversed(proof)), root) or len(proof) < 2
    assert not verify_inclusion(leaf_hash(b"other"), index, n, proof, root)
    assert not verify_inclusion(leaf, index, n, proof, tree.root(n - 1))
    for other in {index - 1, index + 1} & set(range(n)):
        assert not verify_inclusion(leaf, other, n, proof, root)
    assert not verify_inclusion(leaf, n, n, proof, root)
    assert not verify_inclusion(leaf, -1, n, proof, root)
    # a claimed size whose proof has another length cannot verify
    for size in range(index + 1, 2 * n):
        if _path_length(index, size) != len(proof):
            assert not verify_inclusion(leaf, index, size, proof, root)


def _path_length(index: int, size: int) -> int:
    length, start, end = 0, 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            end = start + k
        else:
            start += k
        length += 1
    return length


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 130), st.data())
def test_tampered_consistency_proofs_fail(n: int, draw: st.DataObject) -> None:
    data = leaves(n)
    tree = MerkleTree.from_leaves(data)
    old = draw.draw(st.integers(1, n - 1), label="old")
    proof, root1, root2 = tree.consistency_proof(old), tree.root(old), tree.root()
    assert proof
    assert verify_consistency(old, n, proof, root1, root2)
    for bad in _flips(proof):
        assert not verify_consistency(old, n, bad, root1, root2)
    assert not verify_consistency(old, n, proof[:-1], root1, root2)
    assert not verify_consistency(old, n, [*proof, root2], root1, root2)
    assert not verify_consistency(old, n, [], root1, root2)
    assert not verify_consistency(old, n, proof, tree.root(old - 1), root2)
    assert not verify_consistency(old, n, proof, root1, tree.root(n - 1))
    # a forked history: same old prefix but one later leaf differs
    forked = MerkleTree.from_leaves([*data[:old], *[d + b"!" for d in data[old:]]])
    assert forked.root(old) == root1
    assert not verify_consistency(old, n, proof, root1, forked.root())
    assert verify_consistency(old, n, forked.consistency_proof(old), root1, forked.root())
    # a rewritten prefix is not consistent with the old head
    rewritten = MerkleTree.from_leaves([b"rewritten", *data[1:]])
    assert not verify_consistency(old, n, rewritten.consistency_proof(old), root1, rewritten.root())


def test_consistency_edge_cases() -> None:
    tree = MerkleTree.from_leaves(leaves(5))
    assert verify_consistency(0, 5, [], EMPTY_ROOT, tree.root())
    assert not verify_consistency(0, 5, [], tree.root(), tree.root())
    assert not verify_consistency(0, 5, [tree.root()], EMPTY_ROOT, tree.root())
    assert verify_consistency(5, 5, [], tree.root(), tree.root())
    assert not verify_consistency(5, 5, [tree.root()], tree.root(), tree.root())
    assert not verify_consistency(5, 5, [], tree.root(), tree.root(4))
    assert not verify_consistency(5, 4, [], tree.root(), tree.root(4))
    assert not verify_consistency(2, 5, [b"short"], tree.root(2), tree.root())
    assert not verify_consistency(2, 5, "not a list", tree.root(2), tree.root())  # type: ignore[arg-type]
    assert not verify_inclusion(b"short", 0, 5, [], tree.root())
    assert verify_inclusion(tree.leaf(0), 0, 1, [], tree.root(1))


def test_truncate_and_regrow() -> None:
    data = leaves(77)
    tree = MerkleTree.from_leaves(data)
    for size in (77, 64, 63, 33, 1, 0):
        tree.truncate(size)
        assert tree.size == size
        assert tree.root() == ref_mth(data[:size])
    tree.extend(data)
    assert tree.root() == ref_mth(data)
    assert tree.leaf_hashes() == MerkleTree.from_leaves(data).leaf_hashes()
    with pytest.raises(ConfigError):
        tree.truncate(78)


def test_bad_arguments_raise_config_error() -> None:
    tree = MerkleTree.from_leaves(leaves(6))
    with pytest.raises(ConfigError, match="out of range"):
        tree.inclusion_proof(6)
    with pytest.raises(ConfigError, match="out of range"):
        tree.inclusion_proof(0, 7)
    with pytest.raises(ConfigError, match="out of range"):
        tree.root(-1)
    with pytest.raises(ConfigError, match="old size"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ConfigError, match="32 bytes"):
        tree.append_hash(b"short")
    with pytest.raises(ConfigError, match="32 bytes"):
        MerkleTree.from_leaf_hashes([b"x" * 31])
    with pytest.raises(ConfigError):
        MerkleTree().inclusion_proof(0)


def test_bulk_build_matches_appends_on_a_larger_tree() -> None:
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5000)]
    bulk = MerkleTree.from_leaf_hashes(hashes)
    blob = MerkleTree.from_leaf_hashes(b"".join(hashes))
    step = MerkleTree()
    for h in hashes:
        step.append_hash(h)
    assert bulk.root() == blob.root() == step.root()
    for size in (1, 2, 3, 1023, 1024, 1025, 4097, 5000):
        assert bulk.root(size) == step.root(size)
        assert bulk.inclusion_proof(size - 1, size) == step.inclusion_proof(size - 1, size)
        assert verify_consistency(size, 5000, bulk.consistency_proof(size), bulk.root(size), bulk.root())
