"""Fixtures shared by several test modules."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# what treeprune caches on disk (parsed model files, compiled models) goes to a folder of this
# test run, not to the user's cache directory; a test that needs another sets its own
if "TREEPRUNE_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="treeprune-tests-")
    os.environ["TREEPRUNE_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def client():
    """A dask ``distributed.Client`` on a fresh 2-process LocalCluster for the module, shut down
    after it (skips without the dask extra)."""
    from dask_cluster import local_cluster

    with local_cluster() as c:
        yield c
