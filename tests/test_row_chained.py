"""The chained single-row kernel: the same leaves as the native libraries' ``pred_leaf`` and the
same margins as native ``raw_score`` / ``output_margin`` and the batch kernels, bit for bit.

Its splits are the rank coding's (NaN either way, LightGBM's missing types, ``<=`` at the
largest double and at +inf, categorical bitsets narrow and wide), so these cases cover what the
chained layout itself adds: trees of every size in fixed-stride blocks (stumps, single leaves,
127-leaf deep lopsided trees), chunks handed out to the lanes (fewer trees than lanes, chunks
of one tree at the end), the park record, multiclass groups, and the fallback past its limits.
"""

from __future__ import annotations

import numpy as np
import pytest
from lgb_models import LgbSpec, row_kernel_specs, stress_rows, train
from row_checks import check_layout, largest_threshold_case, wide_category_case, with_infinities
from xgb_models import XGBSpec, dmatrix, make_model, with_odd_categories
from xgb_models import row_kernel_specs as xgb_row_kernel_specs

import treeprune as tp
from treeprune.kernels import chained
from treeprune.kernels.chained import (
    LANES,
    chained_margin_kernel,
    chained_margin_one_kernel,
    chunks,
    leaves_row_chained,
    margin_row_chained32,
    margin_row_chained64,
)
from treeprune.kernels.ranked import margin_row_ranked64
from treeprune.kernels.traverse import leaves_blocked, margins_blocked
from treeprune.packed import pack
from treeprune.predict import leaves_packed, margins_packed


def _check(ens, X, native_margin=None, native_leaf=None):
    """:func:`row_checks.check_layout` on the chained layout, which the single-row paths take."""
    p = pack(ens)
    assert p.chained is not None
    buf = p.chained[0]
    kernel, args = p.single_row
    assert kernel is chained_margin_kernel(p.dtype) and args[0] is buf
    if len(p.base_margin) == 1:
        one, args = p.single_row_one
        assert one is chained_margin_one_kernel(p.dtype) and args[0] is buf
    else:
        assert p.single_row_one is None
    check_layout(ens, X, p.chained, kernel, chained_margin_one_kernel(p.dtype),
                 leaves_row_chained, native_margin, native_leaf)


LGB_SPECS = [
    *row_kernel_specs(LANES),
    # deep, lopsided leaf-wise trees: blocks of 128 records
    LgbSpec("binary", num_leaves=127, n_trees=12, n_rows=3000, nan_frac=0.05, n_cat=1,
            params=(("min_data_in_leaf", 2), ("min_sum_hessian_in_leaf", 0.0))),
    # 64 leaves: 63 splits and the spare record fill a block of 64 exactly
    LgbSpec("binary", num_leaves=64, n_trees=9, n_rows=2000, seed=2,
            params=(("min_data_in_leaf", 2), ("min_sum_hessian_in_leaf", 0.0))),
    # wide rows, many NaN; zero as missing with many zeros
    LgbSpec("binary", num_leaves=31, n_trees=30, n_rows=1500, n_features=40, nan_frac=0.2),
    LgbSpec("regression", missing="zero", zero_frac=0.4, num_leaves=31, n_trees=17,
            n_rows=1000, n_features=12, seed=3),
]


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_chained_matches_native(spec):
    booster, Xe = train(spec)
    X = with_infinities(np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64))
    ens = tp.load(booster)
    _check(ens, X, booster.predict(X, raw_score=True), booster.predict(X, pred_leaf=True))
    if spec.num_leaves == 64:
        assert ens.tree_n_leaves().max() == 64  # the case under test


def test_lightgbm_wide_category_bitsets():
    _check(*wide_category_case())


def test_lightgbm_le_at_the_largest_double_and_infinity():
    _check(*largest_threshold_case())


XGB_SPECS = xgb_row_kernel_specs()


@pytest.mark.parametrize("spec", XGB_SPECS, ids=lambda s: s.id)
def test_xgboost_chained_matches_native(spec):
    booster, X, _ = make_model(spec)
    X = with_odd_categories(spec, X)
    dm = dmatrix(spec, X)
    ens = tp.load(booster)
    _check(ens, X, booster.predict(dm, output_margin=True), booster.predict(dm, pred_leaf=True))
    _check(ens, with_infinities(X[:30]))  # XGBoost's DMatrix refuses inf: the batch kernels
    if spec.extra.get("gamma"):
        assert (ens.tree_n_leaves() == 1).any()  # the case under test


def test_chunks_cover_the_trees_in_order_and_end_with_single_trees():
    for n in (0, 1, 7, 8, 9, 100, 800, 5000):
        b = chunks(n)
        assert b[0] == 0 and b[-1] == n
        assert (np.diff(b) >= 1).all()
        if n > 2 * LANES:
            assert np.diff(b)[0] > 1 and np.diff(b)[-1] == 1
    assert len(chunks(800)) - 1 < 100  # a lane changes chunks a few dozen times per row


def test_single_row_paths_take_the_chained_kernel():
    booster, Xe = train(row_kernel_specs(LANES)[0])
    X = np.asarray(stress_rows(booster, Xe, 5), dtype=np.float64)[:200]
    ens = tp.load(booster)
    assert pack(ens).single_row[0] is margin_row_chained64
    batch = ens.predict(X, output="margin")
    f = ens.predictor("margin")
    for i, x in enumerate(X):
        assert ens.predict(x, output="margin")[0] == batch[i]
        assert f(x)[0] == batch[i]
    balanced = tp.load(make_model(XGBSpec(n_trees=5, max_depth=3))[0])
    assert pack(balanced).single_row[0] is margin_row_chained32


