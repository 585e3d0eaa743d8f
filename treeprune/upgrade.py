"""Upgrade a legacy model file: same scores, today's format, and the check that proves it.

``upgrade(old, new)`` reads ``old`` with the scores of the release that wrote it (see
:mod:`treeprune.io.xgboost.versions`), writes ``new`` in today's format (XGBoost JSON/UBJ or
LightGBM text, from the suffix), loads ``new`` with today's native library and compares its leaf
ids and margins with the original's on check rows: the user's rows when given, otherwise probe
rows built from the model's own split thresholds (each value at, just below and just above a
threshold, plus NaN, zero and extremes), which reach every side of every split. ``new`` only
appears when the check passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .ensemble import Ensemble
from .errors import ConversionError, TreePruneError

__all__ = ["UpgradeCheck", "probe_rows", "upgrade"]

#: Margins of the upgraded file may differ from the original's by this much (float32 sums).
TOLERANCE = 1e-5


@dataclass(frozen=True)
class UpgradeCheck:
    """The before/after comparison of one upgrade."""

    source: str
    target: str
    written_by: str
    notes: tuple[str, ...]
    #: The native library that loaded the new file, e.g. ``"XGBoost 3.2.0"``.
    checked_with: str
    n_rows: int
    n_trees: int
    #: Trees whose leaf ids agree on every row (native on the new file vs. the original).
    trees_same_leaves: int
    #: Largest ``|margin(new file, native) - margin(original, writing release's rules)|``.
    max_abs_diff: float
    #: The same for treeprune reading the new file back.
    reread_max_abs_diff: float
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        """Whether the new file scores every check row as the original did."""
        return (self.trees_same_leaves == self.n_trees and self.max_abs_diff <= self.tolerance
                and self.reread_max_abs_diff <= self.tolerance)

    def lines(self) -> list[str]:
        """The check as printable lines."""
        out = [f"read     {self.source}: written by {self.written_by}"]
        out += [f"rule     {note}" for note in self.notes]
        out.append(f"wrote    {self.target} (loaded back by {self.checked_with})")
        out.append(f"check    {self.n_rows} rows: leaf ids equal in {self.trees_same_leaves}/"
                   f"{self.n_trees} trees; max |margin new - old| = {self.max_abs_diff:.3g} "
                   f"(native), {self.reread_max_abs_diff:.3g} (treeprune); tolerance "
                   f"{self.tolerance:g}: {'OK' if self.ok else 'FAILED'}")
        return out


def probe_rows(ens: Ensemble, n_rows: int = 1000, seed: int = 0) -> np.ndarray:
    """Rows whose values sit at, just below and just above the model's thresholds.

    Parameters
    ----------
    ens : Ensemble
        The model.
    n_rows : int, default 1000
    seed : int, default 0

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_features)`` float64, with NaN, zeros and extreme values mixed in.
    """
    rng = np.random.default_rng(seed)
    internal = ens.left >= 0
    base = np.array([np.nan, 0.0, -0.0, 1e30, -1e30, 1.0, -1.0])
    X = np.empty((n_rows, ens.n_features))
    for f in range(ens.n_features):
        sel = internal & (ens.feature == f)
        numeric = sel & (ens.cat_index < 0)
        t = ens.threshold[numeric]
        t = t[np.isfinite(t)]
        with np.errstate(over="ignore"):  # a threshold beyond float32 range rounds to inf
            t32 = t.astype(np.float32)
        near = [t, np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
                np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
                np.nextafter(t, np.inf), np.nextafter(t, -np.inf)]
        cats = np.arange(-1, 66, dtype=np.float64) if np.any(sel & (ens.cat_index >= 0)) \
            else np.empty(0)
        values = np.unique(np.concatenate([base[1:], *near, cats]))
        values = np.concatenate([values, [np.nan]])
        X[:, f] = values[rng.integers(0, len(values), size=n_rows)]
    return X


def _gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|``, 0 where both are NaN (or the same infinity), inf where only one is NaN."""
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - b)
    gap[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    gap[np.isnan(gap)] = np.inf
    return gap


def _native(path: Path, ens: Ensemble, X: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    if ens.source == "xgboost" and path.suffix.lower() != ".txt":
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(path))
        types = list(ens.feature_types) if any(t == "c" for t in ens.feature_types) else None
        dm = xgb.DMatrix(X, missing=np.nan, feature_names=booster.feature_names,
                         feature_types=types, enable_categorical=types is not None)
        return (f"XGBoost {xgb.__version__}", booster.predict(dm, output_margin=True),
                booster.predict(dm, pred_leaf=True))
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(path))
    return (f"LightGBM {lgb.__version__}", booster.predict(X, raw_score=True),
            booster.predict(X, pred_leaf=True))


