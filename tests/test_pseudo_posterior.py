"""Weighted pseudo-posterior and its design-consistent adjustment (Williams & Savitsky).

- On weighted linear models, where the pseudo-posterior is exactly normal, the adjusted
  covariance must equal R ``survey``'s ``svyglm`` sandwich (figures computed by R).
- The scale-score model's per-respondent gradients must equal finite differences of the
  per-respondent log-likelihood (an independent computation, row by row).
- On repeated samples from the simulator's finite population, adjusted 90% intervals
  must cover the census value at close to 90%, unadjusted ones less.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import RUN_SPEC

from impactmodel.bayes.model_data import ModelDataError, normalised_weights
from impactmodel.bayes.predictive import pointwise_log_likelihood
from impactmodel.bayes.pseudo_posterior import (
    GlobalLayout,
    respondent_gradients,
    sandwich_adjustment,
    with_derived_effects,
)
from impactmodel.survey import SurveyDesign

HERE = Path(__file__).resolve().parent
API = HERE / "reference" / "api"
R_FIGURES = {**json.loads((API / "expected.json").read_text()),
             **json.loads((HERE / "reference" / "r_survey_figures.json").read_text())}


def exact_normal_draws(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Draws whose sample mean and covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened
    return mean + z @ np.linalg.cholesky(cov).T


def weighted_linear_pseudo_posterior(x: np.ndarray, y: np.ndarray, weight: np.ndarray,
                                     seed: int = 0, n_draws: int = 4000
                                     ) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the pseudo-posterior of a gaussian linear model (flat prior, sigma at its
    estimate) with normalised weights: exactly N(b_w, s2 (X'WX)^-1), and each unit's
    weighted score w_i x_i e_i / s2."""
    w = normalised_weights(weight)
    xtw = x.T * w
    inverse = np.linalg.inv(xtw @ x)
    estimate = inverse @ xtw @ y
    residual = y - x @ estimate
    s2 = float((w * residual**2).sum() / (len(y) - x.shape[1]))
    draws = exact_normal_draws(estimate, s2 * inverse, n_draws, seed)
    return draws, w[:, None] * x * residual[:, None] / s2


@pytest.mark.parametrize(("figure", "table", "design"), [
    ("strat_glm_gaussian", "apistrat", {"strata": "stype", "weights": "pw", "fpc": "fpc"}),
    ("clus1_glm_factor", "apiclus1", {"ids": "dnum", "weights": "pw", "fpc": "fpc"}),
])
def test_adjusted_covariance_is_r_svyglm_sandwich_on_a_weighted_linear_model(figure, table,
                                                                             design):
    """Both are exact here: the adjusted draws' sds are svyglm's standard errors to 1e-6
    and their mean its coefficients (the adjustment keeps the pseudo-posterior mean)."""
    data = pd.read_csv(API / f"{table}.csv")
    if figure == "strat_glm_gaussian":
        x = np.column_stack([np.ones(len(data)), data[["ell", "meals", "mobility"]]])
    else:
        x = np.column_stack([np.ones(len(data)), data["stype"] == "H", data["stype"] == "M",
                             data["meals"]]).astype(float)
    y = data["api00"].to_numpy(float)
    draws, scores = weighted_linear_pseudo_posterior(x, y, data["pw"].to_numpy(float))
    adjustment = sandwich_adjustment(draws, scores, SurveyDesign(data, **design).covariance)
    adjusted = adjustment.apply(draws)
    expected = R_FIGURES[figure]["result"] if "result" in R_FIGURES[figure] else R_FIGURES[
        figure]
    np.testing.assert_allclose(adjusted.std(axis=0, ddof=1), expected["se"], rtol=1e-6)
    np.testing.assert_allclose(adjusted.mean(axis=0), expected["estimate"], rtol=1e-6)
    np.testing.assert_allclose(np.cov(adjusted, rowvar=False), adjustment.target_covariance,
                               rtol=1e-8, atol=1e-12)
    # the unadjusted pseudo-posterior is too narrow under clustering
    if figure == "clus1_glm_factor":
        assert (draws.std(axis=0) < 0.8 * np.asarray(expected["se"])).all()


