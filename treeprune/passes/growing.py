"""Growing passes: new shallow trees trained by the source library itself.

* :func:`regrow` — prune, then retrain: boosting continues from a (pruned) model's margin on the
  given rows (XGBoost ``base_margin``, LightGBM ``init_score``) with the model's own objective.
* :func:`distill` — a compact student of the same library fitted with squared error to a
  teacher's margins (soft targets; rows without outcomes count too), one regressor per output
  group, returned with the teacher's objective.

Both stop early on an inner split of the given rows (deterministic per ``random_state``), read the
new trees back through treeprune's own readers and return one Ensemble in the source's format, so
that it saves and natively reloads with the same predictions. :func:`stage_sizes` lists the tree
counts at which :func:`~treeprune.trees.prefix` cuts a grown model into a cheap size path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_labels, check_weights
from ..data import to_matrix
from ..ensemble import Ensemble
from ..errors import DataError, DeviceError, PruneError
from ..trees import append_trees, assemble, get_trees, prefix
from .base import record

#: Objective parameters that the native trainers take under the same name.
_XGB_OBJECTIVE_PARAMS = ("tweedie_variance_power", "huber_slope", "max_delta_step",
                         "scale_pos_weight")
_LGB_OBJECTIVE_PARAMS = ("tweedie_variance_power", "alpha", "fair_c", "poisson_max_delta_step")


# --------------------------------------------------------------------------- checks
def _check_params(max_depth: Any, n_estimators: Any, learning_rate: Any, inner_fraction: Any,
                  early_stopping_rounds: Any) -> None:
    if not isinstance(max_depth, (int, np.integer)) or not 1 <= max_depth <= 16:
        raise PruneError(f"max_depth={max_depth!r}: use an integer from 1 to 16 (2-4 is typical)")
    if not isinstance(n_estimators, (int, np.integer)) or n_estimators < 1:
        raise PruneError(f"n_estimators={n_estimators!r}: use a positive integer")
    if not isinstance(learning_rate, (int, float)) or not 0 < learning_rate <= 1:
        raise PruneError(f"learning_rate={learning_rate!r}: use a number in (0, 1]")
    if not isinstance(inner_fraction, (int, float)) or not 0 <= inner_fraction < 1:
        raise PruneError(f"inner_fraction={inner_fraction!r}: use a number in [0, 1) (0 turns "
                         "early stopping off)")
    if early_stopping_rounds is not None and (
            not isinstance(early_stopping_rounds, (int, np.integer)) or early_stopping_rounds < 1):
        raise PruneError(f"early_stopping_rounds={early_stopping_rounds!r}: use a positive "
                         "integer, or None to train every round")


def _categorical(ens: Ensemble) -> list[bool]:
    types = ens.feature_types or ("float",) * ens.n_features
    return [t in ("c", "categorical") or j in ens.categories for j, t in enumerate(types)]


def monotone_tuple(ens: Ensemble, given: Any) -> tuple[int, ...]:
    """Monotone constraints as one -1/0/+1 per feature: ``None`` takes the model's own, a dict
    maps feature names to signs, a sequence gives one sign per feature."""
    if given is None:
        out = list(ens.monotone_constraints) or [0] * ens.n_features
    elif isinstance(given, dict):
        names = list(ens.feature_names)
        unknown = [k for k in given if k not in names]
        if unknown:
            raise PruneError(f"monotone_constraints names unknown features: {unknown}")
        out = [0] * ens.n_features
        for k, v in given.items():
            out[names.index(k)] = v
    else:
        out = list(given)
    if len(out) != ens.n_features:
        raise PruneError(f"monotone_constraints has {len(out)} entries for {ens.n_features} "
                         "features")
    if any(v not in (-1, 0, 1) for v in out):
        raise PruneError("monotone constraints must be -1, 0 or +1")
    cat = _categorical(ens)
    bad = [j for j, v in enumerate(out) if v and cat[j]]
    if bad:
        raise PruneError(f"monotone constraints on categorical features {bad} are meaningless; "
                         "set them to 0")
    return tuple(int(v) for v in out)


def _matrix(ens: Ensemble, X: Any, what: str) -> np.ndarray:
    try:
        arr = to_matrix(ens, X, np.float64)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc
    if len(arr) == 0:
        raise DataError(f"{what} has no rows")
    return arr


def _unlabeled(ens: Ensemble, X_unlabeled: Any) -> np.ndarray:
    if X_unlabeled is None:
        return np.zeros((0, ens.n_features))
    if isinstance(X_unlabeled, np.ndarray) and X_unlabeled.ndim != 2:
        raise DataError(f"X_unlabeled must be 2-dimensional (rows x {ens.n_features} features), "
                        f"got shape {X_unlabeled.shape}")
    return _matrix(ens, X_unlabeled, "X_unlabeled")


def n_jobs_default() -> int:
    """Cores this process may use (CPU affinity, so containers and ``taskset`` are respected)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _resolve(device: str, source: str) -> str:
    from ..kernels.device import resolve_device

    dev = resolve_device(device)
    if dev == "cuda" and source == "xgboost":
        import xgboost as xgb

        if not xgb.build_info().get("USE_CUDA", False):
            if device == "cuda":
                raise DeviceError("device='cuda' but this XGBoost build has no CUDA support; "
                                  "install a CUDA build of xgboost, or use device='cpu'")
            return "cpu"
    return dev


