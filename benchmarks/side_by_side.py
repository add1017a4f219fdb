"""pynet backends and PyTorch eager, side by side in one run (not a test).

Every runner trains one epoch on the same float32 data, from the same initial weights, in the same batch
order with plain SGD at the same learning rate. Runs alternate (A B C A B C …); after one warm-up run
per runner (whose extra time over the median is reported as compile time) the median of --repeats
runs is reported, with ratios against PyTorch. pynet backends are driven through ``kernels.load`` and
the fused ``train_epoch`` kernel, so any backend that implements the contract can be compared.

    flock /tmp/pynet-bench.lock python benchmarks/side_by_side.py [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kernels  # noqa: E402
from kernels import contract as C  # noqa: E402

WORKLOADS = {
    # name: (sizes, hidden activation, loss, batch, samples, lr)
    "small": ([20, 64, 64, 1], C.RELU, C.MSE, 32, 20_000, 0.01),
    "mnist": ([784, 128, 10], C.RELU, C.CE, 128, 60_000, 0.05),
    "wide": ([1024, 1024, 1024, 10], C.RELU, C.CE, 512, 8_192, 0.05),
}


def make_problem(name, seed=0):
    sizes, act, loss, bs, n, lr = WORKLOADS[name]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    if loss == C.CE:
        labels = rng.integers(0, sizes[-1], n)
        Y = np.eye(sizes[-1], dtype=np.float32)[labels]
    else:
        labels = None
        Y = rng.standard_normal((n, sizes[-1]), dtype=np.float32)
    params = np.empty(C.n_params(sizes), np.float32)
    for (w, b, e), ni, no in zip(C.layout(sizes), sizes[:-1], sizes[1:]):
        params[w:b] = rng.standard_normal(ni * no) * np.sqrt(2.0 / ni)
        params[b:e] = 0
    perm = rng.permutation(n).astype(np.int64)
    acts = [act] * (len(sizes) - 2) + [C.SOFTMAX if loss == C.CE else C.IDENTITY]
    return dict(sizes=np.array(sizes, np.int64), acts=np.array(acts, np.int64), loss=loss, bs=bs, lr=lr,
                X=X, Y=Y, labels=labels, params=params, perm=perm)


class PynetRunner:
    def __init__(self, backend, prob, threads):
        self.name = backend
        self.k = kernels.load(backend)
        self.k.set_num_threads(threads)
        self.p = prob
        P = prob["params"].shape[0]
        self.params = prob["params"].copy()
        self.grads = np.zeros(P, np.float32)
        self.state = np.zeros(2 * P, np.float32)
        self.step = np.zeros(1, np.int64)
        self.ws = np.zeros(C.train_workspace_size(prob["sizes"], prob["bs"]), np.float32)
        self.hyper = np.array([prob["lr"], 0, 0, 0, 0.9, 0.999, 1e-8])
        self.no_alive, self.no_grad = np.zeros(0, np.int64), np.zeros(0)

    def epoch(self):
        p = self.p
        self.params[:] = p["params"]
        return self.k.raw.train_epoch(self.params, self.grads, p["sizes"], p["acts"], p["loss"], p["X"], p["Y"],
                                      None, p["perm"], p["bs"], C.SGD, self.hyper, self.state, self.step, self.ws,
                                      self.no_alive, self.no_grad)


class TorchRunner:
    name = "torch"

    def __init__(self, prob, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.p = prob
        sizes = [int(s) for s in prob["sizes"]]
        layers = []
        for i, (ni, no) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(ni, no))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.X = torch.from_numpy(prob["X"])
        self.Y = torch.from_numpy(prob["labels"]) if prob["loss"] == C.CE else torch.from_numpy(prob["Y"])
        self.perm = torch.from_numpy(prob["perm"])
        self.opt = torch.optim.SGD(self.model.parameters(), lr=prob["lr"])
        self.lossf = torch.nn.functional.cross_entropy if prob["loss"] == C.CE else torch.nn.functional.mse_loss

    def load(self, flat):
        with self.torch.no_grad():
            for (w, b, e), lin in zip(C.layout(self.p["sizes"]), self.linears):
                lin.weight.copy_(self.torch.from_numpy(flat[w:b].reshape(lin.in_features, lin.out_features).T))
                lin.bias.copy_(self.torch.from_numpy(flat[b:e]))

    def epoch(self):
        self.load(self.p["params"])
        bs, n = self.p["bs"], self.perm.shape[0]
        total = 0.0
        for s in range(0, n, bs):
            idx = self.perm[s:s + bs]
            self.opt.zero_grad(set_to_none=True)
            loss = self.lossf(self.model(self.X[idx]), self.Y[idx])
            loss.backward()
            self.opt.step()
            total += loss.item() * idx.shape[0]
        return total / n


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_workload(name, backends, repeats, threads, use_torch):
    prob = make_problem(name)
    runners = [PynetRunner(b, prob, threads) for b in backends]
    if use_torch:
        runners.append(TorchRunner(prob, threads))
    first, times, losses = {}, {r.name: [] for r in runners}, {}
    for r in runners:
        first[r.name], losses[r.name] = timed(r.epoch)
    for _ in range(repeats):
        for r in runners:
            dt, losses[r.name] = timed(r.epoch)
            times[r.name].append(dt)
    rows = []
    for r in runners:
        med = statistics.median(times[r.name])
        rows.append(dict(workload=name, runner=r.name, median_s=med, min_s=min(times[r.name]),
                         first_s=first[r.name], compile_s=max(0.0, first[r.name] - med), loss=float(losses[r.name])))
    return rows


def bench_gemm(backends, repeats, threads, n=2048):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, n), dtype=np.float32)
    W = rng.standard_normal((n, n), dtype=np.float32)
    b = np.zeros(n, np.float32)
    Z = np.empty((n, n), np.float32)
    runs = {"numpy.matmul": lambda: np.matmul(X, W, out=Z)}
    for name in backends:
        k = kernels.load(name)
        k.set_num_threads(threads)
        runs[f"{name}.dense_forward"] = (lambda k=k: k.raw.dense_forward(X, W, b, Z))
    for fn in runs.values():
        fn()
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            times[key].append(timed(fn)[0])
    flop = 2.0 * n ** 3
    return [dict(workload=f"gemm{n}", runner=key, median_s=statistics.median(t), gflops=flop / statistics.median(t) / 1e9)
            for key, t in times.items()]


def _peak_mib():
    """Peak RSS of this process in MiB. getrusage's ru_maxrss survives exec on Linux (a child started by a
    big parent reports the parent's peak), so VmHWM from /proc is preferred where it exists."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(runner, workload, epochs, threads):
    """Runs in a subprocess: peak RSS (MiB) after each epoch."""
    prob = make_problem(workload)
    r = TorchRunner(prob, threads) if runner == "torch" else PynetRunner(runner, prob, threads)
    peaks = []
    for _ in range(epochs):
        r.epoch()
        peaks.append(_peak_mib())
    print(json.dumps(peaks))


