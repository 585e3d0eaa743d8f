"""Data, legacy models and baselines shared by the pruning benchmarks.

Loaders for the credit data sets in ``../shared/data`` (relative to the repository root), the
60/20/20 train/prune/test split, the legacy models (overfit and early-stopped), native helpers
(predict, slice, leaf counts) and every baseline that ``bench_prune.py`` sets beside treeprune:
truncation, native refresh/refit, XGBoost's prune updater, ISLE, small models retrained from
scratch (a leaf-matched search, and a depth-3 XGBoost early-stopped on the train part) and a
depth-3 student distilled on the legacy model's margins.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEED = 0
NTHREAD = 2

XGB_PARAMS = {"objective": "binary:logistic", "eta": 0.05, "max_depth": 6, "tree_method": "hist",
              "eval_metric": "logloss", "nthread": NTHREAD, "seed": SEED, "verbosity": 0}
LGB_PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63,
              "num_threads": NTHREAD, "seed": SEED, "deterministic": True, "verbose": -1}


# -- data --------------------------------------------------------------------------------------

def _read(rel: str) -> pd.DataFrame | None:
    path = DATA / rel
    if not path.exists():
        print(f"!! dataset file {path} is absent: skipping it")
        return None
    return pd.read_csv(path)


def load_taiwan():
    df = _read("taiwan_credit_default/UCI_Credit_Card.csv")
    if df is None:
        return None
    y = df.pop("target").to_numpy(np.float64)
    return df.drop(columns=["ID"]).astype(np.float64), y


def load_heloc():
    df = _read("heloc/heloc_dataset_v1.csv")
    if df is None:
        return None
    y = (df.pop("RiskPerformance") == "Bad").to_numpy(np.float64)
    return df.astype(np.float64), y


def load_german():
    df = _read("german_credit/germancredit.csv")
    if df is None:
        return None
    y = (df.pop("creditability") == "bad").to_numpy(np.float64)
    cats = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    return pd.get_dummies(df, columns=cats, dtype=np.float64).astype(np.float64), y


def load_hmeq():
    df = _read("hmeq/hmeq.csv")
    if df is None:
        return None
    y = df.pop("BAD").to_numpy(np.float64)
    return pd.get_dummies(df, columns=["REASON", "JOB"], dtype=np.float64).astype(np.float64), y


LOADERS = {"taiwan": load_taiwan, "heloc": load_heloc, "german": load_german, "hmeq": load_hmeq}


@dataclass
class Split:
    Xtr: np.ndarray
    ytr: np.ndarray
    Xp: np.ndarray
    yp: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray


def split(X: pd.DataFrame, y: np.ndarray, seed: int = SEED) -> Split:
    """60/20/20 train/prune/test, stratified."""
    from sklearn.model_selection import train_test_split

    Xa = np.ascontiguousarray(X.to_numpy(np.float64))
    idx = np.arange(len(y))
    tr, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=seed)
    pr, te = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return Split(Xa[tr], y[tr], Xa[pr], y[pr], Xa[te], y[te])


# -- native helpers ----------------------------------------------------------------------------

def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def native_predict(lib: str, booster: Any, X: np.ndarray) -> np.ndarray:
    if lib == "xgboost":
        import xgboost as xgb

        return booster.predict(xgb.DMatrix(X))
    return booster.predict(X)


def native_slice(lib: str, booster: Any, k: int) -> Any:
    if lib == "xgboost":
        return booster[:k]
    import lightgbm as lgb

    return lgb.Booster(model_str=booster.model_to_string(num_iteration=k))


def tree_leaves(booster: Any) -> np.ndarray:
    import treeprune as tp

    return np.asarray(tp.load(booster).tree_n_leaves(), dtype=np.int64)


def fit_k(leaves: np.ndarray, budget: int) -> int:
    """The largest k whose first k trees hold at most ``budget`` leaves (at least 1)."""
    return max(1, int(np.searchsorted(np.cumsum(leaves), budget, side="right")))


def train_legacy(lib: str, s: Split, variant: str, n_rounds: int, seed: int = SEED
                 ) -> tuple[Any, float, str]:
    """The legacy model, its training seconds and a note."""
    from sklearn.model_selection import train_test_split

    t = time.perf_counter()
    if variant == "overfit":
        Xf, yf, Xv, yv = s.Xtr, s.ytr, None, None
    else:
        f, v = train_test_split(np.arange(len(s.ytr)), test_size=0.2, stratify=s.ytr,
                                random_state=seed)
        Xf, yf, Xv, yv = s.Xtr[f], s.ytr[f], s.Xtr[v], s.ytr[v]
    if lib == "xgboost":
        import xgboost as xgb

        dtr = xgb.DMatrix(Xf, yf)
        if Xv is None:
            b = xgb.train(XGB_PARAMS, dtr, n_rounds)
            note = "depth 6, eta 0.05"
        else:
            b = xgb.train(XGB_PARAMS, dtr, n_rounds, evals=[(xgb.DMatrix(Xv, yv), "valid")],
                          early_stopping_rounds=50, verbose_eval=False)
            b = b[: b.best_iteration + 1]
            note = f"early-stopped at {b.num_boosted_rounds()}"
    else:
        import lightgbm as lgb

        dtr = lgb.Dataset(Xf, yf)
        if Xv is None:
            b = lgb.train(LGB_PARAMS, dtr, n_rounds)
            note = "63 leaves, lr 0.05"
        else:
            b = lgb.train(LGB_PARAMS, dtr, n_rounds, valid_sets=[lgb.Dataset(Xv, yv, reference=dtr)],
                          callbacks=[lgb.early_stopping(50, verbose=False)])
            best = b.best_iteration or b.current_iteration()
            b = lgb.Booster(model_str=b.model_to_string(num_iteration=best))
            note = f"early-stopped at {best}"
    return b, time.perf_counter() - t, note


# -- baselines ---------------------------------------------------------------------------------

def row(method: str, trees: int, leaves: int, orig_leaves: int, y: np.ndarray, score: np.ndarray,
        seconds: float, note: str = "", ref: str = "") -> dict[str, Any]:
    a = auc(y, score)
    return {"method": method, "ref": ref, "trees": int(trees), "leaves": int(leaves),
            "leaf_share": leaves / orig_leaves, "test_auc": a, "test_gini": 2 * a - 1,
            "seconds": seconds, "note": note}


def baseline_truncate(lib, booster, leaves, budget, s, orig_leaves, ref):
    t = time.perf_counter()
    k = fit_k(leaves, budget)
    sl = native_slice(lib, booster, k)
    sec = time.perf_counter() - t
    out = [row("truncate", k, leaves[:k].sum(), orig_leaves, s.yte, native_predict(lib, sl, s.Xte),
               sec, f"k={k}", ref)]
    if lib == "xgboost":
        import xgboost as xgb

        t = time.perf_counter()
        params = {**XGB_PARAMS, "process_type": "update", "updater": "refresh",
                  "refresh_leaf": True}
        rb = xgb.train(params, xgb.DMatrix(s.Xp, s.yp), k, xgb_model=booster[:k])
        sec = time.perf_counter() - t
        out.append(row("truncate+refresh", k, leaves[:k].sum(), orig_leaves, s.yte,
                       native_predict(lib, rb, s.Xte), sec, f"k={k}", ref))
    else:
        for decay in (0.9, 0.0):
            t = time.perf_counter()
            rb = native_slice(lib, booster, k).refit(s.Xp, s.yp, decay_rate=decay)
            sec = time.perf_counter() - t
            out.append(row(f"truncate+refit d={decay:g}", k, leaves[:k].sum(), orig_leaves,
                           s.yte, native_predict(lib, rb, s.Xte), sec, f"k={k}", ref))
    return out


def _collapse_levels(booster) -> list[tuple[np.ndarray, float]]:
    """Per tree: M(node) for each split = the largest stored gain in its subtree.

    XGBoost's prune updater turns a split into a leaf when both children are leaves and its
    loss_chg < gamma, bottom-up; so a split survives iff M(node) >= gamma, a tree keeps
    1 + #(surviving splits) leaves and keeps a split at all iff M(root) >= gamma.
    """
    df = booster.trees_to_dataframe()
    out = []
    for _, g in df.groupby("Tree", sort=True):
        node = g["Node"].to_numpy()
        is_leaf = (g["Feature"] == "Leaf").to_numpy()
        gain = dict(zip(node, g["Gain"].to_numpy(), strict=True))
        kids = {n: (int(y.split("-")[1]), int(no.split("-")[1]))
                for n, y, no, lf in zip(node, g["Yes"], g["No"], is_leaf, strict=True) if not lf}
        m: dict[int, float] = {}
        root = _subtree_max_gain(0, kids, gain, m)
        out.append((np.array(list(m.values()), dtype=np.float64), root))
    return out


def _subtree_max_gain(n: int, kids: dict, gain: dict, m: dict) -> float:
    if n not in kids:
        return -math.inf
    v = max(gain[n], _subtree_max_gain(kids[n][0], kids, gain, m),
            _subtree_max_gain(kids[n][1], kids, gain, m))
    m[n] = v
    return v


def baseline_prune_updater(booster, budget, s, orig_leaves, ref, levels):
    import xgboost as xgb

    t = time.perf_counter()
    if levels[0] is None:
        levels[0] = _collapse_levels(booster)
    lv = levels[0]
    allm = np.unique(np.concatenate([m for m, _ in lv]))

    def kept(gamma: float) -> int:
        return sum(1 + int((m >= gamma).sum()) for m, root in lv if root >= gamma)

    # smallest gamma (among gain levels) whose surviving leaves fit the budget
    lo, hi = 0, len(allm) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if kept(np.nextafter(allm[mid], np.inf)) <= budget:
            hi = mid
        else:
            lo = mid + 1
    # midway to the next level: the dump's rounded gains must not decide which side a split is on
    gamma = float(0.5 * (allm[lo] + allm[lo + 1]) if lo + 1 < len(allm) else allm[lo] * 1.01 + 1)
    expected = kept(gamma)
    params = {**XGB_PARAMS, "process_type": "update", "updater": "prune", "gamma": gamma}
    pb = xgb.train(params, xgb.DMatrix(s.Xp, s.yp), booster.num_boosted_rounds(),
                   xgb_model=booster.copy())
    sec = time.perf_counter() - t
    nl = tree_leaves(pb)
    nontrivial = nl > 1
    return [row("xgb prune updater", nontrivial.sum(), nl[nontrivial].sum(), orig_leaves, s.yte,
                native_predict("xgboost", pb, s.Xte), sec, f"gamma={gamma:.4g} (predicted {expected} leaves)", ref)]


class Isle:
    """L1 logistic path on per-tree outputs of the prune part (cached fits)."""

    def __init__(self, ens, s: Split):
        from sklearn.svm import l1_min_c

        t = time.perf_counter()
        self.P = ens.predict(s.Xp, output="per_tree")
        self.Pte = ens.predict(s.Xte, output="per_tree")
        self.leaves = np.asarray(ens.tree_n_leaves(), dtype=np.int64)
        self.y = s.yp
        self.c0 = float(l1_min_c(self.P, self.y, loss="log", fit_intercept=True,
                                 intercept_scaling=100.0))
        self.cache: dict[float, Any] = {}
        self.setup = time.perf_counter() - t

    def fit(self, c: float):
        from sklearn.linear_model import LogisticRegression

        if c not in self.cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear",
                                       intercept_scaling=100.0, max_iter=1000)
                m.fit(self.P, self.y)
            nz = np.flatnonzero(m.coef_[0])
            self.cache[c] = (m, nz, int(self.leaves[nz].sum()))
        return self.cache[c]

    def run(self, budget: int, orig_leaves: int, yte: np.ndarray, ref: str):
        t = time.perf_counter()
        # the intercept (scaled by 100) enters first; trees need a much larger C: search wide
        lo, hi = math.log(self.c0), math.log(self.c0 * 1e9)
        best = None
        for _ in range(18):  # largest C whose selected trees fit the budget
            mid = 0.5 * (lo + hi)
            m, nz, lv = self.fit(math.exp(mid))
            if lv <= budget:
                if len(nz) > 0:
                    best = math.exp(mid)
                lo = mid
            else:
                hi = mid
        if best is None:  # even the first tree is over budget: the smallest non-empty model
            best = math.exp(hi)
        m, nz, lv = self.fit(best)
        sec = time.perf_counter() - t + self.setup
        margin = self.Pte[:, nz] @ m.coef_[0][nz] + m.intercept_[0]
        return [row("ISLE L1", len(nz), lv, orig_leaves, yte, margin, sec, f"C={best:.3g}", ref)]


def baseline_retrain(budget: int, s: Split, orig_leaves: int, ref: str, data_equal=None):
    """Small XGBoost from scratch: on the train part, config chosen on the prune part; or, with
    ``data_equal=(fit_idx, judge_idx)``, fitted on treeprune's fit half of the prune part and
    chosen on its judge half (the same rows treeprune sees)."""
    import xgboost as xgb

    t = time.perf_counter()
    if data_equal is None:
        Xf, yf, Xs, ys, method = s.Xtr, s.ytr, s.Xp, s.yp, "retrain small"
    else:
        fi, ji = data_equal
        Xf, yf, Xs, ys = s.Xp[fi], s.yp[fi], s.Xp[ji], s.yp[ji]
        method = "retrain small (prune rows)"
    dtr, ds = xgb.DMatrix(Xf, yf), xgb.DMatrix(Xs)
    best = None
    for depth in (1, 2, 3, 4):
        if 2 ** depth > budget:
            continue
        for eta in (0.1, 0.3):
            n = min(600, max(1, math.ceil(1.5 * budget / 2 ** depth)))
            params = {**XGB_PARAMS, "max_depth": depth, "eta": eta}
            b = xgb.train(params, dtr, n)
            lv = tree_leaves(b)
            k = fit_k(lv, budget)
            b = b[:k]
            a = auc(ys, b.predict(ds))
            if best is None or a > best[0]:
                best = (a, b, k, int(lv[:k].sum()), depth, eta)
    sec = time.perf_counter() - t
    if best is None:
        return []
    a, b, k, lv, depth, eta = best
    return [row(method, k, lv, orig_leaves, s.yte, native_predict("xgboost", b, s.Xte),
                sec, f"depth {depth} eta {eta} (selection AUC {a:.4f})", ref)]




def baseline_retrain_es(budget: int, s: Split, orig_leaves: int, ref: str, depth: int = 3,
                        eta: float = 0.1):
    """A depth-3 XGBoost retrained on the train part, early-stopped (50 rounds) on a stratified
    20% of it, then cut to the first trees that fit ``budget`` leaves (the issue's baseline)."""
    import xgboost as xgb
    from sklearn.model_selection import train_test_split

    t = time.perf_counter()
    f, v = train_test_split(np.arange(len(s.ytr)), test_size=0.2, stratify=s.ytr,
                            random_state=SEED)
    params = {**XGB_PARAMS, "max_depth": depth, "eta": eta}
    b = xgb.train(params, xgb.DMatrix(s.Xtr[f], s.ytr[f]), 2000,
                  evals=[(xgb.DMatrix(s.Xtr[v], s.ytr[v]), "valid")], early_stopping_rounds=50,
                  verbose_eval=False)
    b = b[: b.best_iteration + 1]
    lv = tree_leaves(b)
    k = fit_k(lv, budget)
    sec = time.perf_counter() - t
    return [row(f"retrain depth {depth} early-stopped", k, int(lv[:k].sum()), orig_leaves, s.yte,
                native_predict("xgboost", b[:k], s.Xte), sec,
                f"stopped at {b.num_boosted_rounds()} rounds, cut to {k}", ref)]


def distilled_student(booster: Any, s: Split, depth: int = 3, seed: int = SEED):
    """A depth-``depth`` student of the legacy model fitted on its margins over the prune part
    (no labels), early-stopped on an inner split; returns (student Ensemble, seconds)."""
    import treeprune as tp
    from treeprune.passes.growing import distill

    t = time.perf_counter()
    student = distill(tp.load(booster), s.Xp, max_depth=depth, n_estimators=600,
                      learning_rate=0.1, random_state=seed, n_jobs=NTHREAD)
    return student, time.perf_counter() - t


def cut_to_leaves(ens: Any, budget: int) -> Any:
    """The longest prefix of ``ens`` (whole rounds) whose leaves fit ``budget``."""
    from treeprune.trees import prefix

    per = max(1, ens.n_groups)
    leaves = np.asarray(ens.tree_n_leaves(), dtype=np.int64)
    k = fit_k(leaves, budget)
    k = max(per, k - k % per)
    return prefix(ens, k)
