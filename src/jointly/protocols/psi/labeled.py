"""Unbalanced labeled PSI: a client checks its few ids against a server's large labeled set.

The server holds ``N`` ids, each with a label (a reason code, say), and a secret
X25519 scalar ``k``; the client holds ``n`` ids (``n`` much smaller than ``N``).  The
client learns which of its ids the server holds and their labels; the server
learns ``n`` and nothing else.  Semi-honest server, possibly malicious client.

The pseudorandom function is ``F(x) = X25519(k, H(x))`` with ``H`` the RFC 9380 hash
to Curve25519 of :mod:`jointly.crypto.ecc` (the same ``F`` as ECDH PSI).

*Preprocess, once* (:class:`LabeledPsiServer`).  For every id ``x`` with label ``l``:
``key || tag = HKDF-SHA512(salt = table_id, F(x))``; the table holds ``tag`` (first
``tag_bytes`` bytes) and ``AES-256-GCM(key, pad(l))``, with every label padded to
``label_bytes``, sorted by tag (so the order says nothing about the server's input
order), plus one *canary* row for a public id no real id can equal.  The table
(:class:`LabeledTable`) is public: without ``k`` its tags and sealed labels are
pseudorandom strings; it reveals ``N`` (plus one), ``label_bytes`` and nothing else.
A client downloads it once and caches it (``table_id`` names it).

*Query* (one round trip, :func:`run_labeled_psi_client` / :func:`run_labeled_psi_server`).
The client adds the canary to its ids, puts them in a secret random order, draws a
fresh clamped scalar ``r`` for this query and sends ``B_i = X25519(r, H(y_i))``; the
server returns ``X25519(k, B_i)``; the client multiplies by ``r^-1`` (as two X25519
calls, see :mod:`._labeled_seal`), which gives ``F(y_i)``, derives tag and key, looks
the tag up and opens the label.  An evaluation under another key than the table's
(a wrong answer, or a cached table from before the server changed its key) is caught
by the canary, which must open: :class:`ProtocolViolation`.

What the server learns: the number of points, ``n + 1``.  One ``r`` per query (not
per id) lets the shared, multi-process batch kernels do the work; the ``n + 1``
points ``r * H(y_i)`` are then indistinguishable from random points of the
prime-order subgroup under decisional Diffie-Hellman in the random-oracle model
(DDH's random self-reducibility covers many points under one exponent), and a new
``r`` per query makes queries unlinkable.  Duplicate ids are refused
(:class:`~jointly.errors.DataError`), so no two points of a query are equal.  The
server cannot tell the canary from a real id.

What the client learns: for each of its ids, membership and the label.  For any
id it did not query, ``F(x)`` is unknown (one-more Diffie-Hellman), so that row's
tag and key are pseudorandom and its label stays sealed.  A false match needs a
tag collision (probability at most ``n * N / 2^(8 * tag_bytes)``, about ``2^-63``
for ``N = 10^6``, ``n = 10^4``, 12-byte tags; tags that collide are all tried) *and*
an AES-GCM tag accepted under an unrelated key (at most about ``2^-128`` per try):
in practice never.

*Rate limit.*  Every evaluated point answers one membership question for
whoever chose it, and a malicious client may put any id it likes in any slot
(including the canary's).  :class:`LabeledPsiConfig` caps the ids per query
(``max_query_ids``; the server evaluates at most ``max_query_ids + 1`` points, the
extra one for the canary) and optionally the points a client may have evaluated
over the lifetime of a :class:`LabeledPsiServer` (``client_budget``).  Keep ``k``
on the server: with it, anyone can test any id against the table offline.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jointly.channel import Channel
from jointly.channel.codec import message
from jointly.crypto.ecc import POINT_BYTES, EcdhKey
from jointly.errors import ConfigError, DataError, PermissionDenied, ProtocolViolation
from jointly.protocols.psi import _labeled_seal as seal
from jointly.protocols.psi.common import ID_SOURCE, canonical_ids, secure_permutation

__all__ = [
    "BlindState",
    "LabeledPsiClient",
    "LabeledPsiConfig",
    "LabeledPsiServer",
    "LabeledTable",
    "QueryHello",
    "TableOffer",
    "run_labeled_psi_client",
    "run_labeled_psi_server",
]

VERSION = 1
MAX_QUERY_IDS = 1 << 22
_POINT = np.dtype(f"S{POINT_BYTES}")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _int_in(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


@dataclass(frozen=True)
class LabeledPsiConfig:
    """Parameters of labeled PSI; each side uses its own (they need not match).

    ``max_query_ids``: ids per query (the client refuses to send more, the server
    to evaluate more).  ``tag_bytes`` (server): bytes of each lookup tag, 8 to 32.
    ``label_bytes`` (server): the fixed padded label size; ``None`` uses the longest
    label.  ``workers``: processes for the curve arithmetic (``None``: every core).
    ``client_budget`` (server): points one client may have evaluated in all by one
    :class:`LabeledPsiServer` (``None``: no limit beyond ``max_query_ids`` per query).
    """

    max_query_ids: int = 10_000
    tag_bytes: int = 12
    label_bytes: int | None = None
    workers: int | None = None
    client_budget: int | None = None

    def __post_init__(self) -> None:
        if not _int_in(self.max_query_ids, 1, MAX_QUERY_IDS):
            raise ConfigError(f"max_query_ids must be an integer from 1 to {MAX_QUERY_IDS}, got {self.max_query_ids!r}")
        if not _int_in(self.tag_bytes, seal.MIN_TAG_BYTES, seal.MAX_TAG_BYTES):
            raise ConfigError(
                f"tag_bytes must be from {seal.MIN_TAG_BYTES} to {seal.MAX_TAG_BYTES}, got {self.tag_bytes!r}"
            )
        if self.label_bytes is not None and not _int_in(self.label_bytes, 0, seal.MAX_LABEL_BYTES):
            raise ConfigError(f"label_bytes must be from 0 to {seal.MAX_LABEL_BYTES} or None, got {self.label_bytes!r}")
        if self.workers is not None and not _positive_int(self.workers):
            raise ConfigError(f"workers must be a positive integer or None, got {self.workers!r}")
        if self.client_budget is not None and not _positive_int(self.client_budget):
            raise ConfigError(f"client_budget must be a positive integer or None, got {self.client_budget!r}")


# -- wire messages --------------------------------------------------------------------------
@message("jointly.psi.labeled.Table")
@dataclass(frozen=True)
class LabeledTable:
    """The server's preprocessed table: public, cacheable, useless without the server's key.

    ``tags``: ``'S{tag_bytes}'``, sorted; ``sealed``: ``uint8`` rows of
    ``label_bytes + 17`` bytes, aligned with ``tags``.  One row is the canary.
    """

    version: int
    table_id: bytes
    tag_bytes: int
    label_bytes: int
    tags: np.ndarray
    sealed: np.ndarray

    @property
    def size(self) -> int:
        """The number of the server's ids (the canary row not counted)."""
        return len(self.tags) - 1

    @property
    def nbytes(self) -> int:
        return int(self.tags.nbytes + self.sealed.nbytes)

    def check(self) -> None:
        """Raise :class:`ProtocolViolation` unless this is a well-formed table."""
        if self.version != VERSION:
            raise ProtocolViolation(f"labeled PSI table version {self.version!r}, this party runs {VERSION}")
        if not isinstance(self.table_id, bytes) or len(self.table_id) != seal.TABLE_ID_BYTES:
            raise ProtocolViolation("malformed labeled PSI table id")
        if not _int_in(self.tag_bytes, seal.MIN_TAG_BYTES, seal.MAX_TAG_BYTES):
            raise ProtocolViolation(f"labeled PSI table has tag_bytes={self.tag_bytes!r}")
        if not _int_in(self.label_bytes, 0, seal.MAX_LABEL_BYTES):
            raise ProtocolViolation(f"labeled PSI table has label_bytes={self.label_bytes!r}")
        tags, sealed = self.tags, self.sealed
        if not isinstance(tags, np.ndarray) or tags.ndim != 1 or tags.dtype != np.dtype(f"S{self.tag_bytes}"):
            raise ProtocolViolation(f"labeled PSI table tags must be a 1-d array of {self.tag_bytes}-byte strings")
        width = seal.sealed_width(self.label_bytes)
        if not isinstance(sealed, np.ndarray) or sealed.dtype != np.uint8 or sealed.shape != (len(tags), width):
            raise ProtocolViolation(f"labeled PSI table labels must be a uint8 array of shape ({len(tags)}, {width})")
        if len(tags) < 1:
            raise ProtocolViolation("labeled PSI table has no canary row")
        if len(tags) > 1 and not bool(np.all(tags[1:] >= tags[:-1])):
            raise ProtocolViolation("labeled PSI table tags are not sorted")


