"""Where pruning stops: splitting the rows, standard errors, and the rule that picks a candidate.

The rows are split three ways. *Fit* rows make every decision inside a candidate (which trees,
which subtrees, leaf values, new trees); *judge* rows compare the candidates; *confirm* rows are
never used for any decision and give the honest estimate of the chosen model's metric that the
result reports. With cross-fitting the fit and judge roles rotate over folds of the non-confirm
rows.

Picking the smallest of many candidates on the same judge rows favours the lucky ones. The rule
therefore asks each candidate to clear the tolerance by ``z_sel`` standard errors of its paired
difference with the original, where ``z_sel`` is Bonferroni-adjusted for the number of candidate
*families* searched: within a family the candidates form one nested size path whose neighbours
share most of their model (they pass or fail together), while the families are separate searches.
A Bonferroni count over every candidate (about 150) was measured to keep the lossless model on
every tuned credit model tried, and no adjustment let a 0.005 loss through on one of five splits.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import PruneError

log = logging.getLogger(__name__)


def check_splits(cv: Any, judge_fraction: float, confirm_fraction: float) -> None:
    """Raise ``PruneError`` unless the row-splitting options of :func:`treeprune.prune` are
    usable."""
    if cv != "auto" and (isinstance(cv, bool) or not isinstance(cv, (int, np.integer))
                         or cv < 1):
        raise PruneError(f"cv must be 'auto' or a whole number of folds >= 1, got {cv!r}")
    if not 0.05 <= judge_fraction <= 0.95:
        raise PruneError(f"judge_fraction must be within [0.05, 0.95], got {judge_fraction}")
    if not 0 <= confirm_fraction <= 0.5:
        raise PruneError(f"confirm_fraction must be within [0, 0.5], got {confirm_fraction}")


def split_confirm(n: int, y: np.ndarray | None, stratify: bool, fraction: float,
                  random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept for decisions and rows held back to confirm (``fraction`` of them)."""
    idx = np.arange(n)
    if fraction <= 0:
        return idx, idx[:0]
    from sklearn.model_selection import train_test_split

    strat = y if stratify and _stratifiable(y, 2) else None
    # a different stream from the fit/judge split, so the two are not aligned
    keep, confirm = train_test_split(idx, test_size=fraction, random_state=random_state + 7919,
                                     stratify=strat)
    return np.sort(keep), np.sort(confirm)


def _stratifiable(y: np.ndarray | None, k: int) -> bool:
    if y is None or len(np.unique(y)) < 2:
        return False
    return bool(np.all(y == np.round(y)) and y.min() >= 0
                and np.bincount(y.astype(np.int64)).min() >= k)


