"""ECDH PSI over the in-memory channel: correctness, what crosses the wire, and bad input."""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointly.channel import Channel
from jointly.channel.codec import decode
from jointly.channel.memory import MemoryHub
from jointly.crypto import ecc
from jointly.crypto.ecc import EcdhKey
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.psi import PsiConfig, PsiResult, run_psi
from jointly.protocols.psi import ecdh as ecdh_module
from jointly.protocols.psi.common import secure_permutation
from jointly.protocols.psi.ecdh import VERSION, Hello, _fingerprint

Ids = Sequence[str | int]


def run(
    sets: Mapping[str, Ids], hub: MemoryHub | None = None, **config: object
) -> tuple[dict[str, PsiResult], MemoryHub]:
    hub = hub or MemoryHub(list(sets))
    cfg = PsiConfig(**{"workers": 1, "batch_size": 64, **config})  # type: ignore[arg-type]
    fns = {party: (lambda ch, ids=ids: run_psi(ch, ids, cfg)) for party, ids in sets.items()}
    return hub.run(fns, timeout=60), hub


def common(sets: Mapping[str, Ids]) -> set[str]:
    return set.intersection(*({str(i) for i in ids} for ids in sets.values()))


def check(sets: Mapping[str, Ids], results: dict[str, PsiResult], receivers: Sequence[str], mode: str) -> None:
    expected = common(sets)
    for party, result in results.items():
        assert result.party == party and result.mode == mode
        if party not in receivers:
            assert result.size is None and result.intersection is None
            continue
        assert result.size == len(expected)
        if mode == "cardinality":
            assert result.intersection is None
            continue
        assert result.intersection is not None
        assert {str(i) for i in result.intersection} == expected
        assert [str(i) for i in result.intersection] == sorted(expected)  # same order for every receiver
        own = {str(i): i for i in sets[party]}
        assert all(i is own[str(i)] for i in result.intersection)  # the party's own ids, as given


def make_sets(sizes: dict[str, int], shared: int, seed: int = 0, prefix: str = "cust") -> dict[str, list[str | int]]:
    rng = random.Random(seed)
    both: list[str | int] = [f"{prefix}-shared-{rng.getrandbits(48):015d}" for _ in range(shared)]
    out = {}
    for party, size in sizes.items():
        ids = both + [f"{prefix}-{party}-{rng.getrandbits(48):015d}" for _ in range(size - shared)]
        rng.shuffle(ids)
        out[party] = ids
    return out


# -- correctness ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize("receivers", [(), ("a",), ("b",), ("a", "b")])
def test_two_parties(mode: str, receivers: tuple[str, ...]) -> None:
    sets = make_sets({"a": 150, "b": 90}, shared=37, seed=1)
    results, _ = run(sets, mode=mode, receivers=receivers)
    check(sets, results, receivers or ("a",), mode)


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize("receivers", [("a",), ("c",), ("b", "c"), ("a", "b", "c")])
def test_three_parties(mode: str, receivers: tuple[str, ...]) -> None:
    sets = make_sets({"a": 120, "b": 100, "c": 140}, shared=25, seed=2)
    # ids two parties share but the third lacks must not show up
    sets["a"] += ["pair-ab-1", "pair-ab-2"]
    sets["b"] += ["pair-ab-1", "pair-ab-2", "pair-bc-1"]
    sets["c"] += ["pair-bc-1"]
    results, _ = run(sets, mode=mode, receivers=receivers)
    check(sets, results, receivers, mode)


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
def test_four_parties(mode: str) -> None:
    sets = make_sets({"a": 80, "b": 90, "c": 70, "d": 100}, shared=13, seed=3)
    sets["b"] += ["only-bcd"]
    sets["c"] += ["only-bcd"]
    sets["d"] += ["only-bcd"]
    results, _ = run(sets, mode=mode, receivers=("b", "d"), batch_size=16)
    check(sets, results, ("b", "d"), mode)


