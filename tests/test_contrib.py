"""predict(output="contrib"): exact TreeSHAP equal to XGBoost pred_contribs / LightGBM pred_contrib.

Generated models of every supported objective (binary, regression, multiclass), with NaNs, zeros
around LightGBM's zero threshold, categorical splits and odd category codes; pruned models written
and read back natively; a model on real credit data. Every row sums to the margin.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from lgb_models import FAST_SPECS, SLOW_SPECS, LgbSpec, stress_rows, train
from models import build, make_ens
from xgb_models import SPECS, XGBSpec, dmatrix, make_model, to_frame

import treeprune as tp
from treeprune.ensemble import Ensemble
from treeprune.errors import DataError, UnsupportedModelError
from treeprune.passes.datadriven import collapse_by_data, refit_leaves, select_trees
from treeprune.passes.lossless import lossless, merge_equal_subtrees, remove_unreachable
from treeprune.passes.statistics import cap_depth, collapse_low_gain

XGB_ATOL = 1e-4  # XGBoost computes in float32 (paths, per-tree sums); ours in float64
LGB_ATOL = 1e-9  # LightGBM computes in float64, as we do


def _rows_sum_to_margin(ens: Ensemble, contrib: np.ndarray, X, atol: float) -> None:
    k = ens.n_features + 1
    per_class = contrib.reshape(len(contrib), ens.n_groups, k).sum(axis=2)
    margin = ens.predict(X, output="margin").reshape(len(contrib), ens.n_groups)
    np.testing.assert_allclose(per_class, margin, rtol=0, atol=atol)


def _lgb_iterations(booster: lgb.Booster) -> int:
    return booster.num_trees() // booster.num_model_per_iteration()


def _lgb_native(booster: lgb.Booster, X) -> np.ndarray:
    """LightGBM's contributions; for random forests (average_output) LightGBM adds every tree at
    full weight, so they sum to n_iterations times the margin: divide to compare."""
    out = np.asarray(booster.predict(X, pred_contrib=True))
    head = booster.model_to_string(num_iteration=1).split("tree_sizes")[0]
    if "\naverage_output\n" in head:
        out = out / _lgb_iterations(booster)
    return out


# ------------------------------------------------------------------------------------ XGBoost
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_xgboost_equals_pred_contribs(spec: XGBSpec):
    booster, X, _ = make_model(spec)
    ens = tp.load(booster)
    native = booster.predict(dmatrix(spec, X), pred_contribs=True)
    ours = ens.predict(to_frame(spec, X) if spec.pandas else X, output="contrib")
    assert ours.shape == native.shape
    if ens.n_groups > 1:
        assert ours.shape == (len(X), ens.n_groups, ens.n_features + 1)
    np.testing.assert_allclose(ours, native, rtol=0, atol=XGB_ATOL)
    _rows_sum_to_margin(ens, ours, X, atol=XGB_ATOL)


def test_xgboost_missing_and_categorical_edges():
    """NaN in every feature, category codes beyond the bitset, negative and fractional codes."""
    spec = XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=20, max_depth=5, seed=7)
    booster, X, _ = make_model(spec)
    rng = np.random.default_rng(0)
    odd = np.array([-1.0, -0.5, 0.5, 39.0, 39.9, 40.0, 41.0, 1e6, 2.0**24, np.nan])
    rows = X[rng.integers(len(X), size=200)].copy()
    rows[:, 0] = rng.choice(odd, size=200)
    rows[:, 1] = rng.choice(odd, size=200)
    rows[::3, 2:] = np.nan
    native = booster.predict(dmatrix(spec, rows), pred_contribs=True)
    ens = tp.load(booster)
    ours = ens.predict(rows, output="contrib")
    np.testing.assert_allclose(ours, native, rtol=0, atol=XGB_ATOL)
    _rows_sum_to_margin(ens, ours, rows, atol=XGB_ATOL)


# ------------------------------------------------------------------------------------ LightGBM
LGB_SPECS = [pytest.param(s, id=s.id) for s in FAST_SPECS] + [
    pytest.param(s, id=s.id, marks=pytest.mark.slow) for s in SLOW_SPECS
]


@pytest.mark.parametrize("spec", LGB_SPECS)
def test_lightgbm_equals_pred_contrib(spec: LgbSpec):
    booster, Xe = train(spec)
    X = stress_rows(booster, Xe, spec.n_features)
    ens = tp.load(booster)
    ours = ens.predict(X, output="contrib")
    native = _lgb_native(booster, X)
    assert ours.shape == native.shape
    if ens.n_groups > 1:
        assert ours.shape == (len(ours), ens.n_groups * (ens.n_features + 1))
    np.testing.assert_allclose(ours, native, rtol=0, atol=LGB_ATOL)
    _rows_sum_to_margin(ens, ours, X, atol=1e-9)


# ------------------------------------------------------------------------------------ pruned models
def _native_contrib(ens: Ensemble, X, tmp_path) -> np.ndarray:
    """Write ``ens``, read it back with the native library, return its contributions."""
    if ens.source == "xgboost":
        path = tmp_path / "pruned.json"
        ens.save(path)
        names = list(ens.feature_names) or None
        return xgb.Booster(model_file=str(path)).predict(xgb.DMatrix(X, feature_names=names),
                                                         pred_contribs=True)
    path = tmp_path / "pruned.txt"
    ens.save(path)
    return np.asarray(lgb.Booster(model_file=str(path)).predict(X, pred_contrib=True))


def _covers_consistent(ens: Ensemble) -> None:
    stat = ens.count if ens.source == "lightgbm" else ens.cover
    internal = np.flatnonzero(ens.left >= 0)
    base = np.repeat(ens.tree_offsets[:-1], np.diff(ens.tree_offsets))[internal]
    children = stat[base + ens.left[internal]] + stat[base + ens.right[internal]]
    np.testing.assert_allclose(children, stat[internal], rtol=1e-5)


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_pruned_models_equal_native_on_what_they_write(source, tmp_path):
    if source == "xgboost":
        spec = XGBSpec(n_trees=40, max_depth=5, seed=3, n_rows=800)
        booster, X, y = make_model(spec)
    else:
        spec = LgbSpec("binary", n_trees=40, num_leaves=15, n_rows=800)
        booster, X = train(spec)
        y = (booster.predict(X) > np.median(booster.predict(X))).astype(float)
    ens = tp.load(booster)
    steps = {
        "lossless": lossless(ens),
        "collapse_low_gain": collapse_low_gain(ens, min_gain=float(np.nanmedian(ens.gain))),
        "cap_depth": cap_depth(ens, 2),
        "select": select_trees(ens, X, y, 8),
        "collapse_by_data": collapse_by_data(ens, X, y, max_leaves=ens.n_leaves // 4),
    }
    steps["refit"] = refit_leaves(steps["collapse_by_data"], X, y)
    for name, pruned in steps.items():
        ours = pruned.predict(X, output="contrib")
        atol = XGB_ATOL if source == "xgboost" else LGB_ATOL
        np.testing.assert_allclose(ours, _native_contrib(pruned, X, tmp_path), rtol=0,
                                   atol=atol, err_msg=name)
        _rows_sum_to_margin(pruned, ours, X, atol=atol)
        _covers_consistent(pruned)


def _leaf(value: float, cover: float) -> dict:
    return {"leaf": value, "h": cover, "n": cover}


def _split(f: int, t: float, cover: float, left: dict, right: dict) -> dict:
    """A split for :func:`models.build` with count = cover (LightGBM's TreeSHAP reads counts)."""
    return {"f": f, "t": t, "h": cover, "n": cover, "v": 0.0, "g": 1.0, "l": left, "r": right}


@pytest.mark.parametrize("source", ["xgboost", "lightgbm"])
def test_lossless_passes_keep_statistics_consistent(source, tmp_path):
    """Merging equal subtrees sums their statistics; cutting an unreachable branch takes its
    statistics off the ancestors: contributions stay equal to native and sum to the margin."""
    left = _split(1, 0.25, 30.0, _leaf(1.0, 10.0), _leaf(2.0, 20.0))
    right = _split(1, 0.25, 14.0, _leaf(1.0, 6.0), _leaf(2.0, 8.0))
    equal = _split(0, 0.5, 44.0, left, right)
    # x0 < 0.5 then x0 < 0.75 (x0 <= 0.75): the right branch of the inner split is unreachable
    cut = _split(0, 0.5, 50.0,
                 _split(0, 0.75, 30.0, _split(2, 0.0, 25.0, _leaf(-1.0, 5.0), _leaf(3.0, 20.0)),
                        _leaf(7.0, 5.0)),
                 _split(1, 0.0, 20.0, _leaf(0.5, 12.0), _leaf(-0.5, 8.0)))
    ens = make_ens([build(equal), build(cut)], source)
    X = np.random.default_rng(0).normal(0.4, 0.6, size=(300, 3))
    X[::7, 0] = np.nan
    before = ens.predict(X, output="contrib")
    _rows_sum_to_margin(ens, before, X, atol=1e-9)
    out = remove_unreachable(merge_equal_subtrees(ens))
    assert out.n_leaves == ens.n_leaves - 3
    _covers_consistent(out)
    assert out.cover[out.tree_offsets[1]] == 45.0  # 50 minus the cut branch's 5
    ours = out.predict(X, output="contrib")
    _rows_sum_to_margin(out, ours, X, atol=1e-6)
    np.testing.assert_allclose(ours, _native_contrib(out, X, tmp_path), rtol=0,
                               atol=XGB_ATOL if source == "xgboost" else LGB_ATOL)


# ------------------------------------------------------------------------------------ inputs, errors
def test_pandas_categorical_input_and_thread_counts():
    spec = LgbSpec("multiclass", n_trees=6, n_classes=4, n_cat=2, pandas=True)
    booster, Xe = train(spec)
    ens = tp.load(booster)
    ours = ens.predict(Xe, output="contrib")
    np.testing.assert_allclose(ours, booster.predict(Xe, pred_contrib=True), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ens.predict(Xe, output="contrib", n_threads=1), ours)
    one = ens.predict(Xe.iloc[:1], output="contrib")
    np.testing.assert_array_equal(one, ours[:1])
    assert ens.predict(Xe.iloc[:0], output="contrib").shape == (0, ours.shape[1])
    with pytest.raises(DataError):
        ens.predict(Xe, output="contrib", n_threads=0)


def test_unknown_cover_is_a_clear_error():
    spec = XGBSpec(n_trees=3, max_depth=2)
    booster, X, _ = make_model(spec)
    ens = tp.load(booster)
    broken = ens.replace(cover=np.full(ens.n_nodes, np.nan))
    with pytest.raises(UnsupportedModelError, match="cover"):
        broken.predict(X, output="contrib")
    # a single-leaf tree needs no statistics: its value is all bias
    stump = make_ens([build(_leaf(0.25, np.nan))], "lightgbm")
    out = stump.predict(np.zeros((2, 3)), output="contrib")
    np.testing.assert_array_equal(out, [[0, 0, 0, 0.25]] * 2)


# ------------------------------------------------------------------------------------ real data
@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["german", "heloc"])
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_real_credit_models(name, lib):
    from credit_data import load_credit

    X, y = load_credit(name)
    if lib == "xgboost":
        booster = xgb.train({"max_depth": 4, "eta": 0.1, "objective": "binary:logistic",
                             "nthread": 2, "seed": 0, "max_cat_to_onehot": 4},
                            xgb.DMatrix(X, y, enable_categorical=True), 60)
        native = booster.predict(xgb.DMatrix(X, enable_categorical=True), pred_contribs=True)
        atol = XGB_ATOL
    else:
        booster = lgb.train({"objective": "binary", "num_leaves": 15, "learning_rate": 0.1,
                             "verbose": -1, "num_threads": 2, "seed": 0, "min_data_in_leaf": 5},
                            lgb.Dataset(X, y), 60)
        native = booster.predict(X, pred_contrib=True)
        atol = LGB_ATOL
    ens = tp.load(booster)
    ours = ens.predict(X, output="contrib")
    np.testing.assert_allclose(ours, native, rtol=0, atol=atol)
    _rows_sum_to_margin(ens, ours, X, atol=atol)


