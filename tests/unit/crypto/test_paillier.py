"""Paillier vectors against plain arithmetic; keys, overflow, wire checks and the worker pool."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.channel.codec import decode, encode
from jointly.crypto import _paillier_engine as eng
from jointly.crypto import _paillier_pool as runner
from jointly.crypto import paillier
from jointly.crypto.encoding import unpack_slots
from jointly.crypto.paillier import (
    EncryptedVector,
    PaillierPrivateKey,
    PaillierPublicKey,
    WireCiphertexts,
    generate_paillier_keypair,
)
from jointly.errors import ConfigError, KeyMismatch, ProtocolViolation

BITS = 512
PK, SK = generate_paillier_keypair(BITS, allow_unsafe_key_size=True)
PK2, SK2 = generate_paillier_keypair(BITS, allow_unsafe_key_size=True)
LIM = PK.max_int

ints = st.integers(min_value=-(2**120), max_value=2**120)
huge = st.integers(min_value=-(LIM // 4), max_value=LIM // 4)
small = st.integers(min_value=-(2**20), max_value=2**20)
prop = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True)
def _one_worker() -> Iterator[None]:
    before = runner.SETTINGS.workers
    paillier.set_workers(1)
    yield
    paillier.set_workers(before)


def enc(values: list[int]) -> EncryptedVector:
    return PK.encrypt_ints(np.array(values, dtype=object))


def dec(ev: EncryptedVector) -> list[int]:
    return SK.decrypt_ints(ev).tolist()


@st.composite
def two_lists(draw: st.DrawFn, elems: st.SearchStrategy[int] = huge) -> tuple[list[int], list[int]]:
    size = draw(st.integers(0, 8))
    return (
        draw(st.lists(elems, min_size=size, max_size=size)),
        draw(st.lists(elems, min_size=size, max_size=size)),
    )


# -- arithmetic vs plain ints -----------------------------------------------------------------
@prop
@given(two_lists())
def test_add_sub_neg(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    ea, eb = enc(a), enc(b)
    assert dec(ea + eb) == [x + y for x, y in zip(a, b, strict=True)]
    assert dec(ea - eb) == [x - y for x, y in zip(a, b, strict=True)]
    assert dec(-ea) == [-x for x in a]
    plain = np.array(b, dtype=object)
    assert dec(ea + plain) == [x + y for x, y in zip(a, b, strict=True)]
    assert dec(plain + ea) == [x + y for x, y in zip(a, b, strict=True)]
    assert dec(ea - plain) == [x - y for x, y in zip(a, b, strict=True)]
    assert dec(plain - ea) == [y - x for x, y in zip(a, b, strict=True)]
    assert dec(ea + 7) == [x + 7 for x in a]
    assert dec(7 - ea) == [7 - x for x in a]


@prop
@given(two_lists(ints), st.integers(-(2**100), 2**100))
def test_scalar_and_elementwise_mul(pair: tuple[list[int], list[int]], k: int) -> None:
    a, b = pair
    ea = enc(a)
    assert dec(ea * k) == [x * k for x in a]
    assert dec(k * ea) == [x * k for x in a]
    assert dec(ea * np.array(b, dtype=object)) == [x * y for x, y in zip(a, b, strict=True)]
    small_b = np.array([y % 1000 - 500 for y in b], dtype=np.int64)
    assert dec(ea * small_b) == [x * int(y) for x, y in zip(a, small_b, strict=True)]
    assert dec(ea * 0) == [0] * len(a)


@prop
@given(st.lists(huge.map(lambda v: v // 64), max_size=40), st.integers(1, 6), st.data())
def test_sum_and_segment_sum(a: list[int], k: int, data: st.DataObject) -> None:
    seg = data.draw(st.lists(st.integers(0, k - 1), min_size=len(a), max_size=len(a)))
    ea = enc(a)
    assert dec(ea.sum()) == [sum(a)]
    want = [sum(x for x, s in zip(a, seg, strict=True) if s == j) for j in range(k)]
    assert dec(ea.segment_sum(np.array(seg, dtype=np.int64), k)) == want


@prop
@given(st.integers(0, 12), st.integers(1, 4), st.data())
def test_dot_int_matrix(rows: int, cols: int, data: st.DataObject) -> None:
    a = data.draw(st.lists(ints, min_size=rows, max_size=rows))
    mat = np.array(
        data.draw(st.lists(st.lists(small, min_size=cols, max_size=cols), min_size=rows, max_size=rows)),
        dtype=np.int64,
    ).reshape(rows, cols)
    want = [sum(x * int(mat[i, j]) for i, x in enumerate(a)) for j in range(cols)]
    assert dec(enc(a).dot(mat)) == want


@prop
@given(st.lists(small, min_size=1, max_size=30), st.data())
def test_take_getitem_concat(a: list[int], data: st.DataObject) -> None:
    ea = enc(a)
    idx = data.draw(st.lists(st.integers(-len(a), len(a) - 1), max_size=10))
    assert dec(ea.take(np.array(idx, dtype=np.int64))) == [a[i] for i in idx]
    assert dec(ea[np.array(idx, dtype=np.int64)]) == [a[i] for i in idx]
    i = data.draw(st.integers(-len(a), len(a) - 1))
    assert dec(ea[i]) == [a[i]]
    lo, hi = sorted(data.draw(st.lists(st.integers(0, len(a)), min_size=2, max_size=2)))
    assert dec(ea[lo:hi]) == a[lo:hi]
    assert dec(ea[::2]) == a[::2]
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a))))
    assert dec(ea[mask]) == [x for x, m in zip(a, mask, strict=True) if m]
    assert dec(EncryptedVector.concat([ea[:lo], ea[lo:], ea])) == a + a


@prop
@given(st.integers(1, 40), st.integers(1, 5), st.data())
def test_pack_slots_homomorphic(slot_bits: int, per: int, data: st.DataObject) -> None:
    size = data.draw(st.integers(0, 11))
    a = data.draw(st.lists(st.integers(0, 2**slot_bits - 1), min_size=size, max_size=size))
    packed = enc(a).pack_slots(slot_bits, per)
    assert len(packed) == -(-size // per)
    padded = a + [0] * (-size % per)
    cols = unpack_slots(SK.decrypt_ints(packed), slot_bits, per) if size else []
    for g in range(len(packed)):
        assert [int(c[g]) for c in cols] == padded[g * per : (g + 1) * per]


def test_pack_slots_that_do_not_fit_raise() -> None:
    with pytest.raises(OverflowError):
        enc([1, 2]).pack_slots(BITS // 2, 2)


# -- fixed point ------------------------------------------------------------------------------
@prop
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=8),
    st.floats(-100, 100, allow_nan=False),
)
def test_floats_fixed_point(xs: list[float], s: float) -> None:
    x = np.array(xs)
    ev = PK.encrypt(x)
    tol = 2.0**-39
    assert ev.frac_bits == 40
    np.testing.assert_allclose(SK.decrypt(ev), x, rtol=0, atol=tol)
    np.testing.assert_allclose(SK.decrypt(ev + x), 2 * x, rtol=0, atol=2 * tol)
    np.testing.assert_allclose(SK.decrypt(ev - 0.5), x - 0.5, rtol=0, atol=2 * tol)
    prod = ev * s
    assert prod.frac_bits == 80
    np.testing.assert_allclose(SK.decrypt(prod), x * s, rtol=0, atol=tol * (abs(s) + 1e6))
    np.testing.assert_allclose(SK.decrypt(ev * x), x * x, rtol=0, atol=tol * 2e6)
    # mixing fractional bits aligns them upwards
    mixed = prod + ev
    assert mixed.frac_bits == 80
    np.testing.assert_allclose(SK.decrypt(mixed), x * s + x, rtol=0, atol=tol * (abs(s) + 2e6))
    mat = np.array([[1.5, -2.0]] * len(xs))
    np.testing.assert_allclose(SK.decrypt(ev.dot(mat)), x @ mat, rtol=0, atol=tol * 4 * len(xs) * 1e6)


def test_ints_vector_plus_floats_aligns() -> None:
    ev = PK.encrypt_ints([1, 2])
    out = ev + np.array([0.5, 0.25])
    assert out.frac_bits == 40
    assert SK.decrypt(out).tolist() == [1.5, 2.25]
    assert SK.decrypt(ev).tolist() == [1.0, 2.0]
    assert PK.encrypt([1.0], frac_bits=0).frac_bits == 0


# -- ranges and overflow ----------------------------------------------------------------------
def test_overflow_on_encrypt_and_decrypt() -> None:
    assert dec(enc([LIM, -LIM])) == [LIM, -LIM]
    with pytest.raises(OverflowError):
        enc([LIM + 1])
    with pytest.raises(OverflowError):
        enc([-LIM - 1])
    with pytest.raises(OverflowError):
        PK.encrypt([2.0 ** (BITS - 40)])
    with pytest.raises(OverflowError):  # LIM + LIM lands in the middle band
        SK.decrypt_ints(enc([LIM]) + enc([LIM]))
    with pytest.raises(OverflowError):
        SK.decrypt(enc([LIM]) * 2)


# -- keys -------------------------------------------------------------------------------------
def test_key_size_policy() -> None:
    with pytest.raises(ConfigError, match="unsafe"):
        generate_paillier_keypair(1024)
    with pytest.raises(ConfigError):
        generate_paillier_keypair(1000, allow_unsafe_key_size=True)
    with pytest.raises(ConfigError):
        generate_paillier_keypair(2000)
    pk, _ = generate_paillier_keypair(256, allow_unsafe_key_size=True)
    assert pk.n.bit_length() == 256 == pk.bits
    assert pk.nsquare == pk.n**2
    assert pk.max_int == pk.n // 3
    assert len(pk.fingerprint) == 32
    with pytest.raises(ProtocolViolation):
        PaillierPublicKey.from_wire(pk.to_wire())
    assert PaillierPublicKey.from_wire(decode(encode(pk.to_wire())), allow_unsafe_key_size=True) == pk


def test_generate_2048_bit_key() -> None:
    pk, sk = generate_paillier_keypair()
    assert pk.bits == 2048 and pk.n.bit_length() == 2048
    assert sk.decrypt(pk.encrypt([1.25, -3.5])).tolist() == [1.25, -3.5]
    assert PaillierPublicKey.from_wire(decode(encode(pk.to_wire()))) == pk


def test_public_key_from_wire_rejects_garbage() -> None:
    for bad in (
        None,
        5,
        {"n": 5},
        {"scheme": "paillier", "n": "x"},
        {"scheme": "paillier", "n": -3},
        {"scheme": "paillier", "n": PK.n, "extra": 1},
        {"scheme": "paillier", "n": PK.n + 1},
    ):
        with pytest.raises(ProtocolViolation):
            PaillierPublicKey.from_wire(bad, allow_unsafe_key_size=True)


def test_private_key_is_not_leaked() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(SK)
    assert str(SK.public_key.n) not in repr(SK)
    stored = SK.to_private_dict()
    again = PaillierPrivateKey.from_private_dict(stored, allow_unsafe_key_size=True)
    assert again.decrypt_ints(enc([5, -6])).tolist() == [5, -6]
    with pytest.raises(ConfigError):
        PaillierPrivateKey.from_private_dict({**stored, "p": 7}, allow_unsafe_key_size=True)


def test_mixing_keys_raises() -> None:
    a, b = enc([1]), PK2.encrypt_ints([1])
    with pytest.raises(KeyMismatch):
        _ = a + b
    with pytest.raises(KeyMismatch):
        EncryptedVector.concat([a, b])
    with pytest.raises(KeyMismatch):
        SK2.decrypt(a)
    with pytest.raises(KeyMismatch):
        EncryptedVector.from_wire(PK2, a.to_wire())


def test_no_truth_value_and_no_ct_times_ct() -> None:
    ev = enc([0])
    with pytest.raises(TypeError):
        bool(ev)
    with pytest.raises(TypeError):
        _ = ev * ev
    with pytest.raises(TypeError):
        list(ev)


# -- randomness -------------------------------------------------------------------------------
def test_randomised_and_rerandomize() -> None:
    a, b = enc([42, 42]), enc([42, 42])
    cts = [int(c) for c in a._c] + [int(c) for c in b._c]
    assert len(set(cts)) == 4
    r = a.rerandomize()
    assert set(map(int, r._c)).isdisjoint(map(int, a._c))
    assert dec(r) == [42, 42]
    # empty segments are fresh encryptions of zero, not the trivial ciphertext 1
    out = a.segment_sum(np.array([0, 0]), 3)
    assert dec(out) == [84, 0, 0] and int(out._c[1]) != 1 and out._c[1] != out._c[2]


# -- wire -------------------------------------------------------------------------------------
@prop
@given(st.lists(huge, max_size=10), st.integers(0, 60))
def test_wire_roundtrip(a: list[int], frac_bits: int) -> None:
    ev = enc(a)
    ev.frac_bits = frac_bits
    data = encode(ev.to_wire())
    assert len(data) <= len(a) * PK.ciphertext_bytes + 120
    back = EncryptedVector.from_wire(PK, decode(data))
    assert back.frac_bits == frac_bits
    assert dec(back) == a


def test_from_wire_rejects_bad_ciphertexts() -> None:
    w = enc([1, 2]).to_wire()
    width = PK.ciphertext_bytes
    zero = WireCiphertexts(w.fingerprint, 0, 2, bytes(width) + w.data[width:])
    with pytest.raises(ProtocolViolation, match="outside"):
        EncryptedVector.from_wire(PK, zero)
    too_big = WireCiphertexts(w.fingerprint, 0, 1, PK.nsquare.to_bytes(width, "big"))
    with pytest.raises(ProtocolViolation, match="outside"):
        EncryptedVector.from_wire(PK, too_big)
    with pytest.raises(ProtocolViolation):
        EncryptedVector.from_wire(PK, WireCiphertexts(w.fingerprint, 0, 3, w.data))
    with pytest.raises(ProtocolViolation):
        EncryptedVector.from_wire(PK, {"data": w.data})
    with pytest.raises(ProtocolViolation):
        EncryptedVector.from_wire(PK, WireCiphertexts(w.fingerprint, -1, 2, w.data))
    with pytest.raises(KeyMismatch):
        EncryptedVector.from_wire(PK, WireCiphertexts(b"x" * 32, 0, 2, w.data))


# -- key owner's CRT encryption, randomiser pool, engine paths --------------------------------
@prop
@given(st.lists(huge, max_size=12))
def test_crt_encryption_matches_public(a: list[int]) -> None:
    by_owner = SK.encrypt_ints(np.array(a, dtype=object))
    assert dec(by_owner) == a == dec(enc(a))
    assert SK.decrypt(SK.encrypt([0.5, -1.25])).tolist() == [0.5, -1.25]
    # owner's ciphertexts are ordinary ones: they mix with public ones and cross the wire
    assert dec(by_owner + enc(a)) == [2 * x for x in a]
    assert dec(EncryptedVector.from_wire(PK, decode(encode(by_owner.to_wire())))) == a


def test_randomiser_pool_hands_each_out_once() -> None:
    pk, sk = generate_paillier_keypair(256, allow_unsafe_key_size=True)
    assert pk.warm_up(50, timeout=30) >= 50
    cts = [int(c) for c in pk.encrypt_ints([7] * 80)._c]  # 50+ from the pool, the rest made now
    assert len(set(cts)) == 80
    assert sk.decrypt_ints(pk.encrypt_ints([7] * 3)).tolist() == [7, 7, 7]
    assert sk.warm_up(10, timeout=30) >= 10
    paillier.set_precompute(0)
    try:
        assert pk.warm_up(10) == 0
        assert sk.decrypt_ints(pk.encrypt_ints([1, 2])).tolist() == [1, 2]
    finally:
        paillier.set_precompute(1 << 16)
    with pytest.raises(ConfigError):
        paillier.set_precompute(-1)
    with pytest.raises(ConfigError):
        paillier.set_workers(0)


def test_multiexp_strategies_agree() -> None:
    rng = np.random.default_rng(7)
    n2 = eng._mpz(PK.nsquare)
    bases = [c for c in enc([int(v) for v in rng.integers(-1000, 1000, size=9)])._c]
    exps = rng.integers(-(2**40), 2**40, size=(9, 4))
    exps[0, :] = 0
    exps[:, 1] = np.abs(exps[:, 1])
    mags, neg = np.abs(exps).astype(np.uint64), exps < 0
    bits = int(mags.max()).bit_length()
    plain = eng._multiexp_plain(n2, bases, exps)
    tables = eng._multiexp_tables(n2, bases, mags, neg, bits, 5)
    buckets = [eng._multiexp_buckets(n2, bases, mags[:, j], neg[:, j], bits, 6) for j in range(4)]
    assert plain == tables == buckets


def test_dot_shapes_and_big_multipliers() -> None:
    rng = np.random.default_rng(3)
    a = [int(v) for v in rng.integers(-(10**6), 10**6, size=40)]
    ea = enc(a)
    wide = rng.integers(-50, 50, size=(40, 300))  # per-row tables
    assert dec(ea.dot(wide)) == [sum(x * int(wide[i, j]) for i, x in enumerate(a)) for j in range(300)]
    tall = rng.integers(-(2**30), 2**30, size=(40, 1))
    assert dec(ea.dot(tall[:, 0])) == [sum(x * int(tall[i, 0]) for i, x in enumerate(a))]
    big = np.array([[2**70 + i] for i in range(40)], dtype=object)  # beyond int64: plain powmods
    assert dec(ea.dot(big)) == [sum(x * (2**70 + i) for i, x in enumerate(a))]
    zero = ea.dot(np.zeros((40, 2), dtype=np.int64))
    assert dec(zero) == [0, 0] and 1 not in [int(c) for c in zero._c]
    assert dec(enc([]).dot(np.zeros((0, 3)))) == [0, 0, 0]
    with pytest.raises(ValueError):
        ea.dot(np.zeros((39, 2)))


def test_two_workers_match_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pooled path, forced on small inputs, gives the in-process results."""
    rng = np.random.default_rng(11)
    a = [int(v) for v in rng.integers(-(2**40), 2**40, size=37)]
    seg = rng.integers(0, 5, size=111)
    picks = rng.integers(0, 37, size=111)
    mat = rng.integers(-(2**20), 2**20, size=(37, 3))
    mults = rng.integers(-(2**30), 2**30, size=37)
    small_vals = [int(v) for v in rng.integers(0, 2**12, size=37)]
    seg_rows = rng.integers(0, 40, size=(37, 3)).astype(np.int32)  # 3 segments per element, some left empty

    def run() -> list[list[int]]:
        ev = enc(a)
        received = EncryptedVector.from_wire(PK, decode(encode(ev.to_wire())))  # rows, not ints
        picked = received.take(picks)
        packed = enc(small_vals).pack_slots(16, 4)
        return [
            dec(ev),
            SK.decrypt_ints(SK.encrypt_ints(np.array(a, dtype=object))).tolist(),
            dec(picked.segment_sum(seg, 6)),
            dec(received.dot(mat)),
            dec(ev * mults),
            dec(ev * -3),
            [int(v) for col in unpack_slots(SK.decrypt_ints(packed), 16, 4) for v in col],
            dec(received.take(np.arange(36, -1, -1)).segment_sum(seg_rows[::-1], 40)),
        ]

    paillier.set_workers(1)
    expected = run()
    monkeypatch.setattr(runner, "_PARALLEL_MIN_UNITS", 0.0)
    monkeypatch.setattr(runner, "_CHUNKS_PER_WORKER", 2)
    paillier.set_workers(2)
    assert run() == expected
    monkeypatch.setattr(runner, "MAX_CHUNK_BYTES", 5 * PK.ciphertext_bytes)  # many small jobs, same results
    assert run() == expected
    assert expected[0] == a and expected[1] == a
    assert expected[2] == [sum(a[p] for p, s in zip(picks, seg, strict=True) if s == k) for k in range(6)]
    assert expected[3] == [sum(x * int(mat[i, j]) for i, x in enumerate(a)) for j in range(3)]
    assert expected[7] == [sum(x * int(np.count_nonzero(seg_rows[i] == k)) for i, x in enumerate(a)) for k in range(40)]


