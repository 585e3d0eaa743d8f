"""treeprune explain and export-sql --reasons from the command line."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
from test_cli import TARGET, assert_one_line_error, files, run  # noqa: F401  (files: fixture)

import treeprune as tp


def test_explain_writes_the_reasons_reason_codes_gives(files):  # noqa: F811
    proc = run("explain", "xgb.json", "--data", "val.csv", "--target", TARGET, "--k", "3",
               "--out", "reasons.parquet", cwd=files)
    assert proc.stdout == "" and "most frequent first reasons" in proc.stderr
    got = pd.read_parquet(files / "reasons.parquet")
    X = pd.read_csv(files / "val.csv").drop(columns=[TARGET])
    want = tp.reason_codes(tp.load(files / "xgb.json"), X, k=3)
    assert list(got.columns) == list(want.columns)
    for col in got.columns:
        if col.startswith("reason_"):
            assert got[col].fillna("").tolist() == want[col].fillna("").tolist()
        else:
            np.testing.assert_allclose(got[col], want[col])


def test_explain_groups_labels_csv_and_errors(files):  # noqa: F811
    (files / "groups.json").write_text(json.dumps({"repayment": ["PAY_0", "PAY_2", "PAY_3"]}))
    (files / "labels.json").write_text(json.dumps({"repayment": "Recent repayment delays"}))
    run("explain", "lgb.txt", "--data", "val.parquet", "--target", TARGET, "--out", "r.csv",
        "--groups", "groups.json", "--labels", "labels.json", "-q", cwd=files)
    frame = pd.read_csv(files / "r.csv")
    assert "label_1" in frame.columns and "PAY_0" not in set(frame["reason_1"].dropna())
    assert (frame.loc[frame["reason_1"] == "repayment", "label_1"]
            == "Recent repayment delays").all()
    assert (frame["reason_1"] == "repayment").any()
    # an existing output needs --force; bad mappings are one-line errors
    proc = run("explain", "lgb.txt", "--data", "val.parquet", "--target", TARGET, "--out",
               "r.csv", cwd=files, check=False)
    assert_one_line_error(proc, "exists", "--force")
    (files / "bad.json").write_text("[1, 2]")
    proc = run("explain", "lgb.txt", "--data", "val.parquet", "--target", TARGET, "--out",
               "r2.csv", "--groups", "bad.json", cwd=files, check=False)
    assert_one_line_error(proc, "JSON object")
    (files / "unknown.json").write_text(json.dumps({"g": ["NOT_A_FEATURE"]}))
    proc = run("explain", "lgb.txt", "--data", "val.parquet", "--target", TARGET, "--out",
               "r2.csv", "--groups", "unknown.json", cwd=files, check=False)
    assert_one_line_error(proc, "NOT_A_FEATURE")
    assert proc.returncode == 2 and not (files / "r2.csv").exists()


def test_export_sql_reasons(files):  # noqa: F811
    sql = run("export-sql", "xgb.json", "--table", "t", "--reasons", "2", cwd=files).stdout
    X = pd.read_csv(files / "val.csv").drop(columns=[TARGET]).iloc[:300]
    con = sqlite3.connect(":memory:")
    X.to_sql("t", con, index=False)
    out = pd.read_sql_query(sql, con)
    model = tp.load(files / "xgb.json")
    want = tp.reason_codes(model, X, k=2)
    assert out["reason_1"].fillna("").tolist() == want["reason_1"].fillna("").tolist()
    np.testing.assert_allclose(out["contribution_1"], want["contribution_1"], atol=1e-9)
    proc = run("export-sql", "xgb.json", "--table", "t", "--reasons", "0", cwd=files,
               check=False)
    assert proc.returncode == 2
