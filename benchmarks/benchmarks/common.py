"""Shared set-up for the asv suite: backends, skipping those not available, and fixed seeds."""
import kernels

DTYPES = ["float32", "float64"]


def backend_or_skip(name):
    """The loaded backend; asv skips a parameter combination whose setup raises NotImplementedError."""
    try:
        return kernels.load(name)
    except kernels.BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from None
