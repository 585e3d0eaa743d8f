"""Model predictions on dask collections: the in-memory predictor applied partition by partition.

The result is a lazy ``dask.array.Array`` whose row blocks are the input's partitions (row
chunks), so ``.compute()`` gives exactly the array :meth:`Ensemble.predict` returns in memory.
Everything that can be checked without reading data (output name, feature columns, column types,
the number of features) is checked eagerly on the collection's metadata, with the same errors.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from ..ensemble import Ensemble
from ..errors import DataError
from . import require_dask


def _predict_block(ens: Ensemble, block: Any, output: str, n_threads: int) -> np.ndarray:
    return ens.predict(block, output=output, n_threads=n_threads)


def _model_node(ens: Ensemble) -> Any:
    """The model as one graph node, so that it is shipped to each worker once, not per task."""
    import dask

    return dask.delayed(ens, name=f"treeprune-model-{uuid.uuid4().hex}")


def predict_dask(ens: Ensemble, X: Any, output: str = "prediction",
                 n_threads: int | None = None) -> Any:
    """Lazy :meth:`Ensemble.predict` of a dask DataFrame or Array (see the module docstring).

    Parameters
    ----------
    ens : Ensemble
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_rows, n_features)
    output : str
        Any output :meth:`Ensemble.predict` accepts.
    n_threads : int, optional
        Numba threads per partition, default 1: the parallelism comes from the dask workers.

    Returns
    -------
    dask.array.Array
        Row blocks aligned with the partitions of ``X``.

    Raises
    ------
    DataError
        Eagerly, for what the metadata shows: an unknown output, missing or non-numeric feature
        columns, the wrong number of features; other data problems when the partition is computed.
    MissingDependencyError
        dask is not installed.
    """
    require_dask("dask collections")
    import dask
    import dask.array as da
    import dask.dataframe as dd

    threads = 1 if n_threads is None else int(n_threads)
    if isinstance(X, dd.DataFrame):
        # an empty frame with the real columns and dtypes: the in-memory checks, on no rows
        probe = ens.predict(X._meta, output=output, n_threads=1)
        parts = X.to_delayed()
        sizes = [np.nan] * len(parts)
    elif isinstance(X, da.Array):
        if X.ndim != 2:
            raise DataError(
                f"a dask array must be 2-dimensional (rows x features), got {X.ndim} dimensions"
            )
        probe = ens.predict(np.empty((0, X.shape[1]), dtype=X.dtype), output=output, n_threads=1)
        if X.numblocks[1] != 1:  # a partition must hold whole rows
            X = X.rechunk({1: -1})
        parts = list(X.to_delayed()[:, 0])
        sizes = list(X.chunks[0])
    else:
        raise DataError(
            f"dask input must be a dask DataFrame or a 2-D dask Array, got {type(X).__name__}; "
            "compute a Series or a bag into one of those first"
        )
    model = _model_node(ens)
    predict = dask.delayed(_predict_block, pure=True)
    blocks = [
        da.from_delayed(predict(model, part, output, threads), shape=(n, *probe.shape[1:]),
                        dtype=probe.dtype, meta=probe)
        for part, n in zip(parts, sizes, strict=True)
    ]
    if not blocks:
        return da.from_array(probe, chunks=probe.shape or (0,))
    return da.concatenate(blocks, axis=0)


__all__ = ["predict_dask"]
