"""LightGBM text reader/writer: round trips, exact routing, metadata, bad input, file safety."""

from __future__ import annotations

import importlib.util
import re

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lgb_models import FAST_SPECS, SLOW_SPECS, LgbSpec, make_data, params_for, stress_rows, train

from treeprune._rules import LIGHTGBM_ZERO_THRESHOLD
from treeprune.errors import (
    ConversionError,
    ModelFormatError,
    TreePruneError,
    UnsupportedModelError,
)
from treeprune.io import load
from treeprune.io.lightgbm import (
    read_lightgbm_object,
    read_lightgbm_text,
    to_booster,
    to_text,
)
from treeprune.trees import Tree, assemble, empty_nodes, get_trees

HAS_PREDICT = importlib.util.find_spec("treeprune.predict") is not None

ALL_SPECS = [pytest.param(s, id=s.id) for s in FAST_SPECS] + [
    pytest.param(s, id=s.id, marks=pytest.mark.slow) for s in SLOW_SPECS
]

_CACHE: dict[LgbSpec, tuple[lgb.Booster, object]] = {}


def fitted(spec: LgbSpec) -> tuple[lgb.Booster, object]:
    if spec not in _CACHE:
        booster, Xe = train(spec)
        _CACHE[spec] = (booster, stress_rows(booster, Xe, spec.n_features))
    return _CACHE[spec]


