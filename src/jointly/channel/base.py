"""The interface every protocol talks through.

A :class:`Channel` is one party's view of the wire for one job: it sends typed
values to named parties and receives them under *tags*.  Tags are namespaced per
stage and iteration with :meth:`Channel.sub` (in the spirit of FATE's
``sub_ctx``), so two stages can never confuse each other's messages.

Protocols receive a ``Channel`` as an argument and never import a transport:
in unit tests it is backed by :mod:`jointly.channel.memory`, between party
processes by ``jointly.transport.grpc`` (mutual TLS).  Both move only bytes
produced by :mod:`jointly.channel.codec`; nothing from a peer is ever unpickled.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from jointly.channel.codec import DEFAULT_MAX_MESSAGE_BYTES, decode, encode
from jointly.errors import ConfigError

TAG_SEPARATOR = "/"


class Endpoint(ABC):
    """What a transport provides: ordered, authenticated delivery of tagged bytes.

    ``send_bytes`` must deliver each ``(sender, tag)`` once, even if retried;
    ``recv_bytes`` blocks until the message from ``frm`` under ``tag`` arrives,
    raising :class:`~jointly.errors.PeerTimeout` after ``timeout`` seconds or
    :class:`~jointly.errors.ProtocolAborted` as soon as the job is known to have
    failed (a peer died, disconnected or aborted).
    """

    party: str
    parties: tuple[str, ...]
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    default_timeout: float = 600.0

    def __init__(self) -> None:
        self._stage_lock = threading.Lock()
        self._stage = "start"
        self._sent_tags: set[tuple[str, str]] = set()

    def claim_tag(self, to: str, tag: str) -> None:
        """Refuse to send a second message to ``to`` under the same tag.

        Receivers drop duplicates of a tag (that is how retries are delivered
        once), so reusing a tag would silently lose a message: fail loudly instead.
        """
        with self._stage_lock:
            if (to, tag) in self._sent_tags:
                raise ConfigError(f"tag {tag!r} was already used for a message to {to!r}")
            self._sent_tags.add((to, tag))

    @property
    def stage(self) -> str:
        """The stage this party is in now; named in errors when a peer fails."""
        with self._stage_lock:
            return self._stage

    def enter_stage(self, stage: str) -> None:
        with self._stage_lock:
            self._stage = stage

    @abstractmethod
    def send_bytes(self, to: str, tag: str, data: bytes) -> None: ...

    @abstractmethod
    def recv_bytes(self, frm: str, tag: str, timeout: float) -> bytes: ...

    @abstractmethod
    def recv_first_bytes(self, frm: str, tags: Sequence[str], timeout: float) -> tuple[str, bytes]:
        """Like :meth:`recv_bytes` for whichever of ``tags`` arrives first: ``(tag, data)``; the others stay."""

    def check(self) -> None:
        """Raise :class:`~jointly.errors.ProtocolAborted` if the job has failed elsewhere."""
        return None

    def tolerate(self, peers: Iterable[str]) -> None:
        """Let the job go on if any of ``peers`` fails or disconnects (see :meth:`Channel.tolerate`).

        Transports without failure detection (the in-memory one) accept and ignore it.
        """
        return None

    def dropped(self) -> dict[str, str]:
        """Tolerated peers that failed, with the reason."""
        return {}

    def traffic(self) -> dict[str, int]:
        """Bytes and messages sent and received so far (empty if the transport does not count)."""
        return {}


class Channel:
    """Typed, namespaced messaging between the parties of one job.

    >>> ch.send("telco", "psi/points/0", points)      # doctest: +SKIP
    >>> ch.sub("psi").recv("telco", "points/0")        # same message  # doctest: +SKIP
    """

    def __init__(self, endpoint: Endpoint, namespace: str = "", scope: tuple[str, ...] | None = None) -> None:
        self._endpoint = endpoint
        self._namespace = namespace
        self._scope = scope

    # -- identity ---------------------------------------------------------------
    @property
    def party(self) -> str:
        """This party's name."""
        return self._endpoint.party

    @property
    def parties(self) -> tuple[str, ...]:
        """Every party of the job (or of this view's scope), in the job's order, this one included."""
        if self._scope is None:
            return self._endpoint.parties
        return tuple(p for p in self._endpoint.parties if p in self._scope)

    @property
    def peers(self) -> tuple[str, ...]:
        """Every other party of the job."""
        return tuple(p for p in self.parties if p != self.party)

    @property
    def namespace(self) -> str:
        return self._namespace

    # -- namespacing ------------------------------------------------------------
    def sub(self, name: str | int) -> Channel:
        """A view whose tags live under ``name``; also marks ``name`` as the current stage."""
        name = str(name)
        if not name or TAG_SEPARATOR in name:
            raise ConfigError(f"invalid channel namespace {name!r}")
        ns = f"{self._namespace}{TAG_SEPARATOR}{name}" if self._namespace else name
        self._endpoint.enter_stage(ns)
        return Channel(self._endpoint, ns, self._scope)

    def among(self, parties: Iterable[str]) -> Channel:
        """A view limited to ``parties`` (this one included): a sub-protocol run by some of the job's parties.

        ``parties``/``peers`` of the view list only them, and messages to or from any other party are refused.
        """
        names = tuple(parties)
        unknown = [p for p in names if p not in self.parties]
        if unknown:
            raise ConfigError(f"{unknown} are not parties of this job (parties: {', '.join(self.parties)})")
        if self.party not in names:
            raise ConfigError(f"a view among {names} must include this party {self.party!r}")
        return Channel(self._endpoint, self._namespace, names)

    def _tag(self, tag: str) -> str:
        if not tag:
            raise ConfigError("empty message tag")
        return f"{self._namespace}{TAG_SEPARATOR}{tag}" if self._namespace else tag

    def _check_party(self, name: str) -> None:
        if name not in self.parties:
            raise ConfigError(f"{name!r} is not a party of this job (parties: {', '.join(self.parties)})")
        if name == self.party:
            raise ConfigError(f"party {name!r} cannot message itself")

    # -- messaging --------------------------------------------------------------
    def send(self, to: str, tag: str, value: object) -> None:
        """Encode ``value`` with the safe codec and send it to party ``to``."""
        self._check_party(to)
        data = encode(value, max_bytes=self._endpoint.max_message_bytes)
        self._endpoint.send_bytes(to, self._tag(tag), data)

    def recv(self, frm: str, tag: str, *, timeout: float | None = None) -> object:
        """Wait for the value ``frm`` sent under ``tag`` and decode it."""
        self._check_party(frm)
        wait = self._endpoint.default_timeout if timeout is None else timeout
        data = self._endpoint.recv_bytes(frm, self._tag(tag), wait)
        return decode(data, max_bytes=self._endpoint.max_message_bytes)

    def recv_first(self, frm: str, tags: Sequence[str], *, timeout: float | None = None) -> tuple[str, object]:
        """Wait for whichever of ``tags`` arrives first from ``frm``: ``(tag, value)``.

        For a party that may or may not be asked something before the protocol moves on (the tags of
        the other messages stay in the mailbox, to be received later or never).
        """
        self._check_party(frm)
        if not tags:
            raise ConfigError("recv_first needs at least one tag")
        full = {self._tag(t): t for t in tags}
        wait = self._endpoint.default_timeout if timeout is None else timeout
        got, data = self._endpoint.recv_first_bytes(frm, list(full), wait)
        return full[got], decode(data, max_bytes=self._endpoint.max_message_bytes)

    def broadcast(self, tag: str, value: object, *, to: Sequence[str] | None = None) -> None:
        """Send the same value to every peer (or to the parties in ``to``); encodes once."""
        targets = self.peers if to is None else tuple(to)
        for name in targets:
            self._check_party(name)
        data = encode(value, max_bytes=self._endpoint.max_message_bytes)
        full = self._tag(tag)
        for name in targets:
            self._endpoint.send_bytes(name, full, data)

    def send_each(
        self, tag: str, values: Mapping[str, object], *, tolerate: tuple[type[Exception], ...] = ()
    ) -> dict[str, Exception]:
        """Send each party its value, concurrently: every send waits for the receiver's acknowledgement,
        so one slow or large delivery does not hold up the others.  A value shared by several parties is
        encoded once.  Sends that raise one of ``tolerate`` are returned by party; other errors propagate."""
        for name in values:
            self._check_party(name)
        encoded: dict[int, bytes] = {}
        for value in values.values():
            if id(value) not in encoded:
                encoded[id(value)] = encode(value, max_bytes=self._endpoint.max_message_bytes)
        full = self._tag(tag)
        failed: dict[str, Exception] = {}

        def send(name: str, value: object) -> None:
            try:
                self._endpoint.send_bytes(name, full, encoded[id(value)])
            except tolerate as exc:
                failed[name] = exc

        if len(values) <= 1:
            for name, value in values.items():
                send(name, value)
            return failed
        with ThreadPoolExecutor(max_workers=min(32, len(values)), thread_name_prefix="channel-send") as pool:
            for future in [pool.submit(send, name, value) for name, value in values.items()]:
                future.result()
        return failed

    def gather(self, tag: str, *, frm: Iterable[str] | None = None, timeout: float | None = None) -> dict[str, object]:
        """Receive one value under ``tag`` from every peer (or from ``frm``)."""
        sources = self.peers if frm is None else tuple(frm)
        return {name: self.recv(name, tag, timeout=timeout) for name in sources}

    def check(self) -> None:
        """Raise if the job was aborted elsewhere; call between long local computations."""
        self._endpoint.check()

    def tolerate(self, peers: Iterable[str]) -> None:
        """Survive the failure of any of ``peers`` (federated-learning clients that may drop out).

        By default a peer that crashes, disconnects or aborts fails the whole job.  After this call
        the failure of a tolerated peer is recorded instead (:meth:`dropped`), and receiving from or
        sending to it raises :class:`~jointly.errors.PeerDropped` at once, so the protocol can go on
        without it.  A failure that a tolerated peer reports *about another party* still fails the job.
        """
        names = tuple(peers)
        for name in names:
            self._check_party(name)
        self._endpoint.tolerate(names)

    def dropped(self) -> dict[str, str]:
        """Tolerated peers that dropped out so far, with the reason."""
        return self._endpoint.dropped()

    def traffic(self) -> dict[str, int]:
        """This party's bytes/messages sent and received in the job so far (transport counters)."""
        return self._endpoint.traffic()
