"""Write LightGBM text models, and native ``lightgbm.Booster`` objects, from an Ensemble.

Trees keep their native numbering when it is a valid LightGBM one (so ``pred_leaf`` of the written
model equals the source's); every double is written as the shortest text that parses back to it.
The intercept folded into the first tree of each group (see :mod:`.read`) stays in its leaves.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..._rules import (
    LIGHTGBM_CATEGORICAL_MASK,
    LIGHTGBM_DEFAULT_LEFT_MASK,
    LIGHTGBM_MISSING_SHIFT,
    SCORECARD_KEY,
)
from ...ensemble import Ensemble
from ...errors import ConversionError
from ...trees import Tree, bfs_order, compact, get_trees
from .parameters import current_parameters


def _fmt(x: float) -> str:
    """Shortest text that parses back to the same double (LightGBM's parser is exact)."""
    x = float(x)
    if not math.isfinite(x):
        return repr(x)
    if x == 0.0:
        return "0"
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _fmt_or_zero(x: float) -> str:
    return "0" if not math.isfinite(float(x)) else _fmt(x)


def _native_layout(tree: Tree) -> Tree:
    """The tree with valid LightGBM numbering: keep the native ids when they already are one."""
    try:
        order = bfs_order(tree)
    except (ValueError, IndexError) as exc:
        raise ConversionError(f"a tree is not a tree: {exc}") from exc
    nodes = tree.nodes
    if len(order) == tree.n_nodes:
        is_leaf = nodes["left"] < 0
        nat = nodes["native_id"]
        n_split = int(np.count_nonzero(~is_leaf))
        ok = (np.array_equal(np.sort(nat[~is_leaf]), np.arange(n_split))
              and np.array_equal(np.sort(nat[is_leaf]), np.arange(tree.n_nodes - n_split))
              and (is_leaf[0] or nat[0] == 0))
        if ok:
            return tree
    return compact(tree, "lightgbm")


def _tree_text(idx: int, tree: Tree, scale: float, bias: float, shrinkage: float,
               n_features: int) -> str:
    nodes = tree.nodes
    is_leaf = nodes["left"] < 0
    nat = nodes["native_id"]
    split_ids = np.flatnonzero(~is_leaf)
    leaf_ids = np.flatnonzero(is_leaf)
    S, L = len(split_ids), len(leaf_ids)
    # order nodes by native id
    splits = split_ids[np.argsort(nat[split_ids], kind="stable")]
    leaves = leaf_ids[np.argsort(nat[leaf_ids], kind="stable")]

    def val(v: float) -> float:
        return float(v) * scale + bias if scale != 1.0 or bias != 0.0 else float(v)

    leaf_vals = [val(v) for v in nodes["value"][leaves]]
    if not all(math.isfinite(v) for v in leaf_vals):
        raise ConversionError(f"tree {idx} has a NaN or infinite leaf value")
    lines = [f"Tree={idx}", f"num_leaves={L}"]
    cat_bounds = [0]
    cat_words: list[str] = []
    feat, gain, thr, dtype, lc, rc, iv, iw, ic = ([] for _ in range(9))
    for i in splits:
        f = int(nodes["feature"][i])
        if not 0 <= f < n_features:
            raise ConversionError(f"tree {idx}: a split uses feature {f}, outside the model's "
                                  f"{n_features} features")
        mt = int(nodes["missing_type"][i])
        if mt not in (0, 1, 2):
            raise ConversionError(f"tree {idx}: missing_type {mt} is not 0/1/2")
        d = (LIGHTGBM_DEFAULT_LEFT_MASK if nodes["default_left"][i] else 0) \
            | (mt << LIGHTGBM_MISSING_SHIFT)
        ci = int(nodes["cat_index"][i])
        if ci >= 0:
            d |= LIGHTGBM_CATEGORICAL_MASK
            ws = tree.cat_sets[ci]
            thr.append(str(len(cat_bounds) - 1))
            cat_words.extend(str(int(w)) for w in np.asarray(ws, dtype=np.uint32))
            cat_bounds.append(cat_bounds[-1] + len(ws))
        else:
            t_val = float(nodes["threshold"][i])
            if math.isnan(t_val):
                raise ConversionError(f"tree {idx}: a numerical split has a NaN threshold")
            thr.append(_fmt(t_val))
        feat.append(str(f))
        gain.append(_fmt_or_zero(nodes["gain"][i]))
        dtype.append(str(d))
        for child, out in ((int(nodes["left"][i]), lc), (int(nodes["right"][i]), rc)):
            out.append(str(~int(nat[child])) if is_leaf[child] else str(int(nat[child])))
        v = float(nodes["value"][i])
        iv.append(_fmt_or_zero(val(v)) if math.isfinite(v) else "0")
        iw.append(_fmt_or_zero(nodes["cover"][i]))
        c = float(nodes["count"][i])
        ic.append(str(int(round(c))) if math.isfinite(c) else "0")
    num_cat = len(cat_bounds) - 1
    lw = [_fmt_or_zero(c) for c in nodes["cover"][leaves]]
    lcnt = [str(int(round(c))) if math.isfinite(c) else "0" for c in nodes["count"][leaves]]
    lines += [
        f"num_cat={num_cat}",
        "split_feature=" + " ".join(feat),
        "split_gain=" + " ".join(gain),
        "threshold=" + " ".join(thr),
        "decision_type=" + " ".join(dtype),
        "left_child=" + " ".join(lc),
        "right_child=" + " ".join(rc),
        "leaf_value=" + " ".join(_fmt(v) for v in leaf_vals),
        "leaf_weight=" + " ".join(lw),
        "leaf_count=" + " ".join(lcnt),
        "internal_value=" + " ".join(iv),
        "internal_weight=" + " ".join(iw),
        "internal_count=" + " ".join(ic),
    ]
    if num_cat > 0:
        lines.append("cat_boundaries=" + " ".join(str(b) for b in cat_bounds))
        lines.append("cat_threshold=" + " ".join(cat_words))
    lines += ["is_linear=0", f"shrinkage={_fmt(shrinkage)}"]
    assert S == L - 1
    return "\n".join(lines) + "\n\n\n"


def _objective_line(ens: Ensemble) -> str:
    obj = ens.objective
    line = ens.source_meta.get("objective_line")
    if isinstance(line, str) and line.split() and line.split()[0] == obj.name:
        if obj.is_multiclass:
            tokens = [tok for tok in line.split() if not tok.startswith("num_class:")]
            return " ".join([tokens[0], f"num_class:{obj.n_classes}", *tokens[1:]])
        return line
    if obj.name == "binary":
        return f"binary sigmoid:{_fmt(obj.params.get('sigmoid', 1.0))}"
    if obj.name == "multiclass":
        return f"multiclass num_class:{obj.n_classes}"
    if obj.name in ("regression", "regression_l1", "huber", "poisson", "gamma", "tweedie",
                    "cross_entropy"):
        return obj.name
    raise ConversionError(f"objective {obj.name!r} has no LightGBM equivalent")


def _feature_infos(ens: Ensemble, trees: list[Tree]) -> list[str]:
    infos = ens.source_meta.get("feature_infos")
    if infos is not None and len(infos) == ens.n_features:
        return list(infos)
    lo = np.full(ens.n_features, np.inf)
    hi = np.full(ens.n_features, -np.inf)
    cats: dict[int, set[int]] = {}
    for tree in trees:
        nodes = tree.nodes
        for i in np.flatnonzero(nodes["left"] >= 0):
            f = int(nodes["feature"][i])
            ci = int(nodes["cat_index"][i])
            if ci >= 0:
                ws = np.asarray(tree.cat_sets[ci], dtype=np.uint32)
                bits = np.flatnonzero(np.unpackbits(ws.view(np.uint8), bitorder="little"))
                cats.setdefault(f, set()).update(int(b) for b in bits)
            else:
                t_val = float(nodes["threshold"][i])
                if math.isfinite(t_val):
                    lo[f] = min(lo[f], t_val)
                    hi[f] = max(hi[f], t_val)
    out = []
    for f in range(ens.n_features):
        if f in cats or (ens.feature_types and ens.feature_types[f] == "categorical"):
            values = sorted(cats.get(f, set())) or [0]
            out.append(":".join(str(v) for v in values))
        elif lo[f] <= hi[f]:
            out.append(f"[{_fmt(lo[f])}:{_fmt(hi[f])}]")
        else:
            out.append("none")
    return out


def _pandas_line(ens: Ensemble) -> str:
    raw = ens.source_meta.get("pandas_categorical")
    if isinstance(raw, str):
        return "pandas_categorical:" + raw
    if ens.categories:
        value = [list(ens.categories[f]) for f in sorted(ens.categories)]
        return "pandas_categorical:" + json.dumps(value, default=_json_default)
    return "pandas_categorical:null"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return str(obj)


def to_text(ens: Ensemble) -> str:
    """A complete LightGBM text model with the same raw scores as ``ens``.

    Trees keep their native numbering when it is a valid LightGBM one (so ``pred_leaf`` of the
    written model equals ``ens.predict(X, output="leaf")``), otherwise they are compacted.
    Tree weights other than 1 and a non-zero ``base_margin`` are folded into the leaf values.
    """
    if ens.source != "lightgbm":
        raise ConversionError(
            f"writing a {ens.source} model as LightGBM text is not supported yet; "
            "save it in its source format"
        )
    meta = ens.source_meta
    K = ens.n_groups
    names = list(ens.feature_names) or [f"Column_{i}" for i in range(ens.n_features)]
    if len(names) != ens.n_features:
        raise ConversionError(f"{len(names)} feature names for {ens.n_features} features")
    for name in names:
        if not name or any(ch.isspace() for ch in name) or "=" in name:
            raise ConversionError(f"feature name {name!r} cannot be written in a LightGBM model "
                                  "(no spaces or '=' allowed)")
    objective_line = _objective_line(ens)

    trees = get_trees(ens)
    groups: list[list[int]] = [[] for _ in range(K)]
    for t, tree in enumerate(trees):
        if not 0 <= tree.group < K:
            raise ConversionError(f"tree {t} belongs to group {tree.group}, outside 0..{K - 1}")
        groups[tree.group].append(t)
    base = np.asarray(ens.base_margin, dtype=np.float64)
    if base.shape != (K,):
        base = np.broadcast_to(base, (K,)).astype(np.float64)
    n_iter = max([len(g) for g in groups] + [1])
    weights = np.asarray(ens.tree_weight, dtype=np.float64)
    keep_average = bool(
        meta.get("average_output")
        and all(len(g) == n_iter for g in groups)
        and np.all(weights == 1.0 / n_iter)
        and not np.any(base != 0.0)
    )
    shrink_meta = meta.get("shrinkage")
    use_shrink = isinstance(shrink_meta, (tuple, list)) and len(shrink_meta) == len(trees)

    blocks: list[str] = []
    importance = np.zeros(ens.n_features, dtype=np.int64)
    for it in range(n_iter):
        for g in range(K):
            idx = len(blocks)
            if it < len(groups[g]):
                t = groups[g][it]
                tree = _native_layout(trees[t])
                scale = 1.0 if keep_average else float(weights[t])
                shrink = float(shrink_meta[t]) if use_shrink else 1.0
            else:  # pad a group with fewer trees with a zero leaf (adds exactly 0.0)
                tree = Tree.leaf(0.0, group=g)
                scale, shrink = 1.0, 1.0
            bias = float(base[g]) if it == 0 else 0.0
            blocks.append(_tree_text(idx, tree, scale, bias, shrink, ens.n_features))
            nodes = tree.nodes
            sp = nodes["left"] >= 0
            gain = nodes["gain"][sp]
            np.add.at(importance, nodes["feature"][sp][~(gain <= 0)], 1)
    sizes = [len(b.encode("utf-8")) for b in blocks]
    header = [
        "tree",
        "version=v4",
        f"num_class={ens.objective.n_classes if ens.objective.is_multiclass else 1}",
        f"num_tree_per_iteration={K}",
        f"label_index={int(meta.get('label_index', 0))}",
        f"max_feature_idx={ens.n_features - 1}",
        f"objective={objective_line}",
    ]
    if keep_average:
        header.append("average_output")
    header.append("feature_names=" + " ".join(names))
    mono = tuple(ens.monotone_constraints)
    if mono and (any(mono) or meta.get("has_monotone_line")):
        if len(mono) != ens.n_features:
            raise ConversionError(f"{len(mono)} monotone constraints for {ens.n_features} features")
        header.append("monotone_constraints=" + " ".join(str(int(c)) for c in mono))
    header.append("feature_infos=" + " ".join(_feature_infos(ens, trees)))
    header.append("tree_sizes=" + " ".join(str(s) for s in sizes))
    out = ["\n".join(header), "\n\n", *blocks, "end of trees\n"]
    order = sorted((i for i in range(ens.n_features) if importance[i] > 0),
                   key=lambda i: -importance[i])
    out.append("\nfeature_importances:\n")
    out.extend(f"{names[i]}={int(importance[i])}\n" for i in order)
    params_text = meta.get("parameters_text")
    # the source's block, less the parameters today's LightGBM no longer has (it warns on each)
    params_text = current_parameters(params_text) if isinstance(params_text, str) else ""
    if not params_text:
        params_text = _default_parameters(ens, keep_average)
    out.append("\nparameters:\n" + params_text.rstrip("\n") + "\n\nend of parameters\n")
    if meta.get(SCORECARD_KEY):
        # LightGBM skips unknown lines after the parameters block
        out.append(f"\n{SCORECARD_KEY}:" + json.dumps(meta[SCORECARD_KEY], sort_keys=True))
    out.append("\n" + _pandas_line(ens) + "\n")
    return "".join(out)


def _default_parameters(ens: Ensemble, average: bool) -> str:
    obj = ens.objective
    lines = [f"[boosting: {'rf' if average else 'gbdt'}]", f"[objective: {obj.name}]",
             f"[num_class: {obj.n_classes if obj.is_multiclass else 1}]"]
    if obj.name == "tweedie":
        lines.append(f"[tweedie_variance_power: {_fmt(obj.params.get('tweedie_variance_power', 1.5))}]")
    if obj.name == "huber":
        lines.append(f"[alpha: {_fmt(obj.params.get('alpha', 0.9))}]")
    if any(ens.monotone_constraints):
        lines.append("[monotone_constraints: "
                     + ",".join(str(int(c)) for c in ens.monotone_constraints) + "]")
    return "\n".join(lines)


def to_booster(ens: Ensemble) -> Any:
    """A native ``lightgbm.Booster`` loaded from :func:`to_text`."""
    import lightgbm as lgb

    text = to_text(ens)
    try:
        return lgb.Booster(model_str=text)
    except Exception as exc:  # noqa: BLE001 - LightGBM raises LightGBMError, JSON errors...
        # the trees are ours and valid; what LightGBM can refuse is the source's parameters
        # block, copied back (for example a hand-edited value of the wrong type)
        raise ConversionError(
            f"LightGBM refused the model text ({type(exc).__name__}: {exc}); if the source "
            "file's parameters block was edited, restore it or drop source_meta"
            "['parameters_text'] to write default parameters"
        ) from exc


__all__ = ["to_text", "to_booster"]
