"""The ensemble laid out for fast routing: breadth-first per tree, siblings adjacent.

Built once per Ensemble (cached on it) from the flat node arrays; the kernels read only this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ensemble import MISSING_NAN, MISSING_ZERO, Ensemble
from .kernels.traverse import (
    FLAG_CATEGORICAL,
    FLAG_DEFAULT_LEFT,
    FLAG_MISSING_NAN,
    FLAG_MISSING_ZERO,
    RULE_LIGHTGBM,
    RULE_XGBOOST,
    pack_breadth_first,
)


@dataclass(frozen=True)
class Packed:
    rule: int
    dtype: type  # float32 for XGBoost (inputs are cast like XGBoost does), float64 for LightGBM
    tree_root: np.ndarray  # int32 (n_trees,)
    tree_group: np.ndarray  # int32 (n_trees,)
    feature: np.ndarray  # int32, -1 for leaves
    threshold: np.ndarray  # dtype
    left: np.ndarray  # int32; right child is left + 1
    flags: np.ndarray  # uint8
    cat: np.ndarray  # int32 index into cat_bounds
    cat_bounds: np.ndarray  # int64
    cat_words: np.ndarray  # uint32
    leaf_value: np.ndarray  # dtype; tree weight applied
    native_id: np.ndarray  # int32
    node_id: np.ndarray  # int64: packed position -> ensemble node id
    base_margin: np.ndarray  # dtype (n_groups,)


def pack(ens: Ensemble) -> Packed:
    """Lay ``ens`` out for the routing kernels (cached on the ensemble)."""
    cached = ens.__dict__.get("_packed")
    if cached is not None:
        return cached
    order, packed_left = pack_breadth_first(
        np.ascontiguousarray(ens.tree_offsets, dtype=np.int64),
        np.ascontiguousarray(ens.left, dtype=np.int32),
        np.ascontiguousarray(ens.right, dtype=np.int32),
    )
    is_xgb = ens.source == "xgboost"
    dtype = np.float32 if is_xgb else np.float64
    # roots are the packed positions whose node id is a tree's first node
    is_root = np.zeros(ens.n_nodes, dtype=bool)
    is_root[ens.tree_offsets[:-1]] = True
    tree_root = np.flatnonzero(is_root[order]).astype(np.int32)
    flags = np.zeros(len(order), dtype=np.uint8)
    flags[ens.default_left[order]] |= FLAG_DEFAULT_LEFT
    flags[ens.missing_type[order] == MISSING_ZERO] |= FLAG_MISSING_ZERO
    flags[ens.missing_type[order] == MISSING_NAN] |= FLAG_MISSING_NAN
    cat = ens.cat_index[order].astype(np.int32)
    flags[cat >= 0] |= FLAG_CATEGORICAL
    tree_of_node = np.repeat(np.arange(ens.n_trees), np.diff(ens.tree_offsets))
    weight = ens.tree_weight[tree_of_node[order]]
    value = np.where(packed_left < 0, ens.value[order], 0.0)
    if is_xgb:
        # XGBoost multiplies the float32 leaf by the float32 DART weight
        leaf_value = value.astype(np.float32) * weight.astype(np.float32)
    else:
        leaf_value = value * weight
    packed = Packed(
        rule=RULE_XGBOOST if is_xgb else RULE_LIGHTGBM,
        dtype=dtype,
        tree_root=tree_root,
        tree_group=ens.tree_group.astype(np.int32),
        feature=np.where(packed_left < 0, -1, ens.feature[order]).astype(np.int32),
        threshold=ens.threshold[order].astype(dtype),
        left=packed_left.astype(np.int32),
        flags=flags,
        cat=cat,
        cat_bounds=np.ascontiguousarray(ens.cat_bounds, dtype=np.int64),
        cat_words=np.ascontiguousarray(ens.cat_words, dtype=np.uint32),
        leaf_value=leaf_value.astype(dtype),
        native_id=ens.native_id[order].astype(np.int32),
        node_id=order,
        base_margin=np.asarray(ens.base_margin, dtype=dtype).reshape(-1),
    )
    object.__setattr__(ens, "_packed", packed)
    return packed
