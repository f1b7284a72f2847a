"""Secure aggregation over the in-memory channel: correct sums, dropouts, and what the server sees."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import stats

from jointly.channel import Channel
from jointly.channel.codec import decode
from jointly.channel.memory import MemoryHub
from jointly.errors import ConfigError, DataError, ProtocolAborted, ProtocolViolation
from jointly.protocols.secagg import (
    ClientState,
    SecAggConfig,
    SecAggResult,
    encode_update,
    run_secagg_client,
    run_secagg_server,
)
from jointly.protocols.secagg import client as client_stages
from jointly.protocols.secagg.client import run_client
from jointly.protocols.secagg.common import MaskedInput, SealedShares

SERVER = "server"
SHAPES = [(3, 4), (5,)]
FAST = {"timeout": 2.0, "client_timeout": 20.0}  # no test waits this long unless a client drops
DROP = {"timeout": 0.5, "client_timeout": 20.0}  # how long the server waits for a client that dropped


def make_updates(clients: Sequence[str], shapes: Sequence[tuple[int, ...]], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {c: [rng.normal(size=s).astype(np.float32) for s in shapes] for c in clients}


def dropper(config: SecAggConfig, stages: int) -> Callable[[Channel], None]:
    """A client that stops after ``stages`` stages (1: advertised keys, 2: shared keys)."""

    def fn(ch: Channel) -> None:
        state = ClientState(name=ch.party, server=SERVER, config=config)
        client_stages.advertise_keys(ch, state)
        if stages >= 2:
            client_stages.share_keys(ch, state)

    return fn


def run(
    n: int,
    config: SecAggConfig,
    *,
    drop: dict[str, int] | None = None,
    hub: MemoryHub | None = None,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
) -> tuple[dict, dict, MemoryHub]:
    clients = [f"c{i}" for i in range(n)]
    hub = hub or MemoryHub([SERVER, *clients])
    updates = make_updates(clients, shapes)
    examples = {c: 10 + 7 * i for i, c in enumerate(clients)}
    fns: dict[str, Callable[[Channel], object]] = {}
    for c in clients:
        if drop and c in drop:
            fns[c] = dropper(config, drop[c])
        else:
            fns[c] = lambda ch, c=c: run_client(ch, SERVER, updates[c], num_examples=examples[c], config=config)
    fns[SERVER] = lambda ch: run_secagg_server(ch, clients, shapes, config=config)
    results = hub.run(fns, timeout=60)
    return results, {c: (updates[c], examples[c]) for c in clients}, hub


def expected_sum(inputs: dict, members: Sequence[str], weighted: bool) -> list[np.ndarray]:
    out = []
    for k in range(len(SHAPES)):
        out.append(sum((inputs[c][1] if weighted else 1) * inputs[c][0][k].astype(np.float64) for c in members))
    return out


@pytest.mark.parametrize(("bits", "weighted"), [(64, True), (64, False), (32, False)])
def test_unmasked_sum_equals_plain_sum(bits: int, weighted: bool) -> None:
    cfg = SecAggConfig(threshold=3, modulus_bits=bits, weighted=weighted, max_examples=100, **FAST)
    results, inputs, _ = run(5, cfg)
    res = results[SERVER]
    assert isinstance(res, SecAggResult)
    assert res.survivors == tuple(inputs) and res.dropped == ()
    assert res.total_examples == sum(e for _, e in inputs.values())
    tol = 5 * (max(e for _, e in inputs.values()) if weighted else 1) * 2.0 ** -(cfg.frac_bits + 1)
    for got, want, shape in zip(res.sum, expected_sum(inputs, list(inputs), weighted), SHAPES, strict=True):
        assert got.shape == shape
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    if weighted:
        mean = res.mean()[0]
        np.testing.assert_allclose(mean, want_mean(inputs), atol=1e-4)
    for c in inputs:
        assert results[c].survivors == tuple(inputs)


def want_mean(inputs: dict) -> np.ndarray:
    total = sum(e for _, e in inputs.values())
    return sum(e * u[0].astype(np.float64) for u, e in inputs.values()) / total


def test_public_client_entry_point_and_clipping() -> None:
    cfg = SecAggConfig(threshold=2, clip=1.0, weighted=False, **FAST)
    hub = MemoryHub([SERVER, "a", "b"])
    ups = {"a": [np.array([5.0, -0.5])], "b": [np.array([-5.0, 0.25])]}
    fns: dict[str, Callable[[Channel], object]] = {
        c: (lambda ch, c=c: run_secagg_client(ch, SERVER, ups[c], num_examples=3, config=cfg)) for c in ups
    }
    fns[SERVER] = lambda ch: run_secagg_server(ch, ["a", "b"], [(2,)], config=cfg)
    res = hub.run(fns)[SERVER]
    assert isinstance(res, SecAggResult)
    np.testing.assert_allclose(res.sum[0], [0.0, -0.25], atol=1e-4)  # 5 and -5 clipped to +-1
    assert res.total_examples == 6


def test_one_client_dropping_after_sharing_keys_is_unmasked() -> None:
    cfg = SecAggConfig(threshold=3, **DROP)
    results, inputs, hub = run(5, cfg, drop={"c4": 2})
    res = results[SERVER]
    survivors = ["c0", "c1", "c2", "c3"]
    assert res.survivors == tuple(survivors) and res.dropped == ("c4",)
    assert res.total_examples == sum(inputs[c][1] for c in survivors)
    for got, want in zip(res.sum, expected_sum(inputs, survivors, True), strict=True):
        np.testing.assert_allclose(got, want, atol=5 * 40 * 2.0**-16)
    assert results["c0"].dropped == ("c4",)
    # the dropped client's mask key was revealed, its self-mask seed never was
    requests = [decode(b) for s, d, t, b in hub.log if d == SERVER and t.endswith("unmask/shares")]
    assert requests and all(set(r.mask_key) == {"c4"} and "c4" not in r.self_seed for r in requests)


def test_client_dropping_before_sharing_is_left_out() -> None:
    cfg = SecAggConfig(threshold=3, **DROP)
    results, inputs, _ = run(4, cfg, drop={"c1": 1})
    res = results[SERVER]
    survivors = ["c0", "c2", "c3"]
    assert res.survivors == tuple(survivors) and res.dropped == ("c1",)
    for got, want in zip(res.sum, expected_sum(inputs, survivors, True), strict=True):
        np.testing.assert_allclose(got, want, atol=4 * 40 * 2.0**-16)


def test_too_many_dropouts_abort_with_a_clear_error() -> None:
    cfg = SecAggConfig(threshold=3, **DROP)
    with pytest.raises(ProtocolAborted, match=r"only 2 clients sent inputs; the threshold is 3") as info:
        run(5, cfg, drop={"c2": 2, "c3": 2, "c4": 2})
    assert info.value.party == SERVER and info.value.stage.endswith("masked")


def test_server_sees_only_uniform_masked_vectors_and_sealed_shares() -> None:
    # all-zero updates: the strongest structure an input can have; the masked vectors must still look uniform
    cfg = SecAggConfig(threshold=2, modulus_bits=32, weighted=False, max_examples=10, **FAST)
    shapes = [(20_000,)]
    clients = ["c0", "c1", "c2"]
    hub = MemoryHub([SERVER, *clients])
    zeros = [np.zeros(20_000, dtype=np.float32)]
    fns: dict[str, Callable[[Channel], object]] = {
        c: (lambda ch: run_client(ch, SERVER, zeros, num_examples=1, config=cfg)) for c in clients
    }
    fns[SERVER] = lambda ch: run_secagg_server(ch, clients, shapes, config=cfg)
    results = hub.run(fns)
    assert np.all(results[SERVER].sum[0] == 0)
    encoded = encode_update(zeros, num_examples=1, config=cfg)

    to_server = [(src, tag, body) for src, dst, tag, body in hub.log if dst == SERVER]
    masked = [decode(body) for _src, tag, body in to_server if tag.endswith("masked/input")]
    assert len(masked) == 3
    for msg in masked:
        assert isinstance(msg, MaskedInput)
        vec = msg.vector
        assert np.mean(vec == encoded) < 0.001
        high = (vec >> np.uint32(24)).astype(np.int64)
        # six tests per run at 1e-6: a false alarm about once in 170,000 runs (at 1e-3 it was once in 170)
        assert stats.chisquare(np.bincount(high, minlength=256)).pvalue > 1e-6
        assert stats.kstest(vec / 2.0**32, "uniform").pvalue > 1e-6
    # the same tests do reject an unmasked encoding, so they are not vacuous
    assert stats.kstest(encoded / 2.0**32, "uniform").pvalue < 1e-6

    secrets_ = []
    for c in clients:
        state = results[c]
        assert isinstance(state, ClientState)
        secrets_ += [state.b_seed, state.s_key.private_bytes_raw(), state.c_key.private_bytes_raw()]
        for share in state.own_shares.values():
            secrets_.append(share.to_bytes())
            secrets_ += [y.to_bytes(33, "big") for y in share.y]
    for _src, tag, body in to_server:
        if tag.endswith("unmask/shares"):
            continue  # unmasking shares are meant for the server (and never two of one client)
        assert not any(s in body for s in secrets_), tag
    sealed = [decode(body) for _src, tag, body in to_server if tag.endswith("share/out")]
    for msg in sealed:
        assert isinstance(msg, SealedShares)
        assert all(len(ct) == 12 + 4 + 2 * 33 + 16 for ct in msg.ciphertexts.values())  # nonce, share, GCM tag


class TamperingHub(MemoryHub):
    """A relaying server (or a network attacker) that flips the last bit of the shares relayed to c1."""

    def put(self, src: str, dst: str, tag: str, data: bytes) -> None:
        if src == SERVER and dst == "c1" and tag.endswith("share/in"):
            data = data[:-1] + bytes([data[-1] ^ 1])  # the last bytes of the message are a GCM tag
        super().put(src, dst, tag, data)


def test_tampered_share_ciphertext_is_detected() -> None:
    cfg = SecAggConfig(threshold=2, **FAST)
    hub = TamperingHub([SERVER, "c0", "c1", "c2"])
    with pytest.raises(ProtocolViolation, match="failed authentication"):
        run(3, cfg, hub=hub)


def test_mismatched_configuration_is_refused() -> None:
    cfg = SecAggConfig(threshold=2, **FAST)
    other = SecAggConfig(threshold=2, frac_bits=20, **FAST)
    hub = MemoryHub([SERVER, "a", "b"])
    fns: dict[str, Callable[[Channel], object]] = {
        "a": lambda ch: run_client(ch, SERVER, [np.zeros(2)], num_examples=1, config=cfg),
        "b": lambda ch: run_client(ch, SERVER, [np.zeros(2)], num_examples=1, config=other),
        SERVER: lambda ch: run_secagg_server(ch, ["a", "b"], [(2,)], config=cfg),
    }
    with pytest.raises(ProtocolViolation, match="different configuration"):
        hub.run(fns)


def test_bad_configuration_and_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        SecAggConfig(threshold=1)
    with pytest.raises(ConfigError, match="modulus_bits"):
        SecAggConfig(threshold=2, modulus_bits=48)
    with pytest.raises(ConfigError, match="overflow"):
        SecAggConfig(threshold=2, modulus_bits=32).check_capacity(5)  # weighted by up to 2**20 examples
    with pytest.raises(ConfigError, match="threshold"):
        SecAggConfig(threshold=4).check_capacity(3)
    cfg = SecAggConfig(threshold=2, max_examples=10)
    with pytest.raises(ConfigError, match="num_examples"):
        encode_update([np.zeros(2)], num_examples=11, config=cfg)
    with pytest.raises(DataError, match="NaN"):
        encode_update([np.array([np.nan])], num_examples=1, config=cfg)
    with pytest.raises(ConfigError, match="must not include the server"):
        run_secagg_server(MemoryHub([SERVER, "a"]).channel(SERVER), [SERVER, "a"], [(1,)], config=cfg)


@pytest.mark.parametrize("share_first", [True, False])
def test_split_entry_points_keys_before_the_input_exists_give_the_same_sum(share_first: bool) -> None:
    from jointly.protocols.secagg import close_round, contribute, open_round, prepare

    config = SecAggConfig(threshold=3, **FAST)
    clients = ["c0", "c1", "c2", "c3"]
    updates = make_updates(clients, SHAPES, seed=4)
    hub = MemoryHub([SERVER, *clients])

    def client(c: str) -> Callable[[Channel], object]:
        def fn(ch: Channel) -> object:
            state = prepare(ch, SERVER, config=config, share=share_first)  # before the update is known
            return contribute(ch, state, updates[c], num_examples=5)

        return fn

    def server(ch: Channel) -> SecAggResult:
        return close_round(ch, open_round(ch, clients, SHAPES, config=config))

    result = hub.run({SERVER: server, **{c: client(c) for c in clients}}, timeout=60)[SERVER]
    assert isinstance(result, SecAggResult) and result.survivors == tuple(clients)
    want = [sum(5 * updates[c][k].astype(np.float64) for c in clients) for k in range(len(SHAPES))]
    for got, expected in zip(result.sum, want, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint64, np.uint32])
@pytest.mark.parametrize("length", [0, 1, 7, 1000])
def test_masks_are_the_aes_ctr_keystream_of_the_seed(dtype: type, length: int) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from jointly.protocols.secagg.common import prg

    seed = bytes(range(32))
    enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    stream = enc.update(bytes(length * np.dtype(dtype).itemsize)) + enc.finalize()
    expected = np.frombuffer(stream, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    got = prg(seed, length, np.dtype(dtype))
    assert got.dtype == dtype and got.shape == (length,)
    np.testing.assert_array_equal(got, expected)
    got += 1  # a fresh array the caller may change in place
    np.testing.assert_array_equal(prg(seed, length, np.dtype(dtype)), expected)
    assert length < 2 or not np.array_equal(prg(bytes(32), length, np.dtype(dtype)), expected)


@pytest.mark.parametrize("gone", [None, "c2"])
def test_server_asks_threshold_clients_to_unmask_and_the_others_only_if_one_is_gone(gone: str | None) -> None:
    from jointly.protocols.secagg import answer_unmask, open_round
    from jointly.protocols.secagg.server import collect_masked, unmask

    cfg = SecAggConfig(threshold=3, **DROP)
    clients = ["c0", "c1", "c2", "c3", "c4"]
    updates = make_updates(clients, SHAPES)

    def client(name: str) -> Callable[[Channel], str]:
        def fn(ch: Channel) -> str:
            state = ClientState(name=name, server=SERVER, config=cfg)
            client_stages.advertise_keys(ch, state)
            client_stages.share_keys(ch, state)
            client_stages.masked_input(ch, state, encode_update(updates[name], num_examples=10, config=cfg))
            if name == gone:
                return "gone"  # after its input: the server needs shares of its self-mask from the others
            tag, value = ch.recv_first(SERVER, ["unmask/request", "done"])
            if tag == "done":
                return "not asked"
            ch.sub("unmask").send(SERVER, "shares", answer_unmask(state, value))
            ch.recv(SERVER, "done")
            return "asked"

        return fn

    def server(ch: Channel) -> SecAggResult:
        state = open_round(ch, clients, SHAPES, config=cfg)
        collect_masked(ch, state)
        result = unmask(ch, state, prefer=["c1", "c2", "c3"])
        for c in clients:
            ch.send(c, "done", True)
        return result

    hub = MemoryHub([SERVER, *clients])
    results = hub.run({SERVER: server, **{c: client(c) for c in clients}}, timeout=60)
    asked = {c for c in clients if results[c] == "asked"}
    assert asked == ({"c1", "c2", "c3"} if gone is None else {"c0", "c1", "c3", "c4"})
    requests = [dst for src, dst, tag, _ in hub.log if src == SERVER and tag == "unmask/request"]
    assert sorted(requests) == sorted(asked | ({gone} if gone else set()))
    want = expected_sum({c: (updates[c], 10) for c in clients}, clients, weighted=True)
    result = results[SERVER]
    assert result.survivors == tuple(clients) and result.total_examples == 50
    for got, exp in zip(result.sum, want, strict=True):
        np.testing.assert_allclose(got, exp, atol=1e-3)


def test_a_client_answers_one_unmasking_request_only() -> None:
    from jointly.protocols.secagg import answer_unmask, open_round
    from jointly.protocols.secagg.common import UnmaskRequest

    cfg = SecAggConfig(threshold=2, **FAST)
    states: dict[str, ClientState] = {}

    def client(name: str) -> Callable[[Channel], None]:
        def fn(ch: Channel) -> None:
            states[name] = state = ClientState(name=name, server=SERVER, config=cfg)
            client_stages.advertise_keys(ch, state)
            client_stages.share_keys(ch, state)

        return fn

    clients = ["c0", "c1", "c2"]
    hub = MemoryHub([SERVER, *clients])

    hub.run({SERVER: lambda ch: open_round(ch, clients, SHAPES, config=cfg), **{c: client(c) for c in clients}})
    state = states["c0"]
    answer_unmask(state, UnmaskRequest(survivors=clients, dropped=[]))
    with pytest.raises(ProtocolViolation, match="second unmasking request"):  # e.g. c2 said dropped this time
        answer_unmask(state, UnmaskRequest(survivors=["c0", "c1"], dropped=["c2"]))


@pytest.mark.parametrize("dtype", [np.uint64, np.uint32])
def test_mask_expander_adds_and_subtracts_each_seeds_keystream_modulo_the_ring(dtype: type) -> None:
    from jointly.protocols.secagg.common import MaskExpander, prg

    length, dt = 1001, np.dtype(dtype)
    a, b = bytes(range(32)), bytes(range(1, 33))
    start = np.random.default_rng(0).integers(0, np.iinfo(dt).max, size=length, dtype=dt, endpoint=True)
    got = start.copy()
    expander = MaskExpander(length, dt)
    expander.add(got, a)
    expander.subtract(got, b)  # the buffer is reused: b's stream must not carry anything of a's
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, start + prg(a, length, dt) - prg(b, length, dt))
    expander.subtract(got, a)
    expander.add(got, b)
    np.testing.assert_array_equal(got, start)
    with pytest.raises(ProtocolViolation, match="32 bytes"):
        expander.add(got, b"short")


def test_masks_made_ahead_give_the_same_input_and_cancel_without_a_client_that_never_shared() -> None:
    from jointly.protocols.secagg import accept_keys, begin, precompute_mask, public_keys, route_shares
    from jointly.protocols.secagg.common import AdvertiseKeys, prg

    cfg = SecAggConfig(threshold=3, **FAST)
    clients = ["c0", "c1", "c2", "c3"]
    states = {c: ClientState(name=c, server=SERVER, config=cfg) for c in clients}
    server = begin(SERVER, clients, SHAPES, config=cfg)
    keys = {c: AdvertiseKeys(*public_keys(s), config=cfg.fingerprint()) for c, s in states.items()}
    roster = accept_keys(server, keys, party=SERVER)
    sealed = {}
    for c, s in states.items():
        client_stages.accept_roster(s, roster)
        precompute_mask(s)  # before the shares exist: masks with all four clients
        sealed[c] = client_stages.seal_shares(s)
    del sealed["c3"]  # c3 never shares: the others' masks with it must come off their inputs
    bundles = route_shares(server, sealed, party=SERVER)
    updates = make_updates(clients, SHAPES)
    total = np.zeros(roster.length, dtype=cfg.dtype)
    plain = np.zeros(roster.length, dtype=cfg.dtype)
    for c in ["c0", "c1", "c2"]:
        state = states[c]
        client_stages.open_shares(state, bundles[c])
        x = encode_update(updates[c], num_examples=10, config=cfg)
        ahead = client_stages.masked_message(state, x).vector
        assert state.premask is None  # used once
        np.testing.assert_array_equal(ahead, client_stages.masked_message(state, x).vector)  # made on the spot
        assert not np.array_equal(ahead, x)
        total += ahead - prg(state.b_seed, roster.length, cfg.dtype)
        plain += x
    np.testing.assert_array_equal(total, plain)  # every pairwise mask cancelled, c3's included


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("weighted", [False, True])
def test_encoding_is_clipped_weighted_fixed_point_with_the_count_last(bits: int, weighted: bool) -> None:
    cfg = SecAggConfig(threshold=2, clip=2.0, frac_bits=8, modulus_bits=bits, max_examples=1000, weighted=weighted)
    rng = np.random.default_rng(3)
    update = [rng.normal(0, 1.5, (3, 4)).astype(np.float32), np.array([-5.0, 5.0, 0.123456789, -0.001]), np.arange(3)]
    got = encode_update(update, num_examples=7, config=cfg)
    flat = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in update])
    weight = 7 if weighted else 1
    expected = [round(float(min(max(x, -2.0), 2.0)) * weight * 256) % 2**bits for x in flat] + [7]
    assert got.dtype == np.dtype(f"uint{bits}") and got.tolist() == expected