def test_chunk_bounds_cap() -> None:
    assert runner.chunk_bounds(10, 1) == [(0, 4), (4, 8), (8, 10)]
    assert runner.chunk_bounds(10, 1, max_chunk=2) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert runner.chunk_bounds(10, 1, min_chunk=5, max_chunk=2) == [(0, 5), (5, 10)]  # the minimum wins
    assert runner.chunk_bounds(0, 2, max_chunk=3) == []


def test_segment_sum_rows_and_empty_segments() -> None:
    a = [5, -7, 11]
    ev = enc(a)
    seg = np.array([[0, 2], [2, 2], [0, 3]])
    assert dec(ev.segment_sum(seg, 5)) == [16, 0, -9, 11, 0]
    fresh = ev.segment_sum(seg, 5)
    trivial = ev.segment_sum(seg, 5, fresh_empty=False)
    assert dec(trivial) == [16, 0, -9, 11, 0]
    one = trivial.to_wire().data[PK.ciphertext_bytes : 2 * PK.ciphertext_bytes]
    assert int.from_bytes(one, "big") == 1  # the trivial encryption of 0, for a caller that re-randomises
    assert int.from_bytes(fresh.to_wire().data[PK.ciphertext_bytes : 2 * PK.ciphertext_bytes], "big") != 1
    for bad in (np.array([[0, 5]] * 3), np.array([[0, 1]] * 2), np.zeros((3, 1, 1), dtype=np.int64)):
        with pytest.raises(ValueError, match="segment_ids"):
            ev.segment_sum(bad, 5)


