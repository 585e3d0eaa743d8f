"""Write XGBoost models: the JSON document, its UBJSON form, a native ``Booster``.

Writing produces a full XGBoost model whose predictions equal the ensemble's: when the ensemble was
read from XGBoost, the non-tree parts of the original model (objective parameters, attributes,
feature names and types, category encodings, version) are reused. Leaves are written as float32
values already multiplied by the tree weight (XGBoost accumulates the margin in float32, base
first, then tree by tree in model order), except for DART, which keeps its ``weight_drop``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..._rules import SCORECARD_KEY
from ...ensemble import Ensemble
from ...errors import ConversionError, ModelFormatError, UnsupportedModelError
from ...objectives import Objective
from ...trees import Tree, bfs_order, compact, get_trees
from .base_score import base_score_to_margin, margin_to_base_score, parse_base_score

#: XGBoost's parent id of a root node.
_ROOT_PARENT = 2147483647
#: Learner attributes that count boosting rounds; dropped when the round structure changes.
_ROUND_ATTRIBUTES = ("best_iteration", "best_ntree_limit", "best_score")
#: Default objective sections XGBoost 3.2 writes, used when a model is built from scratch.
_OBJECTIVE_SECTIONS: dict[str, dict[str, dict[str, str]]] = {
    "binary:logistic": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "reg:logistic": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "binary:logitraw": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "reg:squarederror": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "reg:linear": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "reg:gamma": {"reg_loss_param": {"scale_pos_weight": "1"}},
    "reg:absoluteerror": {},
    "reg:pseudohubererror": {"pseudo_huber_param": {"huber_slope": "1"}},
    "count:poisson": {"poisson_regression_param": {"max_delta_step": "0.699999988"}},
    "reg:tweedie": {"tweedie_regression_param": {"tweedie_variance_power": "1.5"}},
    "multi:softprob": {"softmax_multiclass_param": {"num_class": "2"}},
    "multi:softmax": {"softmax_multiclass_param": {"num_class": "2"}},
}
#: JSON ``type`` codes XGBoost uses for numeric category arrays (its ``Value::ValueKind``).
_CAT_TYPE_CODES = {
    np.dtype(np.float32): 7, np.dtype(np.float64): 8, np.dtype(np.int8): 9,
    np.dtype(np.uint8): 10, np.dtype(np.int16): 11, np.dtype(np.uint16): 12,
    np.dtype(np.int32): 13, np.dtype(np.uint32): 14, np.dtype(np.int64): 15,
    np.dtype(np.uint64): 16,
}


def _f(v: float) -> float:
    """A finite float32 value as a Python float (JSON repr round-trips to the same float32)."""
    x = float(np.float32(v))
    return x if math.isfinite(x) else 0.0


def _tree_json(tree: Tree, tid: int, n_features: int, scale: float) -> dict[str, Any]:
    nd = tree.nodes
    n = tree.n_nodes
    left = nd["left"].astype(np.int64)
    right = nd["right"].astype(np.int64)
    is_leaf = left < 0
    parents = np.full(n, _ROOT_PARENT, dtype=np.int64)
    parents[left[~is_leaf]] = np.flatnonzero(~is_leaf)
    parents[right[~is_leaf]] = np.flatnonzero(~is_leaf)
    value = nd["value"].astype(np.float64)
    leaf_vals = value[is_leaf]
    if not np.all(np.isfinite(leaf_vals)):
        raise ConversionError(f"tree {tid} has a leaf without a finite value")
    if scale != 1.0:
        value = np.where(is_leaf, np.float32(value) * np.float32(scale), value * scale)
    value32 = value.astype(np.float32)
    thr = nd["threshold"].astype(np.float32)
    cond = np.where(is_leaf, value32, thr)
    cond = np.where(np.isfinite(cond), cond, np.float32(0.0))
    base_w = np.where(np.isfinite(value32), value32, np.float32(0.0))
    gain = np.where(is_leaf | ~np.isfinite(nd["gain"]), 0.0, nd["gain"]).astype(np.float32)
    cover = np.where(np.isfinite(nd["cover"]), nd["cover"], 0.0).astype(np.float32)
    feat = np.where(is_leaf, 0, nd["feature"]).astype(np.int64)
    if np.any((feat < 0) | (feat >= n_features)):
        raise ConversionError(f"tree {tid} splits on a feature outside [0, {n_features})")
    split_type = np.where((nd["cat_index"] >= 0) & ~is_leaf, 1, 0)
    cat_nodes, cat_segs, cat_sizes, cat_vals = [], [], [], []
    for nid in np.flatnonzero(split_type == 1):
        words = np.asarray(tree.cat_sets[int(nd["cat_index"][nid])], dtype=np.uint32)
        bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
        chosen = np.flatnonzero(bits)
        # little-endian view: bit c of word c // 32 is element c of the unpacked bits
        cat_nodes.append(int(nid))
        cat_segs.append(len(cat_vals))
        cat_sizes.append(len(chosen))
        cat_vals.extend(int(c) for c in chosen)
    return {
        "base_weights": [float(v) for v in base_w],
        "categories": cat_vals,
        "categories_nodes": cat_nodes,
        "categories_segments": cat_segs,
        "categories_sizes": cat_sizes,
        "default_left": [int(v) for v in nd["default_left"]],
        "id": tid,
        "left_children": [int(v) for v in np.where(is_leaf, -1, left)],
        "loss_changes": [float(v) for v in gain],
        "parents": [int(v) for v in parents],
        "right_children": [int(v) for v in np.where(is_leaf, -1, right)],
        "split_conditions": [float(v) for v in cond],
        "split_indices": [int(v) for v in feat],
        "split_type": [int(v) for v in split_type],
        "sum_hessian": [float(v) for v in cover],
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(n_features),
            "num_nodes": str(n),
            "size_leaf_vector": "1",
        },
    }


def _xgboost_numbering(tree: Tree) -> Tree:
    """The tree in its native numbering when that is a valid XGBoost numbering, else compacted.

    Keeping the numbering of an unchanged tree keeps ``pred_leaf`` of the written model equal to
    that of the source (lossguide trees, for one, are not numbered breadth first).
    """
    n = tree.n_nodes
    nid = tree.nodes["native_id"].astype(np.int64)
    if n == 0 or nid[0] != 0 or not np.array_equal(np.sort(nid), np.arange(n)):
        return compact(tree, "xgboost")
    try:
        if len(bfs_order(tree)) != n:
            return compact(tree, "xgboost")
    except ValueError:
        raise ConversionError("a tree of the ensemble is not a tree (a node is reached twice)") \
            from None
    perm = np.empty(n, dtype=np.int64)
    perm[nid] = np.arange(n)  # perm[new id] = current local id
    nodes = {name: arr[perm].copy() for name, arr in tree.nodes.items()}
    for name in ("left", "right"):
        child = nodes[name]
        inner = child >= 0
        child[inner] = nid[child[inner]]
    return Tree(nodes, list(tree.cat_sets), tree.group, tree.weight)


def _format_float(x: np.float32) -> str:
    return repr(float(x))


def _cats_json(ens: Ensemble) -> dict[str, Any]:
    if not ens.categories:
        return {"enc": [], "feature_segments": [], "sorted_idx": []}
    enc, segs, sorted_idx = [], [0], []
    for f in range(ens.n_features):
        values = ens.categories.get(f, ())
        if not values:
            enc.append({"offsets": [], "values": []})
        elif all(isinstance(v, str) for v in values):
            raw = [v.encode("utf-8") for v in values]
            offsets = np.concatenate([[0], np.cumsum([len(b) for b in raw])]).astype(int).tolist()
            data = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int8).tolist()
            enc.append({"offsets": offsets, "values": data})
            sorted_idx.extend(int(i) for i in sorted(range(len(raw)), key=lambda i: raw[i]))
        elif all(isinstance(v, (int, np.integer)) for v in values):
            arr = np.asarray(values, dtype=np.int64)
            enc.append({"type": _CAT_TYPE_CODES[np.dtype(np.int64)], "values": arr.tolist()})
            sorted_idx.extend(int(i) for i in np.argsort(arr, kind="stable"))
        else:
            raise ConversionError(
                f"feature {f}: XGBoost stores categories as strings or integers, got {values[:3]!r}"
            )
        segs.append(segs[-1] + len(values))
    return {"enc": enc, "feature_segments": segs, "sorted_idx": sorted_idx}


def _round_structure(groups: list[int], n_groups: int) -> list[int]:
    """An iteration_indptr for trees in this order: a round ends where the groups restart."""
    if n_groups == 1:
        return list(range(len(groups) + 1))
    indptr = [0]
    for k in range(1, len(groups)):
        if groups[k] <= groups[k - 1]:
            indptr.append(k)
    indptr.append(len(groups))
    if len(groups) == 0:
        return [0]
    return indptr


def _installed_version() -> list[int]:
    try:
        import xgboost

        parts = xgboost.__version__.split(".")[:3]
        return [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts]
    except Exception:  # pragma: no cover
        return [3, 2, 0]


def to_json_dict(ens: Ensemble) -> dict[str, Any]:
    """The full XGBoost model document for ``ens`` (what ``save_raw('json')`` would return)."""
    if ens.source != "xgboost":
        raise ConversionError(
            f"writing a {ens.source} model as XGBoost is not supported (the decision rules "
            "differ: LightGBM splits on x <= threshold in double precision); save it in its "
            "own format"
        )
    obj: Objective = ens.objective
    if obj.name not in _OBJECTIVE_SECTIONS:
        raise ConversionError(f"objective {obj.name!r} cannot be written as an XGBoost model")
    meta = ens.source_meta or {}
    n_groups = obj.n_groups
    learner: dict[str, Any]
    if meta.get("xgboost_learner"):
        learner = json.loads(meta["xgboost_learner"])
        model_extra = json.loads(meta.get("xgboost_model") or "{}")
    else:
        section = json.loads(json.dumps(_OBJECTIVE_SECTIONS[obj.name]))
        for sec in section.values():
            if "num_class" in sec:
                sec["num_class"] = str(obj.n_classes)
            if "huber_slope" in sec and "huber_slope" in obj.params:
                sec["huber_slope"] = repr(float(obj.params["huber_slope"]))
            if "tweedie_variance_power" in sec and "tweedie_variance_power" in obj.params:
                sec["tweedie_variance_power"] = repr(float(obj.params["tweedie_variance_power"]))
            if "max_delta_step" in sec and "max_delta_step" in obj.params:
                sec["max_delta_step"] = repr(float(obj.params["max_delta_step"]))
            if "scale_pos_weight" in sec and "scale_pos_weight" in obj.params:
                sec["scale_pos_weight"] = repr(float(obj.params["scale_pos_weight"]))
        learner = {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {"name": "gbtree"},
            "learner_model_param": {"boost_from_average": "1"},
            "objective": {"name": obj.name, **section},
        }
        model_extra = {}
    learner["objective"]["name"] = obj.name
    for sec in learner["objective"].values():
        if isinstance(sec, dict) and "num_class" in sec:
            sec["num_class"] = str(obj.n_classes)

    trees = [_xgboost_numbering(t) for t in get_trees(ens)]
    is_dart = meta.get("xgboost_booster") == "dart"
    weights = np.array([t.weight for t in trees], dtype=np.float64)
    if not np.all(np.isfinite(weights)):
        raise ConversionError("tree weights must be finite")

    # base score: reuse the original string when it still gives the same margin
    bm = np.asarray(ens.base_margin, dtype=np.float64)
    if len(bm) != n_groups:
        bm = np.broadcast_to(bm, (n_groups,)).copy()
    scores = np.empty(n_groups, dtype=np.float32)
    residual = np.zeros(n_groups, dtype=np.float64)
    for g in range(n_groups):
        scores[g], residual[g] = margin_to_base_score(obj.name, float(bm[g]))
    original = meta.get("xgboost_base_score")
    base_text = None
    if isinstance(original, str):
        try:
            orig = parse_base_score(original, n_groups)
            if np.array_equal(base_score_to_margin(obj.name, orig).astype(np.float32),
                              bm.astype(np.float32)):
                base_text = original
        except ModelFormatError:
            base_text = None
    if base_text is None:
        scalar_style = isinstance(original, str) and not original.strip().startswith("[")
        if scalar_style and np.all(scores == scores[0]):
            base_text = _format_float(scores[0])
        else:
            base_text = "[" + ",".join(_format_float(s) for s in scores) + "]"
    tiny = 1e-6 * np.maximum(1.0, np.abs(bm))
    residual = np.where(np.abs(residual) <= tiny, 0.0, residual)
    if np.any(residual != 0.0):
        # the margin cannot be reached by base_score alone: fold the rest into the leaves of the
        # first tree of each group (or a new single-leaf tree when the group has none)
        for g in range(n_groups):
            if residual[g] == 0.0:
                continue
            first = next((k for k, t in enumerate(trees) if t.group == g), None)
            if first is None:
                trees.append(Tree.leaf(residual[g], group=g))
                weights = np.append(weights, 1.0)
            else:
                t = trees[first]
                leaf = t.nodes["left"] < 0
                w = weights[first] if weights[first] != 0 else 1.0
                t.nodes["value"][leaf] = t.nodes["value"][leaf] + residual[g] / w

    jtrees = []
    for k, t in enumerate(trees):
        scale = 1.0 if is_dart else float(weights[k])
        jtrees.append(_tree_json(t, k, ens.n_features, scale))
    groups = [int(t.group) for t in trees]
    orig_info = meta.get("xgboost_tree_info")
    orig_indptr = meta.get("xgboost_iteration_indptr")
    attributes = dict(learner.get("attributes") or {})
    if orig_info is not None and list(orig_info) == groups and orig_indptr is not None:
        indptr = list(orig_indptr)
        n_parallel = int(meta.get("xgboost_num_parallel_tree") or 1)
    elif orig_info is not None and list(orig_info) == groups and orig_indptr is None:
        indptr = None
        n_parallel = int(meta.get("xgboost_num_parallel_tree") or 1)
    else:
        indptr = _round_structure(groups, n_groups)
        n_parallel = 1
        for key in _ROUND_ATTRIBUTES:
            attributes.pop(key, None)
    if indptr is None:
        # a model from before iteration_indptr existed: rounds follow num_parallel_tree
        per_round = max(1, n_parallel * n_groups)
        indptr = list(range(0, len(trees), per_round)) + [len(trees)]
        if len(trees) % per_round:
            indptr = _round_structure(groups, n_groups)
            n_parallel = 1
    attributes.pop(SCORECARD_KEY, None)
    if meta.get(SCORECARD_KEY):
        attributes[SCORECARD_KEY] = json.dumps(meta[SCORECARD_KEY], sort_keys=True)
    learner["attributes"] = attributes

    model: dict[str, Any] = dict(model_extra)
    model["gbtree_model_param"] = {"num_parallel_tree": str(n_parallel),
                                   "num_trees": str(len(trees))}
    model["iteration_indptr"] = indptr
    model["tree_info"] = groups
    model["trees"] = jtrees
    version = list(meta.get("xgboost_version") or _installed_version())
    if "cats" not in model and (version[:1] >= [3] or ens.categories):
        model["cats"] = _cats_json(ens)

    gb = learner.get("gradient_booster") or {}
    if is_dart:
        inner = dict(gb.get("gbtree") or {"name": "gbtree"})
        inner["model"] = model
        inner.setdefault("name", "gbtree")
        learner["gradient_booster"] = {
            **{k: v for k, v in gb.items() if k not in ("gbtree", "weight_drop", "name")},
            "gbtree": inner, "name": "dart",
            "weight_drop": [_f(w) for w in weights],
        }
    else:
        learner["gradient_booster"] = {
            **{k: v for k, v in gb.items() if k not in ("gbtree", "weight_drop", "model", "name")},
            "model": model, "name": "gbtree",
        }

    mp = dict(learner.get("learner_model_param") or {})
    mp["base_score"] = base_text
    mp["num_class"] = str(obj.n_classes) if obj.is_multiclass else "0"
    mp["num_feature"] = str(ens.n_features)
    if "num_target" in mp or not meta.get("xgboost_learner"):
        mp["num_target"] = "1"
    mp.setdefault("boost_from_average", "1")
    learner["learner_model_param"] = mp
    names, types = list(ens.feature_names), list(ens.feature_types)
    if names and len(names) != ens.n_features:
        raise ConversionError("feature_names does not match n_features")
    if types and len(types) != ens.n_features:
        raise ConversionError("feature_types does not match n_features")
    if meta.get("xgboost_feature_types_given") is False and all(t == "float" for t in types):
        types = []  # the source model stored no feature types
    learner["feature_names"] = names
    learner["feature_types"] = types
    return {"learner": learner, "version": version}


def to_bytes(ens: Ensemble, ubj: bool) -> bytes:
    """The ensemble as an XGBoost model file (JSON text, or UBJSON via the native library)."""
    try:
        doc = to_json_dict(ens)
    except (ConversionError, ModelFormatError, UnsupportedModelError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ConversionError(
            f"cannot write the ensemble as an XGBoost model: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ConversionError(f"the ensemble holds a non-finite value: {exc}") from exc
    data = text.encode("utf-8")
    if not ubj:
        return data
    try:
        import xgboost
    except ImportError as exc:  # pragma: no cover
        raise ConversionError("writing UBJSON needs the xgboost package") from exc
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
        return bytes(booster.save_raw("ubj"))
    except Exception as exc:
        raise ConversionError(f"XGBoost rejected the written model: {exc}") from exc


def to_booster(ens: Ensemble) -> Any:
    """A native ``xgboost.Booster`` with the same predictions as ``ens``."""
    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(to_bytes(ens, ubj=False)))
    except xgboost.core.XGBoostError as exc:
        raise ConversionError(f"XGBoost rejected the written model: {exc}") from exc
    return booster


__all__ = ["to_json_dict", "to_bytes", "to_booster"]
