"""Typed job specifications: what a joint job computes, on whose data, for whom.

A job spec is YAML or JSON::

    name: customer-overlap
    kind: psi
    parties:
      bank:  {data: bank_customers.csv, id_column: customer_id}
      telco: {data: telco_subscribers.csv, id_column: customer_id}
    psi:
      mode: intersection          # or: cardinality
      receivers: [bank, telco]    # who learns the result

A vertical (joint modeling) job names the label holder and the model's parameters::

    name: credit-risk
    kind: secureboost             # or: hetero_lr
    parties:
      bank:  {data: bank.csv,  id_column: id, label: y}   # the guest: labels and some features
      telco: {data: telco.csv, id_column: id}             # a host: other features of the same people
    vertical: {test_fraction: 0.2, seed: 7}               # rows are PSI-aligned inside the job
    secureboost: {n_trees: 10, max_depth: 4}

and a prediction job scores new rows with the parts of a trained model that each party keeps::

    name: score-march
    kind: predict
    parties:
      bank:  {data: bank_new.csv,  id_column: id}
      telco: {data: telco_new.csv, id_column: id}
    predict: {model: credit-risk-20261123-101500-1a2b3c}  # the training job's id

A horizontal (federated learning) job names the aggregator, a party without data, and the
clients, whose tables (or MedMNIST-style ``.npz`` image files) have the same columns::

    name: digits-fl
    kind: horizontal
    parties:
      hub:      {}                            # the aggregator
      clinic_a: {data: a.npz}                 # train_images/train_labels/val_*/test_*
      clinic_b: {data: b.csv, label: y}       # or a table with a label column
    horizontal:
      aggregator: hub
      model: {family: cnn, num_classes: 10, in_channels: 1, image_size: 8}
      strategy: fedavg                        # fedprox, fedadam, fedyogi, fedadagrad, median, trimmed_mean, krum
      rounds: 20
      secure_aggregation: {enabled: true}
      dp: {mode: client, noise_multiplier: 1.0, clip_norm: 1.0, epsilon: 8.0}

Data paths are resolved by each party's own node (relative to its data
directory), so a spec never carries a party's data, only a reference to it.
The parameters of a model kind are checked against that model's own config
class when the job is submitted (the runtime layer knows them; this one does not).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jointly.errors import ConfigError

PARTY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
JOB_KINDS = ("psi", "secureboost", "hetero_lr", "predict", "horizontal", "mpc", "query")
MODEL_KINDS = ("secureboost", "hetero_lr")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataRef(_Strict):
    """A party's input table: a path on that party's machine, or a dataset registered on its node.

    ``dataset`` names a table the party registered with its node (``jointly dataset add``);
    its path never leaves that node, and its id column is the default ``id_column``.
    ``label`` names the label column (the guest of a vertical job only);
    ``features`` the columns to learn from (default: every column but the id and the label).
    A party with neither ``data`` nor ``dataset`` takes part without data (an arbiter).
    """

    data: str | None = Field(default=None, min_length=1)
    dataset: str | None = Field(default=None, min_length=1, max_length=128)
    id_column: str = Field(default="id", min_length=1)
    label: str | None = Field(default=None, min_length=1)
    features: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataRef:
        if self.data is not None and self.dataset is not None:
            raise ValueError("give either 'data' (a path) or 'dataset' (a registered name), not both")
        return self

    @property
    def has_data(self) -> bool:
        """Whether the party brings a table."""
        return self.data is not None or self.dataset is not None


class PsiSpec(_Strict):
    """Parameters of a private set intersection job."""

    protocol: Literal["ecdh"] = "ecdh"
    mode: Literal["intersection", "cardinality"] = "intersection"
    receivers: tuple[str, ...] = ()
    batch_size: int = Field(default=1 << 16, ge=1, le=1 << 22)


class VerticalSpec(_Strict):
    """How a vertical job uses the parties' rows: alignment, the evaluation split, the baseline."""

    guest: str | None = None  # the label holder; by default the one party that names a label
    arbiter: str | None = None  # hetero_lr only: a party without data that holds the key
    align: bool = True  # PSI-align the rows by id first (otherwise the tables must hold the same ids)
    test_fraction: float = Field(default=0.2, ge=0.0, le=0.5)
    seed: int = 0
    baseline: bool = True  # also fit the guest-only model on the same split, to show the gain


