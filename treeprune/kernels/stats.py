"""Leaf statistics and Newton refits on the CPU.

Losses are passed as integer codes (``treeprune._rules.LOSS_CODES``) because Numba cannot
dispatch on strings; the per-row gradients, hessians and Newton steps are those of
:mod:`treeprune.kernels.losses`, which the GPU kernels share. Sums over rows are weighted by
``sample_weight``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._rules import LOSS_SOFTMAX
from .losses import base_step, grad_hess_row, leaf_step, softmax_grad_hess


@njit(inline="always", cache=True)
def grad_hess_at(loss, y, margin, r, c, p1):
    """Gradient and hessian of row ``r``'s loss with respect to its margin of group ``c``."""
    if loss != LOSS_SOFTMAX:
        return grad_hess_row(loss, y[r], margin[r, 0], p1)
    return softmax_grad_hess(margin[r], c, y[r])


@njit(parallel=True, cache=True)
def grad_hess(loss, y, margin, p1, g, h):
    """Fill ``g``/``h`` (n_rows, n_groups) at ``margin`` (n_rows, n_groups)."""
    n, k = margin.shape
    for r in prange(n):
        for c in range(k):
            g[r, c], h[r, c] = grad_hess_at(loss, y, margin, r, c, p1)


@njit(cache=True)
def leaf_sums(leaf_slot, tree_group, g, h, w, n_slots):
    """Weighted gradient and hessian sums per leaf slot.

    ``leaf_slot`` (n_rows, n_trees) gives, per row and tree, the slot (a compact leaf number
    across the ensemble) of the leaf the row reaches.
    """
    G = np.zeros(n_slots)
    H = np.zeros(n_slots)
    n, k = leaf_slot.shape
    for r in range(n):
        for t in range(k):
            s = leaf_slot[r, t]
            c = tree_group[t]
            G[s] += w[r] * g[r, c]
            H[s] += w[r] * h[r, c]
    return G, H


@njit(cache=True)
def refit_cyclic(leaf_slot, tree_group, slot_tree_start, values, prior, base, update_base, y, w,
                 loss, p1, l2, n_rounds, step, max_step, margin):
    """Block-coordinate Newton on leaf values, one tree (block) at a time.

    Within a tree the leaves partition the rows, so each tree's Newton step is exact for its
    block; cycling over trees (and the intercept) descends the joint L2-regularised loss
    ``sum_r w_r loss(y_r, margin_r) + l2/2 * sum_leaves (value - prior)^2``: the penalty pulls
    each leaf towards ``prior`` (its value before the refit), so that leaves few rows reach move
    little. ``values`` (slots) and
    ``margin`` (n_rows, n_groups, consistent with values and base) are updated in place.
    """
    n, k_trees = leaf_slot.shape
    n_groups = margin.shape[1]
    n_slots = values.shape[0]
    G = np.zeros(n_slots)
    H = np.zeros(n_slots)
    # one output group (every loss but softmax): the rows' gradients straight from a 1-D view of
    # the margin. The same arithmetic in the same order as through grad_hess_at, whose 2-D
    # access and softmax branch in the row loop made it twice as slow (a 73-tree refit on 12,000
    # Taiwan rows: 390-470 -> 150-230 ms, same bits)
    single = n_groups == 1 and loss != LOSS_SOFTMAX
    m = margin[:, 0]
    for _ in range(n_rounds):
        if update_base:
            for c in range(n_groups):
                gs = 0.0
                hs = 0.0
                if single:
                    for r in range(n):
                        gr, hr = grad_hess_row(loss, y[r], m[r], p1)
                        gs += w[r] * gr
                        hs += w[r] * hr
                else:
                    for r in range(n):
                        gr, hr = grad_hess_at(loss, y, margin, r, c, p1)
                        gs += w[r] * gr
                        hs += w[r] * hr
                d = base_step(gs, hs, step, max_step)
                base[c] += d
                for r in range(n):
                    margin[r, c] += d
        for t in range(k_trees):
            c = tree_group[t]
            s0 = slot_tree_start[t]
            s1 = slot_tree_start[t + 1]
            for s in range(s0, s1):
                G[s] = 0.0
                H[s] = 0.0
            if single:
                for r in range(n):
                    gr, hr = grad_hess_row(loss, y[r], m[r], p1)
                    s = leaf_slot[r, t]
                    G[s] += w[r] * gr
                    H[s] += w[r] * hr
            else:
                for r in range(n):
                    gr, hr = grad_hess_at(loss, y, margin, r, c, p1)
                    s = leaf_slot[r, t]
                    G[s] += w[r] * gr
                    H[s] += w[r] * hr
            for s in range(s0, s1):
                G[s] = leaf_step(G[s], H[s], values[s], prior[s], l2, step, max_step)
                values[s] += G[s]
            for r in range(n):
                margin[r, c] += G[leaf_slot[r, t]]
    return values, base, margin


