"""The practice-effect and territorial structures shared by the impact models.

Inside a ``pm.Model`` with coordinates ``practice, impact, lens, dimension, population,
region, department``: a practice's effect in cell (impact m, lens l, dimension k), for
population p in department d of region r, is

    b + b_impact[m] + b_lens[l] + b_dim[k] + b_pop[p] + b_region[r] + b_dept[d]

with sum-to-zero impact / lens / dimension parts (their sds estimated), a sum-to-zero
population part with a fixed prior sd (four populations cannot inform an sd; sampled with
``b`` as population levels around a centre, the same prior, see
:func:`_overall_and_population`), and region
plus department-within-region variation (:func:`territorial_deviations`). Both models
also give each respondent one trait per impact, correlated across impacts
(:func:`trait_covariance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import NDArray

from impactmodel.bayes.spatial import bym2_deviations
from impactmodel.territories import AdjacencyGraph


@dataclass(frozen=True)
class PracticeEffects:
    """Tensors of the effect structure (practice first)."""

    cell: pt.TensorVariable  # practice x impact x lens x dimension
    population: pt.TensorVariable  # practice x population (sum-to-zero part)
    department: pt.TensorVariable  # practice x department (region + department variation;
    # the region's alone when the departments' own deviations are integrated out)
    overall: pt.TensorVariable  # practice (b)
    impact: pt.TensorVariable  # practice x impact (sum-to-zero part)
    lens: pt.TensorVariable  # practice x lens (sum-to-zero part)
    dimension: pt.TensorVariable  # practice x dimension (sum-to-zero part)

    def slopes(self, impact: pt.TensorLike, lens: pt.TensorLike, dimension: pt.TensorLike,
               population: pt.TensorLike, department: pt.TensorLike) -> pt.TensorVariable:
        """Slopes (units x practices) for units indexed by cell parts, population, department."""
        return (self.cell[:, impact, lens, dimension] + self.population[:, population]
                + self.department[:, department]).T

    def by_cell(self, cell_impact: NDArray[np.integer], cell_lens: NDArray[np.integer],
                cell_dimension: NDArray[np.integer]) -> pt.TensorVariable:
        """Cell parts of the slopes, cells x practices, for cells given by their parts."""
        return self.cell[:, cell_impact, cell_lens, cell_dimension].T

    def within_impact(self, cell_lens: NDArray[np.integer],
                      cell_dimension: NDArray[np.integer]) -> pt.TensorVariable:
        """Lens plus dimension parts of the slopes, cells x practices.

        The cell parts that vary between the cells of one impact: with
        :meth:`by_impact`, ``by_cell = by_impact[impact] + within_impact``.
        """
        return (self.lens[:, cell_lens] + self.dimension[:, cell_dimension]).T

    def by_impact(self) -> pt.TensorVariable:
        """Overall plus impact parts of the slopes, impacts x practices."""
        return (self.overall[:, None] + self.impact).T


def zero_sum_part(name: str, scale: pt.TensorVariable, dims: tuple[str, str],
                  centred: bool) -> pt.TensorVariable:
    """Declare a sum-to-zero (over the last of ``dims``) normal part of sd ``scale``.

    Centred: ``ZeroSumNormal(sigma=scale)``; non-centred: ``scale`` times a standard
    ``ZeroSumNormal`` named ``{name}_z`` (no funnel when the data say little).
    """
    return partially_centred_zero_sum(name, scale, dims, 0.0 if centred else 1.0)


def partially_centred_zero_sum(name: str, scale: pt.TensorVariable, dims: tuple[str, str],
                               exponent: float) -> pt.TensorVariable:
    """Declare a sum-to-zero normal part of sd ``scale``, partially non-centred.

    The sampler draws ``{name}_partial ~ ZeroSumNormal(sigma=scale^(1 - w))`` and the part
    is ``scale^w`` times it, ``w`` the ``exponent``: given ``scale`` the part is
    ``ZeroSumNormal(sigma=scale)`` whatever ``w``, so only the coordinates change
    (Papaspiliopoulos, Roberts and Sköld 2007, *Statistical Science* 22(1), 59-73; the
    weight for a survey: :func:`~impactmodel.bayes.partial_scaling.region_slope_exponent`).
    ``w = 0`` is the centred form (the part itself, named ``name``) and ``w = 1`` the
    non-centred one (``{name}_z``, standard), as :func:`zero_sum_part` declares them.

    Raises
    ------
    ValueError
        If ``exponent`` is outside ``[0, 1]``.
    """
    if not 0.0 <= exponent <= 1.0:
        raise ValueError(f"{name}: the partial non-centring's exponent must lie in [0, 1], "
                         f"got {exponent}")
    if exponent == 0.0:
        return pm.ZeroSumNormal(name, sigma=scale, dims=dims)
    if exponent == 1.0:
        free = pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=dims)
    else:
        free = pm.ZeroSumNormal(f"{name}_partial", sigma=scale ** (1.0 - exponent), dims=dims)
    return pm.Deterministic(name, scale**exponent * free, dims=dims)


def scale_adaptive_zero_sum(name: str, scale: pt.TensorVariable, dims: tuple[str, str],
                            knee: float, far_exponent: float) -> pt.TensorVariable:
    """Declare a sum-to-zero normal part of sd ``scale``: non-centred near zero, partly above.

    The sampler draws ``{name}_smooth ~ ZeroSumNormal(sigma=spread)``, ``spread = (1 +
    scale / knee)^(1 - w)`` (``w`` the ``far_exponent``), and the part is ``scale /
    spread`` times it: given ``scale`` it is ``ZeroSumNormal(sigma=scale)`` whatever
    ``knee`` and ``w``, so only the coordinates change. How non-centred the form is,
    ``d log(scale / spread) / d log(scale) = 1 - (1 - w) u / (1 + u)`` with ``u = scale /
    knee``, goes from 1 (non-centred) as the scale nears zero to ``w`` far above the
    knee. Why: :func:`partially_centred_zero_sum` uses one exponent at every scale, and a
    weakly informed scale whose posterior reaches towards zero needs the non-centred form
    down there (centred, the part and its scale form a funnel) and a partly centred one
    where the data inform the part (non-centred, the scale moves only with all of it).
    The optimal weight of Papaspiliopoulos, Roberts and Sköld (2007), the share of the
    part's prior variance the data leave, ``1 / (1 + scale^2 I)``, depends on the scale
    in the same way.

    Raises
    ------
    ValueError
        If ``knee`` is not positive or ``far_exponent`` is outside ``[0, 1]``.
    """
    if not knee > 0.0:
        raise ValueError(f"{name}: the knee must be positive, got {knee}")
    if not 0.0 <= far_exponent <= 1.0:
        raise ValueError(f"{name}: the far exponent must lie in [0, 1], got {far_exponent}")
    spread = (1.0 + scale / knee) ** (1.0 - far_exponent)
    free = pm.ZeroSumNormal(f"{name}_smooth", sigma=spread, dims=dims)
    return pm.Deterministic(name, scale / spread * free, dims=dims)


def within_group_basis(group: NDArray[np.integer]) -> NDArray[np.float64]:
    """Orthonormal basis of the vectors that sum to zero within every group.

    Helmert contrasts per group: ``units x (units - groups)``; a group of one unit
    contributes no column (its deviation is zero).
    """
    columns = []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        for k in range(1, len(members)):
            v = np.zeros(len(group))
            v[members[:k]] = 1.0
            v[members[k]] = -float(k)
            columns.append(v / np.sqrt(k * (k + 1)))
    return np.column_stack(columns) if columns else np.zeros((len(group), 0))


def iid_normal_by_group(name: str, group: NDArray[np.integer], mu: float, sigma: float,
                        dims: tuple[str, ...]) -> pt.TensorVariable:
    """Declare ``name ~ N(mu, sigma)`` iid, sampled as group means and deviations.

    The same prior, reparametrised: the units of group ``g`` (``n_g`` of them) are
    ``mean_g + dev``, with ``mean_g ~ N(mu, sigma / sqrt(n_g))`` (``{name}_mean``) and
    ``dev`` the iid normal's projection on the vectors summing to zero within the group:
    ``sigma`` times standard normal coordinates (``{name}_within``) in an orthonormal
    basis of that subspace, a Householder reflection per group (``O(n)``: the last unit
    gets ``-S / sqrt(n_g)``, the others ``y - S / (n_g + sqrt(n_g))``, ``S`` the group's
    sum of coordinates). For an iid normal the mean and the deviations are independent,
    so nothing changes but the coordinates the sampler moves in: when the data pin the
    differences within a group down better than its common level (intercepts of cells
    answered by the same respondents share the uncertainty of their traits), the common
    level is one parameter instead of a direction across all of them.

    Parameters
    ----------
    name : str
    group : ndarray of int, shape (units,)
        Group of each unit (flattened ``dims``), coded ``0 .. groups - 1``.
    mu, sigma : float
    dims : tuple of str
        Of the returned tensor (``units`` = the product of their lengths).

    Returns
    -------
    TensorVariable
        ``name`` (a deterministic), shaped by ``dims``.
    """
    model = pm.modelcontext(None)
    group = np.asarray(group, dtype=np.int64)
    sizes = np.bincount(group)
    if (sizes == 0).any():
        raise ValueError(f"{name}: groups must be coded 0 .. groups - 1 without gaps")
    order = np.argsort(group, kind="stable")
    last = np.zeros(len(group), dtype=bool)
    last[order[np.cumsum(sizes) - 1]] = True  # the last unit of each group
    free = np.flatnonzero(~last)
    root = np.sqrt(sizes)
    coef = np.where(last, 1.0 / root[group], 1.0 / (sizes + root)[group])
    for coord, length in ((f"{name}_group", len(sizes)), (f"{name}_contrast", len(free))):
        if coord not in model.coords:
            model.add_coord(coord, list(range(length)))
    mean = pm.Normal(f"{name}_mean", mu, sigma / root, dims=f"{name}_group")
    y = pm.Normal(f"{name}_within", 0.0, sigma, dims=f"{name}_contrast")
    full = pt.zeros(len(group))[free].set(y)
    group_sum = pt.zeros(len(sizes))[group[free]].inc(y)
    value = mean[group] + full - group_sum[group] * coef
    shape = [len(model.coords[d]) for d in dims]
    return pm.Deterministic(name, value.reshape(shape), dims=dims)


def territorial_deviations(prefix: str, department_region: NDArray[np.integer],
                           region_sd: float, department_sd: float, centred: bool,
                           dims: str, spatial: AdjacencyGraph | None = None,
                           integrated: bool = False,
                           region_exponent: float | None = None) -> pt.TensorVariable:
    """Region plus department-within-region deviations, ``dims x department``.

    Declares ``{prefix}_region_scale``, ``{prefix}_department_scale`` (half-normal),
    ``{prefix}_region`` (sum-to-zero over regions) and ``{prefix}_department`` (the
    department's total deviation: its region's plus its own). Departments' own
    deviations sum to zero *within their region* (a region's mean is its region
    deviation, the nation's mean is carried by the intercepts, so nothing is confounded);
    they are drawn in an orthonormal basis of that subspace, so that, as with
    ``ZeroSumNormal``, ``{prefix}_department_scale`` is the sd of departments around
    their region's mean. ``centred`` chooses the centred form (many respondents per
    department) or the non-centred one (few).

    With ``spatial`` (the departments' adjacency graph), a department's own deviation is a
    BYM2 effect (:mod:`impactmodel.bayes.spatial`: part spatially structured over
    neighbours, part independent, ``{prefix}_department_scale`` its sd) added to its
    region's: neighbouring departments borrow from each other across region borders. It
    no longer sums to zero within the region, so a region's mean is shared between the
    two parts (the priors keep it identified).

    ``integrated``: the departments' own deviations are not declared (the model
    integrates them out, :mod:`impactmodel.bayes.department_slopes`); the scales are, and
    the returned tensor is each department's region deviation alone.

    ``region_exponent``: the region deviations partially non-centred with this ``w``
    (:func:`partially_centred_zero_sum`) instead of as ``centred`` says.
    """
    model = pm.modelcontext(None)
    region_scale = pm.HalfNormal(f"{prefix}_region_scale", region_sd)
    dept_scale = pm.HalfNormal(f"{prefix}_department_scale", department_sd)
    region = partially_centred_zero_sum(
        f"{prefix}_region", region_scale, (dims, "region"),
        (0.0 if centred else 1.0) if region_exponent is None else region_exponent)
    if integrated:
        return region[:, department_region]
    if spatial is not None:
        own_spatial = bym2_deviations(f"{prefix}_department", spatial, dept_scale, dims)
        return pm.Deterministic(f"{prefix}_department",
                                region[:, department_region] + own_spatial,
                                dims=(dims, "department"))
    basis = within_group_basis(department_region)
    if "department_contrast" not in model.coords:
        model.add_coord("department_contrast", list(range(basis.shape[1])))
    contrast_dims = (dims, "department_contrast")
    if centred:
        z = pm.Normal(f"{prefix}_department_own", 0.0, dept_scale, dims=contrast_dims)
    else:
        z = dept_scale * pm.Normal(f"{prefix}_department_z", 0.0, 1.0, dims=contrast_dims)
    own = pt.dot(z, pt.as_tensor_variable(basis.T))
    return pm.Deterministic(f"{prefix}_department", region[:, department_region] + own,
                            dims=(dims, "department"))


def _overall_and_population(effect_sd: float, population_sd: float
                            ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Declare ``b ~ N(0, effect_sd)`` and ``b_population ~ ZeroSumNormal(population_sd)``.

    Sampled as per-population levels around a centre, an exactly equivalent prior::

        level[p] = b_centre + e[p],  e[p] ~ N(0, population_sd),
        b_centre ~ N(0, sqrt(effect_sd^2 - population_sd^2 / P))
        b = mean_p level[p],  b_population = level - b

    (``mean(e) ~ N(0, population_sd^2 / P)`` is independent of ``e - mean(e)``, which is
    the zero-sum normal). Why: the data inform each population's slope on its own, with
    precisions as unequal as the populations' sizes. Drawn as ``b`` and a zero-sum part,
    the slope of a small population moves ``b`` and every other population's part
    together, a direction a diagonal mass matrix cannot follow (at 81,471 respondents,
    1,150 of them in one population, ``b`` and ``b_population`` were the slowest
    parameters). When ``effect_sd^2 <= population_sd^2 / P`` (overridden priors) no centre
    prior exists and the zero-sum form is used.
    """
    model = pm.modelcontext(None)
    n_pop = len(model.coords["population"])
    centre_var = effect_sd**2 - population_sd**2 / n_pop
    dims = ("practice", "population")
    if centre_var <= 0:
        b = pm.Normal("b", 0.0, effect_sd, dims="practice")
        return b, pm.ZeroSumNormal("b_population", sigma=population_sd, dims=dims)
    centre = pm.Normal("b_centre", 0.0, float(np.sqrt(centre_var)), dims="practice")
    # a constant shape: sized by the dims alone, the log-density would read the
    # population dimension's length from a shared variable, which the compile cache
    # cannot key (the model would be compiled again in every process)
    shape = (len(model.coords["practice"]), n_pop)
    level = pm.Normal("b_population_level", centre[:, None], population_sd, dims=dims,
                      shape=shape)
    b = pm.Deterministic("b", pt.mean(level, axis=1), dims="practice")
    return b, pm.Deterministic("b_population", level - b[:, None], dims=dims)


