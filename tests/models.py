"""Models the tests build again and again: trees by hand, small binary boosters, their data.

* :func:`build` / :func:`make_ens`: an Ensemble from nested dicts, every field under control.
* :func:`credit_like`, :func:`train_xgb`, :func:`train_lgb`: a credit-like binary problem and
  the two libraries' boosters trained on it (single-threaded, seeded).
* :func:`native_margin`: the native library's margin of a model file it wrote or reads.
"""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from treeprune.ensemble import Ensemble
from treeprune.objectives import Objective
from treeprune.trees import Tree, assemble, empty_nodes

NAN = math.nan


# ----------------------------------------------------------------------------- building by hand
def build(spec, group: int = 0, weight: float = 1.0) -> Tree:
    """A Tree from nested dicts: a number is a leaf; a split is
    ``dict(f=feature, t=threshold, l=left, r=right, dl=default_left, mt=missing_type,
    cat=[categories], v=internal value, g=gain, h=cover, n=count)``; a leaf may be
    ``dict(leaf=v, h=cover, n=count)``."""
    rows: list[dict] = []
    cat_sets: list[np.ndarray] = []

    def add(s) -> int:
        i = len(rows)
        rows.append({})
        if not isinstance(s, dict) or "leaf" in s:
            v = s["leaf"] if isinstance(s, dict) else s
            s = s if isinstance(s, dict) else {}
            rows[i] = {"value": float(v), "cover": float(s.get("h", NAN))}
            if "n" in s:
                rows[i]["count"] = s["n"]
            return i
        lc, rc = add(s["l"]), add(s["r"])
        row = {"feature": s["f"], "threshold": s.get("t", 0.0), "left": lc, "right": rc,
               "default_left": s.get("dl", True), "missing_type": s.get("mt", 2),
               "value": s.get("v", NAN), "gain": s.get("g", NAN), "cover": s.get("h", NAN)}
        if "n" in s:
            row["count"] = s["n"]
        if "cat" in s:
            words = np.zeros(max(s["cat"], default=0) // 32 + 1, dtype=np.uint32)
            for c in s["cat"]:
                words[c // 32] |= np.uint32(1 << (c % 32))
            cat_sets.append(words)
            row["cat_index"] = len(cat_sets) - 1
        rows[i] = row
        return i

    add(spec)
    nodes = empty_nodes(len(rows))
    for i, row in enumerate(rows):
        for k, v in row.items():
            nodes[k][i] = v
    return Tree(nodes, cat_sets, group, weight)


def make_ens(trees, source="xgboost", n_features=3, base=0.0, folded=None, n_groups=1,
             monotone=None) -> Ensemble:
    """An Ensemble of ``trees`` (from :func:`build`): squared error, or softmax of ``n_groups``."""
    if n_groups > 1:
        obj = Objective("multi:softprob" if source == "xgboost" else "multiclass", "softmax",
                        "softmax", n_classes=n_groups)
    else:
        obj = Objective("reg:squarederror" if source == "xgboost" else "regression", "squared",
                        "identity")
    return assemble(
        None, trees, objective=obj,
        base_margin=np.broadcast_to(np.asarray(base, dtype=np.float64), (n_groups,)).copy(),
        folded_intercept=np.zeros(n_groups) if folded is None else np.asarray(folded, float),
        n_features=n_features, feature_names=tuple(f"f{i}" for i in range(n_features)),
        feature_types=("float",) * n_features, categories={},
        monotone_constraints=tuple(monotone or (0,) * n_features), source=source,
        source_meta={},
    )


# ----------------------------------------------------------------------------- binary boosters
def credit_like(n: int, seed: int = 0, n_features: int = 8, nan_frac: float = 0.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``n_features`` normal features (``nan_frac`` of them NaN) and 0/1 labels from a
    logit with an interaction, as credit models see."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    if nan_frac > 0:
        X[rng.random(X.shape) < nan_frac] = np.nan
    Z = np.nan_to_num(X)
    logit = 1.2 * Z[:, 0] - 0.8 * Z[:, 1] + 0.5 * np.nan_to_num(X[:, 2] * X[:, 3])
    y = (logit + rng.logistic(size=n) > 0.3).astype(float)
    return X, y


def train_xgb(X: np.ndarray, y: np.ndarray, max_depth: int, n_rounds: int) -> xgb.Booster:
    """A binary:logistic XGBoost booster, eta 0.1, one thread, seed 0."""
    return xgb.train({"max_depth": max_depth, "eta": 0.1, "objective": "binary:logistic",
                      "nthread": 1, "seed": 0}, xgb.DMatrix(X, y), n_rounds)


def train_lgb(X: np.ndarray, y: np.ndarray, num_leaves: int, n_rounds: int) -> lgb.Booster:
    """A binary LightGBM booster, learning rate 0.1, one thread, seed 0."""
    return lgb.train({"objective": "binary", "num_leaves": num_leaves, "learning_rate": 0.1,
                      "verbose": -1, "num_threads": 1, "seed": 0}, lgb.Dataset(X, y), n_rounds)


def native_margin(path, X: np.ndarray) -> np.ndarray:
    """The margin of the model file ``path`` (LightGBM ``.txt``, else XGBoost) natively."""
    if str(path).endswith(".txt"):
        return lgb.Booster(model_file=str(path)).predict(X, raw_score=True)
    return xgb.Booster(model_file=str(path)).predict(xgb.DMatrix(X), output_margin=True)
