"""Metrics against scikit-learn / scipy on random data (with ties) and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn import metrics as skm

from jointly.learn import metrics as m


def _binary_data(seed: int, n: int = 300, *, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.random(n) * 0.6 + 0.4 * y * rng.random(n)
    if ties:
        s = np.round(s, 1)  # about ten distinct values: many ties across classes
    return y, s


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_and_curve_match_sklearn(seed: int, ties: bool) -> None:
    y, s = _binary_data(seed, ties=ties)
    assert m.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = m.roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf


@pytest.mark.parametrize("ties", [False, True])
def test_ks_matches_scipy_two_sample(ties: bool) -> None:
    y, s = _binary_data(7, ties=ties)
    assert m.ks(y, s) == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)


def test_ks_hand_computed() -> None:
    # positives score 0.9, 0.8, 0.3; negatives 0.7, 0.2, 0.1
    # at threshold 0.8: TPR 2/3, FPR 0 -> gap 2/3; at 0.3: TPR 1, FPR 1/3 -> 2/3
    y = [1, 1, 0, 1, 0, 0]
    s = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    assert m.ks(y, s) == pytest.approx(2 / 3)
    assert m.roc_auc(y, s) == pytest.approx(8 / 9)


def test_accuracy_and_log_loss_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.clip(rng.random(200) * 0.5 + 0.5 * y * rng.random(200), 0.01, 0.99)
    assert m.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, (p > 0.5).astype(int)))
    assert m.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)


def test_log_loss_is_clipped() -> None:
    loss = m.log_loss([1, 0], [0.0, 1.0])
    assert math.isfinite(loss)
    assert loss == pytest.approx(-math.log(m.LOG_LOSS_EPS), rel=1e-4)


def test_precision_and_lift_at_top_hand_computed() -> None:
    # 20 rows, 5 positives (base rate 0.25). Top 10% = 2 rows: scores 0.95 (pos), 0.9 (neg) -> precision 1/2.
    # Top 5% = 1 row (ceil(1.0)) -> the positive: precision 1, lift 4.
    s = np.linspace(0.0, 0.95, 20)
    y = np.zeros(20, dtype=int)
    y[[19, 17, 16, 3, 0]] = 1
    assert m.precision_at_top(y, s, 0.05) == 1.0
    assert m.lift_at_top(y, s, 0.05) == pytest.approx(4.0)
    assert m.precision_at_top(y, s, 0.10) == pytest.approx(0.5)
    assert m.lift_at_top(y, s, 0.10) == pytest.approx(2.0)
    # top 25% = 5 rows: 0.95 P, 0.9 N, 0.85 P, 0.8 P, 0.75 N -> 3/5, lift 2.4
    assert m.lift_at_top(y, s, 0.25) == pytest.approx(2.4)


def test_top_k_ties_at_cutoff_count_by_expectation_and_ignore_row_order() -> None:
    # top 2 of 4 rows; one row above the cut, then a tie of 2 (one positive) for the last slot
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.1])
    assert m.precision_at_top(y, s, 0.5) == pytest.approx((1 + 0.5) / 2)
    perm = np.array([2, 0, 3, 1])
    assert m.precision_at_top(y[perm], s[perm], 0.5) == m.precision_at_top(y, s, 0.5)


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=100)
    p = y + rng.normal(scale=0.3, size=100)
    assert m.rmse(y, p) == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert m.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert m.r2(y, p) == pytest.approx(skm.r2_score(y, p))
    assert m.r2([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[y]
    logits = np.round(logits, 1)  # ties inside each class column
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert m.multiclass_accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p.argmax(axis=1)))
    assert m.macro_ovr_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m.multiclass_log_loss(y, p) == pytest.approx(skm.log_loss(y, p))


def test_evaluate_returns_the_standard_sets() -> None:
    y, s = _binary_data(2, ties=False)
    out = m.evaluate("binary", y, s)
    assert list(out) == [
        "auc", "ks", "accuracy", "log_loss", "precision_top5", "lift_top5", "precision_top10", "lift_top10",
    ]  # fmt: skip
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert all(isinstance(v, float) for v in out.values())
    assert set(m.evaluate("regression", [1.0, 2.0, 3.0], [1.0, 2.5, 2.0])) == {"rmse", "mae", "r2"}
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    assert set(m.evaluate("multiclass", [0, 1, 2, 1], probs)) == {"accuracy", "auc", "log_loss"}
    with pytest.raises(ValueError, match="unknown task"):
        m.evaluate("ranking", y, s)  # type: ignore[arg-type]


def test_compare_orients_gains() -> None:
    joint = {"auc": 0.9, "log_loss": 0.3, "rmse": 0.0, "only_joint": 1.0}
    base = {"auc": 0.8, "log_loss": 0.4, "rmse": 0.0}
    gains = m.compare(joint, base)
    assert set(gains) == {"auc", "log_loss", "rmse"}
    assert gains["auc"]["gain"] == pytest.approx(0.1)
    assert gains["auc"]["relative_gain"] == pytest.approx(0.125)
    assert gains["log_loss"]["gain"] == pytest.approx(0.1)  # lower loss is a positive gain
    assert math.isnan(gains["rmse"]["relative_gain"])


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0 or 1"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 1], [0.1, 0.2, 0.3], "rows"),
        ([0, 1], [0.1, float("nan")], "NaN"),
    ],
)
def test_bad_binary_inputs_raise(y: list[float], s: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        m.roc_auc(y, s)


def test_bad_top_fraction_raises() -> None:
    with pytest.raises(ValueError, match="fraction"):
        m.precision_at_top([0, 1], [0.1, 0.2], 0.0)
