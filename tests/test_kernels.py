"""Numerical kernels against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from impactmodel.describe import kish_design_effect
from impactmodel.scores import group_means, pomp
from impactmodel.weighting import RakingError, rake


def test_raking_a_uniform_table_gives_the_independence_fit():
    # one unit per cell of a 2 x 2 table, all weights 1: IPF converges to r_i * c_j / N
    rows = np.array([0, 0, 1, 1])
    cols = np.array([0, 1, 0, 1])
    w = rake(np.ones(4), [(rows, [30.0, 70.0]), (cols, [40.0, 60.0])])
    np.testing.assert_allclose(w, [12.0, 18.0, 28.0, 42.0], rtol=1e-9)


def test_raking_matches_every_margin_and_keeps_within_cell_ratios():
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.integers(0, 3, n), rng.integers(0, 4, n)
    base = rng.uniform(1, 5, n)
    ta, tb = np.array([300.0, 500.0, 200.0]), np.array([100.0, 400.0, 250.0, 250.0])
    w = rake(base, [(a, ta), (b, tb)], tol=1e-12)
    np.testing.assert_allclose(np.bincount(a, weights=w), ta, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(b, weights=w), tb, rtol=1e-9)
    # raking multiplies by a factor per (a, b) cell: ratios within a cell are unchanged
    cell = a * 4 + b
    for c in np.unique(cell):
        ratio = w[cell == c] / base[cell == c]
        assert np.ptp(ratio) < 1e-9 * ratio.mean()


def test_raking_refuses_empty_categories_and_inconsistent_totals():
    with pytest.raises(RakingError, match=r"categories \[2\] have a positive total"):
        rake(np.ones(3), [(np.array([0, 1, 1]), [1.0, 2.0, 3.0])])
    with pytest.raises(RakingError, match="different grand totals"):
        rake(np.ones(2), [(np.array([0, 1]), [1.0, 1.0]), (np.array([0, 1]), [2.0, 2.0])])
    with pytest.raises(RakingError, match="> 0"):
        rake(np.array([1.0, -1.0]), [(np.array([0, 1]), [1.0, 1.0])])


def test_pomp_scores_and_reverse_coding():
    values = np.array([[1.0, 5.0, 3.0], [5.0, 1.0, np.nan]])
    low, high = np.array([1.0, 1.0, 0.0]), np.array([5.0, 5.0, 10.0])
    reverse = np.array([False, True, False])
    np.testing.assert_allclose(pomp(values, low, high, reverse),
                               [[0.0, 0.0, 30.0], [100.0, 100.0, np.nan]])


def test_group_means_skip_missing_answers():
    values = np.array([[10.0, 20.0, np.nan], [np.nan, np.nan, 40.0], [0.0, np.nan, np.nan]])
    groups = np.array([0, 0, 1])
    np.testing.assert_allclose(group_means(values, groups, 2),
                               [[15.0, np.nan], [np.nan, 40.0], [0.0, np.nan]])


def test_kish_design_effect_by_hand():
    # n * sum(w^2) / sum(w)^2 = 4 * (1 + 1 + 4 + 16) / 8^2 = 1.375
    assert kish_design_effect(np.array([1.0, 1.0, 2.0, 4.0])) == pytest.approx(1.375)
    assert kish_design_effect(np.full(7, 3.0)) == pytest.approx(1.0)
