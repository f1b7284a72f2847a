"""The host's side of SecureBoost training (see the package docstring for the protocol).

What a host receives: the guest's Paillier public key, the row count and config fingerprint,
per tree the encrypted packed gradients of the tree's rows (and which rows those are), per level
the node sample sets (and which nodes' histograms to send), the opaque ids of its winning
splits, and prediction requests.  It never sees a gradient, hessian, label, prediction, leaf
weight or gain, nor which other party won a split that is not its own.  It learns the partition
of the tree's rows into nodes (standard SecureBoost leakage), which rows are in each tree's
sample, and the slot widths (for regression, the power of two bounding each tree's largest
residual).

What it sends: packed, re-randomised encrypted cumulative histograms, and once per tree one
random 128-bit id per candidate split (never a feature name, bin edge or threshold; the
``id -> (feature, bin)`` table stays here); for its winning splits, the left/right bits of the
node's rows and of the rows outside the tree.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from jointly.channel import Channel
from jointly.crypto.paillier import EncryptedVector, PaillierPublicKey
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.vertical.memory import release_memory
from jointly.learn.vertical.secureboost.binning import BinnedMatrix, as_matrix
from jointly.learn.vertical.secureboost.booster import TASK_TREES
from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.histogram import EncryptedHistograms
from jointly.learn.vertical.secureboost.messages import (
    SPLIT_ID_BYTES,
    VERSION,
    Finish,
    Histograms,
    LevelRequest,
    NodeHistogram,
    Routes,
    Setup,
    SplitRequest,
    TreeStart,
    expect,
    int_array,
    pack_bits,
    split_id_list,
)
from jointly.learn.vertical.secureboost.model import FORMAT_VERSION, HOST_PART, HostModel, HostSplit, load_part
from jointly.learn.vertical.secureboost.packing import SlotLayout
from jointly.learn.vertical.secureboost.predict import predict_host
from jointly.learn.vertical.secureboost.sampling import column_sample
from jointly.progress import NullProgress, Progress

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class _Tree:
    """A host's state for one tree."""

    hist: EncryptedHistograms
    rows: IntArray  # aligned rows of the tree, sorted
    outside: IntArray  # every other row, sorted
    layout: SlotLayout
    per: int  # candidates per ciphertext
    table: dict[bytes, int]  # opaque split id -> candidate index
    tokens: bytes  # the ids, concatenated in candidate order


def _members(node_of: IntArray, k: int) -> list[IntArray]:
    """Sample positions of each of the ``k`` nodes, ascending."""
    order = np.argsort(node_of, kind="stable")
    counts = np.bincount(node_of[node_of >= 0], minlength=k)
    start = int(np.count_nonzero(node_of < 0))
    out = []
    for c in counts.tolist():
        out.append(order[start : start + c])
        start += c
    return out


