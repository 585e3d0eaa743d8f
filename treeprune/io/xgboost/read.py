"""Read XGBoost models (JSON, UBJSON, ``Booster`` and the scikit-learn wrappers).

Reading keeps the file's node numbering (``native_id`` = XGBoost node id, what ``pred_leaf``
returns) and stores every exact float32 value of the file as a float64; the non-tree parts of the
learner go into ``source_meta`` for the writer.

XGBoost facts this module relies on (checked against XGBoost 3.2, see the tests):

* Numerical split: left iff ``float32(x) < split_condition``; NaN follows ``default_left``.
* Categorical split (``split_type == 1``, one-hot and partition alike): ``c = float32(x)``; NaN
  follows ``default_left``; ``c < 0`` or ``c >= 2**24`` goes left; otherwise the category
  ``int(c)`` (truncation toward zero) goes right iff it is in the node's category list.
* Leaf output is ``split_conditions`` of the leaf (already shrunk by the learning rate);
  ``base_weights`` holds the unshrunk weight of internal nodes.
* ``base_score`` is stored on the response scale (see :mod:`.base_score`).
* The margin is accumulated in float32, base first, then tree by tree in model order:
  ``m = f32(base); m += f32(leaf_t * weight_t)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np

from ..._rules import FEATURE_MASK, MISSING_NAN, SCORECARD_KEY, XGBOOST_MAX_CATEGORY
from ...ensemble import NODE_FIELDS, Ensemble
from ...errors import ModelFormatError, UnsupportedModelError
from ...objectives import xgboost_objective
from ...trees import Tree, assemble, compact, empty_nodes, reachable_order
from . import versions
from .base_score import base_score_to_margin, parse_base_score
from .ubjson import parse_ubj

#: Sanity bounds on header counts (a corrupted count must not allocate gigabytes).
_MAX_FEATURES = FEATURE_MASK
_MAX_CLASSES = 1 << 16


def _scorecard_attribute(attributes: Any) -> dict[str, Any] | None:
    if not isinstance(attributes, dict) or SCORECARD_KEY not in attributes:
        return None
    try:
        value = json.loads(attributes[SCORECARD_KEY])
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"XGBoost model: attribute {SCORECARD_KEY} is not JSON: {exc}"
                               ) from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"XGBoost model: attribute {SCORECARD_KEY} should be an object")
    return value


def _parse_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"XGBoost JSON model is not valid UTF-8: {exc}") from exc
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ModelFormatError("XGBoost JSON model is nested too deeply") from exc
    except ValueError as exc:
        pos = getattr(exc, "pos", None)
        hint = " (the file looks truncated)" if pos is not None and \
            pos >= len(text.rstrip()) - 1 else ""
        raise ModelFormatError(f"not a valid XGBoost JSON model: {exc}{hint}") from exc


class _Where:
    """Access helpers that turn missing keys and wrong types into ModelFormatError."""

    @staticmethod
    def get(obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            raise ModelFormatError(f"XGBoost model: {where} should be an object, got "
                                   f"{type(obj).__name__}")
        if key not in obj:
            raise ModelFormatError(f"XGBoost model: missing key {key!r} in {where}")
        return obj[key]

    @staticmethod
    def integer(value: Any, what: str) -> int:
        try:
            if isinstance(value, str):
                return int(value.strip())
            if isinstance(value, (bool, np.bool_)):
                raise TypeError
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise TypeError
            return int(value)
        except (TypeError, ValueError, OverflowError):
            raise ModelFormatError(f"XGBoost model: {what} should be an integer, got {value!r}") \
                from None

    @staticmethod
    def array(value: Any, dtype: Any, what: str, length: int | None = None) -> np.ndarray:
        if isinstance(value, np.ndarray):
            arr = value
        elif isinstance(value, list):
            try:
                arr = np.asarray(value, dtype=np.float64 if np.dtype(dtype).kind == "f" else None)
            except (TypeError, ValueError, OverflowError):
                raise ModelFormatError(f"XGBoost model: {what} should be an array of numbers") \
                    from None
            if len(value) == 0:
                arr = np.zeros(0, dtype=dtype)
        else:
            raise ModelFormatError(f"XGBoost model: {what} should be an array, got "
                                   f"{type(value).__name__}")
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "biuf"):
            raise ModelFormatError(f"XGBoost model: {what} should be an array of numbers")
        if length is not None and len(arr) != length:
            raise ModelFormatError(
                f"XGBoost model: {what} has {len(arr)} entries, expected {length} "
                "(the file is truncated or was edited)"
            )
        if np.dtype(dtype).kind in "iu":
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                    raise ModelFormatError(f"XGBoost model: {what} should hold integers")
            if arr.size and (arr.min() < np.iinfo(np.int64).min / 2
                             or arr.max() > np.iinfo(np.int64).max / 2):
                raise ModelFormatError(f"XGBoost model: {what} holds out-of-range integers")
        return arr.astype(dtype)


_W = _Where()


def _category_values(enc: Any, where: str) -> tuple[Any, ...]:
    """Decode one feature's entry of XGBoost 3.x ``cats.enc`` into category values (code order)."""
    if not isinstance(enc, dict):
        raise ModelFormatError(f"XGBoost model: {where} should be an object")
    if "offsets" in enc:
        offsets = _W.array(enc["offsets"], np.int64, f"{where}.offsets")
        raw = _W.array(_W.get(enc, "values", where), np.int64, f"{where}.values")
        if len(offsets) == 0:
            return ()
        if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(raw):
            raise ModelFormatError(f"XGBoost model: {where}.offsets are inconsistent")
        buf = bytes((raw & 0xFF).astype(np.uint8))
        out = []
        for a, b in zip(offsets[:-1], offsets[1:], strict=True):
            try:
                out.append(buf[a:b].decode("utf-8"))
            except UnicodeDecodeError:
                out.append(buf[a:b].decode("latin-1"))
        return tuple(out)
    values = _W.get(enc, "values", where)
    kind = enc.get("type")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ModelFormatError(f"XGBoost model: {where}.values should be an array")
    if kind in (7, 8) or arr.dtype.kind == "f":
        return tuple(float(v) for v in arr)
    return tuple(int(v) for v in arr)


