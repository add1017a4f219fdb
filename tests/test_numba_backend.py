"""Numba-specific behaviour: fused epochs against the reference, odd shapes, thread-count independence,
GEMM across the parallel threshold, lazy compilation and the cache directory.

Per-kernel parity on every backend lives in test_kernel_parity.py; this file does not repeat it.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kernels
from kernels import contract as C

from cases import targets

nb = pytest.importorskip("kernels.numba_backend")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OPTS = {  # name: (opt, momentum, nesterov)
    "sgd": (C.SGD, 0.0, 0.0),
    "momentum": (C.SGD, 0.9, 0.0),
    "nesterov": (C.SGD, 0.9, 1.0),
    "adam": (C.ADAM, 0.0, 0.0),
}
# (hidden activation, output activation, loss)
NETS = [
    (C.RELU, C.SOFTMAX, C.CE),
    (C.TANH, C.IDENTITY, C.MSE),
    (C.SIGMOID, C.SIGMOID, C.BCE),
    (C.SOFTPLUS, C.TANH, C.SSR),
    (C.RELU, C.SOFTMAX, C.MSE),
]


def problem(rng, dtype, sizes, hidden, out, loss, n, weighted=False):
    sizes = np.array(sizes, np.int64)
    P = C.n_params(sizes)
    params = (rng.standard_normal(P) * 0.3).astype(dtype)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = targets(rng, dtype, loss, n, int(sizes[-1]), scale=0.5)
    sw = rng.uniform(0.2, 2.0, n).astype(dtype) if weighted else None
    acts = np.array([hidden] * (len(sizes) - 2) + [out], np.int64)
    return sizes, acts, params, X, Y, sw


def epoch_args(sizes, acts, loss, params, X, Y, sw, perm, bs, opt_name, lr=0.02, wd=1e-4):
    opt, mom, nest = OPTS[opt_name]
    P = params.shape[0]
    dt = params.dtype
    return [params.copy(), np.zeros(P, dt), sizes, acts, loss, X, Y, sw, perm, bs, opt,
            np.array([lr, mom, nest, wd, 0.9, 0.999, 1e-8]), np.zeros(2 * P, dt), np.zeros(1, np.int64),
            np.zeros(C.train_workspace_size(sizes, min(bs, max(len(perm), 1))), dt),
            np.zeros(C.n_hidden_units(sizes), np.int64), np.zeros(len(sizes) - 1)]


def run_both(name, args):
    ref = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    r = getattr(kernels.load("numpy"), name)(*ref)
    g = getattr(kernels.load("numba"), name)(*got)
    return r, g, ref, got


def assert_epoch_close(r, g, ref, got, dtype):
    assert C.close(g, r, dtype), (g, r)
    for i in (0, 12, 13, 15, 16):  # params, optimizer state, step, alive, grad_sq
        assert C.close(got[i], ref[i], dtype), f"argument {i} differs"


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("net", range(len(NETS)))
def test_fused_epoch_matches_reference(net, opt_name, dtype):
    hidden, out, loss = NETS[net]
    rng = np.random.default_rng(100 + net)
    sizes = [13, 24, 9, 1 if loss == C.BCE else 5]
    sizes, acts, params, X, Y, sw = problem(rng, dtype, sizes, hidden, out, loss, 90, weighted=net % 2 == 1)
    perm = rng.permutation(90).astype(np.int64)
    # ssr is a sum over the batch: scale lr down so that float32 training stays well conditioned (the
    # reference itself drifts ~1e-5 from float64 truth at lr 0.02 there)
    lr = 0.02 / 16 if loss == C.SSR else 0.02
    r, g, ref, got = run_both("train_epoch", epoch_args(sizes, acts, loss, params, X, Y, sw, perm, 16, opt_name, lr))
    assert np.isfinite(r)
    assert_epoch_close(r, g, ref, got, dtype)


@pytest.mark.parametrize("sizes, n, bs", [
    ([1, 1], 1, 1),
    ([3, 7, 1], 5, 1),            # batch 1
    ([7, 61, 3], 61, 7),          # last partial batch of 5
    ([61, 127, 7], 20, 64),       # batch larger than the data
    ([127, 3, 61, 1], 33, 8),
    ([3, 1, 7], 10, 3),           # a one-unit hidden layer
])
def test_odd_shapes(sizes, n, bs, dtype):
    rng = np.random.default_rng(len(sizes) * 1000 + n)
    sizes, acts, params, X, Y, sw = problem(rng, dtype, sizes, C.TANH, C.IDENTITY, C.MSE, n)
    perm = rng.permutation(n).astype(np.int64)
    r, g, ref, got = run_both("train_epoch", epoch_args(sizes, acts, C.MSE, params, X, Y, sw, perm, bs, "momentum"))
    assert_epoch_close(r, g, ref, got, dtype)
    # full-batch GD and prediction at the same shapes
    P = params.shape[0]
    gd = [params.copy(), np.zeros(P, dtype), sizes, acts, C.MSE, X, Y, sw, C.ADAM,
          np.array([1e-2, 0, 0, 0, 0.9, 0.999, 1e-8]), np.zeros(2 * P, dtype), np.zeros(1, np.int64), 0.0, 4,
          np.zeros(C.train_workspace_size(sizes, n), dtype), np.zeros(4), np.zeros(1)]
    r, g, ref, got = run_both("train_gd", gd)
    assert r == g == 4
    for i in (0, 10, 11, 15, 16):
        assert C.close(got[i], ref[i], dtype), f"train_gd argument {i} differs"
    block = max(1, n // 3)
    pr = [params, sizes, acts, X, np.zeros((n, int(sizes[-1])), dtype), block,
          np.zeros(C.predict_workspace_size(sizes, block), dtype)]
    _, _, ref, got = run_both("predict", pr)
    assert C.close(got[4], ref[4], dtype)


def test_empty_permutation_is_a_no_op(dtype):
    rng = np.random.default_rng(3)
    sizes, acts, params, X, Y, sw = problem(rng, dtype, [4, 5, 2], C.RELU, C.SOFTMAX, C.CE, 6)
    args = epoch_args(sizes, acts, C.CE, params, X, Y, sw, np.zeros(0, np.int64), 4, "adam")
    assert kernels.load("numba").train_epoch(*args) == 0.0
    assert np.array_equal(args[0], params)


def epochs_on_1_and_2_threads(args, sizes, bs):
    """train_epoch on copies of args with one thread, then two (where the next batch is gathered during the
    step): {threads: (loss, args after)}."""
    be = kernels.load("numba")
    out = {}
    try:
        for threads in (1, 2):
            be.set_num_threads(threads)
            assert bool(nb._overlap_ok(sizes, bs, nb._context(nb._par()))) == (threads == 2)
            got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            out[threads] = (be.train_epoch(*got), got)
    finally:
        be.set_num_threads(nb.numba.config.NUMBA_NUM_THREADS)
    for i in (0, 12, 13, 15, 16):
        assert np.array_equal(out[1][1][i], out[2][1][i]), f"argument {i} differs between 1 and 2 threads"
    assert np.array_equal(out[1][0], out[2][0], equal_nan=True)  # a diverging run: NaN on both
    return out


@pytest.mark.parametrize("opt_name, lr", [("momentum", 0.02), ("adam", 0.02), ("momentum", None)],
                         ids=["momentum", "adam", "diverging"])
def test_epoch_gathering_the_next_batch_during_the_step(opt_name, lr, dtype):
    """Batches of ≥ OVERLAP_ELEMS elements whose layers above the first are small: with two thread slots the
    next batch is gathered during the step into a second buffer, and the gradient check and the optimizer
    step (≥ ELEM_PAR parameters) run in chunks over the threads. Same bits as one thread, where none of it
    happens, and the reference's answer; a partial last batch, sample weights, both monitors, and a run
    that diverges (stopped with no update at the same step) included."""
    rng = np.random.default_rng(21)
    sizes, acts, params, X, Y, sw = problem(rng, dtype, [600, 60, 7], C.RELU, C.SOFTMAX, C.CE, 3 * 128 + 37,
                                            weighted=True)
    assert params.shape[0] >= nb.ELEM_PAR
    diverging = lr is None
    if diverging:  # steps that overflow the dtype within a few batches
        lr = 1e30 if dtype == np.float32 else 1e300
    perm = rng.permutation(3 * 128 + 37).astype(np.int64)
    args = epoch_args(sizes, acts, C.CE, params, X, Y, sw, perm, 128, opt_name, lr)
    out = epochs_on_1_and_2_threads(args, sizes, 128)
    ref = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    r = kernels.load("numpy").train_epoch(*ref)
    if diverging:
        assert not np.isfinite(out[2][0]) and not np.isfinite(r)
        assert np.array_equal(out[2][1][13], ref[13])  # stopped after as many steps as the reference
        assert np.all(np.isfinite(out[2][1][0]))       # and the diverging step was not applied
    else:
        assert_epoch_close(r, out[2][0], ref, out[2][1], dtype)


@pytest.mark.parametrize("net", range(len(NETS)))
def test_overlapped_epoch_across_activations_and_losses(net, dtype):
    """The overlapped gather with every output / loss pairing and two hidden layers above the first (the
    layers run beside the gather): the same bits as one thread, the reference's answer."""
    hidden, out, loss = NETS[net]
    rng = np.random.default_rng(300 + net)
    sizes, acts, params, X, Y, sw = problem(rng, dtype, [300, 24, 9, 1 if loss == C.BCE else 4], hidden, out,
                                            loss, 2 * 256 + 17, weighted=net % 2 == 0)
    perm = rng.permutation(2 * 256 + 17).astype(np.int64)
    lr = 0.02 / 64 if loss == C.SSR else 0.02
    args = epoch_args(sizes, acts, loss, params, X, Y, sw, perm, 256, "nesterov", lr)
    got = epochs_on_1_and_2_threads(args, sizes, 256)[2]
    ref = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    r = kernels.load("numpy").train_epoch(*ref)
    assert np.isfinite(r)
    assert_epoch_close(r, got[0], ref, got[1], dtype)


