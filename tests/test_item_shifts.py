"""The item model's shift and cut-point coordinates (:mod:`impactmodel.bayes.item_shifts`).

The coordinates must span exactly the shifts that sum to zero per item (so the prior,
iid normal in them, is the model's), and they must make the answers' information
diagonal: checked here on the exact posterior of a gaussian analogue, computed by
conjugacy in the model's own coordinates (cut-point level and shifts) and then mapped.
"""

from __future__ import annotations

import numpy as np
import pytest

from impactmodel.bayes.effects import within_group_basis
from impactmodel.bayes.item_shifts import (
    alike_contrasts,
    answer_aligned_basis,
    answer_weights,
)

# items 0 and 1: impact 0 asked of populations 0, 2, 3 (alike); item 2: impact 1 asked of
# all four; item 3: impact 1 asked of population 1 only; item 4: impact 0 of 0 and 3
PAIRS = np.array([[0, 0], [0, 2], [0, 3], [1, 0], [1, 2], [1, 3],
                  [2, 0], [2, 1], [2, 2], [2, 3], [3, 1], [4, 0], [4, 3]])
ITEM_IMPACT = np.array([0, 0, 1, 1, 0])
#: answers per pair: population 2 small, as the elected officials of the national survey
ANSWERS = np.array([40_000, 1_000, 30_000, 38_000, 900, 31_000,
                    20_000, 25_000, 500, 21_000, 7_000, 5_000, 5_000])


def _items_rows(item: int) -> np.ndarray:
    return np.flatnonzero(PAIRS[:, 0] == item)


def test_basis_spans_the_zero_sum_shifts_of_each_item() -> None:
    basis = answer_aligned_basis(PAIRS, ANSWERS, ITEM_IMPACT)
    helmert = within_group_basis(PAIRS[:, 0])
    assert basis.shape == helmert.shape == (13, 13 - 5)
    np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-12)
    # the same subspace as the Helmert contrasts': shifts summing to zero per item
    np.testing.assert_allclose(basis @ basis.T, helmert @ helmert.T, atol=1e-12)
    for column in basis.T:  # each column moves one item's shifts
        assert len(np.unique(PAIRS[np.abs(column) > 1e-12, 0])) == 1
    # rotated, not the Helmert contrasts themselves, where populations differ in size
    assert np.abs(basis[_items_rows(0)][:, :2] - helmert[_items_rows(0)][:, :2]).max() > 0.1


def test_alike_items_share_their_rotation() -> None:
    basis = answer_aligned_basis(PAIRS, ANSWERS, ITEM_IMPACT)
    groups = alike_contrasts(PAIRS, ITEM_IMPACT)
    # items 0, 1 (columns 0-1, 2-3) are alike: same impact, same populations asked
    assert list(groups[:4]) == [0, 1, 0, 1]
    np.testing.assert_allclose(basis[_items_rows(0)][:, 0:2], basis[_items_rows(1)][:, 2:4])
    # item 4 (impact 0, populations 0 and 3) is not alike items 0 and 1
    assert groups[-1] not in groups[:4]


def test_equal_populations_keep_the_helmert_contrasts() -> None:
    pairs = np.array([[0, 0], [0, 1], [0, 2]])
    basis = answer_aligned_basis(pairs, np.array([500, 500, 500]), np.array([0]))
    np.testing.assert_allclose(basis, within_group_basis(pairs[:, 0]))


def test_answer_weights_are_each_items_shares() -> None:
    weights = answer_weights(PAIRS, ANSWERS, n_items=6)  # item 5: no answers
    np.testing.assert_allclose(weights.sum(axis=1), [1, 1, 1, 1, 1, 0])
    assert weights[0, 1] == pytest.approx(1_000 / 71_000)
    assert weights[3, 10] == 1.0
    assert (weights[0, 3:] == 0).all()


def _posterior_correlations(n: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Posterior correlations of linear coordinates of (kappa, delta) in a gaussian analogue.

    One item asked of populations of ``n`` answers: each population's answers observe
    ``kappa - delta_p`` with variance ``1 / n_p``; ``kappa ~ N(0, 10^2)``, the shifts
    iid ``N(0, 0.5^2)`` on the zero-sum subspace (Helmert coordinates ``h``). The exact
    posterior covariance of ``(kappa, h)``, by conjugacy, is mapped by ``coordinates``
    (rows: linear forms in ``(kappa, delta)``).
    """
    helmert = within_group_basis(np.zeros(len(n), dtype=int))
    design = np.column_stack([np.ones(len(n)), -helmert])  # (kappa, h) -> kappa - delta
    prior = np.diag([1 / 10.0**2] + [1 / 0.5**2] * helmert.shape[1])
    covariance = np.linalg.inv(design.T @ np.diag(n) @ design + prior)
    to_kappa_delta = np.zeros((1 + len(n), 1 + helmert.shape[1]))
    to_kappa_delta[0, 0] = 1.0
    to_kappa_delta[1:, 1:] = helmert
    mapped = coordinates @ to_kappa_delta @ covariance @ to_kappa_delta.T @ coordinates.T
    sd = np.sqrt(np.diag(mapped))
    return mapped / np.outer(sd, sd)


@pytest.mark.parametrize("n", [np.array([40_000.0, 1_000.0, 30_000.0]),
                               np.array([20_000.0, 25_000.0, 500.0, 21_000.0]),
                               np.array([3_000.0, 60.0])])
def test_the_sampler_coordinates_are_independent_in_a_gaussian_posterior(n) -> None:
    pairs = np.column_stack([np.zeros(len(n), dtype=int), np.arange(len(n))])
    basis = answer_aligned_basis(pairs, n.astype(int), np.array([0]))
    weights = answer_weights(pairs, n.astype(int), n_items=1)[0]
    # the sampler's coordinates as forms in (kappa, delta): kappa - w'delta, basis' delta
    sampler = np.zeros((1 + basis.shape[1], 1 + len(n)))
    sampler[0] = np.concatenate([[1.0], -weights])
    sampler[1:, 1:] = basis.T
    correlation = _posterior_correlations(n, sampler)
    assert np.abs(correlation - np.eye(len(correlation))).max() < 0.01
    # the former coordinates, kappa and the Helmert contrasts, were far from independent
    former = np.zeros_like(sampler)
    former[0, 0] = 1.0
    former[1:, 1:] = within_group_basis(np.zeros(len(n), dtype=int)).T
    assert np.abs(_posterior_correlations(n, former) - np.eye(len(sampler))).max() > 0.3
