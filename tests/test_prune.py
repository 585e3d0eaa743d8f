"""prune() and the data-driven passes: exactness of what they write, honesty of what they choose."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from models import build, credit_like, make_ens, native_margin, train_lgb, train_xgb
from sklearn.metrics import roc_auc_score

import treeprune as tp
from treeprune._candidates import squared_objective
from treeprune.errors import DataError, PruneError
from treeprune.passes import datadriven as dd


@pytest.fixture(scope="module")
def binary_data():
    X, y = credit_like(4000, nan_frac=0.05)
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.fixture(scope="module")
def xgb_model(binary_data):
    Xt, yt, _, _ = binary_data
    return train_xgb(Xt, yt, max_depth=5, n_rounds=120)


@pytest.fixture(scope="module")
def lgb_model(binary_data):
    Xt, yt, _, _ = binary_data
    return train_lgb(Xt, yt, num_leaves=15, n_rounds=120)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_prune_shrinks_and_writes_exactly(lib, binary_data, xgb_model, lgb_model, tmp_path):
    _, _, Xv, yv = binary_data
    model = xgb_model if lib == "xgboost" else lgb_model
    ens = tp.load(model)
    result = tp.prune(ens, Xv, yv, tolerance=0.005, random_state=0, cv=1, max_selected=32)
    pruned = result.model
    assert pruned.n_leaves < ens.n_leaves / 4
    # the choice honours the tolerance, by z standard errors, on the held-out rows
    row = result.path.iloc[result.chosen]
    assert row.metric_judge - row.se_diff >= result.original_metric - 0.005
    judge = result.judge_index
    assert len(np.intersect1d(judge, result.fit_index)) == 0
    # the chosen model itself is what was judged there
    auc_judge = roc_auc_score(yv[judge], pruned.predict(Xv[judge], output="margin"))
    assert auc_judge == pytest.approx(result.chosen_metric, abs=1e-9)
    # cross-fitting judges every row but the confirm rows out of fold, then fits the choice on
    # all of them
    crossed = tp.prune(ens, Xv, yv, tolerance=0.005, random_state=0, cv=2,
                       families=["select", "collapse"])
    assert crossed.judge_X is None
    assert len(crossed.judge_index) + len(crossed.confirm_index) == len(yv)
    assert crossed.model.n_leaves < ens.n_leaves
    # written in the source format, loaded natively, same predictions
    out = tmp_path / ("pruned.json" if lib == "xgboost" else "pruned.txt")
    pruned.save(out)
    np.testing.assert_allclose(native_margin(out, Xv), pruned.predict(Xv, output="margin"),
                               rtol=0, atol=1e-5)
    # the history says what happened
    names = [rec.name for rec in pruned.history]
    family = result.path["family"].iloc[result.chosen]
    first = {"select": "select_trees", "collapse": "select_trees", "regrow": "select_trees",
             "distill": "distill", "distill+regrow": "distill"}[family]
    assert first in names
    assert ("refit_leaves" in names) == bool(result.path["refit"].iloc[result.chosen])


def test_prune_is_deterministic(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    a = tp.prune(xgb_model, Xv, yv, tolerance=0.002, random_state=3, cv=1, max_selected=16)
    b = tp.prune(xgb_model, Xv, yv, tolerance=0.002, random_state=3, cv=1, max_selected=16)
    np.testing.assert_array_equal(a.model.predict(Xv, output="margin"),
                                  b.model.predict(Xv, output="margin"))
    assert a.path.equals(b.path)
    np.testing.assert_array_equal(a.judge_index, b.judge_index)


def test_budget_is_respected(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    r = tp.prune(xgb_model, Xv, yv, max_leaves=40, cv=1, max_selected=16)
    assert r.model.n_leaves <= 40
    r = tp.prune(xgb_model, Xv, yv, max_trees=5, cv=1, families=["select", "collapse"])
    assert r.model.n_trees <= 5


def test_prune_does_not_touch_the_input(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    before = xgb_model.save_raw("json")
    ens = tp.load(xgb_model)
    values = ens.value.copy()
    tp.prune(ens, Xv, yv, max_trees=4, cv=1, max_selected=8)
    assert xgb_model.save_raw("json") == before
    np.testing.assert_array_equal(ens.value, values)


@pytest.mark.parametrize("kwargs, error", [
    ({"tolerance": -0.1}, PruneError),
    ({"tolerance": float("nan")}, PruneError),
    ({"max_leaves": 10**9}, PruneError),
    ({"max_trees": 10**6}, PruneError),
    ({"tolerance": 0.01, "max_trees": 3}, PruneError),
    ({"metric": "accuracy"}, PruneError),
    ({"cv": 0}, PruneError),
    ({"cv": 2.5}, PruneError),
    ({"l2": -1.0}, PruneError),
    ({"l2": float("inf")}, PruneError),
])
def test_bad_requests(binary_data, xgb_model, kwargs, error):
    _, _, Xv, yv = binary_data
    with pytest.raises(error):
        tp.prune(xgb_model, Xv, yv, **kwargs)


def test_bad_data(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    with pytest.raises(DataError, match="labels 0/1"):
        tp.prune(xgb_model, Xv, yv * 2)
    with pytest.raises(DataError, match="rows"):
        tp.prune(xgb_model, Xv, yv[:-1])
    y_nan = yv.copy()
    y_nan[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        tp.prune(xgb_model, Xv, y_nan)
    with pytest.raises(DataError):
        tp.prune(xgb_model, Xv[:0], yv[:0])
    with pytest.raises(DataError, match="features"):
        tp.prune(xgb_model, Xv[:, :3], yv)


def test_regression_and_multiclass():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1600, 5))
    y_reg = X[:, 0] * 2 + np.sin(X[:, 1]) + rng.normal(scale=0.3, size=1600)
    reg = xgb.train({"max_depth": 4, "eta": 0.1, "nthread": 1}, xgb.DMatrix(X[:800], y_reg[:800]),
                    80)
    r = tp.prune(reg, X[800:], y_reg[800:], tolerance=0.01, cv=1, max_selected=32)
    assert r.metric == "loss" and r.model.n_leaves < tp.load(reg).n_leaves
    assert r.chosen_metric <= r.original_metric + 0.01
    y_cls = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5]).astype(float)
    clf = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbose": -1,
                     "num_threads": 1}, lgb.Dataset(X[:800], y_cls[:800]), 40)
    r = tp.prune(clf, X[800:], y_cls[800:], tolerance=0.02, cv=1, max_selected=16)
    assert r.model.n_trees % 1 == 0 and r.model.n_leaves < tp.load(clf).n_leaves
    txt = r.model.to_lightgbm().predict(X[800:], raw_score=True)
    np.testing.assert_allclose(txt, r.model.predict(X[800:], output="margin"), atol=1e-5)


def test_refit_lowers_the_loss_it_fits(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    ens = dd.take_selection(tp.load(xgb_model), dd.forward_selection_path(
        tp.load(xgb_model), Xv, yv, 10), 10)
    obj = ens.objective
    before = obj.loss_value(yv, ens.predict(Xv, output="margin"))
    after_ens = dd.refit_leaves(ens, Xv, yv, l2=1.0)
    after = obj.loss_value(yv, after_ens.predict(Xv, output="margin"))
    assert after < before


def _splits_worth_more_than_values():
    """Tree 0 splits on the feature that explains the target but carries equal leaves (its
    output is a constant); tree 1 splits on a weaker feature with useful values."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 3))
    y = 2.0 * (X[:, 0] >= 0) + 0.5 * (X[:, 1] >= 0) + 0.05 * rng.normal(size=2000)
    # (the intercept at the target's mean, so that a constant is worth nothing to either)
    ens = make_ens([build(dict(f=0, t=0.0, l=0.3, r=0.3)),
                    build(dict(f=1, t=0.0, l=-1.0, r=1.0))], base=float(y.mean()))
    return ens, X, y


