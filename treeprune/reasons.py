"""Reason codes: the features that push each applicant's risk up the most (adverse-action reasons).

A reason is a feature, or a group of related features whose contributions are summed, with its
exact TreeSHAP contribution to the margin (``predict(output="contrib")``). The rules:

* only reasons that push the score in the adverse direction by *more* than ``threshold`` count
  (``direction="increase_risk"``: positive contributions, for a model whose margin grows with the
  risk, as a probability of default does; ``"decrease_risk"`` for a model of the good outcome);
* the ``k`` largest are listed, largest first; equal contributions keep the order of the reasons
  (a feature's position in the model, a group's first feature): the same data always give the
  same order;
* an applicant with fewer than ``k`` qualifying reasons gets empty slots (``None`` / NaN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .ensemble import Ensemble
from .errors import DataError, UnsupportedModelError

DIRECTIONS = ("increase_risk", "decrease_risk")


@dataclass(frozen=True)
class ReasonSet:
    """The reasons of a model: names, the features each sums, and their order.

    ``members[j]`` are the feature indices of reason ``j``; reasons are ordered by their first
    feature (the tie order).
    """

    names: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]
    labels: tuple[str | None, ...]

    def matrix(self, n_features: int) -> np.ndarray:
        """(n_features, n_reasons) 0/1 matrix: contributions @ matrix = reason contributions."""
        out = np.zeros((n_features, len(self.names)))
        for j, idx in enumerate(self.members):
            out[list(idx), j] = 1.0
        return out


def feature_names(ens: Ensemble) -> list[str]:
    names = list(ens.feature_names)
    return names if len(names) == ens.n_features else [f"f{i}" for i in range(ens.n_features)]


def reason_set(ens: Ensemble, groups: Mapping[str, Sequence[str]] | None = None,
               labels: Mapping[str, str] | None = None, *,
               used_only: bool = False) -> ReasonSet:
    """Reasons of ``ens``: every feature not in a group, and every group, in feature order.

    With ``used_only``, features no split uses are left out (their contribution is always 0).

    Raises
    ------
    DataError
        A group names an unknown feature, a feature is in two groups, or a group is empty.
    """
    names = feature_names(ens)
    index = {n: i for i, n in enumerate(names)}
    owner: dict[int, str] = {}
    for group, members in (groups or {}).items():
        if isinstance(members, str):
            members = [members]
        if not len(members):
            raise DataError(f"reason group {group!r} is empty; list the features it sums")
        for m in members:
            if str(m) not in index:
                raise DataError(
                    f"reason group {group!r} names {m!r}, which is not a feature of the model "
                    f"(features: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''})"
                )
            i = index[str(m)]
            if i in owner and owner[i] != group:
                raise DataError(
                    f"feature {m!r} is in reason groups {owner[i]!r} and {group!r}; put it in one"
                )
            owner[i] = str(group)
    for group in set(owner.values()):
        if group in index and owner.get(index[group]) != group:
            raise DataError(
                f"reason group {group!r} has the name of a feature outside it; rename the group"
            )
    used = set(ens.features_used().tolist()) if used_only else set(range(ens.n_features))
    seen: dict[str, list[int]] = {}
    for i in range(ens.n_features):
        seen.setdefault(owner.get(i, names[i]), []).append(i)
    order = sorted(seen, key=lambda n: seen[n][0])
    order = [n for n in order if used.intersection(seen[n])]
    labels = dict(labels or {})
    unknown = [k for k in labels if k not in seen]
    if unknown:
        raise DataError(
            f"labels given for {', '.join(map(repr, unknown[:5]))}, which are neither features "
            "nor reason groups of the model"
        )
    return ReasonSet(
        names=tuple(order),
        members=tuple(tuple(seen[n]) for n in order),
        labels=tuple(labels.get(n) for n in order),
    )


def top_k(values: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``k`` largest values above ``threshold`` (ties: lower column
    first) and those values; -1 / NaN where a row has fewer."""
    n, m = values.shape
    k_eff = min(k, m)
    # a stable sort of the negated values keeps the column order among equal values
    order = np.argsort(-values, axis=1, kind="stable")[:, :k_eff]
    top = np.take_along_axis(values, order, axis=1)
    ok = top > threshold
    idx = np.full((n, k), -1, dtype=np.int64)
    val = np.full((n, k), np.nan)
    idx[:, :k_eff] = np.where(ok, order, -1)
    val[:, :k_eff] = np.where(ok, top, np.nan)
    return idx, val


