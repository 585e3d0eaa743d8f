"""prune(): the rows and margins carried into every fold's candidate search.

The margins of the rows without outcomes (``X_unlabeled`` and the synthetic rows of
``augment=``) are predicted once and carried in ``FitRows.unlabeled_margin``; every consumer (the
splits to follow, each distilled student) must see exactly what it would have predicted itself,
row for row.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from models import credit_like, train_xgb

import treeprune as tp
from treeprune import _candidates
from treeprune.errors import DataError
from treeprune.passes import growing
from treeprune.passes.lossless import lossless


@pytest.fixture(scope="module")
def data():
    X, y = credit_like(4000, n_features=6)
    return {"train": (X[:2000], y[:2000]), "prune": (X[2000:3000], y[2000:3000]),
            "extra": X[3000:]}


@pytest.fixture(scope="module")
def model(data):
    return train_xgb(*data["train"], max_depth=3, n_rounds=40)


def _spy(monkeypatch, change=None):
    """Record the ``FitRows`` of every candidate search (changed by ``change`` first)."""
    seen = []
    generate = _candidates.Families.generate

    def spy(self, rows, **kw):
        if change is not None:
            rows = change(rows)
        seen.append((self.base, rows))
        return generate(self, rows, **kw)

    monkeypatch.setattr(_candidates.Families, "generate", spy)
    return seen


# with labels: 3 folds and the final fit (a budget always has one), X_unlabeled and synthetic
# rows (augment="auto"); a selection short enough to be chosen by the splits, which fit the
# margins of these rows too
KW = {"max_leaves": 120, "random_state": 3, "max_selected": 8,
      "families": ["select", "distill"]}


def test_carried_margins_are_the_lossless_models_row_for_row(data, model, monkeypatch):
    X, y = data["prune"]
    Xu = data["extra"][::-1]  # an order of its own: a margin carried out of line shows
    seen = _spy(monkeypatch)
    r = tp.prune(model, X, y, X_unlabeled=Xu, **KW)
    assert r.params["cv"] == 3 and len(seen) == 4  # three folds, then the final fit
    for base, rows in seen:
        n_synthetic = len(rows.X_unlabeled) - len(Xu)
        assert n_synthetic > 0
        np.testing.assert_array_equal(rows.X_unlabeled[:len(Xu)], Xu.astype(rows.X_unlabeled.dtype))
        assert rows.unlabeled_margin.shape == (len(rows.X_unlabeled),)
        # bit for bit what each consumer predicted for itself before
        np.testing.assert_array_equal(rows.unlabeled_margin,
                                      base.predict(rows.X_unlabeled, output="margin"))
    # each fold's synthetic rows are its own (made from its fit rows), and so are their margins
    assert not np.array_equal(seen[0][1].unlabeled_margin[len(Xu):][:50],
                              seen[1][1].unlabeled_margin[len(Xu):][:50])
    assert seen[0][0] is seen[-1][0]
    assert seen[0][0].n_leaves == lossless(tp.load(model)).n_leaves


@pytest.mark.parametrize("extra", [False, True])
def test_carried_margins_change_no_candidate(data, model, monkeypatch, extra):
    X, y = data["prune"]
    kw = dict(KW, X_unlabeled=data["extra"] if extra else None)
    carried = tp.prune(model, X, y, **kw)
    # every consumer predicting the rows' margins itself, as before they were carried
    _spy(monkeypatch, lambda rows: dataclasses.replace(rows, unlabeled_margin=None))
    alone = tp.prune(model, X, y, **kw)
    pd.testing.assert_frame_equal(carried.path, alone.path, check_exact=True)
    np.testing.assert_array_equal(carried.model.predict(X, output="margin"),
                                  alone.model.predict(X, output="margin"))


def test_fidelity_mode_carries_no_unlabeled_margin(data, model, monkeypatch):
    # without labels every row is a fit row (its margin is the target): nothing apart to carry
    X, _ = data["prune"]
    seen = _spy(monkeypatch)
    tp.prune(model, X, metric="fidelity", X_unlabeled=data["extra"], cv=1, max_selected=4,
             families=["select"], random_state=0)
    assert seen and all(rows.X_unlabeled is None and rows.unlabeled_margin is None
                        for _, rows in seen)


def test_distill_takes_the_teachers_margins_given(data, model):
    X, _ = data["prune"]
    Xu = data["extra"][:300]
    teacher = tp.load(model)
    fast = {"n_estimators": 6, "early_stopping_rounds": None, "n_jobs": 1}
    own = growing.distill(teacher, X, X_unlabeled=Xu, **fast)
    margin = teacher.predict(Xu, output="margin")
    given = growing.distill(teacher, X, X_unlabeled=Xu, unlabeled_margin=margin, **fast)
    np.testing.assert_array_equal(own.predict(X, output="margin"),
                                  given.predict(X, output="margin"))
    # the margins are the students' targets: others give another student
    other = growing.distill(teacher, X, X_unlabeled=Xu, unlabeled_margin=margin[::-1], **fast)
    assert not np.array_equal(own.predict(X, output="margin"),
                              other.predict(X, output="margin"))
    with pytest.raises(DataError, match="unlabeled_margin"):
        growing.distill(teacher, X, X_unlabeled=Xu, unlabeled_margin=margin[:-1], **fast)
    # given margins are targets like target_margin's: NaN or infinite ones are refused too
    # (they used to reach the library's fit)
    bad = margin.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="unlabeled_margin contains NaN or infinite"):
        growing.distill(teacher, X, X_unlabeled=Xu, unlabeled_margin=bad, **fast)
