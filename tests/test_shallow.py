"""The straight-line kernels for shallow trees, exact against the native libraries and the walks.

Models of depth 1 to 3 go to :mod:`treeprune.kernels.shallow` (every tree full to depth 2 or 3,
all decisions taken, the leaf picked by selects) for margins and leaves; these cases cover trees
shallower than the layout (padded slots), NaN in many rows and in none, values at the
thresholds and their float neighbours, several output groups, DART weights, float32 and float64
input, and row counts that are not multiples of the block. The margins and leaf ids must equal the
native library's and, bit for bit, the node walks' (:mod:`treeprune.kernels.traverse`). Deeper
balanced trees take their top three levels by the same code and walk the rest.
"""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from lgb_models import LgbSpec, stress_rows, train
from xgb_models import XGBSpec, dmatrix, make_model

import treeprune as tp
from treeprune.kernels.shallow import SHALLOW_ROWS
from treeprune.kernels.traverse import leaves_blocked, margins_blocked
from treeprune.packed import pack


def _walk_margins(ens, X):
    """Margins by the node walks, in the model's precision."""
    p = pack(ens)
    out = np.empty((len(X), len(p.base_margin)), dtype=p.dtype)
    out[:] = p.base_margin
    margins_blocked(np.ascontiguousarray(X, dtype=p.dtype), p.trees, p.info, p.threshold, p.left,
                    p.cat, p.cat_bounds, p.cat_words, p.leaf_value, p.rule, p.simple, out)
    return out.astype(np.float64).reshape(len(X), -1)


def _walk_leaves(ens, X):
    """Packed leaf ids by the node walks."""
    p = pack(ens)
    out = np.empty((len(X), len(p.trees)), dtype=np.int32)
    leaves_blocked(np.ascontiguousarray(X, dtype=p.dtype), p.trees, p.info, p.threshold, p.left,
                   p.cat, p.cat_bounds, p.cat_words, p.rule, p.simple, out)
    return out


def _leaves_match(ens, X, native_leaves):
    """Leaf ids equal to the native ones, per-tree outputs to the walks' leaf values."""
    p = pack(ens)
    walk = _walk_leaves(ens, X)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), native_leaves)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), p.native_id[walk])
    np.testing.assert_array_equal(ens.predict(X, output="per_tree"),
                                  p.leaf_value[walk].astype(np.float64))


def _at_thresholds(ens, X, rng):
    """Rows of ``X`` with one feature set to a split threshold or a float neighbour of it."""
    rows = []
    for nd in np.flatnonzero(ens.left >= 0)[:200]:
        t = float(ens.threshold[nd])
        for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf),
                  float(np.nextafter(np.float32(t), np.float32(-np.inf)))):
            r = X[rng.integers(len(X))].copy()
            r[ens.feature[nd]] = v
            rows.append(r)
    return np.concatenate([X, np.array(rows)])


XGB_SPECS = [
    XGBSpec(n_trees=7, max_depth=1, seed=1),
    XGBSpec(n_trees=40, max_depth=2, seed=2),
    XGBSpec(n_trees=40, max_depth=3, seed=3, nan_rate=0.3),
    XGBSpec(objective="multi:softprob", n_trees=6, max_depth=2, seed=4),
    XGBSpec(objective="reg:squarederror", booster="dart", n_trees=12, max_depth=3, seed=5),
    # lossguide: leaves at depths 1 to 3 side by side (padded slots)
    XGBSpec(n_trees=15, max_depth=3, seed=6, extra={"grow_policy": "lossguide",
                                                    "max_leaves": 5}),
]


