"""XGBoost's ``base_score``: parsing it, its starting margin, and the way back.

``base_score`` is stored on the response scale: the margin starts at ``float32(-log(1/p - 1))``
(computed as ``-logf(1.0f/p - 1.0f)``, after clamping ``p`` to ``[1e-6, 1 - 1e-6]``; ``p`` outside
``[0, 1]`` is an error) for ``binary:logistic`` and ``reg:logistic``, ``logf(p)`` for
``count:poisson``, ``reg:gamma`` and ``reg:tweedie``, and ``p`` itself otherwise (including
``binary:logitraw`` and the per-class ``multi:*`` vectors).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ...errors import ConversionError, ModelFormatError

#: What is not a digit of a number's mantissa (sign, decimal point, spaces).
_MANTISSA_DIGITS = re.compile(r"[^0-9]")
_LOGIT_OBJECTIVES = ("binary:logistic", "reg:logistic")
_LOG_OBJECTIVES = ("count:poisson", "reg:gamma", "reg:tweedie")
_LOGIT_EPS = np.float32(1e-6)
_LOGIT_ONE_MINUS_EPS = np.float32(np.float32(1.0) - np.float32(1e-6))


def parse_base_score(text: Any, n_groups: int) -> np.ndarray:
    """``base_score`` of any XGBoost version ("5E-1", "[5E-1]", "[a,b,c]", a number) as float32."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        values = [float(text)]
    elif isinstance(text, str):
        s = text.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        try:
            values = [float(v) for v in s.split(",") if v.strip()]
        except ValueError:
            raise ModelFormatError(f"XGBoost model: cannot parse base_score {text!r}") from None
        if any(len(_MANTISSA_DIGITS.sub("", v.split("e")[0].split("E")[0]).lstrip("0")) > 18
               for v in s.split(",")):
            # XGBoost reads the digits into a 64-bit integer that wraps around (found by the
            # differential fuzzing): no writer produces such text, so it is a damaged file
            raise ModelFormatError(f"XGBoost model: base_score {text!r} has more digits than "
                                   "XGBoost reads correctly; the file is damaged")
    elif isinstance(text, (list, np.ndarray)):
        values = [float(v) for v in text]
    else:
        raise ModelFormatError(f"XGBoost model: cannot parse base_score {text!r}")
    if len(values) == 1:
        values = values * n_groups
    if len(values) != n_groups:
        raise ModelFormatError(
            f"XGBoost model: base_score has {len(values)} values for {n_groups} outputs"
        )
    return np.asarray(values, dtype=np.float32)


def base_score_to_margin(objective: str, base_score: np.ndarray) -> np.ndarray:
    """The starting margin XGBoost derives from ``base_score`` (float32 values, as float64)."""
    out = np.empty(len(base_score), dtype=np.float64)
    for i, p in enumerate(np.asarray(base_score, dtype=np.float32)):
        out[i] = float(_forward(objective, p))
    return out


def _forward(objective: str, p: np.float32) -> np.float32:
    """XGBoost's ``ProbToMargin`` in float32 (libm's correctly rounded logf emulated in double)."""
    with np.errstate(all="ignore"):
        if objective in _LOGIT_OBJECTIVES:
            # XGBoost rejects p outside [0, 1] and clamps p to [1e-6, 1 - 1e-6] (float32)
            if not 0.0 <= p <= 1.0:
                return np.float32(np.nan)
            p = np.float32(min(max(p, _LOGIT_EPS), _LOGIT_ONE_MINUS_EPS))
            q = np.float32(np.float32(1.0) / p - np.float32(1.0))
            if not q > 0 or not np.isfinite(q):
                return np.float32(np.nan)
            return np.float32(-math.log(float(q)))
        if objective in _LOG_OBJECTIVES:
            if not p > 0 or not np.isfinite(p):
                return np.float32(np.nan)
            return np.float32(math.log(float(p)))
        return np.float32(p)


def _inverse(objective: str, margin: float) -> float:
    with np.errstate(all="ignore"):
        if objective in _LOGIT_OBJECTIVES:
            return float(1.0 / (1.0 + np.exp(-margin)))
        if objective in _LOG_OBJECTIVES:
            return float(np.exp(margin))
        return float(margin)


def _valid_base_score(objective: str, p: np.float32) -> bool:
    if not np.isfinite(p):
        return False
    if objective in _LOGIT_OBJECTIVES:
        return bool(0.0 < p < 1.0)
    if objective in _LOG_OBJECTIVES:
        return bool(p > 0.0)
    return True


def margin_to_base_score(objective: str, margin: float) -> tuple[np.float32, float]:
    """A float32 ``base_score`` whose XGBoost margin is ``float32(margin)``, and the residual.

    The residual (``margin - forward(base_score)``) is 0 unless the margin cannot be reached
    exactly (for example a logistic margin so large that ``p`` rounds to 1 in float32).
    """
    target = np.float32(margin)
    p0 = np.float32(_inverse(objective, float(target)))
    if objective in _LOGIT_OBJECTIVES:
        p0 = np.float32(min(max(float(p0), float(np.nextafter(np.float32(0), np.float32(1)))),
                            float(np.nextafter(np.float32(1), np.float32(0)))))
    elif objective in _LOG_OBJECTIVES:
        p0 = np.float32(min(max(float(p0), float(np.finfo(np.float32).tiny)),
                            float(np.finfo(np.float32).max)))
    best, best_err = None, math.inf
    candidates = [p0]
    up = down = p0
    for _ in range(8):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        candidates += [up, down]
    for cand in candidates:
        if not _valid_base_score(objective, cand):
            continue
        m = _forward(objective, cand)
        if not np.isfinite(m):
            continue
        err = abs(float(m) - float(target))
        if err < best_err:
            best, best_err = cand, err
            if err == 0.0:
                break
    if best is None:
        raise ConversionError(
            f"cannot express the base margin {margin!r} as an XGBoost base_score for {objective}"
        )
    return np.float32(best), float(margin) - float(_forward(objective, best))


__all__ = ["parse_base_score", "base_score_to_margin", "margin_to_base_score"]