def test_wire_blocks_roundtrip_and_checks() -> None:
    a = list(range(-5, 6))
    ev = enc(a)
    blocks = list(ev.to_wire_blocks(4))
    assert [b.count for b in blocks] == [4, 4, 3]
    wire = [decode(encode(b)) for b in blocks]
    joined = EncryptedVector.from_wire_blocks(PK, iter(wire), len(a))
    assert dec(joined) == a
    assert dec(EncryptedVector.from_wire_blocks(PK, ev.take(np.arange(10, -1, -1)).to_wire_blocks(3), 11)) == a[::-1]
    empty = list(ev[:0].to_wire_blocks(8))
    assert len(empty) == 1 and dec(EncryptedVector.from_wire_blocks(PK, empty, 0)) == []
    with pytest.raises(ProtocolViolation, match="expected 12"):
        EncryptedVector.from_wire_blocks(PK, wire, 12)
    with pytest.raises(ProtocolViolation, match="more than"):
        EncryptedVector.from_wire_blocks(PK, wire, 10)
    with pytest.raises(ProtocolViolation, match="expected 0"):
        EncryptedVector.from_wire_blocks(PK, [], 0)
    scaled = PK.encrypt(np.array(a[4:], dtype=np.float64), frac_bits=3)
    with pytest.raises(ProtocolViolation, match="frac_bits"):
        EncryptedVector.from_wire_blocks(PK, [blocks[0], *scaled.to_wire_blocks(7)], 11)
    with pytest.raises(ValueError, match="block"):
        next(ev.to_wire_blocks(0))


