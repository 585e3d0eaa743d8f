"""The change report's reason-codes section: how often each feature is a top reason, before and
after pruning, and how many applicants keep their reasons."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

import treeprune as tp
from treeprune.datasets import load_taiwan
from treeprune.reasons import reason_shift
from treeprune.report import write_report


@pytest.fixture(scope="module")
def result():
    X, y = load_taiwan()
    y = np.asarray(y, dtype=float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.2,
                         "nthread": 1, "seed": 0}, xgb.DMatrix(X.iloc[:3000], y[:3000]), 25)
    return tp.prune(booster, X.iloc[3000:5000], y[3000:5000], max_leaves=30, random_state=0,
                    cv=1)


def test_reasons_section_in_html_and_markdown(result, tmp_path):
    html = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="reasons">'):]
    section = section[:section.index("</section>")]
    shift = reason_shift(result.original, result.model, result.judge_X, 4)
    assert f"{100 * shift.first_same:.1f}%" in section
    assert f"{100 * shift.set_same:.1f}%" in section
    top = shift.table.iloc[0]
    assert top["reason"] in section and "first reason, pruned (%)" in section
    md = write_report(result, tmp_path / "r.md").read_text(encoding="utf-8")
    assert "## Reason codes" in md and top["reason"] in md.split("## Reason codes")[1]


def test_reasons_section_says_why_when_not_available(tmp_path):
    from xgb_models import XGBSpec, make_model

    booster, X, y = make_model(XGBSpec(objective="multi:softprob", n_trees=6, max_depth=2))
    res = tp.prune(booster, X, y, max_trees=3, random_state=0)
    html = write_report(res, tmp_path / "m.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="reasons">'):]
    assert "Not available" in section[:section.index("</section>")]
