"""The one latency helper shared by the CLI, the demo, the benchmark and the notebook."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

import treeprune as tp
from treeprune.latency import batch_seconds, latency, native_predictor, single_row_seconds


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.logistic(size=600) > 0).astype(float)
    xb = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                   xgb.DMatrix(X, y), 8)
    lb = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                   lgb.Dataset(X, y), 8)
    return X, [tp.load(xb), tp.load(lb)]


def test_native_predictor_is_the_native_prediction(models, tmp_path):
    X, ensembles = models
    for ens in ensembles:
        for output in ("prediction", "margin"):
            got = native_predictor(ens, n_threads=1, output=output)(X)
            np.testing.assert_allclose(got, ens.predict(X, output=output), atol=1e-5)
        path = tmp_path / ("m.json" if ens.source == "xgboost" else "m.txt")
        ens.save(path)
        np.testing.assert_allclose(native_predictor(ens, path, 2)(X), ens.predict(X), atol=1e-6)


def test_timers_count_calls_and_return_seconds(models):
    X, (ens, _) = models
    calls = []

    def predict(rows):
        calls.append(len(rows))
        return ens.predict(rows)

    s = single_row_seconds(predict, X, n_calls=7)
    assert calls == [1] * 8 and 0 < s < 1  # one warm-up call, then 7 timed single rows
    calls.clear()
    b = batch_seconds(predict, X, repeats=3)
    assert calls == [600] * 4 and b > 0
    assert batch_seconds(predict, X, repeats=3, reduce="median") > 0
    with pytest.raises(ValueError, match="reduce"):
        batch_seconds(predict, X, reduce="mean")
    with pytest.raises(ValueError):
        single_row_seconds(predict, X[:0])


def test_latency_report(models):
    X, ensembles = models
    for ens in ensembles:
        res = latency(ens, X, single_calls=5, batch_repeats=1)
        assert res["rows"] == 600 and res["unit"] == "s"
        for engine in ("treeprune", "native"):
            assert set(res[engine]) == {"single_row_s", "batch_s", "rows_per_s"}
            assert res[engine]["rows_per_s"] == pytest.approx(600 / res[engine]["batch_s"])
