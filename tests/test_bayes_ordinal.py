"""The ordinal item-level model recovers the simulator's practice effects.

Short version for CI (one simulated survey, small chains); ``benchmarks/`` holds the long
repeated-simulation coverage study. The target of ``effect_cell`` is the simulator's
``beta_cell`` plus the means of its population, region and department-within-region
deviations (the model's parts sum to zero, so those means are carried by the cell effects).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import potential_at_draw
from scipy import linalg
from scipy.special import expit
from scipy.stats import multivariate_normal, norm

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings, ordinal, sample_model
from impactmodel.bayes.department_slopes import DepartmentSlopeDesign, with_department_slopes
from impactmodel.bayes.effects import within_group_basis
from impactmodel.bayes.fit import fit_items
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.ordinal import (
    CENTRED_FROM,
    answers_per_location,
    lens_contrasts,
    ordinal_item_model,
)
from impactmodel.bayes.partial_scaling import LARGEST_EXPONENT, scale_exponent
from impactmodel.bayes.priors import OrdinalPriors
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.simulate.outcomes import effect_cell_in_sum_to_zero_coding

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]


@pytest.fixture(scope="module")
def at_a_point(tmp_path_factory):
    """The model's terms and reported parameters at a perturbed point of a small survey,
    with the respondents' location residuals and the design of the integrated department
    slopes assembled here from the reported parameters."""
    folder = tmp_path_factory.mktemp("ordinal-point")
    paths = write_simulation(simulate(SimulationSettings(seed=7, respondents=600)), folder)
    survey = load_survey(paths["respondents"], paths["codebook"])
    data = build_item_data(survey, ["partners", "maturity"], ["age_group"])
    model = ordinal_item_model(data).model
    rng = np.random.default_rng(4)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["kappa", "delta", "u_department", "gamma", "trait_sd", "trait_correlation",
             "person_relative", "effect_cell", "b_population", "b_region",
             "b_department_scale", "b_department_own_mean", "location_total_precision",
             "b", "b_region_scale", "kappa_weighted"]
    potentials = {p.name: p for p in model.potentials}
    outputs = model.replace_rvs_by_values([potentials["likelihood"],
                                           *(model[n] for n in names)])
    location_prior = model.logp(vars=[model["person_relative"]])
    # the cut-points' prior density in the model's coordinates, without the ordering's
    # Jacobian (the same for both coordinates: a common shift keeps the differences)
    cut_prior = model.logp(vars=[model["kappa_weighted"]], jacobian=False)
    values = model.compile_fn([*outputs, location_prior, cut_prior], inputs=model.value_vars,
                              on_unused_input="ignore", point_fn=True)(point)
    parameters = dict(zip(names, values[1:-2], strict=True))
    kappa, u = parameters["kappa"], parameters["u_department"]
    # each impact's mean cut-point, over its items' cuts
    cut_level = np.array([kappa[data.item_impact == impact].mean()
                          for impact in range(len(data.coords["impact"]))])
    # each population's mean shift per impact, over the items asked of it
    delta = parameters["delta"]
    shift_level = np.array([[np.nanmean(delta[data.item_impact == impact, pop])
                             if (~np.isnan(delta[data.item_impact == impact, pop])).any()
                             else 0.0 for impact in range(len(cut_level))]
                            for pop in range(delta.shape[1])])
    location = parameters["person_relative"] + cut_level - shift_level[data.population]
    # the respondent-level predictor: intercepts, covariates and the slopes' parts that
    # do not depend on the item, the departments' own deviations excepted (integrated)
    effect, b_pop = parameters["effect_cell"], parameters["b_population"]
    b_dept = parameters["b_region"][:, data.department_region]  # region part
    r_dept = data.department
    predictor = np.empty_like(location)
    for impact in range(location.shape[1]):
        overall_impact = effect[:, impact].mean(axis=(1, 2))  # b + b_impact (zero-sum parts)
        slope = (overall_impact[:, None] + b_pop[:, data.population] + b_dept[:, r_dept])
        predictor[:, impact] = (data.z @ parameters["gamma"][impact] + u[impact, r_dept]
                                + np.sum(data.x * slope.T, axis=1))
    sd, correlation = parameters["trait_sd"], parameters["trait_correlation"]
    # the departments' own slope deviations: o[:, d] = c @ basis[d], c iid N(0, s^2);
    # stacked residuals (respondent-major) = Z vec(c) + trait, Z built here row by row
    basis = within_group_basis(data.department_region)
    n_impacts = location.shape[1]
    z_rows = np.einsum("ip,ij->ipj", data.x, basis[r_dept]).reshape(len(r_dept), -1)
    design = np.repeat(z_rows, n_impacts, axis=0)
    return dict(data=data, parameters=parameters, likelihood=values[0],
                location_prior=values[-2], cut_prior=values[-1], cut_level=cut_level,
                shift_level=shift_level,
                location=location, predictor=predictor, b_dept=b_dept,
                covariance=correlation * np.outer(sd, sd), basis=basis, design=design)


def test_likelihood_matches_the_cumulative_logit_formula(at_a_point):
    """The model's likelihood equals sum log(expit(kappa_{y+1} - eta) - expit(kappa_y - eta))
    with eta = delta[j, p] + u[m, d] + z_i gamma[m] + theta_im + x_i beta(c, p, d); eta,
    the traits and the practice slopes beta are assembled here from the reported
    parameters as the module docstring writes the model, the traits from the sampled
    locations (relative to each impact's mean cut-point and the population's mean shift
    over the impact's items) minus the predictor (whose
    department slope part is the region's: the departments' own part, integrated out,
    is in the traits here and cancels in eta)."""
    data, parameters = at_a_point["data"], at_a_point["parameters"]
    kappa, delta, u = parameters["kappa"], parameters["delta"], parameters["u_department"]
    i, j = data.respondent, data.item
    p, dept = data.population[i], data.department[i]
    m = data.item_impact[j]
    effect, b_pop, b_dept = (parameters["effect_cell"], parameters["b_population"],
                             at_a_point["b_dept"])
    trait = at_a_point["location"] - at_a_point["predictor"]
    cell_slope = effect[:, m, data.item_lens[j], data.item_dimension[j]]  # practice x answer
    beta = cell_slope + b_pop[:, p] + b_dept[:, dept]
    eta = (delta[j, p] + u[m, dept] + np.sum(data.z[i] * parameters["gamma"][m], axis=1)
           + trait[i, m] + np.sum(data.x[i] * beta.T, axis=1))
    cuts = np.column_stack([np.full(len(kappa), -np.inf), kappa, np.full(len(kappa), np.inf)])
    prob = expit(cuts[j, data.y + 1] - eta) - expit(cuts[j, data.y] - eta)
    assert np.isnan(delta).sum() > 0  # items not asked of a population have no shift
    cut_level = at_a_point["cut_level"]
    assert np.ptp(cut_level) > 0.1 and np.abs(cut_level).max() > 0.1  # a point that tells
    assert np.abs(at_a_point["shift_level"]).max() > 0.05
    assert at_a_point["likelihood"] == pytest.approx(np.log(prob).sum(), rel=1e-9)


def test_cut_points_prior_is_normal_on_the_reported_cut_points(at_a_point):
    """The sampler draws each item's cut-points at its answer-weighted shift
    (``kappa - w'delta``, :mod:`impactmodel.bayes.item_shifts`); the prior must still be
    ``kappa ~ N(0, cutpoint_sd)`` iid (ordered) on the reported cut-points."""
    parameters = at_a_point["parameters"]
    kappa, weighted = parameters["kappa"], parameters["kappa_weighted"]
    # the two differ by a shift per item, the same for all of its cuts
    shift = kappa - weighted
    assert np.abs(shift).max() > 0.05
    np.testing.assert_allclose(shift, shift[:, :1] * np.ones_like(shift), atol=1e-12)
    expected = norm.logpdf(kappa, 0.0, OrdinalPriors().cutpoint_sd).sum()
    # PyMC's normal log-density rounds its constant log(2 pi) / 2 (2e-8 per value)
    assert at_a_point["cut_prior"] == pytest.approx(expected, abs=1e-7 * kappa.size)


def test_locations_prior_integrates_the_department_slopes_out(at_a_point):
    """The locations' prior with the departments' own slope deviations integrated out
    (the model's location density) equals the
    multivariate normal of all the respondents' stacked residuals, location minus
    predictor, with covariance I (x) Sigma + s^2 Z Z' (Z: each respondent's practices
    times their department's row of the within-region contrast basis), by scipy."""
    parameters = at_a_point["parameters"]
    residual = (at_a_point["location"] - at_a_point["predictor"]).ravel()
    covariance, design = at_a_point["covariance"], at_a_point["design"]
    scale = float(parameters["b_department_scale"])
    n = len(at_a_point["location"])
    traits_only = np.kron(np.eye(n), covariance)
    marginal = multivariate_normal(np.zeros(len(residual)),
                                   traits_only + scale**2 * design @ design.T)
    assert abs(covariance[0, 1]) > 0.01 and scale > 0.1  # a point that tells
    expected = marginal.logpdf(residual)
    assert at_a_point["location_prior"] == pytest.approx(expected, rel=1e-9)
    # the integral matters at this point: the traits' density alone differs
    without = multivariate_normal(np.zeros(len(residual)), traits_only).logpdf(residual)
    assert abs(expected - without) > 1.0


def test_department_slopes_are_drawn_from_their_conditional_law(at_a_point):
    """Given the other parameters, the departments' own deviations c are normal with the
    textbook conditional mean s^2 Z' V^-1 r and covariance s^2 I - s^4 Z' V^-1 Z
    (V = I (x) Sigma + s^2 Z Z'): the model's reported mean matches it, and 4,000 draws
    of ``with_department_slopes`` at this point match both within Monte Carlo error."""
    data, parameters = at_a_point["data"], at_a_point["parameters"]
    residual = (at_a_point["location"] - at_a_point["predictor"]).ravel()
    design, basis = at_a_point["design"], at_a_point["basis"]
    scale = float(parameters["b_department_scale"])
    n = len(at_a_point["location"])
    v = np.kron(np.eye(n), at_a_point["covariance"]) + scale**2 * design @ design.T
    mean = scale**2 * design.T @ np.linalg.solve(v, residual)
    cov = scale**2 * np.eye(design.shape[1]) - scale**4 * design.T @ np.linalg.solve(
        v, design)
    n_practices = data.x.shape[1]
    reported = parameters["b_department_own_mean"]  # practice x department
    assert reported == pytest.approx(mean.reshape(n_practices, -1) @ basis.T, abs=1e-9)
    # a posterior of 4,000 copies of this point
    draws = 4000
    def copies(value, dims):
        value = np.broadcast_to(np.asarray(value), (1, draws, *np.shape(value)))
        return (("chain", "draw", *dims), value)
    posterior = xr.Dataset(
        {"b": copies(parameters["b"], ("practice",)),
         "b_region": copies(parameters["b_region"], ("practice", "region")),
         "b_department_scale": copies(scale, ()),
         "b_department_own_mean": copies(reported, ("practice", "department")),
         "location_total_precision": copies(parameters["location_total_precision"], ())})
    slope_design = DepartmentSlopeDesign.of(data.x, data.department, data.department_region)
    out = with_department_slopes(posterior, slope_design, data.department_region,
                                 np.random.default_rng(11))
    assert "b_department_own_mean" not in out and "location_total_precision" not in out
    own = (out["b_department"].values[0]
           - parameters["b_region"][:, data.department_region])  # draws x practice x dept
    drawn = (own @ basis).reshape(draws, -1)  # back to c
    # standardised by the textbook law: zero mean, identity covariance
    root = np.linalg.cholesky(cov)
    white = np.linalg.solve(root, (drawn - mean).T).T
    assert np.abs(white.mean(axis=0)).max() < 4.5 / np.sqrt(draws)
    sample_cov = np.cov(white, rowvar=False)
    assert np.abs(np.diag(sample_cov) - 1).max() < 5 * np.sqrt(2 / draws)
    assert np.abs(sample_cov - np.diag(np.diag(sample_cov))).max() < 5 / np.sqrt(draws)
    effect = out["effect_department"].values[0]
    assert effect == pytest.approx(parameters["b"][None, :, None]
                                   + out["b_department"].values[0], abs=1e-12)


@pytest.fixture(scope="module")
def recovery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ordinal")
    paths = write_simulation(simulate(SimulationSettings(seed=7, respondents=600)), folder)
    survey = load_survey(paths["respondents"], paths["codebook"])
    draws = fit_items(survey, practices=PRACTICES, covariates=["age_group", "size_class"],
                      settings=SamplerSettings(draws=250, tune=300, chains=2, seed=3))
    data = draws.data
    truth = json.loads(paths["truth"].read_text())["parameters"]
    target = effect_cell_in_sum_to_zero_coding(truth, data.department_region)
    return data, draws, target


def test_effect_intervals_cover_the_truth(recovery):
    _, draws, target = recovery
    post = draws.idata["posterior"]["effect_cell"].stack(s=("chain", "draw")).values
    low, high = np.quantile(post, 0.05, axis=-1), np.quantile(post, 0.95, axis=-1)
    coverage = np.mean((low <= target) & (target <= high))
    # 6 practices x 54 cells; the values share components, so allow a wide band around 90%
    assert 0.75 <= coverage <= 1.0, coverage
    # and the estimates are informative: half the error of guessing "no effect"
    error = np.abs(post.mean(axis=-1) - target).mean()
    assert error < 0.5 * np.abs(target).mean(), (error, np.abs(target).mean())


def test_model_has_named_coordinates(recovery):
    data, draws, _ = recovery
    posterior = draws.idata["posterior"]
    assert posterior["effect_cell"].dims[-4:] == ("practice", "impact", "lens", "dimension")
    assert list(posterior["effect_population"].coords["population"].values) == [
        "citizen", "elected", "business", "association"]
    assert posterior["kappa"].sizes["cut"] == data.n_levels - 1
    assert draws.convergence.divergences == 0
    # the item model's own tree-depth cap, target acceptance and dynamics, applied and
    # recorded
    assert draws.settings.max_depth == 6
    assert draws.settings.target_accept == 0.72
    assert draws.settings.trajectory == "microcanonical"
    assert int(draws.idata["sample_stats"]["depth"].max()) <= 6
    table = draws.effects("effect_population")
    assert list(table.columns) == ["practice", "population", "mean", "sd", "low", "high",
                                   "prob_positive"]
    contrast = draws.contrast("effect_population", "population", "elected", "citizen")
    means = table.set_index(["practice", "population"])["mean"]
    for _, row in contrast.iterrows():
        expected = means[(row["practice"], "elected")] - means[(row["practice"], "citizen")]
        assert row["mean"] == pytest.approx(expected, abs=1e-9)


def test_item_log_likelihood_loo_and_predictive_check(recovery):
    data, fit, _ = recovery
    tree = fit.log_likelihood(max_draws=6)
    loglik = tree["log_likelihood"]["answers"]
    assert loglik.sizes["respondent"] == data.n_respondents
    # per-respondent log-likelihoods add up to the model's own likelihood at a draw
    model = ordinal_item_model(data, fit.priors).model
    expected = potential_at_draw(model, tree["posterior"], 1, 2)
    assert float(loglik.isel(chain=1, draw=2).sum()) == pytest.approx(expected, rel=1e-8)
    # LOO given the drawn traits: a respondent's trait rests on their own answers, so
    # PSIS reports high Pareto k (the warning reaches the user; the estimate still exists)
    with pytest.warns(UserWarning, match="Pareto"):
        result = fit.loo(max_draws=200)
    assert np.isfinite(result.elpd) and np.asarray(result.pareto_k).max() > 0.55
    table = fit.predictive_check(max_draws=100, seed=2)
    means = table[table["statistic"] == "mean"]
    # replicated answers reproduce the observed mean answer per population x impact
    assert (means["p_value"].between(0.005, 0.995)).all(), means
    assert np.allclose(means["replicated"], means["observed"], atol=0.15)


def test_pymc_nuts_samples_the_item_models_own_formulation(tmp_path):
    # PyMC's NUTS is the fallback sampler; the item model's hand-written operations have
    # numba versions (PyMC 6 compiles with numba) and numpy ones. A few draws on a small
    # split survey: the draws are labelled, finite, taken with the model's own depth cap
    # and target acceptance (PyMC has no microcanonical dynamics: none recorded), and the
    # fit is reported as not converged (20 draws cannot pass)
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]),
                           ["partners", "maturity"])
    draws = sample_model(ordinal_item_model(data),
                         SamplerSettings(sampler="pymc", draws=20, tune=30, chains=1, seed=2))
    assert (draws.settings.sampler, draws.settings.trajectory) == ("pymc", None)
    assert (draws.settings.max_depth, draws.settings.target_accept) == (
        ordinal.MAX_DEPTH, ordinal.TARGET_ACCEPT)
    stats = draws.idata["sample_stats"]
    assert int(stats["tree_depth"].max()) <= ordinal.MAX_DEPTH
    locations = draws.idata["posterior"]["person_relative"]
    assert locations.dims == ("chain", "draw", "respondent", "impact")
    assert locations.shape == (1, 20, data.n_respondents, len(data.coords["impact"]))
    assert np.isfinite(locations).all() and np.isfinite(draws.idata["posterior"]["kappa"]).all()
    assert not draws.convergence.converged


