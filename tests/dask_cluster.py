"""A small dask LocalCluster for tests: 2 worker processes with 1 thread each, always shut down."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def local_cluster():
    """A ``distributed.Client`` on a fresh 2-process LocalCluster; closed on exit."""
    distributed = pytest.importorskip(
        "distributed", reason="dask support not installed: pip install 'treeprune[dask]'"
    )
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit="1GiB", silence_logs=40,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
