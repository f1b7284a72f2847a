"""What a job would do with one party's data: shown to that party's operators before they approve it.

:func:`job_usage` answers, for one party of a job spec: which of its tables and
columns the job reads, which outputs it would keep on this party's node, what
the other parties learn, and the privacy settings (protocol, key size,
differential-privacy budget).  It is computed on each party's own node from the
spec alone plus the party's own dataset registry, so nothing needs to be
trusted from the initiator beyond the spec everyone approves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jointly.config.job import JobSpec
from jointly.runtime import model_kinds

PSI_PROTOCOL = "ECDH-PSI over Curve25519 (RFC 9380 hash-to-curve), mutual-TLS gRPC"


def job_usage(
    spec: JobSpec,
    party: str,
    *,
    columns: Sequence[str] | None = None,
    dataset_path: str | None = None,
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """The usage summary of ``spec`` for ``party``.

    ``columns`` are the columns of the party's table when known (a registered
    dataset's schema), so "every feature" can be spelled out.
    """
    ref = spec.parties[party]
    used: list[dict[str, Any]] = []
    if ref.has_data:
        read = _columns_read(spec, party, columns)
        used.append(
            {
                "name": dataset_name or ref.dataset or "",
                "path": dataset_path or ref.data or "",
                "id_column": ref.id_column,
                "label": ref.label,
                "columns": read,
            }
        )
    return {
        "role": _role(spec, party),
        "datasets": used,
        "outputs": _outputs(spec, party),
        "partners_learn": _partners_learn(spec, party),
        "privacy": _privacy(spec),
    }


def _role(spec: JobSpec, party: str) -> str:
    if spec.kind == "query" and spec.query is not None:
        return "client" if party == spec.query.client else "server"
    if spec.kind == "mpc" and spec.mpc is not None:
        m = spec.mpc
        names = [("data", spec.data_parties), ("compute", m.compute), ("result", m.results)]
        names.append(("dealer", (m.dealer,) if m.dealer else ()))
        return " + ".join(r for r, members in names if party in members) or "observer"
    if spec.kind == "horizontal":
        return "aggregator" if party not in spec.clients else "client"
    if spec.kind == "psi":
        return "receiver" if party in spec.psi_params.receivers else "sender"
    if spec.kind == "predict":
        return "model party" if spec.parties[party].has_data else "arbiter"
    if spec.arbiter == party:
        return "arbiter"
    return "guest" if party == spec.guest else "host"


def _columns_read(spec: JobSpec, party: str, columns: Sequence[str] | None) -> list[str]:
    ref = spec.parties[party]
    if spec.kind == "psi":
        return [ref.id_column]
    if spec.kind == "predict":
        return [ref.id_column, "the features the model was trained on"]
    if spec.kind == "query":
        return [ref.id_column, *([ref.label] if ref.label else [])]
    if spec.kind == "mpc" and spec.mpc is not None:
        label = [ref.label] if ref.label and spec.mpc.statistic == "sslr" else []
        return [ref.id_column, *spec.mpc.columns.get(party, ()), *label]
    if spec.kind == "horizontal" and (ref.data or "").lower().endswith(".npz"):
        return ["train_images", "train_labels", "test_images", "test_labels"]
    if ref.features is not None:
        picked = [ref.id_column, *ref.features]
    elif columns is not None:
        picked = [c for c in columns if c != ref.label]
    else:
        picked = [ref.id_column, "every other column"]
    if ref.label is not None:
        picked.append(ref.label)
    return list(dict.fromkeys(picked))


def _outputs(spec: JobSpec, party: str) -> list[str]:
    role = _role(spec, party)
    if spec.kind == "psi":
        if role != "receiver":
            return ["result summary (input row count)"]
        what = "intersection size" if spec.psi_params.mode == "cardinality" else "intersection ids (intersection.csv)"
        return [what]
    if spec.kind == "predict":
        return ["scores of the aligned rows (predictions.csv), only on the party holding the model's guest part"]
    if spec.kind == "query":
        return ["results.csv: each asked id, found or not, its label"] if role == "client" else ["counts only"]
    if spec.kind == "mpc" and spec.mpc is not None:
        return [f"the {spec.mpc.statistic} result"] if party in spec.mpc.results else ["counts only"]
    if spec.kind == "horizontal":
        outs = ["the final global model (every party keeps it)", "round checkpoints (aggregator)"]
        return outs + (["per-round history and metrics (metrics.json)"] if role == "aggregator" else [])
    if role == "arbiter":
        return ["its key part of the model (no data)"]
    if role == "guest":
        outs = ["its model part (partners' splits only as opaque ids)", "evaluation metrics (metrics.json)"]
        if spec.vertical_params.baseline:
            outs.append("a guest-only baseline model's metrics")
        return outs
    return ["its model part (its own split thresholds)"]


def _partners_learn(spec: JobSpec, party: str) -> list[str]:
    role = _role(spec, party)
    if spec.kind == "psi":
        return ["the size of this party's id set", "which ids are shared, only for the receivers"]
    if spec.kind == "horizontal":
        return _horizontal_learn(spec, role)
    if spec.kind == "query" and spec.query is not None:
        if role == "client":
            return ["to the server: how many ids are asked (labeled PSI) or nothing (PIR)"]
        return ["to the client: which of its ids are in this party's set, and their labels; the set's size"]
    if spec.kind == "mpc" and spec.mpc is not None:
        learn = [f"to {', '.join(spec.mpc.results)}: the declared {spec.mpc.statistic} result only"]
        learn.append("to the compute parties: uniformly random shares, nothing about the values")
        if spec.mpc.layout == "vertical" and spec.mpc.align:
            learn.append("to the other data parties: which ids they share with this party (PSI alignment)")
        return learn
    learn = ["the number of rows this party shares with the others (after alignment)"]
    if (spec.kind == "secureboost" and role == "host") or spec.kind == "predict":
        learn.append("to the guest: which side of each of a host's splits each shared row falls")
    if spec.kind == "secureboost" and role == "guest":
        learn.append("to hosts: nothing about labels, gradients or scores (only encrypted values)")
    return learn


def _horizontal_learn(spec: JobSpec, role: str) -> list[str]:
    h = spec.horizontal
    if role == "aggregator" or h is None:
        return ["the global model after every round (every client receives it)"]
    learn = ["to every client: the global model after every round"]
    if h.secagg:
        learn.append("to the aggregator: only the sum of the clients' updates (secure aggregation), not this one's")
    else:
        learn.append("to the aggregator: this client's model update and training example count every round")
    learn.append("to the aggregator: this client's training loss and evaluation counts on its test rows")
    if h.standardize and str(h.model.get("family")) == "mlp":
        learn.append("to the aggregator: per-feature count, sum and sum of squares of this client's rows")
    return learn


def _privacy(spec: JobSpec) -> dict[str, Any]:
    privacy: dict[str, Any] = {"dp_budget": None}
    if spec.kind == "query" and spec.query is not None:
        privacy["protocol"] = {
            "labeled_psi": "labeled PSI: OPRF over Curve25519 (RFC 9380 hash-to-curve), AES-GCM labels",
            "pir": "keyword PIR over LWE (SimplePIR-style)",
        }[spec.query.method]
        privacy["max_ids"] = spec.query.max_ids
        return privacy
    if spec.kind == "mpc" and spec.mpc is not None:
        triples = f"dealer {spec.mpc.dealer}" if spec.mpc.dealer else "Paillier (no dealer)"
        privacy["protocol"] = f"additive secret sharing over Z_2^64, Beaver triples from {triples}, semi-honest"
        return privacy
    if spec.kind == "horizontal" and spec.horizontal is not None:
        h = spec.horizontal
        privacy["protocol"] = "federated averaging over mutual-TLS gRPC" + (
            " with secure aggregation (X25519 pairwise masks, Shamir-shared seeds)" if h.secagg else ""
        )
        if h.dp is not None:
            privacy["dp_budget"] = {
                "epsilon": h.dp.epsilon,
                "delta": h.dp.delta,
                "level": f"client ({h.dp.mode} noise)",
            }
        if h.dp_sgd is not None:
            privacy["dp_sgd"] = {"epsilon": h.dp_sgd.epsilon, "delta": h.dp_sgd.delta, "level": "example (DP-SGD)"}
        return privacy
    align = spec.kind in ("secureboost", "hetero_lr") and spec.vertical_params.align
    if spec.kind == "predict" and spec.predict is not None:
        align = spec.predict.align
    if align:
        privacy["alignment"] = PSI_PROTOCOL
    if spec.kind in ("secureboost", "hetero_lr"):
        config = model_kinds.build(spec.kind, spec.model_params)
        key_bits = getattr(config, "key_bits", None)
        privacy["protocol"] = f"{spec.kind} with Paillier-encrypted intermediate values"
        privacy["key_bits"] = key_bits
        privacy["unsafe_key_size"] = bool(getattr(config, "allow_unsafe_key_size", False))
    elif spec.kind == "psi":
        privacy["protocol"] = PSI_PROTOCOL
        privacy["mode"] = spec.psi_params.mode
    else:
        privacy["protocol"] = "federated scoring with the stored model parts"
    return privacy


def dataset_columns(schema: Mapping[str, Any] | None) -> list[str] | None:
    """Column names from a dataset record's ``columns`` list (``[{name, dtype}, ...]``)."""
    if not schema:
        return None
    return [str(c["name"]) for c in schema.get("columns", [])]
