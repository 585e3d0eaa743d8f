"""Credit metrics of scores held in dask collections, as reductions over the partitions.

Each partition is first reduced to its *score table*: the distinct scores with the number of rows
and of bads at each. Tables merge exactly (a tree reduction). While the merged table has at most
:data:`MAX_BINS` distinct scores (rounded scores, points, small data) it determines everything the
in-memory metrics compute from the full sorted score, and the results are **exact**: AUC, Gini and
KS (the ROC curve only moves at distinct scores), quantiles with numpy's linear interpolation
(decile edges, PSI edges, cutoffs) and per-bin counts.

Continuous scores on many rows have about one distinct value per row, so a table of them would
grow with the data. Past :data:`MAX_BINS` distinct values a table is compressed into a *sketch*
(at most ``MAX_BINS`` weighted points at evenly spaced ranks, with the exact minimum and maximum),
and the sketches merge and compress again; the client and every task then hold O(``MAX_BINS``)
numbers whatever the data size. The sketch gives bin edges; a second pass over the partitions
counts rows and bads per bin (with each bin's smallest and largest score), exactly. From that
*binned table*:

* **AUC / Gini** treat the rows inside one bin as tied. The exact AUC differs from this estimate
  by at most ``bound = 1/2 * sum_b bads_b * goods_b / (bads * goods)`` over the bins holding more
  than one distinct score (a pair inside a bin is counted 1/2 and is really 0 or 1). The bound is
  computed from the counts (:func:`auc_with_bound`); with bins of about ``n / MAX_BINS`` rows it is
  about ``1 / (2 * MAX_BINS)`` (8e-6) and at most ``1 / (4 * MAX_BINS * r * (1 - r))`` for a bad
  rate ``r``.
* **KS** is known exactly at every bin edge; inside a bin it can rise by at most the bin's share of
  bads (or goods). :func:`ks_with_bound` returns the middle of that interval and its half-width.
* **Quantiles** (decile edges, PSI edges, cutoffs) come from the sketch: each lies within one
  sketch bin of the exact quantile. The counts in the bins they cut are then exact (another pass):
  PSI and the decile table are exact *for the edges used*, which are the quantiles up to that rank
  error.

The features and the rows themselves never leave the workers.
"""

from __future__ import annotations

import functools
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
#: Most distinct scores kept exactly, and the number of bins past that (memory: ~32 bytes each).
MAX_BINS = 1 << 16


@dataclass(frozen=True)
class ScoreTable:
    """Bins of the score in ascending order, with the rows and the bads (y = 1) in each.

    ``value`` is the largest score in each bin and ``low`` the smallest. In an exact table every
    bin is one distinct score (``low`` is ``value``); a binned table (more than
    :data:`MAX_BINS` distinct scores) has disjoint bins of several scores.
    """

    value: np.ndarray
    count: np.ndarray
    bads: np.ndarray
    low: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def lows(self) -> np.ndarray:
        return self.value if self.low is None else self.low

    @property
    def exact(self) -> bool:
        return self.low is None or bool(np.array_equal(self.low, self.value))

    def sorted_at(self, ranks: np.ndarray) -> np.ndarray:
        """The values at 0-based positions ``ranks`` of the full sorted score (exact tables)."""
        return self.value[np.searchsorted(np.cumsum(self.count), ranks, side="right")]

    def quantile(self, q: np.ndarray) -> np.ndarray:
        """``numpy.quantile(score, q)`` (linear interpolation), from an exact table."""
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
        low = None if self.low is None else -self.value[::-1]
        return ScoreTable(-self.lows[::-1], self.count[::-1], self.bads[::-1], low)


