"""The public credit data sets in ../shared/data, for tests that need real models.

Tests that use them skip with a clear reason where the folder is absent (the data are never
copied into this repository; only the Taiwan data ship, compressed, inside the package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

FILES = {
    "taiwan": ("taiwan_credit_default/UCI_Credit_Card.csv", "target"),
    "heloc": ("heloc/heloc_dataset_v1.csv", "RiskPerformance"),
    "german": ("german_credit/germancredit.csv", "creditability"),
    "hmeq": ("hmeq/hmeq.csv", "BAD"),
}


def load_credit(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (numeric, or pandas 'category' for text columns) and 0/1 labels (1 = bad)."""
    rel, target = FILES[name]
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"{path} not found: the shared credit data sets are not available here")
    df = pd.read_csv(path)
    raw = df.pop(target)
    if name == "heloc":
        y = (raw == "Bad").astype(float).to_numpy()
    elif name == "german":
        y = (raw == "bad").astype(float).to_numpy()
    else:
        y = raw.astype(float).to_numpy()
    df = df.drop(columns=[c for c in ("ID",) if c in df.columns])
    for col in df.columns:
        if df[col].dtype == object or str(df[col].dtype).startswith("str"):
            df[col] = df[col].astype("category")
    return df, y
