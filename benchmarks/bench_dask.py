"""Scoring on a dask cluster: throughput with 1 and 2 worker processes, scaling, worker memory.

An XGBoost model (300 trees, depth 6, 24 features, trained on 20k synthetic credit-like rows)
scores N rows (default 10M) that each worker generates partition by partition (seeded per
partition), so no process ever holds the whole data and the time is the cluster's alone. Each
partition is scored with ``model.predict(dask_array, output="margin")`` and reduced to its sum,
so only numbers come back to the client. Every worker has one thread (the Numba kernels run one
thread per partition; the cluster gives the parallelism).

For 1 and 2 workers it prints rows/s (best of --repeats), the scaling ratio (2 workers / 1),
and each worker's peak resident memory after the runs, next to the size of one partition and of
the whole data. Data generation is timed on its own as well, to show what the scoring adds.

With ``--auc`` it also times the AUC of the 2-worker cluster's margins against synthetic outcomes
(one distinct margin per row: the bounded sketch-and-histogram reduction of
``treeprune.scaleout._metrics``) and prints the estimate, its error bound and the client's peak
memory.

Usage: python benchmarks/bench_dask.py [--rows 10000000] [--chunk 250000] [--repeats 2] [--auc]
Prints a table and writes benchmarks/results/bench_dask.csv.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_FEATURES = 24


def make_block(seed: int, n_rows: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def make_outcome(seed: int, n_rows: int) -> np.ndarray:
    """Outcomes for the rows of ``make_block(seed, n_rows)``: 1 with probability sigmoid(x0)."""
    x0 = np.nan_to_num(make_block(seed, n_rows)[:, 0])
    u = np.random.default_rng(seed + 7).random(n_rows)
    return (u < 1 / (1 + np.exp(-x0))).astype(np.float64)


def lazy_outcome(n_rows: int, chunk: int):
    import dask
    import dask.array as da

    sizes = [min(chunk, n_rows - start) for start in range(0, n_rows, chunk)]
    return da.concatenate([da.from_delayed(dask.delayed(make_outcome, pure=True)(i, n),
                                           shape=(n,), dtype=np.float64)
                           for i, n in enumerate(sizes)])


def train_model(seed: int = 0):
    import xgboost as xgb

    import treeprune as tp

    X = make_block(10_000 + seed, 20_000)
    logit = np.nansum(X[:, :6] * np.linspace(1.0, 0.2, 6), axis=1)
    y = (logit + np.random.default_rng(seed).logistic(size=len(X)) > 1.0).astype(float)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "nthread": 1,
              "seed": seed, "tree_method": "hist", "verbosity": 0}
    booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=300)
    return tp.load(booster)


def lazy_data(n_rows: int, chunk: int):
    """A dask array of ``n_rows`` rows whose blocks are generated on the workers."""
    import dask
    import dask.array as da

    sizes = [min(chunk, n_rows - start) for start in range(0, n_rows, chunk)]
    blocks = [da.from_delayed(dask.delayed(make_block, pure=True)(i, n), shape=(n, N_FEATURES),
                              dtype=np.float64) for i, n in enumerate(sizes)]
    return da.concatenate(blocks, axis=0)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(model, n_workers: int, n_rows: int, chunk: int, repeats: int) -> dict:
    from treeprune.scaleout._cluster import cluster_client

    with cluster_client(n_workers=n_workers) as client:
        X = lazy_data(n_rows, chunk)
        # warm-up: load the cached kernels in every worker, ship nothing big
        client.run(lambda: model.predict(make_block(0, 8), output="margin"))
        gen = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            X.sum().compute()
            gen.append(time.perf_counter() - t0)
        score = []
        total = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            total = float(model.predict(X, output="margin").sum().compute())
            score.append(time.perf_counter() - t0)
        rss = client.run(peak_rss_mb)
    return {"workers": n_workers, "rows": n_rows, "best_s": min(score),
            "rows_per_s": n_rows / min(score), "generate_s": min(gen),
            "peak_rss_mb_per_worker": max(rss.values()), "margin_sum": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows to score (default 10M)")
    ap.add_argument("--chunk", type=int, default=250_000, help="rows per partition")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--auc", action="store_true",
                    help="also time the bounded AUC reduction on 2 workers")
    args = ap.parse_args(argv)

    model = train_model()
    # the check: the cluster's margins equal the in-memory ones on one partition
    block = make_block(0, min(args.chunk, args.rows))
    in_memory = model.predict(block, output="margin")
    rows = []
    for n_workers in (1, 2):
        r = run(model, n_workers, args.rows, args.chunk, args.repeats)
        rows.append(r)
    first = lazy_data(min(args.chunk, args.rows), args.chunk)
    from treeprune.scaleout._cluster import cluster_client

    with cluster_client(n_workers=1):
        on_cluster = model.predict(first, output="margin").compute()
    exact = bool(np.array_equal(on_cluster, in_memory))

    table = pd.DataFrame(rows)
    table["scaling"] = table["rows_per_s"] / table["rows_per_s"].iloc[0]
    partition_mb = args.chunk * N_FEATURES * 8 / 2**20
    data_mb = args.rows * N_FEATURES * 8 / 2**20
    print(f"model: XGBoost 300 trees depth 6, {N_FEATURES} features; {args.rows:,} rows in "
          f"partitions of {args.chunk:,} ({partition_mb:.0f} MB each, {data_mb:,.0f} MB in all)")
    print(f"{'workers':>8}{'seconds':>10}{'rows/s':>14}{'gen only s':>12}{'scaling':>9}"
          f"{'peak RSS/worker MB':>20}")
    for _, r in table.iterrows():
        print(f"{int(r['workers']):>8}{r['best_s']:>10.2f}{r['rows_per_s']:>14,.0f}"
              f"{r['generate_s']:>12.2f}{r['scaling']:>9.2f}{r['peak_rss_mb_per_worker']:>20.0f}")
    print(f"cluster margins equal the in-memory ones on a partition: {exact}")
    same = bool(np.isclose(table["margin_sum"].iloc[0], table["margin_sum"].iloc[1], rtol=1e-9))
    print(f"1- and 2-worker margin sums agree: {same}")
    RESULTS.mkdir(exist_ok=True)
    table.assign(partition_mb=partition_mb, data_mb=data_mb, exact=exact).to_csv(
        RESULTS / "bench_dask.csv", index=False)
    print(f"wrote {RESULTS / 'bench_dask.csv'}")
    if args.auc:
        from treeprune.scaleout._metrics import auc_with_bound

        with cluster_client(n_workers=2):
            t0 = time.perf_counter()
            value, bound = auc_with_bound(lazy_outcome(args.rows, args.chunk),
                                          model.predict(lazy_data(args.rows, args.chunk),
                                                        output="margin"))
            seconds = time.perf_counter() - t0
        print(f"AUC of {args.rows:,} continuous margins on 2 workers: {value:.6f} +- {bound:.2e} "
              f"in {seconds:.1f}s; client peak RSS {peak_rss_mb():.0f} MB")
    return 0 if exact and same else 1


if __name__ == "__main__":
    sys.exit(main())
