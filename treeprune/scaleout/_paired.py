"""Statistics of two scores of the same rows held in dask collections, as reductions.

Each score is first reduced to its :class:`~treeprune.scaleout._metrics.ScoreTable` (exact up to
``MAX_BINS`` distinct values, binned past that); one more pass then maps every row to what the
tables say about it and sums a handful of moments per partition:

* :func:`paired_auc`: DeLong's placement values of each row under each score (the share of the
  other class ranked below it, ties a half) give both AUCs, their standard errors and the
  standard error of their difference, as :mod:`treeprune._stopping` computes them in memory.
* :func:`spearman`: each row's mid-rank under each score (the rank scipy's ``rankdata`` gives),
  and the Pearson correlation of the two ranks; :func:`spearman_and_se` adds its
  distribution-free standard error (two more passes).

Both are exact while the tables are; with binned tables, rows inside a bin share its mid-rank and
its placement (as tied rows do), which is the estimate that :func:`~treeprune.scaleout._metrics.
auc_with_bound` bounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError
from ._metrics import ScoreTable, _aligned, _reduce, score_table


def _bin(table: ScoreTable, s: np.ndarray) -> np.ndarray:
    """The table bin of each score (the first whose largest score is not below it)."""
    return np.minimum(np.searchsorted(table.value, s, side="left"), len(table.value) - 1)


def _placement(table: ScoreTable, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v10, v01) of rows with scores ``s``: goods ranked below each (over all goods) and bads
    ranked above each (over all bads), ties and rows of the same bin counted a half."""
    goods = (table.count - table.bads).astype(np.float64)
    bads = table.bads.astype(np.float64)
    goods_below = np.concatenate([[0.0], np.cumsum(goods)[:-1]])
    bads_above = bads.sum() - np.cumsum(bads)
    b = _bin(table, s)
    return ((goods_below[b] + 0.5 * goods[b]) / goods.sum(),
            (bads_above[b] + 0.5 * bads[b]) / bads.sum())


def _bin_mid_ranks(table: ScoreTable) -> np.ndarray:
    """The mid-rank of the rows in each bin of the table (1-based, as ``rankdata``)."""
    below = np.concatenate([[0.0], np.cumsum(table.count)[:-1]])
    return below + (table.count + 1) / 2.0


def _mid_rank(table: ScoreTable, s: np.ndarray) -> np.ndarray:
    return _bin_mid_ranks(table)[_bin(table, s)]


