"""Read and write LightGBM text models (``model.txt`` / ``Booster.model_to_string()``).

The text is parsed and validated here, never handed to LightGBM unchecked: LightGBM aborts the
whole process on some inconsistent files (``tree_sizes`` that do not match the tree blocks, child
indices out of range), so every such problem becomes a :class:`~treeprune.errors.ModelFormatError`.

Node layout of a LightGBM tree inside the Ensemble (see :mod:`treeprune.ensemble`): with ``S``
splits (``num_leaves - 1``) and ``L`` leaves, split ``i`` gets local id ``i`` (so the root, split 0,
is local 0) and leaf ``k`` gets local id ``S + k``; ``native_id`` is the split index for internal
nodes and the leaf index (what ``pred_leaf`` returns) for leaves. A tree with one leaf is that leaf.

Prediction facts this module relies on (checked against LightGBM 4.x ``predict``, see the tests):

* Numerical split, ``kZeroThreshold = 1e-35f = 1.0000000180025095e-35``:
  dense input values with ``|x| <= kZeroThreshold`` are read as ``0.0``; NaN becomes ``0.0``
  unless the missing type is NaN; then zero (missing type Zero) or NaN (missing type NaN) goes to
  ``default_left``; otherwise left iff ``x <= threshold`` in double precision.
* Categorical split: NaN goes right (whatever the missing type); ``c = int(x)`` truncates toward
  zero (``-0.5`` is category 0); ``c < 0`` or ``x`` beyond the int32 range goes right; left iff
  bit ``c`` of the split's uint32 bitset is set (categories *in* the set go left).
* The raw score of group ``g`` is a float64 sum, from 0.0, of the leaf values of the trees of
  group ``g`` in tree order (``average_output`` models divide that sum by the number of
  iterations).

Initial score: with ``boost_from_average`` LightGBM adds the initial score to every leaf value and
internal value of the first tree of each class (``Tree::AddBias``, which also sets that tree's
``shrinkage`` to 1). The file does not store the score itself. ``folded_intercept[g]`` is our
estimate of it: the output of the root of tree ``g`` (initial score + the shrunk root output,
which is zero in exact arithmetic when the initial score is the optimal constant, as it is for
L2, logloss, cross-entropy, Poisson, gamma, Tweedie and softmax without bagging). The root's
``internal_value`` is written with 6 significant digits only, so when the hessian-weighted mean
of the leaf values (``sum(v * (H + lambda_l2)) / sum(H + lambda_l2)``, exact for Newton leaves)
agrees with it, that full-precision mean is used; otherwise the printed ``internal_value``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from ...ensemble import Ensemble
from ...errors import ConversionError, ModelFormatError, UnsupportedModelError
from ...objectives import Objective, lightgbm_objective
from ...trees import Tree, assemble, bfs_order, compact, empty_nodes, get_trees

#: Line (and source_meta key) holding the Scorecard saved with the model.
SCORECARD_KEY = "treeprune_scorecard"

#: LightGBM's ``kZeroThreshold`` (the float 1e-35f as a double).
K_ZERO_THRESHOLD = 1.0000000180025095e-35

_SPLIT_KEYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child",
               "right_child", "internal_value", "internal_weight", "internal_count")
_LEAF_KEYS = ("leaf_value", "leaf_weight", "leaf_count")
_KNOWN_TREE_KEYS = set(_SPLIT_KEYS) | set(_LEAF_KEYS) | {
    "num_leaves", "num_cat", "cat_boundaries", "cat_threshold", "is_linear", "shrinkage",
    "leaf_const", "num_features", "leaf_features", "leaf_coeff", "leaf_parent", "has_categorical",
}


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_lightgbm_object(obj: Any) -> Ensemble:
    """Read a ``lightgbm.Booster`` or a fitted ``LGBMModel`` (never modifying it).

    The model is taken through ``Booster.model_to_string()`` with its defaults, i.e. up to the
    best iteration when early stopping recorded one (what ``predict`` uses by default).
    """
    import lightgbm as lgb

    if isinstance(obj, lgb.LGBMModel):
        booster = getattr(obj, "_Booster", None)
        if booster is None:
            raise ModelFormatError(
                f"this {type(obj).__name__} is not fitted; call fit() before loading it"
            )
    elif isinstance(obj, lgb.Booster):
        booster = obj
    else:
        raise ModelFormatError(
            f"cannot read a LightGBM model from {type(obj).__name__}; pass a lightgbm.Booster "
            "or a fitted LGBMClassifier/LGBMRegressor"
        )
    try:
        text = booster.model_to_string()
    except Exception as exc:  # LightGBMError, or a Booster whose handle was freed
        raise ModelFormatError(f"cannot serialise the LightGBM Booster: {exc}") from exc
    return read_lightgbm_text(text)


def _fail(msg: str) -> ModelFormatError:
    return ModelFormatError(f"invalid LightGBM model: {msg}")


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise _fail(f"{what} should be an integer, got {value!r}") from None


def _float(value: str, what: str) -> float:
    try:
        return float(value.strip())
    except (ValueError, AttributeError):
        raise _fail(f"{what} should be a number, got {value!r}") from None


def _line_bytes(line: str) -> int:
    return (len(line) if line.isascii() else len(line.encode("utf-8"))) + 1


def _split_sections(text: str) -> tuple[list[str], list[list[str]], list[str], bool]:
    """Split the text into header lines, tree blocks (lists of lines) and the tail."""
    lines = text.split("\n")
    n = len(lines)
    i = 0
    while i < n and not lines[i].strip():
        i += 1
    if i >= n or lines[i].strip() != "tree":
        first = lines[i][:40] if i < n else ""
        raise _fail(f"the first line should be 'tree' (LightGBM's model type), got {first!r}")
    i += 1
    header_start = i
    while i < n and not lines[i].startswith("Tree=") and lines[i].strip() != "end of trees":
        i += 1
    header = lines[header_start:i]
    blocks: list[list[str]] = []
    while i < n and lines[i].startswith("Tree="):
        j = i + 1
        while j < n and not lines[j].startswith("Tree=") and lines[j].strip() != "end of trees":
            j += 1
        blocks.append(lines[i:j])
        i = j
    if i >= n:
        raise _fail("the file is truncated: no 'end of trees' line after the trees")
    tail = lines[i + 1:]
    return header, blocks, tail, text.endswith("\n")


def _parse_header(header: list[str]) -> dict[str, str]:
    kv: dict[str, str] = {}
    for line in header:
        line = line.rstrip("\r")
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if key in kv:
            raise _fail(f"header key {key!r} appears twice")
        kv[key] = value if sep else ""
    return kv


_PARAM_LINE = re.compile(r"^\[[A-Za-z_][A-Za-z0-9_]*: .*\]$")


def _parse_tail(tail: list[str]
                ) -> tuple[str | None, dict[str, str], str | None, dict[str, Any] | None]:
    """Parameters block (raw text and parsed ``[key: value]``), the pandas_categorical JSON and
    the scorecard treeprune saved with the model."""
    scorecard = None
    params_text = None
    params: dict[str, str] = {}
    pandas_json = None
    i, n = 0, len(tail)
    while i < n:
        line = tail[i].rstrip("\r")
        if line == "parameters:":
            j = i + 1
            while j < n and tail[j].rstrip("\r") != "end of parameters":
                j += 1
            if j >= n:
                raise _fail("the file is truncated: 'parameters:' has no 'end of parameters'")
            body = [s.rstrip("\r") for s in tail[i + 1:j]]
            params_text = "\n".join(body)
            for s in body:
                s = s.strip()
                if not s:
                    continue
                # LightGBM's own parser of this block can crash the process on a malformed
                # line, and the writer copies the block back: refuse anything but [key: value]
                if not _PARAM_LINE.match(s):
                    raise _fail(f"malformed line in the parameters block: {s[:60]!r}; "
                                "expected '[name: value]'")
                k, _, v = s[1:-1].partition(":")
                params[k.strip()] = v.strip()
            i = j + 1
            continue
        if line.startswith("pandas_categorical:"):
            pandas_json = line[len("pandas_categorical:"):]
        if line.startswith(SCORECARD_KEY + ":"):
            try:
                scorecard = json.loads(line[len(SCORECARD_KEY) + 1:])
            except ValueError as exc:
                raise _fail(f"the {SCORECARD_KEY} line is not valid JSON: {exc}") from None
            if not isinstance(scorecard, dict):
                raise _fail(f"the {SCORECARD_KEY} line should hold a JSON object")

        i += 1
    return params_text, params, pandas_json, scorecard


def _tree_kv(t: int, block: list[str]) -> dict[str, str]:
    head = block[0].rstrip("\r")
    idx = head[len("Tree="):].strip()
    if idx != str(t):
        raise _fail(f"tree block {t} is labelled {head!r}; expected 'Tree={t}'")
    kv: dict[str, str] = {}
    ended = False
    for line in block[1:]:
        line = line.rstrip("\r")
        if not line.strip():
            ended = True
            continue
        if ended:
            raise _fail(f"tree {t}: unexpected line after the end of the tree: {line[:60]!r}")
        key, sep, value = line.partition("=")
        if not sep:
            raise _fail(f"tree {t}: line is not 'key=value': {line[:60]!r}")
        if key in kv:
            raise _fail(f"tree {t}: key {key!r} appears twice")
        kv[key] = value
    return kv


def _array(kv: dict[str, str], key: str, n: int, dtype: Any, t: int, required: bool,
           num_leaves: int) -> np.ndarray | None:
    if key not in kv:
        if required:
            raise _fail(f"tree {t}: missing {key}")
        return None
    tokens = kv[key].split()
    if not tokens and n and not required:
        return None  # LightGBM writes e.g. an empty leaf_weight= for a constant tree
    if len(tokens) != n:
        raise _fail(f"tree {t}: {key} has {len(tokens)} values, expected {n} "
                    f"(num_leaves={num_leaves})")
    if n == 0:
        return np.zeros(0, dtype=dtype)
    try:
        if dtype is np.float64:
            return np.array([float(s) for s in tokens], dtype=np.float64)
        return np.array([int(s) for s in tokens], dtype=np.int64)
    except (ValueError, OverflowError):
        kind = "numbers" if dtype is np.float64 else "integers"
        raise _fail(f"tree {t}: {key} should hold {kind}, got {kv[key][:60]!r}") from None


def _parse_tree(t: int, block: list[str], n_features: int) -> tuple[Tree, float, dict[str, Any]]:
    kv = _tree_kv(t, block)
    if "num_leaves" not in kv:
        raise _fail(f"tree {t}: missing num_leaves")
    L = _int(kv["num_leaves"], f"tree {t}: num_leaves")
    if L < 1:
        raise _fail(f"tree {t}: num_leaves={L} should be at least 1")
    if "num_cat" not in kv:
        raise _fail(f"tree {t}: missing num_cat")
    num_cat = _int(kv["num_cat"], f"tree {t}: num_cat")
    if num_cat < 0:
        raise _fail(f"tree {t}: num_cat={num_cat} is negative")
    if kv.get("is_linear", "0").strip() not in ("", "0"):
        raise UnsupportedModelError(
            f"tree {t} is a linear tree (is_linear=1, trained with linear_tree=True); "
            "treeprune supports only constant leaves. Retrain without linear_tree."
        )
    shrinkage = _float(kv["shrinkage"], f"tree {t}: shrinkage") if "shrinkage" in kv else 1.0
    S = L - 1
    arr = {}
    for key in _SPLIT_KEYS:
        dtype = np.float64 if key in ("split_gain", "threshold", "internal_value",
                                      "internal_weight") else np.int64
        required = key in ("split_feature", "threshold", "left_child", "right_child") and S > 0
        arr[key] = _array(kv, key, S, dtype, t, required, L)
    for key in _LEAF_KEYS:
        dtype = np.int64 if key == "leaf_count" else np.float64
        arr[key] = _array(kv, key, L, dtype, t, key == "leaf_value", L)
    leaf_value = arr["leaf_value"]
    assert leaf_value is not None
    if not np.all(np.isfinite(leaf_value)):
        raise _fail(f"tree {t}: leaf_value holds a NaN or infinite value")

    nodes = empty_nodes(S + L)
    cat_sets: list[np.ndarray] = []
    leaf_ids = S + np.arange(L)
    nodes["value"][leaf_ids] = leaf_value
    nodes["native_id"][leaf_ids] = np.arange(L)
    if arr["leaf_weight"] is not None:
        nodes["cover"][leaf_ids] = arr["leaf_weight"]
    if arr["leaf_count"] is not None:
        nodes["count"][leaf_ids] = arr["leaf_count"]
    if S > 0:
        feat = arr["split_feature"]
        thr = arr["threshold"]
        left = arr["left_child"]
        right = arr["right_child"]
        assert feat is not None and thr is not None and left is not None and right is not None
        bad = np.flatnonzero((feat < 0) | (feat >= n_features))
        if len(bad):
            raise _fail(f"tree {t}: split {int(bad[0])} uses feature {int(feat[bad[0]])}, "
                        f"outside 0..{n_features - 1} (max_feature_idx)")
        dtype_arr = arr["decision_type"]
        if dtype_arr is None:
            dtype_arr = np.zeros(S, dtype=np.int64)
        bad = np.flatnonzero((dtype_arr < 0) | (dtype_arr > 15) | (((dtype_arr >> 2) & 3) == 3))
        if len(bad):
            raise _fail(f"tree {t}: split {int(bad[0])} has an invalid decision_type "
                        f"{int(dtype_arr[bad[0]])}")
        # children: c >= 0 is split c (never the root), c < 0 is leaf ~c
        children = np.concatenate([left, right])
        is_split = children >= 0
        bad_split = is_split & ((children < 1) | (children >= S))
        leaf_idx = ~children
        bad_leaf = ~is_split & (leaf_idx >= L)
        if np.any(bad_split | bad_leaf):
            k = int(np.flatnonzero(bad_split | bad_leaf)[0])
            side = "left_child" if k < S else "right_child"
            raise _fail(f"tree {t}: {side} of split {k % S} is {int(children[k])}, outside the "
                        f"tree (splits 1..{S - 1}, leaves ~0..~{L - 1})")
        split_refs = np.bincount(children[is_split], minlength=S)
        leaf_refs = np.bincount(leaf_idx[~is_split], minlength=L)
        if np.any(split_refs[1:] != 1) or np.any(leaf_refs != 1):
            raise _fail(f"tree {t}: the child indices do not form a tree (a node has no parent "
                        "or several parents)")
        local = np.where(is_split, children, S + np.where(is_split, 0, leaf_idx))
        lchild, rchild = local[:S], local[S:]
        # reachability: every node reached exactly once from the root (no cycles)
        seen = np.zeros(S + L, dtype=bool)
        seen[0] = True
        stack = [0]
        reached = 1
        while stack:
            i = stack.pop()
            if i >= S:
                continue
            for c in (int(lchild[i]), int(rchild[i])):
                if seen[c]:
                    raise _fail(f"tree {t}: the child indices contain a cycle")
                seen[c] = True
                reached += 1
                stack.append(c)
        if reached != S + L:
            raise _fail(f"tree {t}: the child indices contain a cycle or unreachable nodes")
        is_cat = (dtype_arr & 1) == 1
        if num_cat > 0:
            bounds = _array(kv, "cat_boundaries", num_cat + 1, np.int64, t, True, L)
            assert bounds is not None
            if bounds[0] != 0 or np.any(np.diff(bounds) < 0):
                raise _fail(f"tree {t}: cat_boundaries should start at 0 and never decrease")
            words = _array(kv, "cat_threshold", int(bounds[-1]), np.int64, t, True, L)
            assert words is not None
            if np.any((words < 0) | (words > 0xFFFFFFFF)):
                raise _fail(f"tree {t}: cat_threshold holds values outside uint32")
        else:
            bounds = words = None
        if np.any(~is_cat & np.isnan(thr)):
            raise _fail(f"tree {t}: a numerical split has a NaN threshold")
        sp = np.arange(S)
        nodes["feature"][:S] = feat
        nodes["threshold"][:S] = np.where(is_cat, 0.0, thr)
        nodes["left"][:S] = lchild
        nodes["right"][:S] = rchild
        nodes["default_left"][:S] = (dtype_arr & 2) != 0
        nodes["missing_type"][:S] = (dtype_arr >> 2) & 3
        nodes["native_id"][:S] = sp
        if arr["internal_value"] is not None:
            nodes["value"][:S] = arr["internal_value"]
        if arr["split_gain"] is not None:
            nodes["gain"][:S] = arr["split_gain"]
        if arr["internal_weight"] is not None:
            nodes["cover"][:S] = arr["internal_weight"]
        if arr["internal_count"] is not None:
            nodes["count"][:S] = arr["internal_count"]
        for i in np.flatnonzero(is_cat):
            ci = thr[i]
            if bounds is None or not (0 <= ci < num_cat) or ci != math.floor(ci):
                raise _fail(f"tree {t}: categorical split {int(i)} points to bitset {ci!r}, "
                            f"but the tree has num_cat={num_cat}")
            ci = int(ci)
            assert words is not None
            cat_sets.append(words[bounds[ci]:bounds[ci + 1]].astype(np.uint32))
            nodes["cat_index"][i] = len(cat_sets) - 1
    raw = {"leaf_value": leaf_value, "leaf_weight": arr["leaf_weight"],
           "internal_value": arr["internal_value"]}
    return Tree(nodes, cat_sets), shrinkage, raw


def _parse_objective(line: str, params: dict[str, str], num_class: int) -> Objective:
    tokens = line.split()
    if not tokens:
        raise _fail("the objective line is empty")
    name = tokens[0]
    oparams: dict[str, Any] = {}
    for tok in tokens[1:]:
        k, sep, v = tok.partition(":")
        if not sep:
            oparams[k] = True
            continue
        try:
            oparams[k] = float(v)
        except ValueError:
            oparams[k] = v
    if name == "regression" and oparams.get("sqrt"):
        raise UnsupportedModelError(
            "LightGBM regression with reg_sqrt=True is not supported (its predictions are the "
            "squared raw score); retrain without reg_sqrt"
        )
    if name == "tweedie":
        oparams["tweedie_variance_power"] = _float(
            params.get("tweedie_variance_power", "1.5"), "tweedie_variance_power")
    if name == "huber":
        alpha = _float(params.get("alpha", "0.9"), "alpha")
        # LightGBM's huber is the Huber loss with delta = alpha (not pseudo-Huber)
        oparams.update(alpha=alpha, huber_delta=alpha, huber_slope=alpha)
    if name == "multiclass":
        k = oparams.get("num_class", num_class)
        if k != num_class:
            raise _fail(f"objective says num_class:{k} but the header says num_class={num_class}")
        oparams["num_class"] = num_class
    return lightgbm_objective(name, num_class, oparams)


def _feature_is_categorical(info: str) -> bool:
    info = info.strip()
    return bool(info) and info != "none" and not info.startswith("[")


def _categories(pandas_json: str | None, cat_features: list[int]) -> dict[int, tuple[Any, ...]]:
    if pandas_json is None:
        return {}
    try:
        value = json.loads(pandas_json)
    except ValueError as exc:
        raise _fail(f"the pandas_categorical line is not valid JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        raise _fail("pandas_categorical should be a JSON list of lists")
    if len(value) != len(cat_features):
        # e.g. ordered pandas categoricals (stored, but used as numerical codes): the mapping from
        # the list to the columns is not recoverable from the file; keep the raw line only
        return {}
    return {f: tuple(v) for f, v in zip(cat_features, value, strict=True)}


def _folded_estimate(raw: dict[str, Any], shrinkage: float, n_leaves: int, params: dict[str, str],
                     ) -> float:
    """Estimate of the initial score folded into a group's first tree (see the module doc)."""
    lv = raw["leaf_value"]
    if n_leaves == 1:  # AsConstantTree(init_score): the whole tree is the intercept
        return float(lv[0])
    bfa = params.get("boost_from_average")
    if bfa is not None and bfa.strip() in ("0", "false"):
        return 0.0
    if params.get("boosting", "gbdt").strip() != "dart" and shrinkage != 1.0:
        # AddBias sets the shrinkage of the tree it changes to 1 (DART rescales trees later)
        return 0.0
    iv = raw["internal_value"]
    a = float(iv[0]) if iv is not None and len(iv) else None
    b = None
    lw = raw["leaf_weight"]
    if lw is not None:
        try:
            lam = float(params.get("lambda_l2", "0"))
        except ValueError:
            lam = 0.0
        w = lw + lam
        if np.all(np.isfinite(w)) and np.all(w >= 0) and 0 < w.sum() < np.inf:
            with np.errstate(all="ignore"):
                b = float(np.dot(lv, w) / w.sum())
            if not np.isfinite(b):  # a hand-edited file: fall back to the printed value
                b = None
    if a is not None and b is not None:
        return b if abs(a - b) <= 1e-5 * abs(a) + 1e-12 else a
    if a is not None:
        return a
    return b if b is not None else 0.0


