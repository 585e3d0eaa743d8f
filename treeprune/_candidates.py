"""The candidate families that :func:`treeprune.prune` judges against each other.

Each family turns the lossless model and the *fit* rows into a path of smaller models:

* ``select`` — forward selection and re-weighting of the old trees (``k`` of them; in fidelity
  mode chosen by what their splits are worth once their leaves are refitted);
* ``collapse`` — the selected trees with their cheapest subtrees collapsed to a share of the
  leaves;
* ``regrow`` — a small selection, then new shallow trees boosted from its margin by the source
  library's own trainer (prune, then retrain); sizes are prefixes of the new trees;
* ``distill`` — a compact student of the same library trained on the original's margins (soft
  targets, rows without outcomes included); sizes are prefixes of the student;
* ``distill+regrow`` — the student, then new trees boosted from it on the labels.

Every candidate comes with and without a joint leaf refit where a refit can change it (column
``refit``). In fidelity mode the target is the original's margin instead of the labels: the same
passes run under squared error against it (the objective is swapped for the fit and restored
afterwards), and the growing families train on the margins.

A candidate's key ``(family, a, b, refit)`` names its configuration in the same way on every
fold, so that cross-fitting can score a configuration out of fold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ensemble import Ensemble
from .errors import PruneError
from .objectives import Objective
from .passes import datadriven

TREE_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
LEAF_FRACTIONS = (1.0, 0.5, 0.25, 0.125)
#: fidelity mode collapses in a chain, each step from the previous refitted one, and smaller steps
#: do better there: every collapse decision then sees the other trees already compensating for the
#: last one (measured, 1/4 of the leaves, tuned XGBoost, seeds 0-2: test Spearman up on 8 of 8
#: HELOC/HMEQ/Taiwan runs, +0.0001 to +0.0011, for about 1.7x the time). Same end points as above.
FIDELITY_LEAF_FRACTIONS = (1.0, 0.8, 0.64, 0.5, 0.4, 0.32, 0.25, 0.2, 0.16, 0.125)
#: ... up to this many selected trees; longer selections (overfit models) step as in AUC mode:
#: each step there routes and refits thousands of leaves, and the selection itself wins (Taiwan,
#: 800 trees, tolerance 0.01, fine steps throughout: the same 384 trees chosen, in 318 s on a busy
#: machine against 185 s with the coarse steps on a quieter one)
FINE_STEPS_MAX_TREES = 128
#: trees are selected by their splits (``forward_selection_path(by="partitions")``; against labels
#: the splits that fit the original's margins, see ``Families._splits_to_follow``) for
#: selections of up to this many trees (a step's cost grows with the trees selected so far). In
#: fidelity mode every selection is refitted, so the splits are what a tree brings: measured at
#: 1/4 of the leaves (tuned models, split seed 0, test rows, by weights -> by splits), Taiwan
#: XGBoost Spearman 0.9937 -> 0.9958, agreement at 50% 0.973 -> 0.978; HMEQ 0.9922 -> 0.9925,
#: 0.961 -> 0.978; HELOC 0.9932 -> 0.9936; LightGBM's 63-leaf trees unchanged (Taiwan 0.9837 ->
#: 0.9833)
PARTITION_SELECTION_MAX_TREES = 128
#: prefixes (number of boosting rounds) of grown models that become candidates
ROUND_GRID = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
#: families in the order they run
FAMILIES = ("select", "collapse", "regrow", "distill", "distill+regrow")
GROWN = ("regrow", "distill", "distill+regrow")


@dataclass(frozen=True)
class GrowSettings:
    """How the growing families train (the source library's trainer does the work)."""

    distill_depths: tuple[int, ...] = (2, 3)
    regrow_depth: int = 2
    regrow_bases: tuple[int, ...] = (4, 16)
    n_estimators: int = 300
    #: below this many rows the native trainers run on one thread: as fast on so few rows, and
    #: immune to the spin-waiting of threads on a busy machine
    one_thread_below: int = 20000
    learning_rate: float = 0.1
    inner_fraction: float = 0.2
    early_stopping_rounds: int = 25
    student_rounds_before_regrow: int = 16


@dataclass
class FitRows:
    """What one fit has to work with.

    ``y`` is what the passes minimise the loss against: the labels, or in fidelity mode the
    original's margins (``target``). ``target`` is the original's margin on ``X``.
    ``unlabeled_margin`` is the lossless model's (:attr:`Families.base`) margin on
    ``X_unlabeled``, row for row, when the caller has it: every fold's consumers (the splits to
    follow, each distilled student) would otherwise predict those rows again. ``None``: each
    consumer predicts them itself.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None
    target: np.ndarray
    X_unlabeled: np.ndarray | None = None
    labels: np.ndarray | None = None  # the outcomes, when there are any
    n_synthetic: int = 0  # the last rows of ``X`` are made up (fidelity mode), not observed
    unlabeled_margin: np.ndarray | None = None


def squared_objective(ens: Ensemble) -> Objective:
    """Squared error in the source library's spelling, for fitting the original's margins."""
    name = "reg:squarederror" if ens.source == "xgboost" else "regression"
    return Objective(name, "squared", "identity")


class Families:
    """Generate ``(key, candidate)`` pairs for every family on one set of fit rows."""

    def __init__(self, base: Ensemble, *, fidelity: bool, families: tuple[str, ...],
                 max_leaves: int | None, max_trees: int | None, l2: float, n_rounds: int,
                 device: str, max_selected: int, random_state: int,
                 grow: GrowSettings | None = None) -> None:
        self.base = base
        self.objective = base.objective
        self.fidelity = fidelity
        self.families = families
        self.max_leaves = max_leaves
        self.max_trees = max_trees
        self.l2 = l2
        self.n_rounds = n_rounds
        self.device = device
        self.max_selected = max_selected
        self.random_state = random_state
        self.grow = grow or GrowSettings()
        self._any_prefix = False

    # -- helpers -------------------------------------------------------------------------------
    def _fit_form(self, ens: Ensemble) -> Ensemble:
        """The ensemble as the passes should see it (squared error in fidelity mode)."""
        return ens.replace(objective=squared_objective(ens)) if self.fidelity else ens

    def _restore(self, ens: Ensemble) -> Ensemble:
        return ens.replace(objective=self.objective) if ens.objective is not self.objective \
            else ens

    def _n_jobs(self, rows: FitRows) -> int | None:
        n = len(rows.X) + (0 if rows.X_unlabeled is None else len(rows.X_unlabeled))
        return 1 if n < self.grow.one_thread_below else None

    def _unlabeled_margin(self, rows: FitRows) -> np.ndarray:
        """The base's margins on ``rows.X_unlabeled`` (carried, or predicted here)."""
        if rows.unlabeled_margin is not None:
            return rows.unlabeled_margin
        return self.base.predict(rows.X_unlabeled, output="margin")

    def _refit(self, ens: Ensemble, y: np.ndarray, rows: FitRows) -> Ensemble:
        """Joint leaf refit of ``ens`` against ``y`` on the fit rows."""
        return datadriven.refit_leaves(ens, rows.X, y, rows.w, l2=self.l2,
                                       n_rounds=self.n_rounds, device=self.device)

    def _fractions(self, k: int = 1) -> tuple[float, ...]:
        """Leaf shares of a selection of ``k`` trees that become collapse steps."""
        fine = self.fidelity and k <= FINE_STEPS_MAX_TREES
        return FIDELITY_LEAF_FRACTIONS if fine else LEAF_FRACTIONS

    def _fits_budget(self, ens: Ensemble) -> bool:
        if self.max_leaves is not None and ens.n_leaves > self.max_leaves:
            return False
        return self.max_trees is None or ens.n_trees <= self.max_trees

    def planned(self, n_trees: int) -> int:
        """About how many candidates one fit yields (for the progress bar)."""
        grid = [g for g in TREE_GRID if g <= min(self.max_selected, n_trees)]
        out = 0
        if "select" in self.families:
            out += 2 * len(grid)
        if "collapse" in self.families:
            out += 2 * sum(len(self._fractions(g)) - 1 for g in grid)
        n_prefix = 8
        if "regrow" in self.families:
            out += len(self.grow.regrow_bases) * n_prefix
        if "distill" in self.families:
            out += len(self.grow.distill_depths) * n_prefix * (1 if self.fidelity else 2)
        if "distill+regrow" in self.families and not self.fidelity:
            out += n_prefix
        return out

    # -- the families ----------------------------------------------------------------------------
    def generate(self, rows: FitRows, only: tuple | None = None, any_prefix: bool = False
                 ) -> Iterator[tuple[tuple, Ensemble]]:
        """Yield ``((family, a, b, refit), candidate)``; ``only`` builds one configuration
        (with ``any_prefix``, every prefix of its grown model)."""
        self._any_prefix = any_prefix
        want = self.families if only is None else (only[0],)
        if any(f in want for f in ("select", "collapse", "regrow")):
            yield from self._old_trees(rows, want, only)
        if "distill" in want or "distill+regrow" in want:
            yield from self._distilled(rows, want, only)

    def _old_trees(self, rows: FitRows, want: tuple[str, ...], only: tuple | None):
        base = self._fit_form(self.base)
        searched = min(self.max_selected, base.n_trees)  # the whole search's path
        if "regrow" in self.families:
            searched = max(searched, max(self.grow.regrow_bases) * max(1, base.n_groups))
        if only is not None:
            longest = only[1] * (max(1, base.n_groups) if only[0] == "regrow" else 1)
        else:
            longest = searched
        longest = min(longest, base.n_trees)
        # chosen by the search's length, so that a configuration rebuilt alone (only) selects
        # its trees as the search did
        by_partitions = (self.objective.n_groups <= 1
                         and min(searched, base.n_trees) <= PARTITION_SELECTION_MAX_TREES)
        path = datadriven.forward_selection_path(
            base, rows.X, rows.y, longest, rows.w,
            by="partitions" if by_partitions else "weights", leaf_l2=self.l2,
            **(self._splits_to_follow(rows) if by_partitions and not self.fidelity else {}))
        if len(path) == 0:
            return
        if "select" in want or "collapse" in want:
            grid = [k for k in TREE_GRID if k <= min(len(path), self.max_selected)]
            if self.max_trees is not None:
                grid = [k for k in grid if k < self.max_trees] + [
                    min(int(self.max_trees), len(path))]
            grid = sorted(set(grid))
            if only is not None:
                grid = [min(only[1], len(path))]
            for k in grid:
                yield from self._select_collapse(base, path, k, rows, want, only)
        if "regrow" in want:
            per_round = max(1, base.n_groups)
            for k in self.grow.regrow_bases:
                if only is not None and only[1] != k:
                    continue
                # whole rounds, so that the new trees' prefixes end rounds too
                k_trees = -(-k // per_round) * per_round
                if k_trees > len(path):
                    continue
                selected = datadriven.take_selection(base, path, k_trees)
                yield from self._grown("regrow", k, selected, rows, only, labels=not self.fidelity)

    def _splits_to_follow(self, rows: FitRows) -> dict[str, Any]:
        """Against labels, the splits are chosen to fit the original's margins (its labels are
        for the re-weighting), on the fit rows and on the rows without outcomes (synthetic, or
        ``X_unlabeled``), whose margins count as much: measured at a 10x leaf budget on tuned
        XGBoost models (split seeds 0-4, test AUC against the original; by weights -> by these
        splits), Taiwan -0.0039/-0.0036/-0.0018 -> +0.0012/-0.0013/+0.0001 (two seeds
        unchanged), HMEQ 4 of 5 seeds up by up to 0.007, HELOC one seed down 0.002 (four
        unchanged); chosen on the fit rows alone, HMEQ lost 0.0003-0.005 on four seeds."""
        if rows.X_unlabeled is None:
            return {"partition_target": rows.target}
        w = rows.w if rows.w is not None else np.ones(len(rows.X))
        return {"partition_X": np.concatenate([rows.X, rows.X_unlabeled]),
                "partition_target": np.concatenate(
                    [rows.target, self._unlabeled_margin(rows)]),
                "partition_weight": np.concatenate(
                    [w, np.full(len(rows.X_unlabeled), float(np.mean(w)))])}

    def _select_collapse(self, base: Ensemble, path: Any, k: int, rows: FitRows,
                         want: tuple[str, ...], only: tuple | None):
        selected = datadriven.take_selection(base, path, k)
        # below two leaves per tree some trees turn into constants: pointless candidates
        budgets: list[tuple[Any, int]] = []
        for f in self._fractions(k):
            b = max(2 * k, int(round(selected.n_leaves * f)))
            # (fractions of a small selection can meet at two leaves per tree: keep one of them,
            # but build the one asked for: chosen on other rows, where the sizes differed)
            asked = only is not None and only[2] == f
            if f == 1.0 or asked or b < min(selected.n_leaves, budgets[-1][1]):
                budgets.append((f, min(b, selected.n_leaves)))
        if self.max_leaves is not None and selected.n_leaves > self.max_leaves >= 2 * k:
            budgets.append(("budget", int(self.max_leaves)))
        if "collapse" not in want:
            budgets = budgets[:1]
        # In fidelity mode each collapse starts from the previous, refitted, larger one (also
        # from those over a leaf budget, which are steps but not candidates): after a refit the
        # other trees make up for what was collapsed, and the next costs see that. Measured on
        # tuned models at 1/4-1/8 of the selection's leaves: test Spearman +0.002 to +0.015 over
        # collapsing the selection at once. Against labels the repeated refits follow their noise
        # (test AUC down to -0.005 on an overfit model), so AUC mode collapses the selection
        # itself.
        chain = self.fidelity
        limit = np.inf if self.max_leaves is None else self.max_leaves
        if chain:
            budgets.sort(key=lambda fb: -fb[1])
            if only is not None:
                last = next((b for f, b in budgets if f == only[2]), None)
                budgets = [(f, b) for f, b in budgets if last is not None and b >= last]
        else:
            budgets = [(f, b) for f, b in budgets if b <= limit]
        start = selected
        for label, budget in budgets:
            family = "select" if label == 1.0 else "collapse"
            wanted = (family in want and budget <= limit
                      and (only is None or only[2] == label))
            if not wanted and not chain:
                continue
            collapsed = start
            if budget < collapsed.n_leaves:
                collapsed = datadriven.collapse_by_data(collapsed, rows.X, rows.y, budget,
                                                        rows.w, l2=self.l2)
            refitted = None
            if chain and budget < start.n_leaves:
                refitted = start = self._refit(collapsed, rows.y, rows)
            if not wanted:
                continue
            # with and without the leaf refit: on small samples the refit can overfit the fit
            # rows, and the held-out rows decide which one to trust
            for refit in (False, True):
                if only is not None and only[3] != refit:
                    continue
                if refit:
                    cand = refitted if refitted is not None else \
                        self._refit(collapsed, rows.y, rows)
                else:
                    cand = collapsed
                yield (family, k, label, refit), self._restore(cand)

    def _distilled(self, rows: FitRows, want: tuple[str, ...], only: tuple | None):
        from .passes import growing

        g = self.grow
        depths = g.distill_depths
        if only is not None:
            depths = (only[1],)
        for depth in depths:
            if "distill+regrow" in want and "distill" not in want and depth != max(depths):
                continue
            student = growing.distill(
                self.base, rows.X, target_margin=rows.target, sample_weight=rows.w,
                X_unlabeled=rows.X_unlabeled,
                unlabeled_margin=None if rows.X_unlabeled is None else self._unlabeled_margin(rows),
                max_depth=depth, n_estimators=g.n_estimators,
                learning_rate=g.learning_rate, inner_fraction=g.inner_fraction,
                early_stopping_rounds=g.early_stopping_rounds,
                monotone_constraints=self.base.monotone_constraints, device=self.device,
                random_state=self.random_state, n_jobs=self._n_jobs(rows))
            student = self._restore(student)
            if "distill" in want:
                yield from self._prefixes("distill", depth, student, 0, rows, only,
                                          refit=not self.fidelity)
            if ("distill+regrow" in want and not self.fidelity and rows.labels is not None
                    and depth == max(g.distill_depths)):
                # a short student carries the original's ranking; new trees add what the labels
                # say beyond it
                from .trees import prefix

                per_round = max(1, student.n_groups)
                short = prefix(student, min(student.n_trees,
                                            g.student_rounds_before_regrow * per_round))
                yield from self._grown("distill+regrow", depth, short, rows, only, labels=True)

    def _grown(self, family: str, a: int, start: Ensemble, rows: FitRows, only: tuple | None,
               labels: bool):
        """New shallow trees boosted from ``start``'s margin, as prefixes of the new trees."""
        from .passes import growing

        g = self.grow
        fit_start = start if labels else self._fit_form(start)
        y = rows.labels if labels else rows.y
        grown = growing.regrow(
            fit_start, rows.X, y, rows.w, max_depth=g.regrow_depth, n_estimators=g.n_estimators,
            learning_rate=g.learning_rate, inner_fraction=g.inner_fraction,
            early_stopping_rounds=g.early_stopping_rounds,
            monotone_constraints=start.monotone_constraints, device=self.device,
            random_state=self.random_state, n_jobs=self._n_jobs(rows))
        yield from self._prefixes(family, a, self._restore(grown), start.n_trees, rows, only,
                                  refit=False)

    def _prefixes(self, family: str, a: int, model: Ensemble, first: int, rows: FitRows,
                  only: tuple | None, refit: bool):
        """Candidates from the first ``first + j * n_groups`` trees of ``model``."""
        from .trees import prefix

        per_round = max(1, model.n_groups)
        rounds = (model.n_trees - first) // per_round
        grid: list[Any] = [j for j in ROUND_GRID if j < rounds] + ["all"]
        for j in grid:
            if only is not None and only[2] != j and not self._any_prefix:
                continue
            n = model.n_trees if j == "all" else first + int(j) * per_round
            cand = model if n == model.n_trees else prefix(model, n)
            if not self._fits_budget(cand):
                continue
            for r in ((False, True) if refit else (False,)):
                if only is not None and only[3] != r:
                    continue
                yield (family, a, j, r), self._refit(cand, rows.labels, rows) if r else cand


def check_search(max_selected: Any, n_rounds: Any) -> None:
    """Raise ``PruneError`` unless ``max_selected`` (None or >= 1 trees) and ``n_rounds``
    (>= 1 refit cycles) are whole numbers in range."""
    for name, value, optional in (("max_selected", max_selected, True),
                                  ("n_rounds", n_rounds, False)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise PruneError(f"{name} must be a whole number >= 1"
                             + (" or None" if optional else "") + f", got {value!r}")


def resolve_families(families: Any) -> tuple[str, ...]:
    """The candidate families asked for (all by default), validated, in the order given."""
    if families is None:
        return FAMILIES
    if isinstance(families, str):
        families = [families]
    out = tuple(dict.fromkeys(str(f) for f in families))
    unknown = [f for f in out if f not in FAMILIES]
    if unknown or not out:
        raise PruneError(f"unknown candidate families {unknown}; choose from {list(FAMILIES)}")
    return out