def test_models_past_the_limits_keep_the_rank_coded_kernel(monkeypatch):
    # blocks smaller than the trees need: the rank-coded lanes, with the same margins
    monkeypatch.setattr(chained, "MAX_BLOCK", 8)
    booster, Xe = train(row_kernel_specs(LANES)[0])
    ens = tp.load(booster)
    p = pack(ens)
    assert p.chained is None and p.single_row[0] is margin_row_ranked64
    X = np.asarray(Xe, dtype=np.float64)[:100]
    f = ens.predictor("margin")
    np.testing.assert_array_equal([f(x)[0] for x in X], ens.predict(X, output="margin"))


def test_padding_past_the_limit_keeps_the_rank_coded_kernel(monkeypatch):
    # trees of different sizes in equal blocks: padding. Past MAX_PADDING times the records
    # the trees need (here: any padding beyond the spare records and 4096), no chained layout
    booster, _ = train(LgbSpec("binary", num_leaves=63, n_trees=300, n_rows=800))
    ens = tp.load(booster)
    leaves = ens.tree_n_leaves()
    assert leaves.min() < leaves.max()  # the case under test: blocks padded
    monkeypatch.setattr(chained, "MAX_PADDING", 1)
    assert pack(ens).chained is None
    assert pack(ens).single_row[0] is margin_row_ranked64


def test_a_model_with_only_categorical_splits():
    # no numerical feature to rank: the rank coding's tables are empty (a single row raised
    # ValueError here before)
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    C = rng.integers(0, 10, size=(3000, 2)).astype(np.float64)
    y = ((C[:, 0] % 3 == 0) ^ (C[:, 1] > 6)).astype(np.float64)
    booster = lgb.train({"objective": "binary", "num_leaves": 8, "verbose": -1,
                         "num_threads": 1, "min_data_per_group": 5, "cat_smooth": 1.0},
                        lgb.Dataset(C, y, categorical_feature=[0, 1]), 10)
    ens = tp.load(booster)
    assert (ens.cat_index[ens.left >= 0] >= 0).all()  # the case under test
    X = np.concatenate([C[:200], [[np.nan, 3.0], [-1.0, 2.0], [2.5, 99.0], [1e10, 0.0]]])
    _check(ens, X, booster.predict(X, raw_score=True), booster.predict(X, pred_leaf=True))


def test_a_model_without_trees_predicts_its_base_margin():
    from treeprune.ensemble import NODE_FIELDS

    booster, Xe = train(row_kernel_specs(LANES)[2])
    ens = tp.load(booster)
    empty = ens.replace(tree_offsets=np.zeros(1, np.int64), tree_group=ens.tree_group[:0],
                        tree_weight=ens.tree_weight[:0],
                        **{f: getattr(ens, f)[:0] for f in NODE_FIELDS})
    assert pack(empty).chained is None
    x = np.asarray(Xe, dtype=np.float64)[0]
    want = empty.predict(x[None, :], output="margin")
    np.testing.assert_array_equal(empty.predict(x, output="margin"), want)
    np.testing.assert_array_equal(empty.predictor("margin")(x), want)


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_batches_on_the_chained_layout(spec):
    """Batches of a LightGBM model with mostly lopsided trees go a row at a time through the
    chained layout (margins_chained, leaves_chained): the walk kernels' margins bit for bit,
    native's within 1e-5, and their leaves (native's pred_leaf), with one thread and with two."""
    booster, Xe = train(spec)
    X = with_infinities(np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64))
    ens = tp.load(booster)
    p = pack(ens)
    lopsided = np.count_nonzero(p.trees[:, 3]) * 2 >= len(p.trees)
    assert (p.rows_chained is not None) == (lopsided and p.shallow is None)
    walk = np.empty((len(X), len(p.base_margin)), p.dtype)
    walk[:] = p.base_margin
    margins_blocked(X, *p.walk_args, walk)
    walk_leaves = leaves_blocked(X, p.trees, p.info, p.threshold, p.left, p.cat, p.cat_bounds,
                                 p.cat_words, p.rule, p.simple,
                                 np.empty((len(X), len(p.trees)), np.int32))
    for n_threads in (1, 2):
        got = margins_packed(p, X, n_threads)
        np.testing.assert_array_equal(got, walk)
        np.testing.assert_array_equal(leaves_packed(p, X, n_threads), walk_leaves)
    np.testing.assert_array_equal(p.native_id[walk_leaves], booster.predict(X, pred_leaf=True))
    np.testing.assert_allclose(got, booster.predict(X, raw_score=True).reshape(got.shape),
                               rtol=0, atol=1e-5)
    if spec.num_leaves >= 63:
        assert p.rows_chained is not None  # the case under test


def test_balanced_and_xgboost_batches_keep_the_walk_kernels():
    assert pack(tp.load(make_model(XGBSpec(n_trees=5, max_depth=6))[0])).rows_chained is None
    booster, _ = train(LgbSpec("binary", num_leaves=8, max_depth=3, n_trees=5))
    assert pack(tp.load(booster)).rows_chained is None  # shallow: the straight-line kernel