class _HostTrainer:
    """One host's state for one training run."""

    def __init__(self, ch: Channel, binned: BinnedMatrix, config: SecureBoostConfig, guest: str) -> None:
        self.ch = ch
        self.binned = binned
        self.config = config
        self.guest = guest
        self.won: dict[bytes, tuple[int, int]] = {}  # split id -> (feature, bin) of every winning split

    def setup(self) -> PaillierPublicKey:
        msg = expect(self.ch.sub("setup").recv(self.guest, "setup"), Setup, self.guest)
        if msg.version != VERSION:
            raise ProtocolViolation(f"guest speaks SecureBoost version {msg.version!r}, this host {VERSION}")
        if msg.config != self.config.fingerprint():
            raise ConfigError("the guest's SecureBoost configuration differs from this host's")
        if msg.n_rows != self.binned.n_rows:
            raise DataError(
                "host features", f"the guest has {msg.n_rows!r} aligned rows, this host {self.binned.n_rows}"
            )
        key = PaillierPublicKey.from_wire(msg.public_key, allow_unsafe_key_size=self.config.allow_unsafe_key_size)
        if key.bits != self.config.key_bits:
            raise ProtocolViolation(
                f"the guest's key has {key.bits} bits, the configuration says {self.config.key_bits}"
            )
        return key

    def tree(self, t: int, key: PaillierPublicKey) -> bool:
        """Serve tree ``t``; False if the guest stopped training instead."""
        ch = self.ch.sub("tree").sub(t)
        start = expect(ch.recv(self.guest, "start"), TreeStart, self.guest)
        if start.stop is True:
            return False
        n = self.binned.n_rows
        rows = int_array(start.rows, "tree rows", high=n)
        if rows.size < 2 or np.any(np.diff(rows) <= 0):
            raise ProtocolViolation("tree rows must be at least two distinct sorted row indices")
        if not isinstance(start.slot_bits, list):
            raise ProtocolViolation("slot_bits must be a list")
        layout = SlotLayout(tuple(start.slot_bits))
        per = layout.per_plaintext(key.max_int)
        blocks = start.blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= len(rows):
            raise ProtocolViolation(f"the gradients of {len(rows)} rows cannot come in {blocks!r} blocks")
        grad_ch = ch.sub("gradients")
        parts = (grad_ch.recv(self.guest, str(i)) for i in range(blocks))
        grads = EncryptedVector.from_wire_blocks(key, parts, len(rows))  # one block held at a time
        outside = np.setdiff1d(np.arange(n, dtype=np.int64), rows, assume_unique=True)
        selected = column_sample(self.config, t, self.ch.party, self.binned.n_features)
        hist = EncryptedHistograms(self.binned, selected, rows, grads)
        tokens = secrets.token_bytes(SPLIT_ID_BYTES * hist.n_candidates)
        ids = [tokens[c * SPLIT_ID_BYTES : (c + 1) * SPLIT_ID_BYTES] for c in range(hist.n_candidates)]
        tree = _Tree(hist, rows, outside, layout, per, {sid: c for c, sid in enumerate(ids)}, tokens)
        for level in range(self.config.max_depth):
            if not self._level(ch.sub(level), level, tree):
                break
        return True

    def _level(self, ch: Channel, level: int, tree: _Tree) -> bool:
        req = expect(ch.recv(self.guest, "nodes"), LevelRequest, self.guest)
        first, stop = (1 << level) - 1, (1 << (level + 1)) - 1
        node_ids = int_array(req.node_ids, "node ids", low=first, high=stop)
        if node_ids.size == 0:
            return False
        if np.unique(node_ids).size != node_ids.size:
            raise ProtocolViolation("node ids repeat")
        node_of = int_array(req.node_of, "node assignment", length=len(tree.rows), low=-1, high=len(node_ids))
        build = req.build
        if not isinstance(build, np.ndarray) or build.dtype != bool or build.shape != node_ids.shape:
            raise ProtocolViolation("build must be one bool per node")
        members = _members(node_of, len(node_ids))
        if any(m.size == 0 for m in members):
            raise ProtocolViolation("a requested node has no rows")
        built = np.flatnonzero(build)
        packed = self._histograms(tree, [members[k] for k in built.tolist()])
        groups = len(packed) // max(len(built), 1)
        nodes = [
            NodeHistogram(node_id=int(node_ids[k]), packed=packed[i * groups : (i + 1) * groups].to_wire())
            for i, k in enumerate(built.tolist())
        ]
        ch.send(self.guest, "hist", Histograms(split_ids=tree.tokens if level == 0 else b"", nodes=nodes))
        req2 = expect(ch.recv(self.guest, "split"), SplitRequest, self.guest)
        ids = split_id_list(req2.split_ids, "split ids")
        if not isinstance(req2.node_ids, list) or len(req2.node_ids) != len(ids):
            raise ProtocolViolation("split request needs one node id per split id")
        position = {int(nid): k for k, nid in enumerate(node_ids.tolist())}
        in_node, out_bits, seen = [], [], set()
        for nid, sid in zip(req2.node_ids, ids, strict=True):
            c = tree.table.get(sid)
            k = position.get(nid) if isinstance(nid, int) else None
            if c is None or k is None or nid in seen:
                raise ProtocolViolation("split request names a node or split id this host did not offer")
            seen.add(nid)
            f, b = int(tree.hist.cand_feature[c]), int(tree.hist.cand_bin[c])
            in_node.append(pack_bits(self.binned.goes_left(f, b, tree.rows[members[k]])))
            out_bits.append(pack_bits(self.binned.goes_left(f, b, tree.outside)))
            self.won[sid] = (f, b)
        ch.send(self.guest, "routes", Routes(in_node=in_node, outside=out_bits))
        return True

    def _histograms(self, tree: _Tree, members: list[IntArray]) -> EncryptedVector:
        """Packed, re-randomised cumulative histograms of the nodes with rows ``members``, node after node."""
        hist, per = tree.hist, tree.per
        n_cand = hist.n_candidates
        if n_cand == 0 or not members:
            return hist.gradients[:0]
        cands = hist.candidates(hist.build(members))
        groups = -(-n_cand // per)
        # pad every node's candidates with zeros to a whole number of plaintexts
        padded = np.full((len(members), groups * per), len(cands), dtype=np.int64)
        padded[:, :n_cand] = np.arange(n_cand) + (np.arange(len(members)) * n_cand)[:, None]
        cands = EncryptedVector.concat([cands, hist.zero])
        return cands.take(padded.reshape(-1)).pack_slots(tree.layout.total_bits, per).rerandomize()

    def finish(self) -> HostModel:
        msg = expect(self.ch.sub("finish").recv(self.guest, "finish"), Finish, self.guest)
        keep = split_id_list(msg.keep, "kept split ids")
        splits: dict[str, HostSplit] = {}
        for sid in keep:
            if sid not in self.won:
                raise ProtocolViolation("the guest kept a split id that never won a split")
            f, b = self.won[sid]
            splits[sid.hex()] = HostSplit(self.binned.names[f], self.binned.features[f].threshold(b))
        return HostModel(feature_names=self.binned.names, splits=splits)


def train_host(
    channel: Channel, binned: BinnedMatrix, config: SecureBoostConfig, *, guest: str, progress: Progress
) -> HostModel:
    """Run the host's side of training over ``channel`` (already namespaced); returns its model part."""
    trainer = _HostTrainer(channel, binned, config, guest)
    key = trainer.setup()
    for t in range(config.n_trees):
        channel.check()
        if not trainer.tree(t, key):
            break
        release_memory(collect=False)  # the tree's gradients and histograms, before the next tree's arrive
        progress.update(TASK_TREES, t + 1, config.n_trees)
    return trainer.finish()


class SecureBoostHost:
    """A host's estimator: holds some features of the aligned rows, no labels.

    ``fit`` must run while the guest's :meth:`SecureBoostGuest.fit` runs; each ``serve_predict``
    answers one guest ``predict``/``predict_proba`` call (in the same order).  After ``fit``:
    ``model_`` (:class:`HostModel`), the only thing this host keeps.
    """

    def __init__(
        self, config: SecureBoostConfig, channel: Channel, *, guest: str, progress: Progress | None = None
    ) -> None:
        if not isinstance(config, SecureBoostConfig):
            raise ConfigError("config must be a SecureBoostConfig")
        if guest not in channel.peers:
            raise ConfigError(f"{guest!r} is not a peer of {channel.party!r} (peers: {list(channel.peers)})")
        self.config = config
        self.channel = channel
        self.guest = guest
        self.progress: Progress = progress or NullProgress()
        self._fits = 0
        self._predicts = 0

    def fit(self, X: object) -> SecureBoostHost:
        """Take part in training with this host's features ``X`` of the aligned rows."""
        matrix, names = as_matrix(X, source="host features")
        binned = BinnedMatrix.fit(matrix, names, self.config.max_bins)
        del matrix  # training needs the bin codes only
        ch = self.channel.sub("secureboost").sub("train").sub(self._fits)
        self._fits += 1
        self.model_ = train_host(ch, binned, self.config, guest=self.guest, progress=self.progress)
        return self

    def serve_predict(self, X: object) -> None:
        """Answer one federated prediction of the guest over this host's features ``X`` of the same rows."""
        if not hasattr(self, "model_"):
            raise ConfigError("fit the estimator (or load a model) before serving predictions")
        ch = self.channel.sub("secureboost").sub("predict").sub(self._predicts)
        self._predicts += 1
        predict_host(ch, self.model_, X, self.guest)

    def to_dict(self) -> dict[str, object]:
        """This host's stored part (JSON-safe): the configuration, the guest's name and the :class:`HostModel`."""
        if not hasattr(self, "model_"):
            raise ConfigError("fit the estimator before storing it")
        return {
            "format": HOST_PART,
            "version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "guest": self.guest,
            "model": self.model_.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object, channel: Channel, *, progress: Progress | None = None) -> SecureBoostHost:
        """A host estimator that serves federated predictions from a stored part (see :meth:`to_dict`)."""
        config, model = load_part(data, HOST_PART, SecureBoostConfig)
        guest = data.get("guest") if isinstance(data, dict) else None
        if not isinstance(guest, str):
            raise DataError("model", "a stored host part names its guest")
        est = cls(config, channel, guest=guest, progress=progress)
        est.model_ = HostModel.from_dict(model)
        return est
