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

_MORE_ROWS = "give more validation rows"
_CROSS_FIT = "cross-fit so that every row judges (prune(..., cv=3))"


def _more_data(cv: int) -> str:
    return _MORE_ROWS if cv >= 2 else f"{_MORE_ROWS}, or {_CROSS_FIT}"


def _f(x: float) -> str:
    return f"{x:.4f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def prune_warnings(path: pd.DataFrame, chosen: int, original_metric: float, metric: str,
                   higher_is_better: bool, tolerance: float | None, z: float, n_judge: int,
                   fell_back: bool, cv: int = 1, holdout: dict | None = None,
                   eligible: np.ndarray | None = None) -> list[str]:
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
    cv : int
        Cross-fitting folds used (1: one fit/judge split); the advice does not suggest what
        was already done.
    holdout : dict, optional
        ``PruneResult.holdout``: the chosen model on the confirm rows (``rows``, ``diff``,
        ``se_diff``).
    eligible : numpy.ndarray of bool, optional
        Rows of ``path`` the tolerance rule could choose apart from their own guard (within
        the budget and PSI limit, near the best: :func:`treeprune._stopping.admissible`); only
        those are named as smaller models the judge rows could not certify.

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
    positive = candidates & np.isfinite(se) & (se > 0)
    typical_se = float(np.median(se[positive])) if positive.any() else math.nan

    if fell_back and candidates.any() and tolerance is not None:
        # the candidate closest to passing: the largest guarded change
        slack = sign * (judge - original_metric) - z * np.where(np.isfinite(se), se, 0.0)
        best = int(np.argmax(np.where(candidates & np.isfinite(slack), slack, -np.inf)))
        row = path.iloc[best]
        out.append(
            f"nothing was pruned beyond the lossless passes: no candidate kept {metric} within "
            f"the tolerance {tolerance:g} by {z:g} standard error(s) on the {n_judge:,} judge "
            f"rows; the closest, {int(row['n_trees'])} trees / {int(row['n_leaves'])} leaves, "
            f"changed it by {sign * (judge[best] - original_metric):+.4f} (standard error "
            f"{_f(float(se[best]))}); try a larger tolerance, a leaf budget (max_leaves), or "
            f"{_more_data(cv)}"
        )
        # noise, not loss, is what stopped it: say so
        if math.isfinite(typical_se) and z * typical_se > tolerance:
            out.append(
                f"too few judge rows for the tolerance: on {n_judge:,} rows the standard error "
                f"of a candidate's {metric} difference with the original is about "
                f"{_f(typical_se)}, so the judge rows cannot tell a loss of {tolerance:g} from "
                f"chance; {_more_data(cv)}"
            )
    if tolerance is not None:
        allowed = candidates if eligible is None else candidates & eligible
        out.extend(_uncertified(path, chosen, judge, se, original_metric, sign, metric,
                                tolerance, z, n_judge, allowed))
    if not fell_back:
        gain = sign * (judge[chosen] - original_metric)
        s = float(se[chosen])
        if s > 0 and gain > 2 * s:
            what = "tolerance" if tolerance is not None else "budget"
            out.append(
                f"the pruned model beats the original on the judge rows by {gain:.4f} {metric}, "
                f"more than twice its standard error {_f(s)}: the original probably overfits its "
                f"training data, and the judge rows that chose the pruned model favour it; "
                f"expect less on new rows (result.holdout has the confirm rows' figure) and "
                f"check it on a test set (compare); the {what} result is optimistic"
            )
        h = holdout or {}
        h_diff, h_se = h.get("diff", math.nan), h.get("se_diff", math.nan)
        if (tolerance is not None and math.isfinite(h_diff) and math.isfinite(h_se)
                and sign * h_diff < -tolerance - 2 * h_se):
            out.append(
                f"the confirm rows disagree: on {int(h.get('rows', 0)):,} rows that no decision "
                f"used, the pruned model changes {metric} by {sign * h_diff:+.4f} (standard "
                f"error {_f(h_se)}), beyond the tolerance {tolerance:g} by more than two "
                f"standard errors; choose a larger candidate from result.path, lower the "
                f"tolerance, or {_more_data(cv)}"
            )
    return out


#: a smaller model is worth naming when it has at most this share of the chosen one's leaves
UNCERTIFIED_SHARE = 0.5


def _uncertified(path: pd.DataFrame, chosen: int, judge: np.ndarray, se: np.ndarray,
                 original_metric: float, sign: float, metric: str, tolerance: float, z: float,
                 n_judge: int, allowed: np.ndarray) -> list[str]:
    """The smallest candidate no worse than the original on the judge rows but not certified by
    the guard, when it is much smaller than the chosen one: on a tuned model this is the common
    outcome (a 10x smaller model judged as good as the original with a paired standard error of
    0.002-0.004 cannot be certified within 0.001), and the user should know it exists, what
    certifying it would take, and how to choose it deliberately."""
    leaves = path["n_leaves"].to_numpy(dtype=float)
    change = sign * (judge - original_metric)
    # no worse than the original on the judge rows: a model that the guard alone held back (one
    # just inside the tolerance would need absurdly many rows)
    ok = (np.isfinite(change) & (change >= 0) & np.isfinite(se) & (se > 0)
          & (leaves <= UNCERTIFIED_SHARE * leaves[chosen]))
    ok &= allowed
    if not ok.any() or z <= 0:
        return []
    smallest = int(np.flatnonzero(ok)[np.argmin(leaves[ok])])
    row = path.iloc[smallest]
    # the guard passes once z * se <= change + tolerance; se shrinks as 1 / sqrt(rows); at
    # tolerance 0 a change of exactly 0 (a tied AUC) passes on no number of rows
    room = change[smallest] + tolerance
    rows = (f"certifying it would take about {n_judge * (z * se[smallest] / room) ** 2:,.0f} "
            f"judge rows instead of {n_judge:,}" if room > 0 else
            "no number of judge rows would certify it at tolerance 0")
    return [
        f"a model {leaves[chosen] / leaves[smallest]:.1f}x smaller than the one kept was no "
        f"worse than the original on the judge rows but not within the tolerance by {z:g} "
        f"standard error(s): "
        f"{int(row['n_trees'])} trees / {int(row['n_leaves'])} leaves changed {metric} by "
        f"{change[smallest]:+.4f} (standard error {_f(float(se[smallest]))}); {rows}; to take it "
        f"anyway, prune with max_leaves={int(row['n_leaves'])} and check result.holdout and a "
        f"test set"
    ]


__all__ = ["prune_warnings"]
