"""Numba kernels: the only place in treeprune with ``@njit``/``@cuda.jit`` code."""

__all__: list[str] = []
