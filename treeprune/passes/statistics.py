"""Statistics-based passes: no data needed, only what the trainer stored.

* :func:`collapse_low_gain` — collapse, bottom-up, splits over two leaves whose stored gain or
  cover (hessian sum) is below a threshold.
* :func:`cap_depth` — collapse every node at a given depth into a leaf.
* :func:`drop_low_gain_trees` / :func:`keep_top_trees_by_gain` — drop whole trees by their total
  split gain.

The value of a collapsed node is the value the trainer would have given it as a leaf, shrinkage
included (:func:`collapsed_value`):

* LightGBM stores ``internal_value`` for every split, already multiplied by the learning rate
  (and, in the first tree of a group, already holding the folded intercept): it is used as is.
* XGBoost stores ``base_weights``, the *unshrunk* weight ``-G/(H + lambda)`` of every split
  (XGBoost 3.x stores the shrunk value for leaves, so the learning rate cannot be read off the
  leaves). The learning rate ``eta`` of each tree is recovered from the identity
  ``eta * G_n = -sum_i v_i (H_i + lambda)`` over the leaves ``i`` below node ``n``:
  ``eta_n = sum_i v_i (H_i + lambda) / (base_weight_n (H_n + lambda))`` is the same at every
  node of a tree when there is no L1 term, no ``max_delta_step`` clipping and no monotone
  clipping. ``lambda`` comes from the training parameters the reader kept (a model read from a
  ``Booster``) or is estimated as the value that makes ``eta_n`` most nearly constant; ``eta``
  per tree is the median ``eta_n`` when most of them agree with it to 1e-3 (a node with a
  near-zero base weight, such as the root of the first tree, gives a meaningless ratio), else the configured learning rate
  when known, else the median. The collapsed value is ``eta * base_weight``.
* When the internal value is unknown (NaN) or ``eta`` cannot be found, the value is
  ``sum_i v_i (H_i + lambda) / (sum_i H_i + lambda)`` over the leaves below the node: the
  trainer's value without L1/clipping (``lambda`` = 0 for LightGBM, where it is the
  cover-weighted mean of the leaves); a plain mean when covers are unknown.

Monotone constraints: trainers keep a tree monotone by making every split on a constrained
feature *order* its two subtrees (all leaves on the low side at or below all leaves on the high
side). A collapsed value is clipped into the range that keeps every ancestor split ordered, so a
model whose trees were ordered stays monotone. :func:`collapse_low_gain` skips a collapse for
which no such value exists; :func:`cap_depth` must collapse and counts those cases in
``details["monotone_unresolved"]``.

LightGBM's intercept: dropping the first tree of a group moves ``folded_intercept[g]`` into
``base_margin[g]`` (the LightGBM writer folds the base margin back into a tree). Dropped
single-leaf trees are constants: their value goes into the base margin too, never lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ..ensemble import Ensemble
from ..errors import PruneError
from ..trees import Tree, assemble, bfs_order, copy_nodes, get_trees, make_leaf, subtree_leaves
from .base import record
from .lossless import drop_trees

__all__ = [
    "collapse_low_gain",
    "cap_depth",
    "drop_low_gain_trees",
    "keep_top_trees_by_gain",
    "tree_total_gain",
    "collapsed_value",
    "xgboost_learning_rates",
]

_TIGHT = 1e-3


# ----------------------------------------------------------------------------- value rule
@dataclass(frozen=True)
class _ValueRule:
    source: str
    eta: np.ndarray  # per tree (XGBoost); NaN unknown
    lam: float  # L2 for the fallback formula
    info: dict[str, Any]


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _subtree_sums(tree: Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per node: sum of v*H, sum of v, sum of H over its leaves, and whether all are finite."""
    nd = tree.nodes
    n = tree.n_nodes
    svh, sv, sh = np.zeros(n), np.zeros(n), np.zeros(n)
    ok = np.zeros(n, dtype=bool)
    for i in bfs_order(tree)[::-1].tolist():
        if nd["left"][i] < 0:
            v, h = float(nd["value"][i]), float(nd["cover"][i])
            svh[i], sv[i], sh[i] = v * h, v, h
            ok[i] = math.isfinite(v) and math.isfinite(h)
        else:
            lc, rc = int(nd["left"][i]), int(nd["right"][i])
            svh[i], sv[i], sh[i] = svh[lc] + svh[rc], sv[lc] + sv[rc], sh[lc] + sh[rc]
            ok[i] = ok[lc] and ok[rc]
    return svh, sv, sh, ok


