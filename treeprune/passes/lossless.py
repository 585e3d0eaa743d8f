"""Lossless passes: make an ensemble smaller without changing any prediction.

Every pass here returns an ensemble whose margins equal the input's for *every* possible row
(including ±0, ±inf and NaN values), up to the float rounding of summing leaf values:

* :func:`remove_unreachable` — branches that no row can reach, found by tracking, per feature,
  the interval of values (and whether NaN) a row can still have at each node, in the source
  library's own decision rule.
* :func:`merge_equal_subtrees` — a split whose two subtrees are identical becomes that subtree.
* :func:`fold_constant_trees` — single-leaf trees move into the base margin.
* :func:`remove_zero_trees` — trees that output 0 everywhere (or have DART weight 0).
* :func:`merge_identical_trees` — trees of one output group with the same structure become one
  tree whose leaves are the (tree-weighted) sum of theirs.
* :func:`lossless` — all of the above until nothing changes.

Rounding: LightGBM sums in double, so merged trees or a folded base margin change margins by a few
ulps. XGBoost accumulates the margin in float32; replacing ``f32(m + a) + b`` by ``f32(m + (a+b))``
changes margins by about 1e-7 relative (tests allow 1e-5 absolute). The structural passes
(:func:`remove_unreachable`, :func:`merge_equal_subtrees`) change no leaf value at all, so their
margins are bit-identical.

Every pass keeps at least one tree per output group (the writers need it) and never loses
LightGBM's intercept folded into the first tree of a group (see ``Ensemble.folded_intercept``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._rules import LIGHTGBM_ZERO_THRESHOLD, MISSING_NAN, MISSING_NONE, MISSING_ZERO
from ..ensemble import Ensemble
from ..trees import Tree, assemble, bfs_order, compact, copy_nodes, get_trees
from .base import record

__all__ = [
    "remove_unreachable",
    "merge_equal_subtrees",
    "fold_constant_trees",
    "remove_zero_trees",
    "merge_identical_trees",
    "lossless",
]

_INF = math.inf
_F32_NEG_INF = np.float32(-np.inf)

#: Per-feature state of the rows that can reach a node: non-NaN values lie in [lo, hi] (closed,
#: empty when lo > hi) and ``nan`` tells whether rows with NaN in that feature can be here.
_FULL = (-_INF, _INF, True)
_EMPTY_IV = (_INF, -_INF)


# ----------------------------------------------------------------------------- tree helpers
def _n_internal(tree: Tree) -> int:
    order = bfs_order(tree)
    return int(np.count_nonzero(tree.nodes["left"][order] >= 0))


def _replace_by_child(nodes: dict[str, np.ndarray], n: int, c: int, keep_stats: bool) -> None:
    """Make node ``n`` what node ``c`` (one of its children) is; ``c``'s old slot is orphaned.

    With ``keep_stats``, ``n`` keeps its cover and count (the rows reaching it are unchanged) and,
    when ``c`` is a split, its own internal value (the trainer's value for ``n``'s region).
    """
    child_is_leaf = nodes["left"][c] < 0
    keep = {}
    if keep_stats:
        keep = {"cover": nodes["cover"][n], "count": nodes["count"][n]}
        if not child_is_leaf:
            keep["value"] = nodes["value"][n]
    for arr in nodes.values():
        arr[n] = arr[c]
    for name, v in keep.items():
        nodes[name][n] = v


def _add_subtree_stats(nodes: dict[str, np.ndarray], a: int, b: int) -> None:
    """Add the cover and count of subtree ``b`` to the same-shaped subtree ``a``, node by node.

    When two equal subtrees merge, the rows of both reach the survivor: its statistics stay the
    sums of its children's (TreeSHAP weighs the branches by them).
    """
    stack = [(a, b)]
    while stack:
        i, j = stack.pop()
        for name in ("cover", "count"):
            nodes[name][i] += nodes[name][j]
        if nodes["left"][i] >= 0:
            stack.append((int(nodes["left"][i]), int(nodes["left"][j])))
            stack.append((int(nodes["right"][i]), int(nodes["right"][j])))


def _reachable_leaves(tree: Tree) -> np.ndarray:
    order = bfs_order(tree)
    return order[tree.nodes["left"][order] < 0]


def _first_tree_of_group(ens: Ensemble) -> dict[int, int]:
    first: dict[int, int] = {}
    for t, g in enumerate(ens.tree_group.tolist()):
        first.setdefault(int(g), t)
    return first


def _keep_one_per_group(ens: Ensemble, drop: set[int], prefer_last: bool = False) -> set[int]:
    """Remove from ``drop`` one tree of every group that would otherwise lose all its trees."""
    drop = set(drop)
    groups: dict[int, list[int]] = {}
    for t, g in enumerate(ens.tree_group.tolist()):
        groups.setdefault(int(g), []).append(t)
    for members in groups.values():
        if all(t in drop for t in members):
            drop.discard(members[-1] if prefer_last else members[0])
    return drop


def _cat_key(tree: Tree, n: int) -> tuple[int, ...] | None:
    k = int(tree.nodes["cat_index"][n])
    if k < 0:
        return None
    words = np.asarray(tree.cat_sets[k], dtype=np.uint32)
    nz = np.flatnonzero(words)
    return tuple(int(w) for w in words[: (int(nz[-1]) + 1) if len(nz) else 0])


def _threshold_key(thr: float, source: str) -> float:
    if source == "xgboost":
        with np.errstate(over="ignore"):
            return float(np.float32(thr))
    return float(thr)


def _split_key(tree: Tree, n: int, source: str) -> tuple[Any, ...]:
    nd = tree.nodes
    cat = _cat_key(tree, n)
    return (
        int(nd["feature"][n]),
        None if cat is not None else _threshold_key(float(nd["threshold"][n]), source),
        bool(nd["default_left"][n]),
        int(nd["missing_type"][n]),
        cat,
    )


# ----------------------------------------------------------------------------- unreachable
def _split_states(source: str, state: tuple[float, float, bool], thr: float, default_left: bool,
                  missing_type: int) -> tuple[tuple[float, float, bool], tuple[float, float, bool]]:
    """The per-feature states of the rows going left and right at a numerical split.

    Over-approximates what can reach each child (never declares a reachable child unreachable).
    """
    lo, hi, nan_ok = state
    if source == "xgboost":
        # x is float32; left iff x < t (t float32), right iff x >= t; NaN -> default_left
        with np.errstate(over="ignore"):
            t32 = np.float32(thr)
        t = float(t32)
        if math.isnan(t):
            return state, state
        if t == -_INF:
            l_iv = _EMPTY_IV
        else:
            l_iv = (lo, min(hi, float(np.nextafter(t32, _F32_NEG_INF))))
        r_iv = (max(lo, t), hi)
        return ((*l_iv, nan_ok and default_left), (*r_iv, nan_ok and not default_left))
    # LightGBM: x is double; left iff x <= t after the missing-type handling
    t = float(thr)
    if math.isnan(t):
        return state, state
    l_iv = (lo, min(hi, t))
    r_iv = _EMPTY_IV if t == _INF else (max(lo, float(np.nextafter(t, _INF))), hi)
    if missing_type == MISSING_NONE:
        nan_left = 0.0 <= t  # NaN is read as 0.0
        return ((*l_iv, nan_ok and nan_left), (*r_iv, nan_ok and not nan_left))
    if missing_type == MISSING_NAN:
        return ((*l_iv, nan_ok and default_left), (*r_iv, nan_ok and not default_left))
    if missing_type == MISSING_ZERO:
        # values in LightGBM's zero band |x| <= kZeroThreshold (the float 1e-35f, as the routing
        # kernel uses it; NaN is read as 0.0) go to the default side; the band's edges are taken
        # closed, and the other side keeps the band (over-approximation)
        zlo, zhi = max(lo, -LIGHTGBM_ZERO_THRESHOLD), min(hi, LIGHTGBM_ZERO_THRESHOLD)
        if default_left:
            d_iv, o_iv = l_iv, r_iv
        else:
            d_iv, o_iv = r_iv, l_iv
        if zlo <= zhi:
            d_iv = (zlo, zhi) if d_iv[0] > d_iv[1] else (min(d_iv[0], zlo), max(d_iv[1], zhi))
        d_state, o_state = (*d_iv, nan_ok), (*o_iv, False)
        return (d_state, o_state) if default_left else (o_state, d_state)
    return state, state  # unknown missing type: assume anything


def _possible(state: tuple[float, float, bool]) -> bool:
    return state[0] <= state[1] or state[2]


def _prune_unreachable_tree(tree: Tree, source: str) -> tuple[Tree, int]:
    nd = copy_nodes(tree)
    left, right = nd["left"], nd["right"]
    parent = np.full(tree.n_nodes, -1, dtype=np.int64)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    lost: list[tuple[int, float, float]] = []  # statistics of the branches cut off, per node
    changed = False
    stack: list[tuple[int, dict[int, tuple[float, float, bool]]]] = [(0, {})]
    while stack:
        n, st = stack.pop()
        while left[n] >= 0:
            lc, rc = int(left[n]), int(right[n])
            if nd["cat_index"][n] >= 0 or nd["feature"][n] < 0:
                stack.append((lc, st))
                stack.append((rc, st))
                break
            f = int(nd["feature"][n])
            ls, rs = _split_states(source, st.get(f, _FULL), float(nd["threshold"][n]),
                                   bool(nd["default_left"][n]), int(nd["missing_type"][n]))
            lok, rok = _possible(ls), _possible(rs)
            if lok == rok:  # both reachable (both unreachable cannot happen at a reachable node)
                stack.append((lc, {**st, f: ls}))
                stack.append((rc, {**st, f: rs}))
                break
            c, cs = (lc, ls) if lok else (rc, rs)
            lost.append((n, nd["cover"][n] - nd["cover"][c], nd["count"][n] - nd["count"][c]))
            _replace_by_child(nd, n, c, keep_stats=False)
            st = {**st, f: cs}
            changed = True
    if not changed:
        return tree, 0
    # the node takes its child's statistics; its ancestors lose what the cut branch carried, so
    # every split's cover and count stay the sums of its children's
    for n, cover, count in lost:
        a = int(parent[n])
        while a >= 0:
            if np.isfinite(cover) and cover != 0:
                nd["cover"][a] -= cover
            if np.isfinite(count) and count != 0:
                nd["count"][a] -= count
            a = int(parent[a])
    new = Tree(nd, tree.cat_sets, tree.group, tree.weight)
    return new, _n_internal(tree) - _n_internal(new)


def _remove_unreachable(ens: Ensemble) -> tuple[Ensemble, int]:
    trees = get_trees(ens)
    total = 0
    out = []
    for tree in trees:
        new, k = _prune_unreachable_tree(tree, ens.source)
        out.append(new)
        total += k
    if total == 0:
        return ens, 0
    return assemble(ens, out), total


def remove_unreachable(ens: Ensemble) -> Ensemble:
    """Remove branches that no possible row can reach.

    Walks every tree from the root, tracking for each feature the closed interval of non-NaN
    values and whether NaN can still be present, in the source's exact rule: XGBoost compares
    ``float32(x) < t`` (so going left means ``x <= nextafter32(t, -inf)``, right ``x >= t``) and
    sends NaN to ``default_left``; LightGBM compares ``x <= t`` in double, reads NaN as 0.0 for
    missing type None, sends NaN to the default side for missing type NaN, and NaN and the zero
    band for missing type Zero (handled conservatively). A split with one impossible child is
    replaced by the other child's subtree. Categorical splits and NaN thresholds are assumed to
    send rows both ways (no branch below them is declared unreachable on their account).

    Predictions are bit-identical for every input, including ±0, ±inf and NaN.
    """
    after, collapsed = _remove_unreachable(ens)
    return record(ens, after, "remove_unreachable", {}, collapsed_splits=collapsed,
                  lossless=True)


# ----------------------------------------------------------------------------- equal subtrees
def _merge_equal_tree(tree: Tree, source: str) -> tuple[Tree, int]:
    nd = copy_nodes(tree)
    left, right = nd["left"], nd["right"]
    order = bfs_order(tree)
    sig = np.full(tree.n_nodes, -1, dtype=np.int64)
    n_int = np.zeros(tree.n_nodes, dtype=np.int64)  # splits in each subtree
    ids: dict[tuple[Any, ...], int] = {}
    collapsed = 0
    view = Tree(nd, tree.cat_sets)
    for n in order[::-1].tolist():
        if left[n] < 0:
            v = float(nd["value"][n])
            key: tuple[Any, ...] = ("leaf", v) if not math.isnan(v) else ("nan", n)
        else:
            lc, rc = int(left[n]), int(right[n])
            if sig[lc] == sig[rc]:
                collapsed += 1 + int(n_int[rc])
                _add_subtree_stats(nd, lc, rc)
                _replace_by_child(nd, n, lc, keep_stats=True)
                sig[n] = sig[lc]
                n_int[n] = n_int[lc]
                continue
            key = ("split", *_split_key(view, n, source), int(sig[lc]), int(sig[rc]))
            n_int[n] = 1 + n_int[lc] + n_int[rc]
        sig[n] = ids.setdefault(key, len(ids))
    if collapsed == 0:
        return tree, 0
    return Tree(nd, tree.cat_sets, tree.group, tree.weight), collapsed


def _merge_equal_subtrees(ens: Ensemble) -> tuple[Ensemble, int]:
    out, total = [], 0
    for tree in get_trees(ens):
        new, k = _merge_equal_tree(tree, ens.source)
        out.append(new)
        total += k
    if total == 0:
        return ens, 0
    return assemble(ens, out), total


def merge_equal_subtrees(ens: Ensemble) -> Ensemble:
    """Replace every split whose two subtrees are identical by that subtree, bottom-up.

    Subtrees are identical when they have the same splits (feature, threshold as the source
    compares it, default direction, missing type, category set) in the same layout and exactly
    equal leaf values; such a split computes the same output whichever way a row goes. The node
    keeps its cover and count. Predictions are bit-identical.
    """
    after, collapsed = _merge_equal_subtrees(ens)
    return record(ens, after, "merge_equal_subtrees", {}, collapsed_splits=collapsed,
                  lossless=True)


# ----------------------------------------------------------------------------- constant trees
def _fold_constant_trees(ens: Ensemble) -> tuple[Ensemble, tuple[int, ...]]:
    const = {t for t in range(ens.n_trees) if ens.left[ens.tree_offsets[t]] < 0}
    drop = _keep_one_per_group(ens, const, prefer_last=True)
    if not drop:
        return ens, ()
    return drop_trees(ens, drop)[0], tuple(sorted(drop))


def drop_trees(ens: Ensemble, drop: set[int]) -> tuple[Ensemble, dict[str, Any]]:
    """Drop trees, keeping constants and LightGBM's intercept in the base margin."""
    trees = get_trees(ens)
    base = np.array(ens.base_margin, dtype=np.float64).reshape(-1)
    if len(base) != ens.n_groups:
        base = np.broadcast_to(base, (ens.n_groups,)).copy()
    folded = np.array(ens.folded_intercept, dtype=np.float64)
    first = _first_tree_of_group(ens)
    moved_intercept = np.zeros_like(base)
    moved_constant = np.zeros_like(base)
    for t in sorted(drop):
        tree = trees[t]
        g = tree.group
        if tree.nodes["left"][0] < 0:  # a constant: keep it (intercept included)
            c = tree.weight * float(tree.nodes["value"][0])
            base[g] += c
            moved_constant[g] += c
            if first.get(g) == t:
                folded[g] = 0.0
        elif first.get(g) == t and folded[g] != 0:
            base[g] += folded[g]
            moved_intercept[g] += folded[g]
            folded[g] = 0.0
    kept = [tree for t, tree in enumerate(trees) if t not in drop]
    after = assemble(ens, kept, base_margin=base, folded_intercept=folded)
    return after, {"intercept_to_base_margin": moved_intercept.tolist(),
                   "constants_to_base_margin": moved_constant.tolist()}