def _read_categories(model: dict, n_features: int) -> dict[int, tuple[Any, ...]]:
    cats = model.get("cats")
    if not isinstance(cats, dict):
        return {}
    enc = cats.get("enc")
    if not isinstance(enc, list) or not enc:
        return {}
    out = {}
    for f, item in enumerate(enc[:n_features]):
        values = _category_values(item, f"cats.enc[{f}]")
        if values:
            out[f] = values
    return out


def _check(bad: np.ndarray, message: Callable[[int], str]) -> None:
    """Raise ModelFormatError with ``message(i)`` for the first index ``i`` where ``bad`` holds."""
    if np.any(bad):
        raise ModelFormatError("XGBoost model: " + message(int(np.flatnonzero(bad)[0])))


def _parse_tree(jt: Any, t: int, n_features: int) -> Tree:
    """One XGBoost JSON tree as a :class:`Tree` in the file's node numbering."""
    where = f"trees[{t}]"
    tp = _W.get(jt, "tree_param", where)
    n = _W.integer(_W.get(tp, "num_nodes", f"{where}.tree_param"), f"{where}.num_nodes")
    if n < 1:
        raise ModelFormatError(f"XGBoost model: {where} has {n} nodes")
    size_leaf = tp.get("size_leaf_vector", "1") if isinstance(tp, dict) else "1"
    if _W.integer(size_leaf, f"{where}.size_leaf_vector") > 1:
        raise UnsupportedModelError(
            "XGBoost vector-leaf trees (multi_strategy='multi_output_tree', size_leaf_vector > 1) "
            "are not supported; train with multi_strategy='one_output_per_tree'"
        )

    def arr(key: str, dtype: Any) -> np.ndarray:
        return _W.array(_W.get(jt, key, where), dtype, f"{where}.{key}", n)

    with np.errstate(over="ignore", invalid="ignore"):
        return _parse_tree_arrays(jt, t, n, n_features, arr)


