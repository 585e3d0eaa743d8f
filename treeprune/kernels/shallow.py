"""Shallow trees (depth up to 3) as straight-line vector code over a block of rows.

A tree of depth 2 is three comparisons; walking it node by node (:mod:`.traverse`) spends its
time on the walk (dependent loads, index arithmetic), not on the comparisons. Here every tree is
laid out full to depth ``D`` (2 or 3: a leaf above depth ``D`` is repeated below itself under
splits whose outcome does not matter) and *all* of its ``2**D - 1`` decisions are taken for a
block of rows, feature-major, in one loop over the rows with the tree's features, thresholds and
leaf values held in registers; the leaf value is picked by a fixed tree of selects. The loop has
no branches and no gathers, so the compiler turns it into SIMD code: many rows per instruction.

The decision is the walks' common case, exactly: right iff ``x >= threshold``, or ``x`` is NaN
and the node sends NaN right (:mod:`treeprune.packed` stores LightGBM thresholds as the next
double up and precomputes where NaN goes). Models with categorical splits, LightGBM's missing
type Zero or ``<=`` thresholds kept as they are do not come here. Rows are read as the source
library reads them (float32 for XGBoost; LightGBM's ``|x| <= kZeroThreshold`` made 0.0), and
each row adds its trees' leaf values in model order in the source's precision, as the native
predictors do: the margins equal the walks' bit for bit.

Deeper trees (:func:`margins_prefixed`) take their top three levels the same way, which yields
the node each row has reached there, and walk on from it (:mod:`.traverse`): a depth-6 tree is
then three vector steps and three walked ones.

Slots of a full tree of depth ``D`` are numbered breadth first: node ``k`` has children
``2k + 1`` and ``2k + 2``; leaf ``i`` is slot ``2**D - 1 + i``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._rules import LIGHTGBM_ZERO_THRESHOLD, RULE_LIGHTGBM
from .traverse import BLOCK_ROWS, BLOCK_TREES, LOPSIDED_LEVELS, _read_block, _walk

#: Rows per block: their used features, feature-major, stay in the first-level cache.
SHALLOW_ROWS = 256
#: Deepest trees that the straight-line kernels take.
SHALLOW_MAX_DEPTH = 3


@njit(inline="always", cache=True)
def _read_block_t(X, start, m, features, rule, xt):
    """Rows ``start:start + m`` of ``X``, only the columns ``features``, feature-major into
    ``xt`` in its dtype, as the source library reads them; whether any value is NaN."""
    nan = False
    for r in range(m):
        for j in range(features.shape[0]):
            v = X[start + r, features[j]]
            if rule == RULE_LIGHTGBM and abs(v) <= LIGHTGBM_ZERO_THRESHOLD:
                v = 0.0
            xt[j, r] = v  # cast to the model's precision (XGBoost's X is float32 already)
            nan |= v != v
    return nan


@njit(inline="always", cache=True)
def _go(x, t, nan_right, nan):
    """Right iff ``x >= t``, or ``x`` is NaN and ``nan_right`` (tested only when ``nan``)."""
    if nan:
        return (x >= t) | ((x != x) & nan_right)
    return x >= t


@njit(inline="always", cache=True)
def _pick2(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add, nan):
    """Tree ``t`` (depth 2) on the ``m`` rows of ``xt``: its leaf's ``slot_out`` entry added to
    (``add``) or stored in ``dst[r]``."""
    a0 = xt[slot_feature[t, 0]]
    a1 = xt[slot_feature[t, 1]]
    a2 = xt[slot_feature[t, 2]]
    t0, t1, t2 = slot_threshold[t, 0], slot_threshold[t, 1], slot_threshold[t, 2]
    n0, n1, n2 = slot_nan_right[t, 0], slot_nan_right[t, 1], slot_nan_right[t, 2]
    v0, v1, v2, v3 = slot_out[t, 0], slot_out[t, 1], slot_out[t, 2], slot_out[t, 3]
    for r in range(m):
        g0 = _go(a0[r], t0, n0, nan)
        g1 = _go(a1[r], t1, n1, nan)
        g2 = _go(a2[r], t2, n2, nan)
        v = (v3 if g2 else v2) if g0 else (v1 if g1 else v0)
        if add:
            dst[r] += v
        else:
            dst[r] = v


@njit(inline="always", cache=True)
def _pick3(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add, nan):
    """Tree ``t`` (depth 3) on the ``m`` rows of ``xt``: as :func:`_pick2`."""
    f = slot_feature[t]
    a0, a1, a2, a3, a4, a5, a6 = xt[f[0]], xt[f[1]], xt[f[2]], xt[f[3]], xt[f[4]], xt[f[5]], \
        xt[f[6]]
    s = slot_threshold[t]
    t0, t1, t2, t3, t4, t5, t6 = s[0], s[1], s[2], s[3], s[4], s[5], s[6]
    q = slot_nan_right[t]
    n0, n1, n2, n3, n4, n5, n6 = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    o = slot_out[t]
    v0, v1, v2, v3, v4, v5, v6, v7 = o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]
    for r in range(m):
        g0 = _go(a0[r], t0, n0, nan)
        g1 = _go(a1[r], t1, n1, nan)
        g2 = _go(a2[r], t2, n2, nan)
        g3 = _go(a3[r], t3, n3, nan)
        g4 = _go(a4[r], t4, n4, nan)
        g5 = _go(a5[r], t5, n5, nan)
        g6 = _go(a6[r], t6, n6, nan)
        v = (((v7 if g6 else v6) if g2 else (v5 if g5 else v4)) if g0
             else ((v3 if g4 else v2) if g1 else (v1 if g3 else v0)))
        if add:
            dst[r] += v
        else:
            dst[r] = v


@njit(inline="always", cache=True)
def _pick(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add, nan):
    """:func:`_pick2` or :func:`_pick3` by the layout's depth, with the NaN test compiled in
    only when ``nan`` (the block holds a NaN)."""
    if slot_feature.shape[1] == 3:
        if nan:
            _pick2(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add,
                   True)
        else:
            _pick2(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add,
                   False)
    elif nan:
        _pick3(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add, True)
    else:
        _pick3(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_out, dst, add, False)


@njit(parallel=True, nogil=True, cache=True)
def margins_shallow(X, features, slot_feature, slot_threshold, slot_nan_right, slot_value,
                    groups, rule, out):
    """Add every tree's leaf value to ``out`` (n_rows, n_groups), blocks of rows across threads.

    ``features`` (int32) are the columns of ``X`` the trees use; ``slot_feature`` (n_trees,
    2**D - 1) indexes ``features``; ``slot_threshold`` and ``slot_nan_right`` (the thresholds'
    dtype, 1 where NaN goes right) are per split slot; ``slot_value`` (n_trees, 2**D) the leaf
    values in ``out``'s dtype; ``groups`` the output group of each tree. ``out`` holds the base
    margin on entry; each row's trees are added in order.
    """
    n_rows = X.shape[0]
    n_blocks = (n_rows + SHALLOW_ROWS - 1) // SHALLOW_ROWS
    for b in prange(n_blocks):
        start = b * SHALLOW_ROWS
        m = min(SHALLOW_ROWS, n_rows - start)
        xt = np.empty((features.shape[0], SHALLOW_ROWS), dtype=slot_threshold.dtype)
        nan = _read_block_t(X, start, m, features, rule, xt)
        acc = np.empty((out.shape[1], SHALLOW_ROWS), dtype=out.dtype)
        for g in range(out.shape[1]):
            for r in range(m):
                acc[g, r] = out[start + r, g]
        for t in range(slot_feature.shape[0]):
            _pick(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_value,
                  acc[groups[t]], True, nan)
        for g in range(out.shape[1]):
            for r in range(m):
                out[start + r, g] = acc[g, r]
    return out


@njit(parallel=True, nogil=True, cache=True)
def leaves_shallow(X, features, slot_feature, slot_threshold, slot_nan_right, slot_leaf, rule,
                   out):
    """Packed id of the leaf each row reaches in each tree, into ``out`` (n_rows, n_trees);
    ``slot_leaf`` (int32, n_trees, 2**D) holds the packed leaf ids of the leaf slots (see
    :func:`margins_shallow` for the other arrays)."""
    n_rows = X.shape[0]
    n_blocks = (n_rows + SHALLOW_ROWS - 1) // SHALLOW_ROWS
    for b in prange(n_blocks):
        start = b * SHALLOW_ROWS
        m = min(SHALLOW_ROWS, n_rows - start)
        xt = np.empty((features.shape[0], SHALLOW_ROWS), dtype=slot_threshold.dtype)
        nan = _read_block_t(X, start, m, features, rule, xt)
        leaf = np.empty(SHALLOW_ROWS, dtype=np.int32)
        for t in range(slot_feature.shape[0]):
            _pick(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_leaf, leaf, False,
                  nan)
            for r in range(m):
                out[start + r, t] = leaf[r]
    return out


@njit(nogil=True, cache=True)
def _walk_prefixed(xt, xb, m, nan, t0, nt, slot_feature, slot_threshold, slot_nan_right,
                   slot_node, trees, info, threshold, left, cat, cat_bounds, cat_words, rule,
                   simple, node, act, rows, reached):
    """Leaves of the ``m`` rows of a block in trees ``t0:t0 + nt``, into ``node`` (lane
    ``j * m + r`` is row ``r`` in tree ``t0 + j``): the top levels of the layout (2 or 3) by the
    straight-line code (``xt``: the block feature-major), the rest walked (``xb``: the block as
    the walks read it)."""
    top = 2 if slot_feature.shape[1] == 3 else 3  # levels taken by the straight-line code
    # steps left without a leaf test, as traverse._plan counts them from the root
    levels = 0
    lopsided = False
    for j in range(nt):
        t = t0 + j
        rest = max(trees[t, 2] - top, 0)
        if trees[t, 3] != 0:
            lopsided = True
            rest = min(rest, LOPSIDED_LEVELS)
        levels = max(levels, rest)
        _pick(xt, m, t, slot_feature, slot_threshold, slot_nan_right, slot_node, reached, False,
              nan)
        for r in range(m):
            node[j * m + r] = reached[r]
            rows[j * m + r] = r
    _walk(xb, rows, node, act, nt * m, levels, lopsided, info, threshold, left, cat, cat_bounds,
          cat_words, rule, simple, nan)


@njit(inline="always", cache=True)
def _prefixed_block(X, start, m, features, rule, slot_threshold, dtype):
    """One block of rows for the prefixed walks: the used columns feature-major for the
    straight-line levels (and whether any is NaN), the rows as the walk reads them (in
    ``dtype``), and the walk's lane arrays."""
    xt = np.empty((features.shape[0], BLOCK_ROWS), dtype=slot_threshold.dtype)
    nan = _read_block_t(X, start, m, features, rule, xt)
    xb = _read_block(X, start, m, rule, dtype)
    lanes = BLOCK_ROWS * BLOCK_TREES
    return (xt, nan, xb, np.empty(lanes, dtype=np.uint32), np.empty(lanes, dtype=np.uint32),
            np.empty(lanes, dtype=np.uint32), np.empty(BLOCK_ROWS, dtype=np.int32))


