"""Credit-risk metrics and model-to-model comparison.

Conventions used throughout:

* ``y`` is the binary outcome with ``1 = bad`` (default) and ``0 = good``.
* A *score* is anything that ranks applicants: a probability of default, a margin (log-odds of
  bad), or scorecard points. By default a higher score means *riskier* (PD-like); pass
  ``higher_is_riskier=False`` for points-like scores where a higher score is safer.
* Every input problem (labels other than 0/1, a single class, NaN scores, lengths that do not
  match) raises :class:`treeprune.errors.DataError` with a message that names it.

The arithmetic is done by numpy, scipy and scikit-learn; this module adds the credit conventions
(Gini, KS, decile tables, PSI bands, swap sets) and the validation around them.
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

from .errors import DataError

#: Share given to an empty PSI bin (in either distribution) so that ``ln(a / e)`` is finite.
PSI_EPSILON = 1e-4
#: Upper limits (exclusive) of the PSI bands, in order.
PSI_BANDS: tuple[tuple[float, str], ...] = (
    (0.1, "stable"),
    (0.25, "moderate shift"),
    (math.inf, "significant shift"),
)
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


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _as_1d_float(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array (an ``(n, 1)`` column is flattened)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(
            f"{name} must be one-dimensional (one value per row); got shape {arr.shape}"
            + (" — class-probability matrices (multiclass) are not supported" if arr.ndim == 2
               else "")
        )
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    return arr


def _check_scores(values: Any, name: str) -> np.ndarray:
    arr = _as_1d_float(values, name)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        n_inf = int(np.count_nonzero(bad)) - n_nan
        raise DataError(
            f"{name} has {n_nan} NaN and {n_inf} infinite values (first at row "
            f"{int(np.flatnonzero(bad)[0])}); scores must be finite"
        )
    return arr


def _check_length(arr: np.ndarray, n: int, name: str, other: str) -> None:
    if len(arr) != n:
        raise DataError(f"{name} has {len(arr)} rows but {other} has {n}; they must match")


def _check_binary_y(
    y: Any, n: int, other: str = "score", both_classes: bool = True
) -> np.ndarray:
    arr = _as_1d_float(y, "y")
    _check_length(arr, n, "y", other)
    if np.isnan(arr).any():
        raise DataError(
            f"y has {int(np.count_nonzero(np.isnan(arr)))} missing values; labels must be 0 or 1"
        )
    values = np.unique(arr)
    if not np.isin(values, (0.0, 1.0)).all():
        shown = ", ".join(f"{v:g}" for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise DataError(
            "y must contain only 0 (good) and 1 (bad) for binary metrics; "
            f"found values {{{shown}}}"
        )
    if both_classes and len(values) < 2:
        raise DataError(
            f"y contains a single class (all {int(values[0])}); AUC, Gini and KS need both "
            "goods (0) and bads (1)"
        )
    return arr.astype(np.int64)


def _check_weights(sample_weight: Any, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = _as_1d_float(sample_weight, "sample_weight")
    _check_length(w, n, "sample_weight", "score")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise DataError("sample_weight sums to zero")
    return w


def _check_probability(values: Any, name: str) -> np.ndarray:
    p = _check_scores(values, name)
    if (p < 0).any() or (p > 1).any():
        raise DataError(
            f"{name} must be probabilities in [0, 1]; found range [{p.min():g}, {p.max():g}] "
            "(pass probabilities, not margins or points)"
        )
    return p


def _prepare_binary(
    y: Any, score: Any, sample_weight: Any, name: str = "score"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    s = _check_scores(score, name)
    yy = _check_binary_y(y, len(s), name)
    w = _check_weights(sample_weight, len(s))
    return s, yy, w


# ------------------------------------------------------------------------------------------------
# single-score metrics
# ------------------------------------------------------------------------------------------------
def auc(
    y: Any, score: Any, sample_weight: Any = None, *, higher_is_riskier: bool = True
) -> float:
    """Area under the ROC curve of ``score`` for telling bads from goods.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, ``1`` = bad, ``0`` = good.
    score : array-like of shape (n,)
        Finite scores; by default a higher score means riskier (PD, margin).
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.
    higher_is_riskier : bool, default True
        Set to False for points-like scores (higher = safer); the score is then negated.

    Returns
    -------
    float
        AUC in [0, 1]; 0.5 is no discrimination.

    Raises
    ------
    DataError
        Labels other than 0/1, a single class, non-finite scores or mismatched lengths.
    """
    s, yy, w = _prepare_binary(y, score, sample_weight)
    if not higher_is_riskier:
        s = -s
    return float(skm.roc_auc_score(yy, s, sample_weight=w))


def gini(
    y: Any, score: Any, sample_weight: Any = None, *, higher_is_riskier: bool = True
) -> float:
    """Gini coefficient (accuracy ratio), ``2 * AUC - 1``.

    Parameters and errors are those of :func:`auc`.

    Returns
    -------
    float
        Gini in [-1, 1]; 0 is no discrimination.
    """
    return 2.0 * auc(y, score, sample_weight, higher_is_riskier=higher_is_riskier) - 1.0


def ks(
    y: Any, score: Any, sample_weight: Any = None, *, higher_is_riskier: bool = True
) -> float:
    """Kolmogorov-Smirnov statistic: largest gap between the score CDFs of goods and bads.

    Computed from the ROC curve as ``max(TPR - FPR)`` over all thresholds, i.e. one-sided in the
    risk direction: for a model that ranks bads above goods this equals the two-sample KS statistic
    (``scipy.stats.ks_2samp``); for a model that ranks them the wrong way it is close to 0.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, ``1`` = bad, ``0`` = good.
    score : array-like of shape (n,)
        Finite scores; by default a higher score means riskier.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.
    higher_is_riskier : bool, default True
        Set to False for points-like scores (higher = safer).

    Returns
    -------
    float
        KS in [0, 1].
    """
    s, yy, w = _prepare_binary(y, score, sample_weight)
    if not higher_is_riskier:
        s = -s
    fpr, tpr, _ = skm.roc_curve(yy, s, sample_weight=w, drop_intermediate=False)
    return float(np.max(tpr - fpr))


def log_loss(y: Any, prob: Any, sample_weight: Any = None) -> float:
    """Mean binary cross-entropy of predicted probabilities of bad.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, ``1`` = bad, ``0`` = good (a single class is allowed here).
    prob : array-like of shape (n,)
        Predicted probability of bad, in [0, 1]; scikit-learn clips it away from 0 and 1 by the
        float64 machine epsilon.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
    """
    p = _check_probability(prob, "prob")
    yy = _check_binary_y(y, len(p), "prob", both_classes=False)
    w = _check_weights(sample_weight, len(p))
    return float(skm.log_loss(yy, p, sample_weight=w, labels=[0, 1]))


def brier(y: Any, prob: Any, sample_weight: Any = None) -> float:
    """Brier score: mean squared difference between probability of bad and outcome.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, ``1`` = bad, ``0`` = good (a single class is allowed here).
    prob : array-like of shape (n,)
        Predicted probability of bad, in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        ``average((prob - y) ** 2)``, in [0, 1].
    """
    p = _check_probability(prob, "prob")
    yy = _check_binary_y(y, len(p), "prob", both_classes=False)
    w = _check_weights(sample_weight, len(p))
    return float(np.average((p - yy) ** 2, weights=w))


def decile_table(
    y: Any, score: Any, n_bins: int = 10, *, higher_is_riskier: bool = True
) -> pd.DataFrame:
    """Rows ranked from riskiest to safest, cut into ``n_bins`` bins of (about) equal count.

    Bin edges are quantiles of the score; rows with equal scores always share a bin, so with heavy
    ties there can be fewer bins than asked for and their counts can differ.

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome, ``1`` = bad, ``0`` = good.
    score : array-like of shape (n,)
        Finite scores; by default a higher score means riskier.
    n_bins : int, default 10
        Number of bins (deciles by default).
    higher_is_riskier : bool, default True
        Set to False for points-like scores (higher = safer).

    Returns
    -------
    pandas.DataFrame
        One row per bin, bin 1 the riskiest: ``bin``, ``score_min``, ``score_max``, ``count``,
        ``bads``, ``goods``, ``bad_rate``, ``cum_count_share``, ``cum_bads``,
        ``cum_bad_capture`` (share of all bads in this bin and the riskier ones) and
        ``cum_good_capture``. The largest ``cum_bad_capture - cum_good_capture`` is the KS at the
        bin edges.
    """
    s, yy, _ = _prepare_binary(y, score, None)
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
    risk = s if higher_is_riskier else -s
    inner = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]))
    # bin k (from the safest, 0-based) holds inner[k-1] < risk <= inner[k]
    from_safest = np.searchsorted(inner, risk, side="left")
    present = np.unique(from_safest)
    rank = np.empty(int(present.max()) + 1, dtype=np.int64)
    rank[present[::-1]] = np.arange(1, len(present) + 1)
    bins = rank[from_safest]
    frame = pd.DataFrame({"bin": bins, "score": s, "bad": yy})
    table = frame.groupby("bin", sort=True).agg(
        score_min=("score", "min"),
        score_max=("score", "max"),
        count=("bad", "size"),
        bads=("bad", "sum"),
    )
    table["goods"] = table["count"] - table["bads"]
    table["bad_rate"] = table["bads"] / table["count"]
    table["cum_count_share"] = table["count"].cumsum() / len(s)
    table["cum_bads"] = table["bads"].cumsum()
    table["cum_bad_capture"] = table["cum_bads"] / table["bads"].sum()
    table["cum_good_capture"] = table["goods"].cumsum() / table["goods"].sum()
    return table.reset_index()


# ------------------------------------------------------------------------------------------------
# PSI
# ------------------------------------------------------------------------------------------------
def psi_band(value: float) -> str:
    """The PSI band of ``value``: 'stable' (< 0.1), 'moderate shift' (0.1 to < 0.25) or
    'significant shift' (>= 0.25)."""
    for limit, name in PSI_BANDS:
        if value < limit:
            return name
    return PSI_BANDS[-1][1]


@dataclass(frozen=True, eq=False)
class PSIResult:
    """Population stability index of one distribution against another.

    Attributes
    ----------
    value : float
        ``sum((actual_share - expected_share) * ln(actual_share / expected_share))``.
    band : str
        'stable' (< 0.1), 'moderate shift' (0.1 to < 0.25), 'significant shift' (>= 0.25).
    table : pandas.DataFrame
        Per bin: ``bin``, ``lower``, ``upper`` (the bin is ``lower < x <= upper``; the outer bins
        are open-ended), ``expected_count``, ``actual_count``, ``expected_share``,
        ``actual_share`` (after the epsilon for empty bins) and ``contribution``.
    epsilon : float
        Share used in place of 0 for empty bins.
    """

    value: float
    band: str
    table: pd.DataFrame
    epsilon: float = PSI_EPSILON

    def __float__(self) -> float:
        return float(self.value)

    @property
    def n_bins(self) -> int:
        return int(len(self.table))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (infinite bin bounds become ``None``)."""
        return {
            "value": _json_float(self.value),
            "band": self.band,
            "epsilon": self.epsilon,
            "bins": _frame_records(self.table),
        }

    def __str__(self) -> str:
        return f"PSI {self.value:.6f} ({self.band}, {self.n_bins} bins)"


