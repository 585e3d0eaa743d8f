"""LightGBM text models (``model.txt`` / ``Booster.model_to_string()``).

:mod:`.read` parses and validates the text into an Ensemble; :mod:`.write` writes an Ensemble back
as text (and a native Booster).
"""

from .read import read_lightgbm_object, read_lightgbm_text
from .write import to_booster, to_text

__all__ = ["read_lightgbm_text", "read_lightgbm_object", "to_text", "to_booster"]