@message("jointly.psi.labeled.Hello")
@dataclass(frozen=True)
class QueryHello:
    """Client to server: the table it has cached (``b""`` for none) and how many ids it will query."""

    version: int
    table_id: bytes
    count: int


@message("jointly.psi.labeled.Offer")
@dataclass(frozen=True)
class TableOffer:
    """Server to client: its current table id, and the table itself if the client lacks it."""

    table_id: bytes
    table: LabeledTable | None


# -- server ---------------------------------------------------------------------------------
def _items(items: Mapping[str, bytes] | Sequence[tuple[str, bytes]]) -> tuple[list[bytes], list[bytes]]:
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    ids: list[object] = []
    labels: list[bytes] = []
    for pos, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise DataError(ID_SOURCE, "each server item must be an (id, label) pair", row=pos)
        ident, label = pair
        if not isinstance(label, bytes):
            raise DataError(ID_SOURCE, f"the label of id {ident!r} is {type(label).__name__}, not bytes", row=pos)
        ids.append(ident)
        labels.append(label)
    return canonical_ids(ids), labels


class LabeledPsiServer:
    """The server's side: preprocesses its labeled set on construction, then evaluates queries.

    ``key``: the OPRF key (``None``: a fresh one).  It never leaves this process
    (except to this machine's worker processes).  Thread-safe.
    """

    def __init__(
        self,
        items: Mapping[str, bytes] | Sequence[tuple[str, bytes]],
        *,
        config: LabeledPsiConfig,
        key: EcdhKey | None = None,
    ) -> None:
        ids, labels = _items(items)
        longest = max((len(x) for x in labels), default=0)
        label_bytes = longest if config.label_bytes is None else config.label_bytes
        if longest > label_bytes:
            raise DataError(ID_SOURCE, f"a label has {longest} bytes, over label_bytes={label_bytes}")
        if label_bytes > seal.MAX_LABEL_BYTES:
            raise DataError(ID_SOURCE, f"labels of {label_bytes} bytes are over the limit of {seal.MAX_LABEL_BYTES}")
        self.config = config
        self._key = key or EcdhKey.generate()
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}
        table_id = secrets.token_bytes(seal.TABLE_ID_BYTES)
        points = self._key.hash_encrypt([*ids, seal.CANARY_ID], workers=config.workers)
        tags, keys = seal.derive(points, table_id, config.tag_bytes)
        del points
        sealed = seal.seal_all(keys, [*labels, seal.CANARY_LABEL], label_bytes)
        del keys
        order = np.argsort(tags, kind="stable")
        self._table = LabeledTable(VERSION, table_id, config.tag_bytes, label_bytes, tags[order], sealed[order])

    @classmethod
    def restore(cls, table: LabeledTable, *, config: LabeledPsiConfig, key: EcdhKey) -> LabeledPsiServer:
        """The server of a table it preprocessed earlier with ``key`` (both kept on its own node).

        No preprocessing, and the table (and so every client's cached copy) stays valid.  Raises
        :class:`ConfigError` if the table does not match the key or the configuration.
        """
        try:
            table.check()
        except ProtocolViolation as exc:
            raise ConfigError(f"stored labeled PSI table is malformed: {exc}") from None
        if table.tag_bytes != config.tag_bytes:
            raise ConfigError(f"stored table has {table.tag_bytes}-byte tags, the configuration {config.tag_bytes}")
        tags, _ = seal.derive(key.hash_encrypt([seal.CANARY_ID], workers=1), table.table_id, table.tag_bytes)
        at = int(np.searchsorted(table.tags, tags[0]))
        if at >= len(table.tags) or table.tags[at] != tags[0]:
            raise ConfigError("the stored labeled PSI table was not made with this key")
        server = cls.__new__(cls)
        server.config = config
        server._key = key
        server._lock = threading.Lock()
        server._spent = {}
        server._table = table
        return server

    @property
    def table_id(self) -> bytes:
        return self._table.table_id

    def table(self) -> LabeledTable:
        """The preprocessed, publishable table."""
        return self._table

    def spent(self, client: str) -> int:
        """Points evaluated for ``client`` so far (counted when ``evaluate`` is given a client name)."""
        with self._lock:
            return self._spent.get(client, 0)

    def admit(self, count: int, client: str | None = None) -> None:
        """Refuse a query of ``count`` ids: ProtocolViolation over ``max_query_ids``, PermissionDenied over budget."""
        with self._lock:
            self._admit(count, client)

    def _admit(self, count: int, client: str | None) -> None:
        if not _int_in(count, 0, self.config.max_query_ids):
            raise ProtocolViolation(f"a query of {count!r} ids is over max_query_ids={self.config.max_query_ids}")
        budget = self.config.client_budget
        spent = self._spent.get(client, 0) if client is not None else 0
        if client is not None and budget is not None and spent + count + 1 > budget:
            raise PermissionDenied(
                f"{client} has used {spent} of its {budget} labeled PSI evaluations (one per id, one per query "
                f"for the canary); a query of {count} ids would exceed it"
            )

    def evaluate(self, blinded: np.ndarray, *, client: str | None = None) -> np.ndarray:
        """Apply the key to a client's blinded points (one per queried id plus the canary).

        Raises :class:`ProtocolViolation` for a malformed array, a non-canonical or
        low-order point, or more than ``max_query_ids + 1`` points;
        :class:`PermissionDenied` if ``client`` would exceed its ``client_budget``.
        """
        if not isinstance(blinded, np.ndarray) or blinded.ndim != 1 or blinded.dtype != _POINT:
            raise ProtocolViolation(f"expected a 1-d array of {POINT_BYTES}-byte points")
        if len(blinded) < 1:
            raise ProtocolViolation("an empty labeled PSI query (it must hold at least the canary)")
        with self._lock:
            self._admit(len(blinded) - 1, client)
            if client is not None:
                self._spent[client] = self._spent.get(client, 0) + len(blinded)
        return self._key.reencrypt(blinded, workers=self.config.workers)


