"""The scale-score impact model: gaussian, with hierarchical practice effects.

For respondent ``i`` (population ``p``, department ``d`` in region ``r``) and cell
``c = (impact m, lens l, dimension k)``::

    y_ic = alpha[c, p] + u_region[m, r] + u_dept[m, d]
           + sum_j x_ij beta_j(c, p, r, d) + t_im + e_ic
    beta_j(c, p, r, d) = b_j + b_impact[j, m] + b_lens[j, l] + b_dim[j, k]
                         + b_pop[j, p] + b_region[j, r] + b_dept[j, d]

plus, when covariates are given (the post-stratification variables, for MRP),
``sum_q z_iq gamma[m, q]`` with ``z`` centred dummies: a shift per impact and level.
``t_i ~ N(0, T)`` is the respondent's trait vector over the impacts (it makes one
person's cell scores correlated) and ``e_ic ~ N(0, sigma)``. ``T`` is diagonal by default
(half-normal sds: traits independent across impacts); with ``correlated_traits=True`` it
also has an LKJ correlation, so a person's scores are correlated across impacts too. The
traits are integrated out analytically: a respondent's ``n`` scores are normal with
covariance ``sigma^2 I + Z T Z'`` (``Z`` the cell -> impact indicator), whose inverse and
determinant need only 3 x 3 matrices (Woodbury; scalars when ``T`` is diagonal), so the
sampler sees only group-level parameters, and the likelihood is evaluated on sufficient
statistics (:mod:`impactmodel.bayes.sufficient`): its cost does not grow with the number
of respondents. The sums of squares over design cells and classes, with their gradient,
run as one fused Op (:mod:`impactmodel.bayes.residual_squares`).

Why independent traits by default: with correlated traits every respondent class
(pattern of cells x department) carries a 3 x 3 quadratic form in place of three scalar
ones, measured at 11.0 ms per gradient against 0.98 ms at 81,471 respondents. Ignoring a
positive correlation understates the uncertainty of the effect parts shared by the three
impacts; the item-level model (:mod:`impactmodel.bayes.ordinal`) always estimates it.

Coding, chosen for sampling as much as for meaning:

- ``alpha[c, p]``: one intercept per cell x population (questionnaires differ by
  population, so an additive cell + population split is only weakly identified and mixes
  badly); each has hundreds of scores behind it, so no pooling is needed. Sampled as the
  mean of each impact's intercepts per population plus deviations (the same iid prior,
  :func:`~impactmodel.bayes.effects.iid_normal_by_group`): respondents' traits make the
  common level of one impact's intercepts less certain than their differences.
- impact / lens / dimension parts of the effects sum to zero (``ZeroSumNormal``, their sds
  estimated); the population part sums to zero with a fixed prior sd (an sd estimated
  from four populations would be a prior in disguise). ``b`` and the population part are
  sampled as per-population levels around a centre (same prior; the populations' very
  unequal sizes otherwise make them the slowest-mixing parameters).
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

from impactmodel.bayes.containers import PackedArrays
from impactmodel.bayes.effects import (
    iid_normal_by_group,
    practice_effects,
    territorial_deviations,
    trait_covariance,
)
from impactmodel.bayes.model_data import ScoreData
from impactmodel.bayes.priors import ScaleScorePriors
from impactmodel.bayes.residual_squares import block_residual_squares
from impactmodel.bayes.sampling import BuiltModel
from impactmodel.bayes.sufficient import ScoreStatistics, score_statistics
from impactmodel.territories import AdjacencyGraph

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


def _weighted_cross_products(moments: pt.TensorVariable, a: pt.TensorVariable,
                             s: pt.TensorVariable, weight: pt.TensorVariable,
                             ) -> pt.TensorVariable:
    """``sum_blocks tr(W C)`` with ``C = sum_units r r'``, ``r = v - a - S x`` (q values).

    ``moments`` are the blocks' moment matrices ``M`` of ``w = (1, x, v)``
    (:func:`~impactmodel.bayes.sufficient.moment_matrices`), ``a`` is blocks x q, ``s``
    (``S``) blocks x q x practices and ``weight`` (``W``) blocks x q x q. With
    ``Theta = [-a, -S, I]``, ``r = Theta w``, so ``tr(W C) = sum (W Theta) * (Theta M)``.
    """
    q = weight.shape[-1]
    identity = pt.zeros((a.shape[0], q, q)) + pt.eye(q)[None]
    theta = pt.concatenate([-a[:, :, None], -s, identity], axis=2)  # blocks x q x p
    theta_m = pt.sum(theta[:, :, :, None] * moments[:, None, :, :], axis=2)
    weight_theta = pt.sum(weight[:, :, :, None] * theta[:, None, :, :], axis=2)
    return pt.sum(weight_theta * theta_m)


def _inverse_and_log_det(matrix: pt.TensorVariable, size: int
                         ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Inverse and log-determinant of a batch of small matrices (``... x size x size``).

    Written out with cofactors for sizes 1 to 3 (one per impact): elementwise
    expressions compile to a few fused loops, where a batched ``inv`` / ``det`` calls
    LAPACK once per matrix and costs about 30 times more here.
    """
    m = [[matrix[..., i, j] for j in range(size)] for i in range(size)]
    if size == 1:
        det = m[0][0]
        adjugate = [[pt.ones_like(det)]]
    elif size == 2:
        det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
        adjugate = [[m[1][1], -m[0][1]], [-m[1][0], m[0][0]]]
    elif size == 3:
        def minor(i: int, j: int) -> pt.TensorVariable:
            r = [k for k in range(3) if k != i]
            c = [k for k in range(3) if k != j]
            return m[r[0]][c[0]] * m[r[1]][c[1]] - m[r[0]][c[1]] * m[r[1]][c[0]]
        cofactor = [[(-1) ** (i + j) * minor(i, j) for j in range(3)] for i in range(3)]
        det = sum(m[0][j] * cofactor[0][j] for j in range(3))
        adjugate = [[cofactor[j][i] for j in range(3)] for i in range(3)]
    else:
        raise ValueError(f"the trait covariance supports 1 to 3 impacts, not {size}")
    inverse = pt.stack([pt.stack(row, axis=-1) for row in adjugate], axis=-2) / det[..., None,
                                                                                       None]
    return inverse, pt.log(det)


