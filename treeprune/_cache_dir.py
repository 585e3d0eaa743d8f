"""Where treeprune keeps what it caches on disk (compiled models, parsed model files)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$TREEPRUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/treeprune``, else ``~/.cache/treeprune``."""
    env = os.environ.get("TREEPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "treeprune"


__all__ = ["default_cache_dir"]
