"""Checks shared by the tests of the single-row kernels on a layout ``(buf, code_leaf)``."""

from __future__ import annotations

import numpy as np
from lgb_models import LgbSpec, train, wide_category_model

import treeprune as tp
from treeprune.kernels.traverse import margin_row
from treeprune.packed import pack
from treeprune.predict import leaves_packed


def with_infinities(X):
    """``X`` after rows where each column in turn is +inf and -inf."""
    rows = []
    for j in range(X.shape[1]):
        for v in (np.inf, -np.inf):
            r = X[j % len(X)].copy()
            r[j] = v
            rows.append(r)
    return np.concatenate([np.array(rows), X])


def check_layout(ens, X, layout, margin_kernel, one_kernel, leaves_kernel, native_margin=None,
                 native_leaf=None):
    """Every row of ``X`` through ``layout`` (``(buf, code_leaf)``): the margins of
    ``margin_kernel(x, buf)`` (and, for one output, ``one_kernel``'s number) are the batch margins
    and the lock-step walk's, bit for bit, and the native margins within 1e-5; the leaves of
    ``leaves_kernel`` are the native ``pred_leaf`` (or, without one, the batch kernels')."""
    p = pack(ens)
    buf, code_leaf = layout
    X = np.ascontiguousarray(X, dtype=np.float64)
    batch = ens.predict(X, output="margin").reshape(len(X), -1)
    got = np.array([margin_kernel(x, buf) for x in X])
    np.testing.assert_array_equal(got, batch)
    if got.shape[1] == 1:
        np.testing.assert_array_equal(np.array([one_kernel(x, buf) for x in X]), got[:, 0])
    for x, g in zip(X[:100], got[:100], strict=True):
        np.testing.assert_array_equal(g, margin_row(x, *p.walk_args, p.base_margin))
    if native_margin is not None:
        np.testing.assert_allclose(got, np.asarray(native_margin).reshape(got.shape), rtol=0,
                                   atol=1e-5)
    n_trees = len(p.trees)
    leaves = np.array([leaves_kernel(x, buf, code_leaf, np.empty(n_trees, np.int32)) for x in X])
    expected = native_leaf if native_leaf is not None else \
        p.native_id[leaves_packed(p, np.ascontiguousarray(X, dtype=p.dtype))]
    np.testing.assert_array_equal(p.native_id[leaves], expected)


def wide_category_case():
    """A LightGBM model with bitsets of more than 64 categories, rows with odd category values
    (past the bitset, negative, fractional, NaN, huge, infinite, -0.0), its native margins and
    leaves: ``(ens, X, margins, leaves)``."""
    booster, X = wide_category_model()
    ens = tp.load(booster)
    assert (np.diff(pack(ens).cat_bounds) > 2).any()  # bitsets of more than 64 categories
    Xt = np.concatenate([X[:300], [[c, 0.1] for c in (63.0, 64.0, 65.0, 127.9, 149.0, 300.0,
                                                        -0.5, -1.0, np.nan, 2.0**31, -2.0**31,
                                                        np.inf, -np.inf, -0.0)]])
    return ens, Xt, booster.predict(Xt, raw_score=True), booster.predict(Xt, pred_leaf=True)


def largest_threshold_case():
    """A LightGBM model with thresholds at DBL_MAX and +inf, whose next double is +inf (``x <= t``
    keeps: t = DBL_MAX sends only +inf right, t = +inf nothing), and rows with infinities:
    ``(ens, X)``."""
    booster, Xe = train(LgbSpec("binary", num_leaves=15, n_trees=6, n_rows=600))
    ens = tp.load(booster)
    split = np.flatnonzero(ens.left >= 0)
    threshold = ens.threshold.copy()
    threshold[split[::3]] = np.finfo(np.float64).max
    threshold[split[1::3]] = np.inf
    return ens.replace(threshold=threshold), with_infinities(np.asarray(Xe, dtype=np.float64))