def xgboost_learning_rates(ens: Ensemble) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Per-tree learning rate of an XGBoost ensemble, the L2 ``lambda`` used, and how they were found.

    See the module docstring. Trees whose rate cannot be found get NaN.
    """
    params = ens.source_meta.get("xgboost_train_params") or {}
    lam_cfg = _number(params.get("reg_lambda", params.get("lambda")))
    eta_cfg = _number(params.get("learning_rate", params.get("eta")))
    # per internal node: S1 = sum v_i H_i, S0 = sum v_i, H = H_n, b = base weight
    rows = []
    for t, tree in enumerate(get_trees(ens)):
        svh, sv, sh, ok = _subtree_sums(tree)
        nd = tree.nodes
        order = bfs_order(tree)
        internal = order[nd["left"][order] >= 0]
        b = nd["value"][internal]
        h = nd["cover"][internal]
        sel = ok[internal] & np.isfinite(b) & (np.abs(b) > 1e-12) & np.isfinite(h) & (h > 0)
        for i, bb, hh in zip(internal[sel], b[sel], h[sel], strict=True):
            rows.append((t, svh[i], sv[i], hh, bb))
    eta = np.full(ens.n_trees, np.nan)
    info: dict[str, Any] = {"lambda_source": "config" if lam_cfg is not None else "estimated",
                            "eta_config": eta_cfg}
    if not rows:
        lam = lam_cfg if lam_cfg is not None else 1.0
        if eta_cfg is not None and eta_cfg > 0:
            eta[:] = eta_cfg
            info["eta_source"] = "config"
        else:
            info["eta_source"] = "unknown"
        return eta, lam, info
    arr = np.asarray(rows, dtype=np.float64)
    tid = arr[:, 0].astype(np.int64)
    s1, s0, hn, bw = arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4]

    def ratios(lam: float) -> np.ndarray:
        return (s1 + lam * s0) / (bw * (hn + lam))

    def spread(lam: float) -> float:
        r = ratios(lam)
        med = np.median(r)
        if not np.isfinite(med) or med == 0:
            return np.inf
        return float(np.median(np.abs(r - med)) / abs(med))

    if lam_cfg is not None:
        lam = lam_cfg
    else:
        grid = np.concatenate([[0.0], np.logspace(-3, 3, 121)])
        scores = np.array([spread(v) for v in grid])
        k = int(np.argmin(scores))
        lam = float(grid[k])
        best = float(scores[k])
        # refine between the neighbours on the grid
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        res = minimize_scalar(spread, bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-9 * max(hi, 1e-3)})
        if res.success and res.fun < best:
            lam, best = float(res.x), float(res.fun)
        # users set lambda with few digits (XGBoost keeps it as float32): snap to such a value
        for digits in range(1, 7):
            nice = float(np.float32(float(f"{lam:.{digits}g}")))
            s = spread(nice)
            if s <= max(best * 1.5, 1e-6):
                lam, best = nice, min(best, s)
                break
    r = ratios(lam)
    glob = float(np.median(r))
    sources = []
    for t in range(ens.n_trees):
        rt = r[tid == t]
        rt = rt[np.isfinite(rt)]
        if len(rt):
            med = float(np.median(rt))
            agree = np.count_nonzero(np.abs(rt - med) <= _TIGHT * abs(med))
            tight = med > 0 and agree >= 0.5 * len(rt)
        else:
            med, tight = np.nan, False
        if tight:
            eta[t], src = med, "estimated"
        elif eta_cfg is not None and eta_cfg > 0:
            eta[t], src = eta_cfg, "config"
        elif math.isfinite(med) and med > 0:
            eta[t], src = med, "median"
        elif math.isfinite(glob) and glob > 0:
            eta[t], src = glob, "median"
        else:
            src = "unknown"
        sources.append(src)
    info["eta_source"] = {s: sources.count(s) for s in sorted(set(sources))}
    info["eta_median"] = float(np.nanmedian(eta)) if np.any(np.isfinite(eta)) else None
    return eta, lam, info


def _value_rule(ens: Ensemble) -> _ValueRule:
    if ens.source == "xgboost":
        eta, lam, info = xgboost_learning_rates(ens)
        return _ValueRule("xgboost", eta, lam, {"xgboost_lambda": lam, **info})
    return _ValueRule(ens.source, np.full(ens.n_trees, np.nan), 0.0, {})


def _fallback_value(nd: dict[str, np.ndarray], n: int, lam: float) -> float:
    leaves = subtree_leaves(nd["left"], nd["right"], n)
    v = nd["value"][leaves]
    h = nd["cover"][leaves]
    if np.all(np.isfinite(h)) and np.all(h >= 0) and h.sum() + lam > 0:
        return float(np.sum(v * (h + lam)) / (h.sum() + lam))
    return float(np.mean(v))


def _node_value(rule: _ValueRule, t: int, nd: dict[str, np.ndarray], n: int) -> tuple[float, bool]:
    """The trainer's value for node ``n`` of tree ``t`` and whether it was the stored one."""
    v = float(nd["value"][n])
    if math.isfinite(v):
        if rule.source != "xgboost":
            return v, True
        if math.isfinite(rule.eta[t]):
            return float(rule.eta[t]) * v, True
    return _fallback_value(nd, n, rule.lam), False


