"""The orchestrator: lossless passes, then a path of data-driven candidates, judged on held-out rows.

Decisions (which trees, which subtrees, leaf values) are made on one part of the user's data (the
*fit* part); the stopping point is judged on the other (the *judge* part), never on rows that were
used to fit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._advice import prune_warnings
from ._validation import check_labels, check_weights
from .data import binary_labels, to_matrix
from .ensemble import Ensemble
from .errors import DataError, PruneError
from .io import load
from .packed import pack
from .passes import datadriven
from .passes.lossless import lossless

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = {"auc": True, "gini": True, "ks": True, "loss": False}
TREE_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
LEAF_FRACTIONS = (1.0, 0.5, 0.25, 0.125)


@dataclass
class PruneResult:
    """What :func:`prune` returns.

    Attributes
    ----------
    model : Ensemble
        The chosen pruned ensemble (its ``history`` lists every pass).
    original : Ensemble
        The ensemble as loaded.
    path : pandas.DataFrame
        Every candidate configuration: ``n_trees``, ``n_leaves`` (means over folds with
        ``cv >= 2``), ``refit`` (leaves refitted or not), ``leaf_fraction`` (share of the selected
        trees' leaves kept), ``metric_fit``, ``metric_judge`` (rows not fitted), ``se_diff``
        (standard error of its difference with the original there), ``chosen``.
    metric : str
        The metric that chose (``auc``, ``gini``, ``ks`` or ``loss``).
    original_metric : float
        The original model's metric on the judge rows.
    timings : dict
        Seconds per stage.
    params : dict
        Everything needed to reproduce the run (tolerance/budget, random_state, split sizes...).
    warnings : list of str
        Plain-language warnings about the outcome (also logged): too few judge rows for the
        tolerance, a pruned model that beats the original by more than its standard error, or
        nothing pruned (with the closest candidate and what to try).
    """

    model: Ensemble
    original: Ensemble
    path: pd.DataFrame
    metric: str
    original_metric: float
    timings: dict[str, float]
    params: dict[str, Any]
    fit_index: np.ndarray = field(repr=False)
    judge_index: np.ndarray = field(repr=False)
    # with cv=1: every candidate, and the held-out rows (None with cross-fitting, whose final
    # model is fitted on every row)
    candidates: list[Ensemble] = field(default_factory=list, repr=False)
    judge_X: Any = field(default=None, repr=False)
    judge_y: Any = field(default=None, repr=False)
    #: what the user should know about how far these numbers can be trusted (see
    #: :func:`treeprune._advice.prune_warnings`): small judge samples, a suspicious win, nothing
    #: pruned and why
    warnings: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> int:
        """Row of :attr:`path` that was chosen."""
        return int(np.flatnonzero(self.path["chosen"].to_numpy())[0])

    @property
    def chosen_metric(self) -> float:
        return float(self.path["metric_judge"].iloc[self.chosen])

    def summary(self) -> str:
        o, m = self.original, self.model
        return (
            f"pruned {o.n_trees} trees / {o.n_leaves} leaves -> {m.n_trees} trees / "
            f"{m.n_leaves} leaves ({m.n_leaves / max(o.n_leaves, 1):.1%} of the leaves); "
            f"{self.metric} on the {len(self.judge_index):,} judge rows that chose it "
            f"{self.original_metric:.5f} -> {self.chosen_metric:.5f} (not a test: check on "
            f"other rows) in {self.timings.get('total', float('nan')):.2f}s"
        )

    def __str__(self) -> str:
        return self.summary()

    def report(self, path: Any, X: Any = None, y: Any = None, format: str | None = None) -> Any:
        """Write the change report (HTML or markdown, by suffix) for this result."""
        from .report import write_report

        return write_report(self, path, X=X, y=y, format=format)


def evaluate(ens: Ensemble, metric: str, X: np.ndarray, y: np.ndarray,
             sample_weight: np.ndarray | None = None) -> float:
    """The metric of ``ens`` on (X, y); margins give the same AUC/KS as probabilities."""
    margin = ens.predict(X, output="margin")
    return score_margin(ens, metric, margin, y, sample_weight)


def score_margin(ens: Ensemble, metric: str, margin: np.ndarray, y: np.ndarray,
                 sample_weight: np.ndarray | None = None) -> float:
    if metric in ("auc", "gini", "ks"):
        from . import metrics

        score = {"auc": metrics.auc, "gini": metrics.gini, "ks": metrics.ks}[metric]
        return score(y, margin, sample_weight)
    return ens.objective.loss_value(y, margin, sample_weight)


def _constraints(ens: Ensemble, given: Any) -> tuple[int, ...]:
    if isinstance(given, dict):
        names = list(ens.feature_names)
        unknown = [k for k in given if k not in names]
        if unknown:
            raise PruneError(f"monotone_constraints names unknown features: {unknown}")
        out = [0] * ens.n_features
        for k, v in given.items():
            out[names.index(k)] = int(v)
    else:
        out = [int(v) for v in given]
        if len(out) != ens.n_features:
            raise PruneError(f"monotone_constraints has {len(out)} entries for "
                             f"{ens.n_features} features")
    if any(v not in (-1, 0, 1) for v in out):
        raise PruneError("monotone constraints must be -1, 0 or +1")
    return tuple(out)


def _split(y: np.ndarray, stratify: bool, judge_fraction: float, random_state: int
           ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strat = y if stratify and len(np.unique(y)) > 1 and np.bincount(
        y.astype(np.int64)).min() >= 2 else None
    fit, judge = train_test_split(idx, test_size=judge_fraction, random_state=random_state,
                                  stratify=strat)
    return np.sort(fit), np.sort(judge)


def _refuse_dask(*inputs: Any) -> None:
    """Pruning needs its rows in memory; say how to get a sample from a dask collection."""
    from .scaleout import is_dask_collection

    if any(is_dask_collection(v) for v in inputs):
        raise DataError(
            "prune needs in-memory data, not dask collections; prune on a sample that fits "
            "(X.sample(frac=..., random_state=0).compute() and the same rows of y), then check "
            "the pruned model on the whole data with tp.compare, which accepts dask collections"
        )


def prune(
    model: Any,
    X: Any,
    y: Any,
    *,
    tolerance: float | None = None,
    max_leaves: int | None = None,
    max_trees: int | None = None,
    metric: str | None = None,
    sample_weight: Any = None,
    cv: int = 1,
    judge_fraction: float = 0.5,
    z: float = 1.0,
    l2: float = 50.0,
    n_rounds: int = 10,
    max_selected: int = 128,
    random_state: int = 0,
    positive_label: Any = None,
    monotone_constraints: Any = None,
    device: str = "cpu",
    progress: bool = False,
) -> PruneResult:
    """Prune ``model`` to the smallest ensemble within ``tolerance``, or the best within a budget.

    Parameters
    ----------
    model : Ensemble, path or native model
        What :func:`treeprune.load` accepts.
    X, y : validation data (not the training set) and labels.
    tolerance : float, optional
        Allowed loss of ``metric`` on held-out rows (absolute: 0.001 AUC). Default 0.001 when no
        budget is given.
    max_leaves, max_trees : int, optional
        A size budget instead: the best candidate on held-out rows within it.
    metric : {"auc", "gini", "ks", "loss"}, optional
        Default ``"auc"`` for binary objectives, ``"loss"`` (the objective's) otherwise.
    sample_weight : array-like, optional
    cv : int
        1 (default): one split into fit and judge rows (``judge_fraction``); every candidate and
        the held-out rows stay in the result. ``cv >= 2``: cross-fitting, every configuration
        fitted on all but one fold and judged on it, its metric taken over all rows out of fold;
        the chosen configuration is then fitted on all rows (about ``2 * cv`` times slower).
    judge_fraction : float
        With ``cv=1``, the share of rows held out to judge candidates (stratified for
        classification).
    z : float
        Guard against luck: with a tolerance, a candidate must be within it by ``z`` standard
        errors of its paired difference with the original on the judged rows (DeLong for AUC and
        Gini, per-row loss differences for ``loss``; none for ``ks``). Many small candidates are
        compared on a few thousand rows, and without it the smallest one that was lucky on the
        judge rows wins (seen on HELOC: +0.004 judged, -0.017 on test). ``z=0`` turns it off.
    l2 : float
        L2 penalty of the leaf refits and collapses, pulling new values towards the old ones
        (XGBoost ``reg_lambda`` units).
    n_rounds : int
        Newton cycles of each leaf refit.
    max_selected : int
        Longest forward-selection path (trees). 128 halves the time of 256 on an 800-tree model
        and no candidate above 64 trees was chosen in the benchmarks; raise it for budgets or
        tolerances that need more trees.
    random_state : int
        Seeds the fit/judge split; the result is deterministic for a given value.
    positive_label : optional
        For labels that are not 0/1 numbers (``"good"``/``"bad"``): the value that counts as the
        event, coded 1; every other value is 0.
    monotone_constraints : sequence of int or dict, optional
        Constraints to keep (+1 increasing, -1 decreasing, 0 none), per feature or as
        ``{feature_name: direction}``. By default those stored with the model; XGBoost model
        *files* do not store them (only a Booster's config does), so pass them here for a file.
    device : {"cpu", "cuda", "auto"}
        Where leaf refits run.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    PruneResult
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    _refuse_dask(X, y, sample_weight)
    ens = load(model)
    if monotone_constraints is not None:
        ens = ens.replace(monotone_constraints=_constraints(ens, monotone_constraints))
    if metric is None:
        metric = "auc" if ens.objective.is_binary else "loss"
    if metric not in HIGHER_IS_BETTER:
        raise PruneError(f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}")
    if metric != "loss" and not ens.objective.is_binary:
        raise PruneError(f"metric {metric!r} needs a binary objective; use metric='loss'")
    if tolerance is None and max_leaves is None and max_trees is None:
        tolerance = 0.001
    if tolerance is not None and (not np.isfinite(tolerance) or tolerance < 0):
        raise PruneError(f"tolerance must be a non-negative number, got {tolerance}")
    if tolerance is not None and (max_leaves is not None or max_trees is not None):
        raise PruneError("give either tolerance or a budget (max_leaves / max_trees), not both")
    # a budget of the model's own size is allowed: no constraint, the best candidate wins
    if max_leaves is not None and not 1 <= int(max_leaves) <= ens.n_leaves:
        raise PruneError(f"max_leaves={max_leaves} must be between 1 and the model's "
                         f"{ens.n_leaves} leaves")
    if max_trees is not None and not 1 <= int(max_trees) <= ens.n_trees:
        raise PruneError(f"max_trees={max_trees} must be between 1 and the model's "
                         f"{ens.n_trees} trees")
    if positive_label is not None and not ens.objective.is_binary:
        raise PruneError(f"positive_label applies to binary models; this one is "
                         f"{ens.objective.name!r}")
    if int(cv) != cv or cv < 1:
        raise PruneError(f"cv must be a whole number of folds >= 1, got {cv}")
    cv = int(cv)
    if not 0.05 <= judge_fraction <= 0.95:
        raise PruneError(f"judge_fraction must be within [0.05, 0.95], got {judge_fraction}")
    from .kernels.device import resolve_device

    device = resolve_device(device)

    p = pack(ens)
    Xm = to_matrix(ens, X, p.dtype)
    n = Xm.shape[0]
    if n == 0:
        raise DataError("the data has no rows")
    yv = check_labels(binary_labels(y, positive_label), n, ens.objective)
    if n < 20:
        raise DataError(f"pruning needs at least 20 rows to fit and judge on; got {n}")
    w = check_weights(sample_weight, n)
    stratify = ens.objective.is_binary or ens.objective.is_multiclass
    if cv >= 2:
        folds = _folds(yv, stratify, cv, random_state)
    else:
        folds = [_split(yv, stratify, judge_fraction, random_state)]
    for fit_idx, judge_idx in folds:
        if ens.objective.is_binary and (len(np.unique(yv[fit_idx])) < 2
                                        or len(np.unique(yv[judge_idx])) < 2):
            raise DataError("both classes must appear in every part of the fit/judge split")

    t = time.perf_counter()
    base_ens = lossless(ens)
    timings["lossless"] = time.perf_counter() - t
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    grid_args = {"max_leaves": max_leaves, "max_trees": max_trees, "l2": l2,
                 "n_rounds": n_rounds, "device": device, "max_selected": max_selected}

    # every candidate configuration is scored on rows its own fit never saw: out-of-fold margins
    t = time.perf_counter()
    oof: dict[tuple, np.ndarray] = {}
    fit_metric: dict[tuple, list[float]] = {}
    sizes: dict[tuple, list[tuple[int, int]]] = {}
    kept: dict[tuple, Ensemble] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(folds), desc="pruning", unit="fold", leave=False)
    for fit_idx, judge_idx in folds:
        Xf, yf = Xm[fit_idx], yv[fit_idx]
        wf = None if w is None else w[fit_idx]
        for key, cand in _candidates(base_ens, Xf, yf, wf, **grid_args):
            margin = cand.predict(Xm[judge_idx], output="margin")
            if key not in oof:
                oof[key] = np.full((n, *margin.shape[1:]), np.nan)
            oof[key][judge_idx] = margin
            fit_metric.setdefault(key, []).append(evaluate(cand, metric, Xf, yf, wf))
            sizes.setdefault(key, []).append((cand.n_trees, cand.n_leaves))
            if len(folds) == 1:
                kept[key] = cand
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    timings["candidates"] = time.perf_counter() - t

    judged = np.unique(np.concatenate([j for _, j in folds]))
    yj = yv[judged]
    wj = None if w is None else w[judged]
    original_margin = ens.predict(Xm[judged], output="margin")
    original_metric = score_margin(ens, metric, original_margin, yj, wj)
    rows: list[dict[str, Any]] = []
    keys: list[tuple] = []
    for key, margins in oof.items():
        if len(sizes[key]) < len(folds):  # a budget that did not exist in every fold
            continue
        fold_sizes = np.array(sizes[key])
        rows.append({"n_trees": int(round(fold_sizes[:, 0].mean())),
                     "n_leaves": int(round(fold_sizes[:, 1].mean())),
                     "refit": key[2], "leaf_fraction": key[1],
                     "metric_fit": float(np.mean(fit_metric[key])),
                     "metric_judge": score_margin(ens, metric, margins[judged], yj, wj),
                     "se_diff": paired_se(ens, metric, margins[judged], original_margin, yj)})
        keys.append(key)

    table = pd.DataFrame(rows)
    choice = _choose(table, original_metric, sign, tolerance, max_leaves, max_trees, z)
    t = time.perf_counter()
    if choice < 0:
        rows.append({"n_trees": base_ens.n_trees, "n_leaves": base_ens.n_leaves, "refit": False,
                     "leaf_fraction": 1.0,
                     "metric_fit": float("nan"),
                     "metric_judge": evaluate(base_ens, metric, Xm[judged], yj, wj),
                     "se_diff": 0.0})
        table = pd.DataFrame(rows)
        choice = len(table) - 1
        chosen = base_ens
    elif len(folds) == 1:
        chosen = kept[keys[choice]]
    else:
        # the configuration chosen out of fold, fitted once more on every row
        final = dict(_candidates(base_ens, Xm, yv, w, only=keys[choice], **grid_args))
        chosen = final[keys[choice]]
    timings["final_fit"] = time.perf_counter() - t
    table["chosen"] = False
    table.loc[choice, "chosen"] = True
    timings["total"] = time.perf_counter() - t_start
    params = {"tolerance": tolerance, "max_leaves": max_leaves, "max_trees": max_trees,
              "metric": metric, "cv": cv, "judge_fraction": judge_fraction if cv < 2 else None,
              "l2": l2, "n_rounds": n_rounds, "max_selected": max_selected,
              "random_state": random_state, "device": device, "n_rows": n,
              "monotone_constraints": list(ens.monotone_constraints)}
    single = len(folds) == 1
    warnings = prune_warnings(table, choice, original_metric, metric, sign > 0, tolerance, z,
                              len(judged), fell_back=chosen is base_ens)
    for message in warnings:
        log.warning(message)
    return PruneResult(model=chosen, original=ens, path=table, metric=metric,
                       original_metric=original_metric, timings=timings, params=params,
                       fit_index=folds[0][0] if single else np.arange(n),
                       judge_index=folds[0][1] if single else judged,
                       candidates=[kept[k] for k in keys] if single else [chosen],
                       judge_X=Xm[judged] if single else None,
                       judge_y=yj if single else None, warnings=warnings)


def paired_se(ens: Ensemble, metric: str, margin: np.ndarray, reference: np.ndarray,
              y: np.ndarray) -> float:
    """Standard error of ``metric(margin) - metric(reference)`` on the same rows (unweighted).

    AUC and Gini: DeLong's variance for two correlated AUCs. ``loss``: the standard error of the
    mean per-row loss difference. ``ks``: not available (0).
    """
    from scipy.stats import rankdata

    if metric in ("auc", "gini"):
        pos, neg = y == 1, y == 0
        m, k = int(pos.sum()), int(neg.sum())
        if m < 2 or k < 2:
            return 0.0
        v10, v01 = [], []
        for s in (margin, reference):
            all_ranks = rankdata(s)
            v10.append((all_ranks[pos] - rankdata(s[pos])) / k)
            v01.append(1.0 - (all_ranks[neg] - rankdata(s[neg])) / m)
        d10 = v10[0] - v10[1]
        d01 = v01[0] - v01[1]
        var = d10.var(ddof=1) / m + d01.var(ddof=1) / k
        return float(np.sqrt(max(var, 0.0)) * (2.0 if metric == "gini" else 1.0))
    if metric == "loss":
        diff = ens.objective.row_loss(y, margin) - ens.objective.row_loss(y, reference)
        return float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return 0.0


def _folds(y: np.ndarray, stratify: bool, cv: int, random_state: int
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if stratify and np.bincount(y.astype(np.int64)).min() >= cv:
        splitter: Any = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    else:
        splitter = KFold(cv, shuffle=True, random_state=random_state)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(y)), y)]


