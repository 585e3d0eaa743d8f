"""The XGBoost JSON reader's whole-model pass equals its tree-by-tree reader, on every tree.

:func:`treeprune.io.xgboost.read._parse_trees` checks and converts the usual trees of a model in
one pass and hands anything else to :func:`~treeprune.io.xgboost.read._parse_tree`; both must
give the same node arrays for valid trees and the same typed error for the first damaged one.
:func:`treeprune.trees.reachable_order` (level by level) is compared with a node-by-node walk.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from xgb_models import XGBSpec, make_model

from treeprune.errors import ModelFormatError, UnsupportedModelError
from treeprune.io.xgboost.read import _parse_tree, _parse_trees
from treeprune.trees import reachable_order

SPECS = [
    XGBSpec(max_depth=1, n_trees=6, seed=1),
    XGBSpec(max_depth=8, n_trees=6, seed=2, nan_rate=0.3),
    XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=8, max_depth=4, seed=7),
    XGBSpec(objective="multi:softprob", n_trees=4, max_depth=3, seed=8),
    XGBSpec(booster="dart", n_trees=8, max_depth=3, seed=10),
]
_DOCS: dict[str, dict] = {}


def _trees_in(doc: dict) -> tuple[list, int]:
    """The trees of a parsed model document and its feature count."""
    learner = doc["learner"]
    gb = learner["gradient_booster"]
    model = gb["gbtree"]["model"] if gb["name"] == "dart" else gb["model"]
    return model["trees"], int(learner["learner_model_param"]["num_feature"])


def trees_of(spec: XGBSpec) -> tuple[list, int]:
    if spec.id not in _DOCS:
        booster, _, _ = make_model(spec)
        _DOCS[spec.id] = json.loads(bytes(booster.save_raw("json")))
    return _trees_in(copy.deepcopy(_DOCS[spec.id]))


def one_by_one(jtrees: list, n_features: int):
    return [_parse_tree(jt, t, n_features) for t, jt in enumerate(jtrees)]


def outcome(read, jtrees, n_features):
    try:
        return read(jtrees, n_features)
    except (ModelFormatError, UnsupportedModelError) as exc:
        return type(exc), str(exc)


def assert_same(got, want) -> None:
    if isinstance(want, tuple) or isinstance(got, tuple):
        assert got == want
        return
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.nodes.keys() == b.nodes.keys()
        for key in a.nodes:
            assert a.nodes[key].dtype == b.nodes[key].dtype, key
            assert a.nodes[key].tobytes() == b.nodes[key].tobytes(), key
        assert len(a.cat_sets) == len(b.cat_sets)
        for x, y in zip(a.cat_sets, b.cat_sets, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_valid_models_read_the_same(spec):
    jtrees, nf = trees_of(spec)
    assert_same(_parse_trees(jtrees, nf), one_by_one(jtrees, nf))


def _make_leaf(jt, node):  # node becomes a leaf: its subtree stays in the file, unreachable
    jt["left_children"][node] = jt["right_children"][node] = -1


DAMAGE = {
    "cycle below the root": lambda jt: jt["left_children"].__setitem__(
        jt["left_children"][0], jt["left_children"][0]),
    "shared child": lambda jt: jt["right_children"].__setitem__(0, jt["left_children"][0]),
    "root as a child": lambda jt: jt["left_children"].__setitem__(jt["left_children"][0], 0),
    "child out of range": lambda jt: jt["right_children"].__setitem__(0, 10 ** 6),
    "one child only": lambda jt: jt["right_children"].__setitem__(0, -1),
    "feature out of range": lambda jt: jt["split_indices"].__setitem__(0, 99),
    "negative feature": lambda jt: jt["split_indices"].__setitem__(0, -3),
    "split type 2": lambda jt: jt["split_type"].__setitem__(0, 2),
    "categorical without categories": lambda jt: jt["split_type"].__setitem__(0, 1),
    "float child": lambda jt: jt["left_children"].__setitem__(0, float(jt["left_children"][0])),
    "fractional child": lambda jt: jt["left_children"].__setitem__(0, 1.5),
    "string threshold": lambda jt: jt["split_conditions"].__setitem__(0, "0.25"),
    "text in an id array": lambda jt: jt["split_indices"].__setitem__(0, "x"),
    "null in an array": lambda jt: jt["base_weights"].__setitem__(0, None),
    "huge integer": lambda jt: jt["default_left"].__setitem__(0, 2 ** 70),
    "bool default_left": lambda jt: jt.__setitem__("default_left",
                                                   [bool(v) for v in jt["default_left"]]),
    "short array": lambda jt: jt["sum_hessian"].pop(),
    "missing array": lambda jt: jt.pop("loss_changes"),
    "null categories_nodes": lambda jt: jt.__setitem__("categories_nodes", None),
    "num_nodes as text": lambda jt: jt["tree_param"].__setitem__(
        "num_nodes", " " + str(jt["tree_param"]["num_nodes"])),
    "num_nodes wrong": lambda jt: jt["tree_param"].__setitem__("num_nodes", "1"),
    "vector leaf": lambda jt: jt["tree_param"].__setitem__("size_leaf_vector", "2"),
    "not an object": lambda jt: jt.clear(),
    "unreachable subtree": lambda jt: _make_leaf(jt, jt["left_children"][0]),
    "NaN threshold": lambda jt: jt["split_conditions"].__setitem__(0, float("nan")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("where", [0, 2, -1])
def test_damaged_trees_fail_or_read_the_same(damage, where):
    jtrees, nf = trees_of(SPECS[1])
    # damage one tree, and a later tree differently: the first damaged tree decides the error
    DAMAGE[damage](jtrees[where])
    DAMAGE["one child only"](jtrees[-1]) if where != -1 else None
    got = outcome(_parse_trees, jtrees, nf)
    want = outcome(one_by_one, copy.deepcopy(jtrees), nf)
    assert_same(got, want)


def _walk(left, right):
    """Node by node, the reference for reachable_order (returns its order or its error); ids
    index as numpy indexes them (a damaged -1 child is the last node)."""
    order, seen, i = [0], np.zeros(len(left), dtype=bool), 0
    seen[0] = True
    while i < len(order):
        nid = order[i]
        if left[nid] >= 0:
            for c in (int(left[nid]), int(right[nid])):
                if seen[c]:
                    return f"node {c} is reached twice"
                seen[c] = True
                order.append(c)
        i += 1
    return order


def test_reachable_order_equals_a_node_by_node_walk():
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(3000):
        n = int(rng.integers(1, 14))
        left, right = np.full(n, -1), np.full(n, -1)
        free, leaves = list(range(1, n)), [0]
        while len(free) >= 2:  # a random valid tree ...
            p = leaves.pop(int(rng.integers(len(leaves))))
            left[p], right[p] = free.pop(0), free.pop(0)
            leaves += [left[p], right[p]]
        for _ in range(int(rng.integers(0, 3)) if n > 1 else 0):  # ... some pointers moved
            (left if rng.random() < 0.5 else right)[rng.integers(n)] = rng.integers(-1, n)
        want = _walk(left, right)
        try:
            got = reachable_order(left, right).tolist()
        except ModelFormatError as exc:
            got = str(exc)
            assert isinstance(want, str) and want in got
            kinds.add("error")
            continue
        assert got == want
        kinds.add("tree" if len(got) == n else "partial")
    assert kinds == {"error", "tree", "partial"}


def ubj_trees_of(spec: XGBSpec) -> tuple[list, int]:
    """The trees as the UBJ parser gives them: typed numpy arrays instead of lists."""
    from treeprune.io.xgboost.ubjson import parse_ubj

    booster, _, _ = make_model(spec)
    return _trees_in(parse_ubj(bytes(booster.save_raw("ubj"))))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_ubj_arrays_take_the_whole_model_pass_and_read_the_same(spec, monkeypatch):
    from treeprune.io.xgboost import read

    jtrees, nf = ubj_trees_of(spec)
    assert isinstance(jtrees[0]["left_children"], np.ndarray)
    want = one_by_one(jtrees, nf)
    calls = []
    parse_tree = read._parse_tree
    monkeypatch.setattr(read, "_parse_tree", lambda *a: calls.append(1) or parse_tree(*a))
    assert_same(_parse_trees(jtrees, nf), want)
    if spec.n_cat == 0:
        assert not calls  # every tree went through the one pass


UBJ_DAMAGE = {
    "child out of range": lambda jt: jt["right_children"].__setitem__(0, 10 ** 6),
    "shared child": lambda jt: jt["right_children"].__setitem__(0, jt["left_children"][0]),
    "feature out of range": lambda jt: jt["split_indices"].__setitem__(0, 99),
    "fractional child": lambda jt: jt.__setitem__(
        "left_children", jt["left_children"].astype(np.float32) + np.float32(0.5)),
    "huge unsigned": lambda jt: jt.__setitem__(
        "default_left", jt["default_left"].astype(np.uint64) + np.uint64(2 ** 63)),
    "short array": lambda jt: jt.__setitem__("sum_hessian", jt["sum_hessian"][:-1]),
    "unreachable subtree": lambda jt: _make_leaf(jt, jt["left_children"][0]),
    "NaN threshold": lambda jt: jt["split_conditions"].__setitem__(0, np.nan),
}


@pytest.mark.parametrize("damage", list(UBJ_DAMAGE))
def test_damaged_ubj_trees_fail_or_read_the_same(damage):
    jtrees, nf = ubj_trees_of(SPECS[1])
    UBJ_DAMAGE[damage](jtrees[2])
    got = outcome(_parse_trees, jtrees, nf)
    want = outcome(one_by_one, copy.deepcopy(jtrees), nf)
    assert_same(got, want)


def test_a_nan_threshold_is_refused_not_routed_differently():
    """XGBoost sends every non-missing value right at a NaN split condition (``x < NaN`` is
    false) while a ``>=`` test would send it left: found by the reader fuzzing, refused."""
    jtrees, nf = ubj_trees_of(SPECS[1])
    jtrees[3]["split_conditions"][0] = np.nan
    with pytest.raises(ModelFormatError, match=r"trees\[3\]\.split_conditions\[0\] is NaN"):
        _parse_trees(jtrees, nf)
