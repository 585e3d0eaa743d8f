"""XGBoost reader and writer: exact round trips, routing rules, typed errors on bad input."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from xgb_models import SPECS, XGBSpec, dmatrix, make_data, make_model, to_frame

from treeprune._rules import XGBOOST_MAX_CATEGORY
from treeprune.errors import (
    ConversionError,
    ModelFormatError,
    TreePruneError,
    UnsupportedModelError,
)
from treeprune.io import load, save
from treeprune.io.xgboost import read_xgboost_bytes, to_booster, to_bytes
from treeprune.trees import assemble, get_trees

HAS_PREDICT = importlib.util.find_spec("treeprune.predict") is not None
needs_kernel = pytest.mark.skipif(not HAS_PREDICT, reason="treeprune.predict not written yet")

_CACHE: dict[str, tuple] = {}


def trained(spec: XGBSpec):
    """(booster, X, y), trained once per test session."""
    key = repr(spec)
    if key not in _CACHE:
        _CACHE[key] = make_model(spec)
    return _CACHE[key]


# -- a reference predictor written from XGBoost's rules, independent of the Numba kernels --------

def ref_leaf_nodes(ens, X: np.ndarray) -> np.ndarray:
    """Global node index of the leaf each row reaches in each tree (n_rows, n_trees)."""
    X32 = np.asarray(X, dtype=np.float32)
    n = len(X32)
    rows = np.arange(n)
    out = np.empty((n, ens.n_trees), dtype=np.int64)
    for t in range(ens.n_trees):
        base = int(ens.tree_offsets[t])
        node = np.full(n, base, dtype=np.int64)
        for _ in range(int(ens.tree_offsets[t + 1]) - base + 1):
            internal = ens.left[node] >= 0
            if not internal.any():
                break
            f = np.where(internal, ens.feature[node], 0)
            x = X32[rows, f]
            nan = np.isnan(x)
            with np.errstate(invalid="ignore"):
                go_left = x < ens.threshold[node].astype(np.float32)
            cat = ens.cat_index[node] >= 0
            if cat.any():
                k = ens.cat_index[node]
                valid = (x >= 0) & (x < XGBOOST_MAX_CATEGORY) & ~nan
                code = np.where(valid, x, 0).astype(np.int64)
                word = code // 32
                lo = ens.cat_bounds[np.maximum(k, 0)]
                hi = ens.cat_bounds[np.maximum(k, 0) + 1]
                inside = valid & (lo + word < hi)
                bits = np.zeros(n, dtype=np.uint64)
                bits[inside] = ens.cat_words[(lo + word)[inside]]
                in_set = inside & (((bits >> (code % 32).astype(np.uint64)) & 1) == 1)
                go_left = np.where(cat, ~in_set, go_left)
            go_left = np.where(nan, ens.default_left[node], go_left)
            child = np.where(go_left, ens.left[node], ens.right[node]) + base
            node = np.where(internal, child, node)
        out[:, t] = node
    return out


def ref_margin(ens, X: np.ndarray) -> np.ndarray:
    """Float32 margin accumulated the way XGBoost does: base first, then tree by tree."""
    nodes = ref_leaf_nodes(ens, X)
    m = np.tile(np.asarray(ens.base_margin, dtype=np.float32), (len(X), 1))
    for t in range(ens.n_trees):
        v = ens.value[nodes[:, t]].astype(np.float32) * np.float32(ens.tree_weight[t])
        m[:, ens.tree_group[t]] += v.astype(np.float32)
    return m if ens.n_groups > 1 else m[:, 0]


def native_leaf(booster, dm) -> np.ndarray:
    leaf = booster.predict(dm, pred_leaf=True)
    return leaf.reshape(leaf.shape[0], -1).astype(np.int64)


def native_margin(booster, dm) -> np.ndarray:
    return booster.predict(dm, output_margin=True)


def reload(data: bytes):
    """Load model bytes in XGBoost, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
    return booster


