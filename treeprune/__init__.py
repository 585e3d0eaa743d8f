"""treeprune: make legacy XGBoost/LightGBM credit-risk ensembles small, prove it, write them back.

The public API::

    import treeprune as tp
    model = tp.load("legacy.json")
    result = tp.prune(model, X, y, tolerance=0.001)
    tp.compare(model, result.model, X, y)
"""

from __future__ import annotations

from . import errors
from .ensemble import Ensemble
from .errors import (
    ConversionError,
    DataError,
    DeviceError,
    ModelFormatError,
    PruneError,
    TreePruneError,
    UnsupportedModelError,
)
from .io import load

__version__ = "0.1.0"

__all__ = [
    "load",
    "Ensemble",
    "errors",
    "TreePruneError",
    "ModelFormatError",
    "UnsupportedModelError",
    "DataError",
    "ConversionError",
    "PruneError",
    "DeviceError",
    "__version__",
]
