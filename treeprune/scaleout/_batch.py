"""Batch scoring of Parquet files on a dask cluster (``treeprune score``).

Each input partition is scored and written by a worker, as its own Parquet file in the output
folder (written under a temporary name, then renamed, so a file is either whole or absent); the
client only sees progress. Workers must see the output folder (one machine, or a shared file
system), as with dask's own ``to_parquet``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..ensemble import Ensemble
from ..errors import DataError
from . import require_dask

#: Outputs ``treeprune score`` writes (one value, or one per class, per row).
SCORE_OUTPUTS = ("prediction", "margin", "score")


def read_parquet_glob(pattern: str) -> Any:
    """A dask DataFrame of the Parquet files ``pattern`` names (a glob, a file or a folder)."""
    require_dask("reading Parquet data sets")
    import dask.dataframe as dd

    local = "://" not in pattern
    if local and not glob.glob(pattern):
        raise DataError(f"no Parquet files match {pattern!r}")
    try:
        return dd.read_parquet(pattern)
    except (ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read Parquet data {pattern!r}: {first}") from exc


def _columns(output: str, probe: np.ndarray) -> list[str]:
    if probe.ndim == 1:
        return [output]
    return [f"{output}_{k}" for k in range(probe.shape[1])]


def _score_partition(ens: Ensemble, frame: Any, output: str, keep: Sequence[str],
                     columns: Sequence[str]) -> Any:
    import pandas as pd

    values = ens.predict(frame, output=output, n_threads=1)
    out = pd.DataFrame(values.reshape(len(frame), -1), columns=list(columns))
    for i, name in enumerate(keep):
        out.insert(i, name, frame[name].to_numpy())
    return out


def _write_partition(ens: Ensemble, frame: Any, output: str, keep: Sequence[str],
                     columns: Sequence[str], path: str) -> int:
    scored = _score_partition(ens, frame, output, keep, columns)
    tmp = f"{path}.tmp-{os.getpid()}"
    scored.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return len(scored)


def score_to_parquet(ens: Ensemble, data: Any, out_dir: str | os.PathLike, client: Any,
                     output: str = "prediction", keep: Sequence[str] = (),
                     progress: bool = True) -> int:
    """Score every row of the dask DataFrame ``data`` into ``out_dir/part-NNNNN.parquet``.

    Parameters
    ----------
    ens : Ensemble
    data : dask.dataframe.DataFrame
        One column per model feature (extra columns are ignored unless kept).
    out_dir : path
        An existing, empty folder.
    client : distributed.Client
    output : {"prediction", "margin", "score"}
    keep : sequence of str
        Columns of ``data`` copied into the output (an applicant id, say).
    progress : bool
        A progress bar on stderr, one step per partition.

    Returns
    -------
    int
        Rows scored.

    Raises
    ------
    DataError
        Unknown output, kept columns not in the data, or data that does not fit the model
        (checked on the metadata before anything runs).
    """
    import dask
    from distributed import as_completed
    from tqdm.auto import tqdm

    if output not in SCORE_OUTPUTS:
        raise DataError(f"output must be one of {', '.join(SCORE_OUTPUTS)}; got {output!r}")
    absent = [k for k in keep if k not in data.columns]
    if absent:
        raise DataError(f"--keep column(s) {', '.join(map(repr, absent))} not in the data")
    probe = ens.predict(data._meta, output=output, n_threads=1)  # the in-memory checks, eagerly
    columns = _columns(output, probe)
    clash = sorted(set(columns) & set(keep))
    if clash:
        raise DataError(f"kept column(s) {', '.join(clash)} clash with the output column names")
    model = client.scatter(ens, broadcast=True)
    parts = data.to_delayed()
    width = max(5, len(str(len(parts))))
    write = dask.delayed(_write_partition, pure=False)
    tasks = [write(model, part, output, tuple(keep), tuple(columns),
                   str(Path(out_dir) / f"part-{i:0{width}d}.parquet"))
             for i, part in enumerate(parts)]
    futures = client.compute(tasks)
    rows = 0
    with tqdm(total=len(futures), unit="partition", disable=not progress, desc="scoring") as bar:
        for future in as_completed(futures):
            rows += int(future.result())
            bar.update(1)
    return rows


__all__ = ["SCORE_OUTPUTS", "read_parquet_glob", "score_to_parquet"]