def fold_constant_trees(ens: Ensemble) -> Ensemble:
    """Move single-leaf trees into the base margin (``base_margin[g] += weight * value``).

    A folded first tree of a LightGBM group takes its intercept with it, so
    ``folded_intercept[g]`` becomes 0. One tree per group is always kept. Margins change only by
    the rounding of the addition (see the module docstring).
    """
    after, removed = _fold_constant_trees(ens)
    return record(ens, after, "fold_constant_trees", {}, removed_trees=removed, lossless=True)


# ----------------------------------------------------------------------------- zero trees
def _remove_zero_trees(ens: Ensemble) -> tuple[Ensemble, tuple[int, ...]]:
    trees = get_trees(ens)
    first = _first_tree_of_group(ens)
    zero = set()
    for t, tree in enumerate(trees):
        if first.get(tree.group) == t and ens.folded_intercept[tree.group] != 0:
            continue  # carries LightGBM's intercept
        leaves = _reachable_leaves(tree)
        if tree.weight == 0.0 or np.all(tree.nodes["value"][leaves] == 0.0):
            zero.add(t)
    drop = _keep_one_per_group(ens, zero)
    if not drop:
        return ens, ()
    kept = [tree for t, tree in enumerate(trees) if t not in drop]
    return assemble(ens, kept), tuple(sorted(drop))


