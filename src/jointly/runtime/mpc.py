"""Joint computation jobs: a statistic (or a secret-shared model) over several parties' data.

Roles as in the financial MPC standards: the *data parties* (those that bring a table) secret-share
their columns; the two *compute parties* hold the shares and compute; the *result parties* receive
the declared result and nothing else; an optional *dealer* deals Beaver triples.  A party may hold
several roles.  See :mod:`jointly.protocols.mpc` for what each party's view is.

Stages: ``load`` (data parties read their columns), ``align`` (vertical layout: PSI among the data
parties, every one of them a receiver, as in a vertical modeling job), ``compute`` (the protocol).
Result parties publish ``result.json`` with the value; everyone else only counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jointly.channel import Channel
from jointly.config.job import JobSpec, MpcSpec
from jointly.data.io import atomic_write_json
from jointly.data.tables import load_table
from jointly.errors import ConfigError, DataError
from jointly.runtime.vertical import align, numeric_frame

if TYPE_CHECKING:  # runtime.jobs imports this module
    from jointly.runtime.jobs import PartyContext


def _m(spec: JobSpec) -> MpcSpec:
    if spec.mpc is None:
        raise ConfigError("an mpc job needs an 'mpc' section")
    return spec.mpc


def roles_of(spec: JobSpec) -> Any:
    """The protocol's :class:`MpcRoles` for the job."""
    from jointly.protocols.mpc import MpcRoles

    m = _m(spec)
    return MpcRoles(data=spec.data_parties, compute=tuple(m.compute), result=tuple(m.results), dealer=m.dealer)


def run_mpc(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    """This party's side of an ``mpc`` job."""
    from jointly.protocols.mpc import SslrConfig, StatRequest, joint_statistic, train_sslr

    spec = ctx.spec
    m = _m(spec)
    roles = roles_of(spec)
    ref = spec.parties[ctx.party]
    inputs: dict[str, np.ndarray] | None = None
    labels: np.ndarray | None = None
    summary: dict[str, Any] = {"kind": "mpc", "statistic": m.statistic, "party": ctx.party}
    summary["roles"] = [r for r, names in _role_names(spec).items() if ctx.party in names]
    if ref.has_data:
        channel.sub("load")
        ctx.progress.update("load data", 0, 1)
        columns = list(m.columns[ctx.party])
        wanted = [*columns, *([ref.label] if ref.label and m.statistic == "sslr" else [])]
        table = load_table(ctx.data_path(), id_column=ref.id_column, columns=wanted)
        frame = numeric_frame(table, wanted)
        rows = np.arange(len(table))
        if m.layout == "vertical":
            ctx.progress.update("align rows", 0, 1)
            rows = np.asarray(
                align(
                    channel.sub("align"),
                    table,
                    spec.data_parties,
                    use_psi=m.align,
                    job_id=ctx.job_id,
                    workers=ctx.workers,
                ),
                dtype=np.int64,
            )
            summary["aligned_rows"] = len(rows)
        values = frame.to_numpy(dtype=np.float64)[rows]
        if np.isnan(values).any():
            raise DataError(str(table.path), "missing values in the job's columns; impute or drop them first")
        inputs = {c: values[:, i] for i, c in enumerate(columns)}
        if ref.label and m.statistic == "sslr":
            labels = values[:, len(columns)]
        summary["input_rows"] = len(values)
        ctx.progress.update("load data", 1, 1)
    ch = channel.sub("compute")
    ctx.progress.update(m.statistic, 0, 1)
    if m.statistic == "sslr":
        features = None if inputs is None else np.column_stack([inputs[c] for c in m.columns[ctx.party]])
        label_party = next(p for p, r in spec.parties.items() if r.label is not None)
        try:
            config = SslrConfig(label_party=label_party, **(m.sslr or {}))
        except TypeError as exc:
            raise ConfigError(f"mpc.sslr: {exc}") from None
        fitted = train_sslr(ch, roles, features=features, labels=labels, config=config)
        result = None if fitted is None else _sslr_result(fitted)
    else:
        columns_all = tuple(c for p in spec.data_parties for c in m.columns[p])
        if m.layout == "horizontal":
            columns_all = tuple(dict.fromkeys(columns_all))
        request = StatRequest(op=m.statistic, layout=m.layout, columns=columns_all, bins=tuple(m.bins))
        result = joint_statistic(ch, roles, request, inputs)
    ctx.progress.update(m.statistic, 1, 1)
    if result is not None:
        atomic_write_json(out / "result_value.json", {"statistic": m.statistic, "result": _jsonable(result)})
        summary["result"] = _jsonable(result)
    return summary


def _sslr_result(fitted: Any) -> dict[str, Any]:
    """The model the result parties receive: weights per data party's block of columns, and the intercept."""
    weights = np.asarray(fitted.weights, dtype=np.float64)
    blocks = {p: weights[lo:hi].tolist() for p, (lo, hi) in fitted.blocks.items()}
    return {"weights": weights.tolist(), "intercept": float(fitted.intercept), "blocks": blocks}


def _role_names(spec: JobSpec) -> dict[str, tuple[str, ...]]:
    m = _m(spec)
    return {
        "data": spec.data_parties,
        "compute": tuple(m.compute),
        "result": tuple(m.results),
        "dealer": (m.dealer,) if m.dealer else (),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
