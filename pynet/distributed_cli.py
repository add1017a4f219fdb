"""``pynet train --distributed`` under ``mpiexec -n P``: every rank runs this; rank 0 reports and writes.

Data: a shipped dataset is split into train/test exactly as one process splits it and the training
rows are sharded; a CSV or .npz file is read by each rank for its own rows only, with a seeded
per-row train/test assignment, and the held-out metrics are summed over the ranks.
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from . import datasets, distributed
from .model import MLP

_CLASSIFICATION = ("cross_entropy", "binary_cross_entropy")


def train(args) -> int:
    comm = distributed.comm_world()
    try:
        return _train(args, comm)
    except Exception as exc:
        if comm.Get_size() == 1:
            raise  # the CLI's usual one-line error
        # a rank alone cannot leave a collective operation: stop the whole job with a clear message
        print(f"pynet train: error on rank {comm.Get_rank()} of {comm.Get_size()}: {exc}", file=sys.stderr, flush=True)
        comm.Abort(2)
        return 2


def _task(y, loss_arg, comm):
    """The loss one process would choose for labels y, from every rank's labels."""
    labels = np.unique(np.concatenate([np.asarray(u) for u in comm.allgather(np.unique(y))]))
    n = sum(comm.allgather(len(y)))
    if loss_arg:
        return loss_arg, labels
    classification = y.dtype.kind in "iuUSb" and len(labels) <= max(20, n // 20)
    if not classification:
        return "mse", labels
    return ("binary_cross_entropy" if len(labels) == 2 else "cross_entropy"), labels


def _data(args, comm):
    """(X_train, y_train, X_test, y_test, loss, labels, whole_test): this rank's part of each."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if args.dataset:
        X, y = datasets.load(args.dataset)
        loss = args.loss or datasets.TASK[args.dataset]
        Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, args.test_fraction, seed=args.seed,
                                                       stratify=loss in _CLASSIFICATION)
        lo, hi = distributed.shard(len(Xtr), size, rank)
        return Xtr[lo:hi], ytr[lo:hi], Xte, yte, loss, np.unique(y), True
    target = int(args.target) if args.target is not None and args.target.lstrip("-").isdigit() else args.target
    if args.npz:
        n = datasets.count_npz_rows(args.npz)
        lo, hi = distributed.shard(n, size, rank)
        X, y = datasets.read_npz(args.npz, rows=(lo, hi))
    else:
        n = datasets.count_csv_rows(args.csv)
        lo, hi = distributed.shard(n, size, rank)
        X, y, _ = datasets.read_csv(args.csv, target=target, rows=(lo, hi))
    # a per-row coin from one seeded stream over all n rows: each rank takes the coins of its rows
    test = np.random.default_rng(args.seed).random(n)[lo:hi] < args.test_fraction
    loss, labels = _task(y, args.loss, comm)
    return X[~test], y[~test], X[test], y[test], loss, labels, False


def _train(args, comm):
    rank, size = comm.Get_rank(), comm.Get_size()
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction: must be in (0, 1), got {args.test_fraction}")
    if args.optimizer == "gd":
        raise ValueError("--optimizer gd: not offered with --distributed; use sgd or adam")
    if args.validation_split or args.early_stopping or args.plot:
        raise ValueError("--validation-split/--early-stopping/--plot: not offered with --distributed")
    Xtr, ytr, Xte, yte, loss, labels, whole_test = _data(args, comm)
    classification = loss in _CLASSIFICATION
    n_train = sum(comm.allgather(len(Xtr)))
    batch_size = min(args.batch_size, n_train)
    if args.resume:
        net, info = distributed.load_checkpoint(args.resume, backend=args.backend)
        planned = info["planned_epochs"]
        batches = args.batches or info.get("batches", "balanced")
        epochs = planned - info["epochs_done"]
        if epochs < 1:
            raise ValueError(f"--resume: the run in {args.resume} already finished its {planned} epochs")
    else:
        n_out = (len(labels) if loss == "cross_entropy" else 1)
        output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
        net = MLP([Xtr.shape[1], *args.hidden, n_out], activation=args.activation, output=output,
                  backend=args.backend, dtype=args.dtype, seed=args.seed, standardize=not args.no_standardize)
        batches = args.batches or "balanced"
        planned = epochs = args.epochs or max(30, min(1000, 2000 // -(-n_train // batch_size)))
    lr = args.lr if args.lr is not None else {"adam": 0.001}.get(args.optimizer, 0.05)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = distributed.fit(net, Xtr, ytr, comm=comm, loss=loss, optimizer=args.optimizer, lr=lr,
                                  batch_size=batch_size, epochs=epochs, momentum=args.momentum,
                                  local_sgd=args.local_sgd or 0, batches=batches, checkpoint=args.checkpoint,
                                  checkpoint_every=args.checkpoint_every, planned_epochs=planned,
                                  verbose=not (args.quiet or args.json), threads=args.threads)
    seconds = time.perf_counter() - t0
    steps = sum(history.steps)
    summary = {"backend": net.backend, "dataset": args.dataset or args.csv or args.npz, "layers": net.layers,
               "loss": loss, "optimizer": args.optimizer, "ranks": size,
               "mode": f"local_sgd every {args.local_sgd} steps" if args.local_sgd else "allreduce every step",
               "batches": batches,
               "epochs": history.epochs, "epochs_trained": net.epochs_trained_, "train_rows": n_train,
               "train_seconds": round(seconds, 4),
               "epoch_seconds": [round(s, 4) for s in history.seconds],
               "allreduce_seconds_per_step": sum(history.allreduce_seconds) / steps if steps else None,
               "final_loss": history.loss[-1] if history.loss else None, "stop_reason": history.stop_reason,
               "warnings": [str(w.message) for w in caught]}
    summary.update(_evaluate(net, Xte, yte, classification, whole_test, comm))
    if args.save and rank == 0:
        net.save(args.save)
        summary["saved"] = args.save
    if args.checkpoint:
        summary["checkpoint"] = args.checkpoint
    if rank == 0:
        from .cli import _print_summary

        _print_summary(summary, args.json, classification, extra=f" | {size} ranks")
    return 0


def _evaluate(net, Xte, yte, classification, whole_test, comm):
    """Held-out metrics: on the whole test set (a shipped dataset) or summed over the ranks' test rows."""
    if whole_test:
        if classification:
            return {"test_accuracy": net.score(Xte, yte)}
        pred = net.predict(Xte)
        return {"test_mse": float(np.mean((np.asarray(yte, np.float64) - pred) ** 2)), "test_r2": net.score(Xte, yte)}
    if classification:
        hits = float(np.sum(net.predict(Xte) == yte)) if len(Xte) else 0.0
        correct, count = distributed._sum(comm, [hits, len(Xte)])
        return {"test_accuracy": correct / count if count else None, "test_rows": int(count)}
    y = np.asarray(yte, np.float64).reshape(len(yte), -1)
    pred = net.predict(Xte).reshape(len(yte), -1) if len(Xte) else y
    sse, sy, syy, count = distributed._sum(comm, [np.sum((y - pred) ** 2), y.sum(), (y ** 2).sum(), y.size])
    sst = syy - sy * sy / count if count else 0.0
    return {"test_mse": sse / count if count else None, "test_r2": 1 - sse / sst if sst > 0 else None,
            "test_rows": int(count // max(y.shape[1], 1))}
