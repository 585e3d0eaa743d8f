"""``tp.prune`` on dask collections: the rows stay on the cluster, a bounded sample is searched.

What runs where:

1. **Survey** (one pass over the partitions): every row gets a partition-stable hash
   (:func:`~treeprune.scaleout._rows.row_uniform`: its features, label and ``random_state``); the
   original's margins are checked (finite, not constant) and the rows counted.
2. **Confirm rows**: the rows whose hash falls below ``confirm_fraction`` are held back from every
   decision, on the cluster, however many there are.
3. **Sample** (one pass): of the other rows, those whose hash falls in a band sized for
   ``sample_rows`` rows come back to the client, ordered by hash. The candidate search (every
   family, the fit/judge split or cross-fitting, the stopping rule) is the in-memory
   :func:`treeprune.prune` on that sample: it is *not* distributed, and it sees at most about
   ``sample_rows`` rows. Data that fits (no more than ``sample_rows`` decision rows) is searched
   whole.
4. **Holdout** (one pass, then reductions of the kept margins): the chosen model and the
   original are scored on every confirm row, partition by partition (their margins, 24 bytes a
   confirm row, stay on the workers), and compared by reductions (:mod:`._paired`,
   :mod:`._metrics`): DeLong's AUC and standard errors, KS, mean loss differences, Spearman's
   correlation with its distribution-free standard error (as in memory). These are exact up to ``MAX_BINS`` distinct margins and within the bounds stated
   in :mod:`._metrics` past that. ``result.holdout`` reports them.

Every random choice about rows comes from the hash, and the sample's order is the hash order, so
the result is deterministic per ``random_state`` and does not depend on how the data is
partitioned.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from ..ensemble import Ensemble
from ..errors import DataError, PruneError
from ..io import load
from . import is_dask_collection, require_dask
from ._metrics import _reduce, ks_with_bound
from ._paired import _merge_moments, _moments, paired_auc, spearman_and_se
from ._rows import RowParts, labels, row_parts, row_uniform

#: Most decision rows the candidate search holds in memory (in expectation: the band is drawn
#: by hash).
SAMPLE_ROWS = 200_000


def _part(parts: RowParts, i: int) -> tuple[Any, Any, Any]:
    return (parts.X[i], None if parts.y is None else parts.y[i],
            None if parts.w is None else parts.w[i])


def _survey(ens: Ensemble, X: Any, y: Any, random_state: int, positive_label: Any,
            confirm: float) -> np.ndarray:
    """[rows, confirm rows, rows with non-finite margins, then min and max of each output]."""
    yy = labels(y, positive_label)
    u = row_uniform(ens, X, yy, random_state)
    m = ens.predict(X, output="margin", n_threads=1).reshape(len(u), -1)
    finite = np.isfinite(m).all(axis=1)
    ok = m[finite]
    lo = ok.min(axis=0) if len(ok) else np.full(m.shape[1], np.inf)
    hi = ok.max(axis=0) if len(ok) else np.full(m.shape[1], -np.inf)
    return np.concatenate([[len(u), np.count_nonzero(u < confirm),
                            np.count_nonzero(~finite)], lo, hi])


def _add_surveys(*parts: np.ndarray) -> np.ndarray:
    out = parts[0].copy()
    k = (len(out) - 3) // 2
    for p in parts[1:]:
        out[:3] += p[:3]
        out[3:3 + k] = np.minimum(out[3:3 + k], p[3:3 + k])
        out[3 + k:] = np.maximum(out[3 + k:], p[3 + k:])
    return out


def _select(ens: Ensemble, X: Any, y: Any, w: Any, random_state: int, positive_label: Any,
            lo: float, hi: float) -> tuple[Any, Any, Any, np.ndarray]:
    """The rows of a partition whose hash lies in [lo, hi), with their labels, weights, hashes."""
    yy = labels(y, positive_label)
    u = row_uniform(ens, X, yy, random_state)
    keep = (u >= lo) & (u < hi)
    rows = X.iloc[np.flatnonzero(keep)] if hasattr(X, "iloc") else np.asarray(X)[keep]
    return (rows, None if yy is None else yy[keep],
            None if w is None else np.asarray(w, dtype=np.float64)[keep], u[keep])


def _collect(ens: Ensemble, parts: RowParts, random_state: int, positive_label: Any, lo: float,
             hi: float) -> tuple[Any, Any, Any]:
    """The rows with hash in [lo, hi) from every partition, on the client, in hash order."""
    import dask

    select = dask.delayed(_select, pure=True)
    got = dask.compute(*[select(ens, *_part(parts, i), random_state, positive_label, lo, hi)
                         for i in range(len(parts.X))])
    u = np.concatenate([g[3] for g in got])
    order = np.argsort(u, kind="stable")
    if parts.frame:
        X = pd.concat([g[0] for g in got], ignore_index=True).iloc[order].reset_index(drop=True)
    else:
        X = np.concatenate([g[0] for g in got])[order]
    y = None if parts.y is None else np.concatenate([g[1] for g in got])[order]
    w = None if parts.w is None else np.concatenate([g[2] for g in got])[order]
    return X, y, w


def _survey_all(ens: Ensemble, parts: RowParts, random_state: int, positive_label: Any,
                confirm: float, what: str) -> np.ndarray:
    import dask

    survey = dask.delayed(_survey, pure=True)
    stats = _reduce([survey(ens, *_part(parts, i)[:2], random_state, positive_label, confirm)
                     for i in range(len(parts.X))], _add_surveys)
    if stats[0] == 0:
        raise DataError(f"{what} has no rows")
    if stats[2]:
        raise DataError(f"the model's margins on {what} contain NaN or infinite values "
                        f"({int(stats[2])} rows); check the data for infinite feature values")
    k = (len(stats) - 3) // 2
    if np.all(stats[3 + k:] - stats[3:3 + k] == 0):
        raise DataError(f"the model gives every row of {what} the same score: there is no "
                        "ranking to keep; pass rows on which the model's scores vary")
    return stats


def _band(n_rows: float, lo: float, sample_rows: int) -> tuple[float, float, float]:
    """The hash band [lo, hi) holding about ``sample_rows`` of the ``n_rows`` rows above lo."""
    share = min(1.0, sample_rows / n_rows) if n_rows else 1.0
    return lo, (math.inf if share >= 1.0 else lo + (1.0 - lo) * share), share


def _confirm_part(ens: Ensemble, chosen: Ensemble, X: Any, y: Any, random_state: int,
                  positive_label: Any, confirm: float, loss: bool) -> np.ndarray:
    """Confirm rows of a partition: [original margin, chosen margin, y] per row, or the moments
    of the two per-row losses with ``loss``."""
    yy = labels(y, positive_label)
    u = row_uniform(ens, X, yy, random_state)
    keep = np.flatnonzero(u < confirm)
    rows = X.iloc[keep] if hasattr(X, "iloc") else np.asarray(X)[keep]
    a = ens.predict(rows, output="margin", n_threads=1)
    b = chosen.predict(rows, output="margin", n_threads=1)
    if loss:
        return _moments(ens.objective.row_loss(yy[keep], a),
                        chosen.objective.row_loss(yy[keep], b))
    out = np.empty((len(keep), 3))
    out[:, 0], out[:, 1] = a.reshape(-1), b.reshape(-1)
    out[:, 2] = np.nan if yy is None else yy[keep]
    return out


def _holdout(ens: Ensemble, chosen: Ensemble, metric: str, parts: RowParts, random_state: int,
             positive_label: Any, confirm: float, n_confirm: int) -> dict[str, Any]:
    """The chosen model against the original on every confirm row (as ``PruneResult.holdout``)."""
    import dask
    import dask.array as da

    if n_confirm == 0:
        return {}
    part = dask.delayed(_confirm_part, pure=True)
    jobs = [part(ens, chosen, *_part(parts, i)[:2], random_state, positive_label, confirm,
                 metric == "loss") for i in range(len(parts.X))]
    if metric == "loss":
        m = _reduce(jobs, _merge_moments)
        n = m[0]
        se = math.sqrt(m[4] / (n - 1) / n) if n > 1 else 0.0
        se_diff = math.sqrt(max(m[3] + m[4] - 2 * m[5], 0.0) / (n - 1) / n) if n > 1 else 0.0
        return {"rows": int(n), "metric": float(m[2]), "se": se, "original": float(m[1]),
                "diff": float(m[2] - m[1]), "se_diff": se_diff}
    # the confirm rows' two margins and label (24 bytes a row) are kept where they were computed
    # (on the workers, with a distributed client): the reductions below read them several times
    cols = da.concatenate([da.from_delayed(j, shape=(np.nan, 3), dtype=np.float64)
                           for j in jobs], axis=0).persist()
    a, b, y = cols[:, 0], cols[:, 1], cols[:, 2]
    if metric == "fidelity":
        value, se = spearman_and_se(a, b)
        return {"rows": n_confirm, "metric": value, "se": se, "original": 1.0,
                "diff": value - 1.0, "se_diff": se}
    bads = int(_reduce([dask.delayed(_bads)(j) for j in cols.to_delayed().ravel()], _sum))
    if bads in (0, n_confirm):  # one class only: no AUC or KS to confirm
        return {}
    if metric == "ks":
        original, _ = ks_with_bound(y, a)
        value, _ = ks_with_bound(y, b)
        return {"rows": n_confirm, "metric": value, "se": math.nan, "original": original,
                "diff": value - original, "se_diff": 0.0}
    got = paired_auc(y, a, b)
    k = 2.0 if metric == "gini" else 1.0
    value, original = k * got["auc_b"] - (k - 1), k * got["auc_a"] - (k - 1)
    return {"rows": n_confirm, "metric": value, "se": k * got["se_b"], "original": original,
            "diff": value - original, "se_diff": k * got["se_diff"]}


def _bads(rows: np.ndarray) -> float:
    return float(np.nansum(rows[:, 2]))


def _sum(*values: float) -> float:
    return float(sum(values))


def prune_dask(model: Any, X: Any, y: Any = None, *, sample_weight: Any = None,
               X_unlabeled: Any = None, confirm_fraction: float = 0.2, random_state: int = 0,
               positive_label: Any = None, sample_rows: int = SAMPLE_ROWS, **options: Any) -> Any:
    """:func:`treeprune.prune` with dask collections (see the module docstring for what runs on
    the cluster and what on the client).

    Parameters
    ----------
    model, y, sample_weight, X_unlabeled, confirm_fraction, random_state, positive_label
        As for :func:`treeprune.prune`; ``y`` and ``sample_weight`` are dask Series/Arrays
        partitioned like ``X`` (or in memory when ``X``'s partition sizes are known).
    X : dask.dataframe.DataFrame or dask.array.Array
    sample_rows : int
        About how many decision rows the candidate search holds in memory.
    **options
        Every other keyword of :func:`treeprune.prune`.

    Returns
    -------
    PruneResult
        As in memory, with ``holdout`` computed on every confirm row on the cluster;
        ``fit_index``/``judge_index`` and ``judge_X`` refer to the sample;
        ``params["dask"]`` says how many rows were surveyed, sampled and held back.
    """
    require_dask("pruning on dask collections")
    from ..pruning import MIN_CONFIRM_ROWS, prune

    t0 = time.perf_counter()
    ens = load(model)
    if not 0 <= confirm_fraction <= 0.5:
        raise PruneError(f"confirm_fraction must be within [0, 0.5], got {confirm_fraction}")
    if positive_label is not None and not ens.objective.is_binary:
        raise PruneError(f"positive_label applies to binary models; this one is "
                         f"{ens.objective.name!r}")
    if not is_dask_collection(X):
        raise DataError("X must be a dask collection when y, sample_weight or X_unlabeled is "
                        "one; pass all of them as dask collections or all in memory")
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, (int, np.integer)) \
            or sample_rows < 20:
        raise PruneError(f"sample_rows must be a whole number >= 20, got {sample_rows!r}")
    state = int(random_state)
    parts = row_parts(X, y, sample_weight)
    stats = _survey_all(ens, parts, state, positive_label, confirm_fraction, "X")
    n, n_confirm = int(stats[0]), int(stats[1])
    confirm = confirm_fraction
    if n * confirm_fraction < MIN_CONFIRM_ROWS:
        confirm, n_confirm = 0.0, 0
    lo, hi, share = _band(n - n_confirm, confirm, sample_rows)
    Xs, ys, ws = _collect(ens, parts, state, positive_label, lo, hi)
    t_sample = time.perf_counter() - t0
    Xu, n_unlabeled = X_unlabeled, None
    if is_dask_collection(X_unlabeled):
        u_parts = row_parts(X_unlabeled, name="X_unlabeled")
        n_unlabeled = int(_survey_all(ens, u_parts, state, None, 0.0, "X_unlabeled")[0])
        _, u_hi, _ = _band(n_unlabeled, 0.0, sample_rows)
        Xu = _collect(ens, u_parts, state, None, 0.0, u_hi)[0]
    # labels arrive coded 1/0 (positive_label applied on the workers)
    result = prune(ens, Xs, ys, sample_weight=ws, X_unlabeled=Xu, confirm_fraction=0.0,
                   random_state=state, **options)
    t1 = time.perf_counter()
    holdout = _holdout(ens, result.model, result.metric, parts, state, positive_label, confirm,
                       n_confirm)
    timings = dict(result.timings)
    timings.update(dask_sample=t_sample, dask_holdout=time.perf_counter() - t1)
    timings["total"] = time.perf_counter() - t0
    params = dict(result.params)
    params.update(n_rows=n, confirm_fraction=confirm,
                  rows={**params["rows"], "confirm": n_confirm},
                  dask={"partitions": len(parts.X), "rows": n, "decision_rows": n - n_confirm,
                        "sampled_rows": int(len(ys) if ys is not None else len(Xs)),
                        "sampled_share": share, "sample_rows": int(sample_rows),
                        "unlabeled_rows": n_unlabeled,
                        "split": "row hash (features, label, random_state)"})
    return dataclasses.replace(result, holdout=holdout, timings=timings, params=params)


__all__ = ["SAMPLE_ROWS", "prune_dask"]