def _check(ens: Ensemble, k: int, threshold: float, direction: str) -> float:
    if ens.n_groups != 1:
        raise UnsupportedModelError(
            f"reason codes need a single-output (binary or regression) model; this one has "
            f"{ens.n_groups} classes"
        )
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    if not np.isfinite(threshold) or threshold < 0:
        raise DataError(
            f"threshold must be a finite number >= 0 (a reason must push the score the adverse "
            f"way), got {threshold!r}"
        )
    if direction not in DIRECTIONS:
        raise DataError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return 1.0 if direction == "increase_risk" else -1.0


def reason_codes(
    model: Any,
    X: Any,
    k: int = 4,
    *,
    threshold: float = 0.0,
    groups: Mapping[str, Sequence[str]] | None = None,
    labels: Mapping[str, str] | None = None,
    direction: str = "increase_risk",
    n_threads: int | None = None,
) -> pd.DataFrame:
    """The ``k`` reasons that push each row's risk up the most, with their contributions.

    Parameters
    ----------
    model : Ensemble or anything :func:`treeprune.load` accepts
        A binary or regression model.
    X : array-like or pandas.DataFrame
        The applicants (as for :meth:`Ensemble.predict`).
    k : int, default 4
        Reasons per row.
    threshold : float, default 0.0
        A reason counts only if it moves the margin the adverse way by more than this (margin
        units, e.g. log-odds); rows with fewer qualifying reasons get empty slots.
    groups : mapping of str to list of str, optional
        Related features reported as one reason (``{"delinquency": ["pay_0", "pay_2"]}``): their
        contributions are summed. Features in no group are reasons of their own.
    labels : mapping of str to str, optional
        Human-readable text per reason (feature or group name), added as ``label_i`` columns.
    direction : {"increase_risk", "decrease_risk"}
        ``"increase_risk"`` (default): the margin grows with the risk (a probability of default)
        and reasons are the largest positive contributions. ``"decrease_risk"``: the margin
        grows with creditworthiness and reasons are the most negative contributions (reported
        with their sign, negative).
    n_threads : int, optional
        Threads for the contribution kernel.

    Returns
    -------
    pandas.DataFrame
        One row per applicant (``X``'s index for a DataFrame), columns ``reason_1``,
        ``contribution_1`` (and ``label_1`` with ``labels``), ..., ``reason_k``, ...

    Raises
    ------
    UnsupportedModelError
        A multiclass model.
    DataError
        Bad ``k``, ``threshold``, ``direction``, groups or labels, or data that do not fit.
    """
    from .io import load

    ens = load(model)
    sign = _check(ens, k, float(threshold), direction)
    rs = reason_set(ens, groups, labels)
    contrib = np.asarray(ens.predict(X, output="contrib", n_threads=n_threads))
    per_reason = contrib[:, :-1] @ rs.matrix(ens.n_features)
    idx, val = top_k(sign * per_reason, int(k), float(threshold))
    return reasons_frame(rs, idx, sign * val, labels is not None, _index(X, len(contrib)))


def _index(X: Any, n: int) -> pd.Index:
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.index
    return pd.RangeIndex(n)


def reasons_frame(rs: ReasonSet, idx: np.ndarray, val: np.ndarray, with_labels: bool,
                  index: pd.Index | None = None) -> pd.DataFrame:
    """The wide reasons table from per-row reason indices (-1: none) and contributions."""
    names = np.array([*rs.names, None], dtype=object)
    labels = np.array([*(lab if lab is not None else n for n, lab in zip(rs.names, rs.labels,
                                                                         strict=True)), None],
                      dtype=object)
    cols: dict[str, Any] = {}
    for j in range(idx.shape[1]):
        cols[f"reason_{j + 1}"] = names[idx[:, j]]
        cols[f"contribution_{j + 1}"] = val[:, j]
        if with_labels:
            cols[f"label_{j + 1}"] = labels[idx[:, j]]
    return pd.DataFrame(cols, index=index)


