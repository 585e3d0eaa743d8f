"""Prediction speed: treeprune vs native XGBoost / LightGBM on the same models, threads, rows.

Models (trained on synthetic credit-like data, fixed seeds; 40 features, 3% missing in 10 of
them, two integer-coded categorical columns):
  xgb_800x6      XGBoost, 800 trees, depth 6 (balanced)
  lgb_800x63     LightGBM, 800 trees, 63 leaves, min_data_in_leaf 5 (deep, lopsided; categorical
                 bitsets)
  xgb_300x2      XGBoost, 300 trees, depth 2 (a scorecard-like model)
  pruned_64x6    xgb_800x6 pruned to 64 trees by forward selection (treeprune's select_trees),
                 written back and read by XGBoost for the native timings
  lgb_wide_600x63  LightGBM, 600 trees, 63 leaves, on wider data: 120 features, 20% of every
                 column missing (a long row to rank-code before the walk, with many NaN)

For each model, all side by side with the native library in one run (ratios = native time /
treeprune time, > 1 means treeprune is faster):
  batch        margins of --rows rows with --threads threads (median of --repeats, native and
               treeprune alternating so that both see the same machine load)
  single row   median latency of one numpy row: native; ``model.predict``; the lean
               ``model.predictor("margin")``; and, for models up to 300 trees, the compiled
               ``model.predictor("margin", compiled=True)`` and the compiled predictor of the
               default output (probabilities: margin and link)
  cold start   a fresh process: import, load the model file, first single-row prediction
               (kernel cache, parsed-model cache and Python's bytecode cache warm; median of 5
               processes); uncached: the same with ``load(path, cache=False)``, which parses
               the file; for compiled models also with the compiled predictor (model cache
               warm); and the same for the native library
  compile      seconds to compile one model into a fresh model cache, with the routing kernels'
               own Numba cache warm (the first compile on a machine also compiles the kernels
               for the frozen arrays once: tens of seconds, then cached)

Usage: python benchmarks/bench_predict.py [--rows 50000] [--repeats 5] [--threads 2] [--quick]
Prints a table and writes benchmarks/results/bench_predict.csv (bench_predict_quick.csv).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_FEATURES = 40
CATEGORICAL = (30, 31)
WIDE_FEATURES = 120
WIDE_MISSING = 0.2


def make_data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Wide credit-like data: 40 features, 3% missing in the first 10, two categorical codes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    for j in range(10):
        X[rng.random(n_rows) < 0.03, j] = np.nan
    X[:, CATEGORICAL[0]] = rng.integers(0, 30, n_rows)
    X[:, CATEGORICAL[1]] = rng.integers(0, 8, n_rows)
    logit = (np.nansum(X[:, :8] * np.linspace(1.0, 0.2, 8), axis=1)
             + 0.5 * np.nan_to_num(X[:, 8] * X[:, 9]) + 0.3 * np.sin(X[:, CATEGORICAL[0]]))
    y = (logit + rng.logistic(size=n_rows) > 1.0).astype(np.float64)
    return X, y


def make_wide_data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Wider data: 120 numerical features, each missing in 20% of the rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, WIDE_FEATURES))
    X[rng.random(X.shape) < WIDE_MISSING] = np.nan
    logit = (np.nansum(X[:, :30] * np.linspace(1.0, 0.1, 30), axis=1)
             + 0.5 * np.nan_to_num(X[:, 30] * X[:, 31]))
    y = (logit + rng.logistic(size=n_rows) > 0.5).astype(np.float64)
    return X, y


def is_wide(name: str) -> bool:
    """Whether the model ``name`` is trained on :func:`make_wide_data`'s columns."""
    return name.startswith("lgb_wide")


def n_big(quick: bool) -> int:
    """Trees of the big models (``xgb_{n}x6``, ``lgb_{n}x63``)."""
    return 100 if quick else 800


def pruned_source(quick: bool) -> str:
    """The model that ``pruned_`` prunes: the XGBoost depth-6 one."""
    return f"xgb_{n_big(quick)}x6"


