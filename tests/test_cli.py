"""The command line, end to end in subprocesses, on real model and data files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import treeprune as tp
from treeprune.datasets import load_taiwan

TARGET = "default"


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TREEPRUNE_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "treeprune", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("treeprune: error:")]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An XGBoost JSON model, a LightGBM text model, validation data as CSV and Parquet."""
    import lightgbm as lgb
    import xgboost as xgb

    folder = tmp_path_factory.mktemp("cli")
    X, y = load_taiwan()
    Xtr, ytr = X.iloc[:3000], y.iloc[:3000]
    xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "nthread": 1,
               "seed": 0}, xgb.DMatrix(Xtr, ytr), 20).save_model(folder / "xgb.json")
    lgb.train({"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1,
               "seed": 0}, lgb.Dataset(Xtr, ytr), 20).save_model(str(folder / "lgb.txt"))
    val = X.iloc[3000:6000].copy()
    val.loc[val.index[::11], "AGE"] = np.nan  # missing values in the data
    val[TARGET] = y.iloc[3000:6000].to_numpy()
    val.to_csv(folder / "val.csv", index=False)
    val.to_parquet(folder / "val.parquet")
    # a small model and sample for the full prune workflow: seconds, not minutes, under load
    xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1,
               "seed": 0}, xgb.DMatrix(Xtr, ytr), 8).save_model(folder / "small.json")
    val.iloc[:1000].to_csv(folder / "small.csv", index=False)
    return folder


def test_help_and_version(files):
    proc = run("--help", cwd=files)
    for cmd in ("inspect", "prune", "compare", "bench", "export-sql", "demo"):
        assert cmd in proc.stdout
    assert "version" in run("--version", cwd=files).stdout


def test_inspect(files):
    proc = run("inspect", "xgb.json", cwd=files)
    assert "trees          20" in proc.stdout and "binary:logistic" in proc.stdout
    info = json.loads(run("inspect", "lgb.txt", "--json", cwd=files).stdout)
    assert info["source"] == "lightgbm" and info["n_trees"] == 20
    assert info["file_sha256"] == hashlib.sha256((files / "lgb.txt").read_bytes()).hexdigest()
    assert "PAY_0" in info["features_used"]


