"""Models written by old XGBoost / LightGBM releases score as those releases scored them.

The fixtures in ``fixtures/legacy`` were written by the old libraries themselves (see
``fixtures/make_legacy.py``), together with their own ``pred_leaf`` and margins on fixed rows.
The old libraries are not needed here: only their recorded predictions.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

import treeprune as tp
from treeprune.errors import ModelFormatError, UnsupportedModelError

HERE = Path(__file__).parent / "fixtures" / "legacy"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
X = np.load(HERE / "X.npz")["X"]


def _cases() -> list[tuple[str, str]]:
    return [(name, kind) for name, entry in sorted(MANIFEST.items()) for kind in entry["files"]]


def _recorded(name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(HERE / MANIFEST[name]["npz"]) as f:
        return f["leaf"].reshape(len(X), -1), f["margin"].reshape(len(X), -1)


def _path(name: str, kind: str) -> Path:
    return HERE / MANIFEST[name]["files"][kind]


#: XGBoost 1.3.0 and 1.3.1 binary files both record "1.3"; 1.3.0's binary:logitraw started from
#: logit(base_score), 1.3.1 from base_score. treeprune reads "1.3" with the 1.3.1 rule.
AMBIGUOUS = {("xgb-1.3.0-binary_logitraw", "binary"), ("xgb-1.3.0-binary_logitraw_base03", "binary")}


def test_fixtures_cover_every_old_format() -> None:
    versions = {(e["library"], e["version"]) for e in MANIFEST.values()}
    kinds = {k for e in MANIFEST.values() for k in e["files"]}
    assert {("xgboost", "0.90"), ("xgboost", "1.2.1"), ("xgboost", "2.0.3"),
            ("lightgbm", "2.3.1"), ("lightgbm", "3.1.1")} <= versions
    assert {"binary", "json", "ubj", "text"} <= kinds
    formats = {(HERE / f).read_text().split("version=", 1)[1][:2]
               for e in MANIFEST.values() for k, f in e["files"].items() if k == "text"}
    assert formats == {"v2", "v3"}  # v4 is what today's LightGBM writes (tested elsewhere)
    total = sum(p.stat().st_size for p in HERE.iterdir())
    assert total < 800_000  # fixtures stay small


@pytest.mark.parametrize(("name", "kind"), _cases())
def test_legacy_file_scores_as_its_writer(name: str, kind: str) -> None:
    ens = tp.load(_path(name, kind))
    leaf, margin = _recorded(name)
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaf)
    got = ens.predict(X, output="margin").reshape(margin.shape)
    if (name, kind) in AMBIGUOUS:
        p = float(ens.source_meta["xgboost_base_score"])
        shift = p - np.log(p / (1 - p))  # 1.3.1 rule minus 1.3.0 rule
        np.testing.assert_allclose(got, margin + shift, atol=1e-5, rtol=0)
        assert "1.3.0" in ens.summary()
    else:
        np.testing.assert_allclose(got, margin, atol=1e-5, rtol=0)


def _native_margin(path: Path, library: str) -> tuple[np.ndarray, np.ndarray]:
    if library == "xgboost":
        booster = xgb.Booster()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # today's XGBoost must see a current model file
            booster.load_model(str(path))
        dm = xgb.DMatrix(X, missing=np.nan)
        return (booster.predict(dm, pred_leaf=True).reshape(len(X), -1),
                booster.predict(dm, output_margin=True).reshape(len(X), -1))
    booster = lgb.Booster(model_file=str(path))
    return (booster.predict(X, pred_leaf=True).reshape(len(X), -1),
            booster.predict(X, raw_score=True).reshape(len(X), -1))


def _write_cases() -> list[tuple[str, str, str]]:
    out = []
    for name, kind in _cases():
        if (name, kind) in AMBIGUOUS:
            continue
        lib = MANIFEST[name]["library"]
        for suffix in ((".json", ".ubj") if lib == "xgboost" else (".txt",)):
            out.append((name, kind, suffix))
    return out


def _fast(case: tuple[str, str, str]) -> bool:
    """One file per old release and encoding in the fast suite; all of them in the slow one."""
    name, kind, suffix = case
    tag = name.split("-", 2)[2]
    return tag in ("binary_logitraw_base03", "multi_softprob", "multiclass",
                   "regression_zero_missing") and suffix != ".ubj"


@pytest.mark.parametrize(
    ("name", "kind", "suffix"),
    [c if _fast(c) else pytest.param(*c, marks=pytest.mark.slow) for c in _write_cases()])
def test_written_back_today_scores_the_same(tmp_path: Path, name: str, kind: str,
                                            suffix: str) -> None:
    ens = tp.load(_path(name, kind))
    out = tmp_path / f"upgraded{suffix}"
    ens.save(out)
    leaf, margin = _recorded(name)
    native_leaf, native_margin = _native_margin(out, MANIFEST[name]["library"])
    np.testing.assert_array_equal(native_leaf, leaf)
    np.testing.assert_allclose(native_margin, margin, atol=1e-5, rtol=0)
    again = tp.load(out)  # and treeprune reads its own output with the same scores
    np.testing.assert_allclose(again.predict(X, output="margin").reshape(margin.shape), margin,
                               atol=1e-5, rtol=0)
    assert not again.source_meta.get("semantic_notes")


def test_summary_names_writer_and_compensation() -> None:
    text = tp.load(_path("xgb-1.2.1-binary_logitraw", "json")).summary()
    assert "written by     XGBoost 1.2.1 (JSON)" in text
    assert "logit(0.5)" in text and ">= 1.3.1" in text
    text = tp.load(_path("xgb-0.90-binary_logistic_base03", "binary")).summary()
    assert "XGBoost < 1.0 (binary)" in text and "stored as a margin" in text
    text = tp.load(_path("xgb-2.0.3-binary_logistic", "json")).summary()
    assert "XGBoost 2.0.3 (JSON)" in text and "version rule" not in text


def test_today_xgboost_would_change_old_logitraw_scores() -> None:
    # the compensation is real: today's library reads the 1.2.1 file 0.5 higher than 1.2.1 did
    booster = xgb.Booster()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        booster.load_model(str(_path("xgb-1.2.1-binary_logitraw", "json")))
    today = booster.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True)
    _, margin = _recorded("xgb-1.2.1-binary_logitraw")
    np.testing.assert_allclose(today - margin.ravel(), 0.5, atol=1e-5)


# -- the binary format: damaged files give typed errors ---------------------------------------

BINARIES = sorted({str(_path(n, "binary")) for n, e in MANIFEST.items() if "binary" in e["files"]})


@pytest.mark.parametrize("path", [BINARIES[0], BINARIES[-1]])
def test_binary_truncated_anywhere_is_a_format_error(path: str) -> None:
    data = Path(path).read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 97)):
        with pytest.raises(ModelFormatError):
            tp.load(data[:cut])


def test_binary_trailing_bytes_and_bad_counts() -> None:
    data = _path("xgb-1.2.1-binary_logistic", "binary").read_bytes()
    with pytest.raises(ModelFormatError, match="unexpected bytes"):
        tp.load(data + b"\0\0\0\0")
    # num_trees is the first int of the gbtree parameters (after header, params, two names)
    off = 4 + 136 + 8 + len("binary:logistic") + 8 + len("gbtree")
    bad = data[:off] + struct.pack("<i", 10**6) + data[off + 4:]
    with pytest.raises(ModelFormatError, match="cannot hold"):
        tp.load(bad)


def test_binary_linear_booster_is_unsupported() -> None:
    data = _path("xgb-0.90-binary_logistic", "binary").read_bytes()
    off = 136 + 8 + len("binary:logistic")
    linear = data[:off] + struct.pack("<Q", 8) + b"gblinear" + data[off + 8 + 6:]
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        tp.load(linear)


def test_binary_is_recognised_whatever_its_first_bytes() -> None:
    # a pre-1.0 file starts with a raw float: make it start with '{' and 'tree'
    data = _path("xgb-0.90-regression", "binary").read_bytes()
    leaf, margin = _recorded("xgb-0.90-regression")
    for head in (b"{\0\0\0", b"tree"):
        ens = tp.load(head + data[4:])
        assert ens.source_meta["written_encoding"] == "binary"
        np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaf)


# -- LightGBM: a file without the 'end of trees' footer ------------------------------------------

LGB_TEXTS = sorted(str(_path(n, "text")) for n, e in MANIFEST.items() if "text" in e["files"])


@pytest.mark.parametrize("path", [LGB_TEXTS[0], LGB_TEXTS[-1]])
def test_lightgbm_without_footer_loads_when_tree_sizes_prove_it_complete(path: str) -> None:
    text = Path(path).read_text()
    footerless = text[:text.index("end of trees")]
    name = Path(path).stem
    leaf, margin = _recorded(name)
    for variant in (footerless, footerless + "\n\n"):
        ens = tp.load(variant.encode())
        np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaf)
        np.testing.assert_allclose(ens.predict(X, output="margin").reshape(margin.shape), margin,
                                   atol=1e-5, rtol=0)
    native = lgb.Booster(model_str=footerless)  # LightGBM itself accepts this complete file
    np.testing.assert_allclose(native.predict(X, raw_score=True).reshape(margin.shape), margin,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("path", [LGB_TEXTS[0], LGB_TEXTS[-1]])
def test_lightgbm_truncation_is_still_caught_by_the_header_counts(path: str) -> None:
    text = Path(path).read_text()
    end = text.index("end of trees")
    start = text.index("Tree=")
    for cut in list(range(start, end, max(1, (end - start) // 150))) + [end - 1, end - 2]:
        with pytest.raises(ModelFormatError):
            tp.load(text[:cut].encode())
    # without tree_sizes nothing shows that the trees are complete
    head, _, rest = text[:end].partition("\ntree_sizes=")
    no_sizes = head + "\n" + rest.partition("\n")[2]
    with pytest.raises(ModelFormatError, match="tree_sizes"):
        tp.load(no_sizes.encode())
    assert tp.load((no_sizes + "end of trees\n").encode()).n_trees > 0


# -- upgrade: old file in, today's file out, with the check -----------------------------------

def test_upgrade_writes_todays_file_with_the_same_scores(tmp_path: Path) -> None:
    from treeprune.errors import ConversionError
    from treeprune.upgrade import upgrade

    src = _path("xgb-1.2.1-binary_logitraw", "binary")
    check = upgrade(src, tmp_path / "new.json")
    assert check.ok and check.n_rows == 1000 and check.max_abs_diff <= 1e-5
    assert check.written_by == "XGBoost 1.2 (binary)" and check.checked_with.startswith("XGBoost")
    check = upgrade(src, tmp_path / "rows.ubj", X=X)
    assert check.ok and check.n_rows == len(X)
    _, margin = _recorded("xgb-1.2.1-binary_logitraw")
    np.testing.assert_allclose(_native_margin(tmp_path / "rows.ubj", "xgboost")[1], margin,
                               atol=1e-5, rtol=0)
    # a check that fails leaves nothing behind
    with pytest.raises(ConversionError, match="nothing was written"):
        upgrade(src, tmp_path / "never.json", tolerance=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "rows.ubj"]


def test_upgrade_command_prints_the_check(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = str(Path(tp.__file__).resolve().parent.parent)  # the treeprune under test
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "treeprune", "upgrade", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)

    src = str(_path("xgb-0.90-multi_softprob", "binary"))
    proc = run(src, "new.json")
    assert proc.returncode == 0, proc.stderr
    assert "written by XGBoost < 1.0 (binary)" in proc.stdout
    assert "leaf ids equal in 9/9 trees" in proc.stdout and proc.stdout.rstrip().endswith("OK")
    proc = run(src, "new.json")  # exists: refused without --force, in one line
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("treeprune: error:") and "--force" in proc.stderr
    lgb_src = str(_path("lgb-3.1.1-binary_categorical", "text"))
    proc = run(lgb_src, "new.txt", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["checked_with"].startswith("LightGBM")


def test_binary_in_base64_and_old_objective_name_in_json() -> None:
    import base64

    leaf, margin = _recorded("xgb-1.2.1-regression")
    raw = _path("xgb-1.2.1-regression", "binary").read_bytes()
    ens = tp.load(b"bs64" + base64.b64encode(raw))  # how some old bindings stored models
    np.testing.assert_array_equal(ens.predict(X, output="leaf"), leaf)
    np.testing.assert_allclose(ens.predict(X, output="margin").reshape(margin.shape), margin,
                               atol=1e-5, rtol=0)
    with pytest.raises(ModelFormatError, match="base64"):
        tp.load(b"bs64" + b"not base64!")
    doc = json.loads(_path("xgb-1.0.2-regression", "json").read_text())
    doc["learner"]["objective"]["name"] = "reg:linear"  # the name before reg:squarederror
    ens = tp.load(json.dumps(doc).encode())
    _, margin = _recorded("xgb-1.0.2-regression")
    np.testing.assert_allclose(ens.predict(X, output="margin").reshape(margin.shape), margin,
                               atol=1e-5, rtol=0)


def test_one_output_objective_with_several_classes_is_refused() -> None:
    # XGBoost predicts num_class outputs whatever the objective; treeprune cannot: a typed error
    data = bytearray(_path("xgb-1.0.2-binary_logistic", "binary").read_bytes())
    off = 4 if data[:4] == b"binf" else 0
    struct.pack_into("<i", data, off + 8, 2)  # num_class
    with pytest.raises(UnsupportedModelError, match="num_class = 2"):
        tp.load(bytes(data))
    doc = json.loads(_path("xgb-1.2.1-regression", "json").read_text())
    doc["learner"]["learner_model_param"]["num_class"] = "3"
    with pytest.raises(UnsupportedModelError, match="one-output objective"):
        tp.load(json.dumps(doc).encode())


def test_feature_count_beyond_the_routing_limit_is_a_typed_error() -> None:
    data = bytearray(_path("xgb-1.0.2-binary_logistic_base03", "binary").read_bytes())
    off = 4 if data[:4] == b"binf" else 0
    struct.pack_into("<I", data, off + 4, 1 << 24)  # num_feature = 2**24
    with pytest.raises(ModelFormatError, match="num_feature"):
        tp.load(bytes(data))
    doc = json.loads(_path("xgb-1.2.1-regression", "json").read_text())
    doc["learner"]["learner_model_param"]["num_feature"] = str(1 << 24)
    with pytest.raises(ModelFormatError, match="num_feature"):
        tp.load(json.dumps(doc).encode())


def test_lightgbm_tree_ends_only_at_an_empty_line() -> None:
    # LightGBM reads on through a line of spaces or a control character into the next tree
    # (found by the differential fuzzing): treeprune refuses such a file instead of differing
    text = _path("lgb-3.1.1-binary", "text").read_text()
    end = text.index("\n\n\nTree=2")
    for junk in ("\x1c", " ", "\t"):
        damaged = text[:end + 1] + junk + text[end + 2:]
        with pytest.raises(ModelFormatError, match="tree 1"):
            tp.load(damaged.encode())


def test_base_score_with_more_digits_than_xgboost_reads_is_refused() -> None:
    # XGBoost wraps such a mantissa around 2**64 (found by the differential fuzzing)
    doc = json.loads(_path("xgb-1.2.1-regression", "json").read_text())
    for text in ("99999999999999999999999", "[12345678901234567890.5]"):
        doc["learner"]["learner_model_param"]["base_score"] = text
        with pytest.raises(ModelFormatError, match="more digits"):
            tp.load(json.dumps(doc).encode())
    doc["learner"]["learner_model_param"]["base_score"] = "1.00000000000000000E0"  # 18 digits
    assert tp.load(json.dumps(doc).encode()).base_margin[0] == 1.0


@pytest.mark.parametrize("name", sorted(n for n, e in MANIFEST.items()
                                        if e["library"] == "lightgbm"))
def test_upgraded_lightgbm_file_loads_without_warnings(tmp_path: Path, name: str,
                                                       capfd: pytest.CaptureFixture) -> None:
    """Today's LightGBM loads the upgrade of a v2/v3 file silently and scores it exactly."""
    from treeprune.upgrade import upgrade

    out = tmp_path / "new.txt"
    assert upgrade(_path(name, "text"), out).ok
    capfd.readouterr()
    booster = lgb.Booster(model_file=str(out))
    raw = booster.predict(X, raw_score=True).reshape(len(X), -1)
    leaf = booster.predict(X, pred_leaf=True).reshape(len(X), -1)
    logged = capfd.readouterr()
    assert "Warning" not in logged.out + logged.err, logged.out + logged.err
    want_leaf, want_margin = _recorded(name)
    np.testing.assert_array_equal(leaf, want_leaf)
    np.testing.assert_array_equal(raw, want_margin)  # LightGBM sums doubles: bit for bit
    # what the old file was trained with is still there, less what LightGBM no longer has
    old = tp.load(_path(name, "text")).source_meta["parameters"]
    kept = tp.load(out).source_meta["parameters"]
    assert kept == {k: v for k, v in old.items() if k in kept}
    assert {"boosting", "objective", "num_leaves", "learning_rate"} <= set(kept)


def test_parameters_block_keeps_only_names_lightgbm_knows() -> None:
    from lightgbm.basic import _ConfigAliases

    from treeprune.io.lightgbm.parameters import LIGHTGBM_PARAMETERS, current_parameters

    assert LIGHTGBM_PARAMETERS <= set(_ConfigAliases._get_all_param_aliases())
    block = "[boosting: gbdt]\n[max_conflict_rate: 0]\n\n[num_leaves: 6]\n[sparse_threshold: 0.8]"
    assert current_parameters(block) == "[boosting: gbdt]\n[num_leaves: 6]"
