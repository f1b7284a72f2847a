"""Rich rendering of the node API's answers (datasets, jobs, ledger, users) for the platform commands.

Every string that came from a node is escaped before it is printed, so a
dataset description or a rejection reason cannot inject console markup.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

Json = dict[str, Any]

_STATE_STYLE = {
    "pending": "yellow",
    "approved": "cyan",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "rejected": "red",
    "cancelled": "magenta",
    "expired": "magenta",
}


def console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console for this call (made per call, so it follows the current stdout and terminal width)."""
    return Console(stderr=stderr, quiet=quiet)


def fmt_time(value: float | None) -> str:
    """Seconds since the epoch as local ``YYYY-MM-DD HH:MM:SS`` ('' for None)."""
    if value is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))


def state(value: str) -> str:
    style = _STATE_STYLE.get(value)
    return f"[{style}]{escape(value)}[/]" if style else escape(value)


def _e(value: Any) -> str:
    return "" if value is None else escape(str(value))


def event_line(event: Json) -> str:
    """``time  kind [stage]  message`` of one job event, as console markup."""
    stage = f" \\[{escape(event['stage'])}]" if event.get("stage") else ""
    return f"{fmt_time(event['time'])}  {escape(event['kind'])}{stage}  {_e(event.get('message'))}"


def dataset_table(ds: Json) -> Table:
    """One dataset's columns and their types; the id column marked."""
    table = Table(title=f"columns of {escape(ds['name'])}")
    table.add_column("column")
    table.add_column("type")
    for col in ds.get("columns", []):
        mark = " (id)" if col["name"] == ds.get("id_column") else ""
        table.add_row(_e(col["name"]) + mark, _e(col["dtype"]))
    return table


def datasets_table(items: list[Json]) -> Table:
    table = Table(title=f"datasets ({len(items)})")
    for col in ("name", "format", "id column", "rows", "columns", "description", "path"):
        table.add_column(col, overflow="fold")
    for ds in items:
        table.add_row(
            _e(ds["name"]),
            _e(ds["format"]),
            _e(ds["id_column"]),
            _e(ds.get("rows")),
            str(len(ds.get("columns", []))),
            _e(ds.get("description")),
            _e(ds["path"]),
        )
    return table


