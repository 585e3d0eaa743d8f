"""SQL export: the query, run in SQLite, routes every row exactly as the kernels do."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
import xgb_models as xm
from lgb_models import FAST_SPECS, LgbSpec, stress_rows, train
from sqlite_db import connect

import treeprune as tp
from treeprune.datasets import load_taiwan
from treeprune.errors import ConversionError, UnsupportedModelError
from treeprune.scorecard import Scorecard
from treeprune.sql import _Writer, float32_less_bound, number, quote_identifier, to_sql

F32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def column_names(ens) -> list[str]:
    return list(ens.feature_names) or [f"f{i}" for i in range(ens.n_features)]


def load_table(con: sqlite3.Connection, table: str, names: list[str], X: np.ndarray) -> None:
    cols = ", ".join(f"{quote_identifier(n)} REAL" for n in names)
    con.execute(f"CREATE TABLE {quote_identifier(table)} ({cols})")
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(X, float)]
    con.executemany(f"INSERT INTO {quote_identifier(table)} VALUES "
                    f"({', '.join('?' * len(names))})", rows)


def run_sql(ens, X: np.ndarray, **kwargs) -> np.ndarray:
    con = connect()
    load_table(con, "t", column_names(ens), X)
    rows = con.execute(to_sql(ens, "t", **kwargs)).fetchall()
    return np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)


def run_per_tree(ens, X: np.ndarray, max_nesting: int | None = 10) -> np.ndarray:
    """Each tree's term of the SQL margin, per row: the leaf value it routes the row to."""
    con = connect()
    load_table(con, "t", column_names(ens), X)
    writer = _Writer(ens, "sqlite", max_nesting)
    out = []
    for start in range(0, ens.n_trees, 50):
        terms = ", ".join(f"({writer.tree(t, '')})"
                          for t in range(start, min(start + 50, ens.n_trees)))
        out.append(np.array(con.execute(f"SELECT {terms} FROM t ORDER BY rowid").fetchall(),
                            dtype=float))
    return np.hstack(out)