def test_selection_by_partitions_takes_the_tree_whose_splits_fit_after_a_refit():
    ens, X, y = _splits_worth_more_than_values()
    by_weights = dd.forward_selection_path(ens, X, y, 1)
    by_splits = dd.forward_selection_path(ens, X, y, 1, by="partitions", leaf_l2=1.0)
    assert by_weights.order[0] == 1 and by_splits.order[0] == 0
    errors = []
    for path in (by_weights, by_splits):
        refitted = dd.refit_leaves(dd.take_selection(ens, path, 1), X, y, l2=1.0)
        errors.append(np.mean((refitted.predict(X, output="margin") - y) ** 2))
    assert errors[1] < 0.3 * errors[0]
    # both trees: the order is complete and the re-weighting reproduces the target's scale
    both = dd.forward_selection_path(ens, X, y, 2, by="partitions", leaf_l2=1.0)
    assert sorted(both.order.tolist()) == [0, 1]


def test_selection_by_partitions_needs_squared_error_on_one_output(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    with pytest.raises(DataError, match="squared error"):
        dd.forward_selection_path(tp.load(xgb_model), Xv, yv, 3, by="partitions")
    ens, X, y = _splits_worth_more_than_values()
    with pytest.raises(DataError, match="by must be"):
        dd.forward_selection_path(ens, X, y, 1, by="leaves")
    with pytest.raises(DataError, match="leaf_l2"):
        dd.forward_selection_path(ens, X, y, 1, by="partitions", leaf_l2=-1.0)


def test_selection_by_partitions_of_the_margins_against_labels(binary_data, xgb_model):
    # a classifier's trees chosen by the splits that fit its own margins: the same order as
    # the squared-error form fitted to those margins, whichever rows carry them, and then
    # re-weighted against the labels under the logistic loss
    _, _, Xv, yv = binary_data
    ens = tp.load(xgb_model)
    margin = ens.predict(Xv, output="margin")
    squared = ens.replace(objective=squared_objective(ens))
    want = dd.forward_selection_path(squared, Xv, margin, 6, by="partitions").order
    got = dd.forward_selection_path(ens, Xv, yv, 6, by="partitions", partition_target=margin)
    assert got.order.tolist() == want.tolist()
    half = len(Xv) // 2
    other = dd.forward_selection_path(ens, Xv[:half], yv[:half], 6, by="partitions",
                                      partition_X=Xv, partition_target=margin)
    assert other.order.tolist() == want.tolist()
    assert not np.allclose(got.weights[-1], dd.forward_selection_path(
        squared, Xv, margin, 6, by="partitions").weights[-1])
    with pytest.raises(DataError, match="partition_X needs partition_target"):
        dd.forward_selection_path(ens, Xv, yv, 6, by="partitions", partition_X=Xv)
    with pytest.raises(DataError):
        dd.forward_selection_path(ens, Xv, yv, 6, by="partitions", partition_X=Xv,
                                  partition_target=margin[:-1])
    # arguments that would be ignored are refused: the selection asked for is not the one made
    with pytest.raises(DataError, match="partition_weight needs partition_X"):
        dd.forward_selection_path(ens, Xv, yv, 6, by="partitions", partition_target=margin,
                                  partition_weight=np.ones(len(Xv)))
    with pytest.raises(DataError, match="by='partitions'"):
        dd.forward_selection_path(ens, Xv, yv, 6, partition_target=margin)


def test_collapse_reaches_the_budget_and_keeps_trees(binary_data, xgb_model):
    _, _, Xv, yv = binary_data
    ens = tp.load(xgb_model)
    out = dd.collapse_by_data(ens, Xv, yv, ens.n_trees * 3)
    assert out.n_leaves <= ens.n_trees * 3 and out.n_trees == ens.n_trees
    assert ens.n_leaves > out.n_leaves  # input untouched, output smaller


def _is_monotone(ens, X, feature, direction, grid):
    base = X.copy()
    prev = None
    for v in grid:
        base[:, feature] = v
        m = ens.predict(base, output="margin")
        if prev is not None:
            assert np.all(direction * (m - prev) >= -1e-9), f"feature {feature} breaks at {v}"
        prev = m


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_monotone_constraints_survive_pruning(lib):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] - X[:, 1] + 0.7 * np.sin(3 * X[:, 2]) + rng.logistic(size=3000) * 0.5 > 0
         ).astype(float)
    if lib == "xgboost":
        model = xgb.train({"max_depth": 4, "eta": 0.2, "objective": "binary:logistic",
                           "monotone_constraints": "(1,-1,0,0)", "nthread": 1},
                          xgb.DMatrix(X[:1500], y[:1500]), 60)
    else:
        model = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1,
                           "monotone_constraints": [1, -1, 0, 0], "num_threads": 1},
                          lgb.Dataset(X[:1500], y[:1500]), 60)
    ens = tp.load(model)
    assert tuple(ens.monotone_constraints[:2]) == (1, -1)
    result = tp.prune(ens, X[1500:], y[1500:], tolerance=0.01, cv=1, max_selected=16)
    grid = np.linspace(-4, 4, 161)
    rows = X[1500:1700]
    _is_monotone(result.model, rows, 0, 1, grid)
    _is_monotone(result.model, rows, 1, -1, grid)
    # and every candidate on the path, not only the chosen one
    for cand in result.candidates[::7]:
        _is_monotone(cand, rows[:50], 0, 1, grid[::4])


