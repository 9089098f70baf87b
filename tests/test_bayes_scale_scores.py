"""The gaussian scale-score model: priors, agreement with MixedLM, partial pooling."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import nutpie
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import potential_at_draw
from scipy import stats

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings, sampling
from impactmodel.bayes.fit import fit_scale_scores, fit_score_data
from impactmodel.bayes.gaussian import scale_score_model
from impactmodel.bayes.model_data import ScoreData
from impactmodel.bayes.priors import PriorError, ScaleScorePriors
from impactmodel.scores import impact_scores
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.territories import region_of


def test_prior_overrides_are_checked():
    assert ScaleScorePriors().with_overrides({"effect_sd": 2}).effect_sd == 2.0
    with pytest.raises(PriorError, match="did you mean 'effect_sd'"):
        ScaleScorePriors().with_overrides({"efect_sd": 2})
    with pytest.raises(PriorError, match="positive number"):
        ScaleScorePriors().with_overrides({"residual_sd": -1})


def synthetic(seed: int = 3, n: int = 1200, trait_cov: np.ndarray | None = None,
              covariate: bool = False) -> tuple[ScoreData, pd.DataFrame]:
    """Gaussian scores from a model MixedLM can fit exactly: fixed population offsets and
    practice slope, cell intercepts, a random intercept per department; no respondent trait
    unless ``trait_cov`` (3 x 3, over the impacts) is given."""
    rng = np.random.default_rng(seed)
    n_dept, n_region = 25, 5
    pop = rng.integers(0, 4, n)
    dept = rng.integers(0, n_dept, n)
    x = rng.binomial(1, 0.4, n).astype(float)
    pop_effect = np.array([0.0, 6.0, -4.0, 2.0])
    dept_effect = rng.normal(0, 4, n_dept)
    cells = ["performance:ecosystem:political", "performance:organisation:economic",
             "innovation:ecosystem:social", "innovation:individual:societal",
             "trust:organisation:environmental", "trust:individual:fulfilment"]
    cell_effect = np.array([0.0, 3.0, -2.0, 1.0, 4.0, -3.0])
    respondent = np.repeat(np.arange(n), len(cells))
    cell = np.tile(np.arange(len(cells)), n)
    y = (50 + pop_effect[pop][respondent] + dept_effect[dept][respondent] + cell_effect[cell]
         + 3.0 * x[respondent] + rng.normal(0, 10, len(cell)))
    impact_of = {"performance": 0, "innovation": 1, "trust": 2}
    cell_of_impact = np.array([impact_of[c.split(":")[0]] for c in cells])
    if trait_cov is not None:
        trait = rng.multivariate_normal(np.zeros(3), trait_cov, n)
        y = y + trait[respondent, cell_of_impact[cell]]
    z = rng.binomial(1, 0.3, n).astype(float)
    if covariate:  # a dummy shifting the scores of each impact differently
        y = y + np.array([4.0, -2.0, 1.0])[cell_of_impact[cell]] * z[respondent]
    lens_of = {"ecosystem": 0, "organisation": 1, "individual": 2}
    dims = ["political", "economic", "social", "environmental", "societal", "fulfilment"]
    parts = [c.split(":") for c in cells]
    cell_impact = np.array([impact_of[p[0]] for p in parts])
    group_key = respondent * 3 + cell_impact[cell]
    codes, group = np.unique(group_key, return_inverse=True)
    data = ScoreData(
        y=y, respondent=respondent, cell=cell, group=group, group_impact=codes % 3,
        x=(x - x.mean())[:, None], x_means=np.array([x.mean()]), population=pop,
        department=dept, cell_impact=cell_impact,
        cell_lens=np.array([lens_of[p[1]] for p in parts]),
        cell_dimension=np.array([dims.index(p[2]) for p in parts]),
        department_region=np.arange(n_dept) % n_region,
        coords={"practice": ["partners"], "cell": cells, "impact": list(impact_of),
                "lens": list(lens_of), "dimension": dims,
                "population": ["citizen", "elected", "business", "association"],
                "region": [f"r{k}" for k in range(n_region)],
                "department": [f"d{k:02d}" for k in range(n_dept)],
                **({"covariate": ["size_class=large"]} if covariate else {})},
        z=(z - z.mean())[:, None] if covariate else None,
        z_means=np.array([z.mean()]) if covariate else None)
    frame = pd.DataFrame({"y": y, "x": x[respondent], "pop": pop[respondent],
                          "cell": cell, "dept": dept[respondent]})
    return data, frame


@pytest.mark.parametrize(("correlated", "covariate", "weighted"),
                         [(False, False, False), (True, True, False), (False, True, False),
                          (False, False, True), (True, False, True)])
def test_sufficient_statistics_likelihood_equals_the_multivariate_normal(correlated,
                                                                         covariate, weighted):
    """The model's likelihood, computed from per-cell and per-class statistics, equals the
    textbook density: per respondent, a normal with covariance sigma^2 I + Z T Z' (Z the
    cell -> impact indicator, T the trait covariance, diagonal for independent traits)
    around the row means (scipy); weighted, each respondent's log-density times its
    weight (the pseudo-likelihood)."""
    data, _ = synthetic(n=60, covariate=covariate)
    weight = np.random.default_rng(3).gamma(2.0, 0.5, len(data.x)) if weighted else None
    data = replace(data, weight=weight)
    # drop some scores so that respondents differ in the cells and impacts answered
    keep = np.random.default_rng(1).random(data.n_rows) > 0.25
    codes, group = np.unique(data.group[keep], return_inverse=True)
    data = replace(data, y=data.y[keep], respondent=data.respondent[keep],
                   cell=data.cell[keep], group=group, group_impact=data.group_impact[codes])
    model = scale_score_model(data, parametrisation="non-centred",
                              correlated_traits=correlated).model
    rng = np.random.default_rng(2)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["alpha", "u_department", "effect_cell", "b_population", "b_department",
             "sigma", "trait_sd", *(["trait_correlation"] if correlated else []),
             *(["gamma"] if covariate else [])]
    outputs = model.replace_rvs_by_values([model.potentials[0], *(model[n] for n in names)])
    values = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore",
                              point_fn=True)(point)
    potential, (alpha, u, effect, b_pop, b_dept, sigma, tau, *extra) = values[0], values[1:]
    corr = extra[:1] if correlated else []
    gamma = extra[-1] if covariate else np.zeros((3, 0))
    if correlated:
        assert abs(corr[0][0, 1]) > 0.01  # a point with correlated traits
    trait_cov = (corr[0] if correlated else np.eye(3)) * np.outer(tau, tau)
    expected = 0.0
    for i in np.unique(data.respondent):
        rows = np.nonzero(data.respondent == i)[0]
        p, d = data.population[i], data.department[i]
        mean = []
        for r in rows:
            c = data.cell[r]
            m = data.cell_impact[c]
            slope = (effect[:, m, data.cell_lens[c], data.cell_dimension[c]] + b_pop[:, p]
                     + b_dept[:, d])
            mean.append(alpha[c, p] + u[m, d] + data.x[i] @ slope
                        + data.covariates[i] @ gamma[m])
        impact = data.cell_impact[data.cell[rows]]
        cov = sigma**2 * np.eye(len(rows)) + trait_cov[np.ix_(impact, impact)]
        expected += (data.respondent_weight[i]
                     * stats.multivariate_normal(np.array(mean), cov).logpdf(data.y[rows]))
    assert potential == pytest.approx(expected, rel=1e-10)


@pytest.fixture(scope="module")
def mixed():
    data, frame = synthetic()
    fit = fit_score_data(data, settings=SamplerSettings(draws=1000, tune=1000, chains=4,
                                                        seed=5))
    # the same mean structure as the model: one intercept per cell x population
    mle = smf.mixedlm("y ~ 0 + C(cell):C(pop) + x", frame, groups=frame["dept"]).fit(reml=True)
    return fit, mle


def test_practice_and_population_effects_agree_with_mixedlm(mixed):
    fit, mle = mixed
    b = fit.draws("b").sel(practice="partners").values
    mcse = b.std() / np.sqrt(fit.convergence.min_ess_bulk)
    # the posterior mean and REML differ by far less than a standard error
    assert abs(b.mean() - mle.params["x"]) <= 4 * mcse + 0.15 * mle.bse["x"]
    alpha = fit.draws("alpha").values  # (cell, population, sample)
    names = list(mle.params.index)
    cov = mle.cov_params().loc[names, names].to_numpy()
    n_cells = alpha.shape[0]
    for k in (1, 2, 3):
        # population k against population 0, averaged over the cells
        contrast = (alpha[:, k] - alpha[:, 0]).mean(axis=0)
        weights = np.zeros(len(names))
        for c in range(n_cells):
            weights[names.index(f"C(cell)[{c}]:C(pop)[{k}]")] += 1 / n_cells
            weights[names.index(f"C(cell)[{c}]:C(pop)[0]")] -= 1 / n_cells
        mle_value, mle_se = weights @ mle.params.to_numpy(), np.sqrt(weights @ cov @ weights)
        mcse = contrast.std() / np.sqrt(fit.convergence.min_ess_bulk)
        assert abs(contrast.mean() - mle_value) <= 4 * mcse + 0.15 * mle_se, k
        assert contrast.std() == pytest.approx(mle_se, rel=0.15), k
    # and both recover the generating values within their uncertainty
    assert abs(b.mean() - 3.0) < 3 * b.std()


def test_fit_is_reported_with_named_coordinates(mixed):
    fit, _ = mixed
    effects = fit.effects("effect_cell")
    assert list(effects.columns[:4]) == ["practice", "impact", "lens", "dimension"]
    assert len(effects) == 1 * 3 * 3 * 6
    assert effects["prob_positive"].between(0, 1).all()
    assert fit.idata["posterior"]["u_department"].dims[-2:] == ("impact", "department")
    assert fit.convergence.max_rhat < 1.05


def test_partial_pooling_beats_raw_department_means(tmp_path):
    paths = write_simulation(simulate(SimulationSettings(seed=41, respondents=1600)), tmp_path)
    survey = load_survey(paths["respondents"], paths["codebook"])
    fit = fit_scale_scores(survey, practices=["partners", "mode_cooperation", "maturity"],
                           settings=SamplerSettings(draws=300, tune=400, chains=2, seed=2))
    model = fit.expected_scores()
    truth = pd.DataFrame(json.loads(paths["truth"].read_text())["finite_population"]
                         ["by_population_department"])
    scores = impact_scores(survey)
    raw = (scores.assign(population=survey.population.astype(str),
                         department=survey.department.astype(str))
           .melt(id_vars=["population", "department"], var_name="impact", value_name="score")
           .dropna().groupby(["population", "department", "impact"])["score"]
           .agg(["mean", "size"]).reset_index())
    joined = (raw.merge(model, on=["population", "department", "impact"],
                        suffixes=("_raw", "_model"))
              .merge(truth, on=["population", "department", "impact"]))
    assert len(joined) > 500
    rmse_raw = np.sqrt(np.mean((joined["mean_raw"] - joined["mean"]) ** 2))
    rmse_model = np.sqrt(np.mean((joined["mean_model"] - joined["mean"]) ** 2))
    assert rmse_model < 0.8 * rmse_raw, (rmse_model, rmse_raw)
    # regions: the model's typical department of the region against the true region means
    by_region = (scores.assign(population=survey.population.astype(str),
                               region=survey.department.astype(str).map(region_of()))
                 .melt(id_vars=["population", "region"], var_name="impact", value_name="score")
                 .dropna().groupby(["population", "region", "impact"])["score"].mean()
                 .rename("mean_raw").reset_index())
    truth_region = pd.DataFrame(json.loads(paths["truth"].read_text())["finite_population"]
                                ["by_population_region"])
    regions = (by_region.merge(fit.expected_scores("region").rename(columns={"mean": "model"}),
                               on=["population", "region", "impact"])
               .merge(truth_region, on=["population", "region", "impact"]))
    assert len(regions) > 150
    rmse_raw = np.sqrt(np.mean((regions["mean_raw"] - regions["mean"]) ** 2))
    rmse_model = np.sqrt(np.mean((regions["model"] - regions["mean"]) ** 2))
    assert rmse_model < rmse_raw, (rmse_model, rmse_raw)


def test_pointwise_log_likelihood_sums_to_the_model_likelihood(mixed):
    """Per-respondent log-likelihoods (computed row by row from the draws) add up, at every
    draw, to the model's own likelihood on sufficient statistics."""
    fit, _ = mixed
    tree = fit.log_likelihood(max_draws=8)
    loglik = tree["log_likelihood"]["scores"]
    assert loglik.sizes["respondent"] == len(fit.data.population)
    model = scale_score_model(fit.data, fit.priors,
                              correlated_traits=fit.correlated_traits).model
    posterior = tree["posterior"]
    for chain, draw in [(0, 0), (1, posterior.sizes["draw"] - 1)]:
        expected = potential_at_draw(model, posterior, chain, draw)
        assert float(loglik.isel(chain=chain, draw=draw).sum()) == pytest.approx(
            expected, rel=1e-9)