def same_ensemble(a, b) -> None:
    for name in ("feature", "left", "right", "default_left", "missing_type", "cat_index",
                 "native_id", "cat_bounds", "cat_words", "tree_offsets", "tree_group"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("threshold", "value", "gain", "cover", "tree_weight", "base_margin"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.objective == b.objective
    assert a.feature_names == b.feature_names and a.feature_types == b.feature_types
    assert a.categories == b.categories


# =================================================================================================
# reading
# =================================================================================================

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_read_matches_native_routing(spec):
    """Every source form reads the same; the reference rule reproduces pred_leaf and margins."""
    booster, X, _ = trained(spec)
    ens = load(booster)
    same_ensemble(ens, load(bytes(booster.save_raw("json"))))
    same_ensemble(ens, load(bytes(booster.save_raw("ubj"))))
    assert ens.source == "xgboost"
    assert ens.n_trees == booster.num_boosted_rounds() * spec.num_parallel_tree * ens.n_groups
    # thresholds and leaf values are exact float32 values
    internal = ens.left >= 0
    thr = ens.threshold[internal]
    np.testing.assert_array_equal(thr.astype(np.float32).astype(np.float64), thr)
    leaf_vals = ens.value[~internal]
    np.testing.assert_array_equal(leaf_vals.astype(np.float32).astype(np.float64), leaf_vals)
    assert np.all(ens.missing_type == 2)

    dm = dmatrix(spec, X)
    nodes = ref_leaf_nodes(ens, X)
    np.testing.assert_array_equal(ens.native_id[nodes], native_leaf(booster, dm))
    # float32 accumulation in model order reproduces XGBoost bit for bit
    np.testing.assert_array_equal(ref_margin(ens, X), native_margin(booster, dm))


def test_objectives_and_base_margin():
    from scipy.special import logit

    for spec in SPECS[:10]:
        booster, _, _ = trained(spec)
        ens = load(booster)
        doc = json.loads(booster.save_raw("json"))
        bs = json.loads(doc["learner"]["learner_model_param"]["base_score"])
        bs = np.atleast_1d(np.asarray(bs, dtype=np.float64))
        name = spec.objective
        assert ens.objective.name == name
        if name == "binary:logistic":
            expect = logit(bs)
        elif name in ("count:poisson", "reg:tweedie", "reg:gamma"):
            expect = np.log(bs)
        else:
            expect = bs
        np.testing.assert_allclose(ens.base_margin, np.broadcast_to(expect, ens.base_margin.shape),
                                   rtol=1e-6, atol=1e-6)
        assert ens.n_groups == (3 if name.startswith("multi") else 1)
    tweedie = load(trained(next(s for s in SPECS if "tweedie_variance_power" in s.extra))[0])
    assert tweedie.objective.params["tweedie_variance_power"] == pytest.approx(1.3)
    huber = load(trained(next(s for s in SPECS if "huber_slope" in s.extra))[0])
    assert huber.objective.params["huber_slope"] == pytest.approx(2.0)


@pytest.mark.parametrize("text", ["5E-1", "[5E-1]", "0.5", 0.5])
def test_base_score_forms(text):
    booster, _, _ = trained(SPECS[0])
    doc = json.loads(booster.save_raw("json"))
    doc["learner"]["learner_model_param"]["base_score"] = text
    ens = read_xgboost_bytes(json.dumps(doc).encode(), ubj=False)
    np.testing.assert_array_equal(ens.base_margin, [0.0])


def test_logistic_base_score_is_clamped_like_xgboost():
    """XGBoost clamps a logistic base_score to [1e-6, 1 - 1e-6] before taking the logit."""
    booster, X, _ = trained(SPECS[0])
    doc = json.loads(booster.save_raw("json"))
    for text in ("[1E0]", "[0E0]", "[9.9999905E-1]", "[1E-7]"):
        doc["learner"]["learner_model_param"]["base_score"] = text
        data = json.dumps(doc).encode()
        ens = read_xgboost_bytes(data, ubj=False)
        np.testing.assert_array_equal(ref_margin(ens, X),
                                      native_margin(reload(data), dmatrix(SPECS[0], X)))


def test_multiclass_per_class_base_score():
    booster, X, _ = trained(SPECS[8])
    ens = load(booster)
    assert ens.base_margin.shape == (3,)
    assert len(set(ens.base_margin.tolist())) == 3  # XGBoost 3 stores one intercept per class
    doc = json.loads(booster.save_raw("json"))
    doc["learner"]["learner_model_param"]["base_score"] = "5E-1"  # XGBoost 2.x form
    ens2 = read_xgboost_bytes(json.dumps(doc).encode(), ubj=False)
    np.testing.assert_array_equal(ens2.base_margin, [0.5, 0.5, 0.5])


def test_dart_weights_and_metadata():
    spec = next(s for s in SPECS if s.booster == "dart" and s.objective == "binary:logistic")
    booster, _, _ = trained(spec)
    ens = load(booster)
    doc = json.loads(booster.save_raw("json"))
    w = np.asarray(doc["learner"]["gradient_booster"]["weight_drop"], dtype=np.float32)
    np.testing.assert_array_equal(ens.tree_weight, w.astype(np.float64))
    assert np.any(ens.tree_weight != 1.0)
    assert ens.source_meta["xgboost_booster"] == "dart"


def test_monotone_names_types_categories():
    mono = next(s for s in SPECS if "monotone_constraints" in s.extra)
    ens = load(trained(mono)[0])
    assert ens.monotone_constraints == (1, 0, -1, 0, 0)
    assert ens.source_meta["xgboost_train_params"]["max_depth"] == 4
    # a file has no training parameters: constraints are unknown (zeros)
    assert load(bytes(trained(mono)[0].save_raw("json"))).monotone_constraints == (0,) * 5

    spec = next(s for s in SPECS if s.pandas)
    booster, X, _ = trained(spec)
    ens = load(booster)
    assert ens.feature_names == ("cat0", "cat1", "num0", "num1", "num2")
    assert ens.feature_types == ("c", "c", "float", "float", "float")
    frame = to_frame(spec, X)
    for j in range(spec.n_cat):
        assert ens.categories[j] == tuple(frame[f"cat{j}"].cat.categories)
    assert set(ens.categories) == {0, 1}

    plain = load(trained(SPECS[0])[0])
    assert plain.feature_names == () and plain.categories == {}
    assert plain.feature_types == ("float",) * plain.n_features


def test_categorical_codes_outside_the_training_range():
    """Negative, fractional, huge and unseen codes route exactly as XGBoost routes them."""
    spec = next(s for s in SPECS if s.n_cat and s.n_levels == 40)
    booster, X, _ = trained(spec)
    ens = load(booster)
    odd = np.array([-1.0, -0.5, -1e-9, -0.0, 0.0, 0.5, 0.99, 1.5, 2.999, 31.5, 32.0, 39.9, 40.0,
                    63.0, 64.0, 1000.0, 16777215.0, 16777216.0, 16777217.0, 2.0**31, 2.0**32,
                    1e20, np.nan])
    rows = np.repeat(X[:1], len(odd) * 2, axis=0)
    rows[: len(odd), 0] = odd
    rows[len(odd):, 1] = odd
    dm = dmatrix(spec, rows)
    nodes = ref_leaf_nodes(ens, rows)
    np.testing.assert_array_equal(ens.native_id[nodes], native_leaf(booster, dm))
    np.testing.assert_array_equal(ref_margin(ens, rows), native_margin(booster, dm))


def test_deleted_nodes_keep_native_ids():
    """The prune updater leaves deleted nodes in the file; native ids keep the file numbering."""
    spec = XGBSpec(objective="reg:squarederror", n_trees=4, max_depth=4, seed=30)
    booster, X, y = make_model(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = xgb.train({"process_type": "update", "updater": "prune", "gamma": 5.0,
                            "max_depth": 4, "nthread": 1}, dmatrix(spec, X, y), 4,
                           xgb_model=booster)
    doc = json.loads(pruned.save_raw("json"))
    assert any(int(t["tree_param"]["num_deleted"]) > 0
               for t in doc["learner"]["gradient_booster"]["model"]["trees"])
    ens = load(pruned)
    assert ens.n_nodes < sum(int(t["tree_param"]["num_nodes"])
                             for t in doc["learner"]["gradient_booster"]["model"]["trees"])
    dm = dmatrix(spec, X)
    np.testing.assert_array_equal(ens.native_id[ref_leaf_nodes(ens, X)], native_leaf(pruned, dm))
    out = reload(to_bytes(ens, ubj=False))
    np.testing.assert_array_equal(native_margin(out, dm), native_margin(pruned, dm))


def test_sklearn_wrappers_and_no_mutation():
    X, y = make_data(XGBSpec())
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1, random_state=0)
    clf.fit(X, y)
    before = bytes(clf.get_booster().save_raw("json"))
    ens = load(clf)
    assert bytes(clf.get_booster().save_raw("json")) == before
    assert ens.n_trees == 5 and ens.objective.name == "binary:logistic"
    reg = xgb.XGBRegressor(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y)
    assert load(reg).objective.name == "reg:squarederror"
    with pytest.raises(ModelFormatError, match="not fitted"):
        load(xgb.XGBClassifier())


# =================================================================================================
# writing
# =================================================================================================

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("ubj", [False, True], ids=["json", "ubj"])
def test_write_reload_same_margin(spec, ubj):
    booster, X, _ = trained(spec)
    ens = load(booster)
    out = reload(to_bytes(ens, ubj=ubj))
    dm = dmatrix(spec, X)
    want = native_margin(booster, dm)
    got = native_margin(out, dm)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got, want)  # unchanged model: bit for bit
    back = load(bytes(out.save_raw("json")))
    same_ensemble(back, ens)  # same numbering too: pred_leaf is unchanged
    np.testing.assert_array_equal(native_leaf(out, dm), native_leaf(booster, dm))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.n_trees <= 30][:12], ids=lambda s: s.id)