def train_models(X: np.ndarray, y: np.ndarray, quick: bool,
                 models_dir: Path | None = None,
                 names: list[str] | None = None) -> dict[str, object]:
    """The legacy models (those whose name starts with one of ``names``, default all); with
    ``models_dir``, models saved there by an earlier run are reused (training the 800-tree
    models takes minutes) and new ones are saved there."""
    import lightgbm as lgb
    import xgboost as xgb

    n_trees = n_big(quick)
    n_small = 50 if quick else 300
    n_wide = 100 if quick else 600
    lgb_params = {"objective": "binary", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1,
                  "num_threads": 2, "min_data_in_leaf": 5}
    params = {"objective": "binary:logistic", "eta": 0.05, "nthread": 2}
    recipes = {
        f"xgb_{n_trees}x6": lambda: xgb.train({**params, "max_depth": 6}, xgb.DMatrix(X, y),
                                               n_trees),
        f"lgb_{n_trees}x63": lambda: lgb.train(
            lgb_params, lgb.Dataset(X, y, categorical_feature=list(CATEGORICAL)), n_trees),
        f"xgb_{n_small}x2": lambda: xgb.train({**params, "max_depth": 2}, xgb.DMatrix(X, y),
                                              n_small),
        f"lgb_wide_{n_wide}x63": lambda: lgb.train(
            lgb_params, lgb.Dataset(*make_wide_data(len(X), seed=1)), n_wide),
    }
    models: dict[str, object] = {}
    for name, train in recipes.items():
        if names and not any(name.startswith(n) for n in names):
            continue
        path = models_dir / (name + (".json" if name.startswith("xgb") else ".txt")) \
            if models_dir is not None else None
        if path is not None and path.exists():
            models[name] = (xgb.Booster(model_file=str(path)) if name.startswith("xgb")
                            else lgb.Booster(model_file=str(path)))
            continue
        models[name] = train()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            models[name].save_model(str(path))
    return models


def native_fns(model, threads: int):
    """(batch function, one-row-block function on one thread, name); XGBoost reads float32."""
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        model.set_param({"nthread": threads})
        # one row on one thread: XGBoost's thread pool costs more than the row
        single = model.copy()
        single.set_param({"nthread": 1})
        return (lambda X: model.inplace_predict(X, predict_type="margin"),
                lambda row: single.inplace_predict(row.reshape(1, -1), predict_type="margin"),
                "xgboost.inplace_predict")
    return (lambda X: model.predict(X, raw_score=True, num_threads=threads),
            lambda block: model.predict(block, raw_score=True, num_threads=1),
            "lightgbm.predict(raw_score)")


COLD = """
import time, sys
t = time.perf_counter()
import numpy as np
if sys.argv[2] == "native" and sys.argv[1].endswith(".json"):
    import xgboost as xgb
    b = xgb.Booster(model_file=sys.argv[1])
    b.inplace_predict(np.zeros((1, b.num_features()), np.float32))
elif sys.argv[2] == "native":
    import lightgbm as lgb
    b = lgb.Booster(model_file=sys.argv[1])
    b.predict(np.zeros((1, b.num_feature())), raw_score=True)
else:
    import treeprune
    m = treeprune.load(sys.argv[1], cache=sys.argv[2] != "uncached")
    x = np.zeros(m.n_features)
    if sys.argv[2] == "compiled":
        m.predictor("margin", compiled=True, cache_dir=sys.argv[3])(x)
    else:
        m.predict(x, output="margin")
print(time.perf_counter() - t)
"""


#: Fresh processes timed per cold start (after one that warms the caches); the median is kept.
COLD_RUNS = 5


