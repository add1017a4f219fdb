"""Tests specific to the C backend: micro-kernels, the strided GEMM, fused epochs, threads, the built library.

Per-kernel parity with the reference for every backend lives in test_kernel_parity.py; these add what
only the C backend has. Skipped (visibly) when the extension is not built.
"""
import numpy as np
import pytest

import kernels
from kernels import contract as C

from cases import targets

try:
    cb = kernels.load("c").raw
except kernels.BackendUnavailable as exc:  # pragma: no cover - only without a compiler
    pytest.skip(f"C backend unavailable: {exc}", allow_module_level=True)


@pytest.fixture
def scalar_path():
    """Force the portable micro-kernel for the duration of a test."""
    was = cb.simd_active()
    cb.set_simd(False)
    yield
    cb.set_simd(was)


@pytest.fixture
def threads():
    was = cb.get_num_threads()
    yield cb.set_num_threads
    cb.set_num_threads(was)


def _tol(dtype, k):
    # a k-term dot product in dtype: error grows with k; relative to the result scale
    eps = np.finfo(dtype).eps
    return 4 * eps * np.sqrt(k) + eps


def _close_gemm(got, want, dtype, k):
    scale = np.max(np.abs(want), initial=1.0)
    return np.max(np.abs(got - want), initial=0.0) <= _tol(dtype, k) * scale * 4


# --------------------------------------------------------------------------- micro-kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0, 1])
def test_simd_microkernel_matches_scalar(dtype, beta):
    if not cb.simd_active() and not cb.set_simd(True):
        pytest.skip("this CPU has no AVX2+FMA: only the scalar micro-kernel exists")
    rng = np.random.default_rng(7)
    bs = cb.block_sizes(dtype)
    mr, nr = bs["MR"], bs["NR"]
    for k in [1, 2, 3, 7, 16, 61, 256]:
        a = rng.standard_normal((k, mr)).astype(dtype)
        b = rng.standard_normal((k, nr)).astype(dtype)
        c0 = rng.standard_normal((mr, nr)).astype(dtype)
        c_simd, c_scalar = c0.copy(), c0.copy()
        assert cb.ukernel(True, k, a, b, c_simd, beta) == 1
        assert cb.ukernel(False, k, a, b, c_scalar, beta) == 0
        want = a.T.astype(np.float64) @ b.astype(np.float64) + (c0 if beta else 0)
        assert _close_gemm(c_scalar, want, dtype, k)
        assert _close_gemm(c_simd, c_scalar, dtype, k), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_simd_matches_scalar_on_random_sizes(dtype):
    rng = np.random.default_rng(11)
    for _ in range(12):
        m, n, k = (int(x) for x in rng.integers(1, 300, 3))
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        simd = cb.gemm(A, B, np.empty((m, n), dtype))
        was = cb.simd_active()
        cb.set_simd(False)
        try:
            scalar = cb.gemm(A, B, np.empty((m, n), dtype))
        finally:
            cb.set_simd(was)
        assert _close_gemm(simd, scalar, dtype, k), (m, n, k)


# --------------------------------------------------------------------------- GEMM shapes
def _sizes():
    bs = cb.block_sizes(np.float32)
    # small odd sizes, and sizes that cross MR/NR/MC/KC and the threading threshold
    return [1, 3, 7, 61, 127, bs["MC"] + 1, bs["KC"] + 3, 300]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["X.W", "XT.dZ", "dZ.WT"])
