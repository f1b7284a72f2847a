"""Hash-to-curve onto Curve25519 (RFC 9380 vectors, curve maths) and the commutative X25519 cipher."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.crypto import ecc
from jointly.crypto.ecc import A, EcdhKey, P
from jointly.errors import ConfigError, JointlyError, ProtocolViolation

# RFC 9380, Appendix K.3: expand_message_xmd(SHA-512), DST "QUUX-V01-CS02-with-expander-SHA512-256".
XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_VECTORS = [
    (b"", 0x20, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 0x20, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (b"abcdef0123456789", 0x20, "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"),
    (
        b"",
        0x80,
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921b052b62eaed99b46f72f2ef4cc96bfaf"
        "254ebbbec091e1a3b9e4fb5e5b619d2e0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    ),
]

# RFC 9380, Appendix J.4.2: curve25519_XMD:SHA-512_ELL2_NU_, DST below.  Per message: u[0] (hash_to_field),
# Q.x (map_to_curve, before clear_cofactor) and P.x (P = 8Q), all as big-endian integers the way the RFC prints them.
H2C_DST = b"QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_NU_"
H2C_VECTORS = [
    (
        b"",
        0x608D892B641F0328523802A6603427C26E55E6F27E71A91A478148D45B5093CD,
        0x51125222DA5E763D97F3C10FCC92EA6860B9CCBBD2EB1285728F566721C1E65B,
        0x1BB913F0C9DAEFA0B3375378FFA534BDA5526C97391952A7789EB976EDFE4D08,
    ),
    (
        b"abc",
        0x46F5B22494BFEAA7F232CC8D054BE68561AF50230234D7D1D63D1D9ABECA8DA5,
        0x7D56D1E08CB0CCB92BAF069C18C49BB5A0DCD927EFF8DCF75CA921EF7F3E6EEB,
        0x7C22950B7D900FA866334262FCAEA47A441A578DF43B894B4625C9B450F9A026,
    ),
    (
        b"abcdef0123456789",
        0x235FE40C443766CE7E18111C33862D66C3B33267EFA50D50F9E8E5D252A40AAA,
        0x3FBE66B9C9883D79E8407150E7C2A1C8680BEE496C62FABE4619A72B3CABE90F,
        0x31AD08A8B0DEEB2A4D8B0206CA25F567AB4E042746F792F4B7973F3AE2096C52,
    ),
    (
        b"q128_" + b"q" * 128,
        0x001E92A544463BDA9BD04DDBE3D6EED248F82DE32F522669EFC5DDCE95F46F5B,
        0x227E0BB89DE700385D19EC40E857DB6E6A3E634B1C32962F370D26F84FF19683,
        0x027877759D155B1997D0D84683A313EB78BDB493271D935B622900459D52CEAA,
    ),
    (
        b"a512_" + b"a" * 512,
        0x1A68A1AF9F663592291AF987203393F707305C7BAC9C8D63D6A729BDC553DC19,
        0x3BCD651EE54D5F7B6013898AAB251EE8ECC0688166FCE6E9548D38472F6BD196,
        0x5FD892C0958D1A75F54C3182A18D286EFAB784E774D1E017BA2FB252998B5DC1,
    ),
]

# u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 (canonical encodings)
LOW_ORDER_U = [
    0,
    1,
    P - 1,
    0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
    0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
]


def _u_bytes(u: int) -> bytes:
    return u.to_bytes(32, "little")


def _u_int(point: bytes) -> int:
    return int.from_bytes(point.ljust(32, b"\0"), "little")  # numpy 'S' items drop trailing zero bytes


def _x_double(x: int) -> int:
    """x([2]Q) on Curve25519 from x(Q), in plain Python (independent of the code under test)."""
    num = pow(x * x - 1, 2, P)
    den = 4 * x * (x * x + A * x + 1) % P
    return num * pow(den, P - 2, P) % P


def _is_square(v: int) -> bool:
    v %= P
    return v == 0 or pow(v, (P - 1) // 2, P) == 1


@pytest.mark.parametrize(("msg", "length", "expected"), XMD_VECTORS)
def test_expand_message_xmd_matches_rfc9380_k3(msg: bytes, length: int, expected: str) -> None:
    assert ecc.expand_message_xmd(msg, XMD_DST, length).hex() == expected


@pytest.mark.parametrize(("msg", "u0", "qx", "px"), H2C_VECTORS)
def test_encode_to_curve_matches_rfc9380_j42(msg: bytes, u0: int, qx: int, px: int) -> None:
    assert ecc.hash_to_field(msg, 1, dst=H2C_DST) == [u0]
    assert ecc.map_to_curve_elligator2(u0) == qx
    assert ecc.encode_to_curve_u(msg, dst=H2C_DST) == qx
    assert _x_double(_x_double(_x_double(qx))) == px  # P = clear_cofactor(Q) = 8Q


def test_batch_hashing_matches_the_rfc_vectors() -> None:
    points = ecc.encode_to_curve_points([m for m, *_ in H2C_VECTORS], dst=H2C_DST)
    assert points.dtype == np.dtype("S32")
    assert [_u_int(p) for p in points] == [qx for _m, _u, qx, _p in H2C_VECTORS]


def test_expand_message_xmd_limits_and_long_dst() -> None:
    with pytest.raises(ValueError):
        ecc.expand_message_xmd(b"x", XMD_DST, 0)
    with pytest.raises(ValueError):
        ecc.expand_message_xmd(b"x", XMD_DST, 255 * 64 + 1)
    long_dst = b"d" * 300  # hashed as the RFC says for a DST over 255 bytes
    assert len(ecc.expand_message_xmd(b"x", long_dst, 48)) == 48
    assert ecc.expand_message_xmd(b"x", long_dst, 48) != ecc.expand_message_xmd(b"x", b"d" * 299, 48)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_hashed_points_are_on_the_curve_and_deterministic(msg: bytes) -> None:
    u = ecc.encode_to_curve_u(msg)
    assert 0 <= u < P
    assert _is_square(u**3 + A * u * u + u)
    assert ecc.is_on_curve_u(u)
    assert ecc.encode_to_curve_u(msg) == u
    assert _u_int(bytes(ecc.encode_to_curve_points([msg])[0])) == u


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=P - 1))
def test_elligator2_maps_every_field_element_onto_the_curve(u: int) -> None:
    x = ecc.map_to_curve_elligator2(u)
    assert _is_square(x**3 + A * x * x + x)
    assert ecc.map_to_curve_elligator2(-u % P) == x  # the map is even in u


def test_map_to_curve_rejects_values_outside_the_field() -> None:
    for bad in (-1, P):
        with pytest.raises(ValueError):
            ecc.map_to_curve_elligator2(bad)


def test_domain_separation_tag_changes_every_point() -> None:
    msgs = [f"id-{i}".encode() for i in range(50)]
    ours = ecc.encode_to_curve_points(msgs)
    other = ecc.encode_to_curve_points(msgs, dst=b"ANOTHER-APP-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_NU_")
    assert not set(ours.tolist()) & set(other.tolist())
    assert len(set(ours.tolist())) == len(msgs)


def test_encryption_commutes_and_depends_on_the_key() -> None:
    ids = [f"customer-{i}".encode() for i in range(40)]
    a, b = EcdhKey.generate(), EcdhKey.generate()
    ab = b.reencrypt(a.hash_encrypt(ids, workers=1), workers=1)
    ba = a.reencrypt(b.hash_encrypt(ids, workers=1), workers=1)
    assert ab.dtype == np.dtype("S32") and ab.shape == (40,)
    assert (ab == ba).all()
    assert not set(a.hash_encrypt(ids, workers=1).tolist()) & set(b.hash_encrypt(ids, workers=1).tolist())
    # hash_encrypt is the X25519 of the unkeyed point
    unkeyed = ecc.encode_to_curve_points(ids)
    assert (a.reencrypt(unkeyed, workers=1) == a.hash_encrypt(ids, workers=1)).all()


def test_a_fixed_secret_gives_the_x25519_of_the_hashed_point() -> None:
    # RFC 7748 section 6.1: Alice's secret applied to Bob's public key gives the shared secret
    alice = EcdhKey(bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    bob_pub = np.array([bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")], dtype="S32")
    shared = alice.reencrypt(bob_pub, workers=1)
    assert shared.tobytes().hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


@pytest.mark.parametrize("u", LOW_ORDER_U, ids=["0", "1", "p-1", "order8a", "order8b"])
def test_low_order_points_from_a_peer_are_a_protocol_violation(u: int) -> None:
    good = EcdhKey.generate().hash_encrypt([b"a", b"b"], workers=1)
    points = np.concatenate([good, np.array([_u_bytes(u)], dtype="S32")])
    with pytest.raises(ProtocolViolation, match="low-order"):
        EcdhKey.generate().reencrypt(points, workers=1)


@pytest.mark.parametrize("u", [P, P + 1, 2**255 + 9, 2**256 - 1], ids=["p", "p+1", "high-bit", "all-ones"])
def test_non_canonical_encodings_are_a_protocol_violation(u: int) -> None:
    points = np.array([_u_bytes(u)], dtype="S32")
    with pytest.raises(ProtocolViolation, match="canonical"):
        EcdhKey.generate().reencrypt(points, workers=1)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3, dtype="S16"), np.zeros((2, 2), dtype="S32"), np.zeros(3, dtype=np.uint8), [b"x" * 32]],
    ids=["short", "2-d", "uint8", "list"],
)
def test_reencrypt_refuses_anything_but_a_vector_of_points(bad: object) -> None:
    with pytest.raises(ProtocolViolation):
        EcdhKey.generate().reencrypt(bad, workers=1)  # type: ignore[arg-type]


def test_empty_batches() -> None:
    key = EcdhKey.generate()
    empty = key.hash_encrypt([], workers=1)
    assert empty.dtype == np.dtype("S32") and empty.shape == (0,)
    assert key.reencrypt(empty, workers=1).shape == (0,)


def test_the_key_keeps_its_secret() -> None:
    key = EcdhKey.generate()
    assert "secret" in repr(key) and key._secret.hex() not in repr(key)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(key)
    with pytest.raises(ValueError):
        EcdhKey(b"short")
    assert EcdhKey.generate()._secret != key._secret


def test_bad_worker_counts_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        EcdhKey.generate().hash_encrypt([b"x"], workers=0)


def test_the_process_pool_gives_the_same_answers_and_never_forks() -> None:
    ids = [f"pooled-{i}".encode() for i in range(700)]  # over the inline threshold: goes to the pool
    a, b = EcdhKey.generate(), EcdhKey.generate()
    one = a.hash_encrypt(ids, workers=1)
    two = a.hash_encrypt(ids, workers=2)
    assert (one == two).all()
    assert (b.reencrypt(two, workers=2) == b.reencrypt(one, workers=1)).all()
    pool = ecc._POOLS[2]
    assert pool._mp_context.get_start_method() in ("forkserver", "spawn")
    assert ecc._pool(2) is pool  # reused, not restarted
    bad = two.copy()
    bad[650] = _u_bytes(1)
    with pytest.raises(ProtocolViolation, match="position 650"):
        b.reencrypt(bad, workers=2)


def test_a_dead_worker_fails_the_call_and_the_next_call_gets_a_fresh_pool() -> None:
    ids = [f"pooled-{i}".encode() for i in range(600)]
    key = EcdhKey.generate()
    expected = key.hash_encrypt(ids, workers=1)
    key.hash_encrypt(ids, workers=2)  # make sure the pool and its workers are up
    pool = ecc._POOLS[2]
    victim = next(iter(pool._processes.values()))  # a worker this test's pool started
    victim.kill()
    victim.join(10)
    deadline = time.monotonic() + 10
    while not pool._broken and time.monotonic() < deadline:  # the executor notices the death on its own thread
        time.sleep(0.01)
    with pytest.raises(JointlyError, match="worker process died"):
        key.hash_encrypt(ids, workers=2)
    assert (key.hash_encrypt(ids, workers=2) == expected).all()
    assert ecc._POOLS[2] is not pool
