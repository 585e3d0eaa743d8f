"""tp.reason_codes: top-k adverse reasons from exact contributions; thresholds, groups, labels, ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lgb_models import LgbSpec, train
from xgb_models import XGBSpec, make_model

import treeprune as tp
from treeprune.errors import DataError, UnsupportedModelError
from treeprune.objectives import Objective
from treeprune.reasons import feature_names, reason_frequencies
from treeprune.trees import Tree, assemble, empty_nodes


def _stump(feature: int, threshold: float, left: float, right: float) -> Tree:
    nodes = empty_nodes(3)
    nodes["feature"][0], nodes["threshold"][0] = feature, threshold
    nodes["left"][0], nodes["right"][0] = 1, 2
    nodes["default_left"][0] = True
    nodes["value"][1:] = (left, right)
    nodes["cover"][:] = nodes["count"][:] = (10.0, 5.0, 5.0)
    return Tree(nodes)


def _stumps(trees: list[Tree], n_features: int = 4) -> tp.Ensemble:
    obj = Objective("binary:logistic", "logloss", "sigmoid")
    return assemble(None, trees, objective=obj, base_margin=np.zeros(1),
                    folded_intercept=np.zeros(1), n_features=n_features,
                    feature_names=tuple(f"x{i}" for i in range(n_features)),
                    feature_types=("float",) * n_features, categories={},
                    monotone_constraints=(0,) * n_features, source="xgboost", source_meta={})


def _expected(contrib: np.ndarray, names: list[str], k: int, threshold: float, sign: float):
    """Reasons by the rule, row by row, the slow way."""
    out = []
    for row in contrib:
        items = [(-sign * v, j) for j, v in enumerate(row) if sign * v > threshold]
        items.sort()  # largest first; equal values: lower index first
        out.append([(names[j], sign * -s) for s, j in items[:k]])
    return out


def _names(col: pd.Series) -> list:
    return [v if pd.notna(v) else None for v in col]


def _as_lists(frame: pd.DataFrame, k: int) -> list[list[tuple[str, float]]]:
    rows = []
    for _, r in frame.iterrows():
        rows.append([(r[f"reason_{j}"], r[f"contribution_{j}"]) for j in range(1, k + 1)
                     if pd.notna(r[f"reason_{j}"])])
    return rows


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("k, threshold", [(4, 0.0), (2, 0.05), (10, 0.0)])
def test_reasons_follow_the_contributions(lib, k, threshold):
    if lib == "xgboost":
        booster, X, _ = make_model(XGBSpec(n_trees=15, max_depth=3, n_num=6, seed=2))
    else:
        booster, X = train(LgbSpec("binary", n_trees=15, n_features=6))
    ens = tp.load(booster)
    contrib = ens.predict(X, output="contrib")[:, :-1]
    frame = tp.reason_codes(ens, X, k=k, threshold=threshold)
    assert list(frame.columns[:2]) == ["reason_1", "contribution_1"]
    assert frame.shape == (len(X), 2 * k)
    names = feature_names(ens)
    got = _as_lists(frame, k)
    want = _expected(contrib, names, k, threshold, 1.0)
    assert [[n for n, _ in r] for r in got] == [[n for n, _ in r] for r in want]
    np.testing.assert_allclose([v for r in got for _, v in r], [v for r in want for _, v in r])
    assert (frame.filter(like="contribution").fillna(np.inf) > threshold).all().all()


def test_decrease_risk_groups_labels_and_index():
    booster, X = train(LgbSpec("binary", n_trees=15, n_features=6))
    ens = tp.load(booster)
    df = pd.DataFrame(X, columns=list(ens.feature_names), index=np.arange(100, 100 + len(X)))
    contrib = ens.predict(df, output="contrib")[:, :-1]
    members = [ens.feature_names[0], ens.feature_names[1]]
    groups = {"g01": members}
    labels = {"g01": "first two", ens.feature_names[4]: "the fifth"}
    frame = tp.reason_codes(ens, df, k=3, groups=groups, labels=labels,
                            direction="decrease_risk")
    assert (frame.index == df.index).all()
    assert list(frame.columns) == [f"{c}_{j}" for j in (1, 2, 3)
                                   for c in ("reason", "contribution", "label")]
    # reasons: the group (at the position of its first feature), then features 2..5
    summed = np.column_stack([contrib[:, :2].sum(axis=1), contrib[:, 2:]])
    names = ["g01", *ens.feature_names[2:]]
    want = _expected(summed, names, 3, 0.0, -1.0)
    got = _as_lists(frame, 3)
    assert [[n for n, _ in r] for r in got] == [[n for n, _ in r] for r in want]
    assert all(v < 0 for r in got for _, v in r)
    assert set(frame["label_1"].dropna()) <= {"first two", "the fifth", *names}
    lab = frame.loc[frame["reason_1"] == "g01", "label_1"]
    assert (lab == "first two").all()
    assert not set(members) & set(frame.filter(like="reason").to_numpy().ravel().tolist())


def test_ties_keep_feature_order():
    # x2 and x0 split identically: their contributions are equal on every row
    trees = [_stump(2, 0.5, -1.0, 1.0), _stump(0, 0.5, -1.0, 1.0), _stump(1, 0.5, -0.2, 0.2)]
    ens = _stumps(trees)
    X = np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    frame = tp.reason_codes(ens, X, k=3)
    assert _names(frame["reason_1"]) == ["x0", None, "x0"]
    assert _names(frame["reason_2"]) == ["x2", None, "x2"]
    assert _names(frame["reason_3"]) == ["x1", None, None]
    assert frame.loc[1].isna().all()
    np.testing.assert_allclose(frame["contribution_1"], [1.0, np.nan, 1.0])
    freq = reason_frequencies(frame)
    assert freq.to_dict() == {"x0": 2, "x2": 2, "x1": 1}
    # a group sums its members (x1 + x2 = 1.2 > x0 = 1.0)
    frame = tp.reason_codes(ens, X[:1], k=2, groups={"pair": ["x2", "x1"]})
    assert frame.iloc[0].tolist()[::2] == ["pair", "x0"]


def test_errors_name_the_problem():
    ens = _stumps([_stump(0, 0.5, -1.0, 1.0)])
    X = np.zeros((2, 4))
    with pytest.raises(DataError, match="k must be"):
        tp.reason_codes(ens, X, k=0)
    with pytest.raises(DataError, match="threshold"):
        tp.reason_codes(ens, X, threshold=-0.1)
    with pytest.raises(DataError, match="direction"):
        tp.reason_codes(ens, X, direction="up")
    with pytest.raises(DataError, match="not a feature"):
        tp.reason_codes(ens, X, groups={"g": ["x0", "nope"]})
    with pytest.raises(DataError, match="in reason groups"):
        tp.reason_codes(ens, X, groups={"a": ["x0"], "b": ["x0", "x1"]})
    with pytest.raises(DataError, match="name of a feature"):
        tp.reason_codes(ens, X, groups={"x3": ["x0", "x1"]})
    with pytest.raises(DataError, match="labels given"):
        tp.reason_codes(ens, X, labels={"nothing": "x"})
    multi, Xm, _ = make_model(XGBSpec(objective="multi:softprob", n_trees=2, max_depth=2))
    with pytest.raises(UnsupportedModelError, match="classes"):
        tp.reason_codes(multi, Xm)


def test_reason_shift_between_a_model_and_its_pruned_version():
    from treeprune.passes.statistics import cap_depth
    from treeprune.reasons import reason_shift

    booster, X = train(LgbSpec("binary", n_trees=15, n_features=6))
    ens = tp.load(booster)
    same = reason_shift(ens, ens, X, k=3)
    assert same.first_same == 1.0 and same.set_same == 1.0 and same.n_rows == len(X)
    np.testing.assert_array_equal(same.table["first_before"], same.table["first_after"])
    assert abs(same.table["first_before"].sum() - np.mean(
        tp.reason_codes(ens, X, k=3)["reason_1"].notna())) < 1e-12
    shift = reason_shift(ens, cap_depth(ens, 1), X, k=3)
    assert 0.0 <= shift.first_same < 1.0 and shift.set_same <= 1.0
    assert set(shift.table.columns) == {"reason", "first_before", "first_after", "top_k_before",
                                        "top_k_after"}
    assert (shift.table["top_k_before"] >= shift.table["first_before"]).all()
