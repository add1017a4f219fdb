"""A/B of several builds of the C extension and PyTorch eager in one process: alternating, medians.

    cp kernels/_pynet_c.*.so /tmp/old.so      # before a change; rebuild; then
    flock /tmp/pynet-bench.lock python benchmarks/ab_builds.py old=/tmp/old.so new=kernels/_pynet_c.cpython-311-x86_64-linux-gnu.so \
        [--nets small,mnist,wide] [--reps 7] [--gemm --gsizes 2048,512x1024x1024] [--no-torch] [--threads 2]

Each build is loaded from its own .so (cffi module, same init name), so builds, torch and numpy's matmul
are timed round-robin on the same data, weights and batch order (benchmarks/bench_c_gemm.py's nets,
SGD with momentum 0.9, lr 0.01). Before every timed call the harness sleeps briefly: OpenBLAS's and
libgomp's worker threads keep spinning for a while after a call (OpenBLAS's for up to ~0.1 s) and would
otherwise take the second core from whichever runner comes next. --threads N (default 2) applies to the builds,
torch and numpy's matmul alike.
"""
import sys, time, os, importlib.machinery, importlib.util
if "--threads" in sys.argv:   # OpenBLAS reads its thread count once, when numpy loads: numpy's matmul follows --threads too
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
import numpy as np
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from kernels import contract as C
import bench_c_gemm as B

args = sys.argv[1:]
libs = {}
nets = ["small", "mnist", "wide"]; reps = 5; gemm = False; torch_on = True; gsizes = ["2048"]; threads = 2
i = 0
while i < len(args):
    a = args[i]
    if a == "--nets": nets = [x for x in args[i+1].split(",") if x]; i += 2; continue
    if a == "--reps": reps = int(args[i+1]); i += 2; continue
    if a == "--gemm": gemm = True; i += 1; continue
    if a == "--gsizes": gsizes = args[i+1].split(","); i += 2; continue
    if a == "--no-torch": torch_on = False; i += 1; continue
    if a == "--threads": threads = int(args[i+1]); i += 2; continue
    name, path = a.split("=")
    loader = importlib.machinery.ExtensionFileLoader(f"ab_{name}._pynet_c", path)
    spec = importlib.util.spec_from_loader(f"ab_{name}._pynet_c", loader)
    mod = importlib.util.module_from_spec(spec); loader.exec_module(mod)
    libs[name] = mod
    i += 1

def epoch_fn(mod, net):
    ffi, lib = mod.ffi, mod.lib
    a = B.epoch_state(net)
    p, state = a["p"], a["state"]
    f = lambda v: ffi.from_buffer("float[]", v)
    ii = lambda v: ffi.from_buffer("int64_t[]", v)
    args = (f(p), f(a["grads"]), len(a["acts"]), ii(a["s"]), ii(a["acts"]), a["lc"], a["X"].shape[0], f(a["X"]),
            f(a["Y"]), ffi.NULL, a["perm"].shape[0], ii(a["perm"]), a["bs"], C.SGD, ffi.from_buffer("double[]", a["hyper"]),
            f(state), ii(a["step"]), f(a["ws"]), 0, ii(a["e0"]), 0, ffi.from_buffer("double[]", a["e1"]))
    def run():
        return lib.pynet_train_epoch_f32(*args)
    def reset():
        p[:] = a["params"]; state[:] = 0
    return run, reset

for mod in libs.values():
    mod.lib.pynet_set_num_threads(threads)
if torch_on:
    import torch; torch.set_num_threads(threads)
print("load", os.getloadavg())
for net in nets:
    fns = {k: epoch_fn(m, net) for k, m in libs.items()}
    if torch_on: fns["torch"] = (B.torch_epoch_fn(net), lambda: None)
    times = {k: [] for k in fns}
    losses = {}
    for k, (f, r) in fns.items(): r(); losses[k] = f()
    for _ in range(reps):
        for k, (f, r) in fns.items():
            r(); time.sleep(0.03); t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    med = {k: np.median(v) for k, v in times.items()}
    line = f"{net:6s} " + "  ".join(f"{k} {med[k]*1e3:7.1f}ms(min {min(times[k])*1e3:.1f})" for k in fns)
    if torch_on: line += "  | " + " ".join(f"{k} {med['torch']/med[k]:.2f}x" for k in libs)
    print(line, " loss", {k: round(v, 6) for k, v in losses.items()}, flush=True)

if gemm:
    rng = np.random.default_rng(0)
    for spec in gsizes:
        m, k, n = (int(x) for x in spec.split("x")) if "x" in spec else (int(spec),) * 3
        A = rng.standard_normal((m, k)).astype(np.float32); Bm = rng.standard_normal((k, n)).astype(np.float32)
        b = np.zeros(n, np.float32)
        outs = {kk: np.empty((m, n), np.float32) for kk in list(libs) + ["numpy"]}
        def mk(mod, out):
            ffi, lib = mod.ffi, mod.lib
            a = (m, k, n, ffi.from_buffer("float[]", A), ffi.from_buffer("float[]", Bm), ffi.from_buffer("float[]", b), ffi.from_buffer("float[]", out))
            return lambda: lib.pynet_dense_forward_f32(*a)
        fns = {kk: mk(mod, outs[kk]) for kk, mod in libs.items()}
        fns["numpy"] = lambda: np.matmul(A, Bm, out=outs["numpy"])
        inner = max(1, int(4e9 // (2 * m * n * k)))
        for f in fns.values(): f()
        times = {kk: [] for kk in fns}
        for _ in range(reps * 2):
            for kk, f in fns.items():
                time.sleep(0.25)   # let OpenBLAS's spinning threads go idle
                t = time.perf_counter()
                for _ in range(inner): f()
                times[kk].append((time.perf_counter() - t) / inner)
        g = {kk: 2 * m * n * k / np.median(v) / 1e9 for kk, v in times.items()}
        print(f"gemm {spec}: " + "  ".join(f"{kk} {g[kk]:.1f}" for kk in fns) + "  | " +
              " ".join(f"{kk}/numpy {g[kk]/g['numpy']:.3f} peak {g[kk]/156.5:.2f}" for kk in libs), flush=True)
        for kk in libs: assert np.allclose(outs[kk], outs["numpy"], rtol=1e-3, atol=1e-2)
print("load", os.getloadavg())
