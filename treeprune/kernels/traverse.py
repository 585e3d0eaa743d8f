"""Routing kernels: rows through trees, in each source library's exact decision rule.

Nodes are *packed* per tree breadth first (``treeprune.packed``) so that the right child of a
split is always ``left + 1``, every tree is one contiguous run, and a leaf has threshold -inf and
``left`` one below itself, so that every value steps "right" onto the leaf again: stepping from a
leaf stays on it, so a tree can be walked a fixed number of steps (its depth) without testing
for leaves.

The walks move many independent *lanes* a step at a time (:func:`_walk`): the trees of one row,
or the rows of a block times a block of trees (a block of rows is read once; a block of trees
stays in cache while the rows walk it). Balanced trees take their depth in steps with no leaf
test; lopsided (leaf-wise) trees, whose depth is far above the depth of most leaves, take a few
such steps and then sweep only the lanes not yet at a leaf. Every lane's loads are independent of
the others', so the CPU overlaps them, and the step is branch free except at categorical,
zero-missing and ``<=`` nodes; rows and blocks with no NaN skip the NaN test. Leaf values are
added in model order, as the native predictors add them.

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

#: Rows handled together by one thread: read once, then walked by every tree.
BLOCK_ROWS = 128
#: Trees walked together by a block of rows: their nodes stay in cache while the rows walk them.
BLOCK_TREES = 4
#: Steps that lopsided trees take without a leaf test (few rows reach a leaf this early).
LOPSIDED_LEVELS = 2


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

# the walks index with unsigned integers: Numba then emits no negative-index wraparound, which
# was a third of the instructions of a step
_U_MASK = np.uint32(FEATURE_MASK)
_U_SPECIAL = np.uint32(_SPECIAL)
_U_LEAF = np.uint32(_LEAF_BIT)
_U_NAN_SHIFT = np.uint32(_NAN_SHIFT)
_U_FLAG_SHIFT = np.uint32(FEATURE_BITS)
_U0 = np.uint32(0)
_U1 = np.uint32(1)


@njit(nogil=True, cache=True)
def _has_nan(xb):
    """Whether any value of the block ``xb`` is NaN (then the walks test for it at every step)."""
    for r in range(xb.shape[0]):
        for j in range(xb.shape[1]):
            if xb[r, j] != xb[r, j]:
                return True
    return False


@njit(nogil=True, cache=True)
def _plan(trees, t0, nt):
    """Steps to take without a leaf test for trees ``t0:t0 + nt`` and whether any is lopsided.

    Balanced trees need exactly their depth (a leaf steps onto itself); lopsided trees are
    stepped ``LOPSIDED_LEVELS`` times first (almost no row is at a leaf that early) and then
    walked with a leaf test until every lane is at a leaf."""
    levels = 0
    lopsided = False
    for t in range(t0, t0 + nt):
        if trees[t, 3] != 0:
            lopsided = True
            levels = max(levels, min(trees[t, 2], LOPSIDED_LEVELS))
        else:
            levels = max(levels, trees[t, 2])
    return levels, lopsided


@njit(nogil=True, cache=True)
def _walk(xb, rows, node, act, n, levels, lopsided, info, threshold, left, cat, cat_bounds,
          cat_words, rule, simple, nan):
    """Walk ``n`` lanes to their leaves: lane ``i`` is row ``rows[i]`` of the block ``xb`` (read
    by :func:`_load_row`) at node ``node[i]``; on return ``node[:n]`` holds the leaves.

    Every lane is independent of the others, so the CPU overlaps many lanes' loads; the lanes
    are the trees of one row, or the rows of a block times a block of trees. First ``levels``
    sweeps over all lanes with no leaf test (a leaf steps onto itself: threshold -inf, left one
    below itself); then, for lopsided trees, sweeps over the lanes not yet at a leaf, kept in
    ``act`` (a lane leaves the list when the node it steps from is a leaf, so the list does not
    wait on the step just taken). A step is branch free (right iff ``x >= threshold``, or ``x``
    is NaN and the node sends NaN right; with ``nan`` False the block has no NaN and the test
    is left out) except at nodes flagged ``_SPECIAL``, which take the full rule.

    The step is written out in both loops rather than called: Numba's inlined calls cost
    reference counting and registers in this loop, about half its speed.
    """
    info_u = info.view(np.uint32)
    left_u = left.view(np.uint32)
    for _ in range(levels):
        for i in range(n):
            nd = node[i]
            w = info_u[nd]
            v = xb[rows[i], w & _U_MASK]
            t = threshold[nd]
            if simple or w & _U_SPECIAL == _U0:
                if nan:
                    go = (v >= t) | ((v != v) & ((w >> _U_NAN_SHIFT) & _U1 != _U0))
                else:
                    go = v >= t
            else:
                go = _go_right_slow(v, t, np.int32(w >> _U_FLAG_SHIFT), cat[nd], cat_bounds,
                                    cat_words, rule)
            node[i] = left_u[nd] + np.uint32(go)
    if not lopsided:
        return
    m = 0
    for i in range(n):
        act[m] = i
        m += (info_u[node[i]] & _U_LEAF) == _U0
    while m > 0:
        k = 0
        for j in range(m):
            i = act[j]
            nd = node[i]
            w = info_u[nd]
            v = xb[rows[i], w & _U_MASK]
            t = threshold[nd]
            if simple or w & _U_SPECIAL == _U0:
                if nan:
                    go = (v >= t) | ((v != v) & ((w >> _U_NAN_SHIFT) & _U1 != _U0))
                else:
                    go = v >= t
            else:
                go = _go_right_slow(v, t, np.int32(w >> _U_FLAG_SHIFT), cat[nd], cat_bounds,
                                    cat_words, rule)
            node[i] = left_u[nd] + np.uint32(go)
            act[k] = i
            k += (w & _U_LEAF) == _U0
        m = k


@njit(nogil=True, cache=True)
def _walk_block(xb, m, t0, nt, trees, info, threshold, left, cat, cat_bounds, cat_words, rule,
                simple, nan, node, act, rows):
    """Leaves of the ``m`` rows of block ``xb`` in trees ``t0:t0 + nt``: lane ``j * m + r`` is
    row ``r`` in tree ``t0 + j``, and holds its leaf on return."""
    n = nt * m
    for j in range(nt):
        root = np.uint32(trees[t0 + j, 0])
        for r in range(m):
            node[j * m + r] = root
            rows[j * m + r] = r
    levels, lopsided = _plan(trees, t0, nt)
    _walk(xb, rows, node, act, n, levels, lopsided, info, threshold, left, cat, cat_bounds,
          cat_words, rule, simple, nan)


@njit(parallel=True, nogil=True, cache=True)
def margins_blocked(X, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value,
                    rule, simple, out):
    """Add every tree's leaf value to ``out`` (n_rows, n_groups), row blocks across threads.

    ``trees`` is int32 (n_trees, 4): root, group, depth, lopsided. ``out`` has the accumulation dtype
    (float32 for XGBoost, float64 for LightGBM) and holds the base margin on entry; trees are
    added in order, as the native predictors do. A thread reads its block of rows once, as the
    source library reads them; then blocks of ``BLOCK_TREES`` trees walk the block
    (:func:`_walk`), so the trees' nodes stay in cache while every row of the block walks them.
    """
    n_rows = X.shape[0]
    n_trees = trees.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        lanes = BLOCK_ROWS * BLOCK_TREES
        node = np.empty(lanes, dtype=np.uint32)
        act = np.empty(lanes, dtype=np.uint32)
        rows = np.empty(lanes, dtype=np.uint32)
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xb = _read_block(X, start, m, rule, leaf_value.dtype)
        nan = _has_nan(xb)
        for t0 in range(0, n_trees, BLOCK_TREES):
            nt = min(BLOCK_TREES, n_trees - t0)
            _walk_block(xb, m, t0, nt, trees, info, threshold, left, cat, cat_bounds, cat_words,
                        rule, simple, nan, node, act, rows)
            for j in range(nt):
                g = trees[t0 + j, 1]
                for r in range(m):
                    out[start + r, g] += leaf_value[node[j * m + r]]
    return out


@njit(nogil=True, cache=True)
def margins_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                simple, out):
    """Add every tree's leaf value for the single row ``x`` (n_features,) to ``out`` (n_groups,).

    The single-row entry point (no thread pool): the row is read once as the source library
    reads it (:func:`_load_row`), every tree walks it as one lane of :func:`_walk`, and the
    leaf values are added in model order.
    """
    xr = np.empty((1, x.shape[0]), dtype=leaf_value.dtype)
    _load_row(x.reshape(1, -1), 0, rule, xr[0])
    n_trees = trees.shape[0]
    lanes = np.empty(3 * n_trees, dtype=np.uint32)  # one allocation: it shows on small models
    node = lanes[:n_trees]
    act = lanes[n_trees:2 * n_trees]
    rows = lanes[2 * n_trees:]
    for t in range(n_trees):
        node[t] = trees[t, 0]
        rows[t] = 0
    levels, lopsided = _plan(trees, 0, n_trees)
    _walk(xr, rows, node, act, n_trees, levels, lopsided, info, threshold, left, cat, cat_bounds,
          cat_words, rule, simple, _has_nan(xr))
    for t in range(n_trees):
        out[trees[t, 1]] += leaf_value[node[t]]
    return out


@njit(nogil=True, cache=True)
def margin_row(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
               simple, base_margin):
    """Margins of the single row ``x`` as a new float64 array (n_groups,): ``base_margin`` plus
    every tree, accumulated in ``leaf_value``'s dtype as :func:`margins_one` does. The lean
    single-row entry point; its callers pass float64 rows (read in the model's precision, as
    the source library reads them), so that one compiled version serves every row."""
    acc = base_margin.copy()
    margins_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                simple, acc)
    return acc.astype(np.float64)


@njit(nogil=True, cache=True)
def margin_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
               simple, base_margin):
    """:func:`margin_row` of a one-output model as a float64 number (a number costs far less to
    hand back to Python than a new array)."""
    acc = base_margin.copy()
    margins_one(x, trees, info, threshold, left, cat, cat_bounds, cat_words, leaf_value, rule,
                simple, acc)
    return np.float64(acc[0])


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
    n_trees = trees.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        lanes = BLOCK_ROWS * BLOCK_TREES
        node = np.empty(lanes, dtype=np.uint32)
        act = np.empty(lanes, dtype=np.uint32)
        rows = np.empty(lanes, dtype=np.uint32)
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, n_rows - start)
        xb = _read_block(X, start, m, rule, threshold.dtype)
        nan = _has_nan(xb)
        for t0 in range(0, n_trees, BLOCK_TREES):
            nt = min(BLOCK_TREES, n_trees - t0)
            _walk_block(xb, m, t0, nt, trees, info, threshold, left, cat, cat_bounds, cat_words,
                        rule, simple, nan, node, act, rows)
            for j in range(nt):
                for r in range(m):
                    out[start + r, t0 + j] = node[j * m + r]
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


__all__ = ["margins_blocked", "margins_one", "margin_one", "margin_row", "margins_rows",
           "leaves_blocked", "pack_breadth_first", "BLOCK_ROWS", "BLOCK_TREES"]