@pytest.mark.parametrize("simd", [True, False], ids=["simd", "scalar"])
def test_gemm_three_shapes_match_numpy(dtype, shape, simd):
    rng = np.random.default_rng(3)
    sizes = _sizes()
    was = cb.simd_active()
    cb.set_simd(simd)
    try:
        for trial in range(10):
            n, i, o = (sizes[(trial * 3 + j * 5) % len(sizes)] for j in range(3))
            if trial == 9:
                n, i, o = 301, 259, 290   # every dimension past a block boundary
            X = rng.standard_normal((n, i)).astype(dtype)
            W = rng.standard_normal((i, o)).astype(dtype)
            dZ = rng.standard_normal((n, o)).astype(dtype)
            if shape == "X.W":
                A, B, k = X, W, i
            elif shape == "XT.dZ":
                A, B, k = X.T, dZ, n        # a transposed view: strides, no copy
            else:
                A, B, k = dZ, W.T, o
            want = A.astype(np.float64) @ B.astype(np.float64)
            got = cb.gemm(A, B, np.empty(want.shape, dtype))
            assert _close_gemm(got, want, dtype, k), (shape, n, i, o)
            acc = np.ones(want.shape, dtype)
            cb.gemm(A, B, acc, beta=1)
            assert _close_gemm(acc, want + 1, dtype, k)
    finally:
        cb.set_simd(was)


def test_gemm_crossing_the_thread_threshold_is_thread_count_independent(threads):
    rng = np.random.default_rng(5)
    for m, n, k in [(64, 64, 64), (97, 96, 96), (200, 300, 257), (513, 129, 300)]:
        A = rng.standard_normal((m, k)).astype(np.float32)
        B = rng.standard_normal((k, n)).astype(np.float32)
        threads(1)
        one = cb.gemm(A, B, np.empty((m, n), np.float32))
        threads(2)
        two = cb.gemm(A, B, np.empty((m, n), np.float32))
        np.testing.assert_array_equal(one, two)
        assert _close_gemm(one, A.astype(np.float64) @ B, np.float32, k)


# --------------------------------------------------------------------------- GEMM paths (small / panel / packed)
@pytest.fixture
def gemm_path():
    yield cb.set_gemm_path
    cb.set_gemm_path(0)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("path", [1, 2])
def test_overflowing_gradient_caught_on_each_gemm_path(path, simd, gemm_path):
    """The gradient check inside dW's GEMM (tile by tile as stored: the panel path, and the packed path in its
    block-per-thread and shared-block forms) gives the verdict of the pass it replaces: the two overflow cases of
    test_kernel_parity with the path forced, AVX2 and portable kernels, 1 and 2 threads."""
    import test_kernel_parity as tkp
    if simd and not cb.simd_active():
        pytest.skip("no AVX2")
    was = cb.simd_active()
    gemm_path(path)
    cb.set_simd(simd)
    try:
        tkp.test_epoch_stops_on_an_overflowing_first_layer_gradient("c")
        tkp.test_epoch_stops_on_an_overflowing_upper_layer_gradient("c")
    finally:
        cb.set_simd(was)


@pytest.mark.parametrize("n,i,o", [(512, 40, 1024), (300, 70, 21), (700, 200, 10), (33, 100, 17)])
def test_db_is_the_row_order_column_sum_on_every_gemm_path(n, i, o, gemm_path, threads):
    """dense_backward's db (summed by the packed path while it packs dZ, else by its own pass): each column of dZ
    summed row by row in float32 — the same bits on every path and thread count, dW and dX unchanged."""
    rng = np.random.default_rng(n + o)
    X = rng.standard_normal((n, i)).astype(np.float32)
    W = rng.standard_normal((i, o)).astype(np.float32)
    dZ = rng.standard_normal((n, o)).astype(np.float32)
    want = np.zeros(o, np.float32)
    for r in range(n):
        want += dZ[r]
    first = None
    for path in (0, 1, 2):
        for nt in (1, 2):
            gemm_path(path)
            threads(nt)
            dW, db, dX = np.empty((i, o), np.float32), np.empty(o, np.float32), np.empty((n, i), np.float32)
            cb.dense_backward(X, W, dZ, dW, db, dX)
            np.testing.assert_array_equal(db, want, err_msg=f"path {path} threads {nt}")
            if first is None:
                first = dW, dX
            np.testing.assert_array_equal(dW, first[0])
            np.testing.assert_array_equal(dX, first[1])


# odd sizes: edge tiles in m and n, k across a KC slab boundary, n = 1 columns, m below MR
PATH_SHAPES = [(1, 1, 1), (5, 3, 17), (13, 300, 5), (32, 20, 64), (64, 32, 1), (32, 64, 1), (37, 600, 1), (20, 9, 40), (32, 1, 64), (7, 1, 19), (7, 517, 33), (128, 784, 128),
               (131, 260, 47), (200, 70, 300), (1100, 40, 50),
               (700, 300, 10), (301, 500, 40)]   # fewer column panels than 2 threads share: rows split


