"""XGBoost models: JSON, UBJSON, ``Booster`` and the scikit-learn wrappers, every version.

One job per module: :mod:`.ubjson` decodes UBJSON, :mod:`.base_score` turns ``base_score`` into
the starting margin and back, :mod:`.read` builds an Ensemble from a model document, :mod:`.write`
builds the document (and a native Booster) from an Ensemble, :mod:`.binary` reads the legacy
binary format into a document, and :mod:`.versions` scores a file as the release that wrote it.
"""

from .binary import read_xgboost_binary
from .read import read_xgboost_bytes, read_xgboost_object
from .write import to_booster, to_bytes, to_json_dict

__all__ = [
    "read_xgboost_binary",
    "read_xgboost_bytes",
    "read_xgboost_object",
    "to_bytes",
    "to_booster",
    "to_json_dict",
]
