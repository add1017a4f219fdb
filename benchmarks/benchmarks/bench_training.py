"""Whole training runs: one fused epoch, full-batch GD, peak memory of a fit, compile time."""
import subprocess
import sys
import time

import kernels
from pynet import bench

from .common import DTYPES, backend_or_skip


class Epoch:
    params = (list(kernels.BACKENDS), ["small", "mnist", "wide", "digits-gd"], DTYPES)
    param_names = ["backend", "workload", "dtype"]
    timeout = 300

    def setup(self, backend, workload, dtype):
        backend_or_skip(backend)
        self.w = bench.PRESETS[workload]
        self.runner = bench.BackendRunner(backend, bench.make_problem(self.w, dtype))
        self.runner.run()  # JIT compilation and first touch, outside the timing

    def time_epoch(self, backend, workload, dtype):
        self.runner.run()

    def track_gflops(self, backend, workload, dtype):
        t0 = time.perf_counter()
        self.runner.run()
        return self.w.flops() / (time.perf_counter() - t0) / 1e9

    track_gflops.unit = "GFLOP/s"


class FitEpoch:
    """One epoch of MLP.fit, what users run: the fused kernel plus the fit's own work, with the default
    diagnostics (dead units, ‖dW‖² per layer) on and off. Epoch above times the kernel alone, as a peer's loop
    has no diagnostics; the gap between the two settings here is what the diagnostics cost."""

    params = (list(kernels.BACKENDS), [True, False])
    param_names = ["backend", "diagnostics"]
    timeout = 300

    def setup(self, backend, diagnostics):
        backend_or_skip(backend)
        import numpy as np

        from pynet import MLP

        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((20_000, 784)).astype(np.float32)
        self.y = rng.integers(0, 10, 20_000)
        self.net = MLP([784, 128, 10], output="softmax", backend=backend)
        self.fit(diagnostics, 256)  # JIT compilation and first touch, outside the timing

    def fit(self, diagnostics, rows):
        self.net.fit(self.X[:rows], self.y[:rows], loss="cross_entropy", epochs=1, batch_size=128,
                     diagnostics=diagnostics)

    def time_fit_epoch(self, backend, diagnostics):
        self.fit(diagnostics, self.X.shape[0])


class FitMemory:
    params = (list(kernels.BACKENDS),)
    param_names = ["backend"]
    timeout = 300

    def setup(self, backend):
        backend_or_skip(backend)
        import numpy as np

        from pynet import MLP

        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((20_000, 784)).astype(np.float32)
        self.y = rng.integers(0, 10, 20_000)
        self.net = MLP([784, 128, 10], output="softmax", backend=backend)
        self.net.fit(self.X[:256], self.y[:256], loss="cross_entropy", epochs=1, batch_size=128)

    def peakmem_fit(self, backend):
        self.net.fit(self.X, self.y, loss="cross_entropy", epochs=2, batch_size=128)


class CompileTime:
    """Seconds to compile every kernel for both dtypes in a fresh process with an empty JIT cache."""

    params = (list(kernels.BACKENDS),)
    param_names = ["backend"]
    timeout = 600

    def setup(self, backend):
        k = backend_or_skip(backend)
        if not hasattr(k.raw, "warmup"):
            raise NotImplementedError(f"backend {backend!r} compiles nothing at run time")

    def track_compile_seconds(self, backend):
        import os
        import tempfile

        code = f"import time, kernels; t = time.perf_counter(); kernels.load({backend!r}).raw.warmup(); " \
               "print(time.perf_counter() - t)"
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, "NUMBA_CACHE_DIR": cache})
        return float(out.stdout.strip().splitlines()[-1])

    track_compile_seconds.unit = "seconds"
