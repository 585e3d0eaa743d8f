"""An in-memory SQLite database for the SQL export tests, with ``exp`` where the build lacks it."""

from __future__ import annotations

import math
import sqlite3


def connect() -> sqlite3.Connection:
    """A new in-memory connection; ``exp`` is added when SQLite was built without math functions."""
    con = sqlite3.connect(":memory:")
    try:
        con.execute("SELECT exp(0.5)").fetchone()
    except sqlite3.OperationalError:  # an SQLite built without math functions
        con.create_function("exp", 1, math.exp, deterministic=True)
    return con
