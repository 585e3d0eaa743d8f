"""One row through every tree on chained, fixed-stride records: the fastest single-row kernel.

The row is first turned into small integers, one per *slot*, so that every split is one integer
comparison ``slot value >= rank`` (the rank coding of :mod:`treeprune.kernels.ranked`, which
also handles NaN, LightGBM's missing types and categorical bitsets there, before the walk).

The layout is made so that a step of the walk does as little as possible:

* every tree owns a block of ``2**shift`` records (``shift`` fixed per model: the smallest
  that holds the largest tree's splits and one spare record), its splits depth first from the
  block's start, so the tree a record belongs to is ``record >> shift``: a step writes its code
  (``2 * record + direction``) to ``done[record >> shift]``, and the last write of a tree is
  where its walk ended, with no per-lane tree counter to carry;
* a record (8 bytes) holds the slot, the rank and, per direction, the distance forward to the
  record taken next. A leaf is not a record: the distance of a direction that reaches a leaf
  leads to the *next tree's root* (the next block), so a lane walks a whole run of trees as one
  chain, without any test at the end of a tree (a walk that ends every four steps made the
  end test a mispredicted branch, or a refill computed at every step);
* the trees are cut into contiguous *chunks*, large first and single trees last, handed out in
  order to ``LANES`` lanes that walk at once (the CPU overlaps their loads). The last tree of a
  chunk leads to its block's spare record, which is zero: a lane that reads a zero record takes
  the next chunk (a rarely taken branch), or, when none is left, a record that steps onto
  itself, until every lane is there.

Leaf values are looked up by code after the walk and added in model order, in the model's
precision, so the margins are the batch kernels' margins bit for bit.

Measured on one row of an 800-tree, 63-leaf LightGBM model with categorical splits (about 3,400
node visits), in a loop inside Numba: 7.3 us against 8.8 us for the rank-coded lanes of
:mod:`treeprune.kernels.ranked`, which carry the tree and refill a lane at every step. Tried and
left out: the child chosen by a conditional move (LLVM turns it into a branch: 3x slower),
loading both children's records before the comparison (slower: more loads, no shorter chain),
4, 6 or 10 lanes instead of 8, a fixed number of trees per lane (lanes ran out of work at
different times: 1.2-1.9x the steps).

Limits: the rank coding's, and blocks of at most 2**15 records, in all at most 2**30 records
and at most four times the records the trees need (a model whose trees differ much in size
would waste memory on padding); :func:`build_chained` returns None past them and the model
keeps the rank-coded kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._rules import FEATURE_BITS, FLAG_LEAF
from .ranked import (
    _M_GROUPS_N,
    _M_STARTS,
    _M_TREES,
    _PACKED_LEAF,
    _add_leaves,
    _margin_array,
    _parts,
    _sum_one,
    assemble,
    quantize,
    rank_code,
    splits_depth_first,
)

# ranked's quantize, layout and accumulation helpers are inlined into this module's kernels, and
# Numba's cache of them is keyed on this file alone: a change of the rank-coded layout (or of how
# the leaf values are added up) must come with a change here, or a cached kernel reads the new
# layout the old way (layout: bucketed threshold search; sums: ranked._add_leaves)

#: Trees walked at once.
LANES = 8
#: The most records of a tree's block (distances are 16 bits).
MAX_BLOCK = 1 << 15
#: The most records in all (codes ``2 * record + 1`` are uint32).
MAX_RECORDS = 1 << 30
#: The most padding: all blocks together against the records the trees need.
MAX_PADDING = 4
#: Free ``meta`` header entries (:func:`treeprune.kernels.ranked.assemble`): the block shift,
#: the record every lane starts on (a zero record) and the entries of the chunk table.
_M_SHIFT, _M_START, _M_TAB_N = 13, 14, 15

_Z = np.uint64(0)
_U1 = np.uint64(1)
_U4 = np.uint64(4)
_U16 = np.uint64(16)
_U32 = np.uint64(32)
_M16 = np.uint64(0xFFFF)


@njit(inline="always", cache=True)
def _step(nodes, rb, rec, nd):
    """(next record, code) of the lane at record ``nd`` holding ``rec``: one integer
    comparison, then the distance of the direction taken by a variable shift (no branch)."""
    go = np.uint64(rb[rec & _M16] >= ((rec >> _U16) & _M16))
    kid = (rec >> (_U32 + (go << _U4))) & _M16
    return nd + kid, np.uint32(nd + nd + go)


@njit(nogil=True, cache=True)
def _chains(nodes, rb, tab, done, shift, start):
    """Walk every chunk of ``tab`` (its first record; then one park record per lane) with
    ``LANES`` lanes, each step's code into ``done[record >> shift]``."""
    q = _Z
    n_tab = np.uint64(tab.shape[0])
    sh = np.uint64(shift)
    # the lanes' records as scalars (registers), each lane's step written out; every lane
    # starts on a zero record, so its first step takes a chunk
    n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = np.uint64(start)
    while q < n_tab:
        rec = nodes[n0]
        if rec == _Z:
            n0 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n0]
        nx, code = _step(nodes, rb, rec, n0)
        done[n0 >> sh] = code
        n0 = nx
        rec = nodes[n1]
        if rec == _Z:
            n1 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n1]
        nx, code = _step(nodes, rb, rec, n1)
        done[n1 >> sh] = code
        n1 = nx
        rec = nodes[n2]
        if rec == _Z:
            n2 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n2]
        nx, code = _step(nodes, rb, rec, n2)
        done[n2 >> sh] = code
        n2 = nx
        rec = nodes[n3]
        if rec == _Z:
            n3 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n3]
        nx, code = _step(nodes, rb, rec, n3)
        done[n3 >> sh] = code
        n3 = nx
        rec = nodes[n4]
        if rec == _Z:
            n4 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n4]
        nx, code = _step(nodes, rb, rec, n4)
        done[n4 >> sh] = code
        n4 = nx
        rec = nodes[n5]
        if rec == _Z:
            n5 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n5]
        nx, code = _step(nodes, rb, rec, n5)
        done[n5 >> sh] = code
        n5 = nx
        rec = nodes[n6]
        if rec == _Z:
            n6 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n6]
        nx, code = _step(nodes, rb, rec, n6)
        done[n6 >> sh] = code
        n6 = nx
        rec = nodes[n7]
        if rec == _Z:
            n7 = np.uint64(tab[q])
            q += _U1
            rec = nodes[n7]
        nx, code = _step(nodes, rb, rec, n7)
        done[n7 >> sh] = code
        n7 = nx


