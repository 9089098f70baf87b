"""The scale-score impact model: gaussian, with hierarchical practice effects.

For respondent ``i`` (population ``p``, department ``d`` in region ``r``) and cell
``c = (impact m, lens l, dimension k)``::

    y_ic = alpha + alpha_cell[c] + alpha_pop[p, m] + u_region[r, m] + u_dept[d, m]
           + sum_j x_ij beta_j(c, p, r, d) + t_im + e_ic
    beta_j(c, p, r, d) = b_j + b_impact[j, m] + b_lens[j, l] + b_dim[j, k]
                         + b_pop[j, p] + b_region[j, r] + b_dept[j, d]

``t_im ~ N(0, tau_m)`` is the respondent's trait per impact (it makes one person's cell
scores correlated) and ``e_ic ~ N(0, sigma)``; the trait is integrated out analytically
(an equicorrelated normal per respondent x impact), so the sampler sees only group-level
parameters. Populations, impacts, lenses and dimensions are few: their parts are
sum-to-zero (``ZeroSumNormal``), with the overall part carried by ``alpha`` / ``b``.
Regions (18) and departments (101) are non-centred normal deviations, departments nested
in their region. ``x`` is centred at the sample means, so intercepts describe a
respondent with average practices.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes.effects import practice_effects
from impactmodel.bayes.model_data import ScoreData
from impactmodel.bayes.priors import ScaleScorePriors


def _equicorrelated_logp(resid: pt.TensorVariable, group: np.ndarray, n_groups: int,
                         group_size: np.ndarray, sigma: pt.TensorVariable,
                         tau_group: pt.TensorVariable) -> pt.TensorVariable:
    """Log-density of residuals sharing a normal intercept within each group.

    For a group of ``n`` residuals ``e`` with covariance ``sigma^2 I + tau^2 11'``:
    ``-n/2 log 2pi - (n-1) log sigma - 1/2 log(sigma^2 + n tau^2)
    - 1/2 [e'e / sigma^2 - tau^2 (sum e)^2 / (sigma^2 (sigma^2 + n tau^2))]``.
    """
    sum_e = pt.inc_subtensor(pt.zeros(n_groups)[group], resid)
    sum_e2 = pt.sum(resid**2)
    s2 = sigma**2
    t2 = tau_group**2
    denom = s2 + group_size * t2
    n_rows = resid.shape[0]
    return (-0.5 * n_rows * np.log(2 * np.pi)
            - (n_rows - n_groups) * pt.log(sigma)
            - 0.5 * pt.sum(pt.log(denom))
            - 0.5 * (sum_e2 / s2 - pt.sum(t2 * sum_e**2 / (s2 * denom))))


def scale_score_model(data: ScoreData, priors: ScaleScorePriors | None = None) -> pm.Model:
    """Build the gaussian scale-score model (see the module docstring).

    Parameters
    ----------
    data : ScoreData
    priors : ScaleScorePriors, optional

    Returns
    -------
    pymc.Model
        Named coordinates ``practice, cell, impact, lens, dimension, population, region,
        department``; deterministic effects per cell (``effect_cell``: practice x impact x
        lens x dimension), per population, region and department, and expected scores.
    """
    p = priors or ScaleScorePriors()
    c = data.coords
    n_groups = int(data.group.max()) + 1
    group_size = np.bincount(data.group, minlength=n_groups).astype(float)
    resp_pop = data.population[data.respondent]
    resp_dept = data.department[data.respondent]
    with pm.Model(coords=c) as model:
        alpha = pm.Normal("alpha", p.intercept_mean, p.intercept_sd)
        cell_scale = pm.HalfNormal("cell_scale", p.cell_sd)
        alpha_cell = pm.ZeroSumNormal("alpha_cell", sigma=cell_scale, dims="cell")
        # ZeroSumNormal sums to zero over its last axis: populations here, regions below
        alpha_pop = pm.ZeroSumNormal("alpha_pop", sigma=p.population_sd,
                                     dims=("impact", "population"))
        region_scale = pm.HalfNormal("region_scale", p.region_sd)
        dept_scale = pm.HalfNormal("department_scale", p.department_sd)
        # regions hold hundreds of scores each: centred, sum-to-zero (alpha is the mean)
        u_region = pm.ZeroSumNormal("u_region", sigma=region_scale, dims=("impact", "region"))
        u_dept = pm.Deterministic(
            "u_department", u_region[:, data.department_region]
            + dept_scale * pm.Normal("u_department_z", 0, 1, dims=("impact", "department")),
            dims=("impact", "department"))
        effects = practice_effects(data.department_region, effect_sd=p.effect_sd,
                                   component_sd=p.component_sd)
        # intercept and slopes per design cell g = (cell, population, department) present,
        # then one gather per row: far fewer indexing operations than per row
        keys = np.stack([data.cell, resp_pop, resp_dept], axis=1)
        design_cells, g = np.unique(keys, axis=0, return_inverse=True)
        gc, gp, gd = design_cells[:, 0], design_cells[:, 1], design_cells[:, 2]
        gm = data.cell_impact[gc]
        intercept_g = alpha + alpha_cell[gc] + alpha_pop[gm, gp] + u_dept[gm, gd]
        slopes_g = effects.slopes(data.cell_impact[gc], data.cell_lens[gc],
                                  data.cell_dimension[gc], gp, gd)
        x_rows = data.x[data.respondent]
        mu = intercept_g[g] + pt.sum(x_rows * slopes_g[g], axis=1)
        sigma = pm.HalfNormal("sigma", p.residual_sd)
        tau = pm.HalfNormal("trait_sd", p.trait_sd, dims="impact")
        pm.Potential("likelihood", _equicorrelated_logp(
            pt.as_tensor_variable(data.y) - mu, data.group, n_groups, group_size, sigma,
            tau[data.group_impact]))
    return model