def test_loo_is_available_and_reliable(mixed):
    fit, _ = mixed
    result = fit.loo(max_draws=1000)
    assert np.isfinite(result.elpd)
    assert result.n_data_points == len(fit.data.population)
    # a well-specified model on 1,200 respondents: Pareto k below 0.7 almost everywhere
    assert (np.asarray(result.pareto_k) < 0.7).mean() > 0.98


@pytest.mark.parametrize("chunk", [None, 20_000])
def test_predictive_check_passes_on_the_right_model_and_fails_on_wrong_data(mixed, chunk,
                                                                            monkeypatch):
    """Also with replicates made a few draws at a time (``chunk``: values held at once),
    as at national size, where all draws at once would not fit in memory."""
    from impactmodel.bayes import fit as fit_module

    if chunk is not None:
        monkeypatch.setattr(fit_module, "PREDICTIVE_CHUNK", chunk)
    fit, _ = mixed
    table = fit.predictive_check(max_draws=200, seed=1)
    assert set(table["statistic"]) == {"mean", "sd"}
    assert len(table) == 2 * 4 * 3
    # data from the model: no extreme p-value across the 2 x 4 x 3 checks
    assert table["p_value"].between(0.005, 0.995).all(), table
    # the same posterior confronted with scores twice as dispersed for one population
    d = fit.data
    wide = d.population[d.respondent] == 1
    y = d.y.copy()
    y[wide] = y[wide].mean() + 2 * (y[wide] - y[wide].mean())
    wrong = replace(fit, data=replace(d, y=y)).predictive_check(max_draws=200, seed=1)
    flagged = wrong[(wrong["population"] == "elected") & (wrong["statistic"] == "sd")]
    assert (flagged["p_value"] == 0.0).all(), flagged