def test_prune_csv_with_report_and_overwrite_rules(files):
    # 8 trees of depth 2 on 1,000 rows, one fit/judge split: the whole workflow in seconds
    proc = run("prune", "small.json", "--data", "small.csv", "--target", TARGET, "--tolerance",
               "0.03", "--cv", "1", "--out", "pruned.json", "--report", "report.html",
               "--quiet", cwd=files)
    assert proc.stdout.startswith("pruned 8 trees") and proc.stderr == ""
    pruned = tp.load(files / "pruned.json")
    assert pruned.n_leaves < tp.load(files / "small.json").n_leaves
    html = (files / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert hashlib.sha256((files / "pruned.json").read_bytes()).hexdigest() in html

    # an existing output is refused without --force, and nothing is touched
    before = (files / "pruned.json").read_bytes()
    proc = run("prune", "small.json", "--data", "small.csv", "--target", TARGET, "--out",
               "pruned.json", cwd=files, check=False)
    assert_one_line_error(proc, "exists", "--force")
    assert proc.returncode == 2 and (files / "pruned.json").read_bytes() == before
    # the input model is never overwritten, --force or not
    model_bytes = (files / "small.json").read_bytes()
    proc = run("prune", "small.json", "--data", "small.csv", "--target", TARGET, "--out",
               "small.json", "--force", cwd=files, check=False)
    assert_one_line_error(proc, "input")
    assert (files / "small.json").read_bytes() == model_bytes


def test_prune_lightgbm_parquet_json(files):
    proc = run("prune", "lgb.txt", "--data", "val.parquet", "--target", TARGET, "--max-leaves",
               "40", "--out", "pruned.txt", "--json", "--random-state", "3", cwd=files)
    doc = json.loads(proc.stdout)
    assert doc["pruned"]["n_leaves"] <= 40 and doc["output"] == "pruned.txt"
    assert doc["manifest"]["seed"] == 3
    assert doc["manifest"]["output_model"]["sha256"] == hashlib.sha256(
        (files / "pruned.txt").read_bytes()).hexdigest()
    assert tp.load(files / "pruned.txt").n_leaves == doc["pruned"]["n_leaves"]


def test_compare(files):
    proc = run("compare", "xgb.json", "lgb.txt", "--data", "val.csv", "--target", TARGET,
               "--quiet", cwd=files)
    assert "Swap set at approval 50%" in proc.stdout and "auc" in proc.stdout
    doc = json.loads(run("compare", "xgb.json", "lgb.txt", "--data", "val.parquet", "--target",
                         TARGET, "--json", cwd=files).stdout)
    assert doc["n_rows"] == 3000 and set(doc["metrics"]) >= {"auc", "gini", "ks"}
    assert doc["psi"]["band"] in ("stable", "moderate shift", "significant shift")


def test_export_sql_runs_in_sqlite(files):
    proc = run("export-sql", "xgb.json", "--table", "applicants", cwd=files)
    sql = proc.stdout
    assert sql.startswith("-- generated by treeprune")
    data = pd.read_csv(files / "val.csv").drop(columns=[TARGET]).iloc[:300]
    con = sqlite3.connect(":memory:")
    data.to_sql("applicants", con, index=False)
    got = np.array(con.execute(sql).fetchall(), dtype=float)
    ens = tp.load(files / "xgb.json")
    np.testing.assert_allclose(got[:, 0], ens.predict(data, output="margin"), atol=1e-5)
    np.testing.assert_allclose(got[:, 1], ens.predict(data), atol=1e-6)

    run("export-sql", "lgb.txt", "--table", "t", "--out", "model.sql", "--quiet", cwd=files)
    assert (files / "model.sql").read_text().startswith("-- generated by treeprune")
    proc = run("export-sql", "lgb.txt", "--table", "t", "--out", "model.sql", cwd=files,
               check=False)
    assert_one_line_error(proc, "exists")
    run("export-sql", "lgb.txt", "--table", "t", "--out", "model.sql", "--force", "-q",
        cwd=files)


def test_bench_tiny(files):
    doc = json.loads(run("bench", "xgb.json", "--data", "val.csv", "--target", TARGET,
                         "--rows", "50", "--repeats", "5", "--json", cwd=files).stdout)
    assert doc["rows"] == 50
    for engine in ("treeprune", "native"):
        assert doc[engine]["single_row_s"] > 0 and doc[engine]["batch_s"] > 0
    proc = run("bench", "lgb.txt", "--data", "val.parquet", "--rows", "50", "--repeats", "5",
               cwd=files)
    assert "single row (us)" in proc.stdout and "native" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (("inspect", "missing.json"), ("not found", "missing.json")),
    (("inspect", "val.csv"), ("not a model file",)),
    (("prune", "xgb.json", "--data", "nope.csv", "--target", TARGET, "--out", "o.json"),
     ("data file not found",)),
    (("prune", "xgb.json", "--data", "val.csv", "--target", "nope", "--out", "o.json"),
     ("target column 'nope'",)),
    (("prune", "xgb.json", "--data", "val.csv", "--target", TARGET, "--out", "o.json",
      "--tolerance", "0.01", "--max-trees", "3"), ("only one of",)),
    (("prune", "xgb.json", "--data", "val.csv", "--target", TARGET), ("--out",)),
    (("prune", "xgb.json", "--data", "val.csv", "--target", TARGET, "--out", "no/dir/o.json"),
     ("folder does not exist",)),
    (("export-sql", "xgb.json", "--table", "t", "--dialect", "oracle"), ("dialect",)),
    (("frobnicate",), ("No such command",)),
])
def test_errors_are_one_line_without_traceback(files, args, words):
    proc = run(*args, cwd=files, check=False)
    assert_one_line_error(proc, *words)
    assert proc.returncode == 2


def test_demo_small(tmp_path):
    proc = run("demo", "--out-dir", "out", "--trees", "10", "--quiet", cwd=tmp_path)
    out = tmp_path / "out"
    for name in ("legacy_model.json", "pruned_model.json", "report.html"):
        assert (out / name).exists()
    text = proc.stdout
    assert "leaf indices identical for 100.0000%" in text
    for row in ("test AUC", "test Gini", "test KS", "single-row latency"):
        assert row in text
    assert re.search(r"score PSI \d\.\d{4}, the same decision for \d+\.\d% of applicants", text)
    assert (out / ".treeprune-demo").exists()  # a later demo run may write here again
    # a folder holding files of the same names, not from a demo run, needs --force
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.html").write_text("mine")
    proc = run("demo", "--out-dir", "mine", "--trees", "5", cwd=tmp_path, check=False)
    assert_one_line_error(proc, "--force")
    assert (tmp_path / "mine" / "report.html").read_text() == "mine"


@pytest.mark.slow
def test_demo_full(tmp_path):
    proc = run("demo", "--out-dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert re.search(r"^trees +400 ", proc.stdout, re.M)
    assert re.search(r"^single-row latency, treeprune predictor\(\) \(us\) +[\d.]+ +[\d.]+$",
                     proc.stdout, re.M)
    pruned = tp.load(tmp_path / "demo" / "pruned_model.json")
    assert pruned.n_trees < 400
