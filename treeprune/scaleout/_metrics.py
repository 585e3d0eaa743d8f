"""Credit metrics of scores held in dask collections, as exact reductions over the partitions.

Each partition is reduced to its *score table*: the distinct scores with the number of rows and
of bads at each. Tables merge exactly (a tree reduction), and the merged table determines
everything the in-memory metrics compute from the full sorted score: AUC, Gini and KS (the ROC
curve only moves at distinct scores), quantiles with numpy's linear interpolation (decile bins,
PSI edges, cutoffs at an approval rate) and per-bin counts. So the results equal the in-memory
ones on data that fits. The client holds one table row per *distinct* score (three numbers);
the features and the rows themselves never leave the workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_1d_float, check_binary_y, check_scores
from ..errors import DataError
from . import is_dask_collection, require_dask

#: How many partial results one task merges in the tree reduction.
FAN_IN = 8


@dataclass(frozen=True)
class ScoreTable:
    """Distinct finite scores in ascending order, with the rows and the bads (y = 1) at each."""

    value: np.ndarray
    count: np.ndarray
    bads: np.ndarray

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def sorted_at(self, ranks: np.ndarray) -> np.ndarray:
        """The values at 0-based positions ``ranks`` of the full sorted score."""
        return self.value[np.searchsorted(np.cumsum(self.count), ranks, side="right")]

    def quantile(self, q: np.ndarray) -> np.ndarray:
        """``numpy.quantile(score, q)`` (linear interpolation), from the table."""
        q = np.asarray(q, dtype=np.float64)
        virtual = q * (self.n - 1)
        lo = np.floor(virtual)
        below = self.sorted_at(lo.astype(np.int64))
        above = self.sorted_at(np.minimum(lo + 1, self.n - 1).astype(np.int64))
        # numpy's own interpolation on the two neighbours, for bit-equal results
        return np.array([np.quantile(np.array([b, a]), g) for b, a, g in
                         zip(below, above, virtual - lo, strict=True)], dtype=np.float64)

    def negated(self) -> ScoreTable:
        """The table of ``-score`` (points-like scores ranked as risk)."""
        return ScoreTable(-self.value[::-1], self.count[::-1], self.bads[::-1])


def _table(score: Any, y: Any) -> ScoreTable:
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return ScoreTable(empty, empty.astype(np.int64), empty.astype(np.int64))
    s = check_scores(s, "score")
    values, inverse = np.unique(s, return_inverse=True)
    count = np.bincount(inverse, minlength=len(values))
    if y is None:
        return ScoreTable(values, count, np.zeros_like(count))
    yy = check_binary_y(np.asarray(y).reshape(-1), len(s), "score", both_classes=False)
    bads = np.bincount(inverse, weights=yy, minlength=len(values)).astype(np.int64)
    return ScoreTable(values, count, bads)


def _merge(*tables: ScoreTable) -> ScoreTable:
    values = np.concatenate([t.value for t in tables])
    merged, inverse = np.unique(values, return_inverse=True)
    count = np.bincount(inverse, weights=np.concatenate([t.count for t in tables]),
                        minlength=len(merged))
    bads = np.bincount(inverse, weights=np.concatenate([t.bads for t in tables]),
                       minlength=len(merged))
    return ScoreTable(merged, count.astype(np.int64), bads.astype(np.int64))


def _blocks(x: Any, name: str) -> tuple[list[Any], tuple[float, ...] | None]:
    """The delayed 1-D partitions of a dask array/series/one-column frame, and their lengths."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(x, dd.DataFrame):
        if len(x.columns) != 1:
            raise DataError(f"{name} must be one column; got a frame of {len(x.columns)} columns")
        x = x[x.columns[0]]
    if isinstance(x, dd.Series):
        return list(x.to_delayed()), None
    if isinstance(x, da.Array):
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise DataError(f"{name} must be one-dimensional (one value per row); got {x.ndim} "
                            "dimensions — class-probability matrices are not supported")
        return list(x.to_delayed().ravel()), x.chunks[0]
    raise DataError(f"{name} must be a dask Array or Series (or both inputs in memory); "
                    f"got {type(x).__name__}")


