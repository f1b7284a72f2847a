from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from jointly.config import federation as federation_module
from jointly.config.federation import FEDERATION_FILE, Federation, init_federation, split_address
from jointly.crypto import pki
from jointly.crypto.pki import verify_party_certificate
from jointly.errors import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_then_load_round_trip(tmp_path: Path) -> None:
    path = init_federation(["bank", "telco"], tmp_path / "fed", name="demo", ports=[50051, 50052])
    assert path == tmp_path / "fed" / FEDERATION_FILE
    fed = Federation.load(path)
    assert fed.name == "demo" and fed.party_names == ("bank", "telco") and fed.source == path
    bank = fed.party("bank")
    assert (bank.name, bank.address, bank.host, bank.port) == ("bank", "127.0.0.1:50051", "127.0.0.1", 50051)
    assert bank.cert == tmp_path / "fed" / "bank" / "cert.pem" and bank.cert.is_absolute()
    assert fed.ca_cert == tmp_path / "fed" / "ca.pem"
    # the file itself keeps paths relative, so the directory can be moved or copied
    raw = yaml.safe_load(path.read_text())
    assert raw["parties"]["bank"]["cert"] == "bank/cert.pem"
    for party in fed.party_names:
        entry = fed.party(party)
        assert verify_party_certificate(entry.read_cert(), fed.read_ca_cert()) == party
        assert entry.load_signing_key().verify_key == entry.load_verify_key()
        assert entry.key is not None and entry.signing_key is not None
        assert _mode(entry.key) == 0o600 and _mode(entry.signing_key) == 0o600
        assert b"PRIVATE KEY" in entry.read_key()
    assert _mode(tmp_path / "fed" / "ca" / "ca-key.pem") == 0o600
    assert fed.party("bank").load_signing_key().verify_key != fed.party("telco").load_verify_key()


def test_free_ports_are_picked_and_distinct(tmp_path: Path) -> None:
    fed = Federation.load(init_federation(["a", "b", "c"], tmp_path / "fed"))
    ports = [fed.party(p).port for p in fed.party_names]
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)


def test_extra_host_goes_into_the_certificates(tmp_path: Path) -> None:
    fed = Federation.load(init_federation(["bank"], tmp_path / "fed", host="node.example.org", ports=[7000]))
    assert fed.party("bank").address == "node.example.org:7000"
    cert = x509.load_pem_x509_certificate(fed.party("bank").read_cert())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node.example.org" in sans.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("parties", "kwargs", "message"),
    [
        (["Bank"], {}, "invalid party names"),
        (["bank", "te lco"], {}, "invalid party names"),
        (["1bank"], {}, "invalid party names"),
        (["x" * 33], {}, "invalid party names"),
        (["bank", "bank"], {}, "duplicate party names"),
        ([], {}, "at least one party"),
        (["bank", "telco"], {"ports": [5000]}, "2 parties"),
        (["bank", "telco"], {"ports": [5000, 5000]}, "duplicate ports"),
        (["bank"], {"ports": [70000]}, "1..65535"),
        (["bank"], {"name": "bad name!"}, "federation name"),
        (["bank"], {"host": "a b"}, "invalid host"),
    ],
)
def test_init_refuses_bad_arguments(tmp_path: Path, parties: list[str], kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        init_federation(parties, tmp_path / "fed", **kwargs)
    assert not (tmp_path / "fed").exists()


def test_init_refuses_to_overwrite_but_fills_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert init_federation(["bank"], tmp_path / "empty").exists()
    with pytest.raises(ConfigError, match="not overwriting"):
        init_federation(["bank"], tmp_path / "empty")


def test_a_failure_halfway_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pki.issue_party_certificate
    calls = []

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(federation_module, "issue_party_certificate", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        init_federation(["bank", "telco"], tmp_path / "fed")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary directory


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "federation.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


BANK: dict[str, str] = {"address": "127.0.0.1:1", "cert": "b.pem", "verify_key": "v.pem"}
GOOD: dict[str, object] = {
    "name": "demo",
    "ca_cert": "ca.pem",
    "parties": {"bank": BANK},
}


def test_partner_entries_need_no_private_keys(tmp_path: Path) -> None:
    fed = Federation.load(_write(tmp_path, GOOD))
    bank = fed.party("bank")
    assert bank.key is None and bank.signing_key is None and bank.verify_key == tmp_path / "v.pem"
    with pytest.raises(ConfigError, match="no TLS key for 'bank'"):
        bank.read_key()
    with pytest.raises(ConfigError, match="no signing key"):
        bank.load_signing_key()
    with pytest.raises(ConfigError, match=r"does not exist"):
        bank.read_cert()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- a list", "mapping at the top level"),
        ({k: v for k, v in GOOD.items() if k != "ca_cert"}, "ca_cert"),
        ({**GOOD, "parties": {"bank": {"address": "127.0.0.1:1", "cert": "b.pem"}}}, "verify_key"),
        ({**GOOD, "parties": {"bank": {**BANK, "address": "nohost"}}}, "host:port"),
        ({**GOOD, "parties": {"bank": {**BANK, "address": "h:99999"}}}, "out of range"),
        ({**GOOD, "parties": {"Bad!": BANK}}, "invalid party name"),
        ({**GOOD, "parties": {}}, "parties"),
        ({**GOOD, "surprise": 1}, "surprise"),
        ({**GOOD, "parties": {"bank": {**BANK, "name": "telco"}}}, "names itself"),
    ],
)
def test_load_reports_problems_clearly(tmp_path: Path, doc: object, message: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError, match=message) as info:
        Federation.load(path)
    assert str(path) in str(info.value)


def test_missing_file_and_unknown_party(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="federation file not found"):
        Federation.load(tmp_path / "nope.yaml")
    fed = Federation.load(_write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="'mallory' is not a party of federation 'demo'"):
        fed.party("mallory")


def test_split_address() -> None:
    assert split_address("[::1]:50051") == ("::1", 50051)
    assert split_address("node.example:1") == ("node.example", 1)
    for bad in ("nohost", ":80", "h:", "h:0", "h:x", "a b:1"):
        with pytest.raises(ConfigError):
            split_address(bad)
