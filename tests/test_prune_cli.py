"""The prune command's options for candidate families, fidelity mode and the score scale."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from click.testing import CliRunner

import treeprune as tp
from treeprune.cli import _parse_monotone, cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1600, 4)), columns=["age", "debt", "income", "tenure"])
    y = (X["age"] - X["debt"] + rng.logistic(size=1600) > 0).astype(int)
    b = xgb.train({"max_depth": 3, "eta": 0.2, "objective": "binary:logistic", "nthread": 1},
                  xgb.DMatrix(X[:800], y[:800]), 30)
    b.save_model(d / "m.json")
    X[800:1300].assign(bad=y[800:1300]).to_csv(d / "valid.csv", index=False)
    X[1300:].to_csv(d / "apps.csv", index=False)
    return d


def test_fidelity_without_target(files):
    out = files / "f.json"
    r = CliRunner().invoke(cli, ["prune", str(files / "m.json"), "--data",
                                 str(files / "valid.csv"), "--metric", "fidelity", "--cv", "1",
                                 "--augment", "1", "--out", str(out), "--quiet", "--json",
                                 "--force"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["metric"] == "fidelity"
    assert doc["manifest"]["parameters"]["scale"] == "original"
    assert doc["manifest"]["parameters"]["augment"] == 1.0
    assert tp.load(out).n_leaves <= tp.load(files / "m.json").n_leaves


def test_unlabeled_monotone_device_options(files):
    out = files / "u.json"
    r = CliRunner().invoke(cli, ["prune", str(files / "m.json"), "--data",
                                 str(files / "valid.csv"), "--target", "bad", "--unlabeled",
                                 str(files / "apps.csv"), "--monotone", "age=+1,debt=-1",
                                 "--cv", "1", "--device", "cpu", "--scale", "calibrated",
                                 "--max-leaves", "60", "--out", str(out), "--quiet", "--json",
                                 "--force"])
    assert r.exit_code == 0, r.output
    params = json.loads(r.output)["manifest"]["parameters"]
    assert params["n_unlabeled"] == 300 and params["monotone_constraints"][:2] == [1, -1]
    assert params["cv"] == 1 and params["device"] == "cpu"


@pytest.mark.parametrize("args, message", [
    (["--cv", "two"], "--cv"),
    (["--augment", "lots"], "--augment"),
    (["--monotone", "age=up"], "--monotone"),
    (["--monotone", "{bad json"], "--monotone"),
    ([], "--metric fidelity"),
])
def test_bad_options(files, args, message):
    r = CliRunner().invoke(cli, ["prune", str(files / "m.json"), "--data",
                                 str(files / "valid.csv"), "--out", str(files / "x.json"),
                                 *args] + ([] if args == [] else ["--target", "bad"]))
    assert r.exit_code == 2 and message in r.output


def test_monotone_spec_forms():
    assert _parse_monotone('{"age": 1}') == {"age": 1}
    assert _parse_monotone("[1, 0, -1]") == [1, 0, -1]
    assert _parse_monotone("age=+1, debt=-1") == {"age": 1, "debt": -1}
    assert _parse_monotone(None) is None
