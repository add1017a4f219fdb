"""Numerical stability on every backend: extreme logits, exact 0/1 targets, large residuals."""
import numpy as np
import pytest

import kernels
from kernels import contract as C

EXTREME = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [30.0, -30.0, 0.5]])


def _f64_reference(name, *args):
    """The reference kernel evaluated in float64 on the same inputs."""
    conv = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
    out = getattr(kernels.load("numpy"), name)(*conv)
    return out, conv


def test_softmax_cross_entropy_extreme_logits(backend, dtype):
    k = kernels.load(backend)
    Z = EXTREME.astype(dtype)
    Y = np.eye(3, dtype=dtype)[[0, 2, 1, 1]]
    dZ = np.empty_like(Z)
    loss = k.softmax_cross_entropy(Z, Y, None, dZ)
    ref, conv = _f64_reference("softmax_cross_entropy", Z, Y, None, np.empty_like(Z, dtype=np.float64))
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    assert loss == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(dZ, conv[3], atol=1e-6)
    P = np.empty_like(Z)
    k.softmax(Z, P)
    assert np.all(np.isfinite(P)) and np.allclose(P.sum(axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_sigmoid_binary_cross_entropy_extreme_logits(backend, dtype, y):
    k = kernels.load(backend)
    Z = np.array([[-1e4], [1e4], [0.0], [-50.0], [50.0]], dtype)
    Y = np.full_like(Z, y)
    dZ = np.empty_like(Z)
    loss = k.sigmoid_binary_cross_entropy(Z, Y, None, dZ)
    ref, conv = _f64_reference("sigmoid_binary_cross_entropy", Z, Y, None, np.empty((5, 1)))
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    assert loss == pytest.approx(ref, rel=1e-5)  # about 1e4 / 5 from the wrong-side logit
    np.testing.assert_allclose(dZ, conv[3], atol=1e-7)


@pytest.mark.parametrize("act", ["softplus", "sigmoid", "tanh", "relu"])
def test_activations_at_extremes(backend, dtype, act):
    k = kernels.load(backend)
    code = C.ACTIVATIONS.index(act)
    Z = np.array([[-1e4, -100.0, -1e-3, 0.0, 1e-3, 100.0, 1e4]], dtype)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    k.activation_forward(code, Z, A)
    k.activation_backward(code, A, np.ones_like(Z), dZ)
    refA = np.empty(Z.shape)
    kernels.load("numpy").activation_forward(code, Z.astype(np.float64), refA)
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(dZ))
    np.testing.assert_allclose(A, refA, rtol=1e-6, atol=1e-30)


def test_ssr_with_large_values(backend, dtype):
    k = kernels.load(backend)
    big = 1e15  # its square, 1e30, is still finite in float32 (max 3.4e38)
    Yhat = np.array([[big], [-big]], dtype)
    Y = np.zeros_like(Yhat)
    d = np.empty_like(Y)
    loss = k.ssr(Yhat, Y, None, d)
    assert loss == pytest.approx(2e30, rel=1e-5)
    np.testing.assert_allclose(d[:, 0], [2 * big, -2 * big], rtol=1e-6)


def test_diverging_epoch_stops_and_keeps_finite_weights(backend):
    k = kernels.load(backend)
    sizes = np.array([2, 4, 1], np.int64)
    acts = np.array([C.RELU, C.IDENTITY], np.int64)
    P = C.n_params(sizes)
    params = np.full(P, 0.5, np.float32)
    X = np.full((64, 2), 1e3, np.float32)
    Y = np.full((64, 1), -1e3, np.float32)
    perm = np.arange(64, dtype=np.int64)
    hyper = np.array([1e3, 0, 0, 0, 0.9, 0.999, 1e-8])
    value = k.train_epoch(params, np.zeros(P, np.float32), sizes, acts, C.SSR, X, Y, None, perm, 8, C.SGD, hyper,
                          np.zeros(2 * P, np.float32), np.zeros(1, np.int64),
                          np.zeros(C.train_workspace_size(sizes, 8), np.float32), np.zeros(0, np.int64), np.zeros(0))
    assert not np.isfinite(value)
    assert np.all(np.isfinite(params))