def remove_zero_trees(ens: Ensemble) -> Ensemble:
    """Drop trees whose every leaf is 0 or whose (DART) weight is 0.

    The first tree of a group that carries a nonzero LightGBM intercept is never dropped, and one
    tree per group is always kept. Predictions are bit-identical.
    """
    after, removed = _remove_zero_trees(ens)
    return record(ens, after, "remove_zero_trees", {}, removed_trees=removed, lossless=True)


# ----------------------------------------------------------------------------- identical trees
def _structure_key(tree: Tree, source: str) -> tuple[Any, ...]:
    """A hashable key equal for two compacted trees iff they route every row alike."""
    nd = tree.nodes
    internal = nd["left"] >= 0
    splits = tuple(_split_key(tree, int(n), source) for n in np.flatnonzero(internal))
    return (nd["left"].tobytes(), nd["right"].tobytes(), splits)


def _merge_identical_trees(ens: Ensemble) -> tuple[Ensemble, tuple[int, ...]]:
    trees = [compact(t, ens.source) for t in get_trees(ens)]
    members: dict[tuple[Any, ...], list[int]] = {}
    for t, tree in enumerate(trees):
        key = (tree.group, _structure_key(tree, ens.source))
        members.setdefault(key, []).append(t)
    removed: set[int] = set()
    merged: dict[int, Tree] = {}
    for group in members.values():
        if len(group) < 2:
            continue
        head = trees[group[0]]
        nd = {k: np.array(v, copy=True) for k, v in head.nodes.items()}
        value = np.zeros(head.n_nodes)
        gain = np.zeros(head.n_nodes)
        for t in group:
            value += trees[t].weight * trees[t].nodes["value"]
            gain += np.nan_to_num(trees[t].nodes["gain"], nan=0.0)
        nd["value"] = value  # NaN where any internal value is unknown
        internal = nd["left"] >= 0
        nd["gain"] = np.where(internal & ~np.isnan(head.nodes["gain"]), gain, head.nodes["gain"])
        merged[group[0]] = Tree(nd, head.cat_sets, head.group, 1.0)
        removed.update(group[1:])
    if not removed:
        return ens, ()
    out = [merged.get(t, tree) for t, tree in enumerate(trees) if t not in removed]
    return assemble(ens, out), tuple(sorted(removed))


