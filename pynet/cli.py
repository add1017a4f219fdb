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

from . import __version__, _backend, datasets
from .model import MLP
from .optim import OPTIMIZERS


class CLIError(Exception):
    pass


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
                   help="default: enough for about 2,000 mini-batch steps (at least 30 epochs)")
    t.add_argument("--max-steps", type=_positive_int, default=None, help="for --optimizer gd")
    t.add_argument("--tol", type=float, default=None, help="for --optimizer gd")
    t.add_argument("--test-fraction", type=float, default=0.25)
    t.add_argument("--validation-split", type=float, default=0.0)
    t.add_argument("--early-stopping", action="store_true")
    t.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-standardize", action="store_true", help="do not standardize the inputs")
    t.add_argument("--save", metavar="FILE", help="write the trained model here")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="backends, versions, CPU and threads")
    i.add_argument("--json", action="store_true")

    w = sub.add_parser("warmup", help="compile every JIT kernel for float32 and float64 now")
    w.add_argument("--json", action="store_true")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "info": _info, "warmup": _warmup}[args.command](args)
    except (CLIError, ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"pynet {args.command}: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------- train
def _load_data(args):
    if args.dataset:
        X, y = datasets.load(args.dataset)
        return X, y, datasets.TASK[args.dataset]
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
    if args.target is not None and not args.csv:
        raise CLIError("--target: applies to --csv only")
    X, y, task = _load_data(args)
    loss = args.loss or task
    classification = loss in ("cross_entropy", "binary_cross_entropy")
    if not 0 < args.test_fraction < 1:
        raise CLIError(f"--test-fraction: must be in (0, 1), got {args.test_fraction}")
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, args.test_fraction, seed=args.seed,
                                                   stratify=classification)
    if classification:
        n_out = len(np.unique(y)) if loss == "cross_entropy" else 1
    else:
        n_out = 1
    output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    net = MLP([X.shape[1], *args.hidden, n_out], activation=args.activation, output=output,
              backend=args.backend, dtype=args.dtype, seed=args.seed, standardize=not args.no_standardize)
    lr = args.lr if args.lr is not None else {"adam": 0.001}.get(args.optimizer, 0.05)
    fit_args = dict(loss=loss, optimizer=args.optimizer, lr=lr, validation_split=args.validation_split,
                    early_stopping=args.early_stopping, verbose=not (args.quiet or args.json))
    if args.optimizer == "gd":
        fit_args.update(tol=args.tol, max_steps=args.max_steps)
    else:
        if args.tol is not None or args.max_steps is not None:
            raise CLIError("--tol/--max-steps: apply to --optimizer gd only")
        batch_size = min(args.batch_size, len(Xtr))
        epochs = args.epochs or max(30, min(1000, 2000 // -(-len(Xtr) // batch_size)))
        fit_args.update(batch_size=batch_size, epochs=epochs)
    if args.momentum is not None:
        fit_args["momentum"] = args.momentum
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = net.fit(Xtr, ytr, **fit_args)
    seconds = time.perf_counter() - t0
    summary = {"backend": net.backend, "dataset": args.dataset or args.csv, "layers": net.layers,
               "loss": loss, "optimizer": args.optimizer, "epochs": history.epochs,
               "train_seconds": round(seconds, 4), "final_loss": history.loss[-1] if history.loss else None,
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
    if args.json:
        print(json.dumps(summary))
    else:
        for w in summary["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
        score = (f"test accuracy {summary['test_accuracy']:.4f}" if classification
                 else f"test MSE {summary['test_mse']:.5g} (R² {summary['test_r2']:.4f})")
        print(f"{score} | {summary['train_seconds']:.3f} s | {summary['epochs']} "
              f"{'steps' if args.optimizer == 'gd' else 'epochs'} | backend {summary['backend']} | "
              f"{summary['stop_reason']}")
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


def _info(args):
    status = __import__("kernels").status()
    model, simd = _cpu()
    threads = {}
    for name, why in status.items():
        if why is None:
            threads[name] = _backend.resolve(name).get_num_threads()
    info = {"backends": {n: {"available": why is None, "reason": why} for n, why in status.items()},
            "default_backend": _backend.get_backend_name(),
            "auto_resolves_to": _backend.resolve("auto").name,
            "versions": _versions(), "cpu": model, "simd": simd, "cores": os.cpu_count(), "threads": threads}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"pynet {info['versions']['pynet']}  (default backend: {info['default_backend']} -> "
          f"{info['auto_resolves_to']})")
    for name, st in info["backends"].items():
        state = f"available, {threads[name]} thread(s)" if st["available"] else f"unavailable: {st['reason']}"
        print(f"  {name:6s} {state}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    print(f"cpu: {model}; cores {info['cores']}; SIMD {' '.join(simd) or 'none detected'}")
    return 0


def _warmup(args):
    report = {}
    for name in _backend.available_backends():
        fn = getattr(_backend.resolve(name).raw, "warmup", None)
        if fn is None:
            continue
        t0 = time.perf_counter()
        detail = fn()
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
