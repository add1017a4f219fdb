"""The Numba backend: every contract kernel as compiled loops (no BLAS call in any kernel body).

Design notes (why, not what)
----------------------------
* One file on purpose: Numba's on-disk cache is keyed on the source file of each function, so a
  change in a helper living in another module would leave stale callers in the cache (numba#1833).
* Compilation is lazy: ``@njit`` without signatures compiles on the first call for the dtypes seen
  (float32 / float64). Importing this module compiles nothing; :func:`warmup` compiles everything.
* Caching: ``cache=True`` everywhere (Numba 0.68 caches ``parallel=True`` functions too). If the
  package directory is not writable and the user did not set ``NUMBA_CACHE_DIR``, the cache goes to
  ``$XDG_CACHE_HOME/pynet/<version>/numba`` (set before any function is decorated).
* fastmath: none. The GEMM micro-kernel (:func:`_ukern`, LLVM IR via ``@intrinsic``) calls ``llvm.fma``
  explicitly: every k term is one fused multiply-add, summed in k order, which only changes the rounding
  of each product (the reference's BLAS uses yet another order) and stays far inside the contract's
  tolerance. No ``nnan``/``ninf`` anywhere: a non-finite loss must still be seen as such. Activations,
  losses and optimizers run in the array's own dtype, following the reference's formulas.
* Elementwise math (exp, expm1, log, log1p, tanh, sigmoid, softplus: :func:`_vexp` and the rest) is this
  file's own branch-free scalar code (range reduction, fitted polynomial, selects, exponents through
  ``_bits``), not libm: LLVM inlines it and vectorises the plain loops that call it, where a libm call
  kept each loop scalar. It is within contract.MATH_ULP, so activations and cross-entropies match the
  reference (libm) within tolerance, not bit for bit. Elementwise kernels loop over the whole C array as
  one row (layer rows are narrower than a few vectors); sums stay in row order, serial.
* GEMM: one routine, ``_gemm(A, ta, B, tb, C, …)`` on C-contiguous operands with transpose flags, so one
  specialisation per dtype serves Z = X·W, dW = Xᵀ·dZ and dX = dZ·Wᵀ. The micro-kernel keeps a 6×16
  (float32) block of C in twelve ymm registers across the k loop (``vbroadcastss`` + ``vfmadd231ps``,
  no spills; check with ``inspect_asm``). Three paths, chosen by shape only:
  direct (below DIRECT_FLOPS, serial): A and B read in place, nothing packed but a transposed op(B);
  panel (A ≤ PANEL_A_BYTES, B not transposed): one 16-wide column panel of C per work unit, its B slab
  packed into the thread's slot, A in place; packed (the rest): op(B) packed into KC×NR panels, each
  MC×NT tile of C packs its rows of op(A). Each C element is summed by FMAs in k order (the panel and
  packed paths per KC block, blocks added in order, identically), whichever thread computes it, so
  results do not depend on the thread count. Parallel
  regions (one ``prange``) let threads claim work units from an atomic counter. Packing scratch and the
  thread context ``th`` (see :func:`_context`: the work counter, the thread slots, per-chunk results) are
  allocated once per fused call (epoch): nothing is allocated per step.
* train_epoch on large batches (MNIST-shaped) gathers the next batch's rows into a second buffer on the
  second thread while the first runs the small layers above the first one (:func:`_upper_and_gather`):
  that stretch was serial, and the gather (random rows, DRAM-bound) stalled both cores. Same bits.
  The gradient check and the optimizer step over ≥ ELEM_PAR parameters run in chunks over the threads.
* Compile time: Numba specialises a callee on every *constant* argument (``f(x, True)`` and
  ``f(x, False)`` compile twice, with everything they call); call sites pass constants through
  :func:`_rt`. The public wrappers normalise what they pass (read-only inputs aliased as writable,
  Python scalars) so that one signature per dtype serves every caller.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np


# --------------------------------------------------------------------------- cache directory
def _pynet_version() -> str:
    try:
        from importlib.metadata import version
        return version("pynet")
    except Exception:  # not installed (running from a checkout)
        return "dev"


def _choose_cache_dir() -> str | None:
    """A user cache dir keyed on pynet's version when the package dir is read-only and none is set."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = os.path.dirname(os.path.abspath(__file__))
    pycache = os.path.join(here, "__pycache__")
    target = pycache if os.path.isdir(pycache) else here
    if os.access(target, os.W_OK):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pynet", _pynet_version(), "numba")


_cache_dir = _choose_cache_dir()
if _cache_dir is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set)
from numba import njit, prange  # noqa: E402
from numba.core import cgutils, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402
from llvmlite import ir  # noqa: E402

if _cache_dir is not None:
    numba.config.CACHE_DIR = _cache_dir  # numba read its config at import; the locator reads this

from .contract import (ADAM, BCE, CE, IDENTITY, M_EXP, M_EXPM1, M_LOG, M_LOG1P, M_SIGMOID, M_TANH,  # noqa: E402
                       MSE, RELU, SIGMOID, SOFTMAX, SOFTPLUS, SSR, TANH)

_JIT = dict(cache=True, nogil=True)



def _as(x, like):
    """x converted to ``like``'s dtype (so float32 kernels stay float32, as in the reference)."""
    return x


@overload(_as, jit_options={"cache": True})
def _as_ol(x, like):
    dt = like.dtype if isinstance(like, numba.types.Array) else like

    def impl(x, like):
        return dt(x)
    return impl


# --------------------------------------------------------------------------- GEMM: C = op(A)·op(B)
# One routine for every product the layers need (Z = X·W, dW = Xᵀ·dZ, dX = dZ·Wᵀ): the operands are
# always C-contiguous 2-D arrays and a flag says whether to read them transposed, so one specialisation
# per dtype serves every call site. Both operands are packed (BLIS style) into caller-provided scratch:
# op(A) in panels of MR rows, op(B) in panels of NR columns, each k-block of KC laid out contiguously
# and zero-padded, so that the micro-kernel streams unit-stride data whatever the leading dimension
# (no power-of-two aliasing) and never needs an edge case inside its k loop.
MR = 6              # rows of the register block (6 broadcasts of A per k step)
# k-block: a whole 784- or 1024-deep k in one block, so C is loaded and stored once per tile; the KC×NR
# panel of B (64 KiB float32) streams from L2 with the A panel. A/B against 256
# (alternated processes, medians of 7 epochs): MNIST-shaped 286/387/365 -> 278/268/262 ms, wide
# 869/856/917 -> 751/816/896 ms.
KC = 1024
MC, NT = 72, 128    # a parallel work unit is an MC×NT tile of C (12 A-panels × 8 B-panels in float32)
#: Below this many flops (2·n·k·m) a GEMM runs serially: thread start-up costs more than it saves.
PAR_FLOPS = 2 * 128 * 128 * 128


def _ukern_codegen(direct, mr=MR):
    """LLVM IR of the MR×NR register-blocked micro-kernel (see :func:`_ukern` and :func:`_ukern_direct`).

    The 2·MR accumulators are SSA vector values (phi nodes), so they live in registers for the whole k
    loop; each k step is two vector loads of B, MR broadcasts of A and 2·MR fused multiply-adds
    (``vbroadcastss`` + ``vfmadd231ps %ymm`` on AVX2), the k sum in order, one FMA per term.
    ``mr`` rows (MR, or fewer for a short last row block of the direct kernel).
    ``direct``: A is read in place through strides (row r at ao + r·sar, k at + k·sak), B through its row
    stride ldb, and rows ≥ nrows repeat the last valid row (computed, never stored).
    """
    def codegen(context, builder, signature, args):
        if direct:
            kc_, ap_, ao_, sar_, sak_, bp_, bo_, ldb_, c_, co_, ldc_, nrows_, acc_ = args
        else:
            kc_, ap_, ao_, bp_, bo_, c_, co_, ldc_, acc_ = args
        Aty = signature.args[1]
        fty = context.get_value_type(Aty.dtype)
        vw = 8 if Aty.dtype == types.float32 else 4  # one 32-byte vector
        vty = ir.VectorType(fty, vw)
        vptr = vty.as_pointer()
        i64 = ir.IntType(64)
        ap = context.make_array(Aty)(context, builder, ap_).data
        bp = context.make_array(signature.args[5 if direct else 3])(context, builder, bp_).data
        cp = context.make_array(signature.args[8 if direct else 5])(context, builder, c_).data
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                             "llvm.fma.v%d%s" % (vw, "f32" if vw == 8 else "f64"))
        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * vw)
        undef = ir.Constant(vty, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), vw), [0] * vw)
        if direct:
            last = builder.sub(nrows_, ir.Constant(i64, 1))
            rowoff = []
            for r in range(mr):
                rr = ir.Constant(i64, r)
                rr = builder.select(builder.icmp_signed("<", rr, nrows_), rr, last)
                rowoff.append(builder.add(ao_, builder.mul(rr, sar_)))
            bstep = ldb_
        else:
            bstep = ir.Constant(i64, 2 * vw)
        pre = builder.block
        head = builder.append_basic_block()
        body = builder.append_basic_block()
        done = builder.append_basic_block()
        builder.branch(head)
        builder.position_at_end(head)
        k = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), pre)
        accs = []
        for _ in range(2 * mr):
            p = builder.phi(vty)
            p.add_incoming(zero, pre)
            accs.append(p)
        builder.cbranch(builder.icmp_signed("<", k, kc_), body, done)
        builder.position_at_end(body)
        boff = builder.add(bo_, builder.mul(k, bstep))
        b0 = builder.load(builder.bitcast(builder.gep(bp, [boff]), vptr), align=4)
        b1 = builder.load(builder.bitcast(builder.gep(bp, [builder.add(boff, ir.Constant(i64, vw))]), vptr),
                          align=4)
        if direct:
            kk = builder.mul(k, sak_)
        else:
            aoff = builder.add(ao_, builder.mul(k, ir.Constant(i64, MR)))
        new = []
        for r in range(mr):
            if direct:
                idx = builder.add(rowoff[r], kk)
            else:
                idx = builder.add(aoff, ir.Constant(i64, r))
            a = builder.load(builder.gep(ap, [idx]))
            av = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i64, 0)), undef, splat)
            new.append(builder.call(fma, [av, b0, accs[2 * r]]))
            new.append(builder.call(fma, [av, b1, accs[2 * r + 1]]))
        k1 = builder.add(k, ir.Constant(i64, 1))
        tail = builder.block
        builder.branch(head)
        k.add_incoming(k1, tail)
        for p, v in zip(accs, new):
            p.add_incoming(v, tail)
        builder.position_at_end(done)
        add = builder.icmp_signed("!=", acc_, ir.Constant(acc_.type, 0))
        if direct:
            for r in range(mr):
                roff = builder.add(co_, builder.mul(ldc_, ir.Constant(i64, r)))
                if r == 0:
                    store = None
                else:
                    store = builder.append_basic_block()
                    after = builder.append_basic_block()
                    builder.cbranch(builder.icmp_signed("<", ir.Constant(i64, r), nrows_), store, after)
                    builder.position_at_end(store)
                for h in range(2):
                    ptr = builder.bitcast(builder.gep(cp, [builder.add(roff, ir.Constant(i64, h * vw))]), vptr)
                    old = builder.load(ptr, align=4)
                    builder.store(builder.select(add, builder.fadd(old, accs[2 * r + h]), accs[2 * r + h]), ptr,
                                  align=4)
                if store is not None:
                    builder.branch(after)
                    builder.position_at_end(after)
        else:
            for r in range(mr):
                roff = builder.add(co_, builder.mul(ldc_, ir.Constant(i64, r)))
                for h in range(2):
                    ptr = builder.bitcast(builder.gep(cp, [builder.add(roff, ir.Constant(i64, h * vw))]), vptr)
                    old = builder.load(ptr, align=4)
                    builder.store(builder.select(add, builder.fadd(old, accs[2 * r + h]), accs[2 * r + h]), ptr,
                                  align=4)
        return context.get_dummy_value()
    return codegen


@intrinsic
def _ukern(typingctx, kc, Ap, ao, Bp, bo, C, co, ldc, acc):
    """Register-blocked micro-kernel on packed panels, written in LLVM IR because Numba has no vector type.

    C[co + r·ldc + j] (+)= Σ_{k<kc} Ap[ao + k·MR + r] · Bp[bo + k·NR + j] for r < MR, j < NR, where NR is
    two SIMD vectors (16 float32 / 8 float64). ``acc`` != 0 adds to C, otherwise C is overwritten.
    """
    return types.void(kc, Ap, ao, Bp, bo, C, co, ldc, acc), _ukern_codegen(False)