def test_adjustment_keeps_sum_to_zero_parts_on_their_subspace():
    """A covariance singular by construction (parts summing to zero) is handled: the
    adjusted draws still sum to zero and have the target covariance."""
    rng = np.random.default_rng(4)
    basis = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]).T
    basis /= np.linalg.norm(basis, axis=0)
    draws = rng.standard_normal((3000, 2)) @ np.diag([1.0, 0.5]) @ basis.T
    scores = rng.standard_normal((200, 2)) @ basis.T * 0.05
    adjustment = sandwich_adjustment(
        draws, scores, lambda s: np.cov(s, rowvar=False) * len(s))
    adjusted = adjustment.apply(draws)
    np.testing.assert_allclose(adjusted.sum(axis=1), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(adjusted, rowvar=False), adjustment.target_covariance,
                               atol=1e-10)
    assert adjustment.rank == adjustment.posterior_rank == 2


def test_normalised_weights_sum_to_n_and_refuse_bad_weights():
    np.testing.assert_allclose(normalised_weights(np.array([1.0, 3.0])), [0.5, 1.5])
    np.testing.assert_allclose(normalised_weights(np.array([1.0, 3.0, 10.0, 30.0, 60.0]),
                                                  np.array([0, 0, 1, 1, 1])),
                               [0.5, 1.5, 0.3, 0.9, 1.8])
    with pytest.raises(ModelDataError, match=r"positive survey weights.*\[0.0, nan\]"):
        normalised_weights(np.array([1.0, 0.0, np.nan]))


def _random_point(data, seed: int) -> xr.Dataset:
    """One value of every scale-score model variable (correlated traits, covariates)."""
    rng = np.random.default_rng(seed)
    c = data.coords
    n_x, n_q = len(c["practice"]), len(c["covariate"])

    def var(dims: tuple[str, ...], scale: float) -> xr.DataArray:
        shape = [len(c[d]) if d != "impact_bis" else len(c["impact"]) for d in dims]
        return xr.DataArray(rng.normal(0, scale, shape), dims=dims)

    chol = np.linalg.cholesky(np.array([[16.0, 6.0, 2.0], [6.0, 9.0, 1.0], [2.0, 1.0, 4.0]]))
    point = xr.Dataset({
        "alpha": var(("cell", "population"), 5.0) + 50.0,
        "u_department": var(("impact", "department"), 2.0),
        "b": var(("practice",), 2.0), "b_impact": var(("practice", "impact"), 1.0),
        "b_lens": var(("practice", "lens"), 1.0),
        "b_dimension": var(("practice", "dimension"), 1.0),
        "b_population": var(("practice", "population"), 1.0),
        "b_region": var(("practice", "region"), 1.0),
        "b_department": var(("practice", "department"), 1.0),
        "gamma": var(("impact", "covariate"), 2.0),
        "sigma": xr.DataArray(9.0),
        "trait_chol": xr.DataArray(chol, dims=("impact", "impact_bis")),
    })
    assert n_x and n_q
    # derived effects need a template with their dims
    template = point.assign(
        effect_cell=xr.zeros_like(point["b"] + point["b_impact"] + point["b_lens"]
                                  + point["b_dimension"]),
        effect_population=xr.zeros_like(point["b_population"]),
        effect_region=xr.zeros_like(point["b_region"]),
        effect_department=xr.zeros_like(point["b_department"]))
    return with_derived_effects(template)


def test_respondent_gradients_equal_finite_differences_of_the_log_likelihood():
    """Each column of the gradient matrix equals the central difference of every
    respondent's log-density (the scipy-checked pointwise log-likelihood) when that one
    global parameter moves; the log-density is quadratic in them, so the difference is
    exact up to rounding."""
    from test_bayes_scale_scores import synthetic

    data, _ = synthetic(n=40, covariate=True)
    keep = np.random.default_rng(1).random(data.n_rows) > 0.25
    codes, group = np.unique(data.group[keep], return_inverse=True)
    data = replace(data, y=data.y[keep], respondent=data.respondent[keep],
                   cell=data.cell[keep], group=group, group_impact=data.group_impact[codes])
    point = _random_point(data, seed=5)
    layout = GlobalLayout.of(point.expand_dims(("chain", "draw")))
    gradients = respondent_gradients(data, point, layout)
    flat = layout.flatten(point.expand_dims(("chain", "draw")))
    step = 1e-3

    def loglik(values: np.ndarray) -> np.ndarray:
        moved = point.expand_dims(("chain", "draw")).assign(
            layout.unflatten(values[None, :], point.expand_dims(("chain", "draw"))))
        return pointwise_log_likelihood(data, with_derived_effects(moved)).values[0, 0]

    assert gradients.shape == (len(data.x), flat.shape[1])
    for k in range(flat.shape[1]):
        up, down = flat[0].copy(), flat[0].copy()
        up[k] += step
        down[k] -= step
        expected = (loglik(up) - loglik(down)) / (2 * step)
        np.testing.assert_allclose(gradients[:, k], expected, rtol=1e-5, atol=1e-8,
                                   err_msg=layout.labels()[k])


