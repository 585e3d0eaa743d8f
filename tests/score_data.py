"""Two scores of the same synthetic applicants, for the metric and comparison tests."""

from __future__ import annotations

import numpy as np


def two_scores(n: int = 3000, seed: int = 7):
    """``(y, p, p_b, margin, w)``: outcomes, a PD, a slightly perturbed PD, its margin, weights."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    margin = 1.2 * y + rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-margin))
    p_b = np.clip(p + rng.normal(scale=0.02, size=n), 0.0, 1.0)
    w = rng.uniform(0.5, 2.0, n)
    return y, p, p_b, margin, w
