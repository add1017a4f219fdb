"""Hyper-parameter sweeps of pynet fits on a Dask cluster: ``pynet sweep CONFIG [--scheduler ADDRESS]``.

CONFIG (JSON, or TOML on Python ≥ 3.11) — every key but ``search`` is optional::

    {"data":   {"dataset": "digits"} | {"csv": "f.csv", "target": "label"} | {"npz": "f.npz"},
     "base":   {"hidden": [32], "activation": "relu", "optimizer": "sgd", "lr": 0.05, "epochs": 20, …},
     "search": {"kind": "grid", "grid": {"lr": [0.01, 0.1], "hidden": [[16], [64]]}}
               | {"kind": "random", "n_iter": 8, "seed": 0,
                  "space": {"lr": {"loguniform": [1e-3, 0.3]}, "hidden": [[16], [64]], "batch_size": {"randint": [16, 65]}}},
     "cv": 3,            # k-fold cross-validation on the training rows (default: one held-out split)
     "ensemble": 1,      # fits per configuration and fold, seeds seed…seed+n−1; their outputs are averaged
     "test_fraction": 0.25, "seed": 0, "threads": 1}

Model settings (``base`` and the searched keys): hidden, activation, loss, optimizer, lr, momentum,
batch_size, epochs, dtype, backend, standardize. One task is one configuration (all its folds and
ensemble members) on one worker with ``threads`` kernel threads (default 1: no oversubscription of a
worker's cores). A failing configuration is reported with its error and does not stop the sweep.
The best configuration (highest mean score: accuracy, or R² for regression) is refitted on all
training rows and saved as a pynet model file; with ``ensemble > 1`` member i goes to ``best-i.npz``.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import time
import traceback

import numpy as np

MODEL_KEYS = ("hidden", "activation", "loss", "optimizer", "lr", "momentum", "batch_size", "epochs", "dtype",
              "backend", "standardize")
_DEFAULTS = {"hidden": [32], "activation": "relu", "loss": None, "optimizer": "sgd", "lr": None, "momentum": None,
             "batch_size": 32, "epochs": 20, "dtype": "float32", "backend": None, "standardize": True}


def read_config(path) -> dict:
    """The sweep description from a .json or .toml file."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        if path.endswith(".toml"):
            import tomllib

            config = tomllib.load(fh)
        else:
            config = json.loads(fh.read().decode("utf-8"))
    if not isinstance(config, dict) or "search" not in config:
        raise ValueError(f"CONFIG: {path!r} needs a 'search' table (kind grid or random)")
    return config


def candidates(config) -> list[dict]:
    """The model settings of every configuration: base settings updated by each grid point / random draw."""
    search = config["search"]
    base = {**_DEFAULTS, **config.get("base", {})}
    kind = search.get("kind", "grid")
    if kind == "grid":
        grid = search.get("grid", {})
        names = list(grid)
        points = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    elif kind == "random":
        rng = np.random.default_rng(search.get("seed", 0))
        points = [{name: _draw(rng, name, spec) for name, spec in search.get("space", {}).items()}
                  for _ in range(int(search.get("n_iter", 10)))]
    else:
        raise ValueError(f"search.kind: unknown {kind!r}; valid kinds are grid, random")
    out = []
    for point in points:
        unknown = sorted(set(point) - set(MODEL_KEYS))
        if unknown:
            raise ValueError(f"search: {unknown[0]!r} is not a model setting ({', '.join(MODEL_KEYS)})")
        out.append({**base, **point})
    return out


def _draw(rng, name, spec):
    """One value: from a list (uniformly), or {"uniform"|"loguniform": [a, b]} / {"randint": [a, b)}."""
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, dict) and len(spec) == 1:
        (how, (a, b)), = spec.items()
        if how == "uniform":
            return float(rng.uniform(a, b))
        if how == "loguniform":
            return float(np.exp(rng.uniform(np.log(a), np.log(b))))
        if how == "randint":
            return int(rng.integers(a, b))
    raise ValueError(f"search.space.{name}: expected a list or {{uniform|loguniform|randint: [a, b]}}, got {spec!r}")


def load_data(config):
    """(X_train, y_train, X_test, y_test, loss) as one process's ``pynet train`` would split them."""
    from . import datasets

    data = config.get("data", {"dataset": "digits"})
    if "dataset" in data:
        X, y = datasets.load(data["dataset"])
        loss = datasets.TASK[data["dataset"]]
    else:
        X, y = (datasets.read_npz(data["npz"]) if "npz" in data
                else datasets.read_csv(data["csv"], target=data.get("target"))[:2])
        labels = np.unique(y)
        classification = y.dtype.kind in "iuUSb" and len(labels) <= max(20, len(y) // 20)
        loss = ("binary_cross_entropy" if len(labels) == 2 else "cross_entropy") if classification else "mse"
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, config.get("test_fraction", 0.25), seed=config.get("seed", 0),
                                                   stratify=loss != "mse")
    return Xtr, ytr, Xte, yte, loss


