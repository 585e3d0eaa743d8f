"""Labels as prune reads them: each objective's domain, soft labels for cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
from lgb_models import LgbSpec, make_data, train

import treeprune as tp
from treeprune._validation import check_labels
from treeprune.errors import DataError
from treeprune.objectives import Objective, lightgbm_objective

SOFT = np.array([0.0, 0.25, 0.5, 0.999, 1.0])


@pytest.mark.parametrize("name", ["cross_entropy", "xentropy"])
def test_cross_entropy_takes_labels_in_the_unit_interval(name):
    obj = Objective(name, "logloss", "sigmoid")
    np.testing.assert_array_equal(check_labels(SOFT, 5, obj), SOFT)
    with pytest.raises(DataError, match=r"labels in \[0, 1\].*1 outside, e.g. \[1.5\]"):
        check_labels([0.0, 0.5, 1.5], 3, obj)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        check_labels([-0.1, 0.5], 2, obj)


def test_binary_still_takes_zero_and_one_only():
    for obj in (lightgbm_objective("binary", 1, {}), Objective("binary:logistic", "logloss",
                                                               "sigmoid")):
        np.testing.assert_array_equal(check_labels([0, 1, 1], 3, obj), [0.0, 1.0, 1.0])
        with pytest.raises(DataError, match="needs labels 0/1"):
            check_labels(SOFT, 5, obj)


def test_prune_a_cross_entropy_model_on_soft_labels():
    spec = LgbSpec(objective="cross_entropy", n_trees=12, num_leaves=7, seed=7, n_rows=600)
    X, y, _ = make_data(spec)
    ens = tp.load(train(spec)[0])
    assert np.mean((y > 0) & (y < 1)) > 0.5
    result = tp.prune(ens, X, y, metric="loss", max_trees=4, cv=1, families=["select"],
                      random_state=0)
    assert result.model.n_trees <= 4
    with pytest.raises(DataError, match=r"labels in \[0, 1\]"):
        tp.prune(ens, X, y + 1.0, metric="loss", max_trees=4, cv=1, random_state=0)
