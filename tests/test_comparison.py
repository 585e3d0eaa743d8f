"""Comparison of two scores and two models, checked against scipy, scikit-learn and hand counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from score_data import two_scores
from sklearn import metrics as skm

from treeprune import comparison as tc
from treeprune import metrics
from treeprune.errors import DataError
from treeprune.objectives import Objective


@pytest.fixture(scope="module")
def data():
    return two_scores()


# ------------------------------------------------------------------------------- compare_scores
def test_compare_identical_scores(data):
    y, p, _, _, _ = data
    c = tc.compare_scores(p, p.copy(), y)
    assert c.correlations == pytest.approx({"pearson": 1.0, "spearman": 1.0, "kendall": 1.0})
    assert all(v == 0.0 for v in c.abs_diff.values())
    assert c.psi.value == 0.0
    assert (c.metrics["delta"] == 0).all()
    for sw in c.swap_sets:
        assert sw.agreement == 1.0 and sw.swap_in == 0 and sw.swap_out == 0


def test_compare_scores_against_references(data):
    y, p, p_b, _, _ = data
    c = tc.compare_scores(p, p_b, y)
    assert c.n_rows == len(y) and c.task == "binary"
    assert c.correlations["pearson"] == pytest.approx(stats.pearsonr(p, p_b)[0])
    assert c.correlations["spearman"] == pytest.approx(stats.spearmanr(p, p_b)[0])
    assert c.correlations["kendall"] == pytest.approx(stats.kendalltau(p, p_b)[0])
    d = np.abs(p - p_b)
    assert c.abs_diff["max"] == d.max()
    assert c.abs_diff["p99"] == pytest.approx(np.quantile(d, 0.99))
    assert list(c.abs_diff) == ["p50", "p90", "p99", "p99.9", "max"]
    assert c.psi.value == pytest.approx(metrics.psi(p, p_b).value)
    m = c.metrics
    assert set(m.index) == {"auc", "gini", "ks", "log_loss", "brier"}
    assert m.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m.loc["auc", "b"] == pytest.approx(skm.roc_auc_score(y, p_b))
    assert m.loc["brier", "b"] == pytest.approx(skm.brier_score_loss(y, p_b))
    np.testing.assert_allclose(m["delta"], m["b"] - m["a"])


def test_swap_sets_default_same_approval_rate(data):
    y, p, p_b, _, _ = data
    c = tc.compare_scores(p, p_b, y)
    assert [sw.target_approval_rate for sw in c.swap_sets] == [0.5, 0.7, 0.9]
    for sw in c.swap_sets:
        counts = sw.counts.to_numpy()
        assert counts.sum() == len(y)
        # no ties in continuous scores: both approve exactly the target share
        assert sw.approval_rate_a == pytest.approx(sw.target_approval_rate)
        assert sw.approval_rate_b == pytest.approx(sw.target_approval_rate)
        assert sw.swap_in == sw.swap_out  # same volume approved
        assert sw.agreement == pytest.approx(np.trace(counts) / len(y))
        # decline iff score >= cutoff
        assert counts[0].sum() == np.count_nonzero(p < sw.cutoff_a)
        assert counts[:, 0].sum() == np.count_nonzero(p_b < sw.cutoff_b)
        # bad rate of the cell approved by both
        both = (p < sw.cutoff_a) & (p_b < sw.cutoff_b)
        assert sw.outcome.iloc[0, 0] == pytest.approx(y[both].mean())


def test_swap_sets_explicit_cutoffs_and_points_direction(data):
    y, p, p_b, _, _ = data
    c = tc.compare_scores(p, p_b, y, cutoffs=[0.3, 0.6])
    assert [(sw.cutoff_a, sw.cutoff_b) for sw in c.swap_sets] == [(0.3, 0.3), (0.6, 0.6)]
    assert c.swap_sets[0].target_approval_rate is None
    assert c.swap_sets[0].counts.loc["A decline"].sum() == np.count_nonzero(p >= 0.3)
    # points: higher is safer, decline when points < cutoff
    pts_a, pts_b = 600 - 100 * p, 600 - 100 * p_b
    cp = tc.compare_scores(pts_a, pts_b, y, cutoffs=550.0, higher_is_riskier=False)
    assert cp.swap_sets[0].counts.loc["A decline"].sum() == np.count_nonzero(pts_a < 550.0)
    assert cp.metrics.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, p))
    assert "log_loss" not in cp.metrics.index
    default = tc.compare_scores(pts_a, pts_b, y, higher_is_riskier=False)
    for sw in default.swap_sets:
        assert sw.approval_rate_a == pytest.approx(sw.target_approval_rate)
        # same applicants as the PD-based cut
    pd_based = tc.compare_scores(p, p_b, y)
    for s1, s2 in zip(default.swap_sets, pd_based.swap_sets, strict=True):
        np.testing.assert_array_equal(s1.counts.to_numpy(), s2.counts.to_numpy())


def test_compare_without_y_and_margins(data):
    _, p, p_b, margin, _ = data
    c = tc.compare_scores(p, p_b)
    assert c.metrics is None and c.task is None
    assert all(sw.outcome is None for sw in c.swap_sets)
    y = data[0]
    cm = tc.compare_scores(margin, margin + 0.01, y)
    assert "log_loss" not in cm.metrics.index  # margins are not probabilities


def test_compare_regression_task():
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    a = y + rng.normal(scale=0.5, size=400)
    b = a + rng.normal(scale=0.01, size=400)
    c = tc.compare_scores(a, b, y, task="regression")
    assert set(c.metrics.index) == {"rmse", "mae", "r2"}
    assert c.metrics.loc["r2", "a"] == pytest.approx(skm.r2_score(y, a))
    assert c.swap_sets[0].outcome is not None
    assert "mean y" in str(c)


def test_comparison_outputs(data):
    y, p, p_b, _, _ = data
    c = tc.compare_scores(p, p_b, y)
    d = c.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["swap_sets"][0]["counts"]["A approve"]["B approve"] > 0
    frame = c.to_frame()
    assert list(frame.columns) == ["section", "statistic", "value"]
    assert {"correlation", "abs_diff", "psi", "metric"} <= set(frame["section"])
    assert "swap @ approval 70%" in set(frame["section"])
    s = str(c)
    assert "PSI (A -> B)" in s and "Swap set at approval 90%" in s and "B decline" in s
    assert "auc" in s


def test_compare_scores_validation(data):
    y, p, p_b, _, _ = data
    with pytest.raises(DataError, match="score_b has 10 rows but score_a has"):
        tc.compare_scores(p, p_b[:10])
    with pytest.raises(DataError, match="NaN"):
        tc.compare_scores(np.where(np.arange(len(p)) == 5, np.nan, p), p_b)
    with pytest.raises(DataError, match="only 0"):
        tc.compare_scores(p, p_b, y + 1)
    with pytest.raises(DataError, match="single class"):
        tc.compare_scores(p, p_b, np.zeros_like(y))
    with pytest.raises(DataError, match="approval rates"):
        tc.compare_scores(p, p_b, approval_rates=[1.5])
    with pytest.raises(DataError, match="finite"):
        tc.compare_scores(p, p_b, cutoffs=[np.inf])


def test_constant_scores_have_nan_correlations():
    c = tc.compare_scores(np.ones(10), np.ones(10))
    assert all(math.isnan(v) for v in c.correlations.values())
    assert json.loads(json.dumps(c.to_dict(), allow_nan=False))["correlations"]["pearson"] is None


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 80), st.integers(0, 10_000))
def test_swap_counts_sum_to_n(n, seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=n), 1)
    b = np.round(a + rng.normal(scale=0.3, size=n), 1)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    c = tc.compare_scores(a, b, y, approval_rates=(0.1, 0.5, 1.0))
    for sw in c.swap_sets:
        assert sw.counts.to_numpy().sum() == n
        assert 0.0 <= sw.agreement <= 1.0
    assert c.swap_sets[-1].approval_rate_a == 1.0


# ------------------------------------------------------------------------------- compare()
def _stump_model(threshold: float, left: float, right: float, objective: Objective):
    from treeprune.trees import Tree, assemble, empty_nodes

    nodes = empty_nodes(3)
    nodes["feature"][0], nodes["threshold"][0] = 0, threshold
    nodes["left"][0], nodes["right"][0] = 1, 2
    nodes["default_left"][0] = True
    nodes["value"][1], nodes["value"][2] = left, right
    return assemble(
        None, [Tree(nodes)], objective=objective, base_margin=np.zeros(objective.n_groups),
        folded_intercept=np.zeros(objective.n_groups), n_features=1, feature_names=("x",),
        feature_types=("float",), categories={}, monotone_constraints=(0,), source="xgboost",
    )


def _two_stumps():
    """Two binary stumps on one feature, 500 rows and outcomes that the feature predicts."""
    binary = Objective("binary:logistic", "logloss", "sigmoid")
    a = _stump_model(0.5, -1.0, 1.0, binary)
    b = _stump_model(0.5, -0.9, 1.1, binary)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(500, 1))
    y = (X[:, 0] + rng.normal(scale=0.3, size=500) > 0.5).astype(int)
    return a, b, X, y


def test_compare_models():
    pytest.importorskip("treeprune.predict")
    a, b, X, y = _two_stumps()
    c = tc.compare(a, b, X, y)
    pa = 1 / (1 + np.exp(-np.where(X[:, 0] < 0.5, -1.0, 1.0)))
    assert c.metrics.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, pa))
    assert "brier" in c.metrics.index
    cm = tc.compare(a, b, X, y, output="margin")
    assert "brier" not in cm.metrics.index
    assert cm.abs_diff["max"] == pytest.approx(0.1, abs=1e-6)


def test_compare_rejects_multiclass_and_mixed_kinds():
    multi = Objective("multi:softprob", "softmax", "softmax", n_classes=3)
    m = _stump_model(0.5, -1.0, 1.0, multi)
    X = np.zeros((4, 1))
    with pytest.raises(DataError, match="binary and regression.*multiclass"):
        tc.compare(m, m, X)
    binary = Objective("binary:logistic", "logloss", "sigmoid")
    reg = Objective("reg:squarederror", "squared", "identity")
    with pytest.raises(DataError, match="same kind"):
        tc.compare(_stump_model(0.5, 0, 1, binary), _stump_model(0.5, 0, 1, reg), X)
    with pytest.raises(DataError, match="output"):
        tc.compare(_stump_model(0.5, 0, 1, binary), _stump_model(0.5, 0, 1, binary), X,
                   output="leaf")


def test_public_compare_is_the_function_and_old_imports_work():
    import treeprune as tp
    from treeprune.metrics import Comparison, compare, compare_scores

    assert tp.compare is tc.compare is compare  # the submodule does not shadow tp.compare
    assert compare_scores is tc.compare_scores and Comparison is tc.Comparison
    with pytest.raises(AttributeError):
        metrics.no_such_name  # noqa: B018


def test_compare_codes_text_labels_with_positive_label_as_prune_does():
    pytest.importorskip("treeprune.predict")
    a, b, X, y = _two_stumps()
    text = np.where(y == 1, "bad", "good")
    want = tc.compare(a, b, X, y)
    got = tc.compare(a, b, X, text, positive_label="bad")
    pd.testing.assert_frame_equal(got.metrics, want.metrics)
    # "1" on a command line names the number 1, as in prune
    pd.testing.assert_frame_equal(tc.compare(a, b, X, y, positive_label="1").metrics,
                                  want.metrics)
    # the messages of prune's label checks
    with pytest.raises(DataError, match="labels are not numbers.*positive_label"):
        tc.compare(a, b, X, text)
    with pytest.raises(DataError, match="'default' is not among the label values"):
        tc.compare(a, b, X, text, positive_label="default")
    with pytest.raises(DataError, match="binary objective .* needs labels 0/1"):
        tc.compare(a, b, X, y * 2)
    with pytest.raises(DataError, match="give y too"):
        tc.compare(a, b, X, positive_label="bad")
    reg = Objective("reg:squarederror", "squared", "identity")
    ra, rb = _stump_model(0.5, 0, 1, reg), _stump_model(0.5, 0, 2, reg)
    with pytest.raises(DataError, match="positive_label applies to binary models"):
        tc.compare(ra, rb, X, text, positive_label="bad")
    # on dask the labels are coded on the workers, by the same rule
    da = pytest.importorskip("dask.array")
    got = tc.compare(a, b, da.from_array(X, chunks=(len(X) // 2, -1)),
                     da.from_array(text, chunks=len(X) // 2), positive_label="bad")
    pd.testing.assert_frame_equal(got.metrics, want.metrics, rtol=1e-12)
