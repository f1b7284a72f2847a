"""ECDH private set intersection (Diffie-Hellman PSI over Curve25519), semi-honest parties.

Every party hashes its ids to Curve25519 (RFC 9380, ``curve25519_XMD:SHA-512_ELL2_NU_``)
and encrypts them with a fresh secret scalar per job: ``H(x)^a`` stands for
``X25519(a, H(x))`` (:mod:`jointly.crypto.ecc`).  Encryptions commute, so an id
two parties hold becomes the same value once both keys were applied, while
without a key no one can test a guessed id (decisional Diffie-Hellman in the
random-oracle model).  Doubly (or fully) encrypted values are compared on their
first ``truncate_bytes`` bytes (see :class:`~jointly.protocols.psi.common.PsiConfig`
for the false-match bound).

Common steps.  (0) *hello*: every party sends every other its set size, its
batch size and a fingerprint of the configuration; a mismatch stops the job.
Every party puts its ids in a secret random order (OS CSPRNG) before anything
leaves it, so the order of its messages says nothing about its data.  Every
stream goes in batches of ``batch_size``, one message per batch, tagged with
its stage and batch index.

Two parties, A and B (each may or may not be a receiver):

1. *encrypt*: A sends ``H(x)^a`` for its ids; B sends ``H(y)^b`` for its ids.
2. *reencrypt*: each raises the other's values to its own key.  If the peer is
   a receiver, the result ``H(x)^ab`` goes back to it truncated: in the order
   received (intersection mode) or in a fresh secret order over the whole set
   (cardinality mode).
3. *match*: a receiver compares its own ``H(x)^ab``, returned to it, with the
   peer's ``H(y)^ab``, which it computed in step 2.

A receiver learns the intersection (in cardinality mode only its size: the
returned values are shuffled, so it cannot tell which of its ids matched) and
the size of the peer's set.  A non-receiver learns the size of the peer's set.

Three or more parties.  The *leader* ``C`` is the first receiver in job order;
the others, in job order, are ``O_0 .. O_m-1``; ``O_0`` is also the *blinder*.
Keys: ``c`` for the leader, ``k_j`` for ``O_j``, and a second fresh key ``s``
at the blinder; ``K = c * k_0 * ... * k_m-1``.

1. *ring*: the set of each ``O_j`` travels ``O_j -> O_j+1 -> ... -> O_j-1``
   (around the others), each applying its key without reordering, then to
   ``C``, which applies ``c``.  ``C`` now holds ``E_j = H(X_j)^K`` for every
   other party, in that party's secret order.
2. *intersect*: ``C`` computes ``I' = E_0 ∩ ... ∩ E_m-1`` (the intersection of the
   others' sets), pads it with random curve points (``H(r)^t`` for random
   ``r`` and a throwaway key ``t``, indistinguishable from real values) to
   ``D = min_j |X_j|``, a public number, shuffles it and sends it to the blinder.
   The ``D`` padding points are made before ``I'`` is known, so the time this
   takes does not depend on ``|I'|`` either.
3. *own*: ``C``'s set travels ``C -> O_0 -> ... -> O_m-1 -> C`` as ``H(x)^c``; each
   applies its key and the blinder also ``s``, so it comes back as
   ``H(x)^(K s)``: in ``C``'s order in intersection mode, shuffled at every hop in
   cardinality mode.
4. *blind*: the blinder raises the padded ``I'`` to ``s`` and returns it (in the
   same order in intersection mode, shuffled in cardinality mode).
5. *result*: ``C`` matches its ``H(x)^(K s)`` against ``I'^s``: that is its ids in
   the intersection of all sets, or their number.  In intersection mode the
   returned order also tells ``C`` which values of ``I'`` are in the final
   intersection ``I``; it sends each other receiver ``O_j`` a bit mask over
   ``E_j`` (in ``O_j``'s secret order) marking ``I``; in cardinality mode it
   sends them ``|I|``.

What each party learns with three or more parties:

* every party: the size of every set (from the hello);
* a receiver other than the leader: the intersection of all sets (or its size);
* the leader: the same, **and** -- the extra leakage of this design -- the size
  of the intersection of any sub-collection of the *other* parties' sets (for
  example ``|X_1 ∩ X_2|``), because it holds ``E_j`` for each of them
  separately.  It never learns which ids are in those sub-intersections, and
  learns nothing about how its own ids meet any single other set;
* a party that is not a receiver (the blinder included): nothing beyond the set
  sizes.  It never holds two sets under the same keys: every set it relays
  lacks at least one other party's key, and the padded ``I'`` the blinder raises
  to ``s`` has the public size ``D`` and carries the leader's key ``c``, which
  nothing else the blinder holds does.  (With ``m >= 2`` the blinder is never the
  last hop of the leader's set, which would let it count matches.)

Security model: semi-honest (honest-but-curious) parties that do not collude;
colluding parties can pool their keys.  A malformed message, a point that is
not a canonical encoding, or a low-order point raises
:class:`~jointly.errors.ProtocolViolation`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jointly.channel import Channel
from jointly.channel.codec import encode, message
from jointly.crypto.ecc import POINT_BYTES, PSI_DST, EcdhKey
from jointly.errors import ConfigError, ProtocolViolation
from jointly.progress import NullProgress, Progress
from jointly.protocols.psi.common import (
    MAX_BATCH_SIZE,
    Id,
    PsiConfig,
    PsiResult,
    canonical_ids,
    secure_permutation,
    sorted_ids,
)

VERSION = 1
MAX_SET = 1 << 40

TASK_ENCRYPT = "psi: encrypt own ids"
TASK_MATCH = "psi: match"
TASK_PADDING = "psi: prepare padding"
_NO_PROGRESS = NullProgress()


@message("jointly.psi.ecdh.Hello")
@dataclass(frozen=True)
class Hello:
    """The first message of every party to every other."""

    version: int
    fingerprint: bytes
    set_size: int
    batch_size: int


@dataclass
class _Job:
    """One party's state for one run; built by :func:`run_ecdh_psi`."""

    ch: Channel
    me: str
    parties: tuple[str, ...]
    receivers: tuple[str, ...]
    config: PsiConfig
    progress: Progress
    key: EcdhKey
    ids: list[bytes]  # canonical ids in this party's secret order
    sizes: dict[str, int]
    batch: dict[str, int]

    @property
    def cardinality(self) -> bool:
        return self.config.mode == "cardinality"

    @property
    def t(self) -> int:
        return self.config.truncate_bytes

    def spans(self, owner: str, n: int | None = None) -> list[tuple[int, int]]:
        """Batch bounds of a stream of ``n`` values (default: ``owner``'s set) cut at ``owner``'s batch size."""
        total = self.sizes[owner] if n is None else n
        step = self.batch[owner]
        return [(lo, min(lo + step, total)) for lo in range(0, total, step)]

    def encrypt(self, lo: int, hi: int) -> np.ndarray:
        return self.key.hash_encrypt(self.ids[lo:hi], workers=self.config.workers)

    def reencrypt(self, points: np.ndarray, key: EcdhKey | None = None) -> np.ndarray:
        return (key or self.key).reencrypt(points, workers=self.config.workers)


