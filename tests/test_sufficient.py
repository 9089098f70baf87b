"""The one-pass reductions of the scale-score statistics against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from impactmodel.bayes.sufficient import (
    _cell_masks,
    _cells_of_mask,
    _design_keys,
    _patterns,
    dense_codes,
    moment_matrices,
)


def test_moment_matrices_are_the_weighted_sums_of_outer_products():
    rng = np.random.default_rng(0)
    units, blocks = 50, 6
    block = rng.integers(0, blocks - 1, units)  # the last block stays empty
    x, v, c = rng.normal(size=(units, 3)), rng.normal(size=(units, 2)), rng.gamma(2.0, 1.0,
                                                                                 units)
    expected = np.zeros((blocks, 6, 6))
    for i in range(units):
        w = np.concatenate([[1.0], x[i], v[i]])
        expected[block[i]] += c[i] * np.outer(w, w)
    np.testing.assert_allclose(moment_matrices(block, blocks, v, x, c), expected, rtol=1e-12)
    unweighted = moment_matrices(block, blocks, v[:, 0], x)
    assert unweighted.shape == (blocks, 5, 5)
    np.testing.assert_array_equal(unweighted[:, 0, 0], np.bincount(block, minlength=blocks))
    with pytest.raises(ValueError, match=r"blocks must be in 0 \.\. 4"):
        moment_matrices(block + 1, blocks - 1, v, x)
    # x and weights per source (respondent), each unit reading its source's row
    source = rng.integers(0, 7, units)
    x_src, c_src = rng.normal(size=(7, 3)), rng.gamma(2.0, 1.0, 7)
    expected = np.zeros((blocks, 6, 6))
    for i in range(units):
        w = np.concatenate([[1.0], x_src[source[i]], v[i]])
        expected[block[i]] += c_src[source[i]] * np.outer(w, w)
    np.testing.assert_allclose(moment_matrices(block, blocks, v, x_src, c_src, source=source),
                               expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"source must give each unit a row of x"):
        moment_matrices(block, blocks, v, x_src, c_src, source=source + 1)


@pytest.mark.parametrize("size", [120, 10**9])  # counted; too wide to count, sorted
def test_dense_codes_equal_numpy_unique(size):
    key = np.random.default_rng(1).integers(0, 40, 300) * 3
    codes, inverse = dense_codes(key, size)
    expected_codes, expected_inverse = np.unique(key, return_inverse=True)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(inverse, expected_inverse)


@pytest.mark.parametrize("n_cells", [54, 130])  # one 62-bit mask word, three
def test_patterns_equal_numpy_unique_of_the_rows(n_cells):
    rng = np.random.default_rng(2)
    units = 400
    unit = np.repeat(np.arange(units), 3)
    cell = rng.integers(0, 4, len(unit)) * (n_cells // 4)  # few distinct cell sets
    masks = _cell_masks(unit, cell, units, n_cells)
    pop = rng.integers(0, 4, units)
    patterns, unit_pattern = _patterns(pop, masks, 4)
    expected, expected_inverse = np.unique(np.column_stack([pop, masks]), axis=0,
                                           return_inverse=True)
    np.testing.assert_array_equal(patterns, expected)
    np.testing.assert_array_equal(unit_pattern, expected_inverse)


@pytest.mark.parametrize("n_cells", [54, 130])
def test_cell_masks_hold_exactly_each_groups_cells(n_cells):
    rng = np.random.default_rng(4)
    group, cell = rng.integers(0, 30, 500), rng.integers(0, n_cells, 500)
    masks = _cell_masks(group, cell, 31, n_cells)  # group 30 has no rows
    for g in range(31):
        np.testing.assert_array_equal(_cells_of_mask(masks[g]), np.unique(cell[group == g]))


def test_design_keys_are_cell_population_department_codes():
    rng = np.random.default_rng(5)
    respondent = rng.integers(0, 40, 300)
    cell, population, department = (rng.integers(0, 54, 300), rng.integers(0, 4, 40),
                                    rng.integers(0, 101, 40))
    expected = [(c * 4 + population[r]) * 101 + department[r]
                for c, r in zip(cell, respondent, strict=True)]
    np.testing.assert_array_equal(_design_keys(cell, respondent, population, department, 4, 101),
                                  expected)