def collapsed_value(ens: Ensemble, tree: int, node: int) -> float:
    """The leaf value node ``node`` (local id) of tree ``tree`` gets when collapsed.

    Monotone clipping is not applied here (see the module docstring for the rule).
    """
    t = get_trees(ens)[tree]
    return _node_value(_value_rule(ens), tree, t.nodes, node)[0]


# ----------------------------------------------------------------------------- tree editor
class _Editor:
    """Collapses nodes of one tree, keeping split orderings on monotone-constrained features."""

    def __init__(self, tree: Tree, t: int, rule: _ValueRule, constraints: tuple[int, ...]):
        self.tree = tree
        self.t = t
        self.rule = rule
        self.nd = copy_nodes(tree)
        nd = self.nd
        self.order = bfs_order(tree)
        n = tree.n_nodes
        self.parent = np.full(n, -1, dtype=np.int64)
        self.depth = np.zeros(n, dtype=np.int64)
        for i in self.order.tolist():
            if nd["left"][i] >= 0:
                for c in (int(nd["left"][i]), int(nd["right"][i])):
                    self.parent[c] = i
                    self.depth[c] = self.depth[i] + 1
        self.n_int = np.zeros(n, dtype=np.int64)
        self.mn = np.full(n, np.inf)
        self.mx = np.full(n, -np.inf)
        for i in self.order[::-1].tolist():
            if nd["left"][i] < 0:
                self.mn[i] = self.mx[i] = nd["value"][i]
            else:
                lc, rc = int(nd["left"][i]), int(nd["right"][i])
                self.n_int[i] = 1 + self.n_int[lc] + self.n_int[rc]
                self.mn[i] = min(self.mn[lc], self.mn[rc])
                self.mx[i] = max(self.mx[lc], self.mx[rc])
        self.cons = constraints
        self.monotone = any(constraints)
        self.collapsed = 0
        self.changed = False

    def is_leaf(self, i: int) -> bool:
        return bool(self.nd["left"][i] < 0)

    def _constraint(self, a: int) -> int:
        f = int(self.nd["feature"][a])
        if self.nd["cat_index"][a] >= 0 or not 0 <= f < len(self.cons):
            return 0
        return int(self.cons[f])

    def monotone_range(self, n: int) -> tuple[float, float]:
        """Values node ``n`` may take as a leaf without unordering an ancestor split."""
        lo, hi = -np.inf, np.inf
        if not self.monotone:
            return lo, hi
        nd = self.nd
        child, a = n, int(self.parent[n])
        while a >= 0:
            c = self._constraint(a)
            if c != 0:
                lc, rc = int(nd["left"][a]), int(nd["right"][a])
                on_left = child == lc
                sib = rc if on_left else lc
                on_low = on_left if c > 0 else not on_left
                if on_low:
                    hi = min(hi, self.mn[sib])
                else:
                    lo = max(lo, self.mx[sib])
            child, a = a, int(self.parent[a])
        return lo, hi

    def value_for(self, n: int) -> float:
        return _node_value(self.rule, self.t, self.nd, n)[0]

    def collapse(self, n: int, value: float) -> None:
        removed = int(self.n_int[n])
        make_leaf(self.nd, n, value)
        self.collapsed += removed
        self.changed = True
        self.n_int[n] = 0
        self.mn[n] = self.mx[n] = value
        a = int(self.parent[n])
        while a >= 0:
            lc, rc = int(self.nd["left"][a]), int(self.nd["right"][a])
            self.n_int[a] -= removed
            self.mn[a] = min(self.mn[lc], self.mn[rc])
            self.mx[a] = max(self.mx[lc], self.mx[rc])
            a = int(self.parent[a])

    def result(self) -> Tree:
        if not self.changed:
            return self.tree
        return Tree(self.nd, self.tree.cat_sets, self.tree.group, self.tree.weight)


