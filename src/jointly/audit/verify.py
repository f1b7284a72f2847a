"""Verify stored logs: signatures, positions, Merkle heads, cosignatures, and agreement with partners' copies.

:func:`verify_log` checks one party's log as a store holds it, from the bytes
up, trusting nothing but the parties' verify keys:

* each entry decodes, is signed by the party it names (a forged entry claiming
  another party fails), names the log's owner, and sits at the position of its seq
  (reordered or duplicated entries show as ``out_of_order``, gaps as ``missing``);
* the Merkle tree is recomputed from the stored bytes, and every stored signed head
  must be signed by the owner and have the root of the first ``size`` entries
  (an altered, removed or reordered entry under a head shows as ``head_mismatch``,
  entries removed from the end as ``missing``); heads in the order stored never
  shrink or fork (``inconsistent``);
* every cosignature verifies under its signer's key and names a state the
  recomputed tree had (``bad_cosignature``, ``head_mismatch``);
* given other copies of the same log (a partner's replica, or the owner's log
  when checking a replica), the first entry where they differ is reported, with
  whether one side lacks entries (``missing``, attributed to the owner's copy
  only: a replica that is merely behind is not a problem), and their signed heads
  must match the local entries too.

The owner re-signing a rewritten log with its own key passes the first two
checks; the partners' cosignatures and copies are what catch it.  Problems are
data (:class:`~jointly.audit.problems.Problem`); a report serialises to JSON
with ``to_dict()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from jointly.audit.entry import SignedEntry
from jointly.audit.heads import Cosignature, SignedTreeHead
from jointly.audit.merkle import MerkleTree, leaf_hash
from jointly.audit.problems import Problem
from jointly.audit.store import LedgerStore
from jointly.crypto.signing import VerifyKey
from jointly.errors import AuthenticationError, CodecError
from jointly.progress import NullProgress, Progress

_PROGRESS_EVERY = 4096
_SHIFT_WINDOW = 1024
_ALIGN = 16
_MAX_PROBLEMS = 1000


@dataclass(frozen=True)
class LogView:
    """Another copy of a log: what ``holder`` has of it (entries in seq order, signed heads)."""

    holder: str
    entries: Sequence[bytes]
    heads: Sequence[bytes] = ()

    @classmethod
    def from_store(cls, store: LedgerStore, party: str, *, holder: str) -> LogView:
        return cls(holder, store.entries(party), store.heads(party))


@dataclass(frozen=True)
class CopyComparison:
    """How a copy held by ``holder`` compares with the one verified."""

    holder: str
    size: int
    first_difference: int | None
    missing_here: tuple[int, int] | None
    missing_there: tuple[int, int] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "size": self.size,
            "first_difference": self.first_difference,
            "missing_here": list(self.missing_here) if self.missing_here else None,
            "missing_there": list(self.missing_there) if self.missing_there else None,
        }


@dataclass
class LogReport:
    """The verification of ``party``'s log as held by ``holder``."""

    party: str
    holder: str
    size: int
    root: str
    checked_entries: int = 0
    heads: int = 0
    cosignatures: int = 0
    cosigners: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    comparisons: list[CopyComparison] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.truncated = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "holder": self.holder,
            "ok": self.ok,
            "size": self.size,
            "root": self.root,
            "checked_entries": self.checked_entries,
            "heads": self.heads,
            "cosignatures": self.cosignatures,
            "cosigners": list(self.cosigners),
            "problems": [p.to_dict() for p in self.problems],
            "problems_truncated": self.truncated,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


@dataclass
class VerificationReport:
    """Reports of every log a store holds (a node's own and its replicas of partners')."""

    holder: str
    parties: dict[str, LogReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.parties.values())

    @property
    def checked_entries(self) -> int:
        return sum(r.checked_entries for r in self.parties.values())

    @property
    def problems(self) -> list[Problem]:
        return [p for r in self.parties.values() for p in r.problems]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "holder": self.holder,
            "checked_entries": self.checked_entries,
            "parties": {name: r.to_dict() for name, r in self.parties.items()},
        }


