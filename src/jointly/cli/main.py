"""The ``jointly`` command line: thin commands over the runtime and the node."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from jointly import __version__
from jointly.cli.progress import JobProgressView
from jointly.config.federation import Federation, init_federation
from jointly.config.job import JobSpec
from jointly.errors import JointlyError
from jointly.runtime.client import JobClient, JobOutcome

console = Console(stderr=False)
err_console = Console(stderr=True)


def main() -> None:
    """Entry point: runs the CLI and maps jointly errors to exit codes."""
    try:
        cli(standalone_mode=False)
    except JointlyError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        err_console.print("aborted")
        sys.exit(130)


@click.group()
@click.version_option(__version__, prog_name="jointly")
def cli() -> None:
    """jointly: compute on data you cannot share."""


@cli.command()
@click.option("--parties", required=True, help="Comma-separated party names, e.g. bank,telco.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True, help="Directory to create.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Host name or IP every party listens on.")
@click.option("--ports", default=None, help="Comma-separated ports, one per party (default: free ports).")
@click.option("--name", default="jointly", show_default=True, help="Federation name.")
def init(parties: str, directory: Path, host: str, ports: str | None, name: str) -> None:
    """Create a federation: a CA, a TLS certificate and a signing key per party, and federation.yaml."""
    names = [p.strip() for p in parties.split(",") if p.strip()]
    port_list = [int(p) for p in ports.split(",")] if ports else None
    path = init_federation(names, directory, host=host, ports=port_list, name=name)
    fed = Federation.load(path)
    table = Table(title=f"federation {fed.name!r} ({path})")
    table.add_column("party")
    table.add_column("address")
    table.add_column("certificate")
    for party in fed.party_names:
        entry = fed.party(party)
        table.add_row(party, entry.address, str(entry.cert))
    console.print(table)
    console.print("Give each party its own directory; keep ca/ca-key.pem offline.")


@cli.group()
def node() -> None:
    """Run a party's node."""


