"""Contribution (TreeSHAP) throughput: treeprune vs native pred_contribs / pred_contrib.

Models (synthetic credit-like data, fixed seeds):
  xgb_<n>x6    XGBoost, depth 6 (a legacy model)
  lgb_<n>x31   LightGBM, 31 leaves
  xgb_<k>x3    XGBoost, depth 3, fewer trees (the size of a pruned model)

For each model and 1 and 2 threads: rows per second of ``predict(X, output="contrib")`` and of the
native call (median of repeats, after a warm-up), the ratio, and the largest difference between
the two on the first rows (the check that both compute the same thing).

Usage: python benchmarks/bench_contrib.py [--rows 20000] [--repeats 3] [--quick]
Prints a table and writes benchmarks/results/bench_contrib.csv.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def make_data(n_rows: int, n_features: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    X[rng.random(X.shape) < 0.05] = np.nan
    logit = np.nansum(X[:, :6] * np.linspace(1.0, 0.2, 6), axis=1) + 0.5 * np.nan_to_num(
        X[:, 6] * X[:, 7])
    y = (logit + rng.logistic(size=n_rows) > 1.0).astype(np.float64)
    return X, y


def train_models(X: np.ndarray, y: np.ndarray, quick: bool) -> dict[str, object]:
    import lightgbm as lgb
    import xgboost as xgb

    n_trees = 50 if quick else 300
    n_small = 20 if quick else 60
    dtrain = xgb.DMatrix(X, y)
    params = {"objective": "binary:logistic", "eta": 0.05, "nthread": 2}
    return {
        f"xgb_{n_trees}x6": xgb.train({**params, "max_depth": 6}, dtrain, n_trees),
        f"lgb_{n_trees}x31": lgb.train(
            {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1,
             "num_threads": 2, "min_data_in_leaf": 5},
            lgb.Dataset(X, y), n_trees),
        f"xgb_{n_small}x3": xgb.train({**params, "max_depth": 3}, dtrain, n_small),
    }


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up (and JIT)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def native_fn(model, threads: int):
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        model.set_param({"nthread": threads})
        return (lambda X: model.predict(xgb.DMatrix(X, nthread=threads), pred_contribs=True),
                "xgboost pred_contribs")
    return (lambda X: model.predict(X, pred_contrib=True, num_threads=threads),
            "lightgbm pred_contrib")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small models, for a smoke run")
    args = ap.parse_args()

    import treeprune as tp

    X_train, y_train = make_data(20_000, seed=1)
    X, _ = make_data(args.rows, seed=2)
    rows = []
    for name, model in train_models(X_train, y_train, args.quick).items():
        ens = tp.load(model)
        for threads in (1, 2):
            native, native_name = native_fn(model, threads)

            def ours(data, threads=threads, ens=ens):
                return ens.predict(data, output="contrib", n_threads=threads)

            diff = float(np.max(np.abs(ours(X[:2000]) - native(X[:2000]))))
            t_native = timeit(lambda native=native: native(X), args.repeats)
            t_ours = timeit(lambda ours=ours: ours(X), args.repeats)
            rows.append({
                "model": name, "threads": threads, "native": native_name,
                "rows_per_s_native": args.rows / t_native,
                "rows_per_s_treeprune": args.rows / t_ours,
                "speedup": t_native / t_ours,
                "max_abs_diff": diff,
            })
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "bench_contrib.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    print(f"\nwrote {RESULTS / 'bench_contrib.csv'}")


if __name__ == "__main__":
    main()
