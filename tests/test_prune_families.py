"""prune(): every candidate family, fidelity mode, the score scale and the stopping rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from models import credit_like, native_margin, train_lgb, train_xgb
from scipy.stats import spearmanr

import treeprune as tp
from treeprune import _fidelity, _stopping
from treeprune.errors import DataError, PruneError
from treeprune.metrics import psi
from treeprune.passes.lossless import lossless


@pytest.fixture(scope="module")
def data():
    X, y = credit_like(5000, n_features=6)
    return {"train": (X[:2000], y[:2000]), "prune": (X[2000:3500], y[2000:3500]),
            "test": (X[3500:], y[3500:])}


@pytest.fixture(scope="module")
def xgb_model(data):
    return train_xgb(*data["train"], max_depth=3, n_rounds=40)


@pytest.fixture(scope="module")
def lgb_model(data):
    return train_lgb(*data["train"], num_leaves=8, n_rounds=40)


@pytest.mark.parametrize("family", ["regrow", "distill", "distill+regrow"])
@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_grown_families_compete_and_reload_exactly(family, lib, data, xgb_model, lgb_model,
                                                   tmp_path):
    X, y = data["prune"]
    model = xgb_model if lib == "xgboost" else lgb_model
    r = tp.prune(model, X, y, families=[family], max_leaves=250, cv=1, random_state=0)
    assert set(r.path["family"]) == {family}
    assert r.model.n_leaves <= 250
    row = r.path.iloc[r.chosen]
    assert row["family"] == family
    assert any(rec.name in ("regrow", "distill") for rec in r.model.history)
    # every candidate of a cv=1 run is what the path describes, and reloads natively
    for cand, (_, p) in zip(r.candidates, r.path.iterrows(), strict=False):
        assert cand.n_leaves == p["n_leaves"]
    out = tmp_path / ("m.json" if lib == "xgboost" else "m.txt")
    r.model.save(out)
    np.testing.assert_allclose(native_margin(out, X), r.model.predict(X, output="margin"),
                               rtol=0, atol=1e-5)


def test_all_families_share_one_path(data, xgb_model):
    X, y = data["prune"]
    r = tp.prune(xgb_model, X, y, tolerance=0.002, cv=1, random_state=1, max_selected=8)
    assert {"select", "collapse", "regrow", "distill", "distill+regrow"} <= set(r.path["family"])
    # a grown candidate larger than the original is never one
    assert (r.path["n_leaves"] <= tp.load(xgb_model).n_leaves).all()
    for col in ("spearman", "agreement_50", "agreement_80", "psi", "detail", "se_diff"):
        assert col in r.path and r.path[col].notna().all()
    # the judge rows of every family are the same rows: the original's metric is one number
    assert r.path["metric_judge"].between(0, 1).all()
    assert len(np.intersect1d(r.fit_index, r.judge_index)) == 0
    assert len(np.intersect1d(r.confirm_index, np.union1d(r.fit_index, r.judge_index))) == 0
    h = r.holdout
    assert h["rows"] == len(r.confirm_index) > 0
    Xc, yc = X[r.confirm_index], y[r.confirm_index]
    from sklearn.metrics import roc_auc_score

    assert h["metric"] == pytest.approx(roc_auc_score(yc, r.model.predict(Xc, output="margin")))
    assert h["se"] > 0 and h["se_diff"] >= 0


def test_refit_on_every_row_keeps_within_the_leaf_cap(xgb_model):
    # cross-fitting fits the chosen configuration once more on all rows, where a grown model can
    # come out larger than out of fold: a prefix within the cap stands in, or a clear error
    from treeprune.pruning import _final_fit
    from treeprune.trees import prefix

    big = tp.load(xgb_model)
    small = prefix(big, 10)
    key = ("regrow", 8, "all", False)

    class Source:
        def generate(self, rows, only=None, any_prefix=False):
            yield key, big
            yield ("regrow", 8, 2, False), small

    def fit(cap):
        return _final_fit(Source(), None, key, big.n_leaves, cap, None, lambda c, rows: c)

    assert fit(big.n_leaves) is big
    assert fit(big.n_leaves - 1) is small
    with pytest.raises(PruneError, match="within the leaf budget"):
        fit(small.n_leaves - 1)


def test_families_are_deterministic(data, xgb_model):
    X, y = data["prune"]
    kw = {"families": ["distill", "regrow"], "max_leaves": 150, "random_state": 4, "cv": 1}
    a = tp.prune(xgb_model, X, y, **kw)
    b = tp.prune(xgb_model, X, y, **kw)
    pd.testing.assert_frame_equal(a.path, b.path)
    np.testing.assert_array_equal(a.model.predict(X, output="margin"),
                                  b.model.predict(X, output="margin"))


def test_unlabeled_rows_feed_distillation(data, xgb_model):
    X, y = data["prune"]
    Xu = data["test"][0][:800]
    r = tp.prune(xgb_model, X[:600], y[:600], X_unlabeled=Xu, families=["distill"],
                 max_leaves=120, cv=1)
    rec = next(rec for rec in r.model.history if rec.name == "distill")
    # and synthetic rows made from the fit rows (augment="auto": 3 per fit row)
    assert rec.details["n_unlabeled"] == 800 + 3 * len(r.fit_index)
    assert r.params["n_unlabeled"] == 800
    with pytest.raises(DataError):
        tp.prune(xgb_model, X, y, X_unlabeled=Xu[:, :3], families=["distill"])
    with pytest.raises(DataError):
        tp.prune(xgb_model, X, y, X_unlabeled=Xu[:0], families=["distill"])


def test_fidelity_mode_keeps_the_ranking_on_unseen_rows(data, xgb_model):
    X, _ = data["prune"]
    Xt, yt = data["test"]
    ens = tp.load(xgb_model)
    r = tp.prune(ens, X, metric="fidelity", random_state=0, cv=1, max_selected=16)
    assert r.metric == "fidelity" and r.params["scale"] == "original"
    # margins are a noise-free target: the refits pull less towards the old leaf values
    assert r.params["l2"] == 10.0
    assert r.model.n_leaves < ens.n_leaves / 2
    orig, new = ens.predict(Xt, output="margin"), r.model.predict(Xt, output="margin")
    # the tolerance (0.01) holds on rows no decision saw
    assert spearmanr(orig, new)[0] >= 0.99
    assert r.holdout["metric"] >= 0.99
    # the score scale is kept: decisions at a cutoff set on the original's scores hardly move
    assert _fidelity.psi(orig, new) < 0.05
    # with labels too: AUC is reported beside fidelity but does not choose
    r2 = tp.prune(ens, X, data["prune"][1], metric="fidelity", families=["select"], cv=1)
    assert "auc_judge" in r2.path
    with_labels = tp.prune(ens, X, data["prune"][1], families=["select"], cv=1)
    assert with_labels.params["l2"] == 200.0
    # the selection path: every tree in fidelity mode with a tolerance (an overfit model keeps
    # its ranking only with most of its trees), at most 128 with labels
    assert r2.params["max_selected"] == lossless(ens).n_trees
    assert with_labels.params["max_selected"] == 128


def test_label_free_defaults_and_errors(data, xgb_model):
    X, y = data["prune"]
    with pytest.raises(PruneError, match="metric='fidelity'"):
        tp.prune(xgb_model, X, metric="auc")
    r = tp.prune(xgb_model, X, families=["select"], max_leaves=300, cv=1)
    assert r.metric == "fidelity" and r.model.n_leaves <= 300
    assert r.params["max_selected"] == 128  # a budget: the small candidates win
    with pytest.raises(DataError, match="same score"):
        tp.prune(xgb_model, np.tile(X[:1], (100, 1)), metric="fidelity")
    ens = tp.load(xgb_model)
    broken = ens.replace(value=np.where(ens.left < 0, np.nan, ens.value))
    with pytest.raises(DataError, match="NaN"):
        tp.prune(broken, X, metric="fidelity")
    multi_X = np.random.default_rng(0).normal(size=(300, 3))
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2,
                       "nthread": 1}, xgb.DMatrix(multi_X, np.arange(300) % 3), 5)
    with pytest.raises(PruneError, match="single-output"):
        tp.prune(multi, multi_X, metric="fidelity")


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_scale_choices(lib, data, xgb_model, lgb_model, tmp_path):
    X, y = data["prune"]
    model = xgb_model if lib == "xgboost" else lgb_model
    ens = tp.load(model)
    # no PSI limit: this compares the scales on the same choice rule (at 60 of this small
    # model's leaves no candidate keeps the distribution's shape within PSI 0.1)
    kw = {"families": ["select", "collapse"], "max_leaves": 60, "cv": 1, "random_state": 0,
          "max_selected": 16, "max_psi": None}
    cal = tp.prune(model, X, y, scale="calibrated", **kw)
    orig = tp.prune(model, X, y, scale="original", **kw)
    assert cal.params["scale"] == "calibrated" and orig.params["scale"] == "original"
    assert any(rec.name == "rescale" for rec in orig.model.history)
    assert not any(rec.name == "rescale" for rec in cal.model.history)
    # the same candidates rank the same way, so the AUC path is unchanged by the scale
    np.testing.assert_allclose(cal.path["metric_judge"], orig.path["metric_judge"], atol=1e-12)
    # and the rescaled margins sit on the original's scale (fitted on the fit rows)
    fit = orig.fit_index
    m0, m1 = ens.predict(X[fit], output="margin"), orig.model.predict(X[fit], output="margin")
    assert abs(m1.mean() - m0.mean()) < 0.05 * m0.std()
    out = tmp_path / ("m.json" if lib == "xgboost" else "m.txt")
    orig.model.save(out)
    np.testing.assert_allclose(native_margin(out, X), orig.model.predict(X, output="margin"),
                               rtol=0, atol=1e-5)
    with pytest.raises(PruneError, match="scale"):
        tp.prune(model, X, y, scale="probability")


def test_bad_family_and_budget_equal_to_size(data, xgb_model):
    X, y = data["prune"]
    with pytest.raises(PruneError, match="families"):
        tp.prune(xgb_model, X, y, families=["grow-more"])
    # search options out of range name themselves (max_selected=0 used to select nothing)
    for bad in ({"max_selected": 0}, {"max_selected": 2.5}, {"n_rounds": 0},
                {"n_rounds": True}, {"cv": 0}, {"judge_fraction": 1.0}):
        with pytest.raises(PruneError, match=next(iter(bad))):
            tp.prune(xgb_model, X, y, **bad)
    n = tp.load(xgb_model).n_leaves
    r = tp.prune(xgb_model, X, y, max_leaves=n, families=["select"], cv=1)
    assert r.model.n_leaves <= n


def test_progress_bar_names_the_family(data, xgb_model, capsys):
    X, y = data["prune"]
    tp.prune(xgb_model, X, y, families=["select", "distill"], max_leaves=200, progress=True,
             cv=1, max_selected=8)
    err = capsys.readouterr().err
    assert "candidate" in err and ("distill" in err or "select" in err)


def test_progress_bar_total_holds_across_folds(data, xgb_model, capsys, monkeypatch):
    import re

    from treeprune import _candidates

    # the last fold yields more candidates than the first (early stopping can do that)
    calls = []
    generate = _candidates.Families.generate

    def uneven(self, rows, *args, **kwargs):
        calls.append(1)
        last = None
        for key, cand in generate(self, rows, *args, **kwargs):
            last = (key, cand)
            yield key, cand
        if len(calls) == 3 and last is not None:
            for extra in range(12):
                yield (*last[0][:3], f"extra{extra}"), last[1]

    monkeypatch.setattr(_candidates.Families, "generate", uneven)
    X, y = data["prune"]
    tp.prune(xgb_model, X, y, families=["select"], max_leaves=200, progress=True, cv=3,
             max_selected=8)
    err = capsys.readouterr().err
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) \[", err)]
    assert counts and all(done <= total for done, total in counts)
    assert not re.search(r"\d+candidate \[", err)  # tqdm's form once a count passes its total


def test_stopping_rule_does_not_take_the_luckiest():
    """Many small candidates are truly 0.01 AUC worse than the original; on the judge rows one of
    them looks better by luck. The adjusted rule must not pick such a candidate."""
    rng = np.random.default_rng(0)
    n_small, se = 60, 0.006
    picked_bad = {False: 0, True: 0}
    for _ in range(200):
        true = np.full(n_small, -0.01)
        judged = true + se * rng.standard_normal(n_small)
        table = pd.DataFrame({
            "family": np.repeat(["select", "collapse", "regrow", "distill", "distill+regrow"],
                                n_small // 5).tolist() + ["select"],
            "n_leaves": np.r_[np.arange(10, 10 + n_small), 1000],
            "n_trees": 1,
            # the big candidate is nearly the original: no loss, tiny standard error
            "metric_judge": 0.8 + np.r_[judged, 0.0],
            "se_diff": np.r_[np.full(n_small, se), 0.0002],
        })
        # the luckiest small candidate is known to be worse than the tolerance allows
        for adjust in (False, True):
            row, _ = _stopping.choose(table, 0.8, 1.0, 0.001, None, None, z=1.0, adjust=adjust)
            picked_bad[adjust] += int(table["n_leaves"].iloc[row] < 1000)
    assert picked_bad[True] <= 0.1 * 200
    assert picked_bad[True] < picked_bad[False]


def test_fidelity_figures():
    a = np.arange(100.0)
    assert _fidelity.columns(a, a) == pytest.approx({"spearman": 1.0, "spearman_se": 0.0,
                                                     "agreement_50": 1.0,
                                                     "agreement_80": 1.0, "psi": 0.0,
                                                     "psi_se": 0.0})
    c = _fidelity.columns(a, -a)
    assert c["spearman"] == pytest.approx(-1.0) and c["agreement_50"] == 0.0
    # the cached comparison gives the figures of the plain functions
    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    z = x + rng.normal(scale=0.5, size=500) + 0.3
    ref = _fidelity.Reference(x).columns(z)
    assert ref["psi"] == pytest.approx(float(psi(x, z).value), rel=1e-12)
    assert ref["spearman"] == pytest.approx(spearmanr(x, z)[0], rel=1e-12)
    assert ref["agreement_80"] == _fidelity.agreement(x, z, 0.8)


def test_psi_standard_error_matches_resampling():
    # bin shares of a shifted score drawn again and again on n rows, the expected shares fixed:
    # the spread of the PSI is what the delta method says
    rng = np.random.default_rng(11)
    expected = np.full(10, 0.1)
    actual = np.array([0.05, 0.06, 0.08, 0.09, 0.1, 0.1, 0.11, 0.12, 0.14, 0.15])
    n = 4000
    draws = rng.multinomial(n, actual, size=4000) / n
    psis = np.sum((draws - expected) * np.log(draws / expected), axis=1)
    se = _fidelity.psi_se(actual, expected, n)
    assert se == pytest.approx(psis.std(), rel=0.1)
    assert _fidelity.psi_se(expected, expected, n) == pytest.approx(0.0, abs=1e-12)
    assert "psi_se" in _fidelity.columns(np.arange(100.0), np.arange(100.0) ** 2)


def test_psi_limit_is_held_by_one_standard_error():
    table = pd.DataFrame({"family": ["select"] * 3, "n_leaves": [10, 20, 40],
                          "n_trees": [2, 4, 8], "metric_judge": [0.80, 0.80, 0.80],
                          "se_diff": [0.0, 0.0, 0.0], "psi": [0.09, 0.09, 0.01],
                          "psi_se": [0.02, 0.005, 0.002]})
    # the smallest is under the limit only on the judged rows: the next one is chosen
    assert _stopping.choose(table, 0.80, 1.0, 0.001, None, None, max_psi=0.1)[0] == 1
    assert list(_stopping.eligible(table, None, None, 0.1)) == [False, True, True]
    assert _stopping.eligible(table, None, None, None).all()


def test_agreement_keeps_tied_scores_together():
    # 20% of the rows share the score at the 50% cutoff: a score cutoff gives them one decision,
    # so a model that ranks them the same (tied, in any row order) agrees everywhere
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(-2, 0.5, 400), np.zeros(200), rng.normal(2, 0.5, 400)])
    z = x.copy()
    z[400:600] = 1e-9  # the same group, one rounding error away
    for rate in (0.5, 0.8):
        assert _fidelity.agreement(x, z, rate) == 1.0
    assert _fidelity.Reference(x).columns(z)["agreement_50"] == 1.0
    # ties are all declined at the cutoff, as in tp.compare's swap sets
    assert _fidelity.approved(x, 0.5).sum() == 400


def test_max_psi_excludes_candidates_that_shift_the_scores():
    table = pd.DataFrame({"family": ["select", "distill", "select"], "n_leaves": [10, 20, 500],
                          "n_trees": [1, 2, 50], "metric_judge": [0.81, 0.805, 0.8],
                          "se_diff": [0.001, 0.001, 0.0001], "psi": [0.4, 0.05, np.nan]})
    assert _stopping.choose(table, 0.8, 1.0, 0.001, None, None)[0] == 0
    assert _stopping.choose(table, 0.8, 1.0, 0.001, None, None, max_psi=0.1)[0] == 1
    # a missing PSI (no single score) does not exclude; budgets obey it too
    assert _stopping.choose(table, 0.8, 1.0, 0.001, None, None, max_psi=0.01)[0] == 2
    assert _stopping.choose(table, 0.8, 1.0, None, 100, None, max_psi=0.1)[0] == 1
    with pytest.raises(PruneError, match="max_psi"):
        _stopping.choose(table.iloc[:1], 0.8, 1.0, None, 100, None, max_psi=0.1)


def test_an_overfit_original_does_not_let_poor_small_candidates_through():
    # the original (0.75) overfits: the 500-leaf candidate beats it beyond doubt, the 10-leaf one
    # only matches it; the one-standard-error rule keeps the choice near the best
    table = pd.DataFrame({"family": ["select", "collapse", "distill"], "n_leaves": [10, 120, 500],
                          "n_trees": [1, 8, 50], "metric_judge": [0.755, 0.7715, 0.775],
                          "se_diff": [0.002, 0.003, 0.003], "se_best": [0.004, 0.003, 0.0]})
    assert _stopping.choose(table, 0.75, 1.0, 0.001, None, None, z=1.0)[0] == 1
    # without the column, or when the best does not beat the original beyond doubt, the
    # smallest within tolerance of the original is chosen as before
    assert _stopping.choose(table.drop(columns="se_best"), 0.75, 1.0, 0.001, None, None,
                            z=1.0)[0] == 0
    assert _stopping.choose(table, 0.773, 1.0, 0.03, None, None, z=1.0)[0] == 0
    # budgets are unaffected
    assert _stopping.choose(table, 0.75, 1.0, None, 200, None, z=1.0)[0] == 1


def test_prune_reports_the_standard_error_to_the_best_candidate(data, xgb_model):
    X, y = data["prune"]
    res = tp.prune(xgb_model, X, y, families=["select", "collapse"], cv=1, random_state=0,
                   max_selected=16)
    se_best = res.path["se_best"].dropna().to_numpy()
    best = res.path["metric_judge"].idxmax()
    assert np.all(se_best >= 0) and res.path.loc[best, "se_best"] == 0.0
    assert (se_best > 0).any()


def test_max_psi_defaults_with_the_original_scale(data, xgb_model):
    X, y = data["prune"]
    kw = {"families": ["select", "collapse"], "cv": 1, "random_state": 0, "max_selected": 16}
    orig = tp.prune(xgb_model, X, y, scale="original", **kw)
    assert orig.params["max_psi"] == 0.1
    assert not orig.path["chosen"].any() or orig.path.loc[orig.path["chosen"], "psi"].iloc[0] \
        <= 0.1
    assert tp.prune(xgb_model, X, y, **kw).params["max_psi"] is None
    assert tp.prune(xgb_model, X, y, scale="original", max_psi=None, **kw).params["max_psi"] \
        is None
    for bad in (0, -1, "high"):
        with pytest.raises(PruneError, match="max_psi"):
            tp.prune(xgb_model, X, y, max_psi=bad, **kw)


def test_selection_z_stays_finite_far_in_the_tail():
    # z = 50 (a test asks for "never prune") once gave an infinite adjusted z, and inf * 0 = NaN
    assert _stopping.selection_z(1.0, 5) == pytest.approx(1.85594, abs=1e-5)
    zs = [_stopping.selection_z(z, 5) for z in (8.0, 30.0, 39.0, 40.0, 50.0, 1e3)]
    assert all(np.isfinite(zs)) and all(b > a for a, b in zip(zs, zs[1:], strict=False))
    assert zs[-2] > 50.0


def _select_collapse_source(X, y, model, fidelity: bool, max_selected: int):
    """The lossless model, its fit rows (the margins as targets in fidelity mode) and the
    select/collapse families on them."""
    from treeprune import _candidates

    base = tp.load(model)
    target = base.predict(X, output="margin")
    rows = _candidates.FitRows(X=X, y=target if fidelity else y.astype(float), w=None,
                               target=target, labels=None if fidelity else y)
    fam = _candidates.Families(base, fidelity=fidelity, families=("select", "collapse"),
                               max_leaves=None, max_trees=None, l2=10.0, n_rounds=5,
                               device="cpu", max_selected=max_selected, random_state=0)
    return base, rows, fam


@pytest.mark.parametrize("fidelity", [True, False])
def test_fidelity_collapses_chain_from_the_refitted_larger_collapse(fidelity, data, xgb_model):
    from treeprune.passes import datadriven

    X, y = data["prune"]
    base, rows, fam = _select_collapse_source(X, y, xgb_model, fidelity, max_selected=16)
    found = dict(fam.generate(rows))
    k = 16
    fractions = fam._fractions()
    above = fractions[fractions.index(0.25) - 1]  # the step before a quarter of the leaves
    assert (above == 0.5) != fidelity  # fidelity mode steps down more finely
    prev, quarter = found[("collapse", k, above, True)], found[("collapse", k, 0.25, False)]
    fit_form = fam._fit_form
    start = prev if fidelity else found[("select", k, 1.0, False)]
    expected = datadriven.collapse_by_data(fit_form(start), X, rows.y, quarter.n_leaves,
                                           l2=10.0)
    np.testing.assert_array_equal(expected.predict(X, output="margin"),
                                  quarter.predict(X, output="margin"))
    # a step never repeats a size (small selections meet the two-leaves-per-tree floor)
    sizes = [(key[0], key[1], key[3], c.n_leaves) for key, c in found.items()]
    assert len(sizes) == len(set(sizes))
    if fidelity:
        # under a leaf budget the steps above it still lead the way down to it
        budget = (prev.n_leaves + quarter.n_leaves) // 2
        fam.max_leaves = budget
        within = dict(fam.generate(rows))
        assert max(c.n_leaves for c in within.values()) <= budget
        np.testing.assert_array_equal(
            datadriven.collapse_by_data(fit_form(prev), X, rows.y, budget, l2=10.0)
            .predict(X, output="margin"),
            within[("collapse", k, "budget", False)].predict(X, output="margin"))
        fam.max_leaves = None
    # rebuilding one configuration alone (as the final fit does) gives the same candidate
    key = ("collapse", k, 0.25, True)
    (again_key, again), = list(fam.generate(rows, only=key))
    assert again_key == key
    np.testing.assert_array_equal(again.predict(X, output="margin"),
                                  found[key].predict(X, output="margin"))


def test_mixed_rows_take_every_value_from_the_data():
    from treeprune import _augment

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 4, 200).astype(float),
                         np.where(rng.random(200) < 0.2, np.nan, rng.normal(size=200))])
    out = _augment.mixed_rows(X, 1000, np.random.default_rng(1))
    assert out.shape == (1000, 3)
    for j in range(3):  # values (categories, missing ones) the column holds, none made up
        seen = X[:, j][~np.isnan(X[:, j])]
        col = out[:, j]
        assert np.isin(col[~np.isnan(col)], seen).all()
    assert np.isnan(out[:, 2]).mean() == pytest.approx(0.2, abs=0.06)
    # a share of 0 copies whole rows; the same generator state gives the same rows
    whole = _augment.mixed_rows(X, 50, np.random.default_rng(2), share=0.0)
    assert all((np.isclose(X, r) | (np.isnan(X) & np.isnan(r))).all(axis=1).any()
               for r in whole)
    np.testing.assert_array_equal(out, _augment.mixed_rows(X, 1000, np.random.default_rng(1)))


@pytest.fixture
def fit_rows_seen(monkeypatch):
    """The ``FitRows`` every candidate search of the test was given, in order."""
    from treeprune import _candidates

    seen = []
    generate = _candidates.Families.generate

    def spy(self, rows, **kw):
        seen.append(rows)
        return generate(self, rows, **kw)

    monkeypatch.setattr(_candidates.Families, "generate", spy)
    return seen


def test_fidelity_fits_on_synthetic_rows_too(data, xgb_model, fit_rows_seen):
    seen = fit_rows_seen
    X, _ = data["prune"]
    Xt, _ = data["test"]
    ens = tp.load(xgb_model)
    kw = {"metric": "fidelity", "max_leaves": ens.n_leaves // 4, "cv": 1, "random_state": 0,
          "max_selected": 16}
    few = X[:300]
    r = tp.prune(ens, few, **kw)
    rows = seen[-1]
    n_fit = len(r.fit_index)
    assert r.params["augment"] == "auto" and rows.n_synthetic == 3 * n_fit
    assert len(rows.X) == 4 * n_fit
    # the synthetic rows come last, and their target is the original's margin there
    np.testing.assert_array_equal(rows.X[:n_fit], few[r.fit_index].astype(rows.X.dtype))
    np.testing.assert_allclose(rows.y[n_fit:], ens.predict(rows.X[n_fit:], output="margin"))
    # more rows pin the refitted leaves down: closer to the original on rows never seen
    none = tp.prune(ens, few, augment=0, **kw)
    assert seen[-1].n_synthetic == 0
    orig = ens.predict(Xt, output="margin")
    with_rows = spearmanr(orig, r.model.predict(Xt, output="margin"))[0]
    without = spearmanr(orig, none.model.predict(Xt, output="margin"))[0]
    assert with_rows > without
    # deterministic per random_state
    np.testing.assert_array_equal(r.model.predict(Xt, output="margin"),
                                  tp.prune(ens, few, **kw).model.predict(Xt, output="margin"))


def test_augment_errors(data, xgb_model):
    X, _ = data["prune"]
    for bad in (-1, "more", float("nan"), True):
        with pytest.raises(PruneError, match="augment"):
            tp.prune(xgb_model, X, metric="fidelity", augment=bad)


def test_distilled_students_learn_on_synthetic_rows_with_labels(data, xgb_model, fit_rows_seen):
    seen = fit_rows_seen
    X, y = data["prune"]
    r = tp.prune(xgb_model, X, y, families=["distill"], max_leaves=120, cv=1, random_state=0)
    n_fit = len(r.fit_index)
    rows = seen[-1]
    # the labels are fitted on observed rows only; the students' extra rows are synthetic
    assert len(rows.X) == n_fit and rows.n_synthetic == 0
    assert len(rows.X_unlabeled) == 3 * n_fit
    Xf = X[r.fit_index].astype(rows.X_unlabeled.dtype)
    assert all(np.isin(rows.X_unlabeled[:, j], Xf[:, j]).all() for j in range(X.shape[1]))
    # families without a student get none; augment=0 turns them off
    tp.prune(xgb_model, X, y, families=["select"], max_leaves=120, cv=1)
    assert seen[-1].X_unlabeled is None
    tp.prune(xgb_model, X, y, families=["distill"], max_leaves=120, cv=1, augment=0)
    assert seen[-1].X_unlabeled is None


@pytest.mark.parametrize("fidelity", [True, False])
def test_a_step_chosen_out_of_fold_is_fitted_again_where_its_size_meets_the_step_above(
        fidelity, data, xgb_model):
    # a fraction whose budget meets the step above it (both at two leaves per tree) is left out
    # of the candidates; a fold whose selection had more leaves may still have chosen it, and
    # the final fit on every row must then build it rather than fail
    from treeprune.pruning import _final_fit

    X, y = data["prune"]
    base, rows, fam = _select_collapse_source(X, y, xgb_model, fidelity, max_selected=8)
    k = 8
    label = 0.2 if fidelity else 0.125
    found = dict(fam.generate(rows))
    assert ("collapse", k, label, True) not in found  # the case under test: its size met
    key = ("collapse", k, label, True)
    model = _final_fit(fam, rows, key, 2 * k, base.n_leaves, None, lambda c, _rows: c)
    assert model.n_trees <= k and model.n_leaves == 2 * k


def test_a_configuration_rebuilt_alone_is_selected_as_in_the_search(data, xgb_model,
                                                                      monkeypatch):
    """The final fit rebuilds the chosen configuration alone (``only``, a path of its own
    length): it must choose its trees the way the search did, also where the search's path was
    too long for selection by partitions and the rebuilt one is not."""
    from treeprune import _candidates

    monkeypatch.setattr(_candidates, "PARTITION_SELECTION_MAX_TREES", 8)
    X, y = data["prune"]
    _, rows, fam = _select_collapse_source(X, y, xgb_model, True, max_selected=16)
    found = dict(fam.generate(rows))
    key = ("select", 8, 1.0, False)
    (again_key, again), = list(fam.generate(rows, only=key))
    assert again_key == key
    np.testing.assert_array_equal(again.predict(X, output="margin"),
                                  found[key].predict(X, output="margin"))


def test_spearman_standard_error_matches_resampling():
    # a score that follows the original except in a few segments, with ties on both sides (as
    # a pruned credit score does): the influence-function error is the spread of Spearman over
    # fresh samples, where the normal-theory formula is far too small
    rng = np.random.default_rng(5)

    def draw(n):
        x = np.round(rng.gamma(2.0, size=n), 1)  # a tie-heavy original
        moved = rng.random(n) < 0.05
        z = np.where(moved, rng.gamma(2.0, size=n), x) + 0.02 * rng.normal(size=n)
        return x, np.round(z, 1)

    n = 2000
    draws = [draw(n) for _ in range(600)]
    spread = np.std([_fidelity.spearman(x, z) for x, z in draws])
    got = [_fidelity.spearman_and_se(x, z) for x, z in draws[:50]]
    assert got[0][0] == pytest.approx(spearmanr(*draws[0])[0], rel=1e-12)
    se = np.mean([s for _, s in got])
    assert se == pytest.approx(spread, rel=0.15)
    r = float(np.mean([r for r, _ in got]))
    assert (1 - r * r) * np.sqrt(1.06 / (n - 3)) < 0.7 * spread  # the normal-theory formula
    # the path's column is the same figure
    x, z = draws[0]
    assert _fidelity.columns(x, z)["spearman_se"] == pytest.approx(got[0][1], rel=1e-12)
    assert np.isnan(_fidelity.spearman_and_se(x, np.ones(n))[1])


def test_spearman_standard_error_of_an_uncorrelated_score():
    # a score whose ranks are symmetric about the original's middle: Spearman exactly 0, where
    # the influence function is still defined (the covariance's alone); it was NaN there
    n = 32
    a = np.arange(float(n))
    b = (a - (n - 1) / 2) ** 2
    r, se = _fidelity.spearman_and_se(a, b)
    assert r == 0.0
    leave_one_out = np.array([_fidelity.spearman(np.delete(a, i), np.delete(b, i))
                              for i in range(n)])
    jackknife = np.sqrt((n - 1) / n * np.sum((leave_one_out - leave_one_out.mean()) ** 2))
    assert se == pytest.approx(jackknife, rel=0.15)
    assert _fidelity.columns(a, b)["spearman_se"] == pytest.approx(se, rel=1e-12)
