"""Coordinates of the item model's population shifts ``delta[j, p]`` and cut-points.

Each item ``j`` has a shift per population ``p`` it is asked of, summing to zero over
those populations, and ordered cut-points ``kappa_j`` (:mod:`impactmodel.bayes.ordinal`).
The answers of population ``p`` to item ``j`` inform ``kappa_j - delta[j, p]``; how well
depends on how many answers there are, and populations differ a lot in size (on the
simulated national survey, 1,150 elected officials against 21,000-38,000 in each other
population). The model's prior is fixed; this module chooses the coordinates the sampler
moves in so that the answers inform them independently, to first order:

- **the shifts' contrasts** (:func:`answer_aligned_basis`): an orthonormal basis of each
  item's zero-sum shifts, rotated so that the answers' information is diagonal in it.
  With populations of unequal size, Helmert contrasts mixed a well-informed difference
  (two large populations) with a poorly informed one (the small population against the
  others): at 81,471 respondents, the two contrasts' means of every group of items asked
  of the small population were correlated -0.8 in the posterior and were the fit's
  slowest parameters (bulk ESS 229-301); aligned, they were uncorrelated (within 0.04)
  and their smallest bulk ESS was 688 (``benchmarks/README.md``, sessions of
  2026-12-07, third and fourth). A rotation of an iid normal is the same iid normal, so
  the prior does not change;
- **the cut-points' level** (:func:`answer_weights`): the sampler draws ``kappa_j -
  sum_p w_jp delta[j, p]``, ``w_jp`` the share of item ``j``'s answers from population
  ``p``, the cut-points as the item's average answerer meets them, and ``kappa_j`` is
  that plus the weighted shift (a shear of Jacobian one, and a common shift of an
  item's cut-points keeps them ordered, so the prior does not change either). The
  unweighted level ``kappa_j`` moved with the small population's shift (the cut-points'
  smallest bulk ESS went from 333 to 759 in the same fits).

With ``n_p`` the answers of population ``p``, the information of one item's
observations ``kappa - delta_p`` (a normal approximation: each answer informs its
population's ``kappa - delta_p`` alike) is ``diag(n)``; in the coordinates ``(kappa -
w'delta, c)`` with ``delta = H c`` (``H`` Helmert, ``w = n / sum n``) its cross term
vanishes and the contrasts' block is ``H' (diag(n) - n n' / sum n) H``, whose
eigenvectors rotate ``H`` into :func:`answer_aligned_basis`.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numpy.typing import NDArray

from impactmodel.bayes.effects import within_group_basis

#: relative spread of the answers' information below which an item's Helmert contrasts
#: are kept as they are (equal populations: every rotation is as good)
EQUAL_INFORMATION = 1e-9


def _asked_groups(pairs: NDArray[np.integer], item_impact: NDArray[np.integer]
                  ) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Per item with answers: (its impact, the populations it is asked of)."""
    return {int(item): (int(item_impact[item]),
                        tuple(int(v) for v in pairs[pairs[:, 0] == item, 1]))
            for item in np.unique(pairs[:, 0])}