def cold_start(path: str, mode: str = "predict", cache_dir: str = "") -> float:
    """Seconds from a fresh interpreter to the first prediction: the median of ``COLD_RUNS``
    runs after one that warms the caches. Python's bytecode cache is warm too, as in an installed
    package (the environment may turn writing it off: ``PYTHONDONTWRITEBYTECODE`` is dropped)."""
    cmd = [sys.executable, "-c", COLD, path, mode, cache_dir]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           # the parsed-model cache beside the model file (a temporary folder), not the user's
           "TREEPRUNE_CACHE_DIR": str(Path(path).parent / "cache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    times = []
    for _ in range(COLD_RUNS):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return float(np.median(times))


#: Rounds of single-row timings; each round times every predictor in turn.
ROUNDS = 5


def _first_row(predict, output, block):
    """``predict`` on the numpy row itself (the shared timer hands one-row 2-D blocks)."""
    return predict(block[0]) if output is None else predict(block[0], output=output)


def interleaved(timers, rounds: int) -> list[float]:
    """Median of each timer over ``rounds`` rounds that run every timer in turn: on a shared
    machine the load drifts, and alternating keeps each ratio's two sides under the same load."""
    times = np.array([[timer() for timer in timers] for _ in range(int(rounds))])
    return [float(v) for v in np.median(times, axis=0)]


def pruned_model(ens, X: np.ndarray, y: np.ndarray, n_trees: int):
    """``ens`` cut to ``n_trees`` trees by forward selection (re-weighted), as prune does."""
    from treeprune.passes.datadriven import select_trees

    return select_trees(ens, X, y, n_trees)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--single-calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--quick", action="store_true", help="small models, for a smoke run")
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="reuse the trained models saved here by an earlier run (and save new ones)")
    ap.add_argument("--models", nargs="+", default=None, metavar="PREFIX",
                    help="only the models whose name starts with one of these (e.g. lgb_wide "
                         "pruned); the pruned model needs the XGBoost depth-6 model")
    args = ap.parse_args()

    import lightgbm as lgb
    import xgboost as xgb

    import treeprune as tp
    from treeprune.latency import batch_seconds, single_row_seconds

    X_train, y_train = make_data(20_000, seed=1)
    X_narrow, _ = make_data(args.rows, seed=2)
    X_wide, _ = make_wide_data(args.rows, seed=2)
    X_prune, y_prune = make_data(5_000, seed=3)
    names = args.models
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wants_pruned = not names or any(n.startswith("pruned") for n in names)
        source = pruned_source(args.quick)
        # the pruned model needs the depth-6 XGBoost model it prunes, and no other
        models = train_models(X_train, y_train, args.quick, args.models_dir,
                              names + [source] if names and wants_pruned else names)
        if wants_pruned:
            pruned = pruned_model(tp.load(models[source]), X_prune, y_prune,
                                  16 if args.quick else 64)
            models[f"pruned_{pruned.n_trees}x6"] = pruned.to_xgboost()
        if names:
            models = {k: v for k, v in models.items() if any(k.startswith(n) for n in names)}
        for name, model in models.items():
            X = X_wide if is_wide(name) else X_narrow
            X32 = X.astype(np.float32)
            ens = tp.load(model)
            is_xgb = isinstance(model, xgb.Booster)
            path = Path(tmp) / (name + (".json" if is_xgb else ".txt"))
            ens.save(path)
            if not is_xgb:
                model = lgb.Booster(model_file=str(path))
            ens = tp.load(path)
            small = ens.n_trees <= 300
            compile_s = cold_compiled = np.nan
            compiled = compiled_proba = None
            if small:
                cache = Path(tmp) / f"cache_{name}"
                compiled = ens.predictor("margin", compiled=True, cache_dir=cache)
                # what a scoring service calls: the default output (probabilities)
                compiled_proba = ens.predictor(compiled=True, cache_dir=cache)
                compile_s = compiled.compile_seconds
                cold_compiled = cold_start(str(path), "compiled", str(cache))
            cold = cold_start(str(path))
            cold_uncached = cold_start(str(path), "uncached")
            cold_native = cold_start(str(path), "native")
            Xn = X32 if is_xgb else X
            lean = ens.predictor("margin")
            for threads in args.threads:
                native, native_row, native_name = native_fns(model, threads)

                def ours(data, threads=threads, ens=ens):
                    return ens.predict(data, output="margin", n_threads=threads)

                # agreement first: a fast wrong answer is no answer
                diff = float(np.max(np.abs(ours(X[:2000]) - native(Xn[:2000]))))
                t_native, t_ours = interleaved(
                    [partial(batch_seconds, native, Xn, 1), partial(batch_seconds, ours, X, 1)],
                    args.repeats)
                # the shared helper hands one-row 2-D blocks; the treeprune predictors get the
                # numpy row itself (block[0]), as a service would
                calls = max(1, args.single_calls // ROUNDS)
                singles = [partial(single_row_seconds, native_row, Xn, calls),
                           partial(single_row_seconds, partial(_first_row, ens.predict, "margin"),
                                   X, calls),
                           partial(single_row_seconds, partial(_first_row, lean, None), X, calls)]
                if compiled is not None:
                    singles += [partial(single_row_seconds, partial(_first_row, compiled, None),
                                        X, calls),
                                partial(single_row_seconds,
                                        partial(_first_row, compiled_proba, None), X, calls)]
                s_native, s_predict, s_lean, *s_rest = interleaved(singles, ROUNDS)
                s_compiled, s_proba = s_rest if s_rest else (np.nan, np.nan)
                best = np.nanmin([s_lean, s_compiled])
                rows.append({
                    "model": name, "trees": ens.n_trees, "max_depth": int(ens.tree_depths().max()),
                    "threads": threads, "native": native_name,
                    "batch_rows_per_s_native": args.rows / t_native,
                    "batch_rows_per_s_treeprune": args.rows / t_ours,
                    "batch_speedup": t_native / t_ours,
                    "single_row_us_native": s_native * 1e6,
                    "single_row_us_predict": s_predict * 1e6,
                    "single_row_us_predictor": s_lean * 1e6,
                    "single_row_us_compiled": s_compiled * 1e6,
                    "single_row_us_compiled_prediction": s_proba * 1e6,
                    "single_row_speedup": s_native / best,
                    "compile_s": compile_s,
                    "cold_start_s": cold,
                    "cold_start_uncached_s": cold_uncached,
                    "cold_start_compiled_s": cold_compiled,
                    "cold_start_native_s": cold_native,
                    "max_abs_margin_diff": diff,
                })
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("bench_predict_quick.csv" if args.quick else "bench_predict.csv")
    table.to_csv(out, index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; wrote {out}")


if __name__ == "__main__":
    main()
