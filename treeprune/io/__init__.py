"""Readers and writers. ``load`` detects the format from content; ``save`` writes atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..ensemble import Ensemble
from ..errors import ConversionError, ModelFormatError
from . import _cache
from ._files import read_bytes


def _sniff(data: bytes) -> str:
    """Tell the format from the content: ``xgboost-json``/``-ubj``/``-binary``, ``lightgbm``."""
    from .xgboost.binary import looks_like_binary

    # first: a pre-1.0 binary file starts with a raw float, whose bytes may look like anything
    if looks_like_binary(data):
        return "xgboost-binary"
    head = data[:4096].lstrip()
    if head.startswith(b"{"):
        # UBJSON objects start with '{' too, followed by a type marker and a length ('L', 'i'..)
        if len(head) > 1 and head[1:2] in (b"L", b"i", b"U", b"l", b"I", b"$", b"#"):
            return "xgboost-ubj"
        return "xgboost-json"
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n") or b"\nversion=v" in head[:200]:
        return "lightgbm"
    raise ModelFormatError(
        "not a model file: expected XGBoost JSON/UBJ or a LightGBM text model "
        f"(starts with {data[:20]!r})"
    )


def load(source: Any, cache: bool = True) -> Ensemble:
    """Read a model into an :class:`~treeprune.Ensemble`.

    Parameters
    ----------
    source : str, path, bytes, xgboost.Booster, XGBModel, lightgbm.Booster or LGBMModel
        A model file (XGBoost JSON or UBJ, LightGBM text; told apart by content, not suffix), its
        bytes, or a native model object (which is never modified).
    cache : bool, default True
        Keep what a model file (or bytes) of 256 KiB or more parses to in treeprune's cache
        directory (``$TREEPRUNE_CACHE_DIR``, else the user cache directory), keyed by the content
        and treeprune's code, and read it from there the next time: a process that starts again
        on the same big model does not parse it again (:mod:`treeprune.io._cache`). The result
        is the same Ensemble either way; a cache directory that cannot be written is skipped.

    Returns
    -------
    Ensemble

    Raises
    ------
    ModelFormatError
        The source is missing, empty, not a model, truncated or inconsistent.
    UnsupportedModelError
        A valid model that uses something treeprune cannot represent exactly.
    """
    if isinstance(source, Ensemble):
        return source
    module = type(source).__module__ or ""
    if module.startswith("xgboost"):
        from .xgboost import read_xgboost_object

        return read_xgboost_object(source)
    if module.startswith("lightgbm"):
        from .lightgbm import read_lightgbm_object

        return read_lightgbm_object(source)
    path = None
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data.strip():
            raise ModelFormatError("model bytes are empty")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        data = read_bytes(path)
    else:
        raise ModelFormatError(
            f"cannot load a model from {type(source).__name__}; pass a file path, bytes, "
            "an xgboost Booster/XGBModel or a lightgbm Booster/LGBMModel"
        )
    entry = None
    if cache and len(data) >= _cache.MIN_BYTES:
        entry = _cache.entry_path(data)
        ens = _cache.read(entry) if entry is not None else None
        if ens is not None:
            return _with_path(ens, path)
    ens = _parse(data)
    if entry is not None:
        _cache.write(entry, ens)
    return _with_path(ens, path)


def _with_path(ens: Ensemble, path: Path | None) -> Ensemble:
    """``ens`` with the file it was read from in its ``source_meta`` (for ``save``'s guard)."""
    if path is None:
        return ens
    meta = dict(ens.source_meta)
    meta["source_path"] = str(path.resolve())
    return ens.replace(source_meta=meta)


def _parse(data: bytes) -> Ensemble:
    """The Ensemble of a model file's bytes, by the reader of its format."""
    kind = _sniff(data)
    if kind == "lightgbm":
        from .lightgbm import read_lightgbm_text

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFormatError(f"LightGBM model is not valid UTF-8 text: {exc}") from exc
        ens = read_lightgbm_text(text)
    elif kind == "xgboost-binary":
        from .xgboost import read_xgboost_binary

        ens = read_xgboost_binary(data)
    else:
        from .xgboost import read_xgboost_bytes

        ens = read_xgboost_bytes(data, ubj=(kind == "xgboost-ubj"))
    return ens


def _format_for(path: Path, format: str | None, ens: Ensemble) -> str:
    if format is not None:
        fmt = format.lower()
    else:
        suffix = path.suffix.lower()
        fmt = {".json": "json", ".ubj": "ubj", ".txt": "lightgbm", ".model": ens.source}.get(
            suffix, "json" if ens.source == "xgboost" else "lightgbm"
        )
    aliases = {"xgboost": "json", "lgb": "lightgbm", "lightgbm": "lightgbm", "json": "json",
               "ubj": "ubj", "txt": "lightgbm"}
    if fmt not in aliases:
        raise ConversionError(f"unknown output format {format!r}; use 'json', 'ubj' or 'lightgbm'")
    return aliases[fmt]


def save(ens: Ensemble, path: Any, format: str | None = None, overwrite: bool = True) -> None:
    """Write ``ens`` to ``path`` atomically; never over the file it was read from."""
    from ._files import atomic_write_bytes

    target = Path(path)
    fmt = _format_for(target, format, ens)
    if fmt == "lightgbm":
        from .lightgbm import to_text

        data = to_text(ens).encode("utf-8")
    else:
        from .xgboost import to_bytes

        data = to_bytes(ens, ubj=(fmt == "ubj"))
    atomic_write_bytes(target, data, overwrite=overwrite, protect=ens.source_meta.get("source_path"))


__all__ = ["load", "save"]