def test_lens_part_and_locations_forms_follow_the_answers_per_respondent(tmp_path):
    # the whole simulated questionnaire (about 23 answers per respondent, 7.8 per impact):
    # the lens part centred; 4 items per respondent (about 1.3 per impact): non-centred
    forms = {}
    for items in (None, 4):
        settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=items)
        paths = write_simulation(simulate(settings), tmp_path / f"items-{items}")
        data = build_item_data(load_survey(paths["respondents"], paths["codebook"]),
                               ["partners"])
        model = ordinal_item_model(data).model
        free = {v.name for v in model.free_RVs}
        # partially non-centred: the sampler draws v (with the rule's w, which the
        # log-density test below checks the model uses), the locations are deterministic
        exponent = (scale_exponent(data.answers_per_respondent_and_impact())
                    if "person_relative_scaled" in free else None)
        forms[items] = (answers_per_location(data), "b_lens" in free, "b_lens_z" in free,
                        exponent)
    assert forms[None][0] >= CENTRED_FROM > forms[4][0]
    # the whole questionnaire: centred lens part and locations
    assert forms[None][1:] == (True, False, None)
    # at most 4 answers per respondent leave each location at least 1 / (1 + 4 x 0.3) of
    # its prior variance, above the cap: the locations partially non-centred with it
    assert forms[4][1:] == (False, True, LARGEST_EXPONENT)
    # a respondent answers at most 4 items, so at most 4 / 3 per impact on average
    assert forms[4][0] <= 4 / 3


