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
from dataclasses import asdict, dataclass, field

import numpy as np

import kernels
from kernels import contract as C

CEILING_SIZE = 2048


@dataclass
class Workload:
    """A timed job: one epoch of mini-batch training ("train"), full-batch GD steps ("gd"), or a kernel."""

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
    "dense-forward": Workload("dense-forward", "kernel", kernel="dense_forward", shape=(128, 784, 128)),
    "dense-backward": Workload("dense-backward", "kernel", kernel="dense_backward", shape=(128, 784, 128)),
    "activation": Workload("activation", "kernel", kernel="activation", shape=(512, 1024)),
    "softmax-ce": Workload("softmax-ce", "kernel", kernel="softmax_cross_entropy", shape=(512, 1000)),
    "optimizer": Workload("optimizer", "kernel", kernel="adam_update", shape=(1_000_000,)),
    "gemm": Workload("gemm", "kernel", kernel="dense_forward", shape=(2048, 2048, 2048)),
}
PEERS = ("torch", "sklearn", "jax")


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
                               w.batch_size, C.SGD, self.hyper, self.state, self.step, self.ws, self.none_i,
                               self.none_f)
        else:
            self.k.train_gd(self.params, self.grads, p.sizes, p.acts, self.loss, p.X, p.Y, None, C.SGD,
                            self.hyper, self.state, self.step, 0.0, w.steps, self.ws, self.losses, self.last)

    def set_threads(self, n):
        self.k.set_num_threads(n)


class TorchRunner:
    """PyTorch eager: the same weights, batch order and plain SGD, one Python step per batch."""

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
        self.opt = torch.optim.SGD(self.model.parameters(), lr=p.w.lr)
        self.perm = torch.from_numpy(p.perm)
        self.reset()

    def reset(self):
        with self.torch.no_grad():
            lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
            for lin, (W, b) in zip(lins, layer_views(self.p)):
                lin.weight.copy_(self.torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(self.torch.from_numpy(b))

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
        if w.kind != "train" or w.loss not in ("mse", "cross_entropy"):
            raise Unavailable("scikit-learn is compared on mini-batch mse / cross-entropy training only")
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
    """JAX: the whole epoch as one ``jit``-compiled ``lax.scan`` over equal batches (last partial batch apart)."""

    name, kind = "jax", "peer"

    def __init__(self, p: Problem):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            raise Unavailable("jax is not installed (pip install jax jaxlib)") from None
        w = p.w
        if w.kind != "train" or w.loss not in ("mse", "cross_entropy"):
            raise Unavailable("jax is compared on mini-batch mse / cross-entropy training only")
        if p.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "softplus": jax.nn.softplus,
               "identity": lambda z: z}[w.activation]

        def loss_fn(params, xb, yb):
            h = xb
            for W, b in params[:-1]:
                h = act(h @ W + b)
            z = h @ params[-1][0] + params[-1][1]
            if w.loss == "mse":
                return jnp.mean((z - yb) ** 2)
            return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z), axis=1))

        grad = jax.grad(loss_fn)

        def sgd(params, batch):
            g = grad(params, *batch)
            return jax.tree_util.tree_map(lambda a, b: a - w.lr * b, params, g), None

        @jax.jit
        def epoch(params, xs, ys, x_last, y_last):
            params, _ = jax.lax.scan(sgd, params, (xs, ys))
            return sgd(params, (x_last, y_last))[0] if x_last.shape[0] else params

        full = (w.samples // w.batch_size) * w.batch_size
        Xp, Yp = p.X[p.perm], p.Y[p.perm]
        self.xs = jnp.asarray(Xp[:full].reshape(-1, w.batch_size, Xp.shape[1]))
        self.ys = jnp.asarray(Yp[:full].reshape(-1, w.batch_size, Yp.shape[1]))
        self.xl, self.yl = jnp.asarray(Xp[full:]), jnp.asarray(Yp[full:])
        self.epoch, self.jnp, self.p = epoch, jnp, p
        self.reset()

    def reset(self):
        self.params = [(self.jnp.asarray(W), self.jnp.asarray(b)) for W, b in layer_views(self.p)]

    def run(self):
        out = self.epoch(self.params, self.xs, self.ys, self.xl, self.yl)
        out[-1][1].block_until_ready()

    def set_threads(self, n):
        pass


def make_runner(name, p: Problem):
    if name in kernels.BACKENDS:
        return BackendRunner(name, p)
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
            row = {"workload": w.name, "dtype": np.dtype(dt).name, "runner": name,
                   "kind": "pynet" if name in kernels.BACKENDS else "peer"}
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
        medians = {r.name: rows[r.name]["median_s"] for r in active}
        for r in active:
            rows[r.name]["speedup"] = {peer: medians[peer] / medians[r.name] for peer in medians
                                       if peer != r.name and rows[peer]["kind"] == "peer"}
        results.extend(rows[name] for name in runners)
        if progress is not None:
            progress.update(i + 1)
    return results


def custom_workload(layers, batch_size, samples, activation="relu", loss="mse", lr=0.01) -> Workload:
    return Workload("custom", "train", list(layers), activation, loss, batch_size, samples, lr)


def as_record(results, ceiling, command="") -> dict:
    for row in results:
        if row.get("gflops"):
            row["pct_of_ceiling"] = 100.0 * row["gflops"] / ceiling
    return {"machine": machine_info(), "gemm_ceiling_gflops": ceiling, "command": command,
            "workloads": {name: asdict(w) for name, w in PRESETS.items()}, "results": results}


def compare(new: dict, old: dict):
    """Rows of (workload, dtype, runner, old median, new median, old/new) for runs present in both."""
    index = {(r["workload"], r["dtype"], r["runner"]): r for r in old.get("results", []) if "median_s" in r}
    out = []
    for r in new.get("results", []):
        key = (r["workload"], r["dtype"], r["runner"])
        if "median_s" in r and key in index:
            out.append((*key, index[key]["median_s"], r["median_s"], index[key]["median_s"] / r["median_s"]))
    return out
