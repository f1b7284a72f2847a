"""The guest: the scikit-learn style estimator that drives SecureBoost, and its view of each host.

What the guest receives from a host: packed encrypted cumulative histograms labelled with opaque
split ids, and left/right bits of rows for the splits the host won (and, at prediction, for the
splits the model uses).  From the histograms it learns, for every host candidate split of every
node, the sums of ``g`` and ``h`` on each side -- never a host feature value, name, bin edge or
threshold; for regression (``h = 1``) those sums include row counts.  It keeps the private key,
all labels, gradients, gains and leaf weights to itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from jointly.channel import Channel
from jointly.crypto.paillier import EncryptedVector, PaillierPrivateKey, generate_paillier_keypair
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.vertical.memory import release_memory
from jointly.learn.vertical.secureboost.binning import BinnedMatrix, as_matrix
from jointly.learn.vertical.secureboost.booster import LevelNode, Routing, SplitSource, TreeContext, boost
from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.histogram import LocalSplitter
from jointly.learn.vertical.secureboost.loss import check_labels, fit_objective
from jointly.learn.vertical.secureboost.messages import (
    GRADIENT_BLOCK_BYTES,
    MAX_CANDIDATES,
    SPLIT_ID_BYTES,
    VERSION,
    Finish,
    Histograms,
    LevelRequest,
    Routes,
    Setup,
    SplitRequest,
    TreeStart,
    expect,
    unpack_bits,
)
from jointly.learn.vertical.secureboost.model import FORMAT_VERSION, GUEST_PART, GuestModel, labels_of, load_part
from jointly.learn.vertical.secureboost.packing import pack_rows, unpack
from jointly.learn.vertical.secureboost.predict import predict_guest
from jointly.learn.vertical.secureboost.sampling import validation_split
from jointly.learn.vertical.secureboost.split import BestSplit, best_split
from jointly.learn.vertical.secureboost.tree import Node, Tree
from jointly.progress import NullProgress, Progress

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class _Encryptor:
    """Packs and encrypts the quantized gradients once per tree; every host gets the same ciphertexts.

    The vector is dropped as soon as the last host has been sent it (it is the largest thing
    the guest holds: one ciphertext per row of the tree).
    """

    def __init__(self, key: PaillierPrivateKey, hosts: int) -> None:
        self.key = key
        self.hosts = hosts
        self.vector: EncryptedVector | None = None
        self.pending = 0

    def __call__(self, ctx: TreeContext) -> None:
        ctx.layout.per_plaintext(self.key.public_key.max_int)  # ConfigError now if the slots cannot fit
        self.vector = None
        release_memory(collect=False)  # what the last tree freed, before this tree's largest allocation
        packed = pack_rows(ctx.q, ctx.layout)
        self.vector = self.key.encrypt_ints(packed)
        self.pending = self.hosts

    @property
    def _block(self) -> int:
        return max(1, GRADIENT_BLOCK_BYTES // self.key.public_key.ciphertext_bytes)

    def blocks(self) -> int:
        """How many messages :meth:`send` sends for this tree."""
        if self.vector is None:  # pragma: no cover - the booster encrypts before any source starts a tree
            raise ProtocolViolation("no encrypted gradients for this tree")
        return max(1, -(-len(self.vector) // self._block))

    def send(self, ch: Channel, host: str) -> None:
        """Send this tree's vector to ``host`` in :meth:`blocks` messages on ``ch`` (tags ``"0"``, ``"1"``, ...)."""
        if self.vector is None:  # pragma: no cover - the booster encrypts before any source starts a tree
            raise ProtocolViolation("no encrypted gradients for this tree")
        for i, wire in enumerate(self.vector.to_wire_blocks(self._block)):
            ch.send(host, str(i), wire)
        self.pending -= 1
        if self.pending <= 0:
            self.vector = None


