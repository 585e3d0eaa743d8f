"""The growing passes on a real credit data set: distillation and prune-then-retrain.

The data are split 60/20/20 (stratified, seed 0) into *train* (the legacy model's training data),
*prune* (all the passes may use) and *test* (only reported). The legacy model is an overfit
XGBoost model: 800 trees, depth 6, eta 0.05, trained on the train part. Rows of the table:

* ``original`` — the legacy model;
* ``truncate k`` — its first k trees;
* ``regrow from k`` — ``regrow(prefix(legacy, k), X_prune, y_prune, max_depth=2)``: the first k
  trees, then new depth-2 trees boosted on the prune part (k = 0 starts from the base score);
* ``distill d3 @ n`` — ``distill(legacy, X_prune, max_depth=3)`` (no labels), cut to its first n
  trees; ``distill d3 +unlabeled`` adds the train part's rows as rows without outcomes.

Columns: trees, leaves, test AUC, its difference with the original, Spearman correlation of the
test margins with the original's, and seconds for the pass (wall clock, shared machine).

Usage: python benchmarks/bench_growing.py [--dataset heloc] [--rounds 800]
Prints the table and writes benchmarks/results/bench_growing_<dataset>.csv.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import treeprune as tp  # noqa: E402
from treeprune.passes.growing import distill, regrow, stage_sizes  # noqa: E402
from treeprune.trees import prefix  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FILES = {"heloc": ("heloc/heloc_dataset_v1.csv", "RiskPerformance", "Bad"),
         "taiwan": ("taiwan_credit_default/UCI_Credit_Card.csv", "target", 1)}
SEED = 0
NTHREAD = 2


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    rel, target, bad = FILES[name]
    path = DATA / rel
    if not path.exists():
        sys.exit(f"{path} is absent: this benchmark needs the shared credit data")
    df = pd.read_csv(path)
    y = (df.pop(target) == bad).to_numpy(np.float64)
    df = df.drop(columns=[c for c in ("ID",) if c in df.columns])
    return np.ascontiguousarray(df.to_numpy(np.float64)), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="heloc", choices=sorted(FILES))
    ap.add_argument("--rounds", type=int, default=800)
    args = ap.parse_args()

    import xgboost as xgb
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    X, y = load(args.dataset)
    idx = np.arange(len(y))
    tr, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=SEED)
    pr, te = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=SEED)
    params = {"objective": "binary:logistic", "eta": 0.05, "max_depth": 6, "tree_method": "hist",
              "nthread": NTHREAD, "seed": SEED, "verbosity": 0}
    t0 = time.perf_counter()
    booster = xgb.train(params, xgb.DMatrix(X[tr], y[tr]), args.rounds)
    legacy = tp.load(booster)
    t_legacy = time.perf_counter() - t0
    ref = legacy.predict(X[te], output="margin")
    auc0 = roc_auc_score(y[te], ref)
    rows = []

    def add(method: str, ens, seconds: float) -> None:
        m = ens.predict(X[te], output="margin")
        auc = roc_auc_score(y[te], m)
        rows.append({"method": method, "trees": ens.n_trees, "leaves": ens.n_leaves,
                     "test_auc": round(auc, 4), "delta_auc": round(auc - auc0, 4),
                     "spearman": round(float(spearmanr(m, ref)[0]), 4),
                     "seconds": round(seconds, 2)})

    add("original", legacy, t_legacy)
    for k in (10, 25, 50, 100):
        add(f"truncate {k}", prefix(legacy, k), 0.0)
    for k in (0, 10, 25, 50):
        t0 = time.perf_counter()
        grown = regrow(prefix(legacy, k), X[pr], y[pr], max_depth=2, n_estimators=400,
                       n_jobs=NTHREAD)
        add(f"regrow from {k}", grown, time.perf_counter() - t0)
    for label, extra in (("distill d3", None), ("distill d3 +unlabeled", X[tr])):
        t0 = time.perf_counter()
        student = distill(legacy, X[pr], X_unlabeled=extra, max_depth=3, n_estimators=600,
                          n_jobs=NTHREAD)
        sec = time.perf_counter() - t0
        for n in stage_sizes(student, max_points=5):
            add(f"{label} @ {n}", prefix(student, n), sec if n == student.n_trees else 0.0)

    table = pd.DataFrame(rows)
    print(f"{args.dataset}: train {len(tr)}, prune {len(pr)}, test {len(te)} rows; legacy "
          f"{args.rounds} trees depth 6 eta 0.05; test AUC of the original {auc0:.4f}")
    print(table.to_string(index=False))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_growing_{args.dataset}.csv"
    table.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
