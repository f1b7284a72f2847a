"""Fixed-point encoding and slot packing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.crypto.encoding import FixedPoint, as_int_array, pack_slots, unpack_slots

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, max_size=20), st.integers(min_value=0, max_value=80))
def test_roundtrip_within_half_ulp_of_encoding(xs: list[float], frac_bits: int) -> None:
    fp = FixedPoint(frac_bits)
    enc = fp.encode(np.array(xs, dtype=np.float64))
    assert enc.dtype == object and all(type(v) is int for v in enc)
    dec = fp.decode(enc)
    assert dec.dtype == np.float64
    err = np.abs(dec - np.array(xs, dtype=np.float64))
    # encoding error <= 2^-(f+1), plus float64 rounding of the decoded value
    assert (err <= 2.0 ** -(frac_bits + 1) + np.abs(np.array(xs)) * 2.0**-52).all()


@given(st.lists(st.integers(min_value=-(2**200), max_value=2**200), max_size=20), st.integers(0, 60))
def test_integers_encode_exactly(xs: list[int], frac_bits: int) -> None:
    enc = FixedPoint(frac_bits).encode(np.array(xs, dtype=object))
    assert enc.tolist() == [x << frac_bits for x in xs]


def test_examples_and_shapes() -> None:
    fp = FixedPoint(8)
    assert fp.encode([1.5, -0.25]).tolist() == [384, -64]
    assert fp.encode(np.array([[1, 2], [3, 4]], dtype=np.int32)).shape == (2, 2)
    assert fp.decode([384, -64]).tolist() == [1.5, -0.25]
    assert fp.decode(np.array([384], dtype=np.int64)).tolist() == [1.5]
    # frac_bits override (after a fixed-point multiplication the fractional bits add up)
    assert fp.decode([384 * 256], frac_bits=16).tolist() == [1.5]
    big = (1 << 300) + 1
    assert fp.decode(np.array([big], dtype=object), frac_bits=300).tolist() == [1.0]
    assert fp.encode(3.0).reshape(-1).tolist() == [768]


def test_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="NaN"):
        FixedPoint().encode([1.0, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        FixedPoint().encode([float("inf")])
    with pytest.raises(ValueError):
        FixedPoint(-1)
    with pytest.raises(TypeError):
        FixedPoint().encode(["a"])
    with pytest.raises(TypeError):
        as_int_array([1.5])
    with pytest.raises(TypeError):
        as_int_array(np.array([1, "x"], dtype=object))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.integers(1, 6), st.integers(0, 12), st.data())
def test_pack_unpack_roundtrip(slot_bits: int, count: int, size: int, data: st.DataObject) -> None:
    cols = [
        np.array(data.draw(st.lists(st.integers(0, 2**slot_bits - 1), min_size=size, max_size=size)), dtype=object)
        for _ in range(count)
    ]
    packed = pack_slots(cols, slot_bits)
    assert len(packed) == size
    for i in range(size):
        assert packed[i] == sum(int(c[i]) << (j * slot_bits) for j, c in enumerate(cols))
    back = unpack_slots(packed, slot_bits, count)
    assert len(back) == count
    for a, b in zip(back, cols, strict=True):
        assert a.tolist() == b.tolist()


def test_pack_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        pack_slots([np.array([256])], 8)
    with pytest.raises(ValueError, match="outside"):
        pack_slots([np.array([-1])], 8)
    with pytest.raises(ValueError, match="same length"):
        pack_slots([np.array([1]), np.array([1, 2])], 8)
    with pytest.raises(ValueError, match="does not fit"):
        unpack_slots([1 << 16], 8, 2)
    with pytest.raises(ValueError):
        unpack_slots([-1], 8, 2)
