"""``jointly dataset|job|ledger|user ...``: operate a running node through its REST API.

Each command finds the node and a token (``--node``/``--token``, ``--workdir``
of the node, or ``JOINTLY_NODE``/``JOINTLY_TOKEN``), makes one or a few API
calls and prints rich tables; ``--json`` prints the API's answer for scripts.
Whatever the node refuses (unknown job, role not allowed, bad spec) is printed
as the node's own message and the command exits with that error's exit code.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click
import yaml
from rich.markup import escape

from jointly.cli.api_client import ApiClient, Json, locate_node
from jointly.cli.render import (
    console,
    dataset_table,
    datasets_table,
    event_line,
    fmt_time,
    job_table,
    ledger_table,
    print_job,
    print_verification,
    users_table,
)
from jointly.errors import ConfigError, JointlyError, ProtocolAborted

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "rejected", "expired"})
ROLE_CHOICES = click.Choice(["admin", "analyst", "auditor"])


class CommandFailed(click.ClickException):
    """A JointlyError (or a failed check) as click sees it: the message on stderr, the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        console(stderr=True).print(f"[red]error:[/] {escape(self.message)}", soft_wrap=True)


def _api(fn: Callable[..., None]) -> Callable[..., None]:
    """Add --node/--token/--workdir to a command and call it with an :class:`ApiClient` as first argument."""

    @functools.wraps(fn)
    def run(*args: Any, node: str | None, token: str | None, workdir: Path | None, **kwargs: Any) -> None:
        try:
            address = locate_node(node=node, token=token, workdir=workdir)
            with ApiClient(address.url, address.token) as client:
                fn(client, *args, **kwargs)
        except JointlyError as exc:
            raise CommandFailed(str(exc), exc.exit_code) from exc

    options = [
        click.option(
            "--node",
            metavar="URL",
            default=None,
            help="The node's API, e.g. http://127.0.0.1:8400 (else DIR/api.json, else JOINTLY_NODE).",
        ),
        click.option(
            "--token",
            default=None,
            help="Your API token (else DIR/admin.token, else JOINTLY_TOKEN; prefer the variable: a command line is "
            "visible to other local users).",
        ),
        click.option(
            "--workdir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="A running node's work directory: its api.json and admin.token are used.",
        ),
    ]
    for option in reversed(options):
        run = option(run)
    return run


json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


# ---------------------------------------------------------------- datasets


@click.group()
def dataset() -> None:
    """Tables registered on your node (jobs refer to them by name; rows never leave the node)."""


@dataset.command("add")
@click.argument("name")
@click.argument("path")
@click.option("--id-column", required=True, help="The column holding the ids to join on.")
@click.option("--description", default="", help="What the table is.")
@json_option
@_api
def dataset_add(client: ApiClient, name: str, path: str, id_column: str, description: str, as_json: bool) -> None:
    """Register the CSV or Parquet file PATH (on the node's machine) as dataset NAME.

    A relative PATH that exists here is sent as an absolute path; otherwise the
    node resolves it in its data directory.
    """
    local = Path(path).expanduser()
    sent = str(local.resolve()) if local.exists() else path
    ds = client.add_dataset(name, sent, id_column=id_column, description=description)
    if as_json:
        _print_json(ds)
        return
    rows = "?" if ds.get("rows") is None else ds["rows"]
    console().print(f"registered dataset [bold]{escape(ds['name'])}[/]: {rows} rows, {len(ds['columns'])} columns")
    console().print(dataset_table(ds))


@dataset.command("list")
@json_option
@_api
def dataset_list(client: ApiClient, as_json: bool) -> None:
    """The datasets registered on the node."""
    items = client.datasets()
    if as_json:
        _print_json(items)
        return
    console().print(datasets_table(items))