def practice_effects(department_region: NDArray[np.integer], *, effect_sd: float,
                     component_sd: float, centred: bool,
                     cell_centred: bool | tuple[bool, bool, bool] | None = None,
                     integrated_departments: bool = False,
                     region_exponent: float | None = None,
                     lens_scale_adaptive: tuple[float, float] | None = None
                     ) -> PracticeEffects:
    """Declare the effect parameters and their reported summaries in the current model.

    Deterministics: ``effect_cell``, ``effect_population``, ``effect_region``,
    ``effect_department`` and ``prob_effect_positive`` (per cell).

    ``centred`` chooses the form of the territorial slope deviations and, unless
    ``cell_centred`` says otherwise, of the impact / lens / dimension parts
    (``cell_centred``: one choice for the three, or a choice for each, in that order).
    ``integrated_departments``: the departments' own slope deviations are left to the
    model to integrate out (:mod:`impactmodel.bayes.department_slopes`, which then
    adds ``effect_department`` to the draws); ``department`` holds the region parts.
    ``region_exponent``: the region parts partially non-centred with this ``w``
    (:func:`territorial_deviations`). ``lens_scale_adaptive``: ``(knee, far_exponent)``,
    the lens part, when not centred, drawn in :func:`scale_adaptive_zero_sum`'s form.
    """
    b, b_pop = _overall_and_population(effect_sd, component_sd)
    scale = pm.HalfNormal("component_scale", component_sd, shape=3)
    chosen = centred if cell_centred is None else cell_centred
    impact_centred, lens_centred, dimension_centred = (
        chosen if isinstance(chosen, tuple) else (chosen,) * 3)
    b_impact = zero_sum_part("b_impact", scale[0], ("practice", "impact"), impact_centred)
    if lens_scale_adaptive is not None and not lens_centred:
        b_lens = scale_adaptive_zero_sum("b_lens", scale[1], ("practice", "lens"),
                                         *lens_scale_adaptive)
    else:
        b_lens = zero_sum_part("b_lens", scale[1], ("practice", "lens"), lens_centred)
    b_dim = zero_sum_part("b_dimension", scale[2], ("practice", "dimension"),
                          dimension_centred)
    b_dept = territorial_deviations("b", department_region, component_sd, component_sd,
                                    centred, dims="practice",
                                    integrated=integrated_departments,
                                    region_exponent=region_exponent)
    cell = pm.Deterministic(
        "effect_cell", b[:, None, None, None] + b_impact[:, :, None, None]
        + b_lens[:, None, :, None] + b_dim[:, None, None, :],
        dims=("practice", "impact", "lens", "dimension"))
    pm.Deterministic("effect_population", b[:, None] + b_pop, dims=("practice", "population"))
    region = pm.modelcontext(None)["b_region"]
    pm.Deterministic("effect_region", b[:, None] + region, dims=("practice", "region"))
    if not integrated_departments:
        pm.Deterministic("effect_department", b[:, None] + b_dept,
                         dims=("practice", "department"))
    pm.Deterministic("prob_effect_positive", pt.gt(cell, 0),
                     dims=("practice", "impact", "lens", "dimension"))
    return PracticeEffects(cell, b_pop, b_dept, b, b_impact, b_lens, b_dim)


