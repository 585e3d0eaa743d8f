"""Small, varied, deterministic XGBoost models for tests.

``make_model(spec)`` trains one model described by an :class:`XGBSpec` and returns the booster and
the data to score it on (with NaNs and, for categorical specs, category codes). Everything is
seeded, single-threaded and small, so a model trains in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

OBJECTIVES = (
    "binary:logistic",
    "binary:logitraw",
    "reg:squarederror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "count:poisson",
    "reg:tweedie",
    "reg:gamma",
    "multi:softprob",
    "multi:softmax",
)


@dataclass(frozen=True)
class XGBSpec:
    """What to train. ``n_cat`` categorical features (codes 0..n_levels-1) come first."""

    objective: str = "binary:logistic"
    n_trees: int = 10
    max_depth: int = 3
    n_rows: int = 400
    n_num: int = 5
    n_cat: int = 0
    n_levels: int = 12
    nan_rate: float = 0.1
    booster: str = "gbtree"
    num_parallel_tree: int = 1
    n_classes: int = 3
    seed: int = 0
    pandas: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        parts = [self.objective.replace(":", "-"), f"t{self.n_trees}", f"d{self.max_depth}"]
        if self.n_cat:
            parts.append(f"cat{self.n_cat}" + ("pd" if self.pandas else ""))
        if self.booster != "gbtree":
            parts.append(self.booster)
        if self.num_parallel_tree > 1:
            parts.append(f"rf{self.num_parallel_tree}")
        if self.extra:
            parts.append("-".join(f"{k}={v}" for k, v in sorted(self.extra.items())))
        return "_".join(parts)


def make_data(spec: XGBSpec, n_rows: int | None = None, seed: int | None = None):
    """Features (float64 array, NaNs included; categorical columns hold integer codes) and labels."""
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    n = spec.n_rows if n_rows is None else n_rows
    cats = rng.integers(0, spec.n_levels, size=(n, spec.n_cat)).astype(np.float64)
    nums = rng.normal(size=(n, spec.n_num))
    X = np.concatenate([cats, nums], axis=1)
    # a signal that uses categories and numbers; labels derived per objective
    level_effect = np.random.default_rng(1234).normal(size=(max(spec.n_cat, 1), spec.n_levels))
    k = spec.n_num
    signal = (nums[:, 0] - 0.5 * nums[:, 1 % k] * (nums[:, 2 % k] > 0)
              + 0.3 * nums[:, 3 % k])
    for j in range(spec.n_cat):
        signal = signal + level_effect[j, cats[:, j].astype(int)]
    noise = rng.normal(size=n)
    obj = spec.objective
    if obj.startswith("binary"):
        y = (signal + 0.5 * noise > 0).astype(np.float64)
    elif obj.startswith("multi"):
        cuts = np.quantile(signal, np.linspace(0, 1, spec.n_classes + 1)[1:-1])
        y = np.searchsorted(cuts, signal + 0.3 * noise).astype(np.float64)
    elif obj in ("count:poisson", "reg:tweedie"):
        y = rng.poisson(np.exp(0.5 * np.tanh(signal))).astype(np.float64)
    elif obj == "reg:gamma":
        y = np.exp(0.5 * np.tanh(signal)) * rng.gamma(2.0, 0.5, size=n) + 1e-3
    else:
        y = 3.0 + signal + 0.3 * noise
    if spec.nan_rate > 0:
        mask = rng.random(X.shape) < spec.nan_rate
        X[mask] = np.nan
    return X, y


def feature_types(spec: XGBSpec) -> list[str]:
    return ["c"] * spec.n_cat + ["q"] * spec.n_num


def to_frame(spec: XGBSpec, X: np.ndarray):
    """A pandas DataFrame with string categories (codes follow the category order)."""
    import pandas as pd

    cols = {}
    for j in range(spec.n_cat):
        levels = [f"L{j}_{k:02d}" for k in range(spec.n_levels)]
        codes = np.where(np.isnan(X[:, j]), -1, X[:, j]).astype(int)
        cols[f"cat{j}"] = pd.Categorical.from_codes(codes, categories=levels)
    for j in range(spec.n_num):
        cols[f"num{j}"] = X[:, spec.n_cat + j]
    return pd.DataFrame(cols)


def dmatrix(spec: XGBSpec, X: np.ndarray, y: np.ndarray | None = None):
    import xgboost as xgb

    if spec.pandas:
        return xgb.DMatrix(to_frame(spec, X), y, enable_categorical=True)
    if spec.n_cat:
        return xgb.DMatrix(X, y, feature_types=feature_types(spec), enable_categorical=True)
    return xgb.DMatrix(X, y)


def params(spec: XGBSpec) -> dict[str, Any]:
    p: dict[str, Any] = {
        "objective": spec.objective,
        "max_depth": spec.max_depth,
        "eta": 0.3,
        "nthread": 1,
        "seed": spec.seed,
        "tree_method": "hist",
        "max_bin": 64,
        "verbosity": 0,
    }
    if spec.objective.startswith("multi"):
        p["num_class"] = spec.n_classes
    if spec.booster == "dart":
        p.update(booster="dart", rate_drop=0.3, skip_drop=0.0, sample_type="uniform",
                 normalize_type="tree")
    if spec.num_parallel_tree > 1:
        p.update(num_parallel_tree=spec.num_parallel_tree, subsample=0.7, colsample_bynode=0.7)
    if spec.n_cat:
        p["max_cat_to_onehot"] = 4
    p.update(spec.extra)
    return p


def make_model(spec: XGBSpec):
    """Train ``spec``; returns ``(booster, X, y)`` with ``X`` the float64 matrix it was trained on."""
    import xgboost as xgb

    X, y = make_data(spec)
    booster = xgb.train(params(spec), dmatrix(spec, X, y), num_boost_round=spec.n_trees)
    return booster, X, y


def with_odd_categories(spec: XGBSpec, X: np.ndarray, seed: int = 1) -> np.ndarray:
    """``X`` after 40 of its rows, of which 20 hold odd values in the categorical columns:
    negative, -0.0, fractional, at and past a 64-bit bitset word, 2**24 and NaN."""
    rng = np.random.default_rng(seed)
    odd = X[rng.integers(len(X), size=40)].copy()
    for j in range(spec.n_cat):
        odd[:20, j] = rng.choice([-1.0, -0.5, -0.0, 0.5, 63.0, 64.0, 65.5, 99.0, 2.0**24,
                                  np.nan], 20)
    return np.concatenate([odd, X])


#: A matrix of specs covering objectives, depths 1..10, sizes up to ~300 trees, NaNs,
#: categorical splits (partition and one-hot), DART, multiclass and random-forest boosting.
SPECS: tuple[XGBSpec, ...] = (
    *(XGBSpec(objective=o, n_trees=8, max_depth=3, seed=i) for i, o in enumerate(OBJECTIVES)),
    XGBSpec(n_trees=1, max_depth=1),
    XGBSpec(n_trees=30, max_depth=10, n_rows=800, seed=3),
    XGBSpec(n_trees=300, max_depth=2, n_rows=300, seed=4),
    XGBSpec(objective="reg:squarederror", n_trees=60, max_depth=6, seed=5),
    XGBSpec(n_cat=2, n_num=3, n_trees=20, max_depth=4, seed=6),
    XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=20, max_depth=5, seed=7),
    XGBSpec(objective="multi:softprob", n_cat=1, n_num=4, n_trees=10, max_depth=3, seed=8),
    XGBSpec(n_cat=2, n_num=3, n_trees=15, max_depth=4, seed=9, pandas=True),
    XGBSpec(n_cat=2, n_num=3, n_levels=3, n_trees=10, max_depth=3, seed=20),  # one-hot splits
    XGBSpec(booster="dart", n_trees=25, max_depth=3, seed=10),
    XGBSpec(objective="multi:softprob", booster="dart", n_trees=10, max_depth=3, seed=11),
    XGBSpec(num_parallel_tree=4, n_trees=5, max_depth=4, seed=12),
    XGBSpec(objective="multi:softprob", num_parallel_tree=2, n_trees=5, max_depth=3, seed=13),
    XGBSpec(objective="reg:tweedie", n_trees=20, max_depth=4, seed=14,
            extra={"tweedie_variance_power": 1.3}),
    XGBSpec(objective="reg:pseudohubererror", n_trees=20, max_depth=4, seed=15,
            extra={"huber_slope": 2.0}),
    XGBSpec(n_trees=20, max_depth=4, seed=16, nan_rate=0.5),
    XGBSpec(n_trees=20, max_depth=4, seed=17, extra={"base_score": 0.2}),
    XGBSpec(n_trees=20, max_depth=4, seed=18, extra={"monotone_constraints": "(1,0,-1,0,0)"}),
    XGBSpec(n_trees=15, max_depth=0, seed=19, extra={"grow_policy": "lossguide",
                                                     "max_leaves": 12}),
)


def row_kernel_specs() -> list[XGBSpec]:
    """Models for the single-row kernels: lopsided lossguide trees with NaN, deep trees, native
    categories (bitsets past 64 levels too), multiclass, and trees that are a single leaf."""
    return [
        # lossguide: lopsided trees of mixed depths
        XGBSpec(n_trees=13, max_depth=0, nan_rate=0.2, seed=3,
                extra={"grow_policy": "lossguide", "max_leaves": 24}),
        XGBSpec(n_trees=20, max_depth=6, nan_rate=0.3, seed=4),
        XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=11, max_depth=5, seed=7),
        # categories past 64: partition splits with wide bitsets
        XGBSpec(n_cat=1, n_num=3, n_levels=100, n_trees=9, max_depth=4, n_rows=3000, seed=17),
        XGBSpec(objective="multi:softprob", n_cat=1, n_num=4, n_trees=6, max_depth=3, seed=8),
        # a large minimum split loss: later trees are a single leaf
        XGBSpec(objective="reg:squarederror", n_trees=12, max_depth=3, seed=9,
                extra={"gamma": 2.0, "eta": 0.5}),
    ]
