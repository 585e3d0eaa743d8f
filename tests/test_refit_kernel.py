"""kernels.stats: the Newton refit and the selection's coordinate steps against a plain-Python
reading of the same algorithm, bit for bit (the kernels' fast paths for one output group must add
the same numbers in the same order as the general one)."""

from __future__ import annotations

import numpy as np
import pytest

from treeprune._rules import LOSS_LOGLOSS, LOSS_SQUARED
from treeprune.kernels import stats
from treeprune.kernels.losses import base_step, grad_hess_row, leaf_step


def _refit_reference(leaf_slot, slot_tree_start, values, prior, base, y, w, loss, l2, n_rounds,
                     max_step, margin):
    """refit_cyclic for one output group, in Python floats (IEEE doubles, as the kernel)."""
    n, k_trees = leaf_slot.shape
    G = [0.0] * len(values)
    H = [0.0] * len(values)
    for _ in range(n_rounds):
        gs = hs = 0.0
        for r in range(n):
            gr, hr = grad_hess_row(loss, y[r], margin[r], 0.0)
            gs += w[r] * gr
            hs += w[r] * hr
        d = base_step(gs, hs, 1.0, max_step)
        base[0] += d
        for r in range(n):
            margin[r] += d
        for t in range(k_trees):
            s0, s1 = slot_tree_start[t], slot_tree_start[t + 1]
            for s in range(s0, s1):
                G[s] = H[s] = 0.0
            for r in range(n):
                gr, hr = grad_hess_row(loss, y[r], margin[r], 0.0)
                s = leaf_slot[r, t]
                G[s] += w[r] * gr
                H[s] += w[r] * hr
            for s in range(s0, s1):
                G[s] = leaf_step(G[s], H[s], values[s], prior[s], l2, 1.0, max_step)
                values[s] += G[s]
            for r in range(n):
                margin[r] += G[leaf_slot[r, t]]
    return values, base, margin


def _problem(loss: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, leaves = 400, (3, 5, 2, 4)
    slot_tree_start = np.concatenate([[0], np.cumsum(leaves)]).astype(np.int64)
    leaf_slot = np.column_stack([rng.integers(a, b, n) for a, b in
                                 zip(slot_tree_start[:-1], slot_tree_start[1:], strict=True)])
    values = rng.normal(size=slot_tree_start[-1]) * 0.3
    margin = values[leaf_slot].sum(axis=1) - 0.4
    y = (rng.random(n) < 0.3).astype(float) if loss == LOSS_LOGLOSS else rng.normal(size=n)
    w = rng.random(n)
    return leaf_slot.astype(np.int32), slot_tree_start, values, margin, y, w / w.sum()


@pytest.mark.parametrize("loss", [LOSS_LOGLOSS, LOSS_SQUARED])
def test_refit_cyclic_is_the_plain_algorithm_bit_for_bit(loss):
    leaf_slot, starts, values, margin, y, w = _problem(loss)
    expected = _refit_reference(leaf_slot, starts, values.tolist(), values.tolist(), [-0.4],
                                y.tolist(), w.tolist(), loss, 0.05, 3, 1.0, margin.tolist())
    got_values, got_base = values.copy(), np.array([-0.4])
    got_margin = margin.reshape(-1, 1).copy()
    stats.refit_cyclic(leaf_slot, np.zeros(4, np.int32), starts, got_values, values.copy(),
                       got_base, True, y, w, loss, 0.0, 0.05, 3, 1.0, 1.0, got_margin)
    np.testing.assert_array_equal(got_values, np.array(expected[0]))
    np.testing.assert_array_equal(got_base, np.array(expected[1]))
    np.testing.assert_array_equal(got_margin[:, 0], np.array(expected[2]))


def test_forward_select_is_the_plain_coordinate_descent_bit_for_bit():
    leaf_slot, starts, values, _, y, w = _problem(LOSS_LOGLOSS, seed=1)
    PT = np.ascontiguousarray(values[leaf_slot].T)  # (trees, rows)
    order = np.array([2, 0, 3], dtype=np.int64)  # a fixed order: only the weighting runs
    _, weights, base = stats.forward_select(PT, np.zeros(4, np.int32), y, w, LOSS_LOGLOSS, 0.0,
                                            np.array([0.1]), 3, 2, False, 0.01, order)

    def step(p, alpha, v0, l2, margin):
        a = b = 0.0
        for r in range(len(y)):
            if p[r] == 0.0:
                continue
            gr, hr = grad_hess_row(LOSS_LOGLOSS, y[r], margin[r], 0.0)
            a += w[r] * gr * p[r]
            b += w[r] * hr * p[r] * p[r]
        new = alpha - (a + l2 * (alpha - v0)) / (b + l2)
        d = new - alpha
        if d != 0.0:
            for r in range(len(y)):
                margin[r] += d * p[r]
        return new

    margin, wt, b0 = [0.1] * len(y), [0.0] * 4, 0.1
    ones = [1.0] * len(y)
    for k, tree in enumerate(order):
        wt[tree] = step(PT[tree].tolist(), 0.0, 1.0, 0.01, margin)
        for _ in range(2):
            b0 += step(ones, 0.0, 0.0, 0.0, margin)
            for j in order[:k + 1]:
                wt[j] = step(PT[j].tolist(), wt[j], 1.0, 0.01, margin)
        np.testing.assert_array_equal(weights[k], np.array(wt))
        assert base[k, 0] == b0