def job_table(jobs: list[Json], *, title: str) -> Table:
    table = Table(title=title)
    for col in ("job id", "name", "kind", "state", "stage", "initiator", "parties", "created"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        table.add_row(
            _e(j["job_id"]),
            _e(j["name"]),
            _e(j["kind"]),
            state(j["state"]),
            _e(j.get("stage")),
            _e(j["initiator"]),
            _e(", ".join(j.get("parties", []))),
            fmt_time(j.get("created")),
        )
    return table


def print_job(out: Console, view: Json) -> None:
    """A job as its approvers need to see it: what it does with this party's data, then its history."""
    out.print(f"[bold]job {escape(view['job_id'])}[/]  {escape(view['name'])} ({escape(view['kind'])})")
    stage = f", stage {escape(view['stage'])}" if view.get("stage") else ""
    out.print(f"state {state(view['state'])}{stage}; proposed by {escape(view['initiator'])}")
    out.print(f"parties: {escape(', '.join(view.get('parties', [])))}")
    times = [("created", view.get("created")), ("started", view.get("started")), ("finished", view.get("finished"))]
    if view["state"] == "pending":
        times.append(("expires", view.get("expires_at")))
    out.print("  ".join(f"{k} {fmt_time(v)}" for k, v in times if v is not None))
    if view.get("bytes_sent") or view.get("bytes_received"):
        out.print(f"traffic: {view.get('bytes_sent', 0)} bytes sent, {view.get('bytes_received', 0)} received")
    _print_usage(out, view.get("usage"))
    _print_approvals(out, view)
    for task, done in (view.get("progress") or {}).items():
        text = "/".join(str(x) for x in done) if isinstance(done, list) else str(done)
        out.print(f"progress {escape(str(task))}: {escape(text)}")
    error = view.get("error")
    if error:
        out.print(f"[red]failed: party {_e(error['party'])} in stage {_e(error['stage'])}: {_e(error['reason'])}[/]")
    events = view.get("events") or []
    if events:
        table = Table(title="timeline")
        for col in ("time", "event", "stage", "message"):
            table.add_column(col, overflow="fold")
        for ev in events:
            table.add_row(fmt_time(ev["time"]), _e(ev["kind"]), _e(ev.get("stage")), _e(ev.get("message")))
        out.print(table)
    if view.get("result"):
        out.print("[bold]result[/] (this party's)")
        out.print_json(json.dumps(view["result"]))


def _print_usage(out: Console, usage: Json | None) -> None:
    if not usage:
        return
    role = f" as {escape(usage['role'])}" if usage.get("role") else ""
    out.print(f"[bold]what it does with this party's data[/]{role}")
    for ds in usage.get("datasets") or []:
        name = ds.get("name") or ds.get("path") or "?"
        out.print(f"  reads {escape(name)}: {escape(', '.join(ds.get('columns') or []))}")
    for item in usage.get("outputs") or []:
        out.print(f"  keeps here: {_e(item)}")
    for item in usage.get("partners_learn") or []:
        out.print(f"  partners learn: {_e(item)}")
    privacy = usage.get("privacy") or {}
    if privacy:
        shown = "; ".join(f"{escape(k)}={'-' if v is None else _e(v)}" for k, v in privacy.items())
        out.print(f"  privacy: {shown}")


def _print_approvals(out: Console, view: Json) -> None:
    approvals = view.get("approvals") or []
    if approvals:
        table = Table(title="approvals")
        for col in ("party", "decision", "user", "reason", "time"):
            table.add_column(col, overflow="fold")
        for a in approvals:
            decision = "[green]approve[/]" if a["decision"] == "approve" else "[red]reject[/]"
            table.add_row(_e(a["party"]), decision, _e(a.get("user")), _e(a.get("reason")), fmt_time(a.get("created")))
        out.print(table)
    if view.get("awaiting"):
        out.print(f"waiting for: {escape(', '.join(view['awaiting']))}")


def ledger_table(page: Json) -> Table:
    table = Table(title=f"ledger of {escape(page['party'])} ({page['size']} entries)")
    for col in ("seq", "time", "event", "job", "stage", "signature", "data"):
        table.add_column(col, overflow="fold")
    for e in page.get("entries", []):
        sig = "ok" if e.get("signature_ok") else "[red]BAD[/]"
        data = json.dumps(e.get("data") or {}, sort_keys=True)
        table.add_row(
            str(e["seq"]), fmt_time(e["time"]), _e(e["event"]), _e(e.get("job_id")), _e(e.get("stage")), sig, _e(data)
        )
    return table


def print_verification(out: Console, report: Json) -> None:
    """Per-party status, then every problem on its own line."""
    table = Table(title="ledger verification")
    for col in ("party", "status", "size", "problems"):
        table.add_column(col)
    parties: dict[str, Json] = report.get("parties") or {}
    for party, result in parties.items():
        status = "[green]ok[/]" if result.get("ok") else "[red]FAILED[/]"
        table.add_row(escape(party), status, str(result.get("size", "")), str(len(result.get("problems") or [])))
    out.print(table)
    for party, result in parties.items():
        for problem in result.get("problems") or []:
            out.print(f"[red]{escape(party)}:[/] {_e(problem)}")
    checked = f"{report.get('checked_entries', 0)} entries checked"
    verdict = "[green]ledger ok[/]" if report.get("ok") else "[red]ledger verification FAILED[/]"
    out.print(f"{verdict} ({checked})")


def users_table(users: list[Json]) -> Table:
    table = Table(title=f"users ({len(users)})")
    for col in ("name", "role", "created", "disabled"):
        table.add_column(col)
    for u in users:
        table.add_row(_e(u["name"]), _e(u["role"]), fmt_time(u.get("created")), "yes" if u.get("disabled") else "")
    return table