def run_ecdh_psi(
    channel: Channel, ids: Sequence[Id], config: PsiConfig, *, progress: Progress = _NO_PROGRESS
) -> PsiResult:
    """This party's side of ECDH PSI: every party calls it with its own ids and the same ``config``.

    See the module docstring for the steps and for what each party learns.
    Raises :class:`~jointly.errors.DataError` for a duplicate or unsupported id,
    :class:`~jointly.errors.ConfigError` for an invalid or mismatched configuration.
    """
    if config.protocol != "ecdh":
        raise ConfigError(f"run_ecdh_psi cannot run protocol {config.protocol!r}")
    given = list(ids)
    canon = canonical_ids(given)
    parties = channel.parties
    receivers = config.resolved_receivers(parties)
    ch = channel.sub("ecdh")
    sizes, batch = _hello(ch.sub("hello"), parties, receivers, config, len(canon))
    config.check_truncation(sum(sizes.values()))
    order = secure_permutation(len(canon))
    job = _Job(
        ch=ch,
        me=channel.party,
        parties=parties,
        receivers=receivers,
        config=config,
        progress=progress,
        key=EcdhKey.generate(),
        ids=[canon[i] for i in order.tolist()],
        sizes=sizes,
        batch=batch,
    )
    outcome = _two_party(job) if len(parties) == 2 else _multi_party(job)
    if job.me not in receivers:
        return PsiResult(party=job.me, mode=config.mode, size=None, intersection=None)
    if isinstance(outcome, int):
        return PsiResult(party=job.me, mode=config.mode, size=outcome, intersection=None)
    if outcome is None:  # pragma: no cover - a receiver always gets an outcome
        raise ProtocolViolation("no PSI outcome for a receiver")
    mine = sorted_ids([given[order[j]] for j in np.flatnonzero(outcome).tolist()])
    return PsiResult(party=job.me, mode=config.mode, size=len(mine), intersection=mine)


