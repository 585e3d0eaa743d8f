"""The loss derivatives shared by the CPU and GPU kernels (``treeprune.kernels.losses``).

The functions are plain Python registered with Numba: the GPU kernels (and numba's CUDA
simulator) and the CPU kernels run the same definition. Here that definition is checked against
the loss itself (``Objective.row_loss``, by central differences), and the compiled CPU kernels
against the definition.
"""

from __future__ import annotations

import numpy as np
import pytest

from treeprune._rules import LOSS_CODES, LOSS_SOFTMAX
from treeprune.kernels import losses, stats
from treeprune.objectives import Objective

PARAMS = {"tweedie": {"tweedie_variance_power": 1.3}, "huber": {"huber_slope": 0.7}}
P1 = {"tweedie": 1.3, "huber": 0.7}
# labels inside each loss's domain, margins over a range where the loss is smooth
LABELS = {"logloss": (0.0, 1.0), "gamma": (0.4, 3.0), "poisson": (0.0, 2.0, 5.0),
          "tweedie": (0.0, 2.0, 5.0)}
SCALAR_LOSSES = [name for name in LOSS_CODES if name != "softmax"]


def _objective(loss: str, n_classes: int = 1) -> Objective:
    return Objective(loss, loss, "identity", n_classes, PARAMS.get(loss, {}))


def _rows(loss: str, rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(LABELS.get(loss, (-1.5, 0.0, 2.0)), n).astype(np.float64)
    m = rng.uniform(-2.0, 2.0, n)
    if loss == "absolute":  # keep away from the kink at m == y
        m = np.where(np.abs(m - y) < 0.1, m + 0.3, m)
    return y, m


@pytest.mark.parametrize("loss", SCALAR_LOSSES)
def test_gradient_and_hessian_are_the_derivatives_of_the_loss(loss: str) -> None:
    obj = _objective(loss)
    y, m = _rows(loss, np.random.default_rng(LOSS_CODES[loss]))
    code, p1, eps = LOSS_CODES[loss], P1.get(loss, 0.0), 1e-5
    gh = np.array([losses.grad_hess_row(code, yr, mr, p1) for yr, mr in zip(y, m, strict=True)])
    g_num = (obj.row_loss(y, m + eps) - obj.row_loss(y, m - eps)) / (2 * eps)
    np.testing.assert_allclose(gh[:, 0], g_num, rtol=1e-6, atol=1e-7)
    if loss == "absolute":  # a unit hessian: Newton becomes a damped gradient step
        np.testing.assert_array_equal(gh[:, 1], 1.0)
        return
    g_plus = [losses.grad_hess_row(code, yr, mr + eps, p1)[0] for yr, mr in zip(y, m, strict=True)]
    g_minus = [losses.grad_hess_row(code, yr, mr - eps, p1)[0]
               for yr, mr in zip(y, m, strict=True)]
    h_num = (np.array(g_plus) - np.array(g_minus)) / (2 * eps)
    np.testing.assert_allclose(gh[:, 1], np.maximum(h_num, losses.MIN_HESS), rtol=1e-6, atol=1e-8)


def test_softmax_gradient_and_hessian_are_the_derivatives_of_the_loss() -> None:
    rng = np.random.default_rng(3)
    k, n, eps = 4, 30, 1e-5
    obj = _objective("softmax", k)
    y = rng.integers(0, k, n).astype(np.float64)
    m = rng.normal(0.0, 1.5, (n, k))
    for c in range(k):
        gh = np.array([losses.softmax_grad_hess(m[r], c, y[r]) for r in range(n)])
        step = np.zeros(k)
        step[c] = eps
        g_num = (obj.row_loss(y, m + step) - obj.row_loss(y, m - step)) / (2 * eps)
        np.testing.assert_allclose(gh[:, 0], g_num, rtol=1e-6, atol=1e-8)
        p = np.exp(m[:, c]) / np.exp(m).sum(axis=1)
        np.testing.assert_allclose(gh[:, 1], p * (1 - p), rtol=1e-12)


@pytest.mark.parametrize("loss", list(LOSS_CODES))
def test_compiled_cpu_kernel_runs_the_shared_definition(loss: str) -> None:
    rng = np.random.default_rng(11)
    k = 3 if loss == "softmax" else 1
    code, p1 = LOSS_CODES[loss], P1.get(loss, 0.0)
    if loss == "softmax":
        y = rng.integers(0, k, 25).astype(np.float64)
        margin = rng.normal(0.0, 1.0, (25, k))
    else:
        y, m = _rows(loss, rng, 25)
        margin = m[:, None].copy()
    g, h = np.empty_like(margin), np.empty_like(margin)
    stats.grad_hess(code, y, margin, p1, g, h)
    for r in range(len(y)):
        for c in range(k):
            want = (losses.softmax_grad_hess(margin[r], c, y[r]) if code == LOSS_SOFTMAX
                    else losses.grad_hess_row(code, y[r], margin[r, 0], p1))
            np.testing.assert_allclose((g[r, c], h[r, c]), want, rtol=1e-14, atol=1e-300)


def test_steps_are_clamped_newton_steps() -> None:
    # leaf: -(G + l2 (v - prior)) / (H + l2), within +-max_step
    assert losses.leaf_step(0.2, 0.5, 1.0, 0.5, 0.1, 1.0, 10.0) == pytest.approx(
        -(0.2 + 0.1 * 0.5) / (0.5 + 0.1 + losses.MIN_HESS), rel=1e-15)
    assert losses.leaf_step(-5.0, 1e-3, 0.0, 0.0, 0.0, 1.0, 0.7) == 0.7
    assert losses.base_step(3.0, 0.0, 1.0, 0.25) == -0.25
    assert losses.base_step(0.3, 2.0, 0.5, 1.0) == pytest.approx(-0.075, rel=1e-15)
