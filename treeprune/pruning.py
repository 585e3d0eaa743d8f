"""The orchestrator: lossless passes, then every candidate family, judged on held-out rows.

Decisions (which trees, which subtrees, leaf values, new trees) are made on one part of the
user's data (the *fit* part); candidates are compared on another (the *judge* part); a third part
(the *confirm* rows) is never used for any decision and gives an honest estimate of the chosen
model's metric. See :mod:`treeprune._stopping` for the rule and :mod:`treeprune._candidates` for
the families.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import _augment, _fidelity, _stopping
from ._advice import prune_warnings
from ._candidates import Families, FitRows, check_search, resolve_families
from ._validation import SOFT_LABEL_OBJECTIVES, check_labels, check_weights
from .data import binary_labels, to_matrix
from .ensemble import Ensemble
from .errors import DataError, PruneError
from .io import load
from .packed import pack
from .passes.lossless import lossless

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = {"auc": True, "gini": True, "ks": True, "loss": False, "fidelity": True}
SCALES = ("original", "calibrated")
#: PSI below 0.1 is read as "no significant shift" in credit-risk monitoring
DEFAULT_MAX_PSI = 0.1
#: below this many rows (after the confirm slice) the default is cross-fitting with 3 folds: a
#: single 50/50 split judges on half the rows, and on a few thousand rows the standard error of an
#: AUC difference (0.005 on 2,400 Taiwan rows) hides every candidate behind the guard; with every
#: row judging out of fold it drops by about 1.4x and the fits see two thirds of the rows
CROSSFIT_BELOW = 20000
#: the confirm slice needs at least this many rows to be kept
MIN_CONFIRM_ROWS = 40
#: fit rows used for the score-scale fit and for the (descriptive) metric on fit rows
SCALE_ROWS = 5000
#: with scale="original", a group of at least this share of the fit rows that share one original
#: score keeps that score exactly (see passes.scale.fit_affine): at 2% such a group moves PSI by
#: about 0.1 when it crosses a decile edge
ANCHOR_SHARE = 0.02
FIT_METRIC_ROWS = 2000
MAX_SELECTED = 128
#: default L2 pull of refitted leaves towards their old values. Labels are noisy: at 50 the
#: refits raised the fit rows' AUC by 0.03 over the judge rows' on overfit 800-tree models, and
#: at 200 the chosen models scored 0.0015-0.006 higher on test rows (Taiwan XGBoost/LightGBM,
#: HELOC tuned; HELOC overfit and HMEQ unchanged; 500 no better than 200). The original's margins
#: are a noise-free target, and a weaker pull fits them closer (tuned models at 4x fewer leaves:
#: test Spearman +0.001 on HELOC and HMEQ, Taiwan unchanged, between 50 and 10).
L2_LABELS = 200.0
L2_FIDELITY = 10.0


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
        Every candidate: ``family`` (``select``, ``collapse``, ``regrow``, ``distill``,
        ``distill+regrow``, or ``lossless`` when nothing qualified), ``detail`` (its
        configuration), ``n_trees``, ``n_leaves`` (means over folds with ``cv >= 2``), ``refit``
        (leaves refitted or not), ``leaf_fraction`` (share of the selected trees' leaves kept, for
        ``select``/``collapse``), ``metric_fit``, ``metric_judge`` (rows not fitted), ``se_diff``
        (standard error of its difference with the original there), the fidelity figures against
        the original on the judge rows (``spearman`` and its standard error ``spearman_se``,
        ``agreement_50``, ``agreement_80`` —
        decisions agreeing at those approval rates — ``psi`` and its standard error
        ``psi_se``), ``auc_judge`` in fidelity mode when labels were given, and ``chosen``.
    metric : str
        The metric that chose (``auc``, ``gini``, ``ks``, ``loss`` or ``fidelity``, which is the
        Spearman correlation with the original).
    original_metric : float
        The original model's metric on the judge rows.
    timings : dict
        Seconds per stage.
    params : dict
        Everything needed to reproduce the run (tolerance/budget, random_state, split sizes,
        ``scale``, the ``z`` the choice was held to...).
    warnings : list of str
        Plain-language warnings about the outcome (also logged): too few judge rows for the
        tolerance, a pruned model that beats the original by more than its standard error, or
        nothing pruned (with the closest candidate and what to try).
    holdout : dict
        The honest estimate from the confirm rows, which no decision used: ``rows``, ``metric``
        and ``se`` of the chosen model, ``original`` (the original's metric there), ``diff`` and
        ``se_diff`` (paired). Empty when there were too few rows for a confirm slice.
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
    confirm_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    confirm_X: Any = field(default=None, repr=False)
    confirm_y: Any = field(default=None, repr=False)
    holdout: dict[str, Any] = field(default_factory=dict)
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
        name = "spearman with the original" if self.metric == "fidelity" else self.metric
        row = self.path.iloc[self.chosen]
        text = (
            f"pruned {o.n_trees} trees / {o.n_leaves} leaves -> {m.n_trees} trees / "
            f"{m.n_leaves} leaves ({m.n_leaves / max(o.n_leaves, 1):.1%} of the leaves, "
            f"{row['family']}); {name} on the {len(self.judge_index):,} judge rows that chose "
            f"it {self.original_metric:.5f} -> {self.chosen_metric:.5f} (not a test)"
        )
        if self.holdout:
            h = self.holdout
            text += (f"; on {h['rows']} confirm rows {h['original']:.5f} -> {h['metric']:.5f} "
                     f"(difference {h['diff']:+.5f} +- {h['se_diff']:.5f})")
        return text + f" in {self.timings.get('total', float('nan')):.2f}s"

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


def paired_se(ens: Ensemble, metric: str, margin: np.ndarray, reference: np.ndarray,
              y: np.ndarray) -> float:
    """Standard error of ``metric(margin) - metric(reference)`` on the same rows (unweighted)."""
    return _stopping.paired_se(ens.objective, metric, margin, reference, y)


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


def _check_margins(margin: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(margin)):
        raise DataError(f"the model's margins on {what} contain NaN or infinite values; check "
                        "the data for infinite feature values")
    if np.ptp(margin.reshape(len(margin), -1), axis=0).max(initial=0.0) == 0:
        raise DataError(f"the model gives every row of {what} the same score: there is no "
                        "ranking to keep; pass rows on which the model's scores vary")


def _soft_labels(ens: Ensemble, y: Any) -> bool:
    """Labels of a cross-entropy model that are probabilities, not outcomes (AUC needs 0/1)."""
    if ens.objective.name not in SOFT_LABEL_OBJECTIVES:
        return False
    try:
        yv = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.any((yv != 0) & (yv != 1)))


def _resolve_metric(ens: Ensemble, metric: str | None, y: Any) -> str:
    has_labels = y is not None
    if metric is None:
        if not has_labels:
            return "fidelity"
        return "auc" if ens.objective.is_binary and not _soft_labels(ens, y) else "loss"
    if metric not in HIGHER_IS_BETTER:
        raise PruneError(f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}")
    if metric == "fidelity":
        if ens.objective.is_multiclass:
            raise PruneError("metric='fidelity' needs a single-output model (binary or "
                             "regression); use a label metric for multiclass models")
        return metric
    if not has_labels:
        raise PruneError(f"metric={metric!r} needs labels y; without labels use "
                         "metric='fidelity', which keeps the original's ranking of the rows")
    if metric != "loss" and not ens.objective.is_binary:
        raise PruneError(f"metric {metric!r} needs a binary objective; use metric='loss'")
    return metric


def _on_dask(*inputs: Any) -> bool:
    from .scaleout import is_dask_collection

    return any(is_dask_collection(v) for v in inputs)


def prune(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    tolerance: float | None = None,
    max_leaves: int | None = None,
    max_trees: int | None = None,
    metric: str | None = None,
    sample_weight: Any = None,
    X_unlabeled: Any = None,
    augment: float | str = "auto",
    scale: str | None = None,
    max_psi: float | None | str = "auto",
    families: Any = None,
    cv: int | str = "auto",
    judge_fraction: float = 0.5,
    confirm_fraction: float = 0.2,
    z: float = 1.0,
    z_adjust: bool = True,
    l2: float | None = None,
    n_rounds: int = 10,
    max_selected: int | None = None,
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
    X : validation data (not the training set).
    y : array-like, optional
        Labels. Without them only ``metric="fidelity"`` is possible (and the default).
    tolerance : float, optional
        Allowed loss of ``metric`` on held-out rows (absolute: 0.001 AUC; for ``fidelity`` the
        Spearman correlation with the original must stay at least ``1 - tolerance``). Default
        0.001, or 0.01 for ``fidelity``, when no budget is given. The smallest candidate within
        it (by ``z`` standard errors) is chosen; when the best candidate beats the original
        beyond doubt (the original overfits), the choice must also be within ``tolerance`` of
        that best by one standard error (the one-standard-error rule), so that a poor original
        does not let poor small candidates through (column ``se_best`` of the path).
    max_leaves, max_trees : int, optional
        A size budget instead: the best candidate on held-out rows within it.
    metric : {"auc", "gini", "ks", "loss", "fidelity"}, optional
        Default ``"auc"`` for binary objectives (``"loss"`` for a cross-entropy model given
        probabilities as labels), ``"loss"`` (the objective's) otherwise, and
        ``"fidelity"`` without labels: candidates are fitted to the original's margins (squared
        error) and judged by their Spearman correlation with it.
    sample_weight : array-like, optional
    X_unlabeled : array-like, optional
        Extra rows without outcomes (applications whose outcome has not matured). They are used
        only to fit: the distilled students learn the original's margins on them too, and in
        fidelity mode every family fits on them. They never judge.
    augment : float or "auto"
        Synthetic rows to fit on, as a multiple of the fit rows. Each is a fit row with about 30%
        of its values taken from another fit row (``treeprune._augment``); its target is the
        original's margin there, so no outcome is needed. In fidelity mode every family fits on
        them, and more rows pin the refitted leaves down (held-out Spearman up most where rows
        are few); with labels the distilled students learn the original's margins on them as on
        ``X_unlabeled``. ``"auto"`` (default): 3 times the fit rows, up to 30,000 rows in all in
        fidelity mode and 10,000 with labels (fit rows and ``X_unlabeled`` included); 0: none.
    scale : {"original", "calibrated"}, optional
        ``"original"`` (the default in fidelity mode): every candidate gets the affine map
        ``a * margin + b`` fitted on the fit rows that best matches the original's margins, baked
        into its leaves and base score, so that the written model keeps the original's score
        scale (AUC is unchanged). ``"calibrated"`` (the default otherwise) keeps the margins the
        passes fitted.
    max_psi : float, None or "auto"
        Score stability: only candidates whose score distribution on the judged rows stays within
        this PSI of the original's by one standard error (column ``psi_se`` of the path) are
        eligible, so that the limit also holds on new rows. An affine scale cannot give a
        smaller model the original's distribution *shape*, so without it the smallest candidate
        of an overfit model can shift the scores by a PSI of 0.4 even with
        ``scale="original"``. ``"auto"`` (default): 0.1 (the usual "no significant shift" line)
        with ``scale="original"``, none otherwise.
    families : sequence of str, optional
        Candidate families to run (default all): ``select``, ``collapse``, ``regrow``,
        ``distill``, ``distill+regrow``.
    cv : int or "auto"
        1: one split of the non-confirm rows into fit and judge rows (``judge_fraction``); every
        candidate and the judge rows stay in the result. ``cv >= 2``: cross-fitting, every
        configuration fitted on all but one fold and judged on it, its metric taken over all rows
        out of fold; the chosen configuration is then fitted on all of them. ``"auto"`` (default):
        3 folds below 20,000 rows (after the confirm slice), else 1.
    judge_fraction : float
        With ``cv=1``, the share of the non-confirm rows held out to judge candidates.
    confirm_fraction : float
        Share of the rows held back from every decision to estimate the chosen model's metric
        (``result.holdout``); 0 turns it off (also off when it would hold under 40 rows).
    z : float
        Guard against luck: a candidate must be within the tolerance by ``z`` standard errors
        of its paired difference with the original on the judged rows (DeLong for AUC and Gini,
        per-row loss differences for ``loss``, Spearman's influence function in fidelity mode;
        none for ``ks``). ``z=0`` turns it off.
    z_adjust : bool
        Adjust ``z`` for the number of candidate families searched (Bonferroni on the
        one-candidate rate ``Phi(-z)``; ``z=1`` over five families holds candidates to 1.86
        standard errors): the smallest of many candidates is otherwise the luckiest.
    l2 : float, optional
        L2 penalty of the leaf refits and collapses, pulling new values towards the old ones
        (XGBoost ``reg_lambda`` units). Default 200 when fitting labels (a refit on a few thousand
        labelled rows otherwise follows their noise), 10 in fidelity mode, whose targets (the
        original's margins) carry no noise.
    n_rounds : int
        Newton cycles of each leaf refit.
    max_selected : int, optional
        Longest forward-selection path (trees). Default: every tree in fidelity mode with a
        tolerance, where an overfit model keeps its ranking only with most of its trees (a
        400-tree model: 256 trees at test Spearman 0.995, none within tolerance from 128; the
        longer path costs time: 80 s there instead of 20 s); else 128 (with labels or a budget
        the small candidates win).
    random_state : int
        Seeds the splits and the trainers; the result is deterministic for a given value.
    positive_label : optional
        For labels that are not 0/1 numbers (``"good"``/``"bad"``): the value that counts as the
        event, coded 1; every other value is 0.
    monotone_constraints : sequence of int or dict, optional
        Constraints to keep (+1 increasing, -1 decreasing, 0 none), per feature or as
        ``{feature_name: direction}``. By default those stored with the model; XGBoost model
        *files* do not store them (only a Booster's config does), so pass them here for a file.
        Grown trees are trained under them.
    device : {"cpu", "cuda", "auto"}
        Where leaf refits and the native trainers run.
    progress : bool
        Show a progress bar on stderr counting candidates, with the current family.

    Returns
    -------
    PruneResult
    """
    if _on_dask(X, y, sample_weight, X_unlabeled):  # rows on a cluster: treeprune.scaleout
        from .scaleout._prune import prune_dask

        return prune_dask(**{k: v for k, v in locals().items() if k != "prune_dask"})
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    ens = load(model)
    if monotone_constraints is not None:
        ens = ens.replace(monotone_constraints=_constraints(ens, monotone_constraints))
    metric = _resolve_metric(ens, metric, y)
    fidelity = metric == "fidelity"
    if l2 is None:
        l2 = L2_FIDELITY if fidelity else L2_LABELS
    elif not (np.isfinite(l2) and l2 >= 0):
        raise PruneError(f"l2 must be a non-negative number (default 200, or 10 in "
                         f"fidelity mode); got {l2!r}")
    if scale is None:
        scale = "original" if fidelity else "calibrated"
    if scale not in SCALES:
        raise PruneError(f"scale must be 'original' (keep the original's score scale) or "
                         f"'calibrated' (keep the fitted margins); got {scale!r}")
    if scale == "original" and ens.objective.is_multiclass:
        raise PruneError("scale='original' needs a single-output model; use scale='calibrated'")
    if isinstance(max_psi, str):
        if max_psi != "auto":
            raise PruneError(f"max_psi must be a number, None or 'auto'; got {max_psi!r}")
        max_psi = DEFAULT_MAX_PSI if scale == "original" else None
    elif max_psi is not None and not (np.isfinite(max_psi) and max_psi > 0):
        raise PruneError(f"max_psi must be a positive number (0.1: no significant shift) or "
                         f"None; got {max_psi!r}")
    fams = resolve_families(families)
    _augment.check(augment)
    if tolerance is None and max_leaves is None and max_trees is None:
        tolerance = 0.01 if fidelity else 0.001
    if tolerance is not None and (not np.isfinite(tolerance) or tolerance < 0):
        raise PruneError(f"tolerance must be a non-negative number, got {tolerance}")
    if tolerance is not None and (max_leaves is not None or max_trees is not None):
        raise PruneError("give either tolerance or a budget (max_leaves / max_trees), not both")
    if max_leaves is not None and not 1 <= int(max_leaves) <= ens.n_leaves:
        raise PruneError(f"max_leaves={max_leaves} must be between 1 and the model's "
                         f"{ens.n_leaves} leaves")
    if max_trees is not None and not 1 <= int(max_trees) <= ens.n_trees:
        raise PruneError(f"max_trees={max_trees} must be between 1 and the model's "
                         f"{ens.n_trees} trees")
    if positive_label is not None and not ens.objective.is_binary:
        raise PruneError(f"positive_label applies to binary models; this one is "
                         f"{ens.objective.name!r}")
    _stopping.check_splits(cv, judge_fraction, confirm_fraction)
    check_search(max_selected, n_rounds)
    from .kernels.device import resolve_device

    device = resolve_device(device)

    p = pack(ens)
    Xm = to_matrix(ens, X, p.dtype)
    n = Xm.shape[0]
    if n == 0:
        raise DataError("the data has no rows")
    yv = None if y is None else check_labels(binary_labels(y, positive_label), n, ens.objective)
    Xu = xu_margin = None
    if X_unlabeled is not None:
        Xu = to_matrix(ens, X_unlabeled, p.dtype)
        if Xu.shape[0] == 0:
            raise DataError("X_unlabeled has no rows; pass None instead")
        xu_margin = ens.predict(Xu, output="margin")
        _check_margins(xu_margin, "X_unlabeled")
    if n < 20:
        raise DataError(f"pruning needs at least 20 rows to fit and judge on; got {n}")
    w = check_weights(sample_weight, n)
    original_margin = ens.predict(Xm, output="margin")
    _check_margins(original_margin, "X")

    # rows: confirm (never used for a decision), then fit/judge folds of the rest
    stratify = yv is not None and (ens.objective.is_binary or ens.objective.is_multiclass)
    c_frac = confirm_fraction if n * confirm_fraction >= MIN_CONFIRM_ROWS else 0.0
    keep, confirm = _stopping.split_confirm(n, yv, stratify, c_frac, random_state)
    n_keep = len(keep)
    y_keep = None if yv is None else yv[keep]
    if cv == "auto":
        cv = 3 if n_keep < CROSSFIT_BELOW else 1
    cv = int(cv)
    if cv >= 2:
        folds = [(keep[a], keep[b]) for a, b in
                 _stopping.folds(y_keep, n_keep, stratify, cv, random_state)]
    else:
        a, b = _stopping.split(y_keep, n_keep, stratify, judge_fraction, random_state)
        folds = [(keep[a], keep[b])]
    if yv is not None and ens.objective.is_binary:
        for fit_idx, judge_idx in folds:
            if len(np.unique(yv[fit_idx])) < 2 or len(np.unique(yv[judge_idx])) < 2:
                raise DataError("both classes must appear in every part of the fit/judge split; "
                                "pass more rows of the rarer class")

    t = time.perf_counter()
    base_ens = lossless(ens)
    timings["lossless"] = time.perf_counter() - t
    if max_selected is None:
        whole = fidelity and max_leaves is None and max_trees is None
        max_selected = base_ens.n_trees if whole else MAX_SELECTED
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    source = Families(base_ens, fidelity=fidelity, families=fams, max_leaves=max_leaves,
                      max_trees=max_trees, l2=l2, n_rounds=n_rounds, device=device,
                      max_selected=max_selected, random_state=random_state)
    # with labels, the lossless model's margins of the rows without outcomes: once, not per consumer
    xu_base_margin = None if Xu is None or fidelity else base_ens.predict(Xu, output="margin")

    def rows_for(fit_idx: np.ndarray) -> FitRows:
        target = original_margin[fit_idx]
        labels = None if yv is None else yv[fit_idx]
        wf = None if w is None else w[fit_idx]
        synthetic = None
        if fidelity or any(f.startswith("distill") for f in fams):  # else no fit would use them
            synthetic = _augment.synthetic_rows(Xm[fit_idx], augment, 0 if Xu is None else len(Xu),
                                                fidelity, random_state)
        if not fidelity:
            # the distilled students learn the original's margins: rows without outcomes too
            extra = [v for v in (Xu, synthetic) if v is not None]
            margins = [m for m in (xu_base_margin, None if synthetic is None else
                                   base_ens.predict(synthetic, output="margin")) if m is not None]
            return FitRows(Xm[fit_idx], labels, wf, target, np.concatenate(extra) if extra else None,
                           labels, unlabeled_margin=np.concatenate(margins) if extra else None)
        # without labels every family can fit on rows without outcomes too: the unlabelled
        # rows, then synthetic ones made from the fit rows (last, so that the score scale is
        # fitted on observed rows only)
        parts, targets = [Xm[fit_idx]], [target]
        if Xu is not None:
            parts.append(Xu)
            targets.append(xu_margin)
        if synthetic is not None:
            parts.append(synthetic)
            targets.append(ens.predict(synthetic, output="margin"))
        Xf, tf = np.concatenate(parts), np.concatenate(targets)
        wf = None if wf is None else np.concatenate([wf, np.full(len(Xf) - len(wf), wf.mean())])
        return FitRows(Xf, tf, wf, tf, None, labels,
                       n_synthetic=0 if synthetic is None else len(synthetic))

    def finish(cand: Ensemble, rows: FitRows) -> Ensemble | None:
        """The candidate on the requested score scale; None for one without a ranking."""
        if scale != "original":
            return cand
        from .passes import scale as scale_pass

        # two parameters: a few thousand fit rows pin them down; matching quantiles keeps the
        # score distribution (what PSI and cutoffs see), where least squares would shrink it
        sub = _subsample(len(rows.X) - rows.n_synthetic, SCALE_ROWS)
        m = cand.predict(rows.X[sub], output="margin")
        try:
            a, b = scale_pass.fit_affine(m, rows.target[sub], method="quantile",
                                         anchor_share=ANCHOR_SHARE)
        except DataError:  # constant, or ranking against the original: not a candidate
            return None
        return scale_pass.rescale(cand, a, b)

    # every candidate configuration is scored on rows its own fit never saw: out-of-fold margins
    t = time.perf_counter()
    oof: dict[tuple, np.ndarray] = {}
    fit_metric: dict[tuple, list[float]] = {}
    sizes: dict[tuple, list[tuple[int, int]]] = {}
    kept: dict[tuple, Ensemble] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(folds) * source.planned(base_ens.n_trees), desc="pruning",
                   unit="candidate", leave=False)
    for fold, (fit_idx, judge_idx) in enumerate(folds):
        if bar is not None and fold >= 1:
            # the folds yield about as many candidates as the ones done (early stopping decides
            # how many prefixes a grown model has): a better total
            bar.total = bar.n + round((len(folds) - fold) * bar.n / fold)
            bar.refresh()
        rows = rows_for(fit_idx)
        # the metric on fit rows is descriptive (how much a candidate overfits): a sample will do
        fit_sub = fit_idx[_subsample(len(fit_idx), FIT_METRIC_ROWS)]
        for key, cand in source.generate(rows):
            if bar is not None:
                bar.set_description(f"pruning: {key[0]}", refresh=False)
                if bar.n >= bar.total:  # the last fold ran longer than estimated
                    bar.total = bar.n + 1
                bar.update()
            if cand.n_leaves > base_ens.n_leaves:
                # a grown model can outgrow the original: never an answer to pruning (with the
                # lossless model as the fallback, the tolerance rule could otherwise pick it)
                continue
            cand = finish(cand, rows)
            if cand is None:
                continue
            margin = cand.predict(Xm[judge_idx], output="margin")
            if key not in oof:
                oof[key] = np.full((n, *margin.shape[1:]), np.nan)
            oof[key][judge_idx] = margin
            fit_metric.setdefault(key, []).append(_fit_score(
                ens, metric, cand, Xm[fit_sub], original_margin[fit_sub],
                None if yv is None else yv[fit_sub], None if w is None else w[fit_sub]))
            sizes.setdefault(key, []).append((cand.n_trees, cand.n_leaves))
            if len(folds) == 1:
                kept[key] = cand
    if bar is not None:
        bar.total = bar.n
        bar.close()
    timings["candidates"] = time.perf_counter() - t

    judged = np.unique(np.concatenate([j for _, j in folds]))
    yj = None if yv is None else yv[judged]
    wj = None if w is None else w[judged]
    ref = original_margin[judged]
    original_metric = _score(ens, metric, ref, ref, yj, wj)
    rows_out: list[dict[str, Any]] = []
    keys: list[tuple] = []
    judge = _Judge(ens, metric, ref, yj, wj)
    for key, margins in oof.items():
        if len(sizes[key]) < len(folds):  # a configuration that did not exist in every fold
            continue
        fold_sizes = np.array(sizes[key])
        rows_out.append(judge.row(key, fold_sizes, float(np.mean(fit_metric[key])),
                                  margins[judged]))
        keys.append(key)

    table = pd.DataFrame(rows_out)
    if tolerance is not None and metric != "fidelity" and len(table):
        table["se_best"] = _se_to_best(ens, metric, table, [oof[k][judged] for k in keys], yj,
                                       wj, sign, max_leaves, max_trees, max_psi)
    choice, z_used = _stopping.choose(table, original_metric, sign, tolerance, max_leaves,
                                      max_trees, z, adjust=z_adjust, max_psi=max_psi)
    t = time.perf_counter()
    if choice < 0:
        rows_out.append(judge.row(("lossless", None, None, False),
                                  np.array([[base_ens.n_trees, base_ens.n_leaves]]), math.nan,
                                  base_ens.predict(Xm[judged], output="margin")))
        table = pd.DataFrame(rows_out)
        choice = len(table) - 1
        chosen = base_ens
    elif len(folds) == 1:
        chosen = kept[keys[choice]]
    else:
        # the configuration chosen out of fold, fitted once more on every non-confirm row
        leaf_cap = base_ens.n_leaves if max_leaves is None else min(max_leaves, base_ens.n_leaves)
        chosen = _final_fit(source, rows_for(keep), keys[choice],
                            int(table["n_leaves"].iloc[choice]), leaf_cap, max_trees, finish)
    timings["final_fit"] = time.perf_counter() - t
    table["chosen"] = False
    table.loc[choice, "chosen"] = True
    holdout = _holdout(ens, metric, chosen, Xm[confirm], original_margin[confirm],
                       None if yv is None else yv[confirm])
    timings["total"] = time.perf_counter() - t_start
    params = {"tolerance": tolerance, "max_leaves": max_leaves, "max_trees": max_trees,
              "metric": metric, "scale": scale, "max_psi": max_psi,
              "families": list(fams), "cv": cv,
              "judge_fraction": judge_fraction if cv < 2 else None,
              "confirm_fraction": c_frac, "z": z, "z_adjusted": z_used, "l2": l2,
              "n_rounds": n_rounds, "max_selected": max_selected,
              "random_state": random_state, "device": device, "n_rows": n,
              "n_unlabeled": 0 if Xu is None else int(Xu.shape[0]),
              "augment": augment,
              "rows": {"fit": int(len(folds[0][0])) if cv < 2 else int(n_keep),
                       "judge": int(len(judged)), "confirm": int(len(confirm))},
              "monotone_constraints": list(ens.monotone_constraints)}
    single = len(folds) == 1
    warnings = prune_warnings(table, choice, original_metric, metric, sign > 0, tolerance,
                              z_used, len(judged), fell_back=chosen is base_ens, cv=cv,
                              holdout=holdout, eligible=None if tolerance is None else
                              _stopping.admissible(table, original_metric, sign, tolerance,
                                                   _stopping.eligible(table, max_leaves,
                                                                      max_trees, max_psi),
                                                   z_used))
    for message in warnings:
        log.warning(message)
    return PruneResult(model=chosen, original=ens, path=table, metric=metric,
                       original_metric=original_metric, timings=timings, params=params,
                       fit_index=folds[0][0] if single else keep,
                       judge_index=folds[0][1] if single else judged,
                       candidates=[kept[k] for k in keys] if single else [chosen],
                       judge_X=Xm[judged] if single else None,
                       judge_y=yj if single else None,
                       confirm_index=confirm, holdout=holdout, warnings=warnings,
                       confirm_X=Xm[confirm] if len(confirm) else None,
                       confirm_y=None if yv is None or not len(confirm) else yv[confirm])


