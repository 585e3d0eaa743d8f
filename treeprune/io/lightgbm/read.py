"""Read LightGBM text models (``model.txt`` / ``Booster.model_to_string()``).

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

from ..._rules import (
    FEATURE_MASK,
    LIGHTGBM_CATEGORICAL_MASK,
    LIGHTGBM_DEFAULT_LEFT_MASK,
    LIGHTGBM_MISSING_SHIFT,
    SCORECARD_KEY,
)
from ...ensemble import Ensemble
from ...errors import ModelFormatError, UnsupportedModelError
from ...objectives import Objective, lightgbm_objective
from ...trees import Tree, assemble, empty_nodes
from .bulk import usual_trees

_SPLIT_KEYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child",
               "right_child", "internal_value", "internal_weight", "internal_count")
_LEAF_KEYS = ("leaf_value", "leaf_weight", "leaf_count")
_KNOWN_TREE_KEYS = set(_SPLIT_KEYS) | set(_LEAF_KEYS) | {
    "num_leaves", "num_cat", "cat_boundaries", "cat_threshold", "is_linear", "shrinkage",
    "leaf_const", "num_features", "leaf_features", "leaf_coeff", "leaf_parent", "has_categorical",
}


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


def _block_bytes(block: list[str]) -> int:
    """The bytes of ``block``'s lines with their newlines (what :func:`_line_bytes` sums)."""
    text = "\n".join(block)
    return (len(text) if text.isascii() else len(text.encode("utf-8"))) + 1


def _split_sections(text: str) -> tuple[list[str], list[list[str]], list[str], bool]:
    """Split the text into header lines, tree blocks (lists of lines), the tail, and whether the
    ``end of trees`` footer is there (without it the last block runs to the end of the text)."""
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
        return header, blocks, [], False
    tail = lines[i + 1:]
    return header, blocks, tail, True


def _end_footerless(blocks: list[list[str]], hv: dict[str, str], ends_with_newline: bool) -> None:
    """Close the last tree block of a file without the ``end of trees`` footer, or refuse it.

    LightGBM loads such a file when ``tree_sizes`` accounts for every tree (it reads the trees at
    those byte offsets), and aborts the process on some truncated ones: so a file without the
    footer is complete only by the header's own counts. The last block may end with extra blank
    lines; a last line without its newline means the file was cut.
    """
    if "tree_sizes" not in hv:
        raise _fail("the file is truncated: no 'end of trees' line after the trees, and no "
                    "tree_sizes header line to show that the trees are complete")
    if not blocks:
        return
    last = blocks[-1]
    if not ends_with_newline:
        raise _fail("the file is truncated: it ends inside the last tree (no newline, no "
                    "'end of trees' line)")
    last.pop()  # the empty string after the final newline is not a line
    try:
        want = int(hv["tree_sizes"].split()[len(blocks) - 1])
    except (ValueError, IndexError):
        return  # the tree_sizes checks report it
    size = sum(_line_bytes(line) for line in last)
    while last and not last[-1].strip() and size > want:
        size -= _line_bytes(last.pop())


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
        # only a truly empty line ends a tree for LightGBM (it reads on through a line of
        # spaces or control characters into the next tree, whose keys then win)
        if not line:
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
    if not ended:
        raise _fail(f"tree {t} has no empty line after it (LightGBM would read the next tree "
                    "into it)")
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
        # numpy converts each string with Python's own float() / int(): the same values bit for
        # bit and the same strings refused, without a Python call per token
        return np.array(tokens, dtype=dtype)
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
        missing_type = (dtype_arr >> LIGHTGBM_MISSING_SHIFT) & 3
        bad = np.flatnonzero((dtype_arr < 0) | (dtype_arr > 15) | (missing_type == 3))
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
        # reachability: every node but the root has exactly one parent (checked above), so the
        # child links form a tree iff every node reaches the root through its parents (no
        # cycle): ancestors by pointer doubling, a few array operations for any tree size
        ancestor = np.zeros(S + L, dtype=np.int64)
        ancestor[lchild] = np.arange(S)
        ancestor[rchild] = np.arange(S)
        for _ in range(int(S + L).bit_length()):
            ancestor = ancestor[ancestor]
        if np.any(ancestor != 0):
            raise _fail(f"tree {t}: the child indices contain a cycle or unreachable nodes")
        is_cat = (dtype_arr & LIGHTGBM_CATEGORICAL_MASK) != 0
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
        nodes["default_left"][:S] = (dtype_arr & LIGHTGBM_DEFAULT_LEFT_MASK) != 0
        nodes["missing_type"][:S] = (dtype_arr >> LIGHTGBM_MISSING_SHIFT) & 3
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


def _parse_trees(blocks: list[list[str]], n_features: int
                 ) -> list[tuple[Tree, float, dict[str, Any]]]:
    """Every tree as :func:`_parse_tree` reads it (the same arrays, the same errors), the usual
    trees converted and checked in one pass over all of them (:mod:`.bulk`); any other tree goes
    through :func:`_parse_tree`, in order, so that the first damaged tree raises its own error."""
    kvs: list[dict[str, str] | None] = []
    for t, block in enumerate(blocks):
        try:
            kvs.append(_tree_kv(t, block))
        except ModelFormatError:
            kvs.append(None)
    with np.errstate(invalid="ignore"):
        bulk = usual_trees(kvs, n_features)
    return [bulk[t] if t in bulk else _parse_tree(t, block, n_features)
            for t, block in enumerate(blocks)]


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
    header_lines, blocks, tail, has_footer = _split_sections(norm)
    hv = _parse_header(header_lines)
    if not has_footer:
        _end_footerless(blocks, hv, norm.endswith("\n"))
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
    if max_feature_idx >= FEATURE_MASK:
        raise _fail(f"max_feature_idx={max_feature_idx}: at most {FEATURE_MASK} features can be "
                    "routed")
    n_features = max_feature_idx + 1
    names = tuple(hv["feature_names"].split())
    if len(names) != n_features:
        raise _fail(f"feature_names has {len(names)} names but max_feature_idx={max_feature_idx} "
                    f"means {n_features} features")
    infos = tuple(hv["feature_infos"].split())
    if len(infos) != n_features:
        raise _fail(f"feature_infos has {len(infos)} entries, expected {n_features}")

    # tree_sizes against the actual blocks (LightGBM reads trees at these byte offsets)
    sizes_actual = [_block_bytes(b) for b in blocks]
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
    for t, (tree, shrink, raw) in enumerate(_parse_trees(blocks, n_features)):
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
        # the text records its format version only (LightGBM 2.3 and 3.x both write v3)
        "written_by": f"LightGBM, model format {hv.get('version', '').strip() or '(none)'}",
        "written_encoding": "text",
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


__all__ = ["read_lightgbm_text", "read_lightgbm_object"]