def native_raw(booster: lgb.Booster, X: object) -> np.ndarray:
    """The native margin. For ``average_output`` (random forest) models LightGBM's
    ``raw_score=True`` is the *sum* of the trees while ``predict()`` transforms the average, so the
    margin (what the link is applied to) is raw_score / number of iterations."""
    raw = np.asarray(booster.predict(X, raw_score=True))
    if "\naverage_output\n" in booster.model_to_string(num_iteration=1).split("tree_sizes")[0]:
        raw = raw / (booster.num_trees() // booster.num_model_per_iteration())
    return raw


# ---------------------------------------------------------------------------------------------
# a numpy reference of LightGBM's decision rule (what the Numba kernel must match)
# ---------------------------------------------------------------------------------------------
def numeric_matrix(ens, X) -> np.ndarray:
    """LightGBM's view of X: pandas categoricals become codes of the stored categories, NaN when
    unseen or missing."""
    if isinstance(X, pd.DataFrame):
        cols = []
        for j, name in enumerate(ens.feature_names):
            col = X[name]
            if j in ens.categories:
                codes = pd.Categorical(col, categories=list(ens.categories[j])).codes
                cols.append(np.where(codes < 0, np.nan, codes).astype(np.float64))
            else:
                cols.append(col.to_numpy(dtype=np.float64))
        return np.column_stack(cols)
    return np.asarray(X, dtype=np.float64)


def reference_route(ens, X) -> tuple[np.ndarray, np.ndarray]:
    """(leaf native ids (n, n_trees), leaf values (n, n_trees)) by LightGBM's rules."""
    X = numeric_matrix(ens, X)
    X = np.where(np.abs(X) <= LIGHTGBM_ZERO_THRESHOLD, 0.0, X)   # dense rows drop |x| <= kZeroThreshold
    n = len(X)
    leaves = np.empty((n, ens.n_trees), dtype=np.int32)
    values = np.empty((n, ens.n_trees), dtype=np.float64)
    rows = np.arange(n)
    for t in range(ens.n_trees):
        base = int(ens.tree_offsets[t])
        node = np.zeros(n, dtype=np.int64)
        active = ens.left[base + node] >= 0
        while active.any():
            idx = rows[active]
            g = base + node[idx]
            x = X[idx, ens.feature[g]]
            k = ens.cat_index[g]
            num = k < 0
            go_left = np.zeros(len(idx), dtype=bool)
            # numerical: NaN -> 0 unless missing type NaN; zero / NaN missing -> default_left
            xn, gn = x[num], g[num]
            mt = ens.missing_type[gn]
            xn = np.where(np.isnan(xn) & (mt != 2), 0.0, xn)
            missing = ((mt == 1) & (xn == 0.0)) | ((mt == 2) & np.isnan(xn))
            go_left[num] = np.where(missing, ens.default_left[gn], xn <= ens.threshold[gn])
            # categorical: NaN, negative (after truncation) or beyond int32 -> right; bit set -> left
            xc, kc = x[~num], k[~num].astype(np.int64)
            valid = (xc > -1.0) & (xc < 2.0**31)
            c = np.where(valid, np.trunc(np.where(valid, xc, 0.0)), 0).astype(np.int64)
            lo, hi = ens.cat_bounds[kc], ens.cat_bounds[kc + 1]
            word = c // 32
            inside = valid & (word < hi - lo)
            w = ens.cat_words[np.where(inside, lo + word, 0)] if len(ens.cat_words) else 0
            go_left[~num] = inside & (((np.asarray(w, dtype=np.int64) >> (c % 32)) & 1) == 1)
            node[idx] = np.where(go_left, ens.left[g], ens.right[g])
            active = ens.left[base + node] >= 0
        leaves[:, t] = ens.native_id[base + node]
        values[:, t] = ens.value[base + node]
    return leaves, values


def reference_margin(ens, X) -> np.ndarray:
    """Float64 sum, from 0.0, of tree outputs in tree order (LightGBM's accumulation)."""
    _, values = reference_route(ens, X)
    margin = np.zeros((len(values), ens.n_groups))
    for t in range(ens.n_trees):
        margin[:, ens.tree_group[t]] += ens.tree_weight[t] * values[:, t]
    margin += np.asarray(ens.base_margin)
    return margin[:, 0] if ens.n_groups == 1 else margin


# ---------------------------------------------------------------------------------------------
# (1) read -> write -> native load: the same raw scores and leaves
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_roundtrip_through_native(spec):
    booster, X = fitted(spec)
    text = booster.model_to_string()
    ens = load(text.encode())
    assert ens.source == "lightgbm"
    assert ens.n_trees == booster.num_trees()
    again = lgb.Booster(model_str=to_text(ens))
    before, after = native_raw(booster, X), native_raw(again, X)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    # unchanged trees are written bit for bit: the scores are identical
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(again.predict(X, pred_leaf=True),
                                  booster.predict(X, pred_leaf=True))
    # reading what we wrote gives the same text again
    assert to_text(read_lightgbm_text(to_text(ens))) == to_text(ens)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_reference_rule_matches_native(spec):
    """The documented decision rule and accumulation order reproduce LightGBM exactly."""
    booster, X = fitted(spec)
    ens = load(booster)
    leaves, _ = reference_route(ens, X)
    np.testing.assert_array_equal(leaves, booster.predict(X, pred_leaf=True))
    margin = reference_margin(ens, X)
    native = native_raw(booster, X)
    if spec.boosting == "rf":  # native: sum, then divided by the number of iterations
        np.testing.assert_allclose(margin, native, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(margin, native)


# ---------------------------------------------------------------------------------------------
# (2) the Numba kernels (Ensemble.predict) against native
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_PREDICT, reason="treeprune.predict not written yet")
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_ensemble_predict_matches_native(spec):
    booster, X = fitted(spec)
    ens = load(booster)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"),
                                  booster.predict(X, pred_leaf=True))
    np.testing.assert_allclose(ens.predict(X, output="margin"), native_raw(booster, X),
                               rtol=0, atol=1e-5)


EDGE_VALUES = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, LIGHTGBM_ZERO_THRESHOLD,
               -LIGHTGBM_ZERO_THRESHOLD, np.nextafter(LIGHTGBM_ZERO_THRESHOLD, 1), 2e-35, -2e-35, 0.25,
               np.nextafter(0.25, 1), 0.5, -0.5, -0.99, -1.0, -1.5, 1.0, 1.7, 2.0, 2.7, 32.0, 33.0,
               33.5, 64.0, 1000.0, 2.0**31 - 1, 2.0**31, 2.0**32 + 2, -2.0**31, 1e300, np.inf,
               -np.inf]