@node.command("start")
@click.option("--party", required=True, help="The party this node serves.")
@click.option("--federation", "federation_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="Job records and outputs.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Relative data paths start here.")
@click.option("--bind-host", default=None, help="Listen on this host instead of the federation address's host.")
@click.option("--heartbeat-interval", type=float, default=1.0, show_default=True)
@click.option("--peer-dead-after", type=float, default=10.0, show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes for crypto (default: all cores).")
@click.option("--db-url", default=None, help="Metadata database URL (default: SQLite in the workdir).")
@click.option("--api-host", default="127.0.0.1", show_default=True, help="Where the REST API and dashboard listen.")
@click.option("--api-port", type=int, default=0, show_default=True, help="REST API port (0: any free port).")
@click.option(
    "--auto-approve",
    "auto_approve",
    multiple=True,
    metavar="PARTNER[:KIND,...]",
    help="Approve this partner's jobs (of these kinds) without asking; '*' for any partner. Repeatable.",
)
@click.option("--log-level", default="INFO", show_default=True)
def node_start(
    party: str,
    federation_path: Path,
    workdir: Path | None,
    data_dir: Path | None,
    bind_host: str | None,
    heartbeat_interval: float,
    peer_dead_after: float,
    workers: int | None,
    db_url: str | None,
    api_host: str,
    api_port: int,
    auto_approve: tuple[str, ...],
    log_level: str,
) -> None:
    """Run PARTY's node until interrupted (SIGINT/SIGTERM): peer server, REST API and dashboard."""
    from jointly.node.approvals import ApprovalPolicy
    from jointly.node.http import ApiServer
    from jointly.node.service import Node
    from jointly.node.services.local import LocalNodeServices
    from jointly.web.app import create_app

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format=f"%(asctime)s {party} %(name)s %(levelname)s %(message)s",
    )
    fed = Federation.load(federation_path)
    the_node = Node(
        fed,
        party,
        workdir=(workdir or Path(f"jointly-node-{party}")).resolve(),
        data_dir=(data_dir or Path.cwd()).resolve(),
        heartbeat_interval=heartbeat_interval,
        peer_dead_after=peer_dead_after,
        bind_host=bind_host,
        workers=workers,
        db_url=db_url,
        policy=ApprovalPolicy.parse(auto_approve),
    )
    api = ApiServer(create_app(LocalNodeServices(the_node)), host=api_host, port=api_port)

    def _stop(signum: int, frame: FrameType | None) -> None:
        the_node._stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    the_node.start()
    api.start()
    the_node.write_api_info(api.url)
    the_node.warm_up()
    console.print(f"node [bold]{party}[/] serving partners on port {the_node.server.port}; REST API {api.url}")
    try:
        the_node.wait()
    finally:
        api.stop()
        the_node.stop()


def _follow(client: JobClient, job_id: str, parties: list[str], *, quiet: bool = False) -> JobOutcome:
    if quiet:
        return client.watch(job_id, parties)
    with JobProgressView(console) as view:
        return client.watch(job_id, parties, on_update=view.update)


def _report(outcome: JobOutcome, as_party: str) -> None:
    own = outcome.views.get(as_party) or {}
    failure = outcome.failure()
    if failure is not None and not outcome.succeeded:
        raise failure
    console.print(f"[green]job {outcome.job_id} succeeded[/]")
    result: dict[str, Any] = own.get("result") or {}
    console.print_json(json.dumps(result))
    if own.get("output_dir"):
        console.print(f"outputs of {as_party}: {own['output_dir']}")


@cli.command()
@click.argument("job_file", type=click.Path(path_type=Path, exists=True))
@click.option("--federation", "federation_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--as", "as_party", required=True, help="Submit as this party (uses its certificate).")
@click.option("--detach", is_flag=True, help="Print the job id and return without following the job.")
def run(job_file: Path, federation_path: Path, as_party: str, detach: bool) -> None:
    """Submit JOB_FILE to AS_PARTY's node and follow it on every party's node."""
    spec = JobSpec.load(job_file)
    fed = Federation.load(federation_path)
    with JobClient(fed, as_party) as client:
        job_id = client.submit(spec)
        console.print(f"submitted job [bold]{job_id}[/]")
        if detach:
            return
        _report(_follow(client, job_id, list(spec.party_names)), as_party)


@cli.command()
@click.option("--model", "model_ref", required=True, help="The training job's id, a model name, or NAME@vN.")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    metavar="PARTY=PATH",
    help="Each data party's new rows (a path on that party's machine); repeat for every party.",
)
@click.option("--id-column", default="id", show_default=True, help="The id column of every table.")
@click.option("--arbiter", default=None, help="The model's arbiter party, if it was trained with one.")
@click.option("--no-align", is_flag=True, help="The tables already hold the same ids: skip PSI.")
@click.option("--federation", "federation_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--as", "as_party", required=True, help="Submit as this party (uses its certificate).")
def predict(
    model_ref: str,
    data: tuple[str, ...],
    id_column: str,
    arbiter: str | None,
    no_align: bool,
    federation_path: Path,
    as_party: str,
) -> None:
    """Score new rows with a trained vertical model, every party online; only the guest gets the scores."""
    parties: dict[str, dict[str, Any]] = {}
    for item in data:
        party, sep, path = item.partition("=")
        if not sep or not party or not path:
            raise click.BadParameter(f"expected PARTY=PATH, got {item!r}", param_hint="--data")
        parties[party] = {"data": path, "id_column": id_column}
    if arbiter:
        parties[arbiter] = {}
    spec = JobSpec.from_dict(
        {
            "name": f"predict-{model_ref.split('@')[0]}"[:128],
            "kind": "predict",
            "parties": parties,
            "predict": {"model": model_ref, "align": not no_align},
        },
        source="predict command",
    )
    fed = Federation.load(federation_path)
    with JobClient(fed, as_party) as client:
        job_id = client.submit(spec)
        console.print(f"submitted prediction job [bold]{job_id}[/]")
        _report(_follow(client, job_id, list(spec.party_names)), as_party)


