"""The plaintext building blocks: binning, signed slot packing, gains, trees and model files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.errors import DataError, ProtocolViolation
from jointly.learn.vertical.secureboost.binning import BinnedMatrix, as_matrix, fit_feature
from jointly.learn.vertical.secureboost.model import GuestModel, HostModel, HostSplit
from jointly.learn.vertical.secureboost.packing import SlotLayout, pack_rows, quantize, unpack
from jointly.learn.vertical.secureboost.split import best_split, leaf_values, split_gains
from jointly.learn.vertical.secureboost.tree import Node, Tree

from ._helpers import config


def test_bins_agree_with_raw_thresholds_and_missing_goes_right() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=500), 2)
    x[rng.random(500) < 0.1] = np.nan
    fb = fit_feature(x, 16)
    assert fb.has_missing and len(fb.edges) <= 15 and np.all(np.diff(fb.edges) > 0)
    codes = fb.codes(x)
    assert np.all(codes[np.isnan(x)] == fb.n_value_bins)
    for b in range(fb.n_candidates):
        by_bin = codes <= b
        by_value = x <= fb.threshold(b)  # NaN compares False
        np.testing.assert_array_equal(by_bin, by_value)
    assert fb.threshold(fb.n_candidates - 1) == np.inf  # "not missing"
    few = fit_feature(np.array([3.0, 1.0, 2.0, 2.0]), 16)
    np.testing.assert_array_equal(few.edges, [1.0, 2.0])  # every distinct value but the largest
    assert fit_feature(np.array([np.nan, np.nan]), 8).n_candidates == 1


def test_candidates_are_numbered_feature_by_feature() -> None:
    X = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 3.0], [3.0, 1.0]])
    binned = BinnedMatrix.fit(X, ["a", "b"], 4)
    feats, bins = binned.candidates(np.array([0, 1]))
    assert feats.tolist() == [0, 0, 0, 1, 1]  # a: 3 edges; b: 1 edge + "not missing"
    assert bins.tolist() == [0, 1, 2, 0, 1]
    assert binned.segments_per_feature.tolist() == [4, 3]


def test_as_matrix_checks_input() -> None:
    with pytest.raises(DataError, match="2-d"):
        as_matrix(np.zeros(3))
    with pytest.raises(DataError, match="numeric"):
        as_matrix([["a", "b"]])


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 40),
    n_out=st.integers(1, 4),
    frac=st.integers(8, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_signed_slots_sum_and_unpack_exactly(n_rows: int, n_out: int, frac: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = rng.uniform(-1, 1, (n_rows, n_out))
    h = rng.uniform(0, 0.25, (n_rows, n_out))
    layout = SlotLayout.for_bounds(n_rows, [(1.0, 0.25)] * n_out, frac)
    q = quantize(g, h, frac)
    packed = pack_rows(q, layout)
    # every subset sum of packed rows is the packing of the slot sums; several bins per plaintext
    subsets = [rng.random(n_rows) < 0.5 for _ in range(5)]
    sums = [int(packed[s].sum()) if s.any() else 0 for s in subsets]
    per = 5
    big = sum(v << (i * layout.total_bits) for i, v in enumerate(sums))
    got = unpack([big], layout, per)
    want = np.array([q[s].sum(axis=0) for s in subsets])
    np.testing.assert_array_equal(got, want)
    worst = np.abs(np.vstack([q, -q])).sum(axis=0) // 2 + 1
    assert np.all(worst < layout.limits())


def test_unpack_rejects_a_value_that_is_no_packing() -> None:
    layout = SlotLayout((8, 8))
    assert unpack([-3 + (5 << 8), 7 - (2 << 8)], layout, 1).tolist() == [[-3, 5], [7, -2]]
    with pytest.raises(ProtocolViolation, match="does not decode"):
        unpack([1 << 17], layout, 1)
    with pytest.raises(ProtocolViolation):
        SlotLayout((8, 80))


def test_gains_match_the_xgboost_formula() -> None:
    cfg = config(l2=0.5, min_child_weight=0.3)
    rng = np.random.default_rng(1)
    g = rng.normal(size=30)
    h = rng.uniform(0.05, 0.25, size=30)
    q = quantize(g[:, None], h[:, None], cfg.frac_bits)
    order = np.argsort(rng.random(30))
    left = np.cumsum(q[order], axis=0)[:-1]
    total = q.sum(axis=0)
    gains = split_gains(left, total, cfg)
    s = 2.0**cfg.frac_bits
    for i in range(len(left)):
        gl, hl = left[i] / s
        gr, hr = (total - left[i]) / s
        gt, ht = total / s
        want = 0.5 * (gl**2 / (hl + 0.5) + gr**2 / (hr + 0.5) - gt**2 / (ht + 0.5))
        if hl < 0.3 or hr < 0.3:
            assert gains[i] == -np.inf
        else:
            assert gains[i] == pytest.approx(want, rel=1e-12)
    best = best_split(left, total, cfg)
    assert best is not None and best.gain == np.max(gains) and best.index == int(np.argmax(gains))
    tie = np.vstack([left[best.index], left[best.index]])
    assert best_split(tie, total, cfg).index == 0  # type: ignore[union-attr]  # ties: the first candidate
    gt, ht = total / s
    assert leaf_values(total, cfg)[0] == pytest.approx(-cfg.learning_rate * gt / (ht + 0.5))


def test_tree_and_model_dicts_round_trip_and_are_checked() -> None:
    tree = Tree(
        (
            Node(left=1, right=2, feature=0, threshold=0.5),
            Node(left=3, right=4, party="host", split="ab" * 16),
            Node(value=(0.1,)),
            Node(value=(0.2,)),
            Node(left=5, right=6, feature=0, threshold=float("inf")),
            Node(value=(0.3,)),
            Node(value=(0.4,)),
        )
    )
    model = GuestModel("binary", 2, {"prior": 0.5}, (0.0,), ("a",), ("host",), (tree,))
    assert GuestModel.from_dict(model.to_dict()).to_dict() == model.to_dict()
    assert model.to_dict()["trees"][0]["nodes"][4]["threshold"] is None  # type: ignore[index]
    assert tree.depth == 3 and model.remote_splits() == {"host": ["ab" * 16]}
    X = np.array([[0.0], [1.0], [np.nan], [2.0]])
    raw = model.raw_scores(X, {("host", "ab" * 16): np.array([True, False, True, False])})
    np.testing.assert_allclose(raw[:, 0], [0.2, 0.1, 0.1, 0.1])
    with pytest.raises(DataError, match="unknown host"):
        GuestModel("binary", 2, {"prior": 0.5}, (0.0,), ("a",), (), (tree,))
    with pytest.raises(DataError, match="invalid children"):
        Tree((Node(left=0, right=1, feature=0), Node(value=(0.0,))))
    bad = model.to_dict()
    bad["version"] = 99
    with pytest.raises(DataError, match="version"):
        GuestModel.from_dict(bad)
    host = HostModel(("x", "y"), {"ab" * 16: HostSplit("y", float("inf")), "cd" * 16: HostSplit("x", 1.5)})
    assert HostModel.from_dict(host.to_dict()) == host
    masks = host.left_masks(np.array([[1.0, np.nan], [2.0, 0.0]]), ["ab" * 16, "cd" * 16])
    assert [m.tolist() for m in masks] == [[False, True], [True, False]]
    with pytest.raises(DataError, match="unknown feature"):
        HostModel(("x",), {"ab" * 16: HostSplit("z", 0.0)})
