"""Small, varied, deterministic LightGBM models for tests.

``train(spec)`` fits a ``lightgbm.Booster`` described by a :class:`LgbSpec` and returns it with an
evaluation set that stresses routing: NaNs, exact zeros and tiny values around LightGBM's zero
threshold, values equal to the split thresholds and their float neighbours, unseen / negative /
fractional / huge category codes. Everything is seeded and single-threaded (``deterministic``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OBJECTIVES = ("binary", "regression", "regression_l1", "huber", "poisson", "gamma", "tweedie",
              "cross_entropy", "multiclass")


@dataclass(frozen=True)
class LgbSpec:
    objective: str = "binary"
    n_trees: int = 20
    num_leaves: int = 15
    max_depth: int = -1
    missing: str = "nan"          # "nan" (default), "zero" (zero_as_missing), "none" (use_missing=False)
    nan_frac: float = 0.1
    zero_frac: float = 0.05
    n_cat: int = 0                # integer-coded categorical columns (levels 5 and 40, ...)
    pandas: bool = False          # categorical columns as a pandas 'category' dtype DataFrame
    n_classes: int = 3
    n_rows: int = 400
    n_features: int = 5
    boosting: str = "gbdt"
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    seed: int = 0

    @property
    def id(self) -> str:
        parts = [self.objective, f"t{self.n_trees}", f"l{self.num_leaves}"]
        if self.max_depth > 0:
            parts.append(f"d{self.max_depth}")
        parts.append(f"miss-{self.missing}")
        if self.n_cat:
            parts.append(f"cat{self.n_cat}{'pd' if self.pandas else ''}")
        if self.boosting != "gbdt":
            parts.append(self.boosting)
        parts += [f"{k}={v}" for k, v in self.params]
        return "-".join(parts)


_CAT_LEVELS = (5, 40, 12, 3)


def _margin(X: np.ndarray, rng: np.random.Generator, k: int = 1) -> np.ndarray:
    Xf = np.nan_to_num(X, nan=0.0)
    w = rng.normal(size=(X.shape[1], k))
    f = np.tanh(Xf) @ w + 0.5 * np.sin(2 * Xf[:, :1]) + 0.3 * (Xf[:, -1:] > 0.5)
    return f / max(1.0, np.sqrt(X.shape[1]) / 2)


def _labels(objective: str, f: np.ndarray, rng: np.random.Generator, n_classes: int) -> np.ndarray:
    n = len(f)
    if objective == "binary":
        return (rng.random(n) < 1 / (1 + np.exp(-2 * f[:, 0] + 0.8))).astype(np.float64)
    if objective == "cross_entropy":
        return np.clip(1 / (1 + np.exp(-2 * f[:, 0])) + rng.normal(0, 0.1, n), 0, 1)
    if objective in ("regression", "regression_l1", "huber"):
        return 3 * f[:, 0] + 2.0 + rng.standard_t(3, n) * 0.5
    if objective == "poisson":
        return rng.poisson(np.exp(f[:, 0])).astype(np.float64)
    if objective == "gamma":
        return rng.gamma(2.0, np.exp(f[:, 0]) / 2.0)
    if objective == "tweedie":
        counts = rng.poisson(np.exp(f[:, 0]) * 0.8)
        return np.array([rng.gamma(2.0, 1.0, c).sum() for c in counts])
    if objective == "multiclass":
        g = f + rng.gumbel(size=f.shape)
        return np.argmax(g, axis=1).astype(np.float64)
    raise ValueError(objective)


def _raw_features(spec: LgbSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(n, spec.n_features))
    X[:, 1] = np.round(X[:, 1] * 4) / 4          # repeated values: thresholds between them
    if spec.n_features > 3:
        X[:, 3] = np.abs(X[:, 3])                 # a non-negative feature (zero-heavy)
    if spec.zero_frac:
        X[rng.random(X.shape) < spec.zero_frac] = 0.0
    if spec.nan_frac:
        X[rng.random(X.shape) < spec.nan_frac] = np.nan
    cats = []
    for j in range(spec.n_cat):
        levels = _CAT_LEVELS[j % len(_CAT_LEVELS)]
        c = rng.integers(0, levels, n).astype(np.float64)
        if spec.nan_frac:
            c[rng.random(n) < spec.nan_frac / 2] = np.nan
        cats.append(c)
    if cats:
        X = np.column_stack([X, *cats])
    return X


def _frame(spec: LgbSpec, X: np.ndarray) -> pd.DataFrame:
    cols = {f"f{i}": X[:, i] for i in range(spec.n_features)}
    df = pd.DataFrame(cols)
    for j in range(spec.n_cat):
        levels = _CAT_LEVELS[j % len(_CAT_LEVELS)]
        codes = X[:, spec.n_features + j]
        names = np.array([f"c{j}_{k:02d}" for k in range(levels + 3)], dtype=object)
        vals = np.where(np.isnan(codes), None, names[np.nan_to_num(codes, nan=0).astype(int)])
        df[f"cat{j}"] = pd.Categorical(vals, categories=list(names[:levels]))
    return df


def params_for(spec: LgbSpec) -> dict[str, Any]:
    p: dict[str, Any] = {
        "objective": spec.objective,
        "num_leaves": spec.num_leaves,
        "max_depth": spec.max_depth,
        "learning_rate": 0.1,
        "min_data_in_leaf": 5,
        "min_sum_hessian_in_leaf": 1e-3,
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
        "verbose": -1,
        "num_threads": 1,
        "deterministic": True,
        "force_col_wise": True,
        "seed": spec.seed,
        "boosting": spec.boosting,
    }
    if spec.objective == "multiclass":
        p["num_class"] = spec.n_classes
    if spec.missing == "zero":
        p["zero_as_missing"] = True
    elif spec.missing == "none":
        p["use_missing"] = False
    if spec.boosting == "rf":
        p.update(bagging_fraction=0.7, bagging_freq=1, feature_fraction=0.8)
    p.update(dict(spec.params))
    return p


def make_data(spec: LgbSpec) -> tuple[Any, np.ndarray, Any]:
    """Training features, labels and an evaluation set (numpy, or DataFrames when ``pandas``)."""
    rng = np.random.default_rng(spec.seed)
    X = _raw_features(spec, spec.n_rows, rng)
    k = spec.n_classes if spec.objective == "multiclass" else 1
    f = _margin(X[:, :spec.n_features], rng, k)
    y = _labels(spec.objective, f, rng, spec.n_classes)
    Xe = _raw_features(spec, 300, np.random.default_rng(spec.seed + 1000))
    if spec.pandas:
        return _frame(spec, X), y, _frame(spec, Xe)
    return X, y, Xe


def train(spec: LgbSpec) -> tuple[Any, Any]:
    """Fit the model; returns ``(booster, X_eval)``."""
    import lightgbm as lgb

    X, y, Xe = make_data(spec)
    cat_idx = list(range(spec.n_features, spec.n_features + spec.n_cat))
    if spec.pandas:
        ds = lgb.Dataset(X, y, categorical_feature="auto", free_raw_data=False)
    else:
        ds = lgb.Dataset(X, y, categorical_feature=cat_idx or "auto", free_raw_data=False)
    booster = lgb.train(params_for(spec), ds, num_boost_round=spec.n_trees)
    return booster, Xe


def stress_rows(booster: Any, Xe: Any, n_features: int, seed: int = 0) -> Any:
    """Evaluation rows with values at and next to the model's numerical thresholds, zeros and
    tiny values around kZeroThreshold, and odd category codes (numpy input only)."""
    if isinstance(Xe, pd.DataFrame):
        return Xe
    rng = np.random.default_rng(seed)
    dump = booster.dump_model()
    thresholds: dict[int, list[float]] = {}

    def walk(node: dict[str, Any]) -> None:
        if "split_feature" in node:
            if node.get("decision_type") == "<=":
                thresholds.setdefault(node["split_feature"], []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    rows = []
    base = np.asarray(Xe, dtype=np.float64)
    for f, ts in thresholds.items():
        for t in ts[:40]:
            for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)):
                r = base[rng.integers(len(base))].copy()
                r[f] = v
                rows.append(r)
    tiny = [0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 1.0000000180025095e-35,
            -1.0000000180025095e-35, 2e-35, -2e-35, np.nan]
    for f in range(n_features):
        for v in tiny:
            r = base[rng.integers(len(base))].copy()
            r[f] = v
            rows.append(r)
    odd_codes = [-0.5, -0.99, -1.0, -3.0, 0.5, 1.7, 4.99, 39.5, 45.0, 64.0, 1000.0, 2.0**31,
                 2.0**31 - 1, 2.0**32 + 1, -2.0**31, np.inf, -np.inf, np.nan]
    for f in range(n_features, base.shape[1]):
        for v in odd_codes:
            r = base[rng.integers(len(base))].copy()
            r[f] = v
            rows.append(r)
    return np.vstack([base, np.array(rows)]) if rows else base


# the matrix of models the tests run (fast ones by default; slow ones are marked in the tests)
FAST_SPECS: list[LgbSpec] = [
    LgbSpec("binary"),
    LgbSpec("binary", missing="none"),
    LgbSpec("binary", missing="zero", zero_frac=0.2),
    LgbSpec("binary", n_cat=2, n_trees=25),
    LgbSpec("binary", n_cat=3, pandas=True, n_trees=15),
    LgbSpec("binary", n_cat=2, missing="zero", zero_frac=0.2),
    LgbSpec("binary", n_cat=2, missing="none"),
    LgbSpec("binary", num_leaves=2, n_trees=40),
    LgbSpec("binary", num_leaves=63, max_depth=10, n_trees=10, n_rows=1500),
    LgbSpec("binary", n_trees=1),
    LgbSpec("binary", params=(("lambda_l2", 3.0),)),
    LgbSpec("binary", params=(("monotone_constraints", "1,0,-1,0,0"),)),
    LgbSpec("binary", boosting="rf", n_trees=10),
    LgbSpec("binary", boosting="dart", n_trees=15),
    LgbSpec("binary", params=(("boost_from_average", False),)),
    LgbSpec("regression"),
    LgbSpec("regression", n_cat=1, missing="zero"),
    LgbSpec("regression_l1"),
    LgbSpec("huber", params=(("alpha", 1.5),)),
    LgbSpec("poisson"),
    LgbSpec("gamma", nan_frac=0.0),
    LgbSpec("tweedie", params=(("tweedie_variance_power", 1.3),)),
    LgbSpec("cross_entropy"),
    LgbSpec("multiclass", n_trees=8),
    LgbSpec("multiclass", n_trees=6, n_classes=4, n_cat=2, pandas=True),
    LgbSpec("multiclass", n_trees=6, boosting="rf"),
]

SLOW_SPECS: list[LgbSpec] = [
    LgbSpec("binary", n_trees=300, num_leaves=63, max_depth=10, n_rows=3000, n_cat=2),
    LgbSpec("binary", n_trees=300, num_leaves=31, n_rows=2000, missing="zero", zero_frac=0.3),
    LgbSpec("regression", n_trees=200, num_leaves=63, n_rows=3000, n_cat=3, pandas=True),
    LgbSpec("multiclass", n_trees=60, n_classes=5, num_leaves=31, n_rows=2000, n_cat=2),
    LgbSpec("tweedie", n_trees=150, num_leaves=31, n_rows=2000, missing="none"),
    LgbSpec("poisson", n_trees=150, num_leaves=7, max_depth=3, n_rows=2000, n_cat=1),
]


def row_kernel_specs(lanes: int) -> list[LgbSpec]:
    """Models for the single-row kernels that walk ``lanes`` trees at once: deep leaf-wise trees
    with categorical bitsets and many NaN, zero as missing, no missing values, multiclass, fewer
    trees than lanes, and stumps (every walk ends after one split)."""
    return [
        LgbSpec("binary", n_cat=2, num_leaves=63, n_trees=21, n_rows=2000, nan_frac=0.2,
                params=(("min_data_in_leaf", 2), ("min_sum_hessian_in_leaf", 0.0))),
        LgbSpec("binary", n_cat=1, missing="zero", zero_frac=0.3, num_leaves=31, n_trees=12,
                n_rows=1200),
        LgbSpec("regression", missing="none", num_leaves=31, n_trees=9, n_rows=800),
        LgbSpec("multiclass", n_classes=3, n_cat=2, num_leaves=31, n_trees=7, n_rows=900),
        LgbSpec("binary", n_cat=2, num_leaves=15, n_trees=lanes - 3, n_rows=600),
        LgbSpec("binary", num_leaves=2, n_trees=11),
    ]


def wide_category_model() -> tuple[Any, np.ndarray]:
    """A model whose categorical bitsets reach past 64 categories (150 codes, the label driven
    by the code's parity, 5% of the codes missing), and its training rows."""
    import lightgbm as lgb

    rng = np.random.default_rng(5)
    n = 4000
    code = rng.integers(0, 150, n).astype(np.float64)
    num = rng.normal(size=n)
    y = ((code % 2 == 0) ^ (num > 0.8)).astype(np.float64)
    X = np.column_stack([code, num])
    X[rng.random(n) < 0.05, 0] = np.nan
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1,
                         "num_threads": 1, "max_cat_threshold": 128, "min_data_per_group": 5,
                         "cat_smooth": 1.0, "max_cat_to_onehot": 2},
                        lgb.Dataset(X, y, categorical_feature=[0]), 12)
    return booster, X
