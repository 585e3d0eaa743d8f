"""Version-true scores for XGBoost files: read each file as the release that wrote it scored it.

An XGBoost model file records the release that wrote it (``version`` in JSON/UBJ, ``major.minor``
in the binary header, nothing before 1.0). Reading a file with a newer release can silently change
its scores; treeprune instead reproduces the writing release, and records what it compensated so
that ``Ensemble.summary()`` can show it. The writer then stores a ``base_score`` that today's
XGBoost turns into the same starting margin (and stamps today's version on the file).

The rules, each checked against the old releases' own predictions (``tests/fixtures/legacy``):

* Binary files from before 1.0 store ``base_score`` already turned into a margin (XGBoost 1.x
  undid this on load); the stored value is the starting margin, for every objective.
* ``binary:logitraw``: up to 1.3.0 the margin was ``logit(base_score)`` (like
  ``binary:logistic``); from 1.3.1 on it is ``base_score`` itself. A 1.2.1 model read by 3.x
  therefore scores ``0.5`` higher for the default ``base_score=0.5``. The binary format records
  only ``major.minor``, so a 1.3 binary file is read with the 1.3.1+ rule and the summary says so.
* Everything else (``binary:logistic``/``reg:logistic`` logit, ``count:poisson``/``reg:gamma``/
  ``reg:tweedie`` log, identity for squared error and the ``multi:*`` objectives, float32
  accumulation, ``<`` splits with ``default_left`` for missing values) is the same from 0.90 to
  3.x.
"""

from __future__ import annotations

import numpy as np

from ..._rules import XGBOOST_LOGITRAW_IDENTITY_SINCE, XGBOOST_MODERN_JSON_SINCE
from ...ensemble import Ensemble
from ...errors import ConversionError, ModelFormatError
from .base_score import _forward, margin_to_base_score, parse_base_score


def _version_of(ens: Ensemble) -> tuple[int, ...] | None:
    version = ens.source_meta.get("xgboost_version")
    if isinstance(version, tuple) and version:
        return version
    return None


def _logit(p: np.float32) -> np.float32:
    return _forward("binary:logistic", p)


def _label(version: tuple[int, ...] | None, encoding: str) -> str:
    if version is None:
        return "XGBoost (version not recorded)"
    if encoding == "binary":
        return "XGBoost < 1.0" if version[0] == 0 else f"XGBoost {version[0]}.{version[1]}"
    return "XGBoost " + ".".join(str(v) for v in version)


def apply(ens: Ensemble, encoding: str, stored_margin: np.float32 | None = None) -> Ensemble:
    """``ens`` (read with today's rules) rescored as the release that wrote the file scored it.

    Parameters
    ----------
    ens : Ensemble
        The ensemble as the XGBoost reader built it (today's rules); its ``source_meta`` holds
        the file's ``version`` and its ``base_score`` text.
    encoding : {"JSON", "UBJSON", "binary"}
        The file's encoding (a binary file records only ``major.minor``).
    stored_margin : numpy.float32, optional
        For binary files from before 1.0: the raw ``base_score`` field, which is a margin.

    Returns
    -------
    Ensemble
        A new ensemble with the version-true base margin and ``source_meta`` entries
        ``written_by``, ``written_encoding`` and ``semantic_notes``.
    """
    version = _version_of(ens)
    objective = ens.objective.name
    margin = np.asarray(ens.base_margin, dtype=np.float64).copy()
    today = margin.copy()
    notes: list[str] = []
    if encoding == "binary" and version is not None and version[0] == 0:
        if stored_margin is None or not np.isfinite(stored_margin):
            raise ModelFormatError(f"XGBoost binary model: base margin {stored_margin!r} is not a "
                                   "finite number; the file is damaged")
        margin[:] = float(np.float32(stored_margin))
        notes.append(f"base_score stored as a margin ({float(np.float32(stored_margin)):.9g}), "
                     "as XGBoost < 1.0 did")
    elif objective == "binary:logitraw" and version is not None:
        old = version < XGBOOST_LOGITRAW_IDENTITY_SINCE if encoding != "binary" else version < (1, 3)
        if old:
            raw = ens.source_meta.get("xgboost_base_score")
            p = parse_base_score(raw, 1)[0]
            m = _logit(np.float32(p))
            if not np.isfinite(m):
                raise ModelFormatError(f"XGBoost model: base_score {raw!r} is outside (0, 1), "
                                       f"which {_label(version, encoding)} refused for "
                                       "binary:logitraw")
            margin[:] = float(m)
            notes.append(f"binary:logitraw base margin logit({float(p):.9g}) = {float(m):.9g} "
                         f"as {_label(version, encoding)} scored it (XGBoost >= 1.3.1 would "
                         f"start from {float(p):.9g})")
        elif encoding == "binary" and version[:2] == (1, 3):
            notes.append("binary:logitraw from XGBoost 1.3: read with the 1.3.1+ rule (margin "
                         "starts at base_score); a file written by 1.3.0 scored logit(base_score)")
    compensated = not np.array_equal(margin.astype(np.float32), today.astype(np.float32))
    meta = dict(ens.source_meta)
    meta["written_by"] = _label(version, encoding)
    meta["written_encoding"] = encoding
    meta["semantic_notes"] = tuple(notes)
    if compensated or encoding == "binary" or (version is not None and
                                               version < XGBOOST_MODERN_JSON_SINCE):
        # what treeprune writes follows today's rules and layout: do not claim that the old
        # release wrote it (the writer stamps the installed version)
        meta["xgboost_version"] = None
    return ens.replace(base_margin=margin, source_meta=meta)


def placeholder_base_score(objective: str, stored_margin: np.float32) -> str:
    """A ``base_score`` text valid for today's rules, for a pre-1.0 binary file's stored margin.

    The JSON reader needs a valid ``base_score``; :func:`apply` then sets the exact margin.
    """
    from .write import _format_float  # write imports nothing from here; keep the cycle out

    if not np.isfinite(stored_margin):
        raise ModelFormatError(f"XGBoost binary model: base margin {float(stored_margin)!r} is "
                               "not a finite number; the file is damaged")
    name = "reg:squarederror" if objective == "reg:linear" else objective
    try:
        score, _ = margin_to_base_score(name, float(stored_margin))
    except ConversionError:
        raise ModelFormatError(f"XGBoost binary model: base margin {float(stored_margin)!r} "
                               f"cannot start a {objective} model; the file is damaged") from None
    return _format_float(score)


__all__ = ["apply", "placeholder_base_score"]