def _aligned(score: Any, y: Any) -> list[tuple[Any, Any]]:
    """Pairs of (score, y) partitions; y may be in memory when the score's row chunks are known."""
    import dask.array as da

    s_parts, s_sizes = _blocks(score, "score")
    if y is None:
        return [(p, None) for p in s_parts]
    if not is_dask_collection(y):
        if s_sizes is None or any(math.isnan(n) for n in s_sizes):
            raise DataError("y is in memory but the score's partition sizes are unknown; pass y "
                            "as a dask collection partitioned like the score (a column of the "
                            "same dask DataFrame)")
        yy = as_1d_float(y, "y")
        if len(yy) != sum(s_sizes):
            raise DataError(f"y has {len(yy)} rows but score has {int(sum(s_sizes))}; "
                            "they must match")
        y = da.from_array(yy, chunks=(s_sizes,))
    if isinstance(y, da.Array) and s_sizes is not None and y.ndim == 1 \
            and not any(math.isnan(n) for n in (*s_sizes, *y.chunks[0])) and y.chunks[0] != s_sizes:
        if y.shape[0] != sum(s_sizes):
            raise DataError(f"y has {y.shape[0]} rows but score has {int(sum(s_sizes))}; "
                            "they must match")
        y = y.rechunk((s_sizes,))
    y_parts, _ = _blocks(y, "y")
    if len(y_parts) != len(s_parts):
        raise DataError(f"y has {len(y_parts)} partitions but score has {len(s_parts)}; "
                        "partition them alike (columns of one dask DataFrame, say)")
    return list(zip(s_parts, y_parts, strict=True))


