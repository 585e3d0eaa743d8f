"""Data handed to predict: arrays, DataFrames aligned by name, categories, and clear errors."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import treeprune as tp
from treeprune.errors import DataError


@pytest.fixture(scope="module")
def named_model():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["limit", "age", "bill"])
    y = (X["limit"] - X["age"] + rng.logistic(size=400) > 0).astype(float)
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic"},
                        xgb.DMatrix(X, y), 10)
    return tp.load(booster), X, booster


def test_columns_are_aligned_by_name(named_model):
    ens, X, booster = named_model
    shuffled = X[["bill", "limit", "age"]].assign(extra=1.0)
    np.testing.assert_array_equal(ens.predict(shuffled, output="margin"),
                                  ens.predict(X.to_numpy(), output="margin"))
    np.testing.assert_allclose(ens.predict(X, output="margin"),
                               booster.predict(xgb.DMatrix(X), output_margin=True), atol=1e-6)


def test_a_single_row_as_a_vector(named_model):
    ens, X, _ = named_model
    row = X.to_numpy()[7]
    assert ens.predict(row, output="margin").shape == (1,)
    assert ens.predict(row, output="margin")[0] == ens.predict(X, output="margin")[7]


@pytest.mark.parametrize("bad, match", [
    (lambda X: X.drop(columns=["age"]), "missing 1 feature column"),
    (lambda X: X.to_numpy()[:, :2], "expects 3 features"),
    (lambda X: X.assign(age=X["age"].astype(str) + "y"), "non-numeric"),
    (lambda X: X.to_numpy()[None], "2-dimensional"),
    (lambda X: [["a", "b", "c"]], "could not be read as numbers"),
    (lambda X: X.to_numpy()[0, :2], "single row must have 3"),
])
def test_bad_data_raises_a_clear_error(named_model, bad, match):
    ens, X, _ = named_model
    with pytest.raises(DataError, match=match):
        ens.predict(bad(X))


def test_unknown_output_and_threads(named_model):
    ens, X, _ = named_model
    with pytest.raises(DataError, match="unknown output"):
        ens.predict(X, output="proba")
    with pytest.raises(DataError, match="n_threads"):
        ens.predict(X, n_threads=0)
    np.testing.assert_array_equal(ens.predict(X, n_threads=1), ens.predict(X, n_threads=2))


def test_pandas_categories_use_the_models_own_coding():
    """A frame whose category order differs from training's still routes by category value;
    unseen categories are missing, as LightGBM does."""
    rng = np.random.default_rng(1)
    cats = ["rent", "own", "mortgage", "other"]
    X = pd.DataFrame({"tenure": pd.Categorical(rng.choice(cats, 600), categories=cats),
                      "income": rng.normal(size=600)})
    y = ((X["tenure"] == "own") | (X["income"] > 1)).astype(float)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5,
                         "cat_smooth": 1}, lgb.Dataset(X, y), 10)
    ens = tp.load(booster)
    reordered = X.assign(tenure=X["tenure"].cat.reorder_categories(cats[::-1]))
    np.testing.assert_allclose(ens.predict(reordered, output="margin"),
                               booster.predict(X, raw_score=True), atol=1e-12)
    unseen = X.assign(tenure=pd.Categorical(["council"] * len(X)))
    np.testing.assert_allclose(ens.predict(unseen, output="margin"),
                               booster.predict(unseen, raw_score=True), atol=1e-12)