def answer_aligned_basis(pairs: NDArray[np.integer], answers: NDArray[np.integer],
                         item_impact: NDArray[np.integer]) -> NDArray[np.float64]:
    """Orthonormal basis of the shifts summing to zero per item, aligned with the answers.

    Per item, its populations' Helmert contrasts rotated by the eigenvectors of ``H'
    (diag(n) - n n' / sum n) H`` (see the module docstring), the best-informed direction
    first, each column's largest entry positive (the Helmert contrasts themselves where
    the information is the same in every direction). ``n`` counts the answers of each
    population to all the items of the same impact asked of the same populations, so
    that alike items (:func:`alike_contrasts`) share one rotation.

    Parameters
    ----------
    pairs : ndarray of int, shape (pairs, 2)
        (item, population) pairs with answers, sorted by item then population.
    answers : ndarray of int, shape (pairs,)
        Answers per pair.
    item_impact : ndarray of int, shape (items,)

    Returns
    -------
    ndarray, shape (pairs, pairs - items with answers)
        Columns per item in turn, as :func:`~impactmodel.bayes.effects.within_group_basis`
        orders its Helmert contrasts.
    """
    pairs, answers = np.asarray(pairs), np.asarray(answers, dtype=np.float64)
    helmert = within_group_basis(pairs[:, 0])
    asked = _asked_groups(pairs, item_impact)
    totals: dict[tuple[int, tuple[int, ...]], NDArray[np.float64]] = {}
    for item, key in asked.items():
        totals[key] = totals.get(key, 0.0) + answers[pairs[:, 0] == item]
    basis = np.zeros_like(helmert)
    column = 0
    for item, key in asked.items():
        rows = np.flatnonzero(pairs[:, 0] == item)
        width = len(rows) - 1
        if width == 0:  # asked of one population: no shift
            continue
        contrasts = helmert[np.ix_(rows, range(column, column + width))]
        n = totals[key]
        information = contrasts.T @ (np.diag(n) - np.outer(n, n) / n.sum()) @ contrasts
        values, vectors = np.linalg.eigh(information)
        rotated = contrasts
        if values.max() - values.min() > EQUAL_INFORMATION * values.max():
            rotated = contrasts @ vectors[:, np.argsort(-values, kind="stable")]
            rotated *= np.sign(rotated[np.argmax(np.abs(rotated), axis=0), range(width)])
        basis[np.ix_(rows, range(column, column + width))] = rotated
        column += width
    return basis


def answer_weights(pairs: NDArray[np.integer], answers: NDArray[np.integer],
                   n_items: int) -> NDArray[np.float64]:
    """Items x pairs matrix of each item's answer shares by population.

    Row ``j`` holds ``w_jp``, the share of item ``j``'s answers from population ``p``, at
    the pair ``(j, p)`` (zero elsewhere; a row of zeros for an item without answers).
    """
    weights = np.zeros((n_items, len(pairs)))
    weights[pairs[:, 0], np.arange(len(pairs))] = answers
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def alike_contrasts(pairs: NDArray[np.integer], item_impact: NDArray[np.integer]
                    ) -> NDArray[np.int64]:
    """Group of each within-item contrast of the shifts: (impact, populations asked, column).

    ``pairs`` sorted by item, as :func:`answer_aligned_basis` orders its columns (per
    item, its contrasts in turn).
    """
    keys = []
    for impact, asked in _asked_groups(pairs, item_impact).values():
        keys += [(impact, asked, k) for k in range(1, len(asked))]
    codes = {key: code for code, key in enumerate(dict.fromkeys(keys))}
    return np.array([codes[key] for key in keys], dtype=np.int64)


def shift_averaging(pairs: NDArray[np.integer], item_impact: NDArray[np.integer],
                    n_pop: int, n_impacts: int) -> NDArray[np.float64]:
    """Return the (population x impact) x pairs matrix averaging shifts over items asked."""
    weights = np.zeros((n_pop, n_impacts, len(pairs)))
    weights[pairs[:, 1], item_impact[pairs[:, 0]], np.arange(len(pairs))] = 1.0
    weights /= np.maximum(weights.sum(axis=2, keepdims=True), 1.0)
    return weights.reshape(n_pop * n_impacts, len(pairs))


def pairs_to_grid(shift: pt.TensorVariable, pairs: NDArray[np.integer], n_items: int,
                  n_pop: int) -> pt.TensorVariable:
    """Item x population array of the shifts (NaN where the item is not asked)."""
    grid = pt.full((n_items * n_pop,), np.nan)
    return pt.set_subtensor(grid[pairs[:, 0] * n_pop + pairs[:, 1]], shift).reshape(
        (n_items, n_pop))
