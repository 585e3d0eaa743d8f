"""Validation of user inputs that are not features: labels, row weights and scores.

One set of rules (and messages) for :func:`treeprune.prune`, the data-driven passes, the credit
metrics and the model comparison. Every problem raises :class:`treeprune.errors.DataError` with a
message that names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .objectives import Objective


def _numeric(values: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from exc


# -- scores and binary outcomes (the credit metrics) -----------------------------------------
def as_1d_float(values: Any, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D float64 array (an ``(n, 1)`` column is flattened)."""
    arr = _numeric(values, name)
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


def check_scores(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite scores."""
    arr = as_1d_float(values, name)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        n_inf = int(np.count_nonzero(bad)) - n_nan
        raise DataError(
            f"{name} has {n_nan} NaN and {n_inf} infinite values (first at row "
            f"{int(np.flatnonzero(bad)[0])}); scores must be finite"
        )
    return arr


def check_length(arr: np.ndarray, n: int, name: str, other: str) -> None:
    """Raise when ``arr`` (called ``name``) does not have the ``n`` rows of ``other``."""
    if len(arr) != n:
        raise DataError(f"{name} has {len(arr)} rows but {other} has {n}; they must match")


def check_binary_y(
    y: Any, n: int, other: str = "score", both_classes: bool = True
) -> np.ndarray:
    """Binary outcomes (0 = good, 1 = bad) as int64, both classes present unless told otherwise."""
    arr = as_1d_float(y, "y")
    check_length(arr, n, "y", other)
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


# -- labels and row weights (prune, the passes) -----------------------------------------------
#: Objectives trained on probabilities: LightGBM's cross-entropy (``xentropy`` is its alias)
#: takes any label in [0, 1], where ``binary`` takes 0 and 1 only.
SOFT_LABEL_OBJECTIVES = frozenset({"cross_entropy", "xentropy"})


def check_labels(y: Any, n: int, objective: Objective | None = None) -> np.ndarray:
    """``y`` as a float64 vector of ``n`` finite labels.

    With ``objective``, the labels must also lie in its domain: 0/1 for a binary objective,
    [0, 1] for LightGBM's ``cross_entropy`` (``xentropy``), integers ``0 .. n_classes - 1`` for
    multiclass, non-negative for Poisson and Tweedie,
    positive for gamma. Without it (the passes, which also fit to soft targets), any finite
    value is accepted.

    Raises
    ------
    DataError
        A length other than ``n``, NaN or infinite labels, or labels outside the domain.
    """
    yv = _numeric(y, "y").reshape(-1)
    if len(yv) != n:
        raise DataError(f"X has {n} rows but y has {len(yv)} labels")
    if not np.all(np.isfinite(yv)):
        raise DataError("labels contain NaN or infinite values; drop or fill those rows first")
    if objective is None or len(yv) == 0:
        return yv
    o = objective
    if o.name in SOFT_LABEL_OBJECTIVES:
        outside = (yv < 0.0) | (yv > 1.0)
        if outside.any():
            raise DataError(f"objective {o.name!r} needs labels in [0, 1] (probabilities); got "
                            f"{int(outside.sum())} outside, e.g. {yv[outside][:6].tolist()}")
    elif o.is_binary and not np.all(np.isin(yv, (0.0, 1.0))):
        raise DataError(f"binary objective {o.name!r} needs labels 0/1; got values "
                        f"{np.unique(yv)[:6].tolist()}")
    if o.is_multiclass and (np.any(yv != np.round(yv)) or yv.min() < 0
                            or yv.max() >= o.n_classes):
        raise DataError(f"multiclass labels must be integers 0..{o.n_classes - 1}")
    if o.loss in ("poisson", "tweedie") and np.any(yv < 0):
        raise DataError(f"objective {o.name!r} needs non-negative labels")
    if o.loss == "gamma" and np.any(yv <= 0):
        raise DataError(f"objective {o.name!r} needs positive labels")
    return yv


def check_outcomes(y: Any, n: int, objective: Objective, positive_label: Any = None
                   ) -> np.ndarray:
    """Outcomes for a model with ``objective``, read as :func:`treeprune.prune` reads them.

    With ``positive_label``, ``y`` may hold any two values (text such as ``"bad"``/``"good"``):
    the one equal to ``positive_label`` is coded 1, the other 0 (binary models only). Without
    it, ``y`` must be numbers. The result then goes through :func:`check_labels`.

    Raises
    ------
    DataError
        ``positive_label`` for a model that is not binary, text labels without it, a
        ``positive_label`` not among the labels, or anything :func:`check_labels` refuses.
    """
    from .data import binary_labels

    if positive_label is not None and not objective.is_binary:
        raise DataError(f"positive_label applies to binary models; this one is "
                        f"{objective.name!r}")
    return check_labels(binary_labels(y, positive_label), n, objective)


def check_weights(sample_weight: Any, n: int, other: str = "X") -> np.ndarray | None:
    """``None``, or ``sample_weight`` as a float64 vector of ``n`` finite non-negative weights.

    ``other`` names what the ``n`` rows belong to, for the message on a length mismatch.

    Raises
    ------
    DataError
        A length other than ``n``, NaN, infinite or negative weights, or weights summing to 0.
    """
    if sample_weight is None:
        return None
    w = _numeric(sample_weight, "sample_weight").reshape(-1)
    if len(w) != n:
        raise DataError(f"sample_weight has {len(w)} rows but {other} has {n}; they must match")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise DataError("sample_weight sums to zero; give some rows a positive weight")
    return w


def normalised_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Checked row weights scaled to sum to one (``1 / n`` each when ``sample_weight`` is None)."""
    w = check_weights(sample_weight, n)
    if w is None:
        return np.full(n, 1.0 / max(n, 1))
    return w / w.sum()
