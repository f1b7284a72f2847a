from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import AuthenticationError, ConfigError


def test_sign_and_verify() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"ledger entry 7")
    assert len(sig) == 64
    key.verify_key.verify(b"ledger entry 7", sig)
    key.verify(b"ledger entry 7", sig)
    with pytest.raises(AuthenticationError, match="bad signature"):
        key.verify_key.verify(b"ledger entry 8", sig)
    with pytest.raises(AuthenticationError):
        SigningKey.generate().verify_key.verify(b"ledger entry 7", sig)
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(AuthenticationError):
        key.verify_key.verify(b"ledger entry 7", forged)
    with pytest.raises(AuthenticationError, match="64 bytes"):
        key.verify_key.verify(b"ledger entry 7", sig[:-1])


def test_pem_round_trip_uses_standard_formats() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    pub = key.verify_key.to_pem()
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    again = SigningKey.from_pem(pem)
    assert again.verify_key == key.verify_key
    VerifyKey.from_pem(pub).verify(b"x", again.sign(b"x"))
    assert VerifyKey.from_bytes(key.verify_key.to_bytes()) == key.verify_key
    assert hash(VerifyKey.from_pem(pub)) == hash(key.verify_key)


def test_keys_never_show_private_material() -> None:
    key = SigningKey.generate()
    text = repr(key)
    assert "PRIVATE" not in text and key.verify_key.fingerprint[:16] in text
    assert key.to_pem().decode() not in text


def test_save_and_load_files(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "signing.pem")
    key.verify_key.save(tmp_path / "verify.pem")
    assert stat.S_IMODE((tmp_path / "signing.pem").stat().st_mode) == 0o600
    assert SigningKey.load(tmp_path / "signing.pem").verify_key == key.verify_key
    assert VerifyKey.load(tmp_path / "verify.pem") == key.verify_key
    with pytest.raises(ConfigError, match="already exists"):
        SigningKey.generate().save(tmp_path / "signing.pem")
    with pytest.raises(ConfigError, match="not found"):
        SigningKey.load(tmp_path / "missing.pem")


def test_wrong_key_material_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="Ed25519"):
        SigningKey.from_pem(ec_pem)
    ec_pub = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigError, match="Ed25519"):
        VerifyKey.from_pem(ec_pub)
    with pytest.raises(ConfigError):
        SigningKey.from_pem(b"not a key")
    with pytest.raises(ConfigError):
        VerifyKey.from_pem(SigningKey.generate().to_pem())
    with pytest.raises(ConfigError):
        VerifyKey.from_bytes(b"short")
