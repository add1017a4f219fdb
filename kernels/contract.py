"""The kernel contract: the single source of truth for pynet's compute core.

Every backend (``numpy`` reference, ``numba``, ``c``) exports exactly the kernels named in
:data:`KERNELS`, with these arguments in this order. This module declares them as data; the
argument checker (:mod:`kernels.checks`) and the tests are derived from it.

Rules that hold for every kernel
--------------------------------
* Arrays are C-contiguous. All floating arrays of one call share one dtype, float32 or float64;
  index arrays (``sizes``, ``acts``, ``perm``, ``step``) are int64. ``hyper``, ``grad_sq``,
  ``losses`` and ``last_step`` are float64 whatever the model dtype.
* Outputs are written into arrays the caller allocated; no kernel allocates per step. Arguments
  marked *optional* may be ``None`` (``dX`` of the first layer, ``sw`` when unweighted).
* Activation derivatives are computed from the activation's *output* A = f(Z), so the forward pass
  keeps only A: relu' = [A > 0], sigmoid' = A(1 − A), tanh' = 1 − A², softplus' = 1 − e^(−A).

Loss scaling (stated once, used everywhere)
-------------------------------------------
With sample weights w (all ones when ``sw`` is None), n rows and k outputs per batch:

* ``ssr``                  L = Σ_i w_i Σ_j (y_ij − ŷ_ij)²                    — a **sum** (the seed's loss)
* ``mse``                  L = Σ_i w_i [ (1/k) Σ_j (y_ij − ŷ_ij)² ] / Σ_i w_i — mean over samples and outputs
* ``binary_cross_entropy`` L = Σ_i w_i [ (1/k) Σ_j bce(y_ij, z_ij) ] / Σ_i w_i — mean over samples and outputs
* ``cross_entropy``        L = Σ_i w_i [ −Σ_j y_ij log p_ij ] / Σ_i w_i        — mean over samples

So a mini-batch gradient is the gradient of that batch's loss: a mean for every loss but ``ssr``.
An epoch's reported loss is the row-weighted mean of its batch losses (for ``ssr``: their sum).

Parameter layout
----------------
All parameters of an MLP with layer sizes ``sizes = [n0, n1, …, nL]`` live in one flat buffer:
for each layer l = 1…L, W_l (row-major, shape (n_{l−1}, n_l)) then b_l (n_l). Gradients, SGD
velocity and each Adam moment use the same layout. :func:`layout` gives the offsets.

Divergence
----------
The fused kernels never apply a step whose batch loss or gradient is not finite: they stop at once
and return that loss (NaN when only the gradient overflowed), so the parameters stay the last
finite ones. ``train_gd`` records that value in ``losses`` and returns the steps run including it.

Optimizers
----------
``hyper`` is a float64 vector in the order of :data:`HYPER`. Weight decay adds λθ to the gradient
of every parameter (biases included) before the update. SGD follows the common convention
v ← μv + g, Δ = −lr·(g + μv) with Nesterov or −lr·v without. Adam uses bias-corrected moments with
step t counted from 1. Both return max|Δ| over the buffer, which is what the GD stopping rule
("every parameter step smaller than tol") needs.

Tolerances
----------
:data:`TOLERANCE` gives (rtol, atol) per dtype for comparing a backend with the reference: per
kernel, and for the parameters after one fused epoch from the same start and batch order. The
comparison is array-wise, max|x − ref| ≤ rtol·max|ref| + atol (:func:`close`): a dot product's
rounding error scales with the size of its terms, not of its (possibly cancelled) result. An output
that misses this bound still passes when it is no farther from the exact answer (the reference run
in a wider type: float64 for float32, long double for float64) than four times the reference's own
distance from it, or from it with every input moved by one ulp, a batch's rows summed in another
order, or (fused kernels) every non-zero activation output rounded one ulp the other way, as another
libm's tanh or exp may: steps that amplify rounding are ill-conditioned for every implementation, the
reference included — Adam's step −lr·g/(|g|+ε) moves by up to lr/ε per unit change of g when weight
decay cancels the gradient to about ε, tanh′ = 1 − A² turns one ulp of a saturated A into a relative
error of ulp/(1 − A²), and a ReLU input crossing 0 switches a unit.
Elementwise math (:data:`MATH`: exp, expm1, log, log1p, tanh, sigmoid, softplus) is computed by the
fast backends as SIMD polynomial approximations, not by libm. :data:`MATH_ULP` states their accuracy
and ``tests/test_math_accuracy.py`` checks it on every backend over more than 10⁶ points per function
and dtype, spanning the whole float range (saturation, overflow and the subnormal region included):
|y − f(x)| ≤ MATH_ULP · ulp(f(x)), with f(x) computed in a wider type; where |f(x)| is below the
smallest normal number the bound is that number itself (results there may flush to zero). Every
finite f(x) gives a finite y, and NaN in gives NaN out. The activations, softmax and the
cross-entropies are built on these functions.
The Numba backend uses no fastmath flags; its GEMM micro-kernel fuses each k term with an explicit FMA
(within this tolerance; no nnan/ninf, so non-finite losses are still detected).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# --------------------------------------------------------------------------- registries of names
#: Activation names; a kernel receives the index. Softmax is an output activation only.
ACTIVATIONS = ("identity", "relu", "softplus", "sigmoid", "tanh", "softmax")
ELEMENTWISE = ACTIVATIONS[:5]
#: Loss names; a kernel receives the index.
LOSSES = ("ssr", "mse", "binary_cross_entropy", "cross_entropy")
#: Optimizer kernels; full-batch "gd" runs the sgd update on the whole data.
OPTIMIZERS = ("sgd", "adam")
#: Elementwise math functions (the ``math_function`` kernel; what activations and losses are built on).
MATH = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus")
#: Max error of every backend's :data:`MATH` functions, in units in the last place of the result.
MATH_ULP = {np.dtype(np.float32): 4.0, np.dtype(np.float64): 4.0}
#: Fields of the float64 ``hyper`` vector, in order.
HYPER = ("lr", "momentum", "nesterov", "weight_decay", "beta1", "beta2", "eps")

IDENTITY, RELU, SOFTPLUS, SIGMOID, TANH, SOFTMAX = range(6)
M_EXP, M_EXPM1, M_LOG, M_LOG1P, M_TANH, M_SIGMOID, M_SOFTPLUS = range(len(MATH))
SSR, MSE, BCE, CE = range(4)
SGD, ADAM = range(2)

#: Which output activation each loss accepts. Cross-entropies need their matching output (the fused,
#: stable forms); the squared losses accept any output and go through the activation's derivative
#: (the softmax Jacobian for softmax).
COMPATIBLE_OUTPUTS = {
    SSR: frozenset(range(6)),
    MSE: frozenset(range(6)),
    BCE: frozenset({SIGMOID}),
    CE: frozenset({SOFTMAX}),
}

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INDEX_DTYPE = np.dtype(np.int64)

#: (rtol, atol) for backend-vs-reference comparisons: single kernels and one fused epoch.
TOLERANCE = {
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-10, 1e-12),
}


def close(actual, expected, dtype=None) -> bool:
    """True when ``actual`` matches ``expected`` within the contract tolerance for ``dtype``."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    rtol, atol = TOLERANCE[np.dtype(dtype or np.float64)]
    if actual.shape != expected.shape:
        return False
    if actual.size == 0:
        return True
    finite = np.isfinite(expected)
    if not np.array_equal(finite, np.isfinite(actual)):
        return False
    scale = np.max(np.abs(expected[finite]), initial=0.0)
    return bool(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0) <= rtol * scale + atol)


