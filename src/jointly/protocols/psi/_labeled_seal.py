"""Value code for labeled PSI: blinding scalars, tag and key derivation, sealed labels.

Used by :mod:`jointly.protocols.psi.labeled`; nothing here touches a channel.

**Scalars.**  X25519 only multiplies by *clamped* scalars ``2^254 + 8c`` with
``0 <= c < 2^251``; every point it outputs lies in the subgroup of prime order
``ELL``.  The client blinds with a fresh clamped ``r`` (exactly how
:meth:`EcdhKey.generate <jointly.crypto.ecc.EcdhKey.generate>` draws keys) and
must later multiply by ``r^-1 mod ELL``, which is usually not clamped.
:func:`unblinding_pair` writes it as a product of two clamped scalars
``s1 * s2 = ±r^-1 (mod ELL)`` (the sign does not matter: X25519 outputs only the
u-coordinate, shared by ``P`` and ``-P``): ``s1`` is drawn at random and ``s2``
solved for, redrawing ``s1`` until ``s2`` is clampable (about 3 draws in 4 succeed).

**Tags and keys.**  For an OPRF output ``F = X25519(k, H(x))`` (32 bytes),
``HKDF-SHA512(salt = DOMAIN || table_id, ikm = F, info = INFO)`` gives 64 bytes:
the first 32 are an AES-256-GCM key, the next ``tag_bytes`` the lookup tag.  The
random ``table_id`` changes with every preprocessing, so a key is never reused
for two labels and the fixed all-zero GCM nonce is safe.  HKDF is computed with
``hmac.digest`` (one call each for extract and expand; RFC 5869, equal to
``cryptography``'s HKDF, which the tests check), because a million
``cryptography`` HKDF objects cost more than the hashing itself.

**Labels** are padded to a fixed ``label_bytes`` (ISO/IEC 7816-4: ``0x80`` then
zeros), so every sealed label has ``label_bytes + 1 + 16`` bytes whatever its length.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jointly.crypto.ecc import POINT_BYTES

ELL = 2**252 + 27742317777372353535851937790883648493  #: order of Curve25519's prime-order subgroup
_HIGH = 1 << 254
_C_BOUND = 1 << 251
_INV8 = pow(8, -1, ELL)

DOMAIN = b"jointly-labeled-psi-v1/"
INFO = b"jointly labeled psi: aes-256-gcm key || lookup tag"
KEY_BYTES = 32
GCM_TAG_BYTES = 16
PAD_BYTES = 1
NONCE = bytes(12)  # each key seals exactly one label (see the module docstring)
MIN_TAG_BYTES = 8
MAX_TAG_BYTES = 32
MAX_LABEL_BYTES = 1 << 16
TABLE_ID_BYTES = 16
#: an id no caller can have: canonical ids are UTF-8 text and 0xff never occurs in UTF-8
CANARY_ID = b"\xffjointly-labeled-psi-canary-v1"
CANARY_LABEL = b""


# -- scalars --------------------------------------------------------------------------------
def clamped_scalar() -> int:
    """A uniformly random clamped X25519 scalar ``2^254 + 8c``, ``0 <= c < 2^251``."""
    return _HIGH + 8 * secrets.randbits(251)


def scalar_bytes(a: int) -> bytes:
    """The 32-byte little-endian encoding X25519 takes (already clamped, so OpenSSL leaves it as is)."""
    return a.to_bytes(POINT_BYTES, "little")


def clamp_of(target: int) -> int | None:
    """The clamped scalar congruent to ``target`` or ``-target`` mod ``ELL``, if there is one."""
    for value in (target % ELL, (-target) % ELL):
        c = (value - _HIGH) * _INV8 % ELL
        if c < _C_BOUND:
            return _HIGH + 8 * c
    return None


def unblinding_pair(r: int) -> tuple[int, int]:
    """Clamped ``(s1, s2)`` with ``s1 * s2 = ±r^-1 (mod ELL)``, ``s1`` uniformly random."""
    inverse = pow(r, -1, ELL)  # r mod ELL is never 0: r < 8 * ELL and ELL is odd
    while True:
        s1 = clamped_scalar()
        s2 = clamp_of(inverse * pow(s1, -1, ELL))
        if s2 is not None:
            return s1, s2


# -- tags, keys, labels ---------------------------------------------------------------------
def hkdf_sha512(ikm: bytes, salt: bytes, info: bytes = INFO) -> bytes:
    """RFC 5869 HKDF with SHA-512, one block (64 bytes) of output."""
    prk = hmac.digest(salt, ikm, "sha512")
    return hmac.digest(prk, info + b"\x01", "sha512")


def derive(points: np.ndarray, table_id: bytes, tag_bytes: int) -> tuple[np.ndarray, list[bytes]]:
    """Lookup tags (an ``'S{tag_bytes}'`` array) and AES keys for each OPRF output in ``points``.

    Reads ``points`` as raw 32-byte rows: ``ndarray.tolist`` would drop trailing zero bytes.
    """
    blob = points.tobytes()
    salt = DOMAIN + table_id
    digest, key_end, tag_end = hmac.digest, KEY_BYTES, KEY_BYTES + tag_bytes
    info = INFO + b"\x01"
    tags = bytearray(tag_bytes * len(points))
    keys: list[bytes] = []
    for i in range(len(points)):
        okm = digest(digest(salt, blob[i * POINT_BYTES : (i + 1) * POINT_BYTES], "sha512"), info, "sha512")
        keys.append(okm[:key_end])
        tags[i * tag_bytes : (i + 1) * tag_bytes] = okm[key_end:tag_end]
    return np.frombuffer(bytes(tags), dtype=f"S{tag_bytes}"), keys


def sealed_width(label_bytes: int) -> int:
    return label_bytes + PAD_BYTES + GCM_TAG_BYTES


def seal_all(keys: Iterable[bytes], labels: Iterable[bytes], label_bytes: int) -> np.ndarray:
    """AES-256-GCM of each padded label under its own key: a ``uint8`` array of shape ``(n, width)``."""
    out = bytearray()
    pad = b"\x80"
    for key, label in zip(keys, labels, strict=True):
        plain = label + pad + bytes(label_bytes - len(label))
        out += AESGCM(key).encrypt(NONCE, plain, None)
    width = sealed_width(label_bytes)
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(-1, width)


def open_label(key: bytes, sealed: bytes) -> bytes | None:
    """The label sealed under ``key``, or ``None`` if it was sealed under another key (or tampered with)."""
    try:
        plain = AESGCM(key).decrypt(NONCE, sealed, None)
    except InvalidTag:
        return None
    body = plain.rstrip(b"\x00")
    if not body.endswith(b"\x80"):  # authentic, so only a buggy sealer gets here
        return None
    return body[:-1]