def _psi_edges(expected: np.ndarray, n_bins: int, bins: Any) -> np.ndarray:
    if isinstance(bins, str):
        if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
            raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
        if bins == "quantile":
            inner = np.quantile(expected, np.arange(1, n_bins) / n_bins)
        elif bins == "uniform":
            inner = np.linspace(expected.min(), expected.max(), n_bins + 1)[1:-1]
        else:
            raise DataError(f"bins must be 'quantile', 'uniform' or an array of edges; got {bins!r}")
    else:
        inner = _as_1d_float(bins, "bins")
        if not np.isfinite(inner).all():
            raise DataError("explicit PSI bin edges must be finite (the outer bins are open-ended)")
    return np.unique(inner)


def psi(expected: Any, actual: Any, n_bins: int = 10, bins: Any = "quantile") -> PSIResult:
    """Population stability index of ``actual`` against ``expected``.

    Bins are cut on the *expected* distribution and the same edges are applied to ``actual``:

    * ``bins='quantile'`` (default): the ``k / n_bins`` quantiles of ``expected`` (duplicate edges
      from ties are merged, so there can be fewer bins than asked for);
    * ``bins='uniform'``: equal-width edges between the min and max of ``expected``;
    * an array: explicit inner edges.

    Every bin is ``lower < x <= upper``; the first and last bins are open-ended (``-inf`` and
    ``+inf``), so values of ``actual`` outside the range of ``expected`` are still counted. An empty
    bin (in either distribution) gets the share ``epsilon = 1e-4`` (:data:`PSI_EPSILON`) instead of
    0, so that the logarithm stays finite; the other shares are left unchanged.

    Parameters
    ----------
    expected : array-like of shape (n_expected,)
        The reference distribution (development sample, original model's scores).
    actual : array-like of shape (n_actual,)
        The distribution compared with it (recent sample, pruned model's scores).
    n_bins : int, default 10
        Number of bins for the 'quantile' and 'uniform' rules.
    bins : {'quantile', 'uniform'} or array-like, default 'quantile'
        How the edges are chosen.

    Returns
    -------
    PSIResult
        ``value``, ``band`` ('stable' < 0.1 <= 'moderate shift' < 0.25 <= 'significant shift')
        and the per-bin ``table``.
    """
    e = _check_scores(expected, "expected")
    a = _check_scores(actual, "actual")
    inner = _psi_edges(e, n_bins, bins)
    e_counts = np.bincount(np.searchsorted(inner, e, side="left"), minlength=len(inner) + 1)
    a_counts = np.bincount(np.searchsorted(inner, a, side="left"), minlength=len(inner) + 1)
    e_share = e_counts / len(e)
    a_share = a_counts / len(a)
    e_share = np.where(e_counts == 0, PSI_EPSILON, e_share)
    a_share = np.where(a_counts == 0, PSI_EPSILON, a_share)
    contribution = (a_share - e_share) * np.log(a_share / e_share)
    table = pd.DataFrame(
        {
            "bin": np.arange(1, len(inner) + 2),
            "lower": np.concatenate([[-np.inf], inner]),
            "upper": np.concatenate([inner, [np.inf]]),
            "expected_count": e_counts,
            "actual_count": a_counts,
            "expected_share": e_share,
            "actual_share": a_share,
            "contribution": contribution,
        }
    )
    value = float(contribution.sum())
    return PSIResult(value=value, band=psi_band(value), table=table)


