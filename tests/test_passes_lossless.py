"""Lossless passes: predictions unchanged for every possible input, inputs never mutated."""

from __future__ import annotations

import itertools
import math

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import build, make_ens

from treeprune.ensemble import NODE_FIELDS, Ensemble
from treeprune.io import load
from treeprune.passes.base import PassRecord
from treeprune.passes.lossless import (
    fold_constant_trees,
    lossless,
    merge_equal_subtrees,
    merge_identical_trees,
    remove_unreachable,
    remove_zero_trees,
)
from treeprune.trees import Tree, assemble, get_trees

NAN, INF = math.nan, math.inf
F32 = np.float32
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def snapshot(ens: Ensemble) -> dict:
    names = (*NODE_FIELDS, "cat_bounds", "cat_words", "tree_offsets", "tree_group",
             "tree_weight", "base_margin", "folded_intercept")
    return {k: np.array(getattr(ens, k), copy=True) for k in names} | {"history": ens.history}


def assert_unchanged(ens: Ensemble, snap: dict) -> None:
    for k, v in snap.items():
        if k == "history":
            assert ens.history == v
        else:
            np.testing.assert_array_equal(getattr(ens, k), v, err_msg=k)


_LGB_ZERO = 1.0000000180025095e-35  # LightGBM's kZeroThreshold (the float 1e-35f)


