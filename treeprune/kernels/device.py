"""Where kernels run: choosing ``"cpu"``, ``"cuda"`` or ``"auto"``, and the one routing rule
that both devices compile (:func:`go_right`)."""

from __future__ import annotations

import logging

import numpy as np

from .._rules import (
    FLAG_CATEGORICAL,
    FLAG_DEFAULT_LEFT,
    FLAG_EXACT_LE,
    FLAG_MISSING_NAN,
    FLAG_MISSING_ZERO,
    LIGHTGBM_ZERO_THRESHOLD,
    RULE_XGBOOST,
    XGBOOST_MAX_CATEGORY,
)
from ..errors import DeviceError

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    """True when numba.cuda is importable and finds a device (or the simulator is on)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any driver failure means "no GPU here"
        return False


def resolve_device(device: str) -> str:
    """Turn a device request into ``"cpu"`` or ``"cuda"``; raise when CUDA is asked but absent."""
    if device not in ("cpu", "cuda", "auto"):
        raise DeviceError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(
            "device='cuda' but no CUDA device was found (numba.cuda.is_available() is False); "
            "install treeprune[gpu] on a machine with an NVIDIA GPU, or use device='cpu'"
        )
    log.debug("device='auto': no CUDA device found, refitting on the CPU")
    return "cpu"


def go_right(x, thr, flags, cat, cat_bounds, cat_words, rule):
    """Whether the feature value ``x`` goes to the right child of a split, in the full rule of
    the source library (``rule``): categorical splits and LightGBM's missing types included.

    Plain Python with no calls to other jitted functions, so that each device compiles this one
    definition: :mod:`.traverse` with ``njit`` (the slow path of the CPU kernels) and
    :mod:`.cuda_refit` as a CUDA device function. ``flags`` are the ``FLAG_*`` bits of
    :mod:`treeprune._rules`; ``cat`` indexes ``cat_bounds`` into the bitset words ``cat_words``.

    * XGBoost: ``x`` and ``thr`` float32; left iff ``x < thr``; NaN follows default_left.
      Categorical: a code < 0 or >= 2**24 or beyond the bitset goes left, a code in the bitset
      right.
    * LightGBM: ``|x| <= float32(1e-35)`` is 0.0 (as its row reader makes it); NaN is 0.0 unless
      the missing type is NaN; missing type Zero sends 0.0 and NaN sends NaN to default_left;
      otherwise left iff ``x <= threshold``: ``thr`` is the model's threshold with
      ``FLAG_EXACT_LE``, else the next double above it (``x < thr``). Categorical: NaN, a value
      outside int32 or negative after truncation toward zero goes right; a code in the bitset
      goes left, any other code right.
    """
    if rule == RULE_XGBOOST:
        if x != x:
            return (flags & FLAG_DEFAULT_LEFT) == 0
        if (flags & FLAG_CATEGORICAL) == 0:
            return not (x < thr)
        if x < 0 or x >= XGBOOST_MAX_CATEGORY:
            return False
        code = int(x)
    else:
        if abs(x) <= LIGHTGBM_ZERO_THRESHOLD:
            x = 0.0
        if (flags & FLAG_CATEGORICAL) == 0:
            if x != x:
                if flags & FLAG_MISSING_NAN:
                    return (flags & FLAG_DEFAULT_LEFT) == 0
                x = 0.0
            if (flags & FLAG_MISSING_ZERO) and x == 0.0:
                return (flags & FLAG_DEFAULT_LEFT) == 0
            if flags & FLAG_EXACT_LE:
                return not (x <= thr)
            return not (x < thr)
        if x != x or x <= -2147483649.0 or x >= 2147483648.0:
            return True
        code = int(x)  # truncation toward zero, as static_cast<int>
        if code < 0:
            return True
    word = cat_bounds[cat] + (code >> 5)
    hit = word < cat_bounds[cat + 1] and \
        (cat_words[word] >> np.uint32(code & 31)) & np.uint32(1) == np.uint32(1)
    # XGBoost sends the categories in the bitset right, LightGBM left
    return hit if rule == RULE_XGBOOST else not hit


__all__ = ["cuda_available", "go_right", "resolve_device"]