def _moments(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """n, sums, and centred second moments of (u, v): mergeable exactly (Chan et al.)."""
    n = float(len(u))
    if n == 0:
        return np.zeros(6)
    mu, mv = u.mean(), v.mean()
    du, dv = u - mu, v - mv
    return np.array([n, mu, mv, du @ du, dv @ dv, du @ dv])


def _merge_moments(*parts: np.ndarray) -> np.ndarray:
    out = np.zeros(6)
    for p in parts:
        if p[0] == 0:
            continue
        if out[0] == 0:
            out = p.copy()
            continue
        n = out[0] + p[0]
        du, dv = p[1] - out[1], p[2] - out[2]
        f = out[0] * p[0] / n
        out = np.array([n, out[1] + du * p[0] / n, out[2] + dv * p[0] / n,
                        out[3] + p[3] + du * du * f, out[4] + p[4] + dv * dv * f,
                        out[5] + p[5] + du * dv * f])
    return out


def _delong_part(ta: ScoreTable, tb: ScoreTable, a: Any, b: Any, y: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    a10, a01 = _placement(ta, a)
    b10, b01 = _placement(tb, b)
    bad = y == 1
    return np.stack([_moments(a10[bad], b10[bad]), _moments(a01[~bad], b01[~bad])])


def _merge_delong(*parts: np.ndarray) -> np.ndarray:
    return np.stack([_merge_moments(*(p[0] for p in parts)),
                     _merge_moments(*(p[1] for p in parts))])


def paired_auc(y: Any, a: Any, b: Any) -> dict[str, float]:
    """AUCs of dask scores ``a`` and ``b`` of the same rows against ``y`` with DeLong's standard
    errors: ``auc_a``, ``auc_b``, ``se_a``, ``se_b``, ``se_diff`` (of ``auc_b - auc_a``)."""
    import dask

    ta, tb = score_table(a, y), score_table(b, y)
    for t in (ta, tb):
        if int(t.bads.sum()) in (0, t.n):
            raise DataError("y contains a single class; AUC needs both goods (0) and bads (1)")
    pa, pb = _aligned(a, y), _aligned(b, y)
    part = dask.delayed(_delong_part, pure=True)
    m10, m01 = _reduce([part(ta, tb, sa, sb, yy) for (sa, yy), (sb, _) in zip(pa, pb, strict=True)],
                       _merge_delong)
    P, N = m10[0], m01[0]

    def var(moments: np.ndarray, k: int) -> float:
        return moments[k] / (moments[0] - 1) if moments[0] > 1 else 0.0

    va = var(m10, 3) / P + var(m01, 3) / N
    vb = var(m10, 4) / P + var(m01, 4) / N
    cov = var(m10, 5) / P + var(m01, 5) / N
    return {"auc_a": float(m10[1]), "auc_b": float(m10[2]), "se_a": math.sqrt(max(va, 0.0)),
            "se_b": math.sqrt(max(vb, 0.0)),
            "se_diff": math.sqrt(max(va + vb - 2 * cov, 0.0))}


def _rank_part(ta: ScoreTable, tb: ScoreTable, a: Any, b: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    return _moments(_mid_rank(ta, a), _mid_rank(tb, b))


def _value_part(a: Any, b: Any) -> np.ndarray:
    return _moments(np.asarray(a, dtype=np.float64).reshape(-1),
                    np.asarray(b, dtype=np.float64).reshape(-1))


def pearson_moments(a: Any, b: Any, ranks: bool = False) -> np.ndarray:
    """Merged ``_moments`` of two dask scores of the same rows (of their mid-ranks with
    ``ranks``)."""
    import dask

    pa, pb = _aligned(a, None), _aligned(b, None)
    if ranks:
        ta, tb = score_table(a), score_table(b)
        part = dask.delayed(_rank_part, pure=True)
        parts = [part(ta, tb, sa, sb) for (sa, _), (sb, _) in zip(pa, pb, strict=True)]
    else:
        part = dask.delayed(_value_part, pure=True)
        parts = [part(sa, sb) for (sa, _), (sb, _) in zip(pa, pb, strict=True)]
    return _reduce(parts, _merge_moments)


def correlation(moments: np.ndarray) -> float:
    """Pearson's correlation from merged moments (NaN when either side is constant)."""
    if moments[0] < 2 or moments[3] <= 0 or moments[4] <= 0:
        return math.nan
    return float(moments[5] / math.sqrt(moments[3] * moments[4]))


def spearman(a: Any, b: Any) -> float:
    """Spearman's correlation of two dask scores of the same rows (see the module docstring)."""
    return correlation(pearson_moments(a, b, ranks=True))


def _cdf(table: ScoreTable, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each row, its mid-rank CDF ``(mid-rank - 1/2) / n``)."""
    b = _bin(table, s)
    return b, (_bin_mid_ranks(table)[b] - 0.5) / table.n


def _cross_part(ta: ScoreTable, tb: ScoreTable, a: Any, b: Any) -> np.ndarray:
    """Per partition: the other score's CDF summed over the rows of each bin (a's bins, then
    b's), and the sums of u v, u^2 and v^2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    ia, u = _cdf(ta, a)
    ib, v = _cdf(tb, b)
    return np.concatenate([np.bincount(ia, weights=v, minlength=len(ta.value)),
                           np.bincount(ib, weights=u, minlength=len(tb.value)),
                           [u @ v, u @ u, v @ v]])


def _add(*parts: np.ndarray) -> np.ndarray:
    return np.sum(parts, axis=0)


def _upper(per_bin: np.ndarray, n: int) -> np.ndarray:
    """For each bin: ``sum_j h_j (1[x_j > x] + 1[x_j = x] / 2) / n`` from ``h`` summed per bin
    (as :func:`treeprune._fidelity._upper_share`)."""
    above = np.cumsum(per_bin[::-1])[::-1] - per_bin
    return (above + 0.5 * per_bin) / n


def _influence_part(ta: ScoreTable, tb: ScoreTable, terms: tuple[np.ndarray, ...], a: Any,
                    b: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    ia, u = _cdf(ta, a)
    ib, v = _cdf(tb, b)
    v_above_a, u_above_b, var_inf_a, var_inf_b, cov, var_a, var_b = terms
    scale = math.sqrt(var_a * var_b)
    influence = (u * v + v_above_a[ia] + u_above_b[ib]
                 - 0.5 * cov * (var_inf_a[ia] / var_a + var_inf_b[ib] / var_b)) / scale
    return _moments(influence, influence)


def spearman_and_se(a: Any, b: Any) -> tuple[float, float]:
    """Spearman's correlation of two dask scores of the same rows and its distribution-free
    standard error (NaN, NaN below 4 rows or when either score is constant).

    The influence function of :func:`treeprune._fidelity.spearman_and_se`, computed in two more
    passes after the score tables: the first sums each row's CDF under one score over the bins
    of the other (what the influence function's cross terms need: arrays of the tables' size),
    the second sums the influence and its square. Equal to the in-memory figure while both
    tables are exact; rows in a bin of a binned table count as tied.
    """
    import dask
    import dask.array as da

    if isinstance(a, da.Array) and isinstance(b, da.Array) and a.chunks != b.chunks \
            and a.shape == b.shape and not any(math.isnan(c) for c in a.chunks[0]):
        b = b.rechunk(a.chunks)  # the passes below walk the two scores' partitions in step
    ta, tb = score_table(a), score_table(b)
    n = ta.n
    if n < 4 or len(ta.value) < 2 or len(tb.value) < 2:
        return math.nan, math.nan
    pairs = list(zip(_aligned(a, None), _aligned(b, None), strict=True))
    part = dask.delayed(_cross_part, pure=True)
    sums = _reduce([part(ta, tb, sa, sb) for (sa, _), (sb, _) in pairs], _add)
    na = len(ta.value)
    v_by_a, u_by_b = sums[:na], sums[na:-3]
    uv, uu, vv = sums[-3:] / n
    cov, var_a, var_b = uv - 0.25, uu - 0.25, vv - 0.25  # the mid-rank CDF's mean is 1/2
    # each score's own terms depend on its bin alone: u is constant within a bin
    u_bin = (_bin_mid_ranks(ta) - 0.5) / n
    v_bin = (_bin_mid_ranks(tb) - 0.5) / n
    var_inf_a = u_bin * u_bin + 2.0 * _upper(u_bin * ta.count, n)
    var_inf_b = v_bin * v_bin + 2.0 * _upper(v_bin * tb.count, n)
    terms = (_upper(v_by_a, n), _upper(u_by_b, n), var_inf_a, var_inf_b, cov, var_a, var_b)
    part = dask.delayed(_influence_part, pure=True)
    m = _reduce([part(ta, tb, terms, sa, sb) for (sa, _), (sb, _) in pairs], _merge_moments)
    se = math.sqrt(m[3] / (m[0] - 1) / m[0]) if m[0] > 1 else math.nan
    return float(cov / math.sqrt(var_a * var_b)), se


__all__ = ["correlation", "paired_auc", "pearson_moments", "spearman", "spearman_and_se"]
