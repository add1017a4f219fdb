"""Single kernels over backend × size × dtype (JIT compilation happens in setup, never timed)."""
from dataclasses import replace

import kernels
from pynet import bench

from .common import DTYPES, backend_or_skip


class DenseForward:
    params = (list(kernels.BACKENDS), [(32, 64, 64), (128, 784, 128), (512, 1024, 1024)], DTYPES)
    param_names = ["backend", "shape", "dtype"]
    kernel = "dense-forward"

    def setup(self, backend, shape, dtype):
        backend_or_skip(backend)
        w = replace(bench.PRESETS[self.kernel], shape=shape)
        self.runner = bench.BackendRunner(backend, bench.make_problem(w, dtype))
        self.flops = w.flops()
        self.runner.run()  # compile

    def time_kernel(self, backend, shape, dtype):
        self.runner.run()

    def track_gflops(self, backend, shape, dtype):
        import time

        t0 = time.perf_counter()
        for _ in range(3):
            self.runner.run()
        return 3 * self.flops / (time.perf_counter() - t0) / 1e9

    track_gflops.unit = "GFLOP/s"


class DenseBackward(DenseForward):
    kernel = "dense-backward"


class Elementwise:
    params = (list(kernels.BACKENDS), ["activation", "softmax-ce", "optimizer"], DTYPES)
    param_names = ["backend", "kernel", "dtype"]

    def setup(self, backend, kernel, dtype):
        backend_or_skip(backend)
        self.runner = bench.BackendRunner(backend, bench.make_problem(bench.PRESETS[kernel], dtype))
        self.runner.run()

    def time_kernel(self, backend, kernel, dtype):
        self.runner.run()
