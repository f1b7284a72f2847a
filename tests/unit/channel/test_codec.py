from __future__ import annotations

import contextlib
import dataclasses
import pickle

import gmpy2
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jointly.channel.codec import decode, encode, message
from jointly.errors import CodecError, MessageTooLarge

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(1 << 4096), max_value=1 << 4096)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_round_trip_of_plain_values(value: object) -> None:
    assert decode(encode(value)) == value


@given(st.floats(allow_nan=True))
def test_floats_including_nan_and_inf(x: float) -> None:
    back = decode(encode(x))
    assert isinstance(back, float)
    assert (np.isnan(back) and np.isnan(x)) or back == x


@settings(max_examples=60)
@given(
    hnp.arrays(
        dtype=st.sampled_from(["bool", "int8", "int32", "int64", "uint64", "float32", "float64", "complex128", "S7"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    )
)
def test_numpy_arrays_round_trip_exactly(arr: np.ndarray) -> None:
    back = decode(encode(arr))
    assert isinstance(back, np.ndarray)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes() == arr.tobytes()
    assert back.flags.writeable


@given(st.lists(st.integers(min_value=-(1 << 3000), max_value=1 << 3000), max_size=20))
def test_big_integer_vectors(ints: list[int]) -> None:
    vec = np.empty(len(ints), dtype=object)
    vec[:] = ints
    back = decode(encode(vec))
    assert back.dtype == object and list(back) == ints


def test_gmpy2_integers_and_tuples() -> None:
    assert decode(encode([gmpy2.mpz(7) ** 300, (1, "a")])) == [7**300, [1, "a"]]


@message("test.Point")
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str
    data: np.ndarray


def test_registered_messages_round_trip() -> None:
    p = Point(x=1 << 200, label="p", data=np.arange(4.0))
    back = decode(encode({"p": p}))["p"]
    assert isinstance(back, Point)
    assert back.x == p.x and back.label == "p" and np.array_equal(back.data, p.data)


def test_unregistered_types_cannot_be_sent() -> None:
    class Thing:
        pass

    with pytest.raises(CodecError, match="Thing"):
        encode(Thing())
    with pytest.raises(CodecError):
        encode(np.array(["a", object()], dtype=object))
    with pytest.raises(CodecError):
        encode(np.array(["text"], dtype="U4"))


def test_unknown_message_type_and_wrong_fields_are_refused() -> None:
    forged = msgpack.packb(["os.system", {"cmd": "rm -rf /"}])
    with pytest.raises(CodecError, match="unknown message type"):
        decode(msgpack.packb(msgpack.ExtType(4, forged)))
    wrong = msgpack.packb(["test.Point", {"x": 1}])
    with pytest.raises(CodecError, match="fields"):
        decode(msgpack.packb(msgpack.ExtType(4, wrong)))


def test_pickle_bytes_are_never_unpickled() -> None:
    evil = pickle.dumps({"a": 1})
    with pytest.raises(CodecError):
        decode(evil)


@pytest.mark.parametrize(
    "header,body",
    [
        (["|O", [2]], b"\x00" * 16),  # object dtype
        (["<f8", [3]], b"\x00" * 16),  # body length mismatch
        (["<f8", [-1]], b""),  # negative shape
        ([{"descr": "x"}, [1]], b"\x00" * 8),  # dtype not a string
        (["V8", [1]], b"\x00" * 8),  # void dtype
    ],
)
def test_malformed_arrays_are_refused(header: list[object], body: bytes) -> None:
    blob = msgpack.packb(msgpack.ExtType(2, msgpack.packb(header) + body))
    with pytest.raises(CodecError):
        decode(blob)


def test_unknown_extension_and_garbage() -> None:
    with pytest.raises(CodecError, match="unknown extension"):
        decode(msgpack.packb(msgpack.ExtType(99, b"x")))
    with pytest.raises(CodecError):
        decode(b"\xc1")  # reserved msgpack byte
    with pytest.raises(CodecError):
        decode(encode([1, 2, 3])[:-1])  # truncated


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(blob: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(blob)


def test_size_limit_on_both_sides() -> None:
    big = b"x" * 1000
    with pytest.raises(MessageTooLarge):
        encode(big, max_bytes=500)
    data = encode(big)
    with pytest.raises(MessageTooLarge):
        decode(data, max_bytes=500)
    assert decode(data, max_bytes=2000) == big
