"""Input validation for the model API: clear errors that name the argument; caller arrays never modified."""
from __future__ import annotations

import numbers

import numpy as np


def as_matrix(X, name: str, dtype, *, ndim: int = 2) -> np.ndarray:
    """X as a fresh-enough C-contiguous array of ``dtype`` (a copy whenever conversion is needed).

    Integers and bools are converted; object arrays only when every cell is numeric; float16 is
    widened; complex, strings, NaN and ±inf are rejected.
    """
    if X is None:
        raise TypeError(f"{name}: expected an array, got None")
    arr = X if isinstance(X, np.ndarray) else _to_array(X, name)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name}: complex values are not supported (dtype {arr.dtype})")
    if kind in "USV":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}; encode text columns first")
    if kind == "O":
        arr = _object_to_float(arr, name)
    elif kind not in "biuf":
        raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
    if arr.ndim != ndim:
        hint = " (use X.reshape(-1, 1) for a single feature)" if ndim == 2 and arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected a {ndim}-D array, got {arr.ndim}-D with shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 rows)")
    if ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name}: has 0 columns")
    out = np.ascontiguousarray(arr, dtype=dtype)  # no copy when dtype and layout already fit
    if arr.dtype.kind == "f":  # integers and bools always convert to finite floats
        check_finite(out, name)
    return out


#: Cells per block when locating a non-finite cell: a 64 KiB bool temporary, however large the array.
_FINITE_BLOCK = 1 << 16


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise a ValueError naming ``name`` and the first NaN or ±inf cell (C order) of float array ``a``.

    One reading pass and no temporary the size of ``a``: an IEEE sum is NaN or ±inf whenever one of its
    terms is (inf − inf gives NaN). A sum of finite values can still overflow near the dtype's limit;
    only then, or when a cell really is not finite, are the cells scanned, a block at a time.
    """
    flat = a.reshape(-1)  # a view for a contiguous array
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(flat)
    if np.isfinite(total):
        return
    for start in range(0, flat.shape[0], _FINITE_BLOCK):
        bad = np.flatnonzero(~np.isfinite(flat[start:start + _FINITE_BLOCK]))
        if bad.size:
            idx = np.unravel_index(start + int(bad[0]), a.shape)
            raise ValueError(f"{name}: contains NaN or infinity (first at index {tuple(int(i) for i in idx)})")


def _to_array(X, name):
    try:
        return np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc


def _object_to_float(arr, name):
    flat = arr.ravel()
    for i, cell in enumerate(flat):
        if isinstance(cell, (bool, np.bool_)) or not isinstance(cell, numbers.Real):
            idx = np.unravel_index(i, arr.shape)
            raise TypeError(f"{name}: non-numeric value {cell!r} at index {tuple(int(j) for j in idx)}")
    return arr.astype(np.float64)


def as_labels(y, name: str = "y") -> np.ndarray:
    """A 1-D array of labels (any hashable, sortable type)."""
    if y is None:
        raise TypeError(f"{name}: expected an array, got None")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected 1-D labels, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 rows)")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: complex labels are not supported")
    return arr


def check_rows(X, y, xname="X", yname="y"):
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{yname}: has {y.shape[0]} rows but {xname} has {X.shape[0]}")


def positive_int(value, name, *, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def fraction(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name}: must be a number in [0, 1), got {value!r}")
    return float(value)


def sample_weights(sw, n, dtype, name="sample_weight"):
    if sw is None:
        return None
    w = as_matrix(sw, name, dtype, ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"{name}: has {w.shape[0]} entries but X has {n} rows")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name}: weights must be >= 0 and not all zero")
    return w