# -- client ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlindState:
    """What the client keeps between :meth:`LabeledPsiClient.blind` and :meth:`~LabeledPsiClient.finish`.

    Local only: never send it (it holds the unblinding scalars).
    """

    ids: tuple[str, ...]
    order: np.ndarray  # sent[i] is item order[i]; item len(ids) is the canary
    unblind: tuple[EcdhKey, EcdhKey]
    table_id: bytes


class LabeledPsiClient:
    """The client's side over a (cached) :class:`LabeledTable`; raises ProtocolViolation for a malformed one."""

    def __init__(self, table: LabeledTable, *, config: LabeledPsiConfig) -> None:
        if not isinstance(table, LabeledTable):
            raise ProtocolViolation(f"expected a labeled PSI table, got {type(table).__name__}")
        table.check()
        self.table = table
        self.config = config

    def blind(self, ids: Sequence[str]) -> tuple[np.ndarray, BlindState]:
        """Blinded points for ``ids`` and the canary, in a secret order; a fresh blinding scalar per call.

        Raises :class:`DataError` for a duplicate or unsupported id and
        :class:`ConfigError` for more than ``max_query_ids`` ids.
        """
        given = tuple(ids)
        if len(given) > self.config.max_query_ids:
            raise ConfigError(f"{len(given)} ids are over max_query_ids={self.config.max_query_ids}")
        items = [*canonical_ids(given), seal.CANARY_ID]
        order = secure_permutation(len(items))
        r = seal.clamped_scalar()
        blinded = EcdhKey(seal.scalar_bytes(r)).hash_encrypt(
            [items[j] for j in order.tolist()], workers=self.config.workers
        )
        s1, s2 = seal.unblinding_pair(r)
        unblind = (EcdhKey(seal.scalar_bytes(s1)), EcdhKey(seal.scalar_bytes(s2)))
        return blinded, BlindState(given, order, unblind, self.table.table_id)

    def finish(self, evaluated: np.ndarray, state: BlindState) -> dict[str, bytes | None]:
        """Each queried id's label, or ``None`` if the server does not hold it (in the order queried).

        Raises :class:`ProtocolViolation` for a malformed evaluation, or one under
        another key or for another table (the canary does not open).
        """
        n = len(state.order)
        if not isinstance(evaluated, np.ndarray) or evaluated.dtype != _POINT or evaluated.shape != (n,):
            raise ProtocolViolation(f"expected {n} evaluated {POINT_BYTES}-byte points")
        if state.table_id != self.table.table_id:
            raise ConfigError("this blind state belongs to another table")
        s1, s2 = state.unblind
        workers = self.config.workers
        values = s2.reencrypt(s1.reencrypt(evaluated, workers=workers), workers=workers)
        tags, keys = seal.derive(values, self.table.table_id, self.table.tag_bytes)
        table_tags, sealed = self.table.tags, self.table.sealed
        lo = np.searchsorted(table_tags, tags, side="left").tolist()
        hi = np.searchsorted(table_tags, tags, side="right").tolist()
        found: list[bytes | None] = [None] * n
        for i in range(n):
            for row in range(lo[i], hi[i]):
                label = seal.open_label(keys[i], sealed[row].tobytes())
                if label is not None:
                    found[i] = label
                    break
        by_item: list[bytes | None] = [None] * n
        for i, item in enumerate(state.order.tolist()):
            by_item[item] = found[i]
        if by_item[-1] != seal.CANARY_LABEL:
            raise ProtocolViolation(
                "the server's evaluation does not match its table (another key, or a stale table): the canary failed"
            )
        return {ident: by_item[j] for j, ident in enumerate(state.ids)}


