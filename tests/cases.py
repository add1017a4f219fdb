"""Valid arguments for every contract kernel, shared by the parity, property and fuzz tests."""
import contextlib
import zlib

import numpy as np

import kernels
from kernels import contract as C

SHAPES = [(1, 1, 1), (3, 7, 5), (61, 127, 3), (130, 67, 70)]  # (rows n, inputs i, outputs o)


def targets(rng, dtype, loss, n, k, scale=1.0):
    """Targets a loss accepts: one-hot rows (cross_entropy), 0/1 (binary), else normal values × scale."""
    if loss == C.CE:
        return np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    if loss == C.BCE:
        return rng.integers(0, 2, (n, k)).astype(dtype)
    return (rng.standard_normal((n, k)) * scale).astype(dtype)


def _net(rng, dtype, sizes, acts, loss, n):
    sizes = np.array(sizes, np.int64)
    P = C.n_params(sizes)
    params = (rng.standard_normal(P) * 0.3).astype(dtype)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    return sizes, np.array(acts, np.int64), params, X, targets(rng, dtype, loss, n, int(sizes[-1]))


def make_args(name, dtype, rng, shape, variant=0):
    """Valid arguments for kernel ``name``; ``variant`` selects options (activation, loss, optimizer)."""
    n, i, o = shape
    f = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    sw = None if variant % 2 == 0 else rng.uniform(0.1, 2.0, n).astype(dtype)
    if name == "dense_forward":
        return [f(n, i), f(i, o), f(o), z(n, o)]
    if name == "dense_backward":
        return [f(n, i), f(i, o), f(n, o), z(i, o), z(o), None if variant % 2 else z(n, i)]
    if name == "math_function":
        fn = variant % len(C.MATH)
        x = f(n * o) * 5
        if C.MATH[fn] in ("log", "log1p"):
            x = np.abs(x)
        return [fn, x, z(n * o)]
    if name == "activation_forward":
        act = variant % 5
        return [act, f(n, o) * 3, z(n, o)]
    if name == "activation_backward":
        act = variant % 5
        Zs = f(n, o) * 3
        Aout = z(n, o)
        kernels.load("numpy").activation_forward(act, Zs, Aout)
        return [act, Aout, f(n, o), z(n, o)]
    if name == "softmax":
        return [f(n, o) * 5, z(n, o)]
    if name == "softmax_backward":
        P = z(n, o)
        kernels.load("numpy").softmax(f(n, o), P)
        return [P, f(n, o), z(n, o)]
    if name == "softmax_cross_entropy":
        return [f(n, o) * 4, np.eye(o, dtype=dtype)[rng.integers(0, o, n)], sw, z(n, o)]
    if name == "sigmoid_binary_cross_entropy":
        return [f(n, o) * 4, rng.integers(0, 2, (n, o)).astype(dtype), sw, z(n, o)]
    if name in ("ssr", "mse"):
        return [f(n, o), f(n, o), sw, z(n, o)]
    if name == "output_loss":
        pairs = [(a, l) for l in range(4) for a in sorted(C.COMPATIBLE_OUTPUTS[l])]
        act, loss = pairs[variant % len(pairs)]
        Y = (np.eye(o, dtype=dtype)[rng.integers(0, o, n)] if loss == C.CE
             else rng.integers(0, 2, (n, o)).astype(dtype) if loss == C.BCE else f(n, o))
        return [act, loss, f(n, o) * 2, Y, sw, z(n, o), z(n, o)]
    if name == "sgd_update":
        p = n * i
        return [f(p), f(p), f(p) * 0.1, 0.05, [0.0, 0.9, 0.9][variant % 3], int(variant % 3 == 2),
                [0.0, 1e-3][variant % 2]]
    if name == "adam_update":
        p = n * i
        return [f(p), f(p), f(p) * 0.1, np.abs(f(p)) * 0.1, 1 + variant, 1e-3, 0.9, 0.999, 1e-8,
                [0.0, 1e-3][variant % 2]]
    hidden = [a for a in (C.RELU, C.TANH, C.SOFTPLUS, C.SIGMOID, C.IDENTITY)]
    loss = variant % 4
    out_act = {C.CE: C.SOFTMAX, C.BCE: C.SIGMOID, C.SSR: C.IDENTITY, C.MSE: C.TANH}[loss]
    sizes = [i, max(o, 2), 5, o if loss != C.BCE else 1]
    acts = [hidden[variant % 5], hidden[(variant + 1) % 5], out_act]
    sizes, acts, params, X, Y = _net(rng, dtype, sizes, acts, loss, n)
    P = params.shape[0]
    # ssr is a sum over rows and outputs: scale its step so that one epoch stays well-conditioned
    lr = 0.05 / (n * int(sizes[-1])) if loss == C.SSR else 0.05
    hyper = np.array([lr, 0.9 * (variant % 3 > 0), float(variant % 3 == 2), 1e-4 * (variant % 2),
                      0.9, 0.999, 1e-8])
    opt = C.ADAM if variant % 4 == 3 else C.SGD
    if name == "train_epoch":
        perm = rng.permutation(n).astype(np.int64)
        bs = max(1, n // 3)
        return [params, z(P), sizes, acts, loss, X, Y, sw, perm, bs, opt, hyper, z(2 * P),
                np.zeros(1, np.int64), z(C.train_workspace_size(sizes, bs)),
                np.zeros(C.n_hidden_units(sizes), np.int64), np.zeros(len(sizes) - 1)]
    if name == "batch_gradient":
        # a subset of the rows in shuffled order (a rank's slice of a global batch), at least one row
        rows = rng.permutation(n)[:max(1, (2 * n) // 3)].astype(np.int64)
        return [params, z(P), sizes, acts, loss, X, Y, sw, rows, z(C.train_workspace_size(sizes, rows.shape[0]))]
    if name == "train_gd":
        steps = 7
        return [params, z(P), sizes, acts, loss, X, Y, sw, opt, hyper, z(2 * P), np.zeros(1, np.int64),
                1e-12, steps, z(C.train_workspace_size(sizes, n)), np.zeros(steps), np.zeros(1)]
    if name == "predict":
        block = max(1, n // 2)
        return [params, sizes, acts, X, z(n, int(sizes[-1])), block, z(C.predict_workspace_size(sizes, block))]
    raise AssertionError(f"no argument builder for {name}")


def seed_of(*key):
    """A seed fixed across processes (``hash`` of a str is randomised per process)."""
    return zlib.crc32(repr(key).encode())


def copy_args(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


#: The wider type whose reference run stands for the exact answer (None: no wider type here, e.g. where
#: long double is float64).
WIDER = {np.dtype(np.float32): np.dtype(np.float64),
         np.dtype(np.float64): (np.dtype(np.longdouble)
                                if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps else None)}


def _upcast(args, dtype):
    wide = WIDER[np.dtype(dtype)]
    return [a.astype(wide) if isinstance(a, np.ndarray) and a.dtype == dtype else
            (a.copy() if isinstance(a, np.ndarray) else a) for a in args]


def _ulp_perturbed(args, rng, dtype):
    """Every ``dtype`` input array moved by one unit in the last place, with random signs."""
    out = copy_args(args)
    eps = np.finfo(dtype).eps
    for j, a in enumerate(out):
        if isinstance(a, np.ndarray) and a.dtype == dtype and a.size:
            out[j] = (a * (1 + rng.choice([-1.0, 1.0], a.shape) * eps)).astype(dtype)
    return out


def _reordered(name, args, rng):
    """The same exact computation with the rows of every batch summed in another order (None if n/a)."""
    out = copy_args(args)
    if name == "train_epoch":
        perm, bs = out[8], out[9]
        out[8] = np.concatenate([rng.permutation(perm[s:s + bs]) for s in range(0, len(perm), bs)])
    elif name == "train_gd":
        p = rng.permutation(out[5].shape[0])
        out[5], out[6] = out[5][p], out[6][p]
        out[7] = None if out[7] is None else out[7][p]
    else:
        return None
    return out


@contextlib.contextmanager
def _activations_rounded_apart(rng):
    """The reference with every non-zero activation output moved by one ulp in a random direction.

    That is what another valid implementation does: libm's tanh / exp differ by an ulp or two
    (glibc's tanhf errs up to 2 ulp, NumPy's up to 1.3), and near saturation tanh′ = 1 − A² and
    σ′ = A(1 − A) turn that ulp into a relative error of ulp / (1 − A²) in the gradient.
    """
    module = kernels.load("numpy").raw
    exact = module.activation_forward

    def rounded_apart(act, Z, A):
        exact(act, Z, A)
        away = np.where(rng.random(A.shape) < 0.5, -np.inf, np.inf).astype(A.dtype)
        np.copyto(A, np.nextafter(A, away), where=A != 0)   # zeros stay: ReLU's dead units stay dead
    module.activation_forward = rounded_apart
    try:
        yield
    finally:
        module.activation_forward = exact


def assert_matches_reference(name, args, backend, dtype):
    """Run kernel ``name`` on copies of ``args`` with the reference and ``backend``; compare every output.

    The contract's rule: within TOLERANCE of the reference; failing that, no farther from the exact
    answer (the reference in a wider type) than four times the reference's own distance from it, or
    what moving the inputs by one ulp, summing a batch's rows in another order or rounding the
    activations the other way does to the reference — ill-conditioned steps (a ReLU input crossing 0,
    Adam with an effective gradient near ε, a saturated tanh) amplify rounding in every implementation.
    """
    ref_args, got_args = copy_args(args), copy_args(args)
    expected = getattr(kernels.load("numpy"), name)(*ref_args)
    got = getattr(kernels.load(backend), name)(*got_args)
    check_outputs(name, args, dtype, expected, ref_args, got, got_args)


def check_outputs(name, args, dtype, expected, ref_args, got, got_args):
    """The rule of :func:`assert_matches_reference` applied to outputs already computed from ``args``."""
    reference = kernels.load("numpy")
    spec = C.BY_NAME[name]
    pairs = [("return", got, expected, None)] if expected is not None else []
    for i, (arg, e, g) in enumerate(zip(spec.args, ref_args, got_args)):
        if arg.role == "in" or not isinstance(e, np.ndarray) or arg.name == "workspace":
            continue
        if arg.name == "grads" and name in ("train_epoch", "train_gd"):
            continue  # scratch: only its effect on params is specified
        pairs.append((arg.name, g, e, i))
    failing = [p for p in pairs if not C.close(p[1], p[2], dtype)]
    if not failing:
        return
    assert WIDER[np.dtype(dtype)] is not None, f"{name}: output {failing[0][0]} differs from the reference"
    exact_args = _upcast(args, dtype)
    # the unchecked reference: the checked entry points accept float32 and float64 only
    exact_ret = getattr(reference.raw, name)(*exact_args)
    rng = np.random.default_rng(0)
    perturbed = []
    for variant in (_ulp_perturbed, _ulp_perturbed, _ulp_perturbed, _reordered, _reordered, _reordered):
        p_args = variant(args, rng, dtype) if variant is _ulp_perturbed else variant(name, args, rng)
        if p_args is not None:
            perturbed.append((getattr(reference, name)(*p_args), p_args))
    if "sizes" in (a.name for a in C.BY_NAME[name].args):   # the networks: their activations rounded apart
        for _ in range(3):
            p_args = copy_args(args)
            with _activations_rounded_apart(rng):
                perturbed.append((getattr(reference, name)(*p_args), p_args))
    rtol, atol = C.TOLERANCE[np.dtype(dtype)]
    wide = WIDER[np.dtype(dtype)]
    for label, g, e, i in failing:
        truth = np.asarray(exact_ret if i is None else exact_args[i], wide)
        spread = max(np.max(np.abs(np.asarray(r if i is None else p[i], wide) - truth), initial=0.0)
                     for r, p in perturbed)
        err_ref = np.max(np.abs(np.asarray(e, wide) - truth), initial=0.0)
        err_got = np.max(np.abs(np.asarray(g, wide) - truth), initial=0.0)
        bound = 4 * max(spread, err_ref) + rtol * np.max(np.abs(truth), initial=0.0) + atol
        assert err_got <= bound, (f"{name}: output {label} is {err_got:.3g} from the exact answer; the {np.dtype(dtype)} "
                                  f"reference is {err_ref:.3g} from it, up to {spread:.3g} with inputs moved by one ulp "
                                  f"or rounded another way")
