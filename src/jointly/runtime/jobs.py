"""One party's side of a joint job: load its data, run the protocol over a channel, keep its outputs.

This is the arrow ``runtime -> data -> protocol -> outputs`` of DESIGN.md.  It
receives a ready :class:`~jointly.channel.Channel`; which transport carries it
is the node's business.  Outputs are written to a staging directory and moved
into place only when the whole job succeeded, so a failed job leaves nothing
half-written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from jointly.channel import Channel
from jointly.config.job import JobSpec
from jointly.data.io import atomic_write_json, write_table
from jointly.data.tables import load_table
from jointly.errors import ConfigError, DataError
from jointly.progress import Progress
from jointly.protocols.psi import PsiConfig, run_psi
from jointly.runtime import model_kinds
from jointly.runtime.vertical import run_prediction, run_training

RESULT_FILE = "result.json"


@dataclass
class PartyContext:
    """Everything one party's side of a job needs, passed explicitly."""

    spec: JobSpec
    party: str
    job_id: str
    data_dir: Path
    progress: Progress
    workers: int | None = None
    jobs_dir: Path | None = None  # where this node keeps its jobs' outputs (and so its model parts)
    extra: dict[str, Any] = field(default_factory=dict)

    def data_path(self) -> Path:
        """This party's input table, resolved against its own data directory."""
        ref = self.spec.parties[self.party]
        if ref.dataset is not None and ref.data is None:
            raise ConfigError(f"dataset {ref.dataset!r} of party {self.party!r} was not resolved to a path by its node")
        if ref.data is None:
            raise ConfigError(f"party {self.party!r} brings no data to job {self.job_id}")
        path = Path(ref.data).expanduser()
        return path if path.is_absolute() else (self.data_dir / path)


KindRunner = Callable[[PartyContext, Channel, Path], dict[str, Any]]


def _run_psi(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    ref = ctx.spec.parties[ctx.party]
    channel.sub("load")
    ctx.progress.update("load data", 0, 1)
    table = load_table(ctx.data_path(), id_column=ref.id_column, columns=[])
    ctx.progress.update("load data", 1, 1)
    params = ctx.spec.psi_params
    config = PsiConfig(
        protocol=params.protocol,
        mode=params.mode,
        receivers=params.receivers,
        batch_size=params.batch_size,
        workers=ctx.workers,
    )
    result = run_psi(channel.sub("psi"), list(table.ids), config, progress=ctx.progress)
    summary: dict[str, Any] = {
        "kind": "psi",
        "mode": params.mode,
        "party": ctx.party,
        "input_rows": len(table),
        "receiver": ctx.party in params.receivers,
    }
    if result.size is not None:
        summary["intersection_size"] = result.size
    if result.intersection is not None:
        name = "intersection.csv"
        write_table(pd.DataFrame({ref.id_column: [str(i) for i in result.intersection]}), out / name)
        summary["intersection_file"] = name
    return summary


def _run_horizontal(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    from jointly.runtime.horizontal import run_horizontal  # torch loads only for federated-learning jobs

    return run_horizontal(ctx, channel, out)


def _run_mpc(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    from jointly.runtime.mpc import run_mpc

    return run_mpc(ctx, channel, out)


def _run_query(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    from jointly.runtime.query import run_query

    return run_query(ctx, channel, out)


RUNNERS: dict[str, KindRunner] = {
    "psi": _run_psi,
    "secureboost": run_training,
    "hetero_lr": run_training,
    "predict": run_prediction,
    "horizontal": _run_horizontal,
    "mpc": _run_mpc,
    "query": _run_query,
}


def check_spec(spec: JobSpec) -> None:
    """Refuse, with a ConfigError, a job whose kind-specific parameters are invalid (before anything runs)."""
    if spec.kind not in RUNNERS:
        raise ConfigError(f"job kind {spec.kind!r} is not supported (known: {', '.join(RUNNERS)})")
    if spec.kind in ("secureboost", "hetero_lr"):
        model_kinds.build(spec.kind, spec.model_params)
    if spec.kind == "horizontal":
        from jointly.runtime.horizontal import check_horizontal

        check_horizontal(spec)


def run_party(ctx: PartyContext, channel: Channel, output_dir: Path) -> dict[str, Any]:
    """Run this party's side of ``ctx.spec`` and publish its outputs in ``output_dir``.

    Returns the party's result summary (also written as ``result.json``).  On any
    error nothing is published and the staging directory is removed.
    """
    runner = RUNNERS.get(ctx.spec.kind)
    if runner is None:
        raise ConfigError(f"job kind {ctx.spec.kind!r} is not supported (known: {', '.join(RUNNERS)})")
    if ctx.party not in ctx.spec.parties:
        raise ConfigError(f"party {ctx.party!r} is not in job {ctx.job_id}")
    if output_dir.exists():
        raise DataError(str(output_dir), "output directory already exists; refusing to overwrite a job's results")
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        summary = runner(ctx, channel, staging)
        summary["job_id"] = ctx.job_id
        atomic_write_json(staging / RESULT_FILE, summary)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary
