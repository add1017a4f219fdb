"""Shared fixtures: every test that takes ``backend`` runs once per available backend.

A backend that cannot load is not silently skipped where it is required: numba is a hard
dependency, and ``PYNET_REQUIRE_C=1`` (set by CI) requires the C backend
(see ``test_required_backends_load``).
"""
import os

import numpy as np
import pytest

import kernels

AVAILABLE = [name for name, why in kernels.status().items() if why is None]
if os.environ.get("PYNET_TEST_BACKENDS"):  # e.g. "c,numpy" for the sanitizer run
    AVAILABLE = [name for name in AVAILABLE if name in os.environ["PYNET_TEST_BACKENDS"].split(",")]


def required_backends():
    required = ["numpy", "numba"]
    if os.environ.get("PYNET_REQUIRE_C") == "1":
        required.append("c")
    return required


@pytest.fixture(params=AVAILABLE)
def backend(request):
    """Name of an available backend."""
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype):
    return kernels.contract.TOLERANCE[np.dtype(dtype)]