def code(registry: tuple, name, argument: str) -> int:
    """Index of ``name`` in ``registry``; a ValueError naming ``argument`` and the valid names otherwise."""
    if isinstance(name, str) and name in registry:
        return registry.index(name)
    raise ValueError(f"{argument}: unknown name {name!r}; valid names are {', '.join(registry)}")


# --------------------------------------------------------------------------- layout helpers
def layout(sizes) -> list[tuple[int, int, int]]:
    """Per layer (weight offset, bias offset, end offset) in the flat parameter buffer."""
    out, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w, b = off, off + n_in * n_out
        off = b + n_out
        out.append((w, b, off))
    return out


def n_params(sizes) -> int:
    """Length of the flat parameter buffer for layer sizes ``sizes``."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


def n_hidden_units(sizes) -> int:
    """Number of hidden units (length of the ``alive`` vector)."""
    return int(sum(sizes[1:-1]))


def train_workspace_size(sizes, batch_size: int) -> int:
    """Workspace length for ``train_epoch`` / ``train_gd`` with at most ``batch_size`` rows per step.

    Enough for: every layer's activations (including the gathered input batch), the gathered
    targets and weights, and two gradient buffers as wide as the widest layer.
    """
    sizes = [int(s) for s in sizes]
    return int(batch_size) * (sum(sizes) + sizes[-1] + 1 + 2 * max(sizes))


def predict_workspace_size(sizes, block: int) -> int:
    """Workspace length for ``predict`` processing ``block`` rows at a time (two ping-pong buffers)."""
    return 2 * int(block) * max(int(s) for s in sizes)


# --------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Arg:
    """One argument. ``shape`` is a tuple of dimension symbols or integers; ``None`` for scalars.

    kind: "float" (the call's float dtype), "f64", "i64" for arrays; "int" (any int64), "flag" (0 or 1),
    "float", or a registry name ("act", "loss", "opt") for scalars. role: "in", "out" or "inout" (outputs must be writable).
    """

    name: str
    kind: str
    shape: tuple | None = None
    role: str = "in"
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Kernel:
    name: str
    args: tuple[Arg, ...]
    returns: str | None
    math: str
    #: extra checks after shapes bind: f(values, dims) raising ValueError naming the argument
    check: Callable | None = field(default=None, compare=False)


def A(name, kind, shape, role="in", optional=False, doc=""):
    return Arg(name, kind, tuple(shape.split(",")) if isinstance(shape, str) else shape, role, optional, doc)


def S(name, kind, doc=""):
    return Arg(name, kind, None, "in", False, doc)


def _check_fused(v, d):
    """Extra checks shared by the fused kernels: the network description is consistent."""
    sizes, acts = v["sizes"], v["acts"]
    if sizes.shape[0] < 2:
        raise ValueError("sizes: need at least an input and an output size")
    if sizes.min() < 1:
        raise ValueError(f"sizes: every layer size must be >= 1, got {sizes.tolist()}")
    if acts.shape[0] != sizes.shape[0] - 1:
        raise ValueError(f"acts: need one activation per layer ({sizes.shape[0] - 1}), got {acts.shape[0]}")
    if acts.size and (acts.min() < 0 or acts.max() >= len(ACTIVATIONS)):
        raise ValueError(f"acts: codes must be in 0..{len(ACTIVATIONS) - 1}, got {acts.tolist()}")
    if acts.size > 1 and np.any(acts[:-1] == SOFTMAX):
        raise ValueError("acts: softmax is allowed only on the output layer")
    if "params" in v and v["params"].shape[0] != n_params(sizes):
        raise ValueError(f"params: length {v['params'].shape[0]} does not match sizes {sizes.tolist()} "
                         f"({n_params(sizes)} parameters)")
    if "X" in v and v["X"].shape[1] != sizes[0]:
        raise ValueError(f"X: has {v['X'].shape[1]} columns but sizes[0] is {sizes[0]}")
    if "Y" in v and v["Y"].shape[1] != sizes[-1]:
        raise ValueError(f"Y: has {v['Y'].shape[1]} columns but the output layer has {sizes[-1]}")
    if "out" in v and v["out"].shape[1] != sizes[-1]:
        raise ValueError(f"out: has {v['out'].shape[1]} columns but the output layer has {sizes[-1]}")
    if "loss" in v and int(acts[-1]) not in COMPATIBLE_OUTPUTS[v["loss"]]:
        raise ValueError(f"loss: {LOSSES[v['loss']]} needs output activation "
                         f"{' or '.join(ACTIVATIONS[a] for a in sorted(COMPATIBLE_OUTPUTS[v['loss']]))}, "
                         f"got {ACTIVATIONS[acts[-1]]}")
    if "alive" in v and v["alive"].shape[0] not in (0, n_hidden_units(sizes)):
        raise ValueError(f"alive: length must be 0 or the number of hidden units {n_hidden_units(sizes)}")
    if "grad_sq" in v and v["grad_sq"].shape[0] not in (0, sizes.shape[0] - 1):
        raise ValueError(f"grad_sq: length must be 0 or the number of layers {sizes.shape[0] - 1}")
    if "state" in v and v["state"].shape[0] != 2 * v["params"].shape[0]:
        raise ValueError("state: length must be twice the number of parameters")


def _check_hyper(v, d):
    h = v["hyper"]
    if not np.all(np.isfinite(h)):
        raise ValueError(f"hyper: every entry must be finite, got {h.tolist()}")
    if h[0] <= 0:
        raise ValueError(f"hyper: lr must be > 0, got {h[0]}")
    if not 0 <= h[1] < 1:
        raise ValueError(f"hyper: momentum must be in [0, 1), got {h[1]}")
    if h[3] < 0 or h[6] < 0:
        raise ValueError("hyper: weight_decay and eps must be >= 0")
    if not (0 <= h[4] < 1 and 0 <= h[5] < 1):
        raise ValueError("hyper: beta1 and beta2 must be in [0, 1)")


def _check_train_epoch(v, d):
    _check_fused(v, d)
    _check_hyper(v, d)
    perm, n = v["perm"], v["X"].shape[0]
    if perm.size and (perm.min() < 0 or perm.max() >= n):
        raise ValueError(f"perm: row indices must be in 0..{n - 1}")
    if v["batch_size"] < 1:
        raise ValueError(f"batch_size: must be >= 1, got {v['batch_size']}")
    bs = min(v["batch_size"], max(perm.shape[0], 1))
    need = train_workspace_size(v["sizes"], bs)
    if v["workspace"].shape[0] < need:
        raise ValueError(f"workspace: needs at least {need} elements, got {v['workspace'].shape[0]}")


def _check_batch_gradient(v, d):
    _check_fused(v, d)
    rows, n = v["rows"], v["X"].shape[0]
    if rows.shape[0] == 0:
        raise ValueError("rows: the batch is empty")
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"rows: row indices must be in 0..{n - 1}")
    need = train_workspace_size(v["sizes"], rows.shape[0])
    if v["workspace"].shape[0] < need:
        raise ValueError(f"workspace: needs at least {need} elements, got {v['workspace'].shape[0]}")


def _check_train_gd(v, d):
    _check_fused(v, d)
    _check_hyper(v, d)
    need = train_workspace_size(v["sizes"], v["X"].shape[0])
    if v["workspace"].shape[0] < need:
        raise ValueError(f"workspace: needs at least {need} elements, got {v['workspace'].shape[0]}")
    if not v["tol"] >= 0:
        raise ValueError(f"tol: must be >= 0, got {v['tol']}")
    if v["max_steps"] < 0 or v["max_steps"] > v["losses"].shape[0]:
        raise ValueError(f"max_steps: must be in 0..len(losses)={v['losses'].shape[0]}, got {v['max_steps']}")


def _check_predict(v, d):
    _check_fused(v, d)
    if v["block"] < 1:
        raise ValueError(f"block: must be >= 1, got {v['block']}")
    need = predict_workspace_size(v["sizes"], v["block"])
    if v["workspace"].shape[0] < need:
        raise ValueError(f"workspace: needs at least {need} elements, got {v['workspace'].shape[0]}")


def _check_elementwise(v, d):
    if v["act"] == SOFTMAX:
        raise ValueError("act: softmax is not elementwise; use the softmax kernels")


def _check_rates(v, d):
    """The single optimizer kernels take the same ranges as the ``hyper`` vector of the fused ones."""
    if v["lr"] <= 0:
        raise ValueError(f"lr: must be > 0, got {v['lr']}")
    if v["weight_decay"] < 0:
        raise ValueError(f"weight_decay: must be >= 0, got {v['weight_decay']}")
    for name in ("momentum", "beta1", "beta2"):
        if name in v and not 0 <= v[name] < 1:
            raise ValueError(f"{name}: must be in [0, 1), got {v[name]}")
    if "eps" in v and v["eps"] < 0:
        raise ValueError(f"eps: must be >= 0, got {v['eps']}")


def _check_adam(v, d):
    _check_rates(v, d)
    if v["t"] < 1:
        raise ValueError(f"t: Adam's step counter starts at 1, got {v['t']}")


_TRAIN_COMMON = (
    A("params", "float", "P", "inout", doc="flat parameters, updated in place"),
    A("grads", "float", "P", "out", doc="flat gradient buffer (last step's gradient on return)"),
    A("sizes", "i64", "L1", doc="layer sizes n0..nL"),
    A("acts", "i64", "L", doc="activation code per layer; the last is the output activation"),
    S("loss", "loss"),
    A("X", "float", "n,i"),
    A("Y", "float", "n,k", doc="targets (one-hot or probabilities for cross_entropy)"),
    A("sw", "float", "n", optional=True, doc="sample weights"),
)
_OPT_COMMON = (
    S("opt", "opt"),
    A("hyper", "f64", (len(HYPER),), doc="optimizer hyper-parameters in HYPER order"),
    A("state", "float", "S", "inout", doc="optimizer state, 2P: velocity | Adam m, v"),
    A("step", "i64", (1,), "inout", doc="Adam step counter t, incremented per update"),
)

KERNELS: tuple[Kernel, ...] = (
    # ---- dense layer
    Kernel("dense_forward",
           (A("X", "float", "n,i"), A("W", "float", "i,o"), A("b", "float", "o"), A("Z", "float", "n,o", "out")),
           None, "Z = X·W + b"),
    Kernel("dense_backward",
           (A("X", "float", "n,i"), A("W", "float", "i,o"), A("dZ", "float", "n,o"),
            A("dW", "float", "i,o", "out"), A("db", "float", "o", "out"),
            A("dX", "float", "n,i", "out", optional=True)),
           None, "dW = Xᵀ·dZ, db = Σ_rows dZ, dX = dZ·Wᵀ (skipped when dX is None)"),
    # ---- activations
    Kernel("activation_forward",
           (S("act", "act"), A("Z", "float", "n,o"), A("A", "float", "n,o", "out")),
           None, "A = f(Z) elementwise (A may be Z)", _check_elementwise),
    Kernel("activation_backward",
           (S("act", "act"), A("A", "float", "n,o"), A("dA", "float", "n,o"), A("dZ", "float", "n,o", "out")),
           None, "dZ = dA ⊙ f′ computed from A = f(Z) (dZ may be dA)", _check_elementwise),
    Kernel("math_function",
           (S("fn", "math"), A("X", "float", "n"), A("Y", "float", "n", "out")),
           None, "Y = f(X) elementwise for f in MATH, within MATH_ULP (Y may be X)"),
    Kernel("softmax",
           (A("Z", "float", "n,k"), A("P", "float", "n,k", "out")),
           None, "P_ij = exp(Z_ij − max_j Z_i) / Σ_j exp(Z_ij − max_j Z_i)"),
    Kernel("softmax_backward",
           (A("P", "float", "n,k"), A("dP", "float", "n,k"), A("dZ", "float", "n,k", "out")),
           None, "dZ = Jᵀ·dP with J = diag(p) − p pᵀ per row, i.e. dZ = P ⊙ (dP − Σ_j dP⊙P)"),
    # ---- losses (return the batch loss, write the gradient)
    Kernel("softmax_cross_entropy",
           (A("Z", "float", "n,k"), A("Y", "float", "n,k"), A("sw", "float", "n", optional=True),
            A("dZ", "float", "n,k", "out")),
           "float", "L = Σ w_i(−Σ_j Y log softmax(Z)) / Σw;  dZ = w_i (P − Y) / Σw"),
    Kernel("sigmoid_binary_cross_entropy",
           (A("Z", "float", "n,k"), A("Y", "float", "n,k"), A("sw", "float", "n", optional=True),
            A("dZ", "float", "n,k", "out")),
           "float", "L = Σ w_i mean_j(softplus(Z) − Y·Z) / Σw;  dZ = w_i (σ(Z) − Y) / (k Σw)"),
    Kernel("ssr",
           (A("Yhat", "float", "n,k"), A("Y", "float", "n,k"), A("sw", "float", "n", optional=True),
            A("dYhat", "float", "n,k", "out")),
           "float", "L = Σ_i w_i Σ_j (Y − Ŷ)²;  dŶ = 2 w_i (Ŷ − Y)"),
    Kernel("mse",
           (A("Yhat", "float", "n,k"), A("Y", "float", "n,k"), A("sw", "float", "n", optional=True),
            A("dYhat", "float", "n,k", "out")),
           "float", "L = Σ_i w_i mean_j (Y − Ŷ)² / Σw;  dŶ = 2 w_i (Ŷ − Y) / (k Σw)"),
    Kernel("output_loss",
           (S("act", "act"), S("loss", "loss"), A("Z", "float", "n,k"), A("Y", "float", "n,k"),
            A("sw", "float", "n", optional=True), A("A", "float", "n,k", "out"), A("dZ", "float", "n,k", "out")),
           "float", "A = f_out(Z); L = loss(A, Y); dZ = ∂L/∂Z (fused for softmax+CE and sigmoid+BCE)",
           lambda v, d: _check_loss_pair(v)),
    # ---- optimizers (return max |Δ|)
    Kernel("sgd_update",
           (A("params", "float", "P", "inout"), A("grads", "float", "P"), A("velocity", "float", "P", "inout"),
            S("lr", "float"), S("momentum", "float"), S("nesterov", "flag"), S("weight_decay", "float")),
           "float", "g = ∇ + λθ; v = μv + g; θ −= lr·(g + μv if nesterov else v)", _check_rates),
    Kernel("adam_update",
           (A("params", "float", "P", "inout"), A("grads", "float", "P"), A("m", "float", "P", "inout"),
            A("v", "float", "P", "inout"), S("t", "int"), S("lr", "float"), S("beta1", "float"),
            S("beta2", "float"), S("eps", "float"), S("weight_decay", "float")),
           "float", "g = ∇ + λθ; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; θ −= lr·m̂/(√v̂ + ε)", _check_adam),
    # ---- fused whole-network kernels
    Kernel("train_epoch",
           _TRAIN_COMMON + (A("perm", "i64", "m", doc="rows in batch order (may be a subset)"),
                            S("batch_size", "int")) + _OPT_COMMON + (
               A("workspace", "float", "W", "out", doc="length >= train_workspace_size(sizes, batch)"),
               A("alive", "i64", "H", "inout", doc="set to 1 where a hidden unit was ever non-zero (len 0: skip)"),
               A("grad_sq", "f64", "G", "inout", doc="adds Σ_steps ‖dW_l‖² per layer (len 0: skip)")),
           "float", "for each batch of perm: forward, output_loss, backward, update; returns the epoch loss",
           _check_train_epoch),
    Kernel("batch_gradient",
           _TRAIN_COMMON + (A("rows", "i64", "m", doc="the batch: row indices into X"),
                            A("workspace", "float", "W", "out", doc="length >= train_workspace_size(sizes, m)")),
           "float", "grads = ∇L over the rows (forward, output_loss, backward; no update); returns the batch loss",
           lambda v, d: _check_batch_gradient(v, d)),
    Kernel("train_gd",
           _TRAIN_COMMON + _OPT_COMMON + (
               S("tol", "float"), S("max_steps", "int"),
               A("workspace", "float", "W", "out", doc="length >= train_workspace_size(sizes, n)"),
               A("losses", "f64", "T", "out", doc="loss before each step"),
               A("last_step", "f64", (1,), "out", doc="max |Δ| of the last step taken")),
           "int", "full-batch steps until max|Δ| < tol, a non-finite loss, or max_steps; returns steps run",
           _check_train_gd),
    Kernel("predict",
           (A("params", "float", "P"), A("sizes", "i64", "L1"), A("acts", "i64", "L"), A("X", "float", "n,i"),
            A("out", "float", "n,k", "out"), S("block", "int"),
            A("workspace", "float", "W", "out", doc="length >= predict_workspace_size(sizes, block)")),
           None, "out = f_L(…f_1(X·W_1 + b_1)…), computed block rows at a time", _check_predict),
)


def _check_loss_pair(v):
    if v["act"] not in COMPATIBLE_OUTPUTS[v["loss"]]:
        raise ValueError(f"act: loss {LOSSES[v['loss']]} cannot follow output activation {ACTIVATIONS[v['act']]}")


KERNEL_NAMES = tuple(k.name for k in KERNELS)
BY_NAME = {k.name: k for k in KERNELS}