def trait_covariance(sd_scale: float, correlation_eta: float,
                     n_impacts: int) -> pt.TensorVariable:
    """Declare the covariance of a respondent's traits; return its Cholesky factor.

    Half-normal sds of scale ``sd_scale`` and an LKJ(``correlation_eta``) prior on the
    correlation. Reported: ``trait_sd`` (impact), ``trait_correlation`` and ``trait_chol``
    (impact x impact_bis; lower triangular, ``trait_i = trait_chol @ standard normal``).
    The model needs an ``impact_bis`` coordinate (a copy of ``impact``). With one impact
    there is no correlation: the factor is the half-normal sd alone.
    """
    if n_impacts == 1:
        sd = pm.HalfNormal("trait_sd", sd_scale, dims="impact")
        pm.Deterministic("trait_correlation", pt.ones((1, 1)), dims=("impact", "impact_bis"))
        return pm.Deterministic("trait_chol", sd[:, None], dims=("impact", "impact_bis"))
    chol, correlation, sd = pm.LKJCholeskyCov(
        "trait_covariance", n=n_impacts, eta=correlation_eta,
        sd_dist=pm.HalfNormal.dist(sd_scale, shape=n_impacts), compute_corr=True,
        store_in_trace=False)
    pm.Deterministic("trait_sd", sd, dims="impact")
    pm.Deterministic("trait_correlation", correlation, dims=("impact", "impact_bis"))
    return pm.Deterministic("trait_chol", chol, dims=("impact", "impact_bis"))