def reason_frequencies(frame: pd.DataFrame) -> pd.Series:
    """How often each reason appears among a reasons table's reasons (any rank), descending."""
    reason_cols = [c for c in frame.columns if str(c).startswith("reason_")]
    values = [v for v in frame[reason_cols].to_numpy().ravel() if v is not None and v == v]
    counts = pd.Series(values, dtype=object).value_counts()
    return counts.sort_index().sort_values(ascending=False, kind="stable")


@dataclass(frozen=True)
class ReasonShift:
    """How reasons change from one model to another on the same applicants.

    ``table``: one row per reason with the share of applicants for whom it is the first reason
    and one of the top ``k``, before and after. ``first_same``: share of applicants whose first
    reason is unchanged (both empty counts as unchanged); ``set_same``: share whose set of top
    ``k`` reasons is unchanged.
    """

    table: pd.DataFrame
    first_same: float
    set_same: float
    k: int
    n_rows: int


def reason_shift(before: Any, after: Any, X: Any, k: int = 4, **options: Any) -> ReasonShift:
    """Compare the reason codes of ``before`` and ``after`` (e.g. a model and its pruned version)
    on the rows ``X``; ``options`` go to :func:`reason_codes` (threshold, groups, direction)."""
    a = reason_codes(before, X, k, **options)
    b = reason_codes(after, X, k, **options)
    cols = [f"reason_{j}" for j in range(1, k + 1)]

    def sets(frame: pd.DataFrame) -> list[frozenset]:
        return [frozenset(v for v in row if isinstance(v, str)) for row in
                frame[cols].to_numpy()]

    def first(frame: pd.DataFrame) -> np.ndarray:
        return np.array([v if isinstance(v, str) else "" for v in frame["reason_1"]], dtype=object)

    n = len(a)
    sa, sb = sets(a), sets(b)
    fa, fb = first(a), first(b)
    names = sorted(set().union(*sa, *sb) if n else set(),
                   key=lambda r: (-sum(r in s for s in sa), r))
    table = pd.DataFrame({
        "reason": names,
        "first_before": [float(np.mean(fa == r)) for r in names],
        "first_after": [float(np.mean(fb == r)) for r in names],
        "top_k_before": [sum(r in s for s in sa) / max(n, 1) for r in names],
        "top_k_after": [sum(r in s for s in sb) / max(n, 1) for r in names],
    })
    return ReasonShift(
        table=table,
        first_same=float(np.mean(fa == fb)) if n else 1.0,
        set_same=float(np.mean([x == y for x, y in zip(sa, sb, strict=True)])) if n else 1.0,
        k=int(k),
        n_rows=n,
    )


#: Rows the change report explains (the first ones of its data), to bound its cost.
REPORT_ROWS = 5000


def report_section(original: Any, pruned: Any, X: Any, k: int = 4
                   ) -> tuple[pd.DataFrame | None, str]:
    """The change report's reasons table (shares in percent) and its caption."""
    from .errors import TreePruneError

    rows = X.iloc[:REPORT_ROWS] if hasattr(X, "iloc") else np.asarray(X)[:REPORT_ROWS]
    try:
        shift = reason_shift(original, pruned, rows, k)
    except TreePruneError as exc:
        return None, f"Not available: {exc}"
    table = shift.table.set_index("reason")
    table = (100.0 * table).rename(columns={
        "first_before": "first reason, original (%)", "first_after": "first reason, pruned (%)",
        "top_k_before": f"in top {k}, original (%)", "top_k_after": f"in top {k}, pruned (%)"})
    note = (f"How often each feature is a reason for a high score (exact TreeSHAP contribution "
            f"above 0, top {k}, as treeprune.reason_codes) on {shift.n_rows:,} rows. The first "
            f"reason is unchanged for {100 * shift.first_same:.1f}% of them, the set of top {k} "
            f"reasons for {100 * shift.set_same:.1f}%.")
    return table, note


__all__ = ["DIRECTIONS", "ReasonShift", "reason_codes", "reason_frequencies", "reason_shift"]