def _moment_parts(prefix: str, moments: np.ndarray) -> dict[str, np.ndarray]:
    """Split one-value moment matrices of ``(1, x, v)`` into contiguous named parts."""
    parts = {"n": moments[:, 0, 0], "sx": moments[:, 0, 1:-1], "sxx": moments[:, 1:-1, 1:-1],
             "sv": moments[:, 0, -1], "sxv": moments[:, 1:-1, -1], "svv": moments[:, -1, -1]}
    return {f"{prefix}_{k}": np.ascontiguousarray(v) for k, v in parts.items()}


def _data_arrays(stats: ScoreStatistics, couple_impacts: bool) -> dict[str, np.ndarray]:
    """Name the model's data containers."""
    arrays: dict[str, np.ndarray] = {
        "h_cell": stats.cell, "h_population": stats.population,
        "h_department": stats.department, "k_pattern": stats.class_pattern,
        "k_population": stats.class_population, "k_department": stats.class_department,
        "pattern_population": stats.pattern_population,
        "pattern_counts": stats.pattern_counts.astype(float),
        "pattern_units": stats.pattern_units.astype(float),
        "member_pattern": stats.member_pattern, "member_cell": stats.member_cell,
        "n_rows": np.asarray(float(stats.n_rows)), **_moment_parts("rows", stats.rows),
    }
    if couple_impacts:
        arrays["classes_moments"] = stats.classes
    else:  # one impact per unit: its index and its number of cells
        arrays["pattern_impact"] = np.argmax(stats.pattern_counts, axis=1)
        arrays.update(_moment_parts("classes", stats.classes))
    return arrays


