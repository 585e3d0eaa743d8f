"""Prediction speed: treeprune vs native XGBoost / LightGBM on the same models, threads, rows.

Models (trained on synthetic credit-like data, fixed seeds):
  xgb_800x6   XGBoost, 800 trees, depth 6
  lgb_800x63  LightGBM, 800 trees, 63 leaves
  xgb_300x2   XGBoost, 300 trees, depth 2 (a scorecard-like model)

For each model and 1 and 2 threads: batch throughput on 50k rows (median of repeats),
single-row latency (median over many calls), and the ratio treeprune / native.
Also the first prediction of a fresh process (cached kernels), import included.

Usage: python benchmarks/bench_predict.py [--rows 50000] [--repeats 5] [--quick]
Prints a table and writes benchmarks/results/bench_predict.csv.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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

    n_trees = 100 if quick else 800
    n_small = 50 if quick else 300
    dtrain = xgb.DMatrix(X, y)
    params = {"objective": "binary:logistic", "eta": 0.05, "nthread": 2}
    models: dict[str, object] = {
        f"xgb_{n_trees}x6": xgb.train({**params, "max_depth": 6}, dtrain, n_trees),
        f"lgb_{n_trees}x63": lgb.train(
            {"objective": "binary", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1,
             "num_threads": 2, "min_data_in_leaf": 5},
            lgb.Dataset(X, y), n_trees),
        f"xgb_{n_small}x2": xgb.train({**params, "max_depth": 2}, dtrain, n_small),
    }
    return models


def native_fns(model, threads: int):
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        model.set_param({"nthread": threads})
        return lambda X: model.inplace_predict(X, predict_type="margin"), "xgboost.inplace_predict"
    return (lambda X: model.predict(X, raw_score=True, num_threads=threads),
            "lightgbm.predict(raw_score)")


COLD = """
import time, sys
t = time.perf_counter()
import numpy as np, treeprune
m = treeprune.load(sys.argv[1])
x = np.zeros((1, m.n_features))
m.predict(x, output="margin")
print(time.perf_counter() - t)
"""


def cold_start(path: str) -> float:
    subprocess.run([sys.executable, "-c", COLD, path], check=True, capture_output=True)  # cache
    out = subprocess.run([sys.executable, "-c", COLD, path], check=True, capture_output=True,
                         text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--single-calls", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="small models, for a smoke run")
    args = ap.parse_args()

    import treeprune as tp
    from treeprune.latency import batch_seconds, single_row_seconds

    X_train, y_train = make_data(20_000, seed=1)
    X, _ = make_data(args.rows, seed=2)
    X32 = X.astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in train_models(X_train, y_train, args.quick).items():
            ens = tp.load(model)
            path = Path(tmp) / (name + (".json" if name.startswith("xgb") else ".txt"))
            ens.save(path)
            cold = cold_start(str(path))
            for threads in (1, 2):
                native, native_name = native_fns(model, threads)
                Xn = X32 if name.startswith("xgb") else X

                def ours(data, threads=threads, ens=ens):
                    return ens.predict(data, output="margin", n_threads=threads)

                # agreement first: a fast wrong answer is no answer
                diff = float(np.max(np.abs(ours(X[:2000]) - native(Xn[:2000]))))
                t_native = batch_seconds(native, Xn, args.repeats, reduce="median")
                t_ours = batch_seconds(ours, X, args.repeats, reduce="median")
                s_native = single_row_seconds(native, Xn, args.single_calls)
                s_ours = single_row_seconds(ours, X, args.single_calls)
                rows.append({
                    "model": name, "threads": threads, "native": native_name,
                    "batch_rows_per_s_native": args.rows / t_native,
                    "batch_rows_per_s_treeprune": args.rows / t_ours,
                    "batch_speedup": t_native / t_ours,
                    "single_row_us_native": s_native * 1e6,
                    "single_row_us_treeprune": s_ours * 1e6,
                    "single_row_speedup": s_native / s_ours,
                    "cold_first_prediction_s": cold,
                    "max_abs_margin_diff": diff,
                })
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "bench_predict.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    print(f"\nwrote {RESULTS / 'bench_predict.csv'}")


if __name__ == "__main__":
    main()
