"""Weighted pseudo-posterior with design-consistent uncertainty.

A model fitted as if the sample were drawn at random describes the sample, not the
population, when the design is informative. Following Williams & Savitsky (2021,
*Int. Stat. Review* 89(1)) and Savitsky & Williams (2022, *J. Off. Stat.* 38(3)):

1. **Pseudo-likelihood.** Respondent ``i``'s log-likelihood is multiplied by its survey
   weight normalised to sum to the number of respondents of its population,
   ``w~_i = n_p w_i / sum_{j in p} w_j``
   (:func:`~impactmodel.bayes.model_data.normalised_weights`). Within a population, as
   Williams & Savitsky do; across them because each population is its own survey whose
   weights sum to its own size (citizens outnumber mayors a thousand to one: one
   normalisation over all would make the shared effect parts the citizens' alone and
   blow up the other populations' spread). The pseudo-posterior then targets the census
   fit in which population ``p``'s units weigh ``n_p / N_p``. The scale-score model
   does this exactly on weighted sufficient statistics
   (:mod:`impactmodel.bayes.sufficient`). Its posterior centres on the population
   (census) value of the parameters, but its spread ignores the design.
2. **Adjustment.** For the global parameters ``theta`` (:data:`GLOBAL_PARAMETERS`: the
   intercepts per cell x population, the population-level parts of the practice effects
   and the covariate shifts) the design-based sandwich is ``V = H^-1 J H^-1`` with

   - ``H^-1`` the pseudo-posterior covariance of ``theta`` (the draws' covariance, which
     includes the prior's curvature),
   - ``J`` the design covariance of the total of the weighted scores
     ``w~_i d log p(y_i | theta) / d theta`` at the posterior mean, computed by the
     design-based engine (:meth:`~impactmodel.survey.design.SurveyDesign.covariance`:
     strata, PSUs, fpc, every stage). Respondents left out of the model contribute
     zero scores (a domain, as in the design-based estimates).

   Each draw becomes ``theta_bar + (theta - theta_bar) R``, with
   ``R = Sigma^{+1/2} V^{1/2}`` (symmetric square roots; ``+`` the pseudo-inverse), so the
   adjusted draws have covariance exactly ``V`` (:class:`Adjustment`). Symmetric roots
   rather than Williams & Savitsky's Cholesky factors handle the sum-to-zero parts,
   whose covariance is singular by construction; both give the same covariance.

Parameters no respondent informs (an intercept for a cell a population was not asked)
have zero scores; they are left as drawn. Territorial deviations, trait and residual sds
are *local* or variance parameters and are not adjusted; derived effects
(``effect_cell``, ``effect_population``, ``effect_region``, ``effect_department``) are
recomputed from the adjusted parts. Only the scale-score model's likelihood is
weighted here. Group-level weights (Savitsky & Williams 2022) are not needed: the
model's groups (departments, regions, populations) are not sampled units of the
designs, every department is in the population, so their weights are 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from impactmodel.bayes.model_data import ModelDataError, ScoreData
from impactmodel.bayes.predictive import row_means, with_trait_factor
from impactmodel.survey.design import SurveyDesign

__all__ = ["GLOBAL_PARAMETERS", "Adjustment", "DesignAdjustment", "GlobalLayout",
           "adjust_fit", "adjust_posterior", "respondent_gradients", "sandwich_adjustment",
           "with_derived_effects"]

#: global parameters of the scale-score model, adjusted together
GLOBAL_PARAMETERS = ("alpha", "b", "b_impact", "b_lens", "b_dimension", "b_population",
                     "gamma")

#: relative eigenvalue below which a covariance direction counts as zero (sum-to-zero)
RANK_TOLERANCE = 1e-9


def _symmetric_root(matrix: NDArray[np.float64], inverse: bool
                    ) -> tuple[NDArray[np.float64], int]:
    """Symmetric (pseudo-inverse) square root of a covariance, and its numerical rank."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    keep = values > RANK_TOLERANCE * max(values.max(), 0.0)
    roots = np.zeros_like(values)
    roots[keep] = values[keep] ** (-0.5 if inverse else 0.5)
    return (vectors * roots) @ vectors.T, int(keep.sum())


