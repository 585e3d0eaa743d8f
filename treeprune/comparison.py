"""Comparing two scores of the same rows, or two models on the same data (original vs pruned).

:func:`compare_scores` reports how two scores differ: correlations, quantiles of ``|a - b|``, the
PSI of one against the other, the metrics of each against the outcome and their deltas, and swap
sets (who is approved by one and declined by the other) at matched approval rates or fixed
cutoffs. :func:`compare` (``tp.compare``) scores two models on the same rows and compares those
scores; it is the only place here that loads models. (The module is not called ``compare``: a
submodule of that name would shadow the function ``treeprune.compare`` once imported.)

The conventions are those of :mod:`treeprune.metrics`: ``y`` is 1 = bad, 0 = good, and by default
a higher score means riskier (``higher_is_riskier=False`` for points-like scores).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from ._validation import check_binary_y, check_length, check_outcomes, check_scores
from .errors import DataError
from .metrics import PSIResult, auc, brier, gini, json_float, ks, log_loss, psi

#: Approval rates at which :func:`compare_scores` cuts both scores by default.
DEFAULT_APPROVAL_RATES: tuple[float, ...] = (0.5, 0.7, 0.9)
#: Quantiles of ``|a - b|`` reported by :func:`compare_scores`.
ABS_DIFF_QUANTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
)

_APPROVE, _DECLINE = "approve", "decline"


@dataclass(frozen=True, eq=False)
class SwapSet:
    """Decisions of two scores at one cutoff each: who is approved by one and declined by the other.

    Attributes
    ----------
    cutoff_a, cutoff_b : float
        The cutoffs applied to A and B. With ``higher_is_riskier`` an applicant is declined when
        ``score >= cutoff``; otherwise when ``score < cutoff``.
    target_approval_rate : float or None
        The approval rate both cutoffs were chosen for, or None for explicit cutoffs.
    approval_rate_a, approval_rate_b : float
        The approval rates actually reached (ties at the cutoff can make them differ).
    counts : pandas.DataFrame
        2x2 counts: index ``A approve``/``A decline``, columns ``B approve``/``B decline``.
    outcome : pandas.DataFrame or None
        The same 2x2 with the bad rate per cell (mean of ``y`` for regression); NaN for an empty
        cell; None without ``y``.
    agreement : float
        Share of rows on which A and B take the same decision.
    """

    cutoff_a: float
    cutoff_b: float
    target_approval_rate: float | None
    approval_rate_a: float
    approval_rate_b: float
    counts: pd.DataFrame
    outcome: pd.DataFrame | None
    agreement: float

    @property
    def label(self) -> str:
        if self.target_approval_rate is not None:
            return f"approval {self.target_approval_rate:.0%}"
        return f"cutoff {self.cutoff_a:g}"

    @property
    def swap_in(self) -> int:
        """Rows declined by A and approved by B."""
        return int(self.counts.loc[f"A {_DECLINE}", f"B {_APPROVE}"])

    @property
    def swap_out(self) -> int:
        """Rows approved by A and declined by B."""
        return int(self.counts.loc[f"A {_APPROVE}", f"B {_DECLINE}"])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "cutoff_a": json_float(self.cutoff_a),
            "cutoff_b": json_float(self.cutoff_b),
            "target_approval_rate": json_float(self.target_approval_rate),
            "approval_rate_a": json_float(self.approval_rate_a),
            "approval_rate_b": json_float(self.approval_rate_b),
            "agreement": json_float(self.agreement),
            "swap_in": self.swap_in,
            "swap_out": self.swap_out,
            "counts": {r: {c: int(v) for c, v in row.items()}
                       for r, row in self.counts.to_dict(orient="index").items()},
        }
        out["outcome"] = (
            None if self.outcome is None
            else {r: {c: json_float(v) for c, v in row.items()}
                  for r, row in self.outcome.to_dict(orient="index").items()}
        )
        return out


@dataclass(frozen=True, eq=False)
class Comparison:
    """How two scores of the same rows differ (see :func:`compare_scores`).

    Attributes
    ----------
    n_rows : int
    higher_is_riskier : bool
    task : {'binary', 'regression'} or None
        Which metrics were computed against ``y``; None without ``y``.
    correlations : dict
        ``pearson``, ``spearman``, ``kendall`` (NaN when a score is constant).
    abs_diff : dict
        Quantiles of ``|a - b|``: ``p50``, ``p90``, ``p99``, ``p99.9``, ``max``.
    psi : PSIResult
        PSI of B against A (bins from A's quantiles).
    metrics : pandas.DataFrame or None
        Index the metric names, columns ``a``, ``b``, ``delta`` (= b - a); None without ``y``.
    swap_sets : tuple of SwapSet
        One per cutoff.
    """

    n_rows: int
    higher_is_riskier: bool
    task: str | None
    correlations: dict[str, float]
    abs_diff: dict[str, float]
    psi: PSIResult
    metrics: pd.DataFrame | None
    swap_sets: tuple[SwapSet, ...] = field(default_factory=tuple)

    def to_frame(self) -> pd.DataFrame:
        """Every number as one long table with columns ``section``, ``statistic``, ``value``."""
        rows: list[tuple[str, str, float]] = [("summary", "n_rows", float(self.n_rows))]
        rows += [("correlation", k, v) for k, v in self.correlations.items()]
        rows += [("abs_diff", k, v) for k, v in self.abs_diff.items()]
        rows.append(("psi", "psi", self.psi.value))
        if self.metrics is not None:
            for metric, row in self.metrics.iterrows():
                for col in ("a", "b", "delta"):
                    rows.append(("metric", f"{metric}_{col}", float(row[col])))
        for sw in self.swap_sets:
            section = f"swap @ {sw.label}"
            rows += [
                (section, "cutoff_a", sw.cutoff_a),
                (section, "cutoff_b", sw.cutoff_b),
                (section, "approval_rate_a", sw.approval_rate_a),
                (section, "approval_rate_b", sw.approval_rate_b),
                (section, "agreement", sw.agreement),
            ]
            for a_dec in (_APPROVE, _DECLINE):
                for b_dec in (_APPROVE, _DECLINE):
                    cell = f"A {a_dec}", f"B {b_dec}"
                    rows.append((section, f"n_A_{a_dec}_B_{b_dec}", float(sw.counts.loc[cell])))
                    if sw.outcome is not None:
                        stat = "bad_rate" if self.task == "binary" else "mean_y"
                        rows.append(
                            (section, f"{stat}_A_{a_dec}_B_{b_dec}", float(sw.outcome.loc[cell]))
                        )
        return pd.DataFrame(rows, columns=["section", "statistic", "value"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite numbers become ``None``)."""
        return {
            "n_rows": self.n_rows,
            "higher_is_riskier": self.higher_is_riskier,
            "task": self.task,
            "correlations": {k: json_float(v) for k, v in self.correlations.items()},
            "abs_diff": {k: json_float(v) for k, v in self.abs_diff.items()},
            "psi": self.psi.to_dict(),
            "metrics": (
                None if self.metrics is None
                else {str(m): {c: json_float(v) for c, v in row.items()}
                      for m, row in self.metrics.to_dict(orient="index").items()}
            ),
            "swap_sets": [sw.to_dict() for sw in self.swap_sets],
        }

    def __str__(self) -> str:
        direction = "higher score = riskier" if self.higher_is_riskier else "higher score = safer"
        lines = [f"Score comparison A -> B  (n = {self.n_rows:,}; {direction})", ""]
        lines.append("Correlation   " + "   ".join(
            f"{k} {_fmt(v)}" for k, v in self.correlations.items()))
        lines.append("|A - B|       " + "   ".join(
            f"{k} {_fmt(v)}" for k, v in self.abs_diff.items()))
        lines.append(f"PSI (A -> B)  {self.psi.value:.6f}  ({self.psi.band})")
        if self.metrics is not None:
            lines += ["", f"{'metric':<12}{'A':>12}{'B':>12}{'B - A':>12}"]
            for metric, row in self.metrics.iterrows():
                lines.append(
                    f"{metric!s:<12}{_fmt(row['a']):>12}{_fmt(row['b']):>12}"
                    f"{_fmt(row['delta'], signed=True):>12}"
                )
        for sw in self.swap_sets:
            lines += [
                "",
                f"Swap set at {sw.label}: cutoff A {_fmt(sw.cutoff_a)}, cutoff B "
                f"{_fmt(sw.cutoff_b)}; approved A {sw.approval_rate_a:.1%}, "
                f"B {sw.approval_rate_b:.1%}; agreement {sw.agreement:.2%}",
                f"{'':<12}{'B approve':>12}{'B decline':>12}",
            ]
            for r in sw.counts.index:
                lines.append(f"{r:<12}" + "".join(f"{int(v):>12,}" for v in sw.counts.loc[r]))
            if sw.outcome is not None:
                what = "bad rate" if self.task == "binary" else "mean y"
                lines.append(f"  {what}:")
                for r in sw.outcome.index:
                    lines.append(f"{r:<12}" + "".join(f"{_fmt(v):>12}" for v in sw.outcome.loc[r]))
        return "\n".join(lines)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = float(value)
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-4):
        return f"{v:+.4e}" if signed else f"{v:.4e}"
    return f"{v:+.6f}" if signed else f"{v:.6f}"


