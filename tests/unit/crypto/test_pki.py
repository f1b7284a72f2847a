from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jointly.crypto.pki import (
    certificate_fingerprint,
    issue_party_certificate,
    make_ca,
    verify_party_certificate,
)
from jointly.errors import AuthenticationError, ConfigError

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("key_type", ["ec", "ed25519"])
def test_party_certificate_names_its_party_and_verifies(key_type: str) -> None:
    ca = make_ca("test CA", key_type=key_type)  # type: ignore[arg-type]
    issued = issue_party_certificate(
        ca.cert_pem,
        ca.key_pem,
        "bank_eu-1",
        extra_hosts=["node.bank.example", "10.0.0.7"],
        key_type=key_type,  # type: ignore[arg-type]
    )
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bank_eu-1"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["bank_eu-1", "localhost", "node.bank.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage and ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"PRIVATE KEY" in issued.key_pem and b"PRIVATE KEY" not in issued.cert_pem
    assert "key_pem" not in repr(issued)
    assert verify_party_certificate(issued.cert_pem, ca.cert_pem) == "bank_eu-1"


def test_certificate_from_another_ca_is_refused() -> None:
    ours, theirs = make_ca(), make_ca()
    issued = issue_party_certificate(theirs.cert_pem, theirs.key_pem, "bank")
    with pytest.raises(AuthenticationError, match="not issued by the federation CA"):
        verify_party_certificate(issued.cert_pem, ours.cert_pem)


def test_a_ca_with_the_same_name_but_another_key_is_refused() -> None:
    ours, impostor = make_ca("same name"), make_ca("same name")
    issued = issue_party_certificate(impostor.cert_pem, impostor.key_pem, "bank")
    with pytest.raises(AuthenticationError):
        verify_party_certificate(issued.cert_pem, ours.cert_pem)


def test_validity_dates_are_checked() -> None:
    ca = make_ca(now=NOW - dt.timedelta(days=10))
    issued = issue_party_certificate(ca.cert_pem, ca.key_pem, "bank", valid_days=5, now=NOW - dt.timedelta(days=10))
    assert verify_party_certificate(issued.cert_pem, ca.cert_pem, now=NOW - dt.timedelta(days=8)) == "bank"
    with pytest.raises(AuthenticationError, match="expired"):
        verify_party_certificate(issued.cert_pem, ca.cert_pem, now=NOW)
    with pytest.raises(AuthenticationError, match="not valid before"):
        verify_party_certificate(issued.cert_pem, ca.cert_pem, now=NOW - dt.timedelta(days=20))


def test_tampered_or_wrong_certificates_are_refused() -> None:
    ca = make_ca()
    issued = issue_party_certificate(ca.cert_pem, ca.key_pem, "bank")
    with pytest.raises(AuthenticationError, match="CA certificate cannot identify"):
        verify_party_certificate(ca.cert_pem, ca.cert_pem)
    with pytest.raises(AuthenticationError, match="not a PEM"):
        verify_party_certificate(b"garbage", ca.cert_pem)
    with pytest.raises(AuthenticationError, match="is not a CA"):
        verify_party_certificate(issued.cert_pem, issued.cert_pem)
    raw = bytearray(x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(Encoding.DER))
    raw[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_certificate(bytes(raw)).public_bytes(Encoding.PEM)
    with pytest.raises(AuthenticationError, match="not issued by the federation CA"):
        verify_party_certificate(tampered, ca.cert_pem)


def test_issuing_checks_its_inputs() -> None:
    ca, other = make_ca(), make_ca()
    with pytest.raises(ConfigError, match="invalid party name"):
        issue_party_certificate(ca.cert_pem, ca.key_pem, "Bank!")
    with pytest.raises(ConfigError, match="does not belong"):
        issue_party_certificate(ca.cert_pem, other.key_pem, "bank")
    with pytest.raises(ConfigError, match="not a CA"):
        leaf = issue_party_certificate(ca.cert_pem, ca.key_pem, "bank")
        issue_party_certificate(leaf.cert_pem, leaf.key_pem, "telco")
    with pytest.raises(ConfigError, match="invalid host"):
        issue_party_certificate(ca.cert_pem, ca.key_pem, "bank", extra_hosts=["bad host"])
    with pytest.raises(ConfigError, match="timezone"):
        make_ca(now=dt.datetime(2030, 1, 1))  # a naive time is refused


def test_fingerprint_is_stable_hex() -> None:
    ca = make_ca()
    fp = certificate_fingerprint(ca.cert_pem)
    assert len(fp) == 64 and fp == certificate_fingerprint(ca.cert_pem)
    assert fp != certificate_fingerprint(make_ca().cert_pem)
