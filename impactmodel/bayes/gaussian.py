"""The scale-score impact model: gaussian, with hierarchical practice effects.

For respondent ``i`` (population ``p``, department ``d`` in region ``r``) and cell
``c = (impact m, lens l, dimension k)``::

    y_ic = alpha[c, p] + u_region[m, r] + u_dept[m, d]
           + sum_j x_ij beta_j(c, p, r, d) + t_im + e_ic
    beta_j(c, p, r, d) = b_j + b_impact[j, m] + b_lens[j, l] + b_dim[j, k]
                         + b_pop[j, p] + b_region[j, r] + b_dept[j, d]

``t_im ~ N(0, tau_m)`` is the respondent's trait per impact (it makes one person's cell
scores correlated) and ``e_ic ~ N(0, sigma)``; the trait is integrated out analytically
(an equicorrelated normal per respondent x impact), so the sampler sees only group-level
parameters, and the likelihood is evaluated on sufficient statistics
(:mod:`impactmodel.bayes.sufficient`): its cost does not grow with the number of
respondents.

Coding, chosen for sampling as much as for meaning:

- ``alpha[c, p]``: one intercept per cell x population (questionnaires differ by
  population, so an additive cell + population split is only weakly identified and mixes
  badly); each has hundreds of scores behind it, so no pooling is needed.
- impact / lens / dimension parts of the effects sum to zero (``ZeroSumNormal``, their sds
  estimated); the population part sums to zero with a fixed prior sd (an sd estimated
  from four populations would be a prior in disguise).
- region and department deviations: region sum-to-zero, departments nested in their
  region; *centred* when departments hold many respondents, *non-centred* when few
  (:func:`choose_parametrisation`).

``x`` is centred at the sample means, so intercepts describe a respondent with average
practices.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes.effects import practice_effects, territorial_deviations
from impactmodel.bayes.model_data import ScoreData
from impactmodel.bayes.priors import ScaleScorePriors
from impactmodel.bayes.sampling import BuiltModel
from impactmodel.bayes.sufficient import ScoreStatistics, score_statistics

Parametrisation = Literal["auto", "centred", "non-centred"]

#: median respondents per department from which department deviations are centred
CENTRED_FROM = 60


def choose_parametrisation(respondents_per_department: np.ndarray,
                           requested: Parametrisation = "auto") -> bool:
    """Return True for centred territorial deviations.

    ``auto`` centres when the median department (among those with respondents) holds at
    least :data:`CENTRED_FROM` respondents: the likelihood then dominates the prior and the
    centred form has no funnel; below that the non-centred form mixes better.
    """
    if requested != "auto":
        return requested == "centred"
    present = respondents_per_department[respondents_per_department > 0]
    return bool(len(present)) and float(np.median(present)) >= CENTRED_FROM


def _residual_sum_of_squares(data: dict[str, pt.TensorVariable], prefix: str,
                             a: pt.TensorVariable, s: pt.TensorVariable) -> pt.TensorVariable:
    """Per block, ``sum (v - a - x.s)^2`` from the block's quadratic statistics."""
    sxx_s = pt.sum(data[f"{prefix}_sxx"] * s[:, None, :], axis=2)
    return (data[f"{prefix}_svv"] - 2 * a * data[f"{prefix}_sv"]
            - 2 * pt.sum(s * data[f"{prefix}_sxv"], axis=1) + data[f"{prefix}_n"] * a**2
            + 2 * a * pt.sum(s * data[f"{prefix}_sx"], axis=1) + pt.sum(s * sxx_s, axis=1))


def _data_arrays(stats: ScoreStatistics) -> dict[str, np.ndarray]:
    """Name the model's data containers."""
    arrays: dict[str, np.ndarray] = {
        "h_cell": stats.cell, "h_population": stats.population,
        "h_department": stats.department, "k_pattern": stats.class_pattern,
        "k_impact": stats.class_impact, "k_population": stats.class_population,
        "k_department": stats.class_department, "k_size": stats.class_size.astype(float),
        "pattern_population": stats.pattern_population,
        "member_pattern": stats.member_pattern, "member_cell": stats.member_cell,
        "n_rows": np.asarray(float(stats.n_rows)), "n_groups": np.asarray(float(stats.n_groups)),
    }
    for prefix, q in (("rows", stats.rows), ("groups", stats.groups)):
        for name in ("n", "sv", "svv", "sx", "sxv", "sxx"):
            arrays[f"{prefix}_{name}"] = getattr(q, name)
    return arrays


