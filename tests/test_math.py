"""The math of the kernels on every backend: finite-difference gradients through the fused step,
the softmax Jacobian, and optimizer steps worked by hand."""
import itertools

import numpy as np
import pytest

import kernels
from kernels import contract as C

PAIRS = [(out, loss) for loss in range(len(C.LOSSES)) for out in sorted(C.COMPATIBLE_OUTPUTS[loss])]


def _fused_loss_and_grad(k, params, sizes, acts, loss, X, Y, sw):
    """Loss at params and the gradient the fused step used: plain SGD with lr = 1 moves θ by −∇L."""
    P = params.shape[0]
    p = params.copy()
    perm = np.arange(X.shape[0], dtype=np.int64)
    hyper = np.array([1.0, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-8])
    value = k.train_epoch(p, np.zeros(P), sizes, acts, loss, X, Y, sw, perm, X.shape[0], C.SGD, hyper,
                          np.zeros(2 * P), np.zeros(1, np.int64),
                          np.zeros(C.train_workspace_size(sizes, X.shape[0])), np.zeros(0, np.int64), np.zeros(0))
    return value, params - p


@pytest.mark.parametrize("hidden", C.ELEMENTWISE)
@pytest.mark.parametrize("out,loss", PAIRS, ids=[f"{C.ACTIVATIONS[o]}-{C.LOSSES[l]}" for o, l in PAIRS])
def test_fused_step_gradient_matches_finite_differences(backend, hidden, out, loss):
    rng = np.random.default_rng(7)
    k = kernels.load(backend)
    n_out = 1 if loss == C.BCE and rng.random() < 0.5 else 3
    sizes = np.array([4, 5, n_out], np.int64)
    acts = np.array([C.ACTIVATIONS.index(hidden), out], np.int64)
    params = rng.standard_normal(C.n_params(sizes)) * 0.7
    X = rng.standard_normal((6, 4))
    if loss == C.CE:
        Y = np.eye(n_out)[rng.integers(0, n_out, 6)]
    elif loss == C.BCE:
        Y = rng.integers(0, 2, (6, n_out)).astype(float)
    else:
        Y = rng.standard_normal((6, n_out))
    sw = rng.uniform(0.5, 2.0, 6)
    _, grad = _fused_loss_and_grad(k, params, sizes, acts, loss, X, Y, sw)
    h = 1e-6
    numeric = np.empty_like(params)
    for i in range(params.shape[0]):
        e = np.zeros_like(params)
        e[i] = h
        plus, _ = _fused_loss_and_grad(k, params + e, sizes, acts, loss, X, Y, sw)
        minus, _ = _fused_loss_and_grad(k, params - e, sizes, acts, loss, X, Y, sw)
        numeric[i] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_softmax_jacobian_matches_the_seed_formulas(backend, dtype):
    k = kernels.load(backend)
    z = np.array([[1.0, 2.0, 0.5, -1.0]], dtype)
    p = np.empty_like(z)
    k.softmax(z, p)
    n = z.shape[1]
    J = np.empty((n, n))
    for j in range(n):  # column j of Jᵀ·e_j: the kernel's Jacobian-vector product
        e = np.zeros_like(z)
        e[0, j] = 1
        col = np.empty_like(z)
        k.softmax_backward(p, e, col)
        J[:, j] = col[0]
    p = p[0].astype(np.float64)
    for i, j in itertools.product(range(n), repeat=2):
        expected = p[i] * (1 - p[i]) if i == j else -p[i] * p[j]
        assert J[i, j] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # and against finite differences of the softmax itself (float64)
    if dtype == np.float64:
        h = 1e-6
        for j in range(n):
            zp, zm = z.copy(), z.copy()
            zp[0, j] += h
            zm[0, j] -= h
            pp, pm = np.empty_like(z), np.empty_like(z)
            k.softmax(zp, pp)
            k.softmax(zm, pm)
            np.testing.assert_allclose(J[:, j], (pp[0] - pm[0]) / (2 * h), atol=1e-8)


