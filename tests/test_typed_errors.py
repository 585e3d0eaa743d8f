"""Internal helpers reject bad input with treeprune's typed errors, never a bare ValueError."""

from __future__ import annotations

import numpy as np
import pytest

from treeprune._rules import FEATURE_MASK
from treeprune.errors import ModelFormatError, UnsupportedModelError
from treeprune.objectives import Objective
from treeprune.packed import pack
from treeprune.trees import Tree, assemble, bfs_order, empty_nodes

BINARY = Objective("binary:logistic", "logloss", "sigmoid")


def _stump() -> Tree:
    nodes = empty_nodes(3)
    nodes["feature"][0] = 0
    nodes["threshold"][0] = 0.5
    nodes["left"][0], nodes["right"][0] = 1, 2
    nodes["value"][1:] = [-1.0, 1.0]
    return Tree(nodes)


def test_bfs_order_names_a_node_reached_twice() -> None:
    tree = _stump()
    tree.nodes["right"][0] = 1  # both children are node 1
    with pytest.raises(ModelFormatError, match="node 1 is reached twice"):
        bfs_order(tree)


def test_pack_rejects_more_features_than_the_node_word_holds() -> None:
    ens = assemble(None, [_stump()], objective=BINARY, base_margin=np.zeros(1),
                   folded_intercept=np.zeros(1), n_features=FEATURE_MASK + 1, feature_names=(),
                   feature_types=(), categories={}, monotone_constraints=(), source="xgboost",
                   source_meta={})
    with pytest.raises(UnsupportedModelError, match="features"):
        pack(ens)
