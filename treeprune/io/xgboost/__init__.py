"""XGBoost models (JSON, UBJSON, ``Booster`` and the scikit-learn wrappers)."""

from .read import (
    MAX_CATEGORY,
    read_xgboost_bytes,
    read_xgboost_object,
    to_booster,
    to_bytes,
    to_json_dict,
)

__all__ = [
    "read_xgboost_bytes",
    "read_xgboost_object",
    "to_bytes",
    "to_booster",
    "to_json_dict",
    "MAX_CATEGORY",
]