def reference_leaves(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    """Ensemble node id of the leaf each row reaches in each tree, shape (n_rows, n_trees).

    A plain numpy router written from the documented decision rules (independent of the Numba
    kernels), so that exactness is judged against the rules themselves.
    """
    X = np.asarray(X, dtype=np.float64)
    xgb_rule = ens.source == "xgboost"
    if xgb_rule:
        X = X.astype(np.float32).astype(np.float64)
    else:
        X = np.where(np.abs(X) <= _LGB_ZERO, 0.0, X)  # LightGBM's row reader
    n = len(X)
    out = np.empty((n, ens.n_trees), dtype=np.int64)
    rows = np.arange(n)
    for t in range(ens.n_trees):
        base = int(ens.tree_offsets[t])
        node = np.full(n, base, dtype=np.int64)
        while True:
            active = ens.left[node] >= 0
            if not active.any():
                break
            r, nd = rows[active], node[active]
            x = X[r, ens.feature[nd]]
            dl = ens.default_left[nd]
            isnan = np.isnan(x)
            cat = ens.cat_index[nd]
            is_cat = cat >= 0
            # categorical: bit c of the split's bitset (beyond the bitset: not in the set)
            k = np.where(is_cat, cat, 0)
            begin = ens.cat_bounds[k] if len(ens.cat_bounds) > 1 else np.zeros_like(k)
            n_words = (ens.cat_bounds[k + 1] - begin) if len(ens.cat_bounds) > 1 else begin
            with np.errstate(invalid="ignore"):
                if xgb_rule:
                    valid = ~isnan & (x >= 0) & (x < 2.0**24)
                else:
                    valid = ~isnan & (x > -2147483649.0) & (x < 2147483648.0)
                code = np.where(valid, np.trunc(np.where(valid, x, 0.0)), 0.0).astype(np.int64)
            valid &= code >= 0
            word = np.where(valid, code // 32, 0)
            in_range = valid & (word < n_words)
            words = ens.cat_words[np.where(in_range, begin + word, 0)] if len(ens.cat_words) \
                else np.zeros(len(nd), dtype=np.uint32)
            inside = in_range & (((words >> (code % 32).astype(np.uint32)) & 1) == 1)
            if xgb_rule:
                right = np.where(isnan, ~dl, inside)
            else:
                right = ~inside
            num = ~is_cat
            thr = ens.threshold[nd]
            if xgb_rule:
                thr32 = thr.astype(np.float32).astype(np.float64)
                with np.errstate(invalid="ignore"):
                    r_num = np.where(isnan, ~dl, ~(x < thr32))
            else:
                mt = ens.missing_type[nd]
                nan_default = isnan & (mt == 2)
                xv = np.where(isnan, 0.0, x)
                zero_default = (mt == 1) & (xv == 0.0)
                with np.errstate(invalid="ignore"):
                    r_num = np.where(nan_default | zero_default, ~dl, ~(xv <= thr))
            right[num] = r_num[num]
            child = np.where(right, ens.right[nd], ens.left[nd])
            node[active] = base + child
        out[:, t] = node
    return out


def margins(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    """Margins by the reference router, accumulated as the source library does."""
    leaves = reference_leaves(ens, X)
    dtype = np.float32 if ens.source == "xgboost" else np.float64
    m = np.empty((len(X), ens.n_groups), dtype=dtype)
    m[:] = np.asarray(ens.base_margin, dtype=np.float64).astype(dtype)
    for t in range(ens.n_trees):
        g = int(ens.tree_group[t])
        if ens.source == "xgboost":
            v = ens.value[leaves[:, t]].astype(np.float32) * np.float32(ens.tree_weight[t])
        else:
            v = ens.value[leaves[:, t]] * ens.tree_weight[t]
        m[:, g] += v.astype(dtype)
    m = m.astype(np.float64)
    return m[:, 0] if m.shape[1] == 1 else m


def assert_same(a: Ensemble, b: Ensemble, X: np.ndarray, exact: bool = False) -> None:
    ma, mb = margins(a, X), margins(b, X)
    if exact:
        np.testing.assert_array_equal(ma, mb)
    elif a.source == "xgboost":
        np.testing.assert_allclose(ma, mb, rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(ma, mb, rtol=1e-12, atol=1e-12)


def edge_values(thresholds, source: str) -> np.ndarray:
    """Every threshold, its float32 (and float64) neighbours, ±0, ±inf, NaN, the zero band."""
    vals = {0.0, -0.0, INF, -INF, 1e-35, -1e-35, float(F32(1e-35)), -float(F32(1e-35)),
            5e-36, -5e-36, 1e-300, -1e-300, 1.0, -1.0}
    for t in thresholds:
        if not math.isfinite(t):
            continue
        t32 = F32(t)
        vals.update({float(t), float(t32), float(np.nextafter(t32, F32(INF))),
                     float(np.nextafter(t32, F32(-INF)))})
        if source == "lightgbm":
            vals.update({float(np.nextafter(t, INF)), float(np.nextafter(t, -INF))})
    out = np.array(sorted(vals) + [NAN], dtype=np.float64)
    # keep -0.0 distinct from 0.0 (sorted() may have dropped one of them)
    return np.concatenate([out, [-0.0, 0.0]])


def grid(per_feature: list[np.ndarray]) -> np.ndarray:
    return np.array(list(itertools.product(*per_feature)), dtype=np.float64)


def tree_thresholds(ens: Ensemble) -> np.ndarray:
    internal = (ens.left >= 0) & (ens.cat_index < 0)
    return np.unique(ens.threshold[internal])


def cartesian_tree(a: Tree, b: Tree) -> Tree:
    """A tree computing a(x) + b(x): a copy of ``b`` under every leaf of ``a``."""
    na, nb = a.n_nodes, b.n_nodes
    leaves_a = np.flatnonzero(a.nodes["left"] < 0)
    n = na + len(leaves_a) * nb
    nodes = {k: np.concatenate([a.nodes[k]] + [b.nodes[k]] * len(leaves_a)) for k in a.nodes}
    cat_sets = list(a.cat_sets) + list(b.cat_sets) * len(leaves_a)
    for j, la in enumerate(leaves_a):
        off = na + j * nb
        sl = slice(off, off + nb)
        internal = b.nodes["left"] >= 0
        nodes["left"][sl] = np.where(internal, b.nodes["left"] + off, -1)
        nodes["right"][sl] = np.where(internal, b.nodes["right"] + off, -1)
        cats = b.nodes["cat_index"]
        nodes["cat_index"][sl] = np.where(cats >= 0, cats + len(a.cat_sets) + j * len(b.cat_sets),
                                          -1)
        nodes["value"][sl] = np.where(internal, np.nan, b.nodes["value"] + a.nodes["value"][la])
        # leaf la of a becomes the root of this copy: point a's parent at it
        parent = np.flatnonzero((a.nodes["left"] == la) | (a.nodes["right"] == la))
        if len(parent):
            p = int(parent[0])
            side = "left" if a.nodes["left"][p] == la else "right"
            nodes[side][p] = off
    assert n == len(nodes["left"])
    if a.nodes["left"][0] < 0:  # a is a single leaf: the copy is the whole tree
        nodes = {k: v[na:] for k, v in nodes.items()}
        nodes["left"] = np.where(nodes["left"] >= 0, nodes["left"] - na, -1).astype(np.int32)
        nodes["right"] = np.where(nodes["right"] >= 0, nodes["right"] - na, -1).astype(np.int32)
    return Tree(nodes, cat_sets, a.group, a.weight)


# ----------------------------------------------------------------------------- real models
def _data(n=600, n_num=4, n_cat=0, nan_rate=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_num))
    X[rng.random(X.shape) < nan_rate] = np.nan
    X[rng.random(n) < 0.05, 0] = 0.0
    cats = rng.integers(0, 6, size=(n, n_cat)).astype(float)
    X = np.concatenate([X, cats], axis=1)
    signal = np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) * (np.nan_to_num(X[:, 2]) > 0)
    if n_cat:
        signal += (cats[:, 0] % 2) - 0.5
    y = (signal + 0.5 * rng.normal(size=n) > 0).astype(float)
    return X, y, list(range(n_num, n_num + n_cat))


_MODELS: dict = {}


def xgb_model(depth=4, rounds=8, n_cat=0, objective="binary:logistic", **extra):
    key = ("xgb", depth, rounds, n_cat, objective, tuple(sorted(extra.items())))
    if key not in _MODELS:
        X, y, cat = _data(n_cat=n_cat)
        if objective.startswith("multi"):
            y = (np.nan_to_num(X[:, 0]) > 0).astype(float) + (np.nan_to_num(X[:, 1]) > 0.5)
            extra = {"num_class": 3, **extra}
        ft = ["q"] * (X.shape[1] - n_cat) + ["c"] * n_cat
        dm = xgb.DMatrix(X, label=y, feature_types=ft, enable_categorical=bool(n_cat))
        params = {"objective": objective, "max_depth": depth, "nthread": 1, "seed": 0,
                  "max_cat_to_onehot": 1, **extra}
        booster = xgb.train(params, dm, rounds)
        _MODELS[key] = (load(booster), X)
    return _MODELS[key]


def lgb_model(num_leaves=8, rounds=8, n_cat=0, objective="binary", **extra):
    key = ("lgb", num_leaves, rounds, n_cat, objective, tuple(sorted(extra.items())))
    if key not in _MODELS:
        X, y, cat = _data(n_cat=n_cat)
        if objective == "multiclass":
            y = (np.nan_to_num(X[:, 0]) > 0).astype(float) + (np.nan_to_num(X[:, 1]) > 0.5)
            extra = {"num_class": 3, **extra}
        params = {"objective": objective, "num_leaves": num_leaves, "verbose": -1,
                  "num_threads": 1, "seed": 0, "min_data_in_leaf": 5, "deterministic": True,
                  "cat_smooth": 1, "min_data_per_group": 5, **extra}
        booster = lgb.train(params, lgb.Dataset(X, label=y, categorical_feature=cat or "auto"),
                            rounds)
        _MODELS[key] = (load(booster), X)
    return _MODELS[key]


REAL = [
    pytest.param(lambda: xgb_model(depth=2), id="xgb-d2"),
    pytest.param(lambda: xgb_model(depth=5), id="xgb-d5"),
    pytest.param(lambda: xgb_model(depth=8, rounds=4), id="xgb-d8"),
    pytest.param(lambda: xgb_model(depth=4, n_cat=2), id="xgb-cat"),
    pytest.param(lambda: xgb_model(depth=3, objective="multi:softprob"), id="xgb-multi"),
    pytest.param(lambda: xgb_model(depth=3, booster="dart", rate_drop=0.3), id="xgb-dart"),
    pytest.param(lambda: lgb_model(), id="lgb"),
    pytest.param(lambda: lgb_model(num_leaves=31, n_cat=2), id="lgb-cat"),
    pytest.param(lambda: lgb_model(zero_as_missing=True), id="lgb-zero"),
    pytest.param(lambda: lgb_model(use_missing=False), id="lgb-nomissing"),
    pytest.param(lambda: lgb_model(objective="multiclass", rounds=4), id="lgb-multi"),
]


def _edge_rows(ens: Ensemble, X: np.ndarray, n: int = 400, seed: int = 0) -> np.ndarray:
    """Data rows plus rows made of threshold-edge values, one feature at a time and mixed."""
    rng = np.random.default_rng(seed)
    edges = edge_values(tree_thresholds(ens), ens.source)
    rows = X[rng.integers(0, len(X), n)].copy()
    mask = rng.random(rows.shape) < 0.5
    rows[mask] = rng.choice(edges, size=int(mask.sum()))
    return np.concatenate([X, rows])


# ----------------------------------------------------------------------------- remove_unreachable
def test_unreachable_xgboost_nested_interval():
    # x0 < 0.5 (NaN left) -> [x0 < 0.7 (NaN left) -> 1 | 2] | 3: "2" needs 0.5 <= x0 or NaN going
    # right at the inner split; neither can happen
    ens = make_ens([build(dict(f=0, t=0.5, dl=True, l=dict(f=0, t=0.7, dl=True, l=1.0, r=2.0),
                               r=3.0))])
    out = remove_unreachable(ens)
    assert out.n_leaves == 2 and sorted(out.value[out.left < 0]) == [1.0, 3.0]
    rec = out.history[-1]
    assert isinstance(rec, PassRecord) and rec.lossless and rec.collapsed_splits == 1
    X = grid([edge_values([0.5, 0.7], "xgboost")] * 1 + [np.array([0.0])] * 2)
    assert_same(ens, out, X, exact=True)


def test_unreachable_keeps_branch_reached_by_nan():
    # same, but NaN goes right at the inner split: "2" is reached by NaN rows only
    ens = make_ens([build(dict(f=0, t=0.5, dl=True, l=dict(f=0, t=0.7, dl=False, l=1.0, r=2.0),
                               r=3.0))])
    out = remove_unreachable(ens)
    assert out.n_leaves == 3
    assert margins(out, np.array([[NAN, 0, 0]]))[0] == 2.0
    # and NaN sent right at the root cannot come back left
    ens2 = make_ens([build(dict(f=0, t=0.5, dl=False, l=dict(f=0, t=0.7, dl=False, l=1.0, r=2.0),
                                r=3.0))])
    assert remove_unreachable(ens2).n_leaves == 2


def test_unreachable_float32_boundaries():
    t = F32(0.5)
    below = float(np.nextafter(t, F32(-INF)))
    # inner threshold one ulp below: x == below goes right at the inner split: reachable
    ens = make_ens([build(dict(f=0, t=0.5, l=dict(f=0, t=below, l=1.0, r=2.0), r=3.0))])
    assert remove_unreachable(ens).n_leaves == 3
    # an inner float64 threshold that rounds to the same float32 is the same split
    ens = make_ens([build(dict(f=0, t=0.5, l=dict(f=0, t=0.5 - 1e-12, l=1.0, r=2.0), r=3.0))])
    out = remove_unreachable(ens)
    assert out.n_leaves == 2
    X = grid([edge_values([0.5, below, 0.5 - 1e-12], "xgboost"), [0.0], [0.0]])
    assert_same(ens, out, X, exact=True)
    # x >= 0.5 then x < 0.5 + ulp: only x == 0.5 goes left there, which is reachable
    above = float(np.nextafter(t, F32(INF)))
    ens = make_ens([build(dict(f=0, t=0.5, l=1.0, r=dict(f=0, t=above, l=2.0, r=3.0)))])
    assert remove_unreachable(ens).n_leaves == 3


def test_unreachable_infinite_thresholds():
    # XGBoost x < -inf never holds; NaN (default left) still goes left
    ens = make_ens([build(dict(f=0, t=-INF, dl=False, l=1.0, r=2.0)),
                    build(dict(f=1, t=-INF, dl=True, l=1.0, r=2.0))])
    out = remove_unreachable(ens)
    assert out.tree_n_leaves().tolist() == [1, 2]
    # LightGBM x <= inf always holds for numbers; NaN as 0.0 too (missing type None)
    ens = make_ens([build(dict(f=0, t=INF, mt=0, l=1.0, r=2.0)),
                    build(dict(f=0, t=INF, mt=2, dl=False, l=1.0, r=2.0))], source="lightgbm")
    out = remove_unreachable(ens)
    assert out.tree_n_leaves().tolist() == [1, 2]
    X = grid([edge_values([0.0], "lightgbm"), [0.0], [0.0]])
    assert_same(ens, out, X, exact=True)


def test_unreachable_lightgbm_missing_types():
    # root x <= -1 (NaN as 0.0 -> right); left subtree splits x <= 3: its right side is empty
    tree = dict(f=0, t=-1.0, mt=0, l=dict(f=0, t=3.0, mt=0, l=1.0, r=2.0), r=5.0)
    out = remove_unreachable(make_ens([build(tree)], source="lightgbm"))
    assert out.n_leaves == 2
    # missing type NaN sending NaN left at the root and right inside: keep
    tree = dict(f=0, t=-1.0, mt=2, dl=True, l=dict(f=0, t=3.0, mt=2, dl=False, l=1.0, r=2.0),
                r=5.0)
    assert remove_unreachable(make_ens([build(tree)], source="lightgbm")).n_leaves == 3
    # missing type None with threshold >= 0 sends NaN left: inner x > 3 still unreachable
    tree = dict(f=0, t=1.0, mt=2, dl=True, l=dict(f=0, t=3.0, mt=0, l=1.0, r=2.0), r=5.0)
    assert remove_unreachable(make_ens([build(tree)], source="lightgbm")).n_leaves == 2
    # missing type Zero: x in the zero band goes to the default side even if x > threshold
    tree = dict(f=0, t=-1.0, mt=1, dl=True, l=dict(f=0, t=-5.0, mt=0, l=1.0, r=2.0), r=5.0)
    ens = make_ens([build(tree)], source="lightgbm")
    out = remove_unreachable(ens)
    assert out.n_leaves == 3  # 0.0 reaches the inner right leaf through the zero band
    X = grid([edge_values([-1.0, -5.0], "lightgbm"), [0.0], [0.0]])
    assert_same(ens, out, X, exact=True)
    assert margins(out, np.array([[0.0, 0, 0], [NAN, 0, 0]])).tolist() == [2.0, 2.0]
    # missing type Zero with the default on the right: x = 0 goes right although 0 <= 0.5, so
    # the inner "x <= 0.3" left leaf is reached (by zeros only: NaN goes right there)
    tree = dict(f=0, t=0.5, mt=1, dl=False, l=5.0,
                r=dict(f=0, t=0.3, mt=2, dl=False, l=1.0, r=2.0))
    ens = make_ens([build(tree)], source="lightgbm")
    out = remove_unreachable(ens)
    assert out.n_leaves == 3
    assert margins(out, np.array([[0.0, 0, 0], [1e-36, 0, 0], [NAN, 0, 0]])).tolist() == \
        [1.0, 1.0, 2.0]
    # missing type None with threshold 0 sends NaN (as 0.0) left, where only NaN can go right
    tree = dict(f=0, t=0.0, mt=0, l=dict(f=0, t=0.5, mt=2, dl=False, l=1.0, r=2.0), r=5.0)
    out = remove_unreachable(make_ens([build(tree)], source="lightgbm"))
    assert out.n_leaves == 3 and margins(out, np.array([[NAN, 0, 0]])).tolist() == [2.0]
    # missing type None with a negative threshold sends NaN (as 0.0) right, where a missing type
    # NaN split can send it left again
    tree = dict(f=0, t=-1.0, mt=0, l=5.0, r=dict(f=0, t=-2.0, mt=2, dl=True, l=1.0, r=2.0))
    ens = make_ens([build(tree)], source="lightgbm")
    out = remove_unreachable(ens)
    assert out.n_leaves == 3
    assert margins(out, np.array([[NAN, 0, 0]])).tolist() == [1.0]
    # ... and a second None split sends it where 0.0 goes
    tree = dict(f=0, t=-1.0, mt=0, l=5.0, r=dict(f=0, t=-2.0, mt=0, dl=True, l=1.0, r=2.0))
    assert remove_unreachable(make_ens([build(tree)], source="lightgbm")).n_leaves == 2


def test_unreachable_categorical_is_left_alone():
    tree = dict(f=2, cat=[1, 3], l=dict(f=2, cat=[1, 3], l=1.0, r=2.0), r=3.0)
    for source in ("xgboost", "lightgbm"):
        ens = make_ens([build(tree)], source=source)
        out = remove_unreachable(ens)
        assert out is not ens and out.n_leaves == 3
        assert out.history[-1].collapsed_splits == 0


def test_unreachable_root_replaced():
    # the root itself is dead on one side: x0 < -inf never holds, NaN goes right
    ens = make_ens([build(dict(f=0, t=-INF, dl=False, l=9.0, r=dict(f=1, t=0.0, l=1.0, r=2.0)))])
    out = remove_unreachable(ens)
    assert out.n_nodes == 3 and out.feature[0] == 1
    X = grid([edge_values([0.0], "xgboost")] * 2 + [[0.0]])
    assert_same(ens, out, X, exact=True)
    # but x < +inf is not always true: +inf itself is a float32 and goes right
    ens = make_ens([build(dict(f=0, t=INF, dl=True, l=1.0, r=9.0))])
    assert remove_unreachable(ens).n_leaves == 2
    assert margins(ens, np.array([[INF, 0, 0]]))[0] == 9.0


_POOL = [-1.5, -0.5, 0.0, float(F32(1e-35)), 0.5, float(np.nextafter(F32(0.5), F32(1))), 2.0,
         INF, -INF]


@st.composite
def random_tree(draw, source: str, depth: int = 0, max_depth: int = 5):
    if depth >= max_depth or draw(st.integers(0, 9)) < 2 + depth:
        return float(draw(st.integers(-2, 2)))
    if draw(st.integers(0, 9)) == 0:
        cats = draw(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
        split = dict(f=2, cat=cats, dl=draw(st.booleans()), mt=2)
    else:
        split = dict(f=draw(st.sampled_from([0, 0, 1, 2])), t=draw(st.sampled_from(_POOL)),
                     dl=draw(st.booleans()), mt=draw(st.sampled_from([0, 1, 2])))
    split["l"] = draw(random_tree(source, depth + 1, max_depth))
    split["r"] = draw(random_tree(source, depth + 1, max_depth))
    return split


def _exhaustive_rows(source: str) -> np.ndarray:
    num = edge_values(_POOL, source)
    cat = np.array([NAN, -1.0, -0.5, 0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 7.9, 8.0, 40.0, 2.0**24,
                    -INF, INF, *[v for v in num if abs(v) < 1 or not math.isfinite(v)]])
    return grid([num, num, np.unique(cat)])


_ROWS = {s: _exhaustive_rows(s) for s in ("xgboost", "lightgbm")}


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_unreachable_exact_on_random_trees(source, data):
    specs = data.draw(st.lists(random_tree(source), min_size=1, max_size=3))
    ens = make_ens([build(s) for s in specs], source=source)
    snap = snapshot(ens)
    X = _ROWS[source]  # every cell of the threshold partition, ±0, ±inf, NaN, the zero band
    expected = margins(ens, X)
    for fn in (remove_unreachable, merge_equal_subtrees):
        out = fn(ens)
        assert out.n_leaves <= ens.n_leaves
        if out.n_nodes < ens.n_nodes:
            np.testing.assert_array_equal(expected, margins(out, X))
    out = lossless(ens)
    np.testing.assert_allclose(expected, margins(out, X), rtol=0,
                               atol=1e-5 if source == "xgboost" else 1e-12)
    assert_unchanged(ens, snap)


@pytest.mark.parametrize("make", REAL)
def test_unreachable_on_product_of_real_trees(make):
    """A tree times itself has every second-level split decided: pruning recovers the original."""
    ens, X = make()
    trees = get_trees(ens)
    squared = [cartesian_tree(t, t) for t in trees]
    prod = assemble(ens, squared)
    out = remove_unreachable(prod)
    # with missing type Zero and categorical splits the analysis is conservative
    exact_recovery = ens.source == "xgboost" or not np.any(ens.missing_type[ens.left >= 0] == 1)
    if exact_recovery and not np.any(ens.cat_index[ens.left >= 0] >= 0):
        assert out.tree_n_leaves().tolist() == ens.tree_n_leaves().tolist()
    assert out.n_leaves < prod.n_leaves or prod.n_leaves == ens.n_leaves
    rows = _edge_rows(ens, X)
    np.testing.assert_array_equal(margins(prod, rows), margins(out, rows))


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
@SETTINGS
@given(data=st.data())
def test_unreachable_on_product_with_hypothesis_rows(source, data):
    ens, X = xgb_model(depth=3) if source == "xgboost" else lgb_model()
    prod = assemble(ens, [cartesian_tree(t, t) for t in get_trees(ens)])
    out = remove_unreachable(prod)
    edges = edge_values(tree_thresholds(ens), source)
    rows = data.draw(st.lists(st.lists(st.sampled_from(edges.tolist()), min_size=X.shape[1],
                                       max_size=X.shape[1]), min_size=1, max_size=50))
    R = np.array(rows, dtype=np.float64)
    np.testing.assert_array_equal(margins(prod, R), margins(out, R))


# ----------------------------------------------------------------------------- merge_equal_subtrees
def test_merge_equal_leaves_and_subtrees():
    sub = dict(f=1, t=0.25, dl=False, l=1.0, r=2.0)
    tree = dict(f=0, t=0.0, h=10.0, v=0.5, l=dict(f=2, t=1.0, l=sub, r=sub, h=6.0, v=0.7),
                r=dict(f=2, t=3.0, l=4.0, r=4.0, h=4.0))
    ens = make_ens([build(tree)])
    snap = snapshot(ens)
    out = merge_equal_subtrees(ens)
    assert out.n_leaves == 3
    rec = out.history[-1]
    assert rec.collapsed_splits == 3 and rec.lossless and rec.removed_trees == ()
    # the merged node keeps its cover (and, as a split, its own internal value)
    assert out.cover[0] == 10.0
    assert out.feature[1] == 1 and out.cover[1] == 6.0 and out.value[1] == 0.7
    assert out.value[2] == 4.0 and out.cover[2] == 4.0
    X = grid([edge_values([0.0, 0.25, 1.0, 3.0], "xgboost")] * 3)
    assert_same(ens, out, X, exact=True)
    assert_unchanged(ens, snap)


def test_merge_equal_cascades_and_respects_differences():
    # bottom-up: the inner split merges first, then its parent sees two equal leaves
    tree = dict(f=0, t=0.0, l=dict(f=1, t=0.0, l=2.0, r=2.0), r=2.0)
    assert merge_equal_subtrees(make_ens([build(tree)])).n_nodes == 1
    # differing default direction, threshold or category set: not equal
    for a, b in [(dict(dl=True), dict(dl=False)), (dict(t=0.5), dict(t=0.6)),
                 (dict(mt=0), dict(mt=2))]:
        tree = dict(f=0, t=0.0, l={**dict(f=1, t=0.5, l=1.0, r=2.0), **a},
                    r={**dict(f=1, t=0.5, l=1.0, r=2.0), **b})
        assert merge_equal_subtrees(make_ens([build(tree)], source="lightgbm")).n_leaves == 4
    tree = dict(f=0, t=0.0, l=dict(f=2, cat=[1], l=1.0, r=2.0), r=dict(f=2, cat=[2], l=1.0, r=2.0))
    assert merge_equal_subtrees(make_ens([build(tree)])).n_leaves == 4
    # same categories stored with different bitset lengths are the same set
    t1, t2 = build(dict(f=2, cat=[1], l=1.0, r=2.0)), build(dict(f=2, cat=[1], l=1.0, r=2.0))
    t2.cat_sets[0] = np.array([2, 0], dtype=np.uint32)
    root = build(dict(f=0, t=0.0, l=0.0, r=0.0))
    whole = cartesian_tree(root, t1)
    whole.cat_sets[1] = t2.cat_sets[0]
    assert merge_equal_subtrees(make_ens([whole])).n_leaves == 2
    # NaN leaves are never "equal"
    assert merge_equal_subtrees(make_ens([build(dict(f=0, t=0.0, l=NAN, r=NAN))])).n_leaves == 2


# ----------------------------------------------------------------------------- zero / constant
def test_remove_zero_trees():
    trees = [build(dict(f=0, t=0.0, l=0.0, r=0.0)), build(dict(f=0, t=0.0, l=1.0, r=2.0)),
             build(dict(f=1, t=1.0, l=0.0, r=-0.0)), build(dict(f=0, t=0.0, l=3.0, r=4.0),
                                                           weight=0.0)]
    ens = make_ens(trees)
    out = remove_zero_trees(ens)
    assert out.n_trees == 1
    assert out.history[-1].removed_trees == (0, 2, 3) and out.history[-1].lossless
    X = grid([edge_values([0.0, 1.0], "xgboost")] * 2 + [[0.0]])
    assert_same(ens, out, X, exact=True)
    # all-zero model keeps one tree per group
    ens = make_ens([build(0.0, group=g) for g in (0, 1, 2, 0, 1, 2)], n_groups=3)
    out = remove_zero_trees(ens)
    assert out.n_trees == 3 and out.tree_group.tolist() == [0, 1, 2]


def test_remove_zero_trees_keeps_lightgbm_intercept_tree():
    trees = [build(dict(f=0, t=0.0, l=0.0, r=0.0)), build(dict(f=0, t=0.0, l=1.0, r=2.0))]
    ens = make_ens(trees, source="lightgbm", folded=[0.5])
    assert remove_zero_trees(ens).n_trees == 2
    assert remove_zero_trees(make_ens(trees, source="lightgbm")).n_trees == 1


def test_fold_constant_trees():
    trees = [build(0.25, weight=2.0), build(dict(f=0, t=0.0, l=1.0, r=2.0)), build(-1.0)]
    ens = make_ens(trees, source="lightgbm", base=0.5, folded=[0.5])
    out = fold_constant_trees(ens)
    assert out.n_trees == 1 and out.history[-1].removed_trees == (0, 2)
    assert out.base_margin.tolist() == [0.5 + 0.5 - 1.0]
    assert out.folded_intercept.tolist() == [0.0]  # it went with tree 0 into the base margin
    X = grid([edge_values([0.0], "lightgbm"), [0.0], [0.0]])
    assert_same(ens, out, X)
    # only constants: one stays
    ens = make_ens([build(1.0), build(2.0)])
    out = fold_constant_trees(ens)
    assert out.n_trees == 1 and out.base_margin[0] == 1.0 and out.value[0] == 2.0


# ----------------------------------------------------------------------------- identical trees
def test_merge_identical_trees_hand_built():
    shape = dict(f=0, t=0.5, dl=True, l=dict(f=1, t=-1.0, l=1.0, r=2.0, v=1.5, g=3.0), r=3.0,
                 v=2.0, g=5.0)
    other = {**shape, "l": {**shape["l"], "l": 10.0}, "r": 30.0}
    different = {**shape, "dl": False}
    trees = [build(shape, weight=0.5), build(different), build(other, weight=2.0),
             build(shape, group=1), build(other, group=1)]
    ens = make_ens(trees, n_groups=2)
    snap = snapshot(ens)
    out = merge_identical_trees(ens)
    assert out.n_trees == 3 and out.tree_group.tolist() == [0, 0, 1]
    assert out.history[-1].removed_trees == (2, 4)
    assert np.all(out.tree_weight == 1.0)
    t0 = get_trees(out)[0]
    leaf_vals = t0.nodes["value"][t0.nodes["left"] < 0]
    assert sorted(leaf_vals.tolist()) == sorted([0.5 * 1 + 2 * 10, 0.5 * 2 + 2 * 2, 0.5 * 3 + 2 * 30])
    assert t0.nodes["value"][0] == 0.5 * 2.0 + 2 * 2.0 and t0.nodes["gain"][0] == 10.0
    X = grid([edge_values([0.5, -1.0], "xgboost")] * 2 + [[0.0]])
    assert_same(ens, out, X)
    assert_unchanged(ens, snap)


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_merge_identical_stumps(source):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 2)).round(1)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) > 0.3).astype(float)
    if source == "xgboost":
        ens = load(xgb.train({"objective": "binary:logistic", "max_depth": 1, "nthread": 1,
                              "max_bin": 4}, xgb.DMatrix(X, label=y), 40))
    else:
        ens = load(lgb.train({"objective": "binary", "num_leaves": 2, "verbose": -1,
                              "max_bin": 4, "num_threads": 1}, lgb.Dataset(X, label=y), 40))
    out = merge_identical_trees(ens)
    assert out.n_trees < ens.n_trees / 3
    assert_same(ens, out, _edge_rows(ens, X))
    if source == "lightgbm":  # the intercept tree stays first
        assert out.folded_intercept.tolist() == ens.folded_intercept.tolist()
    full = lossless(ens)
    assert full.n_trees <= out.n_trees
    assert_same(ens, full, _edge_rows(ens, X))


