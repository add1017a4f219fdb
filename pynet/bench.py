"""Timing of training runs and kernels, pynet's backends side by side with peer frameworks.

Method: every runner gets the same data, initial weights, batch order and learning rate; warm-up
runs (and the first call, which includes JIT compilation) are excluded from the timing and the
compile time is reported in its own column; the timed repeats alternate between runners (A B C A B
C …) so that machine noise hits them alike, and each timed run starts after a short pause (``settle``)
so that it does not inherit the previous runner's worker threads still spinning (OpenBLAS and
OpenMP pools busy-wait for up to ~0.1 s after their work, taking a core from whoever runs next);
medians, min and max are reported. With ``lead_in`` each timed run is preceded, in the same turn, by
one untimed run of the same runner: the timed epoch then runs as the second and later epochs of a fit
do, not as the first after an idle pause (after a pause the ~15 ms small-network epochs measured
15–70 % slower here while torch's 0.4 s epochs barely moved). Throughput is given
as samples/s, GFLOP/s and a percentage of the machine's GEMM ceiling (numpy's matmul at 2048³
float32, measured in the same run).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

import kernels
from kernels import contract as C

CEILING_SIZE = 2048


@dataclass
class Workload:
    """A timed job: one epoch of mini-batch training ("train"), ``steps`` full-batch steps ("gd"), or a
    kernel. ``optimizer`` is "sgd" (plain, no momentum) or "adam" (β 0.9, 0.999, ε 1e-8); ``target``
    "random" draws the targets, "matrix_exp" makes them vec(exp(A)) of the 2×2 matrix A = each row."""

    name: str
    kind: str
    layers: list = field(default_factory=list)
    activation: str = "relu"
    loss: str = "mse"
    batch_size: int = 32
    samples: int = 1000
    lr: float = 0.01
    steps: int = 1
    kernel: str = ""
    shape: tuple = ()
    optimizer: str = "sgd"
    target: str = "random"

    def epochs(self) -> int:
        """Epochs in one timed run: a full-batch step is an epoch."""
        return self.steps if self.kind == "gd" else 1

    def flops(self) -> float:
        """Floating-point operations of one timed run (multiply-add = 2)."""
        if self.kind == "kernel":
            n, i, o = (self.shape + (1, 1, 1))[:3]
            return {"dense_forward": 2.0 * n * i * o, "dense_backward": 4.0 * n * i * o}.get(self.kernel, 0.0)
        macs = sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:]))
        first = self.layers[0] * self.layers[1]
        # forward X·W, backward Xᵀ·dZ, and dZ·Wᵀ for every layer but the first
        per_sample = 2.0 * (3 * macs - first)
        return per_sample * self.samples * (self.steps if self.kind == "gd" else 1)

    def rows(self) -> int:
        """Samples processed by one timed run."""
        if self.kind == "kernel":
            return self.shape[0]
        return self.samples * (self.steps if self.kind == "gd" else 1)


PRESETS = {
    "small": Workload("small", "train", [20, 64, 64, 1], "relu", "mse", 32, 20_000, 0.01),
    "mnist": Workload("mnist", "train", [784, 128, 10], "relu", "cross_entropy", 128, 60_000, 0.05),
    "wide": Workload("wide", "train", [1024, 1024, 1024, 10], "relu", "cross_entropy", 512, 8_192, 0.01),
    "digits-gd": Workload("digits-gd", "gd", [64, 32, 10], "relu", "cross_entropy", 0, 1797, 0.1, steps=100),
    "digits-sigmoid-gd": Workload("digits-sigmoid-gd", "gd", [64, 32, 10], "sigmoid", "cross_entropy", 0, 1797, 0.1,
                                  steps=100),
    # SimpleChains.jl's published comparison: 4-32-16-4 tanh, 10,000 rows whose targets are the exponential
    # of each row as a 2x2 matrix, squared loss, full-batch Adam (there 10,000 epochs; here 100 per timed run)
    "simplechains": Workload("simplechains", "gd", [4, 32, 16, 4], "tanh", "mse", 0, 10_000, 1e-3, steps=100,
                             optimizer="adam", target="matrix_exp"),
    "dense-forward": Workload("dense-forward", "kernel", kernel="dense_forward", shape=(128, 784, 128)),
    "dense-backward": Workload("dense-backward", "kernel", kernel="dense_backward", shape=(128, 784, 128)),
    "activation": Workload("activation", "kernel", kernel="activation", shape=(512, 1024)),
    "softmax-ce": Workload("softmax-ce", "kernel", kernel="softmax_cross_entropy", shape=(512, 1000)),
    "optimizer": Workload("optimizer", "kernel", kernel="adam_update", shape=(1_000_000,)),
    "gemm": Workload("gemm", "kernel", kernel="dense_forward", shape=(2048, 2048, 2048)),
}
PEERS = ("torch", "sklearn", "jax")

#: The "sweep" group: every hidden activation × width × batch size on a [20, w, w, 1] mse network of
#: SWEEP_SAMPLES rows, one epoch per timed run (a full batch: SWEEP_FULL_STEPS steps). Widths and batch
#: sizes are off the SIMD multiples on purpose (7 < 8 lanes, 13, 31; 33 and 127 rows) beside 64 and 256,
#: so that remainder loops and the activation passes show. Defaults: a grid that runs in a few minutes.
SWEEP_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus")
SWEEP_WIDTHS = (7, 13, 31, 64, 256)
SWEEP_BATCHES = (33, 127, "full")
SWEEP_DEFAULT = {"activations": SWEEP_ACTIVATIONS, "widths": (7, 31, 256), "batches": SWEEP_BATCHES}
SWEEP_SAMPLES = 4_000
SWEEP_FULL_STEPS = 50   # a timed full-batch run of 5 steps (1–10 ms) was as noisy as the host
#: Named groups of generated workloads, usable wherever a preset name is.
GROUPS = ("sweep",)


def sweep_workloads(activations=None, widths=None, batches=None, samples=SWEEP_SAMPLES) -> list:
    """The sweep's cells (None: the default grid), named sweep-<activation>-w<width>-b<batch|full>."""
    activations = SWEEP_DEFAULT["activations"] if activations is None else activations
    widths = SWEEP_DEFAULT["widths"] if widths is None else widths
    batches = SWEEP_DEFAULT["batches"] if batches is None else batches
    for a in activations:
        C.code(C.ELEMENTWISE, a, "activation")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(f"widths: each must be an integer >= 1, got {w!r}")
    for b in batches:
        if b != "full" and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= samples):
            raise ValueError(f"batches: each must be 'full' or an integer in 1..{samples}, got {b!r}")
    cells = []
    for a in activations:
        for w in widths:
            for b in batches:
                name = f"sweep-{a}-w{w}-b{b}"
                if b == "full":
                    cells.append(Workload(name, "gd", [20, int(w), int(w), 1], a, "mse", 0, samples, 0.01,
                                          steps=SWEEP_FULL_STEPS))
                else:
                    cells.append(Workload(name, "train", [20, int(w), int(w), 1], a, "mse", int(b), samples, 0.01))
    return cells