def test_a_second_fit_reuses_the_compiled_model_with_the_new_data(mixed):
    """Same structure, new data: the compiled model is reused (no compilation) and samples
    what a model compiled afresh on the new data samples; not the old data's.

    "The same" to 1e-6, not to the last bit: when the reused model was loaded from the
    disk cache (compiled by another process), its draws differ from nutpie's own compile
    in the 8th digit after 60 iterations (3.5e-8 relative, seen on a fresh clone), the
    rounding of differently optimised code amplified along the trajectories; draws from
    the old data differ in the first digit."""
    fit, _ = mixed
    other, _ = synthetic(seed=4)
    built = scale_score_model(other, fit.priors)
    assert built.structure in sampling._COMPILED  # the mixed fit compiled this structure
    old_data = sampling._COMPILED[built.structure]
    start = time.perf_counter()
    reused = sampling._compiled(built)
    assert time.perf_counter() - start < 1.0
    fresh = nutpie.compile_pymc_model(built.model, freeze_model=False)
    options = {"draws": 30, "tune": 30, "chains": 1, "seed": 3, "progress_bar": False}
    draws = {name: nutpie.sample(compiled, **options)["posterior"]["b"].values
             for name, compiled in [("reused", reused), ("fresh", fresh), ("old", old_data)]}
    np.testing.assert_allclose(draws["reused"], draws["fresh"], rtol=1e-6)
    assert not np.allclose(draws["reused"], draws["old"], rtol=1e-3)


