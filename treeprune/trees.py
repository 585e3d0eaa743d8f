"""Per-tree views of an Ensemble and the one place that assembles trees into an Ensemble.

Readers and passes work tree by tree on :class:`Tree` (local node arrays plus its categorical
bitsets) and hand the list to :func:`assemble`, which compacts node ids, assigns native ids in the
source library's numbering and packs the flat arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._rules import MISSING_NAN
from .ensemble import NODE_FIELDS, Ensemble
from .errors import ModelFormatError


@dataclass
class Tree:
    """One tree: local node arrays (root = 0) and the bitsets its categorical splits use.

    ``cat_index`` indexes ``cat_sets`` (local to the tree), -1 for numerical splits and leaves.
    """

    nodes: dict[str, np.ndarray]
    cat_sets: list[np.ndarray] = field(default_factory=list)
    group: int = 0
    weight: float = 1.0

    @property
    def n_nodes(self) -> int:
        return int(len(self.nodes["left"]))

    @staticmethod
    def leaf(value: float, cover: float = np.nan, count: float = np.nan, group: int = 0,
             weight: float = 1.0) -> Tree:
        """A single-leaf tree outputting ``value``."""
        nodes = empty_nodes(1)
        nodes["value"][0] = value
        nodes["cover"][0] = cover
        nodes["count"][0] = count
        return Tree(nodes, [], group, weight)


def empty_nodes(n: int) -> dict[str, np.ndarray]:
    """Node arrays for ``n`` leaves with neutral defaults."""
    nodes = {name: np.zeros(n, dtype=dtype) for name, dtype in NODE_FIELDS.items()}
    for name in ("feature", "left", "right", "cat_index"):
        nodes[name][:] = -1
    for name in ("value", "gain", "cover", "count"):
        nodes[name][:] = np.nan
    nodes["missing_type"][:] = MISSING_NAN
    return nodes


def copy_nodes(tree: Tree) -> dict[str, np.ndarray]:
    """Writable copies of a tree's node arrays, for an editor that changes nodes in place."""
    return {k: np.array(v, copy=True) for k, v in tree.nodes.items()}


def make_leaf(nodes: dict[str, np.ndarray], n: int, value: float) -> None:
    """Turn node ``n`` of ``nodes`` into a leaf with ``value`` (its subtree becomes unreachable)."""
    nodes["left"][n] = -1
    nodes["right"][n] = -1
    nodes["feature"][n] = -1
    nodes["cat_index"][n] = -1
    nodes["threshold"][n] = 0.0
    nodes["default_left"][n] = False
    nodes["missing_type"][n] = MISSING_NAN
    nodes["gain"][n] = np.nan
    nodes["value"][n] = value


def subtree_leaves(left: np.ndarray, right: np.ndarray, node: int) -> list[int]:
    """Local ids of the leaves under ``node`` (``[node]`` itself when it is a leaf)."""
    out, stack = [], [node]
    while stack:
        i = stack.pop()
        if left[i] < 0:
            out.append(i)
        else:
            stack.extend((int(left[i]), int(right[i])))
    return out


def get_tree(ens: Ensemble, t: int) -> Tree:
    """Copy tree ``t`` out of the ensemble as a :class:`Tree` (arrays are writable copies)."""
    sl = ens.tree_slice(t)
    nodes = {name: np.array(getattr(ens, name)[sl]) for name in NODE_FIELDS}
    cat_sets = []
    cat_local = nodes["cat_index"]
    for i in np.flatnonzero(cat_local >= 0):
        k = int(cat_local[i])
        cat_sets.append(np.array(ens.cat_words[ens.cat_bounds[k]:ens.cat_bounds[k + 1]]))
        cat_local[i] = len(cat_sets) - 1
    return Tree(nodes, cat_sets, int(ens.tree_group[t]), float(ens.tree_weight[t]))


def get_trees(ens: Ensemble) -> list[Tree]:
    return [get_tree(ens, t) for t in range(ens.n_trees)]


def bfs_order(tree: Tree) -> np.ndarray:
    """Local ids of the nodes reachable from the root, breadth first (left before right)."""
    return reachable_order(tree.nodes["left"], tree.nodes["right"])


