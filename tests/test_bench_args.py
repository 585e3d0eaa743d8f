"""The benchmarks refuse bad arguments before any work (a typo found after hours of sections
costs the whole run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_prune_refuses_a_bad_holds_mode_before_any_work(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_prune

    def started(*args, **kwargs):
        raise AssertionError("work started before --holds-modes was checked")

    monkeypatch.setattr(bench_prune, "warm_up", started)
    monkeypatch.setattr(sys, "argv", ["bench_prune.py", "--holds-modes", "auc,fidelty"])
    with pytest.raises(SystemExit) as exc:
        bench_prune.main()
    assert exc.value.code == 2
