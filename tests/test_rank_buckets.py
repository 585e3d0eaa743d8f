"""The rank coding's threshold search: a feature value's rank is how many of the feature's
thresholds it reaches, found through equal-width buckets and a short binary search in a window.

Checked two ways: the slot values of rows against ``np.searchsorted`` on hand-made threshold sets
(dense clusters, one threshold, spans too wide or too narrow for buckets, infinities, zeros,
subnormals), and the margins and leaves of a LightGBM model with hundreds of thresholds per
feature against native LightGBM on rows at and next to every threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
from lgb_models import LgbSpec, train
from row_checks import check_layout

import treeprune as tp
from treeprune._rules import FEATURE_BITS, FLAG_LEAF, LIGHTGBM_ZERO_THRESHOLD, RULE_LIGHTGBM
from treeprune.kernels.chained import chained_margin_one_kernel, leaves_row_chained
from treeprune.kernels.ranked import RANK_RIGHT, assemble, rank_code, row_slots
from treeprune.packed import pack

_TINY = np.finfo(np.float64).tiny
_MAX = np.finfo(np.float64).max


def _layout(features: list[np.ndarray]) -> np.ndarray:
    """A rank-coded layout whose splits are ``x >= t`` for every threshold ``t`` of each
    feature (feature ``f``: ``features[f]``, NaN going left), without trees to walk."""
    feature = np.concatenate([np.full(len(t), f) for f, t in enumerate(features)])
    threshold = np.concatenate(features)
    # the split nodes, then one leaf (the rank coding reads only the splits)
    info = np.append(feature, FLAG_LEAF << FEATURE_BITS).astype(np.int32)
    threshold = np.append(threshold, -np.inf)
    cat = np.full(len(info), -1, np.int32)
    code = rank_code(info, threshold, cat, np.zeros(1, np.int64), np.zeros(0, np.uint32),
                     RULE_LIGHTGBM)
    assert code is not None
    return assemble(code, RULE_LIGHTGBM, np.zeros(1, np.uint64), 0, 0, np.zeros(0, np.int64),
                    np.zeros(0, np.int64), np.zeros(1), np.zeros(0))


def _probes(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values at, just below and just above every threshold, between them, and odd values."""
    finite = t[np.isfinite(t)]
    # between neighbouring thresholds (halves: the midpoint of two huge values would overflow)
    between = finite[:-1] / 2 + np.diff(finite / 2) * rng.random(max(len(finite) - 1, 0))
    odd = [0.0, -0.0, 1e-36, -1e-36, 2e-35, -2e-35, _TINY, -_TINY, 5e-324, -5e-324, _MAX, -_MAX,
           np.inf, -np.inf, 1.0, -1.0]
    return np.concatenate([t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), between, odd])


THRESHOLD_SETS = {
    "dense clusters": lambda rng: np.concatenate([rng.normal(0, 1e-3, 300), rng.normal(5, 2, 400),
                                                  rng.normal(1e6, 1, 50)]),
    "one threshold": lambda rng: np.array([0.25]),
    "two equal-width": lambda rng: np.array([-1.0, 1.0]),
    "span past the largest double": lambda rng: np.array([-_MAX, -1.0, 0.0, 3.0, _MAX]),
    "infinite ends": lambda rng: np.array([-np.inf, -2.0, 0.5, 7.0, np.inf]),
    "subnormal span": lambda rng: np.array([5e-324, 1e-323, 2e-323, 1e-322]),
    "around zero": lambda rng: np.array([-1e-35, -1e-300, 0.0, 1e-300, 1e-35, 2e-35]),
    "integers": lambda rng: np.arange(-50.0, 3000.0),
    "past the bucket limit": lambda rng: np.sort(rng.standard_cauchy(20000)),
}


@pytest.mark.parametrize("name", list(THRESHOLD_SETS))
def test_slot_values_are_the_ranks_of_the_values(name):
    rng = np.random.default_rng(0)
    t = np.unique(THRESHOLD_SETS[name](rng))
    # the same thresholds as a second feature, after a feature of one threshold
    buf = _layout([np.array([0.0]), t])
    u = np.unique(t)
    for v in np.append(_probes(t, rng), np.nan):
        slots = row_slots(np.array([1.0, v]), buf)
        if np.isnan(v):
            assert list(slots[4:8]) == [0, RANK_RIGHT, 0, RANK_RIGHT]
            continue
        read = 0.0 if abs(v) <= LIGHTGBM_ZERO_THRESHOLD else v
        rank = np.searchsorted(u, read, "right")
        assert slots[4] == rank and slots[5] == rank, (name, v, slots[4], rank)
        assert slots[0] == 1  # the first feature: 1.0 reaches its one threshold


def test_lightgbm_rows_at_every_threshold_match_native():
    """Hundreds of thresholds per feature (max_bin 1023): rows at and next to each of them."""
    spec = LgbSpec("binary", num_leaves=63, n_trees=25, n_rows=4000, n_features=4, nan_frac=0.1,
                   params=(("max_bin", 1023), ("min_data_in_leaf", 2),
                           ("min_sum_hessian_in_leaf", 0.0)))
    booster, Xe = train(spec)
    base = np.asarray(Xe, dtype=np.float64)
    ens = tp.load(booster)
    p = pack(ens)
    split = (p.info >> FEATURE_BITS & FLAG_LEAF) == 0
    feature = p.info & ((1 << FEATURE_BITS) - 1)
    rows = []
    rng = np.random.default_rng(1)
    for f in range(spec.n_features):
        t = np.unique(ens.threshold[ens.left >= 0][ens.feature[ens.left >= 0] == f])
        for v in np.concatenate([t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]):
            r = base[rng.integers(len(base))].copy()
            r[f] = v
            rows.append(r)
    assert max(np.unique(p.threshold[split & (feature == f)]).size
               for f in range(spec.n_features)) > 200  # the case under test
    X = np.vstack([base[:200], np.array(rows)])
    check_layout(ens, X, p.chained, p.single_row[0], chained_margin_one_kernel(p.dtype),
                 leaves_row_chained, booster.predict(X, raw_score=True),
                 booster.predict(X, pred_leaf=True))
