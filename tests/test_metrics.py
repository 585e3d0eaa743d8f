"""Credit metrics and score comparison, checked against scikit-learn, scipy and hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from treeprune import metrics as tm
from treeprune.errors import DataError
from treeprune.objectives import Objective


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 3000
    y = rng.integers(0, 2, n)
    margin = 1.2 * y + rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-margin))
    p_b = np.clip(p + rng.normal(scale=0.02, size=n), 0.0, 1.0)
    w = rng.uniform(0.5, 2.0, n)
    return y, p, p_b, margin, w


# ------------------------------------------------------------------------------- single metrics
def test_auc_gini_match_sklearn(data):
    y, p, _, margin, w = data
    assert tm.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert tm.auc(y, p, sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert tm.gini(y, margin) == pytest.approx(2 * skm.roc_auc_score(y, margin) - 1, abs=1e-12)
    # points-like score: higher is safer
    assert tm.auc(y, -p, higher_is_riskier=False) == pytest.approx(tm.auc(y, p), abs=1e-12)


def test_ks_matches_ks_2samp(data):
    y, p, _, margin, _ = data
    expected = stats.ks_2samp(p[y == 1], p[y == 0]).statistic
    assert tm.ks(y, p) == pytest.approx(expected, abs=1e-12)
    assert tm.ks(y, margin) == pytest.approx(expected, abs=1e-12)  # rank-based: same as p
    assert tm.ks(y, -p, higher_is_riskier=False) == pytest.approx(expected, abs=1e-12)


def test_ks_with_ties_matches_ks_2samp():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(y + rng.normal(size=500), 1)  # many ties
    assert tm.ks(y, s) == pytest.approx(stats.ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)


def test_log_loss_and_brier_match_sklearn(data):
    y, p, _, _, w = data
    assert tm.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    assert tm.log_loss(y, p, sample_weight=w) == pytest.approx(
        skm.log_loss(y, p, sample_weight=w), rel=1e-12)
    assert tm.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), rel=1e-12)
    assert tm.brier(y, p, sample_weight=w) == pytest.approx(
        skm.brier_score_loss(y, p, sample_weight=w), rel=1e-12)
    # extreme probabilities stay finite; one class is fine for these two
    assert math.isfinite(tm.log_loss([0, 1], [1.0, 0.0]))
    assert tm.log_loss([0, 0], [0.1, 0.2]) == pytest.approx(skm.log_loss([0, 0], [0.1, 0.2],
                                                                         labels=[0, 1]))
    assert tm.brier([1, 1], [0.5, 1.0]) == pytest.approx(0.125)
    with pytest.raises(DataError, match="only 0"):
        tm.brier([0, 2], [0.1, 0.2])


def test_log_loss_rejects_margins(data):
    y, _, _, margin, _ = data
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\]"):
        tm.log_loss(y, margin)


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("fn", [tm.auc, tm.gini, tm.ks])
def test_binary_metric_validation(fn):
    s = np.array([0.1, 0.4, 0.35, 0.8])
    with pytest.raises(DataError, match="only 0 .good. and 1 .bad."):
        fn([0, 1, 2, 1], s)
    with pytest.raises(DataError, match="single class"):
        fn([1, 1, 1, 1], s)
    with pytest.raises(DataError, match="3 rows but score has 4"):
        fn([0, 1, 1], s)
    with pytest.raises(DataError, match="NaN"):
        fn([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(DataError, match="missing values"):
        fn([0, 1, np.nan, 1], s)
    with pytest.raises(DataError, match="one-dimensional"):
        fn([0, 1, 0, 1], np.ones((4, 3)))
    with pytest.raises(DataError, match="non-negative"):
        fn([0, 1, 0, 1], s, sample_weight=[1, -1, 1, 1])
    # errors are ValueErrors too, for callers that catch those
    with pytest.raises(ValueError):
        fn([0, 1, 2, 1], s)


def test_boolean_labels_accepted():
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert tm.auc(np.array([False, True, False, True]), s) == tm.auc([0, 1, 0, 1], s)


# ------------------------------------------------------------------------------- decile table
def test_decile_table(data):
    y, p, _, _, _ = data
    table = tm.decile_table(y, p)
    assert list(table["bin"]) == list(range(1, 11))
    assert table["count"].sum() == len(y)
    assert table["bads"].sum() == y.sum()
    assert (table["count"] == len(y) // 10).all()
    # riskiest first: bins do not overlap and descend in score
    assert (table["score_min"].to_numpy()[:-1] >= table["score_max"].to_numpy()[1:]).all()
    assert table["bad_rate"].iloc[0] > table["bad_rate"].iloc[-1]
    assert table["cum_bad_capture"].iloc[-1] == pytest.approx(1.0)
    assert np.all(np.diff(table["cum_bad_capture"]) >= 0)
    np.testing.assert_allclose(table["bad_rate"], table["bads"] / table["count"])
    # KS at the decile edges is at most the full KS
    assert (table["cum_bad_capture"] - table["cum_good_capture"]).max() <= tm.ks(y, p) + 1e-12
    # points-like: same bins, riskiest (lowest points) first
    flipped = tm.decile_table(y, -p, higher_is_riskier=False)
    np.testing.assert_array_equal(flipped["bads"], table["bads"])


def test_decile_table_keeps_ties_together():
    y = np.array([0, 1] * 50)
    s = np.repeat([1.0, 2.0, 3.0, 4.0], 25)
    table = tm.decile_table(y, s, n_bins=10)
    assert len(table) == 4
    assert (table["count"] == 25).all()
    assert list(table["score_min"]) == [4.0, 3.0, 2.0, 1.0]


# ------------------------------------------------------------------------------- PSI
def test_psi_hand_computation():
    expected = np.arange(1.0, 11.0)
    actual = np.array([1, 2, 3, 3, 3, 3, 5, 7, 9, 10], dtype=float)
    # quantile edges of 1..10 at 20/40/60/80%: 2.8, 4.6, 6.4, 8.2 -> shares .2 each
    # actual shares: .2 .4 .1 .1 .2
    hand = (0.4 - 0.2) * math.log(2) + 2 * (0.1 - 0.2) * math.log(0.5)
    res = tm.psi(expected, actual, n_bins=5)
    assert res.value == pytest.approx(hand, abs=1e-12)
    assert float(res) == res.value
    np.testing.assert_allclose(res.table["lower"][1:], [2.8, 4.6, 6.4, 8.2])
    assert res.table["lower"].iloc[0] == -np.inf and res.table["upper"].iloc[-1] == np.inf
    np.testing.assert_array_equal(res.table["actual_count"], [2, 4, 1, 1, 2])
    assert res.band == "significant shift"
    explicit = tm.psi(expected, actual, bins=[2.8, 4.6, 6.4, 8.2])
    assert explicit.value == pytest.approx(hand, abs=1e-12)


def test_psi_empty_bins_use_epsilon_and_outer_bins_are_open():
    expected = np.arange(1.0, 11.0)
    actual = np.array([-100.0] * 4)  # all below the expected range -> first bin
    res = tm.psi(expected, actual, n_bins=5)
    eps = tm.PSI_EPSILON
    hand = (1.0 - 0.2) * math.log(1.0 / 0.2) + 4 * (eps - 0.2) * math.log(eps / 0.2)
    assert res.value == pytest.approx(hand, rel=1e-12)
    assert res.table["actual_count"].tolist() == [4, 0, 0, 0, 0]
    assert res.table["actual_share"].tolist()[1:] == [eps] * 4


def test_psi_identical_and_bands():
    x = np.random.default_rng(0).normal(size=1000)
    res = tm.psi(x, x)
    assert res.value == 0.0 and res.band == "stable"
    assert tm.psi(x, x, bins="uniform").value == 0.0
    assert tm.psi_band(0.0999) == "stable"
    assert tm.psi_band(0.1) == "moderate shift"
    assert tm.psi_band(0.2499) == "moderate shift"
    assert tm.psi_band(0.25) == "significant shift"
    json.dumps(res.to_dict(), allow_nan=False)


def test_psi_validation():
    with pytest.raises(DataError, match="NaN"):
        tm.psi([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(DataError, match="bins must be"):
        tm.psi([1.0, 2.0], [1.0, 2.0], bins="deciles")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
    st.integers(1, 12),
)
def test_psi_properties(expected, actual, n_bins):
    res = tm.psi(expected, actual, n_bins=n_bins)
    assert res.value >= 0.0
    assert res.table["expected_count"].sum() == len(expected)
    assert res.table["actual_count"].sum() == len(actual)
    assert len(res.table) <= n_bins


# ------------------------------------------------------------------------------- compare_scores
def test_compare_identical_scores(data):
    y, p, _, _, _ = data
    c = tm.compare_scores(p, p.copy(), y)
    assert c.correlations == pytest.approx({"pearson": 1.0, "spearman": 1.0, "kendall": 1.0})
    assert all(v == 0.0 for v in c.abs_diff.values())
    assert c.psi.value == 0.0
    assert (c.metrics["delta"] == 0).all()
    for sw in c.swap_sets:
        assert sw.agreement == 1.0 and sw.swap_in == 0 and sw.swap_out == 0


def test_compare_scores_against_references(data):
    y, p, p_b, _, _ = data
    c = tm.compare_scores(p, p_b, y)
    assert c.n_rows == len(y) and c.task == "binary"
    assert c.correlations["pearson"] == pytest.approx(stats.pearsonr(p, p_b)[0])
    assert c.correlations["spearman"] == pytest.approx(stats.spearmanr(p, p_b)[0])
    assert c.correlations["kendall"] == pytest.approx(stats.kendalltau(p, p_b)[0])
    d = np.abs(p - p_b)
    assert c.abs_diff["max"] == d.max()
    assert c.abs_diff["p99"] == pytest.approx(np.quantile(d, 0.99))
    assert list(c.abs_diff) == ["p50", "p90", "p99", "p99.9", "max"]
    assert c.psi.value == pytest.approx(tm.psi(p, p_b).value)
    m = c.metrics
    assert set(m.index) == {"auc", "gini", "ks", "log_loss", "brier"}
    assert m.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m.loc["auc", "b"] == pytest.approx(skm.roc_auc_score(y, p_b))
    assert m.loc["brier", "b"] == pytest.approx(skm.brier_score_loss(y, p_b))
    np.testing.assert_allclose(m["delta"], m["b"] - m["a"])


def test_swap_sets_default_same_approval_rate(data):
    y, p, p_b, _, _ = data
    c = tm.compare_scores(p, p_b, y)
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
    c = tm.compare_scores(p, p_b, y, cutoffs=[0.3, 0.6])
    assert [(sw.cutoff_a, sw.cutoff_b) for sw in c.swap_sets] == [(0.3, 0.3), (0.6, 0.6)]
    assert c.swap_sets[0].target_approval_rate is None
    assert c.swap_sets[0].counts.loc["A decline"].sum() == np.count_nonzero(p >= 0.3)
    # points: higher is safer, decline when points < cutoff
    pts_a, pts_b = 600 - 100 * p, 600 - 100 * p_b
    cp = tm.compare_scores(pts_a, pts_b, y, cutoffs=550.0, higher_is_riskier=False)
    assert cp.swap_sets[0].counts.loc["A decline"].sum() == np.count_nonzero(pts_a < 550.0)
    assert cp.metrics.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, p))
    assert "log_loss" not in cp.metrics.index
    default = tm.compare_scores(pts_a, pts_b, y, higher_is_riskier=False)
    for sw in default.swap_sets:
        assert sw.approval_rate_a == pytest.approx(sw.target_approval_rate)
        # same applicants as the PD-based cut
    pd_based = tm.compare_scores(p, p_b, y)
    for s1, s2 in zip(default.swap_sets, pd_based.swap_sets, strict=True):
        np.testing.assert_array_equal(s1.counts.to_numpy(), s2.counts.to_numpy())


def test_compare_without_y_and_margins(data):
    _, p, p_b, margin, _ = data
    c = tm.compare_scores(p, p_b)
    assert c.metrics is None and c.task is None
    assert all(sw.outcome is None for sw in c.swap_sets)
    y = data[0]
    cm = tm.compare_scores(margin, margin + 0.01, y)
    assert "log_loss" not in cm.metrics.index  # margins are not probabilities


def test_compare_regression_task():
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    a = y + rng.normal(scale=0.5, size=400)
    b = a + rng.normal(scale=0.01, size=400)
    c = tm.compare_scores(a, b, y, task="regression")
    assert set(c.metrics.index) == {"rmse", "mae", "r2"}
    assert c.metrics.loc["r2", "a"] == pytest.approx(skm.r2_score(y, a))
    assert c.swap_sets[0].outcome is not None
    assert "mean y" in str(c)


def test_comparison_outputs(data):
    y, p, p_b, _, _ = data
    c = tm.compare_scores(p, p_b, y)
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
        tm.compare_scores(p, p_b[:10])
    with pytest.raises(DataError, match="NaN"):
        tm.compare_scores(np.where(np.arange(len(p)) == 5, np.nan, p), p_b)
    with pytest.raises(DataError, match="only 0"):
        tm.compare_scores(p, p_b, y + 1)
    with pytest.raises(DataError, match="single class"):
        tm.compare_scores(p, p_b, np.zeros_like(y))
    with pytest.raises(DataError, match="approval rates"):
        tm.compare_scores(p, p_b, approval_rates=[1.5])
    with pytest.raises(DataError, match="finite"):
        tm.compare_scores(p, p_b, cutoffs=[np.inf])


def test_constant_scores_have_nan_correlations():
    c = tm.compare_scores(np.ones(10), np.ones(10))
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
    c = tm.compare_scores(a, b, y, approval_rates=(0.1, 0.5, 1.0))
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


def test_compare_models():
    pytest.importorskip("treeprune.predict")
    binary = Objective("binary:logistic", "logloss", "sigmoid")
    a = _stump_model(0.5, -1.0, 1.0, binary)
    b = _stump_model(0.5, -0.9, 1.1, binary)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(500, 1))
    y = (X[:, 0] + rng.normal(scale=0.3, size=500) > 0.5).astype(int)
    c = tm.compare(a, b, X, y)
    pa = 1 / (1 + np.exp(-np.where(X[:, 0] < 0.5, -1.0, 1.0)))
    assert c.metrics.loc["auc", "a"] == pytest.approx(skm.roc_auc_score(y, pa))
    assert "brier" in c.metrics.index
    cm = tm.compare(a, b, X, y, output="margin")
    assert "brier" not in cm.metrics.index
    assert cm.abs_diff["max"] == pytest.approx(0.1, abs=1e-6)


def test_compare_rejects_multiclass_and_mixed_kinds():
    multi = Objective("multi:softprob", "softmax", "softmax", n_classes=3)
    m = _stump_model(0.5, -1.0, 1.0, multi)
    X = np.zeros((4, 1))
    with pytest.raises(DataError, match="binary and regression.*multiclass"):
        tm.compare(m, m, X)
    binary = Objective("binary:logistic", "logloss", "sigmoid")
    reg = Objective("reg:squarederror", "squared", "identity")
    with pytest.raises(DataError, match="same kind"):
        tm.compare(_stump_model(0.5, 0, 1, binary), _stump_model(0.5, 0, 1, reg), X)
    with pytest.raises(DataError, match="output"):
        tm.compare(_stump_model(0.5, 0, 1, binary), _stump_model(0.5, 0, 1, binary), X,
                   output="leaf")


def test_frame_helpers_are_json_safe():
    frame = pd.DataFrame({"a": [np.int64(1)], "b": [np.inf], "c": [True]})
    assert tm._frame_records(frame) == [{"a": 1, "b": None, "c": True}]