class PredictSpec(_Strict):
    """Score new rows with a stored model: ``model`` is the id of the job that trained it."""

    model: str = Field(min_length=1, max_length=160)
    align: bool = True


class SecureAggregationSpec(_Strict):
    """Secure aggregation of a horizontal job: the aggregator learns only the sum of the updates.

    ``threshold``: fewest clients that must finish a round (also the Shamir threshold; default: a
    strict majority of the round's clients).  ``clip``: bound on each coordinate of a client's
    model delta per round.
    """

    enabled: bool = True
    threshold: int | None = Field(default=None, ge=2)
    clip: float = Field(default=100.0, gt=0)


class ClientDpSpec(_Strict):
    """Client-level differential privacy of a horizontal job (DP-FedAvg).

    ``mode``: ``central`` (the aggregator clips and adds noise; needs the individual updates, so not
    with secure aggregation) or ``client`` (each client clips and adds its share of the noise; works
    with secure aggregation).  ``adaptive``: central mode only, the clip norm follows the
    ``target_quantile`` of the update norms.  ``epsilon``/``delta``: the job's budget; a round that
    would overspend it is not started and training ends with the last affordable model.
    """

    mode: Literal["central", "client"] = "central"
    noise_multiplier: float = Field(gt=0, le=1000)
    clip_norm: float = Field(default=1.0, gt=0)
    epsilon: float = Field(gt=0, le=1000)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    adaptive: bool = False
    target_quantile: float = Field(default=0.5, gt=0, lt=1)


class DpSgdSpec(_Strict):
    """Example-level DP-SGD inside every client (Opacus): each client's budget for its own rows."""

    noise_multiplier: float = Field(gt=0, le=1000)
    max_grad_norm: float = Field(default=1.0, gt=0)
    epsilon: float | None = Field(default=None, gt=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)


class HorizontalSpec(_Strict):
    """Parameters of a horizontal (federated learning) job.

    ``model``: a model spec (family, num_classes, in_channels, image_size, hidden, options;
    ``in_features`` of an MLP is taken from the data).  ``strategy``: a name, or a mapping with
    ``name`` and the strategy's parameters (``mu`` for fedprox; ``server_lr``, ``beta1``... for
    the server optimisers; ``beta`` for trimmed_mean; ``f`` for krum).  ``fraction`` of the clients
    train each round, never fewer than ``min_clients``; a client that does not answer within
    ``round_timeout_s`` is dropped from the round.  ``standardize``: scale table features with the
    federation-wide mean and standard deviation.  ``resume``: the id of an earlier run of the same
    job whose aggregator checkpoint to continue from.
    """

    aggregator: str
    model: dict[str, Any]
    strategy: str | dict[str, Any] = "fedavg"
    rounds: int = Field(default=10, ge=1, le=100_000)
    fraction: float = Field(default=1.0, gt=0, le=1)
    min_clients: int | None = Field(default=None, ge=1)
    local_epochs: int = Field(default=1, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=1, le=1 << 20)
    lr: float = Field(default=0.05, gt=0, le=100)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    test_fraction: float = Field(default=0.2, ge=0, le=0.5)
    standardize: bool = True
    seed: int = 0
    round_timeout_s: float = Field(default=600.0, gt=0)
    eval_every: int = Field(default=1, ge=1)
    secure_aggregation: SecureAggregationSpec | None = None
    dp: ClientDpSpec | None = None
    dp_sgd: DpSgdSpec | None = None
    resume: str | None = Field(default=None, min_length=1, max_length=160)

    @property
    def secagg(self) -> bool:
        return self.secure_aggregation is not None and self.secure_aggregation.enabled


