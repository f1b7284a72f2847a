"""The federation's public-key infrastructure: one CA, one TLS certificate per party.

Pure functions over PEM bytes (no file I/O).  The CA key signs party
certificates once, when a federation is created, and then belongs offline.
Every party certificate names its party twice (subject CN and a DNS SAN), so

* a *server* proves to a client that it is the party the client meant to reach
  (the client pins the expected party name as the TLS target name), and
* a *client* proves to a server which party is calling (the server reads the
  CN of the verified client certificate, never a name written in a message).

What this protects: the identity of parties against anyone who does not hold a
private key signed by the federation CA (outsiders, other federations, a
party pretending to be another).  It does not protect against a party that
leaks its own key, nor against whoever holds the CA key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jointly.errors import AuthenticationError, ConfigError

KeyType = Literal["ec", "ed25519"]

#: EC P-256 is what every TLS stack (gRPC's BoringSSL included) accepts for both client and server auth.
DEFAULT_KEY_TYPE: KeyType = "ec"
CA_VALID_DAYS = 3650
PARTY_VALID_DAYS = 825
_CLOCK_SKEW = dt.timedelta(minutes=5)
_PARTY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HOST = re.compile(r"^[A-Za-z0-9*]([A-Za-z0-9_.*-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate and its private key, both PEM.  The key never shows in ``repr``."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def _now(now: dt.datetime | None) -> dt.datetime:
    moment = now or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ConfigError("timestamps for certificates must be timezone-aware")
    return moment.astimezone(dt.UTC)


def _new_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"unknown key type {key_type!r}: use 'ec' or 'ed25519'")


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _host_name(host: str) -> x509.GeneralName:
    """A SAN entry for ``host``: an IP address if it parses as one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST.match(host) or ".." in host:
        raise ConfigError(f"invalid host name {host!r} for a certificate")
    return x509.DNSName(host.lower())


def make_ca(
    name: str = "jointly federation CA",
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    valid_days: int = CA_VALID_DAYS,
    now: dt.datetime | None = None,
) -> CertifiedKey:
    """Create a self-signed CA that may sign party certificates (and nothing else: path length 0)."""
    if not name or len(name) > 64:
        raise ConfigError("a CA name must have 1 to 64 characters")
    if valid_days < 1:
        raise ConfigError("a CA must be valid for at least one day")
    start = _now(now)
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )
    return CertifiedKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise AuthenticationError(f"{what} is not a PEM X.509 certificate") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def issue_party_certificate(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    party: str,
    *,
    extra_hosts: Sequence[str] = (),
    key_type: KeyType = DEFAULT_KEY_TYPE,
    valid_days: int = PARTY_VALID_DAYS,
    now: dt.datetime | None = None,
) -> CertifiedKey:
    """Issue ``party`` a TLS certificate (client and server auth) signed by the CA, with a fresh key.

    Subject CN is the party name; SANs are DNS:``party``, DNS:localhost, IP:127.0.0.1 and
    every host in ``extra_hosts`` (IP literals become IP SANs).
    """
    if not _PARTY_NAME.match(party):
        raise ConfigError(f"invalid party name {party!r}: use [a-z][a-z0-9_-]{{0,31}}")
    if valid_days < 1:
        raise ConfigError("a certificate must be valid for at least one day")
    ca_cert = _load_cert(ca_cert_pem, "the CA certificate")
    if not _is_ca(ca_cert):
        raise ConfigError("the CA certificate is not a CA (basic constraints)")
    try:
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError("the CA key is not an unencrypted PEM private key") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError("the CA key must be an EC or Ed25519 key")
    if ca_key.public_key() != ca_cert.public_key():
        raise ConfigError("the CA key does not belong to the CA certificate")

    names: list[x509.GeneralName] = []
    for host in (party, "localhost", "127.0.0.1", *extra_hosts):
        entry = _host_name(host)
        if entry not in names:
            names.append(entry)

    start = _now(now)
    key = _new_key(key_type)
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(min(start + dt.timedelta(days=valid_days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, _hash_for(ca_key))
    )
    return CertifiedKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def verify_party_certificate(cert_pem: bytes, ca_pem: bytes, *, now: dt.datetime | None = None) -> str:
    """Check that ``cert_pem`` is a party certificate signed by the CA and valid now; return the party name.

    Raises :class:`~jointly.errors.AuthenticationError` naming the problem otherwise.
    """
    cert = _load_cert(cert_pem, "the party certificate")
    ca = _load_cert(ca_pem, "the CA certificate")
    if not _is_ca(ca):
        raise AuthenticationError("the CA certificate is not a CA (basic constraints)")
    if _is_ca(cert):
        raise AuthenticationError("a CA certificate cannot identify a party")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AuthenticationError("the certificate was not issued by the federation CA") from exc
    moment = _now(now)
    for what, c in (("the CA certificate", ca), ("the party certificate", cert)):
        if moment < c.not_valid_before_utc:
            raise AuthenticationError(f"{what} is not valid before {c.not_valid_before_utc.isoformat()}")
        if moment > c.not_valid_after_utc:
            raise AuthenticationError(f"{what} expired on {c.not_valid_after_utc.isoformat()}")
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) != 1 or not isinstance(common_names[0].value, str):
        raise AuthenticationError("the certificate must have exactly one common name")
    party = common_names[0].value
    if not _PARTY_NAME.match(party):
        raise AuthenticationError(f"the certificate names {party!r}, which is not a valid party name")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise AuthenticationError("the certificate has no subject alternative names") from None
    if party not in sans.get_values_for_type(x509.DNSName):
        raise AuthenticationError(f"the certificate's names do not include its party {party!r}")
    return party


def certificate_fingerprint(cert_pem: bytes) -> str:
    """SHA-256 fingerprint of a PEM certificate, as lowercase hex (for display and pinning)."""
    return _load_cert(cert_pem, "the certificate").fingerprint(hashes.SHA256()).hex()
