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

from .data import to_matrix
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
        Every candidate: ``n_trees``, ``n_leaves``, ``refit`` (leaves refitted or not),
        ``metric_fit``, ``metric_judge``, ``chosen``.
    metric : str
        The metric that chose (``auc``, ``gini``, ``ks`` or ``loss``).
    original_metric : float
        The original model's metric on the judge rows.
    timings : dict
        Seconds per stage.
    params : dict
        Everything needed to reproduce the run (tolerance/budget, random_state, split sizes...).
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
    candidates: list[Ensemble] = field(default_factory=list, repr=False)
    judge_X: Any = field(default=None, repr=False)
    judge_y: Any = field(default=None, repr=False)

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
            f"{self.metric} on held-out rows {self.original_metric:.5f} -> "
            f"{self.chosen_metric:.5f} in {self.timings.get('total', float('nan')):.2f}s"
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
    from sklearn.metrics import roc_auc_score, roc_curve

    if metric in ("auc", "gini", "ks"):
        if metric == "ks":
            fpr, tpr, _ = roc_curve(y, margin, sample_weight=sample_weight)
            return float(np.max(tpr - fpr))
        auc = float(roc_auc_score(y, margin, sample_weight=sample_weight))
        return auc if metric == "auc" else 2 * auc - 1
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


def _check_labels(ens: Ensemble, y: np.ndarray) -> None:
    o = ens.objective
    if not np.all(np.isfinite(y)):
        raise DataError("labels contain NaN or infinite values; drop or fill those rows first")
    if o.is_binary and not np.all(np.isin(y, (0.0, 1.0))):
        raise DataError(f"binary objective {o.name!r} needs labels 0/1; got values "
                        f"{np.unique(y)[:6].tolist()}")
    if o.is_multiclass and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= o.n_classes):
        raise DataError(f"multiclass labels must be integers 0..{o.n_classes - 1}")
    if o.loss in ("poisson", "tweedie") and np.any(y < 0):
        raise DataError(f"objective {o.name!r} needs non-negative labels")
    if o.loss == "gamma" and np.any(y <= 0):
        raise DataError(f"objective {o.name!r} needs positive labels")


