"""Replicate this party's audit ledger to every partner node and keep replicas of theirs.

Every ``interval`` seconds (and soon after a job ends) the node pushes to each
federation partner what that partner's replica lacks: the new signed entries, a
fresh signed tree head, and the RFC 9162 consistency proof from the last head
the partner accepted.  The partner checks it all (:class:`jointly.audit.replica.Replica`)
and answers with its cosignature, which this node checks and stores.  A partner
that is down is retried on the next round; a refusal (the partner saw a history
that does not extend the one it held) is logged loudly and kept for ``verify``.

What crosses the wire: ledger entries (event names, job ids, hashes, counts,
short reasons — never raw data) and signatures.  Every federation member
receives every party's ledger: the consortium audits itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jointly.audit.heads import Cosignature
from jointly.audit.ledger import Ledger
from jointly.audit.replica import Replica
from jointly.audit.store import LedgerStore
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import JointlyError, ProtocolViolation

log = logging.getLogger("jointly.node.replication")

MAX_FETCH = 5000  # entries per ledger_fetch reply


class LedgerReplicator:
    """Pushes this node's ledger to partners; accepts and serves replicas."""

    def __init__(
        self,
        *,
        party: str,
        ledger: Ledger,
        store: LedgerStore,
        verify_keys: Mapping[str, VerifyKey],
        signing_key: SigningKey,
        call: Callable[[str, str, object], object],
        peers: Sequence[str],
        interval: float = 2.0,
    ) -> None:
        self.party = party
        self.ledger = ledger
        self.store = store
        self.verify_keys = verify_keys
        self.replica = Replica(party, signing_key, store)
        self._call = call
        self.peers = list(peers)
        self.interval = interval
        self._held: dict[str, int] = {}  # what each partner's replica holds of this log, as last told
        self.refusals: dict[str, str] = {}  # partner -> why it refused this log's last update
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledger-replication", daemon=True)
        self._push_lock = threading.Lock()

    # -- owner side ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def poke(self) -> None:
        """Push soon (after a job ended, say) instead of waiting for the next round."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.push_all()

    def push_all(self) -> dict[str, bool]:
        """One replication round; returns which partners are now up to date."""
        out = {}
        with self._push_lock:
            for peer in self.peers:
                try:
                    out[peer] = self._push(peer)
                except JointlyError as exc:
                    log.debug("ledger push to %s failed: %s", peer, exc)
                    out[peer] = False
                except Exception:
                    log.exception("ledger push to %s crashed", peer)
                    out[peer] = False
        return out

    def _push(self, peer: str) -> bool:
        size = self.ledger.size
        if self._held.get(peer) == size:
            return True
        since = self._held.get(peer, 0)
        for _ in range(2):  # a second try if the partner holds another size than assumed
            update = self.ledger.update_since(min(since, size))
            reply = self._call(
                peer,
                "ledger_push",
                {"since": update.since, "entries": update.entries, "head": update.head, "proof": update.proof},
            )
            if not isinstance(reply, dict) or not isinstance(reply.get("held"), int):
                raise ProtocolViolation(f"{peer!r} gave a malformed ledger_push reply")
            if reply.get("refused"):
                self.refusals[peer] = str(reply["refused"])[:500]
                log.error("%s refused this node's ledger update: %s", peer, self.refusals[peer])
                return False
            cosig = reply.get("cosignature")
            if isinstance(cosig, bytes):
                self.ledger.add_cosignature(cosig, self.verify_keys[peer])
                self._held[peer] = int(reply["held"])
                self.refusals.pop(peer, None)
                return self._held[peer] == size
            since = int(reply["held"])
            if since > size:
                raise ProtocolViolation(f"{peer!r} holds {since} entries of this log, which has only {size}")
        return False

    # -- partner side --------------------------------------------------------------------
    def on_push(self, caller: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A partner's update of its log: accept it into the replica and cosign, or say what is held."""
        key = self.verify_keys.get(caller)
        if key is None:
            raise ProtocolViolation(f"no verify key for {caller!r}")
        held = self.replica.held(caller)
        since = payload.get("since")
        if since != held:
            return {"held": held}
        entries, head, proof = payload.get("entries"), payload.get("head"), payload.get("proof")
        if not isinstance(entries, list) or not isinstance(head, bytes) or not isinstance(proof, list):
            raise ProtocolViolation("ledger_push needs entries, head and proof")
        if not all(isinstance(e, bytes) for e in entries) or not all(isinstance(p, bytes) for p in proof):
            raise ProtocolViolation("ledger entries and proof hashes must be bytes")
        try:
            cosig: Cosignature = self.replica.accept(caller, key, entries, head, proof)
        except ProtocolViolation as exc:
            log.error("refused %s's ledger update: %s", caller, exc)
            return {"held": held, "refused": str(exc)}
        return {"held": cosig.size, "cosignature": cosig.encode()}

    def on_fetch(self, caller: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """This node's copy of ``party``'s log (its own, or a replica), for a partner's cross-check."""
        party = payload.get("party")
        start = payload.get("start", 0)
        if not isinstance(party, str) or not isinstance(start, int) or start < 0:
            raise ProtocolViolation("ledger_fetch needs a party name and a start index")
        size = self.store.size(party)
        end = min(size, start + MAX_FETCH)
        heads = self.store.heads(party)
        return {
            "party": party,
            "size": size,
            "start": start,
            "entries": self.store.entries(party, start, end) if start < end else [],
            "heads": heads[-1:],
        }

    def fetch(self, peer: str, party: str) -> tuple[list[bytes], list[bytes]]:
        """``peer``'s whole copy of ``party``'s log: (entries, [its last head])."""
        entries: list[bytes] = []
        heads: list[bytes] = []
        while True:
            reply = self._call(peer, "ledger_fetch", {"party": party, "start": len(entries)})
            if not isinstance(reply, dict) or not isinstance(reply.get("entries"), list):
                raise ProtocolViolation(f"{peer!r} gave a malformed ledger_fetch reply")
            chunk = [e for e in reply["entries"] if isinstance(e, bytes)]
            entries.extend(chunk)
            heads = [h for h in reply.get("heads", []) if isinstance(h, bytes)]
            if not chunk or len(entries) >= int(reply.get("size", 0)):
                return entries, heads