def _layout(a, t):
    # "t": the same values as a transposed view of a contiguous array (unit row stride), as Xᵀ and Wᵀ are
    return np.ascontiguousarray(a.T).T if t else a


@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
def test_gemm_paths_agree_bitwise_and_match_scalar_reference(layout, gemm_path, threads):
    """The no-pack small path, the panel path and the packed path give the same bits at 1 and 2
    threads (one FMA chain per element in one k order), and agree with the scalar reference kernel."""
    if not cb.simd_active():
        pytest.skip("the no-pack and panel paths are the AVX2 build's")
    rng = np.random.default_rng(11)
    for m, k, n in PATH_SHAPES:
        A = _layout(rng.standard_normal((m, k)).astype(np.float32), layout[0] == "t")
        B = _layout(rng.standard_normal((k, n)).astype(np.float32), layout[1] == "t")
        for beta in (0, 1):
            C0 = rng.standard_normal((m, n)).astype(np.float32)
            outs = {}
            for path in (0, 1, 2):
                for nt in (1, 2):
                    gemm_path(path)
                    threads(nt)
                    outs[path, nt] = cb.gemm(A, B, C0.copy(), beta)
            first = outs[0, 1]
            for key, got in outs.items():
                np.testing.assert_array_equal(got, first, err_msg=f"{(m, k, n)} beta={beta} path/threads={key}")
            want = A.astype(np.float64) @ B + (C0 if beta else 0)
            assert _close_gemm(first, want, np.float32, k)
            gemm_path(0)
            cb.set_simd(False)
            try:
                ref = cb.gemm(A, B, C0.copy(), beta)   # scalar micro-kernel, packed path
            finally:
                cb.set_simd(True)
            assert _close_gemm(first, ref, np.float32, k)


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, 0, 0.0), (0.9, 0, 0.0), (0.9, 1, 0.0), (0.9, 1, 1e-3),
                                                 (0.0, 0, 1e-2)])
def test_simd_sgd_and_relu_backward_identical_to_scalar(momentum, nesterov, wd):
    if not cb.simd_active():
        pytest.skip("no AVX2 on this CPU")
    rng = np.random.default_rng(3)
    for p in [1, 3, 4, 7, 8, 9, 31, 64, 1001]:
        params = rng.standard_normal(p).astype(np.float32)
        grads = rng.standard_normal(p).astype(np.float32)
        vel = rng.standard_normal(p).astype(np.float32)
        res = []
        for simd in (True, False):
            cb.set_simd(simd)
            try:
                pp, vv = params.copy(), vel.copy()
                moved = cb.sgd_update(pp, grads, vv, 0.01, momentum, nesterov, wd)
            finally:
                cb.set_simd(True)
            res.append((pp, vv, moved))
        np.testing.assert_array_equal(res[0][0], res[1][0])
        np.testing.assert_array_equal(res[0][1], res[1][1])
        assert res[0][2] == res[1][2]
        A = np.maximum(rng.standard_normal(p).astype(np.float32), 0)
        dA = rng.standard_normal(p).astype(np.float32)
        dA[:: 5] = np.inf
        out = []
        for simd in (True, False):
            cb.set_simd(simd)
            try:
                dZ = np.empty_like(dA)
                cb.activation_backward(C.RELU, A, dA, dZ)
            finally:
                cb.set_simd(True)
            out.append(dZ)
        np.testing.assert_array_equal(out[0], out[1])
        Z = rng.standard_normal(p).astype(np.float32)
        Z[:: 3] = [np.nan, -0.0, 0.0, -np.inf, np.inf][: len(Z[:: 3])] + [np.nan] * max(0, len(Z[:: 3]) - 5)
        fwd = []
        for simd in (True, False):
            cb.set_simd(simd)
            try:
                Ao = np.empty_like(Z)
                cb.activation_forward(C.RELU, Z, Ao)
            finally:
                cb.set_simd(True)
            fwd.append(Ao)
        np.testing.assert_array_equal(fwd[0], fwd[1])
        assert np.array_equal(np.signbit(fwd[0]), np.signbit(fwd[1]))
    # a non-finite step is reported as NaN by both
    g = np.ones(9, np.float32)
    g[6] = np.nan
    for simd in (True, False):
        cb.set_simd(simd)
        try:
            assert np.isnan(cb.sgd_update(np.zeros(9, np.float32), g, np.zeros(9, np.float32), 0.1, 0.9, 0, 0.0))
        finally:
            cb.set_simd(True)


