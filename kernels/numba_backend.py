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
* fastmath: only ``{'contract', 'reassoc'}`` and only in the GEMM tiles. ``contract`` lets LLVM fuse
  a*b+c into FMA; ``reassoc`` lets it vectorise the dot-product reductions of dZ·Wᵀ. Both change only
  the rounding order of sums (the reference's BLAS uses yet another order), which stays far inside
  the contract's tolerance. No ``nnan``/``ninf``: a non-finite loss must still be seen as such.
  Activations, losses and optimizers run without fastmath and in the array's own dtype, mirroring
  the reference's float32 arithmetic step by step.
* GEMM: output tiles of MB×NB are owned by exactly one thread and summed over k in a fixed order,
  so results do not depend on the thread count; ``prange`` runs over tiles above PAR_FLOPS, and the
  serial path walks the very same tiles. Inside a tile the innermost loop runs over a contiguous
  row slice (slices start at 0, so no negative-index wraparound blocks vectorisation) and keeps
  several rows × several k in scalar locals (register tiling; LLVM broadcasts them into ymm).
"""
from __future__ import annotations

import math
import os
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
from numba.extending import overload  # noqa: E402

if _cache_dir is not None:
    numba.config.CACHE_DIR = _cache_dir  # numba read its config at import; the locator reads this

from .contract import (ADAM, BCE, CE, IDENTITY, MSE, RELU, SIGMOID, SOFTMAX, SOFTPLUS, SSR,  # noqa: E402
                       TANH)

_FM = {"contract", "reassoc"}
_JIT = dict(cache=True, nogil=True)

# Blocking (elements). A tile of MB rows × NB columns of the output is one unit of parallel work;
# KC bounds the k-panel of B (KC×NB) so that it stays in L2 while MB rows of A stream past it.
MB, NB, KC = 64, 256, 128
# dZ·Wᵀ: MB rows × PB rows of W per tile, reduction dim in chunks of JC.
PB, JC = 64, 256
#: Below this many flops (2·n·k·m) a GEMM runs serially: thread start-up costs more than it saves.
PAR_FLOPS = 2 * 128 * 128 * 128


def _as(x, like):
    """x converted to ``like``'s dtype (so float32 kernels stay float32, as in the reference)."""
    return x


@overload(_as, jit_options={"cache": True})
def _as_ol(x, like):
    dt = like.dtype if isinstance(like, numba.types.Array) else like

    def impl(x, like):
        return dt(x)
    return impl


# --------------------------------------------------------------------------- GEMM: C = A·B
@njit(fastmath=_FM, **_JIT)
def _nn_tile(A, B, C, i0, i1, j0, j1, k0, k1):
    """C[i0:i1, j0:j1] += A[i0:i1, k0:k1]·B[k0:k1, j0:j1]; 2 rows × 4 k in registers per pass."""
    w = j1 - j0
    i = i0
    while i + 2 <= i1:
        c0 = C[i, j0:j1]
        c1 = C[i + 1, j0:j1]
        k = k0
        while k + 4 <= k1:
            a00 = A[i, k]; a01 = A[i, k + 1]; a02 = A[i, k + 2]; a03 = A[i, k + 3]
            a10 = A[i + 1, k]; a11 = A[i + 1, k + 1]; a12 = A[i + 1, k + 2]; a13 = A[i + 1, k + 3]
            b0 = B[k, j0:j1]; b1 = B[k + 1, j0:j1]; b2 = B[k + 2, j0:j1]; b3 = B[k + 3, j0:j1]
            for j in range(w):
                x0 = b0[j]; x1 = b1[j]; x2 = b2[j]; x3 = b3[j]
                c0[j] += (a00 * x0 + a01 * x1) + (a02 * x2 + a03 * x3)
                c1[j] += (a10 * x0 + a11 * x1) + (a12 * x2 + a13 * x3)
            k += 4
        while k < k1:
            a0 = A[i, k]; a1 = A[i + 1, k]
            b0 = B[k, j0:j1]
            for j in range(w):
                c0[j] += a0 * b0[j]
                c1[j] += a1 * b0[j]
            k += 1
        i += 2
    if i < i1:
        c0 = C[i, j0:j1]
        k = k0
        while k + 4 <= k1:
            a0 = A[i, k]; a1 = A[i, k + 1]; a2 = A[i, k + 2]; a3 = A[i, k + 3]
            b0 = B[k, j0:j1]; b1 = B[k + 1, j0:j1]; b2 = B[k + 2, j0:j1]; b3 = B[k + 3, j0:j1]
            for j in range(w):
                c0[j] += (a0 * b0[j] + a1 * b1[j]) + (a2 * b2[j] + a3 * b3[j])
            k += 4
        while k < k1:
            a0 = A[i, k]
            b0 = B[k, j0:j1]
            for j in range(w):
                c0[j] += a0 * b0[j]
            k += 1


@njit(**_JIT)
def _nn_block(A, B, C, bias, use_bias, t, ntj):
    """Output tile t (row-major over MB×NB tiles): zero, sum over k panels in order, add the bias."""
    n, m = C.shape
    K = A.shape[1]
    i0 = (t // ntj) * MB
    j0 = (t % ntj) * NB
    i1 = min(i0 + MB, n)
    j1 = min(j0 + NB, m)
    zero = _as(0, C)
    for i in range(i0, i1):
        c = C[i, j0:j1]
        for j in range(j1 - j0):
            c[j] = zero
    for k0 in range(0, K, KC):
        _nn_tile(A, B, C, i0, i1, j0, j1, k0, min(k0 + KC, K))
    if use_bias:
        bb = bias[j0:j1]
        for i in range(i0, i1):
            c = C[i, j0:j1]
            for j in range(j1 - j0):
                c[j] += bb[j]


@njit(parallel=True, **_JIT)
def _nn_par(A, B, C, bias, use_bias, ntiles, ntj):
    for t in prange(ntiles):
        _nn_block(A, B, C, bias, use_bias, t, ntj)


@njit(**_JIT)
def _gemm_nn(A, B, C, bias, use_bias, par):
    """C = A·B (+ bias per column). A may be a transposed view (dW = Xᵀ·dZ)."""
    n, m = C.shape
    ntj = (m + NB - 1) // NB
    ntiles = ((n + MB - 1) // MB) * ntj
    if ntiles > 1 and 2 * n * m * A.shape[1] >= PAR_FLOPS and par:
        _nn_par(A, B, C, bias, use_bias, ntiles, ntj)
    else:
        for t in range(ntiles):
            _nn_block(A, B, C, bias, use_bias, t, ntj)


# --------------------------------------------------------------------------- GEMM: C = A·Bᵀ
@njit(fastmath=_FM, **_JIT)
def _dot(a, b):
    s = _as(0, a)  # a literal 0 would make the accumulator float64
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    return s


@njit(fastmath=_FM, **_JIT)
def _nt_tile(A, B, C, i0, i1, p0, p1, j0, j1, first):
    """C[i, p] (=|+=) Σ_{j0≤j<j1} A[i, j]·B[p, j]; a 2×4 block of dot products in registers."""
    w = j1 - j0
    i = i0
    while i + 2 <= i1:
        a0 = A[i, j0:j1]
        a1 = A[i + 1, j0:j1]
        p = p0
        while p + 4 <= p1:
            b0 = B[p, j0:j1]; b1 = B[p + 1, j0:j1]; b2 = B[p + 2, j0:j1]; b3 = B[p + 3, j0:j1]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = _as(0, A)
            for j in range(w):
                x0 = a0[j]; x1 = a1[j]
                y0 = b0[j]; y1 = b1[j]; y2 = b2[j]; y3 = b3[j]
                s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3
                s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3
            if first:
                C[i, p] = s00; C[i, p + 1] = s01; C[i, p + 2] = s02; C[i, p + 3] = s03
                C[i + 1, p] = s10; C[i + 1, p + 1] = s11; C[i + 1, p + 2] = s12; C[i + 1, p + 3] = s13
            else:
                C[i, p] += s00; C[i, p + 1] += s01; C[i, p + 2] += s02; C[i, p + 3] += s03
                C[i + 1, p] += s10; C[i + 1, p + 1] += s11; C[i + 1, p + 2] += s12; C[i + 1, p + 3] += s13
            p += 4
        while p < p1:
            b0 = B[p, j0:j1]
            s0 = _dot(a0, b0)
            s1 = _dot(a1, b0)
            if first:
                C[i, p] = s0; C[i + 1, p] = s1
            else:
                C[i, p] += s0; C[i + 1, p] += s1
            p += 1
        i += 2
    if i < i1:
        a0 = A[i, j0:j1]
        for p in range(p0, p1):
            s0 = _dot(a0, B[p, j0:j1])
            if first:
                C[i, p] = s0
            else:
                C[i, p] += s0


@njit(**_JIT)
def _nt_block(A, B, C, t, ntp):
    n, q = C.shape
    J = A.shape[1]
    i0 = (t // ntp) * MB
    p0 = (t % ntp) * PB
    i1 = min(i0 + MB, n)
    p1 = min(p0 + PB, q)
    for j0 in range(0, J, JC):
        _nt_tile(A, B, C, i0, i1, p0, p1, j0, min(j0 + JC, J), j0 == 0)


@njit(parallel=True, **_JIT)
def _nt_par(A, B, C, ntiles, ntp):
    for t in prange(ntiles):
        _nt_block(A, B, C, t, ntp)


@njit(**_JIT)
def _gemm_nt(A, B, C, par):
    """C = A·Bᵀ for row-major A (n×J) and B (q×J), e.g. dX = dZ·Wᵀ, without transposing W."""
    n, q = C.shape
    ntp = (q + PB - 1) // PB
    ntiles = ((n + MB - 1) // MB) * ntp
    if ntiles > 1 and 2 * n * q * A.shape[1] >= PAR_FLOPS and par:
        _nt_par(A, B, C, ntiles, ntp)
    else:
        for t in range(ntiles):
            _nt_block(A, B, C, t, ntp)


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
def _dense_forward(X, W, b, Z, par):
    """Z = X·W + b. A single output column is a dot product per row: the row-update loop would be 1 wide."""
    if W.shape[1] == 1:
        _gemm_nt(X, W.reshape((1, W.shape[0])), Z, par)
        for r in range(Z.shape[0]):
            Z[r, 0] += b[0]
    else:
        _gemm_nn(X, W, Z, b, True, par)


@njit(**_JIT)
def _dense_backward(X, W, dZ, dW, db, dX, want_dx, par):
    """dW = Xᵀ·dZ, db = Σ_rows dZ, dX = dZ·Wᵀ; one output column: dWᵀ = dZᵀ·X and dX = dZ ⊗ W."""
    if dZ.shape[1] == 1:
        _gemm_nn(dZ.T, X, dW.reshape((1, dW.shape[0])), db, False, par)
    else:
        _gemm_nn(X.T, dZ, dW, db, False, par)
    _colsum(dZ, db)
    if want_dx:
        if dZ.shape[1] == 1:
            _gemm_nn(dZ, W.reshape((1, W.shape[0])), dX, db, False, par)
        else:
            _gemm_nt(dZ, W, dX, par)


# --------------------------------------------------------------------------- activations
@njit(**_JIT)
def _sigmoid1(z):
    # split by sign so that exp never overflows (as the reference)
    one = _as(1, z)
    e = np.exp(-abs(z))
    return (one if z >= 0 else e) / (one + e)


@njit(**_JIT)
def _act_forward(act, Z, A):
    """A = f(Z) elementwise on 2-D C arrays (A may be Z)."""
    n, m = Z.shape
    zero = _as(0, Z)
    for i in range(n):
        z = Z[i]
        a = A[i]
        if act == IDENTITY:
            for j in range(m):
                a[j] = z[j]
        elif act == RELU:
            for j in range(m):
                v = z[j]
                a[j] = zero if v < zero else v
        elif act == SOFTPLUS:
            for j in range(m):
                v = z[j]
                a[j] = (v if v > zero else zero) + np.log1p(np.exp(-abs(v)))
        elif act == SIGMOID:
            for j in range(m):
                a[j] = _sigmoid1(z[j])
        elif act == TANH:
            for j in range(m):
                a[j] = np.tanh(z[j])


@njit(**_JIT)
def _act_backward(act, A, dA, dZ):
    """dZ = dA ⊙ f′ from the output A (dZ may be dA)."""
    n, m = A.shape
    one = _as(1, A)
    zero = _as(0, A)
    for i in range(n):
        a = A[i]
        d = dA[i]
        o = dZ[i]
        if act == IDENTITY:
            for j in range(m):
                o[j] = d[j]
        elif act == RELU:
            for j in range(m):
                o[j] = d[j] * (one if a[j] > zero else zero)
        elif act == SOFTPLUS:
            for j in range(m):
                o[j] = d[j] * -np.expm1(-a[j])
        elif act == SIGMOID:
            for j in range(m):
                o[j] = d[j] * (a[j] * (one - a[j]))
        elif act == TANH:
            for j in range(m):
                o[j] = d[j] * (one - a[j] * a[j])


@njit(**_JIT)
def _softmax(Z, P):
    n, k = Z.shape
    for i in range(n):
        z = Z[i]
        p = P[i]
        mx = z[0]
        for j in range(1, k):
            if z[j] > mx:
                mx = z[j]
        s = 0.0
        for j in range(k):
            p[j] = np.exp(z[j] - mx)
            s += p[j]
        ss = _as(s, p)
        for j in range(k):
            p[j] = p[j] / ss


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
            s += np.exp(z[j] - mx)
        lse = np.log(_as(s, z))
        row = 0.0
        for j in range(k):
            lp = (z[j] - mx) - lse
            row += y[j] * lp
            d[j] = (np.exp(lp) - y[j]) * wn
        loss -= wn * row
    return loss


@njit(**_JIT)
def _sigmoid_bce(Z, Y, sw, has_sw, dZ):
    """L = Σ w_i mean_j(softplus(Z) − Y·Z) / Σw;  dZ = w_i (σ(Z) − Y) / (k Σw)."""
    n, k = Z.shape
    one = _as(1, Z)
    zero = _as(0, Z)
    kk = _as(k, Z)
    tot = _as(_wsum(sw, has_sw, n), Z)
    loss = 0.0
    for i in range(n):
        z = Z[i]
        y = Y[i]
        d = dZ[i]
        wn = _wrow(sw, has_sw, i, one) / tot
        wk = wn / kk
        row = 0.0
        for j in range(k):
            v = z[j]
            row += ((v if v > zero else zero) + np.log1p(np.exp(-abs(v)))) - y[j] * v
            d[j] = (_sigmoid1(v) - y[j]) * wk
        loss += wn * row
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
    """g = ∇ + λθ; v = μv + g; θ −= lr·(g + μv if nesterov else v); returns max|Δ|."""
    lr_ = _as(lr, params)
    mu = _as(momentum, params)
    wd = _as(weight_decay, params)
    big = 0.0
    for i in range(params.shape[0]):
        g = grads[i] + wd * params[i] if weight_decay != 0 else grads[i]
        if momentum != 0:
            v = vel[i] * mu + g
            vel[i] = v
            s = -lr_ * (g + mu * v) if nesterov else -lr_ * v
        else:
            s = -lr_ * g
        params[i] += s
        a = abs(s)
        if a > big or a != a:
            big = a
    return big


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
    big = 0.0
    for i in range(params.shape[0]):
        g = grads[i] + wd * params[i] if weight_decay != 0 else grads[i]
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * g * g
        m[i] = mi
        v[i] = vi
        s = -lr_ * (mi / h1) / (np.sqrt(vi / h2) + ep)
        params[i] += s
        a = abs(s)
        if a > big or a != a:
            big = a
    return big


# --------------------------------------------------------------------------- fused kernels
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


@njit(**_JIT)
def _step(params, grads, sizes, acts, loss, X0, Yb, swb, has_sw, opt, hyper, state, step, ws, bs,
          alive, grad_sq, par):
    """One forward/loss/backward/update on rows X0; (loss, max|Δ|), no update if the loss is not finite.

    Workspace (per contract.train_workspace_size, regions sized for bs rows): activations of layers
    0..L | Y | sw | G1 | G2. Layer 0's region is unused when X0 is the caller's X (train_gd).
    """
    L = sizes.shape[0] - 1
    n = X0.shape[0]
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
    H = X0
    off = bs * sizes[0]
    for l in range(L):
        W, b = _layer(params, sizes, l)
        Z = _region(ws, off, n, sizes[l + 1])
        _dense_forward(H, W, b, Z, par)
        if l < L - 1:
            _act_forward(acts[l], Z, Z)
        H = Z
        off += bs * sizes[l + 1]
    k = sizes[L]
    A = _region(ws, g1, n, k)
    D = _region(ws, g2, n, k)
    value = _output_loss(acts[L - 1], loss, H, Yb, swb, has_sw, A, D)
    if not np.isfinite(value):
        return value, np.inf
    if alive.shape[0] > 0:
        off = bs * sizes[0]
        u = 0
        for l in range(1, L):
            Hl = _region(ws, off, n, sizes[l])
            for r in range(n):
                row = Hl[r]
                for j in range(sizes[l]):
                    if row[j] != 0:
                        alive[u + j] = 1
            u += sizes[l]
            off += bs * sizes[l]
    # backward: D holds dZ of layer l; dX goes to the other gradient buffer
    cur = g2
    for l in range(L - 1, -1, -1):
        W, _ = _layer(params, sizes, l)
        dW, db = _layer(grads, sizes, l)
        dZ = _region(ws, cur, n, sizes[l + 1])
        if l > 0:
            Hin = _region(ws, bs * _sum_first(sizes, l), n, sizes[l])
            nxt = g1 if cur == g2 else g2
            dX = _region(ws, nxt, n, sizes[l])
            _dense_backward(Hin, W, dZ, dW, db, dX, True, par)
            _act_backward(acts[l - 1], Hin, dX, dX)
            cur = nxt
        else:
            _dense_backward(X0, W, dZ, dW, db, dZ, False, par)
    if grad_sq.shape[0] > 0:
        for l in range(L):
            dW, _ = _layer(grads, sizes, l)
            s = 0.0
            for r in range(dW.shape[0]):
                row = dW[r]
                for j in range(dW.shape[1]):
                    x = float(row[j])
                    s += x * x
            grad_sq[l] += s
    P = params.shape[0]
    if opt == ADAM:
        step[0] += 1
        moved = _adam(params, grads, state[:P], state[P:], step[0], hyper[0], hyper[4], hyper[5],
                      hyper[6], hyper[3])
    else:
        moved = _sgd(params, grads, state[:P], hyper[0], hyper[1], int(hyper[2]) != 0, hyper[3])
    return value, moved


@njit(**_JIT)
def _sum_first(sizes, l):
    s = 0
    for q in range(l):
        s += sizes[q]
    return s


@njit(**_JIT)
def _train_epoch(params, grads, sizes, acts, loss, X, Y, sw, has_sw, perm, batch_size, opt, hyper,
                 state, step, ws, alive, grad_sq, par):
    m = perm.shape[0]
    bs = min(batch_size, max(m, 1))
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    k = sizes[L]
    oy = bs * _sum_first(sizes, L + 1)
    osw = oy + bs * k
    total = 0.0
    rows = 0
    for start in range(0, m, bs):
        nb = min(bs, m - start)
        Xb = _region(ws, 0, nb, n0)
        Yb = _region(ws, oy, nb, k)
        swb = ws[osw:osw + nb]
        for r in range(nb):  # gather the batch rows in perm order
            src = perm[start + r]
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
        value, _ = _step(params, grads, sizes, acts, loss, Xb, Yb, swb, has_sw, opt, hyper, state, step,
                         ws, bs, alive, grad_sq, par)
        if not np.isfinite(value):
            return value
        total += value if loss == SSR else value * nb
        rows += nb
    return total if loss == SSR or rows == 0 else total / rows


@njit(**_JIT)
def _train_gd(params, grads, sizes, acts, loss, X, Y, sw, has_sw, opt, hyper, state, step, tol,
              max_steps, ws, losses, last_step, par):
    no_alive = np.zeros(0, np.int64)
    no_grad = np.zeros(0, np.float64)
    bs = X.shape[0]
    for s in range(max_steps):
        value, moved = _step(params, grads, sizes, acts, loss, X, Y, sw, has_sw, opt, hyper, state, step,
                             ws, bs, no_alive, no_grad, par)
        losses[s] = value
        last_step[0] = moved
        if not np.isfinite(value) or moved < tol:
            return s + 1
    return max_steps


@njit(**_JIT)
def _predict(params, sizes, acts, X, out, block, ws, par):
    L = sizes.shape[0] - 1
    n = X.shape[0]
    half = ws.shape[0] // 2
    for start in range(0, n, block):
        nb = min(block, n - start)
        H = X[start:start + nb]
        for l in range(L):
            W, b = _layer(params, sizes, l)
            Z = _region(ws, (l % 2) * half, nb, sizes[l + 1])
            _dense_forward(H, W, b, Z, par)
            if l < L - 1:
                _act_forward(acts[l], Z, Z)
            H = Z
        o = out[start:start + nb]
        if acts[L - 1] == SOFTMAX:
            _softmax(H, o)
        else:
            _act_forward(acts[L - 1], H, o)


# --------------------------------------------------------------------------- the contract's entry points
_EMPTY = {}


def _par():
    """Whether the GEMMs may fork (read here: get_num_threads inside compiled code blocks caching)."""
    return numba.get_num_threads() > 1


def _sw(sw, like):
    """(array, has_sw): a zero-length stand-in replaces None so that one specialisation serves both."""
    if sw is not None:
        return sw, True
    e = _EMPTY.get(like.dtype)
    if e is None:
        e = _EMPTY[like.dtype] = np.zeros(0, like.dtype)
    return e, False


def dense_forward(X, W, b, Z):
    _dense_forward(X, W, b, Z, _par())


def dense_backward(X, W, dZ, dW, db, dX):
    if dX is None:
        _dense_backward(X, W, dZ, dW, db, X, False, _par())
    else:
        _dense_backward(X, W, dZ, dW, db, dX, True, _par())


def activation_forward(act, Z, A):
    _act_forward(act, Z, A)


def activation_backward(act, A, dA, dZ):
    _act_backward(act, A, dA, dZ)


def softmax(Z, P):
    _softmax(Z, P)


def softmax_backward(P, dP, dZ):
    _softmax_backward(P, dP, dZ)


def softmax_cross_entropy(Z, Y, sw, dZ):
    return float(_softmax_ce(Z, Y, *_sw(sw, Z), dZ))


def sigmoid_binary_cross_entropy(Z, Y, sw, dZ):
    return float(_sigmoid_bce(Z, Y, *_sw(sw, Z), dZ))


def ssr(Yhat, Y, sw, dYhat):
    return float(_squared(Yhat, Y, *_sw(sw, Y), dYhat, False))


def mse(Yhat, Y, sw, dYhat):
    return float(_squared(Yhat, Y, *_sw(sw, Y), dYhat, True))


def output_loss(act, loss, Z, Y, sw, A, dZ):
    return float(_output_loss(act, loss, Z, Y, *_sw(sw, Z), A, dZ))


def sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay):
    return float(_sgd(params, grads, velocity, lr, momentum, nesterov != 0, weight_decay))


def adam_update(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return float(_adam(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay))


def train_epoch(params, grads, sizes, acts, loss, X, Y, sw, perm, batch_size, opt, hyper, state, step,
                workspace, alive, grad_sq):
    return float(_train_epoch(params, grads, sizes, acts, loss, X, Y, *_sw(sw, X), perm, batch_size, opt,
                              hyper, state, step, workspace, alive, grad_sq, _par()))


def train_gd(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step, tol, max_steps,
             workspace, losses, last_step):
    return int(_train_gd(params, grads, sizes, acts, loss, X, Y, *_sw(sw, X), opt, hyper, state, step, tol,
                         max_steps, workspace, losses, last_step, _par()))


def predict(params, sizes, acts, X, out, block, workspace):
    _predict(params, sizes, acts, X, out, block, workspace, _par())


# --------------------------------------------------------------------------- threads and warm-up
def set_num_threads(n: int) -> None:
    """Threads for the parallel GEMM tiles (clamped to Numba's pool size)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def get_num_threads() -> int:
    return numba.get_num_threads()


def warmup(dtypes=("float32", "float64")) -> dict:
    """Compile (or load from the cache) every kernel for ``dtypes``; returns {dtype: seconds}."""
    from .contract import n_params, predict_workspace_size, train_workspace_size
    out = {}
    for name in dtypes:
        dt = np.dtype(name)
        t0 = time.perf_counter()
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
        for opt in (0, 1):
            for w in (sw, None):
                train_epoch(params, grads, sizes, acts, CE, X, Y, w, perm, 2, opt, hyper, state, step, ws,
                            np.zeros(0, np.int64), np.zeros(0))
                train_gd(params, grads, sizes, acts, CE, X, Y, w, opt, hyper, state, step, 0.0, 1, ws,
                         np.zeros(1), np.zeros(1))
        out_ = np.zeros((5, 2), dt)
        predict(params, sizes, acts, X, out_, 2, np.zeros(predict_workspace_size(sizes, 2), dt))
        Z = np.zeros((5, 2), dt)
        A_ = np.zeros((5, 2), dt)
        W1 = params[:12].reshape(3, 4)
        H = np.zeros((5, 4), dt)
        dense_forward(X, W1, params[12:16], H)
        dense_backward(X, W1, H, np.zeros((3, 4), dt), np.zeros(4, dt), np.zeros((5, 3), dt))
        dense_backward(X, W1, H, np.zeros((3, 4), dt), np.zeros(4, dt), None)
        activation_forward(RELU, H, H)
        activation_backward(RELU, H, H, H)
        softmax(Z, A_)
        softmax_backward(A_, Z, np.zeros((5, 2), dt))
        for w in (sw, None):
            softmax_cross_entropy(Z, Y, w, A_)
            sigmoid_binary_cross_entropy(Z, Y, w, A_)
            ssr(Z, Y, w, A_)
            mse(Z, Y, w, A_)
            output_loss(SIGMOID, SSR, Z, Y, w, A_, np.zeros((5, 2), dt))
        sgd_update(params, grads, state[:P], 0.01, 0.9, 1, 0.0)
        adam_update(params, grads, state[:P], state[P:], 1, 0.01, 0.9, 0.999, 1e-8, 0.0)
        out[name] = time.perf_counter() - t0
    return out
