"""Invariants 1-3 of DESIGN.md on models trained on the real credit data sets.

leaf ids equal native pred_leaf, margins equal native margins within 1e-5, and
save -> native load -> native predict equals Ensemble.predict.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from credit_data import load_credit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import treeprune as tp

pytestmark = pytest.mark.shared_data
DATASETS = ["taiwan", "heloc", "german", "hmeq"]


def xgb_model(X, y, n_trees, depth):
    d = xgb.DMatrix(X, y, enable_categorical=True)
    return xgb.train({"max_depth": depth, "eta": 0.05, "objective": "binary:logistic",
                      "nthread": 2, "seed": 0, "max_cat_to_onehot": 4}, d, n_trees)


def lgb_model(X, y, n_trees, leaves):
    return lgb.train({"objective": "binary", "num_leaves": leaves, "learning_rate": 0.05,
                      "verbose": -1, "num_threads": 2, "seed": 0, "min_data_in_leaf": 5},
                     lgb.Dataset(X, y), n_trees)


def check_invariants(model, X, tmp_path):
    ens = tp.load(model)
    if isinstance(model, xgb.Booster):
        d = xgb.DMatrix(X, enable_categorical=True)
        native_leaf = model.predict(d, pred_leaf=True)
        native_margin = model.predict(d, output_margin=True)
        out = tmp_path / "m.json"
        ens.save(out)
        reloaded = xgb.Booster(model_file=str(out)).predict(d, output_margin=True)
    else:
        native_leaf = model.predict(X, pred_leaf=True)
        native_margin = model.predict(X, raw_score=True)
        out = tmp_path / "m.txt"
        ens.save(out)
        reloaded = lgb.Booster(model_file=str(out)).predict(X, raw_score=True)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), native_leaf)
    ours = ens.predict(X, output="margin")
    np.testing.assert_allclose(ours, native_margin, rtol=0, atol=1e-5)
    np.testing.assert_allclose(reloaded, ours, rtol=0, atol=1e-5)
    return ens


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_real_models_route_and_score_exactly(name, lib, tmp_path):
    X, y = load_credit(name)
    X = X.iloc[:3000]
    y = y[:3000]
    model = xgb_model(X, y, 60, 6) if lib == "xgboost" else lgb_model(X, y, 60, 31)
    check_invariants(model, X, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_thousand_deep_trees_on_taiwan(lib, tmp_path):
    X, y = load_credit("taiwan")
    model = xgb_model(X, y, 1000, 10) if lib == "xgboost" else lgb_model(X, y, 1000, 255)
    check_invariants(model, X.iloc[:5000], tmp_path)


@pytest.fixture(scope="module")
def taiwan_models():
    X, y = load_credit("taiwan")
    X = X.iloc[:4000].to_numpy(dtype=np.float64)
    y = y[:4000]
    return X, xgb_model(X, y, 40, 5), lgb_model(X, y, 40, 31)


def _thresholds(ens):
    return np.unique(ens.threshold[(ens.left >= 0) & (ens.cat_index < 0)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_values_at_and_around_thresholds(taiwan_models, data):
    """Rows built from the models' own thresholds, one ulp either side (float32 and float64),
    signed zeros, infinities and NaN: treeprune routes them as the natives do."""
    X, xgb_m, lgb_m = taiwan_models
    for model in (xgb_m, lgb_m):
        ens = tp.load(model)
        thr = _thresholds(ens)
        n = 32
        rows = np.array(X[data.draw(st.lists(st.integers(0, len(X) - 1), min_size=n,
                                             max_size=n))])
        picks = data.draw(st.lists(st.tuples(
            st.integers(0, ens.n_features - 1), st.integers(0, len(thr) - 1),
            st.sampled_from(["at", "f32+", "f32-", "f64+", "f64-", "+0", "-0", "inf", "-inf",
                             "nan"])), min_size=20, max_size=200))
        for i, (f, k, kind) in enumerate(picks):
            if kind in ("inf", "-inf") and isinstance(model, xgb.Booster):
                kind = "nan"  # XGBoost refuses infinite inputs unless missing=inf
            t = thr[k]
            v = {"at": t, "f32+": float(np.nextafter(np.float32(t), np.float32(np.inf))),
                 "f32-": float(np.nextafter(np.float32(t), np.float32(-np.inf))),
                 "f64+": np.nextafter(t, np.inf), "f64-": np.nextafter(t, -np.inf),
                 "+0": 0.0, "-0": -0.0, "inf": np.inf, "-inf": -np.inf, "nan": np.nan}[kind]
            rows[i % n, f] = v
        if isinstance(model, xgb.Booster):
            d = xgb.DMatrix(rows)
            native_leaf = model.predict(d, pred_leaf=True)
            native_margin = model.predict(d, output_margin=True)
        else:
            native_leaf = model.predict(rows, pred_leaf=True)
            native_margin = model.predict(rows, raw_score=True)
        np.testing.assert_array_equal(ens.predict(rows, output="leaf"), native_leaf)
        np.testing.assert_allclose(ens.predict(rows, output="margin"), native_margin, atol=1e-5)
