"""The usual trees of a LightGBM text model, checked and converted in one pass over all of them.

:func:`treeprune.io.lightgbm.read._parse_tree` reads one tree at a time: a dozen number
conversions and some fifty small array checks per tree, most of the load time of a model with
hundreds of trees. :func:`usual_trees` reads the trees in the form LightGBM writes (every array
key present, numbers separated by single spaces, at least one split) with one conversion per key
for the whole model and the same checks on the concatenated arrays. It gives the same node arrays,
bit for bit; any tree it does not take (a damaged one, a one-leaf tree, an unusual spelling) is
left to the tree-by-tree reader, which raises that tree's own error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._rules import (
    LIGHTGBM_CATEGORICAL_MASK,
    LIGHTGBM_DEFAULT_LEFT_MASK,
    LIGHTGBM_MISSING_SHIFT,
)
from ...trees import Tree, empty_nodes

_SPLIT_FLOATS = ("split_gain", "threshold", "internal_value", "internal_weight")
_SPLIT_INTS = ("split_feature", "decision_type", "left_child", "right_child", "internal_count")
_LEAF_FLOATS = ("leaf_value", "leaf_weight")
_LEAF_INTS = ("leaf_count",)
# the characters of plain decimal numbers and of "inf" (LightGBM writes +-inf thresholds): any
# other (nan, underscores, tabs, parentheses, non-ASCII digits) sends the model to the
# tree-by-tree reader, so that what is read here is what Python's float() / int() read, and
# nothing is read here that they refuse
_FLOAT_CHARS = b"0123456789.eE+-inf "
_INT_CHARS = b"0123456789+- "
_I64 = np.iinfo(np.int64)
#: A number read after the text: reached only when the whole text was read.
_SENTINEL = 7
_SENTINEL_TEXT = " 7"


def _numbers(values: list[str], counts: np.ndarray, dtype: Any) -> np.ndarray | None:
    """The numbers of ``values`` (``counts[k]`` space-separated numbers in ``values[k]``)
    concatenated, as ``np.array(values[k].split(), dtype)`` reads each; None when a value is not
    in the plain form this reads exactly.

    One C-level conversion for all the values: numpy's text reader converts a decimal number
    with the same correctly rounded conversion as ``float()``, so the values are the same bit for
    bit; a value spelled otherwise, or with other separators, is not converted here.
    """
    text = " ".join(values)
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    chars = _FLOAT_CHARS if dtype is np.float64 else _INT_CHARS
    if raw.translate(None, chars) or b"  " in raw or raw[:1] == b" " or raw[-1:] == b" ":
        return None
    # a sign must start a number: numpy's integer reader takes a lone sign ending the text for
    # 0 and one before a space for the next number's sign, both refused by int()
    if b"- " in raw or b"+ " in raw or raw[-1:] in (b"-", b"+"):
        return None
    # single spaces only: each value holds one more number than spaces, if every number parses
    if any(v.count(" ") + 1 != c for v, c in zip(values, counts.tolist(), strict=True)):
        return None
    # numpy's reader stops at text it cannot read (newer numpy raises; older numpy warns, and a
    # warning made an error is caught here too) and reads a separator of zero spaces, so that
    # "1-2" reads as two numbers: the text must be read to a sentinel number after it, as one
    # number per value's number. Without changing the warning filters, which are global to the
    # process: other threads' warnings would have changed with them
    try:
        out = np.fromstring(text + _SENTINEL_TEXT, dtype=dtype, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    n = int(counts.sum())
    if len(out) != n + 1 or out[n] != _SENTINEL:
        return None
    out = out[:n]
    if dtype is np.int64 and len(out) and (out.max() == _I64.max or out.min() == _I64.min):
        return None  # the C reader saturates where int() would overflow int64: read it per tree
    return out


def _scalars(kv: dict[str, str]) -> tuple[int, int, float] | None:
    """(num_leaves, num_cat, shrinkage) of a tree read here, else None."""
    try:
        n_leaves = int(kv["num_leaves"].strip())
        num_cat = int(kv["num_cat"].strip())
        shrinkage = float(kv["shrinkage"].strip()) if "shrinkage" in kv else 1.0
    except (KeyError, ValueError):
        return None
    if n_leaves < 2 or num_cat < 0 or kv.get("is_linear", "0").strip() not in ("", "0"):
        return None
    if any(k not in kv for k in (*_SPLIT_FLOATS, *_SPLIT_INTS, *_LEAF_FLOATS, *_LEAF_INTS)):
        return None
    if num_cat > 0 and ("cat_boundaries" not in kv or "cat_threshold" not in kv):
        return None
    return n_leaves, num_cat, shrinkage


def _segments(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, owner, position): the start of each segment, and for every element its segment
    and its position inside it."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return offsets, owner, np.arange(int(offsets[-1])) - offsets[:-1][owner]


def usual_trees(kvs: list[dict[str, str] | None], n_features: int
                ) -> dict[int, tuple[Tree, float, dict[str, Any]]]:
    """The trees of ``kvs`` that are valid and in LightGBM's usual form, read in one pass.

    Parameters
    ----------
    kvs : list of dict or None
        Each tree's ``key -> value`` lines, in tree order; None for a tree whose lines are
        damaged.
    n_features : int
        The model's number of features (``max_feature_idx + 1``): split features must be below.

    Returns
    -------
    dict
        ``tree id -> (tree, shrinkage, raw arrays)``, as
        :func:`treeprune.io.lightgbm.read._parse_tree` gives them, bit for bit. A tree left out
        (damaged, one leaf, or written otherwise) is for the tree-by-tree reader, which raises
        its error; the dict is empty when a key's numbers of any tree are not in the plain form
        converted here.
    """
    ids, scalars = [], []
    for t, kv in enumerate(kvs):
        sc = _scalars(kv) if kv is not None else None
        if sc is not None:
            ids.append(t)
            scalars.append(sc)
    if not ids:
        return {}
    good = [kvs[t] for t in ids]
    L = np.array([s[0] for s in scalars], dtype=np.int64)
    num_cat = np.array([s[1] for s in scalars], dtype=np.int64)
    S = L - 1
    cols: dict[str, np.ndarray] = {}
    for keys, counts, dtype in ((_SPLIT_FLOATS, S, np.float64), (_SPLIT_INTS, S, np.int64),
                                (_LEAF_FLOATS, L, np.float64), (_LEAF_INTS, L, np.int64)):
        for key in keys:
            arr = _numbers([kv[key] for kv in good], counts, dtype)
            if arr is None:
                return {}
            cols[key] = arr
    m = len(ids)
    s_off, s_tree, s_pos = _segments(S)
    l_off, l_tree, l_pos = _segments(L)
    bad_split = np.zeros(len(s_tree), dtype=bool)
    feat, dt, thr = cols["split_feature"], cols["decision_type"], cols["threshold"]
    bad_split |= (feat < 0) | (feat >= n_features)
    bad_split |= (dt < 0) | (dt > 15) | (((dt >> LIGHTGBM_MISSING_SHIFT) & 3) == 3)
    is_cat = (dt & LIGHTGBM_CATEGORICAL_MASK) != 0
    bad_split |= ~is_cat & np.isnan(thr)
    # children: c >= 0 is split c of the same tree (never the root), c < 0 is leaf ~c
    S_of, L_of = S[s_tree], L[s_tree]
    for c in (cols["left_child"], cols["right_child"]):
        bad_split |= np.where(c >= 0, (c < 1) | (c >= S_of), ~c >= L_of)
    broken = np.zeros(m, dtype=bool)
    broken[s_tree[bad_split]] = True
    broken[l_tree[~np.isfinite(cols["leaf_value"])]] = True

    # node layout of each tree: splits 0..S-1, then leaves S..S+L-1
    n_off, _, _ = _segments(S + L)
    split_at = n_off[:-1][s_tree] + s_pos
    leaf_at = n_off[:-1][l_tree] + S[l_tree] + l_pos
    total = int(n_off[-1])

    def local(c: np.ndarray) -> np.ndarray:
        return np.where(c >= 0, c, S_of + ~c)

    lchild, rchild = local(cols["left_child"]), local(cols["right_child"])
    # a tree: every node but the root has exactly one parent and reaches the root
    ok = ~broken[s_tree]
    kids = np.concatenate([lchild[ok], rchild[ok]]) + np.concatenate([n_off[:-1][s_tree[ok]]] * 2)
    node_tree = np.repeat(np.arange(m), S + L)
    root = n_off[:-1][node_tree]
    node = np.arange(total)
    wrong = np.bincount(kids, minlength=total) != (node != root)
    up = node.copy()
    up[kids] = np.concatenate([split_at[ok]] * 2)
    for _ in range(int((S + L).max()).bit_length() + 1):
        up = up[up]
    wrong |= up != root
    broken[node_tree[wrong]] = True

    # categorical bitsets: tree k's bitset j is words[bounds[j]:bounds[j + 1]] of that tree
    cat_trees = np.flatnonzero(num_cat > 0)
    broken[s_tree[is_cat & (num_cat[s_tree] == 0)]] = True
    if len(cat_trees):
        bounds = _numbers([good[k]["cat_boundaries"] for k in cat_trees], num_cat[cat_trees] + 1,
                          np.int64)
        if bounds is None:
            return {}
        b_off, b_tree, b_pos = _segments(num_cat[cat_trees] + 1)
        first = b_pos == 0
        bad_b = np.where(first, bounds != 0, bounds < np.concatenate([[0], bounds[:-1]]))
        n_words = bounds[b_off[1:] - 1]
        bad_cat_tree = np.zeros(len(cat_trees), dtype=bool)
        bad_cat_tree[b_tree[bad_b]] = True
        bad_cat_tree |= n_words < 1  # no words at all: an unusual tree, read tree by tree
        broken[cat_trees[bad_cat_tree]] = True
        keep = ~bad_cat_tree
        words = _numbers([good[k]["cat_threshold"] for k in cat_trees[keep]], n_words[keep],
                         np.int64)
        if words is None:
            return {}
        if np.any((words < 0) | (words > 0xFFFFFFFF)):
            _, w_tree, _ = _segments(n_words[keep])
            broken[cat_trees[keep][w_tree[(words < 0) | (words > 0xFFFFFFFF)]]] = True
        # where each cat tree's bounds and words start
        cat_row = np.full(m, -1, dtype=np.int64)
        cat_row[cat_trees] = np.arange(len(cat_trees))
        word_start = np.zeros(len(cat_trees), dtype=np.int64)
        word_start[keep] = np.concatenate([[0], np.cumsum(n_words[keep])[:-1]])
    cat_splits = np.flatnonzero(is_cat & ~broken[s_tree])
    if len(cat_splits):
        ci = thr[cat_splits]
        k = s_tree[cat_splits]
        valid = (num_cat[k] > 0) & (ci >= 0) & (ci < num_cat[k]) & (ci == np.floor(ci))
        broken[k[~valid]] = True

    words_u32 = words.astype(np.uint32) if len(cat_trees) else None
    # the defaults _parse_tree starts from (a leaf's feature, children, gain...; and any node
    # field added later starts the same in both readers)
    nodes = empty_nodes(total)
    nodes["feature"][split_at] = feat
    nodes["threshold"][split_at] = np.where(is_cat, 0.0, thr)
    nodes["left"][split_at] = lchild
    nodes["right"][split_at] = rchild
    nodes["default_left"][split_at] = (dt & LIGHTGBM_DEFAULT_LEFT_MASK) != 0
    nodes["missing_type"][split_at] = (dt >> LIGHTGBM_MISSING_SHIFT) & 3
    nodes["value"][split_at] = cols["internal_value"]
    nodes["value"][leaf_at] = cols["leaf_value"]
    nodes["gain"][split_at] = cols["split_gain"]
    nodes["cover"][split_at] = cols["internal_weight"]
    nodes["cover"][leaf_at] = cols["leaf_weight"]
    nodes["count"][split_at] = cols["internal_count"]
    nodes["count"][leaf_at] = cols["leaf_count"]
    nodes["native_id"][split_at] = s_pos
    nodes["native_id"][leaf_at] = l_pos

    cat_sets: dict[int, list[np.ndarray]] = {}
    for i in np.flatnonzero(is_cat & ~broken[s_tree]).tolist():
        k = int(s_tree[i])
        row = int(cat_row[k])
        base = int(b_off[row])
        lo, hi = int(bounds[base + int(thr[i])]), int(bounds[base + int(thr[i]) + 1])
        sets = cat_sets.setdefault(k, [])
        nodes["cat_index"][split_at[i]] = len(sets)
        start = int(word_start[row])
        sets.append(words_u32[start + lo:start + hi])

    out = {}
    for k in np.flatnonzero(~broken).tolist():
        a, b = int(n_off[k]), int(n_off[k + 1])
        tree = Tree({name: arr[a:b] for name, arr in nodes.items()}, cat_sets.get(k, []))
        la, lb = int(l_off[k]), int(l_off[k + 1])
        sa, sb = int(s_off[k]), int(s_off[k + 1])
        raw = {"leaf_value": cols["leaf_value"][la:lb], "leaf_weight": cols["leaf_weight"][la:lb],
               "internal_value": cols["internal_value"][sa:sb]}
        out[ids[k]] = (tree, scalars[k][2], raw)
    return out


__all__ = ["usual_trees"]