class MpcSpec(_Strict):
    """A joint computation on secret shares (financial-MPC roles: data, compute and result parties).

    ``compute``: the parties that hold the shares and compute (two); ``results``: who learns the
    result; ``dealer``: a party that deals correlated randomness (Beaver triples), trusted not to
    collude with a compute party -- without one the compute parties make triples with Paillier.
    Data parties are the parties that bring a table.  ``columns`` names each data party's columns;
    ``layout: vertical`` aligns the data parties' rows by PSI first (``align``), ``horizontal`` stacks them.
    ``statistic``: sum, count, mean, variance, min, max, histogram (``bins``: edges), pearson (two
    columns), or sslr (secret-shared logistic regression on vertically split features; the party whose
    ref names a ``label`` holds the labels; ``sslr``: its parameters).
    """

    compute: tuple[str, ...] = Field(min_length=2, max_length=2)
    results: tuple[str, ...] = Field(min_length=1)
    dealer: str | None = None
    statistic: Literal["sum", "count", "mean", "variance", "min", "max", "histogram", "pearson", "sslr"]
    layout: Literal["horizontal", "vertical"] = "horizontal"
    columns: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    bins: tuple[float, ...] = ()
    align: bool = True
    sslr: dict[str, Any] | None = None


class QuerySpec(_Strict):
    """A private query of one party's set or records by another.

    ``client`` asks with the ids in its table; ``server`` answers from its table (``label`` of its
    data ref names the value column).  ``method``: ``labeled_psi`` (an OPRF over Curve25519: the
    client learns which of its ids are in the server's set and their labels, the server learns only
    how many ids were asked) or ``pir`` (keyword PIR over LWE: the server learns nothing about the
    keys, the client downloads a one-time hint).  ``max_ids`` bounds how many ids one job may ask.
    """

    client: str
    server: str
    method: Literal["labeled_psi", "pir"] = "labeled_psi"
    max_ids: int = Field(default=10_000, ge=1, le=1_000_000)