def _parse_tree_arrays(jt: Any, t: int, n: int, n_features: int, arr: Any) -> Tree:
    where = f"trees[{t}]"
    left = arr("left_children", np.int64)
    right = arr("right_children", np.int64)
    feat = arr("split_indices", np.int64)
    cond = arr("split_conditions", np.float64).astype(np.float32)
    dleft = arr("default_left", np.int64)
    base_w = arr("base_weights", np.float64).astype(np.float32)
    gain = arr("loss_changes", np.float64).astype(np.float32)
    hess = arr("sum_hessian", np.float64).astype(np.float32)
    if "split_type" in jt:
        stype = arr("split_type", np.int64)
    else:  # models from before categorical support
        stype = np.zeros(n, dtype=np.int64)

    is_leaf = left == -1
    _check(is_leaf != (right == -1),
           lambda i: f"{where} node {i} has one child only (left={left[i]}, right={right[i]})")
    internal = ~is_leaf
    for name, child in (("left_children", left), ("right_children", right)):
        _check(internal & ((child < 1) | (child >= n)),
               lambda i, name=name, child=child: f"{where}.{name}[{i}] = {child[i]} is out of "
               f"range (the tree has {n} nodes)")
    if np.any(~np.isin(stype, (0, 1))):
        raise ModelFormatError(f"XGBoost model: {where}.split_type holds values other than 0/1")

    # reachability: breadth first from the root (children are in range, leaves have left == -1)
    try:
        order = reachable_order(left, right)
    except ModelFormatError as exc:
        raise ModelFormatError(f"XGBoost model: {where}: {exc}") from None
    seen = np.zeros(n, dtype=bool)
    seen[order] = True
    reach_internal = internal & seen
    _check(reach_internal & ((feat < 0) | (feat >= n_features)),
           lambda i: f"{where}.split_indices[{i}] = {feat[i]} is not a feature index (the model "
           f"has {n_features} features)")
    # XGBoost itself sends every value right at `x < NaN`; no trainer writes one, so it is damage
    _check(reach_internal & (stype == 0) & np.isnan(cond),
           lambda i: f"{where}.split_conditions[{i}] is NaN at a split (a damaged file; re-save "
           "the model from XGBoost)")

    nodes = empty_nodes(n)
    nodes["left"][:] = np.where(is_leaf, -1, left)
    nodes["right"][:] = np.where(is_leaf, -1, right)
    nodes["feature"][:] = np.where(is_leaf, -1, feat)
    nodes["threshold"][:] = np.where(is_leaf, np.nan, cond.astype(np.float64))
    # XGBoost takes only 1 (or true) as "default left": any other value (2, 255, -1) is right
    nodes["default_left"][:] = dleft == 1
    nodes["value"][:] = np.where(is_leaf, cond, base_w).astype(np.float64)
    nodes["gain"][:] = np.where(is_leaf, np.nan, gain.astype(np.float64))
    nodes["cover"][:] = hess.astype(np.float64)
    nodes["native_id"][:] = np.arange(n)

    # categorical splits
    cat_sets: list[np.ndarray] = []
    cnodes = _W.array(jt.get("categories_nodes", []), np.int64, f"{where}.categories_nodes")
    if len(cnodes) or np.any(stype[reach_internal] == 1):
        csegs = _W.array(_W.get(jt, "categories_segments", where), np.int64,
                         f"{where}.categories_segments", len(cnodes))
        csizes = _W.array(_W.get(jt, "categories_sizes", where), np.int64,
                          f"{where}.categories_sizes", len(cnodes))
        cats = _W.array(_W.get(jt, "categories", where), np.int64, f"{where}.categories")
        for k, nid in enumerate(cnodes):
            nid = int(nid)
            if not 0 <= nid < n or is_leaf[nid] or stype[nid] != 1:
                raise ModelFormatError(
                    f"XGBoost model: {where}.categories_nodes[{k}] = {nid} is not a categorical "
                    "split node"
                )
            beg, size = int(csegs[k]), int(csizes[k])
            if beg < 0 or size < 0 or beg + size > len(cats):
                raise ModelFormatError(
                    f"XGBoost model: {where} categories segment {k} [{beg}, {beg}+{size}) is "
                    f"outside the {len(cats)} stored categories"
                )
            chosen = cats[beg:beg + size]
            if np.any((chosen < 0) | (chosen >= XGBOOST_MAX_CATEGORY)):
                raise ModelFormatError(
                    f"XGBoost model: {where} node {nid} has a category outside [0, 2**24)"
                )
            if nodes["cat_index"][nid] >= 0:
                raise ModelFormatError(f"XGBoost model: {where} node {nid} has two category sets")
            n_words = int(chosen.max()) // 32 + 1 if len(chosen) else 1
            words = np.zeros(n_words, dtype=np.uint32)
            np.bitwise_or.at(words, chosen // 32, (np.uint32(1) << (chosen % 32).astype(np.uint32)))
            nodes["cat_index"][nid] = len(cat_sets)
            cat_sets.append(words)
        _check(reach_internal & (stype == 1) & (nodes["cat_index"] < 0),
               lambda i: f"{where} node {i} is a categorical split without categories")

    tree = Tree(nodes, cat_sets)
    if not np.all(seen):
        # deleted or unreachable nodes (e.g. after the 'prune' updater): drop them, keeping the
        # file's ids in native_id (what pred_leaf reports)
        native = np.arange(n, dtype=np.int32)
        tree = compact(tree, "xgboost")
        tree.nodes["native_id"][:] = native[order]
    return tree


#: The per-node arrays of a JSON tree that every tree stores, and the dtype each is read as.
_NODE_KEYS = (("left_children", np.int64), ("right_children", np.int64),
              ("split_indices", np.int64), ("split_conditions", np.float64),
              ("default_left", np.int64), ("base_weights", np.float64),
              ("loss_changes", np.float64), ("sum_hessian", np.float64))


def _node_count(jt: Any) -> int:
    """Node count of a tree the whole-model reader can take, or 0 for one it leaves to
    :func:`_parse_tree` (anything unusual: categorical splits, odd types, missing keys)."""
    if type(jt) is not dict:
        return 0
    cnodes = jt.get("categories_nodes", [])
    if not _is_array(cnodes) or len(cnodes):
        return 0
    tp = jt.get("tree_param")
    if type(tp) is not dict:
        return 0
    try:
        n = _W.integer(tp.get("num_nodes"), "")
        if _W.integer(tp.get("size_leaf_vector", "1"), "") > 1:
            return 0
    except ModelFormatError:
        return 0
    if n < 1:
        return 0
    for key, _ in _NODE_KEYS:
        v = jt.get(key)
        if not _is_array(v) or len(v) != n:
            return 0
    st = jt.get("split_type")
    if st is not None and (not _is_array(st) or len(st) != n):
        return 0
    return n


def _is_array(value: Any) -> bool:
    """A JSON list, or a one-dimensional array as the UBJ parser gives typed arrays."""
    return type(value) is list or (type(value) is np.ndarray and value.ndim == 1)


def _concat(values: list[list], dtype: Any, total: int) -> np.ndarray | None:
    """The lists of one key of many trees as one array, as :meth:`_Where.array` reads each list
    (same conversion, element by element), or None where that would reject one of them."""
    if all(type(v) is np.ndarray for v in values):
        # UBJ's typed arrays: joined as they are (a wider type holds every value exactly; a
        # 64-bit integer too large for that fails the range check below)
        arr = np.concatenate(values) if values else np.zeros(0)
    else:
        try:
            arr = np.array(list(chain.from_iterable(values)),
                           dtype=np.float64 if np.dtype(dtype).kind == "f" else None)
        except (TypeError, ValueError, OverflowError):
            return None
    if arr.ndim != 1 or len(arr) != total or arr.dtype.kind not in "biuf":
        return None
    if np.dtype(dtype).kind in "iu":
        # integers: small ones only (any valid id or index is), so that one tree's floats
        # cannot change another tree's integers
        if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
            return None
        if total and (arr.min() < -(1 << 52) or arr.max() > (1 << 52)):
            return None
    return arr.astype(dtype)


def _parse_trees(jtrees: list, n_features: int) -> list[Tree]:
    """Every tree, as :func:`_parse_tree` reads them one by one (the same arrays, the same
    errors), with the checks and conversions of the usual trees done once over all of them.

    Trees that are valid plain numerical trees with every node reachable are read here in one
    pass; any other tree (categorical splits, unreachable nodes, anything damaged) goes through
    :func:`_parse_tree`, in order, so that the first damaged tree raises its own error.
    """
    sizes = np.array([_node_count(jt) for jt in jtrees], dtype=np.int64)
    simple = np.flatnonzero(sizes > 0)
    bulk: dict[int, dict[str, np.ndarray]] = {}
    if len(simple):
        with np.errstate(over="ignore", invalid="ignore"):
            bulk = _bulk_nodes([jtrees[t] for t in simple], sizes[simple], simple, n_features)
    trees = []
    for t, jt in enumerate(jtrees):
        nodes = bulk.get(t)
        trees.append(Tree(nodes, []) if nodes is not None else _parse_tree(jt, t, n_features))
    return trees


def _bulk_nodes(jts: list, sizes: np.ndarray, ids: np.ndarray,
                n_features: int) -> dict[int, dict[str, np.ndarray]]:
    """Node arrays of the trees ``jts`` (tree ids ``ids``) that are valid numerical trees with
    every node reachable, by tree id; the others are left out."""
    total = int(sizes.sum())
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    cols = {}
    for key, dtype in _NODE_KEYS:
        arr = _concat([jt[key] for jt in jts], dtype, total)
        if arr is None:
            return {}
        cols[key] = arr
    stype = np.zeros(total, dtype=np.int64)
    with_type = [k for k, jt in enumerate(jts) if "split_type" in jt]
    if with_type:
        arr = _concat([jts[k]["split_type"] for k in with_type], np.int64,
                      int(sizes[with_type].sum()))
        if arr is None:
            return {}
        stype[np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in with_type])] = arr

    tree_of = np.repeat(np.arange(len(sizes)), sizes)
    start = offsets[:-1][tree_of]
    n_of = sizes[tree_of]
    left, right = cols["left_children"], cols["right_children"]
    feat = cols["split_indices"]
    is_leaf = left == -1
    internal = ~is_leaf
    bad = is_leaf != (right == -1)
    bad |= internal & ((left < 1) | (left >= n_of) | (right < 1) | (right >= n_of))
    bad |= stype != 0  # categorical splits (or a damaged split_type): read tree by tree
    bad |= internal & ((feat < 0) | (feat >= n_features))
    bad |= internal & np.isnan(cols["split_conditions"])  # refused tree by tree
    # a tree: every node but the root has exactly one parent, and every node reaches the root
    node = np.arange(total)
    inner = np.flatnonzero(internal & ~bad)
    kids = np.concatenate([left[inner], right[inner]]) + np.concatenate([start[inner]] * 2)
    parents = np.bincount(kids, minlength=total)
    bad |= parents != (node != start)
    up = node.copy()
    up[kids] = np.concatenate([inner, inner])
    up[bad] = start[bad]
    # pointer doubling: after k rounds every node points 2**k levels up (or at its root)
    for _ in range(int(sizes.max()).bit_length() + 1):
        up = up[up]
    bad |= up != start
    broken = np.zeros(len(sizes), dtype=bool)
    broken[tree_of[bad]] = True

    cond = cols["split_conditions"].astype(np.float32)
    base_w = cols["base_weights"].astype(np.float32)
    nodes = {name: np.empty(total, dtype=dtype) for name, dtype in NODE_FIELDS.items()}
    nodes["feature"][:] = np.where(is_leaf, -1, feat)
    nodes["threshold"][:] = np.where(is_leaf, np.nan, cond.astype(np.float64))
    nodes["left"][:] = np.where(is_leaf, -1, left)
    nodes["right"][:] = np.where(is_leaf, -1, right)
    # XGBoost takes only 1 (or true) as "default left": any other value (2, 255, -1) is right
    nodes["default_left"][:] = cols["default_left"] == 1
    nodes["missing_type"][:] = MISSING_NAN
    nodes["cat_index"][:] = -1
    nodes["value"][:] = np.where(is_leaf, cond, base_w).astype(np.float64)
    nodes["gain"][:] = np.where(is_leaf, np.nan,
                                cols["loss_changes"].astype(np.float32).astype(np.float64))
    nodes["cover"][:] = cols["sum_hessian"].astype(np.float32).astype(np.float64)
    nodes["count"][:] = np.nan
    nodes["native_id"][:] = node - start
    out = {}
    for k in np.flatnonzero(~broken).tolist():
        a, b = int(offsets[k]), int(offsets[k + 1])
        out[int(ids[k])] = {name: arr[a:b] for name, arr in nodes.items()}
    return out


