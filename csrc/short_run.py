"""A short training run through the C backend, for valgrind (see csrc/sanitize.sh and docs/performance.md)."""
import numpy as np

import kernels
from kernels import contract as C

k = kernels.load("c")
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    sizes = np.array([13, 40, 23, 3], np.int64)
    acts = np.array([C.RELU, C.TANH, C.SOFTMAX], np.int64)
    P = C.n_params(sizes)
    params = (rng.standard_normal(P) * 0.3).astype(dtype)
    X = rng.standard_normal((101, 13)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 101)]
    for opt in (C.SGD, C.ADAM):
        hyper = np.array([0.05, 0.9, 1.0, 1e-4, 0.9, 0.999, 1e-8])
        state, step = np.zeros(2 * P, dtype), np.zeros(1, np.int64)
        for _ in range(2):
            loss = k.train_epoch(params, np.zeros(P, dtype), sizes, acts, C.CE, X, Y, None,
                                 rng.permutation(101).astype(np.int64), 16, opt, hyper, state, step,
                                 np.zeros(C.train_workspace_size(sizes, 16), dtype),
                                 np.zeros(63, np.int64), np.zeros(3))
        steps = k.train_gd(params, np.zeros(P, dtype), sizes, acts, C.CE, X, Y, None, opt, hyper, state, step,
                           1e-9, 5, np.zeros(C.train_workspace_size(sizes, 101), dtype), np.zeros(5), np.zeros(1))
    out = np.zeros((101, 3), dtype)
    k.predict(params, sizes, acts, X, out, 32, np.zeros(C.predict_workspace_size(sizes, 32), dtype))
    A = rng.standard_normal((300, 270)).astype(dtype)
    B = rng.standard_normal((270, 290)).astype(dtype)
    k.raw.gemm(A, B, np.empty((300, 290), dtype))   # crosses MC/KC and the threading threshold
    print(dtype.__name__, float(loss), steps, float(out.sum()))