@cli.command()
@click.option("--server", required=True, help="The partner whose set is queried (e.g. a bureau's blacklist).")
@click.option("--ids", "ids_path", required=True, help="This party's table of ids to look up (path on its node).")
@click.option("--server-data", required=True, help="The server's table on its node: a path, or dataset:NAME.")
@click.option("--label", default="label", show_default=True, help="The server's label column.")
@click.option("--id-column", default="id", show_default=True, help="The id column of both tables.")
@click.option("--method", type=click.Choice(["labeled_psi", "pir"]), default="labeled_psi", show_default=True)
@click.option("--max-ids", type=int, default=10_000, show_default=True)
@click.option("--federation", "federation_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--as", "as_party", required=True, help="Query as this party (uses its certificate).")
def query(
    server: str,
    ids_path: str,
    server_data: str,
    label: str,
    id_column: str,
    method: str,
    max_ids: int,
    federation_path: Path,
    as_party: str,
) -> None:
    """Look this party's ids up in a partner's set; the partner learns neither which ids nor the answers.

    With labeled_psi the partner learns how many ids were asked; with pir, nothing. The results
    (id, found, label) stay on this party's node, in the job's results.csv.
    """
    kind, _, name = server_data.partition(":")
    ref = {"dataset": name} if kind == "dataset" and name else {"data": server_data}
    spec = JobSpec.from_dict(
        {
            "name": f"query-{server}"[:128],
            "kind": "query",
            "parties": {
                as_party: {"data": ids_path, "id_column": id_column},
                server: {**ref, "id_column": id_column, "label": label},
            },
            "query": {"client": as_party, "server": server, "method": method, "max_ids": max_ids},
        },
        source="query command",
    )
    fed = Federation.load(federation_path)
    with JobClient(fed, as_party) as client:
        job_id = client.submit(spec)
        console.print(f"submitted query job [bold]{job_id}[/]")
        _report(_follow(client, job_id, list(spec.party_names)), as_party)


@cli.command()
@click.argument("job_id")
@click.option("--federation", "federation_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--as", "as_party", required=True, help="Ask as this party (uses its certificate).")
def status(job_id: str, federation_path: Path, as_party: str) -> None:
    """Show a job's state on every party's node."""
    fed = Federation.load(federation_path)
    with JobClient(fed, as_party) as client:
        own = client.status(as_party, job_id)
        table = Table(title=f"job {job_id}")
        for col in ("party", "state", "stage", "error"):
            table.add_column(col)
        for party in own["spec"]["parties"]:
            try:
                view = own if party == as_party else client.status(party, job_id)
                err = view.get("error")
                text = f"{err['party']} in {err['stage']}: {err['reason']}" if err else ""
                table.add_row(party, view["state"], view.get("stage", ""), text)
            except JointlyError as exc:
                table.add_row(party, "unreachable", "", str(exc))
        console.print(table)


@cli.command()
@click.option("--dir", "root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes per party for crypto.")
@click.option(
    "--only",
    type=click.Choice(["psi", "vertical", "horizontal", "statistics", "query"]),
    multiple=True,
    help="Run only this demo (repeatable); by default all of them.",
)
def demo(root: Path, workers: int | None, only: tuple[str, ...]) -> None:
    """Run the demos in local federations: PSI (bank + telco), vertical SecureBoost (hospital + lab),
    horizontal federated learning with secure aggregation (three clinics + an aggregator), joint statistics
    on secret shares (hospital + lab + registry) and a blacklist query by labeled PSI (bank + bureau)."""
    from jointly.cli.demo import DEMOS, run_demo

    run_demo(root, console, workers=workers, only=only or DEMOS)


from jointly.cli.platform import GROUPS  # noqa: E402  (platform commands over the node's REST API)

for _group in GROUPS:
    cli.add_command(_group)
