"""What every pass shares: the record of what it did, appended to the ensemble's history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ensemble import Ensemble


@dataclass(frozen=True)
class PassRecord:
    """What one pass did to an ensemble.

    ``removed_trees`` are tree indices in the pass's *input*; ``collapsed_splits`` counts internal
    nodes turned into leaves (a collapsed subtree counts each of its splits).
    """

    name: str
    params: dict[str, Any]
    trees_before: int
    trees_after: int
    leaves_before: int
    leaves_after: int
    removed_trees: tuple[int, ...] = ()
    collapsed_splits: int = 0
    lossless: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.name}: trees {self.trees_before} -> {self.trees_after}, "
            f"leaves {self.leaves_before} -> {self.leaves_after}"
            + (f", {self.collapsed_splits} splits collapsed" if self.collapsed_splits else "")
        )


def record(before: Ensemble, after: Ensemble, name: str, params: dict[str, Any], *,
           removed_trees: tuple[int, ...] = (), collapsed_splits: int = 0,
           lossless: bool = False, **details: Any) -> Ensemble:
    """Return ``after`` with a :class:`PassRecord` of the change appended to its history."""
    rec = PassRecord(
        name=name,
        params=dict(params),
        trees_before=before.n_trees,
        trees_after=after.n_trees,
        leaves_before=before.n_leaves,
        leaves_after=after.n_leaves,
        removed_trees=tuple(int(t) for t in removed_trees),
        collapsed_splits=int(collapsed_splits),
        lossless=lossless,
        details=details,
    )
    return after.replace(history=(*before.history, rec))


__all__ = ["PassRecord", "record"]
