"""Leaf refit time: CPU (Numba) vs GPU (numba.cuda) on an 800-tree, depth-6 XGBoost model.

The model is trained once on a subsample of synthetic credit-like data (``--train-rows``); the
refit then runs ``refit_leaves`` (``--rounds`` cyclic Newton rounds, l2=50, intercept included)
on fresh synthetic rows, 1M and 10M by default. Each timing is one end-to-end call after a
warm-up on a few rows (JIT compilation excluded): routing the rows to leaves, moving data, the
Newton rounds. Where both devices ran, the largest relative difference of the refitted leaf
values is reported too.

On a machine without a CUDA GPU the GPU rows say "no CUDA device". The CPU refit keeps a
(rows x trees) int32 leaf matrix in memory (32 GB for 10M rows x 800 trees) and runs its Newton
rounds on one core: rows it cannot hold in RAM are skipped with a note, and ``--cpu-max-rows``
skips larger CPU cases on purpose.

Usage: python benchmarks/bench_refit.py [--rows 1000000 10000000] [--trees 800] [--depth 6]
           [--rounds 10] [--train-rows 100000] [--cpu-max-rows N] [--devices cpu cuda]
Quick run: python benchmarks/bench_refit.py --rows 20000 --trees 50 --rounds 3
Prints a table and writes benchmarks/results/bench_refit.csv.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_FEATURES = 24


def make_data(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 features (what XGBoost routes on) with NaNs, and 0/1 labels; built in chunks."""
    rng = np.random.default_rng(seed)
    X = np.empty((n_rows, N_FEATURES), dtype=np.float32)
    y = np.empty(n_rows, dtype=np.float64)
    coef = np.linspace(1.0, 0.2, 6).astype(np.float32)
    chunk = 1_000_000
    for s in range(0, n_rows, chunk):
        e = min(s + chunk, n_rows)
        Xc = rng.standard_normal((e - s, N_FEATURES), dtype=np.float32)
        logit = Xc[:, :6] @ coef + 0.5 * Xc[:, 6] * Xc[:, 7]
        y[s:e] = (logit + rng.logistic(size=e - s) > 1.0)
        Xc[rng.random(Xc.shape, dtype=np.float32) < 0.05] = np.nan
        X[s:e] = Xc
    return X, y


def train_model(n_trees: int, depth: int, n_rows: int):
    import xgboost as xgb

    import treeprune as tp

    X, y = make_data(n_rows, seed=1)
    params = {"objective": "binary:logistic", "eta": 0.05, "max_depth": depth,
              "tree_method": "hist", "max_bin": 64, "nthread": os.cpu_count() or 1,
              "verbosity": 0}
    booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=n_trees)
    return tp.load(booster)


def gpu_name() -> str | None:
    from treeprune.kernels.device import cuda_available

    if not cuda_available():
        return None
    from numba import cuda

    try:
        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - the simulator has no name
        return "CUDA device"


def total_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 60


def refit(device: str, ens, X, y, rounds: int):
    from treeprune.passes.datadriven import refit_leaves

    return refit_leaves(ens, X, y, n_rounds=rounds, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--trees", type=int, default=800)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=10, help="Newton rounds of the refit")
    ap.add_argument("--train-rows", type=int, default=100_000)
    ap.add_argument("--cpu-max-rows", type=int, default=None,
                    help="skip the CPU refit above this many rows")
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_refit.csv")
    args = ap.parse_args()

    t = time.perf_counter()
    ens = train_model(args.trees, args.depth, min(args.train_rows, max(args.rows)))
    print(f"model: {ens.n_trees} trees, {ens.n_leaves} leaves, depth {args.depth} "
          f"(trained in {time.perf_counter() - t:.1f}s)")
    gpu = gpu_name() if "cuda" in args.devices else None
    cpu_label = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"

    # warm-up: compile the kernels on a few rows so that timings exclude JIT compilation
    Xw, yw = make_data(2_000, seed=3)
    refit("cpu", ens, Xw, yw, 1)
    if gpu:
        refit("cuda", ens, Xw, yw, 1)

    records = []
    for n in args.rows:
        X, y = make_data(n, seed=2)
        leaf = ens.left < 0
        values = {}
        for device in args.devices:
            rec = {"rows": n, "trees": ens.n_trees, "leaves": ens.n_leaves, "rounds": args.rounds,
                   "device": device, "hardware": cpu_label if device == "cpu" else (gpu or ""),
                   "seconds": np.nan, "rows_per_s": np.nan, "note": ""}
            if device == "cuda" and not gpu:
                rec["note"] = "no CUDA device"
            elif device == "cpu" and args.cpu_max_rows is not None and n > args.cpu_max_rows:
                rec["note"] = f"skipped (--cpu-max-rows {args.cpu_max_rows})"
            elif device == "cpu" and 17 * n * ens.n_trees > 0.8 * total_ram():
                rec["note"] = (f"skipped: routing for the CPU refit needs "
                               f"~{17 * n * ens.n_trees / 2**30:.0f} GiB of RAM at its peak")
            else:
                t = time.perf_counter()
                out = refit(device, ens, X, y, args.rounds)
                rec["seconds"] = time.perf_counter() - t
                rec["rows_per_s"] = n / rec["seconds"]
                values[device] = out.value[leaf]
                if device == "cuda":
                    rec["note"] = f"{args.rounds * (ens.n_trees + 3)} kernel launches"
            records.append(rec)
            print(f"  {n:>11,} rows  {device:<4}  "
                  + (f"{rec['seconds']:9.2f}s" if np.isfinite(rec["seconds"]) else f"{'-':>10}")
                  + f"  {rec['note']}", flush=True)
        if "cpu" in values and "cuda" in values:
            c, g = values["cpu"], values["cuda"]
            rel = float(np.max(np.abs(g - c) / np.maximum(np.abs(c), 1e-12)))
            for rec in records[-len(args.devices):]:
                rec["max_rel_diff"] = rel
        del X, y

    table = pd.DataFrame(records)
    if "max_rel_diff" not in table:
        table["max_rel_diff"] = np.nan
    cpu_s = table[table.device == "cpu"].set_index("rows")["seconds"]
    table["speedup_vs_cpu"] = [cpu_s.get(r, np.nan) / s if d == "cuda" else np.nan
                               for r, d, s in zip(table.rows, table.device, table.seconds,
                                                  strict=True)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print()
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