def test_lens_part_centred_from_enough_contrasts_whatever_the_answers_per_respondent(
        tmp_path, monkeypatch):
    """Few answers per respondent but many respondents: the lens part is informed by all
    the contrasts between a respondent's answers to one impact, so ``auto`` draws it
    centred from :data:`LENS_CENTRED_FROM_CONTRASTS` of them, and below that in the
    scale-adaptive form from :data:`LENS_ADAPTIVE_FROM_CONTRASTS`; the locations stay
    partially non-centred (their information is per respondent)."""
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]),
                           ["partners"])
    # counted independently: answers per (respondent, impact) beyond the first
    per_location = pd.DataFrame({"respondent": data.respondent,
                                 "impact": data.item_impact[data.item]}).value_counts()
    contrasts = int((per_location - 1).sum())
    assert lens_contrasts(data) == contrasts > 0
    for threshold, lens_centred in ((contrasts + 1, False), (contrasts, True)):
        monkeypatch.setattr(ordinal, "LENS_CENTRED_FROM_CONTRASTS", threshold)
        free = {v.name for v in ordinal_item_model(data).model.free_RVs}
        assert ("b_lens" in free, "b_lens_z" in free) == (lens_centred, not lens_centred)
        assert "person_relative_scaled" in free
    # non-centred, and from LENS_ADAPTIVE_FROM_CONTRASTS in the scale-adaptive form
    monkeypatch.setattr(ordinal, "LENS_CENTRED_FROM_CONTRASTS", contrasts + 1)
    for threshold, adaptive in ((contrasts + 1, False), (contrasts, True)):
        monkeypatch.setattr(ordinal, "LENS_ADAPTIVE_FROM_CONTRASTS", threshold)
        built = ordinal_item_model(data).model
        free = {v.name for v in built.free_RVs}
        assert ("b_lens_smooth" in free, "b_lens_z" in free) == (adaptive, not adaptive)
        assert "b_lens" in built.named_vars  # reported under its own name either way