def test_non_finite_loss_stops_without_update(dtype):
    rng = np.random.default_rng(4)
    sizes, acts, params, X, Y, sw = problem(rng, dtype, [4, 6, 2], C.RELU, C.IDENTITY, C.MSE, 12)
    X[7] = np.inf  # row 7 lands in the second batch
    perm = np.arange(12, dtype=np.int64)
    r, g, ref, got = run_both("train_epoch", epoch_args(sizes, acts, C.MSE, params, X, Y, sw, perm, 4, "sgd"))
    assert not np.isfinite(g) and not np.isfinite(r)
    assert np.array_equal(got[0], got[0]) and C.close(got[0], ref[0], dtype)  # only the first batch moved
    # GD: the first loss is already non-finite -> one step recorded, nothing updated
    P = params.shape[0]
    gd = [params.copy(), np.zeros(P, dtype), sizes, acts, C.MSE, X, Y, sw, C.SGD,
          np.array([1e-2, 0, 0, 0, 0.9, 0.999, 1e-8]), np.zeros(2 * P, dtype), np.zeros(1, np.int64), 0.0, 5,
          np.zeros(C.train_workspace_size(sizes, 12), dtype), np.zeros(5), np.zeros(1)]
    r, g, ref, got = run_both("train_gd", gd)
    assert r == g == 1
    assert np.array_equal(got[0], params) and got[16][0] == np.inf


