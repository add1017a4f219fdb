"""Shipped datasets (UCI Iris and Digits), synthetic generators, a CSV loader and a seeded split.

Every loader returns ``(X, y)``; see ``pynet/data/README.md`` for provenance and licences.
"""
from __future__ import annotations

import csv
import math
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


def read_csv(path, target=None, delimiter=",", rows=None):
    """(X, y, feature_names) from a CSV with a header row. ``target``: column name or index (default:
    the last column). Feature cells must be finite numbers; the target column may hold any labels
    (numbers, when all are, must be finite). A cell that breaks these rules raises CSVError naming its
    line in the file and its column.
    ``rows=(lo, hi)`` parses only data rows lo ≤ r < hi (blank lines do not count): a rank's shard."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CSVError(f"path: no such file {path!r}")
    lo, hi = (0, None) if rows is None else rows
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header, data, seen = None, [], 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                continue
            if hi is not None and seen >= hi:
                break
            if seen >= lo:
                data.append((reader.line_num, row))
            seen += 1
    if header is None:
        raise CSVError(f"path: {path!r} is empty")
    if seen == 0:
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
    X = np.empty((len(data), len(features)))
    labels = []
    for r, (line, row) in enumerate(data):
        if len(row) != len(header):
            raise CSVError(f"path: line {line} has {len(row)} cells but the header has {len(header)}")
        for j, i in enumerate(features):
            try:
                X[r, j] = float(row[i])
            except ValueError:
                raise CSVError(f"path: non-numeric value {row[i]!r} at line {line}, column {header[i]!r}") from None
            # float() accepts "nan" and "inf"; checked here, where the line and column are still known
            if not math.isfinite(X[r, j]):
                raise CSVError(f"path: non-finite value {row[i]!r} at line {line}, column {header[i]!r}")
        label = row[t].strip()
        if not label:
            raise CSVError(f"path: empty target value at line {line}, column {header[t]!r}")
        labels.append(label)
    y = _labels(labels)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        r = int(np.argmax(~np.isfinite(y)))
        raise CSVError(f"path: non-finite value {labels[r]!r} at line {data[r][0]}, column {header[t]!r}")
    return X, y, [header[i] for i in features]


def count_csv_rows(path, delimiter=",") -> int:
    """Number of data rows of a CSV (non-blank rows after the header), without parsing the numbers."""
    with open(os.fspath(path), newline="", encoding="utf-8") as fh:
        n = sum(1 for row in csv.reader(fh, delimiter=delimiter) if any(cell.strip() for cell in row))
    return max(n - 1, 0)


def _npy_header(fh):
    """(shape, fortran_order, dtype) of the .npy stream ``fh``, leaving it at the first data byte."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(fh)


def _npz_member(zf, name, path):
    try:
        return zf.open(f"{name}.npy")
    except KeyError:
        raise ValueError(f"path: {path!r} has no array {name!r} (arrays: "
                         f"{', '.join(n[:-4] for n in zf.namelist())})") from None


def read_npz(path, rows=None, x="X", y="y"):
    """(X, y) from an .npz holding arrays ``x`` and ``y`` with one row per sample. ``rows=(lo, hi)`` reads
    only those rows: for an uncompressed file (``numpy.savez``) each rank seeks to its own shard."""
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    out = []
    with zipfile.ZipFile(path) as zf:
        for name in (x, y):
            with _npz_member(zf, name, path) as fh:
                shape, fortran, dtype = _npy_header(fh)
                if fortran or dtype.hasobject or not shape:
                    raise ValueError(f"path: array {name!r} of {path!r} must be C-ordered, numeric, at least 1-D")
                lo, hi = (0, shape[0]) if rows is None else (max(0, rows[0]), min(shape[0], rows[1]))
                row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
                fh.seek(fh.tell() + lo * row_bytes)  # stored members seek without reading what is skipped
                data = fh.read(max(hi - lo, 0) * row_bytes)
                out.append(np.frombuffer(data, dtype).reshape((max(hi - lo, 0),) + tuple(shape[1:])).copy())
    if out[0].shape[0] != out[1].shape[0]:
        raise ValueError(f"path: {x!r} and {y!r} of {path!r} have different numbers of rows")
    return out[0], out[1]


def count_npz_rows(path, x="X") -> int:
    """Rows of array ``x`` in an .npz, from its header alone."""
    import zipfile

    with zipfile.ZipFile(os.fspath(path)) as zf, _npz_member(zf, x, path) as fh:
        return int(_npy_header(fh)[0][0])


def _labels(cells):
    """Numeric targets when every cell is a number (ints when all integral), else the strings."""
    try:
        values = np.array([float(c) for c in cells])
    except ValueError:
        return np.array(cells)
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values
