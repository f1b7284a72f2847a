"""Party signing identities: Ed25519 keys that sign what a party vouches for.

TLS proves who is on the other end of a connection *now*; a signature proves,
to anyone holding the party's verify key and at any later time, that the party
produced some bytes (audit-ledger entries, job approvals, results).  A
:class:`SigningKey` stays on its party's machine; its :class:`VerifyKey` is
public and is handed to every partner in the federation file.

What this protects: signed bytes against forgery and tampering by anyone who
does not hold the party's private key (partners, the network, a storage
operator).  It does not hide the bytes, and it cannot help once the private
key leaks.

Keys are PEM: PKCS8 for the private key, SubjectPublicKeyInfo for the public
one, so standard tools (``openssl pkey``) read them too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from jointly.errors import AuthenticationError, ConfigError

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32

_K = TypeVar("_K")


class VerifyKey:
    """A party's public Ed25519 key: checks signatures, never makes them."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError("a verify key must be an Ed25519 public key")
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's signature of ``data``, else raise AuthenticationError."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            raise AuthenticationError(f"a signature must be {SIGNATURE_BYTES} bytes")
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise AuthenticationError(f"bad signature for key {self.fingerprint[:16]}") from None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw 32-byte key, as hex: a short, printable identity."""
        return hashlib.sha256(self._raw).hexdigest()

    def to_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_BYTES:
            raise ConfigError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} raw bytes")
        return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def from_pem(cls, pem: bytes) -> VerifyKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError("not a PEM public key") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def load(cls, path: str | Path) -> VerifyKey:
        """Read a PEM verify key file; ConfigError names the file on any problem."""
        return _named(path, lambda: cls.from_pem(_read(path)))

    def save(self, path: str | Path) -> None:
        """Write the PEM public key (mode 0644); refuses to overwrite an existing file."""
        _write_new(Path(path), self.to_pem(), 0o644)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint[:16]})"


class SigningKey:
    """A party's private Ed25519 key.  Never leaves the party's machine; never shows in ``repr``."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError("a signing key must be an Ed25519 private key")
        self._key = key
        self.verify_key = VerifyKey(key.public_key())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        """Same as ``self.verify_key.verify``."""
        self.verify_key.verify(data, signature)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS8 PEM: protect the file, not the bytes (see :meth:`save`)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError("not an unencrypted PEM private key") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        """Read a PEM signing key file; ConfigError names the file on any problem."""
        return _named(path, lambda: cls.from_pem(_read(path)))

    def save(self, path: str | Path) -> None:
        """Write the PEM private key readable by its owner only (0600); refuses to overwrite."""
        _write_new(Path(path), self.to_pem(), 0o600)

    def __repr__(self) -> str:
        return f"SigningKey(verify_key={self.verify_key.fingerprint[:16]})"


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}") from None


def _named(path: str | Path, load: Callable[[], _K]) -> _K:
    try:
        return load()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists, not overwriting a key") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
