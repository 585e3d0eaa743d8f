"""Read and write XGBoost models (JSON, UBJSON, ``Booster`` and the scikit-learn wrappers).

Reading keeps the file's node numbering (``native_id`` = XGBoost node id, what ``pred_leaf``
returns) and stores every exact float32 value of the file as a float64. Writing produces a full
XGBoost model whose predictions equal the ensemble's: when the ensemble was read from XGBoost, the
non-tree parts of the original model (objective parameters, attributes, feature names and types,
category encodings, version) are reused.

XGBoost facts this module relies on (checked against XGBoost 3.2, see the tests):

* Numerical split: left iff ``float32(x) < split_condition``; NaN follows ``default_left``.
* Categorical split (``split_type == 1``, one-hot and partition alike): ``c = float32(x)``; NaN
  follows ``default_left``; ``c < 0`` or ``c >= 2**24`` goes left; otherwise the category
  ``int(c)`` (truncation toward zero) goes right iff it is in the node's category list.
* Leaf output is ``split_conditions`` of the leaf (already shrunk by the learning rate);
  ``base_weights`` holds the unshrunk weight of internal nodes.
* ``base_score`` is stored on the response scale: the margin starts at
  ``float32(-log(1/p - 1))`` (computed as ``-logf(1.0f/p - 1.0f)``, after clamping ``p`` to
  ``[1e-6, 1 - 1e-6]``; ``p`` outside ``[0, 1]`` is an error) for ``binary:logistic`` and
  ``reg:logistic``, ``logf(p)`` for ``count:poisson``, ``reg:gamma`` and ``reg:tweedie``, and ``p``
  itself otherwise (including ``binary:logitraw`` and the per-class ``multi:*`` vectors).
* The margin is accumulated in float32, base first, then tree by tree in model order:
  ``m = f32(base); m += f32(leaf_t * weight_t)``.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from ...ensemble import Ensemble
from ...errors import ConversionError, ModelFormatError, UnsupportedModelError
from ...objectives import Objective, xgboost_objective
from ...trees import Tree, bfs_order, compact, empty_nodes, get_trees

#: XGBoost's parent id of a root node.
_ROOT_PARENT = 2147483647
#: Categories at or beyond this value are invalid in XGBoost (and go left).
MAX_CATEGORY = 16777216
_LOGIT_OBJECTIVES = ("binary:logistic", "reg:logistic")
_LOG_OBJECTIVES = ("count:poisson", "reg:gamma", "reg:tweedie")
_LOGIT_EPS = np.float32(1e-6)
#: Sanity bounds on header counts (a corrupted count must not allocate gigabytes).
_MAX_FEATURES = 1 << 24
_MAX_CLASSES = 1 << 16
_LOGIT_ONE_MINUS_EPS = np.float32(np.float32(1.0) - np.float32(1e-6))
#: Learner attribute (and source_meta key) holding the Scorecard saved with the model.
SCORECARD_KEY = "treeprune_scorecard"


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


# =================================================================================================
# parsing bytes
# =================================================================================================

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


_UBJ_SCALARS = {
    b"i": (">i1", 1), b"U": (">u1", 1), b"I": (">i2", 2), b"l": (">i4", 4), b"L": (">i8", 8),
    b"d": (">f4", 4), b"D": (">f8", 8),
}
_UBJ_STRUCT = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}
_UBJ_MAX_DEPTH = 64


class _UBJReader:
    """A small, defensive UBJSON decoder (the subset XGBoost writes, plus the rest of the spec).

    Typed numeric arrays come back as numpy arrays; every length is checked against the bytes left
    so that junk or truncated input raises :class:`ModelFormatError` instead of allocating or
    looping.
    """

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"not a valid XGBoost UBJSON model: {what} at byte {self.pos}")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail("unexpected end of data (the file looks truncated)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def marker(self) -> bytes:
        while True:
            m = bytes(self.take(1))
            if m != b"N":  # no-op
                return m

    def number(self, m: bytes) -> Any:
        fmt = _UBJ_STRUCT.get(m)
        if fmt is None:
            raise self.fail(f"expected a number, found marker {m!r}")
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        m = self.marker()
        if m not in (b"i", b"U", b"I", b"l", b"L"):
            raise self.fail(f"expected an integer length, found marker {m!r}")
        n = int(self.number(m))
        if n < 0 or n > len(self.data) - self.pos + (1 << 20):
            raise self.fail(f"impossible length {n}")
        return n

    def string(self) -> str:
        n = self.length()
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail("string is not valid UTF-8") from exc

    def value(self, m: bytes, depth: int) -> Any:
        if m in _UBJ_STRUCT:
            return self.number(m)
        if m == b"S" or m == b"H":
            return self.string()
        if m == b"C":
            return bytes(self.take(1)).decode("latin-1")
        if m == b"Z":
            return None
        if m == b"T":
            return True
        if m == b"F":
            return False
        if m == b"[":
            return self.array(depth + 1)
        if m == b"{":
            return self.object(depth + 1)
        raise self.fail(f"unknown marker {m!r}")

    def container_header(self) -> tuple[bytes | None, int | None]:
        typ = count = None
        if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"$":
            self.pos += 1
            typ = bytes(self.take(1))
            if self.data[self.pos:self.pos + 1] != b"#":
                raise self.fail("a typed container must give its count")
        if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"#":
            self.pos += 1
            count = self.length()
        return typ, count

    def array(self, depth: int) -> Any:
        if depth > _UBJ_MAX_DEPTH:
            raise self.fail("containers nested too deeply")
        typ, count = self.container_header()
        if typ is not None and typ in _UBJ_SCALARS:
            dtype, size = _UBJ_SCALARS[typ]
            raw = self.take(count * size)  # type: ignore[operator]
            return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))
        out = []
        if count is not None:
            if typ is None and count > len(self.data) - self.pos:
                raise self.fail(f"array count {count} exceeds the data left")
            for _ in range(count):
                out.append(self.value(typ if typ is not None else self.marker(), depth))
            return out
        while True:
            m = self.marker()
            if m == b"]":
                return out
            out.append(self.value(m, depth))

    def object(self, depth: int) -> dict[str, Any]:
        if depth > _UBJ_MAX_DEPTH:
            raise self.fail("containers nested too deeply")
        typ, count = self.container_header()
        out: dict[str, Any] = {}
        if count is not None:
            if count > len(self.data) - self.pos:
                raise self.fail(f"object count {count} exceeds the data left")
            for _ in range(count):
                key = self.string()
                out[key] = self.value(typ if typ is not None else self.marker(), depth)
            return out
        while True:
            if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"}":
                self.pos += 1
                return out
            key = self.string()
            out[key] = self.value(self.marker(), depth)


def _parse_ubj(data: bytes) -> Any:
    reader = _UBJReader(data)
    m = reader.marker()
    if m != b"{":
        raise reader.fail("an XGBoost UBJSON model starts with '{'")
    return reader.object(1)


# =================================================================================================
# reading
# =================================================================================================

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


def parse_base_score(text: Any, n_groups: int) -> np.ndarray:
    """``base_score`` of any XGBoost version ("5E-1", "[5E-1]", "[a,b,c]", a number) as float32."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        values = [float(text)]
    elif isinstance(text, str):
        s = text.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        try:
            values = [float(v) for v in s.split(",") if v.strip()]
        except ValueError:
            raise ModelFormatError(f"XGBoost model: cannot parse base_score {text!r}") from None
    elif isinstance(text, (list, np.ndarray)):
        values = [float(v) for v in text]
    else:
        raise ModelFormatError(f"XGBoost model: cannot parse base_score {text!r}")
    if len(values) == 1:
        values = values * n_groups
    if len(values) != n_groups:
        raise ModelFormatError(
            f"XGBoost model: base_score has {len(values)} values for {n_groups} outputs"
        )
    return np.asarray(values, dtype=np.float32)