def test_sgd_step_worked_by_hand(backend, dtype):
    k = kernels.load(backend)
    theta = np.array([1.0, -2.0], dtype)
    grad = np.array([0.5, 0.25], dtype)
    v = np.array([0.1, 0.0], dtype)
    # momentum 0.9, weight decay 0.1, lr 0.1:
    # g = ∇ + 0.1·θ = [0.5 + 0.1, 0.25 − 0.2] = [0.6, 0.05]
    # v = 0.9·[0.1, 0] + g = [0.69, 0.05];  θ = θ − 0.1·v = [0.931, −2.005]
    moved = k.sgd_update(theta, grad, v, 0.1, 0.9, 0, 0.1)
    np.testing.assert_allclose(v, [0.69, 0.05], rtol=1e-6)
    np.testing.assert_allclose(theta, [0.931, -2.005], rtol=1e-6)
    assert moved == pytest.approx(0.069, rel=1e-5)
    # Nesterov from the same start: step = g + 0.9·v = [0.6 + 0.621, 0.05 + 0.045] = [1.221, 0.095]
    theta, v = np.array([1.0, -2.0], dtype), np.array([0.1, 0.0], dtype)
    k.sgd_update(theta, grad, v, 0.1, 0.9, 1, 0.1)
    np.testing.assert_allclose(theta, [1 - 0.1221, -2 - 0.0095], rtol=1e-6)


def test_adam_step_worked_by_hand(backend, dtype):
    k = kernels.load(backend)
    theta = np.array([1.0, -1.0], dtype)
    grad = np.array([0.2, -0.4], dtype)
    m, v = np.zeros(2, dtype), np.zeros(2, dtype)
    # t = 1: m = 0.1·g = [0.02, −0.04]; v = 0.001·g² = [4e-5, 1.6e-4]
    # m̂ = m / 0.1 = g; v̂ = v / 0.001 = g²; step = −lr·g/(|g| + ε) ≈ −0.01·sign(g)
    moved = k.adam_update(theta, grad, m, v, 1, 0.01, 0.9, 0.999, 1e-8, 0.0)
    np.testing.assert_allclose(m, [0.02, -0.04], rtol=1e-6)
    np.testing.assert_allclose(v, [4e-5, 1.6e-4], rtol=1e-5)
    np.testing.assert_allclose(theta, [1 - 0.01 * 0.2 / (0.2 + 1e-8), -1 + 0.01 * 0.4 / (0.4 + 1e-8)], rtol=1e-6)
    assert moved == pytest.approx(0.01, rel=1e-5)
    # t = 2 with the same gradient: m = 0.9·m + 0.1·g = 0.19·g, m̂ = 0.19g/0.19 = g; likewise v̂ = g²
    k.adam_update(theta, grad, m, v, 2, 0.01, 0.9, 0.999, 1e-8, 0.0)
    np.testing.assert_allclose(theta, [1 - 0.02, -1 + 0.02], rtol=1e-5)


def test_losses_worked_by_hand(backend):
    k = kernels.load(backend)
    yhat = np.array([[1.0], [3.0]])
    y = np.array([[0.0], [1.0]])
    d = np.empty_like(y)
    # SSR = (1 − 0)² + (3 − 1)² = 5; dŷ = 2(ŷ − y) = [2, 4]
    assert k.ssr(yhat, y, None, d) == pytest.approx(5.0)
    np.testing.assert_allclose(d[:, 0], [2.0, 4.0])
    # MSE = 5 / 2; dŷ = 2(ŷ − y)/2 = [1, 2]
    assert k.mse(yhat, y, None, d) == pytest.approx(2.5)
    np.testing.assert_allclose(d[:, 0], [1.0, 2.0])
    # weights [3, 1]: weighted mean (3·1 + 1·4)/4 = 1.75
    assert k.mse(yhat, y, np.array([3.0, 1.0]), d) == pytest.approx(1.75)
    # cross-entropy of logits [0, 0] against class 0: log 2; dZ = P − Y = [−0.5, 0.5]
    z = np.zeros((1, 2))
    dz = np.empty_like(z)
    assert k.softmax_cross_entropy(z, np.array([[1.0, 0.0]]), None, dz) == pytest.approx(np.log(2))
    np.testing.assert_allclose(dz, [[-0.5, 0.5]])
    # binary cross-entropy at logit 0: log 2; dZ = σ(0) − y = 0.5 − 1
    assert k.sigmoid_binary_cross_entropy(np.zeros((1, 1)), np.ones((1, 1)), None, dz[:, :1]) == \
        pytest.approx(np.log(2))
    assert dz[0, 0] == pytest.approx(-0.5)
