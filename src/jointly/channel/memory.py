"""An in-process channel for fast unit tests: every party is a thread of one process.

Nothing here is secure or durable; integration tests run the same protocols over
``jointly.transport.grpc`` between real processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from jointly.channel.base import Channel, Endpoint
from jointly.channel.codec import DEFAULT_MAX_MESSAGE_BYTES
from jointly.errors import PeerTimeout, ProtocolAborted

_T = TypeVar("_T")


class MemoryHub:
    """Mailboxes shared by the endpoints of one in-memory job."""

    def __init__(self, parties: Sequence[str], *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.parties = tuple(parties)
        self.max_message_bytes = max_message_bytes
        self._cond = threading.Condition()
        self._boxes: dict[tuple[str, str, str], bytes] = {}
        self._failed: tuple[str, str, str] | None = None  # (party, stage, reason)
        #: every message as ``(src, dst, tag, bytes)``, in send order, for leakage tests
        self.log: list[tuple[str, str, str, bytes]] = []

    def endpoint(self, party: str) -> MemoryEndpoint:
        return MemoryEndpoint(self, party)

    def channel(self, party: str) -> Channel:
        return Channel(self.endpoint(party))

    def put(self, src: str, dst: str, tag: str, data: bytes) -> None:
        with self._cond:
            self.log.append((src, dst, tag, data))
            self._boxes.setdefault((dst, src, tag), data)
            self._cond.notify_all()

    def take(self, dst: str, src: str, tag: str, timeout: float) -> bytes:
        return self.take_first(dst, src, (tag,), timeout)[1]

    def take_first(self, dst: str, src: str, tags: Sequence[str], timeout: float) -> tuple[str, bytes]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._failed is not None and self._failed[0] != dst:
                    party, stage, reason = self._failed
                    raise ProtocolAborted(party, stage, reason)
                for tag in tags:
                    data = self._boxes.pop((dst, src, tag), None)
                    if data is not None:
                        return tag, data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(src, " or ".join(tags), timeout)
                self._cond.wait(left)

    def fail(self, party: str, stage: str, reason: str) -> None:
        """Mark the job failed by ``party``; every waiting peer raises ProtocolAborted."""
        with self._cond:
            if self._failed is None:
                self._failed = (party, stage, reason)
            self._cond.notify_all()

    def check(self, party: str) -> None:
        with self._cond:
            if self._failed is not None and self._failed[0] != party:
                raise ProtocolAborted(*self._failed)

    def sent_by(self, party: str) -> list[bytes]:
        """Every message body ``party`` sent, for leakage checks."""
        return [data for src, _dst, _tag, data in self.log if src == party]

    def run(self, fns: dict[str, Callable[[Channel], _T]], *, timeout: float = 120.0) -> dict[str, _T]:
        """Run one function per party in threads; return their results or raise the first error."""
        results: dict[str, _T] = {}
        errors: dict[str, BaseException] = {}

        def target(name: str, fn: Callable[[Channel], _T]) -> None:
            ch = self.channel(name)
            try:
                results[name] = fn(ch)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors[name] = exc
                self.fail(name, ch._endpoint.stage, f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=target, args=item, daemon=True) for item in fns.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
            if t.is_alive():
                raise TimeoutError("an in-memory party did not finish")
        if errors:
            # the party that failed first is the interesting one, not its aborted peers
            first = next((e for e in errors.values() if not isinstance(e, ProtocolAborted)), None)
            raise first or next(iter(errors.values()))
        return results


class MemoryEndpoint(Endpoint):
    def __init__(self, hub: MemoryHub, party: str) -> None:
        super().__init__()
        if party not in hub.parties:
            raise ValueError(f"{party!r} is not one of {hub.parties}")
        self.hub = hub
        self.party = party
        self.parties = hub.parties
        self.max_message_bytes = hub.max_message_bytes

    def send_bytes(self, to: str, tag: str, data: bytes) -> None:
        self.claim_tag(to, tag)
        self.hub.put(self.party, to, tag, data)

    def recv_bytes(self, frm: str, tag: str, timeout: float) -> bytes:
        return self.hub.take(self.party, frm, tag, timeout)

    def recv_first_bytes(self, frm: str, tags: Sequence[str], timeout: float) -> tuple[str, bytes]:
        return self.hub.take_first(self.party, frm, tags, timeout)

    def check(self) -> None:
        self.hub.check(self.party)
