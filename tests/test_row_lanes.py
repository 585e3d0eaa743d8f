"""The single-row kernel (interleaved lanes over a depth-first layout), exact against the native
libraries and bit for bit against the lock-step walk.

The lanes decide numerical and categorical splits (bitsets up to 64 categories) in one
branch-free step and stop at the splits that need the full rule (LightGBM's zero-as-missing,
category bitsets wider than 64 bits), which are decided after the lanes; lanes are refilled as
walks end, so these cases cover deep lopsided trees, fewer trees than lanes, trees that are a
single leaf, NaN, zeros and tiny values, odd category codes, and multiclass models.
"""

from __future__ import annotations

import numpy as np
import pytest
from lgb_models import row_kernel_specs, stress_rows, train, wide_category_model
from xgb_models import XGBSpec, dmatrix, make_model, with_odd_categories

import treeprune as tp
from treeprune.kernels.lanes import LANES, leaf_records, margin_row_lanes
from treeprune.kernels.traverse import margin_row
from treeprune.packed import pack


def _check_rows(ens, X, native_margin, native_leaf, n_rows=400):
    """Every row: lanes margins == lock-step margins (bit for bit), == native within 1e-5, and
    the lanes' leaves == native pred_leaf."""
    p = pack(ens)
    r = p.row
    X = np.ascontiguousarray(X[:n_rows], dtype=np.float64)
    n_trees = len(p.trees)
    got = []
    for x in X:
        lanes = margin_row_lanes(x, *p.row_args, p.base_margin)
        np.testing.assert_array_equal(lanes, margin_row(x, *p.walk_args, p.base_margin))
        got.append(lanes)
    got = np.array(got)
    np.testing.assert_allclose(got.reshape(native_margin[:n_rows].shape), native_margin[:n_rows],
                               rtol=0, atol=1e-5)
    leaves = np.array([
        p.native_id[r.packed[leaf_records(x, r.nodes, r.cat, p.cat_bounds, p.cat_words, r.starts,
                                          r.n_starts, r.stop_roots, p.rule, p.base_margin,
                                          np.empty(n_trees, np.uint32))]]
        for x in X])
    np.testing.assert_array_equal(leaves, native_leaf[:n_rows])


LGB_SPECS = row_kernel_specs(LANES)


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_lanes_match_native(spec):
    booster, Xe = train(spec)
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    # rows with odd values first: the stress rows are appended after the plain ones
    X = np.concatenate([X[300:], X[:300]])
    ens = tp.load(booster)
    _check_rows(ens, X, booster.predict(X, raw_score=True), booster.predict(X, pred_leaf=True),
                n_rows=len(X))


def test_lightgbm_wide_category_bitsets_stop_the_lanes():
    booster, X = wide_category_model()
    ens = tp.load(booster)
    p = pack(ens)
    wide = np.diff(p.cat_bounds) > 2
    assert wide.any()  # the case under test: bitsets of more than 64 categories
    Xt = np.concatenate([X[:300], [[c, 0.1] for c in (63.0, 64.0, 65.0, 127.9, 149.0, 300.0,
                                                        -0.5, -1.0, np.nan, 2.0**31)]])
    _check_rows(ens, Xt, booster.predict(Xt, raw_score=True),
                booster.predict(Xt, pred_leaf=True), n_rows=len(Xt))


XGB_SPECS = [
    # lossguide: lopsided trees of mixed depths
    XGBSpec(n_trees=13, max_depth=0, nan_rate=0.2, seed=3,
            extra={"grow_policy": "lossguide", "max_leaves": 24}),
    XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=11, max_depth=5, seed=7),
    # categories past 64: partition splits with wide bitsets
    XGBSpec(n_cat=1, n_num=3, n_levels=100, n_trees=9, max_depth=4, n_rows=3000, seed=17),
    XGBSpec(objective="multi:softprob", n_cat=1, n_num=4, n_trees=6, max_depth=3, seed=8),
]


@pytest.mark.parametrize("spec", XGB_SPECS, ids=lambda s: s.id)
def test_xgboost_lanes_match_native(spec):
    booster, X, _ = make_model(spec)
    X = with_odd_categories(spec, X)
    dm = dmatrix(spec, X)
    ens = tp.load(booster)
    _check_rows(ens, X, booster.predict(dm, output_margin=True),
                booster.predict(dm, pred_leaf=True))
