"""Credit-risk metrics of one score: AUC, Gini, KS, log loss, Brier, decile tables, PSI.

Conventions used throughout:

* ``y`` is the binary outcome with ``1 = bad`` (default) and ``0 = good``.
* A *score* is anything that ranks applicants: a probability of default, a margin (log-odds of
  bad), or scorecard points. By default a higher score means *riskier* (PD-like); pass
  ``higher_is_riskier=False`` for points-like scores where a higher score is safer.
* Every input problem (labels other than 0/1, a single class, NaN scores, lengths that do not
  match) raises :class:`treeprune.errors.DataError` with a message that names it.

The arithmetic is done by numpy and scikit-learn; this module adds the credit conventions (Gini,
KS, decile tables, PSI bands) and the validation around them. AUC, Gini, KS, the decile table and
the PSI also take dask collections (``treeprune[dask]``): they are then reductions over the
partitions (:mod:`treeprune.scaleout._metrics`), equal to the in-memory results up to 65,536
distinct scores and within stated, computed bounds past that (memory stays bounded). Comparing two scores or two models
(correlations, swap sets, metric deltas) is :mod:`treeprune.comparison`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ._validation import (
    as_1d_float,
    check_binary_y,
    check_scores,
    check_weights,
)
from .errors import DataError

#: Share given to an empty PSI bin (in either distribution) so that ``ln(a / e)`` is finite.
PSI_EPSILON = 1e-4
#: Upper limits (exclusive) of the PSI bands, in order.
PSI_BANDS: tuple[tuple[float, str], ...] = (
    (0.1, "stable"),
    (0.25, "moderate shift"),
    (math.inf, "significant shift"),
)


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _is_dask(values: Any) -> bool:
    """A dask collection: the metric is computed as a reduction over its partitions."""
    from .scaleout import is_dask_collection

    return is_dask_collection(values)


def _no_dask_weights(sample_weight: Any) -> None:
    if sample_weight is not None:
        raise DataError("sample_weight is not supported with dask scores; "
                        "compute the metric in memory, or drop the weights")


def _check_weights(sample_weight: Any, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    return check_weights(as_1d_float(sample_weight, "sample_weight"), n, "score")


def _check_probability(values: Any, name: str) -> np.ndarray:
    p = check_scores(values, name)
    if (p < 0).any() or (p > 1).any():
        raise DataError(
            f"{name} must be probabilities in [0, 1]; found range [{p.min():g}, {p.max():g}] "
            "(pass probabilities, not margins or points)"
        )
    return p


def _prepare_binary(
    y: Any, score: Any, sample_weight: Any, name: str = "score"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    s = check_scores(score, name)
    yy = check_binary_y(y, len(s), name)
    w = _check_weights(sample_weight, len(s))
    return s, yy, w


def _prepare_probability(
    y: Any, prob: Any, sample_weight: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Probabilities of bad, outcomes (a single class allowed) and weights, checked."""
    p = _check_probability(prob, "prob")
    yy = check_binary_y(y, len(p), "prob", both_classes=False)
    return p, yy, _check_weights(sample_weight, len(p))


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
    if _is_dask(score):
        from .scaleout import _metrics

        _no_dask_weights(sample_weight)
        return _metrics.auc(y, score, higher_is_riskier=higher_is_riskier)
    s, yy, w = _prepare_binary(y, score, sample_weight)
    if not higher_is_riskier:
        s = -s
    if w is None:
        return _auc_unweighted(yy, s)
    return float(skm.roc_auc_score(yy, s, sample_weight=w))


