"""The NumPy reference backend: every contract kernel written for clarity. It is the ground truth.

Functions here trust their arguments; callers go through :mod:`kernels` which checks them first.
The fused kernels loop over batches in Python and call the single kernels, so the chain rule of the
whole network is readable in :func:`_forward` and :func:`_backward`.
"""
from __future__ import annotations

import numpy as np

from .contract import (ADAM, BCE, CE, HYPER, IDENTITY, MSE, RELU, SIGMOID, SOFTMAX, SOFTPLUS, SSR, TANH,
                       M_EXP, M_EXPM1, M_LOG, M_LOG1P, M_SIGMOID, M_SOFTPLUS, M_TANH, layout)

_LR, _MOM, _NEST, _WD, _B1, _B2, _EPS = range(len(HYPER))


# --------------------------------------------------------------------------- dense layer
def dense_forward(X, W, b, Z):
    np.matmul(X, W, out=Z)
    Z += b


def dense_backward(X, W, dZ, dW, db, dX):
    np.matmul(X.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dX is not None:
        np.matmul(dZ, W.T, out=dX)


# --------------------------------------------------------------------------- activations
def _sigmoid(Z, out):
    # split by sign so that exp never overflows: σ(z) = 1/(1+e^−z) = e^z/(1+e^z)
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1.0, e), 1.0 + e, out=out)
    return out


def math_function(fn, X, Y):
    if fn == M_EXP:
        np.exp(X, out=Y)
    elif fn == M_EXPM1:
        np.expm1(X, out=Y)
    elif fn == M_LOG:
        np.log(X, out=Y)
    elif fn == M_LOG1P:
        np.log1p(X, out=Y)
    elif fn == M_TANH:
        np.tanh(X, out=Y)
    elif fn == M_SIGMOID:
        activation_forward(SIGMOID, X, Y)
    elif fn == M_SOFTPLUS:
        activation_forward(SOFTPLUS, X, Y)


def activation_forward(act, Z, A):
    if act == IDENTITY:
        A[...] = Z
    elif act == RELU:
        np.maximum(Z, 0, out=A)
    elif act == SOFTPLUS:
        # log(1 + e^z) = max(z, 0) + log1p(e^−|z|), finite for every z
        np.add(np.maximum(Z, 0), np.log1p(np.exp(-np.abs(Z))), out=A)
    elif act == SIGMOID:
        _sigmoid(Z, A)
    elif act == TANH:
        np.tanh(Z, out=A)
    else:
        raise ValueError(f"act: {act} is not elementwise")


def activation_backward(act, A, dA, dZ):
    if act == IDENTITY:
        dZ[...] = dA
    elif act == RELU:
        np.multiply(dA, A > 0, out=dZ)
    elif act == SOFTPLUS:
        # softplus'(z) = σ(z) = 1 − e^(−A)
        np.multiply(dA, -np.expm1(-A), out=dZ)
    elif act == SIGMOID:
        np.multiply(dA, A * (1 - A), out=dZ)
    elif act == TANH:
        np.multiply(dA, 1 - A * A, out=dZ)
    else:
        raise ValueError(f"act: {act} is not elementwise")


def softmax(Z, P):
    np.subtract(Z, Z.max(axis=1, keepdims=True), out=P)
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)


def softmax_backward(P, dP, dZ):
    # Jacobian-vector product: ∂p_i/∂z_j = p_i(δ_ij − p_j)
    np.multiply(P, dP - np.sum(dP * P, axis=1, keepdims=True), out=dZ)


# --------------------------------------------------------------------------- losses
def _weights(sw, n, dtype):
    """Per-row weights scaled so that Σ = 1 (the mean), and the raw weights."""
    w = np.ones(n, dtype) if sw is None else sw
    return w / w.sum(), w