@dataclass(frozen=True)
class Sketch:
    """Weighted points at evenly spaced ranks of a score too varied to tabulate, and its range."""

    value: np.ndarray
    weight: np.ndarray
    lowest: float
    highest: float

    @property
    def n(self) -> int:
        return int(round(float(self.weight.sum())))

    def quantile(self, q: np.ndarray) -> np.ndarray:
        """Approximate quantiles: each within one point's weight (in ranks) of the exact one."""
        q = np.asarray(q, dtype=np.float64)
        centre = np.cumsum(self.weight) - self.weight / 2
        rank = q * self.weight.sum()
        return np.interp(rank, np.concatenate([[0.0], centre, [self.weight.sum()]]),
                         np.concatenate([[self.lowest], self.value, [self.highest]]))


def _compress(value: np.ndarray, weight: np.ndarray, lowest: float, highest: float,
              max_bins: int) -> Sketch:
    """At most ``max_bins`` points of the sorted weighted ``value`` at evenly spaced ranks."""
    total = float(weight.sum())
    cum = np.cumsum(weight)
    targets = (np.arange(max_bins) + 0.5) * total / max_bins
    idx = np.minimum(np.searchsorted(cum, targets, side="left"), len(value) - 1)
    points, inverse = np.unique(value[idx], return_inverse=True)
    return Sketch(points, np.bincount(inverse, minlength=len(points)) * (total / max_bins),
                  lowest, highest)


def _table(score: Any, y: Any, max_bins: int = MAX_BINS) -> ScoreTable | Sketch:
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return ScoreTable(empty, empty.astype(np.int64), empty.astype(np.int64))
    s = check_scores(s, "score")
    values, inverse = np.unique(s, return_inverse=True)
    count = np.bincount(inverse, minlength=len(values))
    if y is not None:
        yy = check_binary_y(np.asarray(y).reshape(-1), len(s), "score", both_classes=False)
    if len(values) > max_bins:
        return _compress(values, count.astype(np.float64), values[0], values[-1], max_bins)
    if y is None:
        return ScoreTable(values, count, np.zeros_like(count))
    bads = np.bincount(inverse, weights=yy, minlength=len(values)).astype(np.int64)
    return ScoreTable(values, count, bads)


def _merge(*tables: ScoreTable | Sketch, max_bins: int = MAX_BINS) -> ScoreTable | Sketch:
    tables = tuple(t for t in tables if len(t.value))
    if not tables:
        return _table(np.empty(0), None)
    values = np.concatenate([t.value for t in tables])
    if all(isinstance(t, ScoreTable) for t in tables):
        merged, inverse = np.unique(values, return_inverse=True)
        count = np.bincount(inverse, weights=np.concatenate([t.count for t in tables]),
                            minlength=len(merged))
        if len(merged) <= max_bins:
            bads = np.bincount(inverse, weights=np.concatenate([t.bads for t in tables]),
                               minlength=len(merged))
            return ScoreTable(merged, count.astype(np.int64), bads.astype(np.int64))
        return _compress(merged, count, merged[0], merged[-1], max_bins)
    weights = np.concatenate([t.weight if isinstance(t, Sketch) else t.count.astype(np.float64)
                              for t in tables])
    order = np.argsort(values, kind="stable")
    lowest = min(t.lowest if isinstance(t, Sketch) else t.value[0] for t in tables)
    highest = max(t.highest if isinstance(t, Sketch) else t.value[-1] for t in tables)
    return _compress(values[order], weights[order], lowest, highest, max_bins)


def _histogram(score: Any, y: Any, inner: np.ndarray, negate: bool = False) -> np.ndarray:
    """Per bin ``inner[k-1] < s <= inner[k]``: rows, bads, smallest and largest score (4 x bins)."""
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    out = np.zeros((4, len(inner) + 1))
    out[2], out[3] = np.inf, -np.inf
    if s.size == 0:
        return out
    s = check_scores(s, "score")
    if negate:
        s = -s
    b = np.searchsorted(inner, s, side="left")
    out[0] = np.bincount(b, minlength=len(inner) + 1)
    if y is not None:
        yy = check_binary_y(np.asarray(y).reshape(-1), len(s), "score", both_classes=False)
        out[1] = np.bincount(b, weights=yy, minlength=len(inner) + 1)
    np.minimum.at(out[2], b, s)
    np.maximum.at(out[3], b, s)
    return out


