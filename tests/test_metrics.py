"""Credit metrics, checked against scikit-learn, scipy and hand computations."""

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

from treeprune import metrics as tm
from treeprune.errors import DataError


@pytest.fixture(scope="module")
def data():
    return two_scores()


# ------------------------------------------------------------------------------- single metrics
def test_auc_gini_match_sklearn(data):
    y, p, _, margin, w = data
    assert tm.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert tm.auc(y, p, sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert tm.gini(y, margin) == pytest.approx(2 * skm.roc_auc_score(y, margin) - 1, abs=1e-12)
    # points-like score: higher is safer
    assert tm.auc(y, -p, higher_is_riskier=False) == pytest.approx(tm.auc(y, p), abs=1e-12)
    # heavy ties (a coarse score) count a half, as scikit-learn counts them
    coarse = np.round(p, 1)
    assert tm.auc(y, coarse) == pytest.approx(skm.roc_auc_score(y, coarse), abs=1e-12)


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


def test_psi_edges_move_off_a_group_of_tied_scores():
    # 300 of 1,000 applicants share one score (no bureau file): it is the median, an edge
    rng = np.random.default_rng(4)
    tie = 0.25
    expected = np.concatenate([rng.uniform(-2, 0, 350), np.full(300, tie), rng.uniform(1, 3, 350)])
    res = tm.psi(expected, expected)
    edges = res.table["upper"].to_numpy()[:-1]
    assert tie not in edges
    # the edge moved halfway to the next larger score: the expected counts are unchanged
    nxt = expected[expected > tie].min()
    assert 0.5 * (tie + nxt) in edges
    assert res.table["expected_count"].sum() == 1000
    # the same scores up to rounding stay in their bin
    nudged = np.where(expected == tie, tie + 1e-12, expected)
    assert tm.psi(expected, nudged).value == 0.0
    # the old rule (edge on the tie, x <= edge) put all 300 one bin up: a "significant shift"
    old = tm.psi(expected, nudged, bins=np.quantile(expected, np.arange(1, 10) / 10))
    assert old.value > 0.25


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


def test_frame_helpers_are_json_safe():
    frame = pd.DataFrame({"a": [np.int64(1)], "b": [np.inf], "c": [True]})
    assert tm._frame_records(frame) == [{"a": 1, "b": None, "c": True}]
