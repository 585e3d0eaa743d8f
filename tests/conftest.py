"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    """A dask ``distributed.Client`` on a fresh 2-process LocalCluster for the module, shut down
    after it (skips without the dask extra)."""
    from dask_cluster import local_cluster

    with local_cluster() as c:
        yield c
