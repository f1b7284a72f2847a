"""The canonical JSON encoding every ledger structure (entry, tree head, cosignature) is signed in.

``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
encoded as UTF-8: sorted keys, no whitespace, non-ASCII kept as is, no NaN or
infinity, Python's shortest round-trip float repr.  A decoder of a peer's bytes
demands that re-encoding gives the same bytes, so each value has exactly one
encoding and a signature over it cannot be re-dressed (extra whitespace, key
order, duplicate keys, ``1e0`` for ``1.0``) into different bytes with the same meaning.
"""

from __future__ import annotations

import json
from typing import Any

from jointly.errors import CodecError

NOT_CANONICAL = "not in canonical form (sorted keys, no whitespace, shortest numbers)"


def canonical_json(obj: Any) -> bytes:
    """The one canonical encoding used for every ledger structure (see the module docstring)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse_canonical(raw: bytes, what: str, *, limit: int) -> dict[str, Any]:
    """Parse untrusted bytes that must be the canonical JSON of an object; CodecError otherwise."""
    obj = parse_json(raw, what, limit=limit)
    try:
        again = canonical_json(obj)
    except ValueError as exc:
        raise CodecError(f"{what}: {exc}") from None
    if again != raw:
        raise CodecError(f"{what}: {NOT_CANONICAL}")
    return obj


def parse_json(raw: bytes, what: str, *, limit: int) -> dict[str, Any]:
    """Parse untrusted bytes as a JSON object of at most ``limit`` bytes (no canonical-form check)."""
    if not isinstance(raw, bytes):
        raise CodecError(f"{what}: expected bytes, got {type(raw).__name__}")
    if len(raw) > limit:
        raise CodecError(f"{what}: {len(raw)} bytes is over the {limit}-byte limit")
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"{what}: not UTF-8 JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CodecError(f"{what}: expected a JSON object")
    return obj


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")
