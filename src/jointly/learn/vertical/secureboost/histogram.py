"""Histograms of gradient sums per feature and bin: plaintext (guest, reference) and encrypted (host).

Both builders produce, for every node, the *cumulative* sums of the candidate splits in tie-break
order (:meth:`BinnedMatrix.candidates`): the sums of ``q`` over the node's rows with
``bin <= b`` for every candidate ``(feature, b)``.  Those are the left-child sums the gain needs.

:class:`LocalSplitter` is the plaintext split source of :mod:`.booster` (exact int64 sums).
:class:`EncryptedHistograms` is the host's side: one ``segment_sum`` per level over all features
of all the nodes it builds, then the cumulative sums (the host packs and re-randomises them, see
:mod:`.host`).  The subtraction trick -- a node's histogram is its parent's minus its sibling's --
is applied by the guest to the decrypted sums, so a host builds and sends the histogram of only
one child of each split (see :mod:`.guest`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from jointly.crypto.paillier import EncryptedVector
from jointly.learn.vertical.secureboost.binning import BinnedMatrix
from jointly.learn.vertical.secureboost.booster import LevelNode, Routing, TreeContext
from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.sampling import column_sample
from jointly.learn.vertical.secureboost.split import BestSplit, best_split
from jointly.learn.vertical.secureboost.tree import Node, Tree

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_FLOAT_EXACT = 1 << 53


def node_index(nodes: Sequence[LevelNode], n_rows: int) -> IntArray:
    """For every sample position, the index (in ``nodes``) of the node holding it, or -1."""
    slot = np.full(n_rows, -1, dtype=np.int64)
    for k, node in enumerate(nodes):
        slot[node.rows] = k
    return slot


def level_sums(seg: IntArray, values: IntArray, n_segments: int) -> IntArray:
    """Exact int64 sums of the rows of ``values`` per segment id (``seg[i]`` for row ``i``)."""
    out = np.zeros((n_segments, values.shape[1]), dtype=np.int64)
    if seg.size == 0:
        return out
    bound = int(np.abs(values).max(initial=0)) * int(seg.size)
    for j in range(values.shape[1]):
        if bound < _FLOAT_EXACT:  # every partial sum is an integer below 2**53: float64 is exact
            out[:, j] = np.rint(np.bincount(seg, weights=values[:, j], minlength=n_segments)).astype(np.int64)
        else:
            np.add.at(out[:, j], seg, values[:, j])
    return out


class LocalSplitter:
    """A plaintext split source over one party's binned features (the guest's own, or a reference block)."""

    def __init__(self, name: str, binned: BinnedMatrix, config: SecureBoostConfig, *, column_offset: int = 0) -> None:
        self.name = name
        self.column_offset = column_offset  # added to feature numbers in split descriptions
        self.binned = binned
        self.config = config
        self._width = int(max((f.n_value_bins + 1 for f in binned.features), default=1))

    def start_tree(self, ctx: TreeContext) -> None:
        self.ctx = ctx
        self.selected = column_sample(self.config, ctx.index, self.name, self.binned.n_features)
        self.codes = self.binned.codes[ctx.sample][:, self.selected]  # uint16 bins
        self.cand_feature, self.cand_bin = self.binned.candidates(self.selected)
        position = np.full(self.binned.n_features, -1, dtype=np.int64)
        position[self.selected] = np.arange(len(self.selected))
        self.cand_pos = position[self.cand_feature]

    def request(self, level: int, nodes: Sequence[LevelNode], frontier: Sequence[LevelNode]) -> None:
        return None

    def best(self, level: int, nodes: Sequence[LevelNode]) -> list[BestSplit | None]:
        if not nodes or len(self.cand_feature) == 0:
            return [None] * len(nodes)
        slot = node_index(nodes, len(self.ctx.sample))
        rows = np.flatnonzero(slot >= 0)
        n_sel, width = len(self.selected), self._width
        base = slot[rows] * width
        values = self.ctx.q[rows]
        hist = np.empty((len(nodes), n_sel, width, values.shape[1]), dtype=np.int64)
        for j in range(n_sel):  # feature by feature: no (rows x features) temporaries
            seg = base + self.codes[rows, j]
            hist[:, j] = level_sums(seg, values, len(nodes) * width).reshape(len(nodes), width, -1)
        cum = np.cumsum(hist, axis=2)
        left = cum[:, self.cand_pos, self.cand_bin, :]
        return [best_split(left[k], node.total, self.config) for k, node in enumerate(nodes)]

    def ask_route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> None:
        return None

    def route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> list[Routing]:
        out = []
        for node, b in won:
            f, bin_ = int(self.cand_feature[b.index]), int(self.cand_bin[b.index])
            in_node = self.codes[node.rows, int(self.cand_pos[b.index])] <= bin_
            outside = self.binned.goes_left(f, bin_, self.ctx.outside)
            out.append(Routing(in_node=in_node, outside=outside))
        return out

    def describe(self, node: LevelNode, best: BestSplit) -> Node:
        f, bin_ = int(self.cand_feature[best.index]), int(self.cand_bin[best.index])
        return Node(feature=f + self.column_offset, threshold=self.binned.features[f].threshold(bin_))

    def stop(self, tree: int) -> None:
        return None

    def finish(self, trees: Sequence[Tree]) -> None:
        return None


class EncryptedHistograms:
    """The host's histogram builder for one tree (see the module docstring).

    Segment ids of a node's histogram: ``offset[f] + bin`` with ``offset`` the running sum of
    :attr:`BinnedMatrix.segments_per_feature` over the tree's selected features.
    """

    def __init__(self, binned: BinnedMatrix, selected: IntArray, sample: IntArray, gradients: EncryptedVector) -> None:
        self.binned = binned
        self.selected = selected
        self.gradients = gradients
        segs = binned.segments_per_feature[selected]
        self.offsets = np.concatenate([[0], np.cumsum(segs)[:-1]]).astype(np.int64)
        self.n_segments = int(segs.sum())
        # segment of every (tree row, selected feature); int32 halves the largest array a host keeps per tree
        self.codes = (binned.codes[sample][:, selected].astype(np.int64) + self.offsets[None, :]).astype(np.int32)
        self.cand_feature, self.cand_bin = binned.candidates(selected)
        self.zero = gradients[:1] * 0  # the ciphertext 1: a trivial encryption of 0

    @property
    def n_candidates(self) -> int:
        return len(self.cand_feature)

    def build(self, members: Sequence[IntArray]) -> list[EncryptedVector]:
        """Histograms (``n_segments`` ciphertexts each, not cumulative) of nodes with rows ``members[k]``.

        One ``segment_sum`` over all features of all nodes: row ``i`` of node ``k`` adds its
        ciphertext (sent to the workers once, not once per feature) to segment
        ``k * n_segments + offset[f] + bin`` for every feature ``f``.  An empty bin is the
        trivial encryption of 0, cheaper than a fresh one: every ciphertext that leaves the
        host is re-randomised after packing.
        """
        if not members:
            return []
        rows = np.concatenate(list(members))
        n_out = len(members) * self.n_segments
        dtype = np.int32 if n_out < 2**31 else np.int64
        starts = (np.arange(len(members), dtype=np.int64) * self.n_segments).astype(dtype)
        seg = self.codes[rows].astype(dtype, copy=False)
        seg += np.repeat(starts, [len(m) for m in members])[:, None]
        summed = self.gradients.take(rows).segment_sum(seg, n_out, fresh_empty=False)
        return [summed[k * self.n_segments : (k + 1) * self.n_segments] for k in range(len(members))]

    def candidates(self, hists: Sequence[EncryptedVector]) -> EncryptedVector:
        """Cumulative candidate sums of every node, node after node (``n_candidates`` each, tie-break order).

        Step ``b`` adds bin ``b`` to the running sums of every feature that has a candidate ``b``,
        for all nodes at once, so the loop runs once per bin, not per feature or node.
        """
        level = EncryptedVector.concat(list(hists))
        n_nodes, n = len(hists), self.n_candidates
        counts = np.array([self.binned.features[f].n_candidates for f in self.selected.tolist()], dtype=np.int64)
        cstart = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        nodes = np.arange(n_nodes, dtype=np.int64)[:, None]
        columns: list[EncryptedVector] = []
        targets: list[IntArray] = []
        prev = np.empty(0, dtype=np.int64)
        running: EncryptedVector | None = None
        for b in range(int(counts.max(initial=0))):
            act = np.flatnonzero(counts > b)
            add = level.take((nodes * self.n_segments + (self.offsets[act] + b)[None, :]).reshape(-1))
            if running is None:
                running = add
            else:
                keep = np.searchsorted(prev, act)
                running = running.take((nodes * len(prev) + keep[None, :]).reshape(-1)) + add
            columns.append(running)
            targets.append((nodes * n + (cstart[act] + b)[None, :]).reshape(-1))
            prev = act
        if not columns:
            raise ValueError("no candidate splits")
        order = np.argsort(np.concatenate(targets), kind="stable")
        return EncryptedVector.concat(columns).take(order)
