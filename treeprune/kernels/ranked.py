"""One row through every tree on rank-coded nodes: the fastest single-row kernel.

Before the walk, each feature value of the row is turned once into small integers (the row's
*slots*), so that every split of the model, whatever its kind, is decided by one integer
comparison ``slot value >= rank``:

* a numerical feature's value becomes its rank among the feature's distinct thresholds (how many
  of them it reaches), and a split stores the rank of its own threshold. The rank is found in
  equal-width buckets over the feature's thresholds: the value's bucket gives the thresholds
  below it, and a binary search of a few steps the rest of its bucket's (a 120-feature row:
  0.8 us against 1.3 us for a binary search over all the thresholds). The
  rank is written four times, in one slot per way of treating a missing value: NaN goes left
  (rank 0) or right (``RANK_RIGHT``, above every node's rank), and LightGBM's zero-as-missing
  (0.0 and NaN go left, or right). A split names the slot of its own rule, so NaN, LightGBM's
  missing types and its ``<=`` at the largest double need no work in the walk at all.
* a categorical split gets a slot of its own that holds its answer (0 or 1, rank 1). The answers
  depend only on the row's category, so they are tabled per categorical feature when the layout
  is built (by the same rule as every other kernel, ``treeprune.kernels.device.go_right``), and
  a row copies its category's line of the table.

A node is then one 8-byte record (slot 15 bits, rank 15, two bits saying whether the left or
the right child is a leaf, which ends the walk, and the distance to the right child), leaves are
not records at all, and the splits are laid out depth first per tree so that the left child is
the next record: an 800-tree, 63-leaf model's splits take 400 KB instead of 1.6 MB (with its
leaves) and stay in the L2 cache. The walk is :mod:`treeprune.kernels.lanes`'s: ``LANES`` trees
in flight, a branch-free step, a lane refilled with the next tree when its walk ends. A lane
carries its tree with its record and writes the *code* of each step (``2 * record +
direction``) to its tree's slot, so that the last write is where the walk ended; a table indexed
by code gives the leaf's value. Leaf values are added in model order, in the model's precision,
so the margins are the batch kernels' margins bit for bit.

Measured on one row of an 800-tree, 63-leaf LightGBM model with categorical splits (about 3,400
node visits), called from Python: about 9.3 us against 15 us for the 16-byte lanes. Tried and
left out, measured on the same model: 4, 12 or 16 lanes instead of 8 (no difference), a sweep
over every tree's first levels before the lanes (no gain at one level, slower at two), and codes
written in the order walks end with a table from record to tree (10.1 us against 8.2 in a loop).

The layout has limits (32,765 distinct thresholds per feature, 32,768 slots, 2**31 records, a
bounded categorical table); :func:`build_ranked` returns None for a model past them, which then
keeps the kernels of :mod:`treeprune.kernels.lanes` and :mod:`treeprune.kernels.traverse`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .._rules import (
    FEATURE_BITS,
    FEATURE_MASK,
    FLAG_CATEGORICAL,
    FLAG_DEFAULT_LEFT,
    FLAG_EXACT_LE,
    FLAG_LEAF,
    FLAG_MISSING_ZERO,
    FLAG_NAN_RIGHT,
    LIGHTGBM_ZERO_THRESHOLD,
    RULE_LIGHTGBM,
    RULE_XGBOOST,
    XGBOOST_MAX_CATEGORY,
)
from .traverse import _go_right_slow

#: Trees walked at once.
LANES = 8
#: The slot value of a missing value that goes right: above every split's rank.
RANK_RIGHT = 0x7FFF
#: Distinct thresholds a feature may have (split ranks go up to this + 1, below RANK_RIGHT).
MAX_THRESHOLDS = RANK_RIGHT - 2
#: Slots a row may have (a record holds the slot in 15 bits).
MAX_SLOTS = 1 << 15
#: Records a model may have (codes ``2 * record + 1`` are uint32).
MAX_RECORDS = (1 << 31) - 1
#: Entries of the categorical tables, all features together (2 bytes each).
MAX_TABLE = 1 << 24

#: ``meta`` header: where each part of the layout is (see :func:`build_ranked`).
_M_RULE, _M_RECORDS, _M_TREES, _M_SLOTS, _M_NUM_N, _M_CAT_N, _M_STEPS, _M_BUCKETS = range(8)
_M_NUM, _M_CAT, _M_STARTS, _M_GROUPS, _M_GROUPS_N = range(8, 13)
#: Entries per numerical feature in ``meta``: feature, first threshold, search steps, count,
#: first bucket.
_NUM_WIDTH = 5
#: Buckets of a feature: at most twice its thresholds (rounded up to a power of two) and this.
MAX_BUCKETS = 1 << 12
_HEADER = 16
#: Words before the records in the layout's buffer: where meta, fvals, the leaf values and
#: cattab start.
_PARTS = 4

_U0 = np.uint32(0)
_U1 = np.uint32(1)
_U2 = np.uint32(2)
_U64_1 = np.uint64(1)
_U32 = np.uint64(32)
_SLOT = np.uint32(0x7FFF)
_U15 = np.uint32(15)
_STOP = np.uint32(30)
_LOW = np.uint64(0xFFFFFFFF)
_PACKED_LEAF = np.int32(FLAG_LEAF << FEATURE_BITS)


@njit(inline="always", cache=True)
def _step(nodes, rb, state):
    """(how far on the next record is, whether the walk ends, code of the child taken) for the
    lane in ``state`` (its tree above bit 32, its record below): one integer comparison, the
    child chosen without a branch (the right child's distance is read before the choice: a
    load under a condition becomes a branch)."""
    nd = np.uint32(state & _LOW)
    rec = nodes[nd]
    low = np.uint32(rec & _LOW)
    go = np.uint32(np.uint32(rb[low & _SLOT]) >= ((low >> _U15) & _SLOT))
    step = np.uint32(rec >> _U32) if go != _U0 else _U1
    end = (low >> (_STOP + go)) & _U1
    return np.uint64(step), end, nd * _U2 + go


@njit(nogil=True, cache=True)
def _lanes(nodes, rb, starts, n_starts, done):
    """Walk every tree from ``starts[:n_starts]`` (tree << 32 | root record; padded with
    ``LANES + 1`` copies of a dummy) until its walk ends, each tree's code into ``done[tree]``.
    """
    n = np.uint32(n_starts)
    cnt = np.uint32(0)
    # the lanes' state as scalars (registers), each lane's step written out
    s0 = np.uint64(starts[0])
    s1 = np.uint64(starts[1])
    s2 = np.uint64(starts[2])
    s3 = np.uint64(starts[3])
    s4 = np.uint64(starts[4])
    s5 = np.uint64(starts[5])
    s6 = np.uint64(starts[6])
    s7 = np.uint64(starts[7])
    k = np.uint32(LANES)
    # 0, though the compiler cannot know it: or-ed into the next start, it keeps that load out
    # of the choice below, which the compiler would otherwise turn into a branch (it does so
    # for a choice of a value straight from memory), mispredicted at every walk's end (a
    # 63-leaf LightGBM model's row took 14 us instead of 8)
    zero = np.uint64(n_starts) >> np.uint64(63)
    if n > k:
        last = n - k
        # a lane writes the code of its step to its tree's slot at every step (the last write,
        # where the walk ends, stays), and reads the next start at every step (a load under a
        # condition becomes a branch), taken only when its walk ends
        while cnt < last:
            nx, end, code = _step(nodes, rb, s0)
            done[s0 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s0 = nt if end != _U0 else s0 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s1)
            done[s1 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s1 = nt if end != _U0 else s1 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s2)
            done[s2 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s2 = nt if end != _U0 else s2 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s3)
            done[s3 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s3 = nt if end != _U0 else s3 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s4)
            done[s4 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s4 = nt if end != _U0 else s4 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s5)
            done[s5 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s5 = nt if end != _U0 else s5 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s6)
            done[s6 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s6 = nt if end != _U0 else s6 + nx
            cnt += end
            nx, end, code = _step(nodes, rb, s7)
            done[s7 >> _U32] = code
            nt = np.uint64(starts[cnt + k]) | zero
            s7 = nt if end != _U0 else s7 + nx
            cnt += end
    # the last walks, each alone (lanes past the last start hold the dummy)
    dummy = np.uint64(starts[n])
    for state in (s0, s1, s2, s3, s4, s5, s6, s7):
        if state != dummy:
            while True:
                nx, end, code = _step(nodes, rb, state)
                if end != _U0:
                    break
                state += nx
            done[state >> _U32] = code


@njit(inline="always", cache=True)
def _read(v, rule):
    """A feature value as the source library reads it: float32 for XGBoost; LightGBM's tiny
    values made 0.0 (its dense-row reader does this before any split sees the value)."""
    if rule == RULE_XGBOOST:
        return np.float64(np.float32(v))
    if abs(v) <= LIGHTGBM_ZERO_THRESHOLD:
        return 0.0
    return v


@njit(inline="always", cache=True)
def _bucket(v, lo, scale, top):
    """The bucket of the value ``v`` among a feature's equal-width buckets from ``lo`` (``scale``
    buckets per unit, ``top`` the last one): non-decreasing in ``v``, so a threshold in a lower
    bucket is below ``v`` and one in a higher bucket above it; NaN in bucket 0."""
    u = (v - lo) * scale
    u = 0.0 if u != u else u
    return np.uint64(min(max(u, 0.0), top))


@njit(inline="always", cache=True)
def quantize(x, meta, fvals, cattab, n_extra):
    """The row ``x`` (float64, n_features) as slot values (uint16, one per slot of the layout
    ``meta``), and ``n_extra`` more scratch words (uint64) from the same allocation for the
    walk that follows (each allocation costs tens of ns)."""
    rule = meta[_M_RULE]
    n_num = meta[_M_NUM_N]
    a = 3 * n_num
    b = a + (meta[_M_SLOTS] + 3) // 4
    scratch = np.empty(b + n_extra, np.uint64)
    v = scratch[:n_num].view(np.float64)
    pos = scratch[n_num:2 * n_num]
    size = scratch[2 * n_num:a]  # in local arrays: reading meta here made this 7x slower
    rb = scratch[a:b].view(np.uint16)
    buckets = cattab[meta[_M_BUCKETS]:]
    # numerical features: the rank of the value among the feature's thresholds, in four slots.
    # The value's bucket gives how many thresholds are below it and a window of the next
    # 2**K - 1 (K small: a bucket holds few thresholds; those past the bucket are above the
    # value); a binary search in the windows, all the features a step at a time: their loads
    # are independent, so the CPU overlaps them
    base = meta[_M_NUM]
    for i in range(n_num):
        q = base + _NUM_WIDTH * i
        vi = _read(x[meta[q]], rule)
        v[i] = vi
        bk = _bucket(vi, fvals[3 * i], fvals[3 * i + 1], fvals[3 * i + 2])
        pos[i] = np.uint64(meta[q + 1]) + np.uint64(buckets[np.uint64(meta[q + 4]) + bk])
        size[i] = _U64_1 << np.uint64(meta[q + 2])
    for step in range(meta[_M_STEPS]):
        shift = np.uint64(step + 1)
        for i in range(n_num):
            half = size[i] >> shift
            p = pos[i]
            # a finished search (half 0) reads one below its position: in bounds, unused
            pos[i] = p + half * np.uint64(fvals[p + half - _U64_1] <= v[i])
    for i in range(n_num):
        s = 4 * i
        q = base + _NUM_WIDTH * i
        if v[i] != v[i]:
            rb[s] = 0
            rb[s + 1] = RANK_RIGHT
            rb[s + 2] = 0
            rb[s + 3] = RANK_RIGHT
            continue
        # +inf also passes the padding: at most every threshold
        r = min(pos[i] - np.uint64(meta[q + 1]), np.uint64(meta[q + 3]))
        rb[s] = r
        rb[s + 1] = r
        # LightGBM's zero-as-missing: 0.0 (and NaN, above) take the split's default side
        rb[s + 2] = 0 if v[i] == 0.0 else r
        rb[s + 3] = RANK_RIGHT if v[i] == 0.0 else r
    # categorical features: the line of the row's category in the feature's table of answers
    base = meta[_M_CAT]
    for j in range(meta[_M_CAT_N]):
        q = base + 5 * j
        v = _read(x[meta[q]], rule)
        n_cat = meta[q + 4]
        c = n_cat + 1  # NaN's line
        if v == v:
            c = n_cat  # the line of every value that is no category in any bitset
            if rule == RULE_XGBOOST:
                if v >= 0 and v < XGBOOST_MAX_CATEGORY:
                    c = min(int(v), n_cat)
            elif v > -2147483649.0 and v < 2147483648.0:
                code = int(v)  # truncation toward zero, as LightGBM's static_cast<int>
                if code >= 0:
                    c = min(code, n_cat)
        s = np.uint64(meta[q + 1])
        src = np.uint64(meta[q + 3] + c * meta[q + 2])
        # an index loop (unsigned: no wraparound test) is vectorized; a slice copy took 15x as long
        for k in range(np.uint64(meta[q + 2])):
            rb[s + k] = cattab[src + k]
    return rb, scratch[b:]


@njit(cache=True)
def row_slots(x, buf):
    """The slot values (uint16, a copy) of the row ``x`` (float64, n_features) by the layout
    ``buf`` (:func:`assemble`'s): what the walk compares, for checks of :func:`quantize`."""
    nodes, meta, fvals, cattab = _parts(buf)
    rb, _ = quantize(x, meta, fvals, cattab, 0)
    return rb.copy()


@njit(nogil=True, cache=True)
def _walk(x, nodes, meta, fvals, cattab):
    """The row ``x`` (float64, n_features) through every tree: the code where each tree's walk
    ends, per tree."""
    n_trees = meta[_M_TREES]
    rb, extra = quantize(x, meta, fvals, cattab, (n_trees + 1) // 2)
    done = extra.view(np.uint32)
    starts = meta[meta[_M_STARTS]:meta[_M_STARTS] + n_trees + LANES + 1]
    _lanes(nodes, rb, starts, n_trees, done)
    return done


@njit(inline="always", cache=True)
def _parts(buf):
    """The layout's parts, views of the one buffer (one array argument instead of four: each
    costs a call from Python about 0.1 us)."""
    nodes = buf[_PARTS:buf[0]]
    meta = buf[buf[0]:buf[1]].view(np.int64)
    fvals = buf[buf[1]:buf[2]].view(np.float64)
    cattab = buf[buf[3]:].view(np.uint16)
    return nodes, meta, fvals, cattab


@njit(inline="always", cache=True)
def _margins(x, buf, dtype_like):
    """Margins of the single row ``x`` (float64, n_features) as a new float64 array
    (n_groups,): the base margin plus every tree's leaf value, added in model order in
    ``dtype_like``'s dtype (the model's: float32 for XGBoost), as the batch kernels add
    them."""
    nodes, meta, fvals, cattab = _parts(buf)
    done = _walk(x, nodes, meta, fvals, cattab)
    return _margin_array(buf[buf[2]:buf[3]].view(dtype_like.dtype), done, meta)


@njit(inline="always", cache=True)
def _margin_array(values, done, meta):
    """A row's margins as a new float64 array (n_groups,): ``values[:n_groups]`` (the base
    margins) plus each tree's leaf value ``values[n_groups + done[t]]``, added in model order in
    ``values``' dtype. Shared by the rank-coded and chained single-row kernels."""
    n_groups = meta[_M_GROUPS_N]
    out = np.empty(n_groups, np.float64)
    if n_groups == 1:
        out[0] = _sum_one(values, done, meta[_M_TREES])
        return out
    acc = values[:n_groups].copy()
    _add_leaves(acc, values[n_groups:], done, meta)
    out[:] = acc
    return out


@njit(inline="always", cache=True)
def _add_leaves(acc, vals, done, meta):
    """Add each tree's leaf value ``vals[done[t]]`` into ``acc`` (n_groups,: the base margins,
    or a row of a batch's margins holding them), in model order in ``acc``'s dtype, as the batch
    kernels add them: the one accumulation of the single-row and row-at-a-time kernels."""
    n_trees = meta[_M_TREES]
    if acc.shape[0] == 1:
        acc[0] = _sum_from(acc[0], vals, done, n_trees)
        return
    groups = meta[meta[_M_GROUPS]:]
    for t in range(n_trees):
        acc[groups[t]] += vals[done[t]]


@njit(inline="always", cache=True)
def _sum_from(s, vals, done, n_trees):
    """``s`` plus each tree's leaf value ``vals[done[t]]``, added in model order in ``s``'
    dtype. A scalar sum: an array element would be stored and reloaded each time."""
    for t in range(n_trees):
        s += vals[done[t]]
    return s


@njit(inline="always", cache=True)
def _sum_one(values, done, n_trees):
    """A one-output model's margin: ``values[0]`` (the base margin) plus each tree's leaf value
    (``values[1 + code]``), added in model order in ``values``' dtype, as a float64."""
    return np.float64(_sum_from(values[0], values[1:], done, n_trees))


@njit(inline="always", cache=True)
def _margin_one(x, buf, dtype_like):
    """:func:`_margins` of a one-output model as a float64 number."""
    nodes, meta, fvals, cattab = _parts(buf)
    done = _walk(x, nodes, meta, fvals, cattab)
    return _sum_one(buf[buf[2]:buf[3]].view(dtype_like.dtype), done, meta[_M_TREES])


_AS32 = np.zeros(1, np.float32)
_AS64 = np.zeros(1, np.float64)


@njit(nogil=True, cache=True)
def margin_row_ranked32(x, buf):
    """Margins (float64, n_groups) of the row ``x`` (float64) by a float32 model's layout
    ``buf`` (:func:`build_ranked`). One entry point per precision: the dtype is fixed at
    compile time and the call from Python takes two arrays (each costs about 0.1 us)."""
    return _margins(x, buf, _AS32)


@njit(nogil=True, cache=True)
def margin_row_ranked64(x, buf):
    """As :func:`margin_row_ranked32`, for a float64 (LightGBM) model."""
    return _margins(x, buf, _AS64)


def ranked_margin_kernel(dtype: type) -> object:
    """The margin kernel for a model of ``dtype`` (float32 or float64): ``kernel(x, buf)``."""
    return margin_row_ranked32 if np.dtype(dtype) == np.float32 else margin_row_ranked64


@njit(nogil=True, cache=True)
def margin_one_ranked32(x, buf):
    """The margin of the row ``x`` (float64) by a one-output float32 model's layout ``buf``, as
    a float64 number: the same value as :func:`margin_row_ranked32`'s one element, and a
    number costs far less to hand back to Python than a new array (about 0.4 us less)."""
    return _margin_one(x, buf, _AS32)


@njit(nogil=True, cache=True)
def margin_one_ranked64(x, buf):
    """As :func:`margin_one_ranked32`, for a float64 (LightGBM) model."""
    return _margin_one(x, buf, _AS64)


def ranked_margin_one_kernel(dtype: type) -> object:
    """The one-output margin kernel for a model of ``dtype``: ``kernel(x, buf)`` -> float."""
    return margin_one_ranked32 if np.dtype(dtype) == np.float32 else margin_one_ranked64


@njit(nogil=True, cache=True)
def leaves_row_ranked(x, buf, code_leaf, out):
    """The packed leaf each tree sends the row ``x`` (float64, n_features) to, into ``out``
    (n_trees,); ``code_leaf`` maps a code to its packed leaf (:func:`build_ranked`)."""
    nodes, meta, fvals, cattab = _parts(buf)
    done = _walk(x, nodes, meta, fvals, cattab)
    for t in range(meta[_M_TREES]):
        out[t] = code_leaf[done[t]]
    return out


@njit(cache=True)
def _cat_table(nodes, threshold, info, cat, cat_bounds, cat_words, rule, n_cat, out):
    """The answers (1: right) of the categorical splits ``nodes`` of one feature to each
    category below ``n_cat``, to every other value (line ``n_cat``) and to NaN (line
    ``n_cat + 1``), by the full rule, into ``out`` (n_cat + 2, len(nodes))."""
    for c in range(n_cat + 2):
        # -1.0 stands for every value that is no category (both libraries answer alike)
        v = np.float64(c) if c < n_cat else (-1.0 if c == n_cat else np.nan)
        for k in range(nodes.shape[0]):
            nd = nodes[k]
            out[c, k] = _go_right_slow(v, threshold[nd], np.int32(info[nd] >> FEATURE_BITS),
                                       cat[nd], cat_bounds, cat_words, rule)
    return out


@njit(inline="always", cache=True)
def splits_depth_first(root, info, left, stack, order, pos):
    """Write the splits of the tree at ``root`` into ``order`` from ``pos``, depth first with
    the left child next when it is a split (a single-leaf tree: its root); return the end.
    ``stack`` needs room for the tree's splits plus two."""
    stack[0] = root
    sp = 1
    while sp > 0:
        sp -= 1
        nd = stack[sp]
        order[pos] = nd
        pos += 1
        if info[nd] & _PACKED_LEAF:
            continue  # a single-leaf tree's root
        lc = left[nd]
        if info[lc + 1] & _PACKED_LEAF == 0:
            stack[sp] = lc + 1  # popped after the whole left subtree
            sp += 1
        if info[lc] & _PACKED_LEAF == 0:
            stack[sp] = lc
            sp += 1
    return pos


@njit(cache=True)
def _records(roots, info, left, slot, rank, leaf_value):
    """Splits depth first per tree, left child next: the 8-byte records (plus a dummy), each
    tree's start (tree << 32 | root record; padded with the dummy) and per code (``2 * record +
    direction``) the leaf's value and packed id. A tree that is a single leaf gets a record
    that always goes right (slot 0, rank 0) onto that leaf."""
    n = info.shape[0]
    n_trees = roots.shape[0]
    record = np.full(n, -1, np.int64)
    order = np.empty(n + n_trees, np.int64)
    stack = np.empty(n + 2, np.int64)
    pos = 0
    for t in range(n_trees):
        end = splits_depth_first(roots[t], info, left, stack, order, pos)
        for k in range(pos, end):
            record[order[k]] = k
        pos = end
    nodes = np.zeros(pos + 1, np.uint64)
    code_value = np.zeros(2 * pos, leaf_value.dtype)
    code_leaf = np.full(2 * pos, -1, np.int32)
    for i in range(pos):
        nd = order[i]
        if info[nd] & _PACKED_LEAF:
            nodes[i] = np.uint64(1) << np.uint64(31)
            code_value[2 * i + 1] = leaf_value[nd]
            code_leaf[2 * i + 1] = nd
            continue
        lc = left[nd]
        rec = np.uint64(slot[nd]) | (np.uint64(rank[nd]) << np.uint64(15))
        if info[lc + 1] & _PACKED_LEAF == 0:
            rec |= np.uint64(record[lc + 1] - i) << _U32
        for d in range(2):
            child = lc + d
            if info[child] & _PACKED_LEAF:
                rec |= np.uint64(1) << np.uint64(30 + d)
                code_value[2 * i + d] = leaf_value[child]  # float32 values widen exactly
                code_leaf[2 * i + d] = child
        nodes[i] = rec
    starts = np.full(n_trees + LANES + 1, (n_trees << 32) | pos, np.int64)
    for t in range(n_trees):
        starts[t] = (t << 32) | record[roots[t]]
    return nodes, starts, code_value, code_leaf


@dataclass(frozen=True)
class RankCode:
    """Every split of a model as one integer comparison ``slot value >= rank`` (module
    docstring), and the tables that turn a row into its slot values (:func:`quantize`)."""

    slot: np.ndarray  # int64 per node: the slot the split reads (0 on leaves)
    rank: np.ndarray  # int64 per node: the rank the slot value must reach to go right
    num_meta: np.ndarray  # int64 (n_num, 5): feature, first threshold, steps, count, bucket
    cat_meta: np.ndarray  # int64 (n_cat, 5): feature, first slot, splits, table start, categories
    padded: np.ndarray  # float64: per feature (lo, scale, top) of its buckets, then its
    #                     thresholds, each feature's followed by 2**K - 1 +inf
    cattab: np.ndarray  # uint16: the categorical answers
    buckets: np.ndarray  # uint16: per feature and bucket, the thresholds in lower buckets
    n_slots: int
    steps: int  # the most binary-search steps of a feature


def rank_code(info, threshold, cat, cat_bounds, cat_words, rule) -> RankCode | None:
    """The rank coding of a packed model's splits (``treeprune.packed``), or None where the
    model is past its limits (thresholds per feature, slots, categorical table)."""
    flags = info >> FEATURE_BITS
    split = (flags & FLAG_LEAF) == 0
    is_cat = split & ((flags & FLAG_CATEGORICAL) != 0)
    num = split & ~is_cat
    feature = (info & FEATURE_MASK).astype(np.int64)
    n = len(info)
    # numerical splits: the value a feature must reach to go right (``x >= t``); LightGBM's
    # ``x <= t`` kept as is (t the largest double, or +inf) is ``x > t``: the next double up,
    # and for t = +inf no value at all (ranked above every threshold)
    t = threshold.astype(np.float64)
    never = np.zeros(n, bool)
    if rule == RULE_LIGHTGBM:
        exact = num & ((flags & FLAG_EXACT_LE) != 0)
        never = exact & (t == np.inf)
        with np.errstate(over="ignore"):  # the largest double's next is +inf, as meant
            t = np.where(exact & ~never, np.nextafter(t, np.inf), t)
    if np.isnan(t[num]).any():
        return None
    num_features = np.unique(feature[num])
    ranked = np.flatnonzero(num & ~never)
    o = np.lexsort((t[ranked], feature[ranked]))
    fs, ts = feature[ranked][o], t[ranked][o]
    new = np.ones(len(o), bool)
    new[1:] = (fs[1:] != fs[:-1]) | (ts[1:] != ts[:-1])
    uf, ut = fs[new], ts[new]  # distinct (feature, threshold), sorted
    lo = np.searchsorted(uf, num_features, "left")
    hi = np.searchsorted(uf, num_features, "right")
    if len(num_features) and int((hi - lo).max()) > MAX_THRESHOLDS:
        return None
    rank = np.zeros(n, np.int64)
    uid = np.cumsum(new) - 1
    rank[ranked[o]] = uid - lo[np.searchsorted(num_features, uf[uid])] + 1
    fi = np.searchsorted(num_features, feature)
    rank[never] = (hi - lo)[fi[never]] + 1
    if rule == RULE_LIGHTGBM:
        zero = (flags & FLAG_MISSING_ZERO) != 0
        variant = np.where(zero, 2 + ((flags & FLAG_DEFAULT_LEFT) == 0),
                           (flags & FLAG_NAN_RIGHT) != 0)
    else:
        variant = ((flags & FLAG_NAN_RIGHT) != 0).astype(np.int64)
    slot = np.zeros(n, np.int64)
    slot[num] = 4 * fi[num] + variant[num]
    # categorical splits: a slot each, holding the split's answer for the row's category
    cat_nodes = np.flatnonzero(is_cat)
    cat_nodes = cat_nodes[np.argsort(feature[cat_nodes], kind="stable")]
    cat_features, first = np.unique(feature[cat_nodes], return_index=True)
    bounds = np.append(first, len(cat_nodes))
    n_slots = 4 * len(num_features)
    cat_meta = np.zeros((len(cat_features), 5), np.int64)
    tables = []
    size = 0
    for j, f in enumerate(cat_features):
        nodes_f = cat_nodes[bounds[j]:bounds[j + 1]]
        n_cat = 32 * int(np.diff(cat_bounds)[cat[nodes_f]].max())
        size += (n_cat + 2) * len(nodes_f)
        if size > MAX_TABLE:
            return None
        cat_meta[j] = (f, n_slots, len(nodes_f), size - (n_cat + 2) * len(nodes_f), n_cat)
        slot[nodes_f] = n_slots + np.arange(len(nodes_f))
        rank[nodes_f] = 1
        n_slots += len(nodes_f)
        tables.append(_cat_table(nodes_f, threshold, info, cat, cat_bounds, cat_words, rule,
                                 n_cat, np.empty((n_cat + 2, len(nodes_f)), np.uint16)).ravel())
    if n_slots > MAX_SLOTS:
        return None
    cattab = np.concatenate(tables) if tables else np.zeros(1, np.uint16)
    params, buckets, bucket_first, steps, first, padded = _bucket_tables(ut, lo, hi)
    num_meta = np.stack([num_features, first, steps, hi - lo, bucket_first], axis=1)
    return RankCode(slot, rank, num_meta.reshape(-1, _NUM_WIDTH).astype(np.int64), cat_meta,
                    np.concatenate([params.ravel(), padded]), cattab, buckets, n_slots,
                    int(steps.max()) if len(steps) else 0)


def _bucket_tables(ut, lo, hi):
    """Per feature (its distinct thresholds ``ut[lo[f]:hi[f]]``, sorted): ``(lo, scale, top)`` of
    its equal-width buckets between its least and largest thresholds (:func:`_bucket`; one
    bucket where the span is not finite), how many thresholds lie in lower buckets per bucket,
    and the binary-search steps K of the fullest bucket. Returns ``(params (n, 3), buckets
    (uint16), first bucket per feature, K per feature, first threshold per feature (after the
    params), thresholds)``. The buckets are computed here with the kernels' arithmetic, in
    numpy (the same IEEE operations, element by element)."""
    n = len(lo)
    params = np.zeros((n, 3))
    tables, thresholds = [], []
    bucket_first = np.zeros(n, np.int64)
    steps = np.zeros(n, np.int64)
    first = np.zeros(n, np.int64)
    n_buckets = at = 0
    for f in range(n):
        t = ut[lo[f]:hi[f]]
        count = len(t)
        least = t[0] if count else 0.0
        wanted = min(2 * (1 << int(count).bit_length()), MAX_BUCKETS)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            scale = wanted / (t[-1] - least) if count else 0.0
        if not (np.isfinite(scale) and scale > 0):
            wanted, scale = 1, 0.0  # one bucket (no thresholds, one, or an infinite span)
        top = float(wanted - 1)
        with np.errstate(over="ignore", invalid="ignore"):
            u = (t - least) * scale
        u = np.minimum(np.maximum(np.where(np.isnan(u), 0.0, u), 0.0), top).astype(np.uint64)
        below = np.searchsorted(u, np.arange(wanted, dtype=np.uint64), "left")
        k = int(np.diff(np.append(below, count)).max()).bit_length()
        params[f] = (least, scale, top)
        bucket_first[f], steps[f], first[f] = n_buckets, k, at
        tables.append(below.astype(np.uint16))
        thresholds.append(np.concatenate([t, np.full((1 << k) - 1, np.inf)]))
        n_buckets += wanted
        at += count + (1 << k) - 1
    padded = np.concatenate(thresholds) if thresholds else np.zeros(0)
    buckets = np.concatenate(tables) if tables else np.zeros(0, np.uint16)
    return params, buckets, bucket_first, steps, first + 3 * n, padded


def assemble(code: RankCode, rule, nodes, n_records, n_trees, starts, groups, base_margin,
             code_value, extra=()) -> np.ndarray:
    """One buffer (uint64) with where its parts end, then the records ``nodes``, ``meta``
    (int64: a header (``_M_*``, ``extra`` pairs of (index, value) filling its free entries),
    per numerical and per categorical feature :class:`RankCode`'s tables, the ``starts`` and
    the trees' ``groups``), ``fvals`` (float64: the buckets' parameters and the padded
    thresholds), the values in the model's dtype (``base_margin``, then each code's leaf value)
    and ``cattab`` (uint16: the categorical answers, then the buckets' tables)."""
    parts = [code.num_meta.ravel(), code.cat_meta.ravel(), np.asarray(starts, np.int64),
             np.asarray(groups, np.int64)]
    header = np.zeros(_HEADER, np.int64)
    header[:_M_BUCKETS] = (rule, n_records, n_trees, max(code.n_slots, 1), len(code.num_meta),
                           len(code.cat_meta), code.steps)
    header[_M_BUCKETS] = len(code.cattab)
    header[_M_GROUPS_N] = len(base_margin)
    for index, value in extra:
        header[index] = value
    offset = _HEADER
    for index, part in zip((_M_NUM, _M_CAT, _M_STARTS, _M_GROUPS), parts, strict=True):
        header[index] = offset
        offset += len(part)
    meta = np.concatenate([header, *parts])
    values = np.concatenate([np.asarray(base_margin, code_value.dtype), code_value])
    if values.dtype == np.float32:
        values = np.concatenate([values, np.zeros(len(values) % 2, values.dtype)])
    cattab = np.concatenate([code.cattab, code.buckets])
    cattab = np.concatenate([cattab, np.zeros(-len(cattab) % 4, np.uint16)])
    parts = [nodes, meta.view(np.uint64), code.padded.view(np.uint64), values.view(np.uint64)]
    ends = _PARTS + np.cumsum([len(part) for part in parts])
    return np.concatenate([ends.astype(np.uint64), *parts, cattab.view(np.uint64)])


def build_ranked(roots, groups, info, threshold, left, leaf_value, cat, cat_bounds, cat_words,
                 rule, base_margin):
    """The rank-coded layout of a packed model (``treeprune.packed``), or None where the model
    is past the layout's limits.

    Returns ``(buf, code_leaf)``: ``ranked_margin_kernel(dtype)(x, buf)`` gives a row's
    margins (``dtype`` the model's: ``leaf_value``'s), ``code_leaf`` the packed leaf of a code
    (for :func:`leaves_row_ranked`); ``buf`` is :func:`assemble`'s, with the 8-byte records and
    the lanes' starts.
    """
    if np.count_nonzero((info >> FEATURE_BITS & FLAG_LEAF) == 0) + len(roots) > MAX_RECORDS:
        return None
    code = rank_code(info, threshold, cat, cat_bounds, cat_words, rule)
    if code is None:
        return None
    roots = np.ascontiguousarray(roots, dtype=np.int64)
    nodes, starts, code_value, code_leaf = _records(roots, info, left, code.slot, code.rank,
                                                    leaf_value)
    return assemble(code, rule, nodes, len(nodes) - 1, len(roots), starts, groups, base_margin,
                    code_value), code_leaf


__all__ = ["LANES", "MAX_BUCKETS", "RankCode", "assemble", "build_ranked", "quantize", "rank_code",
           "leaves_row_ranked", "margin_one_ranked32", "row_slots",
           "margin_one_ranked64", "margin_row_ranked32", "margin_row_ranked64",
           "ranked_margin_kernel", "ranked_margin_one_kernel"]
