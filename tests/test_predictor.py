"""The lean predictor and compiled models: exact against the native libraries and the array path.

``Ensemble.predictor()`` must return what ``Ensemble.predict`` returns bit for bit, on single rows
and batches; the compiled path must equal the array path bit for bit; compiled models are cached
on disk by model hash and found again by another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from lgb_models import LgbSpec, stress_rows, train
from xgb_models import XGBSpec, dmatrix, make_model

import treeprune as tp
from treeprune.errors import DataError
from treeprune.kernels import compiled as compiled_mod
from treeprune.objectives import expit
from treeprune.packed import pack
from treeprune.predict import _sigmoid_row

XGB_SPECS = [
    XGBSpec(n_trees=30, max_depth=6, seed=5, nan_rate=0.2),
    XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=20, max_depth=5, seed=7),
    XGBSpec(objective="multi:softprob", n_cat=1, n_num=4, n_trees=10, max_depth=3, seed=8),
    XGBSpec(booster="dart", n_trees=25, max_depth=3, seed=10),
    XGBSpec(n_trees=15, max_depth=0, seed=19, extra={"grow_policy": "lossguide",
                                                     "max_leaves": 12}),
]
LGB_SPECS = [
    LgbSpec("binary", n_cat=2, n_trees=25),
    LgbSpec("binary", n_cat=2, missing="zero", zero_frac=0.2),
    LgbSpec("binary", missing="none"),
    LgbSpec("binary", num_leaves=63, max_depth=-1, n_trees=10, n_rows=1500),
    LgbSpec("multiclass", n_trees=6, n_classes=4, n_cat=2),
]
_CACHE: dict[str, tuple] = {}


def xgb_case(spec: XGBSpec):
    if spec.id not in _CACHE:
        booster, X, _ = make_model(spec)
        dm = dmatrix(spec, X)
        leaf = booster.predict(dm, pred_leaf=True)
        _CACHE[spec.id] = (tp.load(booster), X, leaf.reshape(len(X), -1),
                           booster.predict(dm, output_margin=True))
    return _CACHE[spec.id]


def lgb_case(spec: LgbSpec):
    if spec.id not in _CACHE:
        booster, Xe = train(spec)
        X = stress_rows(booster, Xe, spec.n_features)
        _CACHE[spec.id] = (tp.load(booster), X, booster.predict(X, pred_leaf=True),
                           booster.predict(X, raw_score=True))
    return _CACHE[spec.id]


CASES = ([pytest.param(xgb_case, s, id="xgb-" + s.id) for s in XGB_SPECS]
         + [pytest.param(lgb_case, s, id="lgb-" + s.id) for s in LGB_SPECS])


def single_rows(fn, X: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(X[i]) for i in range(len(X))])


@pytest.mark.parametrize("case, spec", CASES)
def test_predictor_matches_native_and_predict(case, spec):
    ens, X, native_leaf, native_margin = case(spec)
    margin = ens.predictor("margin")
    want = ens.predict(X, output="margin")
    np.testing.assert_allclose(want, native_margin, rtol=0, atol=1e-5)
    # batches and single rows, bit for bit what predict returns
    np.testing.assert_array_equal(margin(X), want)
    np.testing.assert_array_equal(single_rows(margin, X[:120]), want[:120])
    # float64 rows into an XGBoost model are cast like XGBoost casts them; float32 rows too
    np.testing.assert_array_equal(single_rows(margin, X[:40].astype(np.float32)), want[:40])
    np.testing.assert_array_equal(ens.predictor("leaf")(X), native_leaf)
    np.testing.assert_array_equal(ens.predictor()(X[3]), ens.predict(X[3]))
    np.testing.assert_array_equal(ens.predictor()(X), ens.predict(X))
    # probabilities of single rows (the scalar link for binary models) equal the batch's
    np.testing.assert_array_equal(single_rows(ens.predictor(), X[:150]), ens.predict(X[:150]))
    # predict on one numpy row takes the single-row kernel too: the same values and shapes
    for output in ("margin", "prediction"):
        np.testing.assert_array_equal(single_rows(lambda r, o=output: ens.predict(r, output=o),
                                                  X[:60]), ens.predict(X[:60], output=output))


def test_single_row_link_is_the_objectives_expit():
    rng = np.random.default_rng(0)
    margins = np.concatenate([rng.normal(scale=s, size=4000) for s in (0.01, 1.0, 8.0, 50.0, 900.0)]
                             + [np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324,
                                          709.78, -745.1, 36.7, -36.7])])
    got = np.concatenate([_sigmoid_row(margins[i:i + 1]) for i in range(len(margins))])
    np.testing.assert_array_equal(got, expit(margins))


def _slow(param):
    return pytest.param(*param.values, id=param.id, marks=pytest.mark.slow)


# each compiled model takes seconds to compile: two in the fast suite, the rest marked slow
@pytest.mark.parametrize("case, spec", [CASES[1], CASES[9], _slow(CASES[2]), _slow(CASES[6])])
def test_compiled_equals_array_path(case, spec, tmp_path):
    ens, X, _, native_margin = case(spec)
    fast = ens.predictor("margin", compiled=True, cache_dir=tmp_path)
    assert fast.compile_seconds is not None and fast.compile_seconds > 0
    want = ens.predict(X, output="margin")
    np.testing.assert_array_equal(single_rows(fast, X), want)
    np.testing.assert_array_equal(fast(X[:50]), want[:50])  # the compiled row loop
    np.testing.assert_array_equal(fast(X), want)  # many rows: the threaded kernels
    np.testing.assert_allclose(single_rows(fast, X), native_margin, rtol=0, atol=1e-5)
    proba = ens.predictor(compiled=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(proba(X[7]), ens.predict(X[7]))
    np.testing.assert_array_equal(single_rows(proba, X[:60]), ens.predict(X[:60]))


def test_non_contiguous_rows_and_dataframes():
    ens, X, _, _ = xgb_case(XGB_SPECS[0])
    fast = ens.predictor("margin")
    want = ens.predict(X, output="margin")
    Xf = np.asfortranarray(X)
    np.testing.assert_array_equal(single_rows(fast, Xf[:30]), want[:30])
    frame = pd.DataFrame(X, columns=list(ens.feature_names) or None)
    np.testing.assert_array_equal(fast(frame.iloc[[4]]), want[4:5])
    # a strided float32 row is converted for the kernel; an integer row takes the checked path
    strided = np.repeat(X[:5].astype(np.float32), 2, axis=1)[:, ::2]
    assert not strided[3].flags.c_contiguous
    np.testing.assert_array_equal(fast(strided[3]), ens.predict(X[3:4].astype(np.float32),
                                                                output="margin"))
    whole = np.round(np.nan_to_num(X[6])).astype(np.int64)
    np.testing.assert_array_equal(fast(whole), ens.predict(whole, output="margin"))


def test_errors():
    ens, X, _, _ = xgb_case(XGB_SPECS[0])
    with pytest.raises(DataError, match="unknown output"):
        ens.predictor("proba")
    with pytest.raises(DataError, match="scorecard"):
        ens.predictor("score")
    with pytest.raises(DataError, match="n_threads"):
        ens.predictor(n_threads=0)
    with pytest.raises(DataError, match="expects"):
        ens.predictor()(X[:, :3])
    with pytest.raises(DataError, match="single row"):
        ens.predictor()(X[0, :3])
    with pytest.raises(DataError, match="numbers"):
        ens.predictor()(np.array(["a"] * X.shape[1]))


def test_predict_on_one_row_converts_and_checks_like_a_batch():
    ens, X, _, _ = xgb_case(XGB_SPECS[0])
    want = ens.predict(X[:6].astype(np.float32), output="margin")
    strided = np.repeat(X[:6].astype(np.float32), 2, axis=1)[:, ::2]
    swapped = X[:6].astype(np.float32).astype(">f8")  # not the native float64 dtype object
    for rows in (strided, swapped, np.asfortranarray(X[:6].astype(np.float32))):
        for output in ("margin", "prediction"):
            np.testing.assert_array_equal(
                single_rows(lambda r, o=output: ens.predict(r, output=o), rows),
                want if output == "margin" else ens.objective.transform(want))
    # the row fast path comes first, and bad rows still get the typed errors of the checked path
    with pytest.raises(DataError, match="unknown output"):
        ens.predict(X[0], output="proba")
    with pytest.raises(DataError, match="single row"):
        ens.predict(X[0, :3])
    with pytest.raises(DataError, match="numbers"):
        ens.predict(np.array(["a"] * X.shape[1]))
    with pytest.raises(DataError, match="n_threads"):
        ens.predict(X[:10], n_threads=0)


_CHILD = """
import sys
import numpy as np
import treeprune as tp
ens = tp.load(sys.argv[1])
f = ens.predictor("margin", compiled=True, cache_dir=sys.argv[2])
hits = sum(f._row_one.stats.cache_hits.values())  # a one-output model's row entry point
print(f.cache_hit, hits, repr(float(f(np.asarray([float(v) for v in sys.argv[3:]]))[0])))
"""


def test_compiled_models_are_cached_on_disk(tmp_path):
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1},
                        lgb.Dataset(np.random.default_rng(1).normal(size=(300, 4)),
                                    np.arange(300) % 2), 12)
    path = tmp_path / "model.txt"
    booster.save_model(path)
    ens = tp.load(path)
    cache = tmp_path / "cache"
    first = ens.predictor("margin", compiled=True, cache_dir=cache)
    assert first.cache_hit is False
    key = compiled_mod.model_key(first._p)
    assert (cache / f"treeprune_model_{key}.py").exists()
    assert any((cache / "__pycache__").glob(f"treeprune_model_{key}*.nbi"))
    # the same model again in this process: the loaded module is reused
    assert ens.predictor("margin", compiled=True, cache_dir=cache).cache_hit is True
    # a changed model gets its own key
    other = ens.replace(base_margin=ens.base_margin + 1.0)
    assert compiled_mod.model_key(pack(other)) != key
    # another process finds both the source and Numba's machine code
    row = [0.5, -1.0, 2.0, 0.0]
    env = {**os.environ, "PYTHONPATH": str(Path(tp.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(cache),
                          *map(str, row)], capture_output=True, text=True, env=env, check=True)
    hit, numba_hits, value = out.stdout.split()
    assert hit == "True" and int(numba_hits) >= 1
    assert float(value) == float(first(np.asarray(row))[0])


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(tmp_path / "a"))
    assert compiled_mod.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("TREEPRUNE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiled_mod.default_cache_dir() == tmp_path / "xdg" / "treeprune"


def test_predict_does_not_touch_the_booster():
    booster, X, _ = make_model(XGB_SPECS[0])
    before = booster.save_raw("json")
    tp.load(booster).predictor("margin")(X[0])
    assert booster.save_raw("json") == before


def test_score_of_single_rows_equals_the_batch():
    ens, X, _, _ = xgb_case(XGB_SPECS[0])
    scored = ens.with_scorecard(tp.Scorecard(pdo=20, base_score=600, base_odds=50))
    want = scored.predict(X[:50], output="score")
    np.testing.assert_array_equal(single_rows(scored.predictor("score"), X[:50]), want)


def test_an_unusable_compiled_cache_folder_is_a_typed_error(tmp_path, monkeypatch):
    # a cache folder that is a file: the compiled model cannot be written, and the message
    # names the folder and the fix instead of a bare OSError
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(float)
    ens = tp.load(xgb.train({"max_depth": 2, "verbosity": 0}, xgb.DMatrix(X, y), 3))
    with pytest.raises(DataError, match="cache_dir"):
        ens.predictor("margin", compiled=True, cache_dir=blocker)
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(blocker))
    with pytest.raises(DataError, match="TREEPRUNE_CACHE_DIR"):
        ens.predictor("margin", compiled=True)