# ------------------------------------------------------------------------------------------------
# comparison of two scores
# ------------------------------------------------------------------------------------------------
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
            "cutoff_a": _json_float(self.cutoff_a),
            "cutoff_b": _json_float(self.cutoff_b),
            "target_approval_rate": _json_float(self.target_approval_rate),
            "approval_rate_a": _json_float(self.approval_rate_a),
            "approval_rate_b": _json_float(self.approval_rate_b),
            "agreement": _json_float(self.agreement),
            "swap_in": self.swap_in,
            "swap_out": self.swap_out,
            "counts": {r: {c: int(v) for c, v in row.items()}
                       for r, row in self.counts.to_dict(orient="index").items()},
        }
        out["outcome"] = (
            None if self.outcome is None
            else {r: {c: _json_float(v) for c, v in row.items()}
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
            "correlations": {k: _json_float(v) for k, v in self.correlations.items()},
            "abs_diff": {k: _json_float(v) for k, v in self.abs_diff.items()},
            "psi": self.psi.to_dict(),
            "metrics": (
                None if self.metrics is None
                else {str(m): {c: _json_float(v) for c, v in row.items()}
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


def _json_float(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for row in frame.to_dict(orient="records"):
        out: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, (bool, np.bool_)):
                out[str(k)] = bool(v)
            elif isinstance(v, (int, np.integer)):
                out[str(k)] = int(v)
            elif isinstance(v, (float, np.floating)):
                out[str(k)] = _json_float(v)
            else:
                out[str(k)] = v
        records.append(out)
    return records


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
    score_a, score_b : array-like of shape (n,)
        Finite scores of the same rows.
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
    a = _check_scores(score_a, "score_a")
    b = _check_scores(score_b, "score_b")
    _check_length(b, len(a), "score_b", "score_a")
    if task not in ("binary", "regression"):
        raise DataError(f"task must be 'binary' or 'regression'; got {task!r}")
    yy: np.ndarray | None = None
    if y is not None:
        if task == "binary":
            yy = _check_binary_y(y, len(a), "score_a")
        else:
            yy = _check_scores(y, "y")
            _check_length(yy, len(a), "y", "score_a")
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
) -> Comparison:
    """Compare two models' scores on the same rows ``X`` (typically original vs pruned).

    Parameters
    ----------
    model_a, model_b : Ensemble or anything :func:`treeprune.load` accepts
        Binary or regression models (multiclass is not supported).
    X : array-like or pandas.DataFrame of shape (n, n_features)
        Rows to score (validation data).
    y : array-like of shape (n,), optional
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

    Returns
    -------
    Comparison

    Raises
    ------
    DataError
        A multiclass model, models of different kinds, an unknown ``output``, or invalid data.
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
    scores = [np.asarray(m.predict(X, output=output), dtype=np.float64).reshape(-1)
              for m in models]
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
    "PSI_EPSILON",
    "Comparison",
    "PSIResult",
    "SwapSet",
    "auc",
    "brier",
    "compare",
    "compare_scores",
    "decile_table",
    "gini",
    "ks",
    "log_loss",
    "psi",
    "psi_band",
]