def verify_store(
    store: LedgerStore,
    verify_keys: Mapping[str, VerifyKey],
    *,
    holder: str = "",
    partner_views: Mapping[str, Sequence[LogView]] | None = None,
    progress: Progress | None = None,
) -> VerificationReport:
    """Verify every party's log in ``store`` (``holder``: whose store it is; ``partner_views``: copies by party)."""
    report = VerificationReport(holder)
    views = partner_views or {}
    for party in sorted({*store.parties(), *views}):
        report.parties[party] = verify_log(
            party, store, verify_keys, holder=holder, partner_view=views.get(party), progress=progress
        )
    return report


def verify_log(
    party: str,
    store: LedgerStore,
    verify_keys: Mapping[str, VerifyKey],
    *,
    holder: str = "",
    partner_view: LogView | Sequence[LogView] | None = None,
    progress: Progress | None = None,
) -> LogReport:
    """Verify ``party``'s log as ``store`` holds it, and against other copies of it (see the module docstring)."""
    sink = progress or NullProgress()
    raw_entries = store.entries(party)
    n = len(raw_entries)
    report = LogReport(party, holder, n, "")
    seqs, sig_ok = _check_entries(party, raw_entries, verify_keys, report, sink)
    _check_positions(seqs, report)
    tree = MerkleTree.from_leaf_hashes([leaf_hash(raw) for raw in raw_entries])
    report.root = tree.root().hex()
    _check_heads(party, store.heads(party), tree, verify_keys, report, holder="")
    _check_cosignatures(party, store.cosignatures(party), tree, verify_keys, report)
    views: Sequence[LogView] = (
        () if partner_view is None else (partner_view,) if isinstance(partner_view, LogView) else partner_view
    )
    for view in views:
        _compare(party, holder, raw_entries, sig_ok, tree, view, verify_keys, report)
    if holder:
        report.problems = [p if p.holder else replace(p, holder=holder) for p in report.problems]
    return report


def _check_entries(
    party: str,
    raw_entries: Sequence[bytes],
    verify_keys: Mapping[str, VerifyKey],
    report: LogReport,
    sink: Progress,
) -> tuple[list[int | None], list[bool]]:
    seqs: list[int | None] = []
    sig_ok: list[bool] = []
    n = len(raw_entries)
    task = f"verify {party}"
    for i, raw in enumerate(raw_entries):
        if i % _PROGRESS_EVERY == 0:
            sink.update(task, i, n)
        try:
            signed = SignedEntry.decode(raw)
        except CodecError as exc:
            report.add(Problem("altered", i, f"stored bytes are not a ledger entry: {exc}"))
            seqs.append(None)
            sig_ok.append(False)
            continue
        entry = signed.entry
        seqs.append(entry.seq)
        ok = _entry_signed(signed, verify_keys)
        sig_ok.append(ok)
        if not ok:
            report.add(Problem("bad_signature", i, f"entry {entry.seq} is not signed by {entry.party!r}"))
        if entry.party != party:
            report.add(Problem("wrong_party", i, f"entry {entry.seq} names {entry.party!r}, not the log's owner"))
        report.checked_entries += 1
    sink.update(task, n, n)
    return seqs, sig_ok


def _entry_signed(signed: SignedEntry, verify_keys: Mapping[str, VerifyKey]) -> bool:
    key = verify_keys.get(signed.entry.party)
    if key is None:
        return False
    try:
        signed.verify(key)
    except AuthenticationError:
        return False
    return True


def _check_positions(seqs: list[int | None], report: LogReport) -> None:
    """Reordered / duplicated entries (``out_of_order``) and gaps in the seqs (``missing``)."""
    known = [s if s is not None else i for i, s in enumerate(seqs)]
    for (i, s), expected in zip(enumerate(known), sorted(known), strict=True):
        if s != expected:
            report.add(Problem("out_of_order", i, f"position {i} holds entry {s}"))
    for s, count in Counter(known).items():
        if count > 1:
            report.add(Problem("out_of_order", s, f"entry {s} is stored {count} times"))
    if known:
        present = set(known)
        for start, end in _runs(x for x in range(max(known) + 1) if x not in present):
            report.add(Problem("missing", start, f"entries {_span(start, end)} are missing (removed)"))


