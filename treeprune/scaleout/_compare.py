"""``tp.compare`` / ``compare_scores`` on dask collections, without bringing the rows back.

Every number is a reduction over the partitions, with the client holding O(``MAX_BINS``) numbers
(see :mod:`._metrics`):

* Pearson's correlation from merged moments (exact); Spearman's from each row's mid-rank under
  each score's table (exact up to ``MAX_BINS`` distinct scores per model, rows of one bin
  sharing its mid-rank past that).
* Kendall's tau needs every pair of rows; it is computed on a hash-drawn sample of at most
  :data:`KENDALL_ROWS` rows (all of them when there are fewer), so on larger data it is an
  estimate with standard error of about ``sqrt(2 / (9 m)) * 3 * sqrt(1 - tau^2)`` for ``m``
  sampled rows (under 0.003 at 100,000 rows).
* Quantiles of ``|a - b|`` from its table (exact) or sketch (within one sketch bin in rank; the
  maximum is exact); the PSI as :func:`._metrics.psi`.
* Metrics against ``y``: AUC, Gini and KS as :mod:`._metrics` (exact, or within its stated
  bounds); log loss, Brier, RMSE, MAE and R² from exact sums.
* Swap sets: each approval-rate cutoff is the score at that rank (exact from a table, within one
  sketch bin from a sketch); the 2x2 counts and bad rates at those cutoffs are counted exactly in
  one more pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from . import is_dask_collection, require_dask
from ._metrics import (
    ScoreTable,
    _aligned,
    _reduce,
    auc_with_bound,
    first_pass,
    ks_with_bound,
    psi,
)
from ._paired import correlation, pearson_moments
from ._predict import _model_node
from ._rows import labels, row_parts

#: Rows Kendall's tau is computed on (a hash-drawn sample past that).
KENDALL_ROWS = 100_000


def _as_dask_1d(v: Any, like: Any, name: str) -> Any:
    """``v`` as a 1-D dask array row-aligned with the dask score ``like``."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(v, dd.DataFrame):
        if len(v.columns) != 1:
            raise DataError(f"{name} must be one column; got a frame of {len(v.columns)} columns")
        v = v[v.columns[0]]
    if isinstance(v, dd.Series):
        v = v.to_dask_array()
    if is_dask_collection(v):
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        return v
    if like is None:
        raise DataError(f"{name} is in memory; pass both scores as dask collections")
    pairs = _aligned(like, v)  # the same checks (lengths, known partition sizes) as the metrics
    parts = [da.from_delayed(b, shape=(np.nan,), dtype=np.float64) for _, b in pairs]
    return da.concatenate(parts)


def _rank_value(first: ScoreTable | Any, k: int) -> float:
    if isinstance(first, ScoreTable):
        return float(first.sorted_at(np.array([k]))[0])
    return float(first.quantile(np.array([(k + 0.5) / first.n]))[0])


def _cutoff(first: Any, rate: float, higher_is_riskier: bool) -> float:
    """As ``comparison._cutoff_for_approval_rate``, from a first pass."""
    n = first.n
    k = int(round(rate * n))
    if higher_is_riskier:
        return _rank_value(first, k) if k < n else math.inf
    return _rank_value(first, n - k) if k > 0 else math.inf


def _swap_counts(a: Any, b: Any, y: Any, cuts: np.ndarray, higher_is_riskier: bool
                 ) -> np.ndarray:
    """Per cutoff pair: rows and sum of y in each of the 4 cells (A declined x B declined)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    yy = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
    out = np.zeros((len(cuts), 2, 4))
    for i, (ca, cb) in enumerate(cuts):
        if higher_is_riskier:
            cell = 2 * (a >= ca) + (b >= cb)
        else:
            cell = 2 * (a < ca) + (b < cb)
        out[i, 0] = np.bincount(cell, minlength=4)
        if yy is not None:
            out[i, 1] = np.bincount(cell, weights=yy, minlength=4)
    return out


def _sum_arrays(*parts: np.ndarray) -> np.ndarray:
    return np.sum(parts, axis=0)


def _prob_sums(p: Any, y: Any) -> np.ndarray:
    """[rows, log-loss sum, Brier sum] as scikit-learn computes them (p clipped by eps)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(p) and (p.min() < 0 or p.max() > 1):
        raise DataError("probabilities must lie in [0, 1] for log loss and Brier")
    eps = np.finfo(np.float64).eps
    q = np.clip(p, eps, 1 - eps)
    ll = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return np.array([len(p), ll.sum(), ((p - y) ** 2).sum()])


def _regression_sums(p: Any, y: Any) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return np.array([len(p), ((y - p) ** 2).sum(), np.abs(y - p).sum(), y.sum(), (y * y).sum()])


def _pairs_reduce(fn: Any, x: Any, y: Any) -> np.ndarray:
    import dask

    part = dask.delayed(fn, pure=True)
    return _reduce([part(s, yy) for s, yy in _aligned(x, y)], _sum_arrays)