class Unavailable(Exception):
    """A runner that cannot run this workload here (not installed, or not supported)."""


# ---------------------------------------------------------------------------- shared inputs
@dataclass
class Problem:
    """Data, initial parameters and batch order shared by every runner of one workload."""

    w: Workload
    dtype: np.dtype
    X: np.ndarray = None
    Y: np.ndarray = None
    labels: np.ndarray = None
    params: np.ndarray = None
    perm: np.ndarray = None
    sizes: np.ndarray = None
    acts: np.ndarray = None


def make_problem(w: Workload, dtype, seed=0) -> Problem:
    rng = np.random.default_rng(seed)
    p = Problem(w, np.dtype(dtype))
    if w.kind == "kernel":
        return p
    n, k = w.samples, w.layers[-1]
    p.X = rng.standard_normal((n, w.layers[0])).astype(dtype)
    if w.loss == "cross_entropy":
        p.labels = rng.integers(0, k, n)
        p.Y = np.eye(k, dtype=dtype)[p.labels]
    elif w.target == "matrix_exp":
        p.Y = matrix_exp_2x2(p.X.astype(np.float64)).astype(dtype)
    else:
        p.Y = rng.standard_normal((n, k)).astype(dtype)
    p.sizes = np.array(w.layers, np.int64)
    out = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(w.loss, "identity")
    p.acts = np.array([C.ACTIVATIONS.index(w.activation)] * (len(w.layers) - 2) + [C.ACTIVATIONS.index(out)],
                      np.int64)
    from .model import MLP  # the model's own initialisation, so peers start from the same weights

    p.params = MLP(w.layers, activation=w.activation, output=out, backend="numpy", dtype=dtype,
                   seed=seed).params.copy()
    p.perm = rng.permutation(n).astype(np.int64)
    return p


