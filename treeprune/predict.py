"""Prediction: data -> packed kernels -> margins, predictions, leaf ids or per-tree outputs.

:class:`Predictor` is the lean entry point for services and tight loops: the model is packed,
the output chosen and (optionally) the model compiled once, so that a call on a numpy row does
only what that row needs.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .data import to_matrix
from .ensemble import Ensemble
from .errors import DataError
from .kernels.chained import leaves_chained, margins_chained
from .kernels.shallow import leaves_prefixed, leaves_shallow, margins_prefixed, margins_shallow
from .kernels.traverse import leaves_blocked, margins_blocked, margins_rows
from .packed import Packed, pack

OUTPUTS = ("prediction", "margin", "leaf", "per_tree", "score", "contrib")
#: Up to this many rows a call stays on one thread (starting the pool costs more than it saves).
SERIAL_ROWS = 4
#: Up to this many rows a compiled model scores serially; more go to the threaded kernels.
COMPILED_ROWS = 64
_F64 = np.dtype(np.float64)
_NDARRAY = np.ndarray  # a module global: one lookup fewer per single-row call


def _sigmoid_one(m: float, exp: Any = np.exp, empty: Any = np.empty) -> np.ndarray:
    """:func:`treeprune.objectives.expit` of one margin as a one-element array, bit for bit: the
    same ``exp`` (numpy's, on one float64) and the same IEEE divisions, without its array
    calls (numpy's functions bound as defaults: a global lookup shows at this scale)."""
    e = float(exp(-abs(m)))
    out = empty(1)
    out[0] = 1.0 / (1.0 + e) if m >= 0 else e / (1.0 + e)
    return out


def _sigmoid_row(margin: np.ndarray) -> np.ndarray:
    """:func:`_sigmoid_one` of a one-element margin array."""
    return _sigmoid_one(margin.item())


def _one(m: float) -> np.ndarray:
    out = np.empty(1)
    out[0] = m
    return out


@contextmanager
def _threads(n_threads: int | None):
    if n_threads is None:
        yield
        return
    if int(n_threads) < 1:
        raise DataError(f"n_threads must be >= 1, got {n_threads}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def margins_packed(p: Packed, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """Margins (n_rows, n_groups) in the source's accumulation precision.

    ``X`` is float32 or float64 (C-contiguous); the kernels read it in the model's precision."""
    out = np.empty((X.shape[0], len(p.base_margin)), dtype=p.dtype)
    out[:] = p.base_margin
    if p.shallow is not None and X.shape[0] > SERIAL_ROWS:
        # shallow trees: straight-line vector code, which casts the rows as it reads them
        s = p.shallow
        with _threads(n_threads):
            margins_shallow(X, s.features, s.slot_feature, s.slot_threshold, s.slot_nan_right,
                            s.slot_value, s.groups, p.rule, out)
        return out
    X = np.ascontiguousarray(X, dtype=p.dtype)
    args = (X, *p.walk_args, out)
    if X.shape[0] <= SERIAL_ROWS:
        margins_rows(*args)
    elif p.rows_chained is not None:
        # deep lopsided trees: a row at a time on the chained layout (float64 rows: LightGBM)
        with _threads(n_threads):
            margins_chained(X, p.rows_chained, out)
    elif p.prefix is not None:
        s = p.prefix
        with _threads(n_threads):
            margins_prefixed(X, s.features, s.slot_feature, s.slot_threshold, s.slot_nan_right,
                             s.slot_leaf, *p.walk_args, out)
    else:
        with _threads(n_threads):
            margins_blocked(*args)
    return out


def _margin_dtype(p: Packed, X: Any) -> Any:
    """The dtype to hand rows to :func:`margins_packed` in: a float array as it is for shallow
    models (their kernel casts while it reads: no copy of the whole matrix), else the model's."""
    if p.shallow is not None and isinstance(X, np.ndarray) and X.dtype in (np.float32, _F64):
        return X.dtype
    return p.dtype


def leaves_packed(p: Packed, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """Packed leaf positions (n_rows, n_trees)."""
    out = np.empty((X.shape[0], len(p.trees)), dtype=np.int32)
    if p.shallow is not None:
        s = p.shallow
        with _threads(n_threads):
            leaves_shallow(X, s.features, s.slot_feature, s.slot_threshold, s.slot_nan_right,
                           s.slot_leaf, p.rule, out)
        return out
    if p.rows_chained is not None:
        # deep lopsided trees: a row at a time on the chained layout, as margins_packed
        with _threads(n_threads):
            leaves_chained(np.ascontiguousarray(X, dtype=np.float64), p.rows_chained,
                           p.chained[1], out)
        return out
    if p.prefix is not None:
        # deeper trees: the top levels as straight-line code, as margins_packed takes them
        s = p.prefix
        with _threads(n_threads):
            leaves_prefixed(X, s.features, s.slot_feature, s.slot_threshold, s.slot_nan_right,
                            s.slot_leaf, p.trees, p.info, p.threshold, p.left, p.cat,
                            p.cat_bounds, p.cat_words, p.rule, p.simple, out)
        return out
    with _threads(n_threads):
        leaves_blocked(X, p.trees, p.info, p.threshold, p.left, p.cat, p.cat_bounds,
                       p.cat_words, p.rule, p.simple, out)
    return out


def _predict_row(ens: Ensemble, p: Packed, X: np.ndarray, output: str) -> np.ndarray:
    """One 1-D float numpy row of the model's width: the single-row kernel, as the predictor
    calls it (checked first in :func:`predict_ensemble`, so that a row pays for nothing else)."""
    if X.dtype is not _F64 or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X, dtype=np.float64)
    one = p.single_row_one
    if one is not None:
        m = one[0](X, *one[1])
        if output == "margin":
            return _one(m)
        return _sigmoid_one(m) if ens.objective.output == "sigmoid" else \
            ens.objective.transform(_one(m))
    kernel, args = p.single_row
    margin = kernel(X, *args)
    if len(p.base_margin) > 1:
        return margin.reshape(1, -1) if output == "margin" else \
            ens.objective.transform(margin.reshape(1, -1))
    if output == "margin":
        return margin
    return _sigmoid_row(margin) if ens.objective.output == "sigmoid" else \
        ens.objective.transform(margin)


def predict_ensemble(ens: Ensemble, X: Any, output: str = "prediction",
                     n_threads: int | None = None) -> np.ndarray:
    """See :meth:`Ensemble.predict`."""
    if (type(X) is np.ndarray and X.ndim == 1 and (output == "prediction" or output == "margin")
            and X.shape[0] == ens.n_features and X.dtype.kind == "f"):
        return _predict_row(ens, pack(ens), X, output)
    if output not in OUTPUTS:
        raise DataError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    if output == "score":
        scorecard = ens.scorecard
        if scorecard is None:
            raise DataError("output='score' needs a scorecard: model.with_scorecard(Scorecard(...))")
        return scorecard.score_from_margin(predict_ensemble(ens, X, "margin", n_threads))
    if output == "contrib":
        from .contrib import contributions

        return contributions(ens, X, n_threads)
    p = pack(ens)
    if output in ("margin", "prediction"):
        margin = margins_packed(p, to_matrix(ens, X, _margin_dtype(p, X)),
                                n_threads).astype(np.float64)
        if margin.shape[1] == 1:
            margin = margin[:, 0]
        return margin if output == "margin" else ens.objective.transform(margin)
    leaves = leaves_packed(p, to_matrix(ens, X, p.dtype), n_threads)
    if output == "leaf":
        return p.native_id[leaves]
    return p.leaf_value[leaves].astype(np.float64)


class Predictor:
    """A callable that predicts with one model, everything that does not depend on the rows done
    once. Build it with :meth:`Ensemble.predictor`.

    Parameters
    ----------
    ens : Ensemble
        The model.
    output : {"prediction", "margin", "score", "leaf", "per_tree", "contrib"}
        What a call returns, as in :meth:`Ensemble.predict` (the last three through it).
    n_threads : int, optional
        Threads for calls on many rows (default: all cores Numba sees).
    compiled : bool
        Compile the model into its own machine code (:mod:`treeprune.kernels.compiled`), cached
        on disk by a hash of the model: the lowest single-row latency for small (pruned) models.
        The first compile of a model takes seconds; :attr:`compile_seconds` reports it.
    cache_dir : str or Path, optional
        Where compiled models are kept (default ``$TREEPRUNE_CACHE_DIR``, else
        ``$XDG_CACHE_HOME/treeprune``, else ``~/.cache/treeprune``).

    Notes
    -----
    A call returns exactly what ``ens.predict(X, output)`` returns (same shapes, same values, bit
    for bit). A 1-D float numpy row of the model's width is the fast path: a contiguous float64
    row goes to the kernel as it is (which reads it in the model's precision: float32 for
    XGBoost, as XGBoost casts it), other float rows are converted to that first; DataFrames and
    other inputs go through the usual checks.
    """

    def __init__(self, ens: Ensemble, output: str = "prediction", *,
                 n_threads: int | None = None, compiled: bool = False,
                 cache_dir: str | Path | None = None) -> None:
        if output not in OUTPUTS:
            raise DataError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
        if output == "score" and ens.scorecard is None:
            raise DataError("output='score' needs a scorecard: model.with_scorecard(Scorecard(...))")
        if n_threads is not None and int(n_threads) < 1:
            raise DataError(f"n_threads must be >= 1, got {n_threads}")
        self.ensemble = ens
        self.output = output
        self.n_threads = n_threads
        p = pack(ens)
        self._p = p
        self._n_features = ens.n_features
        self._kernel, self._args = p.single_row
        self._single = len(p.base_margin) == 1
        self._lean = output in ("prediction", "margin", "score")
        self._finish = self._make_finish(ens, output)
        # one probability from one margin: the same arithmetic as the objective's expit in a
        # few scalar operations (numpy's array calls cost microseconds on one element)
        self._finish_row = (_sigmoid_row if output == "prediction" and self._single
                            and ens.objective.output == "sigmoid" else self._finish)
        #: Seconds the first compile (or cache load) of this model took; None when not compiled.
        self.compile_seconds: float | None = None
        #: Whether the compiled model's files were found in the cache directory.
        self.cache_hit: bool | None = None
        self._row = None
        self._row_one = None
        if compiled:
            from .kernels.compiled import load_compiled

            start = time.perf_counter()
            module, self.cache_hit = load_compiled(p, cache_dir)
            # the first calls compile (or load the machine code from Numba's cache): a
            # one-output model's rows go through margin_one, which returns a number
            (module.margin_one if self._single else module.margin_row)(
                np.zeros(self._n_features, np.float64))
            module.margin_rows(np.zeros((1, self._n_features), p.dtype),
                               np.empty((1, len(p.base_margin)), p.dtype))
            self._row_one = module.margin_one
            self.compile_seconds = time.perf_counter() - start
            self._row = module.margin_row
            self._rows = module.margin_rows
        self._fast = self._make_fast() if self._lean else None
        # the shape of the rows that take the fast path: none without one (one test per call)
        self._row_shape = (ens.n_features,) if self._fast is not None else None

    def _make_fast(self) -> Any:
        """The whole call on one contiguous float64 row, as one closure: the kernel, then the
        output's finish (a call from Python pays for every attribute it looks up)."""
        if self._single:
            fast = self._make_fast_one()
            if fast is not None:
                return fast
        if self._row is not None:
            row = self._row
        else:
            kernel, args = self._kernel, self._args
            if len(args) == 1:
                (a0,) = args

                def row(x: np.ndarray) -> np.ndarray:
                    return kernel(x, a0)
            else:
                def row(x: np.ndarray) -> np.ndarray:
                    return kernel(x, *args)
        finish = self._finish_row
        if self._single:
            if finish is None:
                return row
            return lambda x: finish(row(x))
        if finish is None:
            return lambda x: row(x).reshape(1, -1)
        return lambda x: finish(row(x).reshape(1, -1))

    def _make_fast_one(self) -> Any:
        """:meth:`_make_fast` for a one-output model by a kernel that returns the margin as a
        number (a new array from the kernel costs more than the model's whole walk on a small
        model); None where there is none (a model past the single-row layouts' limits). The
        kernel is called from the closure itself: each Python call between the predictor and
        the kernel costs tens of ns."""
        if self._row_one is not None:
            one, args = self._row_one, ()
        elif self._p.single_row_one is not None:
            one, args = self._p.single_row_one
        else:
            return None
        finish = self._finish_row
        empty = np.empty
        if args:
            kernel, (a0,) = one, args
            if finish is _sigmoid_row:
                return lambda x: _sigmoid_one(kernel(x, a0))

            def margin(x: np.ndarray) -> np.ndarray:
                out = empty(1)
                out[0] = kernel(x, a0)
                return out
        else:
            if finish is _sigmoid_row:
                return lambda x: _sigmoid_one(one(x))

            def margin(x: np.ndarray) -> np.ndarray:
                out = empty(1)
                out[0] = one(x)
                return out

        if finish is None:
            return margin
        return lambda x: finish(margin(x))

    @staticmethod
    def _make_finish(ens: Ensemble, output: str) -> Any:
        if output == "margin":
            return None
        if output == "prediction":
            return ens.objective.transform
        if output == "score":
            return ens.scorecard.score_from_margin
        return None

    def _margins(self, X: np.ndarray) -> np.ndarray:
        p = self._p
        if self._row is not None and X.shape[0] <= COMPILED_ROWS:
            out = np.empty((X.shape[0], len(p.base_margin)), dtype=p.dtype)
            self._rows(np.ascontiguousarray(X, dtype=p.dtype), out)
            return out
        return margins_packed(p, X, self.n_threads)

    def __call__(self, X: Any) -> np.ndarray:
        """Predict ``X`` (one row as a 1-D array, or rows as a 2-D array / DataFrame)."""
        if type(X) is _NDARRAY and X.shape == self._row_shape:
            # one numpy row: one kernel call, which reads the row as the source library does
            # (float32 for XGBoost), walks every tree and returns the float64 margins
            # (n_groups,); the kernels are compiled for contiguous float64 rows only
            if X.dtype is _F64 and X.flags.c_contiguous:
                return self._fast(X)
            if X.dtype.kind == "f":
                return self._fast(np.ascontiguousarray(X, dtype=np.float64))
        return self._general(X)

    def _general(self, X: Any) -> np.ndarray:
        if not self._lean:
            return predict_ensemble(self.ensemble, X, self.output, self.n_threads)
        Xm = to_matrix(self.ensemble, X, _margin_dtype(self._p, X))
        margin = self._margins(Xm).astype(np.float64)
        if self._single:
            margin = margin[:, 0]
        return margin if self._finish is None else self._finish(margin)

    def __repr__(self) -> str:
        mode = "compiled" if self._row is not None else "arrays"
        return f"Predictor(output={self.output!r}, {mode}, {self.ensemble!r})"


__all__ = ["predict_ensemble", "margins_packed", "leaves_packed", "OUTPUTS", "Predictor"]
