"""Seconds from process start to the end of a first small training epoch (the warm-cache start goal).

Run it once to fill the Numba cache, then several times in fresh processes and take the median:

    for i in 1 2 3 4 5 6 7; do python benchmarks/warm_start.py; done

Prints the time from the process's start (read from /proc, so it includes the interpreter's own start)
to the end of ``fit``, and the stages in between.
"""
import os
import sys
import time


def since_process_start() -> float:
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


t0 = time.perf_counter()
s0 = since_process_start()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402

import pynet  # noqa: E402

t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((2000, 20), dtype=np.float32)
y = rng.standard_normal((2000, 1), dtype=np.float32)
net = pynet.MLP([20, 64, 64, 1], activation="relu", backend=os.environ.get("BACKEND", "numba"), dtype="float32")
net.fit(X, y, loss="mse", optimizer="sgd", lr=0.01, batch_size=32, epochs=1)
t2 = time.perf_counter()
print(f"process start -> script {s0:.2f} s, imports {t1 - t0:.3f} s, model + first epoch {t2 - t1:.3f} s, "
      f"total {s0 + t2 - t0:.3f} s")