def matrix_exp_2x2(X):
    """Row i: vec(exp(A_i)) for A_i = reshape(X[i], 2, 2), both column-major (Julia's layout).

    Closed form: with s = tr(A)/2 and q² = ((a − d)/2)² + bc, (A − sI)² = q²I, so
    exp(A) = e^s (cosh q · I + sinh q / q · (A − sI)); q may be imaginary (complex arithmetic) or 0.
    """
    a, c, b, d = X[:, 0], X[:, 1], X[:, 2], X[:, 3]  # A = [[a, b], [c, d]]
    s = (a + d) / 2
    q = np.sqrt(((a - d) / 2) ** 2 + b * c + 0j)
    zero = q == 0
    shq = np.where(zero, 1.0, np.sinh(q) / np.where(zero, 1.0, q)).real
    chq, e = np.cosh(q).real, np.exp(s)
    return np.stack([e * (chq + shq * (a - s)), e * shq * c, e * shq * b, e * (chq + shq * (d - s))], axis=1)


def layer_views(p: Problem):
    """(W, b) per layer as numpy views of the initial parameters."""
    return [(p.params[w:b].reshape(i, o), p.params[b:e])
            for (w, b, e), i, o in zip(C.layout(p.w.layers), p.w.layers[:-1], p.w.layers[1:])]