def edge_case_ensemble():
    """One single-split tree per (threshold or bitset, missing type, default_left)."""
    template = load(fitted(LgbSpec("regression", n_trees=2))[0])
    trees = []
    for thr in [0.0, 1e-36, -1e-36, 0.25, LIGHTGBM_ZERO_THRESHOLD, -LIGHTGBM_ZERO_THRESHOLD, -1.0, np.inf]:
        for cat in (False, True):
            if cat and thr != 0.0:
                continue
            for mt in (0, 1, 2):
                for dl in (False, True):
                    nodes = empty_nodes(3)
                    nodes["feature"][0] = 1 if cat else 0
                    nodes["threshold"][0] = 0.0 if cat else thr
                    nodes["left"][0], nodes["right"][0] = 1, 2
                    nodes["default_left"][0] = dl
                    nodes["missing_type"][0] = mt
                    nodes["cat_index"][0] = 0 if cat else -1
                    nodes["value"][1:] = [1.0, 2.0]
                    nodes["native_id"][:] = [0, 0, 1]
                    sets = [np.array([5, 2], dtype=np.uint32)] if cat else []  # {0, 2, 33}
                    trees.append(Tree(nodes, sets))
    return assemble(template, trees, renumber=False)


def test_decision_rule_edge_cases():
    ens = edge_case_ensemble()
    X = np.zeros((len(EDGE_VALUES), ens.n_features))
    X[:, 0] = X[:, 1] = EDGE_VALUES
    leaves, _ = reference_route(ens, X)
    np.testing.assert_array_equal(to_booster(ens).predict(X, pred_leaf=True), leaves)


@pytest.mark.skipif(not HAS_PREDICT, reason="treeprune.predict not written yet")
def test_kernel_decision_rule_edge_cases():
    ens = edge_case_ensemble()
    X = np.zeros((len(EDGE_VALUES), ens.n_features))
    X[:, 0] = X[:, 1] = EDGE_VALUES
    leaves, _ = reference_route(ens, X)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaves)


def test_documented_facts():
    """The facts the kernels rely on, spelled out on a few values."""
    ens = edge_case_ensemble()
    native = to_booster(ens)

    def side(tree_match, values):
        t = next(i for i in range(ens.n_trees) if tree_match(ens, int(ens.tree_offsets[i])))
        X = np.zeros((len(values), ens.n_features))
        X[:, 0] = X[:, 1] = values
        return "".join("LR"[v] for v in native.predict(X, pred_leaf=True)[:, t])

    def num(thr, mt, dl):
        return lambda e, r: (e.cat_index[r] < 0 and e.threshold[r] == thr
                             and e.missing_type[r] == mt and e.default_left[r] == dl)

    # |x| <= kZeroThreshold is read as 0.0 even with missing type None (-1e-36 <= -1e-36 is true)
    assert side(num(-1e-36, 0, False), [-1e-36, -LIGHTGBM_ZERO_THRESHOLD, -2e-35]) == "RRL"
    # missing type Zero: the zero band (inclusive) and NaN go to the default side
    assert side(num(0.25, 1, False), [0.0, -LIGHTGBM_ZERO_THRESHOLD, np.nan, 2e-35]) == "RRRL"
    # missing type None: NaN is 0.0
    assert side(num(-1.0, 0, True), [np.nan, 0.0]) == "RR"
    # missing type NaN: only NaN is missing, zero compares normally
    assert side(num(-1.0, 2, True), [np.nan, 0.0]) == "LR"

    def cat(mt):
        return lambda e, r: e.cat_index[r] >= 0 and e.missing_type[r] == mt

    values = [np.nan, 0.0, -0.5, -1.0, 2.7, 33.9, 1.0, 64.0, 2.0**31, np.inf]
    for mt in (0, 1, 2):  # categories in the set go left; NaN right whatever the missing type
        assert side(cat(mt), values) == "RLLRLLRRRR"


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------
def test_layout_and_native_ids():
    booster, _ = fitted(LgbSpec("binary", n_cat=2, n_trees=25))
    ens = load(booster)
    dump = booster.dump_model()["tree_info"]
    for t in range(ens.n_trees):
        sl = ens.tree_slice(t)
        left, nat, cat = ens.left[sl], ens.native_id[sl], ens.cat_index[sl]
        n_leaves = dump[t]["num_leaves"]
        S = n_leaves - 1
        assert len(left) == S + n_leaves
        # split i is local i, leaf k is local S + k
        np.testing.assert_array_equal(nat[:S], np.arange(S))
        np.testing.assert_array_equal(nat[S:], np.arange(n_leaves))
        assert np.all(left[:S] >= 0) and np.all(left[S:] == -1)
        assert np.all(cat[S:] == -1)
    assert np.count_nonzero(ens.cat_index >= 0) > 0
    assert ens.cat_bounds[-1] == len(ens.cat_words)