def _tree_reduce(parts: list[Any], combine: Any) -> Any:
    import dask

    combine_d = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [combine_d(*parts[i:i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


def score_table(score: Any, y: Any = None) -> ScoreTable:
    """The merged :class:`ScoreTable` of a dask score (and outcome), computed on the cluster."""
    require_dask("dask scores")
    import dask

    pairs = _aligned(score, y)
    if not pairs:
        raise DataError("score is empty")
    table_d = dask.delayed(_table, pure=True)
    (table,) = dask.compute(_tree_reduce([table_d(s, yy) for s, yy in pairs], _merge))
    if table.n == 0:
        raise DataError("score is empty")
    return table


def _check_both_classes(table: ScoreTable) -> None:
    bads = int(table.bads.sum())
    if bads in (0, table.n):
        raise DataError(f"y contains a single class (all {1 if bads else 0}); AUC, Gini and KS "
                        "need both goods (0) and bads (1)")


def _as_weighted_rows(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, score, weight): each distinct score once as bads and once as goods, weighted by count.

    scikit-learn's ROC curve with these integer weights passes through exactly the points of the
    unweighted curve of the rows, so the in-memory metric functions give the same numbers.
    """
    goods = table.count - table.bads
    y = np.concatenate([np.ones(len(table.value)), np.zeros(len(table.value))])
    s = np.concatenate([table.value, table.value])
    w = np.concatenate([table.bads, goods]).astype(np.float64)
    keep = w > 0
    return y[keep], s[keep], w[keep]


def auc(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.auc` of dask collections, exact (see the module docstring)."""
    from .. import metrics

    table = score_table(score, y)
    _check_both_classes(table)
    yy, s, w = _as_weighted_rows(table)
    return metrics.auc(yy, s, w, higher_is_riskier=higher_is_riskier)


def gini(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.gini` of dask collections, exact."""
    return 2.0 * auc(y, score, higher_is_riskier=higher_is_riskier) - 1.0


def ks(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.ks` of dask collections, exact."""
    from .. import metrics

    table = score_table(score, y)
    _check_both_classes(table)
    yy, s, w = _as_weighted_rows(table)
    return metrics.ks(yy, s, w, higher_is_riskier=higher_is_riskier)


def decile_table(y: Any, score: Any, n_bins: int = 10, *,
                 higher_is_riskier: bool = True) -> pd.DataFrame:
    """:func:`treeprune.metrics.decile_table` of dask collections, exact."""
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
    table = score_table(score, y)
    _check_both_classes(table)
    risk = table if higher_is_riskier else table.negated()
    inner = np.unique(risk.quantile(np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]))
    # bin k (from the safest, 0-based) holds inner[k-1] < risk <= inner[k]; ranked riskiest first
    from_safest = np.searchsorted(inner, risk.value, side="left")
    present = np.unique(from_safest)
    rank = np.empty(int(present.max()) + 1, dtype=np.int64)
    rank[present[::-1]] = np.arange(1, len(present) + 1)
    score_value = risk.value if higher_is_riskier else -risk.value
    frame = pd.DataFrame({"bin": rank[from_safest], "score": score_value,
                          "count": risk.count, "bads": risk.bads})
    out = frame.groupby("bin", sort=True).agg(
        score_min=("score", "min"), score_max=("score", "max"),
        count=("count", "sum"), bads=("bads", "sum"),
    )
    out["goods"] = out["count"] - out["bads"]
    out["bad_rate"] = out["bads"] / out["count"]
    out["cum_count_share"] = out["count"].cumsum() / table.n
    out["cum_bads"] = out["bads"].cumsum()
    out["cum_bad_capture"] = out["cum_bads"] / out["bads"].sum()
    out["cum_good_capture"] = out["goods"].cumsum() / out["goods"].sum()
    return out.reset_index()


def _bin_counts(values: Any, inner: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size:
        check_scores(v, "actual")
    return np.bincount(np.searchsorted(inner, v, side="left"), minlength=len(inner) + 1)


def _sum(*counts: np.ndarray) -> np.ndarray:
    return np.sum(counts, axis=0)


def psi(expected: Any, actual: Any, n_bins: int = 10, bins: Any = "quantile") -> Any:
    """:func:`treeprune.metrics.psi` where either distribution may be a dask collection, exact.

    The bin edges come from a first pass (the expected score's table); the counts of both
    distributions are then histograms reduced over the partitions.
    """
    require_dask("dask scores")
    import dask

    from ..metrics import _psi_edges, psi_from_counts

    if isinstance(bins, str) and bins in ("quantile", "uniform"):
        if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
            raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
    if is_dask_collection(expected):
        e_table = score_table(expected)
    else:
        e_table = _table(check_scores(expected, "expected"), None)
    if isinstance(bins, str) and bins == "quantile":
        inner = np.unique(e_table.quantile(np.arange(1, n_bins) / n_bins))
    elif isinstance(bins, str) and bins == "uniform":
        lo, hi = e_table.value[0], e_table.value[-1]
        inner = np.unique(np.linspace(lo, hi, n_bins + 1)[1:-1])
    else:
        inner = _psi_edges(np.zeros(1), n_bins, bins)
    e_counts = np.bincount(np.searchsorted(inner, e_table.value, side="left"),
                           weights=e_table.count, minlength=len(inner) + 1).astype(np.int64)
    if is_dask_collection(actual):
        parts = [p for p, _ in _aligned(actual, None)]
        count_d = dask.delayed(_bin_counts, pure=True)
        (a_counts,) = dask.compute(_tree_reduce([count_d(p, inner) for p in parts], _sum))
    else:
        a_counts = _bin_counts(check_scores(actual, "actual"), inner)
    if a_counts.sum() == 0:
        raise DataError("actual is empty")
    return psi_from_counts(inner, e_counts, a_counts)


__all__ = ["ScoreTable", "auc", "decile_table", "gini", "ks", "psi", "score_table"]