# ----------------------------------------------------------------------------- lossless on models
@pytest.mark.parametrize("make", REAL)
def test_lossless_on_real_models(make, tmp_path):
    ens, X = make()
    snap = snapshot(ens)
    out = lossless(ens)
    rows = _edge_rows(ens, X)
    assert_same(ens, out, rows)
    assert_unchanged(ens, snap)
    rec = out.history[-1]
    assert rec.name == "lossless" and rec.lossless and rec.trees_before == ens.n_trees
    assert rec.trees_after == out.n_trees and len(rec.removed_trees) == ens.n_trees - out.n_trees
    # with the product trick there is something to remove, and the result saves natively
    prod = assemble(ens, [cartesian_tree(t, t) for t in get_trees(ens)])
    small = lossless(prod)
    assert small.n_leaves <= prod.n_leaves
    assert_same(prod, small, rows)
    path = tmp_path / ("m.json" if ens.source == "xgboost" else "m.txt")
    small.save(path)
    back = load(path)
    assert_same(small, back, rows)
    if ens.source == "xgboost":  # XGBoost refuses infinite inputs
        rows = rows[np.all(~np.isinf(rows), axis=1)]
        native = xgb.Booster(model_file=str(path)).predict(xgb.DMatrix(rows), output_margin=True)
    else:
        native = lgb.Booster(model_file=str(path)).predict(rows, raw_score=True)
    expected = margins(prod, rows)
    np.testing.assert_allclose(native.reshape(expected.shape), expected, rtol=0, atol=1e-5)


