"""Rows of a dask collection for pruning: partitions aligned with their labels and weights, and a
partition-stable hash of each row.

The hash of a row depends on its feature values (as the model reads them), its label and
``random_state`` only: not on how the data is partitioned or ordered. It draws every random
decision about rows on the cluster (which rows are held back to confirm, which enter the fitted
sample), so a run is deterministic per ``random_state`` whatever the partitioning.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import as_1d_float
from ..data import binary_labels, to_matrix
from ..ensemble import Ensemble
from ..errors import DataError
from . import is_dask_collection, require_dask


@dataclass(frozen=True)
class RowParts:
    """The delayed partitions of X (with y and weights, or None), and the kind of X."""

    X: list[Any]
    y: list[Any] | None
    w: list[Any] | None
    frame: bool


def _column_parts(v: Any, name: str, n_parts: int, sizes: tuple[float, ...] | None
                  ) -> list[Any]:
    import dask.array as da
    import dask.dataframe as dd

    if not is_dask_collection(v):
        if sizes is None or any(math.isnan(s) for s in sizes):
            raise DataError(f"{name} is in memory but the partition sizes of X are unknown; "
                            f"pass {name} as a column of the same dask DataFrame as X")
        arr = np.asarray(v)
        if arr.ndim != 1 or len(arr) != sum(sizes):
            raise DataError(f"{name} must be one value per row of X ({int(sum(sizes))}); "
                            f"got shape {arr.shape}")
        v = da.from_array(arr, chunks=(tuple(int(s) for s in sizes),))
    if isinstance(v, dd.DataFrame):
        if len(v.columns) != 1:
            raise DataError(f"{name} must be one column; got {len(v.columns)}")
        v = v[v.columns[0]]
    if isinstance(v, da.Array):
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim != 1:
            raise DataError(f"{name} must be one-dimensional; got {v.ndim} dimensions")
        if sizes is not None and not any(math.isnan(s) for s in (*sizes, *v.chunks[0])) \
                and v.chunks[0] != sizes:
            if v.shape[0] != sum(sizes):
                raise DataError(f"{name} has {v.shape[0]} rows but X has {int(sum(sizes))}")
            v = v.rechunk((sizes,))
        parts = list(v.to_delayed().ravel())
    elif isinstance(v, dd.Series):
        parts = list(v.to_delayed())
    else:
        raise DataError(f"{name} must be a dask Series or Array (or in memory); "
                        f"got {type(v).__name__}")
    if len(parts) != n_parts:
        raise DataError(f"{name} has {len(parts)} partitions but X has {n_parts}; partition "
                        "them alike (columns of one dask DataFrame, say)")
    return parts


#: Names of the label and weight columns joined to a dask DataFrame's partitions.
Y_COLUMN, W_COLUMN = "__treeprune_y__", "__treeprune_w__"


def _take(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy()


def _drop(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    return frame.drop(columns=list(columns))


def row_parts(X: Any, y: Any = None, w: Any = None, name: str = "X") -> RowParts:
    """``X`` split into delayed row partitions, with ``y`` and ``w`` aligned to them."""
    require_dask("dask collections")
    import dask
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):
        columns = {k: v for k, v in ((Y_COLUMN, y), (W_COLUMN, w)) if isinstance(v, dd.Series)}
        if columns:
            # one frame, split once: dask may partition a column alone differently from the
            # frame it came from (a Parquet read fuses small partitions of narrow projections)
            joined = list(X.assign(**columns).to_delayed())
            take = dask.delayed(_take, pure=True)
            drop = dask.delayed(_drop, pure=True)
            parts = [drop(p, tuple(columns)) for p in joined]
            yp = [take(p, Y_COLUMN) for p in joined] if Y_COLUMN in columns else None
            wp = [take(p, W_COLUMN) for p in joined] if W_COLUMN in columns else None
            if y is not None and yp is None:
                yp = _column_parts(y, "y", len(parts), None)
            if w is not None and wp is None:
                wp = _column_parts(w, "sample_weight", len(parts), None)
            return RowParts(parts, yp, wp, True)
        parts, sizes, frame = list(X.to_delayed()), None, True
    elif isinstance(X, da.Array):
        if X.ndim != 2:
            raise DataError(f"a dask array {name} must be 2-dimensional (rows x features), got "
                            f"{X.ndim} dimensions")
        if X.numblocks[1] != 1:  # a partition must hold whole rows
            X = X.rechunk({1: -1})
        parts, sizes, frame = list(X.to_delayed()[:, 0]), X.chunks[0], False
    else:
        raise DataError(f"{name} must be a dask DataFrame or a 2-D dask Array to prune on dask, "
                        f"got {type(X).__name__}")
    yp = None if y is None else _column_parts(y, "y", len(parts), sizes)
    wp = None if w is None else _column_parts(w, "sample_weight", len(parts), sizes)
    return RowParts(parts, yp, wp, frame)


def _seed(random_state: int) -> np.uint64:
    return np.uint64(int(hashlib.sha256(f"treeprune:{int(random_state)}".encode()).hexdigest()[:16],
                         16))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of the input moves about half of the output bits."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_uniform(ens: Ensemble, X: Any, y: np.ndarray | None, random_state: int) -> np.ndarray:
    """A number in [0, 1) per row from its features (as the model reads them) and label."""
    matrix = to_matrix(ens, X, np.float64)
    frame = pd.DataFrame(matrix)
    if y is not None:
        frame["__y__"] = y
    # pandas' row hash of numbers takes no key: the seed is mixed in afterwards
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    return (_mix(h ^ _seed(random_state)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def labels(y: Any, positive_label: Any) -> np.ndarray | None:
    """A partition's labels as float64 (``positive_label`` coded 1), or None."""
    if y is None:
        return None
    return as_1d_float(binary_labels(np.asarray(y), positive_label), "y")


__all__ = ["RowParts", "labels", "row_parts", "row_uniform"]
