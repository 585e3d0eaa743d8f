"""treeprune: make legacy XGBoost/LightGBM credit-risk ensembles small, prove it, write them back.

The public API::

    import treeprune as tp
    model = tp.load("legacy.json")
    result = tp.prune(model, X, y, tolerance=0.001)
    tp.compare(model, result.model, X, y)
    tp.Scorecard(pdo=20, base_score=600, base_odds=50)
    tp.reason_codes(model, X, k=4)
"""

# (no ``from __future__ import annotations`` here: it would list ``annotations`` in dir(treeprune))
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
from .io import load, save

__version__ = "0.1.0"

# imported on first use: they pull in scikit-learn, which a scoring process does not need
_LAZY = {"prune": "pruning", "PruneResult": "pruning", "compare": "comparison", "Scorecard": "scorecard",
         "reason_codes": "reasons"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'treeprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the lazily imported names are part of the API: list them before their first use
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "load",
    "save",
    "Ensemble",
    "prune",
    "PruneResult",
    "compare",
    "Scorecard",
    "reason_codes",
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
