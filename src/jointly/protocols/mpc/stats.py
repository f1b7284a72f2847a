"""Joint statistics over horizontally or vertically partitioned data; only the result party learns the result.

:func:`joint_statistic` runs on every party of the :class:`~jointly.protocols.mpc.session.MpcRoles`.

*Horizontal* (every data party has the column(s), different rows).  Each data party reduces its
own rows to local aggregates (row count, sums, sums of squares and products, local min/max,
histogram counts) in float64 and secret-shares them; the compute parties add the shares and
finish in MPC: ``mean = S / N``, ``variance = Q / N - mean**2`` (population variance),
``pearson = cov * rsqrt(var_x) * rsqrt(var_y)``, min/max by a comparison tree over the
parties' local extremes, histogram counts by addition.  ``quantile`` shares every value and
bisects (see :func:`~jointly.protocols.mpc.compare.quantile`).  The compute parties learn the
total row count ``N`` (opened to divide by it exactly) and, for ``quantile`` only, each data party's
row count (the size of its shares); nothing else is opened to them.

*Vertical* (rows aligned by the caller, columns at different parties).  Single-column ops act
on the row-wise sum of the listed columns (e.g. a customer's total exposure across banks):
each owner shares its columns, the compute parties add them and compute on the shared vector
(sum, mean, variance of ``v - mean``, min/max trees, histograms by comparing every row with
every edge, quantile by bisection).  ``pearson`` of two columns: each owner standardises its
own column locally (its own mean and standard deviation, scaled by ``1/sqrt(N)``), and the
compute parties compute one secret dot product, which *is* the correlation.

What each party learns: data parties nothing (unless they hold another role); compute parties
their uniformly random shares, masked openings and ``N``; the result parties the declared result
and nothing else (they receive only the result's shares).  Range: fixed point with
``roles.frac_bits`` (16) fractional bits, so values, sums and sums of squares must stay below
``2**(61 - 2 * frac_bits)`` ~ ``5e8`` where they are divided or compared; ``pearson`` and
``variance`` in horizontal layout lose precision when ``|mean| >> sd`` (cancellation in fixed point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from jointly.channel import Channel
from jointly.crypto.shares import SharedTensor, decode_fixed, encode_fixed
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.mpc import compare, numeric
from jointly.protocols.mpc.engine import TwoPartyEngine, share_input
from jointly.protocols.mpc.session import MpcRoles, run_session

OPS = ("sum", "count", "mean", "variance", "min", "max", "histogram", "pearson", "quantile")
LAYOUTS = ("horizontal", "vertical")
U64 = np.uint64


@dataclass(frozen=True)
class StatRequest:
    """The declared statistic: every party passes the same request.

    ``columns``: one name (``pearson``: two; vertical single-column ops: the row-wise sum of
    all listed columns).  ``bins``: histogram edges (increasing; numpy semantics: the last bin
    includes its right edge).  ``quantile``: ``q`` in ``[0, 1]`` for ``op="quantile"``.
    """

    op: str
    layout: str
    columns: tuple[str, ...]
    bins: tuple[float, ...] = ()
    quantile: float = 0.5

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"unknown statistic {self.op!r} (known: {', '.join(OPS)})")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r} (known: {', '.join(LAYOUTS)})")
        if not self.columns or not all(isinstance(c, str) and c for c in self.columns):
            raise ConfigError("a statistic needs at least one column name")
        if self.op == "pearson" and len(self.columns) != 2:
            raise ConfigError("pearson needs exactly two columns")
        if self.layout == "horizontal" and self.op != "pearson" and len(self.columns) != 1:
            raise ConfigError("horizontal single-column statistics take one column")
        if self.op == "histogram":
            edges = np.asarray(self.bins, dtype=np.float64)
            if edges.size < 2 or not np.all(np.diff(edges) > 0) or not np.isfinite(edges).all():
                raise ConfigError("histogram bins must be at least two increasing finite edges")
        if self.op == "quantile" and not 0.0 <= self.quantile <= 1.0:
            raise ConfigError(f"quantile must lie in [0, 1], got {self.quantile}")


def _column(inputs: dict[str, np.ndarray], name: str, party: str) -> np.ndarray:
    col = np.asarray(inputs[name], dtype=np.float64).reshape(-1)
    if not np.isfinite(col).all():
        raise DataError(f"{party}:{name}", "column has missing or infinite values")
    return col


def _local_aggregates(req: StatRequest, inputs: dict[str, np.ndarray], party: str) -> np.ndarray:
    """What one data party contributes in horizontal layout (float64 vector)."""
    for c in req.columns:
        if c not in inputs:
            raise DataError(party, f"column {c!r} is missing")
    x = _column(inputs, req.columns[0], party)
    n = float(x.size)
    if req.op == "pearson":
        y = _column(inputs, req.columns[1], party)
        if y.size != x.size:
            raise DataError(party, "pearson columns have different lengths")
        return np.array([n, x.sum(), y.sum(), x @ x, y @ y, x @ y])
    if req.op in ("min", "max"):
        if x.size == 0:
            raise DataError(party, f"no rows for {req.op}")
        return np.array([x.min() if req.op == "min" else x.max(), n])
    if req.op == "histogram":
        counts, _ = np.histogram(x, bins=np.asarray(req.bins, dtype=np.float64))
        return np.concatenate([counts.astype(np.float64), [n]])
    if req.op == "quantile":
        return x
    return np.array([n, x.sum(), x @ x])


def _scalar(x: SharedTensor) -> SharedTensor:
    return x.reshape(1)


def _horizontal(eng: TwoPartyEngine, req: StatRequest, parts: list[np.ndarray]) -> SharedTensor:
    tensors = [eng.tensor(p) for p in parts]
    if req.op == "quantile":
        return _scalar(compare.quantile(SharedTensor.concat(tensors), req.quantile))
    if req.op in ("min", "max"):
        extremes = SharedTensor.concat([t[0:1] for t in tensors])
        return _scalar(compare.argmax(extremes, smallest=req.op == "min")[0])
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    if req.op == "histogram":
        return total[:-1]
    n_total = _open_count(eng, total[-1] if req.op == "histogram" else total[0])
    if req.op == "count":
        return total[0:1]
    if req.op == "sum":
        return total[1:2]
    if n_total <= 0:
        raise DataError("inputs", f"no rows for {req.op}")
    means = numeric.div_public(total[1:], n_total)
    if req.op == "mean":
        return means[0:1]
    if req.op == "variance":
        return means[1:2] - means[0:1] * means[0:1]
    # pearson: means = E[x], E[y], E[xx], E[yy], E[xy]
    mx, my = means[0:1], means[1:2]
    sq = eng.mul_many([(mx, mx), (my, my), (mx, my)])
    var = SharedTensor.concat([means[2:3] - sq[0], means[3:4] - sq[1]])
    cov = means[4:5] - sq[2]
    inv = numeric.rsqrt(var)
    return cov * inv[0:1] * inv[1:2]


def _open_count(eng: TwoPartyEngine, count: SharedTensor) -> int:
    """Open the (non-secret to compute parties) total row count."""
    value = float(eng.reveal(count.reshape(1))[0])
    if not math.isfinite(value) or value < 0:
        raise ProtocolViolation("the shared row count is invalid")
    return round(value)


def _vertical(eng: TwoPartyEngine, req: StatRequest, parts: list[np.ndarray], n: int) -> SharedTensor:
    cols = [eng.tensor(p) for p in parts]
    if req.op == "pearson":
        return (cols[0] @ cols[1]).reshape(1)
    v = cols[0]
    for c in cols[1:]:
        v = v + c
    if req.op == "count":
        return SharedTensor.public(eng, np.array([float(n)]))
    if req.op == "sum":
        return v.sum().reshape(1)
    if n == 0:
        raise DataError("inputs", f"no rows for {req.op}")
    if req.op == "mean":
        return numeric.div_public(v.sum(), n).reshape(1)
    if req.op == "variance":
        d = v - numeric.div_public(v.sum(), n)
        return numeric.div_public((d * d).sum(), n).reshape(1)
    if req.op in ("min", "max"):
        return _scalar(compare.argmax(v, smallest=req.op == "min")[0])
    if req.op == "quantile":
        return _scalar(compare.quantile(v, req.quantile))
    # histogram: c_j = #{v >= e_j} for the inner/left edges, last = #{v > e_last}
    edges = np.asarray(req.bins, dtype=np.float64)
    ge = (v.reshape(-1, 1) >= edges[:-1]).sum(axis=0)
    above = (v > float(edges[-1])).sum().reshape(1)
    ge_all = SharedTensor.concat([ge, above])
    counts = ge_all[:-1] - ge_all[1:]
    return counts.rescaled(eng.frac_bits)


def _check_meta(got: object, party: str) -> tuple[list[str], int]:
    if isinstance(got, list) and len(got) == 2:
        names, rows = got
        if isinstance(names, list) and all(isinstance(c, str) for c in names) and isinstance(rows, int) and rows >= 0:
            return names, rows
    raise ProtocolViolation(f"{party} sent malformed column metadata")


def joint_statistic(
    channel: Channel, roles: MpcRoles, request: StatRequest, inputs: dict[str, np.ndarray] | None
) -> dict[str, Any] | None:
    """Compute ``request`` over the data parties' ``inputs``; the result parties get ``{"op", "value", ...}``.

    Runs on every party of ``roles``; returns ``None`` on parties that are not result parties.
    ``value`` is a float (``count``: an int; ``histogram``: a list of ints, with ``bins``).
    """
    roles.check(channel)
    me = channel.party
    if me not in roles.parties:
        return None
    ch = channel.sub("mpc-stat")
    if me in roles.data and inputs is None:
        raise ConfigError(f"data party {me!r} passed no inputs")
    # 1. data parties tell the compute parties which columns they hold (and, vertical only, how many rows)
    layout: dict[str, tuple[list[str], int]] = {}
    if me in roles.data:
        assert inputs is not None
        names = sorted(c for c in request.columns if c in inputs)
        # row counts are public only in vertical layout (aligned rows); horizontal hides each party's count
        rows = len(np.asarray(inputs[names[0]]).reshape(-1)) if names and request.layout == "vertical" else 0
        layout[me] = (names, rows)
        ch.broadcast("meta", [names, rows], to=[p for p in roles.compute if p != me])
    if me in roles.compute:
        for p in roles.data:
            if p != me:
                layout[p] = _check_meta(ch.recv(p, "meta"), p)
    # 2. data parties share their contributions (a pure data party knows only its own)
    contributions: list[tuple[str, str]] = []  # (owner, tag) in a fixed order
    n_rows = 0
    known = [p for p in roles.data if p in layout]
    if request.layout == "horizontal":
        for p in known:
            if sorted(request.columns) != sorted(layout[p][0]):
                raise DataError(p, f"horizontal layout: every data party needs columns {list(request.columns)}")
            contributions.append((p, f"h/{p}"))
    else:
        for c in request.columns:
            owners = [p for p in known if c in layout[p][0]]
            if me in roles.compute and len(owners) != 1:
                raise DataError(c, f"vertical layout: column {c!r} must be held by exactly one data party")
            contributions.extend((o, f"v/{c}") for o in owners)
        sizes = {layout[p][1] for p, _ in contributions}
        if len(sizes) > 1:
            raise DataError("inputs", "vertical layout: the columns have different row counts (align them first)")
        n_rows = sizes.pop() if sizes else 0
    shares: list[np.ndarray] = []
    for owner, tag in contributions:
        values: np.ndarray | None = None
        if me == owner:
            assert inputs is not None
            values = encode_fixed(_contribution(request, inputs, tag, n_rows, me), roles.frac_bits)
        got = share_input(ch, roles.pair, owner, values, tag=tag)
        if got is not None:
            shares.append(got)

    def compute(eng: TwoPartyEngine) -> np.ndarray:
        if request.layout == "horizontal":
            out = _horizontal(eng, request, shares)
        else:
            out = _vertical(eng, request, shares, n_rows)
        return out.rescaled(roles.frac_bits).share if out.frac_bits < roles.frac_bits else out.share

    ring = run_session(ch, roles, compute)
    if ring is None:
        return None
    value = decode_fixed(ring, roles.frac_bits)
    result: dict[str, Any] = {"op": request.op, "layout": request.layout, "columns": list(request.columns)}
    if request.op == "count":
        result["value"] = round(float(value[0]))
    elif request.op == "histogram":
        result["value"] = [round(float(v)) for v in value]
        result["bins"] = list(request.bins)
    else:
        result["value"] = float(value[0])
    if request.op == "quantile":
        result["q"] = request.quantile
    return result


def _contribution(req: StatRequest, inputs: dict[str, np.ndarray], tag: str, n_rows: int, party: str) -> np.ndarray:
    if tag.startswith("h/"):
        return _local_aggregates(req, inputs, party)
    name = tag[2:]
    col = _column(inputs, name, party)
    if req.op != "pearson":
        return col
    sd = float(col.std())
    if sd == 0.0:
        raise DataError(f"{party}:{name}", "pearson of a constant column is undefined")
    return np.asarray((col - col.mean()) / (sd * math.sqrt(n_rows)), dtype=np.float64)