@pytest.mark.parametrize("spec", XGB_SPECS, ids=lambda s: s.id)
def test_xgboost_shallow_matches_native_and_walk(spec):
    booster, X, _ = make_model(spec)
    ens = tp.load(booster)
    assert pack(ens).shallow is not None
    rng = np.random.default_rng(spec.seed)
    X = _at_thresholds(ens, X, rng)
    X = np.concatenate([X, X[: SHALLOW_ROWS + 3]])  # a short last block
    X[:SHALLOW_ROWS] = np.nan_to_num(X[:SHALLOW_ROWS], nan=0.5)  # a block without NaN
    want = booster.predict(dmatrix(spec, X), output_margin=True).reshape(len(X), -1)
    for data in (X, X.astype(np.float32)):
        got = ens.predict(data, output="margin").reshape(len(X), -1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(got, _walk_margins(ens, data))
    np.testing.assert_array_equal(ens.predict(X), ens.predictor()(X))
    _leaves_match(ens, X, booster.predict(dmatrix(spec, X), pred_leaf=True)
                  .reshape(len(X), ens.n_trees))


LGB_SPECS = [
    LgbSpec("binary", num_leaves=4, max_depth=2, n_trees=30, n_rows=600, nan_frac=0.2),
    LgbSpec("regression", num_leaves=8, max_depth=3, n_trees=20, n_rows=600, missing="none"),
    LgbSpec("multiclass", num_leaves=5, max_depth=3, n_trees=6, n_rows=600),
]


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_shallow_matches_native_and_walk(spec):
    booster, Xe = train(spec)
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    ens = tp.load(booster)
    assert pack(ens).shallow is not None
    X = np.concatenate([X, X[: SHALLOW_ROWS + 1]])
    want = booster.predict(X, raw_score=True).reshape(len(X), -1)
    got = ens.predict(X, output="margin").reshape(len(X), -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got, _walk_margins(ens, X))
    _leaves_match(ens, X, booster.predict(X, pred_leaf=True))


DEEP_XGB_SPECS = [
    XGBSpec(n_trees=9, max_depth=4, seed=21, nan_rate=0.3),
    XGBSpec(n_trees=30, max_depth=6, seed=22, n_rows=1500),
    XGBSpec(objective="multi:softprob", n_trees=5, max_depth=5, seed=23, n_rows=900),
]


@pytest.mark.parametrize("spec", DEEP_XGB_SPECS, ids=lambda s: s.id)
def test_deeper_balanced_trees_take_their_top_levels_straight(spec):
    """Balanced trees deeper than 3: the top levels by the straight-line code, the rest walked;
    margins equal the native ones and, bit for bit, the walks'."""
    booster, X, _ = make_model(spec)
    ens = tp.load(booster)
    p = pack(ens)
    assert p.shallow is None and p.prefix is not None
    assert ens.tree_depths().max() > 3
    X = _at_thresholds(ens, X, np.random.default_rng(spec.seed))
    X = np.concatenate([X, X[:150]])
    X[:150] = np.nan_to_num(X[:150], nan=-0.25)  # a block without NaN
    want = booster.predict(dmatrix(spec, X), output_margin=True).reshape(len(X), -1)
    got = ens.predict(X, output="margin").reshape(len(X), -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got, _walk_margins(ens, X))
    # leaves the same way (the top levels straight), equal to native pred_leaf
    _leaves_match(ens, X, booster.predict(dmatrix(spec, X), pred_leaf=True))


def test_deep_lopsided_lightgbm_trees_take_their_top_levels_straight():
    """Leaf-wise trees: the top levels straight, then the walk with its leaf test."""
    spec = LgbSpec("binary", num_leaves=31, n_trees=12, n_rows=1500, nan_frac=0.2,
                   params=(("min_data_in_leaf", 2),))
    booster, Xe = train(spec)
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    ens = tp.load(booster)
    p = pack(ens)
    assert p.prefix is not None and p.trees[:, 3].any()
    want = booster.predict(X, raw_score=True)
    got = ens.predict(X, output="margin")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got, _walk_margins(ens, X)[:, 0])
    _leaves_match(ens, X, booster.predict(X, pred_leaf=True))


def test_models_the_shallow_kernel_does_not_take():
    deep, _, _ = make_model(XGBSpec(n_trees=3, max_depth=4, seed=7))
    assert tp.load(deep).tree_depths().max() == 4
    assert pack(tp.load(deep)).shallow is None
    categorical, _, _ = make_model(XGBSpec(n_cat=1, n_num=3, n_trees=5, max_depth=2, seed=8))
    assert pack(tp.load(categorical)).shallow is None
    # a categorical split in the top levels of deeper trees: walks only
    categorical, _, _ = make_model(XGBSpec(n_cat=1, n_num=3, n_levels=40, n_trees=5,
                                           max_depth=5, seed=8))
    assert pack(tp.load(categorical)).prefix is None
    # LightGBM's missing type Zero takes the full rule
    zero, _ = train(LgbSpec("binary", num_leaves=4, max_depth=2, n_trees=5, missing="zero"))
    assert pack(tp.load(zero)).shallow is None


def test_shallow_rows_are_cast_as_xgboost_casts_them():
    """float64 rows go to the kernel as they are; it rounds them to float32 as XGBoost does, so a
    value between two float32 numbers lands where XGBoost sends it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = (X[:, 0] > 0.1).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, y), 5)
    ens = tp.load(booster)
    t = float(ens.threshold[0])
    # just below the float32 threshold in float64, but rounding up onto it in float32
    below = np.nextafter(t, -np.inf)
    assert np.float32(below) == np.float32(t)
    X[:, ens.feature[0]] = below
    want = booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_array_equal(ens.predict(X, output="margin").astype(np.float32), want)
