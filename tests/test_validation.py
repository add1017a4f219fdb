"""as_matrix: what it checks, what it copies, and what it allocates on large inputs."""
import tracemalloc

import numpy as np
import pytest

from pynet._validation import _FINITE_BLOCK, as_labels, as_matrix


def test_no_copy_when_dtype_and_layout_fit():
    X = np.random.default_rng(0).standard_normal((50, 7)).astype(np.float32)
    before = X.copy()
    assert as_matrix(X, "X", np.float32) is X
    assert as_matrix(X, "X", np.float64) is not X  # a conversion is a copy …
    assert np.array_equal(X, before) and X.dtype == np.float32  # … and the input is never modified
    F = np.asfortranarray(X)
    out = as_matrix(F, "X", np.float32)
    assert out.flags.c_contiguous and np.array_equal(out, X)


ROWS = 3 * _FINITE_BLOCK // 100 + 5  # 100 columns: the cells span several scan blocks


@pytest.mark.parametrize("r, c", [(0, 0), (1, 3), (2 * _FINITE_BLOCK // 100 + 1, 42), (ROWS - 1, 98)])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_first_bad_cell_is_named_in_any_block(r, c, value):
    X = np.ones((ROWS, 100), np.float32)
    X[r, c] = value
    X[-1, -1] = value  # a later bad cell: the first one in C order is the one named
    with pytest.raises(ValueError, match=rf"^X: contains NaN or infinity \(first at index \({r}, {c}\)\)$"):
        as_matrix(X, "X", np.float32)


def test_infinities_of_both_signs_are_caught():
    X = np.zeros((10, 3))
    X[2, 1], X[6, 0] = np.inf, -np.inf  # their sum is NaN, not a finite number
    with pytest.raises(ValueError, match=r"first at index \(2, 1\)"):
        as_matrix(X, "X", np.float64)


def test_finite_data_whose_sum_overflows_is_accepted():
    big = np.finfo(np.float32).max / 2
    X = np.full((1000, 4), big, np.float32)  # Σ overflows to inf; every cell is finite
    assert as_matrix(X, "X", np.float32) is X
    y = np.full(100, np.finfo(np.float16).max, np.float16)
    assert np.all(as_matrix(y, "y", np.float32, ndim=1) == np.float32(np.finfo(np.float16).max))


def test_conversions_that_overflow_are_rejected():
    X = np.ones((4, 2))
    X[3, 1] = 1e300  # finite in float64, inf in float32
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"first at index \(3, 1\)"):
        as_matrix(X, "X", np.float32)


def test_integer_input_converts_without_a_check():
    X = np.arange(12, dtype=np.int64).reshape(4, 3)
    out = as_matrix(X, "X", np.float32)
    assert out.dtype == np.float32 and np.array_equal(out, X)
    assert as_matrix(np.array([[True, False]]), "X", np.float64).tolist() == [[1.0, 0.0]]


def test_labels_name_the_first_bad_label():
    with pytest.raises(ValueError, match=r"^y: contains NaN or infinity \(first at index \(2,\)\)$"):
        as_labels(np.array([0.0, 1.0, np.nan, np.inf]))
    assert as_labels(np.array([[1.5], [2.5]])).tolist() == [1.5, 2.5]


def test_finiteness_check_allocates_no_array_the_size_of_x():
    X = np.random.default_rng(1).standard_normal((2_000, 1_000)).astype(np.float32)  # 8 MB
    tracemalloc.start()
    try:
        assert as_matrix(X, "X", np.float32) is X
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # np.isfinite(X) alone would be a 2 MB bool array
    assert peak < X.size // 8, peak
    X[1_500, 999] = np.nan
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"\(1500, 999\)"):
            as_matrix(X, "X", np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.size // 8, peak
