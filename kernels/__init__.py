"""pynet's compute core: the kernel contract and its backends, usable without the ``pynet`` package.

>>> import kernels
>>> k = kernels.load("numpy")            # or "numba", "c"
>>> k.dense_forward(X, W, b, Z)          # checked arguments, result written into Z

``kernels.BACKENDS`` lists the backend names fastest first; :func:`status` says which can be loaded
and why not. Loading a backend imports it (Numba compiles each kernel lazily, on first call).
"""
from __future__ import annotations

import importlib
import threading

from . import contract
from .checks import check
from .contract import KERNEL_NAMES

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "contract", "load", "status"]

#: Backend name -> module implementing the contract, fastest first.
_MODULES = {"c": "kernels.c_backend", "numba": "kernels.numba_backend", "numpy": "kernels.reference"}
BACKENDS = tuple(_MODULES)
#: What to do when a backend cannot load.
_INSTALL_HINT = {
    "c": "the C extension is built by 'pip install .' when a C compiler is present; "
         "install gcc (or clang) and reinstall pynet",
    "numba": "pip install numba",
    "numpy": "pip install numpy",
}


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name but cannot be loaded here."""


class Backend:
    """A loaded backend: every contract kernel as a checked function; ``raw`` skips the checks."""

    def __init__(self, name: str, module):
        self.name = name
        self.raw = module
        missing = [k for k in KERNEL_NAMES if not callable(getattr(module, k, None))]
        if missing:
            raise BackendUnavailable(f"backend {name!r} lacks kernels: {', '.join(missing)}")
        # a backend whose threading cannot serve several Python threads at once exports CALL_LOCK
        lock = getattr(module, "CALL_LOCK", None)
        for spec in contract.KERNELS:
            setattr(self, spec.name, _checked(spec, getattr(module, spec.name), lock))

    def set_num_threads(self, n: int) -> None:
        """Threads the backend's kernels may use (the reference follows numpy's BLAS and ignores it)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: thread count must be an integer >= 1, got {n!r}")
        fn = getattr(self.raw, "set_num_threads", None)
        if fn is not None:
            fn(n)

    def get_num_threads(self) -> int:
        fn = getattr(self.raw, "get_num_threads", None)
        return fn() if fn is not None else 1

    def __repr__(self):
        return f"<pynet kernels backend {self.name!r}>"


def _checked(spec, fn, lock=None):
    if lock is None:
        def kernel(*args):
            return fn(*check(spec, args))
    else:
        def kernel(*args):
            args = check(spec, args)
            with lock:
                return fn(*args)

    kernel.__name__ = spec.name
    kernel.__qualname__ = spec.name
    kernel.__doc__ = f"{spec.math}\n\nArguments: {', '.join(a.name for a in spec.args)}."
    return kernel


_loaded: dict[str, Backend] = {}
_errors: dict[str, str] = {}
_lock = threading.Lock()


def load(name: str) -> Backend:
    """The backend called ``name``; raises BackendUnavailable saying why and what to install."""
    if name not in _MODULES:
        raise ValueError(f"backend: unknown name {name!r}; valid names are {', '.join(BACKENDS)}")
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name in _errors:
            raise BackendUnavailable(_errors[name])
        try:
            backend = Backend(name, importlib.import_module(_MODULES[name]))
        except Exception as exc:  # an import failure of any kind makes the backend unavailable
            reason = f"backend {name!r} is unavailable: {type(exc).__name__}: {exc}. {_INSTALL_HINT[name]}"
            _errors[name] = reason
            raise BackendUnavailable(reason) from exc
        _loaded[name] = backend
        return backend


def status() -> dict[str, str | None]:
    """Backend name -> None when it loads, else the reason it does not (loads each backend once)."""
    out = {}
    for name in BACKENDS:
        try:
            load(name)
            out[name] = None
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out