def _correlations(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "kendall": math.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "pearson": float(stats.pearsonr(a, b)[0]),
            "spearman": float(stats.spearmanr(a, b)[0]),
            "kendall": float(stats.kendalltau(a, b)[0]),
        }


def _cutoff_for_approval_rate(score: np.ndarray, rate: float, higher_is_riskier: bool) -> float:
    """The cutoff approving ``round(rate * n)`` rows (fewer when the cutoff value is tied)."""
    s = np.sort(score)
    n = len(s)
    k = int(round(rate * n))
    if higher_is_riskier:  # approve score < cutoff: the k lowest
        return float(s[k]) if k < n else math.inf
    # approve score >= cutoff: the k highest
    return float(s[n - k]) if k > 0 else math.inf


def _declined(score: np.ndarray, cutoff: float, higher_is_riskier: bool) -> np.ndarray:
    return score >= cutoff if higher_is_riskier else score < cutoff


def _swap_set(
    a: np.ndarray,
    b: np.ndarray,
    y: np.ndarray | None,
    cutoff_a: float,
    cutoff_b: float,
    target: float | None,
    higher_is_riskier: bool,
) -> SwapSet:
    dec_a = _declined(a, cutoff_a, higher_is_riskier)
    dec_b = _declined(b, cutoff_b, higher_is_riskier)
    index = [f"A {_APPROVE}", f"A {_DECLINE}"]
    columns = [f"B {_APPROVE}", f"B {_DECLINE}"]
    counts = np.zeros((2, 2), dtype=np.int64)
    means = np.full((2, 2), np.nan)
    for i, da in enumerate((False, True)):
        for j, db in enumerate((False, True)):
            cell = (dec_a == da) & (dec_b == db)
            counts[i, j] = int(np.count_nonzero(cell))
            if y is not None and counts[i, j]:
                means[i, j] = float(y[cell].mean())
    n = len(a)
    return SwapSet(
        cutoff_a=float(cutoff_a),
        cutoff_b=float(cutoff_b),
        target_approval_rate=target,
        approval_rate_a=float(np.count_nonzero(~dec_a) / n),
        approval_rate_b=float(np.count_nonzero(~dec_b) / n),
        counts=pd.DataFrame(counts, index=index, columns=columns),
        outcome=None if y is None else pd.DataFrame(means, index=index, columns=columns),
        agreement=float(np.count_nonzero(dec_a == dec_b) / n),
    )


