"""Keeping a score scale: an affine map ``a * margin + b`` per output group, baked into the model.

:func:`fit_affine` finds ``a`` and ``b`` so that a pruned model's margins match the original's
(least squares, or matched quantiles so that the score *distribution* is kept); :func:`rescale`
writes the map into the ensemble itself — every leaf value times ``a``, the base margin times
``a`` plus ``b`` — so that the saved model, reloaded by the native library, gives the rescaled
scores. With ``a > 0`` the ranking of every group's margin, hence AUC, is unchanged.

Where the offset goes: XGBoost keeps it in ``base_score`` (the writer turns a margin into the
objective's ``base_score`` convention); LightGBM has no base score, so ``b`` is folded into the
leaves of the first tree of each group and ``folded_intercept`` follows it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ensemble import Ensemble
from ..errors import DataError, PruneError
from .base import record

_QUANTILES = np.linspace(0.005, 0.995, 199)


def _as_2d(m: Any, what: str) -> np.ndarray:
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or len(arr) == 0:
        raise DataError(f"{what} must have shape (n_rows,) or (n_rows, n_groups)")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains NaN or infinite values")
    return arr


def _weighted_quantiles(v: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    pos = (cw - 0.5 * w[order]) / cw[-1]  # midpoints: equal weights give the usual quantiles
    return np.interp(q, pos, v[order])


def _tie_anchor(x: np.ndarray, y: np.ndarray, w: np.ndarray, min_share: float
                ) -> tuple[float, float] | None:
    """The largest group of rows sharing one target score, if it holds at least ``min_share`` of
    the weight and ``x`` keeps at least half of it on one value: (that ``x``, the target)."""
    values, inverse = np.unique(y, return_inverse=True)
    weight = np.bincount(inverse, weights=w, minlength=len(values))
    top = int(np.argmax(weight))
    if weight[top] < min_share * w.sum():
        return None
    group = inverse == top
    xv, xi = np.unique(x[group], return_inverse=True)
    xw = np.bincount(xi, weights=w[group], minlength=len(xv))
    if xw.max() < 0.5 * weight[top]:
        return None
    return float(xv[int(np.argmax(xw))]), float(values[top])


def fit_affine(margin: Any, target_margin: Any, sample_weight: Any = None,
               method: str = "lstsq", anchor_share: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per output group, ``a > 0`` and ``b`` so that ``a * margin + b`` matches ``target_margin``.

    Parameters
    ----------
    margin, target_margin : array-like, shape (n_rows,) or (n_rows, n_groups)
        The model's margins and the margins to match (usually the original model's) on the same
        rows.
    sample_weight : array-like, optional
    method : {"lstsq", "quantile"}
        ``"lstsq"``: weighted least squares of the target on the margin. ``"quantile"``: least
        squares between the 0.5%..99.5% quantiles of the two, so that the score distributions
        match (what PSI measures) even where the rows' scores disagree.
    anchor_share : float, optional
        Keep a mass point: when at least this share of the rows (by weight) share one target
        margin (applicants without a bureau file often share one score) and the margin keeps most
        of them on one value too, the offset ``b`` puts that value exactly on the target's, so
        the group keeps its score and falls on the same side of every cutoff and PSI edge. The
        slope is fitted as ``method`` says.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``a`` and ``b``, shape (n_groups,).

    Raises
    ------
    DataError
        Shapes differ, values are NaN/infinite, or a group's margin is constant (no scale fits),
        or the fitted slope is not positive (the margins rank the rows the opposite way).
    PruneError
        Unknown ``method``.
    """
    if method not in ("lstsq", "quantile"):
        raise PruneError(f"method={method!r}: use 'lstsq' or 'quantile'")
    m = _as_2d(margin, "margin")
    t = _as_2d(target_margin, "target_margin")
    if m.shape != t.shape:
        raise DataError(f"margin has shape {m.shape} but target_margin has shape {t.shape}")
    if sample_weight is None:
        w = np.ones(len(m))
    else:
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if len(w) != len(m) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise DataError("sample_weight must have one finite, non-negative weight per row, "
                            "not all zero")
    a = np.empty(m.shape[1])
    b = np.empty(m.shape[1])
    for g in range(m.shape[1]):
        x, y = m[:, g], t[:, g]
        wx = w
        if method == "quantile":
            x = _weighted_quantiles(x, w, _QUANTILES)
            y = _weighted_quantiles(y, w, _QUANTILES)
            wx = np.ones(len(x))
        mx, my = np.average(x, weights=wx), np.average(y, weights=wx)
        var = np.average((x - mx) ** 2, weights=wx)
        if not var > 1e-24 * max(1.0, mx * mx):
            raise DataError(f"the margins of group {g} are constant on these rows: no score scale "
                            "can be fitted; use more (varied) rows")
        a[g] = np.average((x - mx) * (y - my), weights=wx) / var
        if not a[g] > 0:
            raise DataError(f"the margins of group {g} rank the rows against the target "
                            f"(slope {a[g]:.3g}); a score scale must keep the order")
        b[g] = my - a[g] * mx
        anchor = None if anchor_share is None else _tie_anchor(m[:, g], t[:, g], w, anchor_share)
        if anchor is not None:
            b[g] = anchor[1] - a[g] * anchor[0]
    return a, b


