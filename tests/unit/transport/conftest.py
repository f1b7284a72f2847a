"""Loopback federations and peer servers for transport tests (all in this process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jointly.config.federation import Federation, init_federation
from jointly.transport.grpc import PeerServer

PARTIES = ("bank", "telco", "carol")
#: short intervals so liveness tests finish in a few seconds
FAST = {"heartbeat_interval": 0.1, "peer_dead_after": 1.5}

ServerFactory = Callable[..., PeerServer]


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation.load(init_federation(PARTIES, tmp_path / "fed", name="test"))


@pytest.fixture
def make_server(federation: Federation) -> Iterator[ServerFactory]:
    """Build (and by default start) a PeerServer; every one is stopped after the test."""
    made: list[PeerServer] = []

    def make(party: str, *, fed: Federation | None = None, start: bool = True, **kwargs: object) -> PeerServer:
        options = {**FAST, **kwargs}
        server = PeerServer(fed or federation, party, **options)  # type: ignore[arg-type]
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.stop(grace=0.2)