# --------------------------------------------------------------------------- fused epochs
def _net(rng, dtype, sizes, acts, loss, n):
    sizes = np.array(sizes, np.int64)
    params = np.concatenate([np.concatenate([rng.standard_normal(a * b) * np.sqrt(1.0 / a), np.zeros(b)])
                             for a, b in zip(sizes[:-1], sizes[1:])]).astype(dtype)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    return sizes, np.array(acts, np.int64), params, X, targets(rng, dtype, loss, n, int(sizes[-1]))


CASES = [  # (hidden acts, output act, loss, opt, momentum, nesterov, weighted)
    ((C.RELU, C.TANH), C.IDENTITY, C.MSE, C.SGD, 0.0, 0, False),
    ((C.TANH, C.SIGMOID), C.SOFTMAX, C.CE, C.SGD, 0.9, 0, True),
    ((C.SOFTPLUS, C.RELU), C.SIGMOID, C.BCE, C.SGD, 0.9, 1, False),
    ((C.RELU, C.IDENTITY), C.SOFTMAX, C.CE, C.ADAM, 0.0, 0, False),
    ((C.SIGMOID, C.TANH), C.IDENTITY, C.SSR, C.ADAM, 0.0, 0, True),
    ((C.TANH, C.RELU), C.SOFTMAX, C.MSE, C.SGD, 0.5, 1, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("batch", [1, 16])
def test_fused_epoch_matches_reference(dtype, case, batch):
    hidden, out_act, loss, opt, mom, nest, weighted = CASES[case]
    rng = np.random.default_rng(100 + case)
    n = 53 if batch > 1 else 9              # 53 rows, batch 16: a last partial batch of 5
    k = 1 if loss == C.BCE else 3
    sizes, acts, params, X, Y = _net(rng, dtype, [6, 9, 7, k], list(hidden) + [out_act], loss, n)
    sw = (rng.random(n) + 0.5).astype(dtype) if weighted else None
    lr = 0.002 if loss == C.SSR else 0.05
    hyper = np.array([lr, mom, nest, 1e-4, 0.9, 0.999, 1e-8])
    perm = rng.permutation(n).astype(np.int64)
    P = params.shape[0]
    out = {}
    for name in ("numpy", "c"):
        be = kernels.load(name)
        p, st, step = params.copy(), np.zeros(2 * P, dtype), np.zeros(1, np.int64)
        alive, gsq = np.zeros(C.n_hidden_units(sizes), np.int64), np.zeros(len(sizes) - 1)
        value = be.train_epoch(p, np.zeros(P, dtype), sizes, acts, loss, X, Y, sw, perm, batch, opt, hyper, st, step,
                               np.zeros(C.train_workspace_size(sizes, batch), dtype), alive, gsq)
        out[name] = (value, p, st, step, alive, gsq)
    (v0, p0, s0, t0, a0, g0), (v1, p1, s1, t1, a1, g1) = out["numpy"], out["c"]
    assert C.close(v1, v0, dtype) and C.close(p1, p0, dtype) and C.close(s1, s0, dtype)
    assert t1[0] == t0[0] and np.array_equal(a1, a0)
    assert C.close(g1, g0, dtype)


@pytest.mark.parametrize("nesterov", [0, 1])
def test_fused_epoch_sgd_without_weight_decay_matches_reference(nesterov):
    """train_epoch's SGD without weight decay (the float-add velocity, no max|Δ| tracking) against the reference."""
    rng = np.random.default_rng(21)
    sizes, acts, params, X, Y = _net(rng, np.float32, [20, 64, 64, 1], [C.RELU, C.RELU, C.IDENTITY], C.MSE, 200)
    hyper = np.array([0.01, 0.9, nesterov, 0.0, 0.9, 0.999, 1e-8])
    perm = rng.permutation(200).astype(np.int64)
    P = params.shape[0]
    out = {}
    for name in ("numpy", "c"):
        be = kernels.load(name)
        p, st = params.copy(), np.zeros(2 * P, np.float32)
        v = be.train_epoch(p, np.zeros(P, np.float32), sizes, acts, C.MSE, X, Y, None, perm, 32, C.SGD, hyper, st,
                           np.zeros(1, np.int64), np.zeros(C.train_workspace_size(sizes, 32), np.float32),
                           np.zeros(0, np.int64), np.zeros(0))
        out[name] = (v, p, st)
    for a, b in zip(out["c"], out["numpy"]):
        assert C.close(a, b, np.float32)


def test_fused_epoch_stops_on_non_finite_loss():
    rng = np.random.default_rng(1)
    sizes, acts, params, X, Y = _net(rng, np.float64, [4, 8, 2], [C.RELU, C.IDENTITY], C.SSR, 40)
    X[25] = np.inf                           # batch 3 (rows 24..31 in order) is non-finite
    hyper = np.array([0.01, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-8])
    P = params.shape[0]
    res = {}
    for name in ("numpy", "c"):
        be = kernels.load(name)
        p = params.copy()
        with np.errstate(all="ignore"):
            v = be.train_epoch(p, np.zeros(P), sizes, acts, C.SSR, X, Y, None, np.arange(40, dtype=np.int64), 8,
                               C.SGD, hyper, np.zeros(2 * P), np.zeros(1, np.int64),
                               np.zeros(C.train_workspace_size(sizes, 8)), np.zeros(0, np.int64), np.zeros(0))
        res[name] = (v, p)
    assert not np.isfinite(res["c"][0]) and not np.isfinite(res["numpy"][0])
    assert C.close(res["c"][1], res["numpy"][1], np.float64)


@pytest.mark.parametrize("opt", [C.SGD, C.ADAM])
def test_train_gd_matches_reference(opt):
    rng = np.random.default_rng(2)
    sizes, acts, params, X, Y = _net(rng, np.float64, [5, 8, 2], [C.TANH, C.IDENTITY], C.MSE, 30)
    hyper = np.array([0.1, 0.9, 1.0, 0.0, 0.9, 0.999, 1e-8])
    P = params.shape[0]
    res = {}
    for name in ("numpy", "c"):
        be = kernels.load(name)
        p, losses, last = params.copy(), np.zeros(50), np.zeros(1)
        s = be.train_gd(p, np.zeros(P), sizes, acts, C.MSE, X, Y, None, opt, hyper, np.zeros(2 * P),
                        np.zeros(1, np.int64), 1e-3, 50, np.zeros(C.train_workspace_size(sizes, 30)), losses, last)
        res[name] = (s, p, losses, last)
    assert res["c"][0] == res["numpy"][0]
    for a, b in zip(res["c"][1:], res["numpy"][1:]):
        assert C.close(a, b, np.float64)


@pytest.mark.parametrize("opt", [C.SGD, C.ADAM])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_epoch_identical_with_one_and_two_threads(dtype, opt, threads):
    rng = np.random.default_rng(9)
    # wide enough that the GEMMs cross the threading threshold, and P = 36 210 parameters that the
    # gradient check and the optimizer split over the threads (from 32 768 on)
    sizes, acts, params, X, Y = _net(rng, dtype, [170, 200, 10], [C.RELU, C.SOFTMAX], C.CE, 700)
    hyper = np.array([0.05, 0.9, 1.0, 0.0, 0.9, 0.999, 1e-8])
    perm = rng.permutation(700).astype(np.int64)
    P = params.shape[0]
    out = []
    for nt in (1, 2):
        threads(nt)
        p = params.copy()
        v = cb.train_epoch(p, np.zeros(P, dtype), sizes, acts, C.CE, X, Y, None, perm, 256, opt, hyper,
                           np.zeros(2 * P, dtype), np.zeros(1, np.int64),
                           np.zeros(C.train_workspace_size(sizes, 256), dtype), np.zeros(200, np.int64), np.zeros(2))
        pred = np.empty((700, 10), dtype)
        cb.predict(p, sizes, acts, X, pred, 300, np.zeros(C.predict_workspace_size(sizes, 300), dtype))
        out.append((v, p, pred))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][2], out[1][2])