def _choose(table: pd.DataFrame, original_metric: float, sign: float, tolerance: float | None,
            max_leaves: int | None, max_trees: int | None, z: float = 0.0) -> int:
    """Row of the smallest candidate within tolerance by ``z`` standard errors (or the best
    within budget); -1: none."""
    if table.empty:
        return -1
    within = np.ones(len(table), dtype=bool)
    if max_leaves is not None:
        within &= table["n_leaves"].to_numpy() <= max_leaves
    if max_trees is not None:
        within &= table["n_trees"].to_numpy() <= max_trees
    judge = sign * table["metric_judge"].to_numpy()
    if tolerance is not None:
        margin_of_error = z * np.nan_to_num(table["se_diff"].to_numpy())
        ok = within & (judge - sign * original_metric - margin_of_error >= -tolerance)
        if not ok.any():
            log.warning("no candidate is within tolerance %.4g; keeping the lossless model",
                        tolerance)
            return -1
        order = np.lexsort((-judge, table["n_leaves"].to_numpy()))
        return int(next(i for i in order if ok[i]))
    if not within.any():
        raise PruneError("no candidate fits the budget; raise max_leaves / max_trees")
    return int(np.argmax(np.where(within, judge, -np.inf)))


def _candidates(base_ens: Ensemble, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, *,
                max_leaves: int | None, max_trees: int | None, l2: float, n_rounds: int,
                device: str, max_selected: int, only: tuple | None = None):
    """Yield ``((n_trees, leaf_fraction, refit), ensemble)`` over the grid, fitted on (X, y).

    ``leaf_fraction`` is the share of the selected trees' leaves kept by the data-gain collapse
    (or ``"budget"`` for exactly ``max_leaves``); ``only`` builds one configuration.
    """
    longest = only[0] if only is not None else min(max_selected, base_ens.n_trees)
    path = datadriven.forward_selection_path(base_ens, X, y, longest, w)
    grid = [k for k in TREE_GRID if k <= len(path)]
    if max_trees is not None:
        grid = [k for k in grid if k < max_trees] + [min(int(max_trees), len(path))]
    grid = sorted(set(grid))
    if only is not None:
        grid = [min(only[0], len(path))]
    for k in grid:
        selected = datadriven.take_selection(base_ens, path, k)
        # below two leaves per tree some trees turn into constants: pointless candidates
        budgets: list[tuple[Any, int]] = []
        for f in LEAF_FRACTIONS:
            b = max(2 * k, int(round(selected.n_leaves * f)))
            if f == 1.0 or b < selected.n_leaves:
                budgets.append((f, min(b, selected.n_leaves)))
        if max_leaves is not None:
            budgets = [(f, b) for f, b in budgets if b <= max_leaves]
            if selected.n_leaves > max_leaves >= 2 * k:
                budgets.append(("budget", int(max_leaves)))
        for label, budget in budgets:
            if only is not None and only[1] != label:
                continue
            collapsed = selected
            if budget < collapsed.n_leaves:
                collapsed = datadriven.collapse_by_data(collapsed, X, y, budget, w, l2=l2)
            # with and without the leaf refit: on small samples the refit can overfit the fit
            # rows, and the held-out rows decide which one to trust
            for refit in (False, True):
                if only is not None and only[2] != refit:
                    continue
                cand = _refit(collapsed, X, y, w, l2, n_rounds, device) if refit else collapsed
                yield (k, label, refit), cand


def _refit(ens: Ensemble, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, l2: float,
           n_rounds: int, device: str) -> Ensemble:
    return datadriven.refit_leaves(ens, X, y, w, l2=l2, n_rounds=n_rounds, device=device)


__all__ = ["prune", "PruneResult", "evaluate", "score_margin", "paired_se"]
