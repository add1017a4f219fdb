"""Data-parallel training over MPI: ``mpiexec -n P pynet train … --distributed`` or :func:`fit`.

Each rank holds a contiguous shard of the training rows (global rows [lo, hi), in rank order). All
ranks start from rank 0's weights, optimizer state and random state (Bcast) and so draw the same
shuffled order of the *global* rows. Two modes:

* ``local_sgd=0`` (default) — synchronous data parallelism. For each global mini-batch B of the
  epoch's order, rank r computes the gradient of its slice B_r = B ∩ shard_r with the fused ``batch_gradient``
  kernel, and one ``Allreduce`` (sum) combines the buffer [W_r·g_r, W_r·L_r, W_r] where
  W_r = Σ_{i∈B_r} w_i. Then g = Σ_r W_r g_r / Σ_r W_r is exactly the gradient of the whole batch's
  mean loss (for ``ssr``, a sum, the plain sum of the g_r), even with uneven slices and sample
  weights (without weights W_r / Σ_r W_r = |B_r| / |B| is known on every rank, so each rank scales
  by it before the Allreduce and the sum is g itself: one pass over the buffer instead of two),
  and every rank applies the same ``sgd_update`` / ``adam_update``. The parameters after an
  epoch equal those of one process with batch size B, up to rounding.
* ``local_sgd=K`` — local SGD with parameter averaging: each rank runs the fused ``train_epoch`` over
  K local batches of B/P rows of its own shard, then one ``Allreduce`` averages θ = Σ_r θ_r / P.
  One message per K steps instead of one per step, at the price of staler gradients: the result is
  no longer one process's SGD, and larger K needs more epochs for the same loss (optimizer state —
  momentum, Adam moments — stays local to each rank). Use it when the per-step Allreduce costs more
  than the compute (small networks, slow links; see docs/scaling.md).

The epoch's order of the global rows (``batches``): ``"balanced"`` (default) shuffles each shard and
interleaves the shards in proportion to their sizes (:func:`batch_order`), so every global batch takes
the same share of rows from every rank (±1) and no rank waits for a larger slice; ``"global"`` is one
shuffle of all rows, the exact batch sequence of ``MLP.fit`` with the same seed, at the price of
slices that vary from batch to batch (binomially: with 2 ranks and B = 128, ±6 rows typically).
With one rank both are the same order. Either way the result equals one process trained on that
order with batch B.

Only rank 0 shows progress and writes checkpoints (atomic, :func:`save_checkpoint`: parameters,
optimizer state, epochs done, the generator's state and the run's settings); :func:`load_checkpoint`
continues a run exactly where the checkpoint left it.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from kernels import contract as C

from . import _backend, io, optim
from ._validation import as_labels, positive_int, sample_weights
from .history import History
from .progress import Progress

__all__ = ["fit", "shard", "batch_order", "comm_world", "save_checkpoint", "load_checkpoint"]

BATCH_ORDERS = ("balanced", "global")

CHECKPOINT_KEY = "checkpoint"


def comm_world():
    """MPI.COMM_WORLD, or a RuntimeError saying how to install MPI support."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError("distributed training needs mpi4py and an MPI library: pip install 'pynet[mpi]' "
                           f"({type(exc).__name__}: {exc})") from exc
    return MPI.COMM_WORLD