# -- over a channel -------------------------------------------------------------------------
def run_labeled_psi_server(channel: Channel, client: str, server: LabeledPsiServer, *, send_table: bool = True) -> int:
    """Answer one query of ``client``; returns the number of ids it queried (0 if it got no evaluation).

    Sends the table first if the client's cached one is not current (unless
    ``send_table`` is false: then the client fails with a ConfigError and this returns 0).
    """
    ch = channel.sub("labeled-psi")
    hello = ch.recv(client, "hello")
    if not isinstance(hello, QueryHello) or not isinstance(hello.table_id, bytes):
        raise ProtocolViolation(f"{client} sent {type(hello).__name__} instead of a labeled PSI hello")
    if hello.version != VERSION:
        raise ConfigError(f"{client} runs labeled PSI version {hello.version!r}, this server runs {VERSION}")
    server.admit(hello.count, client)
    current = hello.table_id == server.table_id
    ch.send(client, "table", TableOffer(server.table_id, None if current or not send_table else server.table()))
    if not current and not send_table:
        return 0
    blinded = ch.recv(client, "query")
    if not isinstance(blinded, np.ndarray) or blinded.shape != (hello.count + 1,):
        raise ProtocolViolation(f"{client} announced {hello.count} ids but sent a different query")
    ch.send(client, "evaluated", server.evaluate(blinded, client=client))
    return int(hello.count)