def softmax_cross_entropy(Z, Y, sw, dZ):
    wn, _ = _weights(sw, Z.shape[0], Z.dtype)
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(wn * np.sum(Y * log_p, axis=1))
    # softmax + cross-entropy: the Jacobian collapses to P − Y (Σ_j Y_ij = 1)
    np.multiply(np.exp(log_p) - Y, wn[:, None], out=dZ)
    return float(loss)


def sigmoid_binary_cross_entropy(Z, Y, sw, dZ):
    wn, _ = _weights(sw, Z.shape[0], Z.dtype)
    k = Z.shape[1]
    # −[y log σ(z) + (1−y) log(1−σ(z))] = softplus(z) − y z, evaluated stably
    per = np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z))) - Y * Z
    loss = np.sum(wn * per.sum(axis=1)) / k
    np.multiply(_sigmoid(Z, np.empty_like(Z)) - Y, wn[:, None] / k, out=dZ)
    return float(loss)


def ssr(Yhat, Y, sw, dYhat):
    _, w = _weights(sw, Y.shape[0], Y.dtype)
    r = Yhat - Y
    np.multiply(r, 2 * w[:, None], out=dYhat)
    return float(np.sum(w * np.sum(r * r, axis=1)))


def mse(Yhat, Y, sw, dYhat):
    wn, _ = _weights(sw, Y.shape[0], Y.dtype)
    k = Y.shape[1]
    r = Yhat - Y
    np.multiply(r, 2 * wn[:, None] / k, out=dYhat)
    return float(np.sum(wn * np.sum(r * r, axis=1)) / k)


def output_loss(act, loss, Z, Y, sw, A, dZ):
    if act == SOFTMAX:
        softmax(Z, A)
    else:
        activation_forward(act, Z, A)
    if loss == CE:
        return softmax_cross_entropy(Z, Y, sw, dZ)
    if loss == BCE:
        return sigmoid_binary_cross_entropy(Z, Y, sw, dZ)
    value = (ssr if loss == SSR else mse)(A, Y, sw, dZ)  # dZ holds ∂L/∂A here
    if act == SOFTMAX:
        softmax_backward(A, dZ.copy(), dZ)
    else:
        activation_backward(act, A, dZ, dZ)
    return value


# --------------------------------------------------------------------------- optimizers
def sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay):
    g = grads + weight_decay * params if weight_decay else grads.copy()
    if momentum:
        velocity *= momentum
        velocity += g
        step = -lr * (g + momentum * velocity if nesterov else velocity)
    else:
        step = -lr * g
    params += step
    return float(np.max(np.abs(step)))


def adam_update(params, grads, m, v, t, lr, beta1, beta2, eps, weight_decay):
    g = grads + weight_decay * params if weight_decay else grads
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    step = -lr * m_hat / (np.sqrt(v_hat) + eps)
    params += step.astype(params.dtype, copy=False)
    return float(np.max(np.abs(step)))


# --------------------------------------------------------------------------- fused kernels
def _views(params, sizes):
    return [(params[w:b].reshape(int(n_in), int(n_out)), params[b:e])
            for (w, b, e), n_in, n_out in zip(layout(sizes), sizes[:-1], sizes[1:])]


def _forward(layers, acts, X):
    """Activations of every layer for rows X; the output layer's pre-activation last."""
    outs = [X]
    for (W, b), act in zip(layers[:-1], acts[:-1]):
        Z = np.empty((X.shape[0], W.shape[1]), X.dtype)
        dense_forward(outs[-1], W, b, Z)
        activation_forward(act, Z, Z)
        outs.append(Z)
    W, b = layers[-1]
    Z = np.empty((X.shape[0], W.shape[1]), X.dtype)
    dense_forward(outs[-1], W, b, Z)
    return outs, Z


