"""The routing kernels' lane walks, exact against the native libraries.

Lanes are the trees of one row, or the rows of a block times a block of trees; they are swept
a fixed number of steps, then (lopsided trees) with a leaf test until all are at leaves, with a
branch-free step for all but the special nodes (categorical, LightGBM's missing type Zero,
``<=`` kept as is), and without the NaN test when the row or block has no NaN. These cases hit
each of those paths: deep lopsided LightGBM trees with categorical bitsets, numbers of trees and
rows that are not multiples of the block sizes, NaN in many columns and in none, and XGBoost
trees of mixed depths.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from lgb_models import LgbSpec, stress_rows, train

import treeprune as tp
from treeprune.kernels.traverse import BLOCK_ROWS, BLOCK_TREES

LGB_SPECS = [
    # deep leaf-wise trees with categorical splits; 13 trees: a short last group of lanes
    LgbSpec("binary", n_cat=2, num_leaves=63, n_trees=13, n_rows=2000, nan_frac=0.2,
            params=(("min_data_in_leaf", 2), ("min_sum_hessian_in_leaf", 0.0))),
    # zero-as-missing nodes take the full rule inside the lock-step walk
    LgbSpec("binary", n_cat=1, missing="zero", zero_frac=0.3, num_leaves=31, n_trees=7,
            n_rows=1200),
    LgbSpec("multiclass", n_classes=3, n_cat=2, num_leaves=31, n_trees=5, n_rows=900),
]


def _lgb_case(spec: LgbSpec):
    booster, Xe = train(spec)
    X = stress_rows(booster, Xe, spec.n_features)
    return booster, np.asarray(X, dtype=np.float64)


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_lanes_match_native(spec):
    booster, X = _lgb_case(spec)
    # a short last block of rows
    X = X[: (len(X) // BLOCK_ROWS) * BLOCK_ROWS - 1]
    ens = tp.load(booster)
    assert ens.tree_depths().max() > 4
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), booster.predict(X, pred_leaf=True))
    want = booster.predict(X, raw_score=True)
    got = ens.predict(X, output="margin")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # single rows through the lean predictor: bit for bit the batch kernel
    f = ens.predictor("margin")
    rows = np.concatenate([f(X[i]) for i in range(min(len(X), 150))])
    np.testing.assert_array_equal(rows, got[:150].reshape(rows.shape))


def test_xgboost_nan_mixed_depths_match_native():
    rng = np.random.default_rng(3)
    n, d = 3001, 24
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.15] = np.nan
    X[:, 5] = np.where(rng.random(n) < 0.5, np.nan, X[:, 5])
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 5]) > 0).astype(float)
    # lossguide: trees of different depths side by side in one lane group; 11 trees
    booster = xgb.train({"objective": "binary:logistic", "grow_policy": "lossguide",
                         "max_leaves": 24, "max_depth": 0, "nthread": 1, "seed": 1},
                        xgb.DMatrix(X, y), 11)
    ens = tp.load(booster)
    assert len(set(ens.tree_depths())) > 1
    dm = xgb.DMatrix(X)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"),
                                  booster.predict(dm, pred_leaf=True))
    want = booster.predict(dm, output_margin=True)
    np.testing.assert_allclose(ens.predict(X, output="margin"), want, rtol=0, atol=1e-5)
    f = ens.predictor("margin")
    rows = np.concatenate([f(X[i]) for i in range(200)])
    np.testing.assert_allclose(rows, want[:200], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(rows, ens.predict(X[:200], output="margin"))


@pytest.mark.parametrize("n_trees", [1, 2, 3, 5])
def test_fewer_trees_than_a_tree_block(n_trees):
    assert BLOCK_TREES > 3
    rng = np.random.default_rng(n_trees)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) > 0).astype(float)
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 1,
                         "min_data_in_leaf": 5}, lgb.Dataset(X, y), n_trees)
    ens = tp.load(booster)
    want = booster.predict(X, raw_score=True)
    f = ens.predictor("margin")
    rows = np.concatenate([f(X[i]) for i in range(len(X))])
    np.testing.assert_allclose(rows, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ens.predict(X[:3], output="leaf"),
                                  booster.predict(X[:3], pred_leaf=True))


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_rows_and_blocks_without_nan_match_native(library):
    """Rows and whole blocks with no NaN take the walks without the NaN test; rows with NaN in
    the same call take the full step: both equal the native leaves and margins."""
    rng = np.random.default_rng(11)
    n, d = 2 * BLOCK_ROWS + 37, 12
    X = rng.normal(size=(n, d))
    X[:, 0] = rng.integers(0, 12, n)  # a categorical code
    X[rng.random((n, d)) < 0.05] = np.nan
    # the first block has no NaN at all, the others have NaN in some rows
    X[:BLOCK_ROWS] = np.nan_to_num(X[:BLOCK_ROWS], nan=1.0)
    y = (np.nan_to_num(X[:, 1]) + np.sin(np.nan_to_num(X[:, 0])) > 0).astype(float)
    if library == "xgboost":
        dtrain = xgb.DMatrix(X, y, feature_types=["c"] + ["q"] * (d - 1),
                             enable_categorical=True)
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "nthread": 1,
                             "seed": 1, "max_cat_to_onehot": 1}, dtrain, 9)
        dm = xgb.DMatrix(X, feature_types=["c"] + ["q"] * (d - 1), enable_categorical=True)
        leaf = booster.predict(dm, pred_leaf=True)
        want = booster.predict(dm, output_margin=True)
    else:
        booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 1,
                             "min_data_in_leaf": 3, "cat_smooth": 1.0},
                            lgb.Dataset(X, y, categorical_feature=[0]), 9)
        leaf = booster.predict(X, pred_leaf=True)
        want = booster.predict(X, raw_score=True)
    ens = tp.load(booster)
    assert np.any(ens.cat_index >= 0)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaf)
    got = ens.predict(X, output="margin")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    f = ens.predictor("margin")
    rows = np.concatenate([f(X[i]) for i in range(BLOCK_ROWS - 20, BLOCK_ROWS + 60)])
    assert np.isnan(X[BLOCK_ROWS:BLOCK_ROWS + 60]).any()
    np.testing.assert_array_equal(rows, got[BLOCK_ROWS - 20:BLOCK_ROWS + 60])