def _score_metrics(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, task: str, is_probability: bool,
    higher_is_riskier: bool,
) -> pd.DataFrame:
    rows: dict[str, tuple[float, float]] = {}
    if task == "binary":
        for name, fn in (("auc", auc), ("gini", gini), ("ks", ks)):
            rows[name] = (fn(y, a, higher_is_riskier=higher_is_riskier),
                          fn(y, b, higher_is_riskier=higher_is_riskier))
        if is_probability and higher_is_riskier:
            rows["log_loss"] = (log_loss(y, a), log_loss(y, b))
            rows["brier"] = (brier(y, a), brier(y, b))
    else:
        for name, fn in (
            ("rmse", lambda t, p: math.sqrt(skm.mean_squared_error(t, p))),
            ("mae", skm.mean_absolute_error),
            ("r2", skm.r2_score),
        ):
            rows[name] = (float(fn(y, a)), float(fn(y, b)))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["a", "b"])
    frame["delta"] = frame["b"] - frame["a"]
    frame.index.name = "metric"
    return frame


def _as_cutoff_list(cutoffs: Any) -> list[float]:
    if np.isscalar(cutoffs):
        cutoffs = [cutoffs]
    out = []
    for c in cutoffs:
        try:
            v = float(c)
        except (TypeError, ValueError) as exc:
            raise DataError(f"cutoffs must be numbers; got {c!r}") from exc
        if not math.isfinite(v):
            raise DataError(f"cutoffs must be finite; got {c!r}")
        out.append(v)
    return out