def test_scheme_object_fits_the_seam() -> None:
    from jointly.crypto.he import AdditiveHE, HEPrivateKey, HEPublicKey, HEVector

    assert isinstance(paillier.PAILLIER, AdditiveHE)
    assert isinstance(PK, HEPublicKey) and isinstance(SK, HEPrivateKey) and isinstance(enc([1]), HEVector)
    pk = paillier.PAILLIER.public_key_from_wire(PK.to_wire(), allow_unsafe_key_size=True)
    ev = paillier.PAILLIER.vector_from_wire(pk, enc([3]).to_wire())
    assert dec(paillier.PAILLIER.concat([ev, ev])) == [3, 3]


def test_negation_rejects_non_invertible_ciphertexts() -> None:
    p = int(SK.to_private_dict()["p"])  # type: ignore[call-overload]
    width = PK.ciphertext_bytes
    w = WireCiphertexts(PK.fingerprint, 0, 2, enc([1]).to_wire().data + p.to_bytes(width, "big"))
    bad = EncryptedVector.from_wire(PK, w)  # in range, so accepted on the wire
    with pytest.raises(ProtocolViolation):
        _ = -bad


def test_owner_secrets_are_dropped_with_the_key() -> None:
    import gc

    pk, sk = generate_paillier_keypair(256, allow_unsafe_key_size=True)
    key = sk._rkey
    sk.decrypt_ints(sk.encrypt_ints([1, 2, 3]))  # builds CRT tables and a randomiser pool
    assert key in eng._LOCAL_SOURCES and key in runner._OBFUSCATION
    pool = runner._OBFUSCATION[key]
    del sk
    gc.collect()
    pk.encrypt_ints([1])  # the next call into the pool module cleans up
    assert pool._thread is not None
    pool._thread.join(timeout=30)
    assert key not in eng._LOCAL_SOURCES and key not in runner._OBFUSCATION