@dataclass(frozen=True)
class Adjustment:
    """The linear map taking pseudo-posterior draws to design-consistent ones.

    ``rank`` below ``posterior_rank`` means the design cannot estimate the spread of some
    combinations of parameters (fewer PSUs than parameters): those collapse to the mean.

    Attributes
    ----------
    centre : ndarray, shape (parameters,)
        Pseudo-posterior mean ``theta_bar`` (unchanged by the adjustment).
    matrix : ndarray, shape (parameters, parameters)
        ``R``: adjusted draw = ``centre + (draw - centre) @ R``.
    posterior_covariance, target_covariance : ndarray, shape (parameters, parameters)
        ``Sigma`` (the draws' covariance, ``H^-1``) and ``V = Sigma J Sigma``.
    rank : int
        Numerical rank of ``V`` (at most the design's degrees of freedom).
    posterior_rank : int
        Numerical rank of ``Sigma`` (parameters less the sum-to-zero constraints).
    """

    centre: NDArray[np.float64]
    matrix: NDArray[np.float64]
    posterior_covariance: NDArray[np.float64]
    target_covariance: NDArray[np.float64]
    rank: int
    posterior_rank: int

    def apply(self, draws: NDArray[np.float64]) -> NDArray[np.float64]:
        """Adjust draws (samples x parameters)."""
        return self.centre + (draws - self.centre) @ self.matrix

    def variance_ratio(self) -> NDArray[np.float64]:
        """Per parameter, adjusted over pseudo-posterior variance (a design effect)."""
        before = np.diag(self.posterior_covariance)
        ratio = np.full(len(before), np.nan)
        positive = before > 0
        ratio[positive] = np.diag(self.target_covariance)[positive] / before[positive]
        return ratio


def sandwich_adjustment(draws: NDArray[np.float64], scores: NDArray[np.float64],
                        design_covariance: Callable[[NDArray[np.float64]],
                                                    NDArray[np.float64]]) -> Adjustment:
    """Build the adjustment from pseudo-posterior draws and weighted unit scores.

    Parameters
    ----------
    draws : ndarray, shape (samples, parameters)
        Pseudo-posterior draws of the global parameters.
    scores : ndarray, shape (units, parameters)
        ``w~_i`` times the gradient of unit ``i``'s log-likelihood at the draws' mean.
    design_covariance : callable
        Design covariance of the totals of scores (e.g. ``SurveyDesign.covariance``): ``J``.

    Returns
    -------
    Adjustment
    """
    centre = draws.mean(axis=0)
    sigma = np.atleast_2d(np.cov(draws, rowvar=False))
    target = sigma @ design_covariance(scores) @ sigma
    target = (target + target.T) / 2
    inverse_root, posterior_rank = _symmetric_root(sigma, inverse=True)
    target_root, rank = _symmetric_root(target, inverse=False)
    return Adjustment(centre, inverse_root @ target_root, sigma, target, rank, posterior_rank)