class JobSpec(_Strict):
    """A joint job: its kind, the parties with their data references, and kind-specific parameters."""

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["psi", "secureboost", "hetero_lr", "predict", "horizontal", "mpc", "query"]
    parties: dict[str, DataRef]
    psi: PsiSpec | None = None
    vertical: VerticalSpec | None = None
    secureboost: dict[str, Any] | None = None
    hetero_lr: dict[str, Any] | None = None
    predict: PredictSpec | None = None
    horizontal: HorizontalSpec | None = None
    mpc: MpcSpec | None = None
    query: QuerySpec | None = None
    timeout_s: float = Field(default=6 * 3600.0, gt=0)
    approval_timeout_s: float = Field(default=24 * 3600.0, gt=0, le=30 * 24 * 3600.0)

    @field_validator("parties")
    @classmethod
    def _check_parties(cls, parties: dict[str, DataRef]) -> dict[str, DataRef]:
        if len(parties) < 2:
            raise ValueError("a joint job needs at least two parties")
        bad = [p for p in parties if not PARTY_NAME.match(p)]
        if bad:
            raise ValueError(f"invalid party names {bad}: use lowercase letters, digits, '-' or '_'")
        return parties

    @model_validator(mode="after")
    def _check_kind(self) -> JobSpec:
        sections: dict[str, object] = {"psi": self.psi, "secureboost": self.secureboost, "hetero_lr": self.hetero_lr}
        sections["predict"] = self.predict
        sections["horizontal"] = self.horizontal
        sections["mpc"] = self.mpc
        sections["query"] = self.query
        stray = [k for k, v in sections.items() if v is not None and k != self.kind]
        if stray:
            raise ValueError(f"a {self.kind} job cannot have section(s) {stray}")
        if self.vertical is not None and self.kind not in MODEL_KINDS:
            raise ValueError(f"a {self.kind} job cannot have a 'vertical' section")
        if self.kind in MODEL_KINDS:
            self._check_vertical()
            return self
        if self.kind == "horizontal":
            self._check_horizontal()
            return self
        if self.kind == "mpc":
            self._check_mpc()
            return self
        if self.kind == "query":
            self._check_query()
            return self
        dataless = [p for p, ref in self.parties.items() if not ref.has_data]
        if dataless and self.kind != "predict":  # a model's arbiter takes part in prediction without data
            raise ValueError(f"parties {dataless} need 'data' in a {self.kind} job")
        if len(self.parties) - len(dataless) < 2:
            raise ValueError(f"a {self.kind} job needs at least two parties with data")
        labelled = [p for p, ref in self.parties.items() if ref.label is not None]
        if labelled and self.kind == "psi":
            raise ValueError(f"a psi job uses no labels (given by {labelled})")
        if self.kind == "psi":
            psi = self.psi or PsiSpec()
            unknown = [r for r in psi.receivers if r not in self.parties]
            if unknown:
                raise ValueError(f"psi.receivers {unknown} are not parties of the job")
        if self.kind == "predict" and self.predict is None:
            raise ValueError("a predict job needs a 'predict' section naming the model")
        return self

    def _check_vertical(self) -> None:
        vertical = self.vertical or VerticalSpec()
        labelled = [p for p, ref in self.parties.items() if ref.label is not None]
        guest = vertical.guest
        if guest is None:
            if len(labelled) != 1:
                raise ValueError(f"exactly one party must name a 'label' column (found {labelled or 'none'})")
            guest = labelled[0]
        if guest not in self.parties:
            raise ValueError(f"vertical.guest {guest!r} is not a party of the job")
        if self.parties[guest].label is None:
            raise ValueError(f"the guest {guest!r} must name its 'label' column")
        others = [p for p in labelled if p != guest]
        if others:
            raise ValueError(f"only the guest holds labels; {others} name a label too")
        arbiter = vertical.arbiter
        if arbiter is not None:
            if self.kind != "hetero_lr":
                raise ValueError(f"a {self.kind} job has no arbiter")
            if arbiter not in self.parties or arbiter == guest:
                raise ValueError(f"vertical.arbiter {arbiter!r} must be a party of the job other than the guest")
            if self.parties[arbiter].has_data:
                raise ValueError(f"the arbiter {arbiter!r} holds no data in the job")
        dataless = [p for p, ref in self.parties.items() if not ref.has_data and p != arbiter]
        if dataless:
            raise ValueError(f"parties {dataless} need 'data'")
        if len(self.parties) - (arbiter is not None) < 2:
            raise ValueError("a vertical job needs a guest and at least one host with data")

    def _check_horizontal(self) -> None:
        h = self.horizontal
        if h is None:
            raise ValueError("a horizontal job needs a 'horizontal' section (aggregator, model, ...)")
        if h.aggregator not in self.parties:
            raise ValueError(f"horizontal.aggregator {h.aggregator!r} is not a party of the job")
        if self.parties[h.aggregator].has_data:
            raise ValueError(f"the aggregator {h.aggregator!r} holds no data in a horizontal job")
        clients = [p for p in self.parties if p != h.aggregator]
        dataless = [p for p in clients if not self.parties[p].has_data]
        if dataless:
            raise ValueError(f"clients {dataless} need 'data'")
        if len(clients) < 2:
            raise ValueError("a horizontal job needs at least two clients besides the aggregator")
        if h.min_clients is not None and h.min_clients > len(clients):
            raise ValueError(f"horizontal.min_clients {h.min_clients} is more than the {len(clients)} clients")
        if h.secagg:
            threshold = h.secure_aggregation.threshold if h.secure_aggregation else None
            if threshold is not None and threshold > len(clients):
                raise ValueError(f"secure_aggregation.threshold {threshold} is more than the {len(clients)} clients")
            if h.dp is not None and h.dp.mode == "central":
                raise ValueError(
                    "central DP needs the individual updates: use dp.mode 'client' with secure aggregation"
                )
        if h.dp is not None and h.dp.adaptive and h.dp.mode != "central":
            raise ValueError("adaptive clipping is a central-DP option (dp.mode 'central')")

    def _check_mpc(self) -> None:
        m = self.mpc
        if m is None:
            raise ValueError("an mpc job needs an 'mpc' section (compute, results, statistic, columns)")
        named = [*m.compute, *m.results, *([m.dealer] if m.dealer else []), *m.columns]
        unknown = sorted({p for p in named if p not in self.parties})
        if unknown:
            raise ValueError(f"mpc names {unknown}, which are not parties of the job")
        if len(set(m.compute)) != 2:
            raise ValueError("mpc.compute must name two different parties")
        if m.dealer is not None and m.dealer in m.compute:
            raise ValueError("the dealer must not be a compute party")
        data = [p for p, ref in self.parties.items() if ref.has_data]
        if not data:
            raise ValueError("an mpc job needs at least one data party")
        missing = [p for p in data if not m.columns.get(p)]
        if missing:
            raise ValueError(f"mpc.columns must name the columns of every data party (missing: {missing})")
        stray = [p for p in m.columns if p not in data]
        if stray:
            raise ValueError(f"mpc.columns names parties without data: {stray}")
        if m.statistic == "pearson" and sum(len(c) for c in m.columns.values()) != 2 and m.layout == "vertical":
            raise ValueError("a vertical pearson needs exactly two columns in all")
        if m.statistic == "histogram" and (len(m.bins) < 2 or list(m.bins) != sorted(set(m.bins))):
            raise ValueError("a histogram needs at least two increasing bin edges in mpc.bins")
        if m.statistic == "sslr":
            if m.layout != "vertical":
                raise ValueError("sslr trains on vertically partitioned features: layout must be 'vertical'")
            labelled = [p for p, ref in self.parties.items() if ref.label is not None]
            if len(labelled) != 1:
                raise ValueError(f"sslr needs exactly one party naming a 'label' column (found {labelled or 'none'})")

    def _check_query(self) -> None:
        q = self.query
        if q is None:
            raise ValueError("a query job needs a 'query' section (client, server)")
        for role, name in (("client", q.client), ("server", q.server)):
            if name not in self.parties:
                raise ValueError(f"query.{role} {name!r} is not a party of the job")
            if not self.parties[name].has_data:
                raise ValueError(f"the query {role} {name!r} needs 'data'")
        if q.client == q.server or len(self.parties) != 2:
            raise ValueError("a query job has exactly two parties: a client and a server")
        if self.parties[q.server].label is None:
            raise ValueError(f"the server {q.server!r} must name the 'label' column whose values it answers with")

    @property
    def clients(self) -> tuple[str, ...]:
        """The data parties of a horizontal job (everyone but the aggregator)."""
        agg = self.horizontal.aggregator if self.horizontal else None
        return tuple(p for p in self.parties if p != agg)

    @property
    def guest(self) -> str:
        """The label holder of a vertical job."""
        vertical = self.vertical or VerticalSpec()
        if vertical.guest is not None:
            return vertical.guest
        labelled = [p for p, ref in self.parties.items() if ref.label is not None]
        if len(labelled) != 1:
            raise ConfigError(f"job {self.name!r} has no single label holder")
        return labelled[0]

    @property
    def arbiter(self) -> str | None:
        return (self.vertical or VerticalSpec()).arbiter

    @property
    def data_parties(self) -> tuple[str, ...]:
        """The parties that bring a table, in the job's order."""
        return tuple(p for p, ref in self.parties.items() if ref.has_data)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The parties of a vertical job that bring features but no labels."""
        return tuple(p for p in self.data_parties if p != self.guest)

    @property
    def vertical_params(self) -> VerticalSpec:
        return self.vertical or VerticalSpec()

    @property
    def model_params(self) -> dict[str, Any]:
        """The model section of a secureboost or hetero_lr job (empty for defaults)."""
        section = self.secureboost if self.kind == "secureboost" else self.hetero_lr
        return dict(section or {})

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(self.parties)

    @property
    def psi_params(self) -> PsiSpec:
        """The PSI section, defaulting receivers to the first party."""
        psi = self.psi or PsiSpec()
        if not psi.receivers:
            psi = psi.model_copy(update={"receivers": (self.party_names[0],)})
        return psi

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; only the fields the author set, so defaults filled in here (say a registered
        dataset's id column) stay defaults for every party that reads the spec back."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def from_dict(cls, raw: object, *, source: str = "job spec") -> JobSpec:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from None

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        """Read a YAML or JSON job spec; every problem is a :class:`ConfigError` naming the file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: job spec not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read job spec: {exc}") from None
        try:
            raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
        return cls.from_dict(raw, source=str(p))
