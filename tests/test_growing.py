"""Growing passes (regrow, distill), the affine score scale, and the prefix/append helpers.

Every grown or rescaled model is saved, reloaded by the native library and compared with
treeprune's own margins; monotone constraints are checked on a feature grid.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from lgb_models import LgbSpec
from lgb_models import make_data as lgb_data
from lgb_models import train as lgb_train
from sklearn.metrics import roc_auc_score
from xgb_models import XGBSpec, make_model

import treeprune as tp
from treeprune.errors import ConversionError, DataError, DeviceError, PruneError
from treeprune.kernels.device import cuda_available
from treeprune.passes.growing import distill, regrow, stage_sizes
from treeprune.passes.scale import fit_affine, rescale
from treeprune.trees import append_trees, prefix

FAST = {"n_estimators": 6, "early_stopping_rounds": None, "n_jobs": 1}

CASES = {
    "xgb-binary": ("xgb", XGBSpec(n_trees=8, max_depth=3, seed=1)),
    "xgb-multi": ("xgb", XGBSpec(objective="multi:softprob", n_trees=5, max_depth=3, seed=2)),
    "xgb-reg": ("xgb", XGBSpec(objective="reg:squarederror", n_trees=8, max_depth=3, seed=3)),
    "xgb-cat": ("xgb", XGBSpec(n_cat=2, n_num=3, n_trees=8, max_depth=3, seed=6)),
    "lgb-binary": ("lgb", LgbSpec(n_trees=8, num_leaves=7, seed=1)),
    "lgb-multi": ("lgb", LgbSpec(objective="multiclass", n_trees=5, num_leaves=7, seed=2)),
    "lgb-reg": ("lgb", LgbSpec(objective="regression", n_trees=8, num_leaves=7, seed=3)),
    "lgb-cat-pandas": ("lgb", LgbSpec(n_cat=2, pandas=True, n_trees=8, num_leaves=7, seed=4)),
}

_CACHE: dict[str, tuple] = {}


def model(name: str):
    """(Ensemble, X, y, X_eval) of a small model, trained once per session."""
    if name not in _CACHE:
        lib, spec = CASES[name]
        if lib == "xgb":
            booster, X, y = make_model(spec)
            Xe = X[::-1].copy()
        else:
            X, y, Xe = lgb_data(spec)
            booster, _ = lgb_train(spec)
        _CACHE[name] = (tp.load(booster), X, y, Xe)
    return _CACHE[name]


def native_margin(ens, X, tmp_path) -> np.ndarray:
    """Save, reload natively, predict margins."""
    if ens.source == "xgboost":
        path = tmp_path / "m.json"
        ens.save(path)
        return xgb.Booster(model_file=str(path)).predict(
            xgb.DMatrix(X, enable_categorical=True) if isinstance(X, pd.DataFrame)
            else xgb.DMatrix(X, feature_types=list(ens.feature_types) or None,
                             enable_categorical=True), output_margin=True)
    path = tmp_path / "m.txt"
    ens.save(path)
    return lgb.Booster(model_file=str(path)).predict(X, raw_score=True)


def assert_native_exact(ens, X, tmp_path) -> None:
    """Native reload predicts our margins, and our reader gets the intercept bookkeeping back:
    XGBoost's base margin (through base_score), LightGBM's intercept folded into the first trees."""
    ours = ens.predict(X, output="margin")
    native = native_margin(ens, X, tmp_path).reshape(ours.shape)
    np.testing.assert_allclose(ours, native, rtol=0, atol=1e-5)
    back = tp.load(tmp_path / ("m.json" if ens.source == "xgboost" else "m.txt"))
    np.testing.assert_allclose(back.predict(X, output="margin"), ours, rtol=0, atol=1e-5)
    if ens.source == "xgboost":
        np.testing.assert_allclose(back.base_margin, ens.base_margin, rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(back.folded_intercept + back.base_margin,
                                   ens.folded_intercept + ens.base_margin, rtol=0, atol=1e-5)


def arrays(ens) -> dict[str, np.ndarray]:
    return {k: np.array(getattr(ens, k)) for k in ("value", "threshold", "left", "tree_offsets",
                                                   "base_margin", "folded_intercept")}


# --------------------------------------------------------------------------- regrow
@pytest.mark.parametrize("name", list(CASES))
def test_regrow_appends_native_trees_and_reloads_exactly(name, tmp_path):
    ens, X, y, Xe = model(name)
    before = arrays(ens)
    out = regrow(ens, X, y, **FAST)
    rec = out.history[-1]
    assert rec.name == "regrow" and rec.details["base_trees"] == ens.n_trees
    assert out.n_trees == ens.n_trees + 6 * ens.n_groups
    assert out.source == ens.source and out.objective == ens.objective
    assert_native_exact(out, Xe, tmp_path)
    # the base's trees are untouched: cutting the new ones off gives the base's margins back
    np.testing.assert_allclose(prefix(out, ens.n_trees).predict(Xe, output="margin"),
                               ens.predict(Xe, output="margin"), rtol=0, atol=1e-6)
    # boosting continued from the base's margin: the loss on the rows it grew on goes down
    loss = ens.objective.loss_value
    assert loss(y, out.predict(X, output="margin")) < loss(y, ens.predict(X, output="margin"))
    for k, v in before.items():  # the input is not modified
        np.testing.assert_array_equal(v, getattr(ens, k))


def test_regrow_continues_from_a_pruned_model(tmp_path):
    """Prune-then-retrain: the first trees of a model, then new trees, on other rows."""
    ens, X, y, Xe = model("lgb-binary")
    small = prefix(ens, 2)
    out = regrow(small, X, y, max_depth=2, n_estimators=40, early_stopping_rounds=5, n_jobs=1)
    assert out.n_trees > 2
    assert_native_exact(out, Xe, tmp_path)
    assert out.n_leaves <= small.n_leaves + (out.n_trees - 2) * 4


def test_regrow_early_stopping_keeps_the_best_rounds():
    ens, X, y, _ = model("xgb-reg")
    out = regrow(ens, X, y, n_estimators=200, learning_rate=0.5, max_depth=3,
                 early_stopping_rounds=3, n_jobs=1)
    d = out.history[-1].details
    curve = d["inner_loss"]
    assert d["rounds"] == int(np.argmin(curve)) + 1
    assert len(curve) <= d["rounds"] + 3 and len(curve) < 200
    assert d["n_inner"] == round(0.2 * len(X))


# --------------------------------------------------------------------------- distill
@pytest.mark.parametrize("name", list(CASES))
def test_distill_student_reloads_exactly_and_follows_teacher(name, tmp_path):
    teacher, X, _, Xe = model(name)
    before = arrays(teacher)
    student = distill(teacher, X, max_depth=2, n_estimators=40, early_stopping_rounds=None,
                      n_jobs=1)
    assert student.history[-1].name == "distill"
    assert student.objective == teacher.objective and student.source == teacher.source
    assert student.n_trees == 40 * teacher.n_groups
    assert student.tree_depths().max() <= 2
    assert_native_exact(student, Xe, tmp_path)
    m_t = teacher.predict(X, output="margin").reshape(len(X), -1)
    m_s = student.predict(X, output="margin").reshape(len(X), -1)
    for g in range(teacher.n_groups):
        assert np.corrcoef(m_t[:, g], m_s[:, g])[0, 1] > 0.9
    # predictions are on the teacher's scale (same link)
    p_t, p_s = teacher.predict(X), student.predict(X)
    assert np.mean(np.abs(p_t - p_s)) < 0.5 * np.mean(np.abs(p_t - np.mean(p_t, axis=0)))
    for k, v in before.items():
        np.testing.assert_array_equal(v, getattr(teacher, k))
    # a prefix of the student is a smaller student, still exact
    sizes = stage_sizes(student, max_points=4)
    assert sizes[-1] == student.n_trees and len(sizes) == 4
    assert_native_exact(prefix(student, sizes[0]), Xe, tmp_path)


def test_distill_uses_unlabeled_rows_and_target_margin():
    teacher, X, _, _ = model("xgb-binary")
    base = distill(teacher, X[:200], n_estimators=10, early_stopping_rounds=None, n_jobs=1)
    more = distill(teacher, X[:200], X_unlabeled=X[200:], n_estimators=10,
                   early_stopping_rounds=None, n_jobs=1)
    assert more.history[-1].details["n_unlabeled"] == len(X) - 200
    assert not np.array_equal(base.value, more.value)
    # explicit targets replace the teacher's margins on X's rows
    target = -teacher.predict(X[:200], output="margin")
    flipped = distill(teacher, X[:200], target_margin=target, n_estimators=30,
                      early_stopping_rounds=None, n_jobs=1)
    assert np.corrcoef(flipped.predict(X[:200], output="margin"), target)[0, 1] > 0.9


def test_early_stopping_inner_split_is_deterministic():
    teacher, X, y, _ = model("lgb-multi")
    kw = {"n_estimators": 30, "early_stopping_rounds": 3, "n_jobs": 1}
    a = distill(teacher, X, random_state=3, **kw)
    b = distill(teacher, X, random_state=3, **kw)
    c = distill(teacher, X, random_state=4, **kw)
    for k in ("value", "threshold", "feature", "tree_offsets", "base_margin"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert a.n_trees != c.n_trees or not np.array_equal(a.value, c.value)
    r1 = regrow(teacher, X, y, random_state=5, **kw)
    r2 = regrow(teacher, X, y, random_state=5, **kw)
    np.testing.assert_array_equal(r1.value, r2.value)
    np.testing.assert_array_equal(r1.threshold, r2.threshold)


# --------------------------------------------------------------------------- monotone constraints
def _grid_monotone(ens, X, feature: int, sign: int) -> None:
    """Along a grid of ``feature`` (every other column fixed per row) the margin moves with
    ``sign`` only."""
    grid = np.linspace(np.nanmin(X[:, feature]) - 1, np.nanmax(X[:, feature]) + 1, 41)
    rows = np.nan_to_num(X[:40].copy())
    block = np.repeat(rows, len(grid), axis=0)
    block[:, feature] = np.tile(grid, len(rows))
    m = ens.predict(block, output="margin").reshape(len(rows), len(grid), -1)
    steps = np.diff(m, axis=1) * sign
    assert steps.min() >= -1e-9, f"feature {feature} breaks its constraint {sign}"


def test_monotone_constraints_hold_after_regrow_and_distill():
    spec = XGBSpec(n_trees=10, max_depth=3, seed=18,
                   extra={"monotone_constraints": "(1,0,-1,0,0)"})
    booster, X, y = make_model(spec)
    ens = tp.load(booster)
    assert ens.monotone_constraints == (1, 0, -1, 0, 0)
    grown = regrow(ens, X, y, max_depth=3, **FAST)
    student = distill(ens, X, max_depth=3, n_estimators=20, early_stopping_rounds=None, n_jobs=1)
    for out in (ens, grown, student):
        _grid_monotone(out, X, 0, +1)
        _grid_monotone(out, X, 2, -1)
    # an unconstrained teacher, a constrained student
    free, Xl, _, _ = model("lgb-binary")
    constrained = distill(free, Xl, monotone_constraints={free.feature_names[0]: 1,
                                                             free.feature_names[1]: -1}, n_estimators=20,
                          early_stopping_rounds=None, n_jobs=1)
    assert constrained.monotone_constraints[:2] == (1, -1)
    _grid_monotone(constrained, Xl, 0, +1)
    _grid_monotone(constrained, Xl, 1, -1)


def test_lightgbm_monotone_model_keeps_constraints_when_regrown(tmp_path):
    spec = LgbSpec(n_trees=8, num_leaves=7, seed=5,
                   params=(("monotone_constraints", [1, 0, 0, 0, -1]),))
    X, y, Xe = lgb_data(spec)
    booster, _ = lgb_train(spec)
    ens = tp.load(booster)
    grown = regrow(ens, X, y, max_depth=3, **FAST)
    assert_native_exact(grown, Xe, tmp_path)
    _grid_monotone(grown, X, 0, +1)
    _grid_monotone(grown, X, 4, -1)


def test_regrow_takes_soft_labels_for_cross_entropy(tmp_path):
    spec = LgbSpec(objective="cross_entropy", n_trees=5, num_leaves=7, seed=7)
    X, y, Xe = lgb_data(spec)
    ens = tp.load(lgb_train(spec)[0])
    assert np.any((y > 0) & (y < 1))
    assert_native_exact(regrow(ens, X, y, **FAST), Xe, tmp_path)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        regrow(ens, X, y + 1, **FAST)


# --------------------------------------------------------------------------- bad input
def test_unlabeled_rows_must_fit_the_model():
    teacher, X, _, _ = model("xgb-binary")
    with pytest.raises(DataError, match="X_unlabeled"):
        distill(teacher, X, X_unlabeled=X[:, :3], **FAST)
    with pytest.raises(DataError, match="X_unlabeled"):
        distill(teacher, X, X_unlabeled=X[0], **FAST)
    with pytest.raises(DataError, match="X_unlabeled"):
        distill(teacher, X, X_unlabeled=X[None], **FAST)
    pd_teacher, Xp, _, _ = model("lgb-cat-pandas")
    with pytest.raises(DataError, match="X_unlabeled.*missing"):
        distill(pd_teacher, Xp, X_unlabeled=Xp.drop(columns=["f1"]), **FAST)
    with pytest.raises(DataError, match="target_margin"):
        distill(teacher, X, target_margin=np.zeros(3), **FAST)
    with pytest.raises(DataError, match="NaN"):
        distill(teacher, X, target_margin=np.full(len(X), np.nan), **FAST)


@pytest.mark.parametrize("kwargs", [
    {"max_depth": 0}, {"max_depth": 2.5}, {"n_estimators": 0}, {"learning_rate": 0.0},
    {"learning_rate": 1.5}, {"inner_fraction": 1.0}, {"inner_fraction": -0.1},
    {"early_stopping_rounds": 0}, {"monotone_constraints": (1, 0)},
    {"monotone_constraints": (2, 0, 0, 0, 0)}, {"monotone_constraints": {"nope": 1}},
])
def test_bad_parameters_raise_prune_error(kwargs):
    ens, X, y, _ = model("xgb-binary")
    with pytest.raises(PruneError):
        regrow(ens, X, y, **kwargs)
    with pytest.raises(PruneError):
        distill(ens, X, **kwargs)


def test_bad_labels_weights_and_devices():
    ens, X, y, _ = model("xgb-binary")
    with pytest.raises(DataError, match="labels"):
        regrow(ens, X, y[:-1], **FAST)
    with pytest.raises(DataError, match="0/1"):
        regrow(ens, X, y + 1, **FAST)
    with pytest.raises(DataError, match="sample_weight"):
        regrow(ens, X, y, sample_weight=-np.ones(len(y)), **FAST)
    with pytest.raises(DeviceError):
        regrow(ens, X, y, device="gpu", **FAST)
    cat, Xc, yc, _ = model("xgb-cat")
    with pytest.raises(PruneError, match="categorical"):
        regrow(cat, Xc, yc, monotone_constraints=(1, 0, 0, 0, 0), **FAST)
    if not cuda_available():
        with pytest.raises(DeviceError, match="cuda"):
            distill(ens, X, device="cuda", **FAST)
        # "auto" falls back on the CPU
        assert distill(ens, X, device="auto", **FAST).history[-1].params["device"] == "cpu"


# --------------------------------------------------------------------------- prefix / append
def test_prefix_and_append_keep_the_intercept_and_rounds(tmp_path):
    ens, _, _, Xe = model("lgb-multi")
    with pytest.raises(PruneError, match="round"):
        prefix(ens, 4)
    with pytest.raises(PruneError):
        prefix(ens, ens.n_trees + 3)
    empty = prefix(ens, 0)  # no tree left: LightGBM's folded intercept moves to the base margin
    np.testing.assert_allclose(empty.base_margin, ens.folded_intercept)
    np.testing.assert_allclose(empty.predict(Xe, output="margin"),
                               np.broadcast_to(ens.folded_intercept, (len(Xe), 3)))
    head = prefix(ens, 6)
    assert_native_exact(head, Xe, tmp_path)
    assert len(head.source_meta["shrinkage"]) == 6
    # the appended trees count with their leaf values (the intercept folded into them included),
    # the other model's base margin does not
    whole = append_trees(head, head.replace(base_margin=np.ones(3)))
    assert whole.n_trees == 12 and len(whole.source_meta["shrinkage"]) == 12
    np.testing.assert_allclose(whole.predict(Xe, output="margin"),
                               2 * head.predict(Xe, output="margin"), atol=1e-9)
    assert_native_exact(whole, Xe, tmp_path)
    xens = model("xgb-multi")[0]
    with pytest.raises(ConversionError):
        append_trees(ens, xens)
    with pytest.raises(PruneError):
        stage_sizes(ens)


# --------------------------------------------------------------------------- affine scale
@pytest.mark.parametrize("name", ["xgb-binary", "xgb-multi", "xgb-reg", "lgb-binary", "lgb-multi",
                                  "lgb-reg"])
def test_rescale_is_exact_after_native_reload_and_keeps_auc(name, tmp_path):
    ens, X, y, Xe = model(name)
    K = ens.n_groups
    a = np.linspace(0.5, 1.7, K)
    b = np.linspace(-0.8, 0.6, K)
    out = rescale(ens, a, b)
    assert out.history[-1].name == "rescale"
    before = ens.predict(Xe, output="margin").reshape(len(Xe), K)
    after = out.predict(Xe, output="margin").reshape(len(Xe), K)
    np.testing.assert_allclose(after, a * before + b, rtol=0, atol=1e-5)
    assert_native_exact(out, Xe, tmp_path)
    if ens.source == "lightgbm":
        np.testing.assert_allclose(out.folded_intercept, a * ens.folded_intercept + b)
    if ens.objective.is_binary:
        assert roc_auc_score(y, out.predict(X)) == roc_auc_score(y, ens.predict(X))


@pytest.mark.parametrize("method", ["lstsq", "quantile"])
def test_fit_affine_recovers_a_known_map(method):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(2000, 3))
    target = m * np.array([2.0, 0.5, 1.0]) + np.array([1.0, -3.0, 0.0])
    a, b = fit_affine(m, target, method=method)
    np.testing.assert_allclose(a, [2.0, 0.5, 1.0], atol=1e-9)
    np.testing.assert_allclose(b, [1.0, -3.0, 0.0], atol=1e-9)
    a1, b1 = fit_affine(m[:, 0], target[:, 0], sample_weight=rng.random(2000), method=method)
    assert a1.shape == (1,) and abs(a1[0] - 2.0) < 1e-9 and abs(b1[0] - 1.0) < 1e-9


def test_fit_affine_anchors_a_group_of_tied_scores():
    # 10% of the rows share one original score (a mass point); the pruned margin keeps them tied
    # but not on the straight line through the rest
    rng = np.random.default_rng(1)
    m = rng.normal(size=2000)
    target = 1.5 * m + 0.2 + rng.normal(scale=0.3, size=2000)
    m[:200], target[:200] = 0.4, 0.9
    a0, b0 = fit_affine(m, target, method="quantile")
    a, b = fit_affine(m, target, method="quantile", anchor_share=0.02)
    assert a[0] == a0[0]
    assert a[0] * 0.4 + b[0] == pytest.approx(0.9, abs=1e-12)
    assert abs(a0[0] * 0.4 + b0[0] - 0.9) > 1e-3  # without the anchor the group moves
    # a group below the share, or one the margin splits, is not anchored
    assert fit_affine(m, target, method="quantile", anchor_share=0.2)[1][0] == b0[0]
    split = m.copy()
    split[:200] = rng.normal(size=200)
    free = fit_affine(split, target, method="quantile")
    assert fit_affine(split, target, method="quantile", anchor_share=0.02)[1][0] == free[1][0]


def test_fit_affine_and_rescale_refuse_bad_input():
    m = np.arange(10.0)
    with pytest.raises(DataError, match="constant"):
        fit_affine(np.ones(10), m)
    with pytest.raises(DataError, match="NaN"):
        fit_affine(np.where(m > 5, np.nan, m), m)
    with pytest.raises(DataError, match="order"):
        fit_affine(m, -m)
    with pytest.raises(DataError, match="shape"):
        fit_affine(m, m[:5])
    with pytest.raises(PruneError, match="method"):
        fit_affine(m, m, method="median")
    ens = model("xgb-binary")[0]
    for a, b in ((0.0, 0.0), (-1.0, 0.0), (1.0, np.nan), ([1.0, 2.0], 0.0)):
        with pytest.raises(PruneError):
            rescale(ens, a, b)