@dataclass(frozen=True)
class GlobalLayout:
    """Where each global parameter sits in the flattened parameter vector."""

    names: tuple[str, ...]
    dims: tuple[tuple[str, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    coords: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, posterior: xr.Dataset) -> GlobalLayout:
        """Return the layout of the global parameters present in ``posterior``."""
        names = tuple(n for n in GLOBAL_PARAMETERS if n in posterior)
        dims = tuple(tuple(str(d) for d in posterior[n].dims if d not in ("chain", "draw"))
                     for n in names)
        shapes = tuple(tuple(posterior.sizes[d] for d in ds) for ds in dims)
        used = {d for ds in dims for d in ds}
        coords = {d: (tuple(str(v) for v in posterior[d].values) if d in posterior.coords
                      else tuple(str(k) for k in range(posterior.sizes[d]))) for d in used}
        return cls(names, dims, shapes, coords)

    @property
    def sizes(self) -> list[int]:
        """Number of values per parameter."""
        return [int(np.prod(s)) for s in self.shapes]

    def labels(self) -> list[str]:
        """``name[label, label]`` per position, with the coordinates' labels."""
        return [f"{n}[{','.join(self.coords[d][i] for d, i in zip(dims, idx, strict=True))}]"
                for n, dims, shape in zip(self.names, self.dims, self.shapes, strict=True)
                for idx in np.ndindex(*shape)]

    def flatten(self, posterior: xr.Dataset) -> NDArray[np.float64]:
        """Draws (chain-major samples x parameters)."""
        blocks = [posterior[n].transpose("chain", "draw", *d).values.reshape(
            posterior.sizes["chain"] * posterior.sizes["draw"], -1)
            for n, d in zip(self.names, self.dims, strict=True)]
        return np.hstack(blocks)

    def unflatten(self, values: NDArray[np.float64], posterior: xr.Dataset
                  ) -> dict[str, xr.DataArray]:
        """Flattened draws back to named arrays shaped like ``posterior``'s."""
        n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
        out, start = {}, 0
        for name, dims, shape, size in zip(self.names, self.dims, self.shapes, self.sizes,
                                           strict=True):
            block = values[:, start:start + size].reshape(n_chain, n_draw, *shape)
            out[name] = xr.DataArray(block, dims=("chain", "draw", *dims),
                                     coords=posterior[name].coords)
            start += size
        return out


def respondent_gradients(data: ScoreData, point: xr.Dataset, layout: GlobalLayout
                         ) -> NDArray[np.float64]:
    """Gradient of each respondent's log-likelihood in the global parameters at ``point``.

    The traits are integrated out: respondent ``i``'s scores are normal with mean
    ``mu_i`` and covariance ``S_i = sigma^2 I + Z T Z'``, so
    ``d log p / d mu_r = (S_i^-1 e_i)_r = e_r / sigma^2 - (W_i R_i)_{m(r)} / sigma^4``
    (Woodbury, ``e`` the residuals, ``R_i`` their sums per impact,
    ``W_i = L (I + L' D_i L / sigma^2)^-1 L'``), and each mean is linear in the global
    parameters (an indicator or a practice value, :func:`row_means`).

    Parameters
    ----------
    data : ScoreData
    point : xarray.Dataset
        One value of every model variable (no ``chain`` / ``draw``).
    layout : GlobalLayout

    Returns
    -------
    ndarray, shape (respondents, parameters)
        Unweighted gradients.
    """
    point = with_trait_factor(point.expand_dims(("chain", "draw")))
    names = ["alpha", "u_department", "effect_cell", "b_population", "b_department",
             *(["gamma"] if "gamma" in point else [])]
    values = {n: point[n].values[0] for n in [*names, "sigma", "trait_chol"]}
    residual = data.y - row_means(data, {n: values[n] for n in names})[0]
    n_resp, n_impacts = len(data.population), len(data.coords["impact"])
    row_impact = data.cell_impact[data.cell]
    s2, chol = float(values["sigma"][0]) ** 2, values["trait_chol"][0]
    counts, sums = np.zeros((n_resp, n_impacts)), np.zeros((n_resp, n_impacts))
    np.add.at(counts, (data.respondent, row_impact), 1.0)
    np.add.at(sums, (data.respondent, row_impact), residual)
    inner = np.eye(n_impacts) + np.einsum("ab,ia,ac->ibc", chol, counts, chol) / s2
    weight = np.einsum("ab,ibc,dc->iad", chol, np.linalg.inv(inner), chol)
    shared = np.einsum("iab,ib->ia", weight, sums)  # W_i R_i
    g = residual / s2 - shared[data.respondent, row_impact] / s2**2  # per row
    return np.hstack([_parameter_gradient(name, data, g) for name in layout.names])


def _parameter_gradient(name: str, data: ScoreData, g: NDArray[np.float64]
                        ) -> NDArray[np.float64]:
    """Per respondent, ``sum_r g_r d mu_r / d name`` (flattened like the posterior)."""
    n_resp = len(data.population)
    resp, cell = data.respondent, data.cell
    pop = data.population
    per_part = {
        "impact": data.cell_impact, "lens": data.cell_lens, "dimension": data.cell_dimension}

    def sums_by(level: NDArray[np.integer], n_levels: int) -> NDArray[np.float64]:
        out = np.zeros((n_resp, n_levels))
        np.add.at(out, (resp, level), g)
        return out

    if name == "alpha":  # cell x population
        n_pop = len(data.coords["population"])
        out = np.zeros((n_resp, len(data.coords["cell"]) * n_pop))
        np.add.at(out, (resp, cell * n_pop + pop[resp]), g)
        return out
    total = np.bincount(resp, weights=g, minlength=n_resp)
    x = data.x
    if name == "b":
        return x * total[:, None]
    if name == "b_population":
        n_pop = len(data.coords["population"])
        by_pop = np.zeros((n_resp, n_pop))
        by_pop[np.arange(n_resp), pop] = total
        return (x[:, :, None] * by_pop[:, None, :]).reshape(n_resp, -1)
    if name == "gamma":  # impact x covariate
        by_impact = sums_by(data.cell_impact[cell], len(data.coords["impact"]))
        return (by_impact[:, :, None] * data.covariates[:, None, :]).reshape(n_resp, -1)
    part = name.removeprefix("b_")
    by_level = sums_by(per_part[part][cell], len(data.coords[part]))
    return (x[:, :, None] * by_level[:, None, :]).reshape(n_resp, -1)


def adjust_posterior(data: ScoreData, posterior: xr.Dataset,
                     design_covariance: Callable[[NDArray[np.float64]], NDArray[np.float64]],
                     respondent_rows: NDArray[np.integer], n_survey_rows: int,
                     ) -> tuple[xr.Dataset, Adjustment, list[str]]:
    """Adjust a weighted scale-score pseudo-posterior (see the module docstring).

    Parameters
    ----------
    data : ScoreData
        The model's data, with ``weight`` (normalised survey weights).
    posterior : xarray.Dataset
        Pseudo-posterior draws.
    design_covariance : callable
        ``J`` from scores over the survey's rows (``SurveyDesign.covariance``).
    respondent_rows : ndarray of int
        Survey row of each model respondent.
    n_survey_rows : int
        Rows of the survey (respondents not in the model get zero scores).

    Returns
    -------
    adjusted : xarray.Dataset
        The posterior with adjusted global parameters and recomputed derived effects.
    adjustment : Adjustment
        Over the informed global parameters (columns with a non-zero score).
    labels : list of str
        The informed global parameters, in the adjustment's order.
    """
    if data.weight is None:
        raise ModelDataError("the adjustment applies to a weighted pseudo-posterior: the "
                             "model data carry no weights")
    layout = GlobalLayout.of(posterior)
    draws = layout.flatten(posterior)
    point = posterior.mean(("chain", "draw"))
    gradients = respondent_gradients(data, point, layout)
    informed = np.flatnonzero(np.abs(gradients).sum(axis=0) > 0)
    scores = np.zeros((n_survey_rows, len(informed)))
    scores[respondent_rows] = data.weight[:, None] * gradients[:, informed]
    adjustment = sandwich_adjustment(draws[:, informed], scores, design_covariance)
    adjusted_draws = draws.copy()
    adjusted_draws[:, informed] = adjustment.apply(draws[:, informed])
    parts = layout.unflatten(adjusted_draws, posterior)
    labels = layout.labels()
    return (with_derived_effects(posterior.assign(parts)), adjustment,
            [labels[k] for k in informed])


def with_derived_effects(posterior: xr.Dataset) -> xr.Dataset:
    """Recompute the effects derived from the parts (as :func:`practice_effects` does)."""
    b = posterior["b"]
    cell = b + posterior["b_impact"] + posterior["b_lens"] + posterior["b_dimension"]
    cell = cell.transpose(*posterior["effect_cell"].dims)
    return posterior.assign(
        effect_cell=cell,
        effect_population=(b + posterior["b_population"]).transpose(
            *posterior["effect_population"].dims),
        effect_region=(b + posterior["b_region"]).transpose(*posterior["effect_region"].dims),
        effect_department=(b + posterior["b_department"]).transpose(
            *posterior["effect_department"].dims),
        prob_effect_positive=cell > 0)


@dataclass(frozen=True)
class DesignAdjustment:
    """What the adjustment of a fitted pseudo-posterior did (for runs and reports).

    Attributes
    ----------
    adjustment : Adjustment
    labels : tuple of str
        The adjusted global parameters (``name[coordinate labels]``).
    design_df : int
        The design's degrees of freedom (PSUs minus strata): ``J``'s rank is at most this.
    lonely_psu : str
        The lonely-PSU rule ``J`` was computed with.
    calibration : tuple of str
        The variables the design was raked on before computing ``J`` (none: the weights
        were taken as they are).
    calibration_notes : tuple of str
        Levels merged for the raking (no respondent).
    """

    adjustment: Adjustment
    labels: tuple[str, ...]
    design_df: int
    lonely_psu: str
    calibration: tuple[str, ...] = ()
    calibration_notes: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """Per adjusted parameter: pseudo-posterior and adjusted sd, variance ratio."""
        a = self.adjustment
        return pd.DataFrame({
            "parameter": list(self.labels),
            "pseudo_posterior_sd": np.sqrt(np.diag(a.posterior_covariance)),
            "adjusted_sd": np.sqrt(np.clip(np.diag(a.target_covariance), 0, None)),
            "variance_ratio": a.variance_ratio()})

    def summary(self) -> dict[str, object]:
        """Plain values for a manifest: sizes, rank, spread of the variance ratios."""
        ratio = self.adjustment.variance_ratio()
        ratio = ratio[np.isfinite(ratio)]
        a = self.adjustment
        rank_deficient = a.rank < a.posterior_rank
        return {
            "method": "Williams & Savitsky (2021): draws mapped so that their covariance is "
                      "H^-1 J H^-1 (H^-1: pseudo-posterior covariance; J: design covariance "
                      "of the weighted scores)",
            "parameters": len(self.labels), "rank": a.rank,
            "free_dimensions": a.posterior_rank,
            "design_degrees_of_freedom": self.design_df, "lonely_psu": self.lonely_psu,
            "calibration": list(self.calibration),
            "calibration_notes": list(self.calibration_notes),
            "variance_ratio": {"min": float(ratio.min()), "median": float(np.median(ratio)),
                               "max": float(ratio.max())} if len(ratio) else None,
            "warning": (f"the sandwich has rank {a.rank} for {a.posterior_rank} free "
                        f"dimensions (design degrees of freedom {self.design_df}): some "
                        "combinations of parameters get no design-based spread"
                        if rank_deficient else None),
        }


def adjust_fit(idata: xr.DataTree, data: ScoreData, design: SurveyDesign
               ) -> tuple[xr.DataTree, DesignAdjustment]:
    """Adjust a fitted weighted scale-score posterior; keep the draws as sampled.

    Parameters
    ----------
    idata : xarray.DataTree
        The fit's posterior (group ``posterior``) and sampler statistics.
    data : ScoreData
        The weighted model data (``weight``, ``survey_rows``).
    design : SurveyDesign
        The survey's design (rows in the survey's order).

    Returns
    -------
    idata : xarray.DataTree
        ``posterior`` adjusted, ``unadjusted_posterior`` the pseudo-posterior as sampled.
    adjustment : DesignAdjustment
    """
    if data.survey_rows is None:
        raise ModelDataError("the adjustment needs each model respondent's survey row")
    sampled = idata["posterior"].to_dataset()
    adjusted, adjustment, labels = adjust_posterior(
        data, sampled, design.covariance, data.survey_rows, len(design.data))
    tree = idata.copy()
    tree["unadjusted_posterior"] = xr.DataTree(sampled)
    tree["posterior"] = xr.DataTree(adjusted.assign_attrs(
        {**sampled.attrs, "pseudo_posterior": "adjusted (Williams & Savitsky 2021)"}))
    return tree, DesignAdjustment(adjustment, tuple(labels), design.degrees_of_freedom,
                                  design.lonely_psu)
