"""Property-based tests (hypothesis): every kernel on every backend against the reference at drawn
shapes and values, and a fuzzer over the argument checking — a malformed call must raise TypeError or
ValueError (never crash, never write out of bounds) or, when it is in fact valid, match the reference."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kernels
from kernels import contract as C

from cases import assert_matches_reference, copy_args, make_args

# 1, primes, and sizes that are not multiples of any SIMD width (8 floats for AVX2)
DIMS = st.sampled_from([1, 2, 3, 5, 7, 9, 13, 17, 31, 61, 67, 127, 131, 257])
EXAMPLES = int(os.environ.get("PYNET_HYPOTHESIS_EXAMPLES", "25"))
FUZZ_EXAMPLES = int(os.environ.get("PYNET_FUZZ_EXAMPLES", "150"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("name", C.KERNEL_NAMES)
def test_kernel_parity_at_drawn_shapes(name, backend, dtype):
    rows_cap = 64 if name in ("train_epoch", "batch_gradient", "train_gd", "predict") else 257

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(n=DIMS.filter(lambda v: v <= rows_cap), i=DIMS, o=DIMS, variant=st.integers(0, 11),
           seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 1.0, 30.0]))
    # a drawn float64 Adam step with weight decay cancelling the gradient to about ε (ill-conditioned)
    @example(n=1, i=257, o=257, variant=11, seed=0, scale=1.0)
    # a drawn float32 Adam epoch through a saturated tanh unit (see test_kernel_parity's test of it)
    @example(n=5, i=131, o=257, variant=11, seed=3, scale=1.0)
    def check(n, i, o, variant, seed, scale):
        args = make_args(name, dtype, np.random.default_rng(seed), (n, i, o), variant)
        if name in ("dense_forward", "dense_backward", "activation_forward", "softmax", "softmax_cross_entropy",
                    "sigmoid_binary_cross_entropy", "ssr", "mse"):
            args = [a * dtype.type(scale) if isinstance(a, np.ndarray) and a.dtype == dtype and a.any() and
                    j < 2 else a for j, a in enumerate(args)]
        assert_matches_reference(name, args, backend, dtype)

    check()


# ---------------------------------------------------------------------------- argument fuzzing
def _mutations(arr):
    """Ways to spoil one array argument."""
    out = [
        ("dtype", lambda a: a.astype(np.float16) if a.dtype.kind == "f" else a.astype(np.int32)),
        ("other float", lambda a: a.astype(np.float64 if a.dtype == np.float32 else np.float32)),
        ("int", lambda a: a.astype(np.int64) if a.dtype.kind == "f" else a.astype(np.float64)),
        ("list", lambda a: a.tolist()),
        ("none", lambda a: None),
        ("grow", lambda a: np.concatenate([a, a[:1]]) if a.size else np.zeros(3, a.dtype)),
        ("shrink", lambda a: a[:-1] if a.shape and a.shape[0] > 0 else a),
        ("flat", lambda a: a.ravel()),
        ("2-D", lambda a: a.reshape(1, -1) if a.ndim == 1 else a[None]),
        ("strided", lambda a: np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a),
        ("fortran", lambda a: np.asfortranarray(a) if a.ndim == 2 and min(a.shape) > 1 else a.T),
        ("read-only", lambda a: _readonly(a)),
        ("empty", lambda a: a[:0]),
        ("huge values", lambda a: a * 1e38 if a.dtype.kind == "f" else a + 2**40),
        ("negative index", lambda a: a - 10**6 if a.dtype == np.int64 else a),
    ]
    return out


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


SCALAR_MUTATIONS = [("negative", lambda v: -abs(v) - 1), ("huge", lambda v: 10**12), ("float", lambda v: 0.5),
                    ("nan", lambda v: float("nan")), ("string", lambda v: "relu?"), ("none", lambda v: None),
                    ("bool", lambda v: True), ("array", lambda v: np.array([v]))]


@pytest.mark.parametrize("name", C.KERNEL_NAMES)
def test_fuzzed_arguments_raise_cleanly(name, backend):
    k, ref = kernels.load(backend), kernels.load("numpy")
    spec = C.BY_NAME[name]

    @settings(max_examples=FUZZ_EXAMPLES, **SETTINGS)
    @given(n=DIMS.filter(lambda v: v <= 31), i=DIMS.filter(lambda v: v <= 31), o=DIMS.filter(lambda v: v <= 31),
           variant=st.integers(0, 11), which=st.integers(0, 100), how=st.integers(0, 100), seed=st.integers(0, 99))
    # a float32 MSE loss beyond float32's range (Y huge): the fused kernels must stop as the reference does
    @example(n=1, i=1, o=1, variant=0, which=40, how=58, seed=1)
    @np.errstate(all="ignore")  # huge-value mutations overflow on purpose
    def check(n, i, o, variant, which, how, seed):
        dtype = np.dtype(np.float32 if seed % 2 else np.float64)
        args = make_args(name, dtype, np.random.default_rng(seed), (n, i, o), variant)
        j = which % len(args)
        if spec.args[j].shape is None:
            label, mutate = SCALAR_MUTATIONS[how % len(SCALAR_MUTATIONS)]
        else:
            options = _mutations(args[j]) if args[j] is not None else [("array", lambda a: np.zeros(3, dtype))]
            label, mutate = options[how % len(options)]
        try:
            bad = copy_args(args)
            bad[j] = mutate(args[j])
        except Exception:
            return  # the mutation does not apply to this argument
        try:
            got = getattr(k, name)(*copy_args(bad))
        except (TypeError, ValueError) as exc:
            assert str(exc), "errors must say what is wrong"
            return
        # accepted: then it was a valid call, and the reference must agree with it
        expected = getattr(ref, name)(*copy_args(bad))
        if expected is not None and got is not None and max(abs(expected), abs(got)) < 1e30:
            # beyond float32's range a backend that sums in float64 may stay finite where NumPy overflows
            assert C.close(got, expected, np.float32), (name, spec.args[j].name, label)

    check()