def test_adjusted_intervals_cover_the_census_value_on_repeated_simulated_surveys():
    """Reduced coverage study (the full one, with the scale-score model, is
    ``benchmarks/pseudo_posterior_coverage.py``): 40 surveys drawn with the simulator's
    stratified, clustered designs and raked weights from one finite population; the
    weighted linear regression of the trust score on practices and populations. The census
    regression is the truth. Adjusted 90% intervals of the 8 slopes cover it at close to
    90% (measured 0.866 here, 0.877 on 60 surveys); unadjusted ones less (0.816)."""
    from impactmodel.scores import group_means, pomp
    from impactmodel.simulate import SimulationSettings, draw_respondents, finite_population
    from impactmodel.vocabulary import IMPACTS

    settings = SimulationSettings(seed=3, respondents=1000)
    census = finite_population(settings)
    items = census.codebook.items
    trust = group_means(
        pomp(census.answers, np.array([i.scale.low for i in items], dtype=float),
             np.array([i.scale.high for i in items], dtype=float),
             np.array([i.reverse for i in items])),
        np.array([IMPACTS.index(i.impact) for i in items]), len(IMPACTS))[:, 2]
    units = census.units.units
    x_all = np.column_stack(
        [np.ones(len(units)), units[["partners", "with_association", "with_company",
                                     "maturity", "n_partnerships"]].to_numpy(float),
         *[(units["population"] == p).to_numpy(float) for p in (1, 2, 3)]])
    truth = np.linalg.lstsq(x_all, trust, rcond=None)[0]
    covered: dict[str, list[np.ndarray]] = {"unadjusted": [], "adjusted": []}
    for rep in range(40):
        sample, _ = draw_respondents(census, settings, np.random.default_rng(1000 + rep))
        unit = sample["unit"].to_numpy()
        draws, scores = weighted_linear_pseudo_posterior(
            x_all[unit], trust[unit], sample["weight"].to_numpy(float), seed=rep,
            n_draws=2000)
        design = SurveyDesign(sample, ids="psu", strata="stratum", weights="weight",
                              fpc="fpc", lonely_psu="adjust")
        adjusted = sandwich_adjustment(draws, scores, design.covariance).apply(draws)
        for name, values in (("unadjusted", draws), ("adjusted", adjusted)):
            low, high = np.quantile(values[:, 1:], [0.05, 0.95], axis=0)
            covered[name].append((low <= truth[1:]) & (truth[1:] <= high))
    rate = {k: float(np.mean(v)) for k, v in covered.items()}
    assert 0.82 <= rate["adjusted"] <= 0.96, rate
    assert rate["unadjusted"] <= rate["adjusted"] - 0.03, rate


WEIGHTED_SPEC = RUN_SPEC.format(seed=1).replace('name = "small"', 'name = "weighted"') + """
[weights]
treatment = "pseudo-posterior"
"""


