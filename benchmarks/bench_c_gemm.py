"""GEMM of the C backend against numpy's matmul (OpenBLAS), float32, alternating A B A B, medians.

    flock /tmp/pynet-bench.lock python benchmarks/bench_c_gemm.py [--sizes 2048 512x1024x1024 ...] [--reps 7]
    flock /tmp/pynet-bench.lock python benchmarks/bench_c_gemm.py --train [reps]      # epochs: C vs torch eager
    python benchmarks/bench_c_gemm.py --rss c|torch mnist [epochs]                      # peak RSS per epoch

Prints GFLOP/s of each, the C/numpy ratio, and the fraction of the 2-core AVX2 peak (156 GFLOP/s).
"""
import argparse
import os
import time

import numpy as np

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import kernels  # noqa: E402

PEAK = 2 * 2.445e9 * 32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["2048", "512x1024x1024", "128x784x128", "32x64x64"])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    c = kernels.load("c").raw
    c.set_num_threads(args.threads)
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} threads={args.threads} simd={c.simd_active()}")
    rng = np.random.default_rng(0)
    for spec in args.sizes:
        m, k, n = (int(x) for x in spec.split("x")) if "x" in spec else (int(spec),) * 3
        A = rng.standard_normal((m, k)).astype(np.float32)
        B = rng.standard_normal((k, n)).astype(np.float32)
        C1, C2 = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        inner = max(1, int(2e9 // (2 * m * n * k)))      # ~1 s of work per sample at small sizes
        c.gemm(A, B, C1); np.matmul(A, B, out=C2)         # warm up
        tc, tn = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            for _ in range(inner):
                c.gemm(A, B, C1)
            tc.append((time.perf_counter() - t) / inner)
            t = time.perf_counter()
            for _ in range(inner):
                np.matmul(A, B, out=C2)
            tn.append((time.perf_counter() - t) / inner)
        gc, gn = 2 * m * n * k / np.median(tc) / 1e9, 2 * m * n * k / np.median(tn) / 1e9
        err = np.max(np.abs(C1 - C2)) / np.max(np.abs(C2))
        print(f"{m}x{k}x{n}: C {gc:6.1f} GFLOP/s  numpy {gn:6.1f} GFLOP/s  C/numpy {gc / gn:5.2f}  "
              f"C/peak {gc * 1e9 / PEAK:5.2f}  numpy/peak {gn * 1e9 / PEAK:5.2f}  relerr {err:.1e}")




# --------------------------------------------------------------------------- whole epochs vs PyTorch
NETS = {  # name: (sizes, hidden act, loss, batch, samples)
    "small": ([20, 64, 64, 1], "relu", "mse", 32, 20_000),
    "mnist": ([784, 128, 10], "relu", "cross_entropy", 128, 60_000),
    "wide": ([1024, 1024, 1024, 10], "relu", "cross_entropy", 512, 8_192),
}


def _data(sizes, loss, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "mse":
        Y = rng.standard_normal((n, sizes[-1])).astype(np.float32)
    else:
        Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], n)]
    params = np.concatenate([np.concatenate([rng.standard_normal(a * b) * np.sqrt(2.0 / a), np.zeros(b)])
                             for a, b in zip(sizes[:-1], sizes[1:])]).astype(np.float32)
    return X, Y, params, rng.permutation(n).astype(np.int64)


def epoch_state(net):
    """Every argument of one SGD train_epoch of NETS[net] (float32), as a dict; ``params`` stays the start."""
    from kernels import contract as C
    sizes, act, loss, bs, n = NETS[net]
    X, Y, params, perm = _data(sizes, loss, n)
    P = params.shape[0]
    return dict(params=params, p=params.copy(), grads=np.zeros(P, np.float32), s=np.array(sizes, np.int64),
                acts=np.array([C.ACTIVATIONS.index(act)] * (len(sizes) - 2)
                              + [C.SOFTMAX if loss == "cross_entropy" else 0], np.int64),
                lc=C.LOSSES.index(loss), X=X, Y=Y, perm=perm, bs=bs, hyper=np.array([0.01, 0.9, 0.0, 0.0, 0.9, 0.999, 1e-8]),
                state=np.zeros(2 * P, np.float32), step=np.zeros(1, np.int64),
                ws=np.zeros(C.train_workspace_size(sizes, bs), np.float32), e0=np.zeros(0, np.int64), e1=np.zeros(0))


def c_epoch_fn(net):
    from kernels import contract as C
    raw = kernels.load("c").raw
    a = epoch_state(net)

    def run():
        return raw.train_epoch(a["p"], a["grads"], a["s"], a["acts"], a["lc"], a["X"], a["Y"], None, a["perm"],
                               a["bs"], C.SGD, a["hyper"], a["state"], a["step"], a["ws"], a["e0"], a["e1"])
    return run


def torch_epoch_fn(net):
    import torch
    sizes, act, loss, bs, n = NETS[net]
    X, Y, params, perm = _data(sizes, loss, n)
    layers = []
    off = 0
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[off:off + a * b].reshape(a, b).T.copy()))
            lin.bias.copy_(torch.from_numpy(params[off + a * b:off + a * b + b]))
        off += a * b + b
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    Xt, Yt, pt = torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(perm)
    lossf = torch.nn.MSELoss() if loss == "mse" else torch.nn.CrossEntropyLoss()

    def run():
        total = 0.0
        for start in range(0, n, bs):
            idx = pt[start:start + bs]
            xb, yb = Xt[idx], Yt[idx]
            opt.zero_grad()
            out = model(xb)
            lv = lossf(out, yb if loss == "mse" else yb.argmax(1))
            lv.backward()
            opt.step()
            total += lv.item() * idx.shape[0]
        return total / n
    return run


def train_main(reps, threads):
    import torch
    torch.set_num_threads(threads)
    kernels.load("c").raw.set_num_threads(threads)
    print(f"torch {torch.__version__} threads={threads}")
    for net in NETS:
        fc, ft = c_epoch_fn(net), torch_epoch_fn(net)
        fc(), ft()   # warm up
        tc, tt = [], []
        for _ in range(reps):
            t = time.perf_counter(); fc(); tc.append(time.perf_counter() - t)
            t = time.perf_counter(); ft(); tt.append(time.perf_counter() - t)
        mc, mt = np.median(tc), np.median(tt)
        print(f"{net:6s} C {mc * 1e3:8.1f} ms  torch {mt * 1e3:8.1f} ms  torch/C {mt / mc:6.1f}x")


def rss_main(which, net, epochs):
    """Peak RSS (MiB) after each epoch, in a fresh process per framework."""
    import resource
    if which == "torch":
        import torch
        torch.set_num_threads(os.cpu_count())
        f = torch_epoch_fn(net)
    else:
        f = c_epoch_fn(net)
    out = []
    for _ in range(epochs):
        f()
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(which, net, " ".join(f"{x:.0f}" for x in out), "MiB")


if __name__ != "__main__":
    pass
elif len(sys.argv) > 1 and sys.argv[1] == "--train":
    train_main(int(sys.argv[2]) if len(sys.argv) > 2 else 5, os.cpu_count())
elif len(sys.argv) > 1 and sys.argv[1] == "--rss":
    rss_main(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 4)
else:
    main()
