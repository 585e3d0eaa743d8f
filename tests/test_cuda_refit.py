"""GPU leaf refit (``refit_leaves(device="cuda")``, ``treeprune.kernels.cuda_refit``) against the CPU.

Without a GPU the kernels run in numba's CUDA simulator. ``NUMBA_ENABLE_CUDASIM`` must be set
before numba is imported, so every simulator comparison runs in a subprocess and the rest of the
test session keeps the real (absent) CUDA target. The simulator is slow: a few hundred rows, a
handful of trees.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xgb_models import XGBSpec, make_model

import treeprune as tp
from treeprune.errors import DeviceError
from treeprune.kernels.device import cuda_available, resolve_device
from treeprune.passes.datadriven import LeafFrame, refit_leaves

TESTS = Path(__file__).resolve().parent
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
HAS_GPU = cuda_available()
RTOL = 1e-6

# Runs in a subprocess with NUMBA_ENABLE_CUDASIM=1: refits one case on the CPU and on the
# (simulated) GPU and saves both, plus the leaf slots of both routings, to an .npz file.
SIM_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[3])
import numpy as np
import treeprune as tp
from treeprune.kernels import cuda_refit
from treeprune.passes.datadriven import LeafFrame, _unfold_intercept, refit_leaves

case, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
kw = {"n_rounds": 4}
w = None
X_route = None
if case.startswith("xgb"):
    from xgb_models import XGBSpec, make_model
    spec = {
        # categorical bitsets, NaNs, logloss, default settings
        "xgb_binary_cat": XGBSpec(n_trees=5, max_depth=3, n_rows=300, n_cat=1, n_num=4),
        # monotone projection between rounds, sample weights
        "xgb_monotone": XGBSpec(n_trees=5, max_depth=3, n_rows=300, seed=18,
                                extra={"monotone_constraints": "(1,0,-1,0,0)"}),
        # softmax: three output groups, intercept of each group refitted in turn
        "xgb_softmax": XGBSpec(objective="multi:softprob", n_trees=2, max_depth=2, n_rows=240,
                               seed=8),
        # tweedie (loss parameter), no intercept update, trees larger than the shared buffers
        "xgb_tweedie_global": XGBSpec(objective="reg:tweedie", n_trees=4, max_depth=3,
                                      n_rows=300, seed=14,
                                      extra={"tweedie_variance_power": 1.3}),
    }[case]
    booster, X, y = make_model(spec)
    if case == "xgb_monotone":
        w = rng.uniform(0.5, 2.0, len(y))
        kw["n_rounds"] = 3
    if case == "xgb_softmax":
        kw["n_rounds"] = 2
    if case == "xgb_tweedie_global":
        kw["update_base"] = False
        cuda_refit.SHARED_LEAVES = 4  # depth-3 trees have up to 8 leaves: global atomics path
        cuda_refit._kernels.cache_clear()
else:
    from lgb_models import LgbSpec, stress_rows, train
    # LightGBM rule (zero as missing, categorical), folded intercept, a 2-D margin of 1 group
    spec = LgbSpec("binary", n_trees=5, num_leaves=7, n_cat=2, missing="zero", zero_frac=0.2,
                   n_rows=300)
    booster, Xe = train(spec)
    X = np.asarray(Xe, dtype=np.float64)[:300]
    y = (rng.random(len(X)) < 0.4).astype(np.float64)
    X_route = stress_rows(booster, Xe, spec.n_features)
ens = tp.load(booster)
ens_u = _unfold_intercept(ens)
cpu = refit_leaves(ens, X, y, w, **kw)
if case == "xgb_softmax":  # rows routed on the CPU, Newton rounds on the GPU
    gpu = refit_leaves(ens, X, y, w, frame=LeafFrame.build(ens_u, X), device="cuda", **kw)
else:
    gpu = refit_leaves(ens, X, y, w, device="cuda", **kw)
# the leaf slots that the GPU routing finds and those of the CPU routing
Xr = X if X_route is None else X_route
slots_gpu = LeafFrame.build(ens_u, Xr, device="cuda").leaf_slot
slots_cpu = LeafFrame.build(ens_u, Xr).leaf_slot
leaf = cpu.left < 0
np.savez(out, cpu_value=cpu.value[leaf], gpu_value=gpu.value[leaf],
         cpu_base=cpu.base_margin, gpu_base=gpu.base_margin,
         cpu_margin=cpu.predict(X, output="margin"), gpu_margin=gpu.predict(X, output="margin"),
         changed=np.max(np.abs(cpu.value[leaf] - ens.value[leaf] * 1.0)),
         slots_gpu=slots_gpu, slots_cpu=slots_cpu,
         cpu_loss=cpu.history[-1].details["loss_after"],
         gpu_loss=gpu.history[-1].details["loss_after"],
         gpu_device=gpu.history[-1].details.get("device", ""))
"""

SIM_CASES = ["xgb_binary_cat", "xgb_monotone", "xgb_softmax", "xgb_tweedie_global",
             "lgb_zero_cat"]


def _run_simulated(case: str, out: Path) -> dict[str, np.ndarray]:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", SIM_SCRIPT, case, str(out), str(TESTS)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Within 1e-6 relative (an absolute floor far below any leaf value's scale)."""
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12 * max(1.0, float(np.max(np.abs(b)))))