def bench_rss(backends, threads, use_torch, epochs=3, workload="mnist"):
    rows = []
    for name in list(backends) + (["torch"] if use_torch else []):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", name, workload, str(epochs),
                              str(threads)], capture_output=True, text=True, check=True)
        peaks = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(dict(workload=f"rss-{workload}", runner=name, peak_mib=peaks[-1], per_epoch_mib=peaks))
    return rows


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(cpu=model, cores=os.cpu_count(), python=platform.python_version(), numpy=np.__version__)


def print_table(rows):
    by = {}
    for r in rows:
        by.setdefault(r["workload"], []).append(r)
    for wl, rs in by.items():
        print(f"\n== {wl}")
        if wl.startswith("gemm"):
            base = next(r for r in rs if r["runner"] == "numpy.matmul")["gflops"]
            for r in rs:
                print(f"  {r['runner']:<22} {r['median_s'] * 1e3:9.1f} ms  {r['gflops']:7.1f} GFLOP/s  "
                      f"{r['gflops'] / base:6.2f}x numpy")
        elif wl.startswith("rss"):
            for r in rs:
                print(f"  {r['runner']:<10} peak {r['peak_mib']:8.1f} MiB   after each epoch: "
                      + ", ".join(f"{x:.1f}" for x in r["per_epoch_mib"]))
        else:
            t = next((r["median_s"] for r in rs if r["runner"] == "torch"), None)
            for r in rs:
                ratio = f"{t / r['median_s']:7.2f}x torch" if t else ""
                print(f"  {r['runner']:<8} median {r['median_s'] * 1e3:9.1f} ms  (min {r['min_s'] * 1e3:8.1f})  "
                      f"first {r['first_s'] * 1e3:9.1f} ms  compile~{r['compile_s']:6.2f} s  {ratio}  loss {r['loss']:.5g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default=None, help="comma list among numpy,numba,c (default: every available)")
    ap.add_argument("--workloads", default="small,mnist,wide,gemm,rss")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.rss_child:
        runner, wl, epochs, threads = a.rss_child
        return rss_child(runner, wl, int(epochs), int(threads))
    if a.backends:
        backends = a.backends.split(",")
    else:
        backends = [b for b, why in kernels.status().items() if why is None]
    backends = sorted(backends, key=["numpy", "numba", "c"].index)
    use_torch = not a.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch not installed: pip install torch==2.13.0 (CPU wheel); comparing pynet backends only")
            use_torch = False
    rows = []
    for wl in a.workloads.split(","):
        before = len(rows)
        if wl in WORKLOADS:
            rows += bench_workload(wl, backends, a.repeats, a.threads, use_torch)
        elif wl == "gemm":
            rows += bench_gemm([b for b in backends if b != "numpy"], a.repeats, a.threads)
        elif wl == "rss":
            rows += bench_rss([b for b in backends if b != "numpy"], a.threads, use_torch)
        else:
            raise SystemExit(f"unknown workload {wl!r}")
        print_table(rows[before:])
    info = dict(machine=machine(), threads=a.threads, repeats=a.repeats, rows=rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=1)
    return info


if __name__ == "__main__":
    main()