def upgrade(source: str | os.PathLike, target: str | os.PathLike, X: Any = None,
            overwrite: bool = False, tolerance: float = TOLERANCE) -> UpgradeCheck:
    """Rewrite a model file in today's format with the scores of the release that wrote it.

    Parameters
    ----------
    source : path
        The old model (XGBoost binary/JSON/UBJ of any release, LightGBM text v2-v4).
    target : path
        The new file; ``.json``/``.ubj`` for XGBoost, ``.txt`` for LightGBM.
    X : array-like or pandas DataFrame, optional
        Rows to check on; default: :func:`probe_rows`. A DataFrame is read as every scoring
        function reads one: columns matched by the model's feature names, categorical features
        given as the levels the model stores (text, or a ``category`` column).
    overwrite : bool, default False
        Replace an existing ``target``.
    tolerance : float, default 1e-5
        Largest margin difference accepted.

    Returns
    -------
    UpgradeCheck
        The comparison; ``target`` exists only when ``check.ok``.

    Raises
    ------
    ConversionError
        The new file does not score the check rows as the old one did (nothing is written).
    ModelFormatError, UnsupportedModelError
        The old file cannot be read.
    DataError
        ``X`` does not hold the model's features (see :func:`treeprune.data.to_matrix`).
    """
    from .data import to_matrix
    from .io import load

    src, dst = Path(source), Path(target)
    if dst.exists() and not overwrite:
        raise TreePruneError(f"output file exists: {dst}; pass overwrite=True (CLI: --force)")
    ens = load(src)
    if X is None:
        rows = probe_rows(ens)
    else:  # text levels become the model's codes, as in prune, compare and score
        rows = to_matrix(ens, X, np.float64)
    margin = np.asarray(ens.predict(rows, output="margin"), dtype=np.float64).reshape(len(rows), -1)
    leaf = np.asarray(ens.predict(rows, output="leaf")).reshape(len(rows), -1)
    tmp = dst.with_name(f".{dst.name}.upgrading{dst.suffix}")
    try:
        ens.save(tmp, overwrite=True)
        checked_with, n_margin, n_leaf = _native(tmp, ens, rows)
        n_margin = np.asarray(n_margin, dtype=np.float64).reshape(margin.shape)
        n_leaf = np.asarray(n_leaf).reshape(leaf.shape)
        back = load(tmp).predict(rows, output="margin")
        diff = _gap(n_margin, margin)
        rdiff = _gap(np.asarray(back, dtype=np.float64).reshape(margin.shape), margin)
        check = UpgradeCheck(
            source=str(src), target=str(dst),
            written_by=f"{ens.source_meta.get('written_by') or ens.source} "
                       f"({ens.source_meta.get('written_encoding') or 'file'})",
            notes=tuple(ens.source_meta.get("semantic_notes") or ()),
            checked_with=checked_with, n_rows=len(rows), n_trees=leaf.shape[1],
            trees_same_leaves=int(np.sum(np.all(n_leaf == leaf, axis=0))),
            max_abs_diff=float(diff.max()) if diff.size else 0.0,
            reread_max_abs_diff=float(rdiff.max()) if rdiff.size else 0.0,
            tolerance=tolerance,
        )
        if not check.ok:
            raise ConversionError("the upgraded model does not score as the original: "
                                  + check.lines()[-1] + "; nothing was written")
        os.replace(tmp, dst)
        return check
    finally:
        if tmp.exists():
            tmp.unlink()
