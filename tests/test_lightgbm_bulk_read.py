"""The LightGBM text reader's whole-model pass equals its tree-by-tree reader, on every tree.

:func:`treeprune.io.lightgbm.bulk.usual_trees` converts and checks the usual trees of a model in
one pass and leaves anything else to :func:`treeprune.io.lightgbm.read._parse_tree`; both must
give the same node arrays, bit for bit, for valid trees, and the same typed error for the first
damaged one.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lgb_models import FAST_SPECS, LgbSpec, train

from treeprune.ensemble import NODE_FIELDS
from treeprune.errors import ModelFormatError, UnsupportedModelError
from treeprune.io.lightgbm import read
from treeprune.io.lightgbm.bulk import _numbers

_TEXTS: dict[LgbSpec, str] = {}


def text_of(spec: LgbSpec) -> str:
    if spec not in _TEXTS:
        _TEXTS[spec] = train(spec)[0].model_to_string()
    return _TEXTS[spec]


def tree_by_tree(text: str, monkeypatch) -> object:
    """The model as the tree-by-tree reader alone reads it (or its error)."""
    with monkeypatch.context() as m:
        m.setattr(read, "usual_trees", lambda kvs, n_features: {})
        return outcome(text)


def outcome(text: str) -> object:
    try:
        return read.read_lightgbm_text(text)
    except (ModelFormatError, UnsupportedModelError) as exc:
        return type(exc), str(exc)


def assert_same(got: object, want: object) -> None:
    if isinstance(want, tuple) or isinstance(got, tuple):
        assert got == want
        return
    for name in (*NODE_FIELDS, "cat_bounds", "cat_words", "tree_offsets", "tree_group",
                 "tree_weight", "base_margin", "folded_intercept"):
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(want, name))
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # bit for bit (NaN payloads, signed zeros)
    assert got.source_meta["shrinkage"] == want.source_meta["shrinkage"]


def counting_parse_tree(monkeypatch) -> list[int]:
    calls: list[int] = []
    parse_tree = read._parse_tree
    monkeypatch.setattr(read, "_parse_tree", lambda t, *a: calls.append(t) or parse_tree(t, *a))
    return calls


@pytest.mark.parametrize("spec", FAST_SPECS, ids=lambda s: s.id)
def test_whole_model_pass_reads_the_same(spec, monkeypatch):
    text = text_of(spec)
    want = tree_by_tree(text, monkeypatch)
    calls = counting_parse_tree(monkeypatch)
    assert_same(outcome(text), want)
    # only one-leaf trees are left to the tree-by-tree reader
    one_leaf = [t for t, n in enumerate(re.findall(r"^num_leaves=(\d+)$", text, re.M))
                if int(n) == 1]
    assert calls == one_leaf


def test_the_bench_shape_takes_the_whole_model_pass(monkeypatch):
    """Deep trees with categorical splits, +-inf thresholds and zero-threshold splits."""
    spec = LgbSpec("binary", n_cat=2, num_leaves=63, n_trees=30, n_rows=3000, nan_frac=0.2,
                   zero_frac=0.2, params=(("min_data_in_leaf", 2),))
    text = text_of(spec)
    calls = counting_parse_tree(monkeypatch)
    got = outcome(text)
    assert not calls
    assert_same(got, tree_by_tree(text, monkeypatch))


def _edit(text: str, tree: int, key: str, edit) -> str:
    """``text`` with ``key=`` of tree ``tree`` edited (tree_sizes dropped: the block lengths
    change)."""
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)
    start = text.index(f"Tree={tree}\n")
    m = re.compile(rf"^{key}=(.*)$", re.M).search(text, start)
    assert m
    return text[:m.start()] + f"{key}=" + edit(m.group(1)) + text[m.end():]


def _swap_first(value: str, new: str) -> str:
    return " ".join([new, *value.split()[1:]])


DAMAGE = {
    "bad float": ("leaf_value", lambda v: _swap_first(v, "1.5x")),
    "nan leaf": ("leaf_value", lambda v: _swap_first(v, "nan")),
    "inf leaf": ("leaf_value", lambda v: _swap_first(v, "inf")),
    "underscore": ("leaf_value", lambda v: _swap_first(v, "1_0")),  # float() reads it: 10.0
    "nan payload": ("split_gain", lambda v: _swap_first(v, "nan(1)")),
    "nan gain": ("split_gain", lambda v: _swap_first(v, "-nan")),
    "plus and zeros": ("threshold", lambda v: _swap_first(v, "+000.25e+0")),
    "tab": ("threshold", lambda v: v.replace(" ", "\t", 1)),
    "double space": ("threshold", lambda v: v.replace(" ", "  ", 1)),
    "trailing space": ("threshold", lambda v: v + " "),
    "too few": ("threshold", lambda v: v.rsplit(" ", 1)[0]),
    "too many": ("internal_value", lambda v: v + " 0.5"),
    "empty optional": ("leaf_weight", lambda v: ""),
    "fraction as int": ("left_child", lambda v: _swap_first(v, "1.0")),
    "huge int": ("internal_count", lambda v: _swap_first(v, "9" * 25)),
    "int64 max": ("leaf_count", lambda v: _swap_first(v, str(2 ** 63 - 1))),
    "plus int": ("leaf_count", lambda v: _swap_first(v, "+007")),
    "lone sign": ("internal_count", lambda v: _swap_first(v, "-")),
    "feature out of range": ("split_feature", lambda v: _swap_first(v, "99")),
    "decision type": ("decision_type", lambda v: _swap_first(v, "12")),
    "child out of range": ("right_child", lambda v: _swap_first(v, "-99")),
    "root as child": ("left_child", lambda v: _swap_first(v, "0")),
    "shared child": ("right_child", lambda v: " ".join([v.split()[0], v.split()[0],
                                                        *v.split()[2:]])),
    "nan threshold": ("threshold", lambda v: _swap_first(v, "nan")),
    "num_leaves": ("num_leaves", lambda v: str(int(v) - 1)),
    "num_leaves junk": ("num_leaves", lambda v: "x"),
    "linear": ("is_linear", lambda v: "1"),
    "shrinkage": ("shrinkage", lambda v: "abc"),
    "cat bounds": ("cat_boundaries", lambda v: _swap_first(v, "1")),
    "cat bounds decreasing": ("cat_boundaries", lambda v: " ".join(v.split()[:-1] + ["0"])),
    "cat words": ("cat_threshold", lambda v: _swap_first(v, str(2 ** 32))),
    "no cat": ("num_cat", lambda v: "0"),
    "more cats": ("num_cat", lambda v: str(int(v) + 1)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("tree", [0, 3])
def test_damaged_trees_fail_or_read_the_same(damage, tree, monkeypatch):
    """Every edit gives what the tree-by-tree reader gives: its error (the first damaged tree's)
    or the same model, bit for bit."""
    text = text_of(LgbSpec("binary", n_cat=2, n_trees=25))
    key, edit = DAMAGE[damage]
    if key.startswith("cat_") or key == "num_cat":
        # a tree with categorical splits
        blocks = text.split("\nTree=")
        tree = next(i for i, b in enumerate(blocks[1:]) if "num_cat=0" not in b and i >= tree)
    bad = _edit(text, tree, key, edit)
    assert_same(outcome(bad), tree_by_tree(bad, monkeypatch))


def test_only_plain_numbers_are_converted_in_one_pass():
    counts = np.array([2, 1])
    got = _numbers(["0.1 -2.5e-3", "inf"], counts, np.float64)
    np.testing.assert_array_equal(got, [0.1, -2.5e-3, np.inf])
    for values in (["0.1 nan", "1"], ["0.1 1_0", "1"], ["0.1\t2", "1"], ["0.1  2", "1"],
                   ["0.1 2 ", "1"], ["0.1 ٣", "1"], ["0.1 2", "1 2"], ["0.1 2x", "1"]):
        assert _numbers(values, counts, np.float64) is None, values
    assert _numbers(["1 " + "9" * 20, "3"], counts, np.int64) is None
    assert _numbers(["1 2.0", "3"], counts, np.int64) is None
    # numpy's integer reader takes a lone sign for 0 at the end, for the next number's sign else
    for values in (["1 2", "-"], ["1 2", "+"], ["1 -", "3"], ["- 2", "3"]):
        assert _numbers(values, counts, np.int64) is None, values
        assert _numbers(values, counts, np.float64) is None, values
    np.testing.assert_array_equal(_numbers(["+1 -0", "007"], counts, np.int64), [1, 0, 7])
    # numpy reads a separator of zero spaces: a number glued to the next reads as two, which
    # with a later unreadable one would have made up the count
    for values in (["1-2 e", "3"], ["1.5.3 e", "3"], ["inf1 e", "3"], ["1 2", "3-4"]):
        assert _numbers(values, counts, np.float64) is None, values
    assert _numbers(["1-2 e", "3"], counts, np.int64) is None


def test_the_whole_model_pass_leaves_the_warning_filters_alone(monkeypatch):
    # the filters are the process's: changing them while reading changes them for every other
    # thread (a model loaded in one thread turned other threads' DeprecationWarnings to errors)
    import warnings

    def changed(*args, **kwargs):
        raise AssertionError("the reader changed the warning filters")

    monkeypatch.setattr(warnings, "catch_warnings", changed)
    monkeypatch.setattr(warnings, "simplefilter", changed)
    monkeypatch.setattr(warnings, "filterwarnings", changed)
    text = text_of(FAST_SPECS[0])
    calls = counting_parse_tree(monkeypatch)
    outcome(text)
    one_leaf = [t for t, n in enumerate(re.findall(r"^num_leaves=(\d+)$", text, re.M))
                if int(n) == 1]
    assert calls == one_leaf  # the whole-model pass read the trees


@pytest.mark.parametrize("key", ["leaf_count", "split_feature", "cat_threshold"])
def test_a_lone_sign_ending_a_key_fails_as_tree_by_tree(key, monkeypatch):
    """The last tree's last number of a key ends the text converted for that key in one pass,
    where numpy's integer reader takes a lone sign for 0 (feature 0, an empty bitset word)."""
    text = text_of(LgbSpec("binary", n_cat=2, n_trees=25))
    field = "num_cat" if key.startswith("cat_") else "num_leaves"
    least = 1 if key.startswith("cat_") else 2
    sizes = [int(n) for n in re.findall(rf"^{field}=(\d+)$", text, re.M)]
    tree = max(t for t, n in enumerate(sizes) if n >= least)
    bad = _edit(text, tree, key, lambda v: " ".join([*v.split()[:-1], "-"]))
    got = outcome(bad)
    assert isinstance(got, tuple) and got[0] is ModelFormatError, got
    assert_same(got, tree_by_tree(bad, monkeypatch))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edits_fail_or_read_the_same(data, monkeypatch):
    text = text_of(LgbSpec("binary", n_cat=2, n_trees=25))
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)
    raw = bytearray(text.encode())
    start, end = raw.index(b"Tree=0"), raw.index(b"end of trees")
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(start, end - 1))
        raw[pos] = data.draw(st.sampled_from(b"0123456789-+.= \n\txeinfa_"))
    bad = raw.decode()
    assert_same(outcome(bad), tree_by_tree(bad, monkeypatch))