def test_monotone_constraints_given_for_a_file(tmp_path):
    """XGBoost files do not store training constraints: the caller can name them."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2400, 3))
    y = (X[:, 0] + 0.5 * np.sin(4 * X[:, 1]) + rng.logistic(size=2400) * 0.5 > 0).astype(float)
    model = xgb.train({"max_depth": 4, "eta": 0.2, "objective": "binary:logistic",
                       "monotone_constraints": "(1,0,0)", "nthread": 1},
                      xgb.DMatrix(X[:1200], y[:1200], feature_names=["a", "b", "c"]), 50)
    path = tmp_path / "mono.json"
    model.save_model(path)
    assert not any(tp.load(path).monotone_constraints)
    result = tp.prune(path, X[1200:], y[1200:], tolerance=0.01, cv=1, max_selected=16,
                      monotone_constraints={"a": 1})
    assert result.model.monotone_constraints[0] == 1
    _is_monotone(result.model, X[1200:1300], 0, 1, np.linspace(-4, 4, 81))
    with pytest.raises(PruneError, match="unknown"):
        tp.prune(path, X[1200:], y[1200:], monotone_constraints={"zz": 1})


def test_collapsing_many_trees_at_once_does_not_overshoot(binary_data, xgb_model):
    """Each collapsed leaf must not carry its own copy of the same gradient correction: with
    120 trees collapsed together to an eighth of their leaves, held-out AUC fell by 0.036 (and
    to about 0.6 on larger models); with the hessian-weighted merge it falls by 0.005."""
    Xt, yt, Xv, yv = binary_data
    ens = tp.load(xgb_model)
    before = roc_auc_score(yv, ens.predict(Xv, output="margin"))
    out = dd.collapse_by_data(ens, Xt, yt, ens.n_leaves // 8)
    after = roc_auc_score(yv, out.predict(Xv, output="margin"))
    assert out.n_leaves <= ens.n_leaves // 8
    assert after > before - 0.015


def test_cross_entropy_with_probabilities_defaults_to_the_loss():
    # LightGBM's cross_entropy is trained on probabilities; AUC needs 0/1 outcomes, so the
    # default metric is the objective's loss there (0/1 labels keep AUC)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 4))
    p = 1.0 / (1.0 + np.exp(-X[:, 0] - X[:, 1] * X[:, 2]))
    b = lgb.train({"objective": "cross_entropy", "verbose": -1, "num_leaves": 7},
                  lgb.Dataset(X, p), 20)
    kw = {"random_state": 0, "families": ["select"], "cv": 1, "max_selected": 4}
    assert tp.prune(b, X, p, **kw).params["metric"] == "loss"
    y = (rng.random(800) < p).astype(float)
    assert tp.prune(b, X, y, **kw).params["metric"] == "auc"


def test_selection_by_partitions_without_shrinkage_skips_leaves_no_row_weighs():
    # l2=0 is allowed: a leaf whose rows all weigh 0 (or that no row reaches) is worth nothing,
    # not 0/0, which made every gain NaN and the selection empty
    ens, X, y = _splits_worth_more_than_values()
    w = (X[:, 1] < 0).astype(float)  # tree 1's right leaf weighs nothing
    path = dd.forward_selection_path(ens, X, y, 2, w, by="partitions", leaf_l2=0.0)
    assert len(path) >= 1 and path.order[0] == 0
    shrunk = dd.forward_selection_path(ens, X, y, 2, w, by="partitions", leaf_l2=1e-9)
    np.testing.assert_array_equal(path.order, shrunk.order)
