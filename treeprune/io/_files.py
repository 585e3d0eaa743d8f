"""File helpers shared by readers and writers: reading sources, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelFormatError, TreePruneError


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a model file, turning OS errors into :class:`ModelFormatError`."""
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelFormatError(f"expected a model file, got a directory: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {p}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise ModelFormatError(f"model file is empty: {p}")
    return data


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True,
                       protect: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file. ``protect`` names a file (the model's source) that
    must never be overwritten; ``overwrite=False`` refuses any existing file.
    """
    target = Path(path)
    if protect is not None:
        try:
            same = target.exists() and os.path.samefile(target, protect)
        except OSError:
            same = False
        if same:
            raise TreePruneError(
                f"refusing to overwrite the source model file {target}; choose another output path"
            )
    if target.exists() and not overwrite:
        raise TreePruneError(f"output file exists: {target}; pass overwrite=True (CLI: --force)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.exists():
        raise TreePruneError(f"output folder does not exist: {folder}")
    import tempfile  # here: reading a model does not need it

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
