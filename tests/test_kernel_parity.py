"""Every contract kernel on every backend matches the NumPy reference within the contract tolerance.

Arguments are built per kernel by :func:`make_args` at shapes that are not multiples of any SIMD
width; each backend gets its own copy, and every output (and the return value) is compared.
"""
import numpy as np
import pytest

import kernels
from kernels import contract as C

from cases import SHAPES, assert_matches_reference, make_args, seed_of
from conftest import required_backends


def test_required_backends_load():
    """numba always, and c when PYNET_REQUIRE_C=1: these may not be skipped silently."""
    status = kernels.status()
    for name in required_backends():
        assert status[name] is None, status[name]


@pytest.mark.parametrize("name", C.KERNEL_NAMES)
def test_every_backend_exports_exactly_the_contract(name, backend):
    raw = kernels.load(backend).raw
    assert callable(getattr(raw, name))
    exported = {k for k in C.KERNEL_NAMES if callable(getattr(kernels.load(backend), k, None))}
    assert exported == set(C.KERNEL_NAMES)


@pytest.mark.parametrize("variant", range(4))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", C.KERNEL_NAMES)
def test_kernel_matches_reference(name, shape, variant, backend, dtype):
    args = make_args(name, dtype, np.random.default_rng(seed_of(name, shape, variant)), shape, variant)
    assert_matches_reference(name, args, backend, dtype)