def test_gd_stops_when_steps_are_below_tol():
    rng = np.random.default_rng(5)
    sizes, acts, params, X, Y, sw = problem(rng, np.float64, [3, 4, 1], C.TANH, C.IDENTITY, C.MSE, 20)
    P = params.shape[0]
    gd = [params.copy(), np.zeros(P), sizes, acts, C.MSE, X, Y, sw, C.SGD, np.array([1e-3, 0, 0, 0, 0.9, 0.999, 1e-8]),
          np.zeros(2 * P), np.zeros(1, np.int64), 1.0, 50, np.zeros(C.train_workspace_size(sizes, 20)), np.zeros(50),
          np.zeros(1)]
    r, g, ref, got = run_both("train_gd", gd)
    assert r == g == 1
    assert C.close(got[15], ref[15], np.float64) and C.close(got[16], ref[16], np.float64)


# (n, k, m) around the parallel threshold PAR_FLOPS = 2·128³ and the tile sizes (MB, NB, KC, PB, JC)
GEMM_SHAPES = [(127, 128, 128), (128, 128, 128), (129, 130, 127), (65, 257, 300), (300, 70, 513), (3, 2048, 5),
               (1000, 9, 1)]


@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_across_parallel_threshold(shape, dtype):
    n, k, m = shape
    rng = np.random.default_rng(n * k + m)
    X, W, b = (rng.standard_normal(s).astype(dtype) for s in ((n, k), (k, m), (m,)))
    dZ = rng.standard_normal((n, m)).astype(dtype)
    be = kernels.load("numba")
    out = {}
    for threads in (1, 2):
        be.set_num_threads(threads)
        Z, dW, db, dX = np.empty((n, m), dtype), np.empty((k, m), dtype), np.empty(m, dtype), np.empty((n, k), dtype)
        be.dense_forward(X, W, b, Z)
        be.dense_backward(X, W, dZ, dW, db, dX)
        out[threads] = (Z, dW, db, dX)
    be.set_num_threads(nb.numba.config.NUMBA_NUM_THREADS)
    x64, w64, dz64 = X.astype(np.float64), W.astype(np.float64), dZ.astype(np.float64)
    want = (x64 @ w64 + b, x64.T @ dz64, dz64.sum(0), dz64 @ w64.T)
    for got1, got2, exp in zip(out[1], out[2], want):
        assert np.array_equal(got1, got2)  # the thread count never changes a result
        assert C.close(got1, exp, dtype)


