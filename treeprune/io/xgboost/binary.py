"""XGBoost's legacy binary model format (``.model``/``.bin`` from 0.x, 1.x and 2.0).

Today's XGBoost no longer reads these files, so treeprune reads them itself, from the layout the
format has had since 0.6 (all little-endian, C structs written as raw bytes; ``str`` below is a
``uint64`` length followed by the bytes):

====================  ==========================================================================
optional header       ``b"binf"`` (1.0+ always writes it), or ``b"bs64"`` + base64 of the rest
learner parameters    136 bytes: ``float32 base_score``, ``uint32 num_feature``,
                      ``int32 num_class``, ``int32 contain_extra_attrs``,
                      ``int32 contain_eval_metrics``, then (1.0+) ``uint32 major, minor`` and
                      (2.0) ``uint32 num_target``; the rest is reserved (zeros)
objective, booster    ``str``, ``str`` (for example ``binary:logistic``, ``gbtree``)
gbtree parameters     160 bytes: ``int32 num_trees, num_roots, num_feature, pad``,
                      ``int64 num_pbuffer``, ``int32 num_output_group, size_leaf_vector``,
                      32 reserved ``int32``
each tree             148 bytes of tree parameters (``int32 num_roots, num_nodes, num_deleted,
                      max_depth, num_feature, size_leaf_vector`` + 31 reserved), then
                      ``num_nodes`` nodes of 20 bytes (``int32 parent`` (top bit: is a left
                      child), ``int32 left, right``, ``uint32 split_index`` (top bit: default
                      left; all ones: deleted node), ``float32`` threshold or leaf value) and
                      ``num_nodes`` statistics of 16 bytes (``float32 loss_chg, sum_hess,
                      base_weight``, ``int32 leaf_child_cnt``)
tree groups           ``num_trees`` ``int32`` (the output group of each tree)
dart only             ``uint64 n`` + ``n`` ``float32`` tree weights
attributes            if ``contain_extra_attrs``: ``uint64 n`` + ``n`` pairs of ``str``
eval metrics          if ``contain_eval_metrics``: ``uint64 n`` + ``n`` ``str``
====================  ==========================================================================

The reader turns the file into the same document that XGBoost's JSON format holds, so one code
path (the JSON reader) builds the :class:`~treeprune.Ensemble` and checks the trees. What differs
between versions is how ``base_score`` becomes the starting margin; that is worked out in
:mod:`.versions` from the version the file records.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._rules import FEATURE_MASK
from ...ensemble import Ensemble
from ...errors import ModelFormatError, UnsupportedModelError
from . import versions
from .read import _read_document
from .write import _OBJECTIVE_SECTIONS

#: Sizes of the fixed structs, unchanged since the format began (XGBoost asserts them).
LEARNER_PARAM_BYTES = 136
GBTREE_PARAM_BYTES = 160
TREE_PARAM_BYTES = 148
NODE_BYTES = 20
STAT_BYTES = 16
#: ``split_index`` of a node that the pruner deleted.
DELETED = 0xFFFFFFFF
#: Sanity bounds: a corrupted count must not make the reader allocate gigabytes.
_MAX_NAME = 4096
_MAX_ITEMS = 1 << 24
_NODE = np.dtype([("parent", "<i4"), ("left", "<i4"), ("right", "<i4"), ("sindex", "<u4"),
                  ("info", "<f4")])
_STAT = np.dtype([("loss_chg", "<f4"), ("sum_hess", "<f4"), ("base_weight", "<f4"),
                  ("leaf_child_cnt", "<i4")])


@dataclass
class BinaryModel:
    """What the binary file says, before any interpretation of ``base_score``."""

    #: ``(major, minor)`` recorded by 1.0+; ``(0, 0)`` for files from before 1.0.
    version: tuple[int, int]
    #: The raw ``base_score`` field: a margin before 1.0, the user's value (response scale) after.
    base_score: np.float32
    objective: str
    booster: str
    document: dict[str, Any] = field(repr=False)
    attributes: dict[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"XGBoost binary model: {what} (at byte {self.pos}); the file "
                                "is damaged or truncated: use the original file")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of file while reading {what} "
                            f"(needs {n} bytes, {len(self.data) - self.pos} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def count(self, what: str, limit: int = _MAX_ITEMS) -> int:
        (n,) = self.unpack("<Q", what)
        if n > limit or n > len(self.data) - self.pos:
            raise self.fail(f"{what} is {n}, more than the file can hold")
        return int(n)

    def string(self, what: str, limit: int = _MAX_NAME) -> str:
        n = self.count(f"the length of {what}", limit)
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not text") from None

    def array(self, dtype: np.dtype, n: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(n * dtype.itemsize, what), dtype=dtype, count=n).copy()


def _strip_header(data: bytes) -> bytes:
    if data[:4] == b"bs64":
        try:
            inner = base64.b64decode(b"".join(data[4:].split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ModelFormatError(f"XGBoost binary model: the base64 body is damaged ({exc})"
                                   ) from None
        return _strip_header(inner)
    if data[:4] == b"binf":
        return data[4:]
    return data


def looks_like_binary(data: bytes) -> bool:
    """Whether ``data`` has the shape of a legacy binary model (header, objective and booster).

    The first bytes of a file from before 1.0 are a raw float, so the format is recognised by its
    structure: a plausible objective name right after the 136-byte parameter block, then one of
    the booster names.
    """
    if data[:4] in (b"binf", b"bs64"):  # the headers XGBoost writes before a binary model
        return True
    body = data
    if len(body) < LEARNER_PARAM_BYTES + 8:
        return False
    (n,) = struct.unpack_from("<Q", body, LEARNER_PARAM_BYTES)
    if n >= 0xFFFFFFFF:  # the pre-0.6 length layout (see _objective_name)
        n >>= 32
        start = LEARNER_PARAM_BYTES + 12
    else:
        start = LEARNER_PARAM_BYTES + 8
    if not 1 <= n <= 64 or len(body) < start + n:
        return False
    name = body[start:start + n]
    if not all(32 < b < 127 for b in name):
        return False
    # the booster's name follows: an 8-byte length and gbtree / dart / gblinear
    at = start + n
    if len(body) < at + 8:
        return True  # a truncated file of this format: the reader says where it ends
    (m,) = struct.unpack_from("<Q", body, at)
    return m <= 8 and body[at + 8:at + 8 + m] in (b"gbtree", b"dart", b"gblinear")


def _objective_name(s: _Stream) -> str:
    (n,) = s.unpack("<Q", "the length of the objective name")
    if n >= 0xFFFFFFFF:
        # files from very old releases wrote a 32-bit length into the upper half, then a gap
        s.unpack("<i", "the objective name")
        n >>= 32
    if n > _MAX_NAME:
        raise s.fail(f"the objective name is {n} bytes long")
    try:
        return s.take(int(n), "the objective name").decode("ascii")
    except UnicodeDecodeError:
        raise s.fail("the objective name is not text") from None


def _fmt(x: float) -> str:
    """A float32 as the shortest decimal text that reads back to the same float32."""
    return np.format_float_scientific(np.float32(x), unique=True, trim="-").upper()


def _read_tree(s: _Stream, t: int, n_features: int) -> dict[str, Any]:
    where = f"tree {t}"
    tparam = s.unpack("<6i", f"the parameters of {where}")
    s.take(TREE_PARAM_BYTES - 24, f"the parameters of {where}")
    num_roots, n, num_deleted, _, _, size_leaf = tparam
    if size_leaf not in (0, 1):  # 2.0 writes 1 for scalar leaves, older releases 0
        raise UnsupportedModelError(f"XGBoost binary model: {where} has vector leaves "
                                    f"(size_leaf_vector={size_leaf}); treeprune reads scalar "
                                    "leaves only")
    if num_roots != 1:
        raise ModelFormatError(f"XGBoost binary model: {where} has {num_roots} roots (expected 1)"
                               "; the file is damaged")
    if n < 1 or n * (NODE_BYTES + STAT_BYTES) > len(s.data) - s.pos:
        raise s.fail(f"{where} declares {n} nodes, which the file cannot hold")
    nodes = s.array(_NODE, n, f"the nodes of {where}")
    stats = s.array(_STAT, n, f"the node statistics of {where}")
    deleted = nodes["sindex"] == DELETED
    deleted[0] = False  # XGBoost counts deleted nodes from 1 (the root is never deleted)
    if int(deleted.sum()) != num_deleted:
        raise ModelFormatError(f"XGBoost binary model: {where} says {num_deleted} nodes are "
                               f"deleted but {int(deleted.sum())} are; the file is damaged")
    leaf = nodes["left"] == -1
    inner = ~leaf & ~deleted
    kids = np.concatenate([nodes["left"][inner], nodes["right"][inner]])
    kids = kids[(kids >= 0) & (kids < n)]
    if np.any(deleted[kids]):
        raise ModelFormatError(f"XGBoost binary model: {where} links to a deleted node; the file "
                               "is damaged")
    # a deleted node is dropped from the tree; keep it out of the checks of the JSON reader
    left = np.where(leaf | deleted, -1, nodes["left"]).astype(np.int64)
    right = np.where(leaf | deleted, -1, nodes["right"]).astype(np.int64)
    sindex = nodes["sindex"].astype(np.int64)
    split = np.where(deleted, 0, sindex & 0x7FFFFFFF)
    parent = nodes["parent"].astype(np.int64) & 0x7FFFFFFF
    with np.errstate(invalid="ignore"):
        info = nodes["info"].astype(np.float64)
    return {
        "base_weights": stats["base_weight"].astype(np.float64),
        "categories": [], "categories_nodes": [], "categories_segments": [],
        "categories_sizes": [],
        "default_left": ((sindex >> 31) & 1).astype(np.int64),
        "id": t,
        "left_children": left,
        "loss_changes": stats["loss_chg"].astype(np.float64),
        "parents": parent,
        "right_children": right,
        "split_conditions": info,
        "split_indices": split,
        "split_type": np.zeros(n, dtype=np.int64),
        "sum_hessian": stats["sum_hess"].astype(np.float64),
        "tree_param": {"num_deleted": str(num_deleted), "num_feature": str(n_features),
                       "num_nodes": str(n), "size_leaf_vector": "1"},
    }


def parse_binary(data: bytes) -> BinaryModel:
    """Read a legacy binary model into the document XGBoost's JSON format would hold.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    BinaryModel
        The raw header values and the JSON-shaped document (``learner``/``version``), whose
        ``base_score`` is still the raw field: :mod:`.versions` interprets
        it.

    Raises
    ------
    ModelFormatError
        The file is truncated, has trailing bytes, or its counts do not add up.
    UnsupportedModelError
        A valid file holding a linear booster or vector leaves.
    """
    s = _Stream(_strip_header(bytes(data)))
    head = s.take(LEARNER_PARAM_BYTES, "the learner parameters")
    (base_score,) = struct.unpack_from("<f", head, 0)
    n_features, num_class, has_attrs, has_metrics, major, minor, num_target = \
        struct.unpack_from("<I3i2I", head, 4) + struct.unpack_from("<I", head, 28)
    if major > 3 or minor > 99 or (major == 0 and minor != 0):
        raise ModelFormatError(f"XGBoost binary model: version field {major}.{minor} is not a "
                               "release; the file is damaged")
    if n_features > FEATURE_MASK or not 0 <= num_class <= (1 << 16):
        raise ModelFormatError(f"XGBoost binary model: implausible num_feature={n_features} or "
                               f"num_class={num_class}; the file is damaged")
    if major >= 2 and num_target > 1:
        raise UnsupportedModelError(f"XGBoost multi-target models (num_target={num_target}) are "
                                    "not supported")
    objective = _objective_name(s)
    booster = s.string("the booster name", 64)
    if booster == "gblinear":
        raise UnsupportedModelError("XGBoost gblinear (linear booster) models have no trees to "
                                    "prune; treeprune supports booster='gbtree' and 'dart'")
    if booster not in ("gbtree", "dart"):
        raise ModelFormatError(f"XGBoost binary model: unknown booster {booster!r}; the file is "
                               "damaged")
    gparam = s.take(GBTREE_PARAM_BYTES, "the gbtree parameters")
    num_trees, _, _, _ = struct.unpack_from("<4i", gparam, 0)
    num_groups_field, size_leaf = struct.unpack_from("<2i", gparam, 24)
    if num_trees < 0 or num_trees * (TREE_PARAM_BYTES + NODE_BYTES + STAT_BYTES) > \
            len(s.data) - s.pos:
        raise s.fail(f"the model declares {num_trees} trees, which the file cannot hold")
    if size_leaf not in (0, 1):
        raise UnsupportedModelError(f"XGBoost binary model with vector leaves "
                                    f"(size_leaf_vector={size_leaf}) is not supported")
    trees = [_read_tree(s, t, n_features) for t in range(num_trees)]
    tree_info = s.array(np.dtype("<i4"), num_trees, "the tree groups").astype(np.int64)
    weights = None
    if booster == "dart":
        n_w = s.count("the number of DART weights")
        if n_w != num_trees:
            raise s.fail(f"{n_w} DART weights for {num_trees} trees")
        weights = s.array(np.dtype("<f4"), n_w, "the DART weights").astype(np.float64)
    attributes: dict[str, str] = {}
    if has_attrs:
        for k in range(s.count("the number of attributes")):
            key = s.string(f"attribute {k}'s name")
            attributes[key] = s.string(f"attribute {key!r}", 1 << 24)
    if objective == "count:poisson" and major == 0 and len(s.data) - s.pos >= 8:
        # before 1.0, count:poisson models carry max_delta_step as a bare string here
        attributes.setdefault("count_poisson_max_delta_step", s.string("max_delta_step"))
    metrics: list[str] = []
    if has_metrics:
        metrics = [s.string(f"metric {k}") for k in range(s.count("the number of metrics"))]
    if s.pos != len(s.data):
        raise ModelFormatError(f"XGBoost binary model: {len(s.data) - s.pos} unexpected bytes "
                               f"after the model (at byte {s.pos}); the file is damaged or two "
                               "files were joined")

    n_groups = max(1, num_class)
    if num_groups_field not in (0, n_groups) and major == 0:
        raise ModelFormatError(f"XGBoost binary model: {num_groups_field} output groups but "
                               f"num_class={num_class}; the file is damaged")
    doc = _document(objective, booster, base_score, n_features, num_class, trees, tree_info,
                    weights, attributes, (major, minor))
    return BinaryModel((int(major), int(minor)), np.float32(base_score), objective, booster, doc,
                       attributes, tuple(metrics))


#: Attributes that XGBoost 1.x uses to carry configuration inside the binary file.
_CONFIG_ATTRIBUTES = ("objective", "metrics", "count_poisson_max_delta_step")


def _objective_section(objective: str, attributes: dict[str, str]) -> dict[str, Any]:
    """The ``learner.objective`` JSON object: saved by 1.x as an attribute, rebuilt otherwise."""
    saved = attributes.get("objective")
    if saved is not None:
        try:
            section = json.loads(saved)
        except ValueError:
            raise ModelFormatError("XGBoost binary model: the saved objective configuration is "
                                   "not JSON; the file is damaged") from None
        if isinstance(section, dict) and section.get("name") == objective:
            return section
        raise ModelFormatError("XGBoost binary model: the saved objective configuration does not "
                               f"match the objective {objective!r}; the file is damaged")
    name = "reg:squarederror" if objective == "reg:linear" else objective
    section = json.loads(json.dumps(_OBJECTIVE_SECTIONS.get(name, {})))
    if "count_poisson_max_delta_step" in attributes:
        section["poisson_regression_param"] = {
            "max_delta_step": attributes["count_poisson_max_delta_step"]}
    return {"name": name, **section}


def _document(objective: str, booster: str, base_score: float, n_features: int, num_class: int,
              trees: list[dict[str, Any]], tree_info: np.ndarray, weights: np.ndarray | None,
              attributes: dict[str, str], version: tuple[int, int]) -> dict[str, Any]:
    section = _objective_section(objective, attributes)
    if section.get("name") in ("multi:softprob", "multi:softmax"):
        section.setdefault("softmax_multiclass_param", {})["num_class"] = str(num_class)
    user_attrs = {k: v for k, v in attributes.items()
                  if k not in _CONFIG_ATTRIBUTES and not k.startswith("SAVED_PARAM_")}
    model = {
        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees))},
        "tree_info": tree_info,
        "trees": trees,
    }
    gb: dict[str, Any]
    if booster == "dart":
        gb = {"name": "dart", "gbtree": {"name": "gbtree", "model": model},
              "weight_drop": weights}
    else:
        gb = {"name": "gbtree", "model": model}
    learner = {
        "attributes": user_attrs,
        "feature_names": [],
        "feature_types": [],
        "gradient_booster": gb,
        "learner_model_param": {"base_score": _fmt(base_score), "num_class": str(num_class),
                                "num_feature": str(n_features)},
        "objective": section,
    }
    return {"learner": learner, "version": [version[0], version[1], 0]}


def read_xgboost_binary(data: bytes) -> Ensemble:
    """Read a legacy binary XGBoost model with the scores of the release that wrote it.

    Parameters
    ----------
    data : bytes
        The whole file (``save_model('x.model')`` / ``save_raw()`` of XGBoost 0.x to 2.0).

    Returns
    -------
    Ensemble
        ``source_meta['written_by']`` names the writing release.

    Raises
    ------
    ModelFormatError
        The file is damaged or truncated.
    UnsupportedModelError
        A linear booster, vector leaves or several targets.
    """
    model = parse_binary(data)
    doc = model.document
    if model.version[0] == 0:
        doc["learner"]["learner_model_param"]["base_score"] = versions.placeholder_base_score(
            model.objective, model.base_score)
    ens = _read_document(doc)
    return versions.apply(ens, "binary", model.base_score)


__all__ = ["read_xgboost_binary", "looks_like_binary", "parse_binary", "BinaryModel"]