def test_correlated_traits_are_recovered_and_their_log_likelihood_adds_up():
    """Scores with traits correlated 0.6 across impacts: the model with correlated traits
    puts the truth inside its 95% interval of the mean correlation (each pair alone rests
    on two cells per impact, too noisy for a one-survey check), and the per-respondent
    log-likelihoods (full 3 x 3 trait covariance, row by row) add up to its likelihood."""
    sd = np.array([8.0, 6.0, 7.0])
    corr = np.full((3, 3), 0.6) + 0.4 * np.eye(3)
    data, _ = synthetic(seed=8, n=600, trait_cov=corr * np.outer(sd, sd))
    fit = fit_score_data(data, correlated_traits=True,
                         settings=SamplerSettings(draws=300, tune=300, chains=2, seed=4))
    draws = fit.draws("trait_correlation").values  # impact x impact_bis x sample
    mean_correlation = (draws[0, 1] + draws[0, 2] + draws[1, 2]) / 3
    low, high = np.quantile(mean_correlation, [0.025, 0.975])
    assert low < 0.6 < high, (low, high)
    assert low > 0.3  # clearly away from independence
    tree = fit.log_likelihood(max_draws=6)
    model = scale_score_model(fit.data, fit.priors, correlated_traits=True).model
    expected = potential_at_draw(model, tree["posterior"], 1, 2)
    assert float(tree["log_likelihood"]["scores"].isel(chain=1, draw=2).sum()) == (
        pytest.approx(expected, rel=1e-9))