@njit(parallel=True, nogil=True, cache=True)
def margins_prefixed(X, features, slot_feature, slot_threshold, slot_nan_right, slot_node, trees,
                     info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule, simple,
                     out):
    """:func:`treeprune.kernels.traverse.margins_blocked` for trees deeper than
    ``SHALLOW_MAX_DEPTH``, their top levels taken by the straight-line code: ``slot_node``
    (int32, n_trees, 2**D) holds the packed node reached after those ``D`` levels, from which
    the lanes walk on (:func:`treeprune.kernels.traverse._walk`) for the remaining levels (with
    a leaf test for lopsided trees, as there).
    Same leaves, same accumulation order as the walks."""
    n_rows = X.shape[0]
    n_trees = trees.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xt, nan, xb, node, act, rows, reached = _prefixed_block(
            X, start, m, features, rule, slot_threshold, leaf_value.dtype)
        for t0 in range(0, n_trees, BLOCK_TREES):
            nt = min(BLOCK_TREES, n_trees - t0)
            _walk_prefixed(xt, xb, m, nan, t0, nt, slot_feature, slot_threshold,
                           slot_nan_right, slot_node, trees, info, threshold, left, cat,
                           cat_bounds, cat_words, rule, simple, node, act, rows, reached)
            for j in range(nt):
                g = trees[t0 + j, 1]
                for r in range(m):
                    out[start + r, g] += leaf_value[node[j * m + r]]
    return out


