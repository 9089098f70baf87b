"""Raking (iterative proportional fitting) of weights to known margins.

Deming & Stephan (1940); the algorithm of R ``survey::rake``: multiply the weights of each
category of one margin so that they sum to its known total, cycle over the margins, stop
when no weight changes by more than ``tol`` (relative). A numpy kernel: categories are
integer codes ``0 .. K-1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from impactmodel.errors import ImpactModelError


class RakingError(ImpactModelError):
    """Raking cannot reach the margins (an empty category, or no convergence)."""


class RakingNotConverged(RakingError):
    """The iteration did not reach the margins: they may be unattainable with positive weights.

    That happens when the sample's cross-classification has empty cells that the margins
    need (for instance a region whose only respondents are all in one age group): the
    iteration then drives some weights towards zero and never settles, or it cycles
    between weights that meet one margin and weights that meet another.
    """


def rake(
    weights: ArrayLike,
    margins: Sequence[tuple[ArrayLike, ArrayLike]],
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> NDArray[np.float64]:
    """Rake ``weights`` so that, for each margin, the weights of each category sum to its total.

    Parameters
    ----------
    weights : array_like, shape (n,)
        Starting (design) weights, all > 0.
    margins : sequence of (codes, totals)
        ``codes`` (shape (n,), integers in ``0 .. K-1``) gives each unit's category on the
        margin; ``totals`` (shape (K,)) the known population total of each category. All
        margins must share the same grand total.
    max_iter : int
        Maximum number of full cycles over the margins.
    tol : float
        Convergence when the largest relative change of any weight in a cycle is below it.

    Returns
    -------
    numpy.ndarray
        The raked weights.

    Raises
    ------
    RakingError
        If a category with a positive total has no unit, or the grand totals disagree.
    RakingNotConverged
        If the iteration does not converge within ``max_iter`` cycles, or settles on
        weights that miss a margin (it cycled: the margins cannot all be met).
    """
    w = np.asarray(weights, dtype=float).copy()
    if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise RakingError("starting weights must be a 1-d array of finite values > 0")
    prepared = []
    grand_totals = []
    for m, (codes, totals) in enumerate(margins):
        c = np.asarray(codes)
        t = np.asarray(totals, dtype=float)
        if c.shape != w.shape or not np.issubdtype(c.dtype, np.integer):
            raise RakingError(f"margin {m}: codes must be integers, one per unit")
        if c.min() < 0 or c.max() >= len(t):
            raise RakingError(f"margin {m}: codes must lie in 0..{len(t) - 1}")
        present = np.bincount(c, minlength=len(t)) > 0
        empty = np.flatnonzero(~present & (t > 0))
        if len(empty):
            raise RakingError(
                f"margin {m}: categories {empty.tolist()} have a positive total but no unit; "
                "collapse them with a neighbouring category")
        prepared.append((c, t))
        grand_totals.append(t.sum())
    if grand_totals and not np.allclose(grand_totals, grand_totals[0], rtol=1e-8):
        raise RakingError(f"margins have different grand totals: {grand_totals}")
    for _ in range(max_iter):
        before = w.copy()
        for c, t in prepared:
            current = np.bincount(c, weights=w, minlength=len(t))
            factor = np.divide(t, current, out=np.ones_like(t), where=current > 0)
            w *= factor[c]
        if np.max(np.abs(w - before) / before) < tol:
            _check_margins_met(w, prepared, rtol=max(1e-6, 10 * tol))
            return w
    raise RakingNotConverged(f"raking did not converge in {max_iter} cycles (tol={tol})")


def _check_margins_met(w: NDArray[np.float64], margins: list[tuple[NDArray, NDArray]],
                       rtol: float) -> None:
    """Raise if settled weights miss a margin: the iteration cycled instead of converging.

    When one unit alone fills a category of two margins whose totals disagree, each cycle
    returns the same weights, so the weights stop changing, yet only the last margin is
    met. The change-between-cycles rule (R's) cannot see that; this check does.
    """
    for m, (c, t) in enumerate(margins):
        current = np.bincount(c, weights=w, minlength=len(t))
        missed = np.flatnonzero(np.abs(current - t) > rtol * t)
        if len(missed):
            shown = ", ".join(f"{k}: {current[k]:.6g} for {t[k]:.6g}" for k in missed[:5])
            raise RakingNotConverged(
                f"raking settled on weights that miss margin {m} ({shown}): no positive "
                "weights meet all the margins; collapse sparse categories")

