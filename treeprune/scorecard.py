"""Points scaling of a binary model's margin (PDO / base score / base odds) and points tables.

Convention (the usual one in credit scoring):

* odds are **good:bad** odds; ``base_odds=50`` means 50 goods per bad at ``base_score``;
* points increase as risk decreases: ``score = offset + factor * ln(odds_good_bad)`` with
  ``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``;
* the model's margin is the log-odds of **bad** (``y = 1`` = default), so
  ``ln(odds_good_bad) = -margin`` and ``score = offset - factor * margin``.

Hence the score is ``base_score`` where the good:bad odds are ``base_odds`` and every doubling of
the odds adds ``pdo`` points.

For additive models (every tree a stump or a single leaf) :meth:`Scorecard.points_table` turns
the ensemble into the classic scorecard: per feature, a list of intervals and the points each
interval earns, plus a row of base points; :func:`points_table_predict` scores rows with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import logit

from ._rules import LIGHTGBM_ZERO_THRESHOLD, MISSING_NONE, MISSING_ZERO
from .errors import DataError, TreePruneError, UnsupportedModelError

if TYPE_CHECKING:  # pragma: no cover
    from .ensemble import Ensemble

_ODDS_CONVENTION = "good:bad"

#: Columns of :meth:`Scorecard.points_table`, in order.
POINTS_TABLE_COLUMNS = (
    "feature",
    "feature_index",
    "kind",
    "interval",
    "lower",
    "upper",
    "lower_closed",
    "upper_closed",
    "includes_missing",
    "points",
)


@dataclass(frozen=True)
class Scorecard:
    """Scaling from margin (log-odds of bad) to scorecard points.

    Parameters
    ----------
    pdo : float, default 20.0
        Points to double the odds: doubling the good:bad odds adds ``pdo`` points. Must be > 0.
    base_score : float, default 600.0
        Score at the base odds.
    base_odds : float, default 50.0
        Good:bad odds at ``base_score`` (50 means 50 goods per bad). Must be > 0.
    rounding : None, int or 'integer', default None
        Applied to every final score: None keeps it unrounded, an int rounds to that many
        decimals, 'integer' rounds to whole points. numpy's rounding (half to even) is used; the
        result stays float.

    Raises
    ------
    TreePruneError
        Non-positive or non-finite ``pdo``/``base_odds``, a non-finite ``base_score``, or an
        invalid ``rounding``.

    Examples
    --------
    >>> sc = Scorecard(pdo=20, base_score=600, base_odds=50)
    >>> round(sc.score_from_margin(-math.log(50)), 9)   # good:bad odds 50 -> 600
    600.0
    >>> round(sc.score_from_margin(-math.log(100)), 9)  # odds doubled -> +20 points
    620.0
    """

    pdo: float = 20.0
    base_score: float = 600.0
    base_odds: float = 50.0
    rounding: int | str | None = None

    def __post_init__(self) -> None:
        for name in ("pdo", "base_score", "base_odds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise TreePruneError(f"Scorecard {name} must be a number; got {value!r}")
            if not math.isfinite(float(value)):
                raise TreePruneError(f"Scorecard {name} must be finite; got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.pdo <= 0:
            raise TreePruneError(
                f"Scorecard pdo must be > 0 (points to double the odds); got {self.pdo!r}"
            )
        if self.base_odds <= 0:
            raise TreePruneError(
                f"Scorecard base_odds must be > 0 (good:bad odds); got {self.base_odds!r}"
            )
        r = self.rounding
        if r is None or r == "integer":
            return
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
            raise TreePruneError(
                f"Scorecard rounding must be None, 'integer' or a number of decimals >= 0; "
                f"got {r!r}"
            )
        object.__setattr__(self, "rounding", int(r))

    # -- scaling --------------------------------------------------------------------------------
    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """Score at good:bad odds 1: ``base_score - factor * ln(base_odds)``."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def round(self, score: Any) -> Any:
        """Apply :attr:`rounding` to ``score`` (array or scalar)."""
        if self.rounding is None:
            return score
        decimals = 0 if self.rounding == "integer" else int(self.rounding)
        return np.round(score, decimals)

    def score_from_margin(self, margin: Any) -> Any:
        """Points for a margin (log-odds of bad): ``offset - factor * margin``, then rounded.

        Parameters
        ----------
        margin : float or array-like
            Raw model output (``Ensemble.predict(X, output='margin')``).

        Returns
        -------
        float or numpy.ndarray
            A float for a scalar input, otherwise an array of the input's shape.
        """
        m = np.asarray(margin, dtype=np.float64)
        out = self.round(self.offset - self.factor * m)
        return float(out) if np.ndim(out) == 0 else out

    def score_from_probability(self, p: Any) -> Any:
        """Points for a probability of bad: ``score_from_margin(logit(p))``.

        ``p = 0`` gives ``+inf`` and ``p = 1`` gives ``-inf``.

        Raises
        ------
        DataError
            A probability outside [0, 1] or NaN.
        """
        prob = np.asarray(p, dtype=np.float64)
        if np.isnan(prob).any() or (prob < 0).any() or (prob > 1).any():
            raise DataError("probabilities must lie in [0, 1] (and not be NaN)")
        with np.errstate(divide="ignore"):
            return self.score_from_margin(logit(prob))

    def margin_from_score(self, score: Any) -> Any:
        """The margin (log-odds of bad) for a score: ``(offset - score) / factor``.

        Exact inverse of :meth:`score_from_margin` when ``rounding`` is None; with rounding it
        returns the margin of the rounded score.
        """
        s = np.asarray(score, dtype=np.float64)
        out = (self.offset - s) / self.factor
        return float(out) if np.ndim(out) == 0 else out

    def probability_from_score(self, score: Any) -> Any:
        """The probability of bad for a score (sigmoid of :meth:`margin_from_score`)."""
        m = np.asarray(self.margin_from_score(score), dtype=np.float64)
        out = 1.0 / (1.0 + np.exp(-m))
        return float(out) if np.ndim(out) == 0 else out

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict, for storing with the model."""
        return {
            "pdo": self.pdo,
            "base_score": self.base_score,
            "base_odds": self.base_odds,
            "rounding": self.rounding,
            "odds": _ODDS_CONVENTION,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        """Rebuild a scorecard written by :meth:`to_dict`.

        Raises
        ------
        TreePruneError
            Unknown keys, a different odds convention, or invalid values.
        """
        if not isinstance(data, dict):
            raise TreePruneError(f"Scorecard.from_dict needs a dict; got {type(data).__name__}")
        known = {"pdo", "base_score", "base_odds", "rounding", "odds"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TreePruneError(f"unknown Scorecard keys {unknown}; expected {sorted(known)}")
        odds = data.get("odds", _ODDS_CONVENTION)
        if odds != _ODDS_CONVENTION:
            raise TreePruneError(
                f"Scorecard odds convention {odds!r} is not supported; treeprune uses "
                f"{_ODDS_CONVENTION!r} odds"
            )
        return cls(**{k: v for k, v in data.items() if k != "odds"})

    # -- points tables --------------------------------------------------------------------------
    def points_table(self, ensemble: Ensemble) -> pd.DataFrame:
        """The classic scorecard of an additive binary model: points per feature interval.

        Every tree must be a stump (one split) or a single leaf. Per feature, the thresholds of all
        stumps on it cut the axis into intervals; the points of an interval are the sum over those
        stumps of ``-factor * tree_weight * leaf_value`` of the side the interval goes to. Single
        leaves, the base margin and the intercept LightGBM folds into its first tree go into one
        ``base`` row: ``offset - factor * (base_margin + constants + intercept)``. The points of a
        row of data are the base points plus, per feature, the points of the one row it falls
        into, which equals :meth:`score_from_margin` of its margin (up to float rounding).

        Interval rules follow the source exactly:

        * XGBoost: a stump goes left iff ``float32(x) < threshold``, so intervals are
          ``lower <= float32(x) < upper`` (closed below); the bounds apply to ``x`` rounded to
          float32. NaN goes to each stump's default side.
        * LightGBM: left iff ``x <= threshold``, so intervals are ``lower < x <= upper`` (closed
          above). As LightGBM predicts from dense arrays (numpy, pandas), every ``|x| <= z``
          (``z`` = float32(1e-35), its ``kZeroThreshold``) is read as 0.0. Missing type None: NaN
          is treated as 0.0; Zero: NaN and 0.0 go to the default side; NaN: NaN goes to the
          default side.

        The outer intervals are open-ended and include ``-inf``/``+inf``. Where missing values
        route like one interval, that row has ``includes_missing=True``; otherwise a separate
        ``missing`` row is added. For LightGBM, a ``zero`` row ``[-z, z]`` is added
        (and takes precedence over the intervals) when zero does not route like the interval it
        lies in, or when a threshold cuts the zero range (LightGBM often puts thresholds at
        ``+-z``).

        Parameters
        ----------
        ensemble : Ensemble
            A binary (one-group) ensemble of depth at most 1.

        Returns
        -------
        pandas.DataFrame
            Columns ``feature``, ``feature_index``, ``kind`` ('base', 'interval', 'zero',
            'missing'), ``interval`` (text), ``lower``, ``upper``, ``lower_closed``,
            ``upper_closed``, ``includes_missing``, ``points``; first the base row, then the
            features in index order. With ``rounding`` set, each row's points are rounded (the
            row sums then can differ from the rounded score by the accumulated rounding). The
            source and the scorecard are in ``table.attrs``.

        Raises
        ------
        UnsupportedModelError
            Not a binary one-group model, a tree deeper than 1, a categorical split, or an
            unknown source.
        """
        ens = ensemble
        if not ens.objective.is_binary or ens.n_groups != 1:
            raise UnsupportedModelError(
                f"points tables need a binary model with one output; this model is "
                f"{ens.objective.name} with {ens.n_groups} output group(s)"
            )
        if ens.source not in ("xgboost", "lightgbm"):
            raise UnsupportedModelError(f"unknown model source {ens.source!r} for a points table")
        depths = ens.tree_depths()
        if len(depths) and depths.max() > 1:
            deep = int(np.count_nonzero(depths > 1))
            raise UnsupportedModelError(
                f"a points table needs an additive model (every tree a stump of depth <= 1); "
                f"this ensemble has {deep} of {ens.n_trees} trees deeper than 1 (max depth "
                f"{int(depths.max())}). Prune it to depth 1 first (cap the depth at 1), or "
                "retrain with max_depth=1"
            )
        split_cat = (ens.left >= 0) & (ens.cat_index >= 0)
        if split_cat.any():
            raise UnsupportedModelError(
                f"points tables do not support categorical splits; this ensemble has "
                f"{int(np.count_nonzero(split_cat))} (on features "
                f"{sorted({_name(ens, int(f)) for f in ens.feature[split_cat]})})"
            )

        base = float(np.sum(ens.base_margin))
        intercept = float(ens.folded_intercept[0]) if len(ens.folded_intercept) else 0.0
        # the intercept is folded into the leaves of the group's first tree: move it to the base
        first_tree = 0 if ens.n_trees else -1
        stumps: dict[int, list[tuple[float, float, float, bool, int]]] = {}
        for t in range(ens.n_trees):
            sl = ens.tree_slice(t)
            w = float(ens.tree_weight[t])
            shift = intercept if t == first_tree else 0.0
            base += w * shift
            left = ens.left[sl]
            value = ens.value[sl]
            if left[0] < 0:
                base += w * (float(value[0]) - shift)
                continue
            li, ri = int(left[0]), int(ens.right[sl][0])
            f = int(ens.feature[sl][0])
            stumps.setdefault(f, []).append((
                float(ens.threshold[sl][0]),
                w * (float(value[li]) - shift),
                w * (float(value[ri]) - shift),
                bool(ens.default_left[sl][0]),
                int(ens.missing_type[sl][0]),
            ))

        rows: list[dict[str, Any]] = [{
            "feature": "(base)", "feature_index": -1, "kind": "base", "interval": "",
            "lower": np.nan, "upper": np.nan, "lower_closed": False, "upper_closed": False,
            "includes_missing": False, "points": self.offset - self.factor * base,
        }]
        for f in sorted(stumps):
            rows += self._feature_rows(ens, f, stumps[f])
        table = pd.DataFrame(rows, columns=list(POINTS_TABLE_COLUMNS))
        if self.rounding is not None:
            table["points"] = self.round(table["points"].to_numpy())
        table.attrs["source"] = ens.source
        table.attrs["scorecard"] = self.to_dict()
        return table

    def _feature_rows(
        self, ens: Ensemble, f: int, stumps: list[tuple[float, float, float, bool, int]]
    ) -> list[dict[str, Any]]:
        xgb = ens.source == "xgboost"
        thr = np.array([s[0] for s in stumps])
        lval = np.array([s[1] for s in stumps])
        rval = np.array([s[2] for s in stumps])
        dleft = np.array([s[3] for s in stumps])
        mtype = np.array([s[4] for s in stumps])
        cuts = np.unique(thr)
        lowers = np.concatenate([[-np.inf], cuts])
        uppers = np.concatenate([cuts, [np.inf]])
        # within an interval every stump goes left iff its threshold >= the interval's upper bound
        patterns = thr[None, :] >= uppers[:, None]  # (n_intervals, n_stumps)

        def points(goes_left: np.ndarray) -> float:
            return float(-self.factor * np.sum(np.where(goes_left, lval, rval)))

        def pattern_row(goes_left: np.ndarray) -> int:
            hit = np.flatnonzero((patterns == goes_left[None, :]).all(axis=1))
            return int(hit[0]) if len(hit) else -1

        name = _name(ens, f)
        rows = []
        for i in range(len(lowers)):
            lo, hi = lowers[i], uppers[i]
            lo_s, hi_s = _bound_text(lo, xgb), _bound_text(hi, xgb)
            if xgb:
                lc, uc = True, False
                text = f"{'(' if lo == -np.inf else '['}{lo_s}, {hi_s})"
            else:
                lc, uc = False, True
                text = f"({lo_s}, {hi_s}{')' if hi == np.inf else ']'}"
            rows.append({
                "feature": name, "feature_index": f, "kind": "interval", "interval": text,
                "lower": float(lo), "upper": float(hi), "lower_closed": lc, "upper_closed": uc,
                "includes_missing": False, "points": points(patterns[i]),
            })

        # special values, routed stump by stump: NaN, and for LightGBM the zero range [-z, z]:
        # LightGBM reads every |x| <= z of a dense input as exactly 0.0, which a stump of missing
        # type Zero sends to its default side and any other compares as 0.0 <= threshold. One
        # zero row covers the range unless it lies in one interval and routes like it.
        zero_rows: list[tuple[dict[str, Any], np.ndarray]] = []
        if xgb:
            nan_left = dleft.copy()
        else:
            nan_left = np.where(mtype == MISSING_NONE, 0.0 <= thr, dleft)
            zero_left = np.where(mtype == MISSING_ZERO, dleft, 0.0 <= thr)
            z = LIGHTGBM_ZERO_THRESHOLD
            at_zero = int(np.searchsorted(cuts, 0.0, side="left"))  # interval holding 0.0
            if np.any((cuts >= -z) & (cuts < z)) or not (patterns[at_zero] == zero_left).all():
                zero_rows.append(({
                    "feature": name, "feature_index": f, "kind": "zero",
                    "interval": f"zero [{_bound_text(-z, False)}, {_bound_text(z, False)}]",
                    "lower": -z, "upper": z, "lower_closed": True, "upper_closed": True,
                    "includes_missing": False, "points": points(zero_left),
                }, zero_left))
        # NaN joins the zero row it routes like (missing type Zero: "zero or missing"), else the
        # interval it routes like, else a row of its own
        home = next((row for row, goes_left in zero_rows if (goes_left == nan_left).all()), None)
        if home is None:
            target = pattern_row(nan_left)
            if target >= 0:
                home = rows[target]
        rows += [row for row, _ in zero_rows]
        if home is not None:
            home["includes_missing"] = True
        else:
            rows.append({
                "feature": name, "feature_index": f, "kind": "missing", "interval": "missing",
                "lower": np.nan, "upper": np.nan, "lower_closed": False, "upper_closed": False,
                "includes_missing": True, "points": points(nan_left),
            })
        return rows

    def points_table_predict(self, table: pd.DataFrame, X: Any) -> np.ndarray:
        """Row sums of points from a :meth:`points_table` (see :func:`points_table_predict`)."""
        return points_table_predict(table, X)


def _bound_text(v: float, xgb: bool) -> str:
    if not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    # shortest text that reads back as the bound: float32 for XGBoost, float64 for LightGBM
    return str(np.float32(v)) if xgb else repr(float(v))


def _name(ens: Ensemble, f: int) -> str:
    return ens.feature_names[f] if ens.feature_names and f < len(ens.feature_names) else f"f{f}"


def _column(X: Any, name: str, index: int) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        if name in X.columns:
            col = X[name]
        elif isinstance(X.columns, pd.RangeIndex) or all(
            isinstance(c, (int, np.integer)) for c in X.columns
        ):
            if index >= X.shape[1]:
                raise DataError(f"X has {X.shape[1]} columns; the points table uses column {index}")
            col = X.iloc[:, index]
        else:
            raise DataError(f"X has no column {name!r} that the points table uses")
        try:
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(f"column {name!r} must be numeric: {exc}") from exc
    arr = X
    if index >= arr.shape[1]:
        raise DataError(f"X has {arr.shape[1]} columns; the points table uses column {index}")
    return arr[:, index]


def points_table_predict(table: pd.DataFrame, X: Any) -> np.ndarray:
    """Score rows with a points table: base points plus, per feature, the points of its row.

    Rows are matched exactly as the source model routes them: intervals by their bounds and
    ``lower_closed``/``upper_closed`` flags (infinite outer bounds include the infinities), values
    rounded to float32 first for XGBoost tables (``table.attrs['source']``), NaN to the row with
    ``includes_missing``; ``zero`` rows (LightGBM missing type Zero) take precedence over the
    intervals they lie in.

    Parameters
    ----------
    table : pandas.DataFrame
        From :meth:`Scorecard.points_table`.
    X : array-like or pandas.DataFrame of shape (n, n_features)
        A DataFrame is matched by feature name (or by position if its columns are integers).

    Returns
    -------
    numpy.ndarray of shape (n,)
    """
    missing = set(POINTS_TABLE_COLUMNS) - set(table.columns)
    if missing:
        raise DataError(f"not a points table: missing columns {sorted(missing)}")
    source = table.attrs.get("source")
    if source is None:  # attrs lost: the closure of the intervals tells the rule
        intervals = table[table["kind"] == "interval"]
        source = "xgboost" if bool(intervals["lower_closed"].all()) and len(intervals) else (
            "lightgbm")
    if not isinstance(X, pd.DataFrame):
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"X must be numeric: {exc}") from exc
        if X.ndim != 2:
            raise DataError(f"X must be two-dimensional; got shape {X.shape}")
    n = len(X)
    total = np.full(n, float(table.loc[table["kind"] == "base", "points"].sum()))
    features = table[table["kind"] != "base"]
    for f, rows in features.groupby("feature_index", sort=False):
        x = _column(X, str(rows["feature"].iloc[0]), int(f))
        if source == "xgboost":
            with np.errstate(over="ignore"):
                x = x.astype(np.float32).astype(np.float64)
        isnan = np.isnan(x)
        contrib = np.zeros(n)
        assigned = np.zeros(n, dtype=np.int64)
        # zero rows take precedence over the intervals they lie in
        ordered = sorted(rows.itertuples(index=False), key=lambda r: r.kind != "zero")
        in_zero = np.zeros(n, dtype=bool)
        for r in ordered:
            if r.kind in ("interval", "zero"):
                lo_ok = (x >= r.lower) if (r.lower_closed or r.lower == -np.inf) else (x > r.lower)
                hi_ok = (x <= r.upper) if (r.upper_closed or r.upper == np.inf) else (x < r.upper)
                hit = lo_ok & hi_ok & ~isnan
                if r.kind == "zero":
                    in_zero |= hit
                else:
                    hit &= ~in_zero
            else:
                hit = np.zeros(n, dtype=bool)
            if r.includes_missing:
                hit |= isnan
            contrib[hit] += r.points
            assigned += hit
        if (assigned != 1).any():
            bad = int(np.flatnonzero(assigned != 1)[0])
            raise DataError(
                f"points table rows of feature {rows['feature'].iloc[0]!r} do not cover value "
                f"{x[bad]!r} exactly once (row {bad}); the table was edited or is not a points table"
            )
        total += contrib
    return total


__all__ = ["Scorecard", "points_table_predict"]