def test_node_statistics_are_kept():
    booster, _ = fitted(LgbSpec("binary"))
    ens = load(booster)
    tree0 = booster.dump_model()["tree_info"][0]["tree_structure"]
    root = int(ens.tree_offsets[0])
    assert ens.gain[root] == pytest.approx(tree0["split_gain"], rel=1e-5)
    assert ens.value[root] == pytest.approx(tree0["internal_value"], rel=1e-5)
    assert ens.cover[root] == pytest.approx(tree0["internal_weight"], rel=1e-5)
    assert ens.count[root] == tree0["internal_count"]
    leaves = ens.left < 0
    assert np.all(np.isnan(ens.gain[leaves]))
    assert np.all(ens.count[leaves] >= 1) and np.all(ens.cover[leaves] > 0)


@pytest.mark.parametrize("objective,params,expect", [
    ("binary", (), {"sigmoid": 1.0}),
    ("tweedie", (("tweedie_variance_power", 1.3),), {"tweedie_variance_power": 1.3}),
    ("huber", (("alpha", 1.5),), {"alpha": 1.5, "huber_delta": 1.5}),
    ("multiclass", (), {"num_class": 3}),
])
def test_objective_and_params(objective, params, expect):
    booster, _ = fitted(LgbSpec(objective, params=params, n_trees=8 if objective == "multiclass"
                                else 20))
    ens = load(booster)
    assert ens.objective.name == objective
    for k, v in expect.items():
        assert ens.objective.params[k] == pytest.approx(v)
    if objective == "multiclass":
        assert ens.n_groups == 3
        np.testing.assert_array_equal(ens.tree_group, np.arange(ens.n_trees) % 3)
    else:
        assert ens.n_groups == 1


@pytest.mark.parametrize("objective", ["regression", "binary", "poisson", "multiclass"])
def test_folded_intercept_estimates_the_initial_score(objective):
    spec = LgbSpec(objective, n_trees=5, nan_frac=0.0)
    booster, _ = fitted(spec)
    _, y, _ = make_data(spec)
    ens = load(booster)
    if objective == "regression":
        init = [y.mean()]
    elif objective == "binary":
        init = [np.log(y.mean() / (1 - y.mean()))]
    elif objective == "poisson":
        init = [np.log(y.mean())]
    else:
        init = np.log(np.bincount(y.astype(int), minlength=3) / len(y))
    np.testing.assert_allclose(ens.folded_intercept, init, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ens.base_margin, np.zeros(ens.n_groups))


def test_no_folded_intercept_without_boost_from_average():
    booster, _ = fitted(LgbSpec("binary", params=(("boost_from_average", False),)))
    ens = load(booster)
    assert np.all(ens.folded_intercept == 0)