def _check_heads(
    party: str,
    heads: Sequence[bytes],
    tree: MerkleTree,
    verify_keys: Mapping[str, VerifyKey],
    report: LogReport,
    *,
    holder: str,
    lag_ok: bool = False,
) -> None:
    """Heads held by ``holder`` ("": the copy verified); ``lag_ok``: heads beyond the entries held are no problem."""
    n = tree.size
    previous: SignedTreeHead | None = None
    key = verify_keys.get(party)
    for raw in heads:
        try:
            head = SignedTreeHead.decode(raw)
        except CodecError as exc:
            report.add(Problem("altered", None, f"a stored head is not a signed tree head: {exc}", holder))
            continue
        if not holder:
            report.heads += 1
        if head.party != party:
            report.add(Problem("wrong_party", head.size, f"a head of {head.party!r}'s log is stored here", holder))
            continue
        try:
            if key is None:
                raise AuthenticationError(f"no verify key for {party!r}")
            head.verify(key)
        except AuthenticationError:
            report.add(
                Problem("bad_signature", head.size, f"the head at size {head.size} is not signed by {party!r}", holder)
            )
            continue
        if head.size > n:
            if not lag_ok:
                why = f"a head signed by {party!r}{' held by ' + holder if holder else ''} covers {head.size} entries"
                report.add(_missing(n, head.size, why, ""))
        elif tree.root(head.size) != head.root:
            report.add(
                Problem(
                    "head_mismatch",
                    head.size,
                    f"the head signed by {party!r} at size {head.size} does not match the first {head.size} "
                    "entries held (an entry was altered, removed or reordered)",
                    holder,
                )
            )
        if previous is not None and (
            head.size < previous.size or (head.size == previous.size and head.root != previous.root)
        ):
            report.add(
                Problem(
                    "inconsistent",
                    head.size,
                    f"a head at size {head.size} follows one at size {previous.size}: the log shrank or forked",
                    holder,
                )
            )
        previous = head


def _check_cosignatures(
    party: str,
    cosignatures: Sequence[tuple[int, str, bytes]],
    tree: MerkleTree,
    verify_keys: Mapping[str, VerifyKey],
    report: LogReport,
) -> None:
    signers: set[str] = set()
    for size, signer, raw in cosignatures:
        try:
            cosig = Cosignature.decode(raw)
        except CodecError as exc:
            report.add(Problem("bad_cosignature", size, f"{signer}'s cosignature does not decode: {exc}"))
            continue
        report.cosignatures += 1
        if (cosig.party, cosig.size, cosig.signer) != (party, size, signer):
            report.add(
                Problem(
                    "bad_cosignature",
                    size,
                    f"stored as {signer}'s cosignature of {party}@{size}, it is {cosig.signer}'s of "
                    f"{cosig.party}@{cosig.size}",
                )
            )
            continue
        key = verify_keys.get(signer)
        try:
            if key is None:
                raise AuthenticationError(f"no verify key for {signer!r}")
            cosig.verify(key)
        except AuthenticationError as exc:
            report.add(Problem("bad_cosignature", size, f"{signer}'s cosignature does not verify: {exc}"))
            continue
        signers.add(signer)
        if size > tree.size:
            report.add(_missing(tree.size, size, f"{signer} cosigned a head of {size} entries", ""))
        elif tree.root(size) != cosig.root:
            report.add(
                Problem(
                    "head_mismatch",
                    size,
                    f"{signer} cosigned a root at size {size} that the entries held do not give "
                    "(the log was rewritten after it was cosigned)",
                )
            )
    report.cosigners = sorted(signers)