@njit(parallel=True, nogil=True, cache=True)
def leaves_prefixed(X, features, slot_feature, slot_threshold, slot_nan_right, slot_node, trees,
                    info, threshold, left, cat, cat_bounds, cat_words, rule, simple, out):
    """:func:`treeprune.kernels.traverse.leaves_blocked` the way :func:`margins_prefixed`
    walks: packed id of the leaf each row reaches in each tree, into ``out`` (n_rows,
    n_trees)."""
    n_rows = X.shape[0]
    n_trees = trees.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xt, nan, xb, node, act, rows, reached = _prefixed_block(
            X, start, m, features, rule, slot_threshold, threshold.dtype)
        for t0 in range(0, n_trees, BLOCK_TREES):
            nt = min(BLOCK_TREES, n_trees - t0)
            _walk_prefixed(xt, xb, m, nan, t0, nt, slot_feature, slot_threshold,
                           slot_nan_right, slot_node, trees, info, threshold, left, cat,
                           cat_bounds, cat_words, rule, simple, node, act, rows, reached)
            for j in range(nt):
                for r in range(m):
                    out[start + r, t0 + j] = node[j * m + r]
    return out


__all__ = ["margins_shallow", "leaves_shallow", "margins_prefixed", "leaves_prefixed",
           "SHALLOW_ROWS", "SHALLOW_MAX_DEPTH"]