def test_random_forest_weights():
    booster, X = fitted(LgbSpec("binary", boosting="rf", n_trees=10))
    ens = load(booster)
    np.testing.assert_array_equal(ens.tree_weight, np.full(10, 0.1))
    assert ens.source_meta["average_output"]
    assert np.all(ens.folded_intercept == 0)  # the initial score is in every tree
    assert "average_output" in to_text(ens).split("feature_names")[0]
    # LightGBM quirk: raw_score is the plain sum of the trees, predict() the link of the average
    _, values = reference_route(ens, X)
    np.testing.assert_allclose(booster.predict(X, raw_score=True), values.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(booster.predict(X), 1 / (1 + np.exp(-values.mean(axis=1))),
                               atol=1e-12)
    np.testing.assert_allclose(reference_margin(ens, X), values.mean(axis=1), atol=1e-12)


def test_random_forest_after_dropping_a_tree():
    booster, X = fitted(LgbSpec("multiclass", n_trees=6, boosting="rf"))
    ens = load(booster)
    smaller = assemble(ens, get_trees(ens)[:-3])  # drop the last iteration, keep weights 1/6
    text = to_text(smaller)
    assert "average_output" not in text.split("feature_names")[0]  # weights folded instead
    np.testing.assert_allclose(native_raw(lgb.Booster(model_str=text), X),
                               reference_margin(smaller, X), rtol=0, atol=1e-12)


def test_monotone_constraints_and_names():
    spec = LgbSpec("binary", params=(("monotone_constraints", "1,0,-1,0,0"),))
    booster, X = fitted(spec)
    ens = load(booster)
    assert ens.monotone_constraints == (1, 0, -1, 0, 0)
    assert ens.feature_names == tuple(booster.feature_name())
    assert "monotone_constraints=1 0 -1 0 0" in to_text(ens)
    assert load(fitted(LgbSpec("binary"))[0]).monotone_constraints == (0,) * 5


def test_pandas_categories():
    spec = LgbSpec("binary", n_cat=3, pandas=True, n_trees=15)
    booster, X = fitted(spec)
    ens = load(booster)
    cat_cols = [i for i, n in enumerate(ens.feature_names) if n.startswith("cat")]
    assert sorted(ens.categories) == cat_cols
    for i in cat_cols:
        assert ens.feature_types[i] == "categorical"
        assert ens.categories[i] == tuple(X[ens.feature_names[i]].cat.categories)
    assert all(ens.feature_types[i] == "float" for i in range(ens.n_features) if i not in cat_cols)
    # the written model keeps pandas_categorical: native predict on the DataFrame still agrees
    again = to_booster(ens)
    assert again.pandas_categorical == booster.pandas_categorical
    np.testing.assert_array_equal(native_raw(again, X), native_raw(booster, X))


def test_integer_categoricals_have_no_category_values():
    booster, _ = fitted(LgbSpec("binary", n_cat=2, n_trees=25))
    ens = load(booster)
    assert ens.categories == {}
    assert ens.feature_types[-2:] == ("categorical", "categorical")


# ---------------------------------------------------------------------------------------------
# native objects
# ---------------------------------------------------------------------------------------------
def test_sklearn_wrappers_and_no_mutation():
    spec = LgbSpec("binary", n_trees=10)
    X, y, Xe = make_data(spec)
    params = {k: v for k, v in params_for(spec).items() if k not in ("objective",)}
    clf = lgb.LGBMClassifier(n_estimators=10, **params).fit(X, y)
    before = clf.booster_.model_to_string()
    before_params = clf.get_params()
    ens = load(clf)
    assert clf.booster_.model_to_string() == before and clf.get_params() == before_params
    np.testing.assert_array_equal(native_raw(to_booster(ens), Xe),
                                  clf.predict(Xe, raw_score=True))
    reg = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y * 3)
    assert load(reg).objective.name == "regression"
    assert read_lightgbm_object(reg.booster_).n_trees == 5


def test_unfitted_and_wrong_objects():
    with pytest.raises(ModelFormatError, match="not fitted"):
        load(lgb.LGBMClassifier())
    with pytest.raises(ModelFormatError):
        read_lightgbm_object(object())
    with pytest.raises(ModelFormatError):
        read_lightgbm_text(b"tree\n")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# writing changed ensembles