def test_slopes_region_parts_take_the_rules_partial_non_centring(tmp_path, monkeypatch):
    """Under ``auto`` the slopes' region parts are drawn with the ``w`` of
    :func:`~impactmodel.bayes.partial_scaling.region_slope_exponent` (given the survey's
    practices, answers and regions); forced forms ignore it."""
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]),
                           ["partners"])
    seen, chosen = [], {"w": 0.0}

    def rule(x, answers, region, n_regions):  # type: ignore[no-untyped-def]
        seen.append((x, answers, region, n_regions))
        return chosen["w"]

    monkeypatch.setattr(ordinal.partial_scaling, "region_slope_exponent", rule)
    expected_free = {0.0: "b_region", 0.4: "b_region_partial", 1.0: "b_region_z"}
    structures = set()
    for exponent, name in expected_free.items():
        chosen["w"] = exponent
        built = ordinal_item_model(data)
        free = {v.name for v in built.model.free_RVs}
        assert name in free and not (set(expected_free.values()) - {name}) & free
        structures.add(built.structure)
    assert len(structures) == 3  # a survey with another w compiles its own model
    x, answers, region, n_regions = seen[-1]
    np.testing.assert_array_equal(x, data.x)
    np.testing.assert_array_equal(answers, data.answers_per_respondent_and_impact())
    np.testing.assert_array_equal(region, data.department_region[data.department])
    assert n_regions == len(data.coords["region"])
    seen.clear()
    for parametrisation, name in (("centred", "b_region"), ("non-centred", "b_region_z")):
        free = {v.name for v in ordinal_item_model(data, parametrisation=parametrisation
                                                   ).model.free_RVs}
        assert name in free
    assert not seen


