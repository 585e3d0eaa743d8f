"""Per-row loss derivatives and Newton steps: one definition for the CPU and the GPU kernels.

Every function here is a plain Python function registered with Numba's ``register_jitable``: an
``@njit`` kernel (:mod:`treeprune.kernels.stats`) and a ``@cuda.jit`` kernel
(:mod:`treeprune.kernels.cuda_refit`) that call one compile it for their own target (and cache it
with themselves), and plain Python (numba's CUDA simulator) calls it as it is. So the CPU refit,
the GPU refit and tree selection take the same gradient, hessian and step for every row.

Losses are integer codes (``treeprune._rules.LOSS_*``) because Numba cannot dispatch on strings.
Gradients and hessians are those of one row's loss with respect to its margin; hessians are
floored at :data:`MIN_HESS` so that Newton steps stay finite. ``max``/``min`` are spelled out as
:func:`fmax`/:func:`fmin` (the choice on ties is theirs) because numba 0.68's built-in CUDA target
cannot compile the vararg ``max``/``min`` builtins.
"""

from __future__ import annotations

import math

from numba.extending import register_jitable

from .._rules import (
    LOSS_ABSOLUTE,
    LOSS_GAMMA,
    LOSS_LOGLOSS,
    LOSS_POISSON,
    LOSS_SQUARED,
    LOSS_TWEEDIE,
)

#: Floor on every hessian (and on the hessian sum of an intercept step).
MIN_HESS = 1e-16


@register_jitable
def fmax(a, b):
    return b if b > a else a


@register_jitable
def fmin(a, b):
    return b if b < a else a


@register_jitable
def sigmoid(m):
    if m >= 0:
        return 1.0 / (1.0 + math.exp(-m))
    e = math.exp(m)
    return e / (1.0 + e)


@register_jitable
def grad_hess_row(loss, y, m, p1):
    """Gradient and hessian of one row's loss at margin ``m`` (every loss but softmax).

    ``p1`` is the loss parameter: the variance power for Tweedie, the slope for pseudo-Huber.
    """
    if loss == LOSS_SQUARED:
        return m - y, 1.0
    if loss == LOSS_LOGLOSS:
        p = sigmoid(m)
        return p - y, fmax(p * (1.0 - p), MIN_HESS)
    if loss == LOSS_POISSON:
        e = math.exp(m)
        return e - y, fmax(e, MIN_HESS)
    if loss == LOSS_GAMMA:
        e = y * math.exp(-m)
        return 1.0 - e, fmax(e, MIN_HESS)
    if loss == LOSS_TWEEDIE:
        a = math.exp((1.0 - p1) * m)
        b = math.exp((2.0 - p1) * m)
        return -y * a + b, fmax(-y * (1.0 - p1) * a + (2.0 - p1) * b, MIN_HESS)
    if loss == LOSS_ABSOLUTE:  # a unit hessian turns Newton into a (damped) gradient step
        r = m - y
        return (1.0 if r > 0 else (-1.0 if r < 0 else 0.0)), 1.0
    # LOSS_HUBER: pseudo-Huber with slope p1
    r = m - y
    s = 1.0 + (r / p1) * (r / p1)
    q = math.sqrt(s)
    return r / q, 1.0 / (s * q)


@register_jitable
def softmax_grad_hess(row, c, label):
    """Gradient and hessian of the softmax loss with respect to the margin of class ``c``.

    ``row`` holds one row's margins of every class (a 1-D view: ``margin[r]`` on the CPU,
    ``margin[:, r]`` in the GPU's class-major layout); ``label`` is the row's class.
    """
    mx = row[0]
    for k in range(1, row.shape[0]):
        mx = fmax(mx, row[k])
    s = 0.0
    for k in range(row.shape[0]):
        s += math.exp(row[k] - mx)
    p = math.exp(row[c] - mx) / s
    return p - (1.0 if int(label) == c else 0.0), fmax(p * (1.0 - p), MIN_HESS)


@register_jitable
def clamp(d, max_step):
    """``d`` clamped to ``[-max_step, max_step]``, as XGBoost's ``max_delta_step``.

    Leaves with tiny hessian sums (rows all of one class) would otherwise take huge Newton steps
    and diverge.
    """
    return fmin(fmax(d, -max_step), max_step)


@register_jitable
def leaf_step(g, h, value, prior, l2, step, max_step):
    """Clamped Newton step of a leaf with gradient/hessian sums ``g``/``h`` and an L2 pull.

    The penalty ``l2 / 2 * (value - prior)^2`` pulls the leaf towards ``prior`` (its value before
    the refit), so that leaves few rows reach move little.
    """
    return clamp(-step * (g + l2 * (value - prior)) / (h + l2 + MIN_HESS), max_step)


@register_jitable
def base_step(g, h, step, max_step):
    """Clamped, unpenalised Newton step of an intercept with gradient/hessian sums ``g``/``h``."""
    return clamp(-step * g / fmax(h, MIN_HESS), max_step)


__all__ = [
    "MIN_HESS", "fmax", "fmin", "sigmoid", "grad_hess_row", "softmax_grad_hess", "clamp", "leaf_step",
    "base_step",
]
