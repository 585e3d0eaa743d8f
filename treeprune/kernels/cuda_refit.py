"""Leaf refit on an NVIDIA GPU with ``numba.cuda``: the GPU twin of ``refit_leaves``.

The algorithm is exactly the CPU one (:func:`treeprune.kernels.stats.refit_cyclic` as driven by
:func:`treeprune.passes.datadriven.refit_leaves`): cyclic block-coordinate Newton over the
intercept (one block per output group, first in each round, when ``update_base``) and the trees
(one block per tree), an L2 penalty pulling each leaf towards its value before the refit, Newton
steps clamped to ``max_step``, and, for models with monotone constraints, a projection of the leaf
values (on the host) between rounds. Only the order of the floating-point sums (and the last
bit of ``exp``) differs, so the leaf values agree with the CPU refit far within 1e-6 relative.

What runs where
---------------
* The data go to the GPU once per refit: the feature matrix (to route rows), labels, weights.
  Rows are routed to leaves on the GPU (the decision rules of ``kernels.traverse``, ported to a
  CUDA device function, walking the Ensemble's own node arrays: the CPU's packed layout is tuned
  for CPU caches) into a tree-major matrix of *local* leaf numbers in the smallest integer type
  that holds them (uint8 for trees of up to 256 leaves: 800 trees x 10M rows is 8 GB; the CPU
  refit holds int32 (rows, trees)). When that matrix does not fit in free GPU memory the refit
  raises ``DeviceError`` (refit on a row subsample, or on the CPU). The feature matrix is freed once rows are routed. The margins
  (float64, ``(n_groups, n_rows)``) stay on the GPU for the whole refit.
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
* Only the per-slot values cross back to the host, and only when monotone constraints need a
  projection between rounds, and once at the end (values and margins).

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
from typing import Any

import numpy as np

from .._rules import (
    FLAG_CATEGORICAL,
    FLAG_DEFAULT_LEFT,
    FLAG_MISSING_NAN,
    FLAG_MISSING_ZERO,
    LIGHTGBM_ZERO_THRESHOLD,
    LOSS_ABSOLUTE,
    LOSS_GAMMA,
    LOSS_LOGLOSS,
    LOSS_POISSON,
    LOSS_SOFTMAX,
    LOSS_SQUARED,
    LOSS_TWEEDIE,
    MISSING_NAN,
    MISSING_ZERO,
    RULE_LIGHTGBM,
    RULE_XGBOOST,
    XGBOOST_MAX_CATEGORY,
)
from ..errors import DeviceError

log = logging.getLogger(__name__)

#: Leaves per tree held in shared memory (per GPU block); larger trees use global atomics.
SHARED_LEAVES = 512
#: Same floor on hessians as the CPU kernels.
_MIN_HESS = 1e-16

cuda: Any = None  # numba.cuda, bound by _kernels() on first use (never at import)


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
    MIN_HESS = _MIN_HESS
    ZT = LIGHTGBM_ZERO_THRESHOLD
    XMAX = float(XGBOOST_MAX_CATEGORY)

    # -- routing: the rules of kernels.traverse (same decisions, same dtypes), on the node
    # arrays of the Ensemble (see _node_layout) rather than its CPU-tuned packed layout
    @cuda.jit(device=True)
    def in_bitset(cat_words, begin, end, code):
        word = begin + (code >> 5)
        if word >= end:
            return False
        return ((cat_words[word] >> (code & 31)) & 1) == 1

    @cuda.jit(device=True)
    def go_right(x, thr, flags, cat, cat_bounds, cat_words, rule):
        if rule == RULE_XGBOOST:
            if math.isnan(x):
                return (flags & FLAG_DEFAULT_LEFT) == 0
            if flags & FLAG_CATEGORICAL:
                if x < 0 or x >= XMAX:
                    return False
                return in_bitset(cat_words, cat_bounds[cat], cat_bounds[cat + 1], int(x))
            return not (x < thr)
        # LightGBM: its row reader turns |x| <= kZeroThreshold (a float) into 0.0 first
        if abs(x) <= ZT:
            x = 0.0
        if flags & FLAG_CATEGORICAL:
            if math.isnan(x) or x <= -2147483649.0 or x >= 2147483648.0:
                return True
            code = int(x)  # truncation toward zero, as static_cast<int>
            if code < 0:
                return True
            return not in_bitset(cat_words, cat_bounds[cat], cat_bounds[cat + 1], code)
        if math.isnan(x):
            if flags & FLAG_MISSING_NAN:
                return (flags & FLAG_DEFAULT_LEFT) == 0
            x = 0.0
        if (flags & FLAG_MISSING_ZERO) and x == 0.0:
            return (flags & FLAG_DEFAULT_LEFT) == 0
        return not (x <= thr)

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

    # -- statistics ---------------------------------------------------------------------------
    # min/max as device functions: numba 0.68's built-in CUDA target cannot compile the vararg
    # overloads of the min/max builtins (numba-cuda can); the choice on ties is that of min/max
    @cuda.jit(device=True)
    def fmax(a, b):
        return b if b > a else a

    @cuda.jit(device=True)
    def fmin(a, b):
        return b if b < a else a

    @cuda.jit(device=True)
    def sigmoid(m):
        if m >= 0:
            return 1.0 / (1.0 + math.exp(-m))
        e = math.exp(m)
        return e / (1.0 + e)

    @cuda.jit(device=True)
    def grad_hess(loss, y, margin, r, c, n_groups, p1):
        """kernels.stats.grad_hess_row (and the softmax branch of refit_cyclic) for row r."""
        yr = y[r]
        if loss == LOSS_SOFTMAX:
            mx = margin[0, r]
            for k in range(1, n_groups):
                mx = fmax(mx, margin[k, r])
            s = 0.0
            for k in range(n_groups):
                s += math.exp(margin[k, r] - mx)
            p = math.exp(margin[c, r] - mx) / s
            return p - (1.0 if int(yr) == c else 0.0), fmax(p * (1.0 - p), MIN_HESS)
        m = margin[c, r]
        if loss == LOSS_SQUARED:
            return m - yr, 1.0
        if loss == LOSS_LOGLOSS:
            p = sigmoid(m)
            return p - yr, fmax(p * (1.0 - p), MIN_HESS)
        if loss == LOSS_POISSON:
            e = math.exp(m)
            return e - yr, fmax(e, MIN_HESS)
        if loss == LOSS_GAMMA:
            e = yr * math.exp(-m)
            return 1.0 - e, fmax(e, MIN_HESS)
        if loss == LOSS_TWEEDIE:
            a = math.exp((1.0 - p1) * m)
            b = math.exp((2.0 - p1) * m)
            return -yr * a + b, fmax(-yr * (1.0 - p1) * a + (2.0 - p1) * b, MIN_HESS)
        if loss == LOSS_ABSOLUTE:
            d = m - yr
            return (1.0 if d > 0 else (-1.0 if d < 0 else 0.0)), 1.0
        d = m - yr  # pseudo-Huber
        s = 1.0 + (d / p1) * (d / p1)
        q = math.sqrt(s)
        return d / q, 1.0 / (s * q)

    @cuda.jit(device=True)
    def newton_step(s, is_base, G, H, v, prior, l2, step, max_step):
        """The clamped Newton step of slot s, as refit_cyclic computes it."""
        if is_base:
            d = -step * G[s] / fmax(H[s], MIN_HESS)
        else:
            d = -step * (G[s] + l2 * (v[s] - prior[s])) / (H[s] + l2 + MIN_HESS)
        return fmin(fmax(d, -max_step), max_step)

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
    def stage_kernel(leaf, margin, y, w, w_uniform, G, H, v_old, v_new, prior, blk_tree,
                     blk_group, blk_s0, blk_n, a, b, loss, p1, l2, step, max_step):
        """Apply the Newton step of block ``a`` (if >= 0), then accumulate block ``b`` (if >= 0).

        A block is a tree (``blk_tree >= 0``: leaves ``blk_s0 .. blk_s0 + blk_n``) or the
        intercept of one group (``blk_tree == -1``: one slot that every row reaches).
        """
        sG = cuda.shared.array(SH, float64)
        sH = cuda.shared.array(SH, float64)
        sD = cuda.shared.array(SH, float64)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        gid = cuda.grid(1)
        gsz = cuda.gridsize(1)
        n = y.shape[0]
        n_groups = margin.shape[0]

        a_tree = -1
        a_c = 0
        a_s0 = 0
        a_n = 0
        if a >= 0:
            a_tree = blk_tree[a]
            a_c = blk_group[a]
            a_s0 = blk_s0[a]
            a_n = blk_n[a]
            for i in range(tid, fmin(a_n, SH), nt):
                sD[i] = newton_step(a_s0 + i, a_tree < 0, G, H, v_old, prior, l2, step, max_step)
            for i in range(gid, a_n, gsz):
                v_new[a_s0 + i] = v_old[a_s0 + i] + newton_step(a_s0 + i, a_tree < 0, G, H, v_old,
                                                                prior, l2, step, max_step)
        b_tree = -1
        b_c = 0
        b_s0 = 0
        b_n = 0
        if b >= 0:
            b_tree = blk_tree[b]
            b_c = blk_group[b]
            b_s0 = blk_s0[b]
            b_n = blk_n[b]
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
                gr, hr = grad_hess(loss, y, margin, r, b_c, n_groups, p1)
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

    return {"route": route_kernel, "zero": zero_kernel, "margin": margin_kernel,
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


def _leaf_dtype(max_leaves: int) -> type:
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


def _nonempty(a: np.ndarray) -> np.ndarray:
    """Zero-length device arrays are awkward; pad with one unused element."""
    return a if a.size else np.zeros(1, dtype=a.dtype)


def _node_layout(ens: Any, slot_of_node: np.ndarray, slot_tree_start: np.ndarray,
                 leaf_dtype: type) -> dict[str, np.ndarray]:
    """Node arrays for the GPU routing kernel, global node ids, from the Ensemble's own arrays."""
    dtype = np.float32 if ens.source == "xgboost" else np.float64
    is_leaf = ens.left < 0
    tree_of_node = np.repeat(np.arange(ens.n_trees), np.diff(ens.tree_offsets))
    offset = ens.tree_offsets[tree_of_node]
    flags = np.zeros(ens.n_nodes, dtype=np.uint8)
    flags[ens.default_left] |= FLAG_DEFAULT_LEFT
    flags[ens.missing_type == MISSING_ZERO] |= FLAG_MISSING_ZERO
    flags[ens.missing_type == MISSING_NAN] |= FLAG_MISSING_NAN
    flags[ens.cat_index >= 0] |= FLAG_CATEGORICAL
    leaf_local = np.zeros(ens.n_nodes, dtype=leaf_dtype)
    leaf_local[is_leaf] = (slot_of_node[is_leaf]
                           - slot_tree_start[tree_of_node[is_leaf]]).astype(leaf_dtype)
    return {
        "roots": np.ascontiguousarray(ens.tree_offsets[:-1], dtype=np.int32),
        "feature": np.where(is_leaf, -1, ens.feature).astype(np.int32),
        "threshold": np.asarray(ens.threshold).astype(dtype),
        "left": np.where(is_leaf, -1, offset + ens.left).astype(np.int32),
        "right": np.where(is_leaf, -1, offset + ens.right).astype(np.int32),
        "flags": flags,
        "cat": np.ascontiguousarray(ens.cat_index, dtype=np.int32),
        "cat_bounds": _nonempty(np.ascontiguousarray(ens.cat_bounds, dtype=np.int64)),
        "cat_words": _nonempty(np.ascontiguousarray(ens.cat_words, dtype=np.uint32)),
        "leaf_local": leaf_local,
    }


