"""GEMM of the C backend against numpy's matmul (OpenBLAS), float32, alternating A B A B, medians.

    flock /tmp/pynet-bench.lock python benchmarks/bench_c_gemm.py [--sizes 2048 512x1024x1024 ...] [--reps 7]

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


if __name__ == "__main__":
    main()
