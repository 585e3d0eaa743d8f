"""The ensemble as one SQL query: margin, probability and score for every row of a table.

:func:`to_sql` writes a single ``SELECT`` over a table whose columns are the model's feature
names. Each tree becomes one ``CASE WHEN`` term of the margin (nested, one level per split), and
the outer query returns three columns per row, in table order::

    margin       base margin + the sum of every tree's leaf value (the raw score)
    probability  the prediction on the response scale, as ``Ensemble.predict`` returns it:
                 1 / (1 + exp(-margin)) for a logistic objective, exp(margin) for a log link,
                 the margin itself for an identity link (regression, ``binary:logitraw``)
    score        scorecard points ``offset - factor * margin`` (binary models; NULL otherwise
                 unless a scorecard is passed explicitly)

The SQL follows the source library's decision rules exactly, with ``NULL`` standing for a missing
value (a NaN in the native libraries):

* **XGBoost** goes left iff ``float32(x) < t`` for a float32 threshold ``t``. A database compares
  the double ``x``; the rule is turned into an equivalent double comparison ``x < m`` (or
  ``x <= m``) where ``m`` is the midpoint between ``t`` and the float32 just below it: doubles
  below ``m`` round to a float32 below ``t`` and doubles above ``m`` round to ``t`` or above; ``m``
  itself rounds half to even, so it goes left exactly when the float32 below ``t`` has an even
  significand (then the comparison is ``x <= m``). ``NULL`` follows the split's default direction.
* **LightGBM** goes left iff ``x <= t`` (double) after its missing-value handling: every
  ``|x| <= kZeroThreshold`` (the float ``1e-35f``) is read as 0.0, as LightGBM's row reader does;
  missing type *None* reads ``NULL`` as 0.0; type *Zero* sends ``NULL`` and zeros the default way;
  type *NaN* sends ``NULL`` the default way. Each rule folds into one or two comparisons.
* **Categorical splits** compare a category code with an ``IN (...)`` list of the bitset's
  categories (XGBoost: in the list goes right; LightGBM: in the list goes left).

  *Levels* (the default, ``categories="levels"``): where the model stores its categories' levels
  (LightGBM's ``pandas_categorical``, XGBoost's ``cats`` in a 3.x JSON model), the table holds the
  levels themselves (``'HomeImp'``), as the data the model was trained on did, and the query maps
  each level to the model's code with one ``CASE`` per feature in a ``WITH ... AS MATERIALIZED``
  query (SQLite 3.35+, PostgreSQL 12+); the header lists the mapping. A level the model does not know goes where the native library sends it when scoring
  a pandas ``category`` column: LightGBM reads it as missing (right at every categorical split,
  like ``NULL``); XGBoost refuses such a row, so its ``margin``, ``probability`` and ``score`` are
  ``NULL``, while ``NULL`` is missing (the split's default direction). An empty string is read as
  missing, as a CSV reader does, unless it is one of the model's levels.

  *Codes* (``categories="codes"``, and features whose levels the model does not store): the table
  holds the category *codes* (the position in the model's category list) and the query truncates
  them. LightGBM's truncation (``-0.5`` is code 0, negative codes and ``NULL`` go right) is
  reproduced exactly. XGBoost casts the value to float32 before truncating; a *non-integer* value
  within float32 rounding below an integer (``2.99999999`` becomes ``3.0f``) is truncated to the
  lower code in SQL, the one case where SQL and XGBoost can differ (integer codes are exact).

Numbers are written with 17 significant digits, so every threshold and leaf value reads back as
the same double (SQLite's parser does not always round the *shortest* repr correctly; 17 digits
it does). The margin is summed in double precision; XGBoost accumulates in float32, so XGBoost
margins agree to float32 rounding (about 1e-6 relative) while routing is identical.

Dialects: ``"sqlite"`` (default) orders the rows by ``rowid`` (a rowid table, not a view or a
``WITHOUT ROWID`` table; give ``order_by`` otherwise) and needs SQLite's math functions for
``exp`` (built in since 3.35 when compiled with ``SQLITE_ENABLE_MATH_FUNCTIONS``, as Python's
``sqlite3`` and the ``sqlite3`` shell are; on other builds register one with
``connection.create_function("exp", 1, math.exp)``). ``"postgresql"`` uses ``TRUNC`` for category
codes and returns rows in no particular order unless ``order_by`` names a column.

SQLite's parser limits nesting: trees deeper than ``max_nesting`` (default 10) are written as a flat
``CASE`` with one ``WHEN`` per leaf (the conjunction of the conditions on its path), which is the
same function of the row. Numerical features' columns must be numeric (SQLite compares TEXT
above every number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._rules import LIGHTGBM_ZERO_THRESHOLD, MISSING_NAN, MISSING_NONE, MISSING_ZERO
from .ensemble import Ensemble
from .errors import ConversionError, UnsupportedModelError
from .scorecard import Scorecard

DIALECTS = ("sqlite", "postgresql")
#: What the table holds for a categorical feature: the model's levels, or its integer codes.
CATEGORY_INPUTS = ("levels", "codes")
_ALIASES = {"sqlite": "sqlite", "sqlite3": "sqlite", "postgresql": "postgresql",
            "postgres": "postgresql", "pg": "postgresql"}
#: Terms summed in one parenthesised group (bounds SQLite's expression depth: 1000).
_CHUNK = 64
_ROW_ALIAS = '"_treeprune_row"'
_MARGIN = '"margin"'
_CODED = '"_treeprune_coded"'


# ------------------------------------------------------------------------------------------------
# literals and identifiers
# ------------------------------------------------------------------------------------------------
def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded double quotes doubled)."""
    text = str(name)
    if "\x00" in text:
        raise ConversionError(f"identifier {text!r} contains a NUL character")
    return '"' + text.replace('"', '""') + '"'


