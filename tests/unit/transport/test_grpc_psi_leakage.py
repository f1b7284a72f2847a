"""ECDH PSI over real mutual-TLS gRPC (in-process PeerServers): correct, and nothing identifying on the wire.

The process-level tests in ``tests/integration`` run PSI between node processes; this one
runs it over the same gRPC transport inside the test process so that every byte each
endpoint sends or receives can be recorded through the endpoint's ``on_message`` hook and
checked against what the protocol may reveal: blinded curve points only, never a raw id,
a plain hash of one, or its unkeyed hash-to-curve point.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from jointly.channel import Channel
from jointly.protocols.psi import PsiConfig, PsiResult, run_psi
from tests.unit.protocols.test_psi_ecdh import _forbidden_needles, common, make_sets
from tests.unit.transport.conftest import ServerFactory


@pytest.mark.parametrize("parties", [("bank", "telco"), ("bank", "telco", "carol")])
def test_psi_over_grpc_reveals_only_blinded_points(make_server: ServerFactory, parties: Sequence[str]) -> None:
    sets = make_sets(dict.fromkeys(parties, 300), shared=41, seed=11)
    sets["bank"] += [10**15 + i for i in range(20)]  # int ids too
    wire: list[tuple[str, str, str, str, bytes]] = []
    lock = threading.Lock()
    endpoints = {}
    for party in parties:
        endpoint = make_server(party).open_job("leak-1", parties)

        def hook(direction: str, peer: str, tag: str, data: bytes, me: str = party) -> None:
            with lock:
                wire.append((me, direction, peer, tag, data))

        endpoint.on_message = hook
        endpoints[party] = endpoint

    cfg = PsiConfig(workers=1, batch_size=128, receivers=("bank",))
    results: dict[str, PsiResult] = {}
    errors: list[BaseException] = []

    def play(party: str) -> None:
        try:
            results[party] = run_psi(Channel(endpoints[party]), sets[party], cfg)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for endpoint in endpoints.values():
        endpoint.close(succeeded=True)

    expected = common(sets)
    assert results["bank"].intersection is not None
    assert {str(i) for i in results["bank"].intersection} == expected
    assert all(results[p].intersection is None and results[p].size is None for p in parties if p != "bank")

    sent = [rec for rec in wire if rec[1] == "sent"]
    received = [rec for rec in wire if rec[1] == "received"]
    assert {rec[0] for rec in sent} == set(parties)  # every party spoke
    # what was sent is exactly what arrived: same (sender, receiver, tag, bytes) multiset
    as_sent = sorted((me, peer, tag, len(data)) for me, _d, peer, tag, data in sent)
    as_received = sorted((peer, me, tag, len(data)) for me, _d, peer, tag, data in received)
    assert as_sent == as_received
    needles = _forbidden_needles(sets)
    for *_meta, data in wire:
        for needle in needles:
            assert needle not in data
