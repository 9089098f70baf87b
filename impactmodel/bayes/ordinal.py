"""The item-level impact model: cumulative logit with a respondent trait per impact.

For respondent ``i`` (population ``p``, department ``d`` in region ``r``) answering item
``j`` of cell ``c = (impact m, lens l, dimension k)``::

    eta_ij = delta[j, p] + u_region[m, r] + u_dept[m, d] + z_i' gamma[m]
             + theta_im + sum_s x_is beta_s(c, p, r, d)
    P(y_ij <= k) = logistic(kappa_jk - eta_ij)

(R's ``polr`` sign convention, and the simulator's), with item-specific ordered cut-points
``kappa_j``, ``theta_i ~ N(0, L L')`` (``L L'`` the 3 x 3 trait covariance, with an LKJ
prior on its correlation) the respondent's traits, correlated across impacts, ``z`` the
covariate dummies, and the practice effects decomposed exactly as in the scale-score
model (:mod:`impactmodel.bayes.effects`): overall + impact + lens + dimension parts,
population part (sum-to-zero) and region / department-within-region variation.

Coding, chosen for sampling (the figures: 9,202 simulated respondents, 214,365 answers,
``benchmarks/README.md``):

- the respondent's *location* per impact, everything in ``eta`` that does not depend on
  the item: ``location_im = u_region[m, r] + u_dept[m, d] + z_i' gamma[m] + theta_im +
  x_i . (b + b_impact[m] + population and territorial slope parts)``. It is sampled
  (with its multivariate normal prior around the respondent-level predictor:
  :func:`~impactmodel.bayes.locations.respondent_locations`), *measured from its impact's mean
  cut-point and its population's mean shift*: the free variable is ``person_relative_im
  = location_im - cut_level_m + shift_level_pm``, ``cut_level_m`` the mean of the
  cut-points of impact ``m``'s items, ``shift_level_pm`` the mean of ``delta[j, p]``
  over the items of impact ``m`` asked of population ``p``. The same model in other
  coordinates (a shift by a function of ``kappa`` and ``delta``, Jacobian one). Why:
  - a respondent's answers pin down the location; drawn as a standardised trait,
    every respondent-level part moved together with the traits of all the respondents
    it touches (54 leapfrog steps per draw against 31 with the locations);
  - the overall and impact parts of the slopes are the same for all of a respondent's
    items of one impact, so they belong to the location's predictor (as the population
    and territorial parts do) rather than to the answers; the lens and dimension parts
    vary between items and stay in ``eta``;
  - the answers fix locations relative to cut-points: raising all of an impact's
    cut-points and every location by the same amount changes only the locations' prior.
    With absolute locations, that direction was the slowest (bulk ESS 56 for a cut-point
    in 2,000 draws, correlated 0.6 with the impact's mean location); relative to the
    mean cut-point, the answers no longer tie the cut-points' common level to the
    locations (lowest cut-point ESS 267 in the same draws);
  - likewise, raising an item shift ``delta[j, p]`` for all of population ``p``'s items
    of an impact and lowering that population's locations changes only the locations'
    prior: measured from the population's mean shift, and with the shifts' coordinates
    drawn as the means of alike contrasts (same impact, same populations asked, same
    contrast: :func:`~impactmodel.bayes.effects.iid_normal_by_group`, the same iid
    normal prior) and deviations from them, that direction is one coordinate. Before, a
    shift contrast had the worst R-hat of the fit (1.015; ``benchmarks/README.md``,
    session 12);
- the cell parts' impact and dimension parts centred (``auto``): thousands of answers
  inform them; non-centred, the impact sd, estimated from three impacts, was the slowest
  parameter (bulk ESS 171 in 4,000 draws);
- their lens part centred or not by the answers per respondent and impact
  (:data:`CENTRED_FROM`, 6 on average). It is the smallest of the three parts
  (posterior scale about 0.035 logit against 0.08 and 0.17 on the simulated surveys), and
  only contrasts between a respondent's items of different lenses inform it, so how well
  it is informed depends on how many items each respondent answers. With a split
  questionnaire (12.5 answers per respondent, 4.2 per impact: the survey size issue 4
  states), centred, its scale and values formed a funnel: one seed's fit had 14
  divergences and that scale as its slowest parameter (bulk ESS 269), and with Euclidean
  trajectories a chain stayed at a scale of 0.012 (R-hat 1.38); non-centred, 3 seeds of
  3 had no divergence (the scale's bulk ESS on seed 1: 558 -> 776). With the whole
  questionnaire (23.3 answers per respondent, 7.8 per impact), non-centred, the smallest
  bulk ESS barely changed (1,051 / 1,049 / 980 on seeds 1-3; 1,056 / 957 / 907 centred)
  but no fit passed: seeds 2 and 3 had a divergence each, seed 1 an R-hat of 1.012 (at a
  location); centred, all three passed. The threshold lies between the two surveys
  measured (``benchmarks/README.md``, session of 2026-12-06, sixth). Many respondents
  inform it too, whatever each answers: below that threshold it is still centred from
  :data:`LENS_CENTRED_FROM_CONTRASTS` within-respondent contrasts
  (:func:`lens_contrasts`: 87,270 in the split survey of 9,202 respondents, 772,587 in
  the split survey of 81,471). At 81,471 respondents, non-centred, the lens part was the
  slowest parameter of the fit (bulk ESS 241, one seed); centred, it no longer was (the
  slowest, 262, a population-shift mean; both fits failed on the intercepts' level: R-hat
  1.020 at a region intercept, 1.024 at a cut-point). The contrast threshold is the
  geometric middle of the two split surveys' counts, rounded (session of 2026-12-06,
  ninth; the 81,471 fit ran with 270,000, which chooses the same for every survey measured).
  Left non-centred, from :data:`LENS_ADAPTIVE_FROM_CONTRASTS` contrasts it is drawn in a
  scale-adaptive form (:func:`~impactmodel.bayes.effects.scale_adaptive_zero_sum`,
  :data:`LENS_KNEE` 0.02, :data:`LENS_FAR_EXPONENT` 0.3): non-centred as its scale nears
  zero, partly centred above. At 9,202 respondents (seeds 1-3), plainly non-centred, the
  lens scale had R-hat 1.015 / 1.014 / 1.003 and failed two fits; with one exponent for
  every scale (0.5 or 0.25) it mixed, but fits diverged (2 and 9 divergences on seed 3,
  all with the scale in its lowest 4 %, the posterior's 5 % point being 0.005); in the
  adaptive form its R-hat was 1.001-1.002 (bulk ESS 1,483-1,706), with no divergence, and
  4 of 6 fits passed on the two simulated surveys of that size against 3 of 6 (the other
  two: a location at 1.013, the check's noise floor, and the traits' covariance at
  1.014). At 1,144 respondents (10,874 contrasts, the lens part four times less informed)
  the same knee made fits worse (one chain stuck, 1,001 divergences, on one seed of
  three), so smaller surveys keep the plain non-centred form; the threshold is the
  geometric middle of the two surveys' counts (10,874 and 87,270), rounded
  (``benchmarks/README.md``, session of 2026-12-07, tenth);
- the locations partially non-centred in the traits' covariance when respondents answer
  few items (below :data:`CENTRED_FROM` answers per respondent and impact, under
  ``auto``): the sampler draws ``v_i`` with ``l_i = mu_i + Sigma^(w/2) (v_i - mu_i)``
  (:mod:`impactmodel.bayes.partial_scaling`; ``w`` from the answers, 0.3 on the split
  questionnaire). Centred, the traits' covariance was the slowest part of that fit (bulk
  ESS 324-392 in 4,000 draws on seeds 1-3, R-hat 1.014-1.016): it can move only as far
  as the 27,606 locations move with it. From
  :data:`~impactmodel.bayes.partial_scaling.LARGE_SURVEY_FROM` respondents, ``w`` is the
  rule's share uncapped (0.45 on the split questionnaire) and the locations are partially
  non-centred in their mean as well, ``l_i = mu_i + Sigma^(w/2) (v_i - (1 - w) mu_i)``
  (:func:`~impactmodel.bayes.partial_scaling.location_exponents`). The sampler's variable is then
  ``person_relative_scaled`` and the locations ``person_relative`` a deterministic, which
  the convergence check reads in its place (:attr:`BuiltModel.stand_ins`). See
  ``benchmarks/README.md`` (sessions of 2026-12-06, seventh and eighth) for the figures;
- the region parts of the slopes partially non-centred (``auto``): drawn as
  ``b_region_partial ~ ZeroSumNormal(scale^(1 - w))``, ``b_region = scale^w
  b_region_partial``, with ``w`` the share of their prior variance the survey's answers
  leave (:func:`~impactmodel.bayes.partial_scaling.region_slope_exponent`: 0.5 on the
  split surveys of 9,202 respondents, 0.15 on those of 81,370-81,471). With a few
  hundred respondents per region their variation is barely informed (the slopes vary
  between respondents, whose locations are known to about 0.6 logit), and centred they
  mixed worst (a department slope scale with bulk ESS 2.5 in 400 draws); with thousands
  the data pin each region part down to about a third of the regions' spread, and
  non-centred (``w = 1``) the scale could move only with all of them (at 81,370
  respondents ``b_region_scale`` was the fit's slowest parameter, bulk ESS 374 in 4,000
  draws; 1,474 with ``w = 0.15``; ``benchmarks/README.md``, session of 2026-12-07,
  fifth);
- the departments' own slope deviations (within their region) *integrated out*: they
  enter only the locations' normal prior, linearly, so the integral is exact
  (:mod:`impactmodel.bayes.department_slopes`) and ``b_department_scale`` keeps its
  marginal posterior; sampled (non-centred), that scale, near zero, was the slowest
  parameter (bulk ESS 193 in 4,000 draws; 574 for the slowest parameter once
  integrated). :func:`~impactmodel.bayes.fit.fit_items` draws them back from their
  conditional law for every posterior draw (``b_department``, ``effect_department``);
- ``delta[j, p]``: each item's population shifts, summing to zero over the populations
  the item is asked of (the item's location is in its cut-points). Questionnaires differ
  by population, so a shared population effect beside item cut-points is only weakly
  identified; per-item shifts are not. Populations differ in size, so the sampler moves
  in coordinates the answers inform independently (:mod:`impactmodel.bayes.item_shifts`,
  the prior unchanged): each item's contrasts in a basis aligned with its populations'
  answers, and its cut-points at the answer-weighted shift (``kappa_weighted``).
  With Helmert contrasts and the unweighted level, the contrasts' means over the items
  asked of the smallest population (1,150 of 81,471 respondents) were correlated -0.8
  in pairs and, with those items' cut-points, the slowest parameters of that fit;
- the intercepts' territorial parts as in the scale-score model, centred or not by data
  size (:func:`~impactmodel.bayes.gaussian.choose_parametrisation`).

NUTS trees are capped at depth 6 (:data:`MAX_DEPTH`, 63 leapfrog steps; the sampler
settings' ``max_depth`` overrides it): at 9,202 respondents every draw took depth 5 (31
steps), while the first warm-up iterations, far from the posterior with an unadapted
mass matrix, ran to 355 steps each; the cap cut the warm-up's steps by a quarter and left
the draws' trees as they were (``benchmarks/README.md``, session 12). The target
acceptance is 0.72 (:data:`TARGET_ACCEPT`; the settings' ``target_accept`` overrides it),
not 0.8: the draws take 31 leapfrog steps either way, and the larger steps carry each
trajectory further along the slowest directions (the latent scale: cut-points, trait
covariance, region intercepts). At 9,202 respondents, same seeds 1 / 2, the smallest
bulk ESS went from 508 / 628 (0.8) to 679 / 756 and the worst R-hat from 1.008 / 1.016
to 1.010 / 1.009, no divergence. Lower (0.65, near the optimum Beskos et al. 2013,
*Bernoulli* 19(5A), derive for HMC in high dimension) raised the structural parameters'
ESS further but left some locations' tails at R-hat 1.011 in three seeds of three
(``benchmarks/README.md``, session 13).

The trajectories follow microcanonical (isokinetic) dynamics (:data:`TRAJECTORY`; the
settings' ``trajectory`` overrides it; :class:`~impactmodel.bayes.sampling.SamplerSettings`
says what they are). With the usual Gaussian momenta, the slowest quantity of the fit
was the log-density itself: NUTS changes the energy level only when it draws a new
momentum, and here the log-density varies twice as much as a normal posterior of the
same dimension would (sd 169 against 119 for 28,471 parameters; E-BFMI 0.63-0.67), so
the energy moved as an AR(1) with coefficient about 0.7 (bulk ESS 567 of 4,000 draws).
The trait covariance, correlated -0.3 to -0.5 with the log-density, and the latent
scale's other parameters inherited that ESS. Isokinetic dynamics do not need the
momentum to move the energy level. Same survey, seeds 1 / 2 / 3, 4 x (300 + 1,000), the
same 31 leapfrog steps per draw: the log-density's bulk ESS went from 567 (seed 1) to
1,817 / 1,376 / 1,733, the smallest bulk ESS of any parameter from 637 / 579 / 698 to
1,056 / 957 / 907; posterior means agreed within Monte Carlo error (z-scores of the
differences with sd 0.5-1.1 per group of parameters) and sds within 1 % on average.
Each leapfrog step costs nutpie about 0.2 ms more at this dimension
(``benchmarks/README.md``, session of 2026-12-06, fourth).

The likelihood is written by hand on the log scale (no N x K probability matrix is
stored): :mod:`impactmodel.bayes.cumulative_logit` sums it and its derivatives in one loop
over the answers; the locations' prior, the department slopes' integral included, is
one pass over the respondents (:mod:`impactmodel.bayes.locations`: a gradient a quarter
cheaper than with PyTensor's gathers and scatter-adds, ``benchmarks/README.md``, session
of 2026-12-05). Effects are on the latent logit scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes import partial_scaling
from impactmodel.bayes.containers import PackedArrays
from impactmodel.bayes.cumulative_logit import DATA as CUMULATIVE_LOGIT_DATA
from impactmodel.bayes.cumulative_logit import answer_indices, cumulative_logit_logp
from impactmodel.bayes.department_slopes import DepartmentSlopeDesign, slope_integral
from impactmodel.bayes.effects import (
    iid_normal_by_group,
    practice_effects,
    territorial_deviations,
    trait_covariance,
)
from impactmodel.bayes.gaussian import Parametrisation, choose_parametrisation
from impactmodel.bayes.item_data import ItemData
from impactmodel.bayes.item_shifts import (
    alike_contrasts,
    answer_aligned_basis,
    answer_weights,
    pairs_to_grid,
    shift_averaging,
)
from impactmodel.bayes.locations import (
    IntegratedSlopes,
    LocationPredictor,
    by_department,
    location_sums,
    precision_and_weight,
    respondent_locations,
    respondent_profiles,
)
from impactmodel.bayes.priors import OrdinalPriors
from impactmodel.bayes.sampling import BuiltModel, Trajectory

#: the item model's default largest tree depth (see the module docstring)
MAX_DEPTH = 6
#: the item model's default NUTS target acceptance (see the module docstring)
TARGET_ACCEPT = 0.72
#: the item model's default NUTS dynamics (see the module docstring)
TRAJECTORY: Trajectory = "microcanonical"
#: from this many answers per respondent and impact (on average), ``auto`` draws the
#: slopes' lens part and the locations centred; below it, the locations partially
#: non-centred and the lens part non-centred (unless :data:`LENS_CENTRED_FROM_CONTRASTS`;
#: see the module docstring)
CENTRED_FROM = 6.0
#: below :data:`CENTRED_FROM`, ``auto`` still draws the lens part centred from this many
#: within-respondent contrasts (:func:`lens_contrasts`; see the module docstring)
LENS_CENTRED_FROM_CONTRASTS = 260_000
#: when ``auto`` leaves the lens part non-centred, from this many within-respondent
#: contrasts it is drawn non-centred near a zero scale and partly centred above
#: :data:`LENS_KNEE` (:func:`~impactmodel.bayes.effects.scale_adaptive_zero_sum`; see the
#: module docstring)
LENS_ADAPTIVE_FROM_CONTRASTS = 30_000
#: the scale (logit per unit of a practice) above which that form is partly centred
LENS_KNEE = 0.02
#: how far the lens part is centred well above :data:`LENS_KNEE` (0 centred, 1 not)
LENS_FAR_EXPONENT = 0.3


def answers_per_location(data: ItemData) -> float:
    """Mean number of answers per respondent and impact (the locations' information)."""
    return float(np.mean(data.answers_per_respondent_and_impact()))


def lens_contrasts(data: ItemData) -> int:
    """Answers beyond each respondent's first to each impact (what informs the lens part)."""
    return int(np.maximum(data.answers_per_respondent_and_impact() - 1, 0).sum())


def ordinal_item_model(data: ItemData, priors: OrdinalPriors | None = None,
                       parametrisation: Parametrisation = "auto",
                       scale_exponent: float | None = None,
                       mean_exponent: float | None = None) -> BuiltModel:
    """Build the ordinal item-level model (see the module docstring).

    Parameters
    ----------
    data : ItemData
    priors : OrdinalPriors, optional
    parametrisation : {"auto", "centred", "non-centred"}
        Of the territorial deviations and effect components. ``auto``: the intercepts'
        territorial deviations by the size rule, the slopes' region parts partially
        non-centred (:func:`~impactmodel.bayes.partial_scaling.region_slope_exponent`),
        their impact and dimension parts centred, their lens part centred or not by the
        answers per respondent and impact (:data:`CENTRED_FROM`) and the survey's
        within-respondent contrasts (:data:`LENS_CENTRED_FROM_CONTRASTS`; see the module
        docstring). ``centred`` and ``non-centred`` force every sampled part; the
        departments' own slope deviations are integrated out whatever the choice.
    scale_exponent : float, optional
        ``w`` of the locations' partial non-centring in the traits' covariance
        (:mod:`impactmodel.bayes.partial_scaling`), in ``[0, 1]``, 0 (with
        ``mean_exponent`` 0) for the centred form. By default, under ``auto`` with fewer
        than :data:`CENTRED_FROM` answers per respondent and impact, chosen from those
        answers and the number of respondents
        (:func:`~impactmodel.bayes.partial_scaling.location_exponents`); otherwise 0.
        Outside ``[0, 1]``, :func:`~impactmodel.bayes.locations.respondent_locations`
        raises ``ValueError``.
    mean_exponent : float, optional
        ``w_mu`` of the locations' partial non-centring in their mean
        (:func:`~impactmodel.bayes.locations.respondent_locations`), in ``[0, 1]``, 0 to
        keep them centred in their mean. By default chosen as ``scale_exponent`` is.

    Returns
    -------
    BuiltModel
        Named coordinates as the scale-score model's, plus ``item``, ``cut``,
        ``covariate`` and ``respondent``.
    """
    p = priors or OrdinalPriors()
    c = data.coords
    centred = choose_parametrisation(
        np.bincount(data.department, minlength=len(c["department"])), parametrisation)
    effects_centred = centred and parametrisation != "auto"
    # the cell parts (impact, lens, dimension) and the locations: see the module docstring
    few_answers = parametrisation == "auto" and answers_per_location(data) < CENTRED_FROM
    contrasts = lens_contrasts(data)
    lens_weak = few_answers and contrasts < LENS_CENTRED_FROM_CONTRASTS
    lens_adaptive = lens_weak and contrasts >= LENS_ADAPTIVE_FROM_CONTRASTS
    cells_centred = ((True, not lens_weak, True) if parametrisation == "auto"
                     else (parametrisation != "non-centred",) * 3)
    rule = (partial_scaling.location_exponents(data.answers_per_respondent_and_impact())
            if few_answers else (0.0, 0.0))
    scale_exponent = rule[0] if scale_exponent is None else scale_exponent
    mean_exponent = rule[1] if mean_exponent is None else mean_exponent
    # the slopes' region parts partially non-centred under auto (see the module docstring)
    region_exponent = (partial_scaling.region_slope_exponent(
        data.x, data.answers_per_respondent_and_impact(),
        data.department_region[data.department], len(c["region"]))
        if parametrisation == "auto" else None)
    n_pop = len(c["population"])
    n_impacts = len(c["impact"])
    resp_pop = data.population[data.respondent]
    # (item, population) pairs with answers, sorted by item, and their answers
    pairs, pair_answers = np.unique(np.column_stack([data.item, resp_pop]), axis=0,
                                    return_counts=True)
    n_items = len(c["item"])
    shift_basis = answer_aligned_basis(pairs, pair_answers, data.item_impact)
    pair_of = np.full((n_items, n_pop), -1, dtype=np.int64)  # -1: no answer uses it
    pair_of[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    answers = answer_indices(data.x, data.y, data.item, data.respondent, data.item_impact,
                             pair_of, data.population, data.n_levels, n_impacts)
    slope_design = DepartmentSlopeDesign.of(data.x, data.department, data.department_region)
    resp_profile, profile_covariates, profile_x = respondent_profiles(
        np.column_stack([data.z, data.x]), data.x)
    arrays = {**answers, "profile_x": profile_x, "profile_covariates": profile_covariates,
              "resp_group": data.department * n_pop + data.population,
              "resp_profile": resp_profile,
              "slope_eigenvalues": slope_design.eigenvalues,
              "slope_eigenvectors": slope_design.eigenvectors,
              # the shifts' and cut-points' coordinates depend on the answers' counts:
              # data, not constants, so that a new survey reuses the compiled model
              "shift_basis": shift_basis,
              "answer_weights": answer_weights(pairs, pair_answers, n_items)}
    packed = PackedArrays.pack(arrays)
    coords: dict[str, list[Any]] = {**c, "impact_bis": list(c["impact"]),
                                     "item_population_contrast":
                                     list(range(shift_basis.shape[1]))}
    with pm.Model(coords=coords) as model:
        d = packed.tensors()
        n_cut = data.n_levels - 1
        start = np.linspace(-2, 2, n_cut)
        # iid N(0, population_sd) coordinates, drawn as the means of alike contrasts
        # (same impact, same populations asked, same contrast) and deviations from them,
        # in a basis aligned with the answers (item_shifts.answer_aligned_basis)
        shift = pt.dot(d["shift_basis"], iid_normal_by_group(
            "delta_z", alike_contrasts(pairs, data.item_impact), 0.0, p.population_sd,
            dims=("item_population_contrast",)))
        # kappa ~ N(0, cutpoint_sd), ordered, drawn as kappa - w'delta per item
        # (item_shifts.answer_weights): a constant shape (see
        # effects._overall_and_population), else the mean cut-point below would read the
        # cut dimension's length from a shared variable
        weighted_shift = pt.dot(d["answer_weights"], shift)[:, None]
        kappa_weighted = pm.Normal("kappa_weighted", -weighted_shift, p.cutpoint_sd,
                                   dims=("item", "cut"), shape=(n_items, n_cut),
                                   transform=pm.distributions.transforms.ordered,
                                   initval=np.tile(start, (len(c["item"]), 1)))
        kappa = pm.Deterministic("kappa", kappa_weighted + weighted_shift,
                                 dims=("item", "cut"))
        # each population's mean shift per impact, over the items it is asked
        shift_level = pt.dot(pt.as_tensor_variable(shift_averaging(
            pairs, data.item_impact, n_pop, n_impacts)), shift).reshape((n_pop, n_impacts))
        u_dept = territorial_deviations("u", data.department_region, p.region_sd,
                                        p.department_sd, centred, dims="impact")
        gamma = pm.Normal("gamma", 0.0, p.covariate_sd, dims=("impact", "covariate"))
        trait_chol = trait_covariance(p.trait_sd, p.trait_correlation_eta, n_impacts)
        effects = practice_effects(data.department_region, effect_sd=p.effect_sd,
                                   component_sd=p.component_sd, centred=effects_centred,
                                   cell_centred=cells_centred, integrated_departments=True,
                                   region_exponent=region_exponent,
                                   lens_scale_adaptive=((LENS_KNEE, LENS_FAR_EXPONENT)
                                                        if lens_adaptive else None))
        # per respondent x impact, everything that does not depend on the item, grouped by
        # department x population (group d * populations + p), measured from each impact's
        # mean cut-point (over its items and their cuts) and the population's mean shift
        # (see the module docstring)
        cut_level = pt.dot(pt.as_tensor_variable(data.impact_averaging()),
                           pt.mean(kappa, axis=1))
        group_dept, group_pop = np.divmod(np.arange(len(c["department"]) * n_pop), n_pop)
        predictor = LocationPredictor(
            group_mean=(u_dept.T[group_dept] - cut_level[None, :] + shift_level[group_pop]),
            group_slope=effects.population.T[group_pop] + effects.department.T[group_dept],
            coefficients=pt.concatenate([gamma, effects.by_impact()], axis=1),
            group=d["resp_group"], profile=d["resp_profile"],
            # the sizes the locations' loops are compiled for (locations.Sizes)
            covariates=pt.specify_shape(d["profile_covariates"],
                                        (None, data.z.shape[1] + data.x.shape[1])),
            practices=pt.specify_shape(d["profile_x"], (None, data.x.shape[1])))
        slopes = IntegratedSlopes(
            scale=model["b_department_scale"], group_department=group_dept,
            eigenvalues=d["slope_eigenvalues"], eigenvectors=d["slope_eigenvectors"],
            basis=pt.as_tensor_variable(slope_design.basis))
        relative = respondent_locations("person_relative", predictor, trait_chol,
                                        dims=("respondent", "impact"), slopes=slopes,
                                        exponent=scale_exponent,
                                        mean_exponent=mean_exponent)
        # reported, not in the gradient: the departments' own slope deviations' conditional
        # mean and w (department_slopes draws them back from these)
        precision, weight = precision_and_weight(trait_chol)
        _, by_group, _ = location_sums(relative, predictor, precision, weight)
        _, own_mean = slope_integral(by_department(by_group, slopes), pt.sum(weight),
                                     slopes.eigenvalues, slopes.eigenvectors, slopes.basis,
                                     slopes.scale)
        pm.Deterministic("b_department_own_mean", own_mean, dims=("practice", "department"))
        pm.Deterministic("location_total_precision", pt.sum(weight))
        # the likelihood reads eta = relative + (cut_level - shift_level) + delta + ...:
        # the origin is added per (item, population) pair, not per respondent (one
        # gather and one scatter-add of respondents x impacts less per gradient)
        pair_impact = data.item_impact[pairs[:, 0]]
        shift_from_origin = (shift + cut_level[pair_impact]
                             - shift_level[pairs[:, 1], pair_impact])
        slope_item = effects.within_impact(data.item_lens, data.item_dimension)
        pm.Deterministic("delta", pairs_to_grid(shift, pairs, n_items, n_pop),
                         dims=("item", "population"))
        # cut-point parts per item x category (see cumulative_logit): with the outer
        # cut-points at -/+ 40 the logistic is 0 / 1 to double precision
        big = 40.0
        wide = pt.concatenate([pt.full((kappa.shape[0], 1), -big), kappa,
                               pt.full((kappa.shape[0], 1), big)], axis=1)
        lower, upper = wide[:, :-1], wide[:, 1:]  # item x category
        likelihood = cumulative_logit_logp(
            pt.log1mexp(lower - upper).reshape((-1,)), pt.exp(-upper).reshape((-1,)),
            pt.exp(lower).reshape((-1,)), shift_from_origin, relative, slope_item,
            *(d[name] for name, *_ in CUMULATIVE_LOGIT_DATA))
        pm.Potential("likelihood", likelihood[0])
    structure: tuple[object, ...] = (
        "ordinal", tuple((k, tuple(v)) for k, v in coords.items() if k != "respondent"),
        len(c["respondent"]), tuple(data.department_region), p, centred, effects_centred,
        cells_centred, scale_exponent, mean_exponent, region_exponent,
        tuple(tuple(int(v) for v in pair) for pair in pairs),
        # the item -> cell map is compiled in as constants
        tuple(map(int, data.item_impact)), tuple(map(int, data.item_lens)),
        tuple(map(int, data.item_dimension)), packed.structure)
    # partially non-centred: the free variable is the sampler's v, the locations stand for it
    stand_ins = ((("person_relative_scaled", "person_relative"),)
                 if "person_relative_scaled" in model.named_vars else ())
    return BuiltModel(model, packed.values(), structure, max_depth=MAX_DEPTH,
                      target_accept=TARGET_ACCEPT, trajectory=TRAJECTORY, stand_ins=stand_ins)