def test_int_and_string_ids_meet_by_their_decimal_text() -> None:
    sets: dict[str, Ids] = {
        "a": [123, 7, 10**15 + 1, "x-1", 42],
        "b": ["123", "007", str(10**15 + 1), "x-1", 5],
        "c": [123, "7", 10**15 + 1, "x-1", "42"],
    }
    results, _ = run(sets, receivers=("a", "b", "c"))
    assert results["a"].intersection == [10**15 + 1, 123, "x-1"]
    assert results["b"].intersection == [str(10**15 + 1), "123", "x-1"]
    two, _ = run({"a": sets["a"], "b": sets["c"]}, receivers=("a", "b"))
    assert two["a"].intersection == [10**15 + 1, 123, 42, 7, "x-1"]
    assert two["b"].intersection == [10**15 + 1, 123, "42", "7", "x-1"]


def test_numpy_integers_are_ints() -> None:
    sets: dict[str, Ids] = {"a": list(np.arange(10, 30)), "b": [str(i) for i in range(25, 40)]}
    results, _ = run(sets, receivers=("a",))
    assert results["a"].intersection == [25, 26, 27, 28, 29]


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize(
    "case",
    ["disjoint", "one-empty", "all-empty", "all-overlap", "subset"],
)
def test_edge_cases(parties: int, case: str) -> None:
    names = ["a", "b", "c"][:parties]
    base = [f"edge-{i:05d}" for i in range(60)]
    sets: dict[str, Ids]
    if case == "disjoint":
        sets = {p: [f"{p}-{i:05d}" for i in range(40)] for p in names}
    elif case == "one-empty":
        sets = {p: (base if p != names[-1] else []) for p in names}
    elif case == "all-empty":
        sets = {p: [] for p in names}
    elif case == "all-overlap":
        sets = {p: random.Random(p).sample(base, len(base)) for p in names}
    else:
        sets = {p: base[: 20 + 15 * k] for k, p in enumerate(names)}
    for mode in ("intersection", "cardinality"):
        results, _ = run(sets, mode=mode, receivers=tuple(names))
        check(sets, results, names, mode)


def test_several_batches_and_a_ragged_last_batch() -> None:
    sets = make_sets({"a": 301, "b": 257, "c": 199}, shared=77, seed=4)
    results, _ = run(sets, receivers=("a", "c"), batch_size=50)
    check(sets, results, ("a", "c"), "intersection")