@pytest.mark.parametrize("case", SIM_CASES)
def test_simulated_gpu_refit_matches_cpu(case: str, tmp_path: Path) -> None:
    r = _run_simulated(case, tmp_path / f"{case}.npz")
    np.testing.assert_array_equal(r["slots_gpu"], r["slots_cpu"])  # routing is exact
    assert r["changed"] > 1e-4  # the refit moved the leaves: the comparison means something
    _close(r["gpu_value"], r["cpu_value"])
    _close(r["gpu_base"], r["cpu_base"])
    _close(r["gpu_margin"], r["cpu_margin"])
    assert abs(float(r["gpu_loss"]) - float(r["cpu_loss"])) <= RTOL * abs(float(r["cpu_loss"]))
    assert str(r["gpu_device"]) == "cuda"


# --------------------------------------------------------------------------- no GPU
@pytest.fixture(scope="module")
def small():
    booster, X, y = make_model(XGBSpec(n_trees=6, max_depth=3, n_rows=300))
    return tp.load(booster), X, y


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device (or the simulator) is present")
def test_cuda_without_gpu_raises(small) -> None:
    ens, X, y = small
    with pytest.raises(DeviceError, match="no CUDA device was found"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="no CUDA device was found"):
        refit_leaves(ens, X, y, device="cuda")
    with pytest.raises(DeviceError, match="no CUDA device was found"):
        LeafFrame.build(ens, X, device="cuda")
    with pytest.raises(DeviceError, match="no CUDA device was found"):
        tp.prune(ens, X, y, device="cuda")


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device (or the simulator) is present")
def test_auto_falls_back_to_cpu(small, caplog) -> None:
    ens, X, y = small
    with caplog.at_level(logging.DEBUG, logger="treeprune.kernels.device"):
        assert resolve_device("auto") == "cpu"
        auto = refit_leaves(ens, X, y, n_rounds=3, device="auto")
    assert any("no CUDA device" in r.getMessage() and r.levelno == logging.DEBUG
               for r in caplog.records)
    cpu = refit_leaves(ens, X, y, n_rounds=3)
    np.testing.assert_array_equal(auto.value, cpu.value)
    np.testing.assert_array_equal(auto.base_margin, cpu.base_margin)
    assert "device" not in auto.history[-1].details


def test_unknown_device_is_refused(small) -> None:
    ens, X, y = small
    with pytest.raises(DeviceError, match="unknown device"):
        refit_leaves(ens, X, y, device="gpu")


def test_import_does_not_need_numba_cuda() -> None:
    code = ("import sys, treeprune, treeprune.pruning, treeprune.passes.datadriven, "
            "treeprune.kernels.cuda_refit; "
            "print(sorted(m for m in sys.modules if m.startswith('numba.cuda')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a real GPU
@pytest.mark.skipif(not HAS_GPU or SIMULATED, reason="needs a CUDA GPU")
def test_real_gpu_refit_matches_cpu() -> None:
    booster, X, y = make_model(XGBSpec(n_trees=60, max_depth=6, n_rows=20_000, n_cat=1,
                                       n_num=4))
    ens = tp.load(booster)
    np.testing.assert_array_equal(LeafFrame.build(ens, X, device="cuda").leaf_slot,
                                  LeafFrame.build(ens, X).leaf_slot)
    cpu = refit_leaves(ens, X, y)
    gpu = refit_leaves(ens, X, y, device="cuda")
    leaf = ens.left < 0
    _close(gpu.value[leaf], cpu.value[leaf])
    _close(gpu.base_margin, cpu.base_margin)
    res = tp.prune(ens, X, y, max_trees=10, device="cuda")
    assert res.params["device"] == "cuda"


# --------------------------------------------------------------------------- one routing rule
def test_cpu_and_gpu_kernels_compile_one_routing_rule() -> None:
    """The CPU kernels and the GPU route kernel compile the same Python function."""
    from treeprune.kernels import cuda_refit, device, traverse

    assert traverse._go_right_slow.py_func is device.go_right
    pytest.importorskip("numba.cuda")
    gpu = cuda_refit._kernels()["go_right"]
    assert getattr(gpu, "py_func", getattr(gpu, "fn", None)) is device.go_right


def test_routing_rule_compiled_decides_as_written() -> None:
    """The njit-compiled rule (CPU) and the plain function (what the simulator runs) agree on
    every flag combination, both libraries, around thresholds, zeros, NaN and odd category codes."""
    from itertools import product

    from treeprune import _rules as r
    from treeprune.kernels import device, traverse

    words = np.array([0b1010, 1 << 8], dtype=np.uint32)  # categories 1, 3 and 40
    bounds = np.array([0, 2], dtype=np.int64)
    thr = 0.5
    values = [np.nan, 0.0, -0.0, 1e-36, -1e-36, thr, np.nextafter(thr, 1), np.nextafter(thr, 0),
              -1.0, 1.0, 1.9, 3.0, 31.0, 40.0, 64.0, float(1 << 24), 1e10, -2147483649.5, -0.5]
    bits = [r.FLAG_DEFAULT_LEFT, r.FLAG_MISSING_ZERO, r.FLAG_MISSING_NAN, r.FLAG_CATEGORICAL,
            r.FLAG_EXACT_LE]
    seen = set()
    for rule, on in product((r.RULE_XGBOOST, r.RULE_LIGHTGBM), product((0, 1), repeat=5)):
        flags = sum(b for b, o in zip(bits, on, strict=True) if o)
        dtype = np.float32 if rule == r.RULE_XGBOOST else np.float64
        for x in values:
            xv, tv = dtype(x), dtype(thr)
            want = device.go_right(xv, tv, flags, 0, bounds, words, rule)
            got = traverse._go_right_slow(xv, tv, flags, 0, bounds, words, rule)
            assert got == want, (rule, flags, x)
            seen.add(bool(want))
    assert seen == {True, False}
