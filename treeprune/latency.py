"""Timing predictions: single-row latency and batch time, treeprune against the native library.

One timer for every place that measures speed (the ``treeprune bench`` command, the demo, the
prediction benchmark and the latency notebook), so that they all report the same quantity:

* single-row latency: the *median* over many calls, each predicting one row (as a decision engine
  scores one applicant), after a warm-up call;
* batch time: the *best* (or median) of a few calls predicting every row, after a warm-up call.

Every figure is in seconds.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Predict = Callable[[Any], Any]


def single_row_seconds(predict: Predict, rows: Any, n_calls: int = 300) -> float:
    """Median seconds of ``predict(one row)`` over ``n_calls`` calls cycling through ``rows``.

    Parameters
    ----------
    predict : callable
        Takes a 2-D block of rows.
    rows : array-like of shape (n_rows, n_features)
        Rows to cycle through (numpy array; anything sliceable by rows).
    n_calls : int
        Calls timed, after one warm-up call.

    Returns
    -------
    float
        Median seconds per call.
    """
    n = len(rows)
    if n == 0 or n_calls < 1:
        raise ValueError("single_row_seconds needs at least one row and one call")
    predict(rows[0:1])  # warm-up: compilation, caches
    times = np.empty(int(n_calls))
    for i in range(int(n_calls)):
        row = rows[i % n: i % n + 1]
        t = time.perf_counter()
        predict(row)
        times[i] = time.perf_counter() - t
    return float(np.median(times))


def batch_seconds(predict: Predict, X: Any, repeats: int = 3, reduce: str = "best") -> float:
    """Seconds of ``predict(X)``: the best (``reduce="best"``) or median of ``repeats`` calls.

    One warm-up call on the first rows comes first.
    """
    if repeats < 1:
        raise ValueError("batch_seconds needs repeats >= 1")
    if reduce not in ("best", "median"):
        raise ValueError(f"reduce must be 'best' or 'median', got {reduce!r}")
    predict(X[: min(len(X), 1000)])
    times = []
    for _ in range(int(repeats)):
        t = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - t)
    return float(min(times) if reduce == "best" else np.median(times))


def native_predictor(ens: Any, model_path: str | os.PathLike | None = None, n_threads: int = 1,
                     output: str = "prediction") -> Predict:
    """A function rows -> the native library's prediction of ``ens``.

    Parameters
    ----------
    ens : Ensemble
    model_path : path, optional
        The model file to load natively; default the ensemble written back
        (``to_xgboost``/``to_lightgbm``).
    n_threads : int
        Threads the native library uses.
    output : {"prediction", "margin"}
    """
    if output not in ("prediction", "margin"):
        raise ValueError(f"output must be 'prediction' or 'margin', got {output!r}")
    margin = output == "margin"
    if ens.source == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(model_path)) if model_path else ens.to_xgboost()
        booster.set_param({"nthread": int(n_threads)})
        kind = "margin" if margin else "value"
        return lambda X: booster.inplace_predict(X, predict_type=kind)
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(model_path)) if model_path else ens.to_lightgbm()
    return lambda X: booster.predict(X, raw_score=margin, num_threads=int(n_threads))


def latency(ens: Any, X: np.ndarray, model_path: str | os.PathLike | None = None,
            single_calls: int = 300, batch_repeats: int = 3, native: bool = True,
            batch_threads: int | None = None) -> dict[str, Any]:
    """Single-row and batch seconds of ``ens``, by treeprune and by the native library.

    Parameters
    ----------
    ens : Ensemble
    X : numpy.ndarray
        The model's matrix (float64, columns in the model's order).
    model_path : path, optional
        The file the native library loads (default: the ensemble written back).
    single_calls, batch_repeats : int
        See :func:`single_row_seconds` and :func:`batch_seconds` (best of the repeats).
    native : bool
        Also time the native library (one thread for single rows, as treeprune's serial path;
        ``batch_threads`` for batches).
    batch_threads : int, optional
        Threads of the native batch prediction (default every core).

    Returns
    -------
    dict
        ``{"rows": n, "unit": "s", "treeprune": {"single_row_s", "batch_s", "rows_per_s"},
        "native": {...} or {"error": message}}``.
    """
    def entry(single: Predict, batch: Predict) -> dict[str, float]:
        s = single_row_seconds(single, X, single_calls)
        b = batch_seconds(batch, X, batch_repeats)
        return {"single_row_s": s, "batch_s": b,
                "rows_per_s": len(X) / b if b > 0 else math.inf}

    out: dict[str, Any] = {"rows": int(len(X)), "unit": "s"}
    out["treeprune"] = entry(ens.predict, ens.predict)
    if native:
        try:
            threads = batch_threads or os.cpu_count() or 1
            out["native"] = entry(native_predictor(ens, model_path, 1),
                                  native_predictor(ens, model_path, threads))
        except Exception as exc:  # the native library may reject odd inputs: report, go on
            out["native"] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return out


__all__ = ["batch_seconds", "latency", "native_predictor", "single_row_seconds"]