def _constraints(ens: Ensemble, respect_monotone: bool) -> tuple[int, ...]:
    if not respect_monotone:
        return ()
    return tuple(int(c) for c in ens.monotone_constraints)


# ----------------------------------------------------------------------------- collapse passes
def collapse_low_gain(ens: Ensemble, min_gain: float = 0.0, min_cover: float = 0.0, *,
                      respect_monotone: bool = True) -> Ensemble:
    """Collapse, bottom-up, every split over two leaves whose gain < ``min_gain`` or cover <
    ``min_cover``, until none is left.

    A split becomes collapsible once both its children are leaves (possibly after earlier
    collapses in this pass), so whole weak subtrees fold up. Unknown (NaN) gains or covers never
    satisfy their test. The new leaf gets the trainer's value (see the module docstring), clipped
    to keep monotone splits ordered; a collapse for which no ordered value exists is skipped
    (``details["monotone_skipped"]``).

    Parameters
    ----------
    ens : Ensemble
    min_gain : float
        Gain as the source stores it (XGBoost ``loss_changes``, LightGBM ``split_gain``).
    min_cover : float
        Hessian sum (XGBoost ``sum_hessian``, LightGBM ``internal_weight``).
    respect_monotone : bool
        Keep the model's monotone constraints (default).
    """
    rule = _value_rule(ens)
    cons = _constraints(ens, respect_monotone)
    out, collapsed, skipped, fallback, clipped = [], 0, 0, 0, 0
    for t, tree in enumerate(get_trees(ens)):
        ed = _Editor(tree, t, rule, cons)
        nd = ed.nd
        for n in ed.order[::-1].tolist():
            if ed.is_leaf(n):
                continue
            lc, rc = int(nd["left"][n]), int(nd["right"][n])
            if not (ed.is_leaf(lc) and ed.is_leaf(rc)):
                continue
            if not (nd["gain"][n] < min_gain or nd["cover"][n] < min_cover):
                continue
            value, stored = _node_value(rule, t, nd, n)
            lo, hi = ed.monotone_range(n)
            if lo > hi:
                skipped += 1
                continue
            fallback += int(not stored)
            clipped_value = min(max(value, lo), hi)
            clipped += int(clipped_value != value)
            ed.collapse(n, clipped_value)
        out.append(ed.result())
        collapsed += ed.collapsed
    after = assemble(ens, out) if collapsed else ens
    return record(ens, after, "collapse_low_gain", {"min_gain": min_gain, "min_cover": min_cover,
                  "respect_monotone": respect_monotone}, collapsed_splits=collapsed,
                  lossless=False, monotone_skipped=skipped, monotone_clipped=clipped,
                  fallback_values=fallback,
                  **rule.info)