def reachable_order(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Ids reachable from node 0 through child arrays (``left < 0``: a leaf), breadth first.

    Raises :class:`ModelFormatError` when a node is reached twice (a cycle or a shared child).
    """
    left = np.asarray(left)
    right = np.asarray(right)
    n = len(left)
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    levels = [np.zeros(1, dtype=np.int64)]
    level = levels[0]
    # one level at a time: the children of a level, left before right in the level's order, are
    # the next level, which is what a node-by-node queue visits
    while True:
        inner = level[left[level] >= 0]
        if not len(inner):
            break
        children = np.empty(2 * len(inner), dtype=np.int64)
        children[0::2] = left[inner]
        children[1::2] = right[inner]
        if children.min() < 1 or children.max() >= n:
            return _reachable_order_loop(left, right)  # damaged ids: as a node-by-node walk
        # the first child (in visiting order) already seen, or seen earlier in this level
        again = seen[children]
        _, first = np.unique(children, return_index=True)
        repeat = np.ones(len(children), dtype=bool)
        repeat[first] = False
        again |= repeat
        if again.any():
            c = int(children[np.flatnonzero(again)[0]])
            raise ModelFormatError(
                f"the nodes do not form a tree: node {c} is reached twice "
                "(a cycle or a shared child)"
            )
        seen[children] = True
        levels.append(children)
        level = children
    return np.concatenate(levels)


def _reachable_order_loop(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """:func:`reachable_order` node by node, for child ids outside ``1..n-1`` (damaged input:
    the same result, or the same error, as any walk that indexes with them)."""
    order = [0]
    seen = np.zeros(len(left), dtype=bool)
    seen[0] = True
    i = 0
    while i < len(order):
        nid = order[i]
        if left[nid] >= 0:
            for c in (int(left[nid]), int(right[nid])):
                if seen[c]:
                    raise ModelFormatError(
                        f"the nodes do not form a tree: node {c} is reached twice "
                        "(a cycle or a shared child)"
                    )
                seen[c] = True
                order.append(c)
        i += 1
    return np.asarray(order, dtype=np.int64)


def compact(tree: Tree, source: str) -> Tree:
    """Drop unreachable nodes, renumber breadth first and assign native ids for ``source``.

    XGBoost: native id = local id. LightGBM: internal nodes and leaves are numbered separately,
    each breadth first, as LightGBM's ``split_feature``/``leaf_value`` arrays are.
    """
    order = bfs_order(tree)
    new_id = np.full(tree.n_nodes, -1, dtype=np.int32)
    new_id[order] = np.arange(len(order), dtype=np.int32)
    nodes = {name: arr[order].copy() for name, arr in tree.nodes.items()}
    is_leaf = nodes["left"] < 0
    for name in ("left", "right"):
        child = nodes[name]
        child[~is_leaf] = new_id[child[~is_leaf]]
        child[is_leaf] = -1
    # categorical bitsets: keep only those still used, in node order
    cat_sets = []
    for i in np.flatnonzero(nodes["cat_index"] >= 0):
        if is_leaf[i]:
            nodes["cat_index"][i] = -1
            continue
        cat_sets.append(tree.cat_sets[int(nodes["cat_index"][i])])
        nodes["cat_index"][i] = len(cat_sets) - 1
    native = np.empty(len(order), dtype=np.int32)
    if source == "lightgbm":
        native[~is_leaf] = np.arange(np.count_nonzero(~is_leaf), dtype=np.int32)
        native[is_leaf] = np.arange(np.count_nonzero(is_leaf), dtype=np.int32)
    else:
        native[:] = np.arange(len(order), dtype=np.int32)
    nodes["native_id"] = native
    nodes["feature"][is_leaf] = -1
    return Tree(nodes, cat_sets, tree.group, tree.weight)


def assemble(template: Ensemble | None, trees: list[Tree], renumber: bool = True,
             **meta: Any) -> Ensemble:
    """Pack ``trees`` into an Ensemble, copying metadata from ``template`` unless given in ``meta``.

    With ``renumber`` (the default), every tree is compacted and renumbered in the source's native
    numbering; readers pass ``renumber=False`` to keep the numbering of the file.
    """
    source = meta.get("source", template.source if template is not None else "xgboost")
    if renumber:
        trees = [compact(t, source) for t in trees]
    sizes = np.array([t.n_nodes for t in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    arrays = {}
    for name, dtype in NODE_FIELDS.items():
        parts = [t.nodes[name] for t in trees]
        arrays[name] = (np.concatenate(parts).astype(dtype, copy=False) if parts
                        else np.zeros(0, dtype=dtype))
    # categorical pool
    bounds = [0]
    words: list[np.ndarray] = []
    cat_index = arrays["cat_index"].copy()
    pos = 0
    for t, tree in zip(range(len(trees)), trees, strict=True):
        base = int(offsets[t])
        local = tree.nodes["cat_index"]
        first = len(bounds) - 1
        for ws in tree.cat_sets:
            words.append(np.asarray(ws, dtype=np.uint32))
            pos += len(ws)
            bounds.append(pos)
        sel = local >= 0
        cat_index[base + np.flatnonzero(sel)] = first + local[sel]
    arrays["cat_index"] = cat_index.astype(np.int32)
    fields: dict[str, Any] = dict(arrays)
    fields["cat_bounds"] = np.asarray(bounds, dtype=np.int64)
    fields["cat_words"] = (np.concatenate(words).astype(np.uint32) if words
                           else np.zeros(0, dtype=np.uint32))
    fields["tree_offsets"] = offsets
    fields["tree_group"] = np.array([t.group for t in trees], dtype=np.int32)
    fields["tree_weight"] = np.array([t.weight for t in trees], dtype=np.float64)
    if template is not None:
        for name in ("objective", "base_margin", "folded_intercept", "n_features",
                     "feature_names", "feature_types", "categories", "monotone_constraints",
                     "source", "source_meta", "history"):
            fields.setdefault(name, getattr(template, name))
    fields.update(meta)
    return Ensemble(**fields)


# -- whole-ensemble helpers: a prefix of the boosting sequence, and trees appended to it ----------
def _meta_shrinkage(ens: Ensemble) -> tuple[float, ...] | None:
    """LightGBM's per-tree ``shrinkage`` kept in ``source_meta`` when it covers every tree."""
    shrink = ens.source_meta.get("shrinkage") if ens.source_meta else None
    if isinstance(shrink, (tuple, list)) and len(shrink) == ens.n_trees:
        return tuple(float(s) for s in shrink)
    return None


def prefix(ens: Ensemble, n_trees: int) -> Ensemble:
    """The first ``n_trees`` trees of a boosted model (what the model was after that many rounds).

    ``n_trees`` counts trees in model order and must end a boosting round: a multiple of the
    number of output groups (classes). A group left without trees keeps LightGBM's folded
    intercept in ``base_margin``, so no prefix silently drops the intercept.

    Raises
    ------
    PruneError
        ``n_trees`` is negative, larger than the model, or splits a round of a multiclass model.
    """
    from .errors import PruneError

    n = int(n_trees)
    if n != n_trees or not 0 <= n <= ens.n_trees:
        raise PruneError(f"n_trees={n_trees!r} must be an integer in 0..{ens.n_trees}")
    if n % ens.n_groups:
        raise PruneError(f"n_trees={n} splits a boosting round: a model with {ens.n_groups} "
                         "output groups keeps a multiple of that many trees")
    if n == ens.n_trees:
        return ens
    base = np.array(ens.base_margin, dtype=np.float64).reshape(-1)
    if len(base) != ens.n_groups:
        base = np.broadcast_to(base, (ens.n_groups,)).copy()
    folded = np.array(ens.folded_intercept, dtype=np.float64)
    kept_groups = set(ens.tree_group[:n].tolist())
    for g in range(ens.n_groups):
        if g not in kept_groups and folded[g] != 0:
            base[g] += folded[g]
            folded[g] = 0.0
    meta = dict(ens.source_meta)
    shrink = _meta_shrinkage(ens)
    if shrink is not None:
        meta["shrinkage"] = shrink[:n]
    return assemble(ens, [get_tree(ens, t) for t in range(n)], renumber=False,
                    base_margin=base, folded_intercept=folded, source_meta=meta)


def append_trees(base: Ensemble, extra: Ensemble) -> Ensemble:
    """``base`` followed by the trees of ``extra`` (boosting continued from ``base``'s margin).

    The margin of the result is ``base``'s margin plus the sum of ``extra``'s trees: ``extra``'s
    own ``base_margin`` and intercept estimate are not added (the trees of a model trained from a
    given initial margin carry no intercept of their own). Metadata come from ``base``.

    Raises
    ------
    ConversionError
        The two ensembles differ in source format, feature count or number of output groups.
    """
    from .errors import ConversionError

    if extra.source != base.source:
        raise ConversionError(f"cannot append {extra.source} trees to a {base.source} model")
    if extra.n_features != base.n_features or extra.n_groups != base.n_groups:
        raise ConversionError(
            f"cannot append trees of a model with {extra.n_features} features / "
            f"{extra.n_groups} groups to one with {base.n_features} / {base.n_groups}")
    meta = dict(base.source_meta)
    s_base, s_extra = _meta_shrinkage(base), _meta_shrinkage(extra)
    if s_base is not None:
        meta["shrinkage"] = s_base + (s_extra if s_extra is not None else (1.0,) * extra.n_trees)
    return assemble(base, get_trees(base) + get_trees(extra), renumber=False, source_meta=meta)


__all__ = [
    "Tree", "empty_nodes", "copy_nodes", "make_leaf", "subtree_leaves", "get_tree", "get_trees",
    "bfs_order", "reachable_order", "compact", "assemble", "prefix", "append_trees",
]