@intrinsic
def _ukern_direct(typingctx, kc, A, ao, sar, sak, B, bo, ldb, C, co, ldc, nrows, acc):
    """The micro-kernel on unpacked operands (flat offsets into the arrays' data, any ndim):
    C[co + r·ldc + j] (+)= Σ_{k<kc} A[ao + r·sar + k·sak] · B[bo + k·ldb + j] for r < nrows ≤ MR, j < NR.
    Rows r ≥ nrows read row nrows − 1 (in bounds) and are not stored; all NR columns of B must exist.
    The same arithmetic as :func:`_ukern` (``acc`` != 0 adds the k-block's sum to C)."""
    return types.void(kc, A, ao, sar, sak, B, bo, ldb, C, co, ldc, nrows, acc), _ukern_codegen(True)


#: Rows of the short direct kernel: 32- and 128-row batches end in a 2-row block (32 = 5·6 + 2).
MR_SHORT = 2


@intrinsic
def _ukern_direct_short(typingctx, kc, A, ao, sar, sak, B, bo, ldb, C, co, ldc, nrows, acc):
    """:func:`_ukern_direct` with MR_SHORT rows, for a last row block of at most MR_SHORT rows (the
    6-row kernel would compute 6 rows to store 2)."""
    return types.void(kc, A, ao, sar, sak, B, bo, ldb, C, co, ldc, nrows, acc), _ukern_codegen(True, MR_SHORT)


@intrinsic
def _rt(typingctx, x):
    """x typed as its non-literal type. Numba specialises a callee on every constant argument
    (``f(x, True)`` and ``f(x, False)`` are two compilations, and so is everything they call), so call
    sites pass constants through this."""
    ty = types.unliteral(x)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], x, ty)
    return ty(x), codegen


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float as a same-width signed integer. For x ≥ +0 (and NaN with the sign clear)
    integer order is float order with NaN above +inf, so max|Δ| becomes an integer max that LLVM
    vectorises (a float max with a NaN test is a serial chain without fastmath)."""
    ity = types.int32 if x == types.float32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(ity))
    return ity(x), codegen


@intrinsic
def _unbits(typingctx, i):
    """Inverse of :func:`_bits`."""
    fty = types.float32 if i == types.int32 else types.float64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(fty))
    return fty(i), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c rounded once (``llvm.fma``), the same arithmetic as the micro-kernel's vector FMAs."""
    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]),
                                            "llvm.fma.f32" if a == types.float32 else "llvm.fma.f64")
        return builder.call(fn, args)
    return a(a, b, c), codegen


@intrinsic
def _prefetch(typingctx, a, i):
    """Hint the cache to load the line holding element i of a's data (``llvm.prefetch``, read, keep)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), ir.Constant(i32, 0),
                          ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(a, i), codegen


@njit(inline="always", **_JIT)
def _copy_block(dst, do, ld, src, r0, c0, rows, n):
    """dst[do + r·ld + t] = src[r0 + r, c0 + t] for r < rows, t < n, and 0 for n ≤ t < ld (a zero-padded
    panel; dst flat, src 2-D). Unsigned indices:
    a computed signed index costs each element Numba's negative-index wraparound (sign test and add),
    which kept LLVM from vectorising the packing loops. Inlined, with no row views: a call (and an NRT
    view) per row cost more than the 16 elements of a panel row (a tenth of the 784-128 epoch in perf)."""
    zero = _as(0, dst)
    for r in range(rows):
        d = np.uint64(do + r * ld)
        sr = np.uint64(r0 + r)
        sc = np.uint64(c0)
        for t in range(n):
            u = np.uint64(t)
            dst[d + u] = src[sr, sc + u]
        for t in range(n, ld):
            dst[d + np.uint64(t)] = zero


@njit(**_JIT)
def _nr(x):
    """Columns of the register block: two 32-byte vectors of x's dtype."""
    return 64 // x.itemsize