@njit(parallel=True, cache=True)
def margin_from_slots(leaf_slot, tree_group, values, base, out):
    """``out[r, g] = base[g] + sum_t values[leaf_slot[r, t]]`` over trees of group g."""
    n, k = leaf_slot.shape
    for r in prange(n):
        for c in range(out.shape[1]):
            out[r, c] = base[c]
        for t in range(k):
            out[r, tree_group[t]] += values[leaf_slot[r, t]]
    return out


@njit(cache=True)
def weighted_gram(P, h, w):
    """``P.T @ diag(h * w) @ P`` for the per-tree output matrix ``P`` (n_rows, n_trees)."""
    n, k = P.shape
    out = np.zeros((k, k))
    for r in range(n):
        hw = h[r] * w[r]
        for i in range(k):
            a = P[r, i] * hw
            if a == 0.0:
                continue
            for j in range(i, k):
                out[i, j] += a * P[r, j]
    for i in range(k):
        for j in range(i):
            out[i, j] = out[j, i]
    return out


@njit(parallel=True, cache=True)
def _candidate_scores(PT, tree_group, g, h, w, selected, l2, nonneg, num, den):
    k, n = PT.shape
    for j in prange(k):
        if selected[j]:
            num[j] = 0.0
            den[j] = 1.0
            continue
        c = tree_group[j]
        a = 0.0
        b = 0.0
        for r in range(n):
            p = PT[j, r]
            a += w[r] * g[r, c] * p
            b += w[r] * h[r, c] * p * p
        num[j] = a
        den[j] = b + l2


@njit(cache=True)
def _coordinate_step(PT, j, c, y, w, loss, p1, l2, alpha, v0, margin, nonneg):
    n = PT.shape[1]
    a = 0.0
    b = 0.0
    if margin.shape[1] == 1 and loss != LOSS_SOFTMAX:  # as in refit_cyclic: a 1-D margin
        m = margin[:, 0]
        for r in range(n):
            p = PT[j, r]
            if p == 0.0:
                continue
            gr, hr = grad_hess_row(loss, y[r], m[r], p1)
            a += w[r] * gr * p
            b += w[r] * hr * p * p
    else:
        for r in range(n):
            p = PT[j, r]
            if p == 0.0:
                continue
            gr, hr = grad_hess_at(loss, y, margin, r, c, p1)
            a += w[r] * gr * p
            b += w[r] * hr * p * p
    new = alpha - (a + l2 * (alpha - v0)) / (b + l2)
    if nonneg and new < 0.0:
        new = 0.0
    d = new - alpha
    if d != 0.0:
        for r in range(n):
            margin[r, c] += d * PT[j, r]
    return new


@njit(cache=True)
def forward_select(PT, tree_group, y, w, loss, p1, base, max_k, n_sweeps, nonneg, l2, fixed):
    """Greedy forward selection of trees by their per-tree outputs ``PT`` (n_trees, n_rows).

    Each step adds the tree with the largest second-order loss decrease ``num^2 / den`` and then
    re-fits the intercepts and the weights of all selected trees by ``n_sweeps`` cyclic Newton
    sweeps; weights are shrunk towards 1 (the tree as trained) with penalty ``l2``. Where
    ``fixed[step] >= 0`` that tree is added at that step instead (an order chosen elsewhere,
    re-weighted the same way). Returns ``order`` (max_k,), ``path_weights`` (max_k, n_trees): the
    weights after each step, and ``path_base`` (max_k, n_groups).
    """
    k, n = PT.shape
    n_groups = base.shape[0]
    margin = np.empty((n, n_groups))
    for r in range(n):
        for c in range(n_groups):
            margin[r, c] = base[c]
    weights = np.zeros(k)
    selected = np.zeros(k, dtype=np.bool_)
    order = np.full(max_k, -1, dtype=np.int64)
    path_weights = np.zeros((max_k, k))
    path_base = np.zeros((max_k, n_groups))
    g = np.empty((n, n_groups))
    h = np.empty((n, n_groups))
    num = np.empty(k)
    den = np.empty(k)
    b = base.copy()
    ones = np.ones((1, n))
    for step in range(max_k):
        best = fixed[step] if step < fixed.shape[0] else -1
        if best < 0:
            grad_hess(loss, y, margin, p1, g, h)
            _candidate_scores(PT, tree_group, g, h, w, selected, l2, nonneg, num, den)
            best_score = -1.0
            for j in range(k):
                if selected[j]:
                    continue
                if nonneg and num[j] > 0.0:
                    continue
                s = num[j] * num[j] / den[j]
                if s > best_score:
                    best_score = s
                    best = j
        if best < 0:
            break
        selected[best] = True
        order[step] = best
        c = tree_group[best]
        weights[best] = _coordinate_step(PT, best, c, y, w, loss, p1, l2, 0.0, 1.0, margin,
                                         nonneg)
        for _ in range(n_sweeps):
            for cc in range(n_groups):
                # the intercept is a "tree" whose output is 1 on every row, unpenalised
                b[cc] += _coordinate_step(ones, 0, cc, y, w, loss, p1, 0.0, 0.0, 0.0, margin,
                                          False)
            for s_ in range(step + 1):
                j = order[s_]
                weights[j] = _coordinate_step(PT, j, tree_group[j], y, w, loss, p1, l2,
                                              weights[j], 1.0, margin, nonneg)
        path_weights[step, :] = weights
        path_base[step, :] = b
    return order, path_weights, path_base