def rescale(ens: Ensemble, a: Any, b: Any) -> Ensemble:
    """The ensemble whose margin is ``a * margin + b`` per group, baked into the model itself.

    Parameters
    ----------
    ens : Ensemble
        Not modified.
    a, b : float or array-like of shape (n_groups,)
        Slope (finite, > 0) and offset (finite) of each output group.

    Returns
    -------
    Ensemble
        Leaf (and internal) values times ``a``; XGBoost: ``base_margin`` times ``a`` plus ``b``;
        LightGBM: ``b`` folded into the first tree of each group (``folded_intercept`` follows).
        History ends with a ``rescale`` record.
    """
    K = ens.n_groups
    try:
        av = np.broadcast_to(np.asarray(a, dtype=np.float64), (K,)).copy()
        bv = np.broadcast_to(np.asarray(b, dtype=np.float64), (K,)).copy()
    except ValueError as exc:
        raise PruneError(f"a and b must be scalars or have one value per output group ({K})"
                         ) from exc
    if not (np.all(np.isfinite(av)) and np.all(av > 0) and np.all(np.isfinite(bv))):
        raise PruneError("the scale a must be finite and > 0 (it keeps the ranking) and the "
                         "offset b finite")
    a_node = av[np.repeat(ens.tree_group, np.diff(ens.tree_offsets))]
    value = np.asarray(ens.value, dtype=np.float64) * a_node
    base = np.array(ens.base_margin, dtype=np.float64).reshape(-1)
    if len(base) != K:
        base = np.broadcast_to(base, (K,)).copy()
    base = base * av
    folded = np.asarray(ens.folded_intercept, dtype=np.float64) * av
    if ens.source == "lightgbm":
        # no base score in a LightGBM model: the offset joins the leaves of each group's first tree
        # (LightGBM's own way to store its initial score)
        for g in range(K):
            trees = np.flatnonzero(ens.tree_group == g)
            if len(trees) == 0 or ens.tree_weight[trees[0]] == 0:
                base[g] += bv[g]
                continue
            t0 = int(trees[0])
            sl = ens.tree_slice(t0)
            value[sl] += bv[g] / ens.tree_weight[t0]
            folded[g] += bv[g]
    else:
        base += bv
    if ens.source == "xgboost":  # XGBoost stores float32 values: keep what the kernels will use
        value = value.astype(np.float32).astype(np.float64)
    out = ens.replace(value=value, base_margin=base, folded_intercept=folded)
    return record(ens, out, "rescale", {"a": av.tolist(), "b": bv.tolist()})


__all__ = ["fit_affine", "rescale"]
