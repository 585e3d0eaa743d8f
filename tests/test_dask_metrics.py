"""Metrics and model comparison on dask collections equal the in-memory results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="dask support not installed: pip install 'treeprune[dask]'")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from score_data import two_scores  # noqa: E402
from xgb_models import XGBSpec, make_model  # noqa: E402

import treeprune as tp  # noqa: E402
from treeprune import metrics  # noqa: E402
from treeprune.comparison import compare_scores  # noqa: E402
from treeprune.errors import DataError  # noqa: E402
from treeprune.scaleout._metrics import ScoreTable, score_table  # noqa: E402


@pytest.fixture(scope="module")
def data():
    y, p, p_b, margin, _ = two_scores(n=2000)
    # heavy ties (rounded scores) exercise the tie handling of every metric
    return y, p, p_b, np.round(margin, 1)


def _frame(y, p, p_b, points, npartitions=4):
    return dd.from_pandas(pd.DataFrame({"y": y, "p": p, "p_b": p_b, "points": points}),
                          npartitions=npartitions)


@pytest.mark.parametrize("column", ["p", "points"])
@pytest.mark.parametrize("higher_is_riskier", [True, False])
def test_auc_gini_ks_exact(client, data, column, higher_is_riskier):
    y, p, p_b, points = data
    ddf = _frame(y, p, p_b, points)
    want_s = {"p": p, "points": points}[column]
    for fn in (metrics.auc, metrics.gini, metrics.ks):
        want = fn(y, want_s, higher_is_riskier=higher_is_riskier)
        got = fn(ddf["y"], ddf[column], higher_is_riskier=higher_is_riskier)
        assert got == pytest.approx(want, abs=1e-12), fn.__name__


def test_metrics_on_arrays_with_y_in_memory(client, data):
    y, p, _, _ = data
    s = da.from_array(p, chunks=300)
    assert metrics.auc(y, s) == pytest.approx(metrics.auc(y, p), abs=1e-12)
    y_other_chunks = da.from_array(y, chunks=700)  # rechunked to the score's partitions
    assert metrics.ks(y_other_chunks, s) == pytest.approx(metrics.ks(y, p), abs=1e-12)


@pytest.mark.parametrize("higher_is_riskier", [True, False])
@pytest.mark.parametrize("n_bins", [10, 7])
def test_decile_table_exact(client, data, higher_is_riskier, n_bins):
    y, p, p_b, points = data
    ddf = _frame(y, p, p_b, points)
    for col, s in (("p", p), ("points", points)):
        want = metrics.decile_table(y, s, n_bins, higher_is_riskier=higher_is_riskier)
        got = metrics.decile_table(ddf["y"], ddf[col], n_bins, higher_is_riskier=higher_is_riskier)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("bins", ["quantile", "uniform", [0.2, 0.5, 0.8]])
def test_psi_exact(client, data, bins):
    y, p, p_b, points = data
    ddf = _frame(y, p, p_b, points)
    want = metrics.psi(p, p_b, bins=bins)
    for expected, actual in ((ddf["p"], ddf["p_b"]), (p, ddf["p_b"]), (ddf["p"], p_b)):
        got = metrics.psi(expected, actual, bins=bins)
        assert got.value == pytest.approx(want.value, rel=1e-12)
        pd.testing.assert_frame_equal(got.table, want.table, check_dtype=False, rtol=1e-12)


def test_psi_edges_off_ties_as_in_memory(client):
    # scores with a large tie at an edge: the exact table moves it as the in-memory rule does
    rng = np.random.default_rng(5)
    e = np.round(np.concatenate([rng.normal(size=700), np.full(300, 0.1)]), 2)
    a = np.where(e == 0.1, 0.1 + 1e-12, e + rng.normal(scale=0.01, size=len(e)))
    want = metrics.psi(e, a)
    got = metrics.psi(da.from_array(e, chunks=250), da.from_array(a, chunks=250))
    assert got.value == pytest.approx(want.value, rel=1e-12)
    pd.testing.assert_frame_equal(got.table, want.table, check_dtype=False, rtol=1e-12)


def test_score_table_quantiles_match_numpy(client, data):
    _, p, _, points = data
    q = np.linspace(0, 1, 21)
    for s in (p, points):
        table = score_table(da.from_array(s, chunks=333))
        assert isinstance(table, ScoreTable) and table.n == len(s)
        np.testing.assert_array_equal(table.quantile(q), np.quantile(s, q))
        np.testing.assert_array_equal(table.negated().quantile(q), np.quantile(-s, q))


def test_metric_errors(client, data):
    y, p, p_b, points = data
    ddf = _frame(y, p, p_b, points)
    with pytest.raises(DataError, match="single class"):
        metrics.auc(ddf["y"] * 0, ddf["p"])
    with pytest.raises(DataError, match="only 0 \\(good\\) and 1"):
        metrics.ks(ddf["y"] + 1, ddf["p"])
    with pytest.raises(DataError, match="NaN"):
        metrics.auc(ddf["y"], ddf["p"].where(ddf["p"] < 0.9))
    with pytest.raises(DataError, match="partitions"):
        metrics.auc(_frame(y, p, p_b, points, 3)["y"], ddf["p"])
    with pytest.raises(DataError, match="sample_weight"):
        metrics.auc(ddf["y"], ddf["p"], sample_weight=np.ones(len(y)))


def test_compare_models_on_dask_equals_in_memory(client):
    booster_a, X, y = make_model(XGBSpec(n_trees=20, max_depth=3, n_rows=600, seed=3))
    booster_b, X_b, _ = make_model(XGBSpec(n_trees=6, max_depth=3, n_rows=600, seed=3))
    np.testing.assert_array_equal(X, X_b)  # the same rows scored by both
    a, b = tp.load(booster_a), tp.load(booster_b)
    want = tp.compare(a, b, X, y)
    got = tp.compare(a, b, da.from_array(X, chunks=(150, -1)), da.from_array(y, chunks=150))
    _assert_same(got.to_dict(), want.to_dict())
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    ddf = dd.from_pandas(frame, npartitions=3)
    got = tp.compare(a, b, ddf, dd.from_pandas(pd.Series(y), npartitions=3), output="margin")
    _assert_same(got.to_dict(), tp.compare(a, b, X, y, output="margin").to_dict())
    # explicit cutoffs, no outcome, points-like direction
    got = tp.compare(a, b, ddf, cutoffs=[0.3, 0.5], higher_is_riskier=False)
    _assert_same(got.to_dict(), tp.compare(a, b, X, cutoffs=[0.3, 0.5],
                                           higher_is_riskier=False).to_dict())


def _assert_same(got, want, rel=1e-9):
    """Equal up to the last bits of floating-point sums (the reductions add in another order)."""
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            _assert_same(got[k], want[k], rel)
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same(g, w, rel)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=1e-12)
    else:
        assert got == want


def test_compare_regression_scores_on_dask(client, data):
    y, p, p_b, margin = data
    resp = margin * 3 + 1
    want = compare_scores(p, p_b, y=resp, task="regression")
    got = compare_scores(da.from_array(p, chunks=500), da.from_array(p_b, chunks=500),
                            y=da.from_array(resp, chunks=500), task="regression")
    _assert_same(got.to_dict(), want.to_dict())


def test_compare_of_continuous_scores_stays_bounded(client, continuous, monkeypatch):
    """Past MAX_BINS distinct scores: sketched cutoffs and quantiles, exact counts at them."""
    from treeprune.scaleout import _compare, _metrics

    monkeypatch.setattr(_metrics, "MAX_BINS", 256)
    monkeypatch.setattr(_compare, "KENDALL_ROWS", 5000)
    y, s = continuous
    rng = np.random.default_rng(1)
    s_b = s + rng.normal(scale=0.3, size=len(s))
    n = len(s)
    want = compare_scores(s, s_b, y)
    got = compare_scores(da.from_array(s, chunks=3000), da.from_array(s_b, chunks=3000),
                            da.from_array(y, chunks=3000))
    assert got.correlations["pearson"] == pytest.approx(want.correlations["pearson"], rel=1e-9)
    assert got.correlations["spearman"] == pytest.approx(want.correlations["spearman"], abs=2e-3)
    assert got.correlations["kendall"] == pytest.approx(want.correlations["kendall"], abs=0.02)
    assert got.abs_diff["max"] == want.abs_diff["max"]
    diff = np.sort(np.abs(s - s_b))
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank = np.searchsorted(diff, got.abs_diff[name]) / n
        assert abs(rank - q) <= 2 / 256, name
    assert np.abs(got.metrics.to_numpy() - want.metrics.to_numpy()).max() < 0.01
    for g in got.swap_sets:
        counts = g.counts.to_numpy()
        assert counts.sum() == n and abs(g.approval_rate_a - g.target_approval_rate) <= 2 / 256
        declined_a = s >= g.cutoff_a  # the counts are exact at the cutoffs used
        declined_b = s_b >= g.cutoff_b
        assert counts[1, 1] == np.count_nonzero(declined_a & declined_b)
        assert counts[0, 1] == np.count_nonzero(~declined_a & declined_b)


@pytest.fixture(scope="module")
def continuous():
    """Continuous scores (one distinct value a row) on more rows than the small sketch keeps."""
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.2).astype(float)
    return y, 0.9 * y + rng.normal(size=len(y))


@pytest.mark.parametrize("higher_is_riskier", [True, False])
def test_binned_auc_and_ks_within_their_stated_bounds(client, continuous, higher_is_riskier):
    from treeprune.scaleout._metrics import auc_with_bound, ks_with_bound

    y, s = continuous
    sd, yd = da.from_array(s, chunks=3000), da.from_array(y, chunks=3000)
    rate = y.mean()
    exact_auc = metrics.auc(y, s, higher_is_riskier=higher_is_riskier)
    exact_ks = metrics.ks(y, s, higher_is_riskier=higher_is_riskier)
    for bins in (64, 1024):
        table = score_table(sd, yd, max_bins=bins)
        assert not table.exact and len(table.value) <= bins + 1  # memory bounded by the bins
        value, bound = auc_with_bound(yd, sd, higher_is_riskier=higher_is_riskier, max_bins=bins)
        assert 0 < bound <= 1 / (4 * bins * rate * (1 - rate))  # the bound the docstring states
        assert abs(value - exact_auc) <= bound
        value, bound = ks_with_bound(yd, sd, higher_is_riskier=higher_is_riskier, max_bins=bins)
        assert abs(value - exact_ks) <= bound
    # with room for every distinct score the same code is exact again
    value, bound = auc_with_bound(yd, sd, higher_is_riskier=higher_is_riskier,
                                  max_bins=len(y))
    assert bound == 0 and value == pytest.approx(exact_auc, abs=1e-12)


def test_binned_deciles_and_psi_count_exactly_at_sketched_edges(client, continuous):
    from treeprune.scaleout._metrics import decile_table, psi

    y, s = continuous
    bins, n = 64, len(y)
    sd, yd = da.from_array(s, chunks=3000), da.from_array(y, chunks=3000)
    got = decile_table(yd, sd, 10, max_bins=bins)
    want = metrics.decile_table(y, s, 10)
    assert got["count"].sum() == n and got["bads"].sum() == y.sum()
    # each edge lies within a couple of sketch bins (n / bins rows) of the exact quantile
    np.testing.assert_allclose(got["cum_count_share"], want["cum_count_share"], atol=2 / bins)
    for _, row in got.iterrows():  # the counts are exact for the edges used
        inside = (s >= row["score_min"]) & (s <= row["score_max"])
        assert inside.sum() == row["count"] and y[inside].sum() == row["bads"]
    shifted = s + 0.1
    result = psi(sd, da.from_array(shifted, chunks=5000), max_bins=bins)
    edges = result.table["upper"].to_numpy()[:-1]
    np.testing.assert_allclose(np.searchsorted(np.sort(s), edges, side="right") / n,
                               np.arange(1, 10) / 10, atol=2 / bins)
    assert result.value == pytest.approx(metrics.psi(s, shifted, bins=edges).value, rel=1e-12)