def test_thread_setting_round_trips(threads):
    be = kernels.load("c")
    be.set_num_threads(1)
    assert be.get_num_threads() == 1
    be.set_num_threads(2)
    assert be.get_num_threads() == 2


# --------------------------------------------------------------------------- build hygiene
def test_every_contract_kernel_is_declared_and_built_in_both_precisions():
    """The cffi declarations come from pynet.h; the built library must hold every contract kernel."""
    from kernels._pynet_c import lib

    for name in C.KERNEL_NAMES:
        for suffix in ("f32", "f64"):
            assert callable(getattr(lib, f"pynet_{name}_{suffix}", None)), f"pynet_{name}_{suffix}"


@pytest.fixture
def tiles():
    yield cb.set_tiles
    cb.set_tiles(True)


@pytest.mark.parametrize("loss, out, weighted", [(C.MSE, C.IDENTITY, False), (C.CE, C.SOFTMAX, True),
                                                  (C.SSR, C.IDENTITY, True), (C.BCE, C.SIGMOID, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_gd_row_tiles_match_whole_batch_and_reference(dtype, loss, out, weighted, tiles, threads):
    """A large batch of a narrow network runs by row tiles (train.c): the same steps as whole-batch products
    and the reference, up to summation order, and the same bits on one and two threads."""
    rng = np.random.default_rng(31)
    n = 3001                                    # several tiles and a short last one
    sizes, acts, params, X, Y = _net(rng, dtype, [4, 32, 16, 3 if loss != C.BCE else 2],
                                     [C.TANH, C.SOFTPLUS, out], loss, n)
    sw = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else None
    if weighted:
        sw[:300] = 0                            # a whole tile of zero weights adds nothing
    lr = 0.05 / n if loss == C.SSR else 0.05
    hyper = np.array([lr, 0.9, 0.0, 1e-4, 0.9, 0.999, 1e-8])
    P = params.shape[0]

    def run(name, on=True, nt=2):
        tiles(on)
        threads(nt)
        p, losses, last = params.copy(), np.zeros(6), np.zeros(1)
        s = kernels.load(name).train_gd(p, np.zeros(P, dtype), sizes, acts, loss, X, Y, sw, C.ADAM, hyper,
                                        np.zeros(2 * P, dtype), np.zeros(1, np.int64), 0.0, 6,
                                        np.zeros(C.train_workspace_size(sizes, n), dtype), losses, last)
        return s, p, losses

    tiled, tiled1, whole, ref = run("c"), run("c", nt=1), run("c", on=False), run("numpy")
    assert tiled[0] == whole[0] == ref[0] == 6
    np.testing.assert_array_equal(tiled[1], tiled1[1])
    np.testing.assert_array_equal(tiled[2], tiled1[2])
    for got in (tiled, whole):
        assert C.close(got[1], ref[1], dtype)
        assert C.close(got[2], ref[2], dtype)
    assert not np.array_equal(tiled[1], whole[1])   # the tiles did run: another summation order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_epoch_large_batches_by_row_tiles_with_diagnostics(dtype, tiles, threads):
    """Batches of 2,000 rows of a narrow network (and a short last batch) run by row tiles: close to the
    whole-batch products and the reference, the same bits on one and two threads, the same alive marks."""
    rng = np.random.default_rng(41)
    n = 4500
    sizes, acts, params, X, Y = _net(rng, dtype, [6, 24, 12, 3], [C.RELU, C.SIGMOID, C.SOFTMAX], C.CE, n)
    X[:, 0] = -50.0                              # with large positive weights from it: 12 ReLU units stay dead
    params[0:12] = abs(params[0:12]) * 10 + 1
    perm = rng.permutation(n).astype(np.int64)
    hyper = np.array([0.05, 0.9, 1.0, 0.0, 0.9, 0.999, 1e-8])
    P = params.shape[0]

    def run(name, on=True, nt=2):
        tiles(on)
        threads(nt)
        p, alive, gsq = params.copy(), np.zeros(36, np.int64), np.zeros(3)
        v = kernels.load(name).train_epoch(p, np.zeros(P, dtype), sizes, acts, C.CE, X, Y, None, perm, 2000, C.SGD,
                                           hyper, np.zeros(2 * P, dtype), np.zeros(1, np.int64),
                                           np.zeros(C.train_workspace_size(sizes, 2000), dtype), alive, gsq)
        return v, p, alive, gsq

    tiled, tiled1, whole, ref = run("c"), run("c", nt=1), run("c", on=False), run("numpy")
    assert tiled[0] == tiled1[0]
    for a, b in zip(tiled[1:], tiled1[1:]):
        np.testing.assert_array_equal(a, b)
    for got in (tiled, whole):
        assert C.close(got[0], ref[0], dtype)
        assert C.close(got[1], ref[1], dtype)
        np.testing.assert_array_equal(got[2], ref[2])
        assert C.close(got[3], ref[3], dtype)
    assert 0 < ref[2].sum() < 36                   # the premise: some units dead, some alive
    assert not np.array_equal(tiled[1], whole[1])  # the tiles did run: another summation order


@pytest.fixture
def isa():
    from kernels import c_backend
    was = c_backend.isa()
    yield c_backend.set_isa
    c_backend.set_isa(was)


def test_every_isa_gives_the_same_bits_for_products_and_epochs(isa, tiles, gemm_path):
    """The AVX-512 micro-kernel (12-row tiles) runs each C element's FMA chain as the AVX2 one does: GEMMs of
    edge shapes, a fused epoch (bias, ReLU and its mask in the epilogue) and a tiled full-batch run agree bit for
    bit on every ISA the CPU supports with FMA."""
    from kernels import c_backend
    isas = [i for i in c_backend.supported_isas() if i != "base"]
    if len(isas) < 2:
        pytest.skip(f"this CPU supports only {c_backend.supported_isas()}")
    rng = np.random.default_rng(5)
    shapes = [(1, 1, 1), (13, 17, 9), (37, 70, 33), (130, 300, 64), (700, 96, 24), (400, 700, 40), (301, 530, 70)]
    mats = [(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32))
            for m, k, n in shapes]
    sizes, acts, params, X, Y = _net(rng, np.float32, [20, 64, 33, 3], [C.RELU, C.TANH, C.SOFTMAX], C.CE, 900)
    perm = rng.permutation(900).astype(np.int64)
    hyper = np.array([0.05, 0.9, 0.0, 0.0, 0.9, 0.999, 1e-8])
    P = params.shape[0]
    out = {}
    for name in isas:
        isa(name)
        res = []
        for path in (0, 2):                     # by shape, and the packed path (its 12-row pairs) for all
            cb.set_gemm_path(path)
            res += [cb.gemm(a, b, np.zeros((a.shape[0], b.shape[1]), np.float32)) for a, b in mats]
        cb.set_gemm_path(0)
        for opt, bs, path in ((C.SGD, 37, 0), (C.ADAM, 900, 0), (C.SGD, 300, 2)):
            gemm_path(path)                     # 2: the packed path, its epilogue (bias, ReLU, mask) in registers
            p = params.copy()
            cb.train_epoch(p, np.zeros(P, np.float32), sizes, acts, C.CE, X, Y, None, perm, bs, opt, hyper,
                           np.zeros(2 * P, np.float32), np.zeros(1, np.int64),
                           np.zeros(C.train_workspace_size(sizes, bs), np.float32), np.zeros(97, np.int64),
                           np.zeros(3))
            res.append(p)
        gemm_path(0)
        out[name] = res
    for name in isas[1:]:
        for a, b in zip(out[isas[0]], out[name]):
            np.testing.assert_array_equal(a, b)