# ---------------------------------------------------------------------------------------------
def test_writer_folds_weights_and_base_margin_and_pads_groups():
    booster, X = fitted(LgbSpec("multiclass", n_trees=8))
    ens = load(booster)
    trees = get_trees(ens)
    # drop a tree of class 1, re-weight some trees, add a base margin
    keep = [t for i, t in enumerate(trees) if i != 4]
    for i, t in enumerate(keep):
        t.weight = 0.5 + 0.1 * (i % 3)
    changed = assemble(ens, keep, base_margin=np.array([0.25, -1.0, 0.0]))
    assert not np.all(changed.tree_group == np.arange(changed.n_trees) % 3)
    native = native_raw(to_booster(changed), X)
    np.testing.assert_allclose(native, reference_margin(changed, X), rtol=0, atol=1e-9)


def test_writer_compacts_unreachable_nodes():
    booster, X = fitted(LgbSpec("regression"))
    ens = load(booster)
    trees = get_trees(ens)
    t = trees[3]
    nodes = t.nodes
    # turn the root's right child into a leaf: its subtree becomes unreachable
    r = int(nodes["right"][0])
    for name in ("left", "right", "cat_index", "feature"):
        nodes[name][r] = -1
    nodes["value"][r] = 0.125
    pruned = assemble(ens, trees, renumber=False)
    written = to_booster(pruned)
    np.testing.assert_allclose(native_raw(written, X), reference_margin(pruned, X), atol=1e-12)
    # written leaves are compacted: as many leaves as reachable ones
    assert written.dump_model()["tree_info"][3]["num_leaves"] < t.n_nodes // 2 + 1
    # renumbered through assemble, pred_leaf of the written model equals the new native ids
    renum = assemble(ens, trees)
    leaves, _ = reference_route(renum, X)
    np.testing.assert_array_equal(to_booster(renum).predict(X, pred_leaf=True), leaves)


def test_writer_single_leaf_and_empty():
    booster, X = fitted(LgbSpec("regression"))
    ens = load(booster)
    only = assemble(ens, [Tree.leaf(1.5)])
    np.testing.assert_array_equal(native_raw(to_booster(only), X), np.full(len(X), 1.5))
    none = assemble(ens, [], base_margin=np.array([2.0]))
    np.testing.assert_array_equal(native_raw(to_booster(none), X), np.full(len(X), 2.0))


def test_writer_refuses_other_sources():
    booster, _ = fitted(LgbSpec("regression"))
    ens = load(booster).replace(source="xgboost")
    with pytest.raises(ConversionError):
        to_text(ens)


def test_constant_model():
    """A model whose first (only) tree cannot split is a single leaf holding the init score."""
    spec = LgbSpec("regression", n_trees=3, params=(("min_data_in_leaf", 1000),), nan_frac=0.0)
    booster, X = fitted(spec)
    ens = load(booster)
    assert ens.n_leaves == ens.n_trees
    _, y, _ = make_data(spec)
    assert ens.folded_intercept[0] == pytest.approx(y.mean())
    np.testing.assert_array_equal(native_raw(to_booster(ens), X), native_raw(booster, X))


# ---------------------------------------------------------------------------------------------
# (3) bad input: typed errors, never a crash or a hang
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_text() -> str:
    return fitted(LgbSpec("binary", n_cat=2, n_trees=25))[0].model_to_string()


@pytest.mark.parametrize("data", [
    b"hello world", b"\x00\x01\x02junk", b"tree\n", b"tree\nversion=v4\n",
    b"tree\nversion=v4\nnum_class=1\nmax_feature_idx=0\nfeature_names=a\nfeature_infos=none\n"
    b"objective=regression\ntree_sizes=\n\nend of trees\n",
    b"{not json", b"   ", b"",
])
def test_junk(data):
    with pytest.raises((ModelFormatError, UnsupportedModelError)):
        load(data)


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.05, 0.2, 0.5, 0.8, 0.999])
def test_truncated(small_text, fraction):
    cut = small_text[: int(small_text.index("end of trees") * fraction)]
    with pytest.raises(ModelFormatError):
        load(cut.encode())
    in_params = small_text[: small_text.index("[boosting:") + 5]
    with pytest.raises(ModelFormatError, match="truncated"):
        load(in_params.encode())