def test_partially_non_centred_locations_change_only_the_coordinates(tmp_path):
    """On a split questionnaire, the model's log-density in the sampler's coordinates is
    the centred model's at the same locations plus ``n (w / 2) log det Sigma``."""
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]), ["partners"])
    built = ordinal_item_model(data)
    partial, centred = built.model, ordinal_item_model(data, scale_exponent=0.0).model
    assert built.stand_ins == (("person_relative_scaled", "person_relative"),)
    assert "person_relative" in [v.name for v in centred.free_RVs]
    assert "person_relative" in [v.name for v in partial.deterministics]
    rng = np.random.default_rng(8)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in centred.initial_point().items()}
    locations = point.pop("person_relative")
    chol = centred.compile_fn(centred.replace_rvs_by_values([centred["trait_chol"]])[0],
                              inputs=centred.value_vars,
                              on_unused_input="ignore")({**point, "person_relative": locations})
    # the sampler's coordinates v of those locations: l(v) = l(0) + v K' with K =
    # Sigma^(w/2) (scipy's fractional power), l(0) from the partial model at v = 0
    exponent = scale_exponent(data.answers_per_respondent_and_impact())
    located = partial.compile_fn(partial.replace_rvs_by_values([partial["person_relative"]])[0],
                                 inputs=partial.value_vars, on_unused_input="ignore")
    at_zero = located({**point, "person_relative_scaled": np.zeros_like(locations)})
    power = linalg.fractional_matrix_power(chol @ chol.T, exponent / 2).real
    sampler_values = (locations - at_zero) @ np.linalg.inv(power.T)
    np.testing.assert_allclose(located({**point, "person_relative_scaled": sampler_values}),
                               locations, rtol=1e-9, atol=1e-9)
    jacobian = data.n_respondents * exponent / 2 * np.log(np.linalg.det(chol @ chol.T))
    logp_partial = partial.compile_logp()({**point, "person_relative_scaled": sampler_values})
    logp_centred = centred.compile_logp()({**point, "person_relative": locations})
    assert logp_partial == pytest.approx(logp_centred + jacobian, rel=1e-10, abs=1e-8)
    assert abs(jacobian) > 1.0  # the check is not trivial
    with pytest.raises(ValueError, match=r"scale exponent must be in \[0, 1\], got 1.5"):
        ordinal_item_model(data, scale_exponent=1.5)