def xgb_stress_rows(ens, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows whose value sits on, and one double either side of, each split's midpoint bound
    (the exact place where float32 rounding decides the side), plus the threshold itself."""
    rng = np.random.default_rng(seed)
    base = np.asarray(X, dtype=np.float64)
    rows = []
    split = np.flatnonzero((ens.left >= 0) & (ens.cat_index < 0))
    for node in rng.permutation(split)[:150]:
        bound = float32_less_bound(float(ens.threshold[node]))
        if bound is False:
            continue
        m, _ = bound
        t = float(np.float32(ens.threshold[node]))
        for v in (m, np.nextafter(m, -np.inf), np.nextafter(m, np.inf), t,
                  float(np.nextafter(np.float32(t), np.float32(-np.inf)))):
            r = base[rng.integers(len(base))].copy()
            r[int(ens.feature[node])] = v
            rows.append(r)
    return np.vstack([base, np.array(rows)])


# ------------------------------------------------------------------------------------------------
# the float32 rule as a double comparison
# ------------------------------------------------------------------------------------------------
def _check_bound(t32: np.float32, xs: np.ndarray) -> None:
    bound = float32_less_bound(float(t32))
    with np.errstate(over="ignore"):
        expected = xs.astype(np.float32) < t32
    if bound is False:
        assert not expected.any()
        return
    m, inclusive = bound
    got = xs <= m if inclusive else xs < m
    bad = np.flatnonzero(got != expected)
    assert not len(bad), (t32, m, inclusive, xs[bad][:3])


def _probe(t32: np.float32, m: float) -> np.ndarray:
    vals = [m, np.nextafter(m, -np.inf), np.nextafter(m, np.inf), float(t32),
            np.nextafter(float(t32), -np.inf), np.nextafter(float(t32), np.inf)]
    with np.errstate(over="ignore", invalid="ignore"):
        p32 = np.nextafter(t32, np.float32(-np.inf))
    if np.isfinite(p32):
        vals += [float(p32), np.nextafter(float(p32), np.inf)]
    return np.array([v for v in vals if not np.isnan(v)], dtype=np.float64)


def test_float32_bound_on_midpoints_and_neighbours():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=40_000, dtype=np.uint64).astype(np.uint32)
    ts = bits.view(np.float32)
    special = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, 1e-45, -1e-45, 1.1754944e-38,
                        -1.1754944e-38, F32_MAX, -F32_MAX, np.inf, -np.inf, np.nan, 16777216.0,
                        16777217.0, 0.1, -0.1, 1e-35], dtype=np.float32)
    for t32 in np.concatenate([special, ts]):
        bound = float32_less_bound(float(t32))
        m = bound[0] if bound is not False else 0.0
        _check_bound(t32, _probe(t32, m))


def test_float32_bound_ties_follow_round_half_to_even():
    # 1.0: the float32 below is 1 - 2**-24 (odd significand) -> the midpoint rounds up to 1.0
    m, inclusive = float32_less_bound(1.0)
    assert m == 1.0 - 2.0**-25 and not inclusive
    assert not (np.float32(m) < np.float32(1.0))
    # a threshold whose float32 neighbour below has an even significand: the tie goes left
    t = np.float32(1.0) + np.float32(2.0**-22)  # 1 + 2 ulp; neighbour 1 + 1 ulp is odd
    m, inclusive = float32_less_bound(float(t))
    assert not inclusive
    t = np.float32(1.0) + np.float32(2.0**-23)  # neighbour below is 1.0 (even)
    m, inclusive = float32_less_bound(float(t))
    assert inclusive and np.float32(m) == np.float32(1.0)
    # beyond the float32 range: -FLT_MAX and +inf
    m, inclusive = float32_less_bound(-F32_MAX)
    assert inclusive and m == -(2.0**128 - 2.0**103)
    assert float32_less_bound(-np.inf) is False and float32_less_bound(np.nan) is False


def test_random_doubles_against_random_thresholds():
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.normal(size=20_000) * 10.0 ** rng.integers(-40, 39, 20_000),
                         np.array([np.inf, -np.inf, 0.0, -0.0])])
    ts = (rng.normal(size=300) * 10.0 ** rng.integers(-38, 38, 300)).astype(np.float32)
    for t32 in ts:
        _check_bound(t32, xs)


def test_literals_read_back_exactly_in_sqlite():
    rng = np.random.default_rng(2)
    vals = list(rng.normal(size=20_000) * 10.0 ** rng.integers(-45, 39, 20_000))
    t = (rng.normal(size=20_000) * 10.0 ** rng.integers(-40, 38, 20_000)).astype(np.float32)
    t = t[np.isfinite(t)]
    prev = np.nextafter(t, np.float32(-np.inf))
    vals += list((prev.astype(np.float64) + t.astype(np.float64)) / 2)
    vals += [5.0, -3.0, 1e300, 2.0**128 - 2.0**103, 1.0000000180025095e-35, -7e-46]
    con = connect()
    for start in range(0, len(vals), 500):
        chunk = vals[start:start + 500]
        literals = [number(v) for v in chunk]
        assert all(("." in s or "e" in s) for s in literals)  # REAL, never INTEGER
        back = con.execute("SELECT " + ", ".join(literals)).fetchone()
        assert list(back) == [float(v) for v in chunk]
    with pytest.raises(ConversionError):
        number(float("inf"))


# ------------------------------------------------------------------------------------------------
# XGBoost on the embedded Taiwan data
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def taiwan_xgb():
    import xgboost as xgb

    X, y = load_taiwan()
    X = X.iloc[:4000].astype(float)
    y = y.iloc[:4000]
    rng = np.random.default_rng(0)
    Xn = X.to_numpy().copy()
    Xn[rng.random(Xn.shape) < 0.05] = np.nan  # missing values -> NULL in the table
    dtrain = xgb.DMatrix(Xn[:3000], y.iloc[:3000], feature_names=list(X.columns))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.2,
                         "nthread": 1, "seed": 0, "tree_method": "hist"}, dtrain, 30)
    return tp.load(booster), Xn[3000:], booster


def test_xgboost_taiwan_matches_predict(taiwan_xgb):
    ens, X, booster = taiwan_xgb
    X = xgb_stress_rows(ens, X)
    got = run_sql(ens, X)
    margin = ens.predict(X, output="margin")
    np.testing.assert_allclose(got[:, 0], margin, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[:, 1], ens.predict(X), rtol=0, atol=1e-6)
    sc = Scorecard()
    np.testing.assert_allclose(got[:, 2], sc.score_from_margin(got[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(got[:, 2], sc.score_from_margin(margin), atol=sc.factor * 1e-5)
    # routing is exact: every tree's term is the very leaf value the kernels pick
    per_tree = run_per_tree(ens, X)
    np.testing.assert_array_equal(per_tree, ens.predict(X, output="per_tree"))
    # and the native library agrees on the margin
    import xgboost as xgb

    native = booster.predict(xgb.DMatrix(X, feature_names=list(ens.feature_names)),
                             output_margin=True)
    np.testing.assert_allclose(got[:, 0], native, atol=1e-5)


def test_flat_and_nested_trees_are_the_same_function(taiwan_xgb):
    ens, X, _ = taiwan_xgb
    X = X[:500]
    nested = run_per_tree(ens, X, max_nesting=None)
    flat = run_per_tree(ens, X, max_nesting=1)
    np.testing.assert_array_equal(nested, flat)
    np.testing.assert_array_equal(flat, ens.predict(X, output="per_tree"))
    sql_flat = to_sql(ens, "t", max_nesting=1)
    assert "WHEN" in sql_flat and " AND NOT " in sql_flat


@pytest.mark.parametrize("spec", [
    xm.XGBSpec(n_cat=2, n_num=3, n_trees=20, max_depth=4, seed=6),
    xm.XGBSpec(n_cat=2, n_num=3, n_levels=40, n_trees=10, max_depth=8, n_rows=1500, seed=7),
    xm.XGBSpec(n_trees=20, max_depth=4, seed=16, nan_rate=0.5),
    xm.XGBSpec(booster="dart", n_trees=15, max_depth=3, seed=10),
    xm.XGBSpec(objective="count:poisson", n_trees=10, max_depth=3, seed=5),
    xm.XGBSpec(objective="reg:squarederror", n_trees=10, max_depth=3, seed=5),
], ids=lambda s: s.id)
def test_xgboost_specs_route_exactly(spec):
    booster, X, _ = xm.make_model(spec)
    ens = tp.load(booster)
    X = xgb_stress_rows(ens, X)
    if spec.n_cat:  # integer codes, NULLs, and codes outside the model's categories
        X[:40, 0] = np.arange(-5, 35)
    np.testing.assert_array_equal(run_per_tree(ens, X), ens.predict(X, output="per_tree"))
    got = run_sql(ens, X)
    np.testing.assert_allclose(got[:, 0], ens.predict(X, output="margin"), atol=1e-5)
    np.testing.assert_allclose(got[:, 1], ens.predict(X), rtol=1e-5, atol=1e-6)
    if ens.objective.is_binary:
        assert not np.isnan(got[:, 2]).any()
    else:
        assert np.isnan(got[:, 2]).all()  # no scorecard for regression


# ------------------------------------------------------------------------------------------------
# LightGBM: missing types, zeros, categorical codes, NaN -> NULL
# ------------------------------------------------------------------------------------------------
LGB_SPECS = [s for s in FAST_SPECS if s.objective != "multiclass" and not s.pandas][:14] + [
    LgbSpec("binary", n_trees=30, num_leaves=63, n_rows=2000, missing="zero", zero_frac=0.3,
            n_cat=2),
]


@pytest.mark.parametrize("spec", LGB_SPECS, ids=lambda s: s.id)
def test_lightgbm_matches_predict(spec):
    booster, Xe = train(spec)
    ens = tp.load(booster)
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    got = run_sql(ens, X)
    margin = ens.predict(X, output="margin")
    np.testing.assert_allclose(got[:, 0], margin, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], ens.predict(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(run_per_tree(ens, X), ens.predict(X, output="per_tree"))
    # and the native library agrees (on the prediction: LightGBM's raw score of a random
    # forest is the sum of its trees, its prediction that of their average)
    np.testing.assert_allclose(got[:, 1], booster.predict(X), rtol=1e-9, atol=1e-12)


def test_lightgbm_deep_trees_use_flat_cases():
    spec = LgbSpec("binary", n_trees=8, num_leaves=63, n_rows=3000, missing="zero", n_cat=1)
    booster, Xe = train(spec)
    ens = tp.load(booster)
    assert ens.tree_depths().max() > 10
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    got = run_sql(ens, X)  # default max_nesting: deep trees flat, SQLite's parser copes
    np.testing.assert_allclose(got[:, 0], ens.predict(X, output="margin"), rtol=1e-9,
                               atol=1e-12)


# ------------------------------------------------------------------------------------------------
# the statement itself
# ------------------------------------------------------------------------------------------------
def test_odd_identifiers_are_quoted(taiwan_xgb):
    ens, X, _ = taiwan_xgb
    names = [f'weird "{n}" col; --' if i % 2 else f"{n} x" for i, n in
             enumerate(ens.feature_names)]
    odd = ens.replace(feature_names=tuple(names))
    table = 'my "table"'
    con = connect()
    load_table(con, table, names, X[:300])
    sql = to_sql(odd, table)
    assert 'FROM "my ""table"""' in sql
    got = np.array(con.execute(sql).fetchall(), dtype=float)
    np.testing.assert_allclose(got[:, 0], ens.predict(X[:300], output="margin"), atol=1e-5)


def test_row_order_and_extra_columns(taiwan_xgb):
    ens, X, _ = taiwan_xgb
    con = connect()
    names = column_names(ens)
    cols = ", ".join(f"{quote_identifier(n)} REAL" for n in names)
    con.execute(f'CREATE TABLE t ("id" INTEGER, "other" TEXT, {cols})')
    order = np.random.default_rng(0).permutation(200)
    for i in order:  # inserted out of id order; rowid follows insertion
        vals = [None if np.isnan(v) else float(v) for v in X[i]]
        con.execute(f"INSERT INTO t VALUES (?, 'x', {', '.join('?' * len(names))})",
                    [int(i), *vals])
    by_rowid = np.array(con.execute(to_sql(ens, "t")).fetchall(), dtype=float)
    np.testing.assert_allclose(by_rowid[:, 0], ens.predict(X[order], output="margin"),
                               atol=1e-5)
    by_id = np.array(con.execute(to_sql(ens, "t", order_by="id")).fetchall(), dtype=float)
    np.testing.assert_allclose(by_id[:, 0], ens.predict(X[:200], output="margin"), atol=1e-5)


def test_postgresql_dialect(taiwan_xgb):
    ens, X, _ = taiwan_xgb
    sql = to_sql(ens, ("public", "applicants"), dialect="postgresql")
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    assert 'FROM "public"."applicants"' in body
    assert "rowid" not in body and "ORDER BY" not in body
    spec = LgbSpec("binary", n_cat=2, n_trees=10)
    booster, Xe = train(spec)
    lgb_ens = tp.load(booster)
    pg = to_sql(lgb_ens, "t", dialect="postgresql", order_by="id")
    assert "TRUNC(" in pg and "CAST(" not in pg
    con = connect()
    try:
        con.execute("SELECT trunc(-0.5)").fetchone()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no trunc()")
    # TRUNC(x) IN (...) behaves as PostgreSQL's; run it in SQLite to check the logic
    names = column_names(lgb_ens)
    cols = ", ".join(f"{quote_identifier(n)} REAL" for n in names)
    con.execute(f'CREATE TABLE t ("id" INTEGER, {cols})')
    X = np.asarray(stress_rows(booster, Xe, spec.n_features), dtype=np.float64)
    for i, row in enumerate(X):
        con.execute(f"INSERT INTO t VALUES (?, {', '.join('?' * len(names))})",
                    [i, *[None if np.isnan(v) else float(v) for v in row]])
    got = np.array(con.execute(pg).fetchall(), dtype=float)
    np.testing.assert_allclose(got[:, 0], lgb_ens.predict(X, output="margin"), rtol=1e-9,
                               atol=1e-12)


def test_header_scorecard_and_errors(taiwan_xgb):
    ens, X, _ = taiwan_xgb
    sc = Scorecard(pdo=40, base_score=500, base_odds=20, rounding="integer")
    sql = to_sql(ens, "t", scorecard=sc)
    assert sql.startswith("-- generated by treeprune") and sql.rstrip().endswith(";")
    assert "ORDER BY \"_treeprune_row\"" in sql
    got = run_sql(ens, X[:200], scorecard=sc)
    expected = sc.score_from_margin(got[:, 0])
    assert np.all(np.abs(got[:, 2] - expected) <= 1.0)  # SQL ROUND: half away from zero
    np.testing.assert_array_equal(got[:, 2], np.round(got[:, 2]))
    with pytest.raises(ConversionError):
        to_sql(ens, "t", dialect="oracle")
    with pytest.raises(ConversionError):
        to_sql(ens, "")
    booster, _, _ = xm.make_model(xm.XGBSpec(objective="multi:softprob", n_trees=3, seed=8))
    with pytest.raises(UnsupportedModelError, match="binary and regression"):
        to_sql(tp.load(booster), "t")


def test_comparisons_are_exact_doubles_not_shortest_repr(taiwan_xgb):
    ens, _, _ = taiwan_xgb
    sql = to_sql(ens, "t")
    literals = re.findall(r"(?<![\w\"])-?\d+\.\d+(?:e[+-]?\d+)?", sql)
    assert literals
    con = connect()
    back = con.execute("SELECT " + ", ".join(literals[:900])).fetchone()
    assert [float(s) for s in literals[:900]] == list(back)
