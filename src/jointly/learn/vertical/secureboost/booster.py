"""The boosting loop of the guest, written against split *sources* so that one loop serves two trainers.

A :class:`SplitSource` searches the best split of a block of features for the nodes of one
level and routes rows through the splits it wins.  The federated guest uses a plaintext source
for its own features and one remote source per host (:mod:`.guest`); the plaintext reference
(:mod:`.reference`) uses plaintext sources only.  Everything else -- gradients, their
fixed-point quantization, node bookkeeping, the choice among sources, leaf weights, subsampling,
validation and early stopping -- is this one loop, so the two trainers are the same algorithm
by construction.

Per tree: compute ``g, h`` on the tree's row sample and quantize them; then level by level
(at most ``max_depth`` levels): every source gets the nodes to split and every node of the level
(``request``; a source may use a node's sibling, see :mod:`.guest`), returns its
best candidate per node (``best``); a node splits on the best candidate over all sources (ties:
the earlier source) if its gain exceeds ``min_split_gain``; the winning source routes the node's
rows and every row outside the sample (``route``).  Nodes that cannot split become leaves with
weight ``-learning_rate * G / (H + l2)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.loss import Objective
from jointly.learn.vertical.secureboost.packing import SlotLayout, quantize
from jointly.learn.vertical.secureboost.sampling import row_sample, validation_split
from jointly.learn.vertical.secureboost.split import BestSplit, leaf_values, node_weight
from jointly.learn.vertical.secureboost.tree import Node, Tree, TreeBuilder
from jointly.progress import NullProgress, Progress

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

TASK_TREES = "secureboost: trees"


@dataclass(frozen=True)
class TreeContext:
    """What every source gets at the start of a tree."""

    index: int
    sample: IntArray  # global row indices the tree is grown on (sorted)
    outside: IntArray  # every other row (sorted): validation and unsampled rows
    q: IntArray  # (len(sample), 2K) quantized g and h
    layout: SlotLayout  # slot widths that hold any sum of q over the sample


@dataclass(frozen=True)
class LevelNode:
    """A node to split: heap id, its rows (positions in the sample, ascending) and its exact sums."""

    node_id: int
    rows: IntArray
    total: IntArray


@dataclass(frozen=True)
class Routing:
    """Where the rows of a node go under the winning split: ``True`` = left."""

    in_node: BoolArray  # over the node's rows, in their order
    outside: BoolArray  # over every row outside the sample, in ``TreeContext.outside`` order


class SplitSource(Protocol):
    """A block of features the booster can split on (see the module docstring)."""

    name: str

    def start_tree(self, ctx: TreeContext) -> None: ...
    def request(self, level: int, nodes: Sequence[LevelNode], frontier: Sequence[LevelNode]) -> None: ...
    def best(self, level: int, nodes: Sequence[LevelNode]) -> list[BestSplit | None]: ...
    def ask_route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> None: ...
    def route(self, level: int, won: Sequence[tuple[LevelNode, BestSplit]]) -> list[Routing]: ...
    def describe(self, node: LevelNode, best: BestSplit) -> Node: ...
    def stop(self, tree: int) -> None: ...
    def finish(self, trees: Sequence[Tree]) -> None: ...


@dataclass
class BoostResult:
    trees: list[Tree]
    history: list[dict[str, float]]
    best_iteration: int
    base_score: FloatArray
    train_rows: IntArray
    validation_rows: IntArray


def splittable(node: LevelNode, config: SecureBoostConfig) -> bool:
    return len(node.rows) >= 2 and node_weight(node.total, config.frac_bits) >= 2 * config.min_child_weight


def grow_tree(ctx: TreeContext, sources: Sequence[SplitSource], config: SecureBoostConfig) -> tuple[Tree, FloatArray]:
    """Grow one tree; returns it and, for every row of the data set, the leaf value it lands in (already shrunk)."""
    n_out = ctx.q.shape[1] // 2
    builder = TreeBuilder(n_outputs=n_out)
    pos_in = np.zeros(len(ctx.sample), dtype=np.int64)
    pos_out = np.zeros(len(ctx.outside), dtype=np.int64)
    frontier = [LevelNode(0, np.arange(len(ctx.sample), dtype=np.int64), ctx.q.sum(axis=0))]
    for level in range(config.max_depth):
        work = [n for n in frontier if splittable(n, config)]
        for n in frontier:
            if not splittable(n, config):
                builder.set_leaf(n.node_id, leaf_values(n.total, config))
        for src in sources:
            src.request(level, work, frontier)
        if not work:
            frontier = []
            break
        per_source = [src.best(level, work) for src in sources]
        winner: list[tuple[int, BestSplit] | None] = []
        for k in range(len(work)):
            choice: tuple[int, BestSplit] | None = None
            for s, found in enumerate(per_source):
                b = found[k]
                if b is not None and (choice is None or b.gain > choice[1].gain):
                    choice = (s, b)
            winner.append(choice if choice is not None and choice[1].gain > config.min_split_gain else None)
        won: list[list[tuple[LevelNode, BestSplit]]] = [[] for _ in sources]
        for node, choice in zip(work, winner, strict=True):
            if choice is not None:
                won[choice[0]].append((node, choice[1]))
        for src, items in zip(sources, won, strict=True):
            src.ask_route(level, items)
        frontier = []
        for s, (src, items) in enumerate(zip(sources, won, strict=True)):
            routes = src.route(level, items)
            for (node, b), r in zip(items, routes, strict=True):
                builder.set_split(node.node_id, sources[s].describe(node, b))
                left_id, right_id = 2 * node.node_id + 1, 2 * node.node_id + 2
                left_rows, right_rows = node.rows[r.in_node], node.rows[~r.in_node]
                pos_in[left_rows], pos_in[right_rows] = left_id, right_id
                at = np.flatnonzero(pos_out == node.node_id)
                pos_out[at] = np.where(r.outside[at], left_id, right_id)
                frontier.append(LevelNode(left_id, left_rows, b.left))
                frontier.append(LevelNode(right_id, right_rows, node.total - b.left))
        for node, choice in zip(work, winner, strict=True):
            if choice is None:
                builder.set_leaf(node.node_id, leaf_values(node.total, config))
        frontier.sort(key=lambda n: n.node_id)
    for n in frontier:
        builder.set_leaf(n.node_id, leaf_values(n.total, config))
    value = np.zeros((len(ctx.sample) + len(ctx.outside), n_out))
    rows_all = np.concatenate([ctx.sample, ctx.outside])
    pos_all = np.concatenate([pos_in, pos_out])
    for nid, leaf in builder.leaves.items():
        value[rows_all[pos_all == nid]] = leaf
    return builder.build(), value


def boost(
    config: SecureBoostConfig,
    objective: Objective,
    y: FloatArray,
    sources: Sequence[SplitSource],
    *,
    n_rows: int,
    train_rows: IntArray | None = None,
    validation_rows: IntArray | None = None,
    progress: Progress | None = None,
    encrypt_hook: Callable[[TreeContext], None] | None = None,
) -> BoostResult:
    """Train ``config.n_trees`` trees (fewer with early stopping) on labels ``y`` of all ``n_rows`` rows.

    ``encrypt_hook`` runs once per tree before any source sees it (the guest encrypts there).
    """
    progress = progress or NullProgress()
    if train_rows is None or validation_rows is None:
        train_rows, validation_rows = validation_split(config, n_rows)
    base = objective.base_score()
    raw = np.tile(base, (n_rows, 1))
    trees: list[Tree] = []
    history: list[dict[str, float]] = []
    best_loss, best_t = np.inf, -1
    all_rows = np.arange(n_rows, dtype=np.int64)
    for t in range(config.n_trees):
        started = time.perf_counter()
        sample = row_sample(config, t, train_rows)
        outside = np.setdiff1d(all_rows, sample, assume_unique=True)
        g, h = objective.grad_hess(y[sample], raw[sample])
        q = quantize(g, h, config.frac_bits)
        bounds = [objective.gradient_bounds(g)] * objective.n_outputs
        ctx = TreeContext(t, sample, outside, q, SlotLayout.for_bounds(len(sample), bounds, config.frac_bits))
        if encrypt_hook is not None:
            encrypt_hook(ctx)
        for src in sources:
            src.start_tree(ctx)
        tree, value = grow_tree(ctx, sources, config)
        raw += value
        trees.append(tree)
        record: dict[str, float] = {"tree": float(t)}
        record.update({f"train_{k}": v for k, v in objective.metrics(y[train_rows], raw[train_rows]).items()})
        if len(validation_rows):
            val = objective.metrics(y[validation_rows], raw[validation_rows])
            record.update({f"validation_{k}": v for k, v in val.items()})
            if val["loss"] < best_loss:
                best_loss, best_t = val["loss"], t
        else:
            best_t = t
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        progress.update(TASK_TREES, t + 1, config.n_trees)
        rounds = config.early_stopping_rounds
        if rounds is not None and t - best_t >= rounds:
            if t + 1 < config.n_trees:
                for src in sources:
                    src.stop(t + 1)
            break
    kept = trees[: best_t + 1] if config.early_stopping_rounds is not None else trees
    for src in sources:
        src.finish(kept)
    return BoostResult(
        trees=kept,
        history=history,
        best_iteration=len(kept) - 1,
        base_score=base,
        train_rows=train_rows,
        validation_rows=validation_rows,
    )
