"""LightGBM text models (``model.txt`` / ``Booster.model_to_string()``)."""

from .read import K_ZERO_THRESHOLD, read_lightgbm_object, read_lightgbm_text, to_booster, to_text

__all__ = ["read_lightgbm_text", "read_lightgbm_object", "to_text", "to_booster",
           "K_ZERO_THRESHOLD"]
