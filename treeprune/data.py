"""Turning user data (numpy arrays, pandas DataFrames) into the matrix a model's kernels read.

DataFrame columns are matched to the model's feature names. Categorical columns (pandas
``category`` dtype, or text) are encoded with the levels the model stores (LightGBM's
``pandas_categorical``, XGBoost's ``cats``), whatever their order in the frame. A level the model
does not know goes where the native library sends it when scoring a pandas ``category`` column:
LightGBM reads it as missing; XGBoost refuses the data, and so does treeprune (:class:`DataError`).
An empty string is missing, as a CSV reader reads it, unless it is one of the model's levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ensemble import Ensemble
from .errors import DataError


def _is_default_names(names: tuple[str, ...]) -> bool:
    return all(n in (f"f{i}", f"Column_{i}") for i, n in enumerate(names))


def level_codes(ens: Ensemble, feature: int, values: Any, name: str | None = None
                ) -> np.ndarray:
    """The model's category codes (float64, NaN for missing) of one column holding its levels.

    Parameters
    ----------
    ens : Ensemble
        A model that stores the levels of ``feature`` (``feature in ens.categories``).
    feature : int
        The feature's index.
    values : array-like or pandas Series
        Levels (text, numbers, or a pandas ``category`` column); NaN/None is missing.
    name : str, optional
        The column's name, for error messages.

    Raises
    ------
    DataError
        An XGBoost model and a level it was not trained on (XGBoost refuses those rows too).
    """
    import pandas as pd

    known = list(ens.categories[feature])
    col = values if isinstance(values, pd.Series) else pd.Series(values)
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    levels = col.cat.categories
    # map the (few) levels of the column, then its codes: linear in the rows
    to_model = pd.Index(known).get_indexer(levels) if len(levels) else np.empty(0, np.int64)
    blank = np.array([isinstance(v, str) and v == "" for v in levels], dtype=bool)
    if "" not in known:
        to_model[blank] = -1
    unknown = [levels[i] for i in np.flatnonzero((to_model < 0) & ~blank)]
    codes = col.cat.codes.to_numpy()
    if unknown and ens.source == "xgboost":
        present = set(np.unique(codes[codes >= 0]).tolist())
        unknown = [v for i, v in enumerate(levels) if to_model[i] < 0 and not blank[i]
                   and i in present]
        if unknown:
            label = f"column {name!r}" if name is not None else f"feature {feature}"
            shown = ", ".join(repr(v) for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(
                f"{label} has level(s) {shown} that the XGBoost model was not trained on "
                f"(it knows {len(known)}: {', '.join(repr(v) for v in known[:8])}"
                f"{' ...' if len(known) > 8 else ''}); XGBoost refuses such rows too: map them "
                "to a known level or leave them empty (missing)"
            )
    out = np.full(len(codes), np.nan)
    seen = codes >= 0
    mapped = to_model[codes[seen]]
    out[np.flatnonzero(seen)] = np.where(mapped >= 0, mapped, np.nan)
    return out


def encode_levels(ens: Ensemble, frame: Any) -> Any:
    """``frame`` with the column of every feature whose levels the model stores read as levels.

    For data read from files (CSV, Parquet), where a categorical feature's column holds its
    levels as text or as numbers: such columns become pandas ``category`` columns with the
    model's levels (missing where the value is NaN or, for LightGBM, not a known level), so that
    numbers are matched as levels, not read as codes: the same mapping as the SQL export.
    Columns that already have the ``category`` dtype and other columns are left as they are.

    Raises
    ------
    DataError
        See :func:`level_codes`.
    """
    import pandas as pd

    names = list(ens.feature_names)
    if not ens.categories or not names:
        return frame
    out = frame.copy(deep=False)
    for j, known in ens.categories.items():
        if j >= len(names) or names[j] not in out.columns or not len(known):
            continue
        col = out[names[j]]
        if isinstance(col.dtype, pd.CategoricalDtype):
            continue
        codes = level_codes(ens, j, col, names[j])
        out[names[j]] = pd.Categorical.from_codes(
            np.where(np.isnan(codes), -1, codes).astype(np.int64), categories=list(known))
    return out


def binary_labels(y: Any, positive_label: Any = None) -> np.ndarray:
    """Labels as float64; with ``positive_label``, 1.0 where ``y`` equals it and 0.0 elsewhere.

    Parameters
    ----------
    y : array-like
        Numbers (returned as float64), or any two values with ``positive_label`` naming the one
        that counts as the event (a default, "bad").
    positive_label : optional
        The value coded 1. A text that reads as a number matches numeric labels (``"1"``).

    Raises
    ------
    DataError
        Labels that are not numbers without ``positive_label`` (the message lists the values
        found), a ``positive_label`` not among the values, or more than two values.
    """
    import pandas as pd

    if positive_label is None:  # numbers: no per-value work
        try:
            return np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    series = pd.Series(np.asarray(y, dtype=object).reshape(-1) if not isinstance(y, pd.Series)
                       else y.to_numpy(dtype=object))
    values = pd.unique(series.dropna())
    shown = ", ".join(repr(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
    if positive_label is None:
        try:
            return np.asarray(pd.to_numeric(series, errors="raise"), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"labels are not numbers (values found: {shown}); name the value that counts as "
                "the event (coded 1) with positive_label= (--positive-label on the command line)"
            ) from None
    if series.isna().any():
        raise DataError(f"labels have {int(series.isna().sum())} missing values; drop those rows")
    target = positive_label
    if not any(_same(v, target) for v in values):
        try:  # "1" on a command line names the number 1
            number = float(str(positive_label))
        except ValueError:
            number = None
        if number is None or not any(_same(v, number) for v in values):
            raise DataError(f"positive_label {positive_label!r} is not among the label values "
                            f"found: {shown}")
        target = number
    if len(values) > 2:
        raise DataError(f"positive_label makes 0/1 labels of two values; the labels have "
                        f"{len(values)}: {shown}")
    return np.array([1.0 if _same(v, target) else 0.0 for v in series], dtype=np.float64)


def _same(value: Any, target: Any) -> bool:
    if isinstance(target, float):
        try:
            return float(value) == target
        except (TypeError, ValueError):
            return False
    return value == target or str(value) == str(target)


def _frame_to_matrix(ens: Ensemble, df: Any, dtype: type) -> np.ndarray:
    import pandas as pd

    names = list(ens.feature_names)
    columns = [str(c) for c in df.columns]
    if names and not _is_default_names(ens.feature_names):
        missing = [n for n in names if n not in columns]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            close = close_matches(missing, columns)
            raise DataError(
                f"data is missing {len(missing)} feature column(s) the model uses: {shown}"
                f"{close}; the data needs one column per model feature, named as in the model"
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
        numeric = pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype)
        if not numeric and ens.categories.get(j):  # levels (category dtype or text) -> codes
            out[:, j] = level_codes(ens, j, col, str(df.columns[j]))
        elif isinstance(col.dtype, pd.CategoricalDtype):  # the model stores no levels: codes
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        elif numeric:
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            bad.append(str(df.columns[j]))
    if bad:
        raise DataError(
            f"non-numeric column(s) {', '.join(bad[:8])} for feature(s) the model reads as numbers"
            " (it stores no category levels for them); give numbers, or category codes"
        )
    return out


def close_matches(missing: list[str], columns: list[str]) -> str:
    """A hint naming the columns close to the ``missing`` names (case, spacing, a typo), or ''."""
    import difflib

    hints = []
    folded = {c.casefold().strip(): c for c in columns}
    for name in missing[:8]:
        match = folded.get(name.casefold().strip())
        if match is None:
            near = difflib.get_close_matches(name, columns, n=1, cutoff=0.8)
            match = near[0] if near else None
        if match is not None:
            hints.append(f"{name!r} -> {match!r}")
    return f" (close matches in the data: {', '.join(hints)})" if hints else ""


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


__all__ = ["binary_labels", "close_matches", "encode_levels", "level_codes", "to_matrix"]