def compare_scores(
    score_a: Any,
    score_b: Any,
    y: Any = None,
    cutoffs: float | Sequence[float] | None = None,
    higher_is_riskier: bool = True,
    *,
    approval_rates: Iterable[float] = DEFAULT_APPROVAL_RATES,
    task: str = "binary",
    is_probability: bool | None = None,
    psi_bins: int = 10,
) -> Comparison:
    """Compare two scores of the same rows (A = original, B = pruned, say).

    Computes the Pearson, Spearman and Kendall correlations of A and B; the 50/90/99/99.9%
    quantiles and the maximum of ``|a - b|``; the PSI of B against A (10 bins from A's quantiles,
    see :func:`psi`); with ``y``, the metrics of each score and their deltas; and a swap set at
    each cutoff.

    **Decisions.** With ``higher_is_riskier`` (PD, margin) an applicant is *declined* when
    ``score >= cutoff``; otherwise (points) declined when ``score < cutoff``.

    **Cutoffs.** By default (``cutoffs=None``) each score is cut at the same *approval rate*, for
    each rate in ``approval_rates`` (50%, 70%, 90%): A's cutoff is the value of A that approves
    that share of rows, and B's cutoff is, separately, the value of B that approves the same share
    (so both models approve the same volume and the swap set shows *who* changes). Explicit numeric
    ``cutoffs`` are instead applied unchanged to both A and B (this suits scores on the same scale,
    e.g. two PDs or two sets of points); the approval rates then may differ.

    Parameters
    ----------
    score_a, score_b : array-like or dask Array/Series of shape (n,)
        Finite scores of the same rows. Dask scores are compared by reductions on the cluster
        (:mod:`treeprune.scaleout._compare`: exact up to 65,536 distinct scores, within stated
        bounds past that; Kendall's tau on a sample of at most 100,000 rows).
    y : array-like of shape (n,), optional
        Outcome. For ``task='binary'`` it must hold 0 (good) and 1 (bad), both present.
    cutoffs : float or sequence of float, optional
        Explicit cutoffs used for both scores (see above).
    higher_is_riskier : bool, default True
        Whether a higher score means riskier; sets the decision rule and the metric direction.
    approval_rates : iterable of float, default (0.5, 0.7, 0.9)
        Approval rates in (0, 1] for the default cutoffs.
    task : {'binary', 'regression'}, default 'binary'
        Metrics against ``y``: AUC, Gini, KS (plus log loss and Brier when both scores are
        probabilities) for 'binary'; RMSE, MAE and R² for 'regression'.
    is_probability : bool, optional
        Whether the scores are probabilities of bad (enables log loss and Brier). By default: both
        scores lie in [0, 1] and ``higher_is_riskier``.
    psi_bins : int, default 10
        Bins for the PSI.

    Returns
    -------
    Comparison
        With ``to_frame()``, ``to_dict()`` (JSON-serialisable) and a readable ``str()``.

    Raises
    ------
    DataError
        Non-finite scores, lengths that do not match, labels that are not 0/1 or a single class
        (binary task), invalid cutoffs or approval rates.
    """
    if any(_is_dask(v) for v in (score_a, score_b, y)):  # reductions on the cluster
        from .scaleout._compare import compare_scores_dask

        return compare_scores_dask(score_a, score_b, y, cutoffs, higher_is_riskier,
                                   approval_rates=approval_rates, task=task,
                                   is_probability=is_probability, psi_bins=psi_bins)
    a = check_scores(score_a, "score_a")
    b = check_scores(score_b, "score_b")
    check_length(b, len(a), "score_b", "score_a")
    if task not in ("binary", "regression"):
        raise DataError(f"task must be 'binary' or 'regression'; got {task!r}")
    yy: np.ndarray | None = None
    if y is not None:
        if task == "binary":
            yy = check_binary_y(y, len(a), "score_a")
        else:
            yy = check_scores(y, "y")
            check_length(yy, len(a), "y", "score_a")
    if is_probability is None:
        is_probability = bool(
            higher_is_riskier and a.min() >= 0 and a.max() <= 1 and b.min() >= 0 and b.max() <= 1
        )

    diff = np.abs(a - b)
    abs_diff = {name: float(np.quantile(diff, q)) for name, q in ABS_DIFF_QUANTILES}
    metrics = (None if yy is None
               else _score_metrics(yy, a, b, task, is_probability, higher_is_riskier))

    swaps: list[SwapSet] = []
    if cutoffs is None:
        for rate in approval_rates:
            r = float(rate)
            if not 0 < r <= 1:
                raise DataError(f"approval rates must be in (0, 1]; got {rate!r}")
            swaps.append(_swap_set(
                a, b, yy,
                _cutoff_for_approval_rate(a, r, higher_is_riskier),
                _cutoff_for_approval_rate(b, r, higher_is_riskier),
                r, higher_is_riskier,
            ))
    else:
        for c in _as_cutoff_list(cutoffs):
            swaps.append(_swap_set(a, b, yy, c, c, None, higher_is_riskier))

    return Comparison(
        n_rows=int(len(a)),
        higher_is_riskier=bool(higher_is_riskier),
        task=None if yy is None else task,
        correlations=_correlations(a, b),
        abs_diff=abs_diff,
        psi=psi(a, b, n_bins=psi_bins),
        metrics=metrics,
        swap_sets=tuple(swaps),
    )