@njit(inline="always", cache=True)
def _walk(x, buf):
    """(the code where each tree's walk ends, per tree; meta) for the row ``x``."""
    nodes, meta, fvals, cattab = _parts(buf)
    n_trees = meta[_M_TREES]
    rb, extra = quantize(x, meta, fvals, cattab, (n_trees + 2) // 2)
    done = extra.view(np.uint32)  # n_trees + 1: the last for the parked lanes
    tab = meta[meta[_M_STARTS]:meta[_M_STARTS] + meta[_M_TAB_N]]
    _chains(nodes, rb, tab, done, meta[_M_SHIFT], meta[_M_START])
    return done, meta


@njit(inline="always", cache=True)
def _margins(x, buf, dtype_like):
    """Margins of the row ``x`` as a new float64 array (n_groups,), the leaf values added in
    model order in ``dtype_like``'s dtype (the model's), as the batch kernels add them."""
    done, meta = _walk(x, buf)
    return _margin_array(buf[buf[2]:buf[3]].view(dtype_like.dtype), done, meta)


_AS32 = np.zeros(1, np.float32)
_AS64 = np.zeros(1, np.float64)


@njit(nogil=True, cache=True)
def margin_row_chained32(x, buf):
    """Margins (float64, n_groups) of the row ``x`` (float64) by a float32 model's layout
    ``buf`` (:func:`build_chained`); one entry point per precision (fixed at compile time)."""
    return _margins(x, buf, _AS32)


@njit(nogil=True, cache=True)
def margin_row_chained64(x, buf):
    """As :func:`margin_row_chained32`, for a float64 (LightGBM) model."""
    return _margins(x, buf, _AS64)


@njit(nogil=True, cache=True)
def margin_one_chained32(x, buf):
    """The margin of the row ``x`` by a one-output float32 model's layout ``buf`` as a float64
    number (a number costs less to hand back to Python than a new array)."""
    done, meta = _walk(x, buf)
    return _sum_one(buf[buf[2]:buf[3]].view(np.float32), done, meta[_M_TREES])


@njit(nogil=True, cache=True)
def margin_one_chained64(x, buf):
    """As :func:`margin_one_chained32`, for a float64 (LightGBM) model."""
    done, meta = _walk(x, buf)
    return _sum_one(buf[buf[2]:buf[3]].view(np.float64), done, meta[_M_TREES])


#: Rows per parallel task of :func:`margins_chained`.
BLOCK_ROWS = 64


@njit(parallel=True, nogil=True, cache=True)
def margins_chained(X, buf, out):
    """Add every tree's leaf value of each row of ``X`` (float64, C-contiguous) to ``out``
    (n_rows, n_groups; holding the base margin) in model order, in ``out``'s dtype (the
    model's): the batch kernels' margins bit for bit, a row at a time through the chained
    layout ``buf``. Faster than the batch kernels on deep lopsided (leaf-wise) trees, where
    those walk many rows down paths of very different lengths: an 800-tree, 63-leaf LightGBM
    model scored 2.1x as many rows a second, a balanced depth-6 XGBoost model 0.6x."""
    n_rows = X.shape[0]
    values = buf[buf[2]:buf[3]].view(out.dtype)  # the base margin, then per code
    for b in prange((n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        for r in range(b * BLOCK_ROWS, min(n_rows, (b + 1) * BLOCK_ROWS)):
            done, meta = _walk(X[r], buf)
            _add_leaves(out[r], values[meta[_M_GROUPS_N]:], done, meta)
    return out


@njit(parallel=True, nogil=True, cache=True)
def leaves_chained(X, buf, code_leaf, out):
    """The packed leaf each tree sends each row of ``X`` (float64, C-contiguous) to, into
    ``out`` (int32, n_rows x n_trees): :func:`margins_chained`'s walks, for the leaves."""
    n_rows = X.shape[0]
    for b in prange((n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        for r in range(b * BLOCK_ROWS, min(n_rows, (b + 1) * BLOCK_ROWS)):
            done, meta = _walk(X[r], buf)
            for t in range(meta[_M_TREES]):
                out[r, t] = code_leaf[done[t]]
    return out


def chained_margin_kernel(dtype: type) -> object:
    """The margin kernel for a model of ``dtype`` (float32 or float64): ``kernel(x, buf)``."""
    return margin_row_chained32 if np.dtype(dtype) == np.float32 else margin_row_chained64


def chained_margin_one_kernel(dtype: type) -> object:
    """The one-output margin kernel for a model of ``dtype``: ``kernel(x, buf)`` -> float."""
    return margin_one_chained32 if np.dtype(dtype) == np.float32 else margin_one_chained64


@njit(nogil=True, cache=True)
def leaves_row_chained(x, buf, code_leaf, out):
    """The packed leaf each tree sends the row ``x`` (float64) to, into ``out`` (n_trees,);
    ``code_leaf`` maps a code to its packed leaf (:func:`build_chained`)."""
    done, meta = _walk(x, buf)
    for t in range(meta[_M_TREES]):
        out[t] = code_leaf[done[t]]
    return out


@njit(cache=True)
def _records(roots, info, left, slot, rank, leaf_value, last, shift):
    """The blocks: per tree its splits depth first from ``t << shift`` (the left child next
    when it is a split), a single-leaf tree as one record that always goes right; per code the
    leaf's value and packed id. A direction reaching a leaf leads to the next block, or for a
    tree that ends its chunk (``last``) to its own block's last record, left zero. After the
    trees, one more block: a record stepping onto itself (its left distance, never taken, is
    1 so that the record is not zero) and a zero record to start from."""
    n_trees = roots.shape[0]
    size = 1 << shift
    total = (n_trees + 1) << shift
    nodes = np.zeros(total, np.uint64)
    code_value = np.zeros(2 * total, leaf_value.dtype)
    code_leaf = np.full(2 * total, -1, np.int32)
    record = np.zeros(info.shape[0], np.int64)
    order = np.empty(size, np.int64)
    stack = np.empty(size + 2, np.int64)
    for t in range(n_trees):
        base = t << shift
        pos = splits_depth_first(roots[t], info, left, stack, order, 0)
        for k in range(pos):
            record[order[k]] = base + k
        after = base + size - 1 if last[t] else base + size
        for k in range(pos):
            i = base + k
            nd = order[k]
            if info[nd] & _PACKED_LEAF:
                d = np.uint64(after - i)
                nodes[i] = (d << _U32) | (d << np.uint64(48))
                code_value[2 * i + 1] = leaf_value[nd]
                code_leaf[2 * i + 1] = nd
                continue
            rec = np.uint64(slot[nd]) | (np.uint64(rank[nd]) << _U16)
            lc = left[nd]
            for d in range(2):
                child = lc + d
                if info[child] & _PACKED_LEAF:
                    to = after
                    code_value[2 * i + d] = leaf_value[child]  # float32 values widen exactly
                    code_leaf[2 * i + d] = child
                else:
                    to = record[child]
                rec |= np.uint64(to - i) << np.uint64(32 + 16 * d)
            nodes[i] = rec
    nodes[n_trees << shift] = _U1 << _U32
    return nodes, code_value, code_leaf


def chunks(n_trees: int, lanes: int = LANES) -> np.ndarray:
    """Chunk boundaries (trees): each chunk half the remaining trees' share per lane, down to
    single trees at the end, so that the lanes run out of work at about the same time while a
    lane changes chunks (a mispredicted branch) only a few dozen times per row."""
    bounds = [0]
    while bounds[-1] < n_trees:
        remaining = n_trees - bounds[-1]
        bounds.append(bounds[-1] + max(1, -(-remaining // (2 * lanes))))
    return np.asarray(bounds, np.int64)


def build_chained(roots, groups, info, threshold, left, leaf_value, cat, cat_bounds, cat_words,
                  rule, base_margin):
    """The chained layout of a packed model (``treeprune.packed``), or None where the model is
    past its limits (module docstring).

    Returns ``(buf, code_leaf)``: ``chained_margin_kernel(dtype)(x, buf)`` gives a row's
    margins, ``code_leaf`` the packed leaf of a code (:func:`leaves_row_chained`). ``buf`` is
    :func:`treeprune.kernels.ranked.assemble`'s with the blocks as records and the chunk table
    (each chunk's first record, then ``LANES`` times the park record) as starts.
    """
    roots = np.ascontiguousarray(roots, dtype=np.int64)
    n_trees = len(roots)
    if n_trees == 0:
        return None  # nothing to walk: the rank-coded kernel gives the base margin
    split = (info >> FEATURE_BITS & FLAG_LEAF) == 0
    tree = np.searchsorted(roots, np.arange(len(info)), "right") - 1
    need = np.maximum(np.bincount(tree[split], minlength=n_trees), 1)
    shift = max(1, int(need.max()).bit_length())  # 2**shift > need: one spare record
    total = (n_trees + 1) << shift
    if (1 << shift) > MAX_BLOCK or total > MAX_RECORDS or total > MAX_PADDING * need.sum() + 4096:
        return None
    code = rank_code(info, threshold, cat, cat_bounds, cat_words, rule)
    if code is None:
        return None
    bounds = chunks(n_trees)
    last = np.zeros(n_trees, bool)
    last[bounds[1:] - 1] = True
    nodes, code_value, code_leaf = _records(roots, info, left, code.slot, code.rank, leaf_value,
                                            last, shift)
    park = n_trees << shift
    tab = np.concatenate([bounds[:-1] << shift, np.full(LANES, park)])
    extra = ((_M_SHIFT, shift), (_M_START, park + 1), (_M_TAB_N, len(tab)))
    return assemble(code, rule, nodes, len(nodes), n_trees, tab, groups, base_margin, code_value,
                    extra), code_leaf


__all__ = ["LANES", "build_chained", "chained_margin_kernel", "chained_margin_one_kernel",
           "chunks", "leaves_chained", "leaves_row_chained", "margin_one_chained32",
           "margin_one_chained64", "margin_row_chained32", "margin_row_chained64",
           "margins_chained"]
