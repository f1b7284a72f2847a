"""Every message of SecureBoost, with the checks a receiver applies before trusting it.

Guest -> host: :class:`Setup` (public key, row count, config fingerprint), :class:`TreeStart`
(the tree's rows; its encrypted packed gradients follow in blocks of ``WireCiphertexts``),
:class:`LevelRequest` (node sample sets), :class:`SplitRequest` (winning opaque split ids),
:class:`Finish` (split ids kept in the model), :class:`PredictRequest` (split ids to evaluate).
Host -> guest: :class:`Histograms` (packed encrypted cumulative histograms with opaque ids),
:class:`Routes` and :class:`PredictMasks` (left/right bitmasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from jointly.channel.codec import message
from jointly.crypto.paillier import WireCiphertexts
from jointly.errors import ProtocolViolation

VERSION = 2
#: bytes of ciphertexts per gradient message of :class:`TreeStart`
GRADIENT_BLOCK_BYTES = 16 << 20
SPLIT_ID_BYTES = 16  #: opaque split ids are 128-bit random tokens
MAX_CANDIDATES = 1 << 22

_M = TypeVar("_M")
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@message("jointly.secureboost.Setup")
@dataclass(frozen=True)
class Setup:
    version: int
    config: bytes  # SecureBoostConfig.fingerprint()
    public_key: dict[str, Any]
    n_rows: int


@message("jointly.secureboost.TreeStart")
@dataclass(frozen=True)
class TreeStart:
    """Start a tree (``stop=False``) or end training early (``stop=True``, other fields empty).

    The encrypted gradients follow as ``blocks`` :class:`~jointly.crypto.paillier.WireCiphertexts`
    messages (tags ``"0"``, ``"1"``, ... in the tree's ``gradients`` namespace): one ciphertext per
    row of ``rows``, in order, packing ``g`` and ``h`` of every output.  Blocks keep every message,
    and what either side holds besides the whole vector, small at any row count.
    """

    stop: bool
    rows: Any  # int64 array: the aligned rows the tree is grown on, sorted
    slot_bits: list[int]
    blocks: int  # gradient messages that follow (0 when stopping)


@message("jointly.secureboost.LevelRequest")
@dataclass(frozen=True)
class LevelRequest:
    """The nodes of one level the host needs; ``node_of[i]``: index in ``node_ids`` of tree row ``i``'s node, or -1.

    ``build[k]``: send the histogram of node ``k``.  The other nodes are to be split too, but the
    guest derives their histograms itself (parent minus sibling).
    """

    node_ids: Any  # int64 array of heap node ids; empty: the tree is complete
    node_of: Any  # int32 array, one entry per row of the tree
    build: Any  # bool array, one entry per node


@message("jointly.secureboost.NodeHistogram")
@dataclass(frozen=True)
class NodeHistogram:
    node_id: int
    packed: WireCiphertexts  # cumulative candidate sums, ``per`` candidates per ciphertext


@message("jointly.secureboost.Histograms")
@dataclass(frozen=True)
class Histograms:
    """Histograms of the requested nodes; at level 0 also the tree's opaque ids, one per candidate split."""

    split_ids: bytes  # SPLIT_ID_BYTES per candidate, in candidate order (empty after level 0)
    nodes: list[NodeHistogram]


@message("jointly.secureboost.SplitRequest")
@dataclass(frozen=True)
class SplitRequest:
    node_ids: list[int]
    split_ids: list[bytes]


@message("jointly.secureboost.Routes")
@dataclass(frozen=True)
class Routes:
    """Per requested split: packed bits over the node's rows and over every row outside the tree (1 = left)."""

    in_node: list[bytes]
    outside: list[bytes]


@message("jointly.secureboost.Finish")
@dataclass(frozen=True)
class Finish:
    keep: list[bytes]


@message("jointly.secureboost.PredictRequest")
@dataclass(frozen=True)
class PredictRequest:
    version: int
    n_rows: int
    split_ids: list[bytes]


@message("jointly.secureboost.PredictMasks")
@dataclass(frozen=True)
class PredictMasks:
    masks: list[bytes]  # packed bits over all rows (1 = left), one per requested split id


def expect(value: object, cls: type[_M], peer: str) -> _M:
    """``value`` if it is a ``cls`` message, else ProtocolViolation naming ``peer``."""
    if not isinstance(value, cls):
        raise ProtocolViolation(f"{peer} sent {type(value).__name__} where {cls.__name__} was expected")
    return value


def int_array(value: object, what: str, *, length: int | None = None, low: int = 0, high: int = 1 << 62) -> IntArray:
    """A 1-d integer array with values in ``[low, high)`` (and ``length`` entries), else ProtocolViolation."""
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in "iu":
        raise ProtocolViolation(f"{what} must be a 1-d integer array")
    if length is not None and len(value) != length:
        raise ProtocolViolation(f"{what} has {len(value)} entries, expected {length}")
    arr = value.astype(np.int64)
    if arr.size and (int(arr.min()) < low or int(arr.max()) >= high):
        raise ProtocolViolation(f"{what} has values outside [{low}, {high})")
    return arr


def split_id_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(v, bytes) and len(v) == SPLIT_ID_BYTES for v in value):
        raise ProtocolViolation(f"{what} must be a list of {SPLIT_ID_BYTES}-byte split ids")
    return list(value)


def pack_bits(mask: BoolArray) -> bytes:
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes()


def unpack_bits(data: object, count: int, what: str) -> BoolArray:
    """Inverse of :func:`pack_bits` for ``count`` bits; the padding bits must be zero."""
    if not isinstance(data, bytes) or len(data) != (count + 7) // 8:
        raise ProtocolViolation(f"{what} must be {(count + 7) // 8} bytes of packed bits")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits[count:].any():
        raise ProtocolViolation(f"{what} has bits set beyond its {count} rows")
    return bits[:count].astype(bool)