def run_labeled_psi_client(
    channel: Channel,
    server: str,
    ids: Sequence[str],
    *,
    table: LabeledTable | None = None,
    config: LabeledPsiConfig,
) -> tuple[dict[str, bytes | None], LabeledTable]:
    """Query ``server`` for ``ids``; returns each id's label (``None``: absent) and the table to cache.

    ``table``: a cached table; the server sends a new one if it is missing or stale.
    """
    given = tuple(ids)
    if len(given) > config.max_query_ids:
        raise ConfigError(f"{len(given)} ids are over max_query_ids={config.max_query_ids}")
    canonical_ids(given)  # refuse bad ids before anything leaves this party
    ch = channel.sub("labeled-psi")
    ch.send(server, "hello", QueryHello(VERSION, table.table_id if table is not None else b"", len(given)))
    offer = ch.recv(server, "table")
    if not isinstance(offer, TableOffer) or not isinstance(offer.table_id, bytes):
        raise ProtocolViolation(f"{server} sent {type(offer).__name__} instead of a labeled PSI table offer")
    if offer.table is not None:
        if not isinstance(offer.table, LabeledTable) or offer.table.table_id != offer.table_id:
            raise ProtocolViolation(f"{server} sent a table that does not match its offer")
        table = offer.table
    if table is None or table.table_id != offer.table_id:
        raise ConfigError(f"{server} has a new labeled PSI table and does not send it; fetch the table again")
    client = LabeledPsiClient(table, config=config)
    blinded, state = client.blind(given)
    ch.send(server, "query", blinded)
    evaluated = ch.recv(server, "evaluated")
    if not isinstance(evaluated, np.ndarray):
        raise ProtocolViolation(f"{server} sent {type(evaluated).__name__} instead of evaluated points")
    return client.finish(evaluated, state), table
