"""``jointly demo``: a bank and a telco find their common customers without showing each other the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from jointly.cli.progress import JobProgressView
from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.data.bundled import ID_COLUMN, demo_psi_tables
from jointly.data.io import atomic_write_json
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation


def run_demo(root: Path, console: Console, *, workers: int | None = None) -> dict[str, Any]:
    """Create a federation, start each party's node as a process, run PSI, print and save the result."""
    run_dir = (root / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    console.print(
        Panel.fit(f"jointly demo: private set intersection between a bank and a telco\nrun directory: {run_dir}")
    )
    fed_path = init_federation(["bank", "telco"], run_dir / "federation", name="demo")
    tables = demo_psi_tables(run_dir / "data")
    spec = JobSpec.from_dict(
        {
            "name": "demo-customer-overlap",
            "kind": "psi",
            "parties": {p: {"data": str(path), "id_column": ID_COLUMN} for p, path in tables.items()},
            "psi": {"mode": "intersection", "receivers": ["bank", "telco"]},
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        console.print(f"started nodes: {', '.join(f'{p} (pid {pr.pid})' for p, pr in local.processes.items())}")
        with JobClient(local.federation, "bank") as client:
            job_id = client.submit(spec)
            console.print(f"submitted job [bold]{job_id}[/] as bank")
            with JobProgressView(console) as view:
                outcome = client.watch(job_id, list(spec.party_names), on_update=view.update)
        failure = outcome.failure()
        if not outcome.succeeded and failure is not None:
            raise failure
        # the demo plays every party, so it may read each party's own outputs from its node directory
        results = {}
        for party in spec.party_names:
            out = local.workdir(party) / "jobs" / job_id / "output"
            results[party] = json.loads((out / "result.json").read_text())
    table = Table(title=f"job {job_id}")
    for col in ("party", "input rows", "intersection", "bytes sent", "output"):
        table.add_column(col)
    for party, result in results.items():
        status = outcome.views[party] or {}
        table.add_row(
            party,
            str(result["input_rows"]),
            str(result.get("intersection_size", "-")),
            f"{status.get('bytes_sent', 0):,}",
            str(local.workdir(party) / "jobs" / job_id / "output"),
        )
    console.print(table)
    summary = {"job_id": job_id, "run_dir": str(run_dir), "results": results}
    atomic_write_json(run_dir / "result.json", summary)
    console.print(f"[green]done[/]: result written to {run_dir / 'result.json'}")
    return summary
