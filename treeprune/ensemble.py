"""The Ensemble: one immutable value holding every tree of a boosted model as flat node arrays.

Layout (struct of arrays over all nodes of all trees, one pool for the whole ensemble):

* ``tree_offsets[t]:tree_offsets[t + 1]`` are the nodes of tree ``t``; node ids inside a tree
  (``left``, ``right``) are *local* (0 is the root of every tree). A leaf has ``left == -1``.
* ``native_id`` is the id the source library gives the node (what ``pred_leaf`` returns for a
  leaf): XGBoost's node id, LightGBM's leaf index (split index for internal nodes).
* Decision rules follow ``source`` exactly:

  - ``"xgboost"``: go left iff ``float32(x) < threshold`` (threshold is a float32 value);
    NaN goes to ``default_left``. Categorical: categories *in* the bitset go right.
  - ``"lightgbm"``: go left iff ``x <= threshold`` (double) after the missing-type handling
    (``missing_type`` 0 none / 1 zero / 2 NaN). Categorical: categories in the bitset go left.

* Categorical splits point with ``cat_index`` into ``cat_bounds``/``cat_words``: the bitset of
  split ``k`` is ``cat_words[cat_bounds[k]:cat_bounds[k + 1]]`` (uint32 words, bit ``c`` of word
  ``c // 32`` is category ``c``).
* ``value`` is the leaf output (before the DART ``tree_weight``); for an internal node it is the
  weight the trainer stored for it (``base_weights``/``internal_value``), NaN when unknown.
* ``gain``/``cover``/``count``: the trainer's split gain, hessian sum and data count (NaN unknown).

The margin of group ``g`` is ``base_margin[g] + sum over trees t of group g of tree_weight[t] *
value[leaf reached in t]``. LightGBM folds its initial score into the first tree of each group;
``folded_intercept[g]`` records it so that a pass dropping that tree can keep the intercept.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._rules import SCORECARD_KEY
from .objectives import Objective

#: Node arrays, in the order ``Tree``-building helpers expect them, with their dtypes.
NODE_FIELDS: dict[str, Any] = {
    "feature": np.int32,
    "threshold": np.float64,
    "left": np.int32,
    "right": np.int32,
    "default_left": np.bool_,
    "missing_type": np.uint8,
    "cat_index": np.int32,
    "value": np.float64,
    "gain": np.float64,
    "cover": np.float64,
    "count": np.float64,
    "native_id": np.int32,
}

#: :func:`treeprune.predict.predict_ensemble` once imported: the import (which loads Numba) waits
#: for the first prediction, and a one-row call should not pay an import statement each time.
_PREDICT: list = []


def _load_predict() -> Any:
    from .predict import predict_ensemble

    _PREDICT.append(predict_ensemble)
    return predict_ensemble


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A boosted tree ensemble (see the module docstring for the exact layout).

    Build one with :func:`treeprune.load`; passes return new ensembles, never modifying theirs.
    """

    # per node
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    missing_type: np.ndarray
    cat_index: np.ndarray
    value: np.ndarray
    gain: np.ndarray
    cover: np.ndarray
    count: np.ndarray
    native_id: np.ndarray
    # categorical bitset pool
    cat_bounds: np.ndarray
    cat_words: np.ndarray
    # per tree
    tree_offsets: np.ndarray
    tree_group: np.ndarray
    tree_weight: np.ndarray
    # per ensemble
    objective: Objective
    base_margin: np.ndarray
    folded_intercept: np.ndarray
    n_features: int
    feature_names: tuple[str, ...]
    feature_types: tuple[str, ...]
    categories: dict[int, tuple[Any, ...]]
    monotone_constraints: tuple[int, ...]
    source: str
    source_meta: dict[str, Any] = field(default_factory=dict)
    history: tuple[Any, ...] = ()  # PassRecord of every pass that made this ensemble, in order

    def __post_init__(self) -> None:
        for name in (*NODE_FIELDS, "cat_bounds", "cat_words", "tree_offsets", "tree_group",
                     "tree_weight", "base_margin", "folded_intercept"):
            arr = getattr(self, name)
            if isinstance(arr, np.ndarray) and arr.flags.writeable:
                arr = arr.copy()
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)

    # -- construction helpers ---------------------------------------------------------------
    def replace(self, **changes: Any) -> Ensemble:
        """A copy with some fields replaced (arrays are shared, they are read-only)."""
        return dataclasses.replace(self, **changes)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_trees(self) -> int:
        return int(len(self.tree_offsets) - 1)

    @property
    def n_nodes(self) -> int:
        return int(self.tree_offsets[-1])

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    @property
    def n_leaves(self) -> int:
        return int(np.count_nonzero(self.left < 0))

    @property
    def n_groups(self) -> int:
        return self.objective.n_groups

    @property
    def is_categorical(self) -> np.ndarray:
        return self.cat_index >= 0

    def tree_slice(self, t: int) -> slice:
        return slice(int(self.tree_offsets[t]), int(self.tree_offsets[t + 1]))

    def tree_of_node(self) -> np.ndarray:
        """The tree each node belongs to, shape (n_nodes,)."""
        return np.repeat(np.arange(self.n_trees), np.diff(self.tree_offsets))

    def tree_n_leaves(self) -> np.ndarray:
        """Leaves per tree, shape (n_trees,)."""
        return np.bincount(self.tree_of_node()[self.left < 0], minlength=self.n_trees)

    def node_depths(self) -> np.ndarray:
        """Depth of every node (root = 0), shape (n_nodes,)."""
        depth = np.zeros(self.n_nodes, dtype=np.int32)
        for t in range(self.n_trees):
            base = int(self.tree_offsets[t])
            n = int(self.tree_offsets[t + 1]) - base
            # children always have a larger depth; walk in an order where parents come first
            stack = [0]
            while stack:
                i = stack.pop()
                if self.left[base + i] >= 0:
                    for c in (int(self.left[base + i]), int(self.right[base + i])):
                        if not 0 <= c < n:
                            continue
                        depth[base + c] = depth[base + i] + 1
                        stack.append(c)
        return depth

    def tree_depths(self) -> np.ndarray:
        """Maximum depth of each tree (a single leaf has depth 0)."""
        depth = self.node_depths()
        out = np.zeros(self.n_trees, dtype=np.int32)
        np.maximum.at(out, self.tree_of_node(), depth)
        return out

    def leaf_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Leaves numbered compactly across the ensemble ("slots"), in node order.

        Returns ``slot_of_node`` (n_nodes,; meaningful on leaves), ``slot_node`` (n_slots,: node
        id of each slot), ``slot_tree_start`` (n_trees + 1,) and ``values`` (n_slots,: leaf value
        times tree weight).
        """
        is_leaf = self.left < 0
        slot_of_node = np.cumsum(is_leaf) - 1
        slot_node = np.flatnonzero(is_leaf)
        tree_of_node = self.tree_of_node()
        slot_tree_start = np.concatenate(
            [[0], np.cumsum(np.bincount(tree_of_node[is_leaf], minlength=self.n_trees))]
        ).astype(np.int64)
        values = self.value[slot_node] * self.tree_weight[tree_of_node[slot_node]]
        return slot_of_node, slot_node, slot_tree_start, values.astype(np.float64)

    def features_used(self) -> np.ndarray:
        """Sorted indices of the features any split uses."""
        return np.unique(self.feature[self.left >= 0]).astype(np.int64)

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        X: Any,
        output: str = "prediction",
        n_threads: int | None = None,
    ) -> np.ndarray:
        """Predict with the ensemble's own decision rules (Numba kernels).

        Parameters
        ----------
        X : array-like, pandas.DataFrame, dask DataFrame or dask Array, shape (n_rows, n_features)
            DataFrame columns are aligned to the model's feature names; categorical columns are
            encoded with the categories the model stores. A dask collection gives a lazy dask
            array, computed partition by partition (``treeprune[dask]``; see
            :func:`treeprune.scaleout.predict_dask`).
        output : {"prediction", "margin", "leaf", "per_tree", "score", "contrib"}
            ``"prediction"``: probability (binary), class probabilities (multiclass) or the
            prediction on the response scale. ``"margin"``: raw score before the link.
            ``"leaf"``: int32 (n_rows, n_trees) leaf ids in the native numbering.
            ``"per_tree"``: (n_rows, n_trees) contribution of each tree to its group's margin.
            ``"score"``: scorecard points from the margin with the saved :attr:`scorecard`.
            ``"contrib"``: exact TreeSHAP value of every feature plus the bias (last column), equal
            to XGBoost ``pred_contribs`` / LightGBM ``pred_contrib`` and in their layouts; each
            row sums to the margin (see :mod:`treeprune.contrib`).
        n_threads : int, optional
            Threads for the row-parallel kernels (default: all cores numba sees; 1 per partition
            for dask input, where the workers give the parallelism).

        Returns
        -------
        numpy.ndarray or dask.array.Array
        """
        predict_ensemble = _PREDICT[0] if _PREDICT else _load_predict()
        if type(X) is not np.ndarray:  # a plain numpy array is never a dask collection
            from .scaleout import is_dask_collection

            if is_dask_collection(X):  # lazy, partition-wise (treeprune[dask])
                from .scaleout._predict import predict_dask

                return predict_dask(self, X, output=output, n_threads=n_threads)
        return predict_ensemble(self, X, output, n_threads)

    def predictor(self, output: str = "prediction", *, n_threads: int | None = None,
                  compiled: bool = False, cache_dir: Any = None) -> Any:
        """A callable ``f(X)`` equal to ``self.predict(X, output)``, set up once for fast calls.

        For services and loops over single rows: checks, packing and (with ``compiled=True``)
        compiling the model to its own machine code, cached on disk by model hash, happen here
        rather than on every call. See :class:`treeprune.predict.Predictor`.

        Parameters
        ----------
        output : {"prediction", "margin", "score", "leaf", "per_tree", "contrib"}
            What each call returns.
        n_threads : int, optional
            Threads for calls on many rows.
        compiled : bool
            Compile the model (seconds the first time; then loaded from the cache).
        cache_dir : str or Path, optional
            Where compiled models are cached (default ``$TREEPRUNE_CACHE_DIR`` or the user
            cache directory).

        Returns
        -------
        treeprune.predict.Predictor
        """
        from .predict import Predictor

        return Predictor(self, output, n_threads=n_threads, compiled=compiled,
                         cache_dir=cache_dir)

    # -- scorecard ---------------------------------------------------------------------------
    @property
    def scorecard(self) -> Any:
        """The :class:`~treeprune.Scorecard` saved with this model, or None."""
        stored = self.source_meta.get(SCORECARD_KEY)
        if not stored:
            return None
        from .scorecard import Scorecard

        return Scorecard.from_dict(stored)

    def with_scorecard(self, scorecard: Any) -> Ensemble:
        """A copy that carries ``scorecard``; ``save`` stores it in the model file (an XGBoost
        attribute, a line of the LightGBM text), so that a reload scores identically."""
        from .errors import UnsupportedModelError

        if scorecard is not None and not self.objective.is_binary:
            raise UnsupportedModelError("scorecard points need a binary (logistic) model")
        meta = dict(self.source_meta)
        meta[SCORECARD_KEY] = None if scorecard is None else scorecard.to_dict()
        return self.replace(source_meta=meta)

    # -- output ------------------------------------------------------------------------------
    def save(self, path: Any, format: str | None = None, overwrite: bool = True) -> None:
        """Write the ensemble in its source format (or ``format``), atomically.

        ``.json``/``.ubj`` write XGBoost, ``.txt`` LightGBM. Refuses to write over the file the
        model was read from.
        """
        from .io import save

        save(self, path, format=format, overwrite=overwrite)

    def to_xgboost(self) -> Any:
        """A native ``xgboost.Booster`` with the same predictions."""
        from .io.xgboost import to_booster

        return to_booster(self)

    def to_lightgbm(self) -> Any:
        """A native ``lightgbm.Booster`` with the same predictions."""
        from .io.lightgbm import to_booster

        return to_booster(self)

    # -- description -------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable multi-line description: sizes, depths, features, objective, base margin."""
        depths = self.tree_depths()
        dist = Counter(depths.tolist())
        used = self.features_used()
        names = [self.feature_names[i] for i in used] if self.feature_names else [str(i) for i in used]
        shown = ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else "")
        leaves = self.tree_n_leaves()
        n_cat = int(np.count_nonzero((self.cat_index >= 0) & (self.left >= 0)))
        lines = [
            f"treeprune.Ensemble ({self.source})",
            f"  objective      {self.objective.name}  (loss={self.objective.loss}, "
            f"output={self.objective.output}, groups={self.n_groups})",
            f"  trees          {self.n_trees}",
            f"  leaves         {self.n_leaves}  (per tree: min {leaves.min() if len(leaves) else 0}, "
            f"median {int(np.median(leaves)) if len(leaves) else 0}, max {leaves.max() if len(leaves) else 0})",
            f"  nodes          {self.n_nodes}  ({n_cat} categorical splits)",
            "  depth          " + ", ".join(f"{d}: {c}" for d, c in sorted(dist.items())),
            f"  features       {len(used)} of {self.n_features} used: {shown}",
            f"  base margin    {np.array2string(np.asarray(self.base_margin), precision=6)}",
        ]
        if np.any(self.folded_intercept != 0):
            lines.append(
                "  intercept      "
                f"{np.array2string(np.asarray(self.folded_intercept), precision=6)} "
                "(folded into the first tree of each class)"
            )
        if any(self.monotone_constraints):
            mono = {self.feature_names[i] if self.feature_names else str(i): c
                    for i, c in enumerate(self.monotone_constraints) if c}
            lines.append(f"  monotone       {mono}")
        if np.any(self.tree_weight != 1.0):
            lines.append("  tree weights   DART (not all 1)")
        meta = self.source_meta or {}
        if meta.get("written_by"):
            lines.append(f"  written by     {meta['written_by']} ({meta.get('written_encoding')})")
        for note in meta.get("semantic_notes") or ():
            # scores follow the writing release; say what differs from today's library
            lines.append(f"  version rule   {note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Ensemble(source={self.source!r}, objective={self.objective.name!r}, "
            f"n_trees={self.n_trees}, n_leaves={self.n_leaves}, n_features={self.n_features})"
        )


__all__ = ["Ensemble", "NODE_FIELDS"]