_THREAD_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import kernels
from kernels import contract as C
k = kernels.load("numba")
out = {}
for dt in (np.float32, np.float64):
    rng = np.random.default_rng(7)
    sizes = np.array([130, 256, 70, 10], np.int64)
    acts = np.array([C.RELU, C.TANH, C.SOFTMAX], np.int64)
    P = C.n_params(sizes)
    params = (rng.standard_normal(P) * 0.1).astype(dt)
    X = rng.standard_normal((700, 130)).astype(dt)
    Y = np.eye(10, dtype=dt)[rng.integers(0, 10, 700)]
    perm = rng.permutation(700).astype(np.int64)
    hyper = np.array([0.01, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-8])
    state = np.zeros(2 * P, dt)
    loss = k.train_epoch(params, np.zeros(P, dt), sizes, acts, C.CE, X, Y, None, perm, 300, C.ADAM, hyper, state,
                         np.zeros(1, np.int64), np.zeros(C.train_workspace_size(sizes, 300), dt),
                         np.zeros(0, np.int64), np.zeros(0))
    Z = np.empty((700, 256), dt)
    k.dense_forward(X, params[:130 * 256].reshape(130, 256), params[130 * 256:130 * 256 + 256], Z)
    out[np.dtype(dt).name] = [repr(loss), hashlib.sha256(params.tobytes()).hexdigest(),
                              hashlib.sha256(Z.tobytes()).hexdigest(), k.get_num_threads()]
print(json.dumps(out))
"""


def test_results_bit_identical_for_1_and_2_threads():
    runs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        p = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, ROOT], env=env, capture_output=True, text=True,
                           timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    assert runs[0]["float32"][3] == 1 and runs[1]["float32"][3] == 2
    for dt in ("float32", "float64"):
        assert runs[0][dt][:3] == runs[1][dt][:3], dt


_ALLOC_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from numba.core.runtime import rtsys
import kernels
from kernels import contract as C
k = kernels.load("numba")
k.set_num_threads(2)
rng = np.random.default_rng(3)
# the MNIST-shaped path (next batch gathered during the step) and a full-batch fit whose GEMMs, gradient
# check and optimizer step all run split over the threads (P and rows above every threshold)
sizes = np.array([784, 128, 10], np.int64)
acts = np.array([C.RELU, C.SOFTMAX], np.int64)
P = C.n_params(sizes)
hyper = np.array([0.01, 0.9, 0.0, 0.0, 0.9, 0.999, 1e-8])
out = {}
def allocs(fn):
    fn()  # compiled and warm
    a = rtsys.get_allocation_stats().alloc
    fn()
    return rtsys.get_allocation_stats().alloc - a
for steps in (2, 20):
    n = 128 * steps
    X = rng.standard_normal((n, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    params = (rng.standard_normal(P) * 0.05).astype(np.float32)
    ws = np.zeros(C.train_workspace_size(sizes, 128), np.float32)
    epoch = lambda: k.train_epoch(params, np.zeros(P, np.float32), sizes, acts, C.CE, X, Y, None,
                                  np.arange(n), 128, C.SGD, hyper, np.zeros(2 * P, np.float32),
                                  np.zeros(1, np.int64), ws, np.zeros(0, np.int64), np.zeros(0))
    gws = np.zeros(C.train_workspace_size(sizes, 256), np.float32)
    gd = lambda: k.train_gd(params, np.zeros(P, np.float32), sizes, acts, C.CE, X[:256], Y[:256], None, C.SGD,
                            hyper, np.zeros(2 * P, np.float32), np.zeros(1, np.int64), 0.0, steps, gws,
                            np.zeros(steps), np.zeros(1))
    out[steps] = [allocs(epoch), allocs(gd)]
print(json.dumps(out))
"""