def _auc_unweighted(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney form of the AUC (ties count a half): the same number as scikit-learn's
    ``roc_auc_score`` without its input validation, which cost 40 ms a call on a few thousand
    rows and dominated a pruning path's hundreds of descriptive AUCs."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError("AUC needs both outcomes (0 and 1) among the rows")
    rank_sum = float(rankdata(s)[pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


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
    if _is_dask(score):
        from .scaleout import _metrics

        _no_dask_weights(sample_weight)
        return _metrics.ks(y, score, higher_is_riskier=higher_is_riskier)
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
    p, yy, w = _prepare_probability(y, prob, sample_weight)
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
    p, yy, w = _prepare_probability(y, prob, sample_weight)
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
    if _is_dask(score):
        from .scaleout import _metrics

        return _metrics.decile_table(y, score, n_bins, higher_is_riskier=higher_is_riskier)
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
# JSON output
# ------------------------------------------------------------------------------------------------
def json_float(value: Any) -> float | None:
    """``value`` as a float for JSON: ``None`` for None, NaN and infinities."""
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
                out[str(k)] = json_float(v)
            else:
                out[str(k)] = v
        records.append(out)
    return records


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
            "value": json_float(self.value),
            "band": self.band,
            "epsilon": self.epsilon,
            "bins": _frame_records(self.table),
        }

    def __str__(self) -> str:
        return f"PSI {self.value:.6f} ({self.band}, {self.n_bins} bins)"


def off_ties(inner: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Quantile edges moved off the values they fall on: halfway to the next larger value.

    ``distinct`` holds the sorted distinct values of the distribution the edges were cut on. An
    edge that equals one of them (a quantile inside a group of tied scores: applicants without a
    bureau file often share one score) would make the whole group's bin depend on a score equal
    to it up to rounding. Halfway to the next larger value, the expected counts stay the same and
    a score a rounding error away from the tie still falls with it.
    """
    inner = np.unique(inner)
    at = np.searchsorted(distinct, inner)
    hit = (at < len(distinct) - 1) & (distinct[np.minimum(at, len(distinct) - 1)] == inner)
    inner[hit] = 0.5 * (distinct[at[hit]] + distinct[at[hit] + 1])
    return np.unique(inner)


def _psi_edges(expected: np.ndarray, n_bins: int, bins: Any) -> np.ndarray:
    if isinstance(bins, str):
        if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
            raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
        if bins == "quantile":
            return off_ties(np.quantile(expected, np.arange(1, n_bins) / n_bins),
                            np.unique(expected))
        elif bins == "uniform":
            inner = np.linspace(expected.min(), expected.max(), n_bins + 1)[1:-1]
        else:
            raise DataError(f"bins must be 'quantile', 'uniform' or an array of edges; got {bins!r}")
    else:
        inner = as_1d_float(bins, "bins")
        if not np.isfinite(inner).all():
            raise DataError("explicit PSI bin edges must be finite (the outer bins are open-ended)")
    return np.unique(inner)


def psi(expected: Any, actual: Any, n_bins: int = 10, bins: Any = "quantile") -> PSIResult:
    """Population stability index of ``actual`` against ``expected``.

    Bins are cut on the *expected* distribution and the same edges are applied to ``actual``:

    * ``bins='quantile'`` (default): the ``k / n_bins`` quantiles of ``expected`` (duplicate edges
      from ties are merged, so there can be fewer bins than asked for; an edge that falls on a
      value of ``expected`` moves halfway to the next larger value, so that a group of tied
      scores is not split from a score equal to it up to rounding);
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
    if _is_dask(expected) or _is_dask(actual):
        from .scaleout import _metrics

        return _metrics.psi(expected, actual, n_bins=n_bins, bins=bins)
    e = check_scores(expected, "expected")
    a = check_scores(actual, "actual")
    inner = _psi_edges(e, n_bins, bins)
    e_counts = np.bincount(np.searchsorted(inner, e, side="left"), minlength=len(inner) + 1)
    a_counts = np.bincount(np.searchsorted(inner, a, side="left"), minlength=len(inner) + 1)
    return psi_from_counts(inner, e_counts, a_counts)


def psi_from_counts(inner: np.ndarray, e_counts: np.ndarray, a_counts: np.ndarray) -> PSIResult:
    """The :func:`psi` of two histograms over the bins that the inner edges ``inner`` cut.

    For distributions too large to hold (:mod:`treeprune.scaleout` reduces them to counts).
    """
    e_share = e_counts / e_counts.sum()
    a_share = a_counts / a_counts.sum()
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


#: Names that lived here before model comparison got its own module; old imports keep working.
_MOVED = frozenset({"ABS_DIFF_QUANTILES", "DEFAULT_APPROVAL_RATES", "Comparison",
                               "SwapSet", "compare", "compare_scores"})


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from . import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PSI_EPSILON",
    "PSIResult",
    "auc",
    "brier",
    "decile_table",
    "gini",
    "ks",
    "log_loss",
    "psi",
    "psi_band",
    "psi_from_counts",
]