@pytest.mark.parametrize("max_features, budget", [(0, 0), (3, 10**9), (8, 5000)],
                         ids=["computed", "small-paths-tabled", "budget-cut"])
def test_lookup_tables_and_computed_paths_agree(monkeypatch, max_features, budget):
    """Paths are either looked up in per-pattern tables or computed per row: same numbers."""
    import treeprune.contrib as contrib

    monkeypatch.setattr(contrib, "TABLE_MAX_FEATURES", max_features)
    monkeypatch.setattr(contrib, "TABLE_BUDGET", budget)
    spec = XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=20, max_depth=5, seed=7)
    booster, X, _ = make_model(spec)
    ens = tp.load(booster)
    sp = contrib.paths(ens)
    tabled = sp.table_start >= 0
    if max_features == 0:
        assert not tabled.any()
    else:  # a mix: some paths tabled, the others (too many features, or over budget) computed
        assert tabled.any() and (~tabled).any()
    np.testing.assert_allclose(ens.predict(X, output="contrib"),
                               booster.predict(dmatrix(spec, X), pred_contribs=True),
                               rtol=0, atol=XGB_ATOL)
    lgb_booster, Xe = train(LgbSpec("binary", n_cat=2, n_trees=25))
    Xs = stress_rows(lgb_booster, Xe, 5)
    lens = tp.load(lgb_booster)
    np.testing.assert_allclose(lens.predict(Xs, output="contrib"),
                               lgb_booster.predict(Xs, pred_contrib=True), rtol=0, atol=LGB_ATOL)
