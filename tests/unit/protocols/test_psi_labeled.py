"""Unbalanced labeled PSI: correctness, bad input, what the server sees, what the client can open."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jointly.channel import Channel
from jointly.channel.codec import decode, encode
from jointly.channel.memory import MemoryHub
from jointly.crypto.ecc import EcdhKey, encode_to_curve_points
from jointly.errors import ConfigError, DataError, PermissionDenied, ProtocolAborted, ProtocolViolation
from jointly.protocols.psi import _labeled_seal as seal
from jointly.protocols.psi.labeled import (
    LabeledPsiClient,
    LabeledPsiConfig,
    LabeledPsiServer,
    LabeledTable,
    QueryHello,
    run_labeled_psi_client,
    run_labeled_psi_server,
)

N_SERVER = 5000
CFG = LabeledPsiConfig(workers=1, max_query_ids=500)


def label_of(i: int) -> bytes:
    # lengths 0..12 and bytes that look like padding (0x80, trailing zeros) exercise the unpadding
    return [b"", b"\x00", b"\x80", b"fraud\x80\x00", b"AML-%d" % i, b"chargeback-%06d" % i][i % 6]


@pytest.fixture(scope="module")
def items() -> dict[str, bytes]:
    return {f"cust-{i:07d}": label_of(i) for i in range(N_SERVER)}


@pytest.fixture(scope="module")
def key() -> EcdhKey:
    return EcdhKey.generate()


@pytest.fixture(scope="module")
def server(items: dict[str, bytes], key: EcdhKey) -> LabeledPsiServer:
    return LabeledPsiServer(items, config=CFG, key=key)


def query(server: LabeledPsiServer, ids: Sequence[str], client_cfg: LabeledPsiConfig = CFG) -> dict[str, bytes | None]:
    client = LabeledPsiClient(server.table(), config=client_cfg)
    blinded, state = client.blind(ids)
    return client.finish(server.evaluate(blinded), state)


def mixed_ids(rng: np.random.Generator, n: int) -> list[str]:
    present = [f"cust-{i:07d}" for i in rng.choice(N_SERVER, n // 2, replace=False)]
    absent = [f"cust-{i:07d}" for i in rng.choice(np.arange(N_SERVER, 3 * N_SERVER), n - n // 2, replace=False)]
    return [*present, *absent, "", "ünïcode-id"][:n]


# -- correctness ----------------------------------------------------------------------------
def test_labels_of_present_and_absent_ids(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    ids = mixed_ids(np.random.default_rng(1), 300)
    got = query(server, ids)
    assert list(got) == ids
    assert got == {i: items.get(i) for i in ids}
    assert sum(v is not None for v in got.values()) == 150
    assert server.table().size == N_SERVER and server.table().label_bytes == len(b"chargeback-000000")


def test_single_and_empty_queries(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    assert query(server, ["cust-0000003"]) == {"cust-0000003": items["cust-0000003"]}
    assert query(server, ["not-there"]) == {"not-there": None}
    assert query(server, []) == {}


def test_sequence_input_fixed_label_size_and_short_tags() -> None:
    pairs = [(f"{i}", bytes([i % 256]) * (i % 5)) for i in range(300)]
    cfg = LabeledPsiConfig(workers=1, label_bytes=8, tag_bytes=8)
    srv = LabeledPsiServer(pairs, config=cfg)
    assert srv.table().label_bytes == 8 and srv.table().sealed.shape == (301, 8 + 17)
    assert srv.table().tags.dtype == np.dtype("S8")
    assert query(srv, ["7", "299", "300"], cfg) == {"7": b"\x07\x07", "299": b"\x2b" * 4, "300": None}
    with pytest.raises(DataError, match="over label_bytes"):
        LabeledPsiServer([("a", b"123456789")], config=cfg)


def test_colliding_tags_are_resolved_by_the_aead(items: dict[str, bytes], key: EcdhKey) -> None:
    # put before every row a decoy with the same tag and another row's sealed label: lookups find
    # two rows per tag, and only the right key opens the right one
    srv = LabeledPsiServer(list(items.items())[:50], config=CFG, key=key)
    table = srv.table()
    n = len(table.tags)
    decoys = table.sealed[np.roll(np.arange(n), 1)]
    sealed = np.stack([decoys, table.sealed], axis=1).reshape(2 * n, -1)
    doubled = LabeledTable(table.version, table.table_id, table.tag_bytes, table.label_bytes,
                           np.repeat(table.tags, 2), sealed)  # fmt: skip
    client = LabeledPsiClient(doubled, config=CFG)
    ids = [*list(items)[:50:7], "absent-1"]
    blinded, state = client.blind(ids)
    assert client.finish(srv.evaluate(blinded), state) == {i: items.get(i) for i in ids}


def test_unblinding_inverts_the_blinding_scalar() -> None:
    for _ in range(50):
        r = seal.clamped_scalar()
        s1, s2 = seal.unblinding_pair(r)
        for s in (r, s1, s2):
            assert s % 8 == 0 and 1 << 254 <= s < 1 << 255
        assert (r * s1 * s2) % seal.ELL in (1, seal.ELL - 1)
    key, ids = EcdhKey.generate(), [b"a", b"b", secrets.token_bytes(20)]
    r = seal.clamped_scalar()
    s1, s2 = (EcdhKey(seal.scalar_bytes(s)) for s in seal.unblinding_pair(r))
    evaluated = key.reencrypt(EcdhKey(seal.scalar_bytes(r)).hash_encrypt(ids, workers=1), workers=1)
    assert (s2.reencrypt(s1.reencrypt(evaluated, workers=1), workers=1) == key.hash_encrypt(ids, workers=1)).all()


def test_hkdf_is_rfc5869() -> None:
    ikm, salt = secrets.token_bytes(32), seal.DOMAIN + secrets.token_bytes(16)
    expected = HKDF(hashes.SHA512(), 64, salt, seal.INFO).derive(ikm)
    assert seal.hkdf_sha512(ikm, salt) == expected
    points = np.frombuffer(ikm + bytes(32), dtype="S32")  # a trailing zero byte must not be dropped
    tags, keys = seal.derive(points, salt[len(seal.DOMAIN) :], 12)
    assert keys[0] == expected[:32] and tags.tobytes()[:12] == expected[32:44]
    assert keys[1] == seal.hkdf_sha512(bytes(32), salt)[:32]


def test_table_survives_the_codec(server: LabeledPsiServer) -> None:
    table = decode(encode(server.table()))
    assert isinstance(table, LabeledTable)
    assert table.table_id == server.table_id
    assert (table.tags == server.table().tags).all() and (table.sealed == server.table().sealed).all()
    assert query(server, ["cust-0000010"]) == {"cust-0000010": label_of(10)}


# -- over a channel -------------------------------------------------------------------------
def run(
    server: LabeledPsiServer,
    ids: Sequence[str],
    *,
    table: LabeledTable | None = None,
    send_table: bool = True,
    hub: MemoryHub | None = None,
) -> tuple[int, dict[str, bytes | None], LabeledTable, MemoryHub]:
    hub = hub or MemoryHub(["bank", "registry"])

    def srv(ch: Channel) -> int:
        return run_labeled_psi_server(ch, "bank", server, send_table=send_table)

    def cli(ch: Channel) -> tuple[dict[str, bytes | None], LabeledTable]:
        return run_labeled_psi_client(ch, "registry", ids, table=table, config=CFG)

    out = hub.run({"registry": srv, "bank": cli}, timeout=60)  # type: ignore[dict-item]
    found, got_table = out["bank"]  # type: ignore[misc]
    return out["registry"], found, got_table, hub  # type: ignore[return-value]


def test_run_over_memory_hub_caches_the_table(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    ids = mixed_ids(np.random.default_rng(2), 100)
    count, found, table, hub = run(server, ids)
    assert count == 100 and found == {i: items.get(i) for i in ids}
    first = sum(len(d) for src, _, _, d in hub.log if src == "registry")
    assert first > server.table().nbytes  # the table went over
    count, found, _, hub = run(server, ids[:10], table=table)
    assert count == 10 and found == {i: items.get(i) for i in ids[:10]}
    assert sum(len(d) for src, _, _, d in hub.log if src == "registry") < 1000  # no table this time


def test_a_server_restored_from_its_stored_table_and_key_answers_without_preprocessing(
    server: LabeledPsiServer, items: dict[str, bytes], key: EcdhKey
) -> None:
    stored = decode(encode(server.table()))
    assert isinstance(stored, LabeledTable)
    restored = LabeledPsiServer.restore(stored, config=CFG, key=key)
    ids = mixed_ids(np.random.default_rng(5), 40)
    assert query(restored, ids) == {i: items.get(i) for i in ids}
    with pytest.raises(ConfigError, match="not made with this key"):
        LabeledPsiServer.restore(stored, config=CFG, key=EcdhKey.generate())


def test_stale_cached_table(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    old = LabeledPsiServer(list(items.items())[:100], config=CFG).table()  # before the server's key rotated
    _, found, table, _ = run(server, ["cust-0000001"], table=old)
    assert table.table_id == server.table_id and found == {"cust-0000001": label_of(1)}
    with pytest.raises(ConfigError, match="new labeled PSI table"):
        run(server, ["cust-0000001"], table=old, send_table=False)
    # a client that uses the old table with the new evaluation is caught by the canary
    client = LabeledPsiClient(old, config=CFG)
    blinded, state = client.blind(["cust-0000001"])
    with pytest.raises(ProtocolViolation, match="canary"):
        client.finish(server.evaluate(blinded), state)


def test_server_refuses_too_many_ids_and_spent_budget(items: dict[str, bytes]) -> None:
    srv = LabeledPsiServer(list(items.items())[:100], config=LabeledPsiConfig(workers=1, max_query_ids=5))
    with pytest.raises(ConfigError, match="max_query_ids"):
        LabeledPsiClient(srv.table(), config=LabeledPsiConfig(max_query_ids=5)).blind([str(i) for i in range(6)])
    big = LabeledPsiClient(srv.table(), config=LabeledPsiConfig(workers=1))
    blinded, _ = big.blind([str(i) for i in range(6)])
    with pytest.raises(ProtocolViolation, match="max_query_ids"):
        srv.evaluate(blinded)
    assert len(srv.evaluate(blinded[:6])) == 6  # 5 ids and the canary
    hub = MemoryHub(["bank", "registry"])
    with pytest.raises(ProtocolViolation, match="max_query_ids"):
        hub.run({
            "registry": lambda ch: run_labeled_psi_server(ch, "bank", srv),
            "bank": lambda ch: run_labeled_psi_client(ch, "registry", [str(i) for i in range(6)], config=CFG),
        })  # fmt: skip

    budget = LabeledPsiServer(list(items.items())[:100], config=LabeledPsiConfig(workers=1, client_budget=12))
    client = LabeledPsiClient(budget.table(), config=CFG)
    budget.evaluate(client.blind([str(i) for i in range(5)])[0], client="bank")  # 6 points
    assert budget.spent("bank") == 6 and budget.spent("other") == 0
    budget.evaluate(client.blind([str(i) for i in range(5)])[0], client="bank")  # 12 points
    with pytest.raises(PermissionDenied, match="12"):
        budget.evaluate(client.blind(["x"])[0], client="bank")
    budget.evaluate(client.blind(["x"])[0], client="other")  # budgets are per client
    with pytest.raises(PermissionDenied):
        run(budget, ["x"])
    assert budget.spent("bank") == 12


def test_client_refuses_malformed_or_wrong_evaluations(server: LabeledPsiServer) -> None:
    client = LabeledPsiClient(server.table(), config=CFG)
    blinded, state = client.blind(["cust-0000001", "cust-0000002", "nope"])
    good = server.evaluate(blinded)
    non_canonical = good.copy()
    non_canonical[1] = b"\xff" * 32
    low_order = good.copy()
    low_order[0] = bytes(32)
    for bad in (
        good[:-1],
        np.concatenate([good, good[:1]]),
        good.astype("S31"),
        np.frombuffer(good.tobytes(), dtype=np.uint8),
        good.reshape(2, 2),
        list(good),
        non_canonical,
        low_order,
        blinded,  # the server did nothing
        EcdhKey.generate().reencrypt(blinded, workers=1),  # another key
    ):
        with pytest.raises(ProtocolViolation):
            client.finish(bad, state)  # type: ignore[arg-type]
    assert client.finish(good, state) == {"cust-0000001": label_of(1), "cust-0000002": label_of(2), "nope": None}


def test_server_refuses_malformed_queries(server: LabeledPsiServer) -> None:
    blinded, _ = LabeledPsiClient(server.table(), config=CFG).blind(["a", "b"])
    bad_point = blinded.copy()
    bad_point[0] = b"\xff" * 32
    for bad in (blinded[:0], blinded.astype("S16"), blinded.reshape(1, 3), bad_point, [1, 2]):
        with pytest.raises(ProtocolViolation):
            server.evaluate(bad)  # type: ignore[arg-type]
    hub = MemoryHub(["bank", "registry"])

    def liar(ch: Channel) -> None:  # announces 1 id, sends 2
        sub = ch.sub("labeled-psi")
        sub.send("registry", "hello", QueryHello(1, server.table_id, 1))
        sub.recv("registry", "table")
        sub.send("registry", "query", blinded)
        sub.recv("registry", "evaluated")

    with pytest.raises((ProtocolViolation, ProtocolAborted)):
        hub.run({"registry": lambda ch: run_labeled_psi_server(ch, "bank", server), "bank": liar}, timeout=20)


def test_bad_tables_and_inputs_are_refused(server: LabeledPsiServer) -> None:
    t = server.table()
    fields = (t.version, t.table_id, t.tag_bytes, t.label_bytes, t.tags, t.sealed)
    for i, value in (
        (0, 2),
        (1, b"short"),
        (2, 4),
        (3, -1),
        (4, t.tags[::-1].copy()),
        (4, t.tags.astype("S11")),
        (5, t.sealed[:, :-1].copy()),
        (5, t.sealed[:-1].copy()),
    ):
        changed = list(fields)
        changed[i] = value
        with pytest.raises(ProtocolViolation):
            LabeledPsiClient(LabeledTable(*changed), config=CFG)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="duplicate"):
        LabeledPsiServer([("1", b""), ("1", b"x")], config=CFG)
    with pytest.raises(DataError, match="not bytes"):
        LabeledPsiServer({"1": "text"}, config=CFG)  # type: ignore[dict-item]
    with pytest.raises(DataError, match="duplicate"):
        LabeledPsiClient(t, config=CFG).blind(["a", "a"])
    for bad_cfg in ({"max_query_ids": 0}, {"tag_bytes": 4}, {"label_bytes": -1}, {"workers": 0}, {"client_budget": 0}):
        with pytest.raises(ConfigError):
            LabeledPsiConfig(**bad_cfg)  # type: ignore[arg-type]


# -- leakage --------------------------------------------------------------------------------
def client_messages(hub: MemoryHub) -> list[tuple[str, bytes]]:
    return [(tag, data) for src, _dst, tag, data in hub.log if src == "bank"]


def bit_balance(points: np.ndarray) -> float:
    bits = np.unpackbits(np.frombuffer(points.tobytes(), dtype=np.uint8).reshape(len(points), 32)[:, :31], axis=1)
    return float(bits.mean())


def test_server_view_depends_only_on_the_query_size(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    members = list(items)[:200]
    strangers = [f"someone-else-{i}" for i in range(200)]
    views = []
    for ids in (members, strangers, members):
        _, _, _, hub = run(server, ids, table=server.table())
        sent = client_messages(hub)
        assert [tag for tag, _ in sent] == ["labeled-psi/hello", "labeled-psi/query"]
        for ident in ids:
            assert all(ident.encode() not in data for _, data in sent)
        query = decode(sent[1][1])
        assert isinstance(query, np.ndarray) and query.dtype == np.dtype("S32") and len(query) == 201
        raw = np.frombuffer(query.tobytes(), dtype=np.uint8).reshape(-1, 32)
        assert (raw[:, 31] < 0x80).all()  # canonical encodings
        assert len({row.tobytes() for row in raw}) == 201  # distinct
        assert 0.47 < bit_balance(query) < 0.53  # 200 * 248 bits: 0.5 +- 0.0023 std
        views.append((query, [len(data) for _, data in sent]))
    assert views[0][1] == views[1][1] == views[2][1]  # same message sizes whoever is queried
    # the same ids queried twice look unrelated: a fresh blinding scalar each time
    assert not set(views[0][0].tolist()) & set(views[2][0].tolist())
    assert not set(views[0][0].tolist()) & set(server.table().tags.tolist())


def test_table_reveals_nothing_without_the_key(server: LabeledPsiServer, items: dict[str, bytes]) -> None:
    table = server.table()
    blob = encode(table)
    for ident in list(items)[:50]:
        assert ident.encode() not in blob
    assert b"chargeback-" not in blob and b"AML-" not in blob
    for part in (table.sealed[:, -16:], np.frombuffer(table.tags.tobytes(), dtype=np.uint8)):
        assert 0.49 < float(np.unpackbits(part).mean()) < 0.51  # >= 480k bits: 0.5 +- 0.0007 std
    # someone who knows every server id but not the key derives tags and keys that fit no row
    ids = [i.encode() for i in items]
    unkeyed = encode_to_curve_points(ids[:500], workers=1)
    guessed = EcdhKey.generate().hash_encrypt(ids[:500], workers=1)
    rows = [table.sealed[i].tobytes() for i in range(0, len(table.tags), 50)]
    for points in (unkeyed, guessed, np.frombuffer(secrets.token_bytes(32 * 20), dtype="S32")):
        tags, keys = seal.derive(points, table.table_id, table.tag_bytes)
        assert not np.isin(tags, table.tags).any()
        assert all(seal.open_label(k, row) is None for k in keys[:20] for row in rows)


def test_client_cannot_open_labels_it_did_not_query(server: LabeledPsiServer, key: EcdhKey) -> None:
    table = server.table()
    client = LabeledPsiClient(table, config=CFG)
    queried = ["cust-0000004", "cust-0000005", "absent"]
    blinded, state = client.blind(queried)
    evaluated = server.evaluate(blinded)
    assert client.finish(evaluated, state) == {"cust-0000004": label_of(4), "cust-0000005": label_of(5), "absent": None}
    # everything the client holds: its unblinded values; they open exactly the queried rows and the canary
    s1, s2 = state.unblind
    mine = s2.reencrypt(s1.reencrypt(evaluated, workers=1), workers=1)
    _, keys = seal.derive(mine, table.table_id, table.tag_bytes)
    rows = [table.sealed[row].tobytes() for row in range(len(table.tags))]
    opened = {row for k in keys for row, sealed in enumerate(rows) if seal.open_label(k, sealed) is not None}
    expected = key.hash_encrypt([b"cust-0000004", b"cust-0000005", seal.CANARY_ID], workers=1)
    expected_tags, _ = seal.derive(expected, table.table_id, table.tag_bytes)
    assert opened == set(np.flatnonzero(np.isin(table.tags, expected_tags)).tolist())
    assert len(opened) == 3
    # and random keys open nothing anywhere
    sample = np.random.default_rng(3).choice(len(table.tags), 300, replace=False)
    for k in (secrets.token_bytes(32) for _ in range(5)):
        assert all(seal.open_label(k, table.sealed[row].tobytes()) is None for row in sample)
