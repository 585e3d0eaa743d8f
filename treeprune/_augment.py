"""Synthetic rows for fitting the original's margins, where labels are not needed.

In fidelity mode the fit target of a row is the original model's margin, which treeprune can
compute for any row, so the fit is not limited to the rows given: more rows near the data pin
down the leaf values of a collapsed or selected model better (measured: the development sample
as ``X_unlabeled`` lifted held-out Spearman from 0.987 to 0.994 on a 1,200-row data set). Where
no such sample is given, rows are made from the fit rows themselves: each new row is a fit row
with a random share of its values taken from another fit row. Every value is one the data
holds (categories, special codes and missing values stay valid), the features' marginal
distributions are kept, and rows stay near the data's support (most of each row is one real
row), which is where held-out rows are scored. Only fit rows are used, so the judge and confirm
rows stay unseen.
"""

from __future__ import annotations

import numpy as np

#: Share of a synthetic row's values taken from a second row.
MIX_SHARE = 0.3


def mixed_rows(X: np.ndarray, n_rows: int, rng: np.random.Generator,
               share: float = MIX_SHARE) -> np.ndarray:
    """``n_rows`` rows, each a random row of ``X`` with about ``share`` of its values (chosen
    per value) taken from another random row of ``X``."""
    base = X[rng.integers(0, X.shape[0], n_rows)]
    donor = X[rng.integers(0, X.shape[0], n_rows)]
    return np.where(rng.random(base.shape) < share, donor, base)
