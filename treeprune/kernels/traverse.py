"""Routing kernels: rows through trees, in each source library's exact decision rule.

Nodes are *packed* per tree breadth first (``treeprune.packed``) so that the right child of a
split is always ``left + 1``, every tree is one contiguous run, and a leaf has threshold -inf and
``left`` one below itself, so that every value steps "right" onto the leaf again: stepping from a
leaf stays on it, so a tree can be walked a fixed number of
steps (its depth) without testing for leaves. Rows are processed in blocks; within a block,
balanced trees are walked level by level across all rows, and lopsided (leaf-wise) trees four
rows at a time in lock step; a single row walks four trees at a time. Either way the load chains
are independent, so the CPU overlaps them, and the step is branch free except at categorical
and zero-missing nodes.

Each node has one int32 word ``info``: the feature index in the low 24 bits and the flags in the
high bits, and ``left``. LightGBM thresholds are stored as the next double above the model's
threshold, so that ``x <= t`` becomes ``x < t'`` and one comparison serves both libraries.

Rules (``rule`` argument):

* ``RULE_XGBOOST`` (0): X is float32 (as XGBoost casts it), thresholds float32; left iff
  ``x < threshold``; NaN follows ``default_left``. Categorical: NaN follows ``default_left``;
  a code < 0 or >= 2**24 or beyond the bitset goes left, a code in the bitset goes right,
  any other code left.
* ``RULE_LIGHTGBM`` (1): X and thresholds float64; ``|x| <= float32(1e-35)`` becomes 0.0 (as
  LightGBM's row reader does); NaN becomes 0.0 unless the missing type is NaN; missing type Zero
  sends 0.0 to ``default_left``, missing type NaN sends NaN to ``default_left``; otherwise left iff ``x <= threshold``. Categorical: NaN, a value that
  does not fit int32 or is negative after truncation toward zero goes right; a code in the
  bitset goes left, else right.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._rules import (
    FEATURE_BITS,
    FEATURE_MASK,
    FLAG_CATEGORICAL,
    FLAG_EXACT_LE,
    FLAG_LEAF,
    FLAG_MISSING_ZERO,
    FLAG_NAN_RIGHT_SHIFT,
    LIGHTGBM_ZERO_THRESHOLD,
    RULE_LIGHTGBM,
)
from .device import go_right

#: Rows handled together by one thread: each tree's nodes stay in cache across the block.
BLOCK_ROWS = 128
#: Trees (single row) or rows (one tree) walked in lock step, to overlap their load chains
#: (:func:`_walk4`).
LANES = 4


#: The full rule (categorical splits and LightGBM's missing types), shared with the GPU kernels.
_go_right_slow = njit(inline="always", cache=True)(go_right)


@njit(inline="always", cache=True)
def _load_row(X, r, rule, dst):
    """Row ``r`` of ``X`` into ``dst`` as the source library reads it: cast to ``dst``'s dtype
    (float32 for XGBoost) and, for LightGBM, every ``|x| <= kZeroThreshold`` made 0.0 (its
    dense-row reader does this before any split sees the value)."""
    for j in range(X.shape[1]):
        v = X[r, j]
        if rule == RULE_LIGHTGBM and abs(v) <= LIGHTGBM_ZERO_THRESHOLD:
            v = 0.0
        dst[j] = v


@njit(inline="always", cache=True)
def _read_block(X, start, m, rule, dtype):
    """Rows ``start:start + m`` as the kernels read them: LightGBM's rows through
    :func:`_load_row`; XGBoost's as they are (``X`` is float32 already: a copy would cost more
    than it saves on a small model)."""
    if rule == RULE_LIGHTGBM:
        xb = np.empty((m, X.shape[1]), dtype=dtype)
        for r in range(m):
            _load_row(X, start + r, rule, xb[r])
        return xb
    return np.ascontiguousarray(X[start:start + m])


@njit(inline="always", cache=True)
def _step(X, r, node, info, threshold, left, cat, cat_bounds, cat_words, rule, simple):
    """One step of row ``r`` of ``X`` as given (not read by :func:`_load_row`): LightGBM's zero
    rule is applied here."""
    x = X[r, info[node] & FEATURE_MASK]
    if rule == RULE_LIGHTGBM and abs(x) <= LIGHTGBM_ZERO_THRESHOLD:
        x = 0.0
    return _step_x(x, node, info, threshold, left, cat, cat_bounds, cat_words, rule, simple)


@njit(inline="always", cache=True)
def _step_x(x, node, info, threshold, left, cat, cat_bounds, cat_words, rule, simple):
    """The child of ``node`` that the feature value ``x`` (read by :func:`_load_row`) goes to."""
    flags = info[node] >> FEATURE_BITS
    if x != x:
        # NaN: every numerical split of either library sends it one fixed way (FLAG_NAN_RIGHT is
        # precomputed per node from default_left, the missing type and the threshold)
        if simple or flags & FLAG_CATEGORICAL == 0:
            return left[node] + ((flags >> FLAG_NAN_RIGHT_SHIFT) & 1)
    elif simple or flags & (FLAG_CATEGORICAL | FLAG_MISSING_ZERO | FLAG_EXACT_LE) == 0:
        # the common case; LightGBM thresholds are stored as the next double up, so both
        # libraries' rules read "left iff x < threshold" here
        return left[node] + (0 if x < threshold[node] else 1)
    if _go_right_slow(x, threshold[node], flags, cat[node], cat_bounds, cat_words, rule):
        return left[node] + 1
    return left[node]


#: Bits of ``info`` that need the full rule (:func:`_go_right_slow`): categorical splits,
#: LightGBM's missing type Zero, and thresholds compared with ``<=``.
_SPECIAL = (FLAG_CATEGORICAL | FLAG_MISSING_ZERO | FLAG_EXACT_LE) << FEATURE_BITS
_LEAF_BIT = FLAG_LEAF << FEATURE_BITS
_NAN_SHIFT = FEATURE_BITS + FLAG_NAN_RIGHT_SHIFT


@njit(inline="always", cache=True)
def _next(xb, r, node, info, threshold, left, cat, cat_bounds, cat_words, rule, simple):
    """The child of ``node`` for row ``r`` of the block ``xb`` (read by :func:`_load_row`).

    The same decision as :func:`_step_x`, written so that the common case compiles without a
    branch on the data: right iff ``x >= threshold``, or ``x`` is NaN and the node sends NaN
    right. Only nodes flagged in ``_SPECIAL`` take the full rule (a branch that is almost never
    taken, so it is predicted well).
    """
    w = info[node]
    v = xb[r, w & FEATURE_MASK]
    if simple or w & _SPECIAL == 0:
        return left[node] + np.int32((v >= threshold[node])
                                     | ((v != v) & ((w >> _NAN_SHIFT) & 1 != 0)))
    return left[node] + np.int32(_go_right_slow(v, threshold[node], w >> FEATURE_BITS, cat[node],
                                                cat_bounds, cat_words, rule))


@njit(inline="always", cache=True)
def _common(xb, r, node, w, threshold, left):
    """:func:`_next` for a node without ``_SPECIAL`` flags, branch free."""
    v = xb[r, w & FEATURE_MASK]
    return left[node] + np.int32((v >= threshold[node]) | ((v != v) & ((w >> _NAN_SHIFT) & 1 != 0)))


@njit(inline="always", cache=True)
def _walk4(xb, ra, rb, rc, rd, a, b, c, d, steps, lopsided, info, threshold, left, cat,
           cat_bounds, cat_words, rule, simple, lanes):
    """Four walks in lock step: lane ``k`` walks row ``r_k`` of ``xb`` from node ``k`` (four
    trees of one row, or four rows of one tree). Returns the four nodes reached.

    The four load chains are independent, so the CPU overlaps them; a lane that reached its leaf
    keeps stepping onto it. Lopsided trees stop when every lane is at a leaf, balanced ones after
    ``steps`` steps (no leaf test). A step where no lane is at a ``_SPECIAL`` node (almost all)
    is branch free; the others go through :func:`_next` lane by lane (``lanes`` is scratch of
    four), so the full rule is compiled in once.
    """
    i = 0
    while True:
        if lopsided:
            if info[a] & info[b] & info[c] & info[d] & _LEAF_BIT != 0:
                break
        elif i >= steps:
            break
        i += 1
        wa = info[a]
        wb = info[b]
        wc = info[c]
        wd = info[d]
        if simple or (wa | wb | wc | wd) & _SPECIAL == 0:
            a = _common(xb, ra, a, wa, threshold, left)
            b = _common(xb, rb, b, wb, threshold, left)
            c = _common(xb, rc, c, wc, threshold, left)
            d = _common(xb, rd, d, wd, threshold, left)
            continue
        lanes[0] = a
        lanes[1] = b
        lanes[2] = c
        lanes[3] = d
        for k in range(4):
            r = ra if k == 0 else rb if k == 1 else rc if k == 2 else rd
            lanes[k] = _next(xb, r, lanes[k], info, threshold, left, cat, cat_bounds, cat_words,
                             rule, simple)
        a = lanes[0]
        b = lanes[1]
        c = lanes[2]
        d = lanes[3]
    return a, b, c, d


@njit(inline="always", cache=True)
def _route_block(xb, m, root, depth, lopsided, info, threshold, left, cat, cat_bounds, cat_words,
                 rule, simple, nodes, lanes):
    """Leaves of the ``m`` rows of block ``xb`` in one tree, into ``nodes[:m]``.

    Balanced trees (XGBoost's depth-wise growth) are walked level by level for all rows at once,
    ``depth`` steps with no leaf test (leaves step onto themselves): the rows' load chains are
    independent, so the CPU overlaps them. Lopsided trees (LightGBM's leaf-wise growth, whose
    depth is far above the mean leaf depth) are walked four rows at a time in lock step until
    all four are at leaves (:func:`_walk4`).
    """
    if lopsided:
        for r0 in range(0, m, LANES):
            last = m - 1  # a short last group walks its last row in the spare lanes
            a, b, c, d = _walk4(xb, r0, min(r0 + 1, last), min(r0 + 2, last), min(r0 + 3, last),
                                root, root, root, root, depth, True, info, threshold, left, cat,
                                cat_bounds, cat_words, rule, simple, lanes)
            nodes[r0] = a
            if r0 + 1 < m:
                nodes[r0 + 1] = b
            if r0 + 2 < m:
                nodes[r0 + 2] = c
            if r0 + 3 < m:
                nodes[r0 + 3] = d
        return
    for r in range(m):
        nodes[r] = root
    for _ in range(depth):
        for r in range(m):
            nodes[r] = _next(xb, r, nodes[r], info, threshold, left, cat, cat_bounds, cat_words,
                             rule, simple)


@njit(parallel=True, nogil=True, cache=True)
def margins_blocked(X, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value,
                    rule, simple, out):
    """Add every tree's leaf value to ``out`` (n_rows, n_groups), row blocks across threads.

    ``trees`` is int32 (n_trees, 4): root, group, depth, lopsided. ``out`` has the accumulation dtype
    (float32 for XGBoost, float64 for LightGBM) and holds the base margin on entry; trees are
    added in order, as the native predictors do. A thread reads its block of rows once, as the
    source library reads them; the block then stays in cache while every tree walks it.
    """
    n_rows = X.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        nodes = np.empty(BLOCK_ROWS, dtype=np.int32)
        lanes = np.empty(LANES, dtype=np.int32)
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xb = _read_block(X, start, m, rule, leaf_value.dtype)
        for t in range(trees.shape[0]):
            _route_block(xb, m, trees[t, 0], trees[t, 2], trees[t, 3], info, threshold, left, cat,
                         cat_bounds, cat_words, rule, simple, nodes, lanes)
            g = trees[t, 1]
            for r in range(m):
                out[start + r, g] += leaf_value[nodes[r]]
    return out


@njit(nogil=True, cache=True)
def margins_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                simple, out):
    """Add every tree's leaf value for the single row ``x`` (n_features,) to ``out`` (n_groups,).

    The single-row entry point (no thread pool): the row is read once as the source library
    reads it (:func:`_load_row`), then walked by four trees at a time in lock step
    (:func:`_walk4`); leaf values are added in model order.
    """
    xr = np.empty((1, x.shape[0]), dtype=leaf_value.dtype)
    _load_row(x.reshape(1, -1), 0, rule, xr[0])
    lanes = np.empty(LANES, dtype=np.int32)
    n_trees = trees.shape[0]
    last = n_trees - 1  # a short last group walks the last tree in the spare lanes
    for t in range(0, n_trees, LANES):
        tb = min(t + 1, last)
        tc = min(t + 2, last)
        td = min(t + 3, last)
        steps = max(max(trees[t, 2], trees[tb, 2]), max(trees[tc, 2], trees[td, 2]))
        lopsided = (trees[t, 3] | trees[tb, 3] | trees[tc, 3] | trees[td, 3]) != 0
        a, b, c, d = _walk4(xr, 0, 0, 0, 0, trees[t, 0], trees[tb, 0], trees[tc, 0],
                            trees[td, 0], steps, lopsided, info, threshold, left, cat, cat_bounds,
                            cat_words, rule, simple, lanes)
        out[trees[t, 1]] += leaf_value[a]
        if t + 1 < n_trees:
            out[trees[tb, 1]] += leaf_value[b]
        if t + 2 < n_trees:
            out[trees[tc, 1]] += leaf_value[c]
        if t + 3 < n_trees:
            out[trees[td, 1]] += leaf_value[d]
    return out


@njit(nogil=True, cache=True)
def margin_row(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
               simple, base_margin):
    """Margins of the single row ``x`` as a new float64 array (n_groups,): ``base_margin`` plus
    every tree, accumulated in ``leaf_value``'s dtype as :func:`margins_one` does. One call, one
    allocation: the lean single-row entry point."""
    acc = base_margin.copy()
    margins_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                simple, acc)
    return acc.astype(np.float64)


@njit(nogil=True, cache=True)
def margins_rows(X, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                 simple, out):
    """Single-threaded twin of :func:`margins_blocked` for a few rows (no thread start-up)."""
    for r in range(X.shape[0]):
        margins_one(X[r], trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value,
                    rule, simple, out[r])
    return out


@njit(parallel=True, nogil=True, cache=True)
def leaves_blocked(X, trees, info, threshold, left, cat, cat_bounds, cat_words, rule, simple,
                   out):
    """Packed node id of the leaf each row reaches in each tree: ``out`` (n_rows, n_trees)."""
    n_rows = X.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        nodes = np.empty(BLOCK_ROWS, dtype=np.int32)
        lanes = np.empty(LANES, dtype=np.int32)
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xb = _read_block(X, start, m, rule, threshold.dtype)
        for t in range(trees.shape[0]):
            _route_block(xb, m, trees[t, 0], trees[t, 2], trees[t, 3], info, threshold, left, cat,
                         cat_bounds, cat_words, rule, simple, nodes, lanes)
            for r in range(m):
                out[start + r, t] = nodes[r]
    return out


@njit(nogil=True, cache=True)
def pack_breadth_first(tree_offsets, left, right):
    """Breadth-first order of every tree with siblings adjacent.

    Returns ``order`` (packed position -> ensemble node id), ``packed_left`` (packed id of the
    left child, -1 for leaves; the right child is ``packed_left + 1``) and ``depth`` of each
    packed node. Unreachable nodes are left out.
    """
    n_nodes = left.shape[0]
    order = np.empty(n_nodes, dtype=np.int64)
    packed_left = np.full(n_nodes, -1, dtype=np.int32)
    depth = np.zeros(n_nodes, dtype=np.int32)
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
                depth[pos] = depth[head] + 1
                depth[pos + 1] = depth[head] + 1
                pos += 2
            head += 1
    return order[:pos], packed_left[:pos], depth[:pos]


__all__ = ["margins_blocked", "margins_one", "margin_row", "margins_rows", "leaves_blocked", "pack_breadth_first",
           "BLOCK_ROWS", "LANES"]