def cap_depth(ens: Ensemble, max_depth: int, *, respect_monotone: bool = True) -> Ensemble:
    """Collapse every node at depth ``max_depth`` (root = 0) into a leaf.

    The leaf gets the trainer's value for that node (see the module docstring), clipped to keep
    monotone splits ordered when possible (``details["monotone_unresolved"]`` counts the nodes
    where the original tree itself was not ordered, which keep the unclipped value).
    """
    max_depth = int(max_depth)
    if max_depth < 0:
        raise PruneError(
            f"max_depth must be >= 0 (0 keeps each tree's root as a leaf), got {max_depth}"
        )
    rule = _value_rule(ens)
    cons = _constraints(ens, respect_monotone)
    out, collapsed, unresolved, fallback, clipped = [], 0, 0, 0, 0
    for t, tree in enumerate(get_trees(ens)):
        ed = _Editor(tree, t, rule, cons)
        for n in ed.order.tolist():
            if ed.depth[n] != max_depth or ed.is_leaf(n):
                continue
            value, stored = _node_value(rule, t, ed.nd, n)
            lo, hi = ed.monotone_range(n)
            if lo > hi:
                unresolved += 1
            else:
                clipped_value = min(max(value, lo), hi)
                clipped += int(clipped_value != value)
                value = clipped_value
            fallback += int(not stored)
            ed.collapse(n, value)
        out.append(ed.result())
        collapsed += ed.collapsed
    after = assemble(ens, out) if collapsed else ens
    return record(ens, after, "cap_depth", {"max_depth": max_depth,
                  "respect_monotone": respect_monotone}, collapsed_splits=collapsed,
                  lossless=False, monotone_unresolved=unresolved, monotone_clipped=clipped,
                  fallback_values=fallback,
                  **rule.info)


# ----------------------------------------------------------------------------- tree dropping
def tree_total_gain(ens: Ensemble) -> np.ndarray:
    """Sum of the stored split gains of each tree (unknown gains count 0), shape (n_trees,)."""
    internal = ens.left >= 0
    gain = np.where(internal & np.isfinite(ens.gain), ens.gain, 0.0)
    return np.bincount(ens.tree_of_node(), weights=gain, minlength=ens.n_trees)


def _ensure_each_group(ens: Ensemble, keep: set[int], gains: np.ndarray) -> set[int]:
    keep = set(keep)
    for g in np.unique(ens.tree_group).tolist():
        members = np.flatnonzero(ens.tree_group == g)
        if not any(int(t) in keep for t in members):
            keep.add(int(members[np.argmax(gains[members])]))
    return keep


def drop_low_gain_trees(ens: Ensemble, min_total_gain: float) -> Ensemble:
    """Drop every tree whose total split gain is below ``min_total_gain``.

    The best tree of each group is always kept. Dropped single-leaf trees and the intercept
    LightGBM folded into a dropped first tree move into ``base_margin``.
    """
    gains = tree_total_gain(ens)
    keep = {t for t in range(ens.n_trees) if not gains[t] < min_total_gain}
    return _keep_trees(ens, keep, gains, "drop_low_gain_trees",
                       {"min_total_gain": min_total_gain})


def keep_top_trees_by_gain(ens: Ensemble, n_trees: int) -> Ensemble:
    """Keep the ``n_trees`` trees with the largest total split gain, in their original order.

    Ties go to the earlier tree. Each group keeps at least its best tree (so a multiclass model
    may keep more than ``n_trees``). Dropped single-leaf trees and the intercept LightGBM folded
    into a dropped first tree move into ``base_margin``.
    """
    n_trees = int(n_trees)
    if n_trees < 1:
        raise PruneError(
            f"n_trees must be >= 1 (each output group keeps its best tree), got {n_trees}"
        )
    gains = tree_total_gain(ens)
    ranked = np.argsort(-gains, kind="stable")
    keep = {int(t) for t in ranked[:n_trees]}
    return _keep_trees(ens, keep, gains, "keep_top_trees_by_gain", {"n_trees": n_trees})


def _keep_trees(ens: Ensemble, keep: set[int], gains: np.ndarray, name: str,
                params: dict[str, Any]) -> Ensemble:
    """Drop every tree not in ``keep`` (each group keeps its best) and record it."""
    keep = _ensure_each_group(ens, keep, gains)
    drop = set(range(ens.n_trees)) - keep
    after, details = drop_trees(ens, drop) if drop else (ens, {})
    return record(ens, after, name, params, removed_trees=tuple(sorted(drop)), lossless=False,
                  total_gain=gains.tolist(), **details)
