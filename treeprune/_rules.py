"""The source libraries' constants and treeprune's own integer codes, in one place.

Every module that needs one of these numbers imports it from here, so that a rule of XGBoost or
LightGBM is written down once. This is the bottom of the import graph: numpy only, no treeprune
imports. Numba kernels read these module-level ints as compile-time constants.
"""

from __future__ import annotations

import numpy as np

# -- LightGBM -------------------------------------------------------------------------------------

#: LightGBM's ``kZeroThreshold``. Declared ``const double kZeroThreshold = 1e-35f``: a float
#: literal, so its value is float32(1e-35) = 1.0000000180025095e-35, not the double 1e-35. Its
#: dense-row reader turns every ``|x| <= kZeroThreshold`` into 0.0 before any split sees it.
LIGHTGBM_ZERO_THRESHOLD = float(np.float32(1e-35))

#: Bits of a LightGBM split's ``decision_type``: categorical, default left, and the missing type
#: (``MISSING_*`` below) in bits 2-3.
LIGHTGBM_CATEGORICAL_MASK = 1
LIGHTGBM_DEFAULT_LEFT_MASK = 2
LIGHTGBM_MISSING_SHIFT = 2

# -- XGBoost --------------------------------------------------------------------------------------

#: Categories at or beyond 2**24 are invalid in XGBoost (a categorical split sends them left).
XGBOOST_MAX_CATEGORY = 1 << 24

#: First XGBoost release whose ``binary:logitraw`` starts from ``base_score`` itself; before it
#: (up to 1.3.0) the starting margin was ``logit(base_score)``, as for ``binary:logistic``.
XGBOOST_LOGITRAW_IDENTITY_SINCE = (1, 3, 1)
#: XGBoost files from before this release use the old JSON layout (today's XGBoost warns on it).
XGBOOST_MODERN_JSON_SINCE = (1, 6)

# -- missing types (``Ensemble.missing_type``; LightGBM's own numbering) ---------------------------

MISSING_NONE = 0
MISSING_ZERO = 1
MISSING_NAN = 2

# -- decision rules of the packed kernels ---------------------------------------------------------

RULE_XGBOOST = 0
RULE_LIGHTGBM = 1

# -- node flags of a packed node's ``info`` word (feature in the low bits, flags above) ------------

FLAG_DEFAULT_LEFT = 1
FLAG_MISSING_ZERO = 2
FLAG_MISSING_NAN = 4
FLAG_CATEGORICAL = 8
FLAG_LEAF = 16
FLAG_NAN_RIGHT = 32
FLAG_NAN_RIGHT_SHIFT = 5
FLAG_EXACT_LE = 64  # LightGBM threshold kept as is (its next double would be +inf): x <= t
FEATURE_BITS = 24
FEATURE_MASK = (1 << FEATURE_BITS) - 1

# -- losses (Numba kernels cannot dispatch on strings) --------------------------------------------

LOSS_SQUARED = 0
LOSS_LOGLOSS = 1
LOSS_POISSON = 2
LOSS_GAMMA = 3
LOSS_TWEEDIE = 4
LOSS_ABSOLUTE = 5
LOSS_HUBER = 6
LOSS_SOFTMAX = 7

#: Integer code of each canonical loss name (``Objective.loss``).
LOSS_CODES = {
    "squared": LOSS_SQUARED,
    "logloss": LOSS_LOGLOSS,
    "poisson": LOSS_POISSON,
    "gamma": LOSS_GAMMA,
    "tweedie": LOSS_TWEEDIE,
    "absolute": LOSS_ABSOLUTE,
    "huber": LOSS_HUBER,
    "softmax": LOSS_SOFTMAX,
}

# -- treeprune's own keys -------------------------------------------------------------------------

#: XGBoost learner attribute, LightGBM text line and ``source_meta`` key holding the Scorecard
#: saved with a model.
SCORECARD_KEY = "treeprune_scorecard"

__all__ = [
    "FEATURE_BITS",
    "FEATURE_MASK",
    "FLAG_CATEGORICAL",
    "FLAG_DEFAULT_LEFT",
    "FLAG_EXACT_LE",
    "FLAG_LEAF",
    "FLAG_MISSING_NAN",
    "FLAG_MISSING_ZERO",
    "FLAG_NAN_RIGHT",
    "FLAG_NAN_RIGHT_SHIFT",
    "LIGHTGBM_CATEGORICAL_MASK",
    "LIGHTGBM_DEFAULT_LEFT_MASK",
    "LIGHTGBM_MISSING_SHIFT",
    "LIGHTGBM_ZERO_THRESHOLD",
    "LOSS_ABSOLUTE",
    "LOSS_CODES",
    "LOSS_GAMMA",
    "LOSS_HUBER",
    "LOSS_LOGLOSS",
    "LOSS_POISSON",
    "LOSS_SOFTMAX",
    "LOSS_SQUARED",
    "LOSS_TWEEDIE",
    "MISSING_NAN",
    "MISSING_NONE",
    "MISSING_ZERO",
    "RULE_LIGHTGBM",
    "RULE_XGBOOST",
    "SCORECARD_KEY",
    "XGBOOST_LOGITRAW_IDENTITY_SINCE",
    "XGBOOST_MAX_CATEGORY",
    "XGBOOST_MODERN_JSON_SINCE",
]