def base_score_to_margin(objective: str, base_score: np.ndarray) -> np.ndarray:
    """The starting margin XGBoost derives from ``base_score`` (float32 values, as float64)."""
    out = np.empty(len(base_score), dtype=np.float64)
    for i, p in enumerate(np.asarray(base_score, dtype=np.float32)):
        out[i] = float(_forward(objective, p))
    return out


def _forward(objective: str, p: np.float32) -> np.float32:
    """XGBoost's ``ProbToMargin`` in float32 (libm's correctly rounded logf emulated in double)."""
    with np.errstate(all="ignore"):
        if objective in _LOGIT_OBJECTIVES:
            # XGBoost rejects p outside [0, 1] and clamps p to [1e-6, 1 - 1e-6] (float32)
            if not 0.0 <= p <= 1.0:
                return np.float32(np.nan)
            p = np.float32(min(max(p, _LOGIT_EPS), _LOGIT_ONE_MINUS_EPS))
            q = np.float32(np.float32(1.0) / p - np.float32(1.0))
            if not q > 0 or not np.isfinite(q):
                return np.float32(np.nan)
            return np.float32(-math.log(float(q)))
        if objective in _LOG_OBJECTIVES:
            if not p > 0 or not np.isfinite(p):
                return np.float32(np.nan)
            return np.float32(math.log(float(p)))
        return np.float32(p)


def _inverse(objective: str, margin: float) -> float:
    with np.errstate(all="ignore"):
        if objective in _LOGIT_OBJECTIVES:
            return float(1.0 / (1.0 + np.exp(-margin)))
        if objective in _LOG_OBJECTIVES:
            return float(np.exp(margin))
        return float(margin)


def _valid_base_score(objective: str, p: np.float32) -> bool:
    if not np.isfinite(p):
        return False
    if objective in _LOGIT_OBJECTIVES:
        return bool(0.0 < p < 1.0)
    if objective in _LOG_OBJECTIVES:
        return bool(p > 0.0)
    return True


