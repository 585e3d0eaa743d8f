"""The ensemble laid out for fast routing: breadth-first per tree, siblings adjacent.

Built once per Ensemble (cached on it) from the flat node arrays; the kernels read only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._rules import (
    FEATURE_BITS,
    FEATURE_MASK,
    FLAG_CATEGORICAL,
    FLAG_DEFAULT_LEFT,
    FLAG_EXACT_LE,
    FLAG_LEAF,
    FLAG_MISSING_NAN,
    FLAG_MISSING_ZERO,
    FLAG_NAN_RIGHT,
    MISSING_NAN,
    MISSING_ZERO,
    RULE_LIGHTGBM,
    RULE_XGBOOST,
)
from .ensemble import Ensemble
from .errors import UnsupportedModelError
from .kernels.chained import build_chained, chained_margin_kernel, chained_margin_one_kernel
from .kernels.lanes import build_row_layout, margin_row_lanes
from .kernels.ranked import build_ranked, ranked_margin_kernel, ranked_margin_one_kernel
from .kernels.shallow import SHALLOW_MAX_DEPTH
from .kernels.traverse import margin_row, pack_breadth_first


@dataclass(frozen=True)
class Shallow:
    """Every tree full to depth 2 or 3, for :func:`treeprune.kernels.shallow.margins_shallow`."""

    features: np.ndarray  # int32: the columns the trees use
    slot_feature: np.ndarray  # int32 (n_trees, 2**D - 1): index into features
    slot_threshold: np.ndarray  # dtype (n_trees, 2**D - 1)
    slot_nan_right: np.ndarray  # bool (n_trees, 2**D - 1)
    slot_value: np.ndarray  # dtype (n_trees, 2**D): leaf values
    slot_leaf: np.ndarray  # int32 (n_trees, 2**D): packed leaf ids
    groups: np.ndarray  # int32 (n_trees,)


@dataclass(frozen=True)
class RowLayout:
    """The nodes laid out for one row at a time (:mod:`treeprune.kernels.lanes`)."""

    nodes: np.ndarray  # ROW_RECORD per node, depth first per tree, plus a dummy record
    cat: np.ndarray  # int32 per record: index into cat_bounds
    packed: np.ndarray  # int32 per record: packed node id
    starts: np.ndarray  # uint32: the roots the lanes walk from, padded with the dummy
    n_starts: int
    stop_roots: np.ndarray  # uint32: roots that are leaves or need the full rule


@dataclass(frozen=True)
class Packed:
    rule: int
    simple: bool  # XGBoost rule without categorical splits: the short path in the kernels
    dtype: type  # float32 for XGBoost (inputs are cast like XGBoost does), float64 for LightGBM
    trees: np.ndarray  # int32 (n_trees, 4): root, group, depth, lopsided
    info: np.ndarray  # int32: feature | flags << 24
    threshold: np.ndarray  # dtype; +inf on leaves
    left: np.ndarray  # int32; right child is left + 1; a leaf points to itself
    cat: np.ndarray  # int32 index into cat_bounds
    cat_bounds: np.ndarray  # int64
    cat_words: np.ndarray  # uint32
    leaf_value: np.ndarray  # dtype; tree weight applied; 0 on internal nodes
    native_id: np.ndarray  # int32
    node_id: np.ndarray  # int64: packed position -> ensemble node id
    base_margin: np.ndarray  # dtype (n_groups,)
    shallow: Shallow | None = None  # trees of depth <= 3 with only the common decision rule
    prefix: Shallow | None = None  # the top 3 levels of deeper trees, likewise

    @property
    def walk_args(self) -> tuple:
        """The model's arguments of the walking kernels (``treeprune.kernels.traverse``), in
        their order, between the rows and the output."""
        return (self.trees, self.info, self.threshold, self.left, self.cat, self.cat_bounds,
                self.cat_words, self.leaf_value, self.rule, self.simple)

    @cached_property
    def row(self) -> RowLayout:
        """The single-row layout, built on first use (a model predicted only in batches never
        pays for it)."""
        nodes, cat, packed, starts, n_starts, stop_roots = build_row_layout(
            np.ascontiguousarray(self.trees[:, 0]), self.info, self.threshold, self.left,
            self.leaf_value, self.cat, self.cat_bounds, self.cat_words, self.rule)
        return RowLayout(nodes, cat, packed, starts, int(n_starts), stop_roots)

    def _rank_coding_inputs(self) -> tuple:
        """What the rank-coded layouts (ranked, chained) are built from, in their order."""
        return (np.ascontiguousarray(self.trees[:, 0]), np.ascontiguousarray(self.trees[:, 1]),
                self.info, self.threshold, self.left, self.leaf_value, self.cat, self.cat_bounds,
                self.cat_words, self.rule, self.base_margin)

    @cached_property
    def ranked(self) -> tuple | None:
        """The rank-coded single-row layout (:func:`treeprune.kernels.ranked.build_ranked`:
        ``(buf, code_leaf)``), built on first use; None for a model past its limits."""
        return build_ranked(*self._rank_coding_inputs())

    @cached_property
    def chained(self) -> tuple | None:
        """The chained single-row layout (:func:`treeprune.kernels.chained.build_chained`:
        ``(buf, code_leaf)``), built on first use; None for a model past its limits."""
        return build_chained(*self._rank_coding_inputs())

    @cached_property
    def single_row(self) -> tuple:
        """``(kernel, args)``: ``kernel(row, *args)`` returns the float64 margins (n_groups,) of
        one float64 row: the chained records (:func:`treeprune.kernels.chained.
        chained_margin_kernel`; measured faster than the others on balanced and on lopsided
        trees); for a model past their limits the rank-coded lanes (:func:`treeprune.kernels.
        ranked.ranked_margin_kernel`), and past those the 16-byte lanes
        (:func:`treeprune.kernels.lanes.margin_row_lanes`) for lopsided (leaf-wise) trees or
        the lock-step walk to the trees' fixed depth (:func:`treeprune.kernels.traverse.
        margin_row`) for balanced ones. All give the same margins, bit for bit."""
        chained = self.chained
        if chained is not None:
            return chained_margin_kernel(self.dtype), (chained[0],)
        ranked = self.ranked
        if ranked is not None:
            return ranked_margin_kernel(self.dtype), (ranked[0],)
        if np.any(self.trees[:, 3]):
            return margin_row_lanes, (*self.row_args, self.base_margin)
        return margin_row, (*self.walk_args, self.base_margin)

    @cached_property
    def rows_chained(self) -> np.ndarray | None:
        """The chained layout for batches (:func:`treeprune.kernels.chained.margins_chained` and
        ``leaves_chained``),
        for a LightGBM model whose trees are mostly lopsided (deep leaf-wise trees, where it
        beats the batch kernels); None for other models and past the layout's limits."""
        if (self.rule != RULE_LIGHTGBM or self.shallow is not None or len(self.trees) == 0
                or np.count_nonzero(self.trees[:, 3]) * 2 < len(self.trees)):
            return None
        chained = self.chained
        return None if chained is None else chained[0]

    @cached_property
    def single_row_one(self) -> tuple | None:
        """``(kernel, args)``: ``kernel(row, *args)`` returns the margin of one float64 row of
        a one-output model as a float64 number (the value of :attr:`single_row`'s one element,
        without the cost of a new array): the chained or rank-coded kernel; None for a model
        with several outputs or past both layouts' limits."""
        if len(self.base_margin) != 1:
            return None
        if self.chained is not None:
            return chained_margin_one_kernel(self.dtype), (self.chained[0],)
        if self.ranked is None:
            return None
        return ranked_margin_one_kernel(self.dtype), (self.ranked[0],)

    @cached_property
    def row_args(self) -> tuple:
        """The model's arguments of :func:`treeprune.kernels.lanes.margin_row_lanes`, between
        the row and the base margin."""
        r = self.row
        return (r.nodes, r.cat, self.cat_bounds, self.cat_words, r.starts, r.n_starts,
                r.stop_roots, np.ascontiguousarray(self.trees[:, 1]), self.rule)


def _full_levels(trees: np.ndarray, info: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                 leaf_value: np.ndarray, depth: int) -> Shallow | None:
    """The top ``depth`` levels of every packed tree laid out full, or None when a split in them
    needs more than the common rule (right iff ``x >= threshold``, NaN by its flag).

    Slot ``k`` has children ``2k + 1`` and ``2k + 2``. A leaf above the last level fills the
    slots below it: its value and id in every last-level slot under it, under splits (feature 0,
    threshold +inf) whose outcome does not matter (the same leaf either way). The last-level
    slots hold the node each row reaches after ``depth`` steps: a leaf, or (for deeper trees)
    the split a walk continues from.
    """
    flags = info >> FEATURE_BITS
    internal = (flags & FLAG_LEAF) == 0
    special = FLAG_CATEGORICAL | FLAG_MISSING_ZERO | FLAG_EXACT_LE
    features, compact = np.unique(info[internal] & FEATURE_MASK, return_inverse=True)
    feature_of = np.zeros(len(info), dtype=np.int32)
    feature_of[internal] = compact.reshape(-1)
    n_trees = len(trees)
    nodes = trees[:, :1].astype(np.int64)  # (n_trees, slots of this level)
    slot_feature, slot_threshold, slot_nan_right = [], [], []
    for _ in range(depth):
        inner = internal[nodes]
        if np.any(inner & ((flags[nodes] & special) != 0)):
            return None
        slot_feature.append(np.where(inner, feature_of[nodes], 0))
        slot_threshold.append(np.where(inner, threshold[nodes], np.inf))
        slot_nan_right.append(inner & ((flags[nodes] & FLAG_NAN_RIGHT) != 0))
        lo = np.where(inner, left[nodes], nodes)
        hi = np.where(inner, left[nodes] + 1, nodes)
        nodes = np.stack([lo, hi], axis=2).reshape(n_trees, -1)
    return Shallow(
        features=features.astype(np.int32),
        slot_feature=np.concatenate(slot_feature, axis=1).astype(np.int32),
        slot_threshold=np.concatenate(slot_threshold, axis=1).astype(threshold.dtype),
        slot_nan_right=np.concatenate(slot_nan_right, axis=1),
        slot_value=np.ascontiguousarray(leaf_value[nodes]),
        slot_leaf=nodes.astype(np.int32),
        groups=np.ascontiguousarray(trees[:, 1]),
    )


def _shallow(trees: np.ndarray, info: np.ndarray, threshold: np.ndarray, left: np.ndarray,
             leaf_value: np.ndarray) -> tuple[Shallow | None, Shallow | None]:
    """(shallow, prefix): every tree full to its depth when no tree is deeper than
    ``SHALLOW_MAX_DEPTH`` (for ``kernels.shallow.margins_shallow``); else the top
    ``SHALLOW_MAX_DEPTH`` levels of every tree (``kernels.shallow.margins_prefixed`` takes those
    for a block of rows at once, then walks on). None where a split in those levels needs the
    full rule."""
    if len(trees) == 0:
        return None, None
    max_depth = int(trees[:, 2].max())
    if max_depth == 0:
        return None, None
    if max_depth <= SHALLOW_MAX_DEPTH:
        return _full_levels(trees, info, threshold, left, leaf_value, max(2, max_depth)), None
    return None, _full_levels(trees, info, threshold, left, leaf_value, SHALLOW_MAX_DEPTH)


def pack(ens: Ensemble) -> Packed:
    """Lay ``ens`` out for the routing kernels (cached on the ensemble)."""
    cached = ens.__dict__.get("_packed")
    if cached is not None:
        return cached
    if ens.n_features > FEATURE_MASK:
        raise UnsupportedModelError(f"models with more than {FEATURE_MASK} features are not "
                                    "supported (a feature index must fit in 24 bits)")
    order, packed_left, depth = pack_breadth_first(
        np.ascontiguousarray(ens.tree_offsets, dtype=np.int64),
        np.ascontiguousarray(ens.left, dtype=np.int32),
        np.ascontiguousarray(ens.right, dtype=np.int32),
    )
    is_xgb = ens.source == "xgboost"
    dtype = np.float32 if is_xgb else np.float64
    is_leaf = packed_left < 0
    # roots are the packed positions of each tree's first node
    is_root = np.zeros(ens.n_nodes, dtype=bool)
    is_root[ens.tree_offsets[:-1]] = True
    roots = np.flatnonzero(is_root[order])
    tree_of_packed = np.cumsum(is_root[order]) - 1
    tree_depth = np.zeros(ens.n_trees, dtype=np.int32)
    np.maximum.at(tree_depth, tree_of_packed, depth)

    flags = np.zeros(len(order), dtype=np.int32)
    flags[ens.default_left[order]] |= FLAG_DEFAULT_LEFT
    flags[ens.missing_type[order] == MISSING_ZERO] |= FLAG_MISSING_ZERO
    flags[ens.missing_type[order] == MISSING_NAN] |= FLAG_MISSING_NAN
    cat = np.where(is_leaf, -1, ens.cat_index[order]).astype(np.int32)
    flags[cat >= 0] |= FLAG_CATEGORICAL
    thr = ens.threshold[order]
    default_left = ens.default_left[order]
    if is_xgb:
        nan_right = ~default_left
    else:
        # LightGBM: NaN follows default_left for missing types NaN and Zero; for None it is 0.0
        none = ens.missing_type[order] == 0
        nan_right = np.where(none, ~(0.0 <= thr), ~default_left)
        with np.errstate(over="ignore"):
            up = np.nextafter(thr, np.inf)  # x <= t  <=>  x < nextafter(t, +inf) in double ...
        exact = np.isinf(up) & (up > 0)  # ... except where that is +inf (x = +inf differs)
        flags[exact & ~is_leaf] |= FLAG_EXACT_LE
        thr = np.where(exact, thr, up)
    flags[nan_right & ~is_leaf] |= FLAG_NAN_RIGHT
    # a leaf steps to itself under every rule: its threshold is -inf, so no value (not even
    # -inf) is below it and every row goes "right", to left + 1, with left = itself - 1; NaN
    # goes right by flag
    flags[is_leaf] = FLAG_LEAF | FLAG_NAN_RIGHT
    feature = np.where(is_leaf, 0, ens.feature[order]).astype(np.int32)
    info = (feature | (flags << FEATURE_BITS)).astype(np.int32)
    left = np.where(is_leaf, np.arange(len(order)) - 1, packed_left).astype(np.int32)
    threshold = np.where(is_leaf, -np.inf, thr).astype(dtype)

    weight = ens.tree_weight[ens.tree_of_node()[order]]
    value = np.where(is_leaf, ens.value[order], 0.0)
    if is_xgb:
        # XGBoost multiplies the float32 leaf by the float32 DART weight
        leaf_value = value.astype(np.float32) * weight.astype(np.float32)
    else:
        leaf_value = value * weight
    # lopsided: the mean leaf depth is well below the maximum, so early exit beats fixed steps
    leaf_depth_sum = np.bincount(tree_of_packed[is_leaf], weights=depth[is_leaf],
                                 minlength=ens.n_trees)
    n_leaves = np.bincount(tree_of_packed[is_leaf], minlength=ens.n_trees)
    lopsided = leaf_depth_sum / np.maximum(n_leaves, 1) < 0.8 * tree_depth
    trees = np.stack([roots, ens.tree_group, tree_depth, lopsided], axis=1).astype(np.int32)
    leaf_value = leaf_value.astype(dtype)
    shallow, prefix = _shallow(trees, info, threshold, left, leaf_value)
    packed = Packed(
        rule=RULE_XGBOOST if is_xgb else RULE_LIGHTGBM,
        simple=bool(is_xgb and not np.any(cat >= 0)),
        dtype=dtype,
        trees=np.ascontiguousarray(trees),
        info=info,
        threshold=threshold,
        left=left,
        cat=cat,
        cat_bounds=np.ascontiguousarray(ens.cat_bounds, dtype=np.int64),
        cat_words=np.ascontiguousarray(ens.cat_words, dtype=np.uint32),
        leaf_value=leaf_value,
        native_id=ens.native_id[order].astype(np.int32),
        node_id=order,
        base_margin=np.asarray(ens.base_margin, dtype=dtype).reshape(-1),
        shallow=shallow,
        prefix=prefix,
    )
    object.__setattr__(ens, "_packed", packed)
    return packed


__all__ = ["Packed", "RowLayout", "Shallow", "pack"]