def _build(settings, X, y, loss, seed):
    from .model import MLP

    loss = settings["loss"] or loss
    n_out = len(np.unique(y)) if loss == "cross_entropy" else 1
    output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    net = MLP([X.shape[1], *settings["hidden"], n_out], activation=settings["activation"], output=output,
              backend=settings["backend"], dtype=settings["dtype"], seed=seed, standardize=settings["standardize"])
    net.fit(X, y, loss=loss, optimizer=settings["optimizer"], lr=settings["lr"], momentum=settings["momentum"],
            batch_size=min(int(settings["batch_size"]), len(X)), epochs=int(settings["epochs"]))
    return net


def _score(nets, X, y):
    """Accuracy of the averaged class probabilities, or R² of the averaged predictions."""
    from . import metrics

    if nets[0].loss in ("cross_entropy", "binary_cross_entropy"):
        proba = np.mean([n.predict_proba(X) for n in nets], axis=0)
        return metrics.accuracy(np.asarray(y), nets[0].classes_[np.argmax(proba, axis=1)])
    pred = np.mean([n.predict(X) for n in nets], axis=0)
    return metrics.r2(np.asarray(y, np.float64), pred)


def run_one(index, settings, data, cv, ensemble, seed, threads):
    """Fit and score one configuration (every fold, every ensemble member); never raises."""
    from . import _backend

    Xtr, ytr, Xte, yte, loss = data
    row = {"index": index, **{k: settings[k] for k in MODEL_KEYS}, "error": None, "worker_pid": os.getpid()}
    t0 = time.perf_counter()
    try:
        _backend.set_num_threads(int(threads))
        if cv and cv > 1:
            folds = np.array_split(np.random.default_rng(seed).permutation(len(Xtr)), int(cv))
            scores = []
            for f in range(int(cv)):
                val = folds[f]
                fit_rows = np.concatenate([folds[g] for g in range(int(cv)) if g != f])
                nets = [_build(settings, Xtr[fit_rows], ytr[fit_rows], loss, seed + m) for m in range(ensemble)]
                scores.append(_score(nets, Xtr[val], ytr[val]))
        else:
            nets = [_build(settings, Xtr, ytr, loss, seed + m) for m in range(ensemble)]
            scores = [_score(nets, Xte, yte)]
        row.update(score=float(np.mean(scores)), score_std=float(np.std(scores)), folds=len(scores))
    except Exception as exc:  # a failed fit is a row of the table, not the end of the sweep
        row.update(score=None, score_std=None, folds=0, error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=3))
    row["fit_seconds"] = time.perf_counter() - t0
    return row


def refit(settings, data, ensemble, seed, threads):
    """The best configuration on all training rows: its ensemble members as model-file bytes."""
    import tempfile

    from . import _backend

    _backend.set_num_threads(int(threads))
    Xtr, ytr, _, _, loss = data
    out = []
    for m in range(ensemble):
        net = _build(settings, Xtr, ytr, loss, seed + m)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.npz")
            net.save(path)
            with open(path, "rb") as fh:
                out.append(fh.read())
    return out


def sweep(config, client=None, scheduler=None, out_dir=".", n_workers=2):
    """Run the sweep on ``client`` (or a Client on ``scheduler``, or a LocalCluster of ``n_workers``
    one-thread worker processes); returns (rows, best_row, saved model paths) and writes
    ``results.csv``, ``results.json`` and the best model(s) into ``out_dir``."""
    from dask.distributed import Client, LocalCluster

    from . import io

    own = []
    if client is None:
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
            own.append(cluster)
            client = Client(cluster)
        own.insert(0, client)
    try:
        configs = candidates(config)
        seed, cv = int(config.get("seed", 0)), int(config.get("cv", 0))
        ensemble, threads = int(config.get("ensemble", 1)), int(config.get("threads", 1))
        if ensemble < 1:
            raise ValueError(f"ensemble: must be >= 1, got {ensemble}")
        # sent once to every worker, not per task; hash=False: content-hashed keys made two sweeps on one
        # client share the key of their loss name ('cross_entropy'), and the second lost it when the first
        # released it ("lost dependencies")
        data = client.scatter(load_data(config), broadcast=True, hash=False)
        futures = [client.submit(run_one, i, s, data, cv, ensemble, seed, threads, pure=False)
                   for i, s in enumerate(configs)]
        rows = sorted(client.gather(futures), key=lambda r: r["index"])
        ok = [r for r in rows if r["score"] is not None]
        os.makedirs(out_dir, exist_ok=True)
        _write_tables(rows, out_dir)
        if not ok:
            return rows, None, []
        best = max(ok, key=lambda r: r["score"])
        blobs = client.submit(refit, configs[best["index"]], data, ensemble, seed, threads, pure=False).result()
        paths = [os.path.join(out_dir, "best.npz" if ensemble == 1 else f"best-{m}.npz") for m in range(ensemble)]
        for path, blob in zip(paths, blobs):
            io._atomic_write(path, lambda fh, blob=blob: fh.write(blob))
        return rows, best, paths
    finally:
        for thing in own:
            thing.close()


def _write_tables(rows, out_dir):
    columns = ["index", "score", "score_std", "folds", "fit_seconds", *MODEL_KEYS, "error", "worker_pid"]
    with open(os.path.join(out_dir, "results.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1, default=str)
