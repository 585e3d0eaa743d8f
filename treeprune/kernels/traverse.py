"""Routing kernels: rows through trees, in each source library's exact decision rule.

Nodes are *packed* per tree breadth first so that the right child of a split is always
``left + 1`` and every tree is one contiguous run of small records (see ``treeprune.packed``).

Rules (``rule`` argument):

* ``RULE_XGBOOST`` (0): X is float32 (as XGBoost casts it), thresholds float32; left iff
  ``x < threshold``; NaN follows ``default_left``. Categorical: NaN follows ``default_left``;
  a code < 0 or >= 2**24 or beyond the bitset goes left, a code in the bitset goes right,
  any other code left.
* ``RULE_LIGHTGBM`` (1): X and thresholds float64; NaN becomes 0.0 unless the missing type is
  NaN; missing type Zero sends |x| <= 1e-35 to ``default_left``, missing type NaN sends NaN to
  ``default_left``; otherwise left iff ``x <= threshold``. Categorical: NaN, a code that does not
  fit int32 or is negative after truncation goes right; in the bitset goes left, else right.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

RULE_XGBOOST = 0
RULE_LIGHTGBM = 1

FLAG_DEFAULT_LEFT = 1
FLAG_MISSING_ZERO = 2
FLAG_MISSING_NAN = 4
FLAG_CATEGORICAL = 8

#: Rows handled together by one thread: each tree's nodes stay in cache across the block.
BLOCK_ROWS = 64

_ZERO_THRESHOLD = 1e-35
_XGB_MAX_CAT = 16777216.0  # 2**24: XGBoost treats larger codes as invalid


@njit(inline="always", cache=True)
def _in_bitset(cat_words, begin, end, code):
    word = begin + (code >> 5)
    if word >= end:
        return False
    return (cat_words[word] >> np.uint32(code & 31)) & np.uint32(1) == np.uint32(1)


@njit(inline="always", cache=True)
def _go_right(x, thr, flags, cat, cat_bounds, cat_words, rule):
    """True when a row with feature value ``x`` goes to the right child."""
    if rule == RULE_XGBOOST:
        if np.isnan(x):
            return (flags & FLAG_DEFAULT_LEFT) == 0
        if flags & FLAG_CATEGORICAL:
            if x < 0 or x >= _XGB_MAX_CAT:
                return False
            return _in_bitset(cat_words, cat_bounds[cat], cat_bounds[cat + 1], np.int64(x))
        return not (x < thr)
    # LightGBM
    if flags & FLAG_CATEGORICAL:
        if np.isnan(x) or x <= -2147483649.0 or x >= 2147483648.0:
            return True
        code = np.int64(x)  # truncation toward zero, as static_cast<int>
        if code < 0:
            return True
        return not _in_bitset(cat_words, cat_bounds[cat], cat_bounds[cat + 1], code)
    if np.isnan(x):
        if flags & FLAG_MISSING_NAN:
            return (flags & FLAG_DEFAULT_LEFT) == 0
        x = 0.0
    if (flags & FLAG_MISSING_ZERO) and x > -_ZERO_THRESHOLD and x <= _ZERO_THRESHOLD:
        return (flags & FLAG_DEFAULT_LEFT) == 0
    return not (x <= thr)


@njit(inline="always", cache=True)
def _route(X, r, root, feature, threshold, left, flags, cat, cat_bounds, cat_words, rule):
    node = root
    while True:
        f = feature[node]
        if f < 0:
            return node
        if _go_right(X[r, f], threshold[node], flags[node], cat[node], cat_bounds, cat_words,
                     rule):
            node = left[node] + 1
        else:
            node = left[node]


@njit(parallel=True, nogil=True, cache=True)
def margins_parallel(X, tree_root, tree_group, feature, threshold, left, flags, cat, cat_bounds,
                     cat_words, leaf_value, rule, out):
    """Add every tree's leaf value to ``out`` (n_rows, n_groups), rows blocked across threads.

    ``out`` has the accumulation dtype (float32 for XGBoost, float64 for LightGBM) and holds the
    base margin on entry; trees are added in order, as the native predictors do.
    """
    n_rows = X.shape[0]
    n_trees = tree_root.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        start = b * BLOCK_ROWS
        stop = min(start + BLOCK_ROWS, n_rows)
        for t in range(n_trees):
            root = tree_root[t]
            g = tree_group[t]
            for r in range(start, stop):
                leaf = _route(X, r, root, feature, threshold, left, flags, cat, cat_bounds,
                              cat_words, rule)
                out[r, g] += leaf_value[leaf]
    return out


@njit(nogil=True, cache=True)
def margins_serial(X, tree_root, tree_group, feature, threshold, left, flags, cat, cat_bounds,
                   cat_words, leaf_value, rule, out):
    """Single-threaded twin of :func:`margins_parallel` for a few rows (no thread start-up)."""
    n_rows = X.shape[0]
    for r in range(n_rows):
        for t in range(tree_root.shape[0]):
            leaf = _route(X, r, tree_root[t], feature, threshold, left, flags, cat, cat_bounds,
                          cat_words, rule)
            out[r, tree_group[t]] += leaf_value[leaf]
    return out


@njit(parallel=True, nogil=True, cache=True)
def leaves_parallel(X, tree_root, feature, threshold, left, flags, cat, cat_bounds, cat_words,
                    rule, out):
    """Packed node id of the leaf each row reaches in each tree: ``out`` (n_rows, n_trees)."""
    n_rows = X.shape[0]
    n_trees = tree_root.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        start = b * BLOCK_ROWS
        stop = min(start + BLOCK_ROWS, n_rows)
        for t in range(n_trees):
            root = tree_root[t]
            for r in range(start, stop):
                out[r, t] = _route(X, r, root, feature, threshold, left, flags, cat, cat_bounds,
                                   cat_words, rule)
    return out


@njit(nogil=True, cache=True)
def pack_breadth_first(tree_offsets, left, right):
    """Breadth-first order of every tree with siblings adjacent.

    Returns ``order`` (packed position -> ensemble node id) and ``packed_left`` (packed id of the
    left child, -1 for leaves; the right child is ``packed_left + 1``). Unreachable nodes are
    left out.
    """
    n_nodes = left.shape[0]
    order = np.empty(n_nodes, dtype=np.int64)
    packed_left = np.full(n_nodes, -1, dtype=np.int32)
    pos = 0
    for t in range(tree_offsets.shape[0] - 1):
        base = tree_offsets[t]
        head = pos
        order[pos] = base
        pos += 1
        while head < pos:
            nid = order[head]
            if left[nid] >= 0:
                packed_left[head] = pos
                order[pos] = base + left[nid]
                order[pos + 1] = base + right[nid]
                pos += 2
            head += 1
    return order[:pos], packed_left[:pos]
