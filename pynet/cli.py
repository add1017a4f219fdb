"""The ``pynet`` command: ``train`` fits data, ``info`` describes the machine and backends,
``warmup`` compiles the JIT kernels ahead of time. Errors are one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

from kernels import contract as C

from . import __version__, _backend, _jit, datasets
from .bench import GROUPS, PEERS, PRESETS
from .model import MLP
from .optim import OPTIMIZERS
from .progress import Progress


class CLIError(Exception):
    pass


#: `pynet train`'s defaults for mini-batch optimizers: early stopping on this fraction of the training rows,
#: after PATIENCE epochs without an improvement of the validation loss by more than MIN_DELTA. Chosen by
#: measurement (20 seeded splits each, C backend): on iris and digits the same mean held-out accuracy as the
#: former fixed 2,000-step budget (0.939 / 0.970), on spirals a better one (0.83 against 0.70), and no
#: epoch count to guess for data of another size; MIN_DELTA ends the fits (xor) whose validation loss
#: keeps creeping down by less.
DEFAULT_VALIDATION = 0.2
PATIENCE = 10
MIN_DELTA = 1e-4


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    return values


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _parser():
    p = argparse.ArgumentParser(prog="pynet", description="Fast MLP training on the CPU.")
    p.add_argument("--version", action="version", version=f"pynet {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fit a dataset and report held-out accuracy or error")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=datasets.NAMES, help="a shipped or synthetic dataset")
    src.add_argument("--csv", metavar="FILE", help="a CSV file with a header row")
    src.add_argument("--npz", metavar="FILE", help="an .npz with arrays X and y (one row per sample)")
    t.add_argument("--target", help="target column of the CSV (name or index; default: last)")
    t.add_argument("--backend", default=None, choices=_backend.CHOICES)
    t.add_argument("--hidden", type=_int_list, default=[64], help="hidden layer sizes, e.g. 64,32")
    t.add_argument("--activation", default="relu", choices=C.ELEMENTWISE)
    t.add_argument("--loss", default=None, choices=C.LOSSES, help="default: from the dataset / target type")
    t.add_argument("--optimizer", default="sgd", choices=tuple(OPTIMIZERS))
    t.add_argument("--lr", type=_positive_float, default=None)
    t.add_argument("--momentum", type=float, default=None)
    t.add_argument("--batch-size", type=_positive_int, default=32)
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="the most epochs to run (default: with early stopping, enough for about 20,000 mini-batch "
                        "steps, 30 to 1,000 epochs; without, about 2,000 steps, at least 30 epochs)")
    t.add_argument("--max-steps", type=_positive_int, default=None, help="for --optimizer gd")
    t.add_argument("--tol", type=float, default=None, help="for --optimizer gd")
    t.add_argument("--test-fraction", type=float, default=0.25)
    t.add_argument("--validation-split", type=float, default=None,
                   help=f"fraction of the training rows held out to watch the loss on (default: "
                        f"{DEFAULT_VALIDATION} with early stopping, else 0)")
    t.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=None,
                   help=f"stop when the validation loss has not improved by more than {MIN_DELTA:g} for {PATIENCE} "
                        "epochs and keep the best weights (default: on for sgd and adam with 10 or more training "
                        "rows, off for gd)")
    t.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-standardize", action="store_true", help="do not standardize the inputs")
    t.add_argument("--save", metavar="FILE", help="write the trained model here")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--plot", metavar="PNG", help="plot the loss curves and per-layer diagnostics here")
    d = t.add_argument_group("distributed (run under mpiexec -n P; needs pip install 'pynet[mpi]')")
    d.add_argument("--distributed", action="store_true",
                   help="data-parallel over the MPI ranks: one Allreduce of the gradient per step")
    d.add_argument("--local-sgd", type=_positive_int, default=None, metavar="K",
                   help="instead: K local steps per rank, then average the parameters (one Allreduce per K steps)")
    d.add_argument("--batches", choices=["balanced", "global"], default=None,
                   help="global batch order: balanced (default: every rank the same share of each batch) or "
                        "global (one shuffle of all rows: MLP.fit's exact batches; a resumed run keeps its own)")
    d.add_argument("--checkpoint", metavar="FILE", help="rank 0 writes a checkpoint here (atomically)")
    d.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="N", help="epochs between checkpoints")
    d.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    d.add_argument("--threads", type=_positive_int, default=None,
                   help="kernel threads per rank (default: the node's cores divided among its ranks)")

    b = sub.add_parser("bench", help="time training runs and kernels, side by side with peers")
    b.add_argument("--workload", default="small",
                   help=f"comma-separated presets ({', '.join(PRESETS)}) and groups ({', '.join(GROUPS)}), "
                        "or 'custom' with --layers")
    b.add_argument("--sweep-activations", metavar="NAMES",
                   help="the sweep group's hidden activations (default: relu,tanh,sigmoid,softplus)")
    b.add_argument("--sweep-widths", type=_int_list, metavar="W1,W2",
                   help="the sweep group's hidden widths (default: 7,31,256; e.g. 7,13,31,64,256)")
    b.add_argument("--sweep-batches", metavar="B1,B2",
                   help="the sweep group's batch sizes, integers or 'full' (default: 33,127,full)")
    b.add_argument("--layers", type=_int_list, help="custom workload layer sizes, e.g. 784,128,10")
    b.add_argument("--batch-size", type=_positive_int, default=32)
    b.add_argument("--samples", type=_positive_int, default=10_000)
    b.add_argument("--activation", default="relu", choices=C.ELEMENTWISE)
    b.add_argument("--loss", default="mse", choices=C.LOSSES)
    b.add_argument("--lr", type=_positive_float, default=0.01)
    b.add_argument("--backend", default="all",
                   help="comma-separated backends, or 'all' (the available ones); '<backend>-fit' times MLP.fit")
    b.add_argument("--fit", action="store_true",
                   help="also time MLP.fit (runner '<backend>-fit': validation, encoding, shuffling, "
                        "diagnostics) beside each backend's kernel, with their ratio")
    b.add_argument("--peers", default="", help=f"comma-separated peers to run alongside: {', '.join(PEERS)}")
    b.add_argument("--dtype", default="float32", help="float32, float64 or both comma-separated")
    b.add_argument("--threads", type=_positive_int, default=None, help="threads for every runner (default: all cores)")
    b.add_argument("--repeat", type=_positive_int, default=5)
    b.add_argument("--warmup", type=_positive_int, default=1)
    b.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                   help="pause before each timed run so no runner inherits another's spinning threads "
                        "(default 0.25)")
    b.add_argument("--lead-in", action="store_true",
                   help="precede each timed run by one untimed run of the same runner, so the timed one runs "
                        "as a fit's later epochs do rather than as the first after the pause")
    b.add_argument("--epochs", type=_positive_int, default=1, help="epochs per timed run (train workloads)")
    b.add_argument("--smoke", action="store_true",
                   help="tiny sizes (at most 300 rows, 2 full-batch steps, kernels 64 wide): checks that every "
                        "runner runs, times nothing meaningful")
    b.add_argument("--json", metavar="FILE", help="write every figure and the machine description here")
    b.add_argument("--csv", metavar="FILE")
    b.add_argument("--compare", metavar="OLD.json",
                   help="print speedups against an earlier --json run and mark the regressions")
    b.add_argument("--regression-threshold", type=float, default=None, metavar="FRACTION",
                   help="with --compare: a new median above old x (1 + FRACTION) is a regression (default 0.10)")
    b.add_argument("--plot", metavar="PNG", help="bar chart of time per backend and peer")
    b.add_argument("--quiet", action="store_true", help="no progress bar")

    pf = sub.add_parser("plot-fit", help="sine regression: ReLU's piecewise-linear fit against softplus's")
    pf.add_argument("--out", default="fit.png", metavar="PNG")
    pf.add_argument("--hidden", type=_int_list, default=[8])
    pf.add_argument("--epochs", type=_positive_int, default=400)
    pf.add_argument("--backend", default=None, choices=_backend.CHOICES)

    sw = sub.add_parser("sweep", help="a grid / random search, CV or ensemble of fits on a Dask cluster")
    sw.add_argument("config", metavar="CONFIG", help="the sweep description (.json or .toml; see pynet.sweep)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a LocalCluster here)")
    sw.add_argument("--workers", type=_positive_int, default=2, help="LocalCluster worker processes")
    sw.add_argument("--out", default="sweep-out", metavar="DIR", help="results.csv, results.json, best.npz go here")
    sw.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    i = sub.add_parser("info", help="backends, versions, CPU and threads")
    i.add_argument("--json", action="store_true")

    w = sub.add_parser("warmup", help="compile every JIT kernel for float32 and float64 now")
    w.add_argument("--json", action="store_true")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "info": _info, "warmup": _warmup, "bench": _bench,
                "plot-fit": _plot_fit, "sweep": _sweep}[args.command](args)
    except (CLIError, ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"pynet {args.command}: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------- train
def _load_data(args):
    if args.dataset:
        X, y = datasets.load(args.dataset)
        return X, y, datasets.TASK[args.dataset]
    if args.npz:
        X, y = datasets.read_npz(args.npz)
    else:
        X, y, _ = datasets.read_csv(args.csv, target=_target_arg(args.target))
    classification = y.dtype.kind in "iuUSb" and len(np.unique(y)) <= max(20, len(y) // 20)
    if not classification:
        return X, y, "mse"
    return X, y, "binary_cross_entropy" if len(np.unique(y)) == 2 else "cross_entropy"


def _target_arg(target):
    if target is not None and target.lstrip("-").isdigit():
        return int(target)
    return target


def _train(args):
    if args.distributed or args.local_sgd or args.resume or args.checkpoint or args.batches:
        if not args.distributed:
            raise CLIError("--local-sgd/--batches/--checkpoint/--resume: apply to --distributed training")
        from .distributed_cli import train

        return train(args)
    if args.target is not None and not args.csv:
        raise CLIError("--target: applies to --csv only")
    if args.threads:
        _backend.set_num_threads(args.threads)
    X, y, task = _load_data(args)
    loss = args.loss or task
    classification = loss in ("cross_entropy", "binary_cross_entropy")
    if not 0 < args.test_fraction < 1:
        raise CLIError(f"--test-fraction: must be in (0, 1), got {args.test_fraction}")
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, args.test_fraction, seed=args.seed,
                                                   stratify=classification)
    mini_batch = args.optimizer != "gd"
    defaults = mini_batch and len(Xtr) >= 10  # fewer rows leave no validation set worth watching
    early = args.early_stopping if args.early_stopping is not None else defaults
    validation = args.validation_split
    if validation is None:
        validation = DEFAULT_VALIDATION if early and defaults else 0.0
    if not 0 <= validation < 1:
        raise CLIError(f"--validation-split: must be in [0, 1), got {validation}")
    fit_rows = len(Xtr) - int(round(len(Xtr) * validation))
    if classification:
        n_out = len(np.unique(y)) if loss == "cross_entropy" else 1
    else:
        n_out = 1
    output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    net = MLP([X.shape[1], *args.hidden, n_out], activation=args.activation, output=output,
              backend=args.backend, dtype=args.dtype, seed=args.seed, standardize=not args.no_standardize)
    lr = args.lr if args.lr is not None else {"adam": 0.001}.get(args.optimizer, 0.05)
    fit_args = dict(loss=loss, optimizer=args.optimizer, lr=lr, validation_split=validation,
                    early_stopping=early, patience=PATIENCE, min_delta=MIN_DELTA if early else 0.0,
                    verbose=not (args.quiet or args.json))
    if args.optimizer == "gd":
        fit_args.update(tol=args.tol, max_steps=args.max_steps)
    else:
        if args.tol is not None or args.max_steps is not None:
            raise CLIError("--tol/--max-steps: apply to --optimizer gd only")
        batch_size = min(args.batch_size, max(fit_rows, 1))
        steps = -(-max(fit_rows, 1) // batch_size)
        # early stopping ends the fit when the validation loss stalls: the budget is only a ceiling
        epochs = args.epochs or max(30, min(1000, (20_000 if early else 2_000) // steps))
        fit_args.update(batch_size=batch_size, epochs=epochs)
    if args.momentum is not None:
        fit_args["momentum"] = args.momentum
    # one batch of every row runs the full-batch kernel (MLP.fit's rule): ready that one
    full = args.optimizer == "gd" or fit_args["batch_size"] >= max(fit_rows, 1)
    compile_seconds, load_seconds = _ready_jit(net.backend, args.dtype, "gd" if full else args.optimizer,
                                               quiet=args.quiet)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = net.fit(Xtr, ytr, **fit_args)
    seconds = time.perf_counter() - t0
    if history.stop_reason.startswith("diverged"):
        # a diverged model predicts nothing useful: an error (exit 2), not a low score with exit 0
        raise CLIError(history.stop_reason + ("; the model was not saved" if args.save else ""))
    summary = {"backend": net.backend, "dataset": args.dataset or args.csv, "layers": net.layers,
               "loss": loss, "optimizer": args.optimizer, "epochs": history.epochs,
               "validation_split": validation, "early_stopping": early,
               "train_seconds": round(seconds, 4), "compile_seconds": round(compile_seconds, 3),
               "load_seconds": round(load_seconds, 3),
               "final_loss": history.loss[-1] if history.loss else None,
               "stop_reason": history.stop_reason, "warnings": [str(w.message) for w in caught]}
    if classification:
        summary["test_accuracy"] = net.score(Xte, yte)
    else:
        pred = net.predict(Xte)
        summary["test_mse"] = float(np.mean((np.asarray(yte, np.float64) - pred) ** 2))
        summary["test_r2"] = net.score(Xte, yte)
    if args.save:
        net.save(args.save)
        summary["saved"] = args.save
    if args.plot:
        from . import plots

        plots.training(history, args.plot)
        summary["plot"] = args.plot
    _print_summary(summary, args.json, classification, "steps" if args.optimizer == "gd" else "epochs")
    return 0


def _ready_jit(name, dtype, optimizer, quiet):
    """Compile the kernels a JIT backend's fit with ``optimizer`` calls for dtype before the timed fit, saying so
    on stderr with the measured estimate and kernel-by-kernel progress when its cache is cold (a silent minute
    looks like a hang), or load them from the cache when it is warm, so that the fit's time is the fit's.
    (compile seconds, load seconds); (0, 0) for a backend with nothing to compile."""
    return _jit.ready(_backend.resolve(name), dtype, optimizer, load=True, quiet=quiet)


# ---------------------------------------------------------------------------- sweep
def _print_summary(summary, as_json, classification, unit="epochs", extra=""):
    """The result of `pynet train`: one JSON object, or warnings on stderr and one line on stdout that gives
    the epoch (gd: step) count once, with why training stopped. ``extra``: more " | "-separated fields."""
    if as_json:
        print(json.dumps(summary), flush=True)
        return
    for w in summary["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    score = (f"test accuracy {summary['test_accuracy']:.4f}" if classification
             else f"test MSE {summary['test_mse']:.5g} (R² {summary['test_r2']:.4f})")
    compiled = f" (+ {summary['compile_seconds']:.1f} s compiling)" if summary.get("compile_seconds") else ""
    reason = summary["stop_reason"]
    # "epochs: ran all N epochs", "max_steps: reached N steps" and "tol: … at step N" already give the count
    if not reason.startswith(("epochs:", "max_steps:", "tol:")):
        reason = f"{summary['epochs']} {unit}; {reason}"
    print(f"{score} | {summary['train_seconds']:.3f} s{compiled} | {reason}{extra} | backend {summary['backend']}",
          flush=True)


def _sweep(args):
    try:
        from . import sweep
    except ImportError as exc:
        raise CLIError(f"sweep needs dask: pip install 'pynet[dask]' ({exc})") from exc
    rows, best, paths = sweep.sweep(sweep.read_config(args.config), scheduler=args.scheduler, out_dir=args.out,
                                    n_workers=args.workers)
    failed = [r for r in rows if r["error"]]
    summary = {"configurations": len(rows), "failed": len(failed), "best": best, "saved": paths,
               "results": [os.path.join(args.out, "results.csv"), os.path.join(args.out, "results.json")]}
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for r in rows:
            what = f"score {r['score']:.4f}" if r["score"] is not None else f"FAILED: {r['error']}"
            print(f"{r['index']:3d} {what} | {r['fit_seconds']:.2f} s | "
                  + ", ".join(f"{k}={r[k]}" for k in sweep.MODEL_KEYS if r[k] is not None))
        print(f"best: #{best['index']} score {best['score']:.4f}; saved {', '.join(paths)}" if best
              else "no configuration succeeded")
    return 0 if best else 1


# ---------------------------------------------------------------------------- bench
def _split_names(text, valid, argument):
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in valid:
            raise CLIError(f"{argument}: unknown name {n!r}; valid names are {', '.join(valid)}")
    return names


def _sweep_cells(args, bench):
    acts = _split_names(args.sweep_activations, C.ELEMENTWISE, "--sweep-activations") \
        if args.sweep_activations else None
    batches = None
    if args.sweep_batches:
        batches = []
        for b in (v.strip() for v in args.sweep_batches.split(",") if v.strip()):
            try:
                batches.append(b if b == "full" else int(b))
            except ValueError:
                raise CLIError(f"--sweep-batches: expected integers or 'full', got {b!r}") from None
    try:
        return bench.sweep_workloads(acts, args.sweep_widths, batches)
    except ValueError as exc:
        raise CLIError(f"--sweep-{exc}") from None


def _bench(args):
    from dataclasses import replace

    from . import bench

    if args.layers:
        workloads = [bench.custom_workload(args.layers, args.batch_size, args.samples, args.activation,
                                           args.loss, args.lr)]
    else:
        workloads = []
        for name in _split_names(args.workload, tuple(PRESETS) + GROUPS, "--workload"):
            workloads += _sweep_cells(args, bench) if name == "sweep" else [PRESETS[name]]
    workloads = [replace(w, samples=w.samples * args.epochs) if w.kind == "train" and args.epochs > 1 else w
                 for w in workloads]
    if args.smoke:
        workloads = [bench.smoke(w) for w in workloads]
    backends = (_backend.available_backends() if args.backend == "all"
                else _split_names(args.backend, _backend.BACKENDS + bench.FIT_RUNNERS, "--backend"))
    if args.fit:  # each backend's fit runner right after its kernel runner: the pair alternates closely
        backends = [n for b in backends for n in ((b, f"{b}-fit") if b in _backend.BACKENDS else (b,))]
        backends = list(dict.fromkeys(backends))
    peers = _split_names(args.peers, PEERS, "--peers") if args.peers else []
    dtypes = _split_names(args.dtype, ("float32", "float64"), "--dtype")
    threshold = bench.REGRESSION_THRESHOLD if args.regression_threshold is None else args.regression_threshold
    if not (threshold >= 0):
        raise CLIError(f"--regression-threshold: must be a fraction >= 0, got {args.regression_threshold}")
    if args.threads:
        _backend.set_num_threads(args.threads)
    progress = Progress(len(workloads) * len(dtypes), enabled=not args.quiet, unit="workload")
    ceiling = bench.gemm_ceiling()
    try:
        settle = bench.SETTLE_S if args.settle is None else args.settle
        if not (settle >= 0):
            raise CLIError(f"--settle: must be a number of seconds >= 0, got {args.settle}")
        results = bench.run(workloads, backends + peers, dtypes, args.repeat, args.warmup, args.threads, progress,
                            settle, args.lead_in)
    finally:
        progress.close()
    record = bench.as_record(results, ceiling, "pynet " + " ".join(sys.argv[1:]), workloads)
    _print_bench(record, peers, args.repeat, args.warmup, args.lead_in)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
    if args.csv:
        _write_csv(record, args.csv)
    if args.compare:
        with open(args.compare) as fh:
            old = json.load(fh)
        rows = bench.compare(record, old)
        width = max([14] + [len(r[0]) for r in rows])
        print(f"\ncompared with {args.compare} (old/new > 1: faster now; REGRESSION: more than "
              f"{threshold:.0%} slower)")
        slower = 0
        for wl, dt, runner, o, n, ratio in rows:
            flag = bench.is_regression(ratio, threshold)
            slower += flag
            print(f"  {wl:{width}s} {dt:8s} {runner:9s} {o:10.4f} s -> {n:10.4f} s  x{ratio:.2f}"
                  + ("  REGRESSION" if flag else ""))
        print(f"{slower} regression{'s' if slower != 1 else ''} in {len(rows)} compared rows")
    if args.plot:
        from . import plots

        plots.bench(results, args.plot)
    return 0


def _print_bench(record, peers, repeat, warmup, lead_in=False):
    print(f"GEMM ceiling (numpy matmul {2048}³ float32): {record['gemm_ceiling_gflops']:.1f} GFLOP/s; "
          f"cpu {record['machine']['cpu']}, {record['machine']['cores']} cores")
    # what a row's figures are over: without it "median" reads as anything from one call to a whole fit
    lead = "; each timed run right after an untimed one (--lead-in)" if lead_in else ""
    print(f"median / min / max s: seconds of one run of the workload (train: its samples once, or --epochs times; "
          f"gd: its steps; a kernel: one call), over {repeat} timed run(s) per runner (--repeat), runners taking "
          f"turns, after {warmup} untimed warm-up run(s) (--warmup){lead}; compile s = first run − median")
    width = max([14] + [len(r["workload"]) for r in record["results"]])
    head = (f"{'workload':{width}s} {'dtype':8s} {'runner':9s} {'median s':>10s} {'min s':>9s} {'max s':>9s} "
            f"{'epochs':>6s} {'ms/epoch':>9s} {'compile s':>9s} {'samples/s':>11s} {'GFLOP/s':>8s} {'%ceil':>6s} "
            f"{'fit/kern':>8s}")
    head += "".join(f" {'vs ' + p:>9s}" for p in peers)
    print(head)
    for r in record["results"]:
        if "median_s" not in r:
            print(f"{r['workload']:{width}s} {r['dtype']:8s} {r['runner']:9s} unavailable: {r['unavailable']}")
            continue
        g = r.get("gflops")
        epoch = f"{1e3 * r['epoch_s']:9.3f}" if "epoch_s" in r else f"{'-':>9s}"
        ratio = f"x{r['fit_over_kernel']:.3f}" if "fit_over_kernel" in r else "-"
        line = (f"{r['workload']:{width}s} {r['dtype']:8s} {r['runner']:9s} {r['median_s']:10.4f} {r['min_s']:9.4f} "
                f"{r['max_s']:9.4f} {r.get('epochs', '-'):>6} {epoch} {r['compile_s']:9.3f} "
                f"{r['samples_per_s'] or 0:11.3g} {g or 0:8.2f} {r.get('pct_of_ceiling', 0):6.1f} {ratio:>8s}")
        line += "".join(f" {('x%.2f' % r['speedup'][p]) if p in r['speedup'] else '-':>9s}" for p in peers)
        print(line)


def _write_csv(record, path):
    import csv

    cols = ["workload", "dtype", "runner", "kind", "median_s", "min_s", "max_s", "epochs", "epoch_s", "compile_s",
            "samples_per_s", "gflops", "pct_of_ceiling", "fit_over_kernel", "unavailable"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + ["speedup_vs_" + p for p in PEERS] + ["cpu", "cores", "gemm_ceiling_gflops"])
        for r in record["results"]:
            w.writerow([r.get(c, "") for c in cols] + [r.get("speedup", {}).get(p, "") for p in PEERS]
                       + [record["machine"]["cpu"], record["machine"]["cores"], record["gemm_ceiling_gflops"]])


def _plot_fit(args):
    from . import plots

    X, y = datasets.sine(n=200, noise=0.05)
    fits = {}
    for act in ("relu", "softplus"):
        net = MLP([1, *args.hidden, 1], activation=act, backend=args.backend, seed=0)
        net.fit(X, y, loss="mse", optimizer="adam", lr=0.01, batch_size=32, epochs=args.epochs)
        fits[f"{act} (MSE {np.mean((net.predict(X) - y) ** 2):.4f})"] = net.predict
    plots.fit_curves(X, y, fits, args.out)
    print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------- info / warmup
def _cpu():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "neon", "asimd") if f in flags]
    return model, simd


def _versions():
    out = {"pynet": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("numba", "cffi"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        from kernels import c_backend  # noqa: F401  (compiler recorded at build time, when built)
        out["c_compiler"] = getattr(c_backend, "COMPILER", None)
    except Exception:
        out["c_compiler"] = None
    return out


def _usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _blas_threads():
    """{"threads", "library", "source"} of the BLAS numpy calls (the numpy backend's threads, which
    set_num_threads does not set): threadpoolctl's live answer when it is installed; else the library
    numpy was built with and the variable OpenBLAS reads first (OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS,
    OMP_NUM_THREADS), else its default, the usable cores."""
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        pools.sort(key=lambda p: "numpy" not in p.get("filepath", ""))  # numpy's own first, if scipy brought another
        if pools:
            return {"threads": int(pools[0]["num_threads"]), "library": pools[0].get("internal_api"),
                    "source": "threadpoolctl"}
    except ImportError:
        pass
    try:
        library = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # numpy < 1.25 has no dict form
        library = None
    cores = _usable_cores()
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return {"threads": min(int(value), cores), "library": library, "source": var}
    return {"threads": cores, "library": library, "source": "default: the usable cores"}


def _info(args):
    status = __import__("kernels").status()
    model, simd = _cpu()
    threads = {}
    for name, why in status.items():
        if why is None:
            threads[name] = _backend.resolve(name).get_num_threads()
    blas = _blas_threads()
    if "numpy" in threads:
        threads["numpy"] = blas["threads"]  # the reference runs on numpy's BLAS threads
    isa = None
    if status.get("c") is None:   # the C kernels' run-time choice of vector ISA (PYNET_ISA caps it)
        from kernels import c_backend
        isa = {"in_use": c_backend.isa(), "supported": list(c_backend.supported_isas())}
    info = {"backends": {n: {"available": why is None, "reason": why} for n, why in status.items()},
            "default_backend": _backend.get_backend_name(),
            "auto_resolves_to": _backend.resolve("auto").name,
            "versions": _versions(), "cpu": model, "simd": simd, "cores": os.cpu_count(), "threads": threads,
            "blas": blas, "isa": isa}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"pynet {info['versions']['pynet']}  (default backend: {info['default_backend']} -> "
          f"{info['auto_resolves_to']})")
    for name, st in info["backends"].items():
        state = f"available, {threads[name]} thread(s)" if st["available"] else f"unavailable: {st['reason']}"
        if st["available"] and name == "numpy":
            state += f" ({blas['library'] or 'BLAS'} threads, from {blas['source']})"
        if st["available"] and name == "c":
            state += f", ISA {isa['in_use']} (supported: {', '.join(isa['supported'])})"
        print(f"  {name:6s} {state}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    print(f"cpu: {model}; cores {info['cores']}; SIMD {' '.join(simd) or 'none detected'}")
    return 0


def _warmup(args):
    report = {}
    for name in _backend.available_backends():
        raw = _backend.resolve(name).raw
        fn = getattr(raw, "warmup", None)
        if fn is None:
            continue
        dtypes = ("float32", "float64")
        cost = _jit.estimate(raw, dtypes)
        print(f"pynet: compiling (or loading from the cache) every {name} kernel for {', '.join(dtypes)}"
              f"{'; from a cold cache ' + cost if cost else ''}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        detail = fn(dtypes, progress=_jit.progress())
        report[name] = {"seconds": round(time.perf_counter() - t0, 3), "detail": detail}
    if args.json:
        print(json.dumps(report))
    else:
        if not report:
            print("nothing to compile: no available backend compiles at run time")
        for name, r in report.items():
            print(f"{name}: compiled every kernel for float32 and float64 in {r['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