def _backward(layers, glayers, acts, outs, dZ):
    """Chain rule from the output delta dZ back to the first layer's weights."""
    for l in range(len(layers) - 1, -1, -1):
        W, _ = layers[l]
        dW, db = glayers[l]
        dX = np.empty_like(outs[l]) if l > 0 else None
        dense_backward(outs[l], W, dZ, dW, db, dX)
        if l > 0:
            activation_backward(acts[l - 1], outs[l], dX, dX)
            dZ = dX


def _quiet(fn):
    """Divergence is reported through the returned loss, not through NumPy's overflow warnings."""
    def wrapped(*args):
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _gradient(params, grads, sizes, acts, loss, X, Y, sw, alive):
    """Forward, output loss and backward on rows X into grads; returns the loss (NaN if grads overflow)."""
    layers, glayers = _views(params, sizes), _views(grads, sizes)
    outs, Z = _forward(layers, acts, X)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    value = output_loss(int(acts[-1]), loss, Z, Y, sw, A, dZ)
    if not np.isfinite(value):
        return value
    if alive.size:
        off = 0
        for H in outs[1:]:
            alive[off:off + H.shape[1]] |= np.any(H != 0, axis=0)
            off += H.shape[1]
    _backward(layers, glayers, acts, outs, dZ)
    if not np.all(np.isfinite(grads)):
        return np.nan  # an overflowing gradient is divergence too: the step is not applied
    return value


@_quiet
def batch_gradient(params, grads, sizes, acts, loss, X, Y, sw, rows, workspace):
    return _gradient(params, grads, sizes, acts, loss, X[rows], Y[rows], None if sw is None else sw[rows],
                     np.zeros(0, np.int64))


def _step(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step, alive, grad_sq):
    """One forward/loss/backward/update on rows X; returns (loss, max|Δ|) — no update if loss is not finite."""
    value = _gradient(params, grads, sizes, acts, loss, X, Y, sw, alive)
    if not np.isfinite(value):
        return value, np.inf
    glayers = _views(grads, sizes)
    if grad_sq.size:
        for l, (dW, _) in enumerate(glayers):
            grad_sq[l] += float(np.sum(dW.astype(np.float64) ** 2))
    P = params.shape[0]
    if opt == ADAM:
        step[0] += 1
        moved = adam_update(params, grads, state[:P], state[P:], int(step[0]), hyper[_LR], hyper[_B1],
                            hyper[_B2], hyper[_EPS], hyper[_WD])
    else:
        moved = sgd_update(params, grads, state[:P], hyper[_LR], hyper[_MOM], int(hyper[_NEST]), hyper[_WD])
    return value, moved


@_quiet
def train_epoch(params, grads, sizes, acts, loss, X, Y, sw, perm, batch_size, opt, hyper, state, step,
                workspace, alive, grad_sq):
    total, rows = 0.0, 0
    for start in range(0, perm.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        value, _ = _step(params, grads, sizes, acts, loss, X[idx], Y[idx], None if sw is None else sw[idx],
                         opt, hyper, state, step, alive, grad_sq)
        if not np.isfinite(value):
            return value
        total += value if loss == SSR else value * idx.shape[0]
        rows += idx.shape[0]
    return total if loss == SSR or rows == 0 else total / rows


@_quiet
def train_gd(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step, tol, max_steps,
             workspace, losses, last_step):
    no_alive, no_grad = np.zeros(0, np.int64), np.zeros(0)
    for s in range(max_steps):
        value, moved = _step(params, grads, sizes, acts, loss, X, Y, sw, opt, hyper, state, step,
                             no_alive, no_grad)
        losses[s] = value
        last_step[0] = moved
        if not np.isfinite(value) or moved < tol:
            return s + 1
    return max_steps


@_quiet
def predict(params, sizes, acts, X, out, block, workspace):
    layers = _views(params, sizes)
    for start in range(0, X.shape[0], block):
        _, Z = _forward(layers, acts, X[start:start + block])
        if acts[-1] == SOFTMAX:
            softmax(Z, out[start:start + block])
        else:
            activation_forward(int(acts[-1]), Z, out[start:start + block])