def _split(y: np.ndarray, stratify: bool, judge_fraction: float, random_state: int
           ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strat = y if stratify and len(np.unique(y)) > 1 and np.bincount(
        y.astype(np.int64)).min() >= 2 else None
    fit, judge = train_test_split(idx, test_size=judge_fraction, random_state=random_state,
                                  stratify=strat)
    return np.sort(fit), np.sort(judge)


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
    judge_fraction: float = 0.5,
    l2: float = 50.0,
    n_rounds: int = 10,
    max_selected: int = 256,
    random_state: int = 0,
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
    judge_fraction : float
        Share of rows held out to judge candidates (stratified for classification).
    l2 : float
        L2 penalty of the leaf refits and collapses, pulling new values towards the old ones
        (XGBoost ``reg_lambda`` units).
    n_rounds : int
        Newton cycles of each leaf refit.
    max_selected : int
        Longest forward-selection path (trees).
    random_state : int
        Seeds the fit/judge split; the result is deterministic for a given value.
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
    if max_leaves is not None and not 1 <= int(max_leaves) < ens.n_leaves:
        raise PruneError(f"max_leaves={max_leaves} must be between 1 and the model's "
                         f"{ens.n_leaves - 1} (it has {ens.n_leaves} leaves)")
    if max_trees is not None and not 1 <= int(max_trees) < ens.n_trees:
        raise PruneError(f"max_trees={max_trees} must be between 1 and the model's "
                         f"{ens.n_trees - 1} (it has {ens.n_trees} trees)")
    if not 0.05 <= judge_fraction <= 0.95:
        raise PruneError(f"judge_fraction must be within [0.05, 0.95], got {judge_fraction}")
    from .kernels.device import resolve_device

    device = resolve_device(device)

    p = pack(ens)
    Xm = to_matrix(ens, X, p.dtype)
    n = Xm.shape[0]
    if n == 0:
        raise DataError("the data has no rows")
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(yv) != n:
        raise DataError(f"X has {n} rows but y has {len(yv)} labels")
    _check_labels(ens, yv)
    if n < 20:
        raise DataError(f"pruning needs at least 20 rows to fit and judge on; got {n}")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w is not None and (len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0)):
        raise DataError("sample_weight must have one finite non-negative value per row")
    stratify = ens.objective.is_binary or ens.objective.is_multiclass
    fit_idx, judge_idx = _split(yv, stratify, judge_fraction, random_state)
    Xf, yf, Xj, yj = Xm[fit_idx], yv[fit_idx], Xm[judge_idx], yv[judge_idx]
    wf = None if w is None else w[fit_idx]
    wj = None if w is None else w[judge_idx]
    if ens.objective.is_binary and (len(np.unique(yf)) < 2 or len(np.unique(yj)) < 2):
        raise DataError("both classes must appear in the data (and in each half of the split)")

    t = time.perf_counter()
    base_ens = lossless(ens)
    timings["lossless"] = time.perf_counter() - t
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    original_metric = evaluate(ens, metric, Xj, yj, wj)

    t = time.perf_counter()
    path = datadriven.forward_selection_path(base_ens, Xf, yf, min(max_selected, base_ens.n_trees),
                                             wf)
    timings["select"] = time.perf_counter() - t

    grid = [k for k in TREE_GRID if k <= len(path)]
    if max_trees is not None:
        grid = [k for k in grid if k < max_trees] + [min(int(max_trees), len(path))]
    grid = sorted(set(grid))
    rows: list[dict[str, Any]] = []
    candidates: list[Ensemble] = []
    t = time.perf_counter()
    iterator: Any = grid
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(grid, desc="pruning", unit="size", leave=False)
    for k in iterator:
        selected = datadriven.take_selection(base_ens, path, k)
        # below two leaves per tree some trees turn into constants: pointless candidates
        budgets = sorted({max(2 * k, int(round(selected.n_leaves * f))) for f in LEAF_FRACTIONS},
                         reverse=True)
        budgets = [b for b in budgets if b <= selected.n_leaves]
        if max_leaves is not None:
            budgets = [b for b in budgets if b <= max_leaves] + (
                [int(max_leaves)] if selected.n_leaves > max_leaves >= k else [])
            budgets = sorted(set(budgets), reverse=True)
        for budget in budgets:
            collapsed = selected
            if budget < collapsed.n_leaves:
                collapsed = datadriven.collapse_by_data(collapsed, Xf, yf, budget, wf, l2=l2)
            # with and without the leaf refit: on small samples the refit can overfit the fit
            # rows, and the held-out rows decide which one to trust
            for refit in (False, True):
                cand = _refit(collapsed, Xf, yf, wf, l2, n_rounds, device) if refit else collapsed
                rows.append({"n_trees": cand.n_trees, "n_leaves": cand.n_leaves,
                             "refit": refit,
                             "metric_fit": evaluate(cand, metric, Xf, yf, wf),
                             "metric_judge": evaluate(cand, metric, Xj, yj, wj)})
                candidates.append(cand)
    timings["candidates"] = time.perf_counter() - t

    table = pd.DataFrame(rows)
    within = np.ones(len(table), dtype=bool)
    if max_leaves is not None:
        within &= table["n_leaves"].to_numpy() <= max_leaves
    if max_trees is not None:
        within &= table["n_trees"].to_numpy() <= max_trees
    if tolerance is not None:
        ok = within & (sign * (table["metric_judge"].to_numpy() - original_metric) >= -tolerance)
        if ok.any():
            order = np.lexsort((-sign * table["metric_judge"].to_numpy(),
                                table["n_leaves"].to_numpy()))
            choice = int(next(i for i in order if ok[i]))
        else:
            log.warning("no candidate is within tolerance %.4g; keeping the lossless model",
                        tolerance)
            choice = -1
    else:
        if not within.any():
            raise PruneError("no candidate fits the budget; raise max_leaves / max_trees")
        scores = np.where(within, sign * table["metric_judge"].to_numpy(), -np.inf)
        choice = int(np.argmax(scores))
    if choice < 0:
        rows.append({"n_trees": base_ens.n_trees, "n_leaves": base_ens.n_leaves, "refit": False,
                     "metric_fit": evaluate(base_ens, metric, Xf, yf, wf),
                     "metric_judge": evaluate(base_ens, metric, Xj, yj, wj)})
        candidates.append(base_ens)
        table = pd.DataFrame(rows)
        choice = len(table) - 1
    table["chosen"] = False
    table.loc[choice, "chosen"] = True
    timings["total"] = time.perf_counter() - t_start
    params = {"tolerance": tolerance, "max_leaves": max_leaves, "max_trees": max_trees,
              "metric": metric, "judge_fraction": judge_fraction, "l2": l2,
              "n_rounds": n_rounds, "max_selected": max_selected,
              "random_state": random_state, "device": device, "n_rows": n,
              "monotone_constraints": list(ens.monotone_constraints),
              "n_fit": len(fit_idx), "n_judge": len(judge_idx)}
    return PruneResult(model=candidates[choice], original=ens, path=table, metric=metric,
                       original_metric=original_metric, timings=timings, params=params,
                       fit_index=fit_idx, judge_index=judge_idx, candidates=candidates,
                       judge_X=Xj, judge_y=yj)


def _refit(ens: Ensemble, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, l2: float,
           n_rounds: int, device: str) -> Ensemble:
    if device == "cuda":
        from .kernels.cuda_refit import refit_leaves_cuda

        return refit_leaves_cuda(ens, X, y, w, l2=l2, n_rounds=n_rounds)
    return datadriven.refit_leaves(ens, X, y, w, l2=l2, n_rounds=n_rounds)