def test_worker_processes() -> None:
    sets = make_sets({"a": 600, "b": 650}, shared=200, seed=5)
    results, _ = run(sets, receivers=("a", "b"), workers=2, batch_size=1000)
    check(sets, results, ("a", "b"), "intersection")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sets(st.integers(min_value=0, max_value=40), max_size=25), min_size=2, max_size=3),
    st.sampled_from(["intersection", "cardinality"]),
    st.data(),
)
def test_matches_python_set_intersection(raw: list[set[int]], mode: str, data: st.DataObject) -> None:
    names = ["p0", "p1", "p2"][: len(raw)]
    sets: dict[str, Ids] = {p: [f"n{v}" if v % 2 else v for v in sorted(s)] for p, s in zip(names, raw, strict=True)}
    receivers = tuple(data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
    results, _ = run(sets, mode=mode, receivers=receivers, batch_size=data.draw(st.integers(1, 30)))
    check(sets, results, [p for p in names if p in receivers], mode)


# -- what crosses the wire ------------------------------------------------------------------
def _forbidden_needles(sets: Mapping[str, Ids]) -> list[bytes]:
    canon = [str(i).encode() for ids in sets.values() for i in ids]
    raw = ecc.encode_to_curve_points(canon).tobytes()
    needles = []
    for k, c in enumerate(canon):
        point = raw[32 * k : 32 * (k + 1)]
        needles += [c, hashlib.sha256(c).digest(), hashlib.sha512(c).digest(), point, point[:16]]
        needles.append(ecc.expand_message_xmd(c, ecc.PSI_DST, ecc.L))
    return needles


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
def test_no_raw_id_nor_unkeyed_hash_ever_crosses_the_wire(parties: int, mode: str) -> None:
    sets = make_sets({p: 60 for p in "abc"[:parties]}, shared=20, seed=6)
    sets["a"] += [10**17 + i for i in range(10)]  # int ids too: their decimal text must not leak either
    results, hub = run(sets, mode=mode, receivers=("a", "b"))
    check(sets, results, ("a", "b"), mode)
    wire = [data for _src, _dst, _tag, data in hub.log]
    assert wire and all(len(hub.sent_by(p)) > 0 for p in sets)
    for needle in _forbidden_needles(sets):
        assert not any(needle in body for body in wire)


def test_non_receivers_get_nothing_back() -> None:
    sets = make_sets({"a": 50, "b": 50, "c": 50}, shared=10, seed=7)
    _, hub = run(sets, receivers=("b",))
    assert not [tag for _s, dst, tag, _d in hub.log if dst in ("a", "c") and "/result/" in tag]
    two = {"a": sets["a"], "b": sets["b"]}
    _, hub = run(two, receivers=("a",))
    # b learns nothing: nothing comes back to it after its own set went out
    assert {tag.split("/")[1] for _s, dst, tag, _d in hub.log if dst == "b"} == {"hello", "encrypt"}


def _record_keys(monkeypatch: pytest.MonkeyPatch) -> list[EcdhKey]:
    made: list[EcdhKey] = []
    lock = threading.Lock()
    original = EcdhKey.generate.__func__  # type: ignore[attr-defined]

    def generate(cls: type[EcdhKey]) -> EcdhKey:
        key = original(cls)
        with lock:
            made.append(key)
        return key

    monkeypatch.setattr(EcdhKey, "generate", classmethod(generate))
    return made


def _stream(hub: MemoryHub, src: str, stage: str) -> np.ndarray:
    parts = sorted(
        ((int(tag.rsplit("/", 1)[1]), data) for s, _d, tag, data in hub.log if s == src and f"/{stage}/" in tag),
    )
    return np.concatenate([decode(data) for _i, data in parts])


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
def test_cardinality_mode_returns_the_receivers_values_shuffled(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    keys = _record_keys(monkeypatch)
    sets = make_sets({"a": 200, "b": 150}, shared=60, seed=8)
    results, hub = run(sets, mode=mode, receivers=("a",), batch_size=32)
    check(sets, results, ("a",), mode)
    sent = _stream(hub, "a", "encrypt")  # H(x)^a in a's order
    returned = _stream(hub, "b", "reencrypt")  # what b sent back to a, truncated to 16 bytes
    candidates = [ecdh_module._truncate(k.reencrypt(sent, workers=1), 16) for k in keys]
    (expected,) = [c for c in candidates if set(c.tolist()) == set(returned.tolist())]
    if mode == "intersection":
        assert (returned == expected).all()  # same order: a learns which of its ids matched
    else:
        assert not (returned == expected).all()  # a fresh order: a cannot tell which ids matched
        assert sorted(returned.tolist()) == sorted(expected.tolist())


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
def test_the_leader_gets_its_own_values_back_shuffled_in_cardinality_mode(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    keys = _record_keys(monkeypatch)
    sets = make_sets({"a": 80, "b": 70, "c": 90}, shared=30, seed=9)
    results, hub = run(sets, mode=mode, receivers=("a", "c"), batch_size=16)
    check(sets, results, ("a", "c"), mode)
    # the leader a sends H(x)^a to b; it comes back from c as H(x)^(a k_b k_c s), truncated
    sent = _stream(hub, "a", "own")
    returned = _stream(hub, "c", "own")
    matches = []
    for trio in itertools.combinations(keys, 3):
        values = sent
        for key in trio:
            values = key.reencrypt(values, workers=1)
        expected = ecdh_module._truncate(values, 16)
        if set(expected.tolist()) == set(returned.tolist()):
            matches.append(expected)
    (expected,) = matches
    assert (returned == expected).all() == (mode == "intersection")
    # the other receiver learns the size from the leader, nothing else
    to_c = [decode(data) for s, d, tag, data in hub.log if s == "a" and d == "c" and "/result/" in tag]
    assert len(to_c) == 1
    if mode == "cardinality":
        assert to_c == [30]


def test_secure_permutation_is_a_permutation_and_varies() -> None:
    p = secure_permutation(1000)
    assert sorted(p.tolist()) == list(range(1000))
    assert not (p == secure_permutation(1000)).all()
    assert secure_permutation(0).shape == (0,) and secure_permutation(1).tolist() == [0]


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ids", "problem"),
    [
        (["a1", "a2", "a1"], "duplicate"),
        ([123, "123"], "duplicate"),
        (["a1", 1.5], "type float"),
        (["a1", b"raw"], "type bytes"),
        (["a1", None], "type NoneType"),
        (["a1", True], "type bool"),
        (["a1", "\udc80"], "Unicode"),
    ],
)
def test_bad_ids_are_a_data_error(ids: list[object], problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        run({"a": ids, "b": ["b1", "b2"]})  # type: ignore[dict-item]


def test_unknown_receiver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mallory"):
        run({"a": ["x"], "b": ["x"]}, receivers=("a", "mallory"))


@pytest.mark.parametrize(
    "bad",
    [
        {"protocol": "kkrt"},
        {"mode": "union"},
        {"batch_size": 0},
        {"batch_size": 1 << 23},
        {"workers": 0},
        {"truncate_bytes": 4},
        {"truncate_bytes": 33},
        {"receivers": "a"},
        {"receivers": ("a", "a")},
    ],
)
def test_invalid_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PsiConfig(**bad)  # type: ignore[arg-type]


def test_parties_with_different_configs_stop() -> None:
    hub = MemoryHub(["a", "b"])
    cfg_a = PsiConfig(receivers=("a",), workers=1)
    cfg_b = PsiConfig(receivers=("b",), workers=1)
    with pytest.raises(ConfigError, match="different configuration"):
        hub.run({"a": lambda ch: run_psi(ch, ["x"], cfg_a), "b": lambda ch: run_psi(ch, ["x"], cfg_b)}, timeout=30)


def test_a_too_short_truncation_for_the_set_sizes_is_refused() -> None:
    sets = {"a": [f"a{i}" for i in range(3000)], "b": [f"b{i}" for i in range(2000)]}
    with pytest.raises(ConfigError, match="truncate_bytes"):
        run(sets, truncate_bytes=8)


def _evil_peer(points: object, *, count: int = 2) -> object:
    def evil(ch: Channel) -> None:
        cfg = PsiConfig(workers=1)
        hello = ch.sub("ecdh").sub("hello")
        hello.send("a", "0", Hello(VERSION, _fingerprint(cfg, ch.parties, ("a",)), count, 64))
        hello.recv("a", "0")
        ch.sub("ecdh").sub("encrypt").send("a", "0", points)
        ch.sub("ecdh").sub("reencrypt").recv("a", "0")

    return evil


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        (np.zeros(2, dtype="S32"), "low-order"),
        (np.array([b"\xff" * 32, b"\x09" + b"\0" * 31], dtype="S32"), "canonical"),
        (np.zeros(2, dtype="S16"), "malformed"),
        (np.zeros(3, dtype="S32"), "malformed"),
        ("not points", "malformed"),
    ],
)
def test_a_peer_sending_bad_points_is_a_protocol_violation(points: object, problem: str) -> None:
    hub = MemoryHub(["a", "b"])
    cfg = PsiConfig(workers=1)
    with pytest.raises(ProtocolViolation, match=problem):
        hub.run({"a": lambda ch: run_psi(ch, ["x", "y"], cfg), "b": _evil_peer(points)}, timeout=30)


def test_progress_is_reported() -> None:
    updates: list[tuple[str, int, int]] = []

    class Recorder:
        def update(self, task: str, done: int, total: int) -> None:
            updates.append((task, done, total))

    sets = make_sets({"a": 100, "b": 70}, shared=10, seed=10)
    hub = MemoryHub(["a", "b"])
    cfg = PsiConfig(workers=1, batch_size=32)
    hub.run(
        {
            "a": lambda ch: run_psi(ch, sets["a"], cfg, progress=Recorder()),
            "b": lambda ch: run_psi(ch, sets["b"], cfg),
        }
    )
    assert ("psi: encrypt own ids", 32, 100) in updates and ("psi: encrypt own ids", 100, 100) in updates
    assert ("psi: re-encrypt b's ids", 70, 70) in updates
    assert ("psi: match", 1, 1) in updates
