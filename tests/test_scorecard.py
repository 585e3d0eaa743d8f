"""Scorecard scaling (PDO / base score / base odds) and points tables of stump ensembles."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treeprune._rules import LIGHTGBM_ZERO_THRESHOLD
from treeprune.errors import TreePruneError, UnsupportedModelError
from treeprune.objectives import Objective
from treeprune.scorecard import Scorecard, points_table_predict
from treeprune.trees import Tree, assemble, empty_nodes

BINARY = Objective("binary:logistic", "logloss", "sigmoid")
ZERO = LIGHTGBM_ZERO_THRESHOLD


# ------------------------------------------------------------------------------- scaling
def test_factor_and_offset():
    sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    assert sc.factor == pytest.approx(20 / math.log(2))
    assert sc.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))
    assert sc.offset == pytest.approx(487.1228762045055)


@pytest.mark.parametrize("pdo,base_score,base_odds", [(20, 600, 50), (40, 500, 1), (15, 660, 72.5)])
def test_anchors(pdo, base_score, base_odds):
    sc = Scorecard(pdo=pdo, base_score=base_score, base_odds=base_odds)
    # good:bad odds = base_odds  <=>  margin (log-odds of bad) = -ln(base_odds)
    m0 = -math.log(base_odds)
    assert sc.score_from_margin(m0) == pytest.approx(base_score, abs=1e-9)
    assert sc.score_from_probability(1 / (1 + base_odds)) == pytest.approx(base_score, abs=1e-9)
    # doubling the good:bad odds adds pdo; halving takes it away
    assert sc.score_from_margin(m0 - math.log(2)) == pytest.approx(base_score + pdo, abs=1e-9)
    assert sc.score_from_margin(m0 + math.log(2)) == pytest.approx(base_score - pdo, abs=1e-9)
    # riskier (higher margin) -> fewer points
    assert sc.score_from_margin(1.0) < sc.score_from_margin(0.0)


def test_round_trips():
    sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    m = np.linspace(-8, 8, 101)
    s = sc.score_from_margin(m)
    assert isinstance(s, np.ndarray) and s.shape == m.shape
    np.testing.assert_allclose(sc.margin_from_score(s), m, rtol=0, atol=1e-12)
    p = 1 / (1 + np.exp(-m))
    np.testing.assert_allclose(sc.score_from_probability(p), s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sc.probability_from_score(s), p, rtol=1e-12)
    assert isinstance(sc.score_from_margin(0.5), float)
    assert isinstance(sc.margin_from_score(600), float)
    assert sc.score_from_margin(np.array([[0.0, 1.0]])).shape == (1, 2)
    assert sc.score_from_probability(np.array([0.0]))[0] == np.inf


def test_rounding():
    m = np.array([-2.0, 0.123, 3.3])
    raw = Scorecard().score_from_margin(m)
    np.testing.assert_array_equal(Scorecard(rounding="integer").score_from_margin(m), np.round(raw))
    np.testing.assert_array_equal(Scorecard(rounding=2).score_from_margin(m), np.round(raw, 2))
    assert Scorecard(rounding="integer").score_from_margin(0.123) == float(np.round(raw[1]))


@pytest.mark.parametrize("kwargs", [
    {"pdo": 0}, {"pdo": -20}, {"base_odds": 0}, {"base_odds": -1}, {"pdo": math.nan},
    {"base_score": math.inf}, {"base_odds": "50"}, {"rounding": -1}, {"rounding": "int"},
    {"rounding": 1.5}, {"rounding": True},
])
def test_validation(kwargs):
    with pytest.raises(TreePruneError):
        Scorecard(**kwargs)


def test_frozen_and_dict_round_trip():
    sc = Scorecard(pdo=25, base_score=650, base_odds=30, rounding="integer")
    with pytest.raises(AttributeError):
        sc.pdo = 10  # type: ignore[misc]
    d = json.loads(json.dumps(sc.to_dict()))
    assert d["odds"] == "good:bad"
    assert Scorecard.from_dict(d) == sc
    assert Scorecard.from_dict({"pdo": 20}) == Scorecard()
    with pytest.raises(TreePruneError, match="unknown Scorecard keys"):
        Scorecard.from_dict({**d, "scale": 2})
    with pytest.raises(TreePruneError, match="odds convention"):
        Scorecard.from_dict({**d, "odds": "bad:good"})


def test_probability_validation():
    from treeprune.errors import DataError

    with pytest.raises(DataError):
        Scorecard().score_from_probability([0.5, 1.2])
    with pytest.raises(DataError):
        Scorecard().score_from_probability([np.nan])


# ------------------------------------------------------------------------------- stump ensembles
def stump(f, thr, left, right, default_left=True, missing_type=2, weight=1.0):
    nodes = empty_nodes(3)
    nodes["feature"][0], nodes["threshold"][0] = f, thr
    nodes["left"][0], nodes["right"][0] = 1, 2
    nodes["default_left"][0] = default_left
    nodes["missing_type"][0] = missing_type
    nodes["value"][1], nodes["value"][2] = left, right
    return Tree(nodes, weight=weight)


def make_ensemble(trees, source="xgboost", n_features=3, base_margin=0.0, folded=0.0,
                  objective=BINARY):
    return assemble(
        None, trees, objective=objective, base_margin=np.full(objective.n_groups, base_margin),
        folded_intercept=np.full(objective.n_groups, folded), n_features=n_features,
        feature_names=tuple(f"x{i}" for i in range(n_features)),
        feature_types=("float",) * n_features, categories={},
        monotone_constraints=(0,) * n_features, source=source,
    )


def reference_margin(ens, X):
    """Route every row through every stump with the source library's rule.

    XGBoost: NaN -> default side, else left iff float32(x) < threshold. LightGBM (dense input):
    |x| <= kZeroThreshold is read as 0.0 (the C API drops it from the row); then NaN -> 0.0 unless
    the missing type is NaN; Zero type sends 0.0 to the default side, NaN type sends NaN there;
    else left iff x <= threshold.
    """
    out = np.full(len(X), float(ens.base_margin[0]))
    for t in range(ens.n_trees):
        sl = ens.tree_slice(t)
        left, value = ens.left[sl], ens.value[sl]
        w = float(ens.tree_weight[t])
        if left[0] < 0:
            out += w * value[0]
            continue
        f, thr = int(ens.feature[sl][0]), float(ens.threshold[sl][0])
        d, m = bool(ens.default_left[sl][0]), int(ens.missing_type[sl][0])
        for r in range(len(X)):
            x = float(X[r, f])
            if ens.source == "xgboost":
                go_left = d if math.isnan(x) else float(np.float32(x)) < np.float32(thr)
            else:
                if abs(x) <= ZERO or (math.isnan(x) and m != 2):
                    x = 0.0
                if (m == 1 and x == 0.0) or (m == 2 and math.isnan(x)):
                    go_left = d
                else:
                    go_left = x <= thr
            out[r] += w * value[int(left[0]) if go_left else int(ens.right[sl][0])]
    return out


def test_points_table_by_hand_xgboost():
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    trees = [
        stump(0, f32(1.5), 0.2, -0.1, default_left=True),
        stump(0, f32(3.0), 0.1, -0.3, default_left=True),
        stump(1, f32(0.5), -0.05, 0.4, default_left=False),
        Tree.leaf(0.07),
        stump(0, f32(1.5), 0.05, 0.0, default_left=True),
    ]
    ens = make_ensemble(trees, base_margin=-1.0)
    sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    table = sc.points_table(ens)
    assert list(table.columns) == ["feature", "feature_index", "kind", "interval", "lower",
                                   "upper", "lower_closed", "upper_closed", "includes_missing",
                                   "points"]
    F = sc.factor
    base = table.iloc[0]
    assert base["kind"] == "base"
    assert base["points"] == pytest.approx(sc.offset - F * (-1.0 + 0.07))
    x0 = table[table["feature"] == "x0"]
    assert list(x0["interval"]) == ["(-inf, 1.5)", "[1.5, 3.0)", "[3.0, inf)"]
    assert x0["lower_closed"].all() and not x0["upper_closed"].any()
    np.testing.assert_allclose(x0["points"], [-F * (0.2 + 0.1 + 0.05), -F * (-0.1 + 0.1 + 0.0),
                                              -F * (-0.1 - 0.3 + 0.0)])
    # all x0 stumps send NaN left: missing goes with the lowest interval
    assert list(x0["includes_missing"]) == [True, False, False]
    x1 = table[table["feature"] == "x1"]
    assert list(x1["includes_missing"]) == [False, True]  # default right -> upper interval
    assert set(table["kind"]) == {"base", "interval"}
    X = np.array([[1.0, 0.0, 9], [1.5, 0.5, 9], [np.nan, np.nan, 9], [4.0, -1.0, 9]])
    got = points_table_predict(table, X)
    np.testing.assert_allclose(got, sc.score_from_margin(reference_margin(ens, X)), atol=1e-9)
    # a DataFrame is matched by name
    frame = pd.DataFrame(X[:, [1, 0]], columns=["x1", "x0"])
    np.testing.assert_allclose(sc.points_table_predict(table, frame), got, atol=1e-12)


def test_missing_row_when_nan_routes_like_no_interval():
    trees = [stump(0, 1.0, 1.0, 0.0, default_left=False), stump(0, 2.0, 0.0, 1.0, default_left=True)]
    table = Scorecard().points_table(make_ensemble(trees, n_features=1))
    x0 = table[table["feature_index"] == 0]
    # NaN goes right of 1 and left of 2: that is the middle interval
    assert list(x0["includes_missing"]) == [False, True, False]
    trees = [stump(0, 1.0, 1.0, 0.0, default_left=True), stump(0, 2.0, 0.0, 1.0, default_left=False)]
    table = Scorecard().points_table(make_ensemble(trees, n_features=1))
    # NaN goes left of 1 and right of 2: no interval does that
    assert list(table["kind"]) == ["base", "interval", "interval", "interval", "missing"]
    assert table["includes_missing"].sum() == 1
    assert table["points"].iloc[-1] == pytest.approx(-Scorecard().factor * 2.0)


def test_lightgbm_rules_intervals_zero_and_intercept():
    trees = [
        stump(0, 0.5, 0.3 + 0.2, 0.3 - 0.4, default_left=False, missing_type=0),  # intercept 0.3
        stump(0, -1.0, 0.1, -0.1, default_left=True, missing_type=1),
        stump(1, 2.0, 0.25, -0.25, default_left=False, missing_type=2),
    ]
    ens = make_ensemble(trees, source="lightgbm", n_features=2, folded=0.3)
    sc = Scorecard()
    table = sc.points_table(ens)
    assert table.attrs["source"] == "lightgbm"
    assert table["points"].iloc[0] == pytest.approx(sc.offset - sc.factor * 0.3)
    x0 = table[table["feature_index"] == 0]
    assert list(x0["kind"]) == ["interval", "interval", "interval", "zero"]
    assert list(x0["interval"])[:3] == ["(-inf, -1.0]", "(-1.0, 0.5]", "(0.5, inf)"]
    assert x0["upper_closed"].iloc[:3].all() and not x0["lower_closed"].iloc[:3].any()
    # stump 2 (type Zero) sends zero to its default (left) side although 0 > -1.0: a zero row.
    # NaN: stump 1 (type None) reads it as 0.0 <= 0.5 -> left; stump 2 reads it as zero -> left.
    # Zero routes the same way, so NaN shares the zero row.
    assert x0["includes_missing"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(x0["points"].iloc[3], -sc.factor * (0.2 + 0.1))
    np.testing.assert_allclose(x0["points"].iloc[1], -sc.factor * (0.2 - 0.1))
    x1 = table[table["feature_index"] == 1]
    assert list(x1["includes_missing"]) == [False, True]
    X = np.array([[0.0, 0.0], [-0.0, np.nan], [np.nan, 3.0], [0.5, 2.0], [-1.0, 1.0],
                  [ZERO, 0.0], [-ZERO, 0.0], [2 * ZERO, 0.0], [-5.0, np.inf], [-np.inf, -np.inf]])
    np.testing.assert_allclose(points_table_predict(table, X),
                               sc.score_from_margin(reference_margin(ens, X)), atol=1e-9)


def test_dart_weights_and_rounding():
    trees = [stump(0, 1.0, 0.5, -0.5, weight=0.5), stump(0, 1.0, 0.5, -0.5, weight=0.25)]
    ens = make_ensemble(trees, n_features=1)
    X = np.array([[0.0], [2.0], [np.nan]])
    sc = Scorecard()
    np.testing.assert_allclose(points_table_predict(sc.points_table(ens), X),
                               sc.score_from_margin(reference_margin(ens, X)), atol=1e-9)
    rounded = Scorecard(rounding="integer").points_table(ens)
    assert (rounded["points"] == np.round(rounded["points"])).all()


def test_points_table_refuses_deep_categorical_and_multiclass():
    nodes = empty_nodes(5)
    nodes["feature"][:2] = [0, 1]
    nodes["left"][:2], nodes["right"][:2] = [1, 3], [2, 4]
    nodes["value"][2:] = [0.1, 0.2, 0.3]
    deep = make_ensemble([stump(0, 1.0, 0, 1), Tree(nodes)])
    with pytest.raises(UnsupportedModelError, match=r"max depth 2.*depth 1"):
        Scorecard().points_table(deep)
    cat = stump(0, 0.0, 0.1, 0.2)
    cat.nodes["cat_index"][0] = 0
    cat.cat_sets = [np.array([5], dtype=np.uint32)]
    with pytest.raises(UnsupportedModelError, match="categorical"):
        Scorecard().points_table(make_ensemble([cat]))
    multi = Objective("multi:softprob", "softmax", "softmax", n_classes=3)
    with pytest.raises(UnsupportedModelError, match="binary"):
        Scorecard().points_table(make_ensemble([stump(0, 1.0, 0, 1)], objective=multi))


# candidate thresholds and the values around them (float32 neighbours too)
_THRESHOLDS = [-1.0, -ZERO, 0.0, ZERO, 0.1, float(np.float32(0.1)), 1.5, 2.0]


def _x_values(thresholds):
    vals = [np.nan, 0.0, -0.0, ZERO, -ZERO, 1e-36, -1e-36, np.inf, -np.inf, 0.3, -7.0]
    for t in thresholds:
        vals += [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf),
                 float(np.nextafter(np.float32(t), np.float32(-np.inf))),
                 float(np.nextafter(np.float32(t), np.float32(np.inf)))]
    return vals


@st.composite
def stump_models(draw):
    source = draw(st.sampled_from(["xgboost", "lightgbm"]))
    n_trees = draw(st.integers(1, 8))
    trees = []
    for _ in range(n_trees):
        if draw(st.integers(0, 5)) == 0:
            trees.append(Tree.leaf(draw(st.floats(-1, 1, width=32))))
            continue
        thr = draw(st.sampled_from(_THRESHOLDS))
        if source == "xgboost":
            thr = float(np.float32(thr))
        trees.append(stump(
            draw(st.integers(0, 2)), thr,
            draw(st.floats(-1, 1, width=32)), draw(st.floats(-1, 1, width=32)),
            default_left=draw(st.booleans()),
            missing_type=draw(st.sampled_from([0, 1, 2])) if source == "lightgbm" else 2,
            weight=draw(st.sampled_from([1.0, 1.0, 0.5])),
        ))
    folded = draw(st.sampled_from([0.0, 0.25])) if source == "lightgbm" else 0.0
    base = draw(st.floats(-2, 2, width=32))
    return make_ensemble(trees, source=source, base_margin=base, folded=folded)


@settings(max_examples=150, deadline=None)
@given(stump_models(), st.integers(0, 2**32 - 1))
def test_points_table_matches_exact_routing(ens, seed):
    rng = np.random.default_rng(seed)
    vals = np.array(_x_values(_THRESHOLDS))
    X = rng.choice(vals, size=(60, 3))
    sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    table = sc.points_table(ens)
    # every feature has exactly one row taking missing values
    feats = table[table["kind"] != "base"]
    assert (feats.groupby("feature_index")["includes_missing"].sum() == 1).all()
    expected = sc.score_from_margin(reference_margin(ens, X))
    np.testing.assert_allclose(points_table_predict(table, X), expected, rtol=0, atol=1e-9)
    # attrs lost (e.g. after a round trip through CSV): the closure flags tell the rule
    bare = pd.DataFrame(table.to_dict(orient="list"))
    np.testing.assert_allclose(points_table_predict(bare, X), expected, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------- Ensemble.predict
def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _has("treeprune.predict"), reason="Ensemble.predict not available")
@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_points_table_matches_ensemble_predict(source):
    f32 = (lambda v: float(np.float32(v))) if source == "xgboost" else float
    trees = [stump(0, f32(0.3), 0.25, -0.5, default_left=False, missing_type=1),
             stump(1, f32(-1.0), -0.125, 0.375, default_left=True, missing_type=0),
             Tree.leaf(0.0625),
             stump(0, f32(0.8), 0.5, -0.25, default_left=True, missing_type=2),
             stump(2, f32(0.1), 0.75, 0.0, default_left=False, missing_type=2)]
    ens = make_ensemble(trees, source=source, base_margin=-0.5,
                        folded=0.0625 if source == "lightgbm" else 0.0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    X[:5, 0] = [0.3, 0.8, f32(0.3), np.nextafter(0.3, 0), -1.0]
    sc = Scorecard()
    got = points_table_predict(sc.points_table(ens), X)
    np.testing.assert_allclose(got, sc.score_from_margin(ens.predict(X, output="margin")),
                               atol=1e-4)
    margin64 = ens.base_margin[0] + ens.predict(X, output="per_tree").sum(axis=1)
    np.testing.assert_allclose(got, sc.score_from_margin(margin64), rtol=0, atol=1e-9)


@pytest.mark.skipif(not (_has("treeprune.io.xgboost") and _has("treeprune.predict")),
                    reason="XGBoost reader or Ensemble.predict not available yet")
def test_points_table_real_xgboost_stumps():
    xgb = pytest.importorskip("xgboost")
    from treeprune.io import load

    rng = np.random.default_rng(42)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan
    logit = 0.8 * np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) ** 2 + 0.3
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 1, "eta": 0.3,
                         "base_score": 0.3, "nthread": 1},
                        xgb.DMatrix(X, label=y, missing=np.nan), num_boost_round=50)
    ens = load(booster)
    sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    table = sc.points_table(ens)
    got = points_table_predict(table, X)
    margin64 = ens.base_margin[0] + ens.predict(X, output="per_tree").sum(axis=1)
    np.testing.assert_allclose(got, sc.score_from_margin(margin64), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, sc.score_from_margin(ens.predict(X, output="margin")),
                               atol=1e-3)
    native = booster.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True)
    np.testing.assert_allclose(got, sc.score_from_margin(native), atol=1e-3)


@pytest.mark.skipif(not (_has("treeprune.io.lightgbm") and _has("treeprune.predict")),
                    reason="LightGBM reader or Ensemble.predict not available yet")
@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_points_table_real_lightgbm_stumps(zero_as_missing):
    lgb = pytest.importorskip("lightgbm")
    from treeprune.io import load

    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 4))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    logit = 0.8 * np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) ** 2 - 0.5
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 2, "max_depth": 1,
                         "learning_rate": 0.3, "verbose": -1, "num_threads": 1,
                         "zero_as_missing": zero_as_missing, "min_data_in_leaf": 5},
                        lgb.Dataset(X, label=y), num_boost_round=50)
    ens = load(booster)
    sc = Scorecard()
    got = points_table_predict(sc.points_table(ens), X)
    native = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(got, sc.score_from_margin(native), rtol=0, atol=1e-8)
    np.testing.assert_allclose(got, sc.score_from_margin(ens.predict(X, output="margin")),
                               rtol=0, atol=1e-8)


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_points_table_matches_native_library_on_edge_values(source):
    """Hand-built stumps written with the native writer: the native library agrees at the edges
    (thresholds, their float32 neighbours, +-kZeroThreshold, NaN, +-inf)."""
    if not _has(f"treeprune.io.{source}"):
        pytest.skip(f"{source} writer not available yet")
    pytest.importorskip(source)
    f32 = (lambda v: float(np.float32(v))) if source == "xgboost" else float
    objective = (BINARY if source == "xgboost"
                 else Objective("binary", "logloss", "sigmoid"))
    trees = [
        stump(0, f32(-1.0), 0.5, -0.25, default_left=True, missing_type=1),
        stump(0, f32(ZERO), 0.125, -0.375, default_left=False, missing_type=0),
        stump(0, f32(-ZERO), -0.5, 0.25, default_left=True, missing_type=2),
        stump(1, f32(0.1), 0.25, -0.125, default_left=False, missing_type=1),
        stump(1, f32(1.5), -0.0625, 0.75, default_left=True, missing_type=0),
        stump(2, f32(0.0), 0.375, -0.5, default_left=True, missing_type=2),
    ]
    ens = make_ensemble(trees, source=source, base_margin=0.25, objective=objective)
    try:
        native = ens.to_xgboost() if source == "xgboost" else ens.to_lightgbm()
    except Exception as exc:  # noqa: BLE001 - the writer is someone else's; skip if it refuses
        pytest.skip(f"native writer refused the hand-built model: {exc}")
    vals = np.array(_x_values([-1.0, ZERO, -ZERO, 0.1, 1.5, 0.0]) + [1e-35, -1e-35])
    X = np.stack(np.meshgrid(vals, vals[:8], vals[:8], indexing="ij"), -1).reshape(-1, 3)
    X = np.ascontiguousarray(X[:, [0, 1, 2]])
    sc = Scorecard()
    got = points_table_predict(sc.points_table(ens), X)
    if source == "xgboost":
        import xgboost as xgb

        X = X[~np.isinf(X).any(axis=1)]  # XGBoost refuses inf
        got = points_table_predict(sc.points_table(ens), X)
        dm = xgb.DMatrix(X, missing=np.nan, feature_names=list(ens.feature_names))
        margin = native.predict(dm, output_margin=True)
        atol = 1e-4  # XGBoost accumulates in float32
    else:
        margin = native.predict(X, raw_score=True)
        atol = 1e-9
    np.testing.assert_allclose(got, sc.score_from_margin(margin), rtol=0, atol=atol)
    np.testing.assert_allclose(got, sc.score_from_margin(reference_margin(ens, X)), rtol=0,
                               atol=1e-9)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_scorecard_travels_with_the_saved_model(lib, tmp_path):
    """Saved with the model, a reload scores identically (and the natives still load it)."""
    import lightgbm as lgb
    import xgboost as xgb

    import treeprune as tp

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] + rng.logistic(size=500) > 0).astype(float)
    if lib == "xgboost":
        model = xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(X, y), 10)
        path = tmp_path / "m.json"
    else:
        model = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 10)
        path = tmp_path / "m.txt"
    sc = tp.Scorecard(pdo=40, base_score=500, base_odds=20, rounding="integer")
    ens = tp.load(model).with_scorecard(sc)
    ens.save(path)
    again = tp.load(path)
    assert again.scorecard == sc
    np.testing.assert_array_equal(again.predict(X, output="score"), ens.predict(X, output="score"))
    np.testing.assert_array_equal(
        again.predict(X, output="score"),
        sc.score_from_margin(again.predict(X, output="margin")))
    native = (xgb.Booster(model_file=str(path)).predict(xgb.DMatrix(X), output_margin=True)
              if lib == "xgboost" else lgb.Booster(model_file=str(path)).predict(X, raw_score=True))
    np.testing.assert_allclose(native, ens.predict(X, output="margin"), atol=1e-5)
