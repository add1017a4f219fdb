"""The contract's accuracy for elementwise math (kernels.contract.MATH_ULP), on every backend.

Each function is checked on more than 10⁶ points per dtype: random bit patterns over every exponent
(so saturation, overflow, underflow and the subnormal range are all hit), a dense grid over the range
where the function changes shape, and the special values. The truth is the same function in a wider
type (float64 for float32 inputs, long double for float64 inputs).
"""
from functools import lru_cache

import numpy as np
import pytest

import kernels
from kernels import contract as C

N_RANDOM = 700_000
N_GRID = 400_000


def _wide(dtype):
    return np.float64 if dtype == np.float32 else np.longdouble


def _into_domain(fn, x):
    """The points moved into the function's domain (outside it is checked for NaN separately)."""
    name = C.MATH[fn]
    if name == "log":
        x = np.abs(x)
        return x[x > 0]
    if name == "log1p":
        return np.where(x > -1, x, np.abs(x))
    return x


@lru_cache(maxsize=None)
def points(dtype_name: str) -> np.ndarray:
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(20261206)
    itype = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(itype).max, N_RANDOM, dtype=itype, endpoint=True)
    random = bits.view(dtype)
    random = random[np.isfinite(random)]
    lim = 100.0 if dtype == np.float32 else 750.0
    grid = np.linspace(-lim, lim, N_GRID).astype(dtype)
    near0 = (rng.standard_normal(N_GRID // 2) * 10.0 ** rng.uniform(-12, 0, N_GRID // 2)).astype(dtype)
    fi = np.finfo(dtype)
    special = np.array([0.0, -0.0, fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, fi.max,
                        -fi.max, 1.0, -1.0, 0.5, -0.5, np.log(2), -np.log(2), 88.72, 88.73, -87.3, -103.9,
                        709.78, 709.79, -708.4, -745.1, 20.0, -20.0, 40.0, -40.0], dtype=dtype)
    below1 = (-1 + np.abs(near0[:1000])).astype(dtype)   # log1p close to its pole
    return np.concatenate([random, grid, near0, special, below1])


def _truth(fn, x):
    w = x.astype(_wide(x.dtype))
    name = C.MATH[fn]
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(w)
        if name == "expm1":
            return np.expm1(w)
        if name == "log":
            return np.log(w)
        if name == "log1p":
            return np.log1p(w)
        if name == "tanh":
            return np.tanh(w)
        if name == "sigmoid":
            e = np.exp(-np.abs(w))
            return np.where(w >= 0, 1, e) / (1 + e)
        if name == "softplus":
            return np.maximum(w, 0) + np.log1p(np.exp(-np.abs(w)))
    raise AssertionError(name)


@lru_cache(maxsize=None)
def truth(fn: int, dtype_name: str):
    x = _into_domain(fn, points(dtype_name))
    return x, _truth(fn, x)


def ulp_errors(y, t, dtype):
    """Error of y against the wide truth t in ulps of the result (the smallest normal number below it)."""
    fi = np.finfo(dtype)
    tw = t.astype(_wide(dtype))
    rounded = tw.astype(dtype)
    ulp = np.maximum(np.spacing(np.abs(rounded).astype(dtype)), 0).astype(_wide(dtype))
    scale = np.where(np.abs(tw) < fi.tiny, fi.tiny, ulp)
    with np.errstate(all="ignore"):
        return (np.abs(y.astype(_wide(dtype)) - tw) / scale).astype(np.float64)


@pytest.mark.parametrize("fn", C.MATH)
def test_math_within_contract_ulp(backend, dtype, fn):
    k = kernels.load(backend)
    code = C.MATH.index(fn)
    x, t = truth(code, dtype.name)
    assert x.size >= 1_000_000
    y = np.empty_like(x)
    k.math_function(fn, x, y)
    over = np.isinf(t.astype(dtype))          # overflows in the result type: inf, or the largest finite value
    fin = ~over
    assert np.all(np.isfinite(y[fin])), f"{fn}: non-finite result where the truth is finite, " \
                                        f"e.g. x={x[fin][~np.isfinite(y[fin])][:3]}"
    if over.any():
        big = np.abs(y[over]) >= np.finfo(dtype).max * (1 - 8 * np.finfo(dtype).eps)
        assert np.all(big & (np.sign(y[over]) == np.sign(t[over]))), f"{fn}: wrong overflow"
    err = ulp_errors(y[fin], t[fin], dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= C.MATH_ULP[dtype], (
        f"{fn} {dtype}: {err[worst]:.2f} ulp at x={x[fin][worst]!r} (got {y[fin][worst]!r}, "
        f"want {t[fin][worst]!r})")


@pytest.mark.parametrize("fn", C.MATH)
def test_math_nan_in_nan_out_and_outside_domain(backend, dtype, fn):
    k = kernels.load(backend)
    x = np.array([np.nan, 0.5, -np.nan, -2.0], dtype)
    y = np.empty_like(x)
    with np.errstate(all="ignore"):
        k.math_function(fn, x, y)
    assert np.isnan(y[0]) and np.isnan(y[2])
    if fn in ("log", "log1p"):
        assert np.isnan(y[3])          # below the domain
    z = np.array([0.0, -1.0 if fn == "log1p" else 0.0], dtype)
    w = np.empty_like(z)
    with np.errstate(all="ignore"):
        k.math_function(fn, z, w)
    if fn in ("log", "log1p"):
        assert w[1] == -np.inf        # the pole
    big = np.array([np.inf, -np.inf], dtype)
    out = np.empty_like(big)
    with np.errstate(all="ignore"):
        k.math_function(fn, big, out)
    with np.errstate(all="ignore"):
        want = _truth(C.MATH.index(fn), big).astype(dtype)
    np.testing.assert_array_equal(out, want)


def test_math_in_place_and_every_length(backend, dtype):
    """Vector tails: every length up to a few vectors gives the same values as the whole array."""
    k = kernels.load(backend)
    x = np.linspace(-30, 30, 101).astype(dtype)
    full = np.empty_like(x)
    k.math_function("tanh", x, full)
    for n in range(1, 70):
        y = x[:n].copy()
        k.math_function("tanh", y, y)           # in place
        np.testing.assert_array_equal(y, full[:n])


def test_c_math_on_every_isa(dtype):
    """The accuracy test above runs the ISA the CPU picks; each narrower one the CPU supports is checked here.
    The ISAs with FMA (AVX2, AVX-512) run the same operations on wider vectors: the same bits."""
    if kernels.status().get("c") is not None:
        pytest.skip("the C backend is not built")
    from kernels import c_backend
    k = kernels.load("c")
    before = c_backend.isa()
    try:
        fma = {}
        for isa in c_backend.supported_isas():
            c_backend.set_isa(isa)
            assert c_backend.isa() == isa
            for fn in C.MATH:
                x, t = truth(C.MATH.index(fn), dtype.name)
                y = np.empty_like(x)
                with np.errstate(all="ignore"):
                    k.math_function(fn, x, y)
                    fin = ~np.isinf(t.astype(dtype))
                err = ulp_errors(y[fin], t[fin], dtype)
                assert err.max() <= C.MATH_ULP[dtype], f"{fn} on {isa}: {err.max():.2f} ulp"
                if isa != "base":
                    if fn in fma:
                        np.testing.assert_array_equal(y, fma[fn], err_msg=f"{fn} on {isa}")
                    fma[fn] = y
    finally:
        c_backend.set_isa(before)


def test_c_isa_request_checked():
    if kernels.status().get("c") is not None:
        pytest.skip("the C backend is not built")
    from kernels import c_backend
    with pytest.raises(ValueError, match="isa"):
        c_backend.set_isa("sse9")