def _final_fit(source: Families, rows: FitRows, key: tuple, size: int, max_leaves: int,
               max_trees: int | None, finish: Any) -> Ensemble:
    """``key`` fitted on ``rows`` within ``max_leaves`` (never above the original's) and
    ``max_trees``. A grown model stops early and grows larger trees on more rows: where its prefix
    of the same rounds is missing or too large, its prefix closest to the judged size stands in."""
    found = {k: c for k, c in source.generate(rows, only=key, any_prefix=True)}

    def fits(c: Ensemble) -> bool:
        return c.n_leaves <= max_leaves and (max_trees is None or c.n_trees <= max_trees)

    if key in found and fits(found[key]):
        out = finish(found[key], rows)
        if out is not None:
            return out
    near = [(abs(c.n_leaves - size), k) for k, c in found.items() if k[3] == key[3] and fits(c)]
    for _, k in sorted(near, key=lambda t: t[0]):
        out = finish(found[k], rows)
        if out is not None:
            return out
    raise PruneError(f"the chosen configuration ({_detail(key)}) could not be fitted again on "
                     "every row within the leaf budget; pass cv=1")


def _subsample(n: int, limit: int) -> np.ndarray:
    """At most ``limit`` evenly spread positions of ``n`` rows (deterministic)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).astype(np.int64))


def _score(ens: Ensemble, metric: str, margin: np.ndarray, reference: np.ndarray,
           y: np.ndarray | None, w: np.ndarray | None) -> float:
    """``metric`` of ``margin``; fidelity is the Spearman correlation with ``reference``."""
    if metric == "fidelity":
        return _fidelity.spearman(reference, margin)
    return score_margin(ens, metric, margin, y, w)


def _fit_score(ens: Ensemble, metric: str, cand: Ensemble, X: np.ndarray, reference: np.ndarray,
               y: np.ndarray | None, w: np.ndarray | None) -> float:
    return _score(ens, metric, cand.predict(X, output="margin"), reference, y, w)


class _Judge:
    """One path row per candidate, on the judge rows (the original's share of every comparison
    computed once)."""

    def __init__(self, ens: Ensemble, metric: str, ref: np.ndarray, y: np.ndarray | None,
                 w: np.ndarray | None) -> None:
        self.ens, self.metric, self.ref, self.y, self.w = ens, metric, ref, y, w
        self.single = ref.ndim == 1
        self.fidelity = _fidelity.Reference(ref) if self.single else None
        self.fast_auc = metric in ("auc", "gini") and w is None
        self.paired = _stopping.PairedAUC(ref, y) if self.fast_auc else None
        self.with_auc = metric == "fidelity" and y is not None and ens.objective.is_binary

    def row(self, key: tuple, fold_sizes: np.ndarray, metric_fit: float, margin: np.ndarray
            ) -> dict[str, Any]:
        family, a, b, refit = key
        figures = self.fidelity.columns(margin) if self.fidelity is not None else \
            dict.fromkeys(_fidelity.FIGURES, math.nan)
        if self.paired is not None:  # one ranking gives both
            score, se = self.paired(margin)
            if self.metric == "gini":
                score, se = 2 * score - 1, 2 * se
        elif self.metric == "fidelity":
            score, se = figures["spearman"], figures["spearman_se"]
        else:
            score = _score(self.ens, self.metric, margin, self.ref, self.y, self.w)
            se = _stopping.paired_se(self.ens.objective, self.metric, margin, self.ref, self.y)
        row = {"family": family, "detail": _detail(key),
               "n_trees": int(round(fold_sizes[:, 0].mean())),
               "n_leaves": int(round(fold_sizes[:, 1].mean())),
               "refit": bool(refit),
               "leaf_fraction": b if family in ("select", "collapse") else
               (1.0 if family == "lossless" else math.nan),
               "metric_fit": metric_fit, "metric_judge": score, "se_diff": se, **figures}
        if self.with_auc:
            row["auc_judge"] = score_margin(self.ens, "auc", margin, self.y, self.w)
        return row


def _se_to_best(ens: Ensemble, metric: str, table: pd.DataFrame, margins: list[np.ndarray],
                y: np.ndarray | None, w: np.ndarray | None, sign: float, max_leaves: int | None,
                max_trees: int | None, max_psi: float | None) -> np.ndarray:
    """Standard error of each candidate's judged difference with the best eligible one (for the
    stopping rule's near-best bound, :func:`treeprune._stopping.near_best`)."""
    within = _stopping.eligible(table, max_leaves, max_trees, max_psi)
    judge = _stopping.signed_judge(table, sign)
    if y is None or not np.isfinite(judge[within]).any():
        return np.zeros(len(table))
    best = margins[_stopping.best_row(judge, within)]
    if metric in ("auc", "gini") and w is None:
        paired = _stopping.PairedAUC(best, y)
        scale = 2.0 if metric == "gini" else 1.0
        return np.array([scale * paired(m)[1] for m in margins])
    return np.array([_stopping.paired_se(ens.objective, metric, m, best, y) for m in margins])


