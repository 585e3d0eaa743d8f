"""Typed exceptions raised by treeprune.

Every error names the problem and, where there is one, the fix. They all derive from
:class:`TreePruneError` so that callers can catch the whole family at once.
"""

from __future__ import annotations


class TreePruneError(Exception):
    """Base class of every error treeprune raises on purpose."""


class ModelFormatError(TreePruneError, ValueError):
    """The input is not a model treeprune can read (missing, empty, junk, truncated, edited)."""


class UnsupportedModelError(TreePruneError, ValueError):
    """The model is valid but uses a feature treeprune cannot represent faithfully."""


class DataError(TreePruneError, ValueError):
    """The data passed for prediction or pruning does not fit the model."""


class ConversionError(TreePruneError, ValueError):
    """The ensemble cannot be written exactly in the requested format."""


class PruneError(TreePruneError, ValueError):
    """The pruning request is invalid (tolerance, budget, labels...)."""


class DeviceError(TreePruneError, RuntimeError):
    """A requested compute device (for example CUDA) is not available."""


class MissingDependencyError(TreePruneError, ImportError):
    """An optional dependency is needed for this input (the message names the extra to install)."""


__all__ = [
    "TreePruneError",
    "ModelFormatError",
    "UnsupportedModelError",
    "DataError",
    "ConversionError",
    "PruneError",
    "DeviceError",
    "MissingDependencyError",
]
