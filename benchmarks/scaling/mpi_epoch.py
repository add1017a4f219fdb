"""Seconds per epoch of pynet.distributed.fit on random data, for docs/scaling.md.

mpiexec -n P python benchmarks/scaling/mpi_epoch.py --layers 784,128,10 --samples 60000 --batch 128 [--local-sgd K] [--batches global]
Each rank generates only its shard (seeded by global row block); one warm-up epoch, then --epochs timed.

--exchange barrier|none is a diagnostic for the bound in docs/scaling.md: the per-step Allreduce of the
gradient is replaced by a Barrier (the ranks still wait for each other at every step but move no data) or
by nothing (no synchronisation at all). The ranks' parameters then drift apart, so only the times mean
anything; "allreduce_ms_per_step" is then the time spent in the replacement.
"""
import argparse
import json

import numpy as np

import pynet
from pynet import distributed

p = argparse.ArgumentParser()
p.add_argument("--layers", default="784,128,10")
p.add_argument("--samples", type=int, default=60000)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--local-sgd", type=int, default=0)
p.add_argument("--batches", default="balanced", choices=["balanced", "global"])
p.add_argument("--backend", default="c")
p.add_argument("--dtype", default="float32")
p.add_argument("--exchange", default="allreduce", choices=["allreduce", "barrier", "none"])
a = p.parse_args()
comm = distributed.comm_world()


class Exchange:
    """COMM_WORLD, except that the training step's Allreduce (the n_params + 2 buffer) becomes --exchange."""

    def __init__(self, comm, step_len):
        self.comm, self.step_len = comm, step_len

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def Allreduce(self, sendbuf, recvbuf, op):
        if recvbuf.shape[0] != self.step_len:
            return self.comm.Allreduce(sendbuf, recvbuf, op=op)
        if a.exchange == "barrier":
            self.comm.Barrier()


layers = [int(v) for v in a.layers.split(",")]
lo, hi = distributed.shard(a.samples, comm.Get_size(), comm.Get_rank())
rng = np.random.default_rng(lo)
X = rng.standard_normal((hi - lo, layers[0])).astype(a.dtype)
y = rng.integers(0, layers[-1], hi - lo)
net = pynet.MLP(layers, activation="relu", dtype=a.dtype, backend=a.backend, seed=0)
if a.exchange != "allreduce":
    comm = Exchange(comm, net.params.shape[0] + 2)
kw = dict(comm=comm, loss="cross_entropy", lr=0.01, batch_size=a.batch, local_sgd=a.local_sgd, batches=a.batches, threads=1)
distributed.fit(net, X, y, epochs=1, **kw)
h = distributed.fit(net, X, y, epochs=a.epochs, **kw)
if comm.Get_rank() == 0:
    steps = sum(h.steps)
    print(json.dumps({"ranks": comm.Get_size(), "exchange": a.exchange, "layers": layers, "local_sgd": a.local_sgd, "batches": a.batches, "backend": a.backend,
                      "epoch_seconds": [round(s, 4) for s in h.seconds], "median_epoch_s": float(np.median(h.seconds)),
                      "allreduce_ms_per_step": 1e3 * sum(h.allreduce_seconds) / steps, "steps_per_epoch": h.steps[0]}))