def _strip_numpy(obj: Any) -> Any:
    """JSON-serialisable copy (numpy arrays from UBJ become lists)."""
    if isinstance(obj, dict):
        return {k: _strip_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip_numpy(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _parse_monotone(text: Any, n_features: int) -> tuple[int, ...]:
    if not isinstance(text, str):
        return (0,) * n_features
    s = text.strip().strip("()[]")
    if not s:
        return (0,) * n_features
    try:
        vals = [int(float(v)) for v in s.split(",") if v.strip()]
    except ValueError:
        return (0,) * n_features
    vals = [max(-1, min(1, v)) for v in vals[:n_features]]
    return tuple(vals + [0] * (n_features - len(vals)))


def _find_key(obj: Any, key: str) -> Any:
    """First value stored under ``key`` anywhere in a nested dict (depth first)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _number(v: Any) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v


def _objective_params(jobj: dict) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, section in jobj.items():
        if key == "name" or not isinstance(section, dict):
            continue
        for k, v in section.items():
            if k == "num_class":
                continue
            val = _number(v)
            if isinstance(val, (int, float)):
                params[k] = float(val)
    return params


def _from_model(doc: Any, config: Any = None) -> Ensemble:
    """Build the Ensemble from a parsed XGBoost model document (the ``save_raw('json')`` dict)."""
    learner = _W.get(doc, "learner", "the model (is this an XGBoost model?)")
    version = doc.get("version") if isinstance(doc, dict) else None
    gb = _W.get(learner, "gradient_booster", "learner")
    gb_name = _W.get(gb, "name", "learner.gradient_booster")
    if gb_name == "gblinear":
        raise UnsupportedModelError(
            "XGBoost gblinear (linear booster) models have no trees to prune; "
            "treeprune supports booster='gbtree' and booster='dart'"
        )
    if gb_name == "dart":
        inner = _W.get(gb, "gbtree", "learner.gradient_booster (dart)")
        model = _W.get(inner, "model", "learner.gradient_booster.gbtree")
        where_model = "learner.gradient_booster.gbtree.model"
    elif gb_name == "gbtree":
        model = _W.get(gb, "model", "learner.gradient_booster")
        where_model = "learner.gradient_booster.model"
    else:
        raise UnsupportedModelError(f"XGBoost booster {gb_name!r} is not supported "
                                    "(supported: gbtree, dart)")

    jtrees_any = model.get("trees") if isinstance(model, dict) else None
    for jt in jtrees_any if isinstance(jtrees_any, list) else []:
        tp = jt.get("tree_param") if isinstance(jt, dict) else None
        if isinstance(tp, dict) and str(tp.get("size_leaf_vector", "1")).strip() not in ("0", "1"):
            raise UnsupportedModelError(
                "XGBoost vector-leaf trees (multi_strategy='multi_output_tree', "
                "size_leaf_vector > 1) are not supported; train with "
                "multi_strategy='one_output_per_tree'"
            )
    mparam = _W.get(learner, "learner_model_param", "learner")
    n_features = _W.integer(_W.get(mparam, "num_feature", "learner.learner_model_param"),
                            "num_feature")
    num_class = _W.integer(mparam.get("num_class", "0"), "num_class")
    num_target = _W.integer(mparam.get("num_target", "1"), "num_target")
    if num_target > 1:
        raise UnsupportedModelError(
            f"XGBoost multi-target models (num_target={num_target}) are not supported"
        )
    if not 0 <= n_features <= _MAX_FEATURES:
        raise ModelFormatError(f"XGBoost model: implausible num_feature = {n_features} (at most "
                               f"{_MAX_FEATURES} features can be routed)")
    if not 0 <= num_class <= _MAX_CLASSES:
        raise ModelFormatError(f"XGBoost model: implausible num_class = {num_class}")
    jobj = _W.get(learner, "objective", "learner")
    obj_name = _W.get(jobj, "name", "learner.objective")
    if not isinstance(obj_name, str):
        raise ModelFormatError("XGBoost model: learner.objective.name should be a string")
    objective = xgboost_objective(obj_name, num_class, _objective_params(jobj))
    n_groups = objective.n_groups
    if objective.is_multiclass and num_class < 2:
        raise ModelFormatError(f"XGBoost model: {obj_name} with num_class = {num_class}")
    if not objective.is_multiclass and num_class > 1:
        # XGBoost then predicts num_class outputs with this objective's link: not representable
        raise UnsupportedModelError(
            f"XGBoost model: num_class = {num_class} with the one-output objective {obj_name!r} "
            "(trained with a custom multi-output objective, or a damaged file); treeprune reads "
            "several classes with multi:softprob / multi:softmax"
        )

    base_score = parse_base_score(_W.get(mparam, "base_score", "learner.learner_model_param"),
                                 n_groups)
    base_margin = base_score_to_margin(obj_name, base_score)
    if not np.all(np.isfinite(base_margin)):
        raise ModelFormatError(
            f"XGBoost model: base_score {mparam['base_score']!r} is invalid for {obj_name}"
        )

    jtrees = _W.get(model, "trees", where_model)
    if not isinstance(jtrees, list):
        raise ModelFormatError(f"XGBoost model: {where_model}.trees should be an array")
    n_trees = len(jtrees)
    gparam = _W.get(model, "gbtree_model_param", where_model)
    declared = _W.integer(_W.get(gparam, "num_trees", "gbtree_model_param"), "num_trees")
    if declared != n_trees:
        raise ModelFormatError(
            f"XGBoost model: gbtree_model_param.num_trees = {declared} but {n_trees} trees are "
            "stored (the file is truncated or was edited)"
        )
    num_parallel = _W.integer(gparam.get("num_parallel_tree", "1"), "num_parallel_tree")
    tree_info = _W.array(_W.get(model, "tree_info", where_model), np.int64,
                         f"{where_model}.tree_info", n_trees)
    if n_trees and (tree_info.min() < 0 or tree_info.max() >= n_groups):
        raise ModelFormatError(
            f"XGBoost model: tree_info holds output groups outside [0, {n_groups})"
        )
    indptr = model.get("iteration_indptr")
    if indptr is not None:
        indptr = _W.array(indptr, np.int64, f"{where_model}.iteration_indptr")
        if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != n_trees or np.any(np.diff(indptr) < 0):
            raise ModelFormatError("XGBoost model: iteration_indptr does not match the trees")

    if gb_name == "dart":
        weights = _W.array(_W.get(gb, "weight_drop", "learner.gradient_booster"), np.float64,
                           "weight_drop", n_trees).astype(np.float32).astype(np.float64)
    else:
        weights = np.ones(n_trees, dtype=np.float64)

    # trees are listed with an id; XGBoost places tree `id` at that position
    ids = [_W.integer(_W.get(jt, "id", f"trees[{k}]"), f"trees[{k}].id")
           for k, jt in enumerate(jtrees)]
    if sorted(ids) != list(range(n_trees)):
        raise ModelFormatError("XGBoost model: tree ids are not 0..n_trees-1")
    by_id = [None] * n_trees
    for k, tid in enumerate(ids):
        by_id[tid] = jtrees[k]
    trees = _parse_trees(by_id, n_features)
    for t, tree in enumerate(trees):
        tree.group = int(tree_info[t])
        tree.weight = float(weights[t])

    attributes = learner.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise ModelFormatError("XGBoost model: learner.attributes should map names to strings")
    names = learner.get("feature_names") or []
    types = learner.get("feature_types") or []
    for label, seq in (("feature_names", names), ("feature_types", types)):
        if not isinstance(seq, list) or (seq and len(seq) != n_features) or \
                not all(isinstance(s, str) for s in seq):
            raise ModelFormatError(
                f"XGBoost model: learner.{label} should list {n_features} strings"
            )
    types_given = bool(types)
    if not types:
        cat_features = set()
        for tr in trees:
            sel = (tr.nodes["cat_index"] >= 0) & (tr.nodes["left"] >= 0)
            cat_features.update(int(f) for f in tr.nodes["feature"][sel])
        types = ["c" if f in cat_features else "float" for f in range(n_features)]
    categories = _read_categories(model, n_features)

    cfg = None
    if config is not None:
        cfg = json.loads(config) if isinstance(config, str) else config
    monotone = _parse_monotone(_find_key(cfg, "monotone_constraints"), n_features) if cfg \
        else (0,) * n_features
    train_params: dict[str, Any] = {}
    if cfg:
        tparam = _find_key(cfg, "tree_train_param")
        if isinstance(tparam, dict):
            train_params = {k: _number(v) for k, v in tparam.items()}

    # the non-tree parts of the learner, for the writer
    stripped = _strip_numpy({k: v for k, v in learner.items() if k != "gradient_booster"})
    gb_copy: dict[str, Any] = {k: v for k, v in gb.items() if k not in ("model", "gbtree",
                                                                        "weight_drop")}
    model_copy = {k: _strip_numpy(v) for k, v in model.items()
                  if k not in ("trees", "tree_info", "iteration_indptr")}
    if gb_name == "dart":
        gb_copy["gbtree"] = {k: v for k, v in gb["gbtree"].items() if k != "model"}
    stripped["gradient_booster"] = _strip_numpy(gb_copy)
    meta: dict[str, Any] = {
        SCORECARD_KEY: _scorecard_attribute(learner.get("attributes")),
        "xgboost_learner": json.dumps(stripped),
        "xgboost_model": json.dumps(model_copy),
        "xgboost_version": tuple(int(v) for v in version) if isinstance(version, list) else None,
        "xgboost_booster": gb_name,
        "xgboost_base_score": mparam["base_score"] if isinstance(mparam["base_score"], str)
        else str(mparam["base_score"]),
        "xgboost_tree_info": tuple(int(g) for g in tree_info),
        "xgboost_iteration_indptr": tuple(int(v) for v in indptr) if indptr is not None else None,
        "xgboost_num_parallel_tree": num_parallel,
        "xgboost_feature_types_given": types_given,
    }
    if cfg:
        meta["xgboost_config"] = json.dumps(cfg)
        meta["xgboost_train_params"] = train_params


    return assemble(
        None, trees, renumber=False,
        objective=objective,
        base_margin=base_margin,
        folded_intercept=np.zeros(n_groups, dtype=np.float64),
        n_features=n_features,
        feature_names=tuple(names),
        feature_types=tuple(types),
        categories=categories,
        monotone_constraints=monotone,
        source="xgboost",
        source_meta=meta,
    )


def read_xgboost_bytes(data: bytes, ubj: bool) -> Ensemble:
    """Read an XGBoost model from the bytes of a JSON (``ubj=False``) or UBJSON file."""
    if not data or not bytes(data[:4096]).strip():
        raise ModelFormatError("XGBoost model is empty")
    doc = parse_ubj(bytes(data)) if ubj else _parse_json(bytes(data))
    if not isinstance(doc, dict):
        raise ModelFormatError("not an XGBoost model: the document is not a JSON object")
    # scores as the release that wrote the file scored them (its rules may differ from today's)
    return versions.apply(_read_document(doc), "UBJSON" if ubj else "JSON")


def _read_document(doc: dict[str, Any], config: str | None = None) -> Ensemble:
    """``_from_model``, with any slip on a malformed document reported as ModelFormatError."""
    try:
        return _from_model(doc, config)
    except (ModelFormatError, UnsupportedModelError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFormatError(f"XGBoost model is inconsistent: {type(exc).__name__}: {exc}") \
            from exc


def read_xgboost_object(obj: Any) -> Ensemble:
    """Read an ``xgboost.Booster`` or a fitted ``XGBModel`` (never modifying it)."""
    try:
        import xgboost
    except ImportError as exc:  # pragma: no cover - xgboost is a dependency
        raise ModelFormatError("reading an XGBoost object needs the xgboost package") from exc
    if isinstance(obj, xgboost.Booster):
        booster = obj
    elif hasattr(obj, "get_booster"):
        try:
            booster = obj.get_booster()
        except Exception as exc:  # NotFittedError / XGBoostError
            raise ModelFormatError(
                f"the {type(obj).__name__} is not fitted; call fit() before loading it"
            ) from exc
    else:
        raise ModelFormatError(f"cannot read an XGBoost model from {type(obj).__name__}")
    try:
        raw = bytes(booster.save_raw("json"))
        config = booster.save_config()
    except Exception as exc:
        raise ModelFormatError(f"cannot serialise the XGBoost booster: {exc}") from exc
    return _read_document(_parse_json(raw), config)


__all__ = ["read_xgboost_bytes", "read_xgboost_object"]
