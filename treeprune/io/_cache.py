"""Parsed model files kept on disk, keyed by their content, so that a process that starts again
on the same model file does not parse it again.

Parsing is most of what :func:`treeprune.load` costs on a big model: an 800-tree XGBoost JSON
file (4.8 MB) takes about 0.13 s, half of it the standard library's JSON decoder, and an 800-tree
LightGBM text file (5.5 MB) about 0.15 s, a third of it numpy's decimal conversion of 300,000
numbers, both already one pass over all the trees. A scoring service that starts with
``tp.load(path)`` reads the same file at every start; from this cache the same load takes the
file's hash and the read of one pickle (about 15 ms).

Key: SHA-256 of the file's bytes and of what the reading depends on: treeprune's version, the
size and modification time of every module the readers run (a changed reader makes a new key, as
Numba's cache does for its kernels), and the versions of Python and numpy (the pickle's format).
Entries: the fields of the Ensemble as the readers return it (before ``load`` adds the file's
path), pickled behind a checksum (a damaged array byte would still unpickle, as another model),
read back by an unpickler that builds nothing but containers, numpy arrays and an Objective (a
file planted in the cache cannot run code, though like any cache it is trusted for its values),
written through a temporary file and a rename (a reader never sees half a file). A file that
cannot be read back (missing, damaged, foreign) is parsed as if there were no cache, and a cache
that cannot be written (a read-only or missing directory) is left alone: the cache only ever
saves time. The entries are kept to
``MAX_BYTES`` in all, the least recently used removed first; a temporary file that a writer left
when it died goes after an hour.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._cache_dir import default_cache_dir
from ..ensemble import NODE_FIELDS, Ensemble

#: Files smaller than this are parsed every time: they parse in a few milliseconds, and a cache
#: entry for every small model (tests, fuzzing) would only fill the directory.
MIN_BYTES = 256 * 1024
#: The entries are trimmed to this many bytes in all, the least recently used first (every
#: changed reader and every model file makes new entries; none would ever go otherwise).
MAX_BYTES = 512 * 1024 * 1024
#: Bump when the entries change meaning (it is part of the key, with the package's modules).
FORMAT = 2
#: An entry: this tag, the CRC-32 of the pickle (4 bytes, little-endian), the pickle. A pickle
#: whose array bytes were damaged (a bad disk block, a crash that left part of a block zeroed)
#: still unpickles, as another model; the checksum makes it a miss (about 1 ms on 5 MB).
_TAG = b"TPPARSED"
_SUBDIR = "parsed"
_ARRAYS = (*NODE_FIELDS, "cat_bounds", "cat_words", "tree_offsets", "tree_group", "tree_weight",
           "base_margin", "folded_intercept")
#: The only globals an entry may name: numpy's array and scalar rebuilders, the Objective.
_ALLOWED = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("treeprune.objectives", "Objective"),
    ("builtins", "set"), ("builtins", "frozenset"), ("collections", "OrderedDict"),
}
#: The modules outside treeprune.io that the readers import (with treeprune.io itself, the
#: code an entry depends on: a change of any of them makes new keys).
_BELOW_IO = ("__init__.py", "_cache_dir.py", "_rules.py", "ensemble.py", "errors.py",
             "objectives.py", "trees.py")
_CODE: list[bytes | None] = []


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a parsed model")
        return super().find_class(module, name)


def _code_files() -> list[Path]:
    """The modules the readers run: every module of treeprune.io and the modules below it that
    it imports (held by a test that reads every kind of model file)."""
    root = Path(__file__).resolve().parents[1]
    files = [root / name for name in _BELOW_IO]
    for folder, dirs, names in os.walk(root / "io"):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


def _code_fingerprint() -> bytes | None:
    """treeprune's version and its readers' sizes and modification times, Python's and numpy's
    versions: what the parsed arrays and the pickle's format depend on (once per process).
    None where the readers' sources cannot be seen (an install without them): no cache then,
    since a changed reader could not be told from the old one."""
    if not _CODE:
        from .. import __version__

        root = Path(__file__).resolve().parents[1]
        parts = [f"{FORMAT}|{__version__}|{sys.version}|{np.__version__}"]
        try:
            for path in _code_files():
                st = path.stat()
                parts.append(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}")
            if not (root / "io" / "__init__.py").is_file():
                raise FileNotFoundError(root / "io" / "__init__.py")
            _CODE.append("\n".join(parts).encode())
        except (OSError, ValueError):
            _CODE.append(None)
    return _CODE[0]


def entry_path(data: bytes, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where the Ensemble parsed from the model bytes ``data`` is kept; None where there is no
    cache (no readers' sources to key it by, or no cache directory: no home directory)."""
    import hashlib  # here: a load of a small model does not need it (its import takes 5 ms)

    code = _code_fingerprint()
    if code is None:
        return None
    try:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    except (OSError, RuntimeError, KeyError):  # Path.home() without a home directory
        return None
    digest = hashlib.sha256(code)
    digest.update(hashlib.sha256(data).digest())
    return folder / _SUBDIR / f"{digest.hexdigest()}.pickle"


