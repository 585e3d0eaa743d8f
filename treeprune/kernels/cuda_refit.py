"""Leaf refit on an NVIDIA GPU with ``numba.cuda``: the GPU twin of ``kernels.stats.refit_cyclic``.

Two array-level entry points, driven by :func:`treeprune.passes.datadriven.refit_leaves`
(``device="cuda"``), which does the host-side work (intercept, labels, weights, monotone
projection, the pass record) once for both devices:

* :func:`route_leaves_cuda` routes rows to leaves (``kernels.device.go_right``, the decision
  rule that ``kernels.traverse`` compiles for the CPU, compiled as a CUDA device function,
  walking plain node arrays: the CPU's packed layout is tuned for CPU caches) into a tree-major matrix of *local* leaf numbers in the smallest integer type
  that holds them (uint8 for trees of up to 256 leaves: 800 trees x 10M rows is 8 GB; the CPU
  refit holds int32 (rows, trees)). It can leave that matrix on the GPU for the refit.
* :func:`refit_cyclic_cuda` runs the algorithm of the CPU refit: cyclic block-coordinate Newton
  over the intercept (one block per output group, first in each round, when ``update_base``) and
  the trees (one block per tree), an L2 penalty pulling each leaf towards its value before the
  refit, Newton steps clamped to ``max_step``, and an optional projection of the leaf values (on
  the host) between rounds. The gradients, hessians and steps are the very functions the CPU
  kernels call (:mod:`treeprune.kernels.losses`); only the order of the floating-point sums (and
  the last bit of ``exp``) differs, so the leaf values agree with the CPU refit far within 1e-6
  relative.

What runs where
---------------
* The data go to the GPU once per refit: the feature matrix (to route rows; freed once rows are
  routed), labels, weights. When the leaf matrix or the margins do not fit in free GPU memory a
  ``DeviceError`` is raised (refit on a row subsample, or on the CPU). The margins (float64,
  ``(n_groups, n_rows)``) stay on the GPU for the whole refit.
* One kernel launch per block and round, plus one: launch ``i`` applies the Newton step of block
  ``i - 1`` to the margins (every GPU block recomputes the clamped steps of that block's leaves
  from its gradient/hessian sums into shared memory) and, at the updated margins, accumulates the
  weighted gradient and hessian sums of block ``i`` (per GPU block in shared memory, then one
  global atomic add per leaf and GPU block). Fusing "apply step t-1" and "accumulate t" is exact
  because both only touch the row's own margins. Leaf values are double-buffered (old values are
  read to form the steps, new ones written once per slot), so no launch reads what it writes.
  An 800-tree model with ``n_rounds=10`` makes about 8,000 launches; numba's launch overhead
  (tens of microseconds each) dominates below ~1M rows, and the memory traffic (labels, weights,
  margins, one leaf column per launch) above it.
* Only the per-slot values cross back to the host, and only when a projection is asked for
  between rounds, and once at the end (values and margins).

Why float64
-----------
Gradient and hessian sums are accumulated in float64, with float64 atomic adds (native on
compute capability 6.0 and later, i.e. every GPU numba-cuda supports). A Newton step is a ratio
of sums over up to millions of rows in which gradients largely cancel (their sum is near zero at
the optimum): float32 sums would carry errors of 1e-4 relative or worse, and float32 atomics make
them depend on the order in which blocks finish, so the refit could not match the CPU refit to
1e-6. Margins and leaf values are float64 as on the CPU.

``numba.cuda`` (``pip install treeprune[gpu]``, i.e. ``numba-cuda``) is imported only inside the
functions of this module, so ``import treeprune`` never needs it. Set ``NUMBA_ENABLE_CUDASIM=1``
before numba is imported to run these kernels on the CPU through numba's CUDA simulator (slow:
tests use a few hundred rows).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .._rules import FLAG_EXACT_LE, LOSS_SOFTMAX, RULE_LIGHTGBM
from ..errors import DeviceError
from . import device as device_rule
from .losses import base_step, fmin, grad_hess_row, leaf_step, softmax_grad_hess

log = logging.getLogger(__name__)

#: Leaves per tree held in shared memory (per GPU block); larger trees use global atomics.
SHARED_LEAVES = 512

cuda: Any = None  # numba.cuda, bound by _kernels() on first use (never at import)


class RouteNodes(NamedTuple):
    """The node arrays :func:`route_leaves_cuda` walks; node ids are global (across trees).

    ``roots`` (n_trees,) int32: root of each tree. ``feature`` int32 (-1 on leaves),
    ``threshold`` (float32 for the XGBoost rule, float64 for LightGBM's), ``left``/``right``
    int32 global child ids, ``flags`` uint8 (``FLAG_DEFAULT_LEFT | FLAG_MISSING_ZERO |
    FLAG_MISSING_NAN | FLAG_CATEGORICAL`` of ``treeprune._rules``), ``cat`` int32 (index into
    ``cat_bounds``, -1 for numerical splits), ``cat_bounds`` int64 / ``cat_words`` uint32 (the
    bitset pool, at least one element each), ``leaf_local`` (the leaf matrix's integer type): the
    local number of each leaf within its tree.
    """

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    flags: np.ndarray
    cat: np.ndarray
    cat_bounds: np.ndarray
    cat_words: np.ndarray
    leaf_local: np.ndarray


# --------------------------------------------------------------------------- kernels
@functools.lru_cache(maxsize=1)
def _kernels() -> dict[str, Any]:
    """Define (once) the device functions and kernels; numba compiles each on first launch.

    ``cuda`` is bound as a module global (not a local) because the CUDA simulator swaps the
    ``numba.cuda`` module in a kernel's globals for its fake one.
    """
    global cuda
    from numba import cuda as _cuda
    from numba import float64

    cuda = _cuda

    SH = SHARED_LEAVES

    # -- routing: the one rule of kernels.device, which kernels.traverse compiles for the CPU --
    go_right = cuda.jit(device=True)(device_rule.go_right)

    @cuda.jit
    def route_kernel(X, roots, feature, threshold, left, right, flags, cat, cat_bounds,
                     cat_words, rule, leaf_local, leaf):
        """``leaf[t, r]`` = local leaf number of row r in tree t (trees over grid dim y)."""
        n = X.shape[0]
        r0 = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        rs = cuda.gridDim.x * cuda.blockDim.x
        for t in range(cuda.blockIdx.y, roots.shape[0], cuda.gridDim.y):
            root = roots[t]
            for r in range(r0, n, rs):
                node = root
                f = feature[node]
                while f >= 0:
                    if go_right(X[r, f], threshold[node], flags[node], cat[node], cat_bounds,
                                cat_words, rule):
                        node = right[node]
                    else:
                        node = left[node]
                    f = feature[node]
                leaf[t, r] = leaf_local[node]

    # -- statistics: the loss functions and steps of kernels.losses ---------------------------
    @cuda.jit(device=True)
    def grad_hess(loss, y, margin, r, c, p1):
        """kernels.stats.grad_hess_at for row r, in the class-major margin layout."""
        if loss == LOSS_SOFTMAX:
            return softmax_grad_hess(margin[:, r], c, y[r])
        return grad_hess_row(loss, y[r], margin[c, r], p1)

    @cuda.jit(device=True)
    def newton_step(s, is_base, G, H, v, prior, l2, step, max_step):
        """The clamped Newton step of slot s, as refit_cyclic computes it."""
        if is_base:
            return base_step(G[s], H[s], step, max_step)
        return leaf_step(G[s], H[s], v[s], prior[s], l2, step, max_step)

    @cuda.jit(device=True)
    def block_at(blocks, i):
        """(tree, group, first slot, slots) of block ``i``; tree -1 for an intercept or none."""
        if i < 0:
            return -1, 0, 0, 0
        return blocks[i, 0], blocks[i, 1], blocks[i, 2], blocks[i, 3]

    @cuda.jit
    def zero_kernel(G, H):
        for i in range(cuda.grid(1), G.shape[0], cuda.gridsize(1)):
            G[i] = 0.0
            H[i] = 0.0

    @cuda.jit
    def margin_kernel(leaf, tree_group, slot_tree_start, values, n_slots, margin):
        """``margin[c, r] = base[c] + sum_t values[slot(r, t)]``, trees in order (as on the CPU)."""
        n = margin.shape[1]
        for r in range(cuda.grid(1), n, cuda.gridsize(1)):
            for c in range(margin.shape[0]):
                margin[c, r] = values[n_slots + c]
            for t in range(leaf.shape[0]):
                margin[tree_group[t], r] += values[slot_tree_start[t] + leaf[t, r]]

    @cuda.jit
    def stage_kernel(leaf, margin, y, w, G, H, v_old, v_new, prior, blocks, a, b, loss, p1, l2,
                     step, max_step):
        """Apply the Newton step of block ``a`` (if >= 0), then accumulate block ``b`` (if >= 0).

        A block (a row of ``blocks``) is a tree (tree >= 0: its leaves' slots) or the intercept
        of one group (tree -1: one slot that every row reaches). ``w`` holds one weight per row,
        or a single weight that every row has.
        """
        sG = cuda.shared.array(SH, float64)
        sH = cuda.shared.array(SH, float64)
        sD = cuda.shared.array(SH, float64)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        gid = cuda.grid(1)
        gsz = cuda.gridsize(1)
        n = y.shape[0]
        w_uniform = w.shape[0] == 1

        a_tree, a_c, a_s0, a_n = block_at(blocks, a)
        b_tree, b_c, b_s0, b_n = block_at(blocks, b)
        if a >= 0:
            for i in range(tid, fmin(a_n, SH), nt):
                sD[i] = newton_step(a_s0 + i, a_tree < 0, G, H, v_old, prior, l2, step, max_step)
            for i in range(gid, a_n, gsz):
                v_new[a_s0 + i] = v_old[a_s0 + i] + newton_step(a_s0 + i, a_tree < 0, G, H, v_old,
                                                                prior, l2, step, max_step)
        if b >= 0:
            for i in range(tid, fmin(b_n, SH), nt):
                sG[i] = 0.0
                sH[i] = 0.0
        cuda.syncthreads()

        rg = 0.0
        rh = 0.0
        for r in range(gid, n, gsz):
            if a >= 0:
                j = 0
                if a_tree >= 0:
                    j = leaf[a_tree, r]
                if a_n <= SH:
                    d = sD[j]
                else:
                    d = newton_step(a_s0 + j, False, G, H, v_old, prior, l2, step, max_step)
                margin[a_c, r] += d
            if b >= 0:
                gr, hr = grad_hess(loss, y, margin, r, b_c, p1)
                wr = w[0] if w_uniform else w[r]
                gr = wr * gr
                hr = wr * hr
                if b_tree < 0:
                    rg += gr
                    rh += hr
                else:
                    j = leaf[b_tree, r]
                    if b_n <= SH:
                        cuda.atomic.add(sG, j, gr)
                        cuda.atomic.add(sH, j, hr)
                    else:
                        cuda.atomic.add(G, b_s0 + j, gr)
                        cuda.atomic.add(H, b_s0 + j, hr)
        if b >= 0 and b_tree < 0:
            cuda.atomic.add(sG, 0, rg)
            cuda.atomic.add(sH, 0, rh)
        cuda.syncthreads()
        if b >= 0 and b_n <= SH:
            for i in range(tid, b_n, nt):
                if sH[i] != 0.0 or sG[i] != 0.0:
                    cuda.atomic.add(G, b_s0 + i, sG[i])
                    cuda.atomic.add(H, b_s0 + i, sH[i])

    return {"go_right": go_right, "route": route_kernel, "zero": zero_kernel, "margin": margin_kernel,
            "stage": stage_kernel}


# --------------------------------------------------------------------------- host side
def _require_cuda() -> Any:
    from .device import resolve_device

    resolve_device("cuda")  # raises DeviceError when no device is found
    from numba import cuda

    return cuda


def _simulated() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def _launch_shape(n_rows: int, threads: int | None) -> tuple[int, int]:
    """(blocks, threads per block) for grid-stride kernels over rows."""
    if _simulated():  # each simulated thread is a Python thread: keep the grid tiny
        threads = threads or 8
        return max(1, min(math.ceil(n_rows / threads), 3)), threads
    from numba import cuda

    threads = threads or 256
    try:
        n_sm = int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except Exception:  # noqa: BLE001 - any query failure: assume a mid-size GPU
        n_sm = 80
    return max(1, min(math.ceil(n_rows / threads), 16 * n_sm)), threads


def leaf_dtype(max_leaves: int) -> type:
    """The smallest integer type of the leaf matrix for trees of up to ``max_leaves`` leaves."""
    if max_leaves <= 256:
        return np.uint8
    if max_leaves <= 65536:
        return np.uint16
    return np.int32


def _check_memory(cuda: Any, need: int) -> None:
    if _simulated():
        return
    try:
        free, _total = cuda.current_context().get_memory_info()
    except Exception:  # noqa: BLE001 - cannot tell: let the allocation decide
        return
    if need > 0.95 * free:
        raise DeviceError(
            f"the GPU refit needs about {need / 2**30:.1f} GiB of GPU memory but "
            f"{free / 2**30:.1f} GiB are free; refit on a row subsample or use device='cpu'"
        )


def route_leaves_cuda(X: np.ndarray, nodes: RouteNodes, rule: int, *, on_device: bool = False,
                      threads: int | None = None) -> Any:
    """Local leaf numbers ``(n_trees, n_rows)`` of every row, routed on the GPU.

    Parameters
    ----------
    X : numpy.ndarray
        C-contiguous ``(n_rows, n_features)``, float32 for ``RULE_XGBOOST``, float64 for
        ``RULE_LIGHTGBM`` (the dtypes of ``kernels.traverse``).
    nodes : RouteNodes
        The trees' node arrays; the result has the dtype of ``nodes.leaf_local``.
    rule : int
        ``treeprune._rules.RULE_XGBOOST`` or ``RULE_LIGHTGBM``.
    on_device : bool
        Return the GPU array (for :func:`refit_cyclic_cuda`) instead of a host copy.
    threads : int, optional
        Threads per GPU block (default 256; 8 in the simulator).

    Raises
    ------
    DeviceError
        No GPU, or not enough free GPU memory for the rows and the leaf matrix.
    """
    cuda = _require_cuda()
    n_trees, n = len(nodes.roots), X.shape[0]
    dtype = nodes.leaf_local.dtype
    _check_memory(cuda, X.nbytes + n_trees * n * dtype.itemsize)
    d_leaf = cuda.device_array((n_trees, max(n, 1)), dtype=dtype)
    if n > 0:
        blocks, tpb = _launch_shape(n, threads)
        # enough (row block, tree) pairs to fill the GPU even for few rows
        tree_blocks = 1 if _simulated() else int(min(n_trees, max(1, 2048 // blocks)))
        if rule == RULE_LIGHTGBM:  # the thresholds are the model's own: left iff x <= t
            nodes = nodes._replace(flags=nodes.flags | np.uint8(FLAG_EXACT_LE))
        d = [cuda.to_device(np.ascontiguousarray(a)) for a in nodes]
        roots, feature, threshold, left, right, flags, cat, cat_bounds, cat_words, local = d
        _kernels()["route"][(blocks, tree_blocks), tpb](
            cuda.to_device(X), roots, feature, threshold, left, right, flags, cat, cat_bounds,
            cat_words, rule, local, d_leaf)
    if on_device:
        return d_leaf
    return d_leaf.copy_to_host()[:, :n]


def refit_cyclic_cuda(leaf: Any, tree_group: np.ndarray, slot_tree_start: np.ndarray,
                      values: np.ndarray, prior: np.ndarray, base: np.ndarray, update_base: bool,
                      y: np.ndarray, w: np.ndarray, loss: int, p1: float, l2: float,
                      n_rounds: int, step: float, max_step: float, *,
                      project: Callable[[np.ndarray], np.ndarray] | None = None,
                      threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`treeprune.kernels.stats.refit_cyclic` on a CUDA GPU.

    Parameters
    ----------
    leaf : numpy.ndarray or GPU array
        ``(n_trees, n_rows)`` local leaf number of every row in every tree (as
        :func:`route_leaves_cuda` returns it): slot ``slot_tree_start[t] + leaf[t, r]``.
    tree_group, slot_tree_start, values, prior, base, update_base, loss, p1, l2, step, max_step
        As for ``refit_cyclic``: output group of each tree, first slot of each tree (n_trees + 1),
        leaf values per slot and their prior, intercept per group, whether to refit it, loss code
        and parameter, L2 penalty (per unit weight), step size, clamp of each step.
    y : numpy.ndarray
        ``(n_rows,)`` labels (class index for softmax).
    w : numpy.ndarray
        ``(n_rows,)`` row weights, or ``(1,)``: the same weight on every row.
    n_rounds : int
        Cycles over the intercepts and trees.
    project : callable, optional
        Applied (on the host) to the leaf values after every round; the margins are rebuilt
        from what it returns (the monotone projection of ``refit_leaves``).
    threads : int, optional
        Threads per GPU block (default 256; 8 in the simulator).

    Returns
    -------
    values, base : numpy.ndarray
        The refitted leaf values (n_slots,) and intercepts (n_groups,).
    margin : numpy.ndarray
        ``(n_rows, n_groups)`` margins at those values.
    """
    cuda = _require_cuda()
    k = _kernels()
    t0 = time.perf_counter()
    n_trees, n = leaf.shape[0], y.shape[0]
    n_slots = int(slot_tree_start[-1])
    n_groups = len(base)
    on_host = isinstance(leaf, np.ndarray)
    leaf_bytes = leaf.nbytes if on_host else 0
    _check_memory(cuda, leaf_bytes + n * (n_groups + 1) * 8 + w.nbytes
                  + 6 * (n_slots + n_groups) * 8)
    d_leaf = cuda.to_device(np.ascontiguousarray(leaf)) if on_host else leaf
    all_values = np.concatenate([values, base]).astype(np.float64)
    d_y = cuda.to_device(np.ascontiguousarray(y, dtype=np.float64))
    d_w = cuda.to_device(np.ascontiguousarray(w, dtype=np.float64))
    d_old = cuda.to_device(all_values)
    d_new = cuda.to_device(all_values)
    d_prior = cuda.to_device(np.concatenate([prior, base]).astype(np.float64))
    d_G = cuda.device_array(n_slots + n_groups, dtype=np.float64)
    d_H = cuda.device_array(n_slots + n_groups, dtype=np.float64)
    d_margin = cuda.device_array((n_groups, n), dtype=np.float64)
    d_tree_group = cuda.to_device(np.ascontiguousarray(tree_group, dtype=np.int32))
    d_sts = cuda.to_device(np.ascontiguousarray(slot_tree_start, dtype=np.int64))

    # blocks (tree, group, first slot, slots): the intercepts, then the trees, in the CPU's order
    blocks = np.empty((n_groups + n_trees, 4), dtype=np.int64)
    blocks[:n_groups] = [(-1, c, n_slots + c, 1) for c in range(n_groups)]
    blocks[n_groups:, 0] = np.arange(n_trees)
    blocks[n_groups:, 1] = tree_group
    blocks[n_groups:, 2] = slot_tree_start[:-1]
    blocks[n_groups:, 3] = np.diff(slot_tree_start)
    d_blocks = cuda.to_device(blocks)
    stages = list(range(0 if update_base else n_groups, n_groups + n_trees))

    blocks_x, tpb = _launch_shape(n, threads)
    margin_k = k["margin"][blocks_x, tpb]
    zero_k = k["zero"][max(1, min(blocks_x, math.ceil((n_slots + n_groups) / tpb))), tpb]
    stage_k = k["stage"][blocks_x, tpb]
    margin_k(d_leaf, d_tree_group, d_sts, d_old, n_slots, d_margin)
    for _ in range(n_rounds):
        zero_k(d_G, d_H)
        prev = -1
        for blk in [*stages, -1]:
            stage_k(d_leaf, d_margin, d_y, d_w, d_G, d_H, d_old, d_new, d_prior, d_blocks, prev,
                    blk, loss, p1, l2, step, max_step)
            prev = blk
        d_old, d_new = d_new, d_old  # the new values are next round's old ones
        if project is not None:
            cur = d_old.copy_to_host()
            cur[:n_slots] = project(cur[:n_slots])
            d_old.copy_to_device(cur)
            d_new.copy_to_device(cur)
            margin_k(d_leaf, d_tree_group, d_sts, d_old, n_slots, d_margin)
    cuda.synchronize()
    result = d_old.copy_to_host()
    margin = np.ascontiguousarray(d_margin.copy_to_host().T)
    log.debug("GPU refit: %d rows, %d trees, %d rounds, %d launches in %.3fs", n, n_trees,
              n_rounds, n_rounds * (len(stages) + 2), time.perf_counter() - t0)
    return result[:n_slots], result[n_slots:], margin


__all__ = ["route_leaves_cuda", "refit_cyclic_cuda", "leaf_dtype", "RouteNodes", "SHARED_LEAVES"]