def margin_to_base_score(objective: str, margin: float) -> tuple[np.float32, float]:
    """A float32 ``base_score`` whose XGBoost margin is ``float32(margin)``, and the residual.

    The residual (``margin - forward(base_score)``) is 0 unless the margin cannot be reached
    exactly (for example a logistic margin so large that ``p`` rounds to 1 in float32).
    """
    target = np.float32(margin)
    p0 = np.float32(_inverse(objective, float(target)))
    if objective in _LOGIT_OBJECTIVES:
        p0 = np.float32(min(max(float(p0), float(np.nextafter(np.float32(0), np.float32(1)))),
                            float(np.nextafter(np.float32(1), np.float32(0)))))
    elif objective in _LOG_OBJECTIVES:
        p0 = np.float32(min(max(float(p0), float(np.finfo(np.float32).tiny)),
                            float(np.finfo(np.float32).max)))
    best, best_err = None, math.inf
    candidates = [p0]
    up = down = p0
    for _ in range(8):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        candidates += [up, down]
    for cand in candidates:
        if not _valid_base_score(objective, cand):
            continue
        m = _forward(objective, cand)
        if not np.isfinite(m):
            continue
        err = abs(float(m) - float(target))
        if err < best_err:
            best, best_err = cand, err
            if err == 0.0:
                break
    if best is None:
        raise ConversionError(
            f"cannot express the base margin {margin!r} as an XGBoost base_score for {objective}"
        )
    return np.float32(best), float(margin) - float(_forward(objective, best))


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
    if np.any(is_leaf != (right == -1)):
        i = int(np.flatnonzero(is_leaf != (right == -1))[0])
        raise ModelFormatError(
            f"XGBoost model: {where} node {i} has one child only "
            f"(left={left[i]}, right={right[i]})"
        )
    internal = ~is_leaf
    for name, child in (("left_children", left), ("right_children", right)):
        bad = internal & ((child < 1) | (child >= n))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ModelFormatError(
                f"XGBoost model: {where}.{name}[{i}] = {child[i]} is out of range "
                f"(the tree has {n} nodes)"
            )
    if np.any(~np.isin(stype, (0, 1))):
        raise ModelFormatError(f"XGBoost model: {where}.split_type holds values other than 0/1")

    # reachability: breadth first from the root; a node reached twice means a cycle or a DAG
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    order = [0]
    i = 0
    while i < len(order):
        nid = order[i]
        if not is_leaf[nid]:
            for c in (int(left[nid]), int(right[nid])):
                if seen[c]:
                    raise ModelFormatError(
                        f"XGBoost model: {where} is not a tree: node {c} is reached twice "
                        "(cycle or shared child)"
                    )
                seen[c] = True
                order.append(c)
        i += 1
    reach_internal = internal & seen
    bad = reach_internal & ((feat < 0) | (feat >= n_features))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ModelFormatError(
            f"XGBoost model: {where}.split_indices[{i}] = {feat[i]} is not a feature index "
            f"(the model has {n_features} features)"
        )

    nodes = empty_nodes(n)
    nodes["left"][:] = np.where(is_leaf, -1, left)
    nodes["right"][:] = np.where(is_leaf, -1, right)
    nodes["feature"][:] = np.where(is_leaf, -1, feat)
    nodes["threshold"][:] = np.where(is_leaf, np.nan, cond.astype(np.float64))
    nodes["default_left"][:] = dleft != 0
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
            if np.any((chosen < 0) | (chosen >= MAX_CATEGORY)):
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
        missing = reach_internal & (stype == 1) & (nodes["cat_index"] < 0)
        if np.any(missing):
            i = int(np.flatnonzero(missing)[0])
            raise ModelFormatError(
                f"XGBoost model: {where} node {i} is a categorical split without categories"
            )

    tree = Tree(nodes, cat_sets)
    if not np.all(seen):
        # deleted or unreachable nodes (e.g. after the 'prune' updater): drop them, keeping the
        # file's ids in native_id (what pred_leaf reports)
        native = np.arange(n, dtype=np.int32)
        tree = compact(tree, "xgboost")
        order_arr = np.asarray(order, dtype=np.int64)
        tree.nodes["native_id"][:] = native[order_arr]
    return tree


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
        raise ModelFormatError(f"XGBoost model: implausible num_feature = {n_features}")
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
    trees = []
    for t, jt in enumerate(by_id):
        tree = _parse_tree(jt, t, n_features)
        tree.group = int(tree_info[t])
        tree.weight = float(weights[t])
        trees.append(tree)

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

    from ...trees import assemble

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
    doc = _parse_ubj(bytes(data)) if ubj else _parse_json(bytes(data))
    if not isinstance(doc, dict):
        raise ModelFormatError("not an XGBoost model: the document is not a JSON object")
    return _read_document(doc)


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


# =================================================================================================
# writing
# =================================================================================================

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


__all__ = [
    "read_xgboost_bytes",
    "read_xgboost_object",
    "to_bytes",
    "to_booster",
    "to_json_dict",
    "MAX_CATEGORY",
]
