"""What a pruning run should tell its user about how far its own numbers can be trusted.

The judge rows choose the model, so its metric there is optimistic; on a small sample the paired
difference with the original is mostly noise. :func:`prune_warnings` turns the pruning path into
plain-language warnings (kept on ``PruneResult.warnings``, printed by the command line and shown
in the report and the ``--json`` document).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

_MORE_DATA = "give more validation rows, or cross-fit so that every row judges (prune(..., cv=3))"


def _f(x: float) -> str:
    return f"{x:.4f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def prune_warnings(path: pd.DataFrame, chosen: int, original_metric: float, metric: str,
                   higher_is_better: bool, tolerance: float | None, z: float, n_judge: int,
                   fell_back: bool) -> list[str]:
    """Warnings about a pruning run's outcome, each one sentence with what to do.

    Parameters
    ----------
    path : pandas.DataFrame
        The candidates (``n_trees``, ``n_leaves``, ``metric_judge``, ``se_diff``).
    chosen : int
        Row of ``path`` that was chosen.
    original_metric : float
        The original model's metric on the judge rows.
    metric : str
    higher_is_better : bool
    tolerance : float or None
        None for a size budget.
    z : float
        Standard errors the tolerance was guarded by.
    n_judge : int
        Rows that judged the candidates (all rows with cross-fitting).
    fell_back : bool
        No candidate passed: the lossless model was kept.

    Returns
    -------
    list of str
    """
    out: list[str] = []
    sign = 1.0 if higher_is_better else -1.0
    se = path["se_diff"].to_numpy(dtype=float)
    judge = path["metric_judge"].to_numpy(dtype=float)
    candidates = np.ones(len(path), dtype=bool)
    if fell_back:
        candidates[chosen] = False  # the appended lossless model is no candidate
    typical_se = float(np.nanmedian(se[candidates & (se > 0)])) if np.any(
        candidates & (se > 0)) else math.nan

    if fell_back and candidates.any() and tolerance is not None:
        # the candidate closest to passing: the largest guarded change
        slack = sign * (judge - original_metric) - z * np.nan_to_num(se)
        best = int(np.argmax(np.where(candidates, slack, -np.inf)))
        row = path.iloc[best]
        out.append(
            f"nothing was pruned beyond the lossless passes: no candidate kept {metric} within "
            f"the tolerance {tolerance:g} by {z:g} standard error(s) on the {n_judge:,} judge "
            f"rows; the closest, {int(row['n_trees'])} trees / {int(row['n_leaves'])} leaves, "
            f"changed it by {sign * (judge[best] - original_metric):+.4f} (standard error "
            f"{_f(float(se[best]))}); try a larger tolerance, a leaf budget (max_leaves), or "
            f"{_MORE_DATA}"
        )
    if tolerance is not None and math.isfinite(typical_se) and typical_se > tolerance:
        out.append(
            f"too few judge rows for the tolerance: on {n_judge:,} rows the standard error of a "
            f"candidate's {metric} difference with the original is about {_f(typical_se)}, more "
            f"than the tolerance {tolerance:g}, so the judge rows cannot tell a loss of "
            f"{tolerance:g} from chance; {_MORE_DATA}, and check the result on rows nobody "
            "used (compare)"
        )
    if not fell_back:
        gain = sign * (judge[chosen] - original_metric)
        s = float(se[chosen])
        if s > 0 and gain > s:
            what = "tolerance" if tolerance is not None else "budget"
            out.append(
                f"the pruned model beats the original on the judge rows by {gain:.4f} {metric}, "
                f"more than its standard error {_f(s)}: a smaller model seldom beats the one it "
                f"came from, and the judge rows that chose it favour it; expect less on new rows "
                f"and check it on a test set (compare); the {what} result is optimistic, "
                f"{_MORE_DATA}"
            )
    return out


__all__ = ["prune_warnings"]
