"""pynet.sklearn vs scikit-learn on four datasets shipped with scikit-learn: held-out scores and fit times.

    flock /tmp/pynet-bench.lock python benchmarks/sklearn_parity.py [--repeats 5] [--seeds 5] [--json out.json]

Both libraries get the same settings (hidden sizes, activation, solver, learning rate, batch size,
epochs, L2 alpha), the same standardised train/test split, and run every epoch (stopping switched off).
Scores: mean held-out accuracy (R² for Diabetes) over ``--seeds`` random states. Times: median fit time
of ``--repeats`` runs after one untimed warm-up fit; the warm-up's extra time over the median is
reported separately as JIT compile time (timings run first, so the first dataset's warm-up is the
process's first numba call: compiling, or loading numba's on-disk cache when it is warm). tests/test_sklearn.py checks the scores with these settings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import pynet  # noqa: E402
from pynet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: name -> (loader, task, shared estimator settings). Stopping is off: every epoch runs in both.
DATASETS = {
    "iris": (load_iris, "multi-class (softmax + CE)",
             dict(hidden_layer_sizes=(16,), activation="relu", solver="adam", learning_rate_init=0.01,
                  batch_size=16, max_iter=100, alpha=1e-4)),
    "digits": (load_digits, "multi-class (softmax + CE)",
               dict(hidden_layer_sizes=(64,), activation="relu", solver="sgd", learning_rate_init=0.05,
                    momentum=0.9, nesterovs_momentum=True, batch_size=32, max_iter=30, alpha=1e-4)),
    "breast_cancer": (load_breast_cancer, "binary (sigmoid + BCE)",
                      dict(hidden_layer_sizes=(32,), activation="tanh", solver="adam", learning_rate_init=1e-3,
                           batch_size=32, max_iter=60, alpha=1e-3)),
    "diabetes": (load_diabetes, "regression (squared loss, R²)",
                 dict(hidden_layer_sizes=(16,), activation="tanh", solver="sgd", learning_rate_init=0.005,
                      momentum=0.9, batch_size=32, max_iter=20, alpha=1e-3)),
}


def split(name):
    """The fixed split: 25 % held out (stratified for classification), X standardised on the train part;
    Diabetes' target is standardised too (R² does not change under an affine map of y)."""
    loader, task, _ = DATASETS[name]
    X, y = loader(return_X_y=True)
    classify = name != "diabetes"
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0,
                                              stratify=y if classify else None)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    if not classify:
        mu, sd = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - mu) / sd, (y_te - mu) / sd
    return X_tr, X_te, y_tr, y_te


def make(library, name, seed, backend=None):
    """An unfitted estimator of ``library`` ("pynet" or "sklearn") with the dataset's settings."""
    settings = dict(DATASETS[name][2], random_state=seed, tol=0.0, n_iter_no_change=DATASETS[name][2]["max_iter"])
    regression = name == "diabetes"
    if library == "sklearn":
        return (SkRegressor if regression else SkClassifier)(**settings)
    return (MLPRegressor if regression else MLPClassifier)(**settings, backend=backend, dtype="float64")


def score(library, name, seeds=range(5), backend=None):
    """Mean held-out score over ``seeds``."""
    X_tr, X_te, y_tr, y_te = split(name)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in seeds:
            values.append(make(library, name, seed, backend).fit(X_tr, y_tr).score(X_te, y_te))
    return float(np.mean(values))


def fit_times(library, name, repeats, backend=None):
    """(median fit seconds over ``repeats`` runs, warm-up fit seconds)."""
    X_tr, _, y_tr, _ = split(name)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(repeats + 1):
            est = make(library, name, i, backend)
            t0 = time.perf_counter()
            est.fit(X_tr, y_tr)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), times[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    backends = pynet.available_backends()
    print(f"# pynet {pynet.__version__}, backends measured: {', '.join(backends)}; "
          f"scikit-learn {__import__('sklearn').__version__}; numpy {np.__version__}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible")
    unavailable = pynet.unavailable_reasons()
    for name, why in unavailable.items():
        print(f"# not measured: {name}: {why.splitlines()[0][:120]}")
    results = {"backends": backends, "scores": {}, "times": {}}

    # timings first: the first numba fit of the process then includes compiling (or loading its cache)
    print(f"\n| dataset | scikit-learn fit (ms) | " + " | ".join(f"pynet {b} fit (ms)" for b in backends)
          + " | best speed-up | JIT compile (s) |")
    print("|---|---:|" + "---:|" * len(backends) + "---:|---:|")
    for name in DATASETS:
        sk, _ = fit_times("sklearn", name, args.repeats)
        row = {"sklearn": sk}
        compile_s = {}
        for b in backends:
            median, first = fit_times("pynet", name, args.repeats, backend=b)
            row[b] = median
            compile_s[b] = max(first - median, 0.0)
        best = min(backends, key=lambda b: row[b])
        results["times"][name] = {"seconds": row, "compile_seconds": compile_s}
        jit = ", ".join(f"{b} {compile_s[b]:.2f}" for b in backends if b == "numba") or "—"
        print(f"| {name} | {1e3 * sk:.1f} | " + " | ".join(f"{1e3 * row[b]:.1f}" for b in backends)
              + f" | {sk / row[best]:.1f}× ({best}) | {jit} |")
    print("\n| dataset | task | scikit-learn | pynet (" + ") | pynet (".join(backends) + ") |")
    print("|---|---|---:|" + "---:|" * len(backends))
    for name, (_, task, _) in DATASETS.items():
        row = {"sklearn": score("sklearn", name, range(args.seeds))}
        for b in backends:
            row[b] = score("pynet", name, range(args.seeds), backend=b)
        results["scores"][name] = row
        print(f"| {name} | {task} | {row['sklearn']:.4f} | " + " | ".join(f"{row[b]:.4f}" for b in backends) + " |")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