# -- hello ----------------------------------------------------------------------------------
def _fingerprint(config: PsiConfig, parties: tuple[str, ...], receivers: tuple[str, ...]) -> bytes:
    described = ["jointly-psi-ecdh", VERSION, config.mode, list(receivers), config.truncate_bytes, list(parties)]
    return hashlib.sha256(encode([*described, PSI_DST])).digest()


def _hello(
    ch: Channel, parties: tuple[str, ...], receivers: tuple[str, ...], config: PsiConfig, n: int
) -> tuple[dict[str, int], dict[str, int]]:
    mine = Hello(VERSION, _fingerprint(config, parties, receivers), n, config.batch_size)
    ch.broadcast("0", mine)
    sizes, batch = {ch.party: n}, {ch.party: config.batch_size}
    for peer, value in ch.gather("0").items():
        if not isinstance(value, Hello) or not isinstance(value.fingerprint, bytes):
            raise ProtocolViolation(f"{peer} sent {type(value).__name__} instead of a PSI hello")
        if value.version != VERSION:
            raise ConfigError(f"{peer} runs ECDH PSI version {value.version!r}, this party runs {VERSION}")
        if value.fingerprint != mine.fingerprint:
            raise ConfigError(f"{peer} runs PSI with a different configuration (mode, receivers or truncate_bytes)")
        if not _int_in(value.set_size, 0, MAX_SET) or not _int_in(value.batch_size, 1, MAX_BATCH_SIZE):
            raise ProtocolViolation(f"{peer} sent an invalid set size or batch size")
        sizes[peer], batch[peer] = value.set_size, value.batch_size
    return sizes, batch


