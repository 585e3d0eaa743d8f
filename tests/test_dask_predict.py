"""Predictions on dask collections, computed on a 2-process LocalCluster, equal the in-memory path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="dask support not installed: pip install 'treeprune[dask]'")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from xgb_models import XGBSpec, make_model, to_frame  # noqa: E402

import treeprune as tp  # noqa: E402
from treeprune.errors import DataError, MissingDependencyError  # noqa: E402
from treeprune.scorecard import Scorecard  # noqa: E402

OUTPUTS = ("prediction", "margin", "leaf", "per_tree", "score", "contrib")


@pytest.fixture(scope="module")
def binary_cat():
    """A binary model with categorical and missing values, its pandas data, and a scorecard."""
    spec = XGBSpec(n_cat=2, n_num=3, n_trees=12, max_depth=4, seed=9, pandas=True)
    booster, X, _ = make_model(spec)
    model = tp.load(booster).with_scorecard(Scorecard(pdo=20, base_score=600, base_odds=50))
    return model, to_frame(spec, X)


@pytest.fixture(scope="module")
def multiclass():
    spec = XGBSpec(objective="multi:softprob", n_trees=6, max_depth=3, seed=8)
    booster, X, _ = make_model(spec)
    return tp.load(booster), X


@pytest.mark.parametrize("output", OUTPUTS)
def test_dataframe_every_output_equals_in_memory(client, binary_cat, output):
    model, frame = binary_cat
    ddf = dd.from_pandas(frame, npartitions=3)
    lazy = model.predict(ddf, output=output)
    assert isinstance(lazy, da.Array)  # nothing computed yet
    got = lazy.compute()
    want = model.predict(frame, output=output)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("output", ["prediction", "margin", "leaf", "per_tree", "contrib"])
def test_array_multiclass_equals_in_memory(client, multiclass, output):
    model, X = multiclass
    # column chunks split on purpose: a partition must still see whole rows
    darr = da.from_array(X, chunks=(97, 2))
    got = model.predict(darr, output=output)
    want = model.predict(X, output=output)
    assert got.shape == want.shape  # known row chunks from the array
    np.testing.assert_array_equal(got.compute(), want)


def test_dataframe_columns_aligned_by_name(client, binary_cat):
    model, frame = binary_cat
    shuffled = frame[frame.columns[::-1]].assign(extra=1.0)
    got = model.predict(dd.from_pandas(shuffled, npartitions=2), output="margin").compute()
    np.testing.assert_array_equal(got, model.predict(frame, output="margin"))


def test_errors_are_eager_and_the_same_as_in_memory(binary_cat):
    model, frame = binary_cat
    short = frame.drop(columns=["num1"])
    with pytest.raises(DataError) as in_memory:
        model.predict(short)
    with pytest.raises(DataError) as lazy:  # raised before anything is computed
        model.predict(dd.from_pandas(short, npartitions=2))
    assert str(lazy.value) == str(in_memory.value)
    with pytest.raises(DataError, match="unknown output"):
        model.predict(dd.from_pandas(frame, npartitions=2), output="nonsense")
    with pytest.raises(DataError, match="columns but the model expects"):
        model.predict(da.zeros((10, 3), chunks=5))
    with pytest.raises(DataError, match="2-dimensional"):
        model.predict(da.zeros(5, chunks=5))
    with pytest.raises(DataError, match="dask DataFrame or a 2-D dask Array"):
        model.predict(dd.from_pandas(frame, npartitions=2)["num0"])


def test_missing_dask_names_the_extra(binary_cat, monkeypatch):
    model, frame = binary_cat
    ddf = dd.from_pandas(frame, npartitions=2)
    for name in ("dask", "dask.array", "dask.dataframe"):
        monkeypatch.setitem(sys.modules, name, None)  # "import dask.dataframe" now fails
    with pytest.raises(MissingDependencyError, match=r"treeprune\[dask\]"):
        model.predict(ddf)
    assert isinstance(MissingDependencyError("x"), ImportError)


def test_import_treeprune_does_not_import_dask(binary_cat, tmp_path):
    # nor does in-memory scoring, which goes through the dask check of Ensemble.predict
    code = ("import sys, numpy as np, treeprune; from treeprune import metrics; "
            "m = treeprune.load(sys.argv[1]); m.predict(np.zeros((3, m.n_features))); "
            "metrics.auc([0, 1, 1], [0.1, 0.2, 0.3]); "
            "assert not [k for k in sys.modules if k == 'dask' or k.startswith('dask.')], "
            "sorted(k for k in sys.modules if k.startswith('dask'))")
    path = tmp_path / "model.json"
    binary_cat[0].save(path)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_unknown_categories_per_partition(client, binary_cat):
    """Partitions that hold different subsets of the levels encode by level name, not code."""
    model, frame = binary_cat
    parts = [frame.iloc[i::3].copy() for i in range(3)]
    for p in parts:  # each partition's own categories, in its own order
        for c in ("cat0", "cat1"):
            p[c] = p[c].astype(str).replace("nan", np.nan)
            p[c] = pd.Categorical(p[c], categories=sorted(p[c].dropna().unique(), reverse=True))
    ddf = dd.from_pandas(pd.concat(parts), npartitions=3, sort=False)
    got = model.predict(ddf, output="margin").compute()
    want = model.predict(pd.concat(parts), output="margin")
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- the CLI
def _run_cli(args):
    from treeprune.cli import main

    return main(args)


def test_cli_score_parquet_glob(client, binary_cat, tmp_path, capsys):
    model, frame = binary_cat
    model_path = tmp_path / "model.json"
    model.save(model_path)
    data = tmp_path / "portfolio"
    data.mkdir()
    framed = frame.assign(applicant=np.arange(len(frame)))
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), 3)):
        framed.iloc[chunk].to_parquet(data / f"part{i}.parquet")
    out = tmp_path / "scores"
    address = client.scheduler.address
    rc = _run_cli(["score", str(model_path), "--data", str(data / "*.parquet"), "--out", str(out),
                   "--output", "score", "--keep", "applicant", "--scheduler", address])
    assert rc == 0, capsys.readouterr().err
    assert "scored 400 rows" in capsys.readouterr().err
    scored = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))])
    assert list(scored.columns) == ["applicant", "score"]
    scored = scored.sort_values("applicant")
    np.testing.assert_array_equal(scored["applicant"], np.arange(len(frame)))
    np.testing.assert_array_equal(scored["score"], model.predict(frame, output="score"))
    assert not list(out.glob("*.tmp-*"))
    # a second run refuses to write into the filled folder
    rc = _run_cli(["score", str(model_path), "--data", str(data / "*.parquet"), "--out", str(out),
                   "--scheduler", address])
    err = capsys.readouterr().err
    assert rc == 2 and "not empty" in err and "Traceback" not in err


def test_cli_score_errors_are_one_line(binary_cat, tmp_path, capsys, monkeypatch):
    model, frame = binary_cat
    model_path = tmp_path / "model.json"
    model.save(model_path)
    rc = _run_cli(["score", str(model_path), "--data", str(tmp_path / "none*.parquet"),
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no Parquet files match" in err and err.count("\n") == 1
    frame.drop(columns=["num0"]).to_parquet(tmp_path / "short.parquet")
    rc = _run_cli(["score", str(model_path), "--data", str(tmp_path / "short.parquet"),
                   "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    # the data problem is found on the metadata, before any cluster is contacted
    assert rc == 2 and "missing 1 feature column(s)" in err and "num0" in err
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    rc = _run_cli(["score", str(model_path), "--data", str(tmp_path / "short.parquet"),
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "treeprune[dask]" in err


def test_cli_compare_parquet_glob(client, binary_cat, tmp_path, capsys):
    model, frame = binary_cat
    a_path, b_path = tmp_path / "a.json", tmp_path / "b.json"
    model.save(a_path)
    tp.load(model.to_xgboost()).save(b_path)
    rng = np.random.default_rng(0)
    y = (rng.random(len(frame)) < model.predict(frame)).astype(int)
    framed = frame.assign(bad=y)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), 2)):
        framed.iloc[chunk].to_parquet(tmp_path / f"big{i}.parquet")
    rc = _run_cli(["compare", str(a_path), str(b_path), "--data", str(tmp_path / "big*.parquet"),
                   "--target", "bad", "--json", "--scheduler", client.scheduler.address])
    out = capsys.readouterr().out
    assert rc == 0
    import json

    got = json.loads(out)
    want = tp.compare(model, tp.load(b_path), frame, y).to_dict()
    assert got["metrics"] == want["metrics"] and got["n_rows"] == len(frame)
    # text outcomes: --positive-label codes them on the workers, as in memory
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), 2)):
        framed.assign(bad=np.where(y == 1, "default", "paid")).iloc[chunk].to_parquet(
            tmp_path / f"text{i}.parquet")
    rc = _run_cli(["compare", str(a_path), str(b_path), "--data", str(tmp_path / "text*.parquet"),
                   "--target", "bad", "--positive-label", "default", "--json",
                   "--scheduler", client.scheduler.address])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == want["metrics"]
