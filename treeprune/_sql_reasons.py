"""Contributions and top-K reasons as SQL columns (``to_sql(..., reasons=K)``).

A tree's exact TreeSHAP value for feature ``f`` is a sum over its root-to-leaf paths through a
split on ``f``. On a path, the row enters only through one bit per distinct feature: does it
satisfy every split of the path on that feature? For each path the contribution of each of its
features is therefore a fixed number per bit pattern (``treeprune.kernels.shap.path_table``,
times the leaf value), and the SQL is a ``CASE`` on the pattern: ``2**d`` numbers for a path with
``d`` distinct features. For stumps and depth-2 trees that is two or four leaf terms per path;
deeper trees are written the same way while the patterns stay few (see :data:`MAX_PATH_FEATURES`
and :data:`MAX_TERMS`), otherwise the export refuses with the sizes it supports.

The reasons are ranked in SQL like :func:`treeprune.reason_codes` ranks them: by contribution,
largest first, equal contributions in feature order, only contributions above zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .contrib import paths
from .errors import ConversionError, UnsupportedModelError
from .kernels.shap import path_table
from .packed import pack
from .reasons import feature_names

#: Most distinct features on one root-to-leaf path (2**6 = 64 numbers per path and feature).
MAX_PATH_FEATURES = 6
#: Most pattern numbers in the whole query.
MAX_TERMS = 200_000
CONTRIB_PREFIX = "contrib_"


def _check_size(sp: Any, n_trees: int) -> None:
    d = np.diff(sp.elem_start)
    worst = int(d.max(initial=0))
    terms = int(np.sum(d * (2.0 ** d)))
    if worst > MAX_PATH_FEATURES or terms > MAX_TERMS:
        raise UnsupportedModelError(
            f"SQL reasons support models whose root-to-leaf paths split on at most "
            f"{MAX_PATH_FEATURES} distinct features, with at most {MAX_TERMS} pattern terms in "
            f"all (every stump or depth-2 model fits; deeper ones while small); this model "
            f"({n_trees} trees) has up to {worst} distinct features on a path and {terms} terms. "
            "Prune it further (for example max_leaves=..., or cap_depth) or compute reasons in "
            "Python with treeprune.reason_codes"
        )


def contribution_columns(writer: Any, indent: str) -> tuple[list[int], list[str], float]:
    """SQL expressions of the contribution of every feature a split uses, and the bias.

    Returns the feature indices (model order), one expression per feature and the bias (the
    expected margin: base margin plus every tree's expected output).
    """
    from .sql import number

    ens = writer.ens
    sp = paths(ens)
    _check_size(sp, ens.n_trees)
    p = pack(ens)
    terms: dict[int, list[tuple[str, str]]] = {}
    for t in range(ens.n_trees):
        root = int(sp.trees[t, 0])
        for q in range(int(sp.path_start[t]), int(sp.path_start[t + 1])):
            e0, e1 = int(sp.elem_start[q]), int(sp.elem_start[q + 1])
            d = e1 - e0
            z = np.empty(d + 1)
            z[1:] = sp.elem_zero[e0:e1]
            table = path_table(z, d, np.empty((1 << d, d))) * sp.path_value[q]
            conds: list[list[str]] = [[] for _ in range(d)]
            for c in range(int(sp.cond_start[q]), int(sp.cond_start[q + 1])):
                node = int(p.node_id[root + int(sp.cond_node[c])])
                left = writer.condition(node).total()
                conds[int(sp.cond_elem[c]) - 1].append(
                    f"NOT ({left})" if sp.cond_right[c] else left)
            bits = [f"CASE WHEN {' AND '.join(cs)} THEN {1 << e} ELSE 0 END"
                    for e, cs in enumerate(conds)]
            pattern = bits[0] if d == 1 else "(" + " + ".join(bits) + ")"
            leaf = int(ens.native_id[int(sp.path_leaf[q])])
            for e in range(d):
                whens = " ".join(f"WHEN {m} THEN {number(table[m, e])}"
                                 for m in range(1 << d) if table[m, e] != 0.0)
                if not whens:
                    continue
                f = int(sp.elem_feature[e0 + e])
                terms.setdefault(f, []).append(
                    (f"CASE {pattern} {whens} ELSE 0.0 END", f"tree {t} leaf {leaf}"))
    features = sorted(terms)
    exprs = [writer._sum(terms[f], indent) for f in features]
    return features, exprs, float(sp.bias[0])


def _quote(name: str) -> str:
    from .sql import quote_identifier

    return quote_identifier(name)


def contrib_names(writer: Any, features: list[int]) -> list[str]:
    names = feature_names(writer.ens)
    return [_quote(CONTRIB_PREFIX + names[f]) for f in features]


def rank_columns(cols: list[str]) -> list[str]:
    """``1 + the number of contributions ranked before this one`` (larger, or equal and earlier),
    one SQL expression per column."""
    out = []
    for j, cj in enumerate(cols):
        parts = [f"CASE WHEN {ci} {'>=' if i < j else '>'} {cj} THEN 1 ELSE 0 END"
                 for i, ci in enumerate(cols) if i != j]
        out.append("1" if not parts else "1 + " + " + ".join(parts))
    return out


def reason_columns(writer: Any, features: list[int], k: int) -> list[str]:
    """``reason_r`` and ``contribution_r`` for r = 1..k, from the contribution and rank columns."""
    from .sql import level_literal

    names = feature_names(writer.ens)
    cols = contrib_names(writer, features)
    out = []
    for r in range(1, k + 1):
        name_whens, value_whens = [], []
        for j, (f, col) in enumerate(zip(features, cols, strict=True)):
            test = f"WHEN {_quote(f'_rank_{j}')} = {r} AND {col} > 0.0"
            name_whens.append(f"{test} THEN {level_literal(names[f])}")
            value_whens.append(f"{test} THEN {col}")
        if not features:
            out += [f"NULL AS \"reason_{r}\"", f"NULL AS \"contribution_{r}\""]
            continue
        out.append(f"CASE {' '.join(name_whens)} ELSE NULL END AS \"reason_{r}\"")
        out.append(f"CASE {' '.join(value_whens)} ELSE NULL END AS \"contribution_{r}\"")
    return out


@dataclass(frozen=True)
class ReasonSQL:
    """The pieces :func:`treeprune.sql.to_sql` places: contribution columns next to the margin
    (``inner``), the ranks one level up (``ranks``), the output columns (``outer``)."""

    inner: list[str]
    ranks: str
    outer: list[str]
    header: str


def reason_sql(writer: Any, reasons: Any, null_if: str | None) -> ReasonSQL:
    """Contribution, rank and reason columns for ``to_sql(..., reasons=K)``.

    ``null_if`` is a condition under which the row's outputs are NULL (XGBoost refusing an
    unknown category level).
    """
    if isinstance(reasons, bool) or not isinstance(reasons, (int, np.integer)) or reasons < 1:
        raise ConversionError(f"reasons must be a positive integer (K reasons per row); "
                              f"got {reasons!r}")
    from .sql import number

    features, exprs, bias = contribution_columns(writer, "      ")
    cols = contrib_names(writer, features)
    bias_col = _quote(CONTRIB_PREFIX + "bias")
    inner = []
    for expr, col in [*zip(exprs, cols, strict=True), (number(bias), bias_col)]:
        if null_if:
            expr = f"CASE WHEN {null_if} THEN NULL ELSE {expr} END"
        inner.append(f"    {expr} AS {col}")
    ranks = ", ".join(f"{r} AS {_quote(f'_rank_{j}')}"
                      for j, r in enumerate(rank_columns(cols)))
    outer = [f"  {c} AS {c}" for c in [*cols, bias_col]]
    outer += [f"  {c}" for c in reason_columns(writer, features, int(reasons))]
    header = (f"also: {CONTRIB_PREFIX}<feature> (exact TreeSHAP contribution to the margin) for "
              f"the {len(features)} features the model uses, {CONTRIB_PREFIX}bias (expected "
              f"margin; the contributions sum to margin - bias), and reason_1..reason_{reasons} "
              "with contribution_1..: the features that push the margin up the most (above 0, "
              "largest first, ties in feature order)")
    return ReasonSQL(inner=inner, ranks=ranks or "0 AS \"_rank_none\"", outer=outer,
                     header=header)


__all__ = ["MAX_PATH_FEATURES", "MAX_TERMS", "ReasonSQL", "contribution_columns", "reason_sql"]
