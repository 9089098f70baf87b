"""Partial non-centring: the locations in the traits' covariance and mean, region slopes.

The item model (:mod:`impactmodel.bayes.ordinal`) samples each respondent's location per
impact around its predictor, with the traits' covariance ``Sigma`` as its spread (the
hierarchically *centred* form, :func:`~impactmodel.bayes.locations.respondent_locations`).
When each respondent answers few items per impact, a location's posterior is almost as
wide as its prior, and ``Sigma`` can move only as far as all the locations move with it:
the centred form's funnel. Sampling instead ``v`` with, for each respondent ``i``,

    l_i = mu_i + Sigma^(w/2) (v_i - mu_i)

(``mu_i`` the location's predictor, its prior mean; ``w`` in ``[0, 1]``; ``Sigma^(w/2)``
the symmetric power ``V diag(lambda^(w/2)) V'`` from the eigen-decomposition ``Sigma =
V diag(lambda) V'``) lets a move of ``Sigma`` stretch and turn each location's deviation
from its mean by ``Sigma^(w/2)`` on its own: ``w = 0`` is the centred form, ``w = 1`` a
non-centred one (with the symmetric square root for the Cholesky factor). The
log-determinant of ``dl / dv`` is ``n (w / 2) log det Sigma`` for ``n`` respondents.
Papaspiliopoulos, Roberts and Sköld (2007, *Statistical Science* 22(1), 59-73) show such
partially non-centred parametrisations beat both ends when the data inform each latent
variable about as much as its prior; their weight for a normal latent variable is the
share of its prior variance that the data leave, ``1 / (1 + prior variance x data
precision)`` (:func:`scale_exponent`). Every ``w`` gives the same posterior of the
locations: the transform is a bijection and its Jacobian enters the density.

Why the whole covariance and not only the standard deviations (``sd^w`` per impact): on
the split questionnaire of issue 4 (9,202 respondents, 4.2 answers per respondent and
impact), the traits' covariance was the slowest part of the fit (bulk ESS 324-392 in
4,000 draws, seeds 1-3). Scaling by the standard deviations alone left it there (375,
seed 1); with the whole covariance its bulk ESS was 1,033 on seed 1
(``benchmarks/README.md``, sessions of 2026-12-06, sixth and seventh).

Why around each location's own mean ``mu_i`` and not one centre ``c`` for all: scaled
around ``c``, a move of ``Sigma`` also shifted every location by ``(Sigma'^(w/2) -
Sigma^(w/2)) (mu_i - c)``, tying the traits' covariance to whatever sets ``mu_i``; on
the same survey, seed 1, the region intercepts (R-hat 1.017) and the covariates'
coefficients (1.023) then mixed slowest, and two chains of four adapted a step a third
smaller. Around ``mu_i`` the same seed passed (smallest bulk ESS 741, R-hat 1.0099; all
four step sizes 0.20-0.22).

In the mean too, from :data:`LARGE_SURVEY_FROM` respondents: ``l_i = mu_i + Sigma^(w/2)
(v_i - (1 - w_mu) mu_i)`` with ``w_mu = w`` (:func:`location_exponents`). A move of
``mu_i`` with ``v`` held then moves the location by ``(I - (1 - w_mu) Sigma^(w/2))``
times it, about ``w_mu`` times it, as the partially non-centred parametrisation does for
a normal latent variable's mean; ``v_i - (1 - w_mu) mu_i`` still has mean zero, so a move
of ``Sigma`` still only stretches deviations. At 81,471 respondents with ``w = 0.45``
centred in the mean, the slowest parameters were those that set ``mu_i`` (R-hat 1.015
at a covariate's coefficient, 1.013 at the practices' effects, bulk ESS 432 at the
region intercepts); with ``w_mu = 0.45`` too, the smallest bulk ESS was 575 and every
parameter but 15 of the 244,413 locations had R-hat at most 1.010. At 9,202 respondents
``w = w_mu = 0.45`` passed the check as often as the capped form (3 of 6 seeds), but
with a lower median smallest ESS (604 against 696) and failures that were not at the
check's noise floor (a component scale's bulk ESS 382, a divergence): the trees got
shorter (21 steps per draw on average against 25-31). So small surveys keep ``w``
capped at :data:`LARGEST_EXPONENT` and their locations centred in the mean
(``benchmarks/README.md``, session of 2026-12-07, sixth).

:func:`~impactmodel.bayes.locations.respondent_locations` declares ``v`` as the free
variable, with its density (the locations' at ``l(v)`` plus the log-determinant), and
the locations as a deterministic; one pass of
:class:`~impactmodel.bayes.locations.LocationSums` gives both the prior's sums and ``l``,
so ``mu_i`` is computed once per gradient. :func:`scaling_power` gives ``Sigma^(w/2)``;
the eigen-decomposition is of a 3 x 3 matrix, once per gradient. Written instead as a
PyMC transform of PyTensor operations (gathers by group for ``mu_i`` and their
scatter-add gradients, before the pass that computes ``mu_i`` again), the scaling cost
0.54 of 1.81 ms per gradient at 9,202 respondents (``benchmarks/README.md``, session of
2026-12-06, eighth).

The slopes' region parts use the same idea with a scale instead of a covariance
(:func:`~impactmodel.bayes.effects.partially_centred_zero_sum`: ``b = scale^w v``, ``v ~
ZeroSumNormal(scale^(1 - w))``) and the same rule for ``w``
(:func:`region_slope_exponent`), which needs a guess of the scale
(:data:`REGION_SLOPE_SD`). It is not capped: its share was 0.5 on the split survey of
9,202 respondents (where the region parts' posterior sd was 0.8 of their scale's, a
share of 0.64) and 0.15 on those of 81,370-81,471 (measured: 0.38-0.42 of the scale,
0.14-0.18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from numpy.typing import NDArray

#: Fisher information about a location carried by one answer, used by
#: :func:`scale_exponent`: ``sum_k p_k'^2 / p_k`` is 0.29-0.32 for five categories with
#: cut-points 1 to 2 logits apart and the location within 2 logits of their middle (and
#: at most 1/3, a continuous logistic's)
INFORMATION_PER_ANSWER = 0.3
#: the largest ``w`` that :func:`scale_exponent` gives: the one measured at the issue's
#: survey size, where the rule's share is 0.44 (see ``benchmarks/README.md``)
LARGEST_EXPONENT = 0.3
#: from this many respondents :func:`location_exponents` gives the rule's share itself,
#: for the scale and the mean: the geometric middle of the two sizes measured, 9,202
#: (where it was no better than the capped ``w``) and 81,370-81,471 (where it was),
#: rounded (``benchmarks/README.md``, session of 2026-12-07, sixth)
LARGE_SURVEY_FROM = 27_000
#: the sd of the slopes' region parts that :func:`region_slope_exponent` assumes (logit
#: per unit of a practice): their posterior means were 0.09-0.12 on the simulated split
#: surveys of 9,202 and 81,370-81,471 respondents (``benchmarks/README.md``)
REGION_SLOPE_SD = 0.1


def scale_exponent(answers: NDArray[np.integer], prior_variance: float = 1.0,
                   largest: float = LARGEST_EXPONENT) -> float:
    """``w`` for a survey: the share of a location's prior variance its answers leave.

    Rounded to a multiple of 0.05 (so that surveys alike share a compiled model) and at
    most ``largest``.

    Parameters
    ----------
    answers : ndarray of int, shape (respondents, impacts)
        Answers per respondent and impact.
    prior_variance : float, optional
        The traits' variance assumed (1: the simulated surveys' and the default prior's
        scale).
    largest : float, optional
        The cap (default :data:`LARGEST_EXPONENT`; 1 leaves the share as it is).

    Returns
    -------
    float
        The mean over respondents and impacts of ``1 / (1 + prior_variance x answers x
        INFORMATION_PER_ANSWER)``, rounded, capped.
    """
    precision = np.asarray(answers, dtype=np.float64) * INFORMATION_PER_ANSWER
    return min(largest, _rounded_share(1.0 / (1.0 + prior_variance * precision)))


def location_exponents(answers: NDArray[np.integer]) -> tuple[float, float]:
    """``w`` and ``w_mu`` of the locations' partial non-centring, in scale and in mean.

    Below :data:`LARGE_SURVEY_FROM` respondents, :func:`scale_exponent` (capped) in the
    traits' covariance and none in the mean; from it, the rule's share for both (the
    partially non-centred parametrisation of Papaspiliopoulos, Roberts and Sköld 2007,
    which takes one weight for a latent variable's mean and scale).

    Parameters
    ----------
    answers : ndarray of int, shape (respondents, impacts)
        Answers per respondent and impact.

    Returns
    -------
    tuple of float
        ``(w, w_mu)``, for :func:`~impactmodel.bayes.locations.respondent_locations`'s
        ``exponent`` and ``mean_exponent``.
    """
    if len(answers) < LARGE_SURVEY_FROM:
        return scale_exponent(answers), 0.0
    share = scale_exponent(answers, largest=1.0)
    return share, share


def _rounded_share(shares: NDArray[np.float64]) -> float:
    """Average ``shares`` and round to a multiple of 0.05 (surveys alike share a model)."""
    return round(float(np.mean(shares)) * 20) / 20


def region_slope_exponent(x: NDArray[np.floating], answers: NDArray[np.integer],
                          region: NDArray[np.integer], n_regions: int,
                          slope_sd: float = REGION_SLOPE_SD,
                          trait_variance: float = 1.0) -> float:
    """``w`` for the slopes' region parts: the share of their prior variance the data leave.

    A region part ``b[s, r]`` (practice ``s``, region ``r``) enters the locations' mean
    of the region's respondents as ``x_is b[s, r]``. Respondent ``i``'s location for
    impact ``m`` is known, from ``n_im`` answers, to within a variance ``trait_variance
    + 1 / (n_im x INFORMATION_PER_ANSWER)`` about that mean (its trait's and its
    answers'), so the information about ``b[s, r]`` is about ``I_sr = sum_{i in r} x_is^2
    sum_{m: n_im > 0} 1 / (trait_variance + 1 / (n_im INFORMATION_PER_ANSWER))``, and
    the share its prior (of sd ``slope_sd``) keeps is ``1 / (1 + slope_sd^2 I_sr)``
    (:func:`scale_exponent`'s rule).

    Parameters
    ----------
    x : ndarray, shape (respondents, practices)
        Centred practices.
    answers : ndarray of int, shape (respondents, impacts)
        Answers per respondent and impact.
    region : ndarray of int, shape (respondents,)
        Each respondent's region, coded ``0 .. n_regions - 1``.
    n_regions : int
    slope_sd : float, optional
        The region parts' sd assumed (:data:`REGION_SLOPE_SD`).
    trait_variance : float, optional
        The traits' variance assumed.

    Returns
    -------
    float
        The mean of the shares over practices and regions, rounded to a multiple of 0.05
        (0 the centred form, 1 the non-centred one).
    """
    answers = np.asarray(answers, dtype=np.float64)
    with np.errstate(divide="ignore"):
        noise = trait_variance + 1.0 / (answers * INFORMATION_PER_ANSWER)
    per_respondent = np.where(answers > 0, 1.0 / noise, 0.0).sum(axis=1)
    information = np.stack([
        np.bincount(region, weights=np.asarray(x[:, s], dtype=np.float64) ** 2
                    * per_respondent, minlength=n_regions)
        for s in range(x.shape[1])])
    return _rounded_share(1.0 / (1.0 + slope_sd**2 * information))


def scaling_power(chol: Any, exponent: float) -> pt.TensorVariable:
    """``Sigma^(w/2)``, the symmetric power ``V diag(lambda^(w/2)) V'`` of ``Sigma = chol chol'``.

    Parameters
    ----------
    chol : TensorVariable, shape (impacts, impacts)
        Lower-triangular factor of the traits' covariance ``Sigma``.
    exponent : float
        ``w``.

    Returns
    -------
    TensorVariable
        The symmetric matrix ``K`` of :mod:`impactmodel.bayes.locations` (``l_i = mu_i +
        K (v_i - alpha mu_i)``), from the eigen-decomposition of the 3 x 3 ``Sigma``.
    """
    decomposition: Any = pt.linalg.eigh(pt.dot(chol, chol.T))
    eigenvalues, eigenvectors = decomposition
    scaled = eigenvectors * (eigenvalues ** (exponent / 2))[None, :]
    return pt.dot(scaled, eigenvectors.T)


__all__ = ["INFORMATION_PER_ANSWER", "LARGEST_EXPONENT", "LARGE_SURVEY_FROM", "REGION_SLOPE_SD",
           "location_exponents", "region_slope_exponent", "scale_exponent", "scaling_power"]