def _table_identifier(table: str | Sequence[str]) -> str:
    if isinstance(table, str):
        if not table:
            raise ConversionError("table name is empty")
        return quote_identifier(table)
    parts = list(table)
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise ConversionError(f"table must be a name or a sequence of name parts; got {table!r}")
    return ".".join(quote_identifier(p) for p in parts)


def number(x: float) -> str:
    """A finite double as a SQL literal that reads back as exactly the same double.

    17 significant digits (round-trips through any correctly rounding parser, and through
    SQLite's); always with a decimal point or exponent, so the literal is REAL, not INTEGER.
    """
    v = float(x)
    if not np.isfinite(v):
        raise ConversionError(f"cannot write the non-finite number {v!r} as a SQL literal")
    if v == 0.0:
        return "0.0"  # -0.0 and 0.0 route alike (-0.0 < m and -0.0 <= t as 0.0 does)
    text = f"{v:.17g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text


def _comment(text: str) -> str:
    return "-- " + " ".join(str(text).split())


def level_literal(value: Any) -> str:
    """A category level (text or number, as the model stores it) as a SQL literal."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return number(float(value))
    text = str(value)
    if "\x00" in text:
        raise ConversionError(f"category level {text!r} contains a NUL character")
    return "'" + text.replace("'", "''") + "'"


def _usable_levels(levels: tuple[Any, ...]) -> bool:
    """Levels a CASE can match: none NaN (a NaN level can never equal a value)."""
    return bool(levels) and not any(
        isinstance(v, (float, np.floating)) and not np.isfinite(v) for v in levels)


def _code_case(column: str, levels: tuple[Any, ...], refuse_unknown: bool) -> str:
    """The model's category code of a column holding levels (see the module doc).

    NULL (and ``''`` when the levels are text and ``''`` is not one of them) is missing: NULL.
    Any other unknown value is NULL too (LightGBM reads it as missing) or, with
    ``refuse_unknown`` (XGBoost), the code -1 that makes the whole row NULL.
    """
    whens = [f"WHEN {column} IS NULL THEN NULL"]
    if any(isinstance(v, str) for v in levels) and "" not in levels:
        whens.append(f"WHEN {column} = '' THEN NULL")
    whens += [f"WHEN {column} = {level_literal(v)} THEN {code}" for code, v in enumerate(levels)]
    tail = " ELSE -1" if refuse_unknown else ""
    return f"CASE {' '.join(whens)}{tail} END"


def _mapping_comment(column: str, levels: tuple[Any, ...]) -> str:
    pairs = ", ".join(f"{level_literal(v)} -> {code}" for code, v in enumerate(levels))
    return _comment(f"{column}: {pairs}")


# ------------------------------------------------------------------------------------------------
# XGBoost's float32 comparison as a double comparison
# ------------------------------------------------------------------------------------------------
def float32_less_bound(t: float) -> tuple[float, bool] | bool:
    """The double comparison equivalent to ``float32(x) < float32(t)`` for every double ``x``.

    Returns ``(m, inclusive)``: the rule is ``x <= m`` when ``inclusive`` else ``x < m``; or a
    constant ``False`` when no value passes (``t`` is NaN or -inf).

    ``m`` is the midpoint between ``t`` and ``p``, the float32 just below it (exact in double: two
    adjacent float32 need at most 25 significant bits). A double ``x < m`` rounds to ``p`` or below,
    ``x > m`` to ``t`` or above, and ``x == m`` is a tie that rounds to whichever of ``p`` and
    ``t`` has an even significand: to ``p`` (so ``x`` goes left) exactly when ``p`` is even. Below
    the smallest float32 (``t = -FLT_MAX``) ``p`` is -2**128, the overflow point, whose tie rounds
    to -inf (even): inclusive. For ``t = +inf`` the midpoint is ``FLT_MAX`` + half an ulp, above
    which doubles round to +inf.
    """
    t32 = np.float32(t)
    if np.isnan(t32) or t32 == -np.inf:
        return False
    top = 2.0 ** 128
    t_d = top if t32 == np.inf else float(t32)
    with np.errstate(over="ignore"):
        p32 = np.nextafter(t32, np.float32(-np.inf))
    if p32 == -np.inf:
        p_d, even = -top, True
    else:
        p_d = float(p32)
        even = (int(np.array(p32, dtype=np.float32).view(np.uint32)) & 1) == 0
    m = (p_d + t_d) / 2.0
    return m, bool(even)


# ------------------------------------------------------------------------------------------------
# conditions
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cond:
    """Go-left condition of one split.

    ``expr`` is the rule for a non-NULL value and yields NULL for a NULL value (it only compares
    the column) unless it is a constant; ``null_left`` says where NULL goes.
    """

    column: str
    expr: str | bool
    null_left: bool

    def total(self) -> str:
        """A condition that is TRUE or FALSE (never NULL) for every row."""
        if self.expr is True:
            return f"{self.column} IS NOT NULL" if not self.null_left else "1 = 1"
        if self.expr is False:
            return f"{self.column} IS NULL" if self.null_left else "1 = 0"
        if self.null_left:
            return f"({self.column} IS NULL OR {self.expr})"
        return f"({self.column} IS NOT NULL AND {self.expr})"

    def case(self) -> str:
        """For ``CASE WHEN <this> THEN left ELSE right``: NULL may stand for FALSE there."""
        if isinstance(self.expr, bool) or self.null_left:
            return self.total()
        return self.expr


def _bitset_codes(words: np.ndarray) -> list[int]:
    codes = []
    for w, word in enumerate(np.asarray(words, dtype=np.uint64)):
        word = int(word)
        while word:
            low = word & -word
            codes.append(w * 32 + low.bit_length() - 1)
            word ^= low
    return codes


class _Writer:
    def __init__(self, ens: Ensemble, dialect: str, max_nesting: int | None,
                 coded: frozenset[int] = frozenset()):
        self.ens = ens
        #: features whose column already holds the model's category code (mapped from levels)
        self.coded = coded
        self.dialect = dialect
        self.max_nesting = max_nesting
        self.xgb = ens.source == "xgboost"
        names = list(ens.feature_names) or [f"f{i}" for i in range(ens.n_features)]
        if len(names) != ens.n_features:
            raise ConversionError(
                f"the model has {ens.n_features} features but {len(names)} feature names"
            )
        self.columns = [quote_identifier(n) for n in names]
        self.zero = LIGHTGBM_ZERO_THRESHOLD

    # -- values ----------------------------------------------------------------------------------
    def leaf_value(self, node: int, weight: float) -> float:
        v = float(self.ens.value[node])
        if self.xgb:  # as the XGBoost predictor: float32 leaf times float32 tree weight
            return float(np.float32(v) * np.float32(weight))
        return v * weight

    def _codes(self, col: str) -> str:
        if self.dialect == "postgresql":
            return f"TRUNC({col})"
        return f"CAST({col} AS INTEGER)"

    # -- one split -------------------------------------------------------------------------------
    def condition(self, node: int) -> _Cond:
        ens = self.ens
        col = self.columns[int(ens.feature[node])]
        default_left = bool(ens.default_left[node])
        thr = float(ens.threshold[node])
        cat = int(ens.cat_index[node])
        if cat >= 0:
            words = ens.cat_words[int(ens.cat_bounds[cat]):int(ens.cat_bounds[cat + 1])]
            codes = _bitset_codes(words)
            listed = ", ".join(str(c) for c in codes)
            if int(ens.feature[node]) in self.coded:
                # an exact code >= 0 or NULL (missing); XGBoost's -1 (unknown) nulls the row
                if self.xgb:
                    expr = f"{col} NOT IN ({listed})" if codes else True
                    return _Cond(col, expr, default_left)
                if not codes:
                    return _Cond(col, False, False)
                return _Cond(col, f"{col} IN ({listed})", False)
            if self.xgb:
                # NaN -> default; float32(x) < 0 or >= 2**24 -> left; in the set -> right
                if not codes:
                    return _Cond(col, True, default_left)
                expr = f"{self._codes(col)} NOT IN ({listed})"
                if 0 in codes:  # values in (-1, 0) truncate to 0 but float32(x) < 0 goes left
                    bound = float32_less_bound(0.0)
                    assert bound is not False
                    m, inclusive = bound
                    expr = f"({col} {'<=' if inclusive else '<'} {number(m)} OR {expr})"
                return _Cond(col, expr, default_left)
            # LightGBM: NaN -> right; truncated code in the set -> left; anything else right
            if not codes:
                return _Cond(col, False, False)
            return _Cond(col, f"{self._codes(col)} IN ({listed})", False)
        if self.xgb:
            bound = float32_less_bound(thr)
            if bound is False:
                return _Cond(col, False, default_left)
            m, inclusive = bound
            note = f" /* float32 < {np.float32(thr)!s} */"
            return _Cond(col, f"{col} {'<=' if inclusive else '<'} {number(m)}{note}",
                         default_left)
        # LightGBM numerical split. Its row reader turns |x| <= kZeroThreshold (z) into 0.0, so
        # for a non-missing x the rule is "left iff x' <= thr" with x' = 0.0 when |x| <= z.
        missing = int(ens.missing_type[node])
        z = self.zero
        if missing in (MISSING_NONE, MISSING_NAN):
            expr = self._lightgbm_le(col, thr)
            null_left = (0.0 <= thr) if missing == MISSING_NONE else default_left  # NULL = 0.0
            return _Cond(col, expr, null_left)
        if missing == MISSING_ZERO:
            # NULL and |x| <= z go the default way; any other x: left iff x <= thr
            if np.isnan(thr):
                zero: str | bool = f"ABS({col}) <= {number(z)}"
                return _Cond(col, zero if default_left else False, default_left)
            if default_left:
                if thr >= z:
                    expr = self._le(col, thr)
                elif thr >= -z:
                    expr = f"{col} <= {number(z)}"
                else:
                    expr = f"({self._le(col, thr)} OR ABS({col}) <= {number(z)})"
                return _Cond(col, expr, True)
            if thr < -z:
                return _Cond(col, self._le(col, thr), False)
            if thr < z:
                return _Cond(col, f"{col} < {number(-z)}", False)
            le = self._le(col, thr)
            if le is True:
                return _Cond(col, f"ABS({col}) > {number(z)}", False)
            return _Cond(col, f"({le} AND ABS({col}) > {number(z)})", False)
        raise UnsupportedModelError(f"unknown LightGBM missing type {missing} at node {node}")

    def _lightgbm_le(self, col: str, thr: float) -> str | bool:
        """Left iff x' <= thr for a non-missing x, x' being 0.0 when |x| <= z."""
        z = self.zero
        if np.isnan(thr):
            return False
        if thr >= 0.0:  # zeros go left too: x <= thr or |x| <= z
            return self._le(col, max(thr, z))
        if thr < -z:  # zeros go right, and no x <= thr is a zero
            return self._le(col, thr)
        return f"{col} < {number(-z)}"  # -z <= thr < 0: left iff x < -z

    def _le(self, col: str, thr: float) -> str | bool:
        if np.isnan(thr):
            return False
        if thr == np.inf:
            return True
        if thr == -np.inf:  # only -inf itself: below every finite double
            return f"{col} < {number(-np.finfo(np.float64).max)}"
        return f"{col} <= {number(thr)}"

    # -- one tree --------------------------------------------------------------------------------
    def tree(self, t: int, indent: str) -> str:
        ens = self.ens
        base = int(ens.tree_offsets[t])
        weight = float(ens.tree_weight[t])
        depth = self._depth(base)
        if ens.left[base] < 0:
            return number(self.leaf_value(base, weight))
        if self.max_nesting is None or depth <= self.max_nesting:
            return self._nested(base, 0, weight, indent)
        return self._flat(base, weight, indent)

    def _depth(self, base: int) -> int:
        left, right = self.ens.left, self.ens.right
        best, stack = 0, [(0, 0)]
        while stack:
            i, d = stack.pop()
            if left[base + i] < 0:
                best = max(best, d)
            else:
                stack.append((int(left[base + i]), d + 1))
                stack.append((int(right[base + i]), d + 1))
        return best

    def _nested(self, base: int, local: int, weight: float, indent: str) -> str:
        node = base + local
        if self.ens.left[node] < 0:
            return number(self.leaf_value(node, weight))
        inner = indent + "  "
        cond = self.condition(node).case()
        left = self._nested(base, int(self.ens.left[node]), weight, inner)
        right = self._nested(base, int(self.ens.right[node]), weight, inner)
        return (f"CASE WHEN {cond}\n{inner}THEN {left}\n{inner}ELSE {right}\n{indent}END")

    def _flat(self, base: int, weight: float, indent: str) -> str:
        lines = ["CASE"]
        stack: list[tuple[int, list[str]]] = [(0, [])]
        leaves: list[tuple[list[str], float]] = []
        while stack:
            local, path = stack.pop()
            node = base + local
            if self.ens.left[node] < 0:
                leaves.append((path, self.leaf_value(node, weight)))
                continue
            cond = self.condition(node).total()
            negated = f"NOT {cond}" if cond.startswith("(") else f"NOT ({cond})"
            stack.append((int(self.ens.right[node]), [*path, negated]))
            stack.append((int(self.ens.left[node]), [*path, cond]))
        for path, value in leaves[:-1]:
            lines.append(f"{indent}  WHEN {' AND '.join(path)} THEN {number(value)}")
        lines.append(f"{indent}  ELSE {number(leaves[-1][1])}")
        lines.append(f"{indent}END")
        return "\n".join(lines)

    # -- the margin ------------------------------------------------------------------------------
    def margin(self, indent: str) -> str:
        ens = self.ens
        base_margin = float(np.asarray(ens.base_margin, dtype=np.float64).reshape(-1)[0])
        if self.xgb:
            base_margin = float(np.float32(base_margin))
        terms = [(f"{number(base_margin)}", "base margin")]
        for t in range(ens.n_trees):
            terms.append((self.tree(t, indent + "  "), f"tree {t}"))
        return self._sum(terms, indent)

    def _sum(self, terms: list[tuple[str, str]], indent: str) -> str:
        if len(terms) <= _CHUNK:
            parts = []
            for i, (expr, label) in enumerate(terms):
                lead = "" if i == 0 else "+ "
                parts.append(f"{indent}{lead}({expr})  {_comment(label)}")
            return "(\n" + "\n".join(parts) + f"\n{indent[:-2]})"
        groups = [terms[i:i + _CHUNK] for i in range(0, len(terms), _CHUNK)]
        inner = [(self._sum(g, indent + "  "), f"{g[0][1]} .. {g[-1][1]}") for g in groups]
        return self._sum(inner, indent)


def _probability(ens: Ensemble, margin: str) -> str:
    out = ens.objective.output
    if out == "sigmoid":
        # the stable form: EXP of a non-positive number only (no overflow in any database)
        return (f"CASE WHEN {margin} >= 0.0 THEN 1.0 / (1.0 + EXP(-{margin})) "
                f"ELSE EXP({margin}) / (1.0 + EXP({margin})) END")
    if out == "exp":
        return f"EXP({margin})"
    if out == "identity":
        return margin
    raise UnsupportedModelError(f"objective output {out!r} cannot be written as SQL")


def _score(ens: Ensemble, scorecard: Scorecard | None, margin: str) -> str:
    if scorecard is None:
        if not ens.objective.is_binary:
            return "NULL"
        scorecard = Scorecard()
    expr = f"{number(scorecard.offset)} - {number(scorecard.factor)} * {margin}"
    if scorecard.rounding is not None:
        digits = 0 if scorecard.rounding == "integer" else int(scorecard.rounding)
        expr = f"ROUND({expr}, {digits})"
    return expr


def _category_header(ens: Ensemble, writer: _Writer, categorical: list[int],
                     levels: dict[int, tuple[Any, ...]]) -> list[str]:
    """Header lines saying what each categorical column holds (and every level mapping)."""
    if not categorical:
        return []
    lines = []
    if levels:
        lines.append(_comment("categorical columns hold the model's levels, mapped to its "
                              "category codes (level -> code):"))
        lines += [_mapping_comment(writer.columns[f], levels[f]) for f in sorted(levels)]
        text = any(isinstance(v, str) for lv in levels.values() for v in lv)
        empty = "NULL and '' are" if text else "NULL is"
        if writer.xgb:
            lines.append(_comment(
                f"{empty} missing (the split's default direction); any other value makes the "
                "row's margin, probability and score NULL (XGBoost refuses categories it was "
                "not trained on)"))
        else:
            lines.append(_comment(
                f"{empty} missing, and so is any other value (LightGBM sends them right at "
                "every categorical split)"))
    codes = [f for f in categorical if f not in levels]
    if codes:
        names = ", ".join(writer.columns[f] for f in codes)
        lines.append(_comment(f"{names}: integer category codes (position in the model's "
                              "category list)"))
    return lines


def to_sql(
    ens: Any,
    table: str | Sequence[str],
    scorecard: Scorecard | None = None,
    dialect: str = "sqlite",
    *,
    order_by: str | None = None,
    max_nesting: int | None = 10,
    categories: str = "levels",
    reasons: int | None = None,
) -> str:
    """The ensemble as one SQL ``SELECT`` computing ``margin``, ``probability`` and ``score``.

    Parameters
    ----------
    ens : Ensemble or anything :func:`treeprune.load` accepts
        A binary or regression model (multiclass models are not supported).
    table : str or sequence of str
        The table to score; its columns are the model's feature names (numeric; NULL for a missing
        value; categorical features as ``categories`` says). A sequence is a qualified name
        (``("schema", "table")``). Every part is double-quoted.
    scorecard : Scorecard, optional
        Points scaling for the ``score`` column (``offset - factor * margin``, rounded with SQL's
        ``ROUND`` when the scorecard rounds). Default ``Scorecard()`` for binary models; for
        other objectives ``score`` is NULL unless a scorecard is given.
    dialect : {"sqlite", "postgresql"}
        ``"sqlite"`` returns the rows in table (``rowid``) order.
    order_by : str, optional
        A column to order the rows by instead of ``rowid`` (required for row order in
        PostgreSQL).
    max_nesting : int or None, default 10
        Trees deeper than this are written as a flat ``CASE`` (one ``WHEN`` per leaf) so that
        SQLite's parser (stack depth 100) accepts them; None nests every tree.
    categories : {"levels", "codes"}, default "levels"
        What the table holds for a categorical feature. ``"levels"``: the levels stored in the
        model (text such as ``'HomeImp'``, or the numbers the model was trained on), mapped to
        the model's codes by the query itself; unknown levels go where the native library sends
        them (LightGBM: missing; XGBoost: the row's outputs are NULL, as XGBoost refuses the row).
        ``"codes"``: integer category codes. Features whose levels the model does not store
        always read codes. The header lists every mapping.
    reasons : int, optional
        Also return each used feature's exact TreeSHAP contribution (``contrib_<feature>``, equal
        to ``predict(output="contrib")``), the bias (``contrib_bias``) and the top ``reasons``
        reasons (``reason_1``, ``contribution_1``, ...: as :func:`treeprune.reason_codes` with
        its defaults). For models whose paths split on few distinct features (every stump and
        depth-2 model; see :mod:`treeprune._sql_reasons`); larger ones are refused.

    Returns
    -------
    str
        One SQL statement (ending in ``;``) with a header comment.

    Raises
    ------
    UnsupportedModelError
        A multiclass model.
    ConversionError
        An unknown dialect or ``categories``, a non-finite leaf value or an invalid table name.
    """
    from . import __version__
    from .io import load

    ens = load(ens)
    key = str(dialect).lower()
    if key not in _ALIASES:
        raise ConversionError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    dialect = _ALIASES[key]
    if ens.objective.is_multiclass or ens.n_groups != 1:
        raise UnsupportedModelError(
            f"SQL export supports binary and regression models only; this model is multiclass "
            f"({ens.objective.name}, {ens.objective.n_classes} classes)"
        )
    if max_nesting is not None and int(max_nesting) < 1:
        raise ConversionError(f"max_nesting must be >= 1 or None; got {max_nesting}")
    if categories not in CATEGORY_INPUTS:
        raise ConversionError(f"categories must be one of {', '.join(CATEGORY_INPUTS)}; "
                              f"got {categories!r}")
    used = [int(f) for f in ens.features_used()]
    categorical_used = sorted({int(ens.feature[i]) for i in np.flatnonzero(
        (ens.left >= 0) & (ens.cat_index >= 0))})
    levels = {f: tuple(ens.categories[f]) for f in categorical_used
              if categories == "levels" and _usable_levels(tuple(ens.categories.get(f, ())))}
    writer = _Writer(ens, dialect, None if max_nesting is None else int(max_nesting),
                     frozenset(levels))
    margin_sql = writer.margin("      ")
    unknown = None
    if levels and writer.xgb:  # XGBoost refuses a level it was not trained on: so does the SQL
        unknown = " OR ".join(f"{writer.columns[f]} = -1" for f in levels)
        margin_sql = f"CASE WHEN {unknown} THEN NULL ELSE {margin_sql} END"
    explain = None
    if reasons is not None:
        from ._sql_reasons import reason_sql

        explain = reason_sql(writer, reasons, unknown)
    table_sql = _table_identifier(table)
    if order_by is not None:
        row_key = quote_identifier(order_by)
    elif dialect == "sqlite":
        row_key = "rowid"
    else:
        row_key = None
    source_sql = [f"  FROM {table_sql}"]
    coded_sql: list[str] = []
    if levels:
        # a materialized CTE turns the level columns into codes once per row, under the same
        # names (a plain subquery is flattened into every reference: twice as slow in SQLite)
        inner = [f"    {row_key} AS {_ROW_ALIAS}"] if row_key else []
        for f in used:
            col = writer.columns[f]
            if f in levels:
                inner.append(f"    {_code_case(col, levels[f], writer.xgb)} AS {col}")
            else:
                inner.append(f"    {col}")
        coded_sql = [f"WITH {_CODED} AS MATERIALIZED (", "  SELECT", ",\n".join(inner),
                     f"  FROM {table_sql}", ")"]
        source_sql = [f"  FROM {_CODED}"]
        row_key = _ROW_ALIAS if row_key else None
    rule = ("XGBoost: left iff float32(x) < threshold (written as exact double comparisons); "
            "NULL follows the default direction" if writer.xgb else
            "LightGBM: left iff x <= threshold after missing-value handling "
            "(NULL = missing; types None: NULL as 0.0, Zero/NaN: NULL goes the default way)")
    header = [
        _comment(f"generated by treeprune {__version__}: {ens.source} model, objective "
                 f"{ens.objective.name}, {ens.n_trees} trees, {ens.n_leaves} leaves, "
                 f"{ens.n_features} features"),
        _comment(f"one row per row of {table_sql}" + (
            f", ordered by {quote_identifier(order_by) if order_by is not None else 'rowid'}"
            if row_key else " (no ORDER BY: name an ordering column with --order-by / "
            "order_by=)")),
        _comment("columns: margin (raw score), probability (prediction on the response scale), "
                 "score (scorecard points)"),
        _comment(rule),
        *_category_header(ens, writer, categorical_used, levels),
    ]
    if ens.objective.is_binary or scorecard is not None:
        sc = scorecard or Scorecard()
        header.append(_comment(f"score = {sc.offset!r} - {sc.factor!r} * margin (pdo {sc.pdo:g}, "
                               f"base score {sc.base_score:g} at good:bad odds {sc.base_odds:g})"))
    inner_cols = [f"    {row_key} AS {_ROW_ALIAS}," if row_key else None,
                  f"    {margin_sql} AS {_MARGIN}" + ("," if explain else "")]
    scored = ["FROM (", "  SELECT", *[c for c in inner_cols if c]]
    if explain:  # contributions once per row (a materialized CTE: the ranks and reasons refer
        # to every column many times, and a flattened subquery would recompute it each time)
        header.append(_comment(explain.header))
        coded_sql = [*coded_sql, f'{", " if coded_sql else "WITH "}"_treeprune_contrib" AS '
                     "MATERIALIZED (", *scored[1:], ",\n".join(explain.inner), *source_sql, ")"]
        scored = ["FROM (", f"  SELECT *, {explain.ranks}"]
        source_sql = ['  FROM "_treeprune_contrib"']
    lines = header + coded_sql + [
        "SELECT",
        f"  {_MARGIN} AS {_MARGIN},",
        f"  {_probability(ens, _MARGIN)} AS \"probability\",",
        f"  {_score(ens, scorecard, _MARGIN)} AS \"score\"" + (",\n" + ",\n".join(
            explain.outer) if explain else ""),
        *scored,
        *source_sql,
        ") AS \"_treeprune_scored\"",
    ]
    if row_key:
        lines.append(f"ORDER BY {_ROW_ALIAS}")
    return "\n".join(lines) + ";\n"


__all__ = ["CATEGORY_INPUTS", "DIALECTS", "float32_less_bound", "level_literal", "number",
           "quote_identifier", "to_sql"]