@njit(parallel=True, cache=True)
def _partition_gains(leaf_of_tree, slot_tree_start, resid, w, counts, selected, lam, sums,
                     gains):
    n_trees, n = leaf_of_tree.shape
    for t in prange(n_trees):
        if selected[t]:
            gains[t] = -1.0
            continue
        s0 = slot_tree_start[t]
        s1 = slot_tree_start[t + 1]
        for s in range(s0, s1):
            sums[s] = 0.0
        for r in range(n):
            sums[leaf_of_tree[t, r]] += w[r] * resid[r]
        g = 0.0
        for s in range(s0, s1):
            if counts[s] + lam > 0.0:  # a leaf no weight reaches is worth nothing (lam may be 0)
                g += sums[s] * sums[s] / (counts[s] + lam)
        gains[t] = g


@njit(cache=True)
def _backfit_tree(leaf_of_tree, t, slot_tree_start, resid, w, counts, lam, values, sums):
    """Refit tree ``t``'s leaves to the residual with its own part added back (one block of a
    Gauss-Seidel sweep on the squared error); ``resid`` and ``values`` are updated in place."""
    n = leaf_of_tree.shape[1]
    s0 = slot_tree_start[t]
    s1 = slot_tree_start[t + 1]
    for s in range(s0, s1):
        sums[s] = 0.0
    for r in range(n):
        s = leaf_of_tree[t, r]
        sums[s] += w[r] * (resid[r] + values[s])
    for s in range(s0, s1):
        den = counts[s] + lam
        new = sums[s] / den if den > 0.0 else values[s]  # no weight: the leaf keeps its value
        sums[s] = new - values[s]
        values[s] = new
    for r in range(n):
        resid[r] -= sums[leaf_of_tree[t, r]]


@njit(cache=True)
def partition_order(leaf_of_tree, slot_tree_start, y, w, max_k, lam, n_sweeps):
    """Greedy forward selection of trees by their *partitions* under squared error.

    ``leaf_of_tree`` (n_trees, n_rows) holds each row's leaf slot per tree. A tree's gain is the
    drop in ``sum_r w_r resid_r^2`` from fitting one fresh value per leaf to the residual,
    ``sum_leaves S^2 / (W + lam)`` (``S``, ``W``: the leaf's weighted residual and weight sums):
    what the tree's splits are worth once its leaves are refitted, whatever its values were
    trained to. After each step the selected trees' leaves are refitted to the residual by
    ``n_sweeps`` Gauss-Seidel sweeps. Returns the order (max_k,), -1 past the last tree that
    lowers the error.
    """
    n_trees, n = leaf_of_tree.shape
    n_slots = slot_tree_start[n_trees]
    counts = np.zeros(n_slots)
    for t in range(n_trees):
        for r in range(n):
            counts[leaf_of_tree[t, r]] += w[r]
    mean = 0.0
    wsum = 0.0
    for r in range(n):
        mean += w[r] * y[r]
        wsum += w[r]
    mean /= wsum
    resid = np.empty(n)
    for r in range(n):
        resid[r] = y[r] - mean
    values = np.zeros(n_slots)
    sums = np.zeros(n_slots)
    gains = np.empty(n_trees)
    selected = np.zeros(n_trees, dtype=np.bool_)
    order = np.full(max_k, -1, dtype=np.int64)
    for step in range(min(max_k, n_trees)):
        _partition_gains(leaf_of_tree, slot_tree_start, resid, w, counts, selected, lam, sums,
                         gains)
        best = np.argmax(gains)
        if not gains[best] > 0.0:
            break
        selected[best] = True
        order[step] = best
        for _ in range(n_sweeps):
            for i in range(step + 1):
                _backfit_tree(leaf_of_tree, order[i], slot_tree_start, resid, w, counts, lam,
                              values, sums)
    return order


__all__ = [
    "partition_order", "grad_hess_row", "grad_hess_at", "grad_hess", "leaf_sums", "refit_cyclic",
    "margin_from_slots", "weighted_gram", "forward_select",
]
