"""The rank-coded single-row kernel: the same leaves as the native libraries' ``pred_leaf`` and
the same margins as the batch kernels, bit for bit.

Every split is decided there by one integer comparison of the row's ranks, so these cases cover
each rule the ranks stand in for: NaN either way, LightGBM's missing types (zero-as-missing,
none), its ``<=`` at the largest double and at +inf, tiny values, thresholds and their float
neighbours, +-inf, categorical bitsets narrow and wide (past 64 categories) with odd codes,
trees that are a single leaf, fewer trees than lanes, multiclass models, and the fallback for
a model past the layout's limits.
"""

from __future__ import annotations

import numpy as np
import pytest
from lgb_models import row_kernel_specs, stress_rows, train
from row_checks import check_layout, largest_threshold_case, wide_category_case, with_infinities
from xgb_models import XGBSpec, dmatrix, make_model, with_odd_categories
from xgb_models import row_kernel_specs as xgb_row_kernel_specs

import treeprune as tp
from treeprune.kernels import chained, ranked
from treeprune.kernels.lanes import margin_row_lanes
from treeprune.kernels.ranked import (
    LANES,
    leaves_row_ranked,
    margin_row_ranked32,
    margin_row_ranked64,
    ranked_margin_kernel,
)
from treeprune.kernels.traverse import margin_row
from treeprune.packed import pack


def _check(ens, X, native_margin=None, native_leaf=None):
    """:func:`row_checks.check_layout` on the rank-coded layout."""
    p = pack(ens)
    assert p.ranked is not None
    check_layout(ens, X, p.ranked, ranked_margin_kernel(p.dtype),
                 ranked.ranked_margin_one_kernel(p.dtype), leaves_row_ranked, native_margin,
                 native_leaf)


LGB_SPECS = row_kernel_specs(LANES)


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_ranked_matches_native(spec):
    booster, Xe = train(spec)
    X = with_infinities(np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64))
    _check(tp.load(booster), X, booster.predict(X, raw_score=True),
           booster.predict(X, pred_leaf=True))


def test_lightgbm_wide_category_bitsets():
    _check(*wide_category_case())


def test_lightgbm_le_at_the_largest_double_and_infinity():
    _check(*largest_threshold_case())


XGB_SPECS = xgb_row_kernel_specs()


@pytest.mark.parametrize("spec", XGB_SPECS, ids=lambda s: s.id)
def test_xgboost_ranked_matches_native(spec):
    booster, X, _ = make_model(spec)
    X = with_odd_categories(spec, X)
    dm = dmatrix(spec, X)
    ens = tp.load(booster)
    _check(ens, X, booster.predict(dm, output_margin=True), booster.predict(dm, pred_leaf=True))
    _check(ens, with_infinities(X[:30]))  # XGBoost's DMatrix refuses inf: the batch kernels
    if spec.extra.get("gamma"):
        assert (ens.tree_n_leaves() == 1).any()  # the case under test


def test_models_past_the_chained_limits_take_the_ranked_kernel(monkeypatch):
    monkeypatch.setattr(chained, "MAX_BLOCK", 2)
    booster, Xe = train(LGB_SPECS[0])
    X = np.asarray(stress_rows(booster, Xe, 5), dtype=np.float64)[:200]
    ens = tp.load(booster)
    assert pack(ens).single_row[0] is margin_row_ranked64
    assert pack(ens).single_row_one[0] is ranked.margin_one_ranked64
    batch = ens.predict(X, output="margin")
    f = ens.predictor("margin")
    for i, x in enumerate(X):
        assert ens.predict(x, output="margin")[0] == batch[i]
        assert f(x)[0] == batch[i]
    balanced = tp.load(make_model(XGBSpec(n_trees=5, max_depth=3))[0])
    assert pack(balanced).single_row[0] is margin_row_ranked32


def test_models_past_the_limits_keep_the_other_kernels(monkeypatch):
    # more distinct thresholds per feature than the ranks hold (neither the chained nor the
    # rank-coded layout): the 16-byte lanes (lopsided trees) and the lock-step walk (balanced
    # trees), with the same margins
    monkeypatch.setattr(ranked, "MAX_THRESHOLDS", 3)
    booster, Xe = train(LGB_SPECS[0])
    ens = tp.load(booster)
    p = pack(ens)
    assert p.ranked is None and p.single_row[0] is margin_row_lanes
    assert p.single_row_one is None  # the predictor keeps the array kernels' path
    X = np.asarray(Xe, dtype=np.float64)[:100]
    f = ens.predictor("margin")
    np.testing.assert_array_equal([f(x)[0] for x in X], ens.predict(X, output="margin"))
    balanced = tp.load(make_model(XGBSpec(n_trees=5, max_depth=3))[0])
    assert pack(balanced).single_row[0] is margin_row
