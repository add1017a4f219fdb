"""Backend selection: ``backend=`` on a model, :func:`set_backend`, ``PYNET_BACKEND``, ``auto``."""
from __future__ import annotations

import os

import kernels
from kernels import BACKENDS, BackendUnavailable

CHOICES = ("auto",) + BACKENDS
_default: str | None = None
_threads: int | None = None


def _check_name(name, argument="backend"):
    if not isinstance(name, str) or name not in CHOICES:
        raise ValueError(f"{argument}: unknown backend {name!r}; valid names are {', '.join(CHOICES)}")
    return name


def set_backend(name: str) -> None:
    """Default backend for models created without ``backend=`` ("auto" picks the fastest available)."""
    global _default
    _default = _check_name(name)


def get_backend_name() -> str:
    """The default backend name in force: set_backend(), else PYNET_BACKEND, else "auto"."""
    if _default is not None:
        return _default
    return _check_name(os.environ.get("PYNET_BACKEND", "auto"), "PYNET_BACKEND")


def available_backends() -> list[str]:
    """Backend names usable now, fastest first (e.g. ["c", "numba", "numpy"])."""
    return [name for name, why in kernels.status().items() if why is None]


def unavailable_reasons() -> dict[str, str]:
    """Backend name -> why it cannot be used here, for every backend that cannot."""
    return {name: why for name, why in kernels.status().items() if why is not None}


def resolve(name: str | None = None) -> kernels.Backend:
    """The loaded backend for ``name`` (None: the default). "auto" falls back c -> numba -> numpy."""
    name = get_backend_name() if name is None else _check_name(name)
    if name == "auto":
        for candidate in BACKENDS:
            try:
                backend = kernels.load(candidate)
                break
            except BackendUnavailable:
                continue
    else:
        backend = kernels.load(name)  # raises BackendUnavailable with the reason and the fix
    if _threads is not None:
        backend.set_num_threads(_threads)
    return backend


def set_num_threads(n: int) -> None:
    """Threads used by the numba and c kernels (default: all cores)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: thread count must be an integer >= 1, got {n!r}")
    _threads = n
    for name in BACKENDS:
        if name in kernels._loaded:
            kernels._loaded[name].set_num_threads(n)
