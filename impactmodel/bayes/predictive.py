"""Predictive checks of the scale-score model: pointwise log-likelihood and replicated data.

The model's likelihood is written as a ``pm.Potential`` on sufficient statistics
(:mod:`impactmodel.bayes.sufficient`), so PyMC cannot produce pointwise log-likelihoods or
posterior predictive draws by itself; both are computed here from the posterior draws,
row by row, in chunks of draws (memory stays bounded).

- The unit of the pointwise log-likelihood is the **respondent**: the sum over their
  respondent x impact groups of the equicorrelated normal log-density (the trait makes a
  person's scores within an impact dependent; impacts are independent given the
  parameters). LOO is then leave-one-respondent-out, the question a survey analyst asks.
- Replicated scores draw a new trait per respondent x impact and new residuals.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from impactmodel.bayes.model_data import ScoreData

#: keep (draws x rows x practices) chunks under this many numbers
CHUNK_VALUES = 20_000_000


def thinned(posterior: xr.Dataset, max_draws: int) -> xr.Dataset:
    """Every k-th draw of each chain so that at most ``max_draws`` remain in total."""
    total = posterior.sizes["chain"] * posterior.sizes["draw"]
    step = max(1, -(-total // max_draws))
    return posterior.isel(draw=slice(None, None, step))


def _row_means(data: ScoreData, draws: dict[str, NDArray[np.float64]]
               ) -> NDArray[np.float64]:
    """Means of every row for a block of draws (draws x rows), without the trait."""
    i = data.respondent
    pop, dept = data.population[i], data.department[i]
    m = data.cell_impact[data.cell]
    lens, dim = data.cell_lens[data.cell], data.cell_dimension[data.cell]
    slope = (draws["effect_cell"][:, :, m, lens, dim] + draws["b_population"][:, :, pop]
             + draws["b_department"][:, :, dept])  # draws x practices x rows
    return (draws["alpha"][:, data.cell, pop] + draws["u_department"][:, m, dept]
            + np.einsum("spr,rp->sr", slope, data.x[i]))


_NAMES = ("alpha", "u_department", "effect_cell", "b_population", "b_department", "sigma",
          "trait_sd")


def _draw_blocks(data: ScoreData, posterior: xr.Dataset
                 ) -> Iterator[tuple[slice, dict[str, NDArray[np.float64]]]]:
    """Blocks of flattened draws (chain-major) of the parameters the means need."""
    stacked = posterior[list(_NAMES)].stack(sample=("chain", "draw"))
    n = stacked.sizes["sample"]
    size = max(1, CHUNK_VALUES // max(1, data.n_rows * (data.x.shape[1] + 1)))
    for start in range(0, n, size):
        block = slice(start, min(n, start + size))
        yield block, {k: np.moveaxis(stacked[k].isel(sample=block).values, -1, 0)
                      for k in _NAMES}


def pointwise_log_likelihood(data: ScoreData, posterior: xr.Dataset) -> xr.DataArray:
    """Log-likelihood of each respondent's scores, per draw (``chain, draw, respondent``).

    Parameters
    ----------
    data : ScoreData
    posterior : xarray.Dataset
        Posterior draws with the model's named variables.

    Returns
    -------
    xarray.DataArray
    """
    n_groups = int(data.group.max()) + 1
    size = np.bincount(data.group, minlength=n_groups).astype(float)
    group_respondent = np.zeros(n_groups, dtype=np.int64)
    group_respondent[data.group] = data.respondent
    n_resp = len(data.population)
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.empty((n_chain * n_draw, n_resp))
    for block, draws in _draw_blocks(data, posterior):
        resid = data.y[None, :] - _row_means(data, draws)
        s2 = draws["sigma"][:, None] ** 2
        t2 = draws["trait_sd"][:, data.group_impact] ** 2  # draws x groups
        sum_e = np.zeros((resid.shape[0], n_groups))
        sum_e2 = np.zeros_like(sum_e)
        np.add.at(sum_e.T, data.group, resid.T)
        np.add.at(sum_e2.T, data.group, (resid**2).T)
        denom = s2 + size * t2
        group_ll = (-0.5 * size * np.log(2 * np.pi) - (size - 1) * 0.5 * np.log(s2)
                    - 0.5 * np.log(denom)
                    - 0.5 * (sum_e2 / s2 - t2 * sum_e**2 / (s2 * denom)))
        per_resp = np.zeros((resid.shape[0], n_resp))
        np.add.at(per_resp.T, group_respondent, group_ll.T)
        out[block] = per_resp
    return xr.DataArray(out.reshape(n_chain, n_draw, n_resp),
                        dims=("chain", "draw", "respondent"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
                        name="scores")


def replicated_scores(data: ScoreData, posterior: xr.Dataset,
                      rng: np.random.Generator) -> xr.DataArray:
    """Posterior predictive scores of every row, per draw (``chain, draw, row``).

    Parameters
    ----------
    data : ScoreData
    posterior : xarray.Dataset
    rng : numpy.random.Generator

    Returns
    -------
    xarray.DataArray
    """
    n_groups = int(data.group.max()) + 1
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.empty((n_chain * n_draw, data.n_rows))
    for block, draws in _draw_blocks(data, posterior):
        n = block.stop - block.start
        trait = rng.standard_normal((n, n_groups)) * draws["trait_sd"][:, data.group_impact]
        noise = rng.standard_normal((n, data.n_rows)) * draws["sigma"][:, None]
        out[block] = _row_means(data, draws) + trait[:, data.group] + noise
    return xr.DataArray(out.reshape(n_chain, n_draw, data.n_rows),
                        dims=("chain", "draw", "row"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
                        name="scores")
