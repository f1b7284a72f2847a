from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from jointly.channel import Channel
from jointly.channel.memory import MemoryHub
from jointly.errors import ConfigError, PeerTimeout, ProtocolAborted


def test_tags_are_namespaced_per_stage_and_iteration() -> None:
    hub = MemoryHub(["a", "b"])

    def a(ch: Channel) -> object:
        for it in range(3):
            ch.sub("train").sub(it).send("b", "w", it * 10)
        ch.sub("eval").send("b", "w", "eval")
        return None

    def b(ch: Channel) -> object:
        # receive out of order: tags, not arrival order, decide what is read
        ev = ch.sub("eval").recv("a", "w")
        ws = [ch.sub("train").sub(it).recv("a", "w") for it in (2, 0, 1)]
        return ev, ws

    out = hub.run({"a": a, "b": b})
    assert out["b"] == ("eval", [20, 0, 10])
    assert [tag for _s, _d, tag, _b in hub.log] == ["train/0/w", "train/1/w", "train/2/w", "eval/w"]


def test_messages_under_one_tag_prefix_keep_order() -> None:
    hub = MemoryHub(["a", "b"])
    n = 50

    def a(ch: Channel) -> None:
        for i in range(n):
            ch.send("b", f"batch/{i}", np.full(3, i))

    def b(ch: Channel) -> list[int]:
        return [int(ch.recv("a", f"batch/{i}")[0]) for i in range(n)]

    assert hub.run({"a": a, "b": b})["b"] == list(range(n))


def test_broadcast_and_gather() -> None:
    hub = MemoryHub(["a", "b", "c"])

    def leader(ch: Channel) -> dict[str, object]:
        ch.broadcast("hello", {"from": ch.party})
        return ch.gather("reply")

    def follower(ch: Channel) -> object:
        msg = ch.recv("a", "hello")
        ch.send("a", "reply", f"{ch.party} got {msg}")
        return msg

    out = hub.run({"a": leader, "b": follower, "c": follower})
    assert out["a"] == {"b": "b got {'from': 'a'}", "c": "c got {'from': 'a'}"}


def test_recv_timeout_names_peer_and_tag() -> None:
    hub = MemoryHub(["a", "b"])
    ch = hub.channel("a").sub("stage1")
    t0 = time.monotonic()
    with pytest.raises(PeerTimeout) as err:
        ch.recv("b", "never", timeout=0.2)
    assert time.monotonic() - t0 >= 0.2
    assert err.value.peer == "b" and err.value.tag == "stage1/never"
    assert "'b'" in str(err.value) and "stage1/never" in str(err.value)


def test_tag_reuse_and_unknown_parties_are_refused() -> None:
    hub = MemoryHub(["a", "b"])
    ch = hub.channel("a")
    ch.send("b", "x", 1)
    with pytest.raises(ConfigError, match="already used"):
        ch.send("b", "x", 2)
    with pytest.raises(ConfigError, match="not a party"):
        ch.send("zed", "x", 1)
    with pytest.raises(ConfigError, match="itself"):
        ch.send("a", "y", 1)
    with pytest.raises(ConfigError):
        ch.sub("bad/name")


def test_a_failing_party_aborts_its_waiting_peers_with_its_name_and_stage() -> None:
    hub = MemoryHub(["a", "b"])
    seen: list[ProtocolAborted] = []

    def a(ch: Channel) -> None:
        ch.sub("exchange")
        raise RuntimeError("disk full")

    def b(ch: Channel) -> None:
        try:
            ch.recv("a", "x", timeout=30)
        except ProtocolAborted as exc:
            seen.append(exc)
            raise

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="disk full"):
        hub.run({"a": a, "b": b})
    assert time.monotonic() - start < 5
    assert seen and seen[0].party == "a" and seen[0].stage == "exchange"


def test_check_raises_after_abort() -> None:
    hub = MemoryHub(["a", "b"])
    ch = hub.channel("b")
    ch.check()
    threading.Thread(target=hub.fail, args=("a", "s", "boom")).start()
    time.sleep(0.05)
    with pytest.raises(ProtocolAborted, match="boom"):
        ch.check()


def test_a_view_among_some_parties_runs_a_sub_protocol_between_them() -> None:
    hub = MemoryHub(["guest", "host", "arbiter"])

    def data_party(ch: Channel) -> object:
        among = ch.among(["guest", "host"]).sub("align")
        assert among.parties == ("guest", "host")
        assert among.peers == tuple(p for p in ("guest", "host") if p != ch.party)
        with pytest.raises(ConfigError, match="not a party"):
            among.send("arbiter", "x", 1)
        among.broadcast("hello", ch.party)  # reaches only the other data party
        return among.gather("hello")

    def arbiter(ch: Channel) -> object:
        with pytest.raises(ConfigError, match="must include this party"):
            ch.among(["guest", "host"])
        with pytest.raises(ConfigError, match="not parties"):
            ch.among(["arbiter", "nobody"])
        return ch.among(["arbiter"]).peers

    out = hub.run({"guest": data_party, "host": data_party, "arbiter": arbiter})
    assert out == {"guest": {"host": "host"}, "host": {"guest": "guest"}, "arbiter": ()}
    assert {(src, dst) for src, dst, _tag, _data in hub.log} == {("guest", "host"), ("host", "guest")}


def test_send_each_delivers_every_value_and_returns_the_tolerated_failures() -> None:
    hub = MemoryHub(["a", "b", "c", "d"])
    shared = {"model": np.arange(4.0)}

    def a(ch: Channel) -> object:
        ch.send("d", "t", "first")  # a second message under "t" to d is refused (a tag is used once)
        failed = ch.send_each("t", {"b": shared, "c": shared, "d": "again"}, tolerate=(ConfigError,))
        with pytest.raises(ConfigError):
            ch.send_each("u", {"b": 1, "zed": 2})  # an unknown party: nothing is sent
        with pytest.raises(ConfigError):
            ch.send_each("t", {"b": 3})  # not tolerated: raised
        return sorted(failed), type(failed["d"]).__name__

    def receive(ch: Channel) -> object:
        return ch.recv("a", "t")

    out = hub.run({"a": a, "b": receive, "c": receive, "d": receive})
    assert out["a"] == (["d"], "ConfigError")
    np.testing.assert_array_equal(out["b"]["model"], shared["model"])
    np.testing.assert_array_equal(out["c"]["model"], shared["model"])
    assert out["d"] == "first"
    assert [tag for _s, dst, tag, _b in hub.log if dst in "bc"] == ["t", "t"]