def test_lossless_record_maps_removed_trees_to_input():
    trees = [build(dict(f=0, t=0.0, l=1.0, r=2.0)),  # 0 kept
             build(dict(f=0, t=0.0, l=0.0, r=0.0)),  # 1 zero (merged to a leaf, folded)
             build(dict(f=0, t=0.0, l=3.0, r=4.0)),  # 2 identical to 0
             build(dict(f=1, t=0.0, l=5.0, r=dict(f=1, t=-1.0, l=6.0, r=7.0))),  # 3 pruned
             build(7.5)]  # 4 constant
    ens = make_ens(trees, source="lightgbm")
    out = lossless(ens)
    rec = out.history[-1]
    assert out.n_trees == 2 and rec.removed_trees == (1, 2, 4)
    assert rec.collapsed_splits == 2  # tree 1's split (merge) + tree 3's dead split
    assert rec.details["steps"]["merge_identical_trees"] == 1
    assert out.base_margin[0] == 7.5
    X = grid([edge_values([0.0, -1.0], "lightgbm")] * 2 + [[0.0]])
    assert_same(ens, out, X)
    # idempotent
    again = lossless(out)
    assert again.n_nodes == out.n_nodes and again.history[-1].removed_trees == ()


def test_passes_without_changes_return_equal_model():
    ens, X = xgb_model(depth=3)
    for fn in (remove_unreachable, merge_equal_subtrees, remove_zero_trees,
               merge_identical_trees, fold_constant_trees):
        out = fn(ens)
        assert out.n_nodes == ens.n_nodes and out.history[-1].name == fn.__name__
        np.testing.assert_array_equal(out.native_id, ens.native_id)