def split(y: np.ndarray | None, n: int, stratify: bool, judge_fraction: float,
          random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """One fit/judge split of ``n`` rows (positions), stratified for classification."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    strat = y if stratify and _stratifiable(y, 2) else None
    fit, judge = train_test_split(idx, test_size=judge_fraction, random_state=random_state,
                                  stratify=strat)
    return np.sort(fit), np.sort(judge)


def folds(y: np.ndarray | None, n: int, stratify: bool, cv: int, random_state: int
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``cv`` cross-fitting folds of ``n`` rows: (fit, judge) positions of each."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if stratify and _stratifiable(y, cv):
        splitter: Any = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    else:
        splitter = KFold(cv, shuffle=True, random_state=random_state)
    labels = y if y is not None else np.zeros(n)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), labels)]


# --------------------------------------------------------------------------- standard errors
def _delong_components(s: np.ndarray, pos: np.ndarray, neg: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import rankdata

    m, k = int(pos.sum()), int(neg.sum())
    all_ranks = rankdata(s)
    v10 = (all_ranks[pos] - rankdata(s[pos])) / k
    v01 = 1.0 - (all_ranks[neg] - rankdata(s[neg])) / m
    return v10, v01


def auc_and_se(margin: np.ndarray, y: np.ndarray, reference: np.ndarray | None = None
               ) -> tuple[float, float]:
    """Unweighted AUC of ``margin`` (ties count a half) and DeLong's standard error of it, or of
    its difference with ``reference`` on the same rows."""
    pos, neg = y == 1, y == 0
    m, k = int(pos.sum()), int(neg.sum())
    if m < 1 or k < 1:
        return math.nan, 0.0
    v10, v01 = _delong_components(margin, pos, neg)
    auc = float(v10.mean())
    if m < 2 or k < 2:
        return auc, 0.0
    if reference is not None:
        r10, r01 = _delong_components(reference, pos, neg)
        v10, v01 = v10 - r10, v01 - r01
    var = v10.var(ddof=1) / m + v01.var(ddof=1) / k
    return auc, float(math.sqrt(max(var, 0.0)))


class PairedAUC:
    """:func:`auc_and_se` against one reference on fixed rows, the reference's part computed
    once (a pruning path compares hundreds of candidates with the same original)."""

    def __init__(self, reference: np.ndarray, y: np.ndarray) -> None:
        self.pos, self.neg = y == 1, y == 0
        self.m, self.k = int(self.pos.sum()), int(self.neg.sum())
        if self.m >= 1 and self.k >= 1:
            self.r10, self.r01 = _delong_components(reference, self.pos, self.neg)

    def __call__(self, margin: np.ndarray) -> tuple[float, float]:
        if self.m < 1 or self.k < 1:
            return math.nan, 0.0
        v10, v01 = _delong_components(margin, self.pos, self.neg)
        auc = float(v10.mean())
        if self.m < 2 or self.k < 2:
            return auc, 0.0
        var = (v10 - self.r10).var(ddof=1) / self.m + (v01 - self.r01).var(ddof=1) / self.k
        return auc, float(math.sqrt(max(var, 0.0)))


def auc_se(margin: np.ndarray, y: np.ndarray, reference: np.ndarray | None = None) -> float:
    """DeLong standard error of an AUC, or of the difference of two AUCs on the same rows."""
    return auc_and_se(margin, y, reference)[1]


def paired_se(objective: Any, metric: str, margin: np.ndarray, reference: np.ndarray,
              y: np.ndarray) -> float:
    """Standard error of ``metric(margin) - metric(reference)`` on the same rows (unweighted).

    AUC and Gini: DeLong's variance for two correlated AUCs. ``loss``: the standard error of the
    mean per-row loss difference. ``ks``: not available (0).
    """
    if metric in ("auc", "gini"):
        return auc_se(margin, y, reference) * (2.0 if metric == "gini" else 1.0)
    if metric == "loss":
        diff = objective.row_loss(y, margin) - objective.row_loss(y, reference)
        return float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return 0.0


def metric_se(objective: Any, metric: str, margin: np.ndarray, y: np.ndarray) -> float:
    """Standard error of one model's ``metric`` on these rows (NaN for ``ks``)."""
    if metric in ("auc", "gini"):
        return auc_se(margin, y) * (2.0 if metric == "gini" else 1.0)
    if metric == "loss":
        rows = objective.row_loss(y, margin)
        return float(rows.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else 0.0
    return math.nan


# --------------------------------------------------------------------------- the rule
def selection_z(z: float, n_compared: int) -> float:
    """``z`` adjusted for comparing ``n_compared`` candidates (Bonferroni on ``Phi(-z)``)."""
    if z <= 0 or n_compared <= 1:
        return float(z)
    from scipy.stats import norm

    adjusted = float(norm.isf(float(norm.sf(z)) / n_compared))
    if not math.isfinite(adjusted):
        # the tail underflows (z ~ 40 and up): there Phi(-z) ~ phi(z) / z, so dividing it by n
        # adds about 2 ln n to z squared
        adjusted = math.sqrt(z * z + 2.0 * math.log(n_compared))
    return adjusted


#: the near-best bound is the one-standard-error rule of model selection (Breiman et al. 1984,
#: CART; glmnet's lambda.1se): the smallest model within one standard error of the best
ONE_SE = 1.0


def eligible(table: pd.DataFrame, max_leaves: int | None, max_trees: int | None,
             max_psi: float | None) -> np.ndarray:
    """Candidates within the budget and the PSI limit (a missing PSI, multiclass, passes).

    The PSI limit is held by one standard error (column ``psi_se``, where present): the
    smallest candidates under the limit sit just below it on the judged rows, and without the
    margin their PSI on new rows lands above the limit about half the time.
    """
    within = np.ones(len(table), dtype=bool)
    if max_leaves is not None:
        within &= table["n_leaves"].to_numpy() <= max_leaves
    if max_trees is not None:
        within &= table["n_trees"].to_numpy() <= max_trees
    if max_psi is not None and "psi" in table:
        upper = table["psi"].to_numpy(dtype=float)
        if "psi_se" in table:
            upper = upper + np.nan_to_num(table["psi_se"].to_numpy(dtype=float))
        within &= ~(upper > max_psi)
    return within


def signed_judge(table: pd.DataFrame, sign: float) -> np.ndarray:
    """The judged metric, higher is better, ``-inf`` where it could not be computed."""
    judge = sign * table["metric_judge"].to_numpy(dtype=float)
    return np.where(np.isfinite(judge), judge, -np.inf)


def best_row(judge: np.ndarray, within: np.ndarray) -> int:
    """The best judged candidate among ``within`` (the stopping rule's and ``se_best``'s)."""
    return int(np.argmax(np.where(within, judge, -np.inf)))


def near_best(table: pd.DataFrame, judge: np.ndarray, within: np.ndarray, original: float,
              z_sel: float, tolerance: float) -> np.ndarray:
    """Candidates within ``tolerance`` of the best one by one standard error of their paired
    difference with it (column ``se_best``), once the best beats the original by more than
    ``z_sel`` standard errors; all True otherwise.

    An original that candidates beat beyond their standard error overfits, and "no worse than
    the original" then admits small candidates far below what pruning found (a 94-leaf model
    where one of 1,000 leaves scores 0.015 AUC better). The best one's judged figure is the
    maximum of many and so optimistic: this bound only ever asks for more.
    """
    best = best_row(judge, within)
    se = table["se_diff"].to_numpy(dtype=float)
    if not judge[best] - original - z_sel * np.nan_to_num(se[best]) > 0:
        return np.ones(len(table), dtype=bool)
    se_best = np.nan_to_num(table["se_best"].to_numpy(dtype=float))
    return judge - judge[best] + ONE_SE * se_best >= -tolerance


def admissible(table: pd.DataFrame, original_metric: float, sign: float, tolerance: float,
               within: np.ndarray, z_sel: float) -> np.ndarray:
    """Candidates among ``within`` that the tolerance rule may choose apart from their own
    guard (:func:`near_best` where the table has ``se_best``)."""
    if "se_best" not in table:
        return within
    return within & near_best(table, signed_judge(table, sign), within, original_metric * sign,
                              z_sel, tolerance)


def choose(table: pd.DataFrame, original_metric: float, sign: float, tolerance: float | None,
           max_leaves: int | None, max_trees: int | None, z: float = 0.0,
           adjust: bool = True, max_psi: float | None = None) -> tuple[int, float]:
    """Row of the chosen candidate and the ``z`` it was held to; row -1: none qualifies.

    With a tolerance: the smallest candidate (fewest leaves, then best judged) whose judged
    metric is within ``tolerance`` of the original's by ``z_sel`` standard errors of the paired
    difference (``se_diff``), ``z_sel`` = :func:`selection_z` over the families in the table's
    ``family`` column when ``adjust``. With a budget: the best judged candidate within it.
    ``max_psi``: only candidates whose score distribution on the judged rows (column ``psi``,
    against the original) stays within it by one standard error (``psi_se``) are eligible; a
    missing PSI (multiclass) passes.
    With a column ``se_best`` (standard error of each candidate's difference with the best
    judged one) and a best candidate that beats the original beyond ``z_sel`` standard errors,
    the choice must also be within ``tolerance`` of that best (:func:`near_best`).
    """
    if table.empty:
        if tolerance is None:
            raise PruneError("no candidate fits the budget; raise max_leaves / max_trees")
        return -1, float(z)
    within = eligible(table, max_leaves, max_trees, max_psi)
    judge = signed_judge(table, sign)
    if tolerance is not None:
        n_searches = table.loc[within, "family"].nunique() if "family" in table else 1
        z_sel = selection_z(z, int(n_searches)) if adjust else float(z)
        margin_of_error = z_sel * np.nan_to_num(table["se_diff"].to_numpy(dtype=float))
        ok = (admissible(table, original_metric, sign, tolerance, within, z_sel)
              & (judge - sign * original_metric - margin_of_error >= -tolerance))
        if not ok.any():
            log.warning("no candidate is within tolerance %.4g; keeping the lossless model",
                        tolerance)
            return -1, z_sel
        order = np.lexsort((-judge, table["n_leaves"].to_numpy()))
        return int(next(i for i in order if ok[i])), z_sel
    if not within.any():
        what = " with PSI within max_psi" if max_psi is not None else ""
        raise PruneError(f"no candidate fits the budget{what}; raise max_leaves / max_trees"
                         + (" or max_psi" if max_psi is not None else ""))
    return best_row(judge, within), float(z)