def test_pseudo_posterior_from_a_specification_is_adjusted_recorded_and_reported(
        project, tmp_path):
    """A weighted fit through ``fit_spec``: the adjusted global parameters keep the
    pseudo-posterior's mean and get the sandwich's spread; derived effects are rebuilt
    from the adjusted parts; the run keeps both posteriors, the variance ratios, the
    manifest entry and a report section."""
    from impactmodel.bayes.fit import fit_spec
    from impactmodel.runs import load_run, write_run
    from impactmodel.specification import load_spec
    from impactmodel.survey.impact import impact_score_table

    folder, paths, survey, _, unweighted = project
    (folder / "weighted.toml").write_text(WEIGHTED_SPEC + 'lonely_psu = "adjust"\n',
                                          encoding="utf-8")
    spec = load_spec(folder / "weighted.toml")
    fit = fit_spec(spec, survey)
    assert fit.design_adjustment is not None and fit.data.weight is not None
    post, raw = fit.idata["posterior"], fit.idata["unadjusted_posterior"]
    for name in ("b", "b_impact", "b_population", "alpha"):
        np.testing.assert_allclose(post[name].mean(("chain", "draw")),
                                   raw[name].mean(("chain", "draw")), atol=1e-8)
    assert not np.allclose(post["b"].std(("chain", "draw")), raw["b"].std(("chain", "draw")))
    np.testing.assert_allclose(
        post["effect_cell"],
        (post["b"] + post["b_impact"] + post["b_lens"] + post["b_dimension"]).transpose(
            *post["effect_cell"].dims), atol=1e-10)
    np.testing.assert_allclose(post["u_department"], raw["u_department"])  # local: as drawn
    # the weights change the fit: the pseudo-posterior mean differs from the unweighted one
    assert not np.allclose(raw["b"].mean(("chain", "draw")),
                           unweighted.idata["posterior"]["b"].mean(("chain", "draw")),
                           atol=1e-3)
    table = fit.design_adjustment.table()
    b_rows = table[table["parameter"].str.startswith("b[")]
    np.testing.assert_allclose(b_rows["adjusted_sd"],
                               post["b"].std(("chain", "draw"), ddof=1).values, rtol=1e-6)

    direct = impact_score_table(survey, ["population", "department"], lonely_psu="adjust",
                                level=0.9)
    run = write_run(fit, spec, respondents=paths["respondents"], codebook=paths["codebook"],
                    root=tmp_path, timings={"fit": 1.0}, direct=direct)
    loaded = load_run(run)
    # direct and model side by side: the design engine's estimates beside the model's
    side = loaded.tables["direct_vs_model_department"]
    shown = side[side["status"] == "published"].merge(
        direct.rename(columns={"cell": "impact"}), on=["population", "department", "impact"])
    assert len(shown) > 10
    np.testing.assert_allclose(shown["direct"], shown["estimate"], rtol=1e-12)
    np.testing.assert_allclose(shown["direct_se"], shown["se"], rtol=1e-12)
    expected = fit.expected_scores("department").merge(
        shown[["population", "department", "impact", "model"]],
        on=["population", "department", "impact"])
    np.testing.assert_allclose(expected["model"], expected["mean"], rtol=1e-12)
    summary = loaded.manifest["pseudo_posterior"]
    assert summary["parameters"] == len(table) and summary["lonely_psu"] == "adjust"
    assert summary["design_degrees_of_freedom"] == fit.design_adjustment.design_df > 0
    assert loaded.manifest["spec"]["resolved"]["weights"]["treatment"] == "pseudo-posterior"
    assert "unadjusted_posterior" in loaded.posterior.groups or \
        "/unadjusted_posterior" in loaded.posterior.groups
    assert len(loaded.tables["pseudo_posterior_adjustment"]) == len(table)
    page = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert "Survey weights: design-consistent adjustment" in page
    assert "weighted pseudo-posterior" in page
    assert "and model-based scores side by side" in page and "direct_vs_model.png" in page


def test_pseudo_posterior_checks_the_design_before_sampling(project, monkeypatch):
    """Strata left with one PSU under the default rule fail at once, naming them; a
    codebook without a weight column is refused."""
    from impactmodel.bayes import fit as fit_module
    from impactmodel.bayes.fit import fit_spec
    from impactmodel.specification import load_spec
    from impactmodel.survey.variance import LonelyPSUError

    folder, _, survey, _, _ = project
    (folder / "weighted-fail.toml").write_text(WEIGHTED_SPEC, encoding="utf-8")
    spec = load_spec(folder / "weighted-fail.toml")
    assert spec.lonely_psu == "fail"

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before checking the design")

    monkeypatch.setattr(fit_module, "sample_model", no_sampling)
    # nonresponse left some strata of the simulated survey with one responding PSU
    with pytest.raises(LonelyPSUError, match=r"strata \('bus-r\d+'.*only one PSU"):
        fit_spec(spec, survey)
    unweighted_book = replace(survey.codebook,
                              design=replace(survey.codebook.design, weight=None))
    with pytest.raises(ModelDataError, match="names no weight column"):
        fit_spec(spec, replace(survey, codebook=unweighted_book))


