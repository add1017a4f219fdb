"""The C backend: contract kernels implemented in csrc/ and reached through cffi (``kernels._pynet_c``).

Raw functions with exactly the reference's positional signatures. Arguments arrive already checked
by :mod:`kernels.checks` (dtypes, shapes, contiguity), so this adapter only picks the float32 or
float64 C function and hands over pointers; optional arrays given as ``None`` become NULL.
cffi releases the GIL during each C call.

If the extension was not built (no compiler, or the build failed and ``pip install`` went on without
it), importing this module raises ImportError carrying the reason the build recorded, and
``kernels.load("c")`` turns that into BackendUnavailable.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_REASON_FILE = Path(__file__).with_name("_pynet_c_build.txt")

# OpenMP wait policy. libgomp's default spins at every barrier and between parallel regions; on a
# loaded machine the spinning thread steals the core its partner needs and epochs collapse
# (MNIST-shaped under load 3-4: 5.7 s spinning vs 0.75 s passive; docs/performance.md). But the policy
# belongs to the process's one libgomp, which PyTorch and Numba's OpenMP layer share: forcing it
# passive made PyTorch's small-network epoch 3.6x slower in the same process. So it stays opt-in:
# PYNET_OMP_PASSIVE=1 (or the standard OMP_WAIT_POLICY=passive) before the first import.
_set_wait = os.environ.get("PYNET_OMP_PASSIVE") == "1" and "OMP_WAIT_POLICY" not in os.environ
if _set_wait:
    os.environ["OMP_WAIT_POLICY"] = "passive"
try:
    from ._pynet_c import ffi, lib
except ImportError as exc:  # pragma: no cover - exercised by the no-compiler install check
    reason = _REASON_FILE.read_text().strip() if _REASON_FILE.exists() else "the extension kernels._pynet_c is not built"
    raise ImportError(f"C extension not available: {reason} ({exc})") from exc
finally:
    if _set_wait:
        os.environ.pop("OMP_WAIT_POLICY", None)

#: the compiler that built the extension (shown by ``pynet info``)
COMPILER = ffi.string(lib.pynet_compiler()).decode()

#: vector instruction sets the elementwise math is built for, narrowest first (csrc/vmath.c)
ISAS = ("base", "avx2", "avx512")


def supported_isas() -> tuple:
    """The ISAs this CPU (and its OS) can run, narrowest first."""
    return ISAS[:int(lib.pynet_isa_supported()) + 1]


def _check_isa_request():
    # PYNET_ISA caps the ISA; asking for one this CPU lacks, or a name that is none, is an error, not a fallback
    want = os.environ.get("PYNET_ISA")
    if want is None or want == "scalar":
        return
    if want not in ISAS:
        raise ImportError(f"PYNET_ISA={want!r} is not one of {', '.join(ISAS)}")
    if want not in supported_isas():
        raise ImportError(f"PYNET_ISA={want} is not supported by this CPU (it supports {', '.join(supported_isas())})")


_check_isa_request()


def isa() -> str:
    """The ISA the elementwise math runs on now."""
    return ISAS[int(lib.pynet_get_isa())]


def set_isa(name: str) -> str:
    """Run the elementwise math on ``name`` (a test hook; PYNET_ISA sets it for a whole process)."""
    if name not in supported_isas():
        raise ValueError(f"isa: {name!r} is not supported here (supported: {', '.join(supported_isas())})")
    lib.pynet_set_isa(ISAS.index(name))
    return isa()

_F32 = np.dtype(np.float32)
_CTYPE = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]"}


def _fn(name, dtype):
    return getattr(lib, f"pynet_{name}_{'f32' if dtype == _F32 else 'f64'}")


def _p(a):
    """Pointer to a checked float array, or NULL for None."""
    return ffi.NULL if a is None else ffi.from_buffer(_CTYPE[a.dtype], a)


def _i(a):
    return ffi.from_buffer("int64_t[]", a)


def _d(a):
    return ffi.from_buffer("double[]", a)


# --------------------------------------------------------------------------- runtime controls
def set_num_threads(n: int) -> None:
    """Threads a large GEMM may use (small ones always run on one thread)."""
    lib.pynet_set_num_threads(int(n))


def get_num_threads() -> int:
    return int(lib.pynet_get_num_threads())


def set_simd(on: bool) -> bool:
    """False forces the portable scalar micro-kernel (a test hook); returns whether SIMD is now active."""
    return bool(lib.pynet_set_simd(1 if on else 0))


def simd_active() -> bool:
    return bool(lib.pynet_simd_active())


def openmp() -> bool:
    return bool(lib.pynet_openmp())


def block_sizes(dtype=np.float32) -> dict:
    """The blocking sizes compiled into the GEMM (csrc/config.h) for ``dtype``."""
    out = np.zeros(5, np.int64)
    lib.pynet_block_sizes(0 if np.dtype(dtype) == _F32 else 1, _i(out))
    return dict(zip(("MR", "NR", "MC", "KC", "NC"), out.tolist()))


def set_gemm_path(path: int) -> int:
    """Test hook: 0 picks the GEMM path by shape, 1 forces the panel path, 2 the packed path."""
    return int(lib.pynet_set_gemm_path(int(path)))


def set_tiles(on: bool) -> bool:
    """Test hook: False keeps train_gd and train_epoch on whole-batch products (no row tiles); returns it."""
    return bool(lib.pynet_set_tiles(1 if on else 0))


def gemm(A, B, C, beta=0):
    """C = A·B (beta 0) or C += A·B (beta 1) for 2-D arrays given as numpy views of any strides.

    Not a contract kernel: a hook for tests and benchmarks. Transposed views (``X.T``) are handed to
    the GEMM through their strides, as the dense kernels do.
    """
    m, k = A.shape
    n = B.shape[1]
    dt = C.dtype
    if not (A.dtype == B.dtype == dt) or B.shape[0] != k or C.shape != (m, n) or not C.flags.c_contiguous:
        raise ValueError("gemm: need A (m,k), B (k,n), C (m,n) C-contiguous, one dtype")
    isz = dt.itemsize
    base_a = A if A.flags.c_contiguous or A.flags.f_contiguous else None
    base_b = B if B.flags.c_contiguous or B.flags.f_contiguous else None
    if base_a is None or base_b is None:
        raise ValueError("gemm: A and B must be C- or F-contiguous (a transpose of a contiguous array)")
    ptr = "float *" if dt == _F32 else "double *"
    pa = ffi.cast(ptr, A.__array_interface__["data"][0])
    pb = ffi.cast(ptr, B.__array_interface__["data"][0])
    _fn("gemm", dt)(m, n, k, pa, A.strides[0] // isz, A.strides[1] // isz, pb, B.strides[0] // isz,
                    B.strides[1] // isz, _p(C), n, int(beta))
    return C


def ukernel(simd, k, a, b, c, beta=0):
    """The micro-kernel alone on packed a (k×MR) and b (k×NR) into c (MR×NR); returns 1 if SIMD ran."""
    return int(_fn("ukernel", c.dtype)(1 if simd else 0, k, _p(a), _p(b), _p(c), c.shape[1], int(beta)))


# --------------------------------------------------------------------------- dense layer
def dense_forward(X, W, b, Z):
    _fn("dense_forward", X.dtype)(X.shape[0], X.shape[1], W.shape[1], _p(X), _p(W), _p(b), _p(Z))


def dense_backward(X, W, dZ, dW, db, dX):
    _fn("dense_backward", X.dtype)(X.shape[0], X.shape[1], W.shape[1], _p(X), _p(W), _p(dZ), _p(dW), _p(db), _p(dX))


# --------------------------------------------------------------------------- activations
def math_function(fn, X, Y):
    _fn("math_function", X.dtype)(fn, X.size, _p(X), _p(Y))


def activation_forward(act, Z, A):
    _fn("activation_forward", Z.dtype)(act, Z.size, _p(Z), _p(A))


def activation_backward(act, A, dA, dZ):
    _fn("activation_backward", A.dtype)(act, A.size, _p(A), _p(dA), _p(dZ))


def softmax(Z, P):
    _fn("softmax", Z.dtype)(Z.shape[0], Z.shape[1], _p(Z), _p(P))


def softmax_backward(P, dP, dZ):
    _fn("softmax_backward", P.dtype)(P.shape[0], P.shape[1], _p(P), _p(dP), _p(dZ))


# --------------------------------------------------------------------------- losses
def softmax_cross_entropy(Z, Y, sw, dZ):
    return float(_fn("softmax_cross_entropy", Z.dtype)(Z.shape[0], Z.shape[1], _p(Z), _p(Y), _p(sw), _p(dZ)))


def sigmoid_binary_cross_entropy(Z, Y, sw, dZ):
    return float(_fn("sigmoid_binary_cross_entropy", Z.dtype)(Z.shape[0], Z.shape[1], _p(Z), _p(Y), _p(sw), _p(dZ)))


def ssr(Yhat, Y, sw, dYhat):
    return float(_fn("ssr", Y.dtype)(Y.shape[0], Y.shape[1], _p(Yhat), _p(Y), _p(sw), _p(dYhat)))


def mse(Yhat, Y, sw, dYhat):
    return float(_fn("mse", Y.dtype)(Y.shape[0], Y.shape[1], _p(Yhat), _p(Y), _p(sw), _p(dYhat)))


def output_loss(act, loss, Z, Y, sw, A, dZ):
    return float(_fn("output_loss", Z.dtype)(act, loss, Z.shape[0], Z.shape[1], _p(Z), _p(Y), _p(sw), _p(A), _p(dZ)))


# --------------------------------------------------------------------------- optimizers
def sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay):
    return float(_fn("sgd_update", params.dtype)(params.shape[0], _p(params), _p(grads), _p(velocity), lr, momentum,
                                                 nesterov, weight_decay))


def adam_update(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay):
    return float(_fn("adam_update", params.dtype)(params.shape[0], _p(params), _p(grads), _p(m), _p(v), t, lr, beta1,
                                                  beta2, eps, weight_decay))


# --------------------------------------------------------------------------- fused kernels
def train_epoch(params, grads, sizes, acts, loss, X, Y, sw, perm, batch_size, opt, hyper, state, step,
                workspace, alive, grad_sq):
    return float(_fn("train_epoch", params.dtype)(
        _p(params), _p(grads), acts.shape[0], _i(sizes), _i(acts), loss, X.shape[0], _p(X), _p(Y), _p(sw),
        perm.shape[0], _i(perm), batch_size, opt, _d(hyper), _p(state), _i(step), _p(workspace),
        alive.shape[0], _i(alive), grad_sq.shape[0], _d(grad_sq)))


def batch_gradient(params, grads, sizes, acts, loss, X, Y, sw, rows, workspace):
    return float(_fn("batch_gradient", params.dtype)(
        _p(params), _p(grads), acts.shape[0], _i(sizes), _i(acts), loss, X.shape[0], _p(X), _p(Y), _p(sw),
        rows.shape[0], _i(rows), _p(workspace)))


def train_gd(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step, tol, max_steps,
             workspace, losses, last_step):
    done = int(_fn("train_gd", params.dtype)(
        _p(params), _p(grads), acts.shape[0], _i(sizes), _i(acts), loss, X.shape[0], _p(X), _p(Y), _p(sw), opt,
        _d(hyper), _p(state), _i(step), tol, max_steps, _p(workspace), _d(losses), _d(last_step)))
    if done < 0:
        raise MemoryError("train_gd: could not allocate its packing and tile buffers")
    return done


def predict(params, sizes, acts, X, out, block, workspace):
    _fn("predict", params.dtype)(_p(params), acts.shape[0], _i(sizes), _i(acts), X.shape[0], _p(X), _p(out), block,
                                 _p(workspace))
