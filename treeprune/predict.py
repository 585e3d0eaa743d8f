"""Prediction: data -> packed kernels -> margins, predictions, leaf ids or per-tree outputs."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numba
import numpy as np

from .data import to_matrix
from .ensemble import Ensemble
from .errors import DataError
from .kernels.traverse import leaves_blocked, margins_blocked, margins_rows
from .packed import Packed, pack

OUTPUTS = ("prediction", "margin", "leaf", "per_tree", "score", "contrib")


@contextmanager
def _threads(n_threads: int | None):
    if n_threads is None:
        yield
        return
    if int(n_threads) < 1:
        raise DataError(f"n_threads must be >= 1, got {n_threads}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def margins_packed(p: Packed, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """Margins (n_rows, n_groups) in the source's accumulation precision."""
    out = np.empty((X.shape[0], len(p.base_margin)), dtype=p.dtype)
    out[:] = p.base_margin
    args = (X, p.trees, p.info, p.threshold, p.left, p.cat, p.cat_bounds, p.cat_words,
            p.leaf_value, p.rule, p.simple, out)
    if X.shape[0] <= 4:
        margins_rows(*args)
    else:
        with _threads(n_threads):
            margins_blocked(*args)
    return out


def leaves_packed(p: Packed, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """Packed leaf positions (n_rows, n_trees)."""
    out = np.empty((X.shape[0], len(p.trees)), dtype=np.int32)
    with _threads(n_threads):
        leaves_blocked(X, p.trees, p.info, p.threshold, p.left, p.cat, p.cat_bounds,
                       p.cat_words, p.rule, p.simple, out)
    return out


def predict_ensemble(ens: Ensemble, X: Any, output: str = "prediction",
                     n_threads: int | None = None) -> np.ndarray:
    """See :meth:`Ensemble.predict`."""
    if output not in OUTPUTS:
        raise DataError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    if output == "score":
        scorecard = ens.scorecard
        if scorecard is None:
            raise DataError("output='score' needs a scorecard: model.with_scorecard(Scorecard(...))")
        return scorecard.score_from_margin(predict_ensemble(ens, X, "margin", n_threads))
    if output == "contrib":
        from .contrib import contributions

        return contributions(ens, X, n_threads)
    p = pack(ens)
    Xm = to_matrix(ens, X, p.dtype)
    if output in ("margin", "prediction"):
        margin = margins_packed(p, Xm, n_threads).astype(np.float64)
        if margin.shape[1] == 1:
            margin = margin[:, 0]
        return margin if output == "margin" else ens.objective.transform(margin)
    leaves = leaves_packed(p, Xm, n_threads)
    if output == "leaf":
        return p.native_id[leaves]
    return p.leaf_value[leaves].astype(np.float64)


__all__ = ["predict_ensemble", "margins_packed", "leaves_packed", "OUTPUTS"]