def test_write_from_scratch(spec):
    """Without the source's learner JSON the writer builds every non-tree part itself."""
    booster, X, _ = trained(spec)
    ens = load(booster).replace(source_meta={})
    out = reload(to_bytes(ens, ubj=False))
    dm = dmatrix(spec, X)
    np.testing.assert_allclose(native_margin(out, dm), ref_margin(ens, X), rtol=0, atol=1e-5)
    back = load(out)
    assert back.objective == ens.objective
    np.testing.assert_array_equal(back.base_margin.astype(np.float32),
                                  ens.base_margin.astype(np.float32))


def _drop_trees(ens, keep):
    trees = get_trees(ens)
    return assemble(ens, [trees[i] for i in keep])


@pytest.mark.parametrize("spec", [s for s in SPECS if s.booster == "dart" or s.num_parallel_tree > 1
                                  or s.objective.startswith("multi") or s.n_cat][:8],
                         ids=lambda s: s.id)
def test_write_after_dropping_trees(spec):
    booster, X, _ = trained(spec)
    ens = load(booster)
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(ens.n_trees, size=max(1, ens.n_trees // 2), replace=False))
    small = _drop_trees(ens, keep)
    data = to_bytes(small, ubj=False)
    out = reload(data)
    dm = dmatrix(spec, X)
    np.testing.assert_allclose(native_margin(out, dm), ref_margin(small, X), rtol=0, atol=1e-5)
    doc = json.loads(data)
    assert "best_iteration" not in doc["learner"]["attributes"]
    # the writer renumbers compactly: pred_leaf follows the written ensemble's native ids
    back = load(out)
    np.testing.assert_array_equal(back.native_id[ref_leaf_nodes(back, X)], native_leaf(out, dm))


def test_write_changed_base_margin_and_weights():
    booster, X, _ = trained(SPECS[0])
    ens = load(booster)
    dm = dmatrix(SPECS[0], X)
    # tree weights on a gbtree model are folded into the leaves
    w = np.linspace(0.2, 1.7, ens.n_trees)
    weighted = ens.replace(tree_weight=w, base_margin=np.array([0.3712]))
    out = reload(to_bytes(weighted, ubj=False))
    np.testing.assert_allclose(native_margin(out, dm), ref_margin(weighted, X), rtol=0, atol=1e-5)
    # a logistic margin beyond float32's reach of p: the rest is folded into the first tree
    for big in (25.0, -120.0):
        far = ens.replace(base_margin=np.array([big]))
        out = reload(to_bytes(far, ubj=False))
        np.testing.assert_allclose(native_margin(out, dm), ref_margin(far, X), rtol=0, atol=1e-5)
    # multiclass: per-class base margins
    mc_booster, Xm, _ = trained(SPECS[8])
    mc = load(mc_booster).replace(base_margin=np.array([0.1, -2.0, 3.5]))
    out = reload(to_bytes(mc, ubj=True))
    np.testing.assert_allclose(native_margin(out, dmatrix(SPECS[8], Xm)), ref_margin(mc, Xm),
                               rtol=0, atol=1e-5)


def test_write_nan_statistics_and_single_leaf_trees():
    from treeprune.trees import Tree

    booster, X, _ = trained(SPECS[2])
    ens = load(booster)
    bare = ens.replace(gain=np.full(ens.n_nodes, np.nan), cover=np.full(ens.n_nodes, np.nan),
                       value=np.where(ens.left < 0, ens.value, np.nan))
    trees = get_trees(bare) + [Tree.leaf(0.25)]
    with_leaf = assemble(bare, trees)
    out = reload(to_bytes(with_leaf, ubj=False))
    np.testing.assert_allclose(native_margin(out, dmatrix(SPECS[2], X)), ref_margin(with_leaf, X),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", [SPECS[0], SPECS[8]], ids=lambda s: s.id)
def test_older_model_layout(spec):
    """A 1.x-style file (scalar base_score, no cats/iteration_indptr/split_type) reads and
    writes back in its own style."""
    booster, X, _ = trained(spec)
    doc = json.loads(booster.save_raw("json"))
    doc["version"] = [1, 7, 6]
    model = doc["learner"]["gradient_booster"]["model"]
    del model["cats"], model["iteration_indptr"]
    for t in model["trees"]:
        for key in ("split_type", "categories", "categories_nodes", "categories_segments",
                    "categories_sizes"):
            del t[key]
    param = doc["learner"]["learner_model_param"]
    del param["num_target"]
    param["base_score"] = "5E-1" if spec.objective.startswith("multi") else \
        param["base_score"].strip("[]")
    data = json.dumps(doc).encode()
    original = reload(data)
    ens = load(data)
    out = to_bytes(ens, ubj=False)
    written = json.loads(out)
    assert written["version"] == [1, 7, 6]
    assert written["learner"]["learner_model_param"]["base_score"] == param["base_score"]
    dm = dmatrix(spec, X)
    np.testing.assert_array_equal(native_margin(reload(out), dm), native_margin(original, dm))


def test_to_booster_and_refusals():
    booster, X, _ = trained(SPECS[0])
    ens = load(booster)
    native = to_booster(ens)
    assert isinstance(native, xgb.Booster)
    dm = dmatrix(SPECS[0], X)
    np.testing.assert_array_equal(native_margin(native, dm), native_margin(booster, dm))
    with pytest.raises(ConversionError, match="lightgbm"):
        to_bytes(ens.replace(source="lightgbm"), ubj=False)


def test_save_never_overwrites_the_source(tmp_path: Path):
    booster, X, _ = trained(SPECS[0])
    src = tmp_path / "model.json"
    booster.save_model(str(src))
    original = src.read_bytes()
    ens = load(src)
    assert ens.source_meta["source_path"] == str(src.resolve())
    with pytest.raises(TreePruneError, match="source model"):
        save(ens, src)
    with pytest.raises(TreePruneError, match="source model"):
        ens.save(tmp_path / "." / "model.json")
    assert src.read_bytes() == original
    # other paths are fine, in either format, and read back the same
    save(ens, tmp_path / "copy.json")
    save(ens, tmp_path / "copy.ubj")
    same_ensemble(load(tmp_path / "copy.json"), ens)
    same_ensemble(load(tmp_path / "copy.ubj"), ens)
    with pytest.raises(TreePruneError, match="exists"):
        save(ens, tmp_path / "copy.json", overwrite=False)


# =================================================================================================
# bad input
# =================================================================================================

def _model_doc(spec=SPECS[0]):
    return json.loads(trained(spec)[0].save_raw("json"))


def _first_tree(doc):
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]


def _bytes(doc):
    return json.dumps(doc).encode()


def test_bad_files(tmp_path: Path):
    with pytest.raises(ModelFormatError, match="not found"):
        load(tmp_path / "missing.json")
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        load(tmp_path / "empty.json")
    (tmp_path / "data.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ModelFormatError, match="not a model"):
        load(tmp_path / "data.csv")
    with pytest.raises(ModelFormatError):
        load(tmp_path)
    with pytest.raises(ModelFormatError):
        load(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)) + b"x")
    with pytest.raises(ModelFormatError):
        load(b"{\x00\xff junk")
    with pytest.raises(ModelFormatError):
        load(b'{"learner": 1}')
    with pytest.raises(ModelFormatError):
        load(b"[1, 2, 3]")
    with pytest.raises(ModelFormatError):
        load(b"{" * 100000)
    with pytest.raises(ModelFormatError):
        load(b"{" + b"[" * 100000)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated(cut):
    booster = trained(SPECS[0])[0]
    for raw in (bytes(booster.save_raw("json")), bytes(booster.save_raw("ubj"))):
        with pytest.raises(ModelFormatError):
            load(raw[: int(len(raw) * cut)])


def _edit(edit):
    doc = _model_doc()
    edit(doc)
    return _bytes(doc)


@pytest.mark.parametrize("name, edit, match", [
    ("child out of range", lambda d: _first_tree(d)["left_children"].__setitem__(0, 999),
     "out of range"),
    ("negative child", lambda d: _first_tree(d)["right_children"].__setitem__(0, -5),
     "one child|out of range"),
    ("child is root", lambda d: _first_tree(d)["left_children"].__setitem__(1, 0), "out of range"),
    ("cycle", lambda d: _first_tree(d)["left_children"].__setitem__(
        _first_tree(d)["left_children"][0], _first_tree(d)["left_children"][0]), "reached twice"),
    ("shared child", lambda d: _first_tree(d)["right_children"].__setitem__(
        0, _first_tree(d)["left_children"][0]), "reached twice"),
    ("short array", lambda d: _first_tree(d)["split_conditions"].pop(), "split_conditions"),
    ("missing key", lambda d: _first_tree(d).pop("split_indices"), "split_indices"),
    ("bad feature", lambda d: _first_tree(d)["split_indices"].__setitem__(0, 77), "feature"),
    ("string in array", lambda d: _first_tree(d)["left_children"].__setitem__(0, "x"),
     "left_children"),
    ("num_trees", lambda d: d["learner"]["gradient_booster"]["model"]["gbtree_model_param"]
     .__setitem__("num_trees", "99"), "num_trees"),
    ("tree_info", lambda d: d["learner"]["gradient_booster"]["model"]["tree_info"]
     .__setitem__(0, 4), "tree_info|group"),
    ("no learner", lambda d: d.pop("learner"), "learner"),
    ("bad base_score", lambda d: d["learner"]["learner_model_param"]
     .__setitem__("base_score", "abc"), "base_score"),
    ("logistic base_score 1.5", lambda d: d["learner"]["learner_model_param"]
     .__setitem__("base_score", "[1.5E0]"), "base_score"),
    ("num_nodes", lambda d: _first_tree(d)["tree_param"].__setitem__("num_nodes", "1000000"),
     "entries"),
    ("feature names", lambda d: d["learner"].__setitem__("feature_names", ["a"]),
     "feature_names"),
])
def test_hand_edited(name, edit, match):
    with pytest.raises(ModelFormatError, match=match):
        load(_edit(edit))


def test_categorical_edits():
    spec = next(s for s in SPECS if s.n_cat and not s.pandas)
    doc = _model_doc(spec)
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    t = next(t for t in trees if t["categories_nodes"])
    t["categories_sizes"][0] = 10_000
    with pytest.raises(ModelFormatError, match="categories"):
        load(_bytes(doc))
    doc = _model_doc(spec)
    t = next(t for t in doc["learner"]["gradient_booster"]["model"]["trees"]
             if t["categories_nodes"])
    t["categories"][0] = -3
    with pytest.raises(ModelFormatError, match="category"):
        load(_bytes(doc))


def test_unsupported_models():
    X, y = make_data(XGBSpec())
    dm = xgb.DMatrix(X, y)
    linear = xgb.train({"booster": "gblinear", "nthread": 1}, dm, 2)
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        load(linear)
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        load(bytes(linear.save_raw("ubj")))
    multi = xgb.train({"tree_method": "hist", "multi_strategy": "multi_output_tree",
                       "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, np.c_[y, y]), 2)
    with pytest.raises(UnsupportedModelError, match="multi"):
        load(multi)
    doc = json.loads(multi.save_raw("json"))
    doc["learner"]["learner_model_param"]["num_target"] = "1"
    with pytest.raises(UnsupportedModelError, match="multi_output_tree"):
        load(json.dumps(doc).encode())
    per_tree = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, np.c_[y, y]), 2)
    with pytest.raises(UnsupportedModelError, match="multi-target"):
        load(per_tree)
    rank = xgb.train({"objective": "rank:pairwise", "max_depth": 2, "nthread": 1},
                     xgb.DMatrix(X, y, group=[len(y)]), 2)
    with pytest.raises(UnsupportedModelError, match="rank:pairwise"):
        load(rank)
    # the legacy binary format is read (tests/test_legacy.py); a stub of it is a damaged file
    with pytest.raises(ModelFormatError, match="binary model.*truncated"):
        load(b"binf" + b"\x00" * 100)


def test_corrupted_bytes_raise_typed_errors():
    """Random byte flips never crash or hang: a model, or a typed error."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    stump = next(s for s in SPECS if s.n_trees == 1)
    booster = trained(stump)[0]  # a one-split model keeps each case fast
    raws = [bytes(booster.save_raw("json")), bytes(booster.save_raw("ubj"))]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(which=st.integers(0, 1), data=st.data())
    def check(which, data):
        raw = bytearray(raws[which])
        n = data.draw(st.integers(1, 6))
        for _ in range(n):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
        try:
            load(bytes(raw))
        except (ModelFormatError, UnsupportedModelError):
            pass

    check()


# =================================================================================================
# against the kernels (Ensemble.predict)
# =================================================================================================

@needs_kernel
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_kernel_matches_native(spec):
    booster, X, _ = trained(spec)
    ens = load(booster)
    dm = dmatrix(spec, X)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), native_leaf(booster, dm))
    margin = native_margin(booster, dm)
    np.testing.assert_allclose(ens.predict(X, output="margin"), margin, rtol=0, atol=1e-5)
    per_tree = ens.predict(X, output="per_tree")
    assert per_tree.shape == (len(X), ens.n_trees)
    pred = ens.predict(X)
    native_pred = booster.predict(dm)
    np.testing.assert_allclose(np.asarray(pred).reshape(native_pred.shape), native_pred,
                               rtol=1e-5, atol=1e-5)


@needs_kernel
def test_kernel_categorical_odd_codes():
    spec = next(s for s in SPECS if s.n_cat and s.n_levels == 40)
    booster, X, _ = trained(spec)
    ens = load(booster)
    odd = np.array([-1.0, -0.5, -0.0, 0.5, 1.5, 31.5, 32.0, 39.9, 40.0, 63.0, 64.0, 1000.0,
                    16777215.0, 16777216.0, 2.0**31, 1e20, np.nan])
    rows = np.repeat(X[:1], len(odd) * 2, axis=0)
    rows[: len(odd), 0] = odd
    rows[len(odd):, 1] = odd
    dm = dmatrix(spec, rows)
    np.testing.assert_array_equal(ens.predict(rows, output="leaf"), native_leaf(booster, dm))
    np.testing.assert_allclose(ens.predict(rows, output="margin"), native_margin(booster, dm),
                               rtol=0, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("spec", [s for s in SPECS if s.booster == "dart" or s.n_cat][:4],
                         ids=lambda s: s.id)
def test_kernel_written_model(spec):
    booster, X, _ = trained(spec)
    ens = load(booster)
    small = _drop_trees(ens, list(range(0, ens.n_trees, 2)))
    out = reload(to_bytes(small, ubj=False))
    dm = dmatrix(spec, X)
    np.testing.assert_allclose(small.predict(X, output="margin"), native_margin(out, dm),
                               rtol=0, atol=1e-5)


@needs_kernel
def test_kernel_dataframe_recodes_categories():
    """A DataFrame whose categories are listed in another order is re-coded, as XGBoost does."""
    spec = next(s for s in SPECS if s.pandas)
    booster, X, _ = trained(spec)
    ens = load(booster)
    frame = to_frame(spec, X)
    want = native_leaf(booster, dmatrix(spec, X))
    np.testing.assert_array_equal(ens.predict(frame, output="leaf"), want)
    shuffled = frame.copy()
    shuffled["cat0"] = shuffled["cat0"].cat.reorder_categories(
        list(reversed(shuffled["cat0"].cat.categories)))
    assert not np.array_equal(shuffled["cat0"].cat.codes, frame["cat0"].cat.codes)
    native = native_leaf(booster, xgb.DMatrix(shuffled, enable_categorical=True))
    np.testing.assert_array_equal(native, want)
    np.testing.assert_array_equal(ens.predict(shuffled, output="leaf"), want)
