"""Scoring, monitoring, comparing and pruning on Dask collections (``pip install 'treeprune[dask]'``).

``_predict`` scores partition by partition; ``_metrics`` and ``_paired`` reduce scores to bounded
tables (exact up to ``MAX_BINS`` distinct scores); ``_compare`` compares two models by those
reductions; ``_rows`` and ``_prune`` run ``tp.prune`` with a partition-stable row hash and an
in-memory search on a bounded sample; ``_batch`` writes scored Parquet; ``_cluster`` starts
clusters.

Dask is optional and imported only when a dask collection is passed in: ``import treeprune``
never imports it. :func:`is_dask_collection` recognises one without importing dask;
:func:`require_dask` imports it or raises :class:`~treeprune.errors.MissingDependencyError` that
names the extra to install.
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError

#: What to install for dask support.
DASK_EXTRA = "pip install 'treeprune[dask]'"


def is_dask_collection(obj: Any) -> bool:
    """Whether ``obj`` is a dask collection (array, dataframe, series), without importing dask."""
    module = type(obj).__module__ or ""
    return module.split(".")[0] in ("dask", "dask_expr") and hasattr(obj, "__dask_graph__")


def require_dask(what: str = "dask collections") -> None:
    """Import dask's array, dataframe and distributed parts, or say what to install.

    Raises
    ------
    MissingDependencyError
        dask (or one of the parts treeprune uses) is not installed.
    """
    try:
        import dask  # noqa: F401
        import dask.array  # noqa: F401
        import dask.dataframe  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} need treeprune's optional dask support, which is not installed ({exc}); "
            f"install it with: {DASK_EXTRA}"
        ) from exc


from ._predict import predict_dask  # noqa: E402  (needs require_dask above; imports no dask)

__all__ = ["DASK_EXTRA", "is_dask_collection", "predict_dask", "require_dask"]