def _int_in(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


# -- streams --------------------------------------------------------------------------------
def _truncate(points: np.ndarray, nbytes: int) -> np.ndarray:
    """The first ``nbytes`` bytes of each 32-byte value, as an ``'S{nbytes}'`` array."""
    raw = np.frombuffer(points.tobytes(), dtype=np.uint8).reshape(-1, POINT_BYTES)[:, :nbytes]
    return np.ascontiguousarray(raw).view(f"S{nbytes}").reshape(-1)


def _recv_values(ch: Channel, frm: str, index: int, count: int, width: int) -> np.ndarray:
    value = ch.recv(frm, str(index))
    expected = np.dtype(f"S{width}")
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != expected or len(value) != count:
        raise ProtocolViolation(
            f"{frm} sent a malformed batch {index} in stage {ch.namespace!r}: expected {count} values of {width} bytes"
        )
    return value


def _concat(parts: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=f"S{width}")


def _send_all(job: _Job, ch: Channel, to: str, values: np.ndarray, spans: list[tuple[int, int]]) -> None:
    for i, (lo, hi) in enumerate(spans):
        job.ch.check()
        ch.send(to, str(i), values[lo:hi])


def _relay(
    job: _Job,
    *,
    owner: str,
    src: tuple[Channel, str],
    dst: tuple[Channel, str] | None,
    width_in: int,
    step: Callable[[np.ndarray], np.ndarray],
    shuffle: bool,
    task: str,
    n: int | None = None,
) -> np.ndarray:
    """Receive ``owner``'s stream from ``src``, transform each batch with ``step``, forward it to ``dst``.

    Batches are forwarded as they are done, unless ``shuffle``: then the whole
    stream is put in a fresh secret order first.  Returns everything transformed.
    """
    (src_ch, frm), spans = src, job.spans(owner, n)
    total = spans[-1][1] if spans else 0
    out: list[np.ndarray] = []
    for i, (lo, hi) in enumerate(spans):
        job.ch.check()
        done = step(_recv_values(src_ch, frm, i, hi - lo, width_in))
        if dst is not None and not shuffle:
            dst[0].send(dst[1], str(i), done)
        out.append(done)
        job.progress.update(task, hi, total)
    result = np.concatenate(out) if out else step(np.empty(0, dtype=f"S{width_in}"))
    if shuffle:
        result = result[secure_permutation(len(result))]
        if dst is not None:
            _send_all(job, dst[0], dst[1], result, spans)
    return result


def _encrypt_own(job: _Job, ch: Channel, to: str) -> None:
    """Hash and encrypt this party's ids batch by batch, sending each batch to ``to``."""
    n = job.sizes[job.me]
    for i, (lo, hi) in enumerate(job.spans(job.me)):
        job.ch.check()
        ch.send(to, str(i), job.encrypt(lo, hi))
        job.progress.update(TASK_ENCRYPT, hi, n)


# -- two parties ----------------------------------------------------------------------------
def _two_party(job: _Job) -> np.ndarray | int | None:
    """Standard DH-PSI; returns a mask over this party's ids (intersection), a count, or None."""
    (peer,) = (p for p in job.parties if p != job.me)
    i_receive, peer_receives = job.me in job.receivers, peer in job.receivers
    enc = job.ch.sub("encrypt")
    _encrypt_own(job, enc, peer)

    dbl = job.ch.sub("reencrypt")
    stream_back = peer_receives and not job.cardinality
    theirs = _relay(
        job,
        owner=peer,
        src=(enc, peer),
        dst=(dbl, peer) if peer_receives else None,
        width_in=POINT_BYTES,
        step=lambda pts: _truncate(job.reencrypt(pts), job.t),
        shuffle=peer_receives and not stream_back,
        task=f"psi: re-encrypt {peer}'s ids",
    )
    if not i_receive:
        return None
    job.ch.sub("match")
    mine = _concat([_recv_values(dbl, peer, i, hi - lo, job.t) for i, (lo, hi) in enumerate(job.spans(job.me))], job.t)
    job.progress.update(TASK_MATCH, 0, 1)
    found = np.isin(mine, theirs)
    job.progress.update(TASK_MATCH, 1, 1)
    return int(found.sum()) if job.cardinality else found


# -- three or more parties ------------------------------------------------------------------
@dataclass
class _Roles:
    leader: str
    others: tuple[str, ...]  # O_0 .. O_m-1, job order; O_0 is the blinder

    @property
    def blinder(self) -> str:
        return self.others[0]

    def after(self, party: str) -> str:
        """The next party on the ring of the others."""
        return self.others[(self.others.index(party) + 1) % len(self.others)]

    def before(self, party: str) -> str:
        return self.others[(self.others.index(party) - 1) % len(self.others)]


def _multi_party(job: _Job) -> np.ndarray | int | None:
    leader = job.receivers[0]
    roles = _Roles(leader, tuple(p for p in job.parties if p != leader))
    if job.me == leader:
        return _lead(job, roles)
    return _follow(job, roles)


def _padding_size(job: _Job, roles: _Roles) -> int:
    return min(job.sizes[p] for p in roles.others)


def _follow(job: _Job, roles: _Roles) -> np.ndarray | int | None:
    """A party other than the leader: relay the ring and the leader's set, blind if asked, get the result."""
    me, m = job.me, len(roles.others)
    ring = job.ch.sub("ring")
    # hop 0: our own set; hops 1..m-1: the set of the party t places before us on the ring
    nxt = roles.leader if m == 1 else roles.after(me)
    _encrypt_own(job, ring.sub(me), nxt)
    owner = me
    for hop in range(1, m):
        owner = roles.before(owner)
        stream = ring.sub(owner)
        _relay(
            job,
            owner=owner,
            src=(stream, roles.before(me)),
            dst=(stream, roles.leader if hop == m - 1 else roles.after(me)),
            width_in=POINT_BYTES,
            step=job.reencrypt,
            shuffle=False,
            task=f"psi: re-encrypt {owner}'s ids",
        )

    own = job.ch.sub("own")
    blinding = EcdhKey.generate() if me == roles.blinder else None
    # the blinder is the first hop and, as m >= 2, never the last: the last hop holds the leader's
    # set under K*s, and must not also see I'^s
    first, last = me == roles.blinder, me == roles.others[-1]

    def hop_own(points: np.ndarray) -> np.ndarray:
        points = job.reencrypt(points)
        if blinding is not None:
            points = job.reencrypt(points, blinding)
        return _truncate(points, job.t) if last else points

    _relay(
        job,
        owner=roles.leader,
        src=(own, roles.leader if first else roles.before(me)),
        dst=(own, roles.leader if last else roles.after(me)),
        width_in=POINT_BYTES,
        step=hop_own,
        shuffle=job.cardinality,
        task=f"psi: re-encrypt {roles.leader}'s ids",
    )

    if blinding is not None:
        blind = job.ch.sub("blind")
        key = blinding
        _relay(
            job,
            owner=roles.leader,
            n=_padding_size(job, roles),
            src=(blind, roles.leader),
            dst=(blind, roles.leader),
            width_in=POINT_BYTES,
            step=lambda pts: _truncate(job.reencrypt(pts, key), job.t),
            shuffle=job.cardinality,
            task="psi: blind the candidates",
        )

    if me not in job.receivers:
        return None
    value = job.ch.sub("result").recv(roles.leader, "0")
    n = job.sizes[me]
    if job.cardinality:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= n:
            raise ProtocolViolation(f"{roles.leader} sent an invalid intersection size")
        return value
    nbytes = (n + 7) // 8
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.shape != (nbytes,):
        raise ProtocolViolation(f"{roles.leader} sent a malformed result mask")
    return np.unpackbits(value, count=n).astype(bool)


def _lead(job: _Job, roles: _Roles) -> np.ndarray | int:
    """The leader: collect everyone's fully encrypted set, intersect, have it blinded, match its own ids."""
    me = job.me
    own = job.ch.sub("own")
    _encrypt_own(job, own, roles.blinder)
    # padding for the candidates, made while the others run the ring and before |I'| is known, so that
    # how long it takes says nothing about |I'|
    job.ch.sub("padding")
    d = _padding_size(job, roles)
    job.progress.update(TASK_PADDING, 0, d)
    dummies = EcdhKey.generate().hash_encrypt([secrets.token_bytes(16) for _ in range(d)], workers=job.config.workers)
    job.progress.update(TASK_PADDING, d, d)

    # ring: receive every other set from its last hop and apply our key
    ring = job.ch.sub("ring")
    base = min(roles.others, key=lambda p: job.sizes[p])  # the smallest set bounds the intersection
    full: np.ndarray | None = None
    short: dict[str, np.ndarray] = {}
    for owner in roles.others:
        stream = ring.sub(owner)
        values = _relay(
            job,
            owner=owner,
            src=(stream, roles.before(owner)),
            dst=None,
            width_in=POINT_BYTES,
            step=job.reencrypt,
            shuffle=False,
            task=f"psi: encrypt {owner}'s ids",
        )
        if owner == base:
            full = values
        short[owner] = _truncate(values, job.t)
    if full is None:  # pragma: no cover - base is one of the others
        raise ProtocolViolation("missing the base set")

    # intersect the others' sets, pad to the public size D, and send to the blinder in a secret order
    job.ch.sub("intersect")
    keep = np.ones(len(full), dtype=bool)
    for owner in roles.others:
        if owner != base:
            keep &= np.isin(short[base], short[owner])
    candidates = full[keep]
    padded = np.concatenate([candidates, dummies[: d - len(candidates)]])[secure_permutation(d)]
    blind = job.ch.sub("blind")
    _send_all(job, blind, roles.blinder, padded, job.spans(me, d))

    # our own set comes back as H(x)^(K s); the candidates come back as I'^s
    job.ch.sub("own-back")
    mine = _concat(
        [_recv_values(own, roles.others[-1], i, hi - lo, job.t) for i, (lo, hi) in enumerate(job.spans(me))],
        job.t,
    )
    blinded = _concat(
        [_recv_values(blind, roles.blinder, i, hi - lo, job.t) for i, (lo, hi) in enumerate(job.spans(me, d))],
        job.t,
    )
    job.progress.update(TASK_MATCH, 0, 1)
    found = np.isin(mine, blinded)
    size = int(found.sum())
    result = job.ch.sub("result")
    others_receiving = [p for p in roles.others if p in job.receivers]
    if job.cardinality:
        for p in others_receiving:
            result.send(p, "0", size)
        job.progress.update(TASK_MATCH, 1, 1)
        return size
    # the blinder kept the order: candidates whose blinded value matched one of our ids form the intersection
    final = _truncate(padded[np.isin(blinded, mine)], job.t)
    for p in others_receiving:
        result.send(p, "0", np.packbits(np.isin(short[p], final)))
    job.progress.update(TASK_MATCH, 1, 1)
    return found