def test_the_locations_take_the_rules_exponents_by_default(tmp_path, monkeypatch):
    """Under ``auto`` with few answers, ``w`` and ``w_mu`` are those of
    :func:`~impactmodel.bayes.partial_scaling.location_exponents` (given the answers per
    respondent and impact); given ones override them."""
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]), ["partners"])
    seen = []

    def rule(answers):  # type: ignore[no-untyped-def]
        seen.append(answers)
        return 0.35, 0.6

    monkeypatch.setattr(ordinal.partial_scaling, "location_exponents", rule)
    by_rule = ordinal_item_model(data).structure
    np.testing.assert_array_equal(seen[0], data.answers_per_respondent_and_impact())
    assert by_rule == ordinal_item_model(data, scale_exponent=0.35, mean_exponent=0.6).structure
    assert by_rule != ordinal_item_model(data, scale_exponent=0.35, mean_exponent=0.0).structure
    assert by_rule != ordinal_item_model(data, scale_exponent=0.3, mean_exponent=0.6).structure


def test_the_mean_exponent_moves_the_locations_by_its_share_of_their_mean(tmp_path):
    """At ``v = 0`` the locations are ``(I - (1 - w_mu) K) mu``: ``mu`` itself at ``w_mu
    = 1``, from which those at 0 and 0.4 follow (K = Sigma^(w/2) by scipy)."""
    settings = SimulationSettings(seed=3, respondents=400, items_per_respondent=4)
    paths = write_simulation(simulate(settings), tmp_path)
    data = build_item_data(load_survey(paths["respondents"], paths["codebook"]), ["partners"])
    exponent = scale_exponent(data.answers_per_respondent_and_impact())
    at_zero, structures = {}, set()
    for mean_exponent in (0.0, 0.4, 1.0):
        built = ordinal_item_model(data, mean_exponent=mean_exponent)
        assert built.stand_ins == (("person_relative_scaled", "person_relative"),)
        structures.add(built.structure)
        model = built.model
        point = {k: v + np.random.default_rng(2).normal(0, 0.3, np.shape(v))
                 for k, v in model.initial_point().items()}
        point["person_relative_scaled"] = np.zeros_like(point["person_relative_scaled"])
        located, chol = model.compile_fn(
            model.replace_rvs_by_values([model["person_relative"], model["trait_chol"]]),
            inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")(point)
        at_zero[mean_exponent] = located
    assert len(structures) == 3  # each w_mu is its own compiled structure
    power = linalg.fractional_matrix_power(chol @ chol.T, exponent / 2).real
    mu = at_zero[1.0]
    assert np.abs(mu).max() > 0.5  # the check is not trivial
    for mean_exponent in (0.0, 0.4):
        np.testing.assert_allclose(at_zero[mean_exponent],
                                   mu - (1 - mean_exponent) * mu @ power.T, atol=1e-9)