def merge_identical_trees(ens: Ensemble) -> Ensemble:
    """Merge the trees of one output group that have identical structure into one tree.

    Identical structure: same layout and, node by node, the same feature, threshold (as the
    source compares it), default direction, missing type and category set. The merged tree sits
    at the position of the first of them, its leaves (and known internal values) are
    ``sum(weight_i * value_i)`` and its weight is 1; its gains are summed, its covers and counts
    are the first tree's. The first tree of a group stays first, so LightGBM's folded intercept
    stays where ``folded_intercept`` says. Margins change by float rounding only (about 1e-7
    relative for XGBoost's float32 accumulation).
    """
    after, removed = _merge_identical_trees(ens)
    return record(ens, after, "merge_identical_trees", {}, removed_trees=removed, lossless=True)


# ----------------------------------------------------------------------------- all of them
def lossless(ens: Ensemble, max_rounds: int = 10) -> Ensemble:
    """Run every lossless pass until nothing changes (one record, ``lossless=True``).

    Order per round: remove unreachable branches, merge equal subtrees, fold single-leaf trees
    into the base margin, drop zero trees, merge identical trees. ``removed_trees`` are indices
    in the input ensemble; ``details["steps"]`` counts what each pass did.
    """
    current = ens
    origin = list(range(ens.n_trees))  # input index of every current tree
    collapsed = 0
    steps = {"remove_unreachable": 0, "merge_equal_subtrees": 0, "fold_constant_trees": 0,
             "remove_zero_trees": 0, "merge_identical_trees": 0}
    for _ in range(max_rounds):
        before = (current.n_trees, current.n_nodes)
        current, k = _remove_unreachable(current)
        collapsed += k
        steps["remove_unreachable"] += k
        current, k = _merge_equal_subtrees(current)
        collapsed += k
        steps["merge_equal_subtrees"] += k
        for name, fn in (("fold_constant_trees", _fold_constant_trees),
                         ("remove_zero_trees", _remove_zero_trees),
                         ("merge_identical_trees", _merge_identical_trees)):
            current, gone = fn(current)
            steps[name] += len(gone)
            if gone:
                gone_set = set(gone)
                origin = [o for t, o in enumerate(origin) if t not in gone_set]
        if (current.n_trees, current.n_nodes) == before:
            break
    removed = tuple(sorted(set(range(ens.n_trees)) - set(origin)))
    return record(ens, current, "lossless", {"max_rounds": max_rounds}, removed_trees=removed,
                  collapsed_splits=collapsed, lossless=True, steps=steps)
