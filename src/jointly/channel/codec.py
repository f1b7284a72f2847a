"""The safe codec: the only way values become bytes on the wire and back.

Built on msgpack with a closed set of extension types; decoding never executes
code and never builds a type that was not registered here, so a malicious peer
can at worst make :func:`decode` raise :class:`~jointly.errors.CodecError`.

Supported values: ``None``, ``bool``, ``int`` of any size (and ``gmpy2.mpz``),
``float``, ``str``, ``bytes``, lists and tuples (decoded as lists), dicts with
``str``/``int``/``bytes`` keys, numpy arrays of numeric, bool or fixed-width
bytes dtypes, vectors of big integers (numpy ``object`` arrays of ints, decoded
as such), and dataclasses registered with :func:`message`.

Every message is bounded by ``max_bytes`` on both sides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack
import numpy as np

from jointly.errors import CodecError, MessageTooLarge

DEFAULT_MAX_MESSAGE_BYTES = 1 << 30  # 1 GiB per message; transports stream it in chunks

_EXT_BIGINT = 1
_EXT_NDARRAY = 2
_EXT_BIGVEC = 3
_EXT_MESSAGE = 4

_ALLOWED_KINDS = frozenset("biufcS")  # bool, int, uint, float, complex, fixed bytes
_MAX_NDIM = 32
_MAX_ARRAY_HEADER = 64 + _MAX_NDIM * 9  # msgpack of [dtype string, up to 32 dimensions of uint64]
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1

_T = TypeVar("_T")
_REGISTRY: dict[str, type] = {}
_NAMES: dict[type, str] = {}

try:  # gmpy2 integers are common in crypto code; accept them without importing crypto
    import gmpy2

    _MPZ: tuple[type, ...] = (type(gmpy2.mpz(0)),)
except ImportError:  # pragma: no cover - gmpy2 is a hard dependency
    _MPZ = ()


def message(name: str) -> Callable[[type[_T]], type[_T]]:
    """Register a dataclass as a typed wire message under a stable ``name``.

    Only registered types can be rebuilt by :func:`decode`, field by field.
    """

    def register(cls: type[_T]) -> type[_T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a wire message")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"wire message name {name!r} is already registered")
        _REGISTRY[name] = cls
        _NAMES[cls] = name
        return cls

    return register


def _pack_int(value: int) -> bytes:
    length = (value.bit_length() + 8) // 8
    return value.to_bytes(length, "big", signed=True)


def _pack_bigvec(arr: np.ndarray) -> msgpack.ExtType:
    values = [int(v) for v in arr.reshape(-1)]
    width = max((abs(v).bit_length() + 7) // 8 for v in values) if values else 0
    signs = np.fromiter((v < 0 for v in values), dtype=bool, count=len(values))
    body = b"".join(abs(v).to_bytes(width, "big") for v in values)
    payload = msgpack.packb([list(arr.shape), width, np.packbits(signs).tobytes(), body])
    return msgpack.ExtType(_EXT_BIGVEC, payload)


def _default(obj: Any) -> Any:
    if isinstance(obj, bool | float | str | bytes):
        return obj
    if isinstance(obj, int) or (_MPZ and isinstance(obj, _MPZ)):
        return msgpack.ExtType(_EXT_BIGINT, _pack_int(int(obj)))  # type: ignore[call-overload]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            if not all(isinstance(v, int) or (_MPZ and isinstance(v, _MPZ)) for v in obj.flat):
                raise CodecError("object arrays may only hold integers")
            return _pack_bigvec(obj)
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise CodecError(f"numpy dtype {obj.dtype} cannot cross the wire")
        arr = obj if obj.flags.c_contiguous else obj.copy(order="C")  # ascontiguousarray would make 0-d 1-d
        header = [arr.dtype.str, list(arr.shape)]
        body = arr.reshape(-1).view(np.uint8).data if arr.size else b""  # no tobytes() copy: join copies once
        return msgpack.ExtType(_EXT_NDARRAY, b"".join((msgpack.packb(header), body)))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    name = _NAMES.get(type(obj))
    if name is not None:
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        body = msgpack.packb([name, fields], default=_default, use_bin_type=True)
        return msgpack.ExtType(_EXT_MESSAGE, body)
    raise CodecError(f"values of type {type(obj).__name__} cannot cross the wire")


def encode(value: object, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """Serialise ``value``; raises :class:`MessageTooLarge` beyond ``max_bytes``."""
    try:
        data = msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from exc
    if len(data) > max_bytes:
        raise MessageTooLarge(f"message of {len(data)} bytes is over the limit of {max_bytes}")
    return bytes(data)


class _Decoder:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(
            data,
            ext_hook=self.ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )

    def ext_hook(self, code: int, data: bytes) -> Any:
        if code == _EXT_BIGINT:
            if not data:
                raise CodecError("empty big integer")
            return int.from_bytes(data, "big", signed=True)
        if code == _EXT_NDARRAY:
            return self._ndarray(data)
        if code == _EXT_BIGVEC:
            return self._bigvec(data)
        if code == _EXT_MESSAGE:
            return self._message(data)
        raise CodecError(f"unknown extension type {code}")

    def _ndarray(self, data: bytes) -> np.ndarray:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(self.max_bytes, 1))
        unpacker.feed(data[:_MAX_ARRAY_HEADER])  # the header only: feeding the body would copy it
        try:
            dtype_str, shape = next(unpacker)
        except (StopIteration, ValueError, TypeError) as exc:
            raise CodecError("malformed array header") from exc
        offset = unpacker.tell()
        dtype = _checked_dtype(dtype_str)
        shape = _checked_shape(shape)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        body = memoryview(data)[offset:]
        if count * dtype.itemsize != len(body):
            raise CodecError(f"array body is {len(body)} bytes, header says {count * dtype.itemsize}")
        return np.frombuffer(body, dtype=dtype).reshape(shape).copy()

    def _bigvec(self, data: bytes) -> np.ndarray:
        try:
            shape, width, signs, body = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError) as exc:
            raise CodecError("malformed big-integer vector") from exc
        shape = _checked_shape(shape)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not isinstance(width, int) or width < 0 or not isinstance(body, bytes):
            raise CodecError("malformed big-integer vector")
        if len(body) != count * width or not isinstance(signs, bytes) or len(signs) != (count + 7) // 8:
            raise CodecError("big-integer vector length does not match its header")
        neg = np.unpackbits(np.frombuffer(signs, dtype=np.uint8), count=count).astype(bool)
        out = np.empty(count, dtype=object)
        for i in range(count):
            v = int.from_bytes(body[i * width : (i + 1) * width], "big")
            out[i] = -v if neg[i] else v
        return out.reshape(shape)

    def _message(self, data: bytes) -> Any:
        try:
            name, fields = self.unpack(data)
        except (ValueError, TypeError) as exc:
            raise CodecError("malformed typed message") from exc
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            raise CodecError(f"unknown message type {name!r}")
        if not isinstance(fields, dict):
            raise CodecError(f"message {name!r} has no field map")
        expected = {f.name for f in dataclasses.fields(cls) if f.init}
        if set(fields) != expected:
            raise CodecError(f"message {name!r} has fields {sorted(map(str, fields))}, expected {sorted(expected)}")
        return cls(**fields)


def _checked_dtype(dtype_str: object) -> np.dtype[Any]:
    if not isinstance(dtype_str, str):
        raise CodecError("array dtype must be a string")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as exc:
        raise CodecError(f"bad array dtype {dtype_str!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CodecError(f"numpy dtype {dtype_str!r} cannot cross the wire")
    return dtype


def _checked_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM:
        raise CodecError("array shape must be a short list")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < (1 << 40) for d in shape):
        raise CodecError(f"bad array shape {shape!r}")
    return tuple(shape)


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """Rebuild a value produced by :func:`encode`; raises :class:`CodecError` on any malformed input."""
    if len(data) > max_bytes:
        raise MessageTooLarge(f"message of {len(data)} bytes is over the limit of {max_bytes}")
    try:
        return _Decoder(max_bytes).unpack(data)
    except CodecError:
        raise
    except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"malformed message: {exc}") from exc