def scale_score_model(data: ScoreData, priors: ScaleScorePriors | None = None,
                      parametrisation: Parametrisation = "auto") -> BuiltModel:
    """Build the gaussian scale-score model (see the module docstring).

    Parameters
    ----------
    data : ScoreData
    priors : ScaleScorePriors, optional
    parametrisation : {"auto", "centred", "non-centred"}
        Of the region and department deviations (see :func:`choose_parametrisation`).

    Returns
    -------
    BuiltModel
        The ``pymc.Model`` has named coordinates ``practice, cell, impact, lens,
        dimension, population, region, department``; deterministic effects per cell
        (``effect_cell``: practice x impact x lens x dimension), per population, region
        and department.
    """
    p = priors or ScaleScorePriors()
    c = data.coords
    centred = choose_parametrisation(
        np.bincount(data.department, minlength=len(c["department"])), parametrisation)
    arrays = _data_arrays(score_statistics(data))
    n_impacts = len(c["impact"])
    with pm.Model(coords=c) as model:
        d = {name: pm.Data(name, value) for name, value in arrays.items()}
        alpha = pm.Normal("alpha", p.intercept_mean, p.intercept_sd,
                          dims=("cell", "population"))
        u_dept = territorial_deviations(
            "u", data.department_region, p.region_sd, p.department_sd, centred,
            dims="impact")
        effects = practice_effects(data.department_region, effect_sd=p.effect_sd,
                                   component_sd=p.component_sd, centred=centred)
        # every gather is a one-dimensional take on the leading axis (cheap to compile
        # and to differentiate); design cell h has cell c, population p, department d
        n_pop, n_dept = len(c["population"]), len(c["department"])
        alpha_flat, u_flat = alpha.reshape((-1,)), u_dept.reshape((-1,))
        slope_cell = effects.by_cell(data.cell_impact, data.cell_lens, data.cell_dimension)
        slope_pop, slope_dept = effects.population.T, effects.department.T
        h_cell, h_pop, h_dept = d["h_cell"], d["h_population"], d["h_department"]
        h_impact = pt.as_tensor_variable(data.cell_impact)[h_cell]
        a_h = alpha_flat[h_cell * n_pop + h_pop] + u_flat[h_impact * n_dept + h_dept]
        s_h = slope_cell[h_cell] + slope_pop[h_pop] + slope_dept[h_dept]
        # group sums: the pattern's sums over its cells, plus n times the common parts
        n_patterns = d["pattern_population"].shape[0]
        m_pattern, m_cell = d["member_pattern"], d["member_cell"]
        pattern_alpha = pt.zeros(n_patterns)[m_pattern].inc(
            alpha_flat[m_cell * n_pop + d["pattern_population"][m_pattern]])
        pattern_slope = pt.zeros((n_patterns, slope_cell.shape[1]))[m_pattern].inc(
            slope_cell[m_cell])
        k_size, k_pop, k_dept = d["k_size"], d["k_population"], d["k_department"]
        a_k = (pattern_alpha[d["k_pattern"]]
               + k_size * u_flat[d["k_impact"] * n_dept + k_dept])
        s_k = (pattern_slope[d["k_pattern"]]
               + k_size[:, None] * (slope_pop[k_pop] + slope_dept[k_dept]))
        sigma = pm.HalfNormal("sigma", p.residual_sd)
        tau = pm.HalfNormal("trait_sd", p.trait_sd, dims="impact")
        s2 = sigma**2
        t2 = tau[d["k_impact"]] ** 2
        denom = s2 + d["k_size"] * t2
        sse = pt.sum(_residual_sum_of_squares(d, "rows", a_h, s_h))
        shared = pt.sum(t2 * _residual_sum_of_squares(d, "groups", a_k, s_k)
                        / (s2 * denom))
        # equicorrelated normal per respondent x impact group of n scores:
        # covariance sigma^2 I + tau^2 11', |.| = sigma^(2(n-1)) (sigma^2 + n tau^2)
        pm.Potential("likelihood", -0.5 * d["n_rows"] * np.log(2 * np.pi)
                     - (d["n_rows"] - d["n_groups"]) * pt.log(sigma)
                     - 0.5 * pt.sum(d["groups_n"] * pt.log(denom))
                     - 0.5 * (sse / s2 - shared))
    structure = ("scale_score", tuple((k, tuple(v)) for k, v in c.items()),
                 tuple(data.department_region), p, centred, n_impacts)
    return BuiltModel(model, arrays, structure)
