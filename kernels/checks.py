"""Argument checking derived from the contract: every backend's public kernels go through it.

A compiled kernel trusts its arguments (a wrong shape would read or write out of bounds), so the
public entry points check dtype, contiguity, writability, shapes and index ranges first, and raise
``TypeError``/``ValueError`` naming the argument.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import contract as C

_REGISTRY = {"act": C.ACTIVATIONS, "loss": C.LOSSES, "opt": C.OPTIMIZERS, "math": C.MATH}
#: dimension symbols that may be zero (optional diagnostics, empty permutations)
_MAY_BE_ZERO = {"H", "G", "m", "T"}


def _scalar(arg: C.Arg, value):
    if arg.kind in _REGISTRY:
        names = _REGISTRY[arg.kind]
        if isinstance(value, str):
            return C.code(names, value, arg.name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{arg.name}: expected a name from {names} or its index, got {type(value).__name__}")
        if not 0 <= int(value) < len(names):
            raise ValueError(f"{arg.name}: code {value} out of range; valid names are {', '.join(names)}")
        return int(value)
    if arg.kind == "flag":
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
            return int(value)
        raise ValueError(f"{arg.name}: expected 0 or 1 (or a bool), got {value!r}")
    if arg.kind == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{arg.name}: expected an integer, got {type(value).__name__}")
        if not -2**63 <= value < 2**63:
            raise ValueError(f"{arg.name}: {value} does not fit in 64 bits")
        return int(value)
    if arg.kind == "float":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{arg.name}: expected a real number, got {type(value).__name__}")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{arg.name}: must be finite, got {value}")
        return value
    raise AssertionError(arg.kind)


def check(kernel: C.Kernel, values: tuple) -> tuple:
    """Validate ``values`` against ``kernel``'s declaration; return them with scalars normalised."""
    if len(values) != len(kernel.args):
        raise TypeError(f"{kernel.name}() takes {len(kernel.args)} arguments "
                        f"({', '.join(a.name for a in kernel.args)}), got {len(values)}")
    out, named, dims = [], {}, {}
    float_dtype = None
    for arg, value in zip(kernel.args, values):
        if arg.shape is None:
            value = _scalar(arg, value)
        elif value is None:
            if not arg.optional:
                raise TypeError(f"{arg.name}: an array is required, got None")
        else:
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{arg.name}: expected a numpy.ndarray, got {type(value).__name__}")
            if arg.kind == "float":
                if value.dtype not in C.FLOAT_DTYPES:
                    raise TypeError(f"{arg.name}: dtype must be float32 or float64, got {value.dtype}")
                if float_dtype is None:
                    float_dtype = value.dtype
                elif value.dtype != float_dtype:
                    raise TypeError(f"{arg.name}: dtype {value.dtype} differs from the call's {float_dtype}")
            else:
                want = np.dtype(np.float64) if arg.kind == "f64" else C.INDEX_DTYPE
                if value.dtype != want:
                    raise TypeError(f"{arg.name}: dtype must be {want}, got {value.dtype}")
            if value.ndim != len(arg.shape):
                raise ValueError(f"{arg.name}: expected {len(arg.shape)}-D array, got {value.ndim}-D")
            if not value.flags.c_contiguous:
                raise ValueError(f"{arg.name}: array must be C-contiguous (use numpy.ascontiguousarray)")
            if arg.role != "in" and not value.flags.writeable:
                raise ValueError(f"{arg.name}: output array is read-only")
            for axis, (sym, size) in enumerate(zip(arg.shape, value.shape)):
                if isinstance(sym, int):
                    if size != sym:
                        raise ValueError(f"{arg.name}: axis {axis} must have length {sym}, got {size}")
                    continue
                if size == 0 and sym not in _MAY_BE_ZERO:
                    raise ValueError(f"{arg.name}: axis {axis} is empty")
                if sym in dims and dims[sym][0] != size:
                    raise ValueError(f"{arg.name}: axis {axis} has length {size} but {dims[sym][1]} "
                                     f"implies {dims[sym][0]}")
                dims.setdefault(sym, (size, arg.name))
        out.append(value)
        named[arg.name] = value
    _check_aliasing(kernel, named)
    sw = named.get("sw")
    if sw is not None and not (np.all(sw >= 0) and np.isfinite(sw.sum()) and sw.sum() > 0):
        raise ValueError("sw: sample weights must be finite, >= 0, and not all zero")
    if kernel.check is not None:
        kernel.check(named, dims)
    return tuple(out)


def _check_aliasing(kernel: C.Kernel, named: dict) -> None:
    """Outputs must not overlap other arguments, except the in-place pairs the contract allows."""
    allowed = {("activation_forward", "Z", "A"), ("activation_backward", "dA", "dZ"),
               ("math_function", "X", "Y")}
    arrays = [(a, named[a.name]) for a in kernel.args
              if a.shape is not None and isinstance(named.get(a.name), np.ndarray)]
    for i, (a1, v1) in enumerate(arrays):
        for a2, v2 in arrays[i + 1:]:
            if a1.role == "in" and a2.role == "in":
                continue
            if (kernel.name, a1.name, a2.name) in allowed:
                continue
            # exact for contiguous arrays: compares the memory bounds
            if np.may_share_memory(v1, v2):
                out, other = (a2, a1) if a1.role == "in" else (a1, a2)
                raise ValueError(f"{out.name}: output overlaps {other.name}; pass separate arrays")
