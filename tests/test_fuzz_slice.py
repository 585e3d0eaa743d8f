"""A fast slice of the differential fuzzing in ``benchmarks/fuzz_readers.py``.

Mutants of every format are read by treeprune and by the native library (each in a child
process): treeprune must end with a model or a typed error, and where both load a mutant their
leaf ids and margins must agree. The long campaign is run by hand (see the script).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_readers.py"


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [11])
def test_mutants_end_typed_or_equal(tmp_path: Path, seed: int) -> None:
    harness = _harness()
    rc = harness.main(["--mutants", "60", "--seed", str(seed), "--progress", "0",
                       "--skip-seed-check", "--results", str(tmp_path)])
    rows = {r["format"]: r for r in csv.DictReader(open(tmp_path / "fuzz_readers.csv"))}
    bugs = sorted(p.name for p in (tmp_path / "fuzz_bugs").glob("*.txt")) \
        if (tmp_path / "fuzz_bugs").exists() else []
    assert rc == 0, f"fuzzing found bugs: {bugs}"
    total = rows["all"]
    assert int(total["mutants"]) == 60
    assert int(total["tp:loaded"]) + int(total["tp:typed"]) + int(total["tp:typed-predict"]) == 60
    assert int(total["both:same"]) > 0  # the differential part really compared something
