"""Trees as the guest stores them: node structure, leaf weights, its own splits and references to host splits.

Trees are multi-output: every leaf holds one weight per output (one for binary and regression,
``n_classes`` for multiclass, XGBoost's ``multi_output_tree`` strategy), so a multiclass round costs
one tree and one encryption per row, not ``n_classes`` of them.

A split is either *local* (a feature of the tree's owner and a raw threshold: ``x <= threshold`` goes
left, missing values go right; threshold ``None`` means "not missing") or *remote* (a host's name and
an opaque split id; only that host knows the feature and threshold behind it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from jointly.errors import DataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Node:
    """One node: a leaf (``value``), a local split (``feature``/``threshold``) or a remote one (``party``/``split``)."""

    left: int = -1
    right: int = -1
    value: tuple[float, ...] = ()
    feature: int = -1
    threshold: float = float("inf")
    party: str = ""
    split: str = ""  # hex opaque id of a host split

    @property
    def is_leaf(self) -> bool:
        return self.left < 0

    @property
    def is_remote(self) -> bool:
        return bool(self.party)

    def to_dict(self) -> dict[str, object]:
        if self.is_leaf:
            return {"value": list(self.value)}
        base: dict[str, object] = {"left": self.left, "right": self.right}
        if self.is_remote:
            return {**base, "party": self.party, "split": self.split}
        thr = None if self.threshold == float("inf") else self.threshold
        return {**base, "feature": self.feature, "threshold": thr}

    @classmethod
    def from_dict(cls, data: object, n_outputs: int) -> Node:
        if not isinstance(data, dict):
            raise DataError("model", "a tree node must be a mapping")
        try:
            if "value" in data:
                value = tuple(float(v) for v in data["value"])
                if len(value) != n_outputs or not all(np.isfinite(value)):
                    raise DataError("model", f"a leaf needs {n_outputs} finite values")
                return cls(value=value)
            left, right = int(data["left"]), int(data["right"])
            if "party" in data:
                return cls(left=left, right=right, party=str(data["party"]), split=str(data["split"]))
            thr = data["threshold"]
            return cls(
                left=left,
                right=right,
                feature=int(data["feature"]),
                threshold=float("inf") if thr is None else float(thr),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError("model", f"malformed tree node: {exc}") from exc


@dataclass(frozen=True)
class Tree:
    """Nodes in breadth-first order; node 0 is the root and children come after their parent."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        n = len(self.nodes)
        if n == 0:
            raise DataError("model", "a tree needs at least one node")
        for i, node in enumerate(self.nodes):
            if not node.is_leaf and not (i < node.left < n and i < node.right < n and node.left != node.right):
                raise DataError("model", f"tree node {i} has invalid children")

    def to_dict(self) -> dict[str, object]:
        return {"nodes": [node.to_dict() for node in self.nodes]}

    @classmethod
    def from_dict(cls, data: object, n_outputs: int) -> Tree:
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise DataError("model", "a tree must be a mapping with a 'nodes' list")
        return cls(tuple(Node.from_dict(d, n_outputs) for d in data["nodes"]))

    @property
    def remote_splits(self) -> list[tuple[str, str]]:
        return [(n.party, n.split) for n in self.nodes if n.is_remote]

    @property
    def depth(self) -> int:
        depth = [0] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            if not node.is_leaf:
                depth[node.left] = depth[node.right] = depth[i] + 1
        return max(depth)

    def apply(self, features: FloatArray, remote: Mapping[tuple[str, str], BoolArray], out: FloatArray) -> None:
        """Add this tree's leaf values to ``out`` for every row of ``features`` (the local ones).

        ``remote[(party, split)]`` says, for every row, whether it goes left at that host split.
        """
        frontier: list[tuple[int, IntArray]] = [(0, np.arange(features.shape[0]))]
        while frontier:
            i, rows = frontier.pop()
            node = self.nodes[i]
            if node.is_leaf:
                out[rows] += np.asarray(node.value)
                continue
            if rows.size == 0:
                continue
            if node.is_remote:
                go_left = remote[(node.party, node.split)][rows]
            else:
                go_left = features[rows, node.feature] <= node.threshold  # NaN compares False: right
            frontier.append((node.left, rows[go_left]))
            frontier.append((node.right, rows[~go_left]))


@dataclass
class TreeBuilder:
    """A tree while it grows, with heap node ids (children of ``i`` are ``2i+1`` and ``2i+2``)."""

    n_outputs: int
    splits: dict[int, Node] = field(default_factory=dict)
    leaves: dict[int, tuple[float, ...]] = field(default_factory=dict)

    def set_split(self, node_id: int, split: Node) -> None:
        self.splits[node_id] = split

    def set_leaf(self, node_id: int, value: FloatArray) -> None:
        self.leaves[node_id] = tuple(float(v) for v in value)

    def build(self) -> Tree:
        """Renumber breadth-first into a :class:`Tree`."""
        order: list[int] = [0]
        index = {0: 0}
        k = 0
        while k < len(order):
            nid = order[k]
            if nid in self.splits:
                for child in (2 * nid + 1, 2 * nid + 2):
                    index[child] = len(order)
                    order.append(child)
            k += 1
        nodes: list[Node] = []
        for nid in order:
            if nid in self.splits:
                s = self.splits[nid]
                nodes.append(
                    Node(
                        left=index[2 * nid + 1],
                        right=index[2 * nid + 2],
                        feature=s.feature,
                        threshold=s.threshold,
                        party=s.party,
                        split=s.split,
                    )
                )
            else:
                nodes.append(Node(value=self.leaves[nid]))
        return Tree(tuple(nodes))