@dataset.command("show")
@click.argument("name")
@json_option
@_api
def dataset_show(client: ApiClient, name: str, as_json: bool) -> None:
    """One dataset: where it is and its columns with their types."""
    ds = client.dataset(name)
    if as_json:
        _print_json(ds)
        return
    out = console()
    out.print(f"[bold]{escape(ds['name'])}[/]  {escape(ds['path'])}")
    rows = "unknown" if ds.get("rows") is None else ds["rows"]
    out.print(
        f"format {ds['format']}, id column {escape(ds['id_column'])}, {rows} rows, added {fmt_time(ds['created'])}"
    )
    if ds.get("description"):
        out.print(escape(ds["description"]))
    out.print(dataset_table(ds))


@dataset.command("remove")
@click.argument("name")
@_api
def dataset_remove(client: ApiClient, name: str) -> None:
    """Forget dataset NAME (the file itself is left alone)."""
    client.remove_dataset(name)
    console().print(f"removed dataset [bold]{escape(name)}[/] (the file is untouched)")


# ---------------------------------------------------------------- jobs


@click.group()
def job() -> None:
    """Joint jobs: propose, approve or reject, follow, inspect."""


def _read_spec(path: Path) -> Json:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping (a job spec), not {type(raw).__name__}")
    return raw


def follow(client: ApiClient, job_id: str, *, interval: float = 1.0, quiet: bool = False) -> Json:
    """Print the job's new events until it ends (nothing if ``quiet``); its final view; raise if it did not succeed."""
    out = console(quiet=quiet)
    seen = 0
    last = ("", "")
    try:
        while True:
            view = client.job(job_id)
            events = view.get("events") or []
            for event in events[seen:]:
                out.print(event_line(event))
            seen = len(events)
            now = (view["state"], view.get("stage") or "")
            if now != last:
                out.print(f"[bold]state[/] {escape(now[0])}" + (f" (stage {escape(now[1])})" if now[1] else ""))
                last = now
            if view["state"] in TERMINAL_STATES:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        out.print(f"stopped following; job {escape(job_id)} goes on (jointly job show {escape(job_id)})")
        raise
    state = view["state"]
    if state == "succeeded":
        out.print(f"[green]job {escape(job_id)} succeeded[/]")
        if view.get("result"):
            out.print_json(json.dumps(view["result"]))
        return view
    error = view.get("error")
    if state == "failed" and error:
        raise ProtocolAborted(error["party"], error["stage"], error["reason"])
    decisions = [a for a in view.get("approvals") or [] if a.get("decision") == "reject"]
    why = f": rejected by {decisions[0]['party']} ({decisions[0].get('reason', '')})" if decisions else ""
    raise JointlyError(f"job {job_id} {state}{why}")


@job.command("propose")
@click.argument("job_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--follow", "follow_job", is_flag=True, help="Follow the job until it ends.")
@click.option(
    "--interval", type=click.FloatRange(0), default=1.0, show_default=True, help="Seconds between polls with --follow."
)
@json_option
@_api
def job_propose(client: ApiClient, job_file: Path, follow_job: bool, interval: float, as_json: bool) -> None:
    """Propose the job in JOB_FILE (YAML) to every party of it; each party's operators must approve it."""
    view = client.propose(_read_spec(job_file))
    if not as_json:
        awaiting = ", ".join(view.get("awaiting") or []) or "nobody"
        console().print(f"proposed job [bold]{escape(view['job_id'])}[/] ({view['state']}); waiting for {awaiting}")
    if follow_job:
        view = follow(client, view["job_id"], interval=interval, quiet=as_json)
    if as_json:
        _print_json(view)


