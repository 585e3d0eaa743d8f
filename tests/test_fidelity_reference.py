"""_fidelity.Reference: a path's fidelity columns, computed with one sort per candidate, equal
the general functions bit for bit (ties, signed zeros, constant and non-finite scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata

from treeprune import _fidelity


def _scores(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        return rng.normal(size=n)
    if kind == "ties":  # a few hundred distinct scores, as a small pruned model gives
        return np.round(rng.normal(size=n), 2)
    if kind == "clusters":  # a group of one score (no bureau file), signed zeros among them
        out = rng.normal(size=n)
        out[rng.random(n) < 0.3] = 0.0
        out[rng.random(n) < 0.05] = -0.0
        return out
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["continuous", "ties", "clusters"])
@pytest.mark.parametrize("n", [5, 999, 4000])
def test_sorted_ranks_are_rankdata_and_unique(kind, n):
    score = _scores(kind, n, 1)
    rank, inverse, ordered = _fidelity._sorted_ranks(score)
    np.testing.assert_array_equal(rank, rankdata(score))
    assert rank.dtype == rankdata(score).dtype
    np.testing.assert_array_equal(inverse, np.unique(score, return_inverse=True)[1])
    np.testing.assert_array_equal(ordered, np.sort(score))


@pytest.mark.parametrize("kind", ["continuous", "ties", "clusters"])
def test_reference_columns_equal_the_general_functions(kind):
    original = _scores(kind, 3000, 2)
    ref = _fidelity.Reference(original)
    for seed in range(3):
        other = original + _scores(kind, 3000, 10 + seed) * 0.3
        other[::100] = np.resize(ref.inner, 30)  # scores on the PSI bins' edges
        cols = ref.columns(other)
        r, se = _fidelity.spearman_and_se(original, other)
        assert cols["spearman"] == _fidelity.spearman(original, other)
        assert cols["spearman"] == pytest.approx(r, rel=1e-12)
        assert cols["spearman_se"] == se  # bit for bit
        for rate in _fidelity.APPROVAL_RATES:
            assert cols[_fidelity.agreement_column(rate)] == \
                _fidelity.agreement(original, other, rate)
        assert cols["psi"] == pytest.approx(_fidelity.psi(original, other), abs=1e-12)
        # the bins counted off the sorted scores are the searched ones, edges included
        counts = np.bincount(np.searchsorted(ref.inner, other, side="left"),
                             minlength=len(ref.inner) + 1)
        actual = np.where(counts == 0, ref.eps, counts / len(other))
        assert cols["psi"] == float(np.sum((actual - ref.expected)
                                           * np.log(actual / ref.expected)))
        assert cols["psi_se"] == _fidelity.psi_se(actual, ref.expected, len(other))


def test_reference_columns_of_constant_and_non_finite_scores():
    original = _scores("continuous", 500, 3)
    ref = _fidelity.Reference(original)
    flat = ref.columns(np.full(500, 0.7))
    assert math.isnan(flat["spearman"]) and math.isnan(flat["spearman_se"])
    assert flat["agreement_50"] == _fidelity.agreement(original, np.full(500, 0.7), 0.5)
    bad = original.copy()
    bad[:3] = np.nan
    cols = ref.columns(bad)  # the general functions' answer, whatever it is
    assert math.isnan(cols["spearman"])
    assert cols["agreement_80"] == _fidelity.agreement(original, bad, 0.8)