class RemoteHost:
    """A host as a split source of the booster: the guest's half of the per-tree protocol."""

    def __init__(
        self, ch: Channel, host: str, config: SecureBoostConfig, key: PaillierPrivateKey, encryptor: _Encryptor
    ) -> None:
        self.name = host
        self.ch = ch
        self.config = config
        self.key = key
        self.encryptor = encryptor

    def start_tree(self, ctx: TreeContext) -> None:
        self.ctx = ctx
        self.tree_ch = self.ch.sub("tree").sub(ctx.index)
        self.per = ctx.layout.per_plaintext(self.key.public_key.max_int)
        self.n_candidates = 0
        self.split_ids = b""
        self.sums: dict[int, IntArray] = {}  # node id -> (candidates, 2K) left sums, for the last level
        msg = TreeStart(stop=False, rows=ctx.sample, slot_bits=list(ctx.layout.widths), blocks=self.encryptor.blocks())
        self.tree_ch.send(self.name, "start", msg)
        self.encryptor.send(self.tree_ch.sub("gradients"), self.name)

    def request(self, level: int, nodes: Sequence[LevelNode], frontier: Sequence[LevelNode]) -> None:
        """Ask for the histograms of one child of each split of the last level (the smaller one).

        The sibling's sums are then ``parent - child``, computed here in plaintext: hosts build,
        pack and send half the histograms, and the guest decrypts half as many ciphertexts.
        """
        self.level_ch = self.tree_ch.sub(level)
        rows = {n.node_id: n.rows for n in frontier}
        wanted = {n.node_id for n in nodes}
        build: set[int] = set()
        self.derive: dict[int, tuple[int, int]] = {}  # node id -> (parent id, built sibling id)
        if level == 0 and wanted:
            build.add(0)
        for parent in sorted({(nid - 1) // 2 for nid in wanted if nid > 0}):
            left, right = 2 * parent + 1, 2 * parent + 2
            small = left if len(rows[left]) <= len(rows[right]) else right
            other = right if small == left else left
            build.add(small)
            if other in wanted:
                self.derive[other] = (parent, small)
        ids = sorted(wanted | build)
        node_of = np.full(len(self.ctx.sample), -1, dtype=np.int32)
        for k, nid in enumerate(ids):
            node_of[rows[nid]] = k
        self.built = [nid for nid in ids if nid in build]
        msg = LevelRequest(
            node_ids=np.array(ids, dtype=np.int64),
            node_of=node_of,
            build=np.array([nid in build for nid in ids], dtype=bool),
        )
        self.level_ch.send(self.name, "nodes", msg)

    def best(self, level: int, nodes: Sequence[LevelNode]) -> list[BestSplit | None]:
        msg = expect(self.level_ch.recv(self.name, "hist"), Histograms, self.name)
        if not isinstance(msg.split_ids, bytes) or not isinstance(msg.nodes, list):
            raise ProtocolViolation(f"{self.name} sent malformed histograms")
        if level == 0:
            n_cand, rem = divmod(len(msg.split_ids), SPLIT_ID_BYTES)
            if rem or n_cand > MAX_CANDIDATES:
                raise ProtocolViolation(f"{self.name} sent a malformed list of split ids")
            self.n_candidates, self.split_ids = n_cand, msg.split_ids
        elif msg.split_ids:
            raise ProtocolViolation(f"{self.name} sent split ids after the first level")
        if [getattr(e, "node_id", None) for e in msg.nodes] != self.built:
            raise ProtocolViolation(f"{self.name} sent histograms for other nodes than requested")
        n_cand = self.n_candidates
        if n_cand == 0:
            return [None] * len(nodes)
        groups = -(-n_cand // self.per)
        packed = [EncryptedVector.from_wire(self.key.public_key, e.packed) for e in msg.nodes]
        if any(len(p) != groups for p in packed):
            raise ProtocolViolation(
                f"{self.name} sent {[len(p) for p in packed]} ciphertexts per node, expected {groups}"
            )
        try:
            plain = self.key.decrypt_ints(EncryptedVector.concat(packed))
        except OverflowError as exc:
            raise ProtocolViolation(f"{self.name} sent a histogram that does not decrypt to gradient sums") from exc
        padded = unpack(plain, self.ctx.layout, self.per).reshape(len(packed), groups * self.per, -1)
        if padded[:, n_cand:].any():
            raise ProtocolViolation(f"{self.name} sent a histogram whose padding slots are not zero")
        sums = padded[:, :n_cand]
        current = {nid: sums[k] for k, nid in enumerate(self.built)}
        for nid, (parent, sibling) in self.derive.items():
            current[nid] = self.sums[parent] - current[sibling]
        self.sums = current
        return [best_split(current[node.node_id], node.total, self.config) for node in nodes]

    def _split_id(self, best: BestSplit) -> bytes:
        return self.split_ids[best.index * SPLIT_ID_BYTES : (best.index + 1) * SPLIT_ID_BYTES]

    def ask_route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> None:
        msg = SplitRequest(node_ids=[n.node_id for n, _ in won], split_ids=[self._split_id(b) for _, b in won])
        self.level_ch.send(self.name, "split", msg)

    def route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> list[Routing]:
        msg = expect(self.level_ch.recv(self.name, "routes"), Routes, self.name)
        if not isinstance(msg.in_node, list) or not isinstance(msg.outside, list):
            raise ProtocolViolation(f"{self.name} sent malformed routes")
        if len(msg.in_node) != len(won) or len(msg.outside) != len(won):
            raise ProtocolViolation(f"{self.name} sent routes for {len(msg.in_node)} splits, expected {len(won)}")
        n_out = len(self.ctx.outside)
        return [
            Routing(
                in_node=unpack_bits(a, len(node.rows), f"{self.name}'s routes"),
                outside=unpack_bits(b, n_out, f"{self.name}'s routes"),
            )
            for (node, _), a, b in zip(won, msg.in_node, msg.outside, strict=True)
        ]

    def describe(self, node: LevelNode, best: BestSplit) -> Node:
        return Node(party=self.name, split=self._split_id(best).hex())

    def stop(self, tree: int) -> None:
        msg = TreeStart(stop=True, rows=np.empty(0, dtype=np.int64), slot_bits=[], blocks=0)
        self.ch.sub("tree").sub(tree).send(self.name, "start", msg)

    def finish(self, trees: Sequence[Tree]) -> None:
        keep = sorted({bytes.fromhex(sid) for t in trees for party, sid in t.remote_splits if party == self.name})
        self.ch.sub("finish").send(self.name, "finish", Finish(keep=keep))


def _check_hosts(channel: Channel, hosts: Sequence[str]) -> tuple[str, ...]:
    names = tuple(hosts)
    if not names:
        raise ConfigError("SecureBoost needs at least one host")
    if len(set(names)) != len(names):
        raise ConfigError(f"hosts {list(names)} name a party twice")
    unknown = [h for h in names if h not in channel.peers]
    if unknown:
        raise ConfigError(f"{unknown} are not peers of {channel.party!r} (peers: {list(channel.peers)})")
    return names


class SecureBoostGuest:
    """The guest's estimator: holds the labels and some features, trains with the hosts, predicts with them.

    ``fit`` and each ``predict``/``predict_proba`` call need every host to run the matching
    :class:`~jointly.learn.vertical.secureboost.host.SecureBoostHost` method at the same time on
    the same aligned rows.  After ``fit``: ``model_`` (:class:`GuestModel`), ``history_`` (one dict
    per tree: train/validation loss, AUC for binary, seconds) and ``best_iteration_``.
    """

    def __init__(
        self,
        config: SecureBoostConfig,
        channel: Channel,
        *,
        hosts: Sequence[str],
        progress: Progress | None = None,
    ) -> None:
        if not isinstance(config, SecureBoostConfig):
            raise ConfigError("config must be a SecureBoostConfig")
        self.config = config
        self.channel = channel
        self.hosts = _check_hosts(channel, hosts)
        self.progress: Progress = progress or NullProgress()
        self._fits = 0
        self._predicts = 0

    def fit(self, X: object, y: object) -> SecureBoostGuest:
        """Train with the hosts; ``X`` are the guest's features of the aligned rows, ``y`` their labels."""
        cfg = self.config
        matrix, names = as_matrix(X, source="guest features")
        labels = check_labels(y, cfg, matrix.shape[0])
        n = matrix.shape[0]
        if n < 4:
            raise DataError("guest features", f"SecureBoost needs at least 4 rows, got {n}")
        train, val = validation_split(cfg, n)
        objective = fit_objective(cfg, labels[train])
        binned = BinnedMatrix.fit(matrix, names, cfg.max_bins)
        del matrix  # training needs the bin codes only
        public, private = generate_paillier_keypair(cfg.key_bits, allow_unsafe_key_size=cfg.allow_unsafe_key_size)
        ch = self.channel.sub("secureboost").sub("train").sub(self._fits)
        self._fits += 1
        setup = Setup(version=VERSION, config=cfg.fingerprint(), public_key=public.to_wire(), n_rows=n)
        ch.sub("setup").broadcast("setup", setup, to=self.hosts)
        encryptor = _Encryptor(private, len(self.hosts))
        sources: list[SplitSource] = [LocalSplitter(self.channel.party, binned, cfg)]
        sources += [RemoteHost(ch, h, cfg, private, encryptor) for h in self.hosts]
        result = boost(
            cfg,
            objective,
            labels,
            sources,
            n_rows=n,
            train_rows=train,
            validation_rows=val,
            progress=self.progress,
            encrypt_hook=encryptor,
        )
        self.model_ = GuestModel(
            task=cfg.task,
            n_classes=cfg.n_classes,
            objective_params=objective.params(),
            base_score=tuple(float(v) for v in result.base_score),
            feature_names=tuple(names),
            hosts=self.hosts,
            trees=tuple(result.trees),
        )
        self.history_ = result.history
        self.best_iteration_ = result.best_iteration
        return self

    def predict_scores(self, X: object) -> FloatArray:
        """P(y=1) (binary), class probabilities (multiclass) or values (regression); federated.

        Every host must run :meth:`SecureBoostHost.serve_predict` on its features of the same rows.
        """
        if not hasattr(self, "model_"):
            raise ConfigError("fit the estimator (or load a model) before predicting")
        ch = self.channel.sub("secureboost").sub("predict").sub(self._predicts)
        self._predicts += 1
        return predict_guest(ch, self.model_, X, self.hosts)

    def predict_proba(self, X: object) -> FloatArray:
        """Class probabilities ``(rows, n_classes)``; federated (hosts run ``serve_predict``)."""
        if self.config.task == "regression":
            raise ConfigError("predict_proba is for classification; use predict for regression")
        out = self.predict_scores(X)
        return np.column_stack([1.0 - out, out]) if self.config.task == "binary" else out

    def predict(self, X: object) -> NDArray[np.float64] | NDArray[np.int64]:
        """Class labels (classification) or values (regression); federated (hosts run ``serve_predict``)."""
        return labels_of(self.config.task, self.predict_scores(X))

    def to_dict(self) -> dict[str, object]:
        """The guest's stored part (JSON-safe): the configuration and the :class:`GuestModel`."""
        if not hasattr(self, "model_"):
            raise ConfigError("fit the estimator before storing it")
        return {
            "format": GUEST_PART,
            "version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "model": self.model_.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object, channel: Channel, *, progress: Progress | None = None) -> SecureBoostGuest:
        """A guest estimator for federated prediction from a stored part (see :meth:`to_dict`)."""
        config, model = load_part(data, GUEST_PART, SecureBoostConfig)
        est = cls(config, channel, hosts=GuestModel.from_dict(model).hosts, progress=progress)
        est.model_ = GuestModel.from_dict(model)
        est.history_ = []
        est.best_iteration_ = len(est.model_.trees) - 1
        return est
