"""The naive formulations of the two impact models: the benchmark's baseline.

What a PyMC user would write first for the same models on the same data (and what the
issue measured as the baseline): one likelihood term per row, the respondent trait as
explicit parameters, every group effect non-centred, a hierarchical sd estimated from the
four populations, no sum-to-zero coding, cell x population intercepts as cell + population
parts, and ``pm.OrderedLogistic`` with its default ``compute_p=True`` for the items. They
live here, not in the package: they exist only to be measured against.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes.item_data import ItemData
from impactmodel.bayes.model_data import ScoreData


def _naive_effects(n_practices: int, n_cells: int, n_pop: int, n_region: int, n_dept: int,
                   dept_region: np.ndarray, effect_sd: float) -> tuple[pt.TensorVariable, ...]:
    """Slopes by cell, population and department, all non-centred (naive)."""
    b = pm.Normal("b", 0, effect_sd, shape=n_practices)
    cell_sd = pm.HalfNormal("b_cell_sd", effect_sd / 2)
    b_cell = b[:, None] + cell_sd * pm.Normal("b_cell_z", 0, 1, shape=(n_practices, n_cells))
    pop_sd = pm.HalfNormal("b_pop_sd", effect_sd / 2)
    b_pop = pop_sd * pm.Normal("b_pop_z", 0, 1, shape=(n_practices, n_pop))
    region_sd = pm.HalfNormal("b_region_sd", effect_sd / 2)
    dept_sd = pm.HalfNormal("b_dept_sd", effect_sd / 2)
    b_region = region_sd * pm.Normal("b_region_z", 0, 1, shape=(n_practices, n_region))
    b_dept = b_region[:, dept_region] + dept_sd * pm.Normal("b_dept_z", 0, 1,
                                                           shape=(n_practices, n_dept))
    return b_cell, b_pop, b_dept


def _naive_intercepts(n_impacts: int, n_pop: int, n_region: int, n_dept: int,
                      dept_region: np.ndarray, scale: float) -> tuple[pt.TensorVariable, ...]:
    """Population (hierarchical sd over 4) and territory intercepts per impact, non-centred."""
    pop_sd = pm.HalfNormal("alpha_pop_sd", scale)
    alpha_pop = pop_sd * pm.Normal("alpha_pop_z", 0, 1, shape=(n_impacts, n_pop))
    region_sd = pm.HalfNormal("u_region_sd", scale)
    dept_sd = pm.HalfNormal("u_dept_sd", scale)
    u_region = region_sd * pm.Normal("u_region_z", 0, 1, shape=(n_impacts, n_region))
    u_dept = u_region[:, dept_region] + dept_sd * pm.Normal("u_dept_z", 0, 1,
                                                           shape=(n_impacts, n_dept))
    return alpha_pop, u_dept


def naive_scale_score_model(data: ScoreData) -> pm.Model:
    """Row-by-row gaussian model with explicit traits (same structure as the package's)."""
    n_cells, n_pop = len(data.coords["cell"]), len(data.coords["population"])
    n_region, n_dept = len(data.coords["region"]), len(data.coords["department"])
    n_resp, n_impacts = len(data.population), len(data.coords["impact"])
    i = data.respondent
    p, d, m = data.population[i], data.department[i], data.cell_impact[data.cell]
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 50, 20)
        cell_sd = pm.HalfNormal("alpha_cell_sd", 10)
        alpha_cell = cell_sd * pm.Normal("alpha_cell_z", 0, 1, shape=n_cells)
        alpha_pop, u_dept = _naive_intercepts(n_impacts, n_pop, n_region, n_dept,
                                              data.department_region, 5.0)
        b_cell, b_pop, b_dept = _naive_effects(data.x.shape[1], n_cells, n_pop, n_region,
                                               n_dept, data.department_region, 5.0)
        trait_sd = pm.HalfNormal("trait_sd", 15, shape=n_impacts)
        trait = trait_sd * pm.Normal("trait_z", 0, 1, shape=(n_resp, n_impacts))
        slopes = b_cell[:, data.cell] + b_pop[:, p] + b_dept[:, d]
        mu = (alpha + alpha_cell[data.cell] + alpha_pop[m, p] + u_dept[m, d] + trait[i, m]
              + pt.sum(data.x[i] * slopes.T, axis=1))
        pm.Normal("y", mu, pm.HalfNormal("sigma", 20), observed=data.y)
    return model


def naive_ordinal_model(data: ItemData) -> pm.Model:
    """Row-by-row ``pm.OrderedLogistic`` model with explicit traits."""
    n_items, n_pop = len(data.coords["item"]), len(data.coords["population"])
    n_region, n_dept = len(data.coords["region"]), len(data.coords["department"])
    n_impacts = len(data.coords["impact"])
    i, j = data.respondent, data.item
    p, d, m = data.population[i], data.department[i], data.item_impact[j]
    cells = data.item_impact * 18 + data.item_lens * 6 + data.item_dimension
    with pm.Model() as model:
        kappa = pm.Normal("kappa", 0, 3, shape=(n_items, data.n_levels - 1),
                          transform=pm.distributions.transforms.ordered,
                          initval=np.tile(np.linspace(-2, 2, data.n_levels - 1), (n_items, 1)))
        alpha_pop, u_dept = _naive_intercepts(n_impacts, n_pop, n_region, n_dept,
                                              data.department_region, 0.5)
        b_cell, b_pop, b_dept = _naive_effects(data.x.shape[1], 54, n_pop, n_region, n_dept,
                                               data.department_region, 1.0)
        gamma = pm.Normal("gamma", 0, 1, shape=(n_impacts, data.z.shape[1]))
        trait_sd = pm.HalfNormal("trait_sd", 1.5, shape=n_impacts)
        trait = trait_sd * pm.Normal("trait_z", 0, 1, shape=(data.n_respondents, n_impacts))
        slopes = b_cell[:, cells[j]] + b_pop[:, p] + b_dept[:, d]
        eta = (alpha_pop[m, p] + u_dept[m, d] + pt.sum(data.z[i] * gamma[m], axis=1)
               + trait[i, m] + pt.sum(data.x[i] * slopes.T, axis=1))
        pm.OrderedLogistic("y", eta=eta, cutpoints=kappa[j], observed=data.y)
    return model