def _intercept_groups(data: ScoreData, stats: ScoreStatistics) -> np.ndarray:
    """Group of each intercept ``alpha[cell, population]`` (flattened), for sampling.

    The cells of one impact that a population answers form a group: a respondent's trait
    shifts all of them alike, so their common level is less certain than their differences
    (posterior correlations of 0.4-0.5 at 81,471 respondents). An intercept without data
    (a cell the population is not asked) is a group of its own.
    """
    n_pop = len(data.coords["population"])
    n_flat = len(data.coords["cell"]) * n_pop
    observed = np.zeros(n_flat, dtype=bool)
    observed[stats.cell * n_pop + stats.population] = True
    flat = np.arange(n_flat)
    key = np.where(observed, data.cell_impact[flat // n_pop] * n_pop + flat % n_pop,
                   len(data.coords["impact"]) * n_pop + flat)
    return np.unique(key, return_inverse=True)[1].astype(np.int64)


def scale_score_model(data: ScoreData, priors: ScaleScorePriors | None = None,
                      parametrisation: Parametrisation = "auto",
                      correlated_traits: bool = False,
                      spatial: AdjacencyGraph | None = None) -> BuiltModel:
    """Build the gaussian scale-score model (see the module docstring).

    Parameters
    ----------
    data : ScoreData
    priors : ScaleScorePriors, optional
    parametrisation : {"auto", "centred", "non-centred"}
        Of the region and department deviations (see :func:`choose_parametrisation`).
    correlated_traits : bool
        Estimate the correlation of a respondent's traits across impacts (LKJ prior,
        ``trait_correlation``). Exact, but each respondent x department class then
        carries a 3 x 3 quadratic form: measured 11.3 ms per gradient at 81,471
        respondents against 1.05 ms with independent traits (the default).
    spatial : AdjacencyGraph, optional
        The departments' adjacency (:func:`~impactmodel.bayes.spatial.adjacency_graph`):
        the departments' own intercept deviations become BYM2 effects on top of the
        region's (:mod:`impactmodel.bayes.spatial`); default nested only.

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
    stats = score_statistics(data, correlated_traits)
    arrays = _data_arrays(stats, correlated_traits)
    intercept_group = _intercept_groups(data, stats)
    packed, slopes = PackedArrays.pack(arrays), arrays["rows_sx"].shape[1]
    n_impacts = len(c["impact"])
    with pm.Model(coords={**c, "impact_bis": list(c["impact"])}) as model:
        d = packed.tensors()
        alpha = iid_normal_by_group("alpha", intercept_group, p.intercept_mean,
                                    p.intercept_sd, dims=("cell", "population"))
        u_dept = territorial_deviations(
            "u", data.department_region, p.region_sd, p.department_sd, centred,
            dims="impact", spatial=spatial)
        effects = practice_effects(data.department_region, effect_sd=p.effect_sd,
                                   component_sd=p.component_sd, centred=centred)
        # every gather is a one-dimensional take on the leading axis (cheap to compile
        # and to differentiate); design cell h has cell c, population p, department d
        n_pop, n_dept = len(c["population"]), len(c["department"])
        alpha_flat, u_flat = alpha.reshape((-1,)), u_dept.reshape((-1,))
        slope_cell = effects.by_cell(data.cell_impact, data.cell_lens, data.cell_dimension)
        slope_pop, slope_dept = effects.population.T, effects.department.T
        if "covariate" in c:  # impact-specific shifts: regressors are (practices, dummies)
            gamma = pm.Normal("gamma", 0.0, p.covariate_sd, dims=("impact", "covariate"))
            slope_cell = pt.concatenate([slope_cell, gamma[data.cell_impact]], axis=1)
            n_cov = len(c["covariate"])
            slope_pop = pt.concatenate([slope_pop, pt.zeros((n_pop, n_cov))], axis=1)
            slope_dept = pt.concatenate([slope_dept, pt.zeros((n_dept, n_cov))], axis=1)
        h_cell, h_pop, h_dept = d["h_cell"], d["h_population"], d["h_department"]
        h_impact = pt.as_tensor_variable(data.cell_impact)[h_cell]
        # per unit class: the per-impact sums A (classes x impacts) and
        # B (classes x impacts x practices), from the pattern's cells plus n_m times the
        # parts common to the unit's cells
        n_patterns = d["pattern_population"].shape[0]
        m_pattern, m_cell = d["member_pattern"], d["member_cell"]
        m_slot = m_pattern * n_impacts + pt.as_tensor_variable(data.cell_impact)[m_cell]
        pattern_alpha = pt.zeros(n_patterns * n_impacts)[m_slot].inc(
            alpha_flat[m_cell * n_pop + d["pattern_population"][m_pattern]])
        pattern_slope = pt.zeros((n_patterns * n_impacts, slope_cell.shape[1]))[m_slot].inc(
            slope_cell[m_cell])
        k_pattern, k_pop, k_dept = d["k_pattern"], d["k_population"], d["k_department"]
        sigma = pm.HalfNormal("sigma", p.residual_sd)
        s2 = sigma**2
        rows = {k: d[f"rows_{k}"] for k in ("n", "sx", "sxx", "sv", "sxv", "svv")}
        sse = block_residual_squares(
            rows, slopes,
            a=(alpha_flat, h_cell * n_pop + h_pop, u_flat, h_impact * n_dept + h_dept),
            s=(slope_cell, h_cell, slope_pop, h_pop, slope_dept, h_dept),
            coef=pt.ones(h_cell.shape[0]))
        counts = d["pattern_counts"]
        if correlated_traits:
            chol = trait_covariance(p.trait_sd, p.trait_correlation_eta, n_impacts)
            k_counts = counts[k_pattern]  # classes x impacts
            a_k = (pattern_alpha.reshape((n_patterns, n_impacts))[k_pattern]
                   + k_counts * u_dept.T[k_dept])
            k_common = slope_pop[k_pop] + slope_dept[k_dept]  # classes x practices
            s_k = (pattern_slope.reshape((n_patterns, n_impacts, -1))[k_pattern]
                   + k_counts[:, :, None] * k_common[:, None, :])
            # Woodbury, per pattern with counts D = diag(n_m):
            #   (s2 I + Z T Z')^-1 = I / s2 - Z W Z' / s2^2,  W = L (I + L' D L / s2)^-1 L'
            #   |s2 I + Z T Z'| = s2^n |I + L' D L / s2|
            # (products written as broadcast sums: batched matmul calls BLAS per matrix)
            inner = pt.eye(n_impacts) + pt.sum(
                chol[None, :, :, None] * counts[:, :, None, None] * chol[None, :, None, :],
                axis=1) / s2
            inverse, log_det_inner = _inverse_and_log_det(inner, n_impacts)
            chol_inverse = pt.sum(chol[None, :, :, None] * inverse[:, None, :, :], axis=2)
            weight = pt.sum(chol_inverse[:, :, None, :] * chol[None, None, :, :], axis=3)
            shared = _weighted_cross_products(d["classes_moments"], a_k, s_k,
                                              weight[k_pattern])
        else:
            # one impact m per unit, n cells: W = t2 / (1 + n t2 / s2), t2 = T[m, m]
            impact, size = d["pattern_impact"], pt.sum(counts, axis=1)
            t2 = pm.HalfNormal("trait_sd", p.trait_sd, dims="impact")[impact] ** 2
            log_det_inner = pt.log1p(size * t2 / s2)
            weight = t2 / (1 + size * t2 / s2)
            k_impact, k_size = impact[k_pattern], size[k_pattern]
            slot = k_pattern * n_impacts + k_impact
            classes = {k: d[f"classes_{k}"] for k in ("n", "sx", "sxx", "sv", "sxv", "svv")}
            shared = block_residual_squares(
                classes, slopes, a=(pattern_alpha, slot, u_flat, k_impact * n_dept + k_dept),
                s=(pattern_slope, slot, slope_pop, k_pop, slope_dept, k_dept), coef=k_size,
                weight=(weight, k_pattern))
        log_det = pt.sum(d["pattern_units"] * log_det_inner)
        pm.Potential("likelihood", -0.5 * d["n_rows"] * np.log(2 * np.pi)
                     - d["n_rows"] * pt.log(sigma) - 0.5 * log_det
                     - 0.5 * (sse / s2 - shared / s2**2))
    structure = ("scale_score", tuple((k, tuple(v)) for k, v in c.items()),
                 tuple(data.department_region), tuple(intercept_group), p, centred,
                 n_impacts, correlated_traits,
                 None if spatial is None else (spatial.pairs.tobytes(),
                                               spatial.scaling.tobytes()),
                 packed.structure)
    return BuiltModel(model, packed.values(), structure)
