"""Shipped datasets (UCI Iris and Digits), synthetic generators, a CSV loader and a seeded split.

Every loader returns ``(X, y)``; see ``pynet/data/README.md`` for provenance and licences.
"""
from __future__ import annotations

import csv
import os
from importlib import resources

import numpy as np

from ._validation import fraction

SHIPPED = ("iris", "digits")
SYNTHETIC = ("spirals", "xor", "sine")
NAMES = SHIPPED + SYNTHETIC
#: Which loss each dataset is for (used by the CLI to pick a sensible default).
TASK = {"iris": "cross_entropy", "digits": "cross_entropy", "spirals": "cross_entropy",
        "xor": "binary_cross_entropy", "sine": "mse"}


def load(name: str, **kwargs):
    """(X, y) of a shipped or synthetic dataset; synthetic ones take their generator's arguments."""
    if name in SHIPPED:
        if kwargs:
            raise TypeError(f"load: dataset {name!r} takes no arguments, got {', '.join(kwargs)}")
        with resources.files("pynet").joinpath("data", f"{name}.npz").open("rb") as fh:
            with np.load(fh, allow_pickle=False) as data:
                return data["X"].astype(np.float64), data["y"].astype(np.int64)
    if name in SYNTHETIC:
        return {"spirals": spirals, "xor": xor, "sine": sine}[name](**kwargs)
    raise ValueError(f"name: unknown dataset {name!r}; valid names are {', '.join(NAMES)}")


def train_test_split(X, y, test_fraction=0.25, seed=0, stratify=True):
    """Seeded split into (X_train, X_test, y_train, y_test); stratified by label when ``stratify``."""
    test_fraction = fraction(test_fraction, "test_fraction")
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"y: has {y.shape[0]} rows but X has {X.shape[0]}")
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    if stratify and y.ndim == 1 and y.dtype.kind in "iubUSO":
        test = []
        for label in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == label))
            test.extend(rows[: int(round(len(rows) * test_fraction))])
        test = np.sort(np.array(test, dtype=np.int64))
    else:
        test = np.sort(rng.permutation(n)[: int(round(n * test_fraction))])
    mask = np.ones(n, bool)
    mask[test] = False
    return X[mask], X[test], y[mask], y[test]


def spirals(n=1000, noise=0.1, turns=1.5, seed=0):
    """Two interleaved spirals in the plane; labels 0 and 1."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.sqrt(rng.uniform(0, 1, n)) * turns * 2 * np.pi
    y = (np.arange(n) >= half).astype(np.int64)
    sign = np.where(y == 0, 1.0, -1.0)
    X = np.column_stack([sign * t * np.cos(t), sign * t * np.sin(t)]) / (turns * 2 * np.pi)
    return X + rng.normal(0, noise / (turns * 2), X.shape), y


def xor(n=400, noise=0.1, seed=0):
    """The XOR problem: points near the four corners of the unit square, label = x1 xor x2."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, (n, 2))
    return corners + rng.normal(0, noise, (n, 2)), (corners[:, 0] ^ corners[:, 1]).astype(np.int64)


def sine(n=200, noise=0.05, seed=0):
    """1-D regression: y = sin(x) + noise for x in [−π, π] — shows ReLU's piecewise-linear fit."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-np.pi, np.pi, n))
    return x[:, None], np.sin(x) + rng.normal(0, noise, n)


class CSVError(ValueError):
    """A CSV file that cannot be read as a numeric table."""


def read_csv(path, target=None, delimiter=","):
    """(X, y, feature_names) from a CSV with a header row. ``target``: column name or index (default:
    the last column). Feature cells must be numbers; the target column may hold any labels."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CSVError(f"path: no such file {path!r}")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise CSVError(f"path: {path!r} is empty")
    header = [h.strip() for h in rows[0]]
    if len(rows) < 2:
        raise CSVError(f"path: {path!r} has a header but no data rows")
    if target is None:
        t = len(header) - 1
    elif isinstance(target, int) and not isinstance(target, bool):
        if not -len(header) <= target < len(header):
            raise CSVError(f"target: column index {target} out of range for {len(header)} columns")
        t = target % len(header)
    elif target in header:
        t = header.index(target)
    else:
        raise CSVError(f"target: no column {target!r} in {path!r}; columns are {', '.join(header)}")
    if len(header) < 2:
        raise CSVError(f"path: {path!r} needs at least one feature column besides the target")
    features = [i for i in range(len(header)) if i != t]
    X = np.empty((len(rows) - 1, len(features)))
    labels = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise CSVError(f"path: line {r} has {len(row)} cells but the header has {len(header)}")
        for j, i in enumerate(features):
            try:
                X[r - 2, j] = float(row[i])
            except ValueError:
                raise CSVError(f"path: non-numeric value {row[i]!r} at line {r}, column {header[i]!r}") from None
        labels.append(row[t].strip())
    return X, _labels(labels), [header[i] for i in features]


def _labels(cells):
    """Numeric targets when every cell is a number (ints when all integral), else the strings."""
    try:
        values = np.array([float(c) for c in cells])
    except ValueError:
        return np.array(cells)
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values