# ---------------------------------------------------------------------------- runners
class BackendRunner:
    """A pynet backend, timed through its fused kernels (one call per epoch) or a single kernel."""

    def __init__(self, name, p: Problem):
        self.name, self.kind, self.p = name, "pynet", p
        try:
            self.k = kernels.load(name)
        except kernels.BackendUnavailable as exc:
            raise Unavailable(str(exc)) from None
        w, dt = p.w, p.dtype
        if w.kind == "kernel":
            self._setup_kernel(w, dt)
            return
        P = p.params.shape[0]
        self.params = p.params.copy()
        self.grads = np.zeros(P, dt)
        self.state = np.zeros(2 * P, dt)
        self.step = np.zeros(1, np.int64)
        rows = w.batch_size if w.kind == "train" else w.samples
        self.ws = np.zeros(C.train_workspace_size(p.sizes, rows), dt)
        self.hyper = np.array([w.lr, 0.0, 0.0, 0.0, 0.9, 0.999, 1e-8])
        self.opt = C.code(C.OPTIMIZERS, w.optimizer, "optimizer")
        self.loss = C.LOSSES.index(w.loss)
        self.none_i, self.none_f = np.zeros(0, np.int64), np.zeros(0)
        self.losses, self.last = np.zeros(w.steps), np.zeros(1)

    def _setup_kernel(self, w, dt):
        rng = np.random.default_rng(1)
        f = lambda *s: rng.standard_normal(s).astype(dt)  # noqa: E731
        k = self.k
        if w.kernel == "dense_forward":
            n, i, o = w.shape
            a = (f(n, i), f(i, o), f(o), np.zeros((n, o), dt))
            self.call = lambda: k.raw.dense_forward(*a)
        elif w.kernel == "dense_backward":
            n, i, o = w.shape
            a = (f(n, i), f(i, o), f(n, o), np.zeros((i, o), dt), np.zeros(o, dt), np.zeros((n, i), dt))
            self.call = lambda: k.raw.dense_backward(*a)
        elif w.kernel == "activation":
            Z, A, G = f(*w.shape), np.zeros(w.shape, dt), f(*w.shape)

            def call():
                k.raw.activation_forward(C.RELU, Z, A)
                k.raw.activation_backward(C.RELU, A, G, Z)
            self.call = call
        elif w.kernel == "softmax_cross_entropy":
            n, c = w.shape
            Z, Y, D = f(n, c), np.eye(c, dtype=dt)[rng.integers(0, c, n)], np.zeros((n, c), dt)
            self.call = lambda: k.raw.softmax_cross_entropy(Z, Y, None, D)
        elif w.kernel == "adam_update":
            (P,) = w.shape
            a = (f(P), f(P), np.zeros(P, dt), np.zeros(P, dt))
            self.call = lambda: k.raw.adam_update(*a, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
        else:
            raise Unavailable(f"unknown kernel {w.kernel}")

    def reset(self):
        if self.p.w.kind != "kernel":
            self.params[...] = self.p.params
            self.state[...] = 0
            self.step[0] = 0

    def run(self):
        p, w = self.p, self.p.w
        if w.kind == "kernel":
            self.call()
        elif w.kind == "train":
            self.k.train_epoch(self.params, self.grads, p.sizes, p.acts, self.loss, p.X, p.Y, None, p.perm,
                               w.batch_size, self.opt, self.hyper, self.state, self.step, self.ws, self.none_i,
                               self.none_f)
        else:
            self.k.train_gd(self.params, self.grads, p.sizes, p.acts, self.loss, p.X, p.Y, None, self.opt,
                            self.hyper, self.state, self.step, 0.0, w.steps, self.ws, self.losses, self.last)

    def set_threads(self, n):
        self.k.set_num_threads(n)


class FitRunner:
    """``MLP.fit`` on a backend (runner "<backend>-fit"): the public path with everything it does per fit —
    validation, label encoding, shuffling, diagnostics (on, the default) — for one epoch of a "train"
    workload, or its ``steps`` full-batch epochs ("gd": optimizer "gd" with no tolerance for sgd,
    ``batch_size=None`` for adam). ``reset`` re-initialises the model, so each timed fit is a first fit."""

    kind = "pynet"

    def __init__(self, backend, p: Problem):
        from .model import MLP

        w = p.w
        if w.kind == "kernel":
            raise Unavailable("MLP.fit is timed on training workloads only")
        try:
            kernels.load(backend)
        except kernels.BackendUnavailable as exc:
            raise Unavailable(str(exc)) from None
        self.name, self.backend, self.p = f"{backend}-fit", backend, p
        out = C.ACTIVATIONS[int(p.acts[-1])]
        self.net = MLP(w.layers, activation=w.activation, output=out, backend=backend, dtype=p.dtype, seed=0)
        # what a user passes: class labels for cross-entropy, a vector for one regression output
        self.y = p.labels if w.loss == "cross_entropy" else (p.Y[:, 0] if p.Y.shape[1] == 1 else p.Y)
        if w.kind == "train":
            self.kw = dict(optimizer=w.optimizer, batch_size=w.batch_size, epochs=1)
        elif w.optimizer == "sgd":
            self.kw = dict(optimizer="gd", tol=0.0, max_steps=w.steps)
        else:
            self.kw = dict(optimizer=w.optimizer, batch_size=None, epochs=w.steps)
        self.reset()

    def reset(self):
        self.net.reset()
        self.net.params[...] = self.p.params  # the same start as every runner (reset draws the same)

    def run(self):
        self.net.fit(self.p.X, self.y, loss=self.p.w.loss, lr=self.p.w.lr, **self.kw)

    def set_threads(self, n):
        kernels.load(self.backend).set_num_threads(n)


class TorchRunner:
    """PyTorch eager: the same weights, batch order and optimizer (plain SGD or Adam), one Python step per batch."""

    name, kind = "torch", "peer"

    def __init__(self, p: Problem):
        try:
            import torch
        except ImportError:
            raise Unavailable("torch is not installed (pip install torch==2.13.0 for the CPU build)") from None
        if p.w.kind == "kernel":
            raise Unavailable("torch is compared on whole training runs only")
        self.torch, self.p = torch, p
        dt = torch.float32 if p.dtype == np.float32 else torch.float64
        layers = []
        for l, (W, b) in enumerate(layer_views(p)):
            lin = torch.nn.Linear(*W.shape).to(dt)
            layers.append(lin)
            if l < len(p.w.layers) - 2:
                layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
                               "softplus": torch.nn.Softplus, "identity": torch.nn.Identity}[p.w.activation]())
        self.model = torch.nn.Sequential(*layers)
        self.X = torch.from_numpy(p.X)
        self.Y = torch.from_numpy(p.labels) if p.w.loss == "cross_entropy" else torch.from_numpy(p.Y)
        self.lossf = {"mse": torch.nn.MSELoss(), "ssr": torch.nn.MSELoss(reduction="sum"),
                      "cross_entropy": torch.nn.CrossEntropyLoss(),
                      "binary_cross_entropy": torch.nn.BCEWithLogitsLoss()}[p.w.loss]
        self.perm = torch.from_numpy(p.perm)
        self.reset()

    def reset(self):
        with self.torch.no_grad():
            lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
            for lin, (W, b) in zip(lins, layer_views(self.p)):
                lin.weight.copy_(self.torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(self.torch.from_numpy(b))
        w, params = self.p.w, self.model.parameters()
        # a new optimizer: Adam's moments and step count start from zero, as pynet's state does
        self.opt = (self.torch.optim.Adam(params, lr=w.lr, betas=(0.9, 0.999), eps=1e-8) if w.optimizer == "adam"
                    else self.torch.optim.SGD(params, lr=w.lr))

    def run(self):
        torch, w = self.torch, self.p.w
        if w.kind == "gd":
            batches = [None] * w.steps
        else:
            batches = [self.perm[i:i + w.batch_size] for i in range(0, w.samples, w.batch_size)]
        for idx in batches:
            xb, yb = (self.X, self.Y) if idx is None else (self.X.index_select(0, idx), self.Y.index_select(0, idx))
            self.opt.zero_grad(set_to_none=True)
            loss = self.lossf(self.model(xb), yb)
            loss.backward()
            self.opt.step()

    def set_threads(self, n):
        self.torch.set_num_threads(n)


class SklearnRunner:
    """scikit-learn's MLP, one ``partial_fit`` pass over the rows in the shared batch order."""

    name, kind = "sklearn", "peer"

    def __init__(self, p: Problem):
        try:
            from sklearn.neural_network import MLPClassifier, MLPRegressor
        except ImportError:
            raise Unavailable("scikit-learn is not installed (pip install scikit-learn)") from None
        w = p.w
        if w.kind != "train" or w.loss not in ("mse", "cross_entropy") or w.optimizer != "sgd":
            raise Unavailable("scikit-learn is compared on mini-batch plain-SGD mse / cross-entropy training only")
        act = {"sigmoid": "logistic"}.get(w.activation, w.activation)
        if act not in ("relu", "logistic", "tanh", "identity"):
            raise Unavailable(f"scikit-learn has no {w.activation} activation")
        cls = MLPClassifier if w.loss == "cross_entropy" else MLPRegressor
        # sklearn's squared loss is mean/2: twice the learning rate gives the same step as pynet's mse
        lr = w.lr * (2.0 if w.loss == "mse" else 1.0)
        self.est = cls(hidden_layer_sizes=w.layers[1:-1], activation=act, solver="sgd", alpha=0.0,
                       batch_size=w.batch_size, learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False,
                       shuffle=False, max_iter=1)
        self.p = p
        self.X, self.y = p.X[p.perm], (p.labels if p.labels is not None else p.Y[:, 0])[p.perm]
        self.reset()

    def reset(self):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra = {"classes": np.arange(self.p.w.layers[-1])} if self.p.labels is not None else {}
            self.est.partial_fit(self.X[:2], self.y[:2], **extra)  # allocates sklearn's arrays; weights set next
        for l, (W, b) in enumerate(layer_views(self.p)):
            self.est.coefs_[l][...] = W
            self.est.intercepts_[l][...] = b

    def run(self):
        self.est.partial_fit(self.X, self.y)

    def set_threads(self, n):
        pass


class JaxRunner:
    """JAX: a whole timed run as one ``jit``-compiled ``lax.scan`` — over equal batches (the last partial
    batch apart) for an epoch, over ``steps`` full-batch steps for "gd" — with plain SGD or Adam."""

    name, kind = "jax", "peer"

    def __init__(self, p: Problem):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            raise Unavailable("jax is not installed (pip install jax jaxlib)") from None
        w = p.w
        if w.kind not in ("train", "gd") or w.loss not in ("mse", "cross_entropy"):
            raise Unavailable("jax is compared on mse / cross-entropy training only (mini-batch or full-batch)")
        if p.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "softplus": jax.nn.softplus,
               "identity": lambda z: z}[w.activation]
        tree_map = jax.tree_util.tree_map
        lr, b1, b2, eps = w.lr, 0.9, 0.999, 1e-8

        def loss_fn(params, xb, yb):
            h = xb
            for W, b in params[:-1]:
                h = act(h @ W + b)
            z = h @ params[-1][0] + params[-1][1]
            if w.loss == "mse":
                return jnp.mean((z - yb) ** 2)
            return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z), axis=1))

        grad = jax.grad(loss_fn)

        def update(carry, batch):
            params, m, v, t = carry
            g = grad(params, *batch)
            if w.optimizer == "sgd":
                return (tree_map(lambda a, b: a - lr * b, params, g), m, v, t), None
            t = t + 1  # Adam as the contract states it: bias-corrected moments, step counted from 1
            m = tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
            v = tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            params = tree_map(lambda a, mm, vv: a - lr * (mm / c1) / (jnp.sqrt(vv / c2) + eps), params, m, v)
            return (params, m, v, t), None

        if w.kind == "gd":
            @jax.jit
            def timed(carry, X, Y):
                return jax.lax.scan(lambda c, _: update(c, (X, Y)), carry, None, length=w.steps)[0]

            self.args = (jnp.asarray(p.X), jnp.asarray(p.Y))
        else:
            @jax.jit
            def timed(carry, xs, ys, x_last, y_last):
                carry, _ = jax.lax.scan(update, carry, (xs, ys))
                return update(carry, (x_last, y_last))[0] if x_last.shape[0] else carry

            full = (w.samples // w.batch_size) * w.batch_size
            Xp, Yp = p.X[p.perm], p.Y[p.perm]
            self.args = (jnp.asarray(Xp[:full].reshape(-1, w.batch_size, Xp.shape[1])),
                         jnp.asarray(Yp[:full].reshape(-1, w.batch_size, Yp.shape[1])),
                         jnp.asarray(Xp[full:]), jnp.asarray(Yp[full:]))
        self.timed, self.jnp, self.p = timed, jnp, p
        self.reset()

    def reset(self):
        jnp = self.jnp
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in layer_views(self.p)]
        zeros = [(jnp.zeros_like(W), jnp.zeros_like(b)) for W, b in params]
        self.carry = (params, zeros, zeros, jnp.asarray(0.0, params[0][0].dtype))

    def run(self):
        self.last = self.timed(self.carry, *self.args)  # (params, m, v, t) after the run
        self.last[0][-1][1].block_until_ready()

    def set_threads(self, n):
        pass