def _need(K, m, nr, slots):
    """(len of A scratch, len of B scratch): one MC×KC A block per thread slot; op(B) packed whole plus
    one MR×NR edge buffer per slot. Plain Python for the single-layer entry points, jitted as _gemm_need."""
    return slots * MC * KC, ((m + nr - 1) // nr) * nr * K + slots * MR * nr


_gemm_need = njit(**_JIT)(_need)


@njit(**_JIT)
def _pack_a(A, ta, Ap, base, i0, n, k0, kc):
    """Rows i0..i0+MR of op(A), k in k0..k0+kc, into Ap[base + k·MR + r] (rows ≥ n as zeros)."""
    zero = _as(0, Ap)
    if ta:  # op(A)[i, k] = A[k, i]
        for k in range(kc):
            row = A[k0 + k]
            o = base + k * MR
            for r in range(MR):
                Ap[o + r] = row[i0 + r] if i0 + r < n else zero
    else:
        for r in range(MR):
            if i0 + r < n:
                row = A[i0 + r]
                for k in range(kc):
                    Ap[base + k * MR + r] = row[k0 + k]
            else:
                for k in range(kc):
                    Ap[base + k * MR + r] = zero


@njit(**_JIT)
def _pack_b(B, tb, Bp, m, K, Npad, p, q):
    """Panel p (NR columns) of k-block q of op(B) into Bp[q·KC·Npad + p·NR·kc + k·NR + j], zero-padded."""
    nr = _nr(Bp)
    k0 = q * KC
    kc = min(KC, K - k0)
    base = q * KC * Npad + p * nr * kc
    j0 = p * nr
    zero = _as(0, Bp)
    if tb:  # op(B)[k, j] = B[j, k]
        for jj in range(nr):
            if j0 + jj < m:
                row = B[j0 + jj]
                for k in range(kc):
                    Bp[base + k * nr + jj] = row[k0 + k]
            else:
                for k in range(kc):
                    Bp[base + k * nr + jj] = zero
    else:
        w = min(nr, m - j0)
        _copy_block(Bp, base, nr, B, k0, j0, kc, w)


#: Below this many flops (2·n·k·m) a GEMM runs on the direct path: serial, nothing packed but a transposed
#: op(B) or a partial last column panel. It does not depend on the thread count, so neither do results.
DIRECT_FLOPS = PAR_FLOPS


@njit(**_JIT)
def _gemm_direct(A, ta, B, tb, C, Bp):
    """C = op(A)·op(B) for small products: the micro-kernel reads A in place through its strides and B's
    full NR-column panels in place; op(B) is copied into Bp only when transposed (zero-padded to whole
    panels) or for its partial last panel. Each C element is one FMA chain over all of k, in k order.
    Partial tiles go through the MR×NR edge buffer after op(B) in Bp."""
    n, m = C.shape
    K = A.shape[0] if ta else A.shape[1]
    nr = _nr(C)
    lda = A.shape[1]
    sar = 1 if ta else lda
    sak = lda if ta else 1
    zero = _as(0, C)
    if m == 1:  # one output column (an n → 1 layer): no padding to NR columns
        b = B.reshape(K)
        c = C.reshape(n)
        if ta:  # c[i] = Σ_k A[k, i]·b[k] as axpy over A's rows: each c[i] one FMA chain in k order
            for i in range(n):
                c[i] = zero
            for k in range(K):
                a = A[k]
                bk = b[k]
                for i in range(n):
                    c[i] = _fma(a[i], bk, c[i])
            return
        i = 0
        while i + 4 <= n:  # c[i] = A[i]·b: four rows' FMA chains interleaved to hide the FMA latency
            a0 = A[i]
            a1 = A[i + 1]
            a2 = A[i + 2]
            a3 = A[i + 3]
            s0 = zero
            s1 = zero
            s2 = zero
            s3 = zero
            for k in range(K):
                bk = b[k]
                s0 = _fma(a0[k], bk, s0)
                s1 = _fma(a1[k], bk, s1)
                s2 = _fma(a2[k], bk, s2)
                s3 = _fma(a3[k], bk, s3)
            c[i] = s0
            c[i + 1] = s1
            c[i + 2] = s2
            c[i + 3] = s3
            i += 4
        while i < n:
            a0 = A[i]
            s0 = zero
            for k in range(K):
                s0 = _fma(a0[k], b[k], s0)
            c[i] = s0
            i += 1
        return
    npad = ((m + nr - 1) // nr) * nr
    full = m - m % nr  # columns whose panels are read in place (when not transposed)
    if tb:  # op(B)[k, j] = B[j, k]; an unsigned offset spares each store Numba's negative-index wraparound
        step = np.uint64(npad)
        for j in range(m):
            row = B[j]
            o = np.uint64(j)
            for k in range(K):
                Bp[o] = row[k]
                o += step
        for k in range(K):
            for j in range(m, npad):
                Bp[k * npad + j] = zero
    elif full < m:
        w = m - full
        _copy_block(Bp, 0, nr, B, 0, full, K, w)
    to = npad * K  # edge buffer
    for j in range(0, m, nr):
        w = min(nr, m - j)
        for i in range(0, n, MR):
            rows = min(MR, n - i)
            ao = i * sar
            if w == nr:
                if tb:
                    if rows <= MR_SHORT:
                        _ukern_direct_short(K, A, ao, sar, sak, Bp, j, npad, C, i * m + j, m, rows, _rt(0))
                    else:
                        _ukern_direct(K, A, ao, sar, sak, Bp, j, npad, C, i * m + j, m, rows, _rt(0))
                else:
                    if rows <= MR_SHORT:
                        _ukern_direct_short(K, A, ao, sar, sak, B, j, m, C, i * m + j, m, rows, _rt(0))
                    else:
                        _ukern_direct(K, A, ao, sar, sak, B, j, m, C, i * m + j, m, rows, _rt(0))
                continue
            if tb:
                _ukern_direct(K, A, ao, sar, sak, Bp, j, npad, Bp, to, nr, rows, _rt(0))
            else:
                _ukern_direct(K, A, ao, sar, sak, Bp, _rt(0), nr, Bp, to, nr, rows, _rt(0))
            for r in range(rows):
                c = C[i + r]
                for jj in range(w):
                    c[j + jj] = Bp[to + r * nr + jj]


@njit(**_JIT)
def _gemm_tile(A, ta, Ap, Bp, C, bias, use_bias, K, Npad, t, ntj):
    """Tile t (MC×NT, row-major over tiles) of C: per k-block (in order) pack this tile's rows of op(A)
    into the calling thread's slot, run the micro-kernel over the packed B panels; then the bias."""
    n, m = C.shape
    nr = _nr(C)
    i0 = (t // ntj) * MC
    j0 = (t % ntj) * NT
    i1 = min(i0 + MC, n)
    j1 = min(j0 + NT, m)
    Cf = C.reshape(n * m)
    slot = numba.get_thread_id()
    ab = slot * MC * KC
    to = Npad * K + slot * MR * nr  # edge buffer
    if K == 0:
        zero = _as(0, C)
        for i in range(i0, i1):
            c = C[i]
            for j in range(j0, j1):
                c[j] = zero
    for q in range((K + KC - 1) // KC):
        k0 = q * KC
        kc = min(KC, K - k0)
        for i in range(i0, i1, MR):
            _pack_a(A, ta, Ap, ab + (i - i0) * kc, i, n, k0, kc)
        acc = 1 if q > 0 else 0
        for j in range(j0, j1, nr):
            bo = k0 * Npad + (j // nr) * nr * kc
            for i in range(i0, i1, MR):
                ao = ab + (i - i0) * kc
                if i + MR <= n and j + nr <= m:
                    _ukern(kc, Ap, ao, Bp, bo, Cf, i * m + j, m, acc)
                else:
                    _ukern(kc, Ap, ao, Bp, bo, Bp, to, nr, 0)
                    for r in range(min(MR, n - i)):
                        c = C[i + r]
                        for jj in range(min(nr, m - j)):
                            v = Bp[to + r * nr + jj]
                            c[j + jj] = c[j + jj] + v if acc else v
    if use_bias:
        for i in range(i0, i1):
            c = C[i]
            for j in range(j0, j1):
                c[j] += bias[j]


#: The panel path serves products whose A (read in place, re-read once per column panel) fits in L2.
PANEL_A_BYTES = 512 * 1024
#: ... and that have at least this many NR-column panels to share among the threads.
PANEL_MIN = 4


@njit(**_JIT)
def _gemm_panel(A, ta, B, C, bias, use_bias, Ap, Bp, K, Npad, u, act):
    """Column panel u (NR wide, all rows) of C = op(A)·B (+ bias), then ReLU if ``act`` is RELU (while the
    panel is in cache; other activations are left to the caller): per k-block, in order, this thread
    packs the block's KC×NR slab of B into its slot of Ap and the micro-kernel reads op(A) in
    place through its strides. No shared packing, so no barrier; the arithmetic (an FMA chain per
    k-block, blocks added in order) is the packed path's, bit for bit."""
    n, m = C.shape
    nr = _nr(C)
    j = u * nr
    w = min(nr, m - j)
    lda = A.shape[1]
    sar = 1 if ta else lda
    sak = lda if ta else 1
    slot = numba.get_thread_id()
    sb = slot * MC * KC  # B slab in this thread's A-packing slot (KC·NR ≤ MC·KC)
    to = Npad * K + slot * MR * nr  # edge buffer
    zero = _as(0, C)
    for q in range((K + KC - 1) // KC):
        k0 = q * KC
        kc = min(KC, K - k0)
        _copy_block(Ap, sb, nr, B, k0, j, kc, w)
        acc = 1 if q > 0 else 0
        for i in range(0, n, MR):
            rows = min(MR, n - i)
            ao = i * sar + k0 * sak
            if w == nr:
                if rows <= MR_SHORT:
                    _ukern_direct_short(kc, A, ao, sar, sak, Ap, sb, nr, C, i * m + j, m, rows, acc)
                else:
                    _ukern_direct(kc, A, ao, sar, sak, Ap, sb, nr, C, i * m + j, m, rows, acc)
            else:
                _ukern_direct(kc, A, ao, sar, sak, Ap, sb, nr, Bp, to, nr, rows, _rt(0))
                for r in range(rows):
                    c = C[i + r]
                    for jj in range(w):
                        v = Bp[to + r * nr + jj]
                        c[j + jj] = c[j + jj] + v if acc else v
    if use_bias:
        for i in range(n):
            c = C[i]
            for jj in range(j, j + w):
                c[jj] += bias[jj]
    if act == RELU:
        for i in range(n):
            c = C[i]
            for jj in range(j, j + w):
                v = c[jj]
                c[jj] = zero if v < zero else v


@njit(**_JIT)
def _gemm_work(phase, u, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj):
    """Work unit u of a phase: 1 packs a B panel (u = q·panels + p), 2 computes C tile u (ntj: tiles per
    row of tiles), 3 C panel u (ntj: the activation, see :func:`_gemm_panel`)."""
    if phase == 1:
        npb = Npad // _nr(C)
        _pack_b(B, tb, Bp, C.shape[1], K, Npad, u % npb, u // npb)
    elif phase == 3:
        _gemm_panel(A, ta, B, C, bias, use_bias, Ap, Bp, K, Npad, u, ntj)
    else:
        _gemm_tile(A, ta, Ap, Bp, C, bias, use_bias, K, Npad, u, ntj)


@intrinsic
def _claim(typingctx, counter):
    """Atomically counter[0] += 1 as a 64-bit integer, returning the old value: threads claim work units one
    at a time. counter: int64, or a float64 context whose first slot holds the integer's bits (0.0 is 0)."""
    def codegen(context, builder, signature, args):
        ptr = context.make_array(counter)(context, builder, args[0]).data
        ptr = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", ptr, ir.Constant(ir.IntType(64), 1), "monotonic")
    return types.int64(counter), codegen


@njit(parallel=True, **_JIT)
def _gemm_par(phase, count, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj, th):
    """The only parallel region (compiles once per dtype): each thread claims work units from a shared
    counter until none is left, so a thread the OS deschedules on this shared machine does not hold
    up the others with a fixed share (a static split made the region wait for it). Which thread runs
    a unit never changes its result. th: the thread context (:func:`_context`), its counter reset here."""
    th[0] = 0.0
    for t in prange(_slots(th)):
        u = _claim(th)
        while u < count:
            _gemm_work(phase, u, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj)
            u = _claim(th)


#: Packing op(B) goes parallel only when it is this large (a parallel region costs a barrier).
PAR_PACK = 1 << 18


@njit(**_JIT)
def _gemm_small(A, ta, B, tb, C, bias, use_bias, act, Bp):
    """The direct path of :func:`_gemm`, then bias and the activation."""
    n, m = C.shape
    _gemm_direct(A, ta, B, tb, C, Bp)
    if act == RELU:  # bias and ReLU in one pass over C (small steps are overhead-bound)
        zero = _as(0, C)
        for i in range(n):
            c = C[i]
            for j in range(m):
                v = c[j] + bias[j] if use_bias else c[j]
                c[j] = zero if v < zero else v
        return
    if use_bias:
        for i in range(n):
            c = C[i]
            for j in range(m):
                c[j] += bias[j]
    if act >= 0:
        _act_forward(act, C, C)


@njit(**_JIT)
def _gemm(A, ta, B, tb, C, bias, use_bias, act, Ap, Bp, th):
    """C = f(op(A)·op(B) (+ bias per column)), op = transpose where ta / tb, f the activation ``act``
    (-1: none). A, B, C are C-contiguous.

    op(B) is packed first (whole, zero-padded NR-column panels per k-block); then each MC×NT tile of C
    packs its own rows of op(A) and is summed over k in one fixed order, so the result does not depend
    on the thread count. ``th``: the thread context (:func:`_context`; one slot: serial); above
    PAR_FLOPS the tiles run under one ``prange``. ``th`` None: the direct path whatever the shape, and only
    it is compiled (the layers run inside :func:`_upper_and_gather`'s parallel region).
    """
    if th is None:
        _gemm_small(A, ta, B, tb, C, bias, use_bias, act, Bp)
        return
    n, m = C.shape
    K = A.shape[0] if ta else A.shape[1]
    if 2 * n * m * K < DIRECT_FLOPS:
        _gemm_small(A, ta, B, tb, C, bias, use_bias, act, Bp)
        return
    nr = _nr(C)
    Npad = ((m + nr - 1) // nr) * nr
    npan = Npad // nr
    if not tb and npan >= PANEL_MIN and n * K * C.itemsize <= PANEL_A_BYTES:
        if _slots(th) > 1:
            _gemm_par(3, npan, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, act, th)
        else:
            for u in range(npan):
                _gemm_work(3, u, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, act)
        if act >= 0 and act != RELU:
            _act_forward(act, C, C)
        return
    nq = (K + KC - 1) // KC
    ntj = (m + NT - 1) // NT
    ntiles = ((n + MC - 1) // MC) * ntj
    parallel = _slots(th) > 1 and 2 * n * m * K >= PAR_FLOPS
    nb = (Npad // nr) * nq
    if parallel and K * m >= PAR_PACK:
        _gemm_par(1, nb, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj, th)
    else:
        for u in range(nb):
            _gemm_work(1, u, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj)
    if parallel and ntiles > 1:
        _gemm_par(2, ntiles, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj, th)
    else:
        for u in range(ntiles):
            _gemm_work(2, u, A, ta, B, tb, C, bias, use_bias, Ap, Bp, K, Npad, ntj)
    if act >= 0:
        _act_forward(act, C, C)


@njit(**_JIT)
def _colsum(dZ, db):
    """db = Σ_rows dZ, rows added in order (as numpy's axis-0 sum of a C array)."""
    zero = _as(0, db)
    for j in range(db.shape[0]):
        db[j] = zero
    for r in range(dZ.shape[0]):
        row = dZ[r]
        for j in range(db.shape[0]):
            db[j] += row[j]


@njit(**_JIT)
def _layer_need(n, i, o, nr, slots):
    """Scratch (A, B) for the three GEMMs of an i→o layer on n rows."""
    a1, b1 = _gemm_need(i, o, nr, slots)   # Z = X·W
    a2, b2 = _gemm_need(n, o, nr, slots)   # dW = Xᵀ·dZ
    a3, b3 = _gemm_need(o, i, nr, slots)   # dX = dZ·Wᵀ
    return max(a1, a2, a3), max(b1, b2, b3)


@njit(**_JIT)
def _dense_forward(X, W, b, Z, act, Ap, Bp, th):
    """Z = f(X·W + b), f the activation ``act`` (-1: none)."""
    _gemm(X, _rt(False), W, _rt(False), Z, b, _rt(True), act, Ap, Bp, th)


@njit(**_JIT)
def _dense_backward(X, W, dZ, dW, db, dX, want_dx, Ap, Bp, th):
    """dW = Xᵀ·dZ, db = Σ_rows dZ, dX = dZ·Wᵀ (neither transpose is materialised: packing reads it)."""
    _gemm(X, _rt(True), dZ, _rt(False), dW, db, _rt(False), _rt(-1), Ap, Bp, th)
    _colsum(dZ, db)
    if want_dx:
        _gemm(dZ, _rt(False), W, _rt(True), dX, db, _rt(False), _rt(-1), Ap, Bp, th)


# --------------------------------------------------------------------------- elementwise math
# exp, expm1, log, log1p, tanh, sigmoid and softplus as branch-free scalar code, so that a plain loop over
# a contiguous array that calls them vectorises (LLVM inlines them; libm calls kept every such loop
# scalar). Range reduction and a polynomial, exponents through _bits/_unbits, selects instead of
# branches, every division through _div. Accuracy: contract.MATH_ULP (tests/test_math_accuracy.py).
# The polynomials are weighted minimax fits (Remez exchange in 50-digit arithmetic, tools/fit_math.py);
# each one's own error is below 0.25 ulp of its dtype, so the rounding of the few operations around it
# dominates. Each function is an overload with one implementation per dtype (its constants and
# polynomial degree), compiled once per dtype and inlined by LLVM where it is called; every function
# inlines and vectorises in a plain loop (tests/test_numba_backend.py checks it per dtype). Numba's own
# inlining (inline="always") made the same code take six times as long to compile.
@intrinsic
def _div(typingctx, a, b):
    """a / b as one IEEE division. Numba's Python error model tests the divisor and raises
    ZeroDivisionError, a branch that keeps the loop around it from vectorising; these callers want the
    IEEE result (±inf, NaN), or never divide by zero."""
    def codegen(context, builder, signature, args):
        return builder.fdiv(*args)
    return a(a, b), codegen


@intrinsic
def _select(typingctx, c, a, b):
    """c ? a : b as one LLVM select of two computed values: no branch for LLVM to flatten first, and no
    Numba IR phi (Numba's IR checks warn about those in an inlined function)."""
    ty = types.unliteral(a)

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], context.cast(builder, args[2], signature.args[2], ty))
    return ty(types.boolean, ty, b), codegen


def _math_constants(dt):
    f, i = (np.float32, np.int32) if dt == types.float32 else (np.float64, np.int64)
    mant, bias = (23, 127) if f is np.float32 else (52, 1023)
    ln2hi, ln2lo = ((0.6931471824645996, -1.904654299957767878542e-9) if f is np.float32 else
                    (0.6931471805599453, 2.319046813846299615495e-17))
    k = dict(F=f, I=i, MANT=i(mant), BIAS=i(bias), IZERO=i(0), ZERO=f(0), HALF=f(0.5), ONE=f(1), TWO=f(2),
             INF=f(np.inf), NINF=f(-np.inf), NAN=f(np.nan), SIGN=i(np.iinfo(i).min),
             # exp: x = n·ln2 + r, n = round(x·log2e) read off SHIFT + x·log2e (ulp 1 there)
             SHIFT=f(1.5 * 2.0 ** mant), SHIFT_BITS=f(1.5 * 2.0 ** mant).view(i),
             LOG2E=f(1.442695040888963407359925), NLN2HI=f(-ln2hi), NLN2LO=f(-ln2lo), LN2HI=f(ln2hi),
             LN2LO=f(ln2lo),
             # log: w = 2^k·m, m in [√½, √2)
             SQRTH_BITS=f(0.7071067811865475244008444).view(i), MASK=i((1 << mant) - 1),
             TINY=f(np.finfo(f).tiny), TWO_MANT=f(2.0 ** mant))
    if f is np.float32:
        # exp: below -104 the result is under half the smallest subnormal; above 89 it overflows.
        # expm1 is -1 (rounded) below -20, tanh is ±1 beyond 10.
        k.update(EXP_LO=f(-104), EXP_HI=f(89), EXPM1_LO=f(-20), TANH_HI=f(10))
        # e^r = 1 + r + r²·P(r) on |r| ≤ ln2/2, weighted for the relative error of e^r − 1: 1.3e-8
        k["P"] = tuple(f(c) for c in (0.001388679925462888588539, 0.008366382519482767636363,
                                       0.04166710522514189873069, 0.1666654506546839007531,
                                       0.4999999866139696692692))
        # log(1+f) = 2·atanh(s) = 2s + s·z·Q(z), z = s² ≤ 0.0295, weighted for its relative error: 8.1e-10
        k["Q"] = tuple(f(c) for c in (0.2987172910262911303339, 0.399775415296583816168,
                                       0.6666677638195568422657))
        # the same for log1p(e), e in [0, 1], with z ≤ 1/9: 4.6e-9
        k["Q1"] = tuple(f(c) for c in (0.2802446560609675147464, 0.2799913981296088464577,
                                        0.4002169912899591900722, 0.6666641313164650041842))
    else:
        k.update(EXP_LO=f(-746), EXP_HI=f(710), EXPM1_LO=f(-40), TANH_HI=f(20))
        # as above: 2.4e-17, 1.2e-18 and 1.3e-18
        k["P"] = tuple(f(c) for c in (2.504635842454841265404e-8, 2.76224142428903133936e-7,
                                       0.000002755742400352011811182, 0.00002480151580066001763399,
                                       0.0001984126971002686173386, 0.001388888892105465148556,
                                       0.008333333333388362016212, 0.04166666666661788055482,
                                       0.1666666666666660136464, 0.5000000000000000238991))
        k["Q"] = tuple(f(c) for c in (0.1479595125862921053091, 0.1531405040487358994081,
                                       0.1818356433152840569136, 0.2222219857308745937367,
                                       0.2857142874238849621465, 0.399999999994146747797,
                                       0.6666666666666734412709))
        k["Q1"] = tuple(f(c) for c in (0.1701859040547548007449, 0.08340093340508022993284,
                                        0.1210608812865553525259, 0.1330097334867329706076,
                                        0.1538655994116135706594, 0.1818174392407667882526,
                                        0.2222222396975531337657, 0.2857142854785348843515,
                                        0.4000000000015724603113, 0.666666666666663037932))
    return k


_MC = {}


def _mc(x):
    """The math constants for x's type (a float32 or float64 scalar type)."""
    key = types.unliteral(x)
    if key not in _MC:
        _MC[key] = _math_constants(key)
    return _MC[key]


_OL = {"jit_options": {"cache": True}}


@njit(**_JIT)
def _poly(x, c):
    """c[0]·x^(n−1) + … + c[n−1] by Horner's rule with FMAs (c a constant tuple: the loop unrolls)."""
    p = c[0]
    for i in range(1, len(c)):
        p = _fma(p, x, c[i])
    return p


def _exp_parts(x):
    """(q, n) with e^x = 2^n·(1 + q) and q = e^r − 1 to a relative 1e-8 / 2e-17; x already clamped."""


@overload(_exp_parts, **_OL)
def _exp_parts_ol(x):
    K = _mc(x)
    I, LOG2E, SHIFT, SB, P = K["I"], K["LOG2E"], K["SHIFT"], K["SHIFT_BITS"], K["P"]
    NHI, NLO = K["NLN2HI"], K["NLN2LO"]

    def impl(x):
        z = _fma(x, LOG2E, SHIFT)        # SHIFT + round(x·log2e)
        nf = z - SHIFT
        r = _fma(nf, NHI, x)             # Cody–Waite: x − n·ln2 in two steps (n = 0: r = x exactly)
        r = _fma(nf, NLO, r)
        return _fma(r * r, _poly(r, P), r), I(_bits(z) - SB)
    return impl


def _pow2(n, like):
    """2^n in like's type, for n in the normal exponent range."""


@overload(_pow2, **_OL)
def _pow2_ol(n, like):
    K = _mc(like)
    I, BIAS, MANT = K["I"], K["BIAS"], K["MANT"]

    def impl(n, like):
        return _unbits(I((n + BIAS) << MANT))
    return impl


def _expm1_core(x):
    """e^x − 1 for x in [EXPM1_LO, EXP_HI]."""


@overload(_expm1_core, **_OL)
def _expm1_core_ol(x):
    K = _mc(x)
    I, HALF, TWO = K["I"], K["HALF"], K["TWO"]

    def impl(x):
        q, n = _exp_parts(x)
        # 2^n·q + (2^n − 1), one rounding (the FMA), halved so that 2^(n−1) exists up to n = 128/1024;
        # doubling is exact (or overflows, as it should). n = 0: q itself, relative accuracy near 0.
        s = _pow2(I(n - 1), x)
        return TWO * _fma(s, q, s - HALF)
    return impl


def _vexp(x):
    """e^x (NaN → NaN, −inf → 0, +inf and overflow → inf, results below the normal range may flush)."""


@overload(_vexp, **_OL)
def _vexp_ol(x):
    K = _mc(x)
    I, LO, HI, ONE = K["I"], K["EXP_LO"], K["EXP_HI"], K["ONE"]

    def impl(x):
        x = _select(x < LO, LO, x)       # NaN passes both clamps
        x = _select(x > HI, HI, x)
        q, n = _exp_parts(x)
        h = I(n >> 1)                    # 2^n in two halves: both factors are normal numbers
        return (ONE + q) * _pow2(h, x) * _pow2(I(n - h), x)
    return impl


def _vexpm1(x):
    """e^x − 1."""


@overload(_vexpm1, **_OL)
def _vexpm1_ol(x):
    K = _mc(x)
    LO, HI = K["EXPM1_LO"], K["EXP_HI"]

    def impl(x):
        x = _select(x < LO, LO, x)
        x = _select(x > HI, HI, x)
        return _expm1_core(x)
    return impl


def _vtanh(x):
    """tanh x = sign(x)·e/(e + 2), e = e^(2|x|) − 1 (|x| clamped where tanh is ±1 in this dtype)."""


@overload(_vtanh, **_OL)
def _vtanh_ol(x):
    K = _mc(x)
    I, HI, TWO, SIGN = K["I"], K["TANH_HI"], K["TWO"], K["SIGN"]

    def impl(x):
        a = abs(x)
        a = _select(a > HI, HI, a)
        e = _expm1_core(a + a)
        t = _div(e, e + TWO)             # the error of e is damped: ∂log t/∂log e = 2/(e + 2) ≤ 1
        return _unbits(I(_bits(t) | (_bits(x) & SIGN)))   # x's sign (Numba widens int32 ops)
    return impl


def _vsigmoid(z):
    """σ(z) = 1/(1 + e^−z), as (z ≥ 0 ? 1 : e)/(1 + e) with e = e^−|z| (never overflows)."""


@overload(_vsigmoid, **_OL)
def _vsigmoid_ol(z):
    K = _mc(z)
    ZERO, ONE = K["ZERO"], K["ONE"]

    def impl(z):
        e = _vexp(-abs(z))
        return _div(_select(z >= ZERO, ONE, e), ONE + e)
    return impl


def _log_reduced(f, kf, c):
    """k·ln2 + log(1 + f) + c for f in [√½ − 1, √2 − 1] (exact), kf = k as a float, c far below the ulp."""


@overload(_log_reduced, **_OL)
def _log_reduced_ol(f, kf, c):
    K = _mc(f)
    Q, HALF, TWO, HI, LO = K["Q"], K["HALF"], K["TWO"], K["LN2HI"], K["LN2LO"]

    def impl(f, kf, c):
        # log(1 + f) = 2s + s·z·Q(z), s = f/(2 + f), z = s²; as f − (f²/2 − s·(f²/2 + z·Q)) (2s = f − s·f)
        # so that f, exact, is the leading term
        s = _div(f, TWO + f)
        z = s * s
        hfsq = HALF * f * f
        lo = _fma(s, _fma(z, _poly(z, Q), hfsq), _fma(kf, LO, c))
        return _fma(kf, HI, f - (hfsq - lo))
    return impl


def _logc(w, c):
    """log(w) + c, c a correction far below ulp(log w); w = 0 → −inf, w < 0 → NaN, +inf and NaN → w."""


@overload(_logc, **_OL)
def _logc_ol(w, c):
    K = _mc(w)
    F, I, MANT, SQ, MASK = K["F"], K["I"], K["MANT"], K["SQRTH_BITS"], K["MASK"]
    TINY, SCALE, ZERO, ONE, IZERO = K["TINY"], K["TWO_MANT"], K["ZERO"], K["ONE"], K["IZERO"]
    INF, NINF, NAN = K["INF"], K["NINF"], K["NAN"]

    def impl(w, c):
        sub = w < TINY                   # subnormal (or ≤ 0, replaced below): scaled into the normal range
        v = _select(sub, w * SCALE, w)
        t = I(_bits(v) - SQ)             # w = 2^k·m with m in [√½, √2): k and m off the bits
        k = I(t >> MANT) - _select(sub, MANT, IZERO)
        f = _unbits(I((t & MASK) + SQ)) - ONE
        y = _log_reduced(f, F(I(k)), c)
        y = _select(w == ZERO, NINF, y)
        y = _select(w < ZERO, NAN, y)
        return _select(w < INF, y, w)
    return impl


def _vlog(x):
    """log x (0 → −inf, negative → NaN)."""


@overload(_vlog, **_OL)
def _vlog_ol(x):
    ZERO = _mc(x)["ZERO"]

    def impl(x):
        return _logc(x, ZERO)
    return impl


def _vlog1p(x):
    """log(1 + x) = log(w) + (x − (w − 1))/w, w = 1 + x rounded (the second term restores what the
    rounding of w lost; exact numerator: w − 1 is exact, then x − (w − 1) by Sterbenz)."""


@overload(_vlog1p, **_OL)
def _vlog1p_ol(x):
    ONE = _mc(x)["ONE"]

    def impl(x):
        w = ONE + x
        return _logc(w, _div(x - (w - ONE), w))
    return impl


def _log1p_unit(e):
    """log(1 + e) for 0 ≤ e ≤ 1 (softplus): no reduction, special cases or rounding correction."""


@overload(_log1p_unit, **_OL)
def _log1p_unit_ol(e):
    K = _mc(e)
    Q1, HALF, TWO = K["Q1"], K["HALF"], K["TWO"]

    def impl(e):
        # as _log_reduced with f = e, k = 0 (e exact, so 1 + e is never formed), z = s² ≤ 1/9: a longer
        # polynomial than log's, fewer operations than log1p's reduction
        s = _div(e, TWO + e)
        z = s * s
        hfsq = HALF * e * e
        return e - (hfsq - s * _fma(z, _poly(z, Q1), hfsq))
    return impl


def _vsoftplus(z):
    """log(1 + e^z) = max(z, 0) + log1p(e^−|z|), finite for every finite z."""


# inlined by Numba, so that its two halves reach LLVM as two calls: as one function (both inlined into
# it) the float64 softplus was too big for LLVM's inliner and its loop stayed scalar (28 ns an element)
@overload(_vsoftplus, inline="always", **_OL)
def _vsoftplus_ol(z):
    ZERO = _mc(z)["ZERO"]

    def impl(z):
        # NaN: the max (z, as NaN ≤ 0 is false) carries it, whatever _log1p_unit makes of it
        return _select(z <= ZERO, ZERO, z) + _log1p_unit(_vexp(-abs(z)))
    return impl


@njit(inline="always", **_JIT)
def _math_loops(fn, X, Y):
    n = X.shape[0]
    if fn == M_EXP:
        for i in range(n):
            Y[i] = _vexp(X[i])
    elif fn == M_EXPM1:
        for i in range(n):
            Y[i] = _vexpm1(X[i])
    elif fn == M_LOG:
        for i in range(n):
            Y[i] = _vlog(X[i])
    elif fn == M_LOG1P:
        for i in range(n):
            Y[i] = _vlog1p(X[i])
    elif fn == M_TANH:
        for i in range(n):
            Y[i] = _vtanh(X[i])
    elif fn == M_SIGMOID:
        for i in range(n):
            Y[i] = _vsigmoid(X[i])
    else:
        for i in range(n):
            Y[i] = _vsoftplus(X[i])


@njit(**_JIT)
def _math(fn, X, Y):
    """Y = f(X) for f = MATH[fn] (Y may be X: see :func:`_act_forward`)."""
    if X.ctypes.data == Y.ctypes.data:
        _math_loops(fn, Y, Y)
    else:
        _math_loops(fn, X, Y)


# --------------------------------------------------------------------------- activations
@njit(inline="always", **_JIT)
def _act_forward_flat(act, z, a):
    # over the whole array as one row (C-contiguous): a hidden layer's rows (4 to 32 wide) are too short
    # for vector loops of 8 to 16 lanes with a scalar remainder. One loop per activation, each a plain
    # vectorisable loop.
    zero = _as(0, z)
    n = z.shape[0]
    if act == IDENTITY:
        for j in range(n):
            a[j] = z[j]
    elif act == RELU:
        for j in range(n):
            v = z[j]
            a[j] = zero if v < zero else v
    elif act == SOFTPLUS:
        for j in range(n):
            a[j] = _vsoftplus(z[j])
    elif act == SIGMOID:
        for j in range(n):
            a[j] = _vsigmoid(z[j])
    elif act == TANH:
        for j in range(n):
            a[j] = _vtanh(z[j])


@njit(**_JIT)
def _act_forward(act, Z, A):
    """A = f(Z) elementwise on 2-D C arrays (A may be Z)."""
    a = A.reshape(A.size)
    if Z.ctypes.data == A.ctypes.data:
        # in place: the loops (inlined) read and write one array, so LLVM vectorises them without a
        # runtime overlap check, which fails for an exact alias and falls back to scalar code (~8x slower)
        _act_forward_flat(act, a, a)
    else:
        _act_forward_flat(act, Z.reshape(Z.size), a)


@njit(inline="always", **_JIT)
def _act_backward_flat(act, a, d, o):
    n = a.shape[0]
    one = _as(1, a)
    zero = _as(0, a)
    if act == IDENTITY:
        for j in range(n):
            o[j] = d[j]
    elif act == RELU:
        for j in range(n):
            o[j] = d[j] * (one if a[j] > zero else zero)
    elif act == SOFTPLUS:
        for j in range(n):
            o[j] = d[j] * -_vexpm1(-a[j])      # σ(z) = 1 − e^−A
    elif act == SIGMOID:
        for j in range(n):
            o[j] = d[j] * (a[j] * (one - a[j]))
    elif act == TANH:
        for j in range(n):
            o[j] = d[j] * (one - a[j] * a[j])


@njit(**_JIT)
def _act_backward(act, A, dA, dZ):
    """dZ = dA ⊙ f′ from the output A (dZ may be dA; in place, as :func:`_act_forward`)."""
    o = dZ.reshape(dZ.size)
    if dA.ctypes.data == dZ.ctypes.data:
        _act_backward_flat(act, A.reshape(A.size), o, o)
    else:
        _act_backward_flat(act, A.reshape(A.size), dA.reshape(dA.size), o)


@njit(**_JIT)
def _exp_inplace(x):
    """x = e^x over a 1-D array (one flat loop: softmax rows are often shorter than a vector)."""
    for t in range(x.shape[0]):
        x[t] = _vexp(x[t])


@njit(**_JIT)
def _shift_rows(Z, D):
    """D = Z − max of its row."""
    n, k = Z.shape
    for i in range(n):
        z = Z[i]
        d = D[i]
        mx = z[0]
        for j in range(1, k):
            if z[j] > mx:
                mx = z[j]
        for j in range(k):
            d[j] = z[j] - mx


@njit(**_JIT)
def _softmax(Z, P):
    n, k = Z.shape
    _shift_rows(Z, P)
    _exp_inplace(P.reshape(P.size))
    for i in range(n):
        p = P[i]
        s = 0.0
        for j in range(k):                  # in order (a float sum does not vectorise without fastmath)
            s += p[j]
        ss = _as(s, p)
        for j in range(k):
            p[j] = _div(p[j], ss)


@njit(**_JIT)
def _softmax_backward(P, dP, dZ):
    """dZ = P ⊙ (dP − Σ_j dP⊙P) row by row (dZ may be dP: the row sum is taken first)."""
    n, k = P.shape
    for i in range(n):
        p = P[i]
        d = dP[i]
        o = dZ[i]
        s = 0.0
        for j in range(k):
            s += d[j] * p[j]
        ss = _as(s, p)
        for j in range(k):
            o[j] = p[j] * (d[j] - ss)


# --------------------------------------------------------------------------- losses
@njit(**_JIT)
def _wsum(sw, has_sw, n):
    if not has_sw:
        return float(n)
    s = 0.0
    for i in range(n):
        s += sw[i]
    return s


@njit(**_JIT)
def _wrow(sw, has_sw, i, one):
    return sw[i] if has_sw else one


@njit(**_JIT)
def _softmax_ce(Z, Y, sw, has_sw, dZ):
    """L = Σ w_i(−Σ_j Y log softmax(Z)) / Σw;  dZ = w_i (P − Y) / Σw."""
    n, k = Z.shape
    one = _as(1, Z)
    tot = _as(_wsum(sw, has_sw, n), Z)
    _shift_rows(Z, dZ)
    _exp_inplace(dZ.reshape(dZ.size))       # e^(z − max), vectorised across rows
    loss = 0.0
    for i in range(n):
        z = Z[i]
        y = Y[i]
        d = dZ[i]
        wn = _wrow(sw, has_sw, i, one) / tot
        mx = z[0]
        for j in range(1, k):
            if z[j] > mx:
                mx = z[j]
        s = 0.0
        for j in range(k):
            s += d[j]
        ss = _as(s, z)
        lse = _vlog(ss)
        row = 0.0
        for j in range(k):
            row += y[j] * ((z[j] - mx) - lse)
        for j in range(k):
            d[j] = (_div(d[j], ss) - y[j]) * wn
        loss -= wn * row
    return loss


@njit(**_JIT)
def _sigmoid_bce(Z, Y, sw, has_sw, dZ):
    """L = Σ w_i mean_j(softplus(Z) − Y·Z) / Σw;  dZ = w_i (σ(Z) − Y) / (k Σw)."""
    n, k = Z.shape
    one = _as(1, Z)
    kk = _as(k, Z)
    tot = _as(_wsum(sw, has_sw, n), Z)
    z = Z.reshape(Z.size)
    y = Y.reshape(Y.size)
    d = dZ.reshape(dZ.size)
    # flat vectorised passes (rows are often a single output) with dZ as scratch for the loss terms,
    # then the row sums in order
    for t in range(z.shape[0]):
        v = z[t]
        d[t] = _vsoftplus(v) - y[t] * v
    loss = 0.0
    for i in range(n):
        row = 0.0
        for j in range(i * k, i * k + k):
            row += d[j]
        loss += (_wrow(sw, has_sw, i, one) / tot) * row
    for t in range(z.shape[0]):
        d[t] = _vsigmoid(z[t]) - y[t]
    for i in range(n):
        wk = (_wrow(sw, has_sw, i, one) / tot) / kk
        for j in range(i * k, i * k + k):
            d[j] *= wk
    return loss / k


@njit(**_JIT)
def _squared(Yh, Y, sw, has_sw, dY, mean):
    """ssr: L = Σ w_i Σ_j r², dŶ = 2 w_i r;  mse: L = Σ w_i mean_j r² / Σw, dŶ = 2 w_i r / (k Σw)."""
    n, k = Y.shape
    one = _as(1, Y)
    two = _as(2, Y)
    kk = _as(k, Y)
    tot = _as(_wsum(sw, has_sw, n), Y)
    loss = 0.0
    for i in range(n):
        yh = Yh[i]
        y = Y[i]
        d = dY[i]
        w = _wrow(sw, has_sw, i, one)
        if mean:
            w = w / tot
            f = two * w / kk
        else:
            f = two * w
        row = 0.0
        for j in range(k):
            r = yh[j] - y[j]
            d[j] = r * f
            row += r * r
        loss += w * row
    return loss / k if mean else loss


@njit(**_JIT)
def _output_loss(act, loss, Z, Y, sw, has_sw, A, dZ):
    if act == SOFTMAX:
        _softmax(Z, A)
    else:
        _act_forward(act, Z, A)
    if loss == CE:
        return _softmax_ce(Z, Y, sw, has_sw, dZ)
    if loss == BCE:
        return _sigmoid_bce(Z, Y, sw, has_sw, dZ)
    value = _squared(A, Y, sw, has_sw, dZ, loss == MSE)  # dZ holds ∂L/∂A here
    if act == SOFTMAX:
        _softmax_backward(A, dZ, dZ)
    else:
        _act_backward(act, A, dZ, dZ)
    return value


# --------------------------------------------------------------------------- optimizers
@njit(**_JIT)
def _sgd(params, grads, vel, lr, momentum, nesterov, weight_decay):
    """g = ∇ + λθ; v = μv + g; θ −= lr·(g + μv if nesterov else v); returns max|Δ| (NaN if any Δ is)."""
    lr_ = _as(lr, params)
    mu = _as(momentum, params)
    wd = _as(weight_decay, params)
    big = _bits(_as(0, params))
    if momentum == 0 and weight_decay == 0:  # plain SGD: one vectorised pass
        for i in range(params.shape[0]):
            s = -lr_ * grads[i]
            params[i] += s
            big = max(big, _bits(abs(s)))
        return float(_unbits(big))
    for i in range(params.shape[0]):
        g = grads[i] + wd * params[i] if weight_decay != 0 else grads[i]
        if momentum != 0:
            v = vel[i] * mu + g
            vel[i] = v
            s = -lr_ * (g + mu * v) if nesterov else -lr_ * v
        else:
            s = -lr_ * g
        params[i] += s
        big = max(big, _bits(abs(s)))
    return float(_unbits(big))


@njit(**_JIT)
def _adam(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """g = ∇ + λθ; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; θ −= lr·m̂/(√v̂ + ε); returns max|Δ|."""
    wd = _as(weight_decay, params)
    b1 = _as(beta1, params)
    b2 = _as(beta2, params)
    c1 = _as(1 - beta1, params)
    c2 = _as(1 - beta2, params)
    h1 = _as(1 - beta1 ** t, params)
    h2 = _as(1 - beta2 ** t, params)
    lr_ = _as(lr, params)
    ep = _as(eps, params)
    big = _bits(_as(0, params))
    for i in range(params.shape[0]):
        g = grads[i] + wd * params[i] if weight_decay != 0 else grads[i]
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * g * g
        m[i] = mi
        v[i] = vi
        s = -lr_ * (mi / h1) / (np.sqrt(vi / h2) + ep)
        params[i] += s
        big = max(big, _bits(abs(s)))
    return float(_unbits(big))


# --------------------------------------------------------------------------- fused kernels
@njit(**_JIT)
def _update_rows(params, grads, opt, hyper, s1, s2, t):
    """The optimizer step over params (s1: the velocity or Adam's m, s2: Adam's v, alongside); max|Δ|."""
    if opt == ADAM:
        return _adam(params, grads, s1, s2, t, hyper[0], hyper[4], hyper[5], hyper[6], hyper[3])
    return _sgd(params, grads, s1, hyper[0], hyper[1], int(hyper[2]) != 0, hyper[3])


#: Elementwise passes over the parameters (the gradient check, the optimizer step) split over the threads
#: from this many elements (the MNIST-shaped 101,770): two halves of a 100 K pass took 23 µs against 33 µs.
ELEM_PAR = 1 << 15
#: ... in this many chunks, claimed from a counter (a thread the OS deschedules holds up no fixed share).
ELEM_CHUNKS = 8


@njit(**_JIT)
def _chunk(n, c):
    """Bounds of chunk c of ELEM_CHUNKS over n elements (multiples of 16 but for the last)."""
    step = (n + 16 * ELEM_CHUNKS - 1) // (16 * ELEM_CHUNKS) * 16
    return min(n, c * step), min(n, (c + 1) * step)


@njit(**_JIT)
def _context(slots):
    """The thread context of one fused call, passed down to every parallel region (``th``): [0] the work
    counter they claim from (an int64's bits, reset by each region), [1] the thread slots (1: serial),
    [2:2 + ELEM_CHUNKS] per-chunk results. Allocated once per call, so that no step allocates."""
    th = np.zeros(2 + ELEM_CHUNKS)
    th[1] = slots
    return th


@njit(**_JIT)
def _slots(th):
    return int(th[1])


@njit(**_JIT)
def _nonfinite(x):
    bad = 0
    for q in range(x.shape[0]):
        d = x[q] - x[q]  # x − x is NaN exactly for ±inf and NaN
        bad |= d != d
    return bad


@njit(parallel=True, **_JIT)
def _nonfinite_par(x, th):
    th[0] = 0.0
    for t in prange(2):
        c = _claim(th)
        while c < ELEM_CHUNKS:
            lo, hi = _chunk(x.shape[0], c)
            th[2 + c] = _nonfinite(x[lo:hi])
            c = _claim(th)


@njit(**_JIT)
def _any_nonfinite(x, th):
    """Whether x holds an inf or NaN; split over the threads for a long x (chunk flags in th)."""
    if _slots(th) > 1 and x.shape[0] >= ELEM_PAR:
        _nonfinite_par(x, th)
        return th[2:2 + ELEM_CHUNKS].max() > 0
    return _nonfinite(x) > 0


@njit(parallel=True, **_JIT)
def _update_chunks(params, grads, opt, hyper, state, t, th):
    P = params.shape[0]
    th[0] = 0.0
    for u in prange(2):
        c = _claim(th)
        while c < ELEM_CHUNKS:
            lo, hi = _chunk(P, c)
            th[2 + c] = _update_rows(params[lo:hi], grads[lo:hi], opt, hyper, state[lo:hi], state[P + lo:P + hi],
                                     t)
            c = _claim(th)


@njit(**_JIT)
def _update(params, grads, opt, hyper, state, t, th):
    """The optimizer step of fused training (state: the velocity, or Adam's m | v); max|Δ|. From ELEM_PAR
    parameters in chunks over the threads: elementwise, so the same bits; max|Δ| is then the chunks' max
    (NaN if any chunk's is: max would drop it)."""
    P = params.shape[0]
    if _slots(th) < 2 or P < ELEM_PAR:
        return _update_rows(params, grads, opt, hyper, state[:P], state[P:], t)
    _update_chunks(params, grads, opt, hyper, state, t, th)
    moved = 0.0
    for c in range(ELEM_CHUNKS):
        mv = th[2 + c]
        if mv != mv:
            return np.nan
        moved = max(moved, mv)
    return moved


@njit(**_JIT)
def _layer(params, sizes, l):
    """Views W_l (n_{l}×n_{l+1}) and b_l of layer l (0-based) in the flat buffer."""
    off = 0
    for q in range(l):
        off += sizes[q] * sizes[q + 1] + sizes[q + 1]
    ni = sizes[l]
    no = sizes[l + 1]
    return params[off:off + ni * no].reshape((ni, no)), params[off + ni * no:off + ni * no + no]


@njit(**_JIT)
def _region(ws, off, rows, width):
    return ws[off:off + rows * width].reshape((rows, width))


#: Rows of X up to this size are prefetched one batch ahead by :func:`_gather`.
PREFETCH_ROW_BYTES = 512


@njit(**_JIT)
def _gather(X, Y, sw, has_sw, order, start, Xb, Yb, swb):
    """Rows order[start:start + len(Xb)] of X, Y (and sw) into the batch buffers, in that order.

    Short rows of the next batch are prefetched: they are scattered over X, so each is a cache miss that
    the hardware prefetcher cannot predict (about 5 % of a 20-64-64-1 step in ``perf``); the step's compute
    hides the prefetches. Long rows are left to the hardware's stream prefetcher."""
    n0 = Xb.shape[1]
    k = Yb.shape[1]
    nb = Xb.shape[0]
    if 0 < n0 * Xb.itemsize <= PREFETCH_ROW_BYTES:
        line = 64 // Xb.itemsize
        for r in range(start + nb, min(start + 2 * nb, order.shape[0])):
            src = order[r]
            for j in range(0, n0 + line, line):  # every line the row touches, whatever its alignment
                _prefetch(X, src * n0 + min(j, n0 - 1))
            _prefetch(Y, src * k)
    _gather_rows(X, Y, sw, has_sw, order, start, Xb, Yb, swb, 0, nb)


@njit(**_JIT)
def _gather_rows(X, Y, sw, has_sw, order, start, Xb, Yb, swb, r0, r1):
    """Rows r0..r1 of the batch: X[order[start + r]] into Xb[r] (and Y, sw likewise)."""
    n0 = Xb.shape[1]
    k = Yb.shape[1]
    for r in range(r0, r1):
        src = order[start + r]
        xs = X[src]
        xd = Xb[r]
        for j in range(n0):
            xd[j] = xs[j]
        ys = Y[src]
        yd = Yb[r]
        for j in range(k):
            yd[j] = ys[j]
        if has_sw:
            swb[r] = sw[src]


@njit(**_JIT)
def _net_scratch(sizes, n, like, slots):
    """GEMM packing buffers large enough for every layer's three products on n rows."""
    nr = _nr(like)
    la = 0
    lb = 0
    for l in range(sizes.shape[0] - 1):
        a, b = _layer_need(n, sizes[l], sizes[l + 1], nr, slots)
        la = max(la, a)
        lb = max(lb, b)
    return np.empty(la, like.dtype), np.empty(lb, like.dtype)


#: The next batch's gather runs beside the layers above the first (see :func:`_gradient`) when it copies at
#: least this many elements: smaller ones cost less than the parallel region's start.
OVERLAP_ELEMS = 1 << 16


@njit(**_JIT)
def _overlap_ok(sizes, rows, th):
    """Whether train_epoch gathers the next batch during :func:`_upper`: two thread slots or more, a large
    gather (rows·n0 ≥ OVERLAP_ELEMS: the MNIST-shaped 128 × 784) and every product above the first layer on
    the serial direct path, so that _upper runs on one thread whatever happens (the 128→10 layer)."""
    if _slots(th) < 2 or rows * sizes[0] < OVERLAP_ELEMS:
        return False
    for l in range(1, sizes.shape[0] - 1):
        if 2 * rows * sizes[l] * sizes[l + 1] >= DIRECT_FLOPS:
            return False
    return True


@njit(**_JIT)
def _upper(params, grads, sizes, acts, loss, Yb, swb, has_sw, ws, bs, n, alive, Ap, Bp, th):
    """Everything between the first layer's forward and its backward, on n rows whose first hidden
    activations are in their workspace region: forward through layers 1..L−1, the output loss, the dead-unit
    monitor, backward through layers L−1..1. Returns (loss, offset of the region holding dZ of layer 0)."""
    L = sizes.shape[0] - 1
    widest = 0
    for q in range(L + 1):
        widest = max(widest, sizes[q])
    tail = 0
    for q in range(L + 1):
        tail += bs * sizes[q]
    tail += bs * sizes[L] + bs
    g1 = tail
    g2 = tail + bs * widest
    # forward: hidden activations in place over Z
    off = bs * sizes[0]
    H = _region(ws, off, n, sizes[1])
    off += bs * sizes[1]
    for l in range(1, L):
        W, b = _layer(params, sizes, l)
        Z = _region(ws, off, n, sizes[l + 1])
        _dense_forward(H, W, b, Z, acts[l] if l < L - 1 else -1, Ap, Bp, th)
        H = Z
        off += bs * sizes[l + 1]
    k = sizes[L]
    A = _region(ws, g1, n, k)
    D = _region(ws, g2, n, k)
    value = _output_loss(acts[L - 1], loss, H, Yb, swb, has_sw, A, D)
    if not np.isfinite(value):
        return value, g2
    if alive.shape[0] > 0:
        off = bs * sizes[0]
        u = 0
        for l in range(1, L):
            Hl = _region(ws, off, n, sizes[l])
            mark = alive[u:u + sizes[l]]
            for r in range(n):
                row = Hl[r]
                for j in range(sizes[l]):   # branch-free, so it vectorises
                    mark[j] |= np.int64(row[j] != 0)
            u += sizes[l]
            off += bs * sizes[l]
    # backward: the region at cur holds dZ of layer l; dX goes to the other gradient buffer
    cur = g2
    for l in range(L - 1, 0, -1):
        W, _ = _layer(params, sizes, l)
        dW, db = _layer(grads, sizes, l)
        dZ = _region(ws, cur, n, sizes[l + 1])
        Hin = _region(ws, bs * _sum_first(sizes, l), n, sizes[l])
        nxt = g1 if cur == g2 else g2
        dX = _region(ws, nxt, n, sizes[l])
        _dense_backward(Hin, W, dZ, dW, db, dX, _rt(True), Ap, Bp, th)
        _act_backward(acts[l - 1], Hin, dX, dX)
        cur = nxt
    return value, cur


@njit(parallel=True, **_JIT)
def _upper_and_gather(params, grads, sizes, acts, loss, Yb, swb, has_sw, ws, bs, n, alive, Ap, Bp, nx):
    """:func:`_upper` on one thread (its products on the direct path: th None) while the threads gather the
    next batch in chunks of 8 rows claimed from nx's counter, the first joining once _upper is done. Writes
    (loss, dZ offset) to nx's box. The gather is DRAM-bound (random rows) and _upper a serial stretch in
    which the second core idled; the operations and their order are unchanged, so are the bits."""
    X, Y, sw, order, nstart, nnext, Xn, Yn, swn, box, counter = nx
    counter[0] = 0
    for t in prange(2):
        if t == 0:
            value, cur = _upper(params, grads, sizes, acts, loss, Yb, swb, has_sw, ws, bs, n, alive, Ap, Bp, None)
            box[0] = value
            box[1] = cur
        u = _claim(counter)
        while 8 * u < nnext:
            _gather_rows(X, Y, sw, has_sw, order, nstart, Xn, Yn, swn, 8 * u, min(8 * u + 8, nnext))
            u = _claim(counter)


@njit(**_JIT)
def _gradient(params, grads, sizes, acts, loss, X0, Yb, swb, has_sw, ws, bs, alive, Ap, Bp, th, nx):
    """Forward, output loss and backward on rows X0 into grads; the loss, NaN if the gradient overflowed.

    Workspace (per contract.train_workspace_size, regions sized for bs rows): activations of layers
    0..L | Y | sw | G1 | G2. Layer 0's region is unused when X0 is not in it (train_gd, train_epoch's spare
    buffer). nx (see :func:`_upper_and_gather`): when its row count nnext > 0, the next batch is gathered
    during the layers above the first.
    """
    L = sizes.shape[0] - 1
    n = X0.shape[0]
    W, b = _layer(params, sizes, 0)
    _dense_forward(X0, W, b, _region(ws, bs * sizes[0], n, sizes[1]), acts[0] if L > 1 else -1, Ap, Bp, th)
    nnext, box = nx[5], nx[9]  # the fields are named in _upper_and_gather
    if nnext > 0:
        _upper_and_gather(params, grads, sizes, acts, loss, Yb, swb, has_sw, ws, bs, n, alive, Ap, Bp, nx)
        value = box[0]
        cur = int(box[1])
    else:
        value, cur = _upper(params, grads, sizes, acts, loss, Yb, swb, has_sw, ws, bs, n, alive, Ap, Bp, th)
    if not np.isfinite(value):
        return value
    dW, db = _layer(grads, sizes, 0)
    dZ = _region(ws, cur, n, sizes[1])
    _dense_backward(X0, W, dZ, dW, db, dZ, _rt(False), Ap, Bp, th)
    return np.nan if _any_nonfinite(grads, th) else value  # an overflowing gradient is divergence too


@njit(**_JIT)
def _sum_sq(x):
    """Σ x² in float64 over 8 interleaved partial sums: one running sum is a chain of dependent adds (a third
    of the MNIST-shaped step), the lanes are independent and vectorise. Fixed order, as csrc's sum_sq."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    n = x.shape[0]
    q = 0
    while q + 8 <= n:
        v0, v1, v2, v3 = float(x[q]), float(x[q + 1]), float(x[q + 2]), float(x[q + 3])
        v4, v5, v6, v7 = float(x[q + 4]), float(x[q + 5]), float(x[q + 6]), float(x[q + 7])
        a0 += v0 * v0
        a1 += v1 * v1
        a2 += v2 * v2
        a3 += v3 * v3
        a4 += v4 * v4
        a5 += v5 * v5
        a6 += v6 * v6
        a7 += v7 * v7
        q += 8
    while q < n:
        v = float(x[q])
        a0 += v * v
        q += 1
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7


@njit(**_JIT)
def _step(params, grads, sizes, acts, loss, X0, Yb, swb, has_sw, opt, hyper, state, step, ws, bs,
          alive, grad_sq, Ap, Bp, th, nx):
    """One forward/loss/backward/update on rows X0; (loss, max|Δ|), no update if the loss or the
    gradient is not finite."""
    value = _gradient(params, grads, sizes, acts, loss, X0, Yb, swb, has_sw, ws, bs, alive, Ap, Bp, th, nx)
    if not np.isfinite(value):
        return value, np.inf
    L = sizes.shape[0] - 1
    if grad_sq.shape[0] > 0:
        off = 0
        for l in range(L):
            nw = sizes[l] * sizes[l + 1]
            grad_sq[l] += _sum_sq(grads[off:off + nw])
            off += nw + sizes[l + 1]
    if opt == ADAM:
        step[0] += 1
    return value, _update(params, grads, opt, hyper, state, step[0], th)


@njit(**_JIT)
def _sum_first(sizes, l):
    s = 0
    for q in range(l):
        s += sizes[q]
    return s


@njit(**_JIT)
def _no_next(X, Y, sw, order):
    """The gather job of a step that gathers nothing ahead (see :func:`_upper_and_gather`)."""
    return (X, Y, sw, order, _rt(0), _rt(0), X, Y, sw, np.zeros(2), np.zeros(1, np.int64))


@njit(**_JIT)
def _train_epoch(params, grads, sizes, acts, loss, X, Y, sw, has_sw, perm, batch_size, opt, hyper,
                 state, step, ws, alive, grad_sq, slots):
    m = perm.shape[0]
    bs = min(batch_size, max(m, 1))
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    k = sizes[L]
    total = 0.0
    rows = 0
    Ap, Bp = _net_scratch(sizes, bs, ws, slots)  # GEMM packing buffers and thread context: once per epoch
    th = _context(slots)
    # Batches alternate between the workspace's X | Y | sw regions and a spare set when the next batch is
    # gathered during the step (:func:`_overlap_ok`); both are laid out at base + (0, bs·n0, bs·(n0 + k)).
    ov = _overlap_ok(sizes, bs, th)
    spare = np.empty(bs * (n0 + k + 1) if ov else 0, ws.dtype)
    box = np.zeros(2)
    counter = np.zeros(1, np.int64)
    oy = bs * _sum_first(sizes, L + 1)
    osw = oy + bs * k
    in_spare = False  # where the current batch is
    ready = False     # whether it is already gathered
    for start in range(0, m, bs):
        nb = min(bs, m - start)
        nnext = min(bs, m - start - nb) if ov else 0
        cur = spare if in_spare else ws
        alt = ws if in_spare else spare
        cy, csw = (bs * n0, bs * (n0 + k)) if in_spare else (oy, osw)
        ay, asw = (oy, osw) if in_spare else (bs * n0, bs * (n0 + k))
        Xb = _region(cur, _rt(0), nb, n0)
        Yb = _region(cur, cy, nb, k)
        swb = cur[csw:csw + nb]
        if not ready:
            _gather(X, Y, sw, has_sw, perm, start, Xb, Yb, swb)
        nx = (X, Y, sw, perm, start + nb, nnext, _region(alt, _rt(0), nnext, n0), _region(alt, ay, nnext, k),
              alt[asw:asw + nnext], box, counter)
        value, _ = _step(params, grads, sizes, acts, loss, Xb, Yb, swb, has_sw, opt, hyper, state, step,
                         ws, bs, alive, grad_sq, Ap, Bp, th, nx)
        if not np.isfinite(value):
            return value
        total += value if loss == SSR else value * nb
        rows += nb
        ready = nnext > 0
        if ready:
            in_spare = not in_spare
    return total if loss == SSR or rows == 0 else total / rows


@njit(**_JIT)
def _batch_gradient(params, grads, sizes, acts, loss, X, Y, sw, has_sw, rows, ws, slots):
    """grads = ∇L over X[rows] (gather, forward, output loss, backward; no update); returns the loss."""
    m = rows.shape[0]
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    k = sizes[L]
    oy = m * _sum_first(sizes, L + 1)
    osw = oy + m * k
    Xb = _region(ws, _rt(0), m, n0)
    Yb = _region(ws, oy, m, k)
    swb = ws[osw:osw + m]
    _gather(X, Y, sw, has_sw, rows, 0, Xb, Yb, swb)
    Ap, Bp = _net_scratch(sizes, m, ws, slots)  # packing buffers: once per call (one call per step)
    return _gradient(params, grads, sizes, acts, loss, Xb, Yb, swb, has_sw, ws, m, np.zeros(0, np.int64),
                     Ap, Bp, _context(slots), _no_next(X, Y, sw, rows))


@njit(**_JIT)
def _train_gd(params, grads, sizes, acts, loss, X, Y, sw, has_sw, opt, hyper, state, step, tol,
              max_steps, ws, losses, last_step, slots):
    no_alive = np.zeros(0, np.int64)
    no_grad = np.zeros(0, np.float64)
    bs = X.shape[0]
    Ap, Bp = _net_scratch(sizes, bs, ws, slots)
    th = _context(slots)
    nx = _no_next(X, Y, sw, no_alive)
    for s in range(max_steps):
        value, moved = _step(params, grads, sizes, acts, loss, X, Y, sw, has_sw, opt, hyper, state, step,
                             ws, bs, no_alive, no_grad, Ap, Bp, th, nx)
        losses[s] = value
        last_step[0] = moved
        if not np.isfinite(value) or moved < tol:
            return s + 1
    return max_steps


@njit(**_JIT)
def _predict(params, sizes, acts, X, out, block, ws, slots):
    L = sizes.shape[0] - 1
    n = X.shape[0]
    half = ws.shape[0] // 2
    Ap, Bp = _net_scratch(sizes, min(block, max(n, 1)), ws, slots)
    th = _context(slots)
    for start in range(0, n, block):
        nb = min(block, n - start)
        H = X[start:start + nb]
        for l in range(L):
            W, b = _layer(params, sizes, l)
            Z = _region(ws, (l % 2) * half, nb, sizes[l + 1])
            _dense_forward(H, W, b, Z, acts[l] if l < L - 1 else -1, Ap, Bp, th)
            H = Z
        o = out[start:start + nb]
        if acts[L - 1] == SOFTMAX:
            _softmax(H, o)
        else:
            _act_forward(acts[L - 1], H, o)


# --------------------------------------------------------------------------- the contract's entry points
_EMPTY = {}


_target_lock = threading.Lock()
_target_loaded = False


def _load_target():
    """Initialise Numba's CPU target, once, without importing scipy.linalg's package.

    The process's first compile or cache load initialises the target: Numba imports all its
    implementation modules, and one of them (numba.np.arraymath) runs ``import scipy.linalg.cython_blas``
    to learn whether np.dot may call BLAS. That statement executes scipy.linalg's ``__init__`` (~0.3 s,
    a third of a warm-cache start; measured with ``python -X importtime``) although only the extension
    module is needed. So the extension is loaded alone under its own name while the target initialises,
    then dropped from sys.modules: a later ``import scipy.linalg`` runs normally (and Cython hands back the
    same module object). On any failure Numba's own path runs.
    """
    global _target_loaded
    with _target_lock:
        if _target_loaded:
            return
        name = "scipy.linalg.cython_blas"
        added = False
        if name not in sys.modules and "numba.np.arraymath" not in sys.modules:
            try:
                import importlib.machinery
                import importlib.util
                spec = importlib.util.find_spec("scipy")  # finds, does not import
                if spec is not None and spec.submodule_search_locations:
                    where = [os.path.join(d, "linalg") for d in spec.submodule_search_locations]
                    found = importlib.machinery.PathFinder.find_spec(name, where)
                    if found is not None:
                        mod = importlib.util.module_from_spec(found)
                        sys.modules[name] = mod
                        added = True
                        found.loader.exec_module(mod)
            except Exception:
                if added:
                    sys.modules.pop(name, None)
                    added = False
        try:
            from numba.core.registry import cpu_target
            cpu_target.target_context.refresh()
        finally:
            if added:
                sys.modules.pop(name, None)
        _target_loaded = True


def _entry(fn):
    """A contract kernel: initialises the target first (:func:`_load_target`)."""
    def kernel(*args):
        if not _target_loaded:
            _load_target()
        return fn(*args)
    kernel.__name__ = kernel.__qualname__ = fn.__name__
    kernel.__doc__ = fn.__doc__
    return kernel


def _par():
    """Thread slots for the GEMM scratch: the pool size when the GEMMs may fork, else 1 (serial).

    Read here: get_num_threads inside compiled code blocks caching."""
    return numba.config.NUMBA_NUM_THREADS if numba.get_num_threads() > 1 else 1


class _Writable:
    """Exposes a read-only array's memory as writable (kernels never write their inputs), keeping it alive."""

    def __init__(self, a):
        self._keep = a
        ai = dict(a.__array_interface__)
        ai["data"] = (ai["data"][0], False)
        self.__array_interface__ = ai


def _ro(a):
    """``a`` itself, or a writable alias of a read-only input: one specialisation serves both."""
    return a if a.flags.writeable else np.asarray(_Writable(a))


def _sw(sw, like):
    """(array, has_sw): a zero-length stand-in replaces None so that one specialisation serves both."""
    if sw is not None:
        return _ro(sw), True
    e = _EMPTY.get(like.dtype)
    if e is None:
        e = _EMPTY[like.dtype] = np.zeros(0, like.dtype)
    return e, False


_tls = threading.local()


def _layer_is_threadsafe() -> bool:
    """Whether Numba's threading layer here serves parallel kernels from several Python threads at once.

    The default order is tbb, then omp, then workqueue; workqueue aborts the process on concurrent use
    (numba#8563), so kernels are then serialised through CALL_LOCK (kernels.Backend honours it)."""
    layer = numba.config.THREADING_LAYER
    if layer == "workqueue":
        return False
    if layer != "default":  # omp, tbb, "safe" (tbb) and "threadsafe" (tbb or omp) all are
        return True
    import importlib
    for pool in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(pool)
            return True
        except ImportError:
            continue
    return False


#: A lock serialising kernel calls, only where the threading layer needs it (see above).
CALL_LOCK = None if _layer_is_threadsafe() else threading.Lock()


def _scratch(dtype, la, lb):
    """Packing buffers for the single-layer kernels: per thread, grown on demand, reused across calls."""
    key = np.dtype(dtype)
    d = getattr(_tls, "bufs", None)
    if d is None:
        d = _tls.bufs = {}
    have = d.get(key)
    if have is None or have[0].shape[0] < la or have[1].shape[0] < lb:
        la = max(la, have[0].shape[0]) if have else la
        lb = max(lb, have[1].shape[0]) if have else lb
        have = d[key] = (np.empty(la, key), np.empty(lb, key))
    return have


def _thread_context(slots):
    """This Python thread's thread context (see :func:`_context`) with ``slots`` slots, reused across calls."""
    th = getattr(_tls, "th", None)
    if th is None:
        th = _tls.th = _context(slots)
    th[1] = slots
    return th


@_entry
def dense_forward(X, W, b, Z):
    par = _par()
    Ap, Bp = _scratch(Z.dtype, *_need(X.shape[1], Z.shape[1], 64 // Z.itemsize, par))
    _dense_forward(_ro(X), _ro(W), _ro(b), Z, -1, Ap, Bp, _thread_context(par))


@_entry
def dense_backward(X, W, dZ, dW, db, dX):
    n, i = X.shape
    o = dZ.shape[1]
    nr = 64 // X.itemsize
    par = _par()
    needs = (_need(n, o, nr, par), _need(o, i, nr, par))
    Ap, Bp = _scratch(X.dtype, max(a for a, _ in needs), max(b for _, b in needs))
    if dX is None:
        _dense_backward(_ro(X), _ro(W), _ro(dZ), dW, db, dW, False, Ap, Bp, _thread_context(par))
    else:
        _dense_backward(_ro(X), _ro(W), _ro(dZ), dW, db, dX, True, Ap, Bp, _thread_context(par))


@_entry
def math_function(fn, X, Y):
    _math(int(fn), _ro(X), Y)


@_entry
def activation_forward(act, Z, A):
    _act_forward(int(act), _ro(Z), A)


@_entry
def activation_backward(act, A, dA, dZ):
    _act_backward(int(act), _ro(A), _ro(dA), dZ)


@_entry
def softmax(Z, P):
    _softmax(_ro(Z), P)


@_entry
def softmax_backward(P, dP, dZ):
    _softmax_backward(_ro(P), _ro(dP), dZ)


@_entry
def softmax_cross_entropy(Z, Y, sw, dZ):
    return float(_softmax_ce(_ro(Z), _ro(Y), *_sw(sw, Z), dZ))


@_entry
def sigmoid_binary_cross_entropy(Z, Y, sw, dZ):
    return float(_sigmoid_bce(_ro(Z), _ro(Y), *_sw(sw, Z), dZ))


@_entry
def ssr(Yhat, Y, sw, dYhat):
    return float(_squared(_ro(Yhat), _ro(Y), *_sw(sw, Y), dYhat, False))


@_entry
def mse(Yhat, Y, sw, dYhat):
    return float(_squared(_ro(Yhat), _ro(Y), *_sw(sw, Y), dYhat, True))


@_entry
def output_loss(act, loss, Z, Y, sw, A, dZ):
    return float(_output_loss(int(act), int(loss), _ro(Z), _ro(Y), *_sw(sw, Z), A, dZ))


@_entry
def sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay):
    return float(_sgd(params, _ro(grads), velocity, float(lr), float(momentum), bool(nesterov != 0),
                      float(weight_decay)))


@_entry
def adam_update(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return float(_adam(params, _ro(grads), m, v, int(t), float(lr), float(beta1), float(beta2), float(eps),
                       float(weight_decay)))


@_entry
def train_epoch(params, grads, sizes, acts, loss, X, Y, sw, perm, batch_size, opt, hyper, state, step,
                workspace, alive, grad_sq):
    return float(_train_epoch(params, grads, _ro(sizes), _ro(acts), int(loss), _ro(X), _ro(Y), *_sw(sw, X),
                              _ro(perm), int(batch_size), int(opt), _ro(hyper), state, step, workspace, alive,
                              grad_sq, _par()))


@_entry
def batch_gradient(params, grads, sizes, acts, loss, X, Y, sw, rows, workspace):
    return float(_batch_gradient(_ro(params), grads, _ro(sizes), _ro(acts), int(loss), _ro(X), _ro(Y),
                                 *_sw(sw, X), _ro(rows), workspace, _par()))


@_entry
def train_gd(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step, tol, max_steps,
             workspace, losses, last_step):
    return int(_train_gd(params, grads, _ro(sizes), _ro(acts), int(loss), _ro(X), _ro(Y), *_sw(sw, X), int(opt),
                         _ro(hyper), state, step, float(tol), int(max_steps), workspace, losses, last_step,
                         _par()))


@_entry
def predict(params, sizes, acts, X, out, block, workspace):
    _predict(_ro(params), _ro(sizes), _ro(acts), _ro(X), out, int(block), workspace, _par())


# --------------------------------------------------------------------------- threads and warm-up
def set_num_threads(n: int) -> None:
    """Threads for the parallel GEMM tiles (clamped to Numba's pool size)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def get_num_threads() -> int:
    return numba.get_num_threads()


#: The fused kernels MLP.fit calls, per optimizer ("gd": full-batch; the rest: mini-batch epochs); predict
#: serves validation, the diagnostics and score.
_FIT_KERNELS = {"gd": ("_train_gd", "_predict"), "sgd": ("_train_epoch", "_predict")}


def cached(dtype, fit="sgd") -> bool | None:
    """Whether the kernels ``MLP.fit(optimizer=fit)`` calls for ``dtype`` are compiled in this process or in
    Numba's cache (False: the first fit compiles them, see :func:`compile_estimate`); None when the cache
    cannot be read. Any optimizer but "gd" runs the mini-batch epoch kernel."""
    dt = numba.from_dtype(np.dtype(dtype))
    try:
        for name in _FIT_KERNELS["gd" if fit == "gd" else "sgd"]:
            fn = globals()[name]
            if any(sig[0].dtype == dt for sig in fn.signatures):
                continue
            index = fn._cache._cache_file._load_index()  # Numba's index; {} when absent or stale
            if not any(key[0][0].dtype == dt for key in index):
                return False
        return True
    except Exception:  # a Numba without these internals: unknown
        return None


def _warmup_calls(dt, fit):
    """[(kernel name, call)] that compile, for dtype ``dt``, every kernel or (``fit``) what that fit calls."""
    from .contract import n_params, predict_workspace_size, train_workspace_size
    rng = np.random.default_rng(0)
    sizes = np.array([3, 4, 2], np.int64)
    acts = np.array([RELU, SOFTMAX], np.int64)
    P = n_params(sizes)
    params = (rng.standard_normal(P) * 0.1).astype(dt)
    grads = np.zeros(P, dt)
    state = np.zeros(2 * P, dt)
    X = rng.standard_normal((5, 3)).astype(dt)
    Y = np.eye(2, dtype=dt)[[0, 1, 0, 1, 1]]
    sw = np.ones(5, dt)
    hyper = np.array([0.01, 0.9, 1, 0.0, 0.9, 0.999, 1e-8])
    step = np.zeros(1, np.int64)
    ws = np.zeros(train_workspace_size(sizes, 5), dt)
    perm = np.arange(5, dtype=np.int64)
    out_ = np.zeros((5, 2), dt)
    # each call looks its kernel up when it runs (tests replace them)
    calls = [("predict", lambda: predict(params, sizes, acts, X, out_, 2,
                                         np.zeros(predict_workspace_size(sizes, 2), dt)))]
    epoch = lambda opt, w: train_epoch(params, grads, sizes, acts, CE, X, Y, w, perm, 2, opt, hyper,  # noqa: E731
                                       state, step, ws, np.zeros(0, np.int64), np.zeros(0))
    full = lambda opt, w: train_gd(params, grads, sizes, acts, CE, X, Y, w, opt, hyper, state, step,  # noqa: E731
                                   0.0, 1, ws, np.zeros(1), np.zeros(1))
    if fit == "gd":
        return calls + [("train_gd", lambda: full(0, None))]
    if fit is not None:
        return calls + [("train_epoch", lambda: epoch(0, None))]

    def each(fn, *variants):
        return lambda: [fn(*v) for v in variants]

    both = ((0, sw), (0, None), (1, sw), (1, None))
    Z = np.zeros((5, 2), dt)
    A_ = np.zeros((5, 2), dt)
    W1 = params[:12].reshape(3, 4)
    H = np.zeros((5, 4), dt)
    weights = (sw, None)
    calls += [
        ("train_epoch", each(epoch, *both)),
        ("train_gd", each(full, *both)),
        ("batch_gradient", each(lambda w: batch_gradient(params, grads, sizes, acts, CE, X, Y, w, perm, ws),
                                *[(w,) for w in weights])),
        ("dense_forward", lambda: dense_forward(X, W1, params[12:16], H)),
        ("dense_backward", lambda: [dense_backward(X, W1, H, np.zeros((3, 4), dt), np.zeros(4, dt), dX)
                                    for dX in (np.zeros((5, 3), dt), None)]),
        ("math_function", lambda: math_function(0, X[0], np.zeros(3, dt))),
        ("activation_forward", lambda: activation_forward(RELU, H, H)),
        ("activation_backward", lambda: activation_backward(RELU, H, H, H)),
        ("softmax", lambda: softmax(Z, A_)),
        ("softmax_backward", lambda: softmax_backward(A_, Z, np.zeros((5, 2), dt))),
        ("softmax_cross_entropy", each(lambda w: softmax_cross_entropy(Z, Y, w, A_), *[(w,) for w in weights])),
        ("sigmoid_binary_cross_entropy", each(lambda w: sigmoid_binary_cross_entropy(Z, Y, w, A_),
                                              *[(w,) for w in weights])),
        ("ssr", each(lambda w: ssr(Z, Y, w, A_), *[(w,) for w in weights])),
        ("mse", each(lambda w: mse(Z, Y, w, A_), *[(w,) for w in weights])),
        ("output_loss", each(lambda w: output_loss(SIGMOID, SSR, Z, Y, w, A_, np.zeros((5, 2), dt)),
                             *[(w,) for w in weights])),
        ("sgd_update", lambda: sgd_update(params, grads, state[:P], 0.01, 0.9, 1, 0.0)),
        ("adam_update", lambda: adam_update(params, grads, state[:P], state[P:], 1, 0.01, 0.9, 0.999, 1e-8, 0.0)),
    ]
    return calls


def warmup(dtypes=("float32", "float64"), fit=None, progress=None) -> dict:
    """Compile (or load from the cache) every kernel for ``dtypes``, or with ``fit`` (an optimizer name) only
    those ``MLP.fit(optimizer=fit)`` calls without sample weights (see :func:`cached`); returns
    {dtype: seconds}.

    ``progress(done, total, kernel, dtype)``, when given, is called before each kernel (``done`` of ``total``
    are finished) and once after the last with ``done == total`` and kernel None; the caller reports then,
    and the per-kernel notices on stderr (see :class:`_CompileNotice`) stay silent."""
    plan = [(name, kernel, call) for name in dtypes for kernel, call in _warmup_calls(np.dtype(name), fit)]
    out = {}
    quiet = getattr(_tls, "quiet_compiles", False)
    _tls.quiet_compiles = quiet or progress is not None
    try:
        for i, (name, kernel, call) in enumerate(plan):
            if progress is not None:
                progress(i, len(plan), kernel, name)
            t0 = time.perf_counter()
            call()
            out[name] = out.get(name, 0.0) + time.perf_counter() - t0
    finally:
        _tls.quiet_compiles = quiet
    if progress is not None:
        progress(len(plan), len(plan), None, None)
    return out


# --------------------------------------------------------------------------- what a first compile costs
from numba.core import event as _numba_event  # noqa: E402

#: Cold compile seconds per dtype, (fastest, slowest) measured with a scratch NUMBA_CACHE_DIR on a 2-core
#: Intel Xeon (AVX-512) VM, Numba 0.68.1, from a quiet machine to one whose cores other work shared: the
#: kernels a fit calls ("sgd": predict + train_epoch, also what adam uses; "gd": predict + train_gd) and
#: every kernel ("all"). Re-measure after changing the kernels: ``warmup(fit=...)`` in a fresh process
#: with NUMBA_CACHE_DIR pointing to an empty directory.
COMPILE_SECONDS = {"sgd": (46, 95), "gd": (73, 102), "all": (65, 92)}
COMPILE_MACHINE = "a 2-core Xeon"
#: The most seconds one kernel's first compile took (float64, same machine, its cores shared with other work;
#: each kernel alone in a fresh process, and in the runs above and docs/kernels.md's): its first call through
#: the kernels API. The GEMM routines compile with whichever kernel needs them first, so a kernel called
#: after another often takes far less.
KERNEL_SECONDS = {"dense_forward": 53, "dense_backward": 23, "activation_forward": 2, "activation_backward": 4,
                  "softmax": 1, "softmax_backward": 1, "softmax_cross_entropy": 1, "sigmoid_binary_cross_entropy": 1,
                  "ssr/mse": 2, "output_loss": 8, "sgd_update": 2, "adam_update": 2, "train_epoch": 118,
                  "batch_gradient": 90, "train_gd": 76, "predict": 30}


def compile_estimate(dtypes=("float32", "float64"), fit=None):
    """(fastest, slowest) seconds measured for compiling what :func:`warmup` with these arguments compiles
    from a cold cache, on :data:`COMPILE_MACHINE`; another machine takes more or less."""
    lo, hi = COMPILE_SECONDS["all" if fit is None else "gd" if fit == "gd" else "sgd"]
    return lo * len(dtypes), hi * len(dtypes)


#: Dispatchers the contract's entry points call, by the kernel name a user sees.
_KERNEL_OF = {"_dense_forward": "dense_forward", "_dense_backward": "dense_backward", "_math": "math_function",
              "_act_forward": "activation_forward", "_act_backward": "activation_backward", "_softmax": "softmax",
              "_softmax_backward": "softmax_backward", "_softmax_ce": "softmax_cross_entropy",
              "_sigmoid_bce": "sigmoid_binary_cross_entropy", "_squared": "ssr/mse", "_output_loss": "output_loss",
              "_sgd": "sgd_update", "_adam": "adam_update", "_train_epoch": "train_epoch",
              "_batch_gradient": "batch_gradient", "_train_gd": "train_gd", "_predict": "predict"}


class _CompileNotice(_numba_event.Listener):
    """One line on stderr when a kernel of this module starts compiling, and one when it is done.

    Numba fires "numba:compile" only on a cache miss, so this speaks on a machine's first use of a kernel
    (or after the cache was cleared), where the call would otherwise sit silent for a minute or two. Only the
    outermost compile of a call is reported (the helpers it pulls in compile inside it), only for this
    module's functions, and not while :func:`warmup` reports through its ``progress`` callback."""

    def on_start(self, event):
        depth = getattr(_tls, "compile_depth", 0)
        _tls.compile_depth = depth + 1
        if depth or getattr(_tls, "quiet_compiles", False):
            return
        fn = getattr(event.data.get("dispatcher"), "py_func", None)
        if getattr(fn, "__module__", None) != __name__:
            return
        name = _KERNEL_OF.get(fn.__name__, fn.__name__.lstrip("_"))
        dtype = next((str(a.dtype) for a in event.data.get("args", ()) if isinstance(a, types.Array)), "")
        measured = KERNEL_SECONDS.get(name)
        cost = f"measured up to {measured:.0f} s on {COMPILE_MACHINE}; " if measured else ""
        _tls.compile_started = (name, time.perf_counter())
        print(f"numba: compiling {name}{' for ' + dtype if dtype else ''} (its first use on this machine; {cost}"
              "Numba caches it for later calls and runs; warmup() compiles every kernel ahead of time) ...",
              file=sys.stderr, flush=True)

    def on_end(self, event):
        _tls.compile_depth -= 1
        started = getattr(_tls, "compile_started", None)
        if _tls.compile_depth == 0 and started is not None:
            _tls.compile_started = None
            print(f"numba: {started[0]} compiled in {time.perf_counter() - started[1]:.1f} s", file=sys.stderr,
                  flush=True)


_numba_event.register("numba:compile", _CompileNotice())
