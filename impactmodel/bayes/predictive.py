"""Predictive checks of the impact models: pointwise log-likelihood and replicated data.

Both models write their likelihood as a ``pm.Potential`` (on sufficient statistics for
the scale scores, :mod:`impactmodel.bayes.sufficient`; by hand for the items), so PyMC
cannot produce pointwise log-likelihoods or posterior predictive draws by itself; both
are computed here from the posterior draws, row by row, in chunks of draws (memory stays
bounded).

- The unit of the pointwise log-likelihood is the **respondent**: the normal
  log-density of all their scores, with covariance ``sigma^2 I + Z T Z'`` (the traits,
  correlated across impacts, make all of one person's scores dependent). LOO is then
  leave-one-respondent-out, the question a survey analyst asks.
- Replicated scores draw new traits per respondent (correlated across impacts) and new
  residuals.
- For the item model the traits are parameters: the log-likelihood of a respondent is the
  sum over their answers given the drawn traits (LOO is then conditional on the trait,
  which PSIS may find hard: read the Pareto k), and replicated answers reuse the drawn
  traits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from impactmodel.bayes.item_data import ItemData
from impactmodel.bayes.model_data import ScoreData

#: keep (draws x rows x practices) chunks under this many numbers
CHUNK_VALUES = 20_000_000


def thinned(posterior: xr.Dataset, max_draws: int) -> xr.Dataset:
    """Every k-th draw of each chain so that at most ``max_draws`` remain in total."""
    total = posterior.sizes["chain"] * posterior.sizes["draw"]
    step = max(1, -(-total // max_draws))
    return posterior.isel(draw=slice(None, None, step))


def row_means(data: ScoreData, draws: dict[str, NDArray[np.float64]]
               ) -> NDArray[np.float64]:
    """Means of every row for a block of draws (draws x rows), without the trait."""
    i = data.respondent
    pop, dept = data.population[i], data.department[i]
    m = data.cell_impact[data.cell]
    lens, dim = data.cell_lens[data.cell], data.cell_dimension[data.cell]
    slope = (draws["effect_cell"][:, :, m, lens, dim] + draws["b_population"][:, :, pop]
             + draws["b_department"][:, :, dept])  # draws x practices x rows
    means = (draws["alpha"][:, data.cell, pop] + draws["u_department"][:, m, dept]
             + np.einsum("spr,rp->sr", slope, data.x[i]))
    if "gamma" in draws:  # covariate shifts per impact
        means += np.einsum("srq,rq->sr", draws["gamma"][:, m, :], data.covariates[i])
    return means


_NAMES = ("alpha", "u_department", "effect_cell", "b_population", "b_department", "sigma",
          "trait_chol")


def _names(posterior: xr.Dataset) -> tuple[str, ...]:
    return _NAMES + (("gamma",) if "gamma" in posterior else ())


def _draw_blocks(posterior: xr.Dataset, names: tuple[str, ...], values_per_draw: int
                 ) -> Iterator[tuple[slice, dict[str, NDArray[np.float64]]]]:
    """Blocks of flattened draws (chain-major) of ``names``, sample axis first."""
    stacked = posterior[list(names)].stack(sample=("chain", "draw"))
    n = stacked.sizes["sample"]
    size = max(1, CHUNK_VALUES // max(1, values_per_draw))
    for start in range(0, n, size):
        block = slice(start, min(n, start + size))
        yield block, {k: np.moveaxis(stacked[k].isel(sample=block).values, -1, 0)
                      for k in names}


def _score_blocks(data: ScoreData, posterior: xr.Dataset
                  ) -> Iterator[tuple[slice, dict[str, NDArray[np.float64]]]]:
    return _draw_blocks(posterior, _names(posterior),
                        data.n_rows * (data.regressors.shape[1] + 1))


def with_trait_factor(posterior: xr.Dataset) -> xr.Dataset:
    """Add ``trait_chol`` = diag(``trait_sd``) when the traits are independent."""
    if "trait_chol" in posterior:
        return posterior
    eye = xr.DataArray(np.eye(posterior.sizes["impact"]), dims=("impact", "impact_bis"))
    return posterior.assign(trait_chol=posterior["trait_sd"] * eye)


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
    n_resp, n_impacts = len(data.population), len(data.coords["impact"])
    row_impact = data.cell_impact[data.cell]
    counts = np.zeros((n_resp, n_impacts))
    np.add.at(counts, (data.respondent, row_impact), 1.0)
    size = counts.sum(axis=1)
    shapes, resp_shape = np.unique(counts, axis=0, return_inverse=True)
    posterior = with_trait_factor(posterior)
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.empty((n_chain * n_draw, n_resp))
    for block, draws in _score_blocks(data, posterior):
        resid = data.y[None, :] - row_means(data, draws)
        s2 = draws["sigma"][:, None] ** 2
        chol = draws["trait_chol"]  # draws x impact x impact
        sums = np.zeros((resid.shape[0], n_resp, n_impacts))  # per respondent x impact
        np.add.at(sums.transpose(1, 2, 0), (data.respondent, row_impact), resid.T)
        squares = np.zeros((resid.shape[0], n_resp))
        np.add.at(squares.T, data.respondent, (resid**2).T)
        # Woodbury per count pattern D: W = L (I + L' D L / s2)^-1 L'
        inner = (np.eye(n_impacts)
                 + np.einsum("sab,ua,sac->subc", chol, shapes, chol) / s2[:, :, None, None])
        weight = np.einsum("sab,subc,sdc->suad", chol, np.linalg.inv(inner), chol)
        log_det = np.linalg.slogdet(inner)[1]  # draws x count patterns
        quadratic = (squares / s2 - np.einsum("sia,siab,sib->si", sums,
                                              weight[:, resp_shape], sums) / s2**2)
        out[block] = (-0.5 * size * np.log(2 * np.pi * s2) - 0.5 * log_det[:, resp_shape]
                      - 0.5 * quadratic)
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
    n_resp, n_impacts = len(data.population), len(data.coords["impact"])
    posterior = with_trait_factor(posterior)
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.empty((n_chain * n_draw, data.n_rows))
    for block, draws in _score_blocks(data, posterior):
        n = block.stop - block.start
        trait = np.einsum("srq,smq->srm", rng.standard_normal((n, n_resp, n_impacts)),
                          draws["trait_chol"])  # draws x respondent x impact
        noise = rng.standard_normal((n, data.n_rows)) * draws["sigma"][:, None]
        out[block] = (row_means(data, draws)
                      + trait[:, data.respondent, data.cell_impact[data.cell]] + noise)
    return xr.DataArray(out.reshape(n_chain, n_draw, data.n_rows),
                        dims=("chain", "draw", "row"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
                        name="scores")


_ITEM_NAMES = ("kappa", "delta", "person_relative", "b_lens", "b_dimension")


def _item_blocks(data: ItemData, posterior: xr.Dataset
                 ) -> Iterator[tuple[slice, dict[str, NDArray[np.float64]]]]:
    return _draw_blocks(posterior, _ITEM_NAMES, len(data.y) * (data.x.shape[1] + 3))


def _item_eta(data: ItemData, draws: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
    """Linear predictor of every answer for a block of draws (draws x answers).

    The respondent's location holds everything that does not depend on the item; it is
    sampled relative to its impact's mean cut-point and its population's mean shift
    (:mod:`impactmodel.bayes.ordinal`).
    """
    i, j = data.respondent, data.item
    m = data.item_impact[j]
    cut_level = np.einsum("mj,sj->sm", data.impact_averaging(), draws["kappa"].mean(axis=-1))
    # each population's mean shift per impact over the items asked of it (NaN: not asked)
    delta = draws["delta"]  # draws x item x population
    asked = ~np.isnan(delta[0])  # item x population
    shift_level = np.stack([
        np.nan_to_num(delta[:, data.item_impact == impact]).sum(axis=1)
        / np.maximum(asked[data.item_impact == impact].sum(axis=0), 1)
        for impact in range(cut_level.shape[1])], axis=-1)  # draws x population x impact
    location = (draws["person_relative"] + cut_level[:, None, :]
                - shift_level[:, data.population])
    slope = (draws["b_lens"][:, :, data.item_lens[j]]
             + draws["b_dimension"][:, :, data.item_dimension[j]])  # draws x practice x answers
    return (draws["delta"][:, j, data.population[i]] + location[:, i, m]
            + np.einsum("spr,rp->sr", slope, data.x[i]))


def _category_probabilities(data: ItemData, draws: dict[str, NDArray[np.float64]]
                            ) -> NDArray[np.float64]:
    """P(answer = k) for every answer and category (draws x answers x categories)."""
    eta = _item_eta(data, draws)
    kappa = draws["kappa"][:, data.item]  # draws x answers x cuts
    below = 1.0 / (1.0 + np.exp(eta[..., None] - kappa))  # P(y <= k), k = 0 .. K-2
    cumulative = np.concatenate([np.zeros((*eta.shape, 1)), below,
                                 np.ones((*eta.shape, 1))], axis=-1)
    return np.clip(np.diff(cumulative, axis=-1), 1e-300, 1.0)


def item_pointwise_log_likelihood(data: ItemData, posterior: xr.Dataset) -> xr.DataArray:
    """Log-likelihood of each respondent's answers, per draw (``chain, draw, respondent``)."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.zeros((n_chain * n_draw, data.n_respondents))
    for block, draws in _item_blocks(data, posterior):
        prob = _category_probabilities(data, draws)
        answer_ll = np.log(np.take_along_axis(prob, data.y[None, :, None], axis=-1)[..., 0])
        per_resp = np.zeros((answer_ll.shape[0], data.n_respondents))
        np.add.at(per_resp.T, data.respondent, answer_ll.T)
        out[block] = per_resp
    return xr.DataArray(out.reshape(n_chain, n_draw, data.n_respondents),
                        dims=("chain", "draw", "respondent"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
                        name="answers")


def replicated_answers(data: ItemData, posterior: xr.Dataset,
                       rng: np.random.Generator) -> xr.DataArray:
    """Posterior predictive answers ``0 .. K-1`` of every answered item (``chain, draw, row``)."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = np.empty((n_chain * n_draw, len(data.y)), dtype=np.int64)
    for block, draws in _item_blocks(data, posterior):
        cumulative = np.cumsum(_category_probabilities(data, draws), axis=-1)
        u = rng.random((*cumulative.shape[:-1], 1))
        out[block] = (u > cumulative[..., :-1]).sum(axis=-1)
    return xr.DataArray(out.reshape(n_chain, n_draw, len(data.y)),
                        dims=("chain", "draw", "row"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
                        name="answers")