def _add_histograms(*hists: np.ndarray) -> np.ndarray:
    out = hists[0].copy()
    for h in hists[1:]:
        out[:2] += h[:2]
        out[2] = np.minimum(out[2], h[2])
        out[3] = np.maximum(out[3], h[3])
    return out


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


def _reduce(parts: list[Any], combine: Any) -> Any:
    """Compute the tree reduction of the delayed ``parts`` with ``combine`` on the cluster."""
    import dask

    (out,) = dask.compute(_tree_reduce(parts, combine))
    return out


def first_pass(score: Any, y: Any = None, max_bins: int | None = None) -> ScoreTable | Sketch:
    """The exact :class:`ScoreTable` of a dask score (and outcome), or its :class:`Sketch` when it
    has more than ``max_bins`` distinct values; one pass over the partitions."""
    require_dask("dask scores")
    import dask

    max_bins = MAX_BINS if max_bins is None else int(max_bins)
    pairs = _aligned(score, y)
    if not pairs:
        raise DataError("score is empty")
    table_d = dask.delayed(functools.partial(_table, max_bins=max_bins), pure=True)
    out = _reduce([table_d(s, yy) for s, yy in pairs],
                  functools.partial(_merge, max_bins=max_bins))
    if out.n == 0:
        raise DataError("score is empty")
    return out


def histogram(score: Any, y: Any, inner: np.ndarray, negate: bool = False) -> np.ndarray:
    """Rows, bads, smallest and largest score in each bin ``inner[k-1] < s <= inner[k]``
    (``-s`` with ``negate``) of a dask score: a ``(4, len(inner) + 1)`` array, one pass."""
    import dask

    hist_d = dask.delayed(_histogram, pure=True)
    return _reduce([hist_d(s, yy, inner, negate) for s, yy in _aligned(score, y)],
                   _add_histograms)


def score_table(score: Any, y: Any = None, max_bins: int | None = None) -> ScoreTable:
    """The merged :class:`ScoreTable` of a dask score (and outcome), computed on the cluster.

    Exact (one pass) up to ``max_bins`` distinct scores; past that a binned table of at most
    ``max_bins + 1`` bins cut at the sketch's points (a second pass).
    """
    first = first_pass(score, y, max_bins)
    if isinstance(first, ScoreTable):
        return first
    h = histogram(score, y, first.value)
    keep = h[0] > 0
    return ScoreTable(h[3][keep], h[0][keep].astype(np.int64), h[1][keep].astype(np.int64),
                      low=h[2][keep])


def _check_both_classes(table: ScoreTable) -> None:
    bads = int(table.bads.sum())
    if bads in (0, table.n):
        raise DataError(f"y contains a single class (all {1 if bads else 0}); AUC, Gini and KS "
                        "need both goods (0) and bads (1)")