def _is_dask(values: Any) -> bool:
    from .scaleout import is_dask_collection

    return is_dask_collection(values)


def compare(
    model_a: Any,
    model_b: Any,
    X: Any,
    y: Any = None,
    cutoffs: float | Sequence[float] | None = None,
    output: str = "prediction",
    *,
    approval_rates: Iterable[float] = DEFAULT_APPROVAL_RATES,
    higher_is_riskier: bool = True,
    positive_label: Any = None,
) -> Comparison:
    """Compare two models' scores on the same rows ``X`` (typically original vs pruned).

    Parameters
    ----------
    model_a, model_b : Ensemble or anything :func:`treeprune.load` accepts
        Binary or regression models (multiclass is not supported).
    X : array-like, pandas.DataFrame or dask collection of shape (n, n_features)
        Rows to score (validation data). A dask DataFrame/Array is scored partition-wise on the
        cluster and compared by reductions there; no rows come back (``treeprune[dask]``).
    y : array-like or dask Series/Array of shape (n,), optional
        Outcome: 0 (good) / 1 (bad) for binary models, the response for regression.
    cutoffs : float or sequence of float, optional
        Explicit cutoffs for both scores; default: the same approval rate for both (50%, 70%,
        90%). See :func:`compare_scores`.
    output : {'prediction', 'margin'}, default 'prediction'
        Score to compare: the probability of bad (binary) or the prediction (regression), or the
        margin (log-odds for binary).
    approval_rates : iterable of float, default (0.5, 0.7, 0.9)
        Approval rates for the default cutoffs.
    higher_is_riskier : bool, default True
        Whether a higher score means riskier.
    positive_label : optional
        For binary models and labels that are not 0/1 (e.g. ``"bad"``/``"good"``): the value of
        ``y`` that counts as the event (coded 1), as in :func:`treeprune.prune`.

    Returns
    -------
    Comparison

    Raises
    ------
    DataError
        A multiclass model, models of different kinds, an unknown ``output``, invalid data, or
        labels that :func:`treeprune.prune` would refuse for model A.
    """
    from .ensemble import Ensemble
    from .io import load

    if output not in ("prediction", "margin"):
        raise DataError(f"output must be 'prediction' or 'margin'; got {output!r}")
    models = [m if isinstance(m, Ensemble) else load(m) for m in (model_a, model_b)]
    for label, m in zip("AB", models, strict=True):
        if m.objective.is_multiclass or m.n_groups != 1:
            raise DataError(
                f"compare supports binary and regression models; model {label} is multiclass "
                f"({m.objective.name}, {m.objective.n_classes} classes)"
            )
    binary = [m.objective.is_binary for m in models]
    if binary[0] != binary[1]:
        kinds = ["binary" if k else "regression" for k in binary]
        raise DataError(
            f"compare needs two models of the same kind; model A is {kinds[0]} "
            f"({models[0].objective.name}), model B is {kinds[1]} ({models[1].objective.name})"
        )
    if positive_label is not None and y is None:
        raise DataError("positive_label names a value of y; give y too")
    if any(_is_dask(v) for v in (X, y)):  # scored and compared on the cluster
        if positive_label is not None and not binary[0]:
            raise DataError("positive_label applies to binary models; model A is "
                            f"{models[0].objective.name}")
        from .scaleout._compare import model_scores

        *scores, y = model_scores(models, X, y, output, positive_label)
    else:
        scores = [np.asarray(m.predict(X, output=output), dtype=np.float64).reshape(-1)
                  for m in models]
        if y is not None:  # the labels prune would accept for this model, coded as prune codes
            y = check_outcomes(y, len(scores[0]), models[0].objective, positive_label)
    is_prob = bool(
        binary[0] and output == "prediction"
        and all(m.objective.output == "sigmoid" for m in models)
    )
    return compare_scores(
        scores[0],
        scores[1],
        y=y,
        cutoffs=cutoffs,
        higher_is_riskier=higher_is_riskier,
        approval_rates=approval_rates,
        task="binary" if binary[0] else "regression",
        is_probability=is_prob and higher_is_riskier,
    )


__all__ = [
    "ABS_DIFF_QUANTILES",
    "DEFAULT_APPROVAL_RATES",
    "Comparison",
    "SwapSet",
    "compare",
    "compare_scores",
]
