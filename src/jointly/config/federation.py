"""The federation file: who the parties are, where their nodes listen, which keys prove who they are.

``federation.yaml``::

    name: demo
    ca_cert: ca.pem                    # paths are relative to this file's directory
    parties:
      bank:
        address: 127.0.0.1:50051
        cert: bank/cert.pem            # TLS certificate, public
        key: bank/key.pem              # TLS private key: on bank's own machine only
        signing_key: bank/signing.pem  # Ed25519 private key: on bank's own machine only
        verify_key: bank/verify.pem    # Ed25519 public key

Every party holds the same file; a party's private key files exist only on
that party's machine, so reading them elsewhere fails with a clear
:class:`~jointly.errors.ConfigError`.  :func:`init_federation` creates a
complete federation (CA, certificates, keys, file) for local use and demos;
the CA key it writes (``ca/ca-key.pem``) belongs offline afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jointly.config.job import PARTY_NAME
from jointly.crypto.pki import issue_party_certificate, make_ca
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import ConfigError

FEDERATION_FILE = "federation.yaml"
_FEDERATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)``; ConfigError if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"address {address!r} must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} in address {address!r} is out of range")
    if not host or any(c.isspace() for c in host) or ("[" in host or "]" in host):
        raise ConfigError(f"address {address!r} has an invalid host")
    return host, port


def join_address(host: str, port: int) -> str:
    """The inverse of :func:`split_address` (brackets IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    base = info.context.get("base") if isinstance(info.context, dict) else None
    if value is None or value.is_absolute() or base is None:
        return value
    return (Path(base) / value).resolve()


class PartyEntry(_Strict):
    """One party: its node's address and its key material (private files only on its own machine)."""

    name: str
    address: str
    cert: Path
    verify_key: Path
    key: Path | None = None
    signing_key: Path | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not PARTY_NAME.match(name):
            raise ValueError(f"invalid party name {name!r}: use [a-z][a-z0-9_-]{{0,31}}")
        return name

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str) -> str:
        try:
            split_address(address)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return address

    @field_validator("cert", "verify_key", "key", "signing_key")
    @classmethod
    def _resolve_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    def read_cert(self) -> bytes:
        """The party's TLS certificate (PEM)."""
        return _read_file(self.cert, f"TLS certificate of {self.name!r}")

    def read_key(self) -> bytes:
        """The party's TLS private key (PEM); only on the party's own machine."""
        if self.key is None:
            raise ConfigError(f"the federation file has no TLS key for {self.name!r} (it lives on its machine only)")
        return _read_file(self.key, f"TLS key of {self.name!r}")

    def load_signing_key(self) -> SigningKey:
        """The party's Ed25519 signing key; only on the party's own machine."""
        if self.signing_key is None:
            raise ConfigError(f"the federation file has no signing key for {self.name!r}")
        path = self.signing_key
        try:
            return SigningKey.from_pem(_read_file(path, f"signing key of {self.name!r}"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def load_verify_key(self) -> VerifyKey:
        path = self.verify_key
        try:
            return VerifyKey.from_pem(_read_file(path, f"verify key of {self.name!r}"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


class Federation(_Strict):
    """The parties that may run joint jobs together, trusting one CA."""

    name: str
    ca_cert: Path
    parties: dict[str, PartyEntry] = Field(min_length=1)
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _FEDERATION_NAME.match(name):
            raise ValueError(f"invalid federation name {name!r}: letters, digits, '.', '-', '_' (max 64)")
        return name

    @field_validator("ca_cert")
    @classmethod
    def _resolve_ca(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info) or value

    @model_validator(mode="before")
    @classmethod
    def _name_parties(cls, raw: Any) -> Any:
        """Each party entry takes its name from its key in ``parties``."""
        if isinstance(raw, dict) and isinstance(raw.get("parties"), dict):
            parties = {
                key: {"name": key, **entry} if isinstance(entry, dict) and "name" not in entry else entry
                for key, entry in raw["parties"].items()
            }
            raw = {**raw, "parties": parties}
        return raw

    @model_validator(mode="after")
    def _check_keys(self) -> Federation:
        for key, entry in self.parties.items():
            if key != entry.name:
                raise ValueError(f"party {key!r} names itself {entry.name!r}")
        return self

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: object, *, base: Path | None = None, source: str = "federation") -> Federation:
        """Validate a parsed federation file; relative paths are resolved against ``base``."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(raw, context={"base": base})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from None

    @classmethod
    def load(cls, path: str | Path) -> Federation:
        """Read ``federation.yaml``; every problem is a :class:`ConfigError` naming the file."""
        p = Path(path).absolute()
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: federation file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read federation file: {exc}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        fed = cls.from_dict(raw, base=p.parent, source=str(p))
        fed._source = p
        return fed

    # -- queries ------------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The file this federation was loaded from, if any."""
        return self._source

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(self.parties)

    def party(self, name: str) -> PartyEntry:
        """The entry of party ``name``; ConfigError if it is not a member."""
        entry = self.parties.get(name)
        if entry is None:
            raise ConfigError(
                f"{name!r} is not a party of federation {self.name!r} (parties: {', '.join(self.parties)})"
            )
        return entry

    def read_ca_cert(self) -> bytes:
        """The federation CA certificate (PEM)."""
        return _read_file(self.ca_cert, "CA certificate")


# -- creating a federation ------------------------------------------------------------------
def _free_ports(count: int) -> list[int]:
    """Ports the OS reports free on loopback right now (all held open together, so distinct)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask may have removed bits we asked for; never adds any for keys


def _check_init_args(parties: Sequence[str], host: str, ports: Sequence[int] | None, name: str) -> None:
    if isinstance(parties, str):
        raise ConfigError("parties must be a sequence of names, not one string")
    if not parties:
        raise ConfigError("a federation needs at least one party")
    bad = [p for p in parties if not isinstance(p, str) or not PARTY_NAME.match(p)]
    if bad:
        raise ConfigError(f"invalid party names {bad}: use [a-z][a-z0-9_-]{{0,31}}")
    dupes = sorted({p for p in parties if list(parties).count(p) > 1})
    if dupes:
        raise ConfigError(f"duplicate party names {dupes}")
    if not _FEDERATION_NAME.match(name):
        raise ConfigError(f"invalid federation name {name!r}")
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(f"invalid host {host!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"invalid host {host!r}") from None
    if ports is not None:
        if len(ports) != len(parties):
            raise ConfigError(f"{len(ports)} ports given for {len(parties)} parties")
        if any(isinstance(p, bool) or not isinstance(p, int) or not 0 < p < 65536 for p in ports):
            raise ConfigError(f"ports must be integers in 1..65535, got {list(ports)}")
        if len(set(ports)) != len(ports):
            raise ConfigError(f"duplicate ports {list(ports)}: every party's node needs its own")


def init_federation(
    parties: Sequence[str],
    directory: Path,
    *,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    name: str = "jointly",
) -> Path:
    """Create a federation in ``directory`` (which must not exist or be empty); return its yaml path.

    Writes ``ca.pem``, ``ca/ca-key.pem`` (0600), and per party ``<party>/cert.pem``, ``key.pem`` (0600),
    ``signing.pem`` (0600), ``verify.pem``, then ``federation.yaml``.  Everything is built in a
    temporary sibling directory and renamed into place, so a failure leaves nothing behind.
    """
    _check_init_args(parties, host, ports, name)
    target = Path(directory).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not an empty directory; not overwriting")
    chosen = list(ports) if ports is not None else _free_ports(len(parties))
    extra_hosts = [] if host in ("127.0.0.1", "localhost") else [host]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise ConfigError(f"cannot create {target}: {exc.strerror or exc}") from None
    try:
        ca = make_ca(f"{name} federation CA")
        _write(tmp / "ca.pem", ca.cert_pem)
        (tmp / "ca").mkdir(mode=0o700)
        _write(tmp / "ca" / "ca-key.pem", ca.key_pem, 0o600)
        entries: dict[str, dict[str, str]] = {}
        for party, port in zip(parties, chosen, strict=True):
            issued = issue_party_certificate(ca.cert_pem, ca.key_pem, party, extra_hosts=extra_hosts)
            signing = SigningKey.generate()
            (tmp / party).mkdir(mode=0o700)
            _write(tmp / party / "cert.pem", issued.cert_pem)
            _write(tmp / party / "key.pem", issued.key_pem, 0o600)
            _write(tmp / party / "signing.pem", signing.to_pem(), 0o600)
            _write(tmp / party / "verify.pem", signing.verify_key.to_pem())
            entries[party] = {
                "address": join_address(host, port),
                "cert": f"{party}/cert.pem",
                "key": f"{party}/key.pem",
                "signing_key": f"{party}/signing.pem",
                "verify_key": f"{party}/verify.pem",
            }
        doc = {"name": name, "ca_cert": "ca.pem", "parties": entries}
        Federation.from_dict(doc, base=tmp, source="generated federation")  # never write a file we cannot load
        text = yaml.safe_dump(doc, sort_keys=False)
        _write(tmp / FEDERATION_FILE, text.encode("utf-8"))
        os.rename(tmp, target)  # atomic; replaces an empty directory
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot create federation in {target}: {exc.strerror or exc}") from exc
        raise
    return target / FEDERATION_FILE
