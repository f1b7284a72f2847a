"""The ledger service: read this node's copies of the audit logs and verify them against partners' copies.

``verify`` checks, on this node, every log it holds (its own and its replicas
of partners' logs: signatures, positions, signed heads, consistency,
cosignatures) and compares each with the copies other nodes hold, fetched over
mutual-TLS (its own log as replicated by each partner, and each partner's log
as that partner holds it).  Anything altered, removed or reordered on either
side is reported with its position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jointly.audit.entry import SignedEntry
from jointly.audit.heads import Cosignature
from jointly.audit.verify import LogView, verify_store
from jointly.errors import CodecError, JointlyError, NotFound
from jointly.node.services.base import Json
from jointly.node.trail import cross_check_stages

if TYPE_CHECKING:
    from jointly.node.service import Node


class LedgerServiceImpl:
    def __init__(self, node: Node) -> None:
        self._node = node

    def entries(
        self, *, party: str | None = None, job_id: str | None = None, offset: int = 0, limit: int = 100
    ) -> Json:
        node = self._node
        party = party or node.party
        store = node.storage.ledger
        if party not in node.federation.party_names:
            raise NotFound(f"{party!r} is not a member of the federation")
        size = store.size(party)
        key = node.verify_keys.get(party)
        rows: list[Json] = []
        skipped = 0
        end = size
        batch = 512
        while end > 0 and len(rows) < limit:  # newest first
            start = max(0, end - batch)
            raws = store.entries(party, start, end)
            for i in range(len(raws) - 1, -1, -1):
                view = _entry_view(raws[i], start + i, key)
                if job_id is not None and view.get("job_id") != job_id:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                rows.append(view)
                if len(rows) >= limit:
                    break
            end = start
        return {"party": party, "size": size, "entries": rows}

    def head(self) -> Json:
        node = self._node
        head = node.ledger.head()
        cosigners = sorted({c.signer for c in node.ledger.cosignatures() if c.size == head.size})
        return {
            "party": node.party,
            "size": head.size,
            "root": head.root.hex(),
            "time": head.head.time,
            "cosigners": cosigners,
        }

    def verify(self) -> Json:
        node = self._node
        node.ledger.head()
        store = node.storage.ledger
        views: dict[str, list[LogView]] = {}
        unreachable: dict[str, list[str]] = {}
        for peer in node.replicator.peers:
            # our log as the peer replicated it, and the peer's log as the peer itself holds it
            for party in (node.party, peer):
                try:
                    entries, heads = node.replicator.fetch(peer, party)
                except JointlyError:
                    unreachable.setdefault(party, []).append(peer)
                    continue
                views.setdefault(party, []).append(LogView(peer, entries, heads))
        report = verify_store(store, node.verify_keys, holder=node.party, partner_views=views)
        parties: dict[str, Any] = {}
        for name, log_report in report.parties.items():
            parties[name] = {
                "ok": log_report.ok,
                "size": log_report.size,
                "root": log_report.root,
                "cosigners": list(log_report.cosigners),
                "compared_with": [c.holder for c in log_report.comparisons],
                "unreachable": unreachable.get(name, []),
                "problems": [_problem_text(p.to_dict()) for p in log_report.problems],
            }
        stage_rows = {name: _stage_entries(store.entries(name)) for name in report.parties}
        checked = 0
        for party, problem in cross_check_stages(stage_rows):
            parties[party]["ok"] = False
            parties[party]["problems"].append(problem)
        for name, rows in stage_rows.items():
            parties[name]["stage_digests"] = len(rows)
            checked += len(rows)
        ok = report.ok and all(p["ok"] for p in parties.values())
        return {"ok": ok, "checked_entries": report.checked_entries, "parties": parties}


def _stage_entries(raws: list[bytes]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = []
    for raw in raws:
        try:
            entry = SignedEntry.decode(raw).entry
        except CodecError:
            continue
        if entry.event == "stage":
            rows.append((entry.job_id, entry.stage, dict(entry.data)))
    return rows


def _problem_text(problem: dict[str, Any]) -> str:
    where = f" at {problem['seq']}" if problem.get("seq") is not None else ""
    holder = f" (copy held by {problem['holder']})" if problem.get("holder") else ""
    return f"{problem['kind']}{where}: {problem['message']}{holder}"


def _entry_view(raw: bytes, seq: int, key: Any) -> Json:
    try:
        signed = SignedEntry.decode(raw)
    except CodecError as exc:
        return {
            "seq": seq,
            "party": "",
            "time": 0.0,
            "event": "undecodable",
            "data": {},
            "signature_ok": False,
            "stage": str(exc)[:200],
        }
    ok = True
    try:
        if key is None:
            raise JointlyError("no key")
        signed.verify(key)
    except JointlyError:
        ok = False
    e = signed.entry
    return {
        "seq": e.seq,
        "party": e.party,
        "time": e.time,
        "job_id": e.job_id,
        "event": e.event,
        "stage": e.stage,
        "data": dict(e.data),
        "signature_ok": ok and e.seq == seq,
    }


__all__ = ["Cosignature", "LedgerServiceImpl"]
