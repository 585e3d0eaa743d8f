"""The change report: sections, embedded plots, the reproducibility manifest."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import numpy as np
import pytest

import treeprune as tp
from treeprune.datasets import load_taiwan
from treeprune.errors import TreePruneError
from treeprune.report import SECTIONS, model_bytes, model_sha256, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def _manifest(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="treeprune-manifest">(.*?)</script>', html,
                  re.S)
    assert m, "manifest script missing"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def taiwan():
    X, y = load_taiwan()
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def xgb_result(taiwan, tmp_path_factory):
    import xgboost as xgb

    X, y = taiwan
    folder = tmp_path_factory.mktemp("report_xgb")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.2,
                         "nthread": 1, "seed": 0}, xgb.DMatrix(X.iloc[:3000], y[:3000]), 25)
    path = folder / "legacy.json"
    booster.save_model(path)
    result = tp.prune(path, X.iloc[3000:6000], y[3000:6000], tolerance=0.005, random_state=7,
                      cv=1)
    return result, path, folder


def test_html_has_every_section_plots_and_manifest(xgb_result, taiwan):
    result, model_path, folder = xgb_result
    out = write_report(result, folder / "report.html")
    html = out.read_text(encoding="utf-8")
    for sid, title in SECTIONS:
        assert f'<section id="{sid}">' in html and title in html
    images = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert {name for name, _ in images} == {"size", "scores", "roc", "path"}
    for _, data in images:
        assert base64.b64decode(data).startswith(PNG)
    for word in ("auc", "gini", "ks", "PSI", "swap-in", "approval 50%", "original approves"):
        assert word in html
    assert "<script src" not in html and "http://" not in html  # self-contained

    man = _manifest(html)
    # hashes of the models' bytes as treeprune.io writes them
    assert man["input_model"]["sha256"] == hashlib.sha256(model_bytes(result.original)).hexdigest()
    saved = folder / "pruned.json"
    result.model.save(saved)
    assert man["output_model"]["sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    assert man["output_model"]["sha256"] == model_sha256(result.model)
    assert man["input_model"]["file_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert man["output_model"]["sha256"] in html and man["input_model"]["sha256"] in html
    assert man["seed"] == 7 and man["parameters"]["tolerance"] == 0.005
    assert man["data"]["rows"] == len(result.judge_y)  # the held-out rows by default
    for lib in ("python", "treeprune", "numpy", "xgboost", "lightgbm", "matplotlib"):
        assert man["versions"][lib]
    assert man["output_model"]["n_leaves"] == result.model.n_leaves
    assert man["passes"] and "lossless" in man["passes"][0]


def test_given_rows_and_the_result_method(xgb_result, taiwan):
    result, _, folder = xgb_result
    X, y = taiwan
    out = result.report(folder / "given.html", X=X.iloc[10000:12000], y=y[10000:12000])
    html = out.read_text(encoding="utf-8")
    man = _manifest(html)
    assert man["data"]["rows"] == 2000 and man["data"]["origin"] == "given"
    assert "2,000 given rows" in html
    # without labels: no ROC and no metric table, but scores and swap sets
    out = result.report(folder / "nolabels.html", X=X.iloc[10000:12000])
    html = out.read_text(encoding="utf-8")
    assert 'alt="scores"' in html and 'alt="roc"' not in html
    assert "pass y" in html


def test_markdown_writes_png_files_next_to_it(xgb_result):
    result, _, folder = xgb_result
    out = write_report(result, folder / "change report.md")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# treeprune report")
    links = re.findall(r"!\[(\w+)\]\(([^)]+)\)", text)
    assert {name for name, _ in links} == {"size", "scores", "roc", "path"}
    for name, _ in links:
        png = folder / "change report_files" / f"{name}.png"
        assert png.read_bytes().startswith(PNG)
    assert "change%20report_files/size.png" in text  # relative, URL-quoted
    assert "```json" in text and model_sha256(result.model) in text
    assert "| auc |" in text


def test_format_override_and_refusals(xgb_result):
    result, model_path, folder = xgb_result
    out = write_report(result, folder / "report.txt", format="markdown")
    assert out.read_text(encoding="utf-8").startswith("# treeprune report")
    with pytest.raises(TreePruneError, match="source model"):
        write_report(result, model_path)  # never over the model it was read from
    with pytest.raises(TreePruneError, match="format"):
        write_report(result, folder / "r.html", format="pdf")
    with pytest.raises(TreePruneError, match="does not exist"):
        write_report(result, folder / "missing" / "r.html")


def test_lightgbm_and_regression_reports(tmp_path):
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) * 2 + rng.normal(size=1500)
    booster = lgb.train({"objective": "regression", "num_leaves": 7, "verbose": -1,
                         "num_threads": 1, "seed": 0}, lgb.Dataset(X[:800], y[:800]), 15)
    result = tp.prune(booster, X[800:], y[800:], max_trees=5, random_state=0)
    html = write_report(result, tmp_path / "reg.html").read_text(encoding="utf-8")
    man = _manifest(html)
    assert man["input_model"]["source"] == "lightgbm"
    assert man["output_model"]["sha256"] == hashlib.sha256(
        model_bytes(result.model)).hexdigest()
    result.model.save(tmp_path / "pruned.txt")
    assert man["output_model"]["sha256"] == hashlib.sha256(
        (tmp_path / "pruned.txt").read_bytes()).hexdigest()
    assert "rmse" in html and "ROC curves apply to binary models only" in html
    assert 'alt="scores"' in html and 'alt="path"' in html


def test_multiclass_report_shows_loss_and_skips_score_plots(tmp_path):
    import xgb_models as xm

    booster, X, y = xm.make_model(xm.XGBSpec(objective="multi:softprob", n_trees=6,
                                             max_depth=3, n_rows=500, seed=8))
    result = tp.prune(booster, X, y, max_trees=4, random_state=0)
    html = write_report(result, tmp_path / "multi.html").read_text(encoding="utf-8")
    assert "loss (softmax)" in html and "accuracy" in html
    assert "Not available for multiclass models" in html
    assert 'alt="path"' in html and 'alt="roc"' not in html
    assert _manifest(html)["output_model"]["sha256"] == model_sha256(result.model)