def _dumps(ens: Ensemble) -> bytes:
    """The Ensemble's fields, pickled (not the object: what a process cached on it, such as its
    packed layouts, stays out), behind the tag and the pickle's checksum."""
    fields = {f.name: getattr(ens, f.name) for f in dataclasses.fields(Ensemble)}
    blob = pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)
    return _TAG + zlib.crc32(blob).to_bytes(4, "little") + blob


def _loads(entry: bytes) -> Ensemble:
    head = len(_TAG) + 4
    blob = memoryview(entry)[head:]
    if entry[:len(_TAG)] != _TAG or zlib.crc32(blob) != int.from_bytes(entry[len(_TAG):head],
                                                                        "little"):
        raise pickle.UnpicklingError("not a parsed model, or a damaged one")
    stream = io.BytesIO(entry)  # shares the bytes: no copy of the pickle
    stream.seek(head)
    fields = _Unpickler(stream).load()
    names = [f.name for f in dataclasses.fields(Ensemble)]
    if type(fields) is not dict or sorted(fields) != sorted(names):
        raise pickle.UnpicklingError("not a parsed model")
    for name in _ARRAYS:
        if type(fields[name]) is not np.ndarray:
            raise pickle.UnpicklingError(f"{name} is not an array")
    # the constructor makes the arrays read-only, as a parsed model's are
    return Ensemble(**fields)


def read(path: Path) -> Ensemble | None:
    """The Ensemble kept at ``path``, or None when there is none that reads back."""
    try:
        ens = _loads(path.read_bytes())
    except Exception:  # a damaged or foreign file of any kind is a miss, never an error
        return None
    try:
        os.utime(path)  # recently used: the last to be trimmed
    except OSError:
        pass
    return ens


#: A writer's temporary file older than this was left by a process that died before its rename.
STALE_TEMP_SECONDS = 3600


def _trim(folder: Path, max_bytes: int) -> None:
    """Remove the least recently used entries of ``folder`` until they fit in ``max_bytes``, and
    the temporary files of writers that died (older than ``STALE_TEMP_SECONDS``)."""
    import time

    try:
        for p in folder.glob(".*.tmp"):
            if time.time() - p.stat().st_mtime > STALE_TEMP_SECONDS:
                p.unlink()
    except OSError:  # another process took it first, or it cannot be removed: leave it
        pass
    try:
        entries = []
        for p in folder.glob("*.pickle"):
            st = p.stat()
            entries.append((st.st_mtime_ns, st.st_size, p))
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        try:
            p.unlink()
        except OSError:  # another process removed it, or it cannot be: leave it
            continue
        total -= size


def write(path: Path, ens: Ensemble) -> None:
    """Keep ``ens`` at ``path`` (atomically); nothing happens where the cache cannot be written
    or the entry would not read back."""
    import tempfile

    try:
        blob = _dumps(ens)
        _loads(blob)  # an entry the reader would refuse is not written
    except Exception:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _trim(path.parent, MAX_BYTES)


__all__ = ["MIN_BYTES", "entry_path", "read", "write"]