def read_lightgbm_text(text: str) -> Ensemble:
    """Parse and validate a LightGBM text model into an :class:`Ensemble`.

    Raises
    ------
    ModelFormatError
        Not a LightGBM model, truncated, or internally inconsistent (``tree_sizes``, array
        lengths, child indices, categorical bitsets...).
    UnsupportedModelError
        Linear trees, ``reg_sqrt``, or an objective treeprune cannot represent.
    """
    if not isinstance(text, str):
        raise ModelFormatError(f"expected the model text as str, got {type(text).__name__}")
    crlf = "\r\n" in text
    norm = text.replace("\r\n", "\n") if crlf else text
    header_lines, blocks, tail, _ = _split_sections(norm)
    hv = _parse_header(header_lines)
    for key in ("num_class", "max_feature_idx", "feature_names", "feature_infos"):
        if key not in hv:
            raise _fail(f"the header has no {key}= line")
    num_class = _int(hv["num_class"], "num_class")
    if num_class < 1:
        raise _fail(f"num_class={num_class} should be at least 1")
    ntpi = _int(hv.get("num_tree_per_iteration", str(num_class)), "num_tree_per_iteration")
    if ntpi < 1:
        raise _fail(f"num_tree_per_iteration={ntpi} should be at least 1")
    label_index = _int(hv.get("label_index", "0"), "label_index")
    max_feature_idx = _int(hv["max_feature_idx"], "max_feature_idx")
    if max_feature_idx < 0:
        raise _fail(f"max_feature_idx={max_feature_idx} should be at least 0")
    n_features = max_feature_idx + 1
    names = tuple(hv["feature_names"].split())
    if len(names) != n_features:
        raise _fail(f"feature_names has {len(names)} names but max_feature_idx={max_feature_idx} "
                    f"means {n_features} features")
    infos = tuple(hv["feature_infos"].split())
    if len(infos) != n_features:
        raise _fail(f"feature_infos has {len(infos)} entries, expected {n_features}")

    # tree_sizes against the actual blocks (LightGBM reads trees at these byte offsets)
    sizes_actual = [sum(_line_bytes(s) for s in b) for b in blocks]
    if "tree_sizes" in hv:
        tokens = hv["tree_sizes"].split()
        try:
            sizes = [int(s) for s in tokens]
        except ValueError:
            raise _fail(f"tree_sizes should hold integers, got {hv['tree_sizes'][:60]!r}") from None
        if len(sizes) != len(blocks):
            raise _fail(f"tree_sizes lists {len(sizes)} trees but the file has {len(blocks)} tree "
                        "blocks (truncated or edited file)")
        for t, (want, got) in enumerate(zip(sizes, sizes_actual, strict=True)):
            if want != got:
                raise _fail(f"tree_sizes does not match the tree blocks: tree {t} should be "
                            f"{want} bytes but is {got} (edited or truncated file)")
    if not blocks:
        raise _fail("the model has no trees")
    if len(blocks) % ntpi:
        raise _fail(f"{len(blocks)} trees is not a multiple of num_tree_per_iteration={ntpi}")

    params_text, params, pandas_json, scorecard = _parse_tail(tail)
    if params.get("linear_tree", "0").strip() not in ("0", "", "false"):
        raise UnsupportedModelError(
            "this model was trained with linear_tree=True (linear leaves); treeprune supports only "
            "constant leaves. Retrain without linear_tree."
        )
    if "objective" not in hv:
        raise UnsupportedModelError(
            "the model has no objective line (trained with a custom objective?); treeprune needs "
            "a built-in LightGBM objective"
        )
    objective = _parse_objective(hv["objective"], params, num_class)
    if objective.n_groups != ntpi:
        raise _fail(f"objective {objective.name!r} has {objective.n_groups} output group(s) but "
                    f"num_tree_per_iteration={ntpi}")
    if not objective.is_multiclass and num_class != 1:
        raise _fail(f"objective {objective.name!r} with num_class={num_class}")

    if "monotone_constraints" in hv:
        mono_tokens = hv["monotone_constraints"].split()
    elif params.get("monotone_constraints"):
        mono_tokens = params["monotone_constraints"].replace(",", " ").split()
    else:
        mono_tokens = ["0"] * n_features
    try:
        mono = tuple(int(s) for s in mono_tokens)
    except ValueError:
        raise _fail(f"monotone_constraints should hold -1/0/1, got {mono_tokens[:5]}") from None
    if len(mono) != n_features or any(c not in (-1, 0, 1) for c in mono):
        raise _fail(f"monotone_constraints should hold {n_features} values in -1/0/1")

    trees: list[Tree] = []
    shrinkages: list[float] = []
    raws = []
    for t, block in enumerate(blocks):
        tree, shrink, raw = _parse_tree(t, block, n_features)
        tree.group = t % ntpi
        trees.append(tree)
        shrinkages.append(shrink)
        raws.append(raw)

    n_iter = len(trees) // ntpi
    average_output = "average_output" in hv
    if average_output:
        for tree in trees:
            tree.weight = 1.0 / n_iter
        folded = np.zeros(ntpi)  # random forest: the initial score is in every tree
    else:
        folded = np.array([
            _folded_estimate(raws[g], shrinkages[g], int(np.count_nonzero(trees[g].nodes["left"] < 0)),
                             params)
            for g in range(ntpi)
        ])

    cat_features = [i for i, info in enumerate(infos) if _feature_is_categorical(info)]
    categories = _categories(pandas_json, cat_features)
    cat_set = set(cat_features)
    feature_types = tuple("categorical" if i in cat_set else "float" for i in range(n_features))
    meta: dict[str, Any] = {
        "format": "lightgbm-text",
        "version": hv.get("version", ""),
        "label_index": label_index,
        "objective_line": hv["objective"],
        "feature_infos": infos,
        "average_output": average_output,
        "shrinkage": tuple(shrinkages),
        "parameters": params,
        "parameters_text": params_text,
        "pandas_categorical": pandas_json,
        SCORECARD_KEY: scorecard,
        "has_monotone_line": "monotone_constraints" in hv,
    }
    # keep the native numbering of the file: assemble without renumbering
    return assemble(
        None, trees, renumber=False,
        objective=objective,
        base_margin=np.zeros(ntpi),
        folded_intercept=folded,
        n_features=n_features,
        feature_names=names,
        feature_types=feature_types,
        categories=categories,
        monotone_constraints=mono,
        source="lightgbm",
        source_meta=meta,
    )


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
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
        d = (2 if nodes["default_left"][i] else 0) | (mt << 2)
        ci = int(nodes["cat_index"][i])
        if ci >= 0:
            d |= 1
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
    if not isinstance(params_text, str):
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
        # block, copied back verbatim (for example a hand-edited value of the wrong type)
        raise ConversionError(
            f"LightGBM refused the model text ({type(exc).__name__}: {exc}); if the source "
            "file's parameters block was edited, restore it or drop source_meta"
            "['parameters_text'] to write default parameters"
        ) from exc


__all__ = ["read_lightgbm_text", "read_lightgbm_object", "to_text", "to_booster",
           "K_ZERO_THRESHOLD"]
