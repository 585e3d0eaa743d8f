"""Statistics-based passes: collapse by stored gain/cover, cap depth, drop trees by total gain."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from models import build, make_ens
from test_passes_lossless import (
    _data,
    assert_unchanged,
    margins,
    reference_leaves,
    snapshot,
)

from treeprune.ensemble import Ensemble
from treeprune.errors import PruneError
from treeprune.io import load
from treeprune.passes.statistics import (
    cap_depth,
    collapse_low_gain,
    collapsed_value,
    drop_low_gain_trees,
    keep_top_trees_by_gain,
    tree_total_gain,
    xgboost_learning_rates,
)
from treeprune.trees import get_trees

NAN = math.nan

_MODELS: dict = {}


def xgb_model(depth=5, rounds=10, monotone=None, from_file=False, objective="binary:logistic",
              **extra):
    key = ("xgb", depth, rounds, monotone, from_file, objective, tuple(sorted(extra.items())))
    if key not in _MODELS:
        X, y, _ = _data(n=800)
        params = {"objective": objective, "max_depth": depth, "nthread": 1, "seed": 0, **extra}
        if objective.startswith("multi"):
            y = (np.nan_to_num(X[:, 0]) > 0).astype(float) + (np.nan_to_num(X[:, 1]) > 0.5)
            params["num_class"] = 3
        if monotone:
            params["monotone_constraints"] = "(" + ",".join(map(str, monotone)) + ")"
        booster = xgb.train(params, xgb.DMatrix(X, label=y), rounds)
        ens = load(bytearray(booster.save_raw("json"))) if from_file else load(booster)
        _MODELS[key] = (ens, X, booster)
    return _MODELS[key]


def lgb_model(num_leaves=15, rounds=10, monotone=None, objective="binary", **extra):
    key = ("lgb", num_leaves, rounds, monotone, objective, tuple(sorted(extra.items())))
    if key not in _MODELS:
        X, y, _ = _data(n=800)
        params = {"objective": objective, "num_leaves": num_leaves, "verbose": -1,
                  "num_threads": 1, "seed": 0, "min_data_in_leaf": 5, "deterministic": True,
                  **extra}
        if objective == "multiclass":
            y = (np.nan_to_num(X[:, 0]) > 0).astype(float) + (np.nan_to_num(X[:, 1]) > 0.5)
            params["num_class"] = 3
        if monotone:
            params["monotone_constraints"] = list(monotone)
        booster = lgb.train(params, lgb.Dataset(X, label=y), rounds)
        _MODELS[key] = (load(booster), X, booster)
    return _MODELS[key]


MODELS = [
    pytest.param(lambda: xgb_model(), id="xgb"),
    pytest.param(lambda: xgb_model(from_file=True, reg_lambda=3.0, eta=0.2), id="xgb-file"),
    pytest.param(lambda: xgb_model(depth=3, objective="multi:softprob"), id="xgb-multi"),
    pytest.param(lambda: lgb_model(), id="lgb"),
    pytest.param(lambda: lgb_model(num_leaves=7, objective="multiclass"), id="lgb-multi"),
]


def n_internal(ens: Ensemble) -> int:
    return int(np.count_nonzero(ens.left >= 0))


def paired_nodes(orig: Ensemble, new: Ensemble, t: int):
    """(orig local id, new local id) of the nodes of tree ``t``, matched by path from the root.

    ``new``'s tree must be ``orig``'s with some subtrees collapsed.
    """
    so, sn = orig.tree_slice(t), new.tree_slice(t)
    stack = [(0, 0)]
    while stack:
        a, b = stack.pop()
        yield a, b
        if new.left[sn][b] >= 0:
            assert orig.feature[so][a] == new.feature[sn][b]
            stack.append((int(orig.left[so][a]), int(new.left[sn][b])))
            stack.append((int(orig.right[so][a]), int(new.right[sn][b])))


def collapsed_pairs(orig: Ensemble, new: Ensemble):
    """(tree, orig node, new value) of every leaf of ``new`` that was a split in ``orig``."""
    for t in range(orig.n_trees):
        so, sn = orig.tree_slice(t), new.tree_slice(t)
        for a, b in paired_nodes(orig, new, t):
            if new.left[sn][b] < 0 and orig.left[so][a] >= 0:
                yield t, a, float(new.value[sn][b])


def native_margins(ens: Ensemble, path, X: np.ndarray) -> np.ndarray:
    ens.save(path)
    if ens.source == "xgboost":
        out = xgb.Booster(model_file=str(path)).predict(xgb.DMatrix(X), output_margin=True)
    else:
        out = lgb.Booster(model_file=str(path)).predict(X, raw_score=True)
    return out


def check_native(ens: Ensemble, tmp_path, X: np.ndarray) -> None:
    path = tmp_path / ("m.json" if ens.source == "xgboost" else "m.txt")
    expected = margins(ens, X)
    np.testing.assert_allclose(native_margins(ens, path, X).reshape(expected.shape), expected,
                               rtol=0, atol=1e-5)


def is_monotone(ens: Ensemble, feature: int, sign: int, seed: int = 0) -> bool:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(100, ens.n_features))
    base[rng.random(base.shape) < 0.1] = np.nan
    grid = np.linspace(-3, 3, 41)
    Z = np.repeat(base, len(grid), axis=0)
    Z[:, feature] = np.tile(grid, len(base))
    m = margins(ens, Z).reshape(len(base), len(grid))
    return bool(np.all(sign * np.diff(m, axis=1) >= -1e-6))


# ----------------------------------------------------------------------------- collapse_low_gain
@pytest.mark.parametrize("make", MODELS)
def test_collapse_low_gain_shrinks_monotonically(make, tmp_path):
    ens, X, _ = make()
    snap = snapshot(ens)
    finite = ens.gain[(ens.left >= 0) & np.isfinite(ens.gain)]
    thresholds = [0.0, *np.quantile(finite, [0.1, 0.5, 0.9]).tolist(), float(finite.max()) + 1]
    leaves = []
    for g in thresholds:
        out = collapse_low_gain(ens, min_gain=g)
        assert out.n_trees == ens.n_trees
        rec = out.history[-1]
        assert rec.name == "collapse_low_gain" and not rec.lossless
        assert rec.params["min_gain"] == g
        assert rec.collapsed_splits == n_internal(ens) - n_internal(out)
        assert rec.leaves_before == ens.n_leaves and rec.leaves_after == out.n_leaves
        leaves.append(out.n_leaves)
        # what stays: no split over two leaves with gain below the threshold
        internal = np.flatnonzero(out.left >= 0)
        for t in range(out.n_trees):
            sl = out.tree_slice(t)
            lft, rgt = out.left[sl], out.right[sl]
            for i in np.flatnonzero(lft >= 0):
                if lft[lft[i]] < 0 and lft[rgt[i]] < 0:
                    assert not out.gain[sl][i] < g
        assert len(internal) == n_internal(out)
    assert leaves == sorted(leaves, reverse=True)
    assert leaves[0] == ens.n_leaves
    assert leaves[-1] == ens.n_trees  # everything collapsed to one leaf per tree
    mid = collapse_low_gain(ens, min_gain=thresholds[2])
    check_native(mid, tmp_path, X)
    assert_unchanged(ens, snap)


@pytest.mark.parametrize("make", MODELS[:1] + MODELS[3:4])
def test_collapse_low_cover_shrinks_monotonically(make):
    ens, X, _ = make()
    covers = [0.0, 1.0, 5.0, 20.0, 1e9]
    leaves = [collapse_low_gain(ens, min_cover=c).n_leaves for c in covers]
    assert leaves == sorted(leaves, reverse=True) and leaves[0] == ens.n_leaves
    assert leaves[-1] == ens.n_trees
    out = collapse_low_gain(ens, min_cover=5.0)
    for t in range(out.n_trees):
        sl = out.tree_slice(t)
        lft, rgt = out.left[sl], out.right[sl]
        for i in np.flatnonzero(lft >= 0):
            if lft[lft[i]] < 0 and lft[rgt[i]] < 0:
                assert out.cover[sl][i] >= 5.0


def test_collapsed_values_lightgbm_are_internal_values():
    ens, X, _ = lgb_model()
    out = cap_depth(ens, 2)
    pairs = list(collapsed_pairs(ens, out))
    assert pairs
    for t, a, v in pairs:
        assert v == ens.value[ens.tree_slice(t)][a]  # internal_value, shrunk, intercept included
        assert v == collapsed_value(ens, t, a)
    out = collapse_low_gain(ens, min_gain=float(np.nanmedian(ens.gain[ens.left >= 0])))
    for t, a, v in collapsed_pairs(ens, out):
        assert v == ens.value[ens.tree_slice(t)][a]


@pytest.mark.parametrize("from_file", [False, True])
def test_collapsed_values_xgboost_are_eta_times_base_weight(from_file):
    ens, X, booster = xgb_model(from_file=from_file, eta=0.2, reg_lambda=3.0)
    eta, lam, info = xgboost_learning_rates(ens)
    np.testing.assert_allclose(eta, 0.2, rtol=1e-5)
    assert lam == pytest.approx(3.0, rel=1e-5)
    assert info["lambda_source"] == ("estimated" if from_file else "config")
    out = cap_depth(ens, 2)
    pairs = list(collapsed_pairs(ens, out))
    assert pairs
    for t, a, v in pairs:
        bw = ens.value[ens.tree_slice(t)][a]  # XGBoost's base_weights: unshrunk
        assert v == pytest.approx(0.2 * bw, rel=1e-5)
    # the same identity the learning rate comes from: the shrunk value is the hessian-weighted
    # (lambda-regularised) combination of the leaves below
    for t, a, v in pairs[:20]:
        sl = ens.tree_slice(t)
        stack, leaves = [a], []
        while stack:
            i = stack.pop()
            if ens.left[sl][i] < 0:
                leaves.append(i)
            else:
                stack += [int(ens.left[sl][i]), int(ens.right[sl][i])]
        val, cov = ens.value[sl][leaves], ens.cover[sl][leaves]
        assert v == pytest.approx(np.sum(val * (cov + lam)) / (cov.sum() + lam), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_cap_depth_of_one_round_equals_shallow_training(source):
    """Round 1 depends on nothing but the data: a deep tree capped at 2 is the depth-2 tree."""
    X, y, _ = _data(n=1000, n_num=5)
    if source == "xgboost":
        params = {"objective": "binary:logistic", "eta": 0.3, "reg_lambda": 2.0, "nthread": 1}
        deep = xgb.train({**params, "max_depth": 6}, xgb.DMatrix(X, label=y), 1)
        shallow = xgb.train({**params, "max_depth": 2}, xgb.DMatrix(X, label=y), 1)
        expected = shallow.predict(xgb.DMatrix(X), output_margin=True)
        for src in (deep, bytearray(deep.save_raw("json"))):
            capped = cap_depth(load(src), 2)
            np.testing.assert_allclose(margins(capped, X), expected, rtol=0, atol=1e-6)
    else:
        params = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
        deep = lgb.train({**params, "num_leaves": 63, "max_depth": 6}, lgb.Dataset(X, label=y), 1)
        shallow = lgb.train({**params, "num_leaves": 4, "max_depth": 2}, lgb.Dataset(X, label=y),
                            1)
        capped = cap_depth(load(deep), 2)
        # LightGBM prints internal_value with 6 significant digits
        np.testing.assert_allclose(margins(capped, X), shallow.predict(X, raw_score=True),
                                   rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- cap_depth
@pytest.mark.parametrize("make", MODELS)
def test_cap_depth(make, tmp_path):
    ens, X, _ = make()
    snap = snapshot(ens)
    deepest = int(ens.tree_depths().max())
    prev = ens.n_leaves
    for d in range(deepest, -1, -1):
        out = cap_depth(ens, d)
        assert int(out.tree_depths().max()) <= d
        assert out.n_leaves <= prev
        prev = out.n_leaves
        rec = out.history[-1]
        assert rec.params["max_depth"] == d and not rec.lossless
        assert rec.collapsed_splits == n_internal(ens) - n_internal(out)
        if d == deepest:
            assert rec.collapsed_splits == 0 and out.n_nodes == ens.n_nodes
    roots = cap_depth(ens, 0)
    assert roots.n_nodes == ens.n_trees
    for t in range(ens.n_trees):
        assert roots.value[t] == pytest.approx(collapsed_value(ens, t, 0))
    check_native(cap_depth(ens, 2), tmp_path, X)
    assert_unchanged(ens, snap)
    with pytest.raises(PruneError, match="max_depth"):
        cap_depth(ens, -1)


def test_fallback_values_when_internal_values_are_unknown():
    tree = dict(f=0, t=0.0, g=0.1, h=4.0, l=dict(leaf=1.0, h=1.0), r=dict(leaf=3.0, h=3.0))
    # LightGBM: cover-weighted mean
    ens = make_ens([build(tree)], source="lightgbm")
    out = collapse_low_gain(ens, min_gain=1.0)
    assert out.value[0] == pytest.approx((1 * 1 + 3 * 3) / 4)
    assert out.history[-1].details["fallback_values"] == 1
    # XGBoost with the trainer's lambda: sum v (H + lambda) / (H + lambda)
    ens = make_ens([build(tree)]).replace(source_meta={"xgboost_train_params": {"lambda": 2}})
    out = cap_depth(ens, 0)
    assert out.value[0] == pytest.approx((1 * 3 + 3 * 5) / (4 + 2))
    # covers unknown: plain mean
    ens = make_ens([build(dict(f=0, t=0.0, g=0.1, l=1.0, r=4.0))], source="lightgbm")
    assert cap_depth(ens, 0).value[0] == 2.5


def test_collapse_is_bottom_up_and_respects_gain():
    # the inner split (gain 1) goes first, then the root (gain 2) sees two leaves
    tree = dict(f=0, t=0.0, g=2.0, v=10.0, l=dict(f=1, t=0.0, g=1.0, v=20.0, l=1.0, r=2.0),
                r=dict(f=1, t=1.0, g=50.0, v=30.0, l=3.0, r=4.0))
    ens = make_ens([build(tree)], source="lightgbm")
    out = collapse_low_gain(ens, min_gain=1.5)
    assert out.n_leaves == 3 and out.history[-1].collapsed_splits == 1
    assert sorted(out.value[out.left < 0]) == [3.0, 4.0, 20.0]
    out = collapse_low_gain(ens, min_gain=100.0)
    assert out.n_nodes == 1 and out.value[0] == 10.0 and out.history[-1].collapsed_splits == 3
    # unknown gains never count as low
    tree_nan = dict(f=0, t=0.0, v=10.0, l=1.0, r=2.0)
    assert collapse_low_gain(make_ens([build(tree_nan)], source="lightgbm"), 1e9).n_leaves == 2


# ----------------------------------------------------------------------------- monotone
def test_collapse_clips_to_keep_monotone_splits_ordered():
    # f0 is increasing; the left subtree's trainer value 6 would exceed the right leaf 5
    tree = dict(f=0, t=0.0, g=9.0, v=4.0, l=dict(f=1, t=0.0, g=0.1, v=6.0, l=0.0, r=4.0), r=5.0)
    ens = make_ens([build(tree)], source="lightgbm", monotone=(1, 0, 0))
    out = collapse_low_gain(ens, min_gain=1.0)
    assert sorted(out.value[out.left < 0]) == [5.0, 5.0]
    assert out.history[-1].details["monotone_clipped"] == 1
    free = collapse_low_gain(ens, min_gain=1.0, respect_monotone=False)
    assert sorted(free.value[free.left < 0]) == [5.0, 6.0]
    # two collapses under one monotone split: the second sees the first's new value
    tree = dict(f=0, t=0.0, g=9.0, l=dict(f=1, t=0.0, g=0.1, v=3.0, l=0.0, r=2.0),
                r=dict(f=2, t=0.0, g=9.0, l=dict(f=1, t=0.0, g=0.1, v=2.5, l=4.0, r=6.0), r=7.0))
    ens = make_ens([build(tree)], source="lightgbm", monotone=(1, 0, 0))
    out = collapse_low_gain(ens, min_gain=1.0)
    assert out.value[out.left < 0].tolist() == [2.5, 2.5, 7.0]
    # decreasing constraint: the left side is the high side
    tree = dict(f=0, t=0.0, g=9.0, v=4.0, l=5.0, r=dict(f=1, t=0.0, g=0.1, v=6.0, l=0.0, r=4.0))
    ens = make_ens([build(tree)], source="lightgbm", monotone=(-1, 0, 0))
    out = cap_depth(ens, 1)
    assert sorted(out.value[out.left < 0]) == [5.0, 5.0]


def test_collapse_skips_when_no_ordered_value_exists():
    # the tree is not ordered (3 on the left of the root, 2 on the right): node B cannot be
    # collapsed monotonically
    tree = dict(f=0, t=0.0, g=9.0, l=3.0,
                r=dict(f=0, t=1.0, g=9.0, l=dict(f=1, t=0.0, g=0.1, v=5.0, l=4.0, r=6.0), r=2.0))
    ens = make_ens([build(tree)], source="lightgbm", monotone=(1, 0, 0))
    out = collapse_low_gain(ens, min_gain=1.0)
    assert out.n_leaves == 4 and out.history[-1].details["monotone_skipped"] == 1
    out = cap_depth(ens, 2)
    assert out.n_leaves == 3 and out.history[-1].details["monotone_unresolved"] == 1


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_monotone_models_stay_monotone(source):
    mono = (1, -1, 0, 0)
    if source == "xgboost":
        ens, X, _ = xgb_model(depth=6, rounds=15, monotone=mono)
    else:
        ens, X, _ = lgb_model(num_leaves=31, rounds=15, monotone=mono)
    assert is_monotone(ens, 0, 1) and is_monotone(ens, 1, -1)
    finite = ens.gain[(ens.left >= 0) & np.isfinite(ens.gain)]
    for out in (cap_depth(ens, 2), cap_depth(ens, 1),
                collapse_low_gain(ens, min_gain=float(np.quantile(finite, 0.5))),
                collapse_low_gain(ens, min_cover=30.0)):
        assert out.n_leaves < ens.n_leaves
        assert is_monotone(out, 0, 1) and is_monotone(out, 1, -1)


# ----------------------------------------------------------------------------- dropping trees
def per_tree(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    leaves = reference_leaves(ens, X)
    return ens.value[leaves] * ens.tree_weight[None, :]


@pytest.mark.parametrize("make", MODELS)
def test_keep_top_trees_by_gain(make, tmp_path):
    ens, X, _ = make()
    snap = snapshot(ens)
    gains = tree_total_gain(ens)
    n_keep = max(ens.n_groups, ens.n_trees // 3)
    out = keep_top_trees_by_gain(ens, n_keep)
    rec = out.history[-1]
    kept = sorted(set(range(ens.n_trees)) - set(rec.removed_trees))
    assert out.n_trees == len(kept) == max(n_keep, out.n_trees)
    if ens.n_groups == 1:
        assert len(kept) == n_keep
        assert gains[kept].min() >= np.delete(gains, kept).max()
    assert set(out.tree_group.tolist()) == set(ens.tree_group.tolist())
    assert rec.name == "keep_top_trees_by_gain" and not rec.lossless and rec.params["n_trees"] == n_keep
    # the kept trees are the originals, in order; the margin is their sum plus what moved into
    # the base margin (the intercept of a dropped first tree, dropped constants)
    pt = per_tree(ens, X)
    for g in range(ens.n_groups):
        in_g = [t for t in kept if ens.tree_group[t] == g]
        first = int(np.flatnonzero(ens.tree_group == g)[0])
        expected = ens.base_margin[g] + pt[:, in_g].sum(axis=1)
        if first not in kept:
            expected = expected + ens.folded_intercept[g]
        got = margins(out, X)
        got = got if got.ndim == 1 else got[:, g]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    check_native(out, tmp_path, X)
    assert_unchanged(ens, snap)
    with pytest.raises(PruneError, match="n_trees"):
        keep_top_trees_by_gain(ens, 0)


def test_dropping_lightgbm_first_tree_keeps_intercept(tmp_path):
    trees = [build(dict(f=0, t=0.0, g=1.0, l=0.4, r=0.6)),  # first: holds the 0.5 intercept
             build(dict(f=1, t=0.0, g=10.0, l=-1.0, r=1.0)),
             build(0.3),  # a constant (no gain)
             build(dict(f=2, t=0.0, g=0.5, l=-0.1, r=0.1))]
    ens = make_ens(trees, source="lightgbm", folded=[0.5])
    out = keep_top_trees_by_gain(ens, 1)
    assert out.n_trees == 1 and out.history[-1].removed_trees == (0, 2, 3)
    assert out.base_margin[0] == pytest.approx(0.8) and out.folded_intercept[0] == 0.0
    det = out.history[-1].details
    assert det["intercept_to_base_margin"] == [0.5] and det["constants_to_base_margin"] == [0.3]
    X = np.array([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [NAN, NAN, NAN]])
    assert margins(out, X).tolist() == pytest.approx([-0.2, 1.8, -0.2])
    # drop_low_gain_trees follows the same rule
    out2 = drop_low_gain_trees(ens, min_total_gain=2.0)
    assert out2.history[-1].removed_trees == (0, 2, 3)
    assert margins(out2, X).tolist() == pytest.approx([-0.2, 1.8, -0.2])


@pytest.mark.parametrize("make", [MODELS[0], MODELS[2], MODELS[3], MODELS[4]])
def test_drop_low_gain_trees(make, tmp_path):
    ens, X, _ = make()
    gains = tree_total_gain(ens)
    thr = float(np.median(gains))
    out = drop_low_gain_trees(ens, thr)
    rec = out.history[-1]
    assert rec.params == {"min_total_gain": thr}
    for t in rec.removed_trees:
        assert gains[t] < thr
    kept = sorted(set(range(ens.n_trees)) - set(rec.removed_trees))
    assert all(gains[t] >= thr for t in kept) or ens.n_groups > 1
    # every group keeps a tree, even with an impossible threshold
    none_left = drop_low_gain_trees(ens, math.inf)
    assert none_left.n_trees == ens.n_groups
    assert sorted(none_left.tree_group.tolist()) == list(range(ens.n_groups))
    check_native(out, tmp_path, X)


def test_statistics_passes_chain_with_history():
    ens, X, _ = lgb_model()
    out = keep_top_trees_by_gain(cap_depth(collapse_low_gain(ens, min_gain=1.0), 3), 5)
    assert [r.name for r in out.history[-3:]] == ["collapse_low_gain", "cap_depth",
                                                  "keep_top_trees_by_gain"]
    assert out.history[-3].trees_before == ens.n_trees and out.n_trees == 5
    assert len(get_trees(out)) == 5