def test_every_truncation_is_an_error_or_the_same_model(small_text):
    full = read_lightgbm_text(small_text)
    for end in range(0, len(small_text), 97):
        try:
            ens = read_lightgbm_text(small_text[:end])
        except (ModelFormatError, UnsupportedModelError):
            continue
        np.testing.assert_array_equal(ens.value, full.value)
        np.testing.assert_array_equal(ens.left, full.left)


def test_tree_sizes_mismatch(small_text):
    sizes = re.search(r"^tree_sizes=(.*)$", small_text, re.M)
    assert sizes
    values = sizes.group(1).split()
    values[2] = str(int(values[2]) + 1)
    bad = small_text.replace(sizes.group(0), "tree_sizes=" + " ".join(values))
    with pytest.raises(ModelFormatError, match="tree_sizes"):
        load(bad.encode())
    fewer = small_text.replace(sizes.group(0), "tree_sizes=" + " ".join(sizes.group(1).split()[:-1]))
    with pytest.raises(ModelFormatError, match="tree_sizes"):
        load(fewer.encode())
    # an edited leaf value that changes the block length
    edited = small_text.replace("leaf_value=", "leaf_value=1", 1)
    with pytest.raises(ModelFormatError, match="tree_sizes"):
        load(edited.encode())


def _edit_first(text: str, key: str, edit) -> str:
    """Edit the first ``key=`` line of the trees, keeping its length (tree_sizes stay right)."""
    m = re.search(rf"^{key}=(.*)$", text, re.M)
    assert m
    new = edit(m.group(1).split())
    line = f"{key}=" + " ".join(new)
    assert len(line) == len(m.group(0)), (line, m.group(0))
    return text[: m.start()] + line + text[m.end():]


def test_edited_child_indices(small_text):
    def out_of_range(v):
        return v[:-1] + ["-9" if v[-1].startswith("-") and len(v[-1]) == 2 else "9" * len(v[-1])]

    bad = _edit_first(small_text, "right_child", out_of_range)
    with pytest.raises(ModelFormatError, match="child"):
        load(bad.encode())

    def self_loop(v):  # split 1 points to itself (same width)
        v = list(v)
        j = next(i for i, s in enumerate(v) if len(s) == 1 and i > 0)
        v[j] = str(j)
        return v

    bad = _edit_first(small_text, "left_child", self_loop)
    with pytest.raises(ModelFormatError, match="tree"):
        load(bad.encode())


