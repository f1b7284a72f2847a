"""Entries, heads and cosignatures: canonical bytes, strict decoding, limits, domain-separated signatures."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.audit.entry import ENTRY_DOMAIN, MAX_ENTRY_BYTES, LedgerEntry, SignedEntry
from jointly.audit.heads import COSIGN_DOMAIN, HEAD_DOMAIN, Cosignature, SignedTreeHead, TreeHead
from jointly.audit.merkle import leaf_hash
from jointly.crypto.signing import SigningKey
from jointly.errors import AuthenticationError, CodecError, ConfigError

KEY = SigningKey.generate()


def entry(**changes: object) -> LedgerEntry:
    fields: dict[str, object] = {
        "party": "alice",
        "seq": 3,
        "time": 1700000000.25,
        "job_id": "job-1",
        "event": "stage",
        "stage": "psi/blind",
        "data": {"sent_sha256": "ab" * 32, "count": 12, "ok": True, "none": None, "ratio": 0.5, "peers": ["bob"]},
    }
    fields.update(changes)
    return LedgerEntry(**fields)  # type: ignore[arg-type]


def test_encoding_is_canonical_json() -> None:
    e = entry(stage="étape")
    raw = e.encode()
    assert raw.startswith(b'{"data":{"count":12,"none":null,"ok":true,"peers":["bob"],"ratio":0.5,"sent_sha256":')
    assert b" " not in raw
    assert "étape".encode() in raw
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    again = LedgerEntry.decode(raw)
    assert again == e
    assert again.encode() == raw
    assert entry(time=5).time == 5.0 and isinstance(entry(time=5).time, float)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"not json",
        b"\xff\xfe",
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0,"extra":1}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":""}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":-1,"stage":"","time":1.0}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":true,"stage":"","time":1.0}',
        b'{"data":{},"event":"","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{"k":{"nested":1}},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{"k":[[1]]},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{"k":NaN},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{"k":1e400},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{"k":99999999999999999999},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{}, "event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"event":"x","data":{},"job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0,"time":2.0}',
        b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.00}',
        b'{"data":{},"event":"\\u0061","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b'{"data":{},"event":"x\\n","job_id":"","party":"a","seq":0,"stage":"","time":1.0}',
        b"[" * 5000 + b"]" * 5000,
        b"x" * (MAX_ENTRY_BYTES + 1),
    ],
)
def test_decode_rejects_anything_but_a_canonical_entry(raw: bytes) -> None:
    with pytest.raises(CodecError):
        LedgerEntry.decode(raw)


def test_decode_accepts_the_canonical_form() -> None:
    raw = b'{"data":{},"event":"x","job_id":"","party":"a","seq":0,"stage":"","time":1.0}'
    assert LedgerEntry.decode(raw).event == "x"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"data": {"rows": "x" * 257}}, "257-character string"),
        ({"data": {"ids": list(range(65))}}, "65 items"),
        ({"data": {f"k{i}": i for i in range(65)}}, "65 keys"),
        ({"data": {"k": {"nested": 1}}}, "dict values are not allowed"),
        ({"data": {"k": b"raw"}}, "bytes values are not allowed"),
        ({"data": {"k": float("nan")}}, "finite"),
        ({"data": {"k": 2**63}}, "64-bit"),
        ({"data": {"": 1}}, "data keys"),
        ({"data": {f"k{i}": ["y" * 200] * 2 for i in range(30)}}, "over the 8192-byte limit"),
        ({"party": ""}, "party"),
        ({"event": ""}, "event"),
        ({"job_id": "j" * 129}, "job_id"),
        ({"stage": "a\nb"}, "printable"),
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"time": float("inf")}, "time"),
        ({"time": -1.0}, "time"),
    ],
)
def test_raw_data_and_malformed_fields_are_refused(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        entry(**changes)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.dictionaries(st.text(min_size=1, max_size=20), SCALARS | st.lists(SCALARS, max_size=5), max_size=8),
    seq=st.integers(0, 2**63 - 1),
    time=st.floats(0, 1e12),
    stage=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf", "Co", "Cn")), max_size=30),
)
def test_any_entry_in_limits_round_trips_canonically(
    data: dict[str, object], seq: int, time: float, stage: str
) -> None:
    e = LedgerEntry("alice", seq, time, "job", "stage", stage, data)  # type: ignore[arg-type]
    raw = e.encode()
    back = LedgerEntry.decode(raw)
    assert back == e and back.encode() == raw
    signed = SignedEntry.sign(back, KEY)
    assert SignedEntry.decode(signed.encode()) == signed


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ConfigError, match="Unicode"):
        entry(data={"reason": "bad \ud800 text"})


def test_entry_is_immutable() -> None:
    e = entry()
    with pytest.raises(TypeError):
        e.data["count"] = 13  # type: ignore[index]
    with pytest.raises(AttributeError):
        e.seq = 4  # type: ignore[misc]


def test_signed_entry_round_trip_and_signature() -> None:
    signed = SignedEntry.sign(entry(), KEY)
    raw = signed.encode()
    assert raw[0] == 1 and len(raw) == 1 + 64 + len(signed.entry_bytes)
    back = SignedEntry.decode(raw)
    assert back == signed
    back.verify(KEY.verify_key)
    assert back.leaf_hash == leaf_hash(raw)
    KEY.verify_key.verify(ENTRY_DOMAIN + signed.entry_bytes, signed.signature)
    with pytest.raises(AuthenticationError):
        KEY.verify_key.verify(signed.entry_bytes, signed.signature)  # no domain: not the signed message
    with pytest.raises(AuthenticationError):
        back.verify(SigningKey.generate().verify_key)
    altered = SignedEntry(entry(seq=4), entry(seq=4).encode(), signed.signature)
    with pytest.raises(AuthenticationError):
        altered.verify(KEY.verify_key)
    for bad in (b"", b"\x02" + raw[1:], raw[:64], raw[:-1], 5):
        with pytest.raises(CodecError):
            SignedEntry.decode(bad)  # type: ignore[arg-type]


def test_heads_and_cosignatures_round_trip() -> None:
    root = leaf_hash(b"r")
    head = TreeHead("alice", 10, root, 123.5)
    signed = SignedTreeHead.sign(head, KEY)
    back = SignedTreeHead.decode(signed.encode())
    assert back == signed and (back.party, back.size, back.root) == ("alice", 10, root)
    back.verify(KEY.verify_key)
    bob = SigningKey.generate()
    cosig = Cosignature.sign(head, signer="bob", key=bob, time=200)
    again = Cosignature.decode(cosig.encode())
    assert again == cosig and again.matches(head) and again.time == 200.0
    again.verify(bob.verify_key)
    with pytest.raises(AuthenticationError):
        again.verify(KEY.verify_key)
    assert json.loads(json.dumps(again.to_dict()))["root"] == root.hex()


def test_signatures_cannot_stand_in_for_one_another() -> None:
    head = TreeHead("alice", 1, leaf_hash(b"r"), 1.0)
    signed_head = SignedTreeHead.sign(head, KEY)
    cosig = Cosignature.sign(head, signer="alice", key=KEY, time=1.0)
    # a head signature does not verify as a cosignature over the same-looking state, nor the other way round
    forged = Cosignature("alice", "alice", 1, head.root, 1.0, signed_head.signature)
    with pytest.raises(AuthenticationError):
        forged.verify(KEY.verify_key)
    with pytest.raises(AuthenticationError):
        SignedTreeHead(head, signed_head.head_bytes, cosig.signature).verify(KEY.verify_key)
    assert HEAD_DOMAIN != COSIGN_DOMAIN != ENTRY_DOMAIN


@pytest.mark.parametrize(
    "body",
    [
        b'{"party":"alice","root":"' + b"00" * 32 + b'","size":1,"time":1.0,"x":1}',
        b'{"party":"alice","root":"' + b"00" * 31 + b'","size":1,"time":1.0}',
        b'{"party":"alice","root":"' + b"AA" * 32 + b'","size":1,"time":1.0}',
        b'{"party":"alice","root":"' + b"00" * 32 + b'","size":-1,"time":1.0}',
        b'{"party":"alice","root":"' + b"00" * 32 + b'","size":1,"time":1}',
        b'{"party":"","root":"' + b"00" * 32 + b'","size":1,"time":1.0}',
        b'{"root":"' + b"00" * 32 + b'","party":"alice","size":1,"time":1.0}',
    ],
)
def test_head_decode_is_strict(body: bytes) -> None:
    with pytest.raises(CodecError):
        SignedTreeHead.decode(b"\x01" + b"s" * 64 + body)


def test_head_values_are_checked() -> None:
    with pytest.raises(ConfigError):
        TreeHead("alice", 1, b"short", 1.0)
    with pytest.raises(ConfigError):
        TreeHead("alice", -1, leaf_hash(b""), 1.0)
    with pytest.raises(ConfigError):
        Cosignature("bob", "alice", 1, leaf_hash(b""), 1.0, b"short")
