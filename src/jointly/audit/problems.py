"""What can be wrong with a log: the problem kinds a verification reports and a replica refuses with.

Kinds:

``bad_signature``    an entry or head whose signature does not verify under the claimed author's key
                     (altered bytes, re-signed with another key, a forgery, or no key for the author)
``wrong_party``      an entry or head in a log it does not belong to (a party's entry planted in another's log)
``out_of_order``     an entry at a position other than its seq (reordered or duplicated entries)
``missing``          entries a signed head, a cosignature or another copy proves existed are gone (removed)
``altered``          bytes that are not a well-formed record, or a copy that differs from another copy
``head_mismatch``    a signed or cosigned head whose root is not the root of the entries held
``inconsistent``     two heads of one log that no append-only history can join (the log shrank or forked)
``bad_cosignature``  a cosignature that does not verify, names the wrong log or size, or comes from an unknown signer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from jointly.errors import ProtocolViolation

ProblemKind = Literal[
    "bad_signature",
    "wrong_party",
    "out_of_order",
    "missing",
    "altered",
    "head_mismatch",
    "inconsistent",
    "bad_cosignature",
]
KINDS: frozenset[str] = frozenset(get_args(ProblemKind))


@dataclass(frozen=True)
class Problem:
    """One finding: its kind, the entry position or tree size it concerns (None: the log as a whole),
    a message for people, and whose copy it was found in (empty: the copy being verified)."""

    kind: ProblemKind
    seq: int | None
    message: str
    holder: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "message": self.message, "holder": self.holder}


class LedgerRejected(ProtocolViolation):
    """A partner's log update (or a cosignature) was refused: ``kind`` says why, ``seq`` where.

    Raised by the replica when a partner's entries, head or consistency proof do
    not check out (it rewrote or dropped history, forged an entry, or skipped
    one), and by the owner for a cosignature that does not match its log.
    Nothing from the refused update is stored.
    """

    def __init__(self, party: str, kind: ProblemKind, message: str, *, seq: int | None = None) -> None:
        self.party = party
        self.kind = kind
        self.seq = seq
        where = f" at {seq}" if seq is not None else ""
        super().__init__(f"ledger of {party!r} refused ({kind}{where}): {message}")

    @property
    def problem(self) -> Problem:
        return Problem(self.kind, self.seq, str(self))