@job.command("list")
@click.option("--state", default=None, help="Only jobs in this state (pending, running, succeeded ...).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@_api
def job_list(client: ApiClient, state: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Jobs on the node, newest first."""
    page = client.jobs(state=state, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    shown = len(page["jobs"])
    console().print(
        job_table(page["jobs"], title=f"jobs {offset + 1 if shown else 0}-{offset + shown} of {page['total']}")
    )


@job.command("pending")
@json_option
@_api
def job_pending(client: ApiClient, as_json: bool) -> None:
    """Jobs waiting for your party's decision."""
    jobs = client.approvals()
    if as_json:
        _print_json(jobs)
        return
    console().print(job_table(jobs, title=f"waiting for this party's decision ({len(jobs)})"))


@job.command("show")
@click.argument("job_id")
@json_option
@_api
def job_show(client: ApiClient, job_id: str, as_json: bool) -> None:
    """One job: what it does with your data, approvals, stage timeline, error and result."""
    view = client.job(job_id)
    if as_json:
        _print_json(view)
        return
    print_job(console(), view)


def _decided(view: Json, verb: str) -> None:
    awaiting = ", ".join(view.get("awaiting") or [])
    more = f"; still waiting for {escape(awaiting)}" if awaiting else ""
    console().print(f"{verb} job [bold]{escape(view['job_id'])}[/]: now {view['state']}{more}")


@job.command("approve")
@click.argument("job_id")
@click.option("--reason", default="", help="Why (kept with the signed approval).")
@_api
def job_approve(client: ApiClient, job_id: str, reason: str) -> None:
    """Approve JOB_ID for your party (read `jointly job show JOB_ID` first)."""
    _decided(client.approve(job_id, reason=reason), "approved")


@job.command("reject")
@click.argument("job_id")
@click.option("--reason", required=True, help="Why: every party of the job sees it.")
@_api
def job_reject(client: ApiClient, job_id: str, reason: str) -> None:
    """Reject JOB_ID for your party; the job does not run."""
    _decided(client.reject(job_id, reason=reason), "rejected")


@job.command("cancel")
@click.argument("job_id")
@_api
def job_cancel(client: ApiClient, job_id: str) -> None:
    """Cancel a pending or running job (on every party)."""
    _decided(client.cancel(job_id), "cancelled")


@job.command("logs")
@click.argument("job_id")
@json_option
@_api
def job_logs(client: ApiClient, job_id: str, as_json: bool) -> None:
    """The job's events on this node, oldest first."""
    events = client.logs(job_id)
    if as_json:
        _print_json(events)
        return
    out = console()
    for event in events:
        out.print(event_line(event))


# ---------------------------------------------------------------- ledger


@click.group()
def ledger() -> None:
    """The audit ledger: every party's signed log of what happened to its data."""


@ledger.command("show")
@click.option("--job", "job_id", default=None, help="Only entries of this job.")
@click.option("--party", default=None, help="Whose log (default: your party's; replicas of partners' logs too).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@_api
def ledger_show(
    client: ApiClient, job_id: str | None, party: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """Entries of one party's log, oldest first."""
    page = client.ledger(party=party, job_id=job_id, offset=offset, limit=limit)
    if as_json:
        _print_json(page)
        return
    console().print(ledger_table(page))


@ledger.command("verify")
@json_option
@_api
def ledger_verify(client: ApiClient, as_json: bool) -> None:
    """Check every log: signatures, consistency of heads, partners' replicas; exit 1 if anything is wrong."""
    report = client.verify_ledger()
    if as_json:
        _print_json(report)
    else:
        print_verification(console(), report)
    if not report.get("ok"):
        problems = sum(len(p.get("problems") or []) for p in report.get("parties", {}).values())
        raise CommandFailed(f"ledger verification failed ({problems} problem(s))", 1)


# ---------------------------------------------------------------- users


@click.group()
def user() -> None:
    """API users of your node (admin only)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICES, required=True, help="admin, analyst or auditor.")
@json_option
@_api
def user_add(client: ApiClient, name: str, role: str, as_json: bool) -> None:
    """Add user NAME and print its token (shown once: only its hash is kept)."""
    created = client.add_user(name, role=role)
    if as_json:
        _print_json(created)
        return
    console(stderr=True).print(f"user [bold]{escape(created['name'])}[/] ({created['role']}) added; its token:")
    click.echo(created["token"])
    console(stderr=True).print("keep it secret: it is not shown again")


@user.command("list")
@json_option
@_api
def user_list(client: ApiClient, as_json: bool) -> None:
    """The node's API users."""
    users = client.users()
    if as_json:
        _print_json(users)
        return
    console().print(users_table(users))


GROUPS = (dataset, job, ledger, user)
