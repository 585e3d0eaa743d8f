"""Per-feature contributions (exact path-dependent TreeSHAP), equal to the native libraries'.

``Ensemble.predict(X, output="contrib")`` returns, per row, one SHAP value per feature plus a
bias column (the expected margin), in the layout the source library uses: shape
``(n_rows, n_features + 1)`` for a single output; for multiclass XGBoost
``(n_rows, n_classes, n_features + 1)`` and LightGBM ``(n_rows, n_classes * (n_features + 1))``.
Each row (each class) sums to the margin.

The weights are the trainer's statistics the model carries, as each library uses them: XGBoost
the cover (hessian sum) of every node, LightGBM the data count (``internal_count`` /
``leaf_count``). The bias of a tree is its expected output under those weights: for XGBoost the
cover-weighted mean computed bottom-up (``FillNodeMeanValues``), for LightGBM
``sum(leaf_count * leaf_value) / root_count`` (``Tree::ExpectedValue``); the two agree whenever
each node's statistic is the sum of its children's, which the passes keep.

LightGBM random forests (``average_output``) are the one place where the answers differ on
purpose: LightGBM's own contributions add every tree at full weight (they do not sum to its
prediction), treeprune's divide by the number of iterations, as the margin does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import to_matrix
from .ensemble import Ensemble
from .errors import UnsupportedModelError
from .kernels.shap import build_tables, contributions_blocked
from .packed import Packed, pack


@dataclass(frozen=True)
class Paths:
    """Every root-to-leaf path of every tree, reduced to its unique features.

    See :func:`treeprune.kernels.shap.contributions_blocked` for the meaning of the arrays;
    ``bias`` is the base margin plus every tree's expected output, per group.
    """

    trees: np.ndarray  # int32 (n_trees, 3): packed root, packed node count, group
    path_start: np.ndarray  # int64 (n_trees + 1,)
    path_value: np.ndarray  # float64 (n_paths,): leaf value times tree weight
    path_leaf: np.ndarray  # int64 (n_paths,): ensemble node id of the leaf
    elem_start: np.ndarray  # int64 (n_paths + 1,)
    elem_feature: np.ndarray  # int32
    elem_zero: np.ndarray  # float64
    cond_start: np.ndarray  # int64 (n_paths + 1,)
    cond_node: np.ndarray  # int32: packed node, relative to the tree's root
    cond_right: np.ndarray  # uint8
    cond_elem: np.ndarray  # int32, 1-based element of the path
    bias: np.ndarray  # float64 (n_groups,)
    max_nodes: int
    max_elems: int
    table_start: np.ndarray  # int64 (n_paths,): offset into tables, -1 when computed per row
    tables: np.ndarray  # float64


#: Paths with at most this many distinct features get a lookup table (2**d * d numbers)...
TABLE_MAX_FEATURES = 8
#: ... while all tables of a model stay within this many numbers (64 MB).
TABLE_BUDGET = 8_000_000


def _table_layout(elem_start: np.ndarray) -> tuple[np.ndarray, int]:
    d = np.diff(elem_start)
    size = np.where(d <= TABLE_MAX_FEATURES, (2 ** d) * d, 0)
    fits = (d <= TABLE_MAX_FEATURES) & (np.cumsum(size) <= TABLE_BUDGET)
    size = np.where(fits, size, 0)
    start = np.cumsum(size) - size
    return np.where(fits, start, -1).astype(np.int64), int(size.sum())


def _weights(ens: Ensemble) -> tuple[np.ndarray, str]:
    if ens.source == "lightgbm":
        return np.asarray(ens.count, dtype=np.float64), "data count (internal_count/leaf_count)"
    return np.asarray(ens.cover, dtype=np.float64), "cover (sum_hessian)"


def paths(ens: Ensemble) -> Paths:
    """The path decomposition of ``ens`` for TreeSHAP (cached on the ensemble).

    Raises
    ------
    UnsupportedModelError
        A split whose weight statistic is unknown (NaN) or not positive: TreeSHAP needs the
        trainer's cover (XGBoost) or data count (LightGBM) at every node.
    """
    cached = ens.__dict__.get("_shap_paths")
    if cached is not None:
        return cached
    p = pack(ens)
    weight, what = _weights(ens)
    packed_pos = np.full(ens.n_nodes, -1, dtype=np.int64)
    packed_pos[p.node_id] = np.arange(len(p.node_id))
    roots = p.trees[:, 0].astype(np.int64)
    ends = np.append(roots[1:], len(p.node_id))
    is_lgb = ens.source == "lightgbm"

    path_start = [0]
    path_value: list[float] = []
    path_leaf: list[int] = []
    elem_start = [0]
    elem_feature: list[int] = []
    elem_zero: list[float] = []
    cond_start = [0]
    cond_node: list[int] = []
    cond_right: list[int] = []
    cond_elem: list[int] = []
    tree_bias = np.zeros(ens.n_trees)
    max_elems = 0
    for t in range(ens.n_trees):
        base = int(ens.tree_offsets[t])
        root_pos = int(roots[t])
        if ens.left[base] < 0:
            tree_bias[t] = float(p.leaf_value[root_pos])
            path_start.append(len(path_value))
            continue
        root_w = weight[base]
        # depth-first over the tree, carrying the path's (node, went right) steps
        stack: list[tuple[int, tuple[tuple[int, int], ...]]] = [(0, ())]
        while stack:
            local, steps = stack.pop()
            node = base + local
            if ens.left[node] >= 0:
                w = weight[node]
                if not (np.isfinite(w) and w > 0):
                    raise UnsupportedModelError(
                        f"tree {t} node {int(ens.native_id[node])} has {what} {w!r}: exact "
                        "contributions need a positive statistic at every split; reload the "
                        "model from a file the trainer wrote (it stores them)"
                    )
                stack.append((int(ens.right[node]), (*steps, (local, 1))))
                stack.append((int(ens.left[node]), (*steps, (local, 0))))
                continue
            value = float(p.leaf_value[packed_pos[node]])
            elems: dict[int, int] = {}
            zero: list[float] = []
            for s_local, went_right in steps:
                s = base + s_local
                child = base + int(ens.right[s] if went_right else ens.left[s])
                f = int(ens.feature[s])
                if f not in elems:
                    elems[f] = len(zero)
                    zero.append(1.0)
                    elem_feature.append(f)
                ratio = weight[child] / weight[s]
                if not np.isfinite(ratio):
                    raise UnsupportedModelError(
                        f"tree {t} node {int(ens.native_id[child])} has {what} "
                        f"{weight[child]!r}; exact contributions need it at every node"
                    )
                zero[elems[f]] *= ratio
                cond_node.append(int(packed_pos[s]) - root_pos)
                cond_right.append(went_right)
                cond_elem.append(elems[f] + 1)
            elem_zero.extend(zero)
            elem_start.append(len(elem_feature))
            cond_start.append(len(cond_node))
            path_value.append(value)
            path_leaf.append(node)
            max_elems = max(max_elems, len(zero))
            if is_lgb:
                tree_bias[t] += weight[node] / root_w * value
            else:
                tree_bias[t] += float(np.prod(zero)) * value
        path_start.append(len(path_value))
    bias = np.asarray(ens.base_margin, dtype=np.float64).reshape(-1).copy()
    if ens.source == "xgboost":
        bias = bias.astype(np.float32).astype(np.float64)
    np.add.at(bias, ens.tree_group, tree_bias)
    trees = np.stack([roots, ends - roots, ens.tree_group], axis=1).astype(np.int32)
    elem_start_arr = np.asarray(elem_start, dtype=np.int64)
    elem_zero_arr = np.asarray(elem_zero, dtype=np.float64)
    value_arr = np.asarray(path_value, dtype=np.float64)
    table_start, n_table = _table_layout(elem_start_arr)
    tables = build_tables(elem_start_arr, elem_zero_arr, value_arr, table_start,
                          np.empty(n_table))
    out = Paths(
        trees=np.ascontiguousarray(trees),
        path_start=np.asarray(path_start, dtype=np.int64),
        path_value=value_arr,
        path_leaf=np.asarray(path_leaf, dtype=np.int64),
        elem_start=elem_start_arr,
        elem_feature=np.asarray(elem_feature, dtype=np.int32),
        elem_zero=elem_zero_arr,
        cond_start=np.asarray(cond_start, dtype=np.int64),
        cond_node=np.asarray(cond_node, dtype=np.int32),
        cond_right=np.asarray(cond_right, dtype=np.uint8),
        cond_elem=np.asarray(cond_elem, dtype=np.int32),
        bias=bias,
        max_nodes=int(max(1, (ends - roots).max(initial=1))),
        max_elems=int(max_elems),
        table_start=table_start,
        tables=tables,
    )
    object.__setattr__(ens, "_shap_paths", out)
    return out


def contributions_matrix(ens: Ensemble, p: Packed, Xm: np.ndarray) -> np.ndarray:
    """SHAP values (n_rows, n_groups, n_features + 1) of the prepared matrix ``Xm``."""
    sp = paths(ens)
    out = np.zeros((Xm.shape[0], ens.n_groups, ens.n_features + 1), dtype=np.float64)
    out[:, :, -1] = sp.bias
    if Xm.shape[0] == 0:
        return out
    contributions_blocked(Xm, sp.trees, p.info, p.threshold, p.left, p.cat, p.cat_bounds,
                          p.cat_words, p.rule, p.simple, sp.path_start, sp.path_value,
                          sp.elem_start, sp.elem_feature, sp.elem_zero, sp.cond_start,
                          sp.cond_node, sp.cond_right, sp.cond_elem, sp.table_start, sp.tables,
                          sp.max_nodes,
                          max(sp.max_elems, 1), out)
    return out


def native_layout(ens: Ensemble, contrib: np.ndarray) -> np.ndarray:
    """(n_rows, n_groups, n_features + 1) in the source library's shape (see module docstring)."""
    n, g, k = contrib.shape
    if g == 1:
        return contrib[:, 0, :]
    if ens.source == "lightgbm":
        return contrib.reshape(n, g * k)
    return contrib


def contributions(ens: Ensemble, X: Any, n_threads: int | None = None) -> np.ndarray:
    """See ``Ensemble.predict(X, output="contrib")``."""
    from .predict import _threads

    p = pack(ens)
    Xm = to_matrix(ens, X, p.dtype)
    with _threads(n_threads):
        out = contributions_matrix(ens, p, Xm)
    return native_layout(ens, out)


__all__ = ["contributions", "contributions_matrix", "native_layout", "paths", "Paths"]
