"""The ordinal item-level model recovers the simulator's practice effects.

Short version for CI (one simulated survey, small chains); ``benchmarks/`` holds the long
repeated-simulation coverage study. The target of ``effect_cell`` is the simulator's
``beta_cell`` plus the means of its population, region and department-within-region
deviations (the model's parts sum to zero, so those means are carried by the cell effects).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import potential_at_draw
from scipy.special import expit
from scipy.stats import multivariate_normal

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings
from impactmodel.bayes.fit import fit_items
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.ordinal import ordinal_item_model
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.simulate.outcomes import effect_cell_in_sum_to_zero_coding

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]


def test_likelihood_matches_the_cumulative_logit_formula(tmp_path):
    """The model's likelihood equals sum log(expit(kappa_{y+1} - eta) - expit(kappa_y - eta))
    with eta = delta[j, p] + u[m, d] + z_i gamma[m] + theta_im + x_i beta(c, p, d), and
    the traits theta_i have the multivariate normal prior N(0, diag(sd) R diag(sd)); eta,
    the traits and the practice slopes beta are assembled here from the reported
    parameters as the module docstring writes the model, the traits from the sampled
    locations (relative to each impact's mean cut-point) minus the predictor."""
    paths = write_simulation(simulate(SimulationSettings(seed=7, respondents=600)), tmp_path)
    survey = load_survey(paths["respondents"], paths["codebook"])
    data = build_item_data(survey, ["partners", "maturity"], ["age_group"])
    model = ordinal_item_model(data).model
    rng = np.random.default_rng(4)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["kappa", "delta", "u_department", "gamma", "trait_sd", "trait_correlation",
             "person_relative", "effect_cell", "b_population", "b_department"]
    outputs = model.replace_rvs_by_values([model.potentials[0], *(model[n] for n in names)])
    location_prior = model.logp(vars=[model["person_relative"]])
    values = model.compile_fn([*outputs, location_prior], inputs=model.value_vars,
                              on_unused_input="ignore", point_fn=True)(point)
    potential, prior = values[0], values[-1]
    parameters = dict(zip(names, values[1:-1], strict=True))
    kappa, delta, u = parameters["kappa"], parameters["delta"], parameters["u_department"]
    i, j = data.respondent, data.item
    p, dept = data.population[i], data.department[i]
    m = data.item_impact[j]
    # each impact's mean cut-point, over its items' cuts
    cut_level = np.array([kappa[data.item_impact == impact].mean()
                          for impact in range(len(data.coords["impact"]))])
    location = parameters["person_relative"] + cut_level
    # the respondent-level predictor: intercepts, covariates and the slopes' parts that
    # do not depend on the item
    effect = parameters["effect_cell"]
    b_pop, b_dept = parameters["b_population"], parameters["b_department"]
    r_dept = data.department
    predictor = np.empty_like(location)
    for impact in range(location.shape[1]):
        overall_impact = effect[:, impact].mean(axis=(1, 2))  # b + b_impact (zero-sum parts)
        slope = (overall_impact[:, None] + b_pop[:, data.population] + b_dept[:, r_dept])
        predictor[:, impact] = (data.z @ parameters["gamma"][impact] + u[impact, r_dept]
                                + np.sum(data.x * slope.T, axis=1))
    trait = location - predictor
    cell_slope = effect[:, m, data.item_lens[j], data.item_dimension[j]]  # practice x answer
    beta = cell_slope + b_pop[:, p] + b_dept[:, dept]
    eta = (delta[j, p] + u[m, dept] + np.sum(data.z[i] * parameters["gamma"][m], axis=1)
           + trait[i, m] + np.sum(data.x[i] * beta.T, axis=1))
    cuts = np.column_stack([np.full(len(kappa), -np.inf), kappa, np.full(len(kappa), np.inf)])
    prob = expit(cuts[j, data.y + 1] - eta) - expit(cuts[j, data.y] - eta)
    assert np.isnan(delta).sum() > 0  # items not asked of a population have no shift
    assert np.ptp(cut_level) > 0.1 and np.abs(cut_level).max() > 0.1  # a point that tells
    assert potential == pytest.approx(np.log(prob).sum(), rel=1e-9)
    sd, correlation = parameters["trait_sd"], parameters["trait_correlation"]
    assert abs(correlation[0, 1]) > 0.01  # a correlated point
    covariance = correlation * np.outer(sd, sd)
    expected = multivariate_normal(np.zeros(len(sd)), covariance).logpdf(trait).sum()
    assert prior == pytest.approx(expected, rel=1e-9)


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