def test_pseudo_posterior_specification_errors():
    from impactmodel.errors import ValidationError
    from impactmodel.specification import parse_spec

    with pytest.raises(ValidationError) as error:
        parse_spec({"model": {"name": "x"}, "outcome": {"kind": "items"},
                    "weights": {"treatment": "pseudo-posterior", "lonely_psu": "adjst"}})
    text = str(error.value)
    assert "pseudo-posterior is available for the scale-score model" in text
    assert "weights.lonely_psu" in text and "did you mean 'adjust'" in text
    with pytest.raises(ValidationError, match="applies to the pseudo-posterior only"):
        parse_spec({"model": {"name": "x"}, "weights": {"lonely_psu": "adjust"}})
    with pytest.raises(ValidationError) as error:
        parse_spec({"model": {"name": "x"}, "weights": {"treatment": "mrp",
                                                          "calibration": ["region"]}})
    assert "weights.calibration" in str(error.value)
    with pytest.raises(ValidationError, match="calibrated pseudo-posterior only"):
        parse_spec({"model": {"name": "x"},
                    "weights": {"treatment": "pseudo-posterior", "frame": "frame.csv"}})


def test_calibrated_design_keeps_raked_weights_and_shrinks_the_variance(project):
    """The simulated weights were raked within each population to region, age group and
    size class (the frame's totals): raking the design to the same totals leaves them as
    they are (to 1e-9) and records the calibration, so the variance of a weighted mean
    is that of its residuals on the calibration variables: smaller. A total that no
    respondent could carry is merged into the population's most frequent level."""
    from impactmodel.bayes.mrp import read_frame
    from impactmodel.scores import impact_scores
    from impactmodel.survey.impact import calibrated_design, design_from_survey

    _, paths, survey, _, _ = project
    totals = read_frame(paths["frame"], survey.codebook).cells
    variables = ["region", "age_group", "size_class"]
    calibrated, _ = calibrated_design(survey, totals, variables, lonely_psu="adjust")
    plain = design_from_survey(survey, lonely_psu="adjust")
    np.testing.assert_allclose(calibrated.weights, plain.weights, rtol=1e-9)
    trust = impact_scores(survey)["trust"].to_numpy()
    seen = ~np.isnan(trust)
    w = plain.weights
    scores = np.zeros((len(trust), 1))
    scores[seen, 0] = (w[seen] * (trust[seen] - np.average(trust[seen], weights=w[seen]))
                       / w[seen].sum())
    assert calibrated.covariance(scores)[0, 0] < 0.99 * plain.covariance(scores)[0, 0]
    # a level nobody in the sample has: its total goes to the most frequent level
    elected = survey.population.astype(str) == "elected"
    kept = survey.frame[~(elected & (survey.frame["age_group"] == "60+")).to_numpy()]
    _, merged = calibrated_design(replace(survey, frame=kept.reset_index(drop=True)),
                                  totals, ["age_group"], lonely_psu="adjust")
    assert any(n.startswith("age_group: 60+ of elected (no respondent) merged into")
               for n in merged), merged


def test_calibrated_pseudo_posterior_from_a_specification(project):
    """``[weights] calibration`` rakes the design before J: the adjustment records it,
    and without the frame's totals the fit is refused before sampling."""
    from impactmodel.bayes.fit import fit_spec
    from impactmodel.bayes.mrp import read_frame
    from impactmodel.specification import load_spec

    folder, paths, survey, _, _ = project
    (folder / "calibrated.toml").write_text(
        WEIGHTED_SPEC + 'lonely_psu = "adjust"\ncalibration = ["region", "age_group", '
        '"size_class"]\nframe = "frame.csv"\n', encoding="utf-8")
    spec = load_spec(folder / "calibrated.toml")
    assert spec.calibration == ("region", "age_group", "size_class")
    assert spec.resolved()["weights"]["frame"] == "frame.csv"
    with pytest.raises(ModelDataError, match="needs the population totals"):
        fit_spec(spec, survey)
    totals = read_frame(paths["frame"], survey.codebook, ["age_group", "size_class"]).cells
    fit = fit_spec(spec, survey, totals=totals)
    assert fit.design_adjustment is not None
    summary = fit.design_adjustment.summary()
    assert summary["calibration"] == ["region", "age_group", "size_class"]
    assert summary["rank"] == summary["free_dimensions"]