def shard(n: int, size: int, rank: int) -> tuple[int, int]:
    """Rows [lo, hi) of rank ``rank`` when n rows are split into ``size`` contiguous near-equal shards."""
    base, extra = divmod(int(n), int(size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def batch_order(rng, counts, batches="balanced"):
    """The epoch's order of the global rows when rank r holds ``counts[r]`` contiguous rows.

    "balanced": rank r's rows are shuffled and its i-th row gets the key (i + ½)/counts[r]; the order
    sorts all rows by key (ties by rank), so any B consecutive rows hold B·counts[r]/n ± 1 of rank r's.
    "global": ``rng.permutation(n)``. Both draw the same numbers when there is one rank.
    """
    counts = np.asarray(counts, np.int64)
    if batches == "global" or counts.shape[0] == 1:
        return rng.permutation(int(counts.sum()))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rows = np.concatenate([rng.permutation(int(c)) + s for c, s in zip(counts, starts)])
    keys = np.concatenate([(np.arange(c) + 0.5) / c for c in counts])
    return rows[np.argsort(keys, kind="stable")].astype(np.int64)


def _sum(comm, values, dtype=np.float64):
    from mpi4py import MPI

    buf = np.array(values, dtype)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


def _kernel_threads(comm):
    """One share of this node's cores per rank on it (no oversubscription when P ranks share a node)."""
    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return max(1, (os.cpu_count() or 1) // local.Get_size())
    finally:
        local.Free()


def _global_standardization(net, X, comm):
    """mean_ and scale_ over every rank's rows (two passes: Σx, then Σ(x − mean)², in float64)."""
    n = _sum(comm, [X.shape[0]])[0]
    mean = _sum(comm, X.sum(axis=0, dtype=np.float64)) / n
    var = _sum(comm, ((X - mean) ** 2).sum(axis=0)) / n
    std = np.sqrt(var)
    net.mean_ = mean.astype(net.dtype)
    net.scale_ = np.where(std > 0, std, 1).astype(net.dtype)


def _global_classes(net, y, comm):
    """Fix classes_ from the labels of every rank, with the rules one process applies to all of y."""
    if net.loss not in ("cross_entropy", "binary_cross_entropy") or net.classes_ is not None:
        return
    arr = np.asarray(y)
    if arr.ndim != 1:
        return  # one-hot / multi-label matrices carry no label set
    labels = np.concatenate([np.asarray(u) for u in comm.allgather(np.unique(as_labels(arr)))])
    net._targets(np.unique(labels), labels.shape[0])


def fit(net, X, y, *, comm=None, loss=None, optimizer="sgd", lr=None, batch_size=32, epochs=10, shuffle=True,
        sample_weight=None, momentum=None, nesterov=None, weight_decay=None, local_sgd=0, batches="balanced",
        checkpoint=None, checkpoint_every=1, planned_epochs=None, verbose=False, threads=None) -> History:
    """Train ``net`` on this rank's shard (X, y) for ``epochs`` more epochs; every rank calls it.

    g = Σ_r W_r g_r / Σ_r W_r per global batch of ``batch_size`` rows (one Allreduce per step), or with
    ``local_sgd=K`` θ = mean_r θ_r every K local steps; ``batches``: "balanced" or "global" order
    (module docstring). Returns the same History on every rank, with
    ``allreduce_seconds`` (per epoch) and ``steps`` (Allreduces per epoch) added. Checkpoints go to
    ``checkpoint`` every ``checkpoint_every`` epochs (rank 0). ``threads``: kernel threads per rank
    (default: this node's cores divided among its ranks).
    """
    comm = comm if comm is not None else comm_world()
    rank, size = comm.Get_rank(), comm.Get_size()
    opt = optim.make(optimizer, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if isinstance(opt, optim.GD):
        raise ValueError("optimizer: 'gd' is not offered distributed; use 'sgd' with a batch as large as the data")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
    if isinstance(local_sgd, bool) or not isinstance(local_sgd, (int, np.integer)) or local_sgd < 0:
        raise ValueError(f"local_sgd: must be an integer >= 0 (0: one Allreduce per step), got {local_sgd!r}")
    if batches not in BATCH_ORDERS:
        raise ValueError(f"batches: must be one of {', '.join(BATCH_ORDERS)}, got {batches!r}")
    _backend.set_num_threads(threads if threads is not None else _kernel_threads(comm))

    net._choose_loss(loss)
    if net.standardize and net.mean_ is None:
        _global_standardization(net, np.asarray(X, np.float64), comm)
    _global_classes(net, y, comm)
    X = net._inputs(X)
    Y = net._targets(y, X.shape[0])
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"y: has {Y.shape[0]} rows but X has {X.shape[0]}")
    sw = sample_weights(sample_weight, X.shape[0], net.dtype)
    counts = np.array(comm.allgather(X.shape[0]), np.int64)
    n, lo = int(counts.sum()), int(counts[:rank].sum())
    if batch_size > n:
        raise ValueError(f"batch_size: {batch_size} is larger than the {n} training rows of all ranks")

    k = net._kernels()
    P = net.params.shape[0]
    key = (opt.name, net.dtype.str)
    if net._opt_key != key:  # a new optimizer kind starts from zero state; the same one continues
        net._opt_state, net._opt_key = np.zeros(2 * P, net.dtype), key
        net._opt_step[0] = 0
    # one starting point for all: rank 0's weights, optimizer state and random state
    comm.Bcast(net.params, root=0)
    comm.Bcast(net._opt_state, root=0)
    comm.Bcast(net._opt_step, root=0)
    net._rng.bit_generator.state = comm.bcast(net._rng.bit_generator.state, root=0)

    run = _Run(net, k, opt, X, Y, sw, comm, batch_size, int(local_sgd), int(counts.max()))
    history = History(monitor="loss", backend=k.name, optimizer=opt.name)
    history.allreduce_seconds, history.steps = [], []
    planned = planned_epochs or net.epochs_trained_ + epochs
    progress = Progress(epochs, enabled=verbose and rank == 0)
    history.stop_reason = f"epochs: ran all {epochs} epochs"
    try:
        for epoch in range(epochs):
            perm = batch_order(net._rng, counts, batches) if shuffle else np.arange(n, dtype=np.int64)
            mine = (perm >= lo) & (perm < lo + X.shape[0])
            t0 = time.perf_counter()
            value = run.local_sgd_epoch(perm[mine] - lo) if local_sgd else run.epoch(perm, mine, lo)
            history.seconds.append(time.perf_counter() - t0)
            history.allreduce_seconds.append(run.comm_seconds)
            history.steps.append(run.steps)
            net.epochs_trained_ += 1
            if not np.isfinite(value):
                history.stop_reason = (f"diverged: the loss became {value} at epoch {epoch + 1}; the last finite "
                                       f"weights were kept. Try a lower learning rate (now {opt.lr:g})")
                break
            history.loss.append(float(value))
            progress.update(epoch + 1, history)
            if checkpoint is not None and (epoch + 1) % checkpoint_every == 0 and rank == 0:
                save_checkpoint(net, checkpoint, planned, {"optimizer": opt.name, "batch_size": batch_size,
                                                           "local_sgd": int(local_sgd), "batches": batches,
                                                           "ranks": size})
                if verbose:
                    print(f"\npynet: checkpoint after epoch {net.epochs_trained_} of {planned} written to "
                          f"{checkpoint}", file=sys.stderr, flush=True)
    finally:
        progress.close()
    if history.loss:
        best = int(np.argmin(history.loss))
        history.best_epoch, history.best_loss = best, history.loss[best]
    comm.Barrier()  # nobody leaves before rank 0's last checkpoint is on disk
    return history


class _Run:
    """Buffers of one distributed fit: [gradient | weighted loss | weight sum] and the workspaces."""

    def __init__(self, net, k, opt, X, Y, sw, comm, batch_size, local_sgd, max_rows):
        self.net, self.k, self.opt, self.comm = net, k, opt, comm
        self.X, self.Y, self.sw = X, Y, sw
        self.sizes, self.acts = net._sizes(), net._act_codes()
        self.loss = C.LOSSES.index(net.loss)
        self.is_sum = self.loss == C.SSR  # ssr is a sum over rows: its slice gradients simply add up
        self.hyper = opt.hyper()
        self.batch_size, self.local_sgd, self.max_rows = batch_size, local_sgd, max_rows
        P = net.params.shape[0]
        self.P = P
        self.buf = np.zeros(P + 2, net.dtype)   # the one Allreduce buffer of a step
        self.grads = self.buf[:P]               # batch_gradient writes straight into it
        self.comm_seconds, self.steps = 0.0, 0
        self.checked = False
        if local_sgd:
            self.local_batch = max(1, batch_size // comm.Get_size())
            rows = min(self.local_batch, max(X.shape[0], 1))
            self.scratch = np.zeros(P, net.dtype)
        else:
            rows = min(batch_size, X.shape[0])
        self.workspace = np.empty(C.train_workspace_size(self.sizes, max(rows, 1)), net.dtype)

    def _allreduce(self):
        from mpi4py import MPI

        t0 = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, self.buf, op=MPI.SUM)
        self.comm_seconds += time.perf_counter() - t0
        self.steps += 1

    def epoch(self, perm, mine, lo):
        """One pass over the global order perm; this rank's slice of batch b is local[cuts[b]:cuts[b+1]]."""
        net, k, P, B = self.net, self.k, self.P, self.batch_size
        self.comm_seconds, self.steps = 0.0, 0
        local = perm[mine] - lo
        starts = np.arange(0, perm.shape[0] + B, B)
        cuts = np.searchsorted(np.flatnonzero(mine), np.minimum(starts, perm.shape[0]))
        total, rows_seen = 0.0, 0
        raw = k.raw
        for b in range(len(starts) - 1):
            if starts[b] >= perm.shape[0]:
                break
            rows = local[cuts[b]:cuts[b + 1]]
            n_rows = min(B, perm.shape[0] - starts[b])
            # the factor that turns this slice's gradient into its part of the batch's: 1 for a sum loss,
            # n_r / n_b unweighted (known here, so the Allreduce yields g itself), W_r weighted (Σ W_r follows)
            weight = float(rows.shape[0]) if self.sw is None else float(self.sw[rows].sum(dtype=np.float64))
            share = 1.0 if self.is_sum else weight / n_rows if self.sw is None else weight
            if weight > 0:
                # the first call goes through the contract's checks; later ones differ only in rows
                fn = raw.batch_gradient if self.checked else k.batch_gradient
                value = fn(net.params, self.grads, self.sizes, self.acts, self.loss, self.X, self.Y, self.sw,
                           rows, self.workspace)
                self.checked = True
                if share != 1.0:
                    self.grads *= self.grads.dtype.type(share)
                self.buf[P] = value * share
                self.buf[P + 1] = weight
            else:
                self.buf[:] = 0  # no rows of this batch here: contribute nothing
            self._allreduce()
            batch_loss = float(self.buf[P]) / float(self.buf[P + 1]) if self.sw is not None and not self.is_sum \
                else float(self.buf[P])
            if not np.isfinite(batch_loss):
                return batch_loss  # every rank sees the same sum: all stop before applying the step
            if self.sw is not None and not self.is_sum:
                self.grads /= self.buf[P + 1]
            self._update()
            total += batch_loss if self.is_sum else batch_loss * n_rows
            rows_seen += n_rows
        return total if self.is_sum else total / rows_seen

    def _update(self):
        net, h, raw = self.net, self.hyper, self.k.raw
        state = net._opt_state
        if self.opt.kernel == C.ADAM:
            net._opt_step[0] += 1
            raw.adam_update(net.params, self.grads, state[:self.P], state[self.P:], int(net._opt_step[0]), h[0], h[4],
                            h[5], h[6], h[3])
        else:
            raw.sgd_update(net.params, self.grads, state[:self.P], h[0], h[1], int(h[2]), h[3])

    def local_sgd_epoch(self, order):
        """Rounds of K local batches of this rank's shuffled rows (train_epoch), then θ = mean of the ranks' θ."""
        net, k, P = self.net, self.k, self.P
        self.comm_seconds, self.steps = 0.0, 0
        size = self.comm.Get_size()
        chunk = self.local_batch * self.local_sgd
        rounds = -(-self.max_rows // chunk)
        no_alive, no_sq = np.zeros(0, np.int64), np.zeros(0)
        loss_sum, rows_sum = 0.0, 0.0
        for r in range(rounds):
            seg = np.ascontiguousarray(order[r * chunk:(r + 1) * chunk])
            self.scratch[...] = net.params  # the common θ before the round, kept in case a rank diverges
            value = 0.0
            if seg.shape[0]:
                value = k.train_epoch(net.params, self.grads, self.sizes, self.acts, self.loss, self.X, self.Y,
                                      self.sw, seg, self.local_batch, self.opt.kernel, self.hyper, net._opt_state,
                                      net._opt_step, self.workspace, no_alive, no_sq)
            self.buf[:P] = net.params
            self.buf[P] = value if self.is_sum else value * seg.shape[0]
            self.buf[P + 1] = seg.shape[0]
            self._allreduce()
            if not np.isfinite(self.buf[P]) or not np.all(np.isfinite(self.buf[:P])):
                net.params[...] = self.scratch
                return float("nan") if np.isfinite(self.buf[P]) else float(self.buf[P])
            net.params[...] = self.buf[:P] / size
            loss_sum += float(self.buf[P])
            rows_sum += float(self.buf[P + 1])
        return loss_sum if self.is_sum else loss_sum / rows_sum


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(net, path, planned_epochs, settings=None) -> None:
    """Write ``net`` with its optimizer state, epochs done, generator state and ``settings`` atomically.

    The file is a pynet model file (``pynet.load`` reads it as a model); :func:`load_checkpoint`
    reads the rest.
    """
    state = net._rng.bit_generator.state
    meta = {CHECKPOINT_KEY: {"epochs_done": int(net.epochs_trained_), "planned_epochs": int(planned_epochs),
                             "rng": json.loads(json.dumps(state)), "opt_key": list(net._opt_key or []),
                             **(settings or {})}}
    arrays = {}
    if net._opt_state is not None:
        arrays = {"opt_state": net._opt_state, "opt_step": net._opt_step}
    io.save(net, path, extra_meta=meta, extra_arrays=arrays)


def load_checkpoint(path, backend=None):
    """(net, info) from a checkpoint: the model with its optimizer and random state restored, and the
    checkpoint's record (``epochs_done``, ``planned_epochs``, the run's settings)."""
    net, meta, arrays = io.read(path, backend)
    info = meta.get(CHECKPOINT_KEY)
    if not isinstance(info, dict):
        raise io.ModelFileError(f"path: {os.fspath(path)!r} is a model file but not a training checkpoint")
    net._rng.bit_generator.state = info["rng"]
    if "opt_state" in arrays:
        if arrays["opt_state"].shape != (2 * net.params.shape[0],) or arrays["opt_state"].dtype != net.dtype:
            raise io.ModelFileError(f"path: the optimizer state in {os.fspath(path)!r} does not match the model")
        net._opt_state = arrays["opt_state"].copy()
        net._opt_step = arrays["opt_step"].astype(np.int64).copy()
        net._opt_key = tuple(info["opt_key"])
    return net, info