def test_no_allocation_per_step():
    """Allocations of a fused call do not grow with its steps (NRT's own counts, two threads)."""
    env = dict(os.environ, NUMBA_NRT_STATS="1", NUMBA_NUM_THREADS="2")
    p = subprocess.run([sys.executable, "-c", _ALLOC_SCRIPT, ROOT], env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["2"] == got["20"], got
    assert 0 < got["2"][0] < 100, got  # the counters count (per call: scratch, views of the workspace)


def test_import_compiles_nothing_and_every_kernel_caches():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kernels.numba_backend as m\n"
            "from numba.core.registry import CPUDispatcher\n"
            "ds = [v for v in vars(m).values() if isinstance(v, CPUDispatcher)]\n"
            "assert ds, 'no compiled functions found'\n"
            "print(sum(len(d.signatures) for d in ds), all(d._cache.__class__.__name__ != 'NullCache' for d in ds))")
    p = subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["0", "True"]


def test_cached_reports_the_cache_per_dtype(tmp_path):
    """False from an empty cache (nothing compiled by asking), True once the dtype's epoch kernel is compiled."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kernels.numba_backend as m\n"
            "print(m.cached('float32'), m.cached('float64'), m.cached('float32', fit='gd'), len(m._train_epoch.signatures))")
    p = subprocess.run([sys.executable, "-c", code, ROOT], env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["False", "False", "False", "0"]
    nb.warmup(("float32",))
    assert nb.cached("float32") is True and nb.cached("float32", fit="gd") is True


@pytest.mark.parametrize("fit, want", [("gd", {"train_gd", "predict"}), ("sgd", {"train_epoch", "predict"}),
                                       ("adam", {"train_epoch", "predict"})])
def test_warmup_for_a_fit_compiles_only_what_that_fit_calls(monkeypatch, fit, want):
    names = ["train_epoch", "train_gd", "batch_gradient", "predict", "dense_forward", "dense_backward",
             "activation_forward", "activation_backward", "softmax", "softmax_backward", "softmax_cross_entropy",
             "sigmoid_binary_cross_entropy", "ssr", "mse", "output_loss", "sgd_update", "adam_update"]
    called = set()
    for name in names:
        monkeypatch.setattr(nb, name, lambda *a, _n=name: called.add(_n))
    nb.warmup(("float32",), fit=fit)
    assert called == want
    called.clear()
    nb.warmup(("float32",))
    assert called == set(names)


def test_warmup_reports_progress_kernel_by_kernel(monkeypatch):
    for name in C.KERNEL_NAMES:
        monkeypatch.setattr(nb, name, lambda *a: None)
    seen = []
    nb.warmup(("float32", "float64"), fit="sgd", progress=lambda *a: seen.append(a))
    assert seen == [(0, 4, "predict", "float32"), (1, 4, "train_epoch", "float32"), (2, 4, "predict", "float64"),
                    (3, 4, "train_epoch", "float64"), (4, 4, None, None)]
    seen.clear()
    nb.warmup(("float32",), progress=lambda *a: seen.append(a))
    n = len(C.KERNEL_NAMES)
    assert [s[:2] for s in seen] == [(i, n) for i in range(n + 1)] and seen[-1] == (n, n, None, None)
    assert sorted(s[2] for s in seen[:-1]) == sorted(C.KERNEL_NAMES)
    lo, hi = nb.compile_estimate(("float32", "float64"), fit="sgd")
    assert 0 < lo <= hi and (lo, hi) == tuple(2 * v for v in nb.compile_estimate(("float32",), fit="adam"))


def test_a_kernels_first_compile_says_so_on_stderr_and_a_cached_one_is_silent(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, kernels, numba\n"
            "k = kernels.load('numba')\n"
            "k.sgd_update(np.zeros(4), np.ones(4), np.zeros(4), 0.1, 0.0, 0, 0.0)\n"
            "numba.njit(lambda x: x + 1)(1)  # not a pynet kernel: no notice\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    cold = subprocess.run([sys.executable, "-c", code, ROOT], env=env, capture_output=True, text=True, timeout=300)
    assert cold.returncode == 0, cold.stderr[-3000:]
    lines = cold.stderr.strip().splitlines()
    assert len(lines) == 2, cold.stderr
    assert lines[0].startswith("numba: compiling sgd_update for float64 (its first use on this machine; measured up "
                               f"to {nb.KERNEL_SECONDS['sgd_update']} s on {nb.COMPILE_MACHINE}; ")
    assert lines[1].startswith("numba: sgd_update compiled in ") and lines[1].endswith(" s")
    warm = subprocess.run([sys.executable, "-c", code, ROOT], env=env, capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0 and warm.stderr == ""


def test_read_only_package_dir_falls_back_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(nb.os, "access", lambda path, mode: False)
    got = nb._choose_cache_dir()
    assert got == os.path.join(str(tmp_path), "pynet", nb._pynet_version(), "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    assert nb._choose_cache_dir() is None  # the user's choice wins


def test_warmup_reports_seconds_per_dtype():
    got = nb.warmup(("float32",))
    assert set(got) == {"float32"} and got["float32"] >= 0


def test_thread_count_hooks():
    be = kernels.load("numba")
    be.set_num_threads(1)
    assert be.get_num_threads() == 1
    be.set_num_threads(10_000)  # clamped to the pool
    assert be.get_num_threads() == nb.numba.config.NUMBA_NUM_THREADS


def test_call_lock_matches_the_threading_layer():
    """Kernels are serialised exactly when the threading layer cannot serve concurrent callers."""
    import numba

    import kernels

    k = kernels.load("numba")
    X = np.ones((256, 512), np.float32)
    W = np.ones((512, 512), np.float32)
    k.dense_forward(X, W, np.zeros(512, np.float32), np.empty((256, 512), np.float32))  # runs the parallel path
    layer = numba.threading_layer()
    assert (k.raw.CALL_LOCK is None) == (layer in ("omp", "tbb")), layer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_math_functions_inline_and_vectorise(dtype):
    """Each elementwise math function, called in a plain loop over a contiguous array, is inlined (no call
    left) and the loop is vectorised. A libm call keeps such a loop scalar, and so did LLVM's inliner
    declining the float64 softplus (too big) before the functions were inlined by Numba."""
    import re

    from numba import njit

    fns = {"exp": nb._vexp, "expm1": nb._vexpm1, "log": nb._vlog, "log1p": nb._vlog1p, "tanh": nb._vtanh,
           "sigmoid": nb._vsigmoid, "softplus": nb._vsoftplus}
    x = np.linspace(0.5, 2.0, 64).astype(dtype)
    vec = r"<\d+ x %s>" % ("float" if dtype == "float32" else "double")
    for name, f in fns.items():
        def loop(x, y):
            for i in range(x.shape[0]):
                y[i] = f(x[i])
        jitted = njit(loop)  # not cached, so that its IR can be inspected
        y = np.empty_like(x)
        jitted(x, y)
        ir = jitted.inspect_llvm(jitted.signatures[0])
        calls = [c for c in re.findall(r"call [^@\n]*@([\w.$]+)", ir) if "kernels13numba_backend" in c]  # mangled
        assert not calls, f"{name}: not inlined: {calls}"
        assert re.search(r"llvm\.fma\.v\d+f(32|64)", ir) and re.search(vec, ir), f"{name}: no vector code"
