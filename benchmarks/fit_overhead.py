"""What MLP.fit adds to the epoch kernel: fit(epochs=1) and fit(epochs=10) against the same number of
train_epoch calls made with the arguments MLP.fit passes (diagnostics arrays included), alternated.

    flock /tmp/pynet-bench.lock python benchmarks/fit_overhead.py [--workload small|mnist] [--backend c] [--repeat 7]
        [--threads N] [--json out.json]

Prints medians and, per repeat, the ratios fit/kernel (each pair ran back to back). First-epoch overhead:
fit(epochs=1) − one kernel epoch (validation, encoding, set-up, the first epoch's extra work); per-epoch
overhead: (fit(epochs=10) − ten kernel epochs) / 10. Run it with PYTHONPATH pointing at another checkout's
``pynet`` and ``kernels`` to compare code versions (alternate the processes).
"""
import argparse
import json
import os
import time

import numpy as np

import kernels
from kernels import contract as C
from pynet import MLP

WORKLOADS = {  # the bench presets' shapes: pynet bench --workload small / mnist
    "small": ([20, 64, 64, 1], 20_000, 32, "mse", 0.01),
    "mnist": ([784, 128, 10], 60_000, 128, "cross_entropy", 0.05),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=WORKLOADS, default="small")
    ap.add_argument("--backend", default="c")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.threads:
        kernels.load(args.backend).set_num_threads(args.threads)
    layers, n, bs, loss, lr = WORKLOADS[args.workload]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, layers[0])).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, layers[-1], n)
        Y = np.eye(layers[-1], dtype=np.float32)[y]
    else:
        y = rng.standard_normal(n).astype(np.float32)
        Y = y[:, None].copy()
    net = MLP(layers, activation="relu", backend=args.backend, seed=0)
    settings = dict(loss=loss, optimizer="sgd", lr=lr, batch_size=bs)
    net.fit(X, y, epochs=1, **settings)  # JIT compilation and first touch, outside the timing

    k = kernels.load(args.backend)
    P = net.params.shape[0]
    params, grads = net.params.copy(), np.zeros(P, np.float32)
    sizes, acts = np.array(layers, np.int64), net._act_codes()
    state, step = np.zeros(2 * P, np.float32), np.zeros(1, np.int64)
    ws = np.empty(C.train_workspace_size(sizes, bs), np.float32)
    alive, grad_sq = np.zeros(C.n_hidden_units(sizes), np.int64), np.zeros(len(layers) - 1)
    hyper = np.array([lr, 0, 0, 0, 0.9, 0.999, 1e-8])
    perm = rng.permutation(n).astype(np.int64)

    def kernel(epochs):
        for _ in range(epochs):
            alive[:] = 0
            grad_sq[:] = 0
            k.train_epoch(params, grads, sizes, acts, C.LOSSES.index(loss), X, Y, None, perm, bs, C.SGD, hyper,
                          state, step, ws, alive, grad_sq)

    def fit(epochs):
        net.fit(X, y, epochs=epochs, **settings)

    T = {key: [] for key in ("kernel1", "fit1", "kernel10", "fit10")}
    for _ in range(args.repeat):
        for key, fn, epochs in (("kernel1", kernel, 1), ("fit1", fit, 1), ("kernel10", kernel, 10),
                                ("fit10", fit, 10)):
            net.reset()
            time.sleep(0.25)  # no run inherits the previous one's spinning threads
            t0 = time.perf_counter()
            fn(epochs)
            T[key].append(time.perf_counter() - t0)
    m = {key: float(np.median(v)) for key, v in T.items()}
    r1 = np.array(T["fit1"]) / np.array(T["kernel1"])
    r10 = np.array(T["fit10"]) / np.array(T["kernel10"])
    out = {"workload": args.workload, "backend": args.backend, "repeat": args.repeat, "threads": args.threads,
           "omp_passive": os.environ.get("PYNET_OMP_PASSIVE") == "1", "medians_s": m,
           "fit1_over_kernel1": float(np.median(r1)), "fit10_over_kernel10": float(np.median(r10)),
           "first_epoch_overhead_s": m["fit1"] - m["kernel1"],
           "per_epoch_overhead_s": (m["fit10"] - m["kernel10"]) / 10, "raw_s": T}
    print(f"{args.workload} {args.backend}: kernel epoch {m['kernel1'] * 1e3:.2f} ms, fit(epochs=1) "
          f"{m['fit1'] * 1e3:.2f} ms; pairwise fit/kernel median x{out['fit1_over_kernel1']:.3f} "
          f"({r1.min():.3f}-{r1.max():.3f}); first-epoch overhead {out['first_epoch_overhead_s'] * 1e3:.2f} ms")
    print(f"  10 epochs: kernel {m['kernel10'] * 1e2:.2f} ms/epoch, fit {m['fit10'] * 1e2:.2f} ms/epoch; pairwise "
          f"x{out['fit10_over_kernel10']:.3f} ({r10.min():.3f}-{r10.max():.3f}); per-epoch overhead "
          f"{out['per_epoch_overhead_s'] * 1e3:.2f} ms")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