def _as_weighted_rows(table: ScoreTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, score, weight): each bin once as bads and once as goods, weighted by count.

    scikit-learn's ROC curve with these integer weights passes through exactly the points of the
    unweighted curve of the rows (of the rows with each bin's scores tied, for a binned table), so
    the in-memory metric functions give the same numbers.
    """
    goods = table.count - table.bads
    y = np.concatenate([np.ones(len(table.value)), np.zeros(len(table.value))])
    s = np.concatenate([table.value, table.value])
    w = np.concatenate([table.bads, goods]).astype(np.float64)
    keep = w > 0
    return y[keep], s[keep], w[keep]


def auc_with_bound(y: Any, score: Any, *, higher_is_riskier: bool = True,
                   max_bins: int | None = None) -> tuple[float, float]:
    """The AUC of dask collections and a bound on its error: ``|exact - estimate| <= bound``.

    ``bound`` is 0 while the score has at most ``max_bins`` distinct values (see the module
    docstring for the binned case).
    """
    from .. import metrics

    table = score_table(score, y, max_bins)
    _check_both_classes(table)
    yy, s, w = _as_weighted_rows(table)
    value = metrics.auc(yy, s, w, higher_is_riskier=higher_is_riskier)
    mixed = table.lows < table.value
    bads = table.bads.astype(np.float64)
    goods = (table.count - table.bads).astype(np.float64)
    bound = 0.5 * float(np.sum(bads[mixed] * goods[mixed])) / (bads.sum() * goods.sum())
    return value, bound


def auc(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.auc` of dask collections (exact, or within the stated bound)."""
    return auc_with_bound(y, score, higher_is_riskier=higher_is_riskier)[0]


def gini(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.gini` of dask collections."""
    return 2.0 * auc(y, score, higher_is_riskier=higher_is_riskier) - 1.0


def ks_with_bound(y: Any, score: Any, *, higher_is_riskier: bool = True,
                  max_bins: int | None = None) -> tuple[float, float]:
    """The KS of dask collections and a bound on its error: ``|exact - estimate| <= bound``."""
    from .. import metrics

    table = score_table(score, y, max_bins)
    _check_both_classes(table)
    yy, s, w = _as_weighted_rows(table)
    at_edges = metrics.ks(yy, s, w, higher_is_riskier=higher_is_riskier)
    risk = table if higher_is_riskier else table.negated()
    mixed = (risk.lows < risk.value)[::-1]
    if not mixed.any():
        return at_edges, 0.0
    # riskiest bin first: the gap TPR - FPR with the whole bin declined, and without it
    bads = risk.bads[::-1] / risk.bads.sum()
    goods = (risk.count - risk.bads)[::-1] / (risk.n - risk.bads.sum())
    with_bin = np.cumsum(bads) - np.cumsum(goods)
    without = np.concatenate([[0.0], with_bin[:-1]])
    # inside a bin the gap can rise by at most its bads above the gap without it, and by at most
    # its goods above the gap with it
    inside = np.minimum(without + bads, with_bin + goods)[mixed]
    highest = max(at_edges, float(inside.max()))
    return (at_edges + highest) / 2, (highest - at_edges) / 2


def ks(y: Any, score: Any, *, higher_is_riskier: bool = True) -> float:
    """:func:`treeprune.metrics.ks` of dask collections (exact, or within the stated bound)."""
    return ks_with_bound(y, score, higher_is_riskier=higher_is_riskier)[0]


def risk_quantile(first: ScoreTable | Sketch, q: np.ndarray, higher_is_riskier: bool
                  ) -> np.ndarray:
    """Quantiles of the risk (the score, or its negation), from a first pass."""
    q = np.asarray(q, dtype=np.float64)
    if higher_is_riskier:
        return first.quantile(q)
    if isinstance(first, ScoreTable):
        return first.negated().quantile(q)
    return -first.quantile(1.0 - q)


def decile_table(y: Any, score: Any, n_bins: int = 10, *,
                 higher_is_riskier: bool = True, max_bins: int | None = None) -> pd.DataFrame:
    """:func:`treeprune.metrics.decile_table` of dask collections.

    Exact up to ``max_bins`` distinct scores; past that the edges are the sketch's quantiles and
    the rows in each bin are counted exactly (a second pass).
    """
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
    first = first_pass(score, y, max_bins)
    inner = np.unique(risk_quantile(first, np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1],
                                    higher_is_riskier))
    if isinstance(first, ScoreTable):
        _check_both_classes(first)
        risk = first if higher_is_riskier else first.negated()
        # bin k (from the safest, 0-based) holds inner[k-1] < risk <= inner[k]
        from_safest = np.searchsorted(inner, risk.value, side="left")
        score_value = risk.value if higher_is_riskier else -risk.value
        lo = hi = score_value
        count, bads, n = risk.count, risk.bads, first.n
    else:
        h = histogram(score, y, inner, negate=not higher_is_riskier)
        from_safest = np.flatnonzero(h[0] > 0)
        count, bads = h[0][from_safest].astype(np.int64), h[1][from_safest].astype(np.int64)
        lo, hi = h[2][from_safest], h[3][from_safest]
        if not higher_is_riskier:
            lo, hi = -hi, -lo
        n = int(count.sum())
        if int(bads.sum()) in (0, n):
            raise DataError(f"y contains a single class (all {1 if bads.sum() else 0}); AUC, "
                            "Gini and KS need both goods (0) and bads (1)")
    present = np.unique(from_safest)
    rank = np.empty(int(present.max()) + 1, dtype=np.int64)
    rank[present[::-1]] = np.arange(1, len(present) + 1)
    frame = pd.DataFrame({"bin": rank[from_safest], "lo": lo, "hi": hi,
                          "count": count, "bads": bads})
    out = frame.groupby("bin", sort=True).agg(
        score_min=("lo", "min"), score_max=("hi", "max"),
        count=("count", "sum"), bads=("bads", "sum"),
    )
    out["goods"] = out["count"] - out["bads"]
    out["bad_rate"] = out["bads"] / out["count"]
    out["cum_count_share"] = out["count"].cumsum() / n
    out["cum_bads"] = out["bads"].cumsum()
    out["cum_bad_capture"] = out["cum_bads"] / out["bads"].sum()
    out["cum_good_capture"] = out["goods"].cumsum() / out["goods"].sum()
    return out.reset_index()


def psi(expected: Any, actual: Any, n_bins: int = 10, bins: Any = "quantile",
        max_bins: int | None = None) -> Any:
    """:func:`treeprune.metrics.psi` where either distribution may be a dask collection.

    The bin edges come from a first pass over the expected score (exact quantiles up to
    ``max_bins`` distinct values, else the sketch's); the counts of both distributions are then
    histograms reduced over the partitions, exact for those edges.
    """
    require_dask("dask scores")
    from ..metrics import _psi_edges, off_ties, psi_from_counts

    if isinstance(bins, str) and bins in ("quantile", "uniform"):
        if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
            raise DataError(f"n_bins must be a positive integer; got {n_bins!r}")
    if not is_dask_collection(expected):
        e = check_scores(expected, "expected")
        inner = _psi_edges(e, n_bins, bins)
        e_counts = np.bincount(np.searchsorted(inner, e, side="left"), minlength=len(inner) + 1)
    else:
        first = (first_pass(expected, None, max_bins)
                 if isinstance(bins, str) and bins in ("quantile", "uniform") else None)
        if first is None:
            inner = _psi_edges(np.zeros(1), n_bins, bins)
        elif bins == "quantile":
            inner = np.unique(first.quantile(np.arange(1, n_bins) / n_bins))
            if isinstance(first, ScoreTable) and first.exact:  # as in memory: edges off ties
                inner = off_ties(inner, first.value)
        else:
            lo, hi = ((first.value[0], first.value[-1]) if isinstance(first, ScoreTable)
                      else (first.lowest, first.highest))
            inner = np.unique(np.linspace(lo, hi, n_bins + 1)[1:-1])
        if isinstance(first, ScoreTable):
            e_counts = np.bincount(np.searchsorted(inner, first.value, side="left"),
                                   weights=first.count, minlength=len(inner) + 1)
        else:
            e_counts = histogram(expected, None, inner)[0]
        e_counts = e_counts.astype(np.int64)
    if is_dask_collection(actual):
        a_counts = histogram(actual, None, inner)[0].astype(np.int64)
    else:
        a_counts = np.bincount(np.searchsorted(inner, check_scores(actual, "actual"),
                                               side="left"), minlength=len(inner) + 1)
    if a_counts.sum() == 0:
        raise DataError("actual is empty")
    return psi_from_counts(inner, e_counts, a_counts)


__all__ = ["MAX_BINS", "ScoreTable", "Sketch", "auc", "auc_with_bound", "decile_table",
           "first_pass", "gini", "histogram", "ks", "ks_with_bound", "psi", "score_table"]