#: Runner names: each backend's kernel runner, its "<backend>-fit" runner, and the peers.
FIT_RUNNERS = tuple(f"{b}-fit" for b in kernels.BACKENDS)


def runner_kind(name) -> str:
    return "peer" if name in PEERS else "pynet"


def make_runner(name, p: Problem):
    if name in kernels.BACKENDS:
        return BackendRunner(name, p)
    if name in FIT_RUNNERS:
        return FitRunner(name[:-len("-fit")], p)
    return {"torch": TorchRunner, "sklearn": SklearnRunner, "jax": JaxRunner}[name](p)


# ---------------------------------------------------------------------------- measurement
def gemm_ceiling(size=CEILING_SIZE, repeat=3) -> float:
    """numpy matmul GFLOP/s at size³ float32 on this machine now (median of ``repeat``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2.0 * size ** 3 / np.median(times) / 1e9


def machine_info() -> dict:
    from . import __version__
    from .cli import _cpu

    model, simd = _cpu()
    versions = {"pynet": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for mod in ("numba", "torch", "sklearn", "jax"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    return {"cpu": model, "simd": simd, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "versions": versions,
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NUMBA_NUM_THREADS",
                                               "OMP_NUM_THREADS") if k in os.environ}}


SETTLE_S = 0.25  #: pause before each timed run (s): longer than the thread pools' spin-wait


def run(workloads, runners, dtypes=("float32",), repeat=5, warmup=1, threads=None, progress=None,
        settle=SETTLE_S, lead_in=False):
    """Time every (workload, dtype, runner); returns result rows (dicts) in a stable order.

    Each timed run: ``settle`` seconds of pause, then (``lead_in``) one untimed run of the same runner
    from the same start, then the timed run."""
    results = []
    plan = [(w, dt) for w in workloads for dt in dtypes]
    for i, (w, dt) in enumerate(plan):
        p = make_problem(w, dt)
        active, rows = [], {}
        for name in runners:
            row = {"workload": w.name, "dtype": np.dtype(dt).name, "runner": name, "kind": runner_kind(name)}
            rows[name] = row
            try:
                r = make_runner(name, p)
                if threads:
                    r.set_threads(threads)
                t0 = time.perf_counter()
                r.run()  # first call: includes JIT compilation where there is any
                row["first_call_s"] = time.perf_counter() - t0
                for _ in range(max(warmup - 1, 0)):
                    r.reset()
                    r.run()
                active.append(r)
            except Unavailable as exc:
                row["unavailable"] = str(exc)
            except Exception as exc:  # a peer that breaks is reported in its row, not fatal to the run
                row["unavailable"] = f"failed: {type(exc).__name__}: {exc}"
        times = {r.name: [] for r in active}
        for _ in range(repeat):
            for r in active:  # alternate runners within every repeat
                time.sleep(settle)
                if lead_in:
                    r.reset()
                    r.run()
                r.reset()
                t0 = time.perf_counter()
                r.run()
                times[r.name].append(time.perf_counter() - t0)
        for r in active:
            t = np.array(times[r.name])
            row = rows[r.name]
            med = float(np.median(t))
            row.update(median_s=med, min_s=float(t.min()), max_s=float(t.max()), repeat=repeat,
                       settle_s=settle, lead_in=bool(lead_in),
                       compile_s=max(row["first_call_s"] - med, 0.0),
                       samples_per_s=w.rows() / med if w.rows() else None,
                       gflops=w.flops() / med / 1e9 if w.flops() else None)
            if w.kind != "kernel":
                row.update(epochs=w.epochs(), epoch_s=med / w.epochs())
        medians = {r.name: rows[r.name]["median_s"] for r in active}
        for r in active:
            rows[r.name]["speedup"] = {peer: medians[peer] / medians[r.name] for peer in medians
                                       if peer != r.name and rows[peer]["kind"] == "peer"}
            if isinstance(r, FitRunner) and r.backend in medians:  # the public path over its kernel alone
                rows[r.name]["fit_over_kernel"] = medians[r.name] / medians[r.backend]
        results.extend(rows[name] for name in runners)
        if progress is not None:
            progress.update(i + 1)
    return results


SMOKE_ROWS, SMOKE_STEPS, SMOKE_DIM = 300, 2, 64


def smoke(w: Workload) -> Workload:
    """A tiny copy of ``w`` (at most SMOKE_ROWS rows, SMOKE_STEPS full-batch steps, kernels SMOKE_DIM wide)
    that checks every runner runs end to end; its times mean nothing."""
    if w.kind == "kernel":
        return replace(w, shape=tuple(min(d, SMOKE_DIM) for d in w.shape))
    rows = min(w.samples, SMOKE_ROWS)
    return replace(w, samples=rows, steps=min(w.steps, SMOKE_STEPS),
                   batch_size=min(w.batch_size, rows) if w.kind == "train" else w.batch_size)


def custom_workload(layers, batch_size, samples, activation="relu", loss="mse", lr=0.01) -> Workload:
    return Workload("custom", "train", list(layers), activation, loss, batch_size, samples, lr)


def as_record(results, ceiling, command="", workloads=()) -> dict:
    """The JSON record of a run: machine, ceiling, command, every preset and every workload run, results."""
    for row in results:
        if row.get("gflops"):
            row["pct_of_ceiling"] = 100.0 * row["gflops"] / ceiling
    described = {name: asdict(w) for name, w in PRESETS.items()} | {w.name: asdict(w) for w in workloads}
    return {"machine": machine_info(), "gemm_ceiling_gflops": ceiling, "command": command,
            "workloads": described, "results": results}


#: --compare marks a row slower by more than this fraction (new median > old × (1 + it)) as a regression.
REGRESSION_THRESHOLD = 0.10


def compare(new: dict, old: dict):
    """Rows of (workload, dtype, runner, old median, new median, old/new) for runs present in both."""
    index = {(r["workload"], r["dtype"], r["runner"]): r for r in old.get("results", []) if "median_s" in r}
    out = []
    for r in new.get("results", []):
        key = (r["workload"], r["dtype"], r["runner"])
        if "median_s" in r and key in index:
            out.append((*key, index[key]["median_s"], r["median_s"], index[key]["median_s"] / r["median_s"]))
    return out


def is_regression(old_over_new: float, threshold: float = REGRESSION_THRESHOLD) -> bool:
    """True when the new median is more than ``threshold`` (a fraction) slower than the old one."""
    return old_over_new * (1.0 + threshold) < 1.0