def _inner_split(n: int, strata: np.ndarray | None, inner_fraction: float, early: int | None,
                 random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices to train on and to stop early on (empty when early stopping is off)."""
    idx = np.arange(n)
    n_inner = int(round(inner_fraction * n))
    if early is None or n_inner < 1 or n - n_inner < 2:
        return idx, idx[:0]
    from sklearn.model_selection import train_test_split

    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if len(counts) < 2 or counts.min() < 2:
            strata = None
    tr, va = train_test_split(idx, test_size=n_inner, random_state=random_state, stratify=strata)
    return np.sort(tr), np.sort(va)


# --------------------------------------------------------------------------- native training
@dataclass
class _Fit:
    """What to train one native booster on."""

    X: np.ndarray
    target: np.ndarray  # labels, or margins to regress on
    weight: np.ndarray | None
    init: np.ndarray | None  # initial margin, (n,) or (n, K)


class _Booster:
    """One native booster trained round by round, with its validation loss after each round."""

    def __init__(self, source: str, params: dict[str, Any], train: _Fit, valid: _Fit | None,
                 categorical: list[bool], metric: str | None) -> None:
        self.source = source
        self.metric = metric
        self.finished = False
        cat = [j for j, c in enumerate(categorical) if c]
        if source == "xgboost":
            import xgboost as xgb

            def dmat(f: _Fit) -> Any:
                return xgb.DMatrix(f.X, label=f.target, weight=f.weight, base_margin=f.init,
                                   feature_types=["c" if c else "q" for c in categorical],
                                   enable_categorical=bool(cat), missing=np.nan)

            self.dtrain = dmat(train)
            self.dvalid = dmat(valid) if valid is not None else None
            cache = [self.dtrain] + ([self.dvalid] if self.dvalid is not None else [])
            self.booster = xgb.Booster(params, cache=cache)
        else:
            import lightgbm as lgb

            def init(f: _Fit) -> Any:
                return None if f.init is None else np.asarray(f.init).ravel(order="F")

            self.dtrain = lgb.Dataset(train.X, label=train.target, weight=train.weight,
                                      init_score=init(train), categorical_feature=cat or "auto",
                                      free_raw_data=False, params={"verbosity": -1})
            self.booster = lgb.Booster(params, train_set=self.dtrain)
            if valid is not None:
                self.dvalid = lgb.Dataset(valid.X, label=valid.target, weight=valid.weight,
                                          init_score=init(valid), reference=self.dtrain,
                                          categorical_feature=cat or "auto", free_raw_data=False)
                self.booster.add_valid(self.dvalid, "inner")
            else:
                self.dvalid = None
        self.rounds = 0

    def update(self) -> None:
        if self.source == "xgboost":
            self.booster.update(self.dtrain, self.rounds)
        elif self.booster.update():
            # LightGBM found no split worth making: later rounds would add constant trees
            self.finished = True
        self.rounds += 1

    def valid_loss(self) -> float:
        """The library's own validation metric after the last round (MSE for ``rmse``/``l2``)."""
        if self.source == "xgboost":
            text = self.booster.eval_set([(self.dvalid, "inner")], self.rounds - 1)
            value = float(text.rsplit(":", 1)[1])
            return value * value if self.metric == "rmse" else value
        results = self.booster.eval_valid()
        return float(results[0][2])

    def ensemble(self, n_rounds: int) -> Ensemble:
        from ..io import load

        grown = load(self.booster)
        # a LightGBM round that found no split adds no tree: cut at whole rounds that exist
        per_round = grown.n_groups
        return prefix(grown, min(grown.n_trees // per_round, n_rounds) * per_round)


def _train(boosters: list[_Booster], n_estimators: int, early: int | None) -> tuple[int, list]:
    """Boost every booster round by round; stop when the summed validation loss has not improved
    for ``early`` rounds. Returns the best number of rounds and the loss curve."""
    validating = early is not None and boosters[0].dvalid is not None
    best, best_loss, curve = 0, np.inf, []
    for r in range(n_estimators):
        for b in boosters:
            b.update()
        if validating:
            loss = float(sum(b.valid_loss() for b in boosters))
            curve.append(loss)
            if loss < best_loss:
                best, best_loss = r + 1, loss
            elif r + 1 - best >= early:
                break
        else:
            best = r + 1
        if all(b.finished for b in boosters):
            break
    return max(best, 1), curve


def _native_params(ens: Ensemble, objective: str, *, max_depth: int, learning_rate: float,
                   monotone: tuple[int, ...], device: str, random_state: int, n_jobs: int,
                   n_classes: int | None, boost_from_average: bool) -> dict[str, Any]:
    obj_params = ens.objective.params if objective == ens.objective.name else {}
    if ens.source == "xgboost":
        p: dict[str, Any] = {
            "objective": objective, "max_depth": max_depth, "eta": learning_rate,
            "tree_method": "hist", "device": device, "nthread": n_jobs, "seed": random_state,
            "verbosity": 0,
        }
        if n_classes:
            p["num_class"] = n_classes
        if any(monotone):
            p["monotone_constraints"] = "(" + ",".join(str(c) for c in monotone) + ")"
        if objective == "reg:squarederror":
            p["eval_metric"] = "rmse"
        for k in _XGB_OBJECTIVE_PARAMS:
            if k in obj_params:
                p[k] = obj_params[k]
        return p
    p = {
        "objective": objective, "max_depth": max_depth, "num_leaves": 2 ** max_depth,
        "learning_rate": learning_rate, "seed": random_state, "deterministic": True,
        "force_row_wise": True, "num_threads": n_jobs, "verbosity": -1,
        "boost_from_average": boost_from_average,
    }
    if n_classes:
        p["num_class"] = n_classes
    if any(monotone):
        p["monotone_constraints"] = list(monotone)
    if device == "cuda":
        p["device_type"] = "cuda"
    params = ens.source_meta.get("parameters") if ens.source_meta else None
    for k in _LGB_OBJECTIVE_PARAMS:
        if k in obj_params:
            p[k] = obj_params[k]
        elif objective == ens.objective.name and isinstance(params, dict) and k in params:
            p[k] = params[k]
    if objective == "regression":
        p["metric"] = "l2"
    return p


def _make_boosters(ens: Ensemble, fits: list[tuple[_Fit, _Fit | None]], params: dict[str, Any],
                   device_request: str, metric: str | None) -> list[_Booster]:
    categorical = _categorical(ens)
    try:
        return [_Booster(ens.source, params, tr, va, categorical, metric) for tr, va in fits]
    except Exception as exc:
        if ens.source == "lightgbm" and params.get("device_type") == "cuda" and "CUDA" in str(exc):
            if device_request == "cuda":
                raise DeviceError("device='cuda' but this LightGBM build has no CUDA support "
                                  f"({exc}); install LightGBM built with CUDA, or use "
                                  "device='cpu'") from exc
            cpu = {k: v for k, v in params.items() if k != "device_type"}
            return [_Booster(ens.source, cpu, tr, va, categorical, metric) for tr, va in fits]
        raise


def _margin_2d(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    m = np.asarray(ens.predict(X, output="margin"), dtype=np.float64)
    return m.reshape(len(X), -1)


# --------------------------------------------------------------------------- passes
def regrow(base: Ensemble, X: Any, y: Any, sample_weight: Any = None, *, max_depth: int = 2,
           n_estimators: int = 200, learning_rate: float = 0.1, inner_fraction: float = 0.2,
           early_stopping_rounds: int | None = 20, monotone_constraints: Any = None,
           device: str = "cpu", random_state: int = 0, n_jobs: int | None = None) -> Ensemble:
    """Prune, then retrain: boost new shallow trees from ``base``'s margin with its own library.

    Parameters
    ----------
    base : Ensemble
        The (pruned) model to continue from; not modified.
    X, y : array-like or DataFrame, labels
        Rows to grow on (never the rows that judge the result).
    sample_weight : array-like, optional
    max_depth, n_estimators, learning_rate : int, int, float
        Shape of the new trees (LightGBM: ``num_leaves = 2**max_depth``).
    inner_fraction : float
        Share of the rows held back for early stopping (0: no early stopping).
    early_stopping_rounds : int or None
        Patience of the early stopping on the inner rows (None: train ``n_estimators`` rounds).
    monotone_constraints : sequence, dict or None
        One -1/0/+1 per feature, or ``{name: sign}``; default the model's own constraints.
    device : {"cpu", "cuda", "auto"}
        Where the native trainer runs (XGBoost ``device="cuda"``, LightGBM ``device_type="cuda"``
        when its build has CUDA); ``"auto"`` falls back on the CPU.
    random_state : int
        Seeds the inner split and the trainer: equal inputs give equal models.
    n_jobs : int, optional
        Trainer threads (default: the cores this process may use).

    Returns
    -------
    Ensemble
        ``base``'s trees followed by the new ones, in ``base``'s format and objective; the history
        ends with a ``regrow`` record whose details give ``base_trees`` and ``trees_per_round``.

    Raises
    ------
    PruneError, DataError, DeviceError
        Bad parameters, bad rows or labels, CUDA asked for but absent.
    """
    _check_params(max_depth, n_estimators, learning_rate, inner_fraction, early_stopping_rounds)
    monotone = monotone_tuple(base, monotone_constraints)
    dev = _resolve(device, base.source)
    Xm = _matrix(base, X, "X")
    yv = check_labels(y, len(Xm), base.objective)
    w = check_weights(sample_weight, len(Xm))
    init = _margin_2d(base, Xm)
    obj = base.objective
    strata = yv if (obj.is_binary or obj.is_multiclass) else None
    tr, va = _inner_split(len(Xm), strata, inner_fraction, early_stopping_rounds, random_state)
    init_arg = init if init.shape[1] > 1 else init[:, 0]

    def fit(rows: np.ndarray) -> _Fit:
        return _Fit(Xm[rows], yv[rows], None if w is None else w[rows], init_arg[rows])

    params = _native_params(base, obj.name, max_depth=max_depth, learning_rate=learning_rate,
                            monotone=monotone, device=dev, random_state=random_state,
                            n_jobs=n_jobs or n_jobs_default(),
                            n_classes=obj.n_classes if obj.is_multiclass else None,
                            boost_from_average=False)
    boosters = _make_boosters(base, [(fit(tr), fit(va) if len(va) else None)], params, device,
                              None)
    rounds, curve = _train(boosters, n_estimators, early_stopping_rounds)
    grown = boosters[0].ensemble(rounds)
    out = append_trees(base, grown)
    return record(base, out, "regrow", {
        "max_depth": max_depth, "n_estimators": n_estimators, "learning_rate": learning_rate,
        "inner_fraction": inner_fraction, "early_stopping_rounds": early_stopping_rounds,
        "device": dev, "random_state": random_state},
        base_trees=base.n_trees, new_trees=grown.n_trees, rounds=grown.n_trees // base.n_groups,
        trees_per_round=base.n_groups, n_rows=len(tr), n_inner=len(va), inner_loss=curve)


def distill(teacher: Ensemble, X: Any, *, target_margin: Any = None, sample_weight: Any = None,
            X_unlabeled: Any = None, unlabeled_margin: Any = None, max_depth: int = 3,
            n_estimators: int = 300, learning_rate: float = 0.1, inner_fraction: float = 0.2,
            early_stopping_rounds: int | None = 20, monotone_constraints: Any = None,
            device: str = "cpu", random_state: int = 0, n_jobs: int | None = None) -> Ensemble:
    """A compact student of the same library fitted to the teacher's margins (soft targets).

    Each output group gets its own squared-error booster; all groups stop early together on the
    summed inner-row MSE. The student carries the teacher's objective, so its margin approximates
    the teacher's and its predictions are on the same scale.

    Parameters
    ----------
    teacher : Ensemble
        The model to imitate; not modified.
    X : array-like or DataFrame
        Rows to fit on (labels are not needed).
    target_margin : array-like, optional
        Margins to fit on ``X``'s rows, shape (n_rows,) or (n_rows, n_groups); default the
        teacher's margins (rows of ``X_unlabeled`` always get the teacher's margins).
    sample_weight : array-like, optional
        Weights of ``X``'s rows; rows of ``X_unlabeled`` weigh the mean of these (1 without).
    X_unlabeled : array-like or DataFrame, optional
        Extra rows without outcomes (for example recent applications), same columns as ``X``.
    unlabeled_margin : array-like, optional
        The teacher's margins on ``X_unlabeled``, row for row, when the caller has them already
        (:func:`treeprune.prune` predicts them once for all its students); default: predicted
        here.
    max_depth, n_estimators, learning_rate, inner_fraction, early_stopping_rounds,
    monotone_constraints, device, random_state, n_jobs
        As in :func:`regrow`.

    Returns
    -------
    Ensemble
        The student, in the teacher's format and objective (history: the teacher's, then a
        ``distill`` record whose details give ``rounds`` and ``trees_per_round``).

    Raises
    ------
    PruneError, DataError, DeviceError
    """
    _check_params(max_depth, n_estimators, learning_rate, inner_fraction, early_stopping_rounds)
    monotone = monotone_tuple(teacher, monotone_constraints)
    dev = _resolve(device, teacher.source)
    Xm = _matrix(teacher, X, "X")
    Xu = _unlabeled(teacher, X_unlabeled)
    K = teacher.n_groups
    if target_margin is None:
        target = _margin_2d(teacher, Xm)
    else:
        target = np.asarray(target_margin, dtype=np.float64).reshape(len(Xm), -1) \
            if np.size(target_margin) == len(Xm) * K else None
        if target is None or target.shape[1] != K:
            raise DataError(f"target_margin must have shape ({len(Xm)},) or ({len(Xm)}, {K})")
    if not np.all(np.isfinite(target)):
        raise DataError("target margins contain NaN or infinite values")
    w = check_weights(sample_weight, len(Xm))
    rows = np.concatenate([Xm, Xu]) if len(Xu) else Xm
    if len(Xu):
        if unlabeled_margin is None:
            extra = _margin_2d(teacher, Xu)
        else:
            extra = np.asarray(unlabeled_margin, dtype=np.float64)
            if extra.size != len(Xu) * K:
                raise DataError(f"unlabeled_margin must have shape ({len(Xu)},) or "
                                f"({len(Xu)}, {K}): one teacher margin per row of X_unlabeled")
            extra = extra.reshape(len(Xu), -1)
            if not np.all(np.isfinite(extra)):  # targets too, checked as target_margin is
                raise DataError("unlabeled_margin contains NaN or infinite values")
        target = np.concatenate([target, extra])
    if w is not None:
        w = np.concatenate([w, np.full(len(Xu), w.mean())])
    tr, va = _inner_split(len(rows), None, inner_fraction, early_stopping_rounds, random_state)
    objective = "reg:squarederror" if teacher.source == "xgboost" else "regression"
    params = _native_params(teacher, objective, max_depth=max_depth, learning_rate=learning_rate,
                            monotone=monotone, device=dev, random_state=random_state,
                            n_jobs=n_jobs or n_jobs_default(), n_classes=None,
                            boost_from_average=True)

    def fit(idx: np.ndarray, g: int) -> _Fit:
        return _Fit(rows[idx], target[idx, g], None if w is None else w[idx], None)

    fits = [(fit(tr, g), fit(va, g) if len(va) else None) for g in range(K)]
    metric = "rmse" if teacher.source == "xgboost" else "l2"
    boosters = _make_boosters(teacher, fits, params, device, metric)
    rounds, curve = _train(boosters, n_estimators, early_stopping_rounds)
    students = [b.ensemble(rounds) for b in boosters]
    # interleave the groups round by round, as a multiclass booster orders its trees
    per_group = [get_trees(s) for s in students]
    shrink_of = [s.source_meta.get("shrinkage") or () for s in students]
    trees, shrink = [], []
    rounds = min(len(p) for p in per_group)  # equal rounds per group keep prefixes aligned
    for r in range(rounds):
        for g in range(K):
            per_group[g][r].group = g
            trees.append(per_group[g][r])
            shrink.append(float(shrink_of[g][r]) if r < len(shrink_of[g]) else 1.0)
    base_margin = np.array([float(np.reshape(s.base_margin, -1)[0]) for s in students])
    folded = np.array([float(np.reshape(s.folded_intercept, -1)[0]) for s in students])
    meta = dict(teacher.source_meta)
    for key in ("source_path", "xgboost_tree_info", "xgboost_iteration_indptr"):
        meta.pop(key, None)
    if teacher.source == "xgboost":
        meta["xgboost_booster"] = "gbtree"
    else:
        meta["average_output"] = False
        meta["shrinkage"] = tuple(shrink)
    student = assemble(teacher, trees, renumber=False, base_margin=base_margin,
                       folded_intercept=folded, monotone_constraints=monotone, source_meta=meta)
    return record(teacher, student, "distill", {
        "max_depth": max_depth, "n_estimators": n_estimators, "learning_rate": learning_rate,
        "inner_fraction": inner_fraction, "early_stopping_rounds": early_stopping_rounds,
        "device": dev, "random_state": random_state},
        rounds=rounds, trees_per_round=K, base_trees=0, n_rows=len(tr), n_inner=len(va),
        n_unlabeled=len(Xu), inner_mse=curve)


def stage_sizes(ens: Ensemble, max_points: int | None = None) -> list[int]:
    """Tree counts at which :func:`~treeprune.trees.prefix` cuts the model the last
    :func:`regrow` or :func:`distill` made into smaller models (one per boosting round, or
    ``max_points`` of them spaced geometrically, always including the full model)."""
    rec = next((r for r in reversed(ens.history) if getattr(r, "name", "") in
                ("regrow", "distill")), None)
    if rec is None:
        raise PruneError("this ensemble was not made by regrow or distill")
    start, per = int(rec.details["base_trees"]), int(rec.details["trees_per_round"])
    rounds = (ens.n_trees - start) // per
    if rounds < 0 or start + rounds * per != ens.n_trees:
        raise PruneError("the ensemble changed after regrow/distill; its stages are unknown")
    ks = list(range(1, rounds + 1))
    if max_points is not None and rounds > max_points:
        ks = sorted({int(round(v)) for v in np.geomspace(1, rounds, max_points)} | {rounds})
    return [start + k * per for k in ks]


__all__ = ["regrow", "distill", "stage_sizes", "monotone_tuple", "n_jobs_default"]
