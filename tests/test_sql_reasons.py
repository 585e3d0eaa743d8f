"""to_sql(..., reasons=K): contributions and top-K reasons computed in SQLite equal Python's.

Stumps, depth-2 and small deeper models; XGBoost and LightGBM; NaN (NULL), categorical splits
(codes and text levels); real credit data when ../shared/data is present.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from credit_data import load_credit
from sqlite_db import connect

import treeprune as tp
from treeprune.errors import ConversionError, UnsupportedModelError
from treeprune.reasons import feature_names
from treeprune.sql import to_sql


def run_sql(model, frame: pd.DataFrame, k: int, **kwargs) -> pd.DataFrame:
    con = connect()
    frame.to_sql("t", con, index=False)
    return pd.read_sql_query(to_sql(model, "t", reasons=k, **kwargs), con)


def check(ens: tp.Ensemble, frame: pd.DataFrame, X, k: int = 4) -> pd.DataFrame:
    """SQL contributions equal predict(output='contrib'); SQL reasons equal reason_codes."""
    out = run_sql(ens, frame, k)
    contrib = ens.predict(X, output="contrib")
    names = feature_names(ens)
    used = ens.features_used()
    sql = out[[f"contrib_{names[f]}" for f in used]].to_numpy(dtype=float)
    np.testing.assert_allclose(sql, contrib[:, used], rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["contrib_bias"], contrib[:, -1], rtol=0, atol=1e-9)
    unused = np.setdiff1d(np.arange(ens.n_features), used)
    assert np.all(contrib[:, unused] == 0)
    np.testing.assert_allclose(sql.sum(axis=1) + out["contrib_bias"], out["margin"], atol=1e-9)
    want = tp.reason_codes(ens, X, k=k)
    # reasons agree wherever the Python contributions are not within rounding of a tie
    top = np.sort(contrib[:, used], axis=1)[:, ::-1]
    gaps = np.abs(np.diff(top[:, :k + 1], axis=1)).min(axis=1) if top.shape[1] > 1 else np.ones(len(top))
    clear = gaps > 1e-9
    assert clear.mean() > 0.5
    for j in range(1, k + 1):
        got_r = out[f"reason_{j}"].where(out[f"reason_{j}"].notna(), None).to_numpy()[clear]
        want_r = want[f"reason_{j}"].where(want[f"reason_{j}"].notna(), None).to_numpy()[clear]
        assert got_r.tolist() == want_r.tolist(), j
        np.testing.assert_allclose(out[f"contribution_{j}"].to_numpy(dtype=float)[clear],
                                   want[f"contribution_{j}"].to_numpy(dtype=float)[clear],
                                   atol=1e-9)
    return out


def _generated(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 4] = rng.integers(0, 6, n)
    X[rng.random(X.shape) < 0.08] = np.nan
    y = (np.nan_to_num(X[:, 0]) - 0.7 * np.nan_to_num(X[:, 1]) * (np.nan_to_num(X[:, 2]) > 0)
         + 0.5 * (X[:, 4] % 2 == 0) + rng.logistic(size=n) > 0).astype(float)
    return X, y


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_xgboost_generated_with_nan_and_categories(depth):
    X, y = _generated()
    dm = xgb.DMatrix(X, y, feature_types=["q"] * 4 + ["c"], enable_categorical=True)
    booster = xgb.train({"max_depth": depth, "eta": 0.3, "objective": "binary:logistic",
                         "nthread": 1, "seed": 0, "max_cat_to_onehot": 1}, dm, 30)
    ens = tp.load(booster)
    assert np.any(ens.cat_index[ens.left >= 0] >= 0)
    frame = pd.DataFrame(X, columns=feature_names(ens))
    check(ens, frame, X)


@pytest.mark.parametrize("leaves", [2, 4, 8])
def test_lightgbm_generated_with_nan_and_categories(leaves):
    X, y = _generated(seed=1)
    booster = lgb.train({"objective": "binary", "num_leaves": leaves, "verbose": -1,
                         "num_threads": 1, "seed": 0, "min_data_per_group": 5, "cat_smooth": 1.0,
                         "max_cat_to_onehot": 2},
                        lgb.Dataset(X, y, categorical_feature=[4]), 30)
    ens = tp.load(booster)
    frame = pd.DataFrame(X, columns=feature_names(ens))
    check(ens, frame, X, k=3)


def test_too_large_models_are_refused_with_the_supported_sizes():
    X, y = _generated()
    booster = xgb.train({"max_depth": 8, "objective": "binary:logistic", "nthread": 1},
                        xgb.DMatrix(X[:, :4], y), 5)
    # repeated features on a path count once: only 4 distinct features here, so this fits
    run_sql(booster, pd.DataFrame(X[:20, :4], columns=[f"f{i}" for i in range(4)]), 2)
    wide = np.random.default_rng(0).normal(size=(2000, 12))
    yw = (wide.sum(axis=1) > 0).astype(float)
    deep = xgb.train({"max_depth": 8, "objective": "binary:logistic", "nthread": 1},
                     xgb.DMatrix(wide, yw), 3)
    with pytest.raises(UnsupportedModelError, match="at most 6 distinct features"):
        to_sql(deep, "t", reasons=4)
    with pytest.raises(ConversionError, match="positive integer"):
        to_sql(booster, "t", reasons=0)
    # without reasons nothing changes
    assert "contrib_" not in to_sql(booster, "t")


@pytest.mark.shared_data
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_real_credit_data_in_sqlite(lib):
    """German credit, text categories held as their levels."""
    frame, y = load_credit("german")
    if lib == "xgboost":
        booster = xgb.train({"max_depth": 2, "eta": 0.1, "objective": "binary:logistic",
                             "nthread": 2, "seed": 0, "max_cat_to_onehot": 4},
                            xgb.DMatrix(frame, y, enable_categorical=True), 40)
    else:
        booster = lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 0.1,
                             "verbose": -1, "num_threads": 2, "seed": 0, "min_data_in_leaf": 5},
                            lgb.Dataset(frame, y), 40)
    ens = tp.load(booster)
    text = frame.copy()
    for col in text.columns:
        if isinstance(text[col].dtype, pd.CategoricalDtype):
            text[col] = text[col].astype(object)
    check(ens, text, frame)


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_real_pruned_model_in_sqlite(lib):
    """A 100-tree HMEQ model pruned to 60 leaves: its reasons in SQL equal Python's."""
    hmeq, yh = load_credit("hmeq")
    half = len(hmeq) // 2
    if lib == "xgboost":
        big = xgb.train({"max_depth": 4, "eta": 0.1, "objective": "binary:logistic",
                         "nthread": 2, "seed": 0}, xgb.DMatrix(hmeq[:half], yh[:half],
                                                               enable_categorical=True), 100)
    else:
        big = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1,
                         "num_threads": 2, "seed": 0}, lgb.Dataset(hmeq[:half], yh[:half]), 100)
    # old trees selected and collapsed on one fit/judge split: this budget then leaves paths
    # short enough for SQL reasons (a grown or differently split choice may not)
    pruned = tp.prune(big, hmeq[half:], yh[half:], max_leaves=60, random_state=0, cv=1,
                      confirm_fraction=0,
                      families=["select", "collapse"]).model
    rows = hmeq[half:half + 800]
    text = rows.copy()
    for col in text.columns:
        if isinstance(text[col].dtype, pd.CategoricalDtype):
            text[col] = text[col].astype(object)
    check(pruned, text, rows)
