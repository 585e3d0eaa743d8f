"""Exact path-dependent TreeSHAP (Lundberg, Erion & Lee, 2018), one leaf path at a time.

A tree's SHAP values for a row are a sum over its leaves. Each root-to-leaf path is reduced to
its *unique* features (``treeprune.contrib`` does this once per model): element ``e`` of a path
carries the feature, the *zero fraction* ``z_e`` (the product, over the path's splits on that
feature, of child cover / node cover: the share of the trainer's data that follows the path there)
and the *one fraction* ``o_e`` (1 when the row satisfies every split of the path on that feature,
else 0; it is the only thing that depends on the row). Then, as in the recursive algorithm,

* the permutation weights ``pw`` of the path are built by extending an empty path with a null
  element (z = o = 1, the root) and then every element in turn (``EXTEND``), and
* feature ``f_e`` receives ``leaf value * (o_e - z_e) * UNWOUND_SUM(pw, e)``, the total weight of
  the path with element ``e`` taken out again.

This is the same computation as the recursive form in XGBoost and LightGBM (which merge repeated
features by unwinding and re-extending); per path it costs O(depth^2). The row's decisions are
made with the routing kernels' own step function, so a row goes the same way here as in
``predict`` (missing values, LightGBM's zero handling and categorical bitsets included).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .traverse import BLOCK_ROWS, FEATURE_BITS, FLAG_LEAF, _step


@njit(inline="always", cache=True)
def _path_phi(d, z, o, pw):
    """Fill ``pw[0:d + 1]`` with the permutation weights of a path of ``d`` elements.

    ``z[1:d + 1]`` and ``o[1:d + 1]`` are the elements' zero and one fractions; element 0 is the
    null root element.
    """
    pw[0] = 1.0
    for e in range(1, d + 1):
        pw[e] = 0.0
        ze = z[e]
        oe = o[e]
        scale = 1.0 / (e + 1)
        for i in range(e - 1, -1, -1):
            w = pw[i]
            pw[i + 1] += oe * w * (i + 1) * scale
            pw[i] = ze * w * (e - i) * scale


@njit(inline="always", cache=True)
def _unwound_sum(d, pw, zi, oi):
    """Total permutation weight of the path with an element (fractions ``zi``, ``oi``) removed."""
    total = 0.0
    if oi != 0.0:
        nxt = pw[d]
        for j in range(d - 1, -1, -1):
            tmp = nxt * (d + 1) / ((j + 1) * oi)
            total += tmp
            nxt = pw[j] - tmp * zi * (d - j) / (d + 1)
    elif zi != 0.0:
        for j in range(d - 1, -1, -1):
            total += pw[j] / zi * (d + 1) / (d - j)
    return total


@njit(cache=True)
def path_table(z, d, out):
    """Contribution weights of one path for every one-fraction pattern.

    ``out[m, e - 1]`` (shape ``(2**d, d)``) is ``(o_e - z_e) * UNWOUND_SUM`` of element ``e`` when
    bit ``e - 1`` of ``m`` is that element's one fraction; the leaf value is not applied. Used to
    write contributions as lookups (SQL) rather than computed per row.
    """
    o = np.empty(d + 1)
    pw = np.empty(d + 2)
    for m in range(1 << d):
        o[0] = 1.0
        for e in range(1, d + 1):
            o[e] = 1.0 if (m >> (e - 1)) & 1 else 0.0
        _path_phi(d, z, o, pw)
        for e in range(1, d + 1):
            out[m, e - 1] = (o[e] - z[e]) * _unwound_sum(d, pw, z[e], o[e])
    return out


@njit(parallel=True, nogil=True, cache=True)
def build_tables(elem_start, elem_zero, path_value, table_start, tables):
    """Fill ``tables`` with every tabled path's :func:`path_table` times its leaf value.

    Path ``p`` with ``d`` elements owns ``tables[table_start[p]:table_start[p] + 2**d * d]``
    (row-major ``(2**d, d)``); ``table_start[p] < 0`` leaves it untabled.
    """
    for p in prange(path_value.shape[0]):
        ts = table_start[p]
        if ts < 0:
            continue
        e0 = elem_start[p]
        d = elem_start[p + 1] - e0
        z = np.empty(d + 1)
        z[0] = 1.0
        for e in range(d):
            z[e + 1] = elem_zero[e0 + e]
        table = path_table(z, d, np.empty((1 << d, d)))
        v = path_value[p]
        for m in range(1 << d):
            for e in range(d):
                tables[ts + m * d + e] = table[m, e] * v
    return tables


@njit(parallel=True, nogil=True, cache=True)
def contributions_blocked(X, trees, info, threshold, left, cat, cat_bounds, cat_words, rule,
                          simple, path_start, path_value, elem_start, elem_feature, elem_zero,
                          cond_start, cond_node, cond_right, cond_elem, table_start, tables,
                          max_nodes, max_elems, out):
    """Add every tree's SHAP values to ``out`` (n_rows, n_groups, n_features + 1).

    ``trees`` is int32 (n_trees, 3): packed root, packed node count and output group. Tree ``t``
    owns paths ``path_start[t]:path_start[t + 1]``; path ``p`` owns elements
    ``elem_start[p]:elem_start[p + 1]`` (feature, zero fraction) and conditions
    ``cond_start[p]:cond_start[p + 1]``: the row satisfies condition ``c`` when, at packed node
    ``root + cond_node[c]``, it goes right iff ``cond_right[c]``; a failed condition sets the one
    fraction of path element ``cond_elem[c]`` (1-based) to 0. Paths with a table
    (:func:`build_tables`) look their contributions up by the pattern of one fractions; the others
    are computed. ``out`` holds the bias on entry.
    """
    n_rows = X.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        start = b * BLOCK_ROWS
        stop = min(start + BLOCK_ROWS, n_rows)
        right = np.empty((BLOCK_ROWS, max_nodes), dtype=np.uint8)
        z = np.empty(max_elems + 1)
        o = np.empty(max_elems + 1)
        pw = np.empty(max_elems + 2)
        for t in range(trees.shape[0]):
            root = trees[t, 0]
            n_nodes = trees[t, 1]
            g = trees[t, 2]
            if path_start[t + 1] == path_start[t]:
                continue  # a single leaf: all of it is bias
            # which way each row goes at every split of the tree
            for k in range(n_nodes):
                node = root + k
                if (info[node] >> FEATURE_BITS) & FLAG_LEAF:
                    continue
                base = left[node]
                for r in range(start, stop):
                    nxt = _step(X, r, node, info, threshold, left, cat, cat_bounds, cat_words,
                                rule, simple)
                    right[r - start, k] = nxt - base
            for p in range(path_start[t], path_start[t + 1]):
                e0 = elem_start[p]
                d = elem_start[p + 1] - e0
                ts = table_start[p]
                if ts >= 0:
                    full = (1 << d) - 1
                    for r in range(start, stop):
                        m = full
                        for c in range(cond_start[p], cond_start[p + 1]):
                            if right[r - start, cond_node[c]] != cond_right[c]:
                                m &= ~(1 << (cond_elem[c] - 1))
                        base = ts + m * d
                        for e in range(d):
                            out[r, g, elem_feature[e0 + e]] += tables[base + e]
                    continue
                v = path_value[p]
                for e in range(d):
                    z[e + 1] = elem_zero[e0 + e]
                for r in range(start, stop):
                    for e in range(d + 1):
                        o[e] = 1.0
                    for c in range(cond_start[p], cond_start[p + 1]):
                        if right[r - start, cond_node[c]] != cond_right[c]:
                            o[cond_elem[c]] = 0.0
                    _path_phi(d, z, o, pw)
                    for e in range(1, d + 1):
                        w = _unwound_sum(d, pw, z[e], o[e])
                        out[r, g, elem_feature[e0 + e - 1]] += w * (o[e] - z[e]) * v
    return out


__all__ = ["contributions_blocked", "build_tables", "path_table"]