def _compare(
    party: str,
    holder: str,
    local: Sequence[bytes],
    local_sig_ok: list[bool],
    tree: MerkleTree,
    view: LogView,
    verify_keys: Mapping[str, VerifyKey],
    report: LogReport,
) -> None:
    remote = view.entries
    common = min(len(local), len(remote))
    first = next((i for i in range(common) if local[i] != remote[i]), None)
    missing_here: tuple[int, int] | None = None
    missing_there: tuple[int, int] | None = None
    if first is not None:
        resume_there = _resumes(local, remote, first)
        resume_here = _resumes(remote, local, first)
        if resume_there is not None:
            missing_here = (first, resume_there)
        elif resume_here is not None:
            missing_there = (first, resume_here)
        else:
            report.add(_difference(party, first, local[first], local_sig_ok[first], remote[first], view, verify_keys))
    elif len(remote) > len(local):
        missing_here = (len(local), len(remote))
    elif len(local) > len(remote):
        missing_there = (len(remote), len(local))
    # A copy that is merely shorter is behind, not damaged, unless it is the owner's (the owner has every
    # entry it ever signed) or the gap is in the middle.
    if missing_here is not None and (holder == party or first is not None):
        report.add(_missing(*missing_here, f"{view.holder}'s copy has them: removed from this copy", ""))
    if missing_there is not None and (view.holder == party or first is not None):
        report.add(_missing(*missing_there, f"this copy has them: removed from {view.holder}'s copy", view.holder))
    report.comparisons.append(CopyComparison(view.holder, len(remote), first, missing_here, missing_there))
    _check_heads(party, view.heads, tree, verify_keys, report, holder=view.holder, lag_ok=holder != party)


def _difference(
    party: str,
    seq: int,
    mine: bytes,
    mine_ok: bool,
    theirs: bytes,
    view: LogView,
    verify_keys: Mapping[str, VerifyKey],
) -> Problem:
    """The first entry two copies disagree on: which copy is out of order, altered, or whether the owner forked."""
    other = view.holder
    for raw, whose in ((mine, ""), (theirs, other)):
        claimed = _seq_of(raw)
        if claimed is not None and claimed != seq:
            where = f"{other}'s copy" if whose else "this copy"
            return Problem("out_of_order", seq, f"copies differ at {seq}: {where} holds entry {claimed} there", whose)
    theirs_ok = _signed(theirs, verify_keys)
    text = f"entry {seq} differs from {other}'s copy"
    if mine_ok and not theirs_ok:
        return Problem("altered", seq, f"{text}; {other}'s is not validly signed (INVALID), this one is", other)
    if theirs_ok and not mine_ok:
        return Problem("altered", seq, f"{text}; this one is not validly signed (INVALID), {other}'s is", "")
    if mine_ok:
        return Problem(
            "altered",
            seq,
            f"{text}; both are validly signed by {party!r}: it signed two versions of the entry (rewrote its "
            "log); the signed heads and cosignatures show which one partners accepted",
            "",
        )
    return Problem("altered", seq, f"{text}; neither copy is validly signed (INVALID)", "")


def _seq_of(raw: bytes) -> int | None:
    try:
        return SignedEntry.decode(raw).entry.seq
    except CodecError:
        return None


def _signed(raw: bytes, verify_keys: Mapping[str, VerifyKey]) -> bool:
    try:
        return _entry_signed(SignedEntry.decode(raw), verify_keys)
    except CodecError:
        return False


def _resumes(short: Sequence[bytes], long: Sequence[bytes], first: int) -> int | None:
    """Where ``long`` picks up ``short[first:]`` again (entries ``first..j-1`` lacking in ``short``), if nearby."""
    for j in range(first + 1, min(len(long), first + 1 + _SHIFT_WINDOW)):
        span = min(_ALIGN, len(short) - first, len(long) - j)
        if all(short[first + t] == long[j + t] for t in range(span)):
            return j
    return None


def _missing(start: int, end: int, why: str, holder: str) -> Problem:
    return Problem("missing", start, f"entries {_span(start, end)} are missing: {why}", holder)


def _span(start: int, end: int) -> str:
    return f"{start}" if end - start == 1 else f"{start}..{end - 1}"


def _runs(values: Any) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] == v:
            runs[-1] = (runs[-1][0], v + 1)
        else:
            runs.append((v, v + 1))
    return runs