def test_child_indices_with_a_detached_cycle():
    """Every node has one parent, yet splits 1 and 2 are each other's child and the root never
    reaches them: not a tree."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    booster = lgb.train({"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5,
                         "verbose": -1}, lgb.Dataset(X, X[:, 0] + X[:, 1] ** 2), 1)
    text = booster.model_to_string()
    assert "num_leaves=4" in text
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)
    text = re.sub(r"^left_child=.*$", "left_child=-1 2 1", text, count=1, flags=re.M)
    text = re.sub(r"^right_child=.*$", "right_child=-2 -3 -4", text, count=1, flags=re.M)
    with pytest.raises(ModelFormatError, match="cycle or unreachable nodes"):
        read_lightgbm_text(text)


def test_edited_arrays_and_header(small_text):
    bad = _edit_first(small_text, "num_leaves", lambda v: [str(int(v[0]) - 1)])
    with pytest.raises(ModelFormatError):
        load(bad.encode())
    bad = _edit_first(small_text, "leaf_value", lambda v: ["x" * len(v[0])] + v[1:])
    with pytest.raises(ModelFormatError, match="leaf_value"):
        load(bad.encode())
    bad = _edit_first(small_text, "split_feature", lambda v: ["9"] + v[1:])
    with pytest.raises(ModelFormatError, match="feature"):
        load(bad.encode())
    bad = small_text.replace("num_class=1", "num_class=x")
    with pytest.raises(ModelFormatError, match="num_class"):
        load(bad.encode())
    bad = re.sub(r"^feature_names=(\S+) ", "feature_names=", small_text, count=1, flags=re.M)
    with pytest.raises(ModelFormatError, match="feature_names"):
        load(bad.encode())
    bad = small_text.replace("\nparameters:", "\nparameters:\n[x: y]").split("end of parameters")[0]
    with pytest.raises(ModelFormatError, match="parameters"):
        load(bad.encode())
    bad = small_text.replace("pandas_categorical:null", "pandas_categorical:[[")
    with pytest.raises(ModelFormatError, match="pandas_categorical"):
        load(bad.encode())


def test_crlf_is_accepted(small_text):
    ens = load(small_text.replace("\n", "\r\n").encode())
    np.testing.assert_array_equal(ens.value, read_lightgbm_text(small_text).value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_edits_never_crash(small_text, data):
    raw = bytearray(small_text.encode())
    start = raw.index(b"Tree=0")
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(start, len(raw) - 1))
        raw[pos] = data.draw(st.sampled_from(b"0123456789-.= \nxe"))
    try:
        ens = load(bytes(raw))
    except (ModelFormatError, UnsupportedModelError):
        return
    # anything accepted is a consistent model LightGBM loads and scores like we do; the one
    # exception is a parameters block edited into values LightGBM's own parameter dump cannot
    # print (it copies them back verbatim), which must surface as a ConversionError
    X = np.random.default_rng(0).normal(size=(50, ens.n_features))
    try:
        booster = to_booster(ens)
    except ConversionError:
        params_start = small_text.encode().index(b"\nparameters:")
        assert bytes(raw)[params_start:] != small_text.encode()[params_start:], \
            "LightGBM refused a model whose parameters block was not edited"
        return
    np.testing.assert_allclose(native_raw(booster, X), reference_margin(ens, X), atol=1e-9)


def test_unsupported_models():
    spec = LgbSpec("regression", n_trees=2, nan_frac=0.0)
    X, y, _ = make_data(spec)
    p = params_for(spec)
    linear = lgb.train({**p, "linear_tree": True}, lgb.Dataset(X, y), num_boost_round=2)
    with pytest.raises(UnsupportedModelError, match="linear"):
        load(linear)
    with pytest.raises(UnsupportedModelError, match="linear"):
        load(linear.model_to_string().encode())
    for extra in ({"objective": "quantile"}, {"reg_sqrt": True}):
        b = lgb.train({**p, **extra}, lgb.Dataset(X, y), num_boost_round=2)
        with pytest.raises(UnsupportedModelError):
            load(b)
    yb = (y > np.median(y)).astype(float)
    b = lgb.train({**p, "objective": "binary", "sigmoid": 2.0}, lgb.Dataset(X, yb),
                  num_boost_round=2)
    with pytest.raises(UnsupportedModelError, match="sigmoid"):
        load(b)


# ---------------------------------------------------------------------------------------------
# (4) files: reading never changes the source, saving never overwrites it
# ---------------------------------------------------------------------------------------------
def test_never_overwrites_the_source(tmp_path):
    booster, X = fitted(LgbSpec("binary"))
    src = tmp_path / "model.txt"
    booster.save_model(str(src))
    before = src.read_bytes()
    mtime = src.stat().st_mtime_ns
    ens = load(src)
    assert ens.source_meta["source_path"] == str(src.resolve())
    with pytest.raises(TreePruneError, match="source"):
        ens.save(src)
    assert src.read_bytes() == before and src.stat().st_mtime_ns == mtime
    out = tmp_path / "copy.txt"
    ens.save(out)
    np.testing.assert_array_equal(native_raw(lgb.Booster(model_file=str(out)), X),
                                  native_raw(booster, X))
    with pytest.raises(TreePruneError, match="exists"):
        ens.save(out, overwrite=False)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.txt", "model.txt"]
