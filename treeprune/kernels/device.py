"""Choosing where refits run: ``"cpu"``, ``"cuda"`` or ``"auto"``."""

from __future__ import annotations

import logging

from ..errors import DeviceError

log = logging.getLogger(__name__)


def cuda_available() -> bool:
    """True when numba.cuda is importable and finds a device (or the simulator is on)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any driver failure means "no GPU here"
        return False


def resolve_device(device: str) -> str:
    """Turn a device request into ``"cpu"`` or ``"cuda"``; raise when CUDA is asked but absent."""
    if device not in ("cpu", "cuda", "auto"):
        raise DeviceError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(
            "device='cuda' but no CUDA device was found (numba.cuda.is_available() is False); "
            "install treeprune[gpu] on a machine with an NVIDIA GPU, or use device='cpu'"
        )
    log.debug("device='auto': no CUDA device found, refitting on the CPU")
    return "cpu"


__all__ = ["cuda_available", "resolve_device"]
