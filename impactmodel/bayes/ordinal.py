"""The item-level impact model: cumulative logit with a respondent trait per impact.

For respondent ``i`` (population ``p``, department ``d`` in region ``r``) answering item
``j`` of cell ``c = (impact m, lens l, dimension k)``::

    eta_ij = mu[m, p] + u_region[m, r] + u_dept[m, d] + z_i' gamma[m]
             + theta_im + sum_s x_is beta_s(c, p, r, d)
    P(y_ij <= k) = logistic(kappa_jk - eta_ij)

(R's ``polr`` sign convention, and the simulator's), with item-specific ordered cut-points
``kappa_j``, ``theta_im = tau_m * n_im`` (non-centred) the respondent's trait, ``z`` the
covariate dummies, and the practice effects decomposed exactly as in the scale-score
model (:mod:`impactmodel.bayes.gaussian`): overall + impact + lens + dimension parts,
population part (sum-to-zero) and region / department-within-region variation. The
likelihood is written by hand on the log scale (no N x K probability matrix is stored).
Effects are on the latent logit scale.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes.effects import practice_effects
from impactmodel.bayes.item_data import ItemData


def ordinal_item_model(data: ItemData, *, effect_sd: float = 1.0, component_sd: float = 0.5,
                       territory_sd: float = 0.5, trait_sd: float = 1.5) -> pm.Model:
    """Build the ordinal item-level model (see the module docstring).

    Parameters
    ----------
    data : ItemData
    effect_sd : float
        Normal sd of a practice's overall effect (logit per unit of the practice).
    component_sd : float
        Half-normal scale of the sds of the effect components and territorial variation.
    territory_sd : float
        Half-normal scale of the region and department intercept sds.
    trait_sd : float
        Half-normal scale of the respondent trait sds.

    Returns
    -------
    pymc.Model
    """
    c = data.coords
    n_cut = data.n_levels - 1
    resp_pop = data.population[data.respondent]
    resp_dept = data.department[data.respondent]
    impact = data.item_impact[data.item]
    with pm.Model(coords=c) as model:
        start = np.linspace(-2, 2, n_cut)
        kappa = pm.Normal("kappa", 0.0, 3.0, dims=("item", "cut"),
                          transform=pm.distributions.transforms.ordered,
                          initval=np.tile(start, (len(c["item"]), 1)))
        mu = pm.ZeroSumNormal("mu", sigma=1.5, dims=("impact", "population"))
        region_scale = pm.HalfNormal("region_scale", territory_sd)
        dept_scale = pm.HalfNormal("department_scale", territory_sd)
        u_region = pm.ZeroSumNormal("u_region", sigma=region_scale, dims=("impact", "region"))
        u_dept = pm.Deterministic(
            "u_department", u_region[:, data.department_region]
            + dept_scale * pm.Normal("u_department_z", 0, 1, dims=("impact", "department")),
            dims=("impact", "department"))
        gamma = pm.Normal("gamma", 0.0, 1.0, dims=("impact", "covariate"))
        tau = pm.HalfNormal("trait_sd", trait_sd, dims="impact")
        trait_z = pm.Normal("trait_z", 0.0, 1.0, dims=("respondent", "impact"))
        effects = practice_effects(data.department_region, effect_sd=effect_sd,
                                   component_sd=component_sd)
        # linear predictor per (item, population, department) design cell, then per row
        keys = np.stack([data.item, resp_pop, resp_dept], axis=1)
        cells, g = np.unique(keys, axis=0, return_inverse=True)
        gi, gp, gd = cells[:, 0], cells[:, 1], cells[:, 2]
        gm = data.item_impact[gi]
        base_g = mu[gm, gp] + u_dept[gm, gd]
        slopes_g = effects.slopes(data.item_impact[gi], data.item_lens[gi],
                                  data.item_dimension[gi], gp, gd)
        covariate_term = pt.sum(data.z[data.respondent] * gamma[impact], axis=1)
        eta = (base_g[g] + pt.sum(data.x[data.respondent] * slopes_g[g], axis=1)
               + covariate_term + tau[impact] * trait_z[data.respondent, impact])
        wide = pt.concatenate([pt.full((kappa.shape[0], 1), -40.0), kappa,
                               pt.full((kappa.shape[0], 1), 40.0)], axis=1)
        upper = wide[data.item, data.y + 1] - eta
        lower = wide[data.item, data.y] - eta
        # log(F(upper) - F(lower)) = log F(upper) + log(1 - exp(log F(lower) - log F(upper)))
        log_up = pt.log(pt.sigmoid(upper))
        log_low = pt.log(pt.sigmoid(lower))
        pm.Potential("likelihood", pt.sum(log_up + pt.log1mexp(log_low - log_up)))
    return model
