"""What a shell user meets first: text categories and labels in CSV files, outputs checked up
front, warnings about small samples, and the wording of messages."""

from __future__ import annotations

import json
import re
import sqlite3
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import treeprune as tp
from treeprune._advice import prune_warnings
from treeprune.cli import main
from treeprune.errors import DataError, PruneError
from treeprune.report import write_report
from treeprune.sql import to_sql

LEVELS = ["rent", "own", "mortgage", "other"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the command line in-process: (status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("treeprune: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def make_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    tenure = rng.choice(LEVELS, n).astype(object)
    tenure[rng.random(n) < 0.05] = None
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    effect = {"rent": 1.0, "own": -1.2, "mortgage": -0.4, "other": 0.5, None: 0.0}
    logit = np.array([effect[t] for t in tenure]) + x1 - 0.5 * x2
    y = (logit + rng.logistic(size=n) > 0.3).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "tenure": tenure}), y


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Models trained on pandas categories; CSV files holding the text levels (and text labels)."""
    folder = tmp_path_factory.mktemp("cli_data")
    X, y = make_rows(4000, 0)
    cats = X.assign(tenure=pd.Categorical(X["tenure"], categories=LEVELS))
    lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 8,
               "min_data_per_group": 5, "cat_smooth": 1.0, "max_cat_to_onehot": 2},
              lgb.Dataset(cats, y), 30).save_model(str(folder / "lgb.txt"))
    xgb.XGBClassifier(n_estimators=30, max_depth=3, enable_categorical=True, n_jobs=1,
                      max_cat_to_onehot=1).fit(cats, y).get_booster().save_model(
        folder / "xgb.json")
    V, yv = make_rows(1500, 1)
    V.assign(bad=yv).to_csv(folder / "valid.csv", index=False)
    V.assign(outcome=np.where(yv == 1, "bad", "good")).to_csv(folder / "valid_text.csv",
                                                              index=False)
    V.iloc[:200].assign(bad=yv[:200]).to_csv(folder / "small.csv", index=False)
    return folder


def native_on_csv(folder, name: str, csv: str) -> np.ndarray:
    frame = pd.read_csv(folder / csv)
    cats = frame[["x1", "x2"]].assign(tenure=pd.Categorical(frame["tenure"], categories=LEVELS))
    if name.endswith(".txt"):
        return lgb.Booster(model_file=str(folder / name)).predict(cats)
    booster = xgb.Booster(model_file=str(folder / name))
    return booster.predict(xgb.DMatrix(cats, enable_categorical=True))


# ------------------------------------------------------------------------------------------------
# item 4: CSV data with text levels, read with the levels stored in the model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lgb.txt", "xgb.json"])
def test_score_reads_text_levels_as_the_native_library(folder, capsys, monkeypatch, name):
    monkeypatch.chdir(folder)
    status, out, _ = cli(capsys, "score", name, "--data", "valid.csv", "--keep", "bad",
                         "--output", "prediction", "--output", "margin", "-q")
    assert status == 0
    scores = pd.read_csv(__import__("io").StringIO(out))
    assert list(scores.columns) == ["bad", "prediction", "margin"]
    np.testing.assert_allclose(scores["prediction"], native_on_csv(folder, name, "valid.csv"),
                               atol=1e-6)
    # the same rows through the SQL export, in SQLite, on the text as stored
    con = sqlite3.connect(":memory:")
    pd.read_csv(folder / "valid.csv").to_sql("t", con, index=False)
    sql_p = np.array([r[1] for r in con.execute(to_sql(folder / name, "t"))], dtype=float)
    np.testing.assert_allclose(sql_p, scores["prediction"], atol=1e-6)


def test_prune_compare_bench_on_text_levels(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    status, out, err = cli(capsys, "prune", "lgb.txt", "--data", "valid.csv", "--target", "bad",
                           "--max-leaves", "60", "--out", "p_lgb.txt", "--force", "-q")
    assert status == 0, err
    assert tp.load(folder / "p_lgb.txt").n_leaves <= 60
    status, out, err = cli(capsys, "compare", "lgb.txt", "p_lgb.txt", "--data", "valid.csv",
                           "--target", "bad", "--json", "-q")
    assert status == 0, err
    assert json.loads(out)["n_rows"] == 1500
    status, out, err = cli(capsys, "bench", "xgb.json", "--data", "valid.csv", "--target", "bad",
                           "--rows", "30", "--repeats", "3", "--json", "-q")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["unit"] == "s"  # one unit for every time
    for engine in ("treeprune", "native"):
        assert set(doc[engine]) == {"single_row_s", "batch_s", "rows_per_s"}
        assert 0 < doc[engine]["single_row_s"] < 1 and doc[engine]["batch_s"] > 0


def test_unknown_level_refused_for_xgboost_missing_for_lightgbm(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    frame = pd.read_csv(folder / "valid.csv").iloc[:50]
    frame.loc[3, "tenure"] = "council"
    frame.to_csv(folder / "unknown.csv", index=False)
    status, _, err = cli(capsys, "score", "xgb.json", "--data", "unknown.csv")
    assert status == 2 and "'council'" in one_error(err) and "not trained on" in err
    status, out, _ = cli(capsys, "score", "lgb.txt", "--data", "unknown.csv", "-q")
    assert status == 0
    got = pd.read_csv(__import__("io").StringIO(out))["prediction"].to_numpy()
    as_missing = frame.assign(tenure=frame["tenure"].where(frame["tenure"] != "council"))
    as_missing.to_csv(folder / "as_missing.csv", index=False)
    np.testing.assert_allclose(got, native_on_csv(folder, "lgb.txt", "as_missing.csv"),
                               atol=1e-12)


@pytest.mark.parametrize(("name", "new"), [("lgb.txt", "up_lgb.txt"), ("xgb.json", "up_xgb.ubj")])
def test_upgrade_checks_on_rows_with_text_levels(folder, capsys, monkeypatch, name, new):
    from treeprune.upgrade import upgrade

    monkeypatch.chdir(folder)
    status, out, err = cli(capsys, "upgrade", name, new, "--data", "valid.csv", "--json",
                           "--force")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["rows"] == 1500 and doc["trees_same_leaves"] == doc["trees"]
    # the library function reads a DataFrame with text levels the same way
    frame = pd.read_csv(folder / "valid.csv").drop(columns=["bad"])
    check = upgrade(name, new, X=frame, overwrite=True)
    assert check.ok and check.n_rows == 1500
    native = native_on_csv(folder, new, "valid.csv")
    np.testing.assert_allclose(native, tp.load(name).predict(frame), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# item 5: text labels
# ------------------------------------------------------------------------------------------------
def test_compare_text_labels_through_the_library_rule(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    base = ["compare", "lgb.txt", "xgb.json", "--json", "-q"]
    status, out, err = cli(capsys, *base, "--data", "valid.csv", "--target", "bad")
    assert status == 0, err
    want = json.loads(out)
    status, out, err = cli(capsys, *base, "--data", "valid_text.csv", "--target", "outcome",
                           "--positive-label", "bad")
    assert status == 0, err
    assert json.loads(out)["metrics"] == want["metrics"]
    status, _, err = cli(capsys, *base, "--data", "valid_text.csv", "--target", "outcome")
    assert status == 2 and "--positive-label" in one_error(err)


def test_text_labels_need_a_positive_label(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    args = ["prune", "lgb.txt", "--data", "valid_text.csv", "--target", "outcome", "--out",
            "p_text.txt", "--max-trees", "3", "-q", "--force"]
    status, _, err = cli(capsys, *args)
    line = one_error(err)
    assert status == 2 and "'good'" in line and "'bad'" in line and "--positive-label" in line
    status, _, err = cli(capsys, *args, "--positive-label", "Bad")
    assert status == 2 and "'Bad' is not among" in one_error(err)
    status, _, err = cli(capsys, *args, "--positive-label", "bad")
    assert status == 0, err
    # the same pruning as 0/1 labels: positive_label codes 'bad' as 1
    text = pd.read_csv(folder / "valid_text.csv")
    numeric = pd.read_csv(folder / "valid.csv")
    X = numeric.drop(columns=["bad"]).assign(tenure=lambda d: pd.Categorical(
        d["tenure"], categories=LEVELS))
    a = tp.prune(folder / "lgb.txt", X, text["outcome"], positive_label="bad", max_trees=3)
    b = tp.prune(folder / "lgb.txt", X, numeric["bad"], max_trees=3)
    assert a.original_metric == b.original_metric and a.chosen_metric == b.chosen_metric
    status, out, err = cli(capsys, "compare", "lgb.txt", "p_text.txt", "--data",
                           "valid_text.csv", "--target", "outcome", "--positive-label", "bad",
                           "--json", "-q")
    assert status == 0 and json.loads(out)["metrics"]["auc"]["a"] > 0.6
    with pytest.raises(DataError, match="not numbers.*'good'"):
        tp.prune(folder / "lgb.txt", X, text["outcome"])


# ------------------------------------------------------------------------------------------------
# item 6: outputs checked before the work
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, out, words", [
    ("xgb.json", "z.txt", ("--out z.txt", "z.json")),
    ("xgb.json", "z.model", ("--out z.model", "JSON")),
    ("lgb.txt", "z.json", ("--out z.json", "z.txt")),
])
def test_model_output_suffix_checked_up_front(folder, capsys, monkeypatch, model, out, words):
    monkeypatch.chdir(folder)
    # the data file does not even exist: the output is refused before the data are read
    status, _, err = cli(capsys, "prune", model, "--data", "nope.csv", "--target", "bad",
                         "--out", out)
    line = one_error(err)
    assert status == 2 and all(w in line for w in words), line
    assert not (folder / out).exists()
    status, _, err = cli(capsys, "prune", model, "--data", "nope.csv", "--target", "bad",
                         "--out", "fine" + (".json" if model == "xgb.json" else ".txt"),
                         "--report", "r.pdf")
    assert status == 2 and "--report r.pdf" in one_error(err)


# ------------------------------------------------------------------------------------------------
# items 2, 3, 7, 8: warnings, which rows, nothing pruned, the --json manifest
# ------------------------------------------------------------------------------------------------
def test_small_sample_warnings_in_result_report_and_json(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    status, out, err = cli(capsys, "prune", "xgb.json", "--data", "small.csv", "--target", "bad",
                           "--tolerance", "0.001", "--cv", "1", "--out", "small.json",
                           "--report", "small.html", "--json", "-q", "--force")
    assert status == 0, err
    doc = json.loads(out)
    assert any(w.startswith("too few judge rows for the tolerance") for w in doc["warnings"])
    assert doc["warnings"] == doc["manifest"]["warnings"]
    # 200 rows, one split: a confirm slice held back, the rest halved into fit and judge rows
    assert doc["rows"]["fit"] + doc["rows"]["judge"] < 200
    assert doc["rows"]["fit"] == doc["rows"]["judge"]
    assert err.count("treeprune: warning:") == len(doc["warnings"])  # on stderr, even with -q
    html = (folder / "small.html").read_text(encoding="utf-8")
    assert "too few judge rows for the tolerance" in html
    # item 8: the --json manifest describes the same report rows as the HTML report
    embedded = json.loads(re.search(
        r'<script type="application/json" id="treeprune-manifest">(.*?)</script>', html,
        re.S).group(1))
    assert doc["manifest"]["data"]["rows"] == doc["rows"]["judge"]
    assert doc["manifest"]["data"]["sha256"] == embedded["data"]["sha256"] is not None
    assert doc["manifest"]["data"]["origin"] == embedded["data"]["origin"] == "judge"


def test_report_says_which_rows_each_figure_comes_from(folder, tmp_path):
    frame = pd.read_csv(folder / "valid.csv")
    X = frame.drop(columns=["bad"]).assign(tenure=lambda d: pd.Categorical(
        d["tenure"], categories=LEVELS))
    y = frame["bad"].to_numpy()
    result = tp.prune(folder / "xgb.json", X.iloc[:1000], y[:1000], max_trees=5, cv=1)
    judge_only = write_report(result, tmp_path / "judge.md").read_text(encoding="utf-8")
    assert "Which rows each figure comes from" in judge_only
    n_fit, n_judge = len(result.fit_index), len(result.judge_index)
    assert n_fit + n_judge < 1000  # a confirm slice is held back from both
    assert f"| fit | {n_fit} |" in judge_only and f"| judge | {n_judge} |" in judge_only
    assert "optimistic, not an independent test" in judge_only
    assert "test (given)" not in judge_only
    with_test = write_report(result, tmp_path / "test.html", X=X.iloc[1000:],
                             y=y[1000:]).read_text(encoding="utf-8")
    assert "test (given)" in with_test and "500 given rows" in with_test
    assert "optimistic, not an independent test" not in with_test
    assert "judge rows that chose it" in result.summary()


def test_nothing_pruned_is_explained(folder):
    frame = pd.read_csv(folder / "valid.csv")
    X = frame.drop(columns=["bad"]).assign(tenure=lambda d: pd.Categorical(
        d["tenure"], categories=LEVELS))
    result = tp.prune(folder / "xgb.json", X, frame["bad"], tolerance=0.0, z=50.0)
    assert result.model.n_leaves == tp.load(folder / "xgb.json").n_leaves
    (message,) = [w for w in result.warnings if w.startswith("nothing was pruned")]
    closest = re.search(r"the closest, (\d+) trees / (\d+) leaves, changed it by ([-+]\d\.\d{4}) "
                        r"\(standard error (\S+)\)", message)
    assert closest, message
    path = result.path[~result.path["chosen"]]
    assert int(closest.group(2)) in set(path["n_leaves"])
    assert "larger tolerance" in message and "max_leaves" in message


def _path(judge, se) -> pd.DataFrame:
    return pd.DataFrame({"n_trees": [2, 4, 8][:len(judge)], "n_leaves": [8, 16, 32][:len(judge)],
                         "metric_judge": judge, "se_diff": se})


def test_prune_warnings_rules():
    # the winner beats the original by more than twice its standard error
    w = prune_warnings(_path([0.80, 0.76], [0.01, 0.01]), 0, 0.75, "auc", True, 0.01, 1.0,
                       5000, fell_back=False)
    assert len(w) == 1 and w[0].startswith("the pruned model beats the original")
    # within twice its standard error: no warning
    assert prune_warnings(_path([0.765, 0.74], [0.01, 0.01]), 0, 0.75, "auc", True, 0.02, 1.0,
                          5000, fell_back=False) == []
    # nothing passed, and the standard error of the differences exceeds the tolerance
    path = pd.concat([_path([0.749, 0.70], [0.03, 0.05]),
                      pd.DataFrame({"n_trees": [8], "n_leaves": [64], "metric_judge": [0.75],
                                    "se_diff": [0.0]})], ignore_index=True)
    w = prune_warnings(path, 2, 0.75, "auc", True, 0.01, 1.0, 200, fell_back=True, cv=1)
    assert [m[:10] for m in w] == ["nothing wa", "too few ju"]
    assert "0.0400" in w[1] and "cv=3" in w[1]
    # nothing kept, but a model 4x smaller was no worse than the original on the judge rows
    w = prune_warnings(path.assign(metric_judge=[0.7504, 0.70, 0.75]), 2, 0.75, "auc", True, 0.01,
                       1.0, 200, fell_back=True, cv=1)
    assert [m[:10] for m in w] == ["nothing wa", "too few ju", "a model 8."]
    # with cross-fitting the advice does not suggest cross-fitting
    w = prune_warnings(path, 2, 0.75, "auc", True, 0.01, 1.0, 200, fell_back=True, cv=3)
    assert not any("cv=3" in m for m in w)
    # the confirm rows show a loss beyond the tolerance
    w = prune_warnings(_path([0.751, 0.74], [0.001, 0.01]), 0, 0.75, "auc", True, 0.001, 1.0,
                       5000, fell_back=False, holdout={"rows": 1000, "diff": -0.02,
                                                       "se_diff": 0.004})
    assert len(w) == 1 and w[0].startswith("the confirm rows disagree") and "1,000" in w[0]
    # a model 4x smaller than the chosen one is no worse than the original on the judge rows but
    # not certified: named, with the judge rows that would certify it (n (z se / (change + tol))^2)
    path = _path([0.7505, 0.7490, 0.7502], [0.004, 0.003, 0.0002])
    w = prune_warnings(path, 2, 0.75, "auc", True, 0.001, 2.0, 1000, fell_back=False)
    assert len(w) == 1 and w[0].startswith("a model 4.0x smaller than the one kept"), w
    assert "2 trees / 8 leaves changed auc by +0.0005" in w[0] and "max_leaves=8" in w[0]
    assert f"about {1000 * (2 * 0.004 / 0.0015) ** 2:,.0f} judge rows instead of 1,000" in w[0]
    # not when the rule could not choose it anyway (budget, PSI, near-best), nor under half
    # the chosen one's size, nor below the original
    assert prune_warnings(path, 2, 0.75, "auc", True, 0.001, 2.0, 1000, fell_back=False,
                          eligible=np.array([False, False, True])) == []
    assert prune_warnings(path.assign(n_leaves=[10, 16, 32]), 1, 0.75, "auc", True, 0.001,
                          2.0, 1000, fell_back=False) == []
    w = prune_warnings(_path([0.7499, 0.7503, 0.7502], [0.004, 0.003, 0.0002]), 2, 0.75, "auc",
                       True, 0.001, 2.0, 1000, fell_back=False)
    assert len(w) == 1 and w[0].startswith("a model 2.0x smaller"), w
    # tolerance 0 and a judged change of exactly 0 (AUCs are multiples of 1 / (bads x goods), so
    # a different ranking can tie the original): no number of rows certifies it; say so rather
    # than "about inf judge rows" (and no division by zero)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = prune_warnings(_path([0.75, 0.749, 0.7502], [0.004, 0.003, 0.0]), 2, 0.75, "auc",
                           True, 0.0, 2.0, 1000, fell_back=False)
    assert len(w) == 1 and w[0].startswith("a model 4.0x smaller"), w
    assert "inf" not in w[0] and "no number of judge rows" in w[0] and "max_leaves=8" in w[0]
    # loss: lower is better, a lower loss is the win
    w = prune_warnings(_path([0.40, 0.50], [0.01, 0.01]), 0, 0.45, "loss", False, None, 1.0,
                       5000, fell_back=False)
    assert len(w) == 1 and "beats" in w[0] and "budget" in w[0]


# ------------------------------------------------------------------------------------------------
# items 9 and 10: budgets, wording, help
# ------------------------------------------------------------------------------------------------
def test_max_leaves_equal_to_the_model_size_is_a_no_op_budget(folder):
    ens = tp.load(folder / "xgb.json")
    frame = pd.read_csv(folder / "valid.csv")
    X, y = frame.drop(columns=["bad"]), frame["bad"]
    X = X.assign(tenure=pd.Categorical(X["tenure"], categories=LEVELS))
    result = tp.prune(ens, X, y, max_leaves=ens.n_leaves)
    assert result.model.n_leaves <= ens.n_leaves
    with pytest.raises(PruneError, match=f"between 1 and the model's {ens.n_leaves} leaves"):
        tp.prune(ens, X, y, max_leaves=ens.n_leaves + 1)
    with pytest.raises(PruneError, match=f"between 1 and the model's {ens.n_trees} trees"):
        tp.prune(ens, X, y, max_trees=ens.n_trees + 1)


def test_wording(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    # a wrong --target suggests the close match
    status, _, err = cli(capsys, "prune", "xgb.json", "--data", "valid.csv", "--target", "BAD",
                         "--out", "w.json")
    assert status == 2 and "'BAD' -> 'bad'" in one_error(err)
    # a missing feature column does not tell a shell user to pass a DataFrame
    pd.read_csv(folder / "valid.csv").rename(columns={"x2": "X2"}).to_csv(
        folder / "renamed.csv", index=False)
    status, _, err = cli(capsys, "score", "xgb.json", "--data", "renamed.csv")
    line = one_error(err)
    assert status == 2 and "DataFrame" not in line and "'x2' -> 'X2'" in line
    # inspect --json: two classes for a binary model
    status, out, _ = cli(capsys, "inspect", "xgb.json", "--json")
    assert json.loads(out)["n_classes"] == 2
    # the SQL names the command line flag and the Python argument
    sql = to_sql(folder / "xgb.json", "t", dialect="postgresql")
    assert "--order-by" in sql and "pass order_by" not in sql
    # the package lists its lazily imported API, not the annotations future
    names = dir(tp)
    assert {"compare", "Scorecard", "prune", "PruneResult"} <= set(names)
    assert "annotations" not in names


def test_help_shows_the_new_options(capsys):
    for command, options in (("prune", ("--positive-label", "--categories")),
                             ("compare", ("--positive-label", "--categories")),
                             ("bench", ("--categories",)),
                             ("score", ("--output", "--keep", "--categories")),
                             ("export-sql", ("--categories",))):
        status, out, _ = cli(capsys, command, "--help")
        assert status == 0 and all(o in out for o in options), (command, out)
    status, out, _ = cli(capsys, "--help")
    assert "score" in out