def _kendall(a: Any, b: Any) -> float:
    """Kendall's tau-b on every row, or on a hash-drawn sample of KENDALL_ROWS of them."""
    import dask
    from scipy import stats

    n = first_pass(a).n
    share = min(1.0, KENDALL_ROWS / n)
    part = dask.delayed(_kendall_sample, pure=True)
    got = dask.compute(*[part(sa, sb, share) for (sa, _), (sb, _) in
                         zip(_aligned(a, None), _aligned(b, None), strict=True)])
    ua = np.concatenate([g[0] for g in got])
    ub = np.concatenate([g[1] for g in got])
    if len(ua) < 2 or np.ptp(ua) == 0 or np.ptp(ub) == 0:
        return math.nan
    return float(stats.kendalltau(ua, ub)[0])


def _kendall_sample(a: Any, b: Any, share: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if share >= 1.0:
        return a, b
    h = pd.util.hash_pandas_object(pd.DataFrame({"a": a, "b": b}), index=False)
    keep = (h.to_numpy(dtype=np.uint64) >> np.uint64(11)) < np.uint64(share * (1 << 53))
    return a[keep], b[keep]


def _score_part(model_a: Any, model_b: Any, output: str, X: Any, y: Any,
                positive_label: Any) -> np.ndarray:
    a = model_a.predict(X, output=output, n_threads=1).reshape(-1)
    out = np.empty((len(a), 3))
    out[:, 0] = a
    out[:, 1] = model_b.predict(X, output=output, n_threads=1).reshape(-1)
    out[:, 2] = np.nan if y is None else labels(y, positive_label)
    return out


def model_scores(models: Sequence[Any], X: Any, y: Any, output: str,
                 positive_label: Any = None) -> tuple[Any, Any, Any]:
    """The two models' scores of the dask rows ``X`` and the labels (``positive_label`` coded 1,
    on the workers), as 1-D dask arrays cut from one array, so that their partitions line up
    whatever dask does to a lone column."""
    import dask
    import dask.array as da
    import dask.dataframe as dd

    require_dask("dask collections")
    if not is_dask_collection(X):
        raise DataError("y is a dask collection but X is not; pass X as a dask DataFrame/Array "
                        "partitioned like y, or both in memory")
    for m in models:  # the in-memory checks, on the metadata, before anything runs
        if isinstance(X, dd.DataFrame):
            m.predict(X._meta, output=output, n_threads=1)
        elif isinstance(X, da.Array) and X.ndim == 2:
            m.predict(np.empty((0, X.shape[1]), dtype=X.dtype), output=output, n_threads=1)
    parts = row_parts(X, y)
    node_a, node_b = _model_node(models[0]), _model_node(models[1])
    part = dask.delayed(_score_part, pure=True)
    blocks = [da.from_delayed(part(node_a, node_b, output, parts.X[i],
                                   None if parts.y is None else parts.y[i], positive_label),
                              shape=(np.nan, 3), dtype=np.float64)
              for i in range(len(parts.X))]
    joint = da.concatenate(blocks, axis=0)
    return joint[:, 0], joint[:, 1], (None if y is None else joint[:, 2])


def compare_scores_dask(
    score_a: Any, score_b: Any, y: Any = None, cutoffs: float | Sequence[float] | None = None,
    higher_is_riskier: bool = True, *, approval_rates: Iterable[float],
    task: str = "binary", is_probability: bool | None = None, psi_bins: int = 10,
) -> Any:
    """:func:`treeprune.comparison.compare_scores` of dask scores (see the module docstring)."""
    require_dask("dask scores")
    from ..comparison import (
        _APPROVE,
        _DECLINE,
        ABS_DIFF_QUANTILES,
        Comparison,
        SwapSet,
        _as_cutoff_list,
    )

    if task not in ("binary", "regression"):
        raise DataError(f"task must be 'binary' or 'regression'; got {task!r}")
    if not is_dask_collection(score_a) and not is_dask_collection(score_b):
        raise DataError("pass the two scores as dask collections (y may be one too)")
    like = score_a if is_dask_collection(score_a) else score_b
    a = _as_dask_1d(score_a, like, "score_a")
    b = _as_dask_1d(score_b, a, "score_b")
    yy = None if y is None else _as_dask_1d(y, a, "y")
    first_a, first_b = first_pass(a), first_pass(b)
    if first_b.n != first_a.n:
        raise DataError(f"score_b has {first_b.n} rows but score_a has {first_a.n}; "
                        "they must match")
    n = first_a.n

    def low_high(f: Any) -> tuple[float, float]:
        return ((float(f.value[0]), float(f.value[-1])) if isinstance(f, ScoreTable)
                else (f.lowest, f.highest))

    (a_lo, a_hi), (b_lo, b_hi) = low_high(first_a), low_high(first_b)
    if is_probability is None:
        is_probability = bool(higher_is_riskier and a_lo >= 0 and a_hi <= 1 and b_lo >= 0
                              and b_hi <= 1)
    if n < 2 or a_lo == a_hi or b_lo == b_hi:
        corr = {"pearson": math.nan, "spearman": math.nan, "kendall": math.nan}
    else:
        corr = {"pearson": correlation(pearson_moments(a, b)),
                "spearman": correlation(pearson_moments(a, b, ranks=True)),
                "kendall": _kendall(a, b)}
    diff = abs(a - b)
    first_d = first_pass(diff)
    q = np.array([p for _, p in ABS_DIFF_QUANTILES])
    if isinstance(first_d, ScoreTable):
        qs = first_d.quantile(q)
    else:
        qs = first_d.quantile(q)
        qs[q == 1.0] = first_d.highest
    abs_diff = {name: float(v) for (name, _), v in zip(ABS_DIFF_QUANTILES, qs, strict=True)}

    metrics = None
    if yy is not None:
        rows: dict[str, tuple[float, float]] = {}
        if task == "binary":
            auc_a = auc_with_bound(yy, a, higher_is_riskier=higher_is_riskier)[0]
            auc_b = auc_with_bound(yy, b, higher_is_riskier=higher_is_riskier)[0]
            rows["auc"] = (auc_a, auc_b)
            rows["gini"] = (2 * auc_a - 1, 2 * auc_b - 1)
            rows["ks"] = (ks_with_bound(yy, a, higher_is_riskier=higher_is_riskier)[0],
                          ks_with_bound(yy, b, higher_is_riskier=higher_is_riskier)[0])
            if is_probability and higher_is_riskier:
                sa, sb = _pairs_reduce(_prob_sums, a, yy), _pairs_reduce(_prob_sums, b, yy)
                rows["log_loss"] = (sa[1] / sa[0], sb[1] / sb[0])
                rows["brier"] = (sa[2] / sa[0], sb[2] / sb[0])
        else:
            sa, sb = (_pairs_reduce(_regression_sums, a, yy),
                      _pairs_reduce(_regression_sums, b, yy))
            tot = sa[4] - sa[3] ** 2 / sa[0]
            rows["rmse"] = (math.sqrt(sa[1] / sa[0]), math.sqrt(sb[1] / sb[0]))
            rows["mae"] = (sa[2] / sa[0], sb[2] / sb[0])
            rows["r2"] = (1 - sa[1] / tot if tot > 0 else math.nan,
                          1 - sb[1] / tot if tot > 0 else math.nan)
        metrics = pd.DataFrame.from_dict(rows, orient="index", columns=["a", "b"])
        metrics["delta"] = metrics["b"] - metrics["a"]
        metrics.index.name = "metric"

    targets: list[float | None] = []
    cuts: list[tuple[float, float]] = []
    if cutoffs is None:
        for rate in approval_rates:
            r = float(rate)
            if not 0 < r <= 1:
                raise DataError(f"approval rates must be in (0, 1]; got {rate!r}")
            targets.append(r)
            cuts.append((_cutoff(first_a, r, higher_is_riskier),
                         _cutoff(first_b, r, higher_is_riskier)))
    else:
        for c in _as_cutoff_list(cutoffs):
            targets.append(None)
            cuts.append((c, c))
    swaps: list[Any] = []
    if cuts:
        import dask

        part = dask.delayed(_swap_counts, pure=True)
        cut_arr = np.array(cuts, dtype=np.float64)
        y_parts = [None] * len(_aligned(a, None)) if yy is None else \
            [p for _, p in _aligned(a, yy)]
        counts = _reduce([part(sa, sb, py, cut_arr, higher_is_riskier) for (sa, _), (sb, _), py
                          in zip(_aligned(a, None), _aligned(b, None), y_parts, strict=True)],
                         _sum_arrays)
        index = [f"A {_APPROVE}", f"A {_DECLINE}"]
        columns = [f"B {_APPROVE}", f"B {_DECLINE}"]
        for (ca, cb), target, c in zip(cuts, targets, counts, strict=True):
            cells = c[0].reshape(2, 2).astype(np.int64)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(cells > 0, c[1].reshape(2, 2) / np.maximum(cells, 1), np.nan)
            swaps.append(SwapSet(
                cutoff_a=float(ca), cutoff_b=float(cb), target_approval_rate=target,
                approval_rate_a=float(cells[0].sum() / n), approval_rate_b=float(
                    cells[:, 0].sum() / n),
                counts=pd.DataFrame(cells, index=index, columns=columns),
                outcome=None if yy is None else pd.DataFrame(means, index=index,
                                                             columns=columns),
                agreement=float((cells[0, 0] + cells[1, 1]) / n)))
    return Comparison(
        n_rows=int(n), higher_is_riskier=bool(higher_is_riskier),
        task=None if yy is None else task, correlations=corr, abs_diff=abs_diff,
        psi=psi(a, b, n_bins=psi_bins), metrics=metrics, swap_sets=tuple(swaps))


__all__ = ["KENDALL_ROWS", "compare_scores_dask", "model_scores"]
