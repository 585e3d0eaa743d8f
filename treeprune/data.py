"""Turning user data (numpy arrays, pandas DataFrames) into the matrix a model's kernels read.

DataFrame columns are matched to the model's feature names; categorical columns are encoded with
the categories the model stores (unseen categories become missing, as LightGBM and XGBoost do).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ensemble import Ensemble
from .errors import DataError


def _is_default_names(names: tuple[str, ...]) -> bool:
    return all(n in (f"f{i}", f"Column_{i}") for i, n in enumerate(names))


def _frame_to_matrix(ens: Ensemble, df: Any, dtype: type) -> np.ndarray:
    import pandas as pd

    names = list(ens.feature_names)
    columns = [str(c) for c in df.columns]
    if names and not _is_default_names(ens.feature_names):
        missing = [n for n in names if n not in columns]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise DataError(
                f"data is missing {len(missing)} feature column(s) the model uses: {shown}; "
                "pass a DataFrame with the model's feature names"
            )
        df = df.loc[:, [df.columns[columns.index(n)] for n in names]]
    elif df.shape[1] != ens.n_features:
        raise DataError(
            f"data has {df.shape[1]} columns but the model expects {ens.n_features} features"
        )
    out = np.empty((len(df), ens.n_features), dtype=dtype)
    bad = []
    for j in range(ens.n_features):
        col = df.iloc[:, j]
        if isinstance(col.dtype, pd.CategoricalDtype):
            known = ens.categories.get(j)
            if known is not None:
                col = col.cat.set_categories(list(known))
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        elif pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            bad.append(str(df.columns[j]))
    if bad:
        raise DataError(
            f"non-numeric column(s) {', '.join(bad[:8])}: convert them to numbers or to pandas "
            "'category' dtype"
        )
    return out


def to_matrix(ens: Ensemble, X: Any, dtype: type) -> np.ndarray:
    """A C-contiguous (n_rows, n_features) array of ``dtype`` for ``ens``'s kernels."""
    if isinstance(X, np.ndarray) and X.dtype.kind == "f":
        arr = X
    elif hasattr(X, "iloc") and hasattr(X, "columns"):
        return _frame_to_matrix(ens, X, dtype)
    else:
        if hasattr(X, "toarray"):  # scipy.sparse: absent entries are zeros, as natives read them
            X = X.toarray()
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"data could not be read as numbers ({exc}); pass a numeric array or a DataFrame"
            ) from exc
    if arr.ndim == 1:
        if arr.shape[0] != ens.n_features:
            raise DataError(
                f"a single row must have {ens.n_features} values, got {arr.shape[0]}"
            )
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise DataError(f"data must be 2-dimensional (rows x features), got {arr.ndim} dimensions")
    if arr.shape[1] != ens.n_features:
        raise DataError(
            f"data has {arr.shape[1]} columns but the model expects {ens.n_features} features"
        )
    return np.ascontiguousarray(arr, dtype=dtype)
