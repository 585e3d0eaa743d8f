"""The one place that starts a dask cluster: a client on a running scheduler or a LocalCluster.

The command line (``treeprune score``/``compare --data``), the tests and the benchmark all go
through :func:`cluster_client`, so a local cluster is always set up the same way: worker
processes with one thread each (the Numba kernels run one thread per partition; the cluster gives
the parallelism), a dashboard on a free port (``":0"``, so two clusters never fight over 8787),
and shut down on exit whatever happens inside.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from . import require_dask


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, n_workers: int | None = None,
                   memory_limit: str | float | None = "auto") -> Iterator[Any]:
    """A ``distributed.Client``: on the scheduler at ``scheduler``, else on a LocalCluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). The cluster is then left running.
    n_workers : int, optional
        Worker processes of the local cluster (default: the CPU count), one thread each.
    memory_limit : str or float, optional
        Per-worker memory limit of the local cluster (dask's ``"auto"`` by default).

    Yields
    ------
    distributed.Client
        Closed on exit; a local cluster is shut down too.
    """
    require_dask("a dask cluster")
    import distributed

    if scheduler:
        client = distributed.Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(
        n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
        dashboard_address=":0", memory_limit=memory_limit, silence_logs=40,
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


__all__ = ["cluster_client"]
