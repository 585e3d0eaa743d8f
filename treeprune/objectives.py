"""Objectives: the link between margin and prediction, and the loss with its derivatives.

Each model's objective is mapped to one canonical :class:`Objective`. ``loss`` names the loss the
trainer minimised (what a leaf refit must minimise too); ``output`` names the transform from margin
to what ``predict`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._rules import LOSS_CODES
from .errors import UnsupportedModelError


# numpy forms of scipy.special's expit/log_softmax: importing scipy.special costs a scoring
# process more time than the whole rest of `import treeprune`
def expit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    e = np.exp(-np.abs(m))
    return np.where(m >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_softmax(m: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = m - np.max(m, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(m: np.ndarray, axis: int = 1) -> np.ndarray:
    return np.exp(log_softmax(m, axis=axis))


@dataclass(frozen=True)
class Objective:
    """A canonical description of a boosting objective.

    Parameters
    ----------
    name : str
        The objective string as the source library spells it (``"binary:logistic"``, ``"binary"``).
    loss : str
        Canonical loss: one of ``LOSS_CODES``.
    output : str
        Transform from margin to prediction: ``"identity"``, ``"sigmoid"``, ``"exp"``,
        ``"softmax"`` or ``"argmax"`` (XGBoost ``multi:softmax`` predicts the class index).
    n_classes : int
        Number of classes for classification (1 for regression and binary).
    params : dict
        Loss parameters: ``tweedie_variance_power``, ``huber_slope``.
    """

    name: str
    loss: str
    output: str
    n_classes: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_binary(self) -> bool:
        return self.loss == "logloss"

    @property
    def is_multiclass(self) -> bool:
        return self.loss == "softmax"

    @property
    def n_groups(self) -> int:
        """Number of margin columns (trees per boosting round)."""
        return self.n_classes if self.is_multiclass else 1

    @property
    def loss_code(self) -> int:
        return LOSS_CODES[self.loss]

    # -- margin <-> prediction ---------------------------------------------------------------
    def transform(self, margin: np.ndarray) -> np.ndarray:
        """Apply the link's inverse: margin (n_rows,) or (n_rows, n_groups) -> prediction."""
        if self.output == "identity":
            return margin
        if self.output == "sigmoid":
            return expit(margin)
        if self.output == "exp":
            return np.exp(margin)
        if self.output == "softmax":
            return softmax(margin, axis=1)
        if self.output == "argmax":
            return np.argmax(margin, axis=1).astype(np.float64)
        raise UnsupportedModelError(f"unknown output transform {self.output!r}")

    # -- loss and derivatives (float64, numpy; the Numba twins live in kernels/) ---------------
    def loss_value(
        self, y: np.ndarray, margin: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> float:
        """Mean loss of ``margin`` against labels ``y`` (weighted when ``sample_weight`` given)."""
        return float(np.average(self.row_loss(y, margin), weights=sample_weight))

    def row_loss(self, y: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """Loss of each row's margin against its label."""
        y = np.asarray(y, dtype=np.float64)
        m = np.asarray(margin, dtype=np.float64)
        if self.loss == "squared":
            per_row = 0.5 * (m - y) ** 2
        elif self.loss == "logloss":
            per_row = np.logaddexp(0.0, m) - y * m
        elif self.loss == "poisson":
            per_row = np.exp(m) - y * m
        elif self.loss == "gamma":
            per_row = y * np.exp(-m) + m
        elif self.loss == "tweedie":
            rho = float(self.params.get("tweedie_variance_power", 1.5))
            per_row = -y * np.exp((1 - rho) * m) / (1 - rho) + np.exp((2 - rho) * m) / (2 - rho)
        elif self.loss == "absolute":
            per_row = np.abs(m - y)
        elif self.loss == "huber":
            d = float(self.params.get("huber_slope", 1.0))
            r = m - y
            per_row = d * d * (np.sqrt(1 + (r / d) ** 2) - 1)
        elif self.loss == "softmax":
            m2 = m.reshape(len(y), -1)
            per_row = -log_softmax(m2, axis=1)[np.arange(len(y)), y.astype(np.int64)]
        else:  # pragma: no cover - guarded by construction
            raise UnsupportedModelError(f"unknown loss {self.loss!r}")
        return per_row


_XGB_OBJECTIVES = {
    "binary:logistic": ("logloss", "sigmoid"),
    "reg:logistic": ("logloss", "sigmoid"),
    "binary:logitraw": ("logloss", "identity"),
    "reg:squarederror": ("squared", "identity"),
    "reg:linear": ("squared", "identity"),
    "reg:absoluteerror": ("absolute", "identity"),
    "reg:pseudohubererror": ("huber", "identity"),
    "count:poisson": ("poisson", "exp"),
    "reg:gamma": ("gamma", "exp"),
    "reg:tweedie": ("tweedie", "exp"),
    "multi:softprob": ("softmax", "softmax"),
    "multi:softmax": ("softmax", "argmax"),
}

_LGB_OBJECTIVES = {
    "binary": ("logloss", "sigmoid"),
    "cross_entropy": ("logloss", "sigmoid"),
    "regression": ("squared", "identity"),
    "regression_l1": ("absolute", "identity"),
    "huber": ("huber", "identity"),
    "poisson": ("poisson", "exp"),
    "gamma": ("gamma", "exp"),
    "tweedie": ("tweedie", "exp"),
    "multiclass": ("softmax", "softmax"),
}


def xgboost_objective(name: str, n_classes: int, params: dict[str, Any]) -> Objective:
    """Map an XGBoost objective string to an :class:`Objective`."""
    if name not in _XGB_OBJECTIVES:
        raise UnsupportedModelError(
            f"XGBoost objective {name!r} is not supported; supported: {sorted(_XGB_OBJECTIVES)}"
        )
    loss, output = _XGB_OBJECTIVES[name]
    return Objective(name, loss, output, max(1, n_classes) if loss == "softmax" else 1, params)


def lightgbm_objective(name: str, n_classes: int, params: dict[str, Any]) -> Objective:
    """Map a LightGBM objective string (first token of its ``objective=`` line)."""
    if name not in _LGB_OBJECTIVES:
        raise UnsupportedModelError(
            f"LightGBM objective {name!r} is not supported; supported: {sorted(_LGB_OBJECTIVES)}"
        )
    loss, output = _LGB_OBJECTIVES[name]
    if name == "binary" and params.get("sigmoid", 1.0) != 1.0:
        raise UnsupportedModelError(
            "LightGBM binary objective with sigmoid != 1 is not supported; retrain with sigmoid=1"
        )
    return Objective(name, loss, output, max(1, n_classes) if loss == "softmax" else 1, params)


__all__ = [
    "Objective", "xgboost_objective", "lightgbm_objective", "expit", "log_softmax", "softmax",
]
