"""Impact items from a latent cumulative-logit model with known parameters.

For unit ``i`` (population ``p``, department ``d`` in region ``r``) and item ``j`` measuring
cell ``c = (impact m, lens, dimension)``::

    eta_ij = alpha_j + mu[p, m] + a_region[r, m] + a_department[d, m]
             + gamma_age[m, age_i] + gamma_size[m, size_i] + theta[i, m]
             + sum_k x_ik * (beta_cell[k, c] + beta_population[k, p]
                             + beta_region[k, r] + beta_department[k, d])
    y_ij = 1 + #{s : eta_ij + e_ij > kappa_js},  e_ij ~ Logistic(0, 1)

with ``beta_cell[k, c] = beta_overall[k] + beta_impact[k, m] + beta_lens[k, l] +
beta_dimension[k, dim]`` (hierarchical over the 54 cells), ``theta[i, :]`` a respondent's
latent trait per impact (correlated normal), and ``x`` the practices of
:data:`~impactmodel.simulate.questionnaire.EFFECT_PRACTICES` (maturity scaled to 0..1).
Reverse-coded items store ``6 - y``. Department effects are deviations from their region's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impactmodel.codebook import ItemSpec
from impactmodel.simulate.questionnaire import EFFECT_PRACTICES, MATURITY_LEVELS
from impactmodel.territories import AdjacencyGraph
from impactmodel.vocabulary import DIMENSIONS, IMPACTS, LENSES, POPULATIONS

BASE_CUTPOINTS = (-2.0, -0.8, 0.4, 1.6)
TRAIT_CORRELATION = 0.5


def icar_field(rng: np.random.Generator, graph: AdjacencyGraph, columns: int
               ) -> NDArray[np.float64]:
    """Draw ``columns`` scaled ICAR fields over ``graph`` (departments x columns).

    Per connected component: normal with covariance the generalised inverse of its
    Laplacian divided by its scaling factor (:meth:`AdjacencyGraph.icar_root`; sums to
    zero over the component); a department alone gets a standard normal.
    """
    root = graph.icar_root()
    field = root @ rng.standard_normal((root.shape[1], columns))
    field[graph.singleton] = rng.standard_normal((int(graph.singleton.sum()), columns))
    return field


def draw_parameters(rng: np.random.Generator, items: tuple[ItemSpec, ...], n_regions: int,
                    n_departments: int,
                    spatial: tuple[float, np.random.Generator, AdjacencyGraph] | None = None
                    ) -> dict[str, NDArray[np.float64]]:
    """Draw every parameter of the item model (see the module docstring).

    ``spatial = (share, stream, graph)`` makes that share of the variance of the
    department deviations an ICAR field over ``graph`` (:func:`icar_field`), drawn from
    its own ``stream`` (so that the other parameters do not change).

    Returns
    -------
    dict of str to ndarray
        Named arrays; axis order as in the module docstring.
    """
    k, m = len(EFFECT_PRACTICES), len(IMPACTS)
    p = {
        "beta_overall": rng.normal(0.3, 0.15, k),
        "beta_impact": rng.normal(0, 0.15, (k, m)),
        "beta_lens": rng.normal(0, 0.1, (k, len(LENSES))),
        "beta_dimension": rng.normal(0, 0.1, (k, len(DIMENSIONS))),
        "beta_population": rng.normal(0, 0.15, (k, len(POPULATIONS))),
        "beta_region": rng.normal(0, 0.08, (k, n_regions)),
        "beta_department": rng.normal(0, 0.08, (k, n_departments)),
        "mu": rng.normal(0, 0.4, (len(POPULATIONS), m)),
        "a_region": rng.normal(0, 0.35, (n_regions, m)),
        "a_department": rng.normal(0, 0.25, (n_departments, m)),
        "gamma_age": np.column_stack([np.zeros(m), rng.normal(0, 0.25, (m, 2))]),
        "gamma_size": np.column_stack([np.zeros(m), rng.normal(0, 0.25, (m, 2))]),
        "alpha": rng.normal(0, 0.3, len(items)),
        "kappa": np.sort(np.asarray(BASE_CUTPOINTS) + rng.normal(0, 0.15, (len(items), 4)),
                         axis=1),
        "trait_sd": np.ones(m),
        "trait_correlation": np.full((m, m), TRAIT_CORRELATION) + (1 - TRAIT_CORRELATION)
        * np.eye(m),
    }
    if spatial is not None:  # a share of the department variance spatially structured
        share, stream, graph = spatial
        field = icar_field(stream, graph, m)  # departments x impacts, unit typical variance
        p["a_department"] = (np.sqrt(share) * 0.25 * field
                             + np.sqrt(1 - share) * p["a_department"])
    p["beta_cell"] = (p["beta_overall"][:, None, None, None]
                      + p["beta_impact"][:, :, None, None]
                      + p["beta_lens"][:, None, :, None]
                      + p["beta_dimension"][:, None, None, :])
    return p


def practice_matrix(units: pd.DataFrame) -> NDArray[np.float64]:
    """Return the units x practices matrix of the generating model (maturity as 0..1)."""
    cols = []
    for name in EFFECT_PRACTICES:
        values = units[name].to_numpy(dtype=float)
        if name == "maturity":
            values = values / (len(MATURITY_LEVELS) - 1)
        cols.append(values)
    return np.column_stack(cols)


def draw_items(rng: np.random.Generator, units: pd.DataFrame, items: tuple[ItemSpec, ...],
               p: dict[str, Any]) -> NDArray[np.float64]:
    """Draw every unit's answer to every item of its questionnaire.

    Returns
    -------
    ndarray, shape (n_units, n_items)
        Answers 1..5 as stored (reverse-coded items already reversed); ``NaN`` where the
        item is not in the unit's questionnaire.
    """
    pop = units["population"].to_numpy()
    reg, dep = units["region"].to_numpy(), units["department"].to_numpy()
    age, size = units["age_group"].to_numpy(), units["size_class"].to_numpy()
    x = practice_matrix(units)
    chol = np.linalg.cholesky(p["trait_correlation"]) * p["trait_sd"][:, None]
    theta = rng.standard_normal((len(units), len(IMPACTS))) @ chol.T
    varying = (p["beta_population"][:, pop] + p["beta_region"][:, reg]
               + p["beta_department"][:, dep]).T  # (n, K): slope deviations per unit
    base_by_impact = (p["mu"][pop] + p["a_region"][reg] + p["a_department"][dep]
                      + p["gamma_age"][:, age].T + p["gamma_size"][:, size].T + theta)
    out = np.full((len(units), len(items)), np.nan)
    for j, item in enumerate(items):
        mi, li, di = (IMPACTS.index(item.impact), LENSES.index(item.lens),
                      DIMENSIONS.index(item.dimension))
        slopes = p["beta_cell"][:, mi, li, di][None, :] + varying
        eta = p["alpha"][j] + base_by_impact[:, mi] + np.sum(x * slopes, axis=1)
        latent = eta + rng.logistic(size=len(units))
        y = 1 + (latent[:, None] > p["kappa"][j][None, :]).sum(axis=1)
        if item.reverse:
            y = item.scale.low + item.scale.high - y
        asked = np.isin(pop, [POPULATIONS.index(q) for q in item.asked])
        out[asked, j] = y[asked]
    return out


def effect_cell_in_sum_to_zero_coding(parameters: dict[str, Any],
                                      department_region: NDArray[np.integer]
                                      ) -> NDArray[np.float64]:
    """Express the generating cell effects as the package's models parametrise them.

    The models' population, region and department-within-region parts of the practice
    effects sum to zero (:mod:`impactmodel.bayes.effects`), so their means move into the
    cell effects: ``beta_cell`` plus the mean population deviation plus the national mean
    of the region deviations, each region's including its departments' mean.

    Parameters
    ----------
    parameters : dict
        ``truth.json``'s ``parameters`` (each a ``{"dims", "values"}`` mapping).
    department_region : ndarray of int
        Region index of each department, in the simulator's order.

    Returns
    -------
    ndarray, shape (practice, impact, lens, dimension)
    """
    def values(name: str) -> NDArray[np.float64]:
        return np.asarray(parameters[name]["values"], dtype=float)

    region, dept = values("beta_region"), values("beta_department")
    region_total = region + np.stack([dept[:, department_region == r].mean(axis=1)
                                      for r in range(region.shape[1])], axis=1)
    shared = values("beta_population").mean(axis=1) + region_total.mean(axis=1)
    return values("beta_cell") + shared[:, None, None, None]
