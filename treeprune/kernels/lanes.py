"""One row through every tree with several trees in flight: the single-row kernel.

A walk is a chain of dependent loads (node, feature value, compare, next node), so one tree at a
time leaves the CPU waiting on each load. Here ``LANES`` trees are walked at once in scalar code,
each step advancing every lane by one node with a branch-free choice of child; a lane that
reaches a leaf is refilled with the next tree at once, so deep lopsided (leaf-wise) trees do not
hold the others back. The CPU overlaps the lanes' loads.

The nodes are laid out for this once per model (:func:`build_row_layout`, cached on
``treeprune.packed.Packed``): depth first, so that the left child of a split is the next record
and only the right child is stored, in one 16-byte record per node: the threshold (float64),
the packed ``info`` word (feature and flags, ``treeprune.kernels.traverse``) and the right
child. Two flag bits of a split say whether its left or right child ends the walk, so a lane
knows it is done without loading the child. Categorical splits whose categories fit in 64 bits
keep the bitset in the threshold's 8 bytes; the row's own category bit is computed once per
call, so these splits are decided in the same branch-free step. The few splits that need the
full rule (LightGBM's zero-as-missing, ``<=`` kept as is, category bitsets wider than 64 bits)
end a lane's walk like a leaf and are decided after the lanes, by the same rule as every other
kernel (``treeprune.kernels.device.go_right``).

Leaf records hold the leaf value and the tree index; the values found are written per tree
and added in model order, as the other kernels add them, so the margins are bit for bit the
batch kernels' margins.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
from .traverse import _go_right_slow

#: Trees walked at once (8 keep the loop's state in registers on x86-64).
LANES = 8

#: One node: the threshold, or for a categorical split its category bitset (the first 64
#: categories) in the same 8 bytes; the packed ``info`` word; the right child (a leaf: its tree).
ROW_RECORD = np.dtype({"names": ["thr", "bits", "info", "right"],
                       "formats": [np.float64, np.uint64, np.uint32, np.uint32],
                       "offsets": [0, 0, 8, 12], "itemsize": 16})

_U0 = np.uint32(0)
_U1 = np.uint32(1)
_U3 = np.uint32(3)
_MASK = np.uint32(FEATURE_MASK)
_NAN_SHIFT = np.uint32(FEATURE_BITS + FLAG_NAN_RIGHT_SHIFT)
_CAT = np.uint32(FLAG_CATEGORICAL << FEATURE_BITS)
_SLOW = np.uint32((FLAG_MISSING_ZERO | FLAG_EXACT_LE) << FEATURE_BITS)
_PACKED_LEAF = np.uint32(FLAG_LEAF << FEATURE_BITS)
#: On a split: "the left child ends the walk" (the bit of FLAG_LEAF, which no split carries);
#: "the right child does" three bits up (a flag no node uses), so that ``STOP_SHIFT + 3 * right``
#: picks the one for the child taken.
_STOP_SHIFT = np.uint32(FEATURE_BITS + 4)
_STOP_LEFT = np.uint32(1 << (FEATURE_BITS + 4))
_STOP_RIGHT = np.uint32(1 << (FEATURE_BITS + 7))
#: On a LightGBM categorical split (in the bit of FLAG_EXACT_LE, which only numerical splits
#: use): the categories in the bitset go left, so the bitset's answer is inverted.
_INVERT_SHIFT = np.uint32(FEATURE_BITS + 6)
_INVERT = np.uint32(1 << (FEATURE_BITS + 6))
#: ``info`` of a leaf record: no split has every bit set.
LEAF_INFO = np.uint32(0xFFFFFFFF)


@njit(inline="always", cache=True)
def _step(nodes, xr, cm, nd, nan):
    """(next node, whether it ends the walk) for the lane at split ``nd``. Every value is
    computed and then chosen from, with no branch: the numerical answer (``x >= threshold``;
    thresholds are stored so that both libraries read this way) or, on a categorical split,
    the row's category bit in the split's bitset; NaN by the node's flag. The right child is
    loaded before the choice (a load under a condition becomes a branch)."""
    rec = nodes[nd]
    w = rec.info
    f = w & _MASK
    x = xr[f]
    go = np.uint32(x >= rec.thr)
    in_set = np.uint32((rec.bits & cm[f]) != 0) ^ (w >> _INVERT_SHIFT)
    go = in_set if w & _CAT != _U0 else go
    if nan:
        go |= np.uint32(x != x) & (w >> _NAN_SHIFT)
    go &= _U1
    right = rec.right
    nxt = right if go != _U0 else nd + _U1
    return nxt, (w >> (_STOP_SHIFT + go * _U3)) & _U1


@njit(nogil=True, cache=True)
def _lanes(nodes, xr, cm, starts, n_starts, done, nan):
    """Walk from ``starts[:n_starts]`` (padded with ``LANES + 1`` copies of the dummy record)
    until each walk ends; the nodes where they end go to ``done`` in the order they end.
    Returns their number (``n_starts``). ``nan`` is a compile-time constant: whether the row
    has a NaN (without one, the NaN test is left out)."""
    n = np.uint32(n_starts)
    cnt = np.uint32(0)
    # the lanes' state as scalars (registers), each lane's step written out
    n0 = starts[0]
    n1 = starts[1]
    n2 = starts[2]
    n3 = starts[3]
    n4 = starts[4]
    n5 = starts[5]
    n6 = starts[6]
    n7 = starts[7]
    k = np.uint32(LANES)
    if n > k:
        last = n - k
        # a lane whose walk ends records its last node and takes the next start; the record
        # and the next start are written and read at every step (a load under a condition
        # becomes a branch) and count only when it ends
        while cnt < last:
            nx, end = _step(nodes, xr, cm, n0, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n0 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n1, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n1 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n2, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n2 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n3, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n3 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n4, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n4 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n5, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n5 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n6, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n6 = nt if end != _U0 else nx
            cnt += end
            nx, end = _step(nodes, xr, cm, n7, nan)
            done[cnt] = nx
            nt = starts[cnt + k]
            n7 = nt if end != _U0 else nx
            cnt += end
    # the last walks, each alone (lanes past the last start hold the dummy record)
    dummy = starts[n]
    for nd in (n0, n1, n2, n3, n4, n5, n6, n7):
        if nd != dummy:
            while True:
                nd, end = _step(nodes, xr, cm, nd, nan)
                if end != _U0:
                    break
            done[cnt] = nd
            cnt += _U1
    return cnt


@njit(cache=True)
def build_row_layout(roots, info, threshold, left, leaf_value, cat, cat_bounds, cat_words,
                     rule):
    """The single-row layout of a packed model (``treeprune.packed``): per tree, depth first.

    Returns ``nodes`` (``ROW_RECORD``, one per node plus a dummy record at the end; a leaf
    record holds its value and its tree), ``cat`` per record, ``packed`` (record -> packed node
    id), ``starts``
    (the roots the lanes walk from, padded with the dummy), their number, and ``stop_roots``
    (roots that are leaves or splits the lanes do not decide).
    """
    n = info.shape[0]
    n_trees = roots.shape[0]
    order = np.empty(n, np.int64)
    record = np.empty(n, np.int64)
    stack = np.empty(n + 2, np.int64)
    pos = 0
    for t in range(n_trees):
        stack[0] = roots[t]
        sp = 1
        while sp > 0:
            sp -= 1
            nd = stack[sp]
            record[nd] = pos
            order[pos] = nd
            pos += 1
            if info[nd] & _PACKED_LEAF == 0:
                stack[sp] = left[nd] + 1  # popped after the whole left subtree
                stack[sp + 1] = left[nd]
                sp += 2
    # where a walk ends: leaves, and splits that need the full rule
    stop = np.zeros(n, np.bool_)
    for nd in range(n):
        w = np.uint32(info[nd])
        if w & _PACKED_LEAF or w & _SLOW:
            stop[nd] = True
        elif w & _CAT:
            c = cat[nd]
            for word in range(cat_bounds[c] + 2, cat_bounds[c + 1]):
                if cat_words[word] != 0:
                    stop[nd] = True
    nodes = np.zeros(pos + 1, ROW_RECORD)
    cat_rec = np.full(pos + 1, -1, np.int32)
    packed = np.full(pos + 1, -1, np.int32)
    tree = 0
    for i in range(pos):
        nd = order[i]
        if tree + 1 < n_trees and nd == roots[tree + 1]:
            tree += 1
        packed[i] = nd
        cat_rec[i] = cat[nd]
        w = np.uint32(info[nd])
        if w & _PACKED_LEAF:
            nodes[i].info = LEAF_INFO
            nodes[i].right = tree
            nodes[i].thr = leaf_value[nd]  # exact: float32 values widen to float64 exactly
            continue
        nodes[i].thr = threshold[nd]
        if w & _CAT:
            c = cat[nd]
            bits = np.uint64(0)
            for j in range(min(2, cat_bounds[c + 1] - cat_bounds[c])):
                bits |= np.uint64(cat_words[cat_bounds[c] + j]) << np.uint64(32 * j)
            nodes[i].bits = bits
            if rule == RULE_LIGHTGBM:
                w |= _INVERT
        lc = left[nd]
        if stop[lc]:
            w |= _STOP_LEFT
        if stop[lc + 1]:
            w |= _STOP_RIGHT
        nodes[i].info = w
        nodes[i].right = record[lc + 1]
    nodes[pos].info = LEAF_INFO  # the dummy: never stepped from
    nodes[pos].right = n_trees
    starts = np.full(n_trees + LANES + 1, pos, np.uint32)
    stop_roots = np.empty(n_trees, np.uint32)
    n_starts = 0
    n_stop = 0
    for t in range(n_trees):
        if stop[roots[t]]:
            stop_roots[n_stop] = record[roots[t]]
            n_stop += 1
        else:
            starts[n_starts] = record[roots[t]]
            n_starts += 1
    return nodes, cat_rec, packed, starts, n_starts, stop_roots[:n_stop]


@njit(inline="always", cache=True)
def _walk_row(x, nodes, starts, n_starts, rule, dtype_like, n_trees):
    """Read the row ``x`` (float64, n_features) as the source library reads it (in
    ``dtype_like``'s precision: float32 for XGBoost; LightGBM's tiny values made 0.0) and walk
    the lanes. Returns the row as read and the nodes where the walks ended (``n_starts``)."""
    nf = x.shape[0]
    xd = np.empty(nf, dtype_like.dtype)
    xd[:] = x
    xr = np.empty(nf, np.float64)
    cm = np.zeros(nf, np.uint64)
    nan = False
    for j in range(nf):
        v = np.float64(xd[j])
        if rule == RULE_LIGHTGBM and abs(v) <= LIGHTGBM_ZERO_THRESHOLD:
            v = 0.0
        xr[j] = v
        nan |= v != v
        # the row's category bit for the splits whose bitsets fit in 64 bits; 0 for a value
        # that is in no such set: LightGBM sends those right, XGBoost left, as the bitset
        # answer "not in the set" does
        if v == v and v >= 0.0 and v < 64.0:
            cm[j] = np.uint64(1) << np.uint64(np.int64(v))
        elif rule == RULE_LIGHTGBM and v > -1.0 and v < 0.0:
            cm[j] = np.uint64(1)  # (-1, 0) truncates to category 0
    done = np.empty(n_trees + LANES + 1, np.uint32)
    if nan:
        _lanes(nodes, xr, cm, starts, n_starts, done, True)
    else:
        _lanes(nodes, xr, cm, starts, n_starts, done, False)
    return xr, done


@njit(nogil=True, cache=True)
def leaf_records(x, nodes, cat, cat_bounds, cat_words, starts, n_starts, stop_roots, rule,
                 dtype_like, out):
    """The leaf record each tree sends the row ``x`` (float64, n_features) to, into ``out``
    (n_trees,). The row is read in ``dtype_like``'s precision (the model's)."""
    xr, done = _walk_row(x, nodes, starts, n_starts, rule, dtype_like, out.shape[0])
    for i in range(n_starts + stop_roots.shape[0]):
        nd = done[i] if i < n_starts else stop_roots[i - n_starts]
        while nodes[nd].info != LEAF_INFO:
            # a split the lanes stop at: the full rule, then on to the leaf alone (rare)
            w = nodes[nd].info
            right = _go_right_slow(xr[w & _MASK], nodes[nd].thr, np.int32(w >> FEATURE_BITS),
                                   cat[nd], cat_bounds, cat_words, rule)
            nd = nodes[nd].right if right else nd + _U1
        out[nodes[nd].right] = nd
    return out


@njit(nogil=True, cache=True)
def margin_row_lanes(x, nodes, cat, cat_bounds, cat_words, starts, n_starts, stop_roots, groups,
                     rule, base_margin):
    """Margins of the single row ``x`` as a new float64 array (n_groups,): ``base_margin`` plus
    every tree's leaf value, added in model order in ``base_margin``'s dtype (the source's
    precision), as the batch kernels add them."""
    n_trees = groups.shape[0]
    xr, done = _walk_row(x, nodes, starts, n_starts, rule, base_margin, n_trees)
    # each tree's value in its slot (the leaf record holds value and tree), then the sum in order
    value = np.empty(n_trees, base_margin.dtype)
    for i in range(n_starts + stop_roots.shape[0]):
        nd = done[i] if i < n_starts else stop_roots[i - n_starts]
        while nodes[nd].info != LEAF_INFO:
            # as in leaf_records, written out: the loop as a shared inlined helper taking the
            # arrays made a LightGBM 800x63 row 3x slower (14 -> 42 us; Numba refcounts them)
            w = nodes[nd].info
            right = _go_right_slow(xr[w & _MASK], nodes[nd].thr, np.int32(w >> FEATURE_BITS),
                                   cat[nd], cat_bounds, cat_words, rule)
            nd = nodes[nd].right if right else nd + _U1
        value[nodes[nd].right] = nodes[nd].thr
    acc = base_margin.copy()
    if acc.shape[0] == 1:
        # one output: a scalar sum (an array element would be stored and reloaded each time)
        s = acc[0]
        for t in range(n_trees):
            s += value[t]
        acc[0] = s
    else:
        for t in range(n_trees):
            acc[groups[t]] += value[t]
    return acc.astype(np.float64)


__all__ = ["LANES", "ROW_RECORD", "LEAF_INFO", "build_row_layout", "leaf_records",
           "margin_row_lanes"]
