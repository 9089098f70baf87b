"""The vectorisable exponential against numpy's ``np.exp`` (the C library's, to < 1 ulp)."""

from __future__ import annotations

import numpy as np
import pytest

from impactmodel.bayes.vector_exp import HIGHEST, LOWEST, vector_exp


def ulps_apart(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Distance in units in the last place of ``expected``."""
    return np.abs(found - expected) / np.spacing(np.abs(expected))


def test_every_normal_result_is_within_one_ulp_of_numpy():
    grid = np.linspace(-708.0, 709.7, 1_000_003)  # every result a normal number
    near_zero = np.random.default_rng(7).normal(size=200_000) * 3.0
    halfway = (np.arange(-1000, 1001) + 0.5) * np.log(2.0)  # where the rounding of k flips
    for x in (grid, near_zero, halfway[np.abs(halfway) < 708.0]):
        assert ulps_apart(vector_exp(x), np.exp(x)).max() <= 1.0


def test_exact_values_and_the_edges_of_the_range():
    x = np.array([0.0, -0.0, 1.0, np.log(2.0) * 10, 709.78, 709.79, 710.0, 1e300, np.inf,
                  -708.5, -740.0, -745.1, -746.0, -1e300, -np.inf, np.nan])
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(x)
    found = vector_exp(x)
    assert found[0] == found[1] == 1.0
    assert found[2] == pytest.approx(np.e, rel=2.3e-16)
    assert found[3] == pytest.approx(1024.0, rel=2.3e-16)
    assert np.isinf(found[5:9]).all() and np.isfinite(found[4])  # exp overflows at 709.78...
    assert found[4] == pytest.approx(expected[4], rel=2.3e-16)
    subnormal = slice(9, 12)  # exp(-708.5), exp(-740), exp(-745.1): below 2^-1022
    assert np.all(found[subnormal] > 0.0)
    assert np.allclose(found[subnormal], expected[subnormal], rtol=1e-3, atol=0.0)
    assert np.all(found[12:15] == 0.0)
    assert np.isnan(found[15])
    assert LOWEST <= -745.2 and HIGHEST >= 709.79  # the clip changes no finite result


def test_shapes():
    assert vector_exp(np.array([])).shape == (0,)
    assert vector_exp([0.5, 1.5]).tolist() == pytest.approx(np.exp([0.5, 1.5]).tolist(),
                                                            rel=2.3e-16)
    with pytest.raises(ValueError, match="1-D"):
        vector_exp(np.zeros((2, 2)))
