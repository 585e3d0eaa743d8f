"""A small dask LocalCluster for tests: 2 worker processes with 1 thread each, always shut down."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def local_cluster():
    """A ``distributed.Client`` on a fresh 2-process LocalCluster (the library's own helper)."""
    pytest.importorskip("distributed",
                        reason="dask support not installed: pip install 'treeprune[dask]'")
    from treeprune.scaleout._cluster import cluster_client

    with cluster_client(n_workers=2, memory_limit="1GiB") as client:
        yield client
