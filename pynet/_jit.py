"""First use of a JIT backend: compile what a fit calls before the fit starts, saying so on stderr with the
measured estimate and kernel-by-kernel progress, instead of sitting silent inside the first epoch for a
minute or more. Shared by ``MLP.fit`` and ``pynet train``; ``pynet warmup`` reports through ``progress``."""
from __future__ import annotations

import sys
import time


def estimate(raw, dtypes, fit=None) -> str:
    """"measured A–B s on MACHINE" for compiling what ``raw.warmup(dtypes, fit=fit)`` compiles, or "" when
    the backend states no measurement."""
    fn = getattr(raw, "compile_estimate", None)
    if fn is None:
        return ""
    lo, hi = fn(tuple(dtypes), fit=fit)
    return f"measured {lo:.0f}–{hi:.0f} s on {getattr(raw, 'COMPILE_MACHINE', 'the machine it was measured on')}"


def progress(stream=None, prefix="pynet"):
    """A ``warmup(progress=...)`` callback printing a "kernel i of n" line before each kernel, then the total
    time (a kernel in the cache loads in a fraction of a second; one that is not compiles)."""
    stream = stream or sys.stderr
    start = time.perf_counter()

    def report(done, total, kernel, dtype):
        if kernel is None:
            print(f"{prefix}: {total} kernel(s) ready in {time.perf_counter() - start:.1f} s", file=stream,
                  flush=True)
        else:
            print(f"{prefix}: kernel {done + 1} of {total}: {kernel} ({dtype}) ... "
                  f"{time.perf_counter() - start:.0f} s so far", file=stream, flush=True)

    return report


def ready(k, dtype, optimizer, *, load=False, quiet=False, stream=None):
    """Make the kernels a fit with ``optimizer`` calls for ``dtype`` ready on backend ``k`` (a
    :class:`kernels.Backend`): with a cold cache compile them now, saying so on ``stream`` (stderr) unless
    ``quiet``; with a warm one load them only when ``load`` (the CLI does, so that its timed fit is the fit
    alone). Returns (compile seconds, load seconds): (0, 0) for a backend with nothing to compile, or when
    its cache cannot be read (its own per-kernel notices then speak during the fit)."""
    raw = k.raw
    cached = getattr(raw, "cached", None)
    status = None if cached is None else cached(dtype, fit=optimizer)
    if status is None or (status and not load):
        return 0.0, 0.0
    cold = status is False
    report = None
    if cold and not quiet:
        stream = stream or sys.stderr
        cost = estimate(raw, (dtype,), optimizer)
        print(f"pynet: compiling the {k.name} kernels this fit calls for {dtype}: their first use on this machine"
              f"{' (' + cost + ')' if cost else ''}; Numba caches them, so later runs load them in about a "
              "second ('pynet warmup' compiles every kernel ahead of time)", file=stream, flush=True)
        report = progress(stream)
    t0 = time.perf_counter()
    raw.warmup((dtype,), fit=optimizer, progress=report)
    seconds = time.perf_counter() - t0
    return (seconds, 0.0) if cold else (0.0, seconds)