def _route_on_device(cuda: Any, ens: Any, X: Any, slot_of_node: np.ndarray,
                     slot_tree_start: np.ndarray, dtype: type, threads: int | None) -> Any:
    """Route rows on the GPU: device array ``(n_trees, n_rows)`` of local leaf numbers."""
    from ..data import to_matrix

    k = _kernels()
    xdt = np.float32 if ens.source == "xgboost" else np.float64
    Xm = X if isinstance(X, np.ndarray) and X.dtype == xdt and X.flags.c_contiguous \
        else to_matrix(ens, X, xdt)
    n = Xm.shape[0]
    d_leaf = cuda.device_array((ens.n_trees, max(n, 1)), dtype=dtype)
    if n == 0:
        return d_leaf
    lay = _node_layout(ens, slot_of_node, slot_tree_start, dtype)
    rule = RULE_XGBOOST if ens.source == "xgboost" else RULE_LIGHTGBM
    blocks, tpb = _launch_shape(n, threads)
    # enough (row block, tree) pairs to fill the GPU even for few rows
    tree_blocks = 1 if _simulated() else int(min(ens.n_trees, max(1, 2048 // blocks)))
    d = {name: cuda.to_device(a) for name, a in lay.items()}
    k["route"][(blocks, tree_blocks), tpb](
        cuda.to_device(Xm), d["roots"], d["feature"], d["threshold"], d["left"], d["right"],
        d["flags"], d["cat"], d["cat_bounds"], d["cat_words"], rule, d["leaf_local"], d_leaf)
    return d_leaf


def route_leaves_cuda(ens: Any, X: Any, *, threads: int | None = None) -> np.ndarray:
    """Leaf slots (n_rows, n_trees) int32 routed on the GPU: ``LeafFrame.build(ens, X).leaf_slot``."""
    cuda = _require_cuda()
    slot_of_node, _, slot_tree_start, _ = ens.leaf_layout()
    dtype = _leaf_dtype(int(np.max(np.diff(slot_tree_start), initial=1)))
    d_leaf = _route_on_device(cuda, ens, X, slot_of_node, slot_tree_start, dtype, threads)
    local = d_leaf.copy_to_host()[:, :_n_rows(X)].astype(np.int64)
    return np.ascontiguousarray((local + slot_tree_start[:-1, None]).T, dtype=np.int32)


def _n_rows(X: Any) -> int:
    return int(np.shape(X)[0])


def refit_leaves_cuda(ens: Any, X: Any, y: Any, sample_weight: Any = None, *, l2: float = 50.0,
                      n_rounds: int = 10, update_base: bool = True, max_step: float = 1.0,
                      frame: Any = None, threads: int | None = None) -> Any:
    """:func:`treeprune.passes.datadriven.refit_leaves` on a CUDA GPU (same parameters, result).

    ``frame`` (a ``LeafFrame``), when given, supplies the leaf slots and skips the GPU routing.
    ``threads`` overrides the threads per GPU block (default 256; 8 in the simulator).
    Raises :class:`treeprune.errors.DeviceError` when numba.cuda finds no GPU.
    """
    from ..passes.base import record
    from ..passes.datadriven import (
        LeafFrame,
        _labels,
        _loss_param,
        _project_values,
        _unfold_intercept,
        _weights,
        _with_values,
    )

    cuda = _require_cuda()
    k = _kernels()
    t0 = time.perf_counter()
    ens0 = ens
    ens = _unfold_intercept(ens)
    slot_of_node, slot_node, slot_tree_start, values0 = ens.leaf_layout()
    if frame is not None:
        values0 = frame.values
    n = frame.leaf_slot.shape[0] if frame is not None else _n_rows(X)
    yv = _labels(ens, y, n)
    w = _weights(sample_weight, n)
    n_slots = len(slot_node)
    n_trees = ens.n_trees
    base = np.asarray(ens.base_margin, dtype=np.float64).reshape(-1).copy()
    n_groups = len(base)
    tree_group = np.ascontiguousarray(ens.tree_group, dtype=np.int32)
    monotone = any(ens.monotone_constraints)
    loss, p1 = ens.objective.loss_code, _loss_param(ens)
    l2n = l2 / n
    meta_frame = LeafFrame(np.empty((0, n_trees), np.int32), slot_node, slot_tree_start,
                           values0)

    # -- data to the GPU, once ---------------------------------------------------------------
    max_leaves = int(np.max(np.diff(slot_tree_start), initial=1))
    ldt = _leaf_dtype(max_leaves)
    w_uniform = sample_weight is None
    x_bytes = 0 if frame is not None else int(np.prod(np.shape(X))) * 8
    need = (n_trees * n * np.dtype(ldt).itemsize + n * (n_groups + 2) * 8 + x_bytes
            + 6 * (n_slots + n_groups) * 8)
    _check_memory(cuda, need)
    if frame is not None:
        local = (frame.leaf_slot.T - slot_tree_start[:-1, None]).astype(ldt)
        d_leaf = cuda.to_device(np.ascontiguousarray(local))
    else:
        d_leaf = _route_on_device(cuda, ens, X, slot_of_node, slot_tree_start, ldt, threads)
    t_route = time.perf_counter()
    all_values = np.concatenate([values0, base])
    prior = all_values.copy()
    d_y = cuda.to_device(yv)
    d_w = cuda.to_device(w[:1].copy() if w_uniform else w)
    d_old = cuda.to_device(all_values)
    d_new = cuda.to_device(all_values)
    d_prior = cuda.to_device(prior)
    d_G = cuda.device_array(n_slots + n_groups, dtype=np.float64)
    d_H = cuda.device_array(n_slots + n_groups, dtype=np.float64)
    d_margin = cuda.device_array((n_groups, n), dtype=np.float64)
    d_tree_group = cuda.to_device(tree_group)
    d_sts = cuda.to_device(slot_tree_start)

    # blocks: the intercepts (one per group), then the trees, in the CPU's order
    blk_tree = [-1] * n_groups + list(range(n_trees))
    blk_group = list(range(n_groups)) + tree_group.tolist()
    blk_s0 = [n_slots + c for c in range(n_groups)] + slot_tree_start[:-1].tolist()
    blk_n = [1] * n_groups + np.diff(slot_tree_start).tolist()
    d_blk_tree = cuda.to_device(np.asarray(blk_tree, dtype=np.int32))
    d_blk_group = cuda.to_device(np.asarray(blk_group, dtype=np.int32))
    d_blk_s0 = cuda.to_device(np.asarray(blk_s0, dtype=np.int64))
    d_blk_n = cuda.to_device(np.asarray(blk_n, dtype=np.int32))
    stages = list(range(0 if update_base else n_groups, n_groups + n_trees))

    blocks, tpb = _launch_shape(n, threads)
    margin_k = k["margin"][blocks, tpb]
    zero_k = k["zero"][max(1, min(blocks, math.ceil((n_slots + n_groups) / tpb))), tpb]
    stage_k = k["stage"][blocks, tpb]
    margin_k(d_leaf, d_tree_group, d_sts, d_old, n_slots, d_margin)

    def one_round(d_old: Any, d_new: Any) -> tuple[Any, Any]:
        zero_k(d_G, d_H)
        prev = -1
        for blk in [*stages, -1]:
            stage_k(d_leaf, d_margin, d_y, d_w, w_uniform, d_G, d_H, d_old, d_new, d_prior,
                    d_blk_tree, d_blk_group, d_blk_s0, d_blk_n, prev, blk, loss, p1, l2n, 1.0,
                    max_step)
            prev = blk
        return d_new, d_old  # swap: the new values are next round's old ones

    for _ in range(n_rounds):
        d_old, d_new = one_round(d_old, d_new)
        if monotone:
            cur = d_old.copy_to_host()
            cur[:n_slots] = _project_values(ens, meta_frame, cur[:n_slots])
            d_old.copy_to_device(cur)
            d_new.copy_to_device(cur)
            margin_k(d_leaf, d_tree_group, d_sts, d_old, n_slots, d_margin)
    cuda.synchronize()
    t_fit = time.perf_counter()
    result = d_old.copy_to_host()
    margin = np.ascontiguousarray(d_margin.copy_to_host().T)
    values, base = result[:n_slots], result[n_slots:]
    log.debug("GPU refit: %d rows, %d trees, %d rounds, %d launches; routing %.3fs, "
              "Newton %.3fs", n, n_trees, n_rounds, n_rounds * (len(stages) + 2),
              t_route - t0, t_fit - t_route)
    out = _with_values(ens, meta_frame, values, base)
    return record(ens0, out, "refit_leaves", {"l2": l2, "n_rounds": n_rounds,
                                               "update_base": update_base},
                  n_rows=n, device="cuda", loss_after=float(ens.objective.loss_value(
                      yv, margin if margin.shape[1] > 1 else margin[:, 0], w)))