def _detail(key: tuple) -> str:
    family, a, b, refit = key
    tail = ", refit" if refit else ""
    if family in ("select", "collapse"):
        share = "budget" if b == "budget" else f"{b:g} of the leaves"
        return f"{a} trees, {share}{tail}"
    if family == "regrow":
        return f"{a} old trees + {b} new rounds{tail}"
    if family == "distill":
        return f"depth {a}, {b} rounds{tail}"
    if family == "distill+regrow":
        return f"depth-{a} student + {b} new rounds{tail}"
    return "lossless passes only"


def _holdout(ens: Ensemble, metric: str, chosen: Ensemble, X: np.ndarray, ref: np.ndarray,
             y: np.ndarray | None) -> dict[str, Any]:
    """The chosen model on the confirm rows (which no decision used)."""
    if len(X) == 0:
        return {}
    margin = chosen.predict(X, output="margin")
    if metric != "fidelity" and ens.objective.is_binary and len(np.unique(y)) < 2:
        return {}
    if metric == "fidelity":  # one ranking of each score serves the correlations and the error
        value, original, se = _fidelity.confirm_figures(ref, margin)
        se_diff = se
    else:
        value = _score(ens, metric, margin, ref, y, None)
        original = _score(ens, metric, ref, ref, y, None)
        se = _stopping.metric_se(ens.objective, metric, margin, y)
        se_diff = _stopping.paired_se(ens.objective, metric, margin, ref, y)
    return {"rows": int(len(X)), "metric": value, "se": se, "original": original,
            "diff": value - original, "se_diff": se_diff}


__all__ = ["prune", "PruneResult", "evaluate", "score_margin", "paired_se"]
