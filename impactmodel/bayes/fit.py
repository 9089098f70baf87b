"""Fit the impact models to a survey and summarise their posteriors.

``fit_scale_scores(survey, ...) -> ScaleScoreFit`` (gaussian, scale scores) and
``fit_items(survey, ...) -> ItemFit`` (ordinal, item answers): construction never
samples; a fit holds the posterior (``xarray.DataTree`` with named coordinates), its
convergence report and tidy tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from impactmodel.bayes.department_slopes import draw_department_slopes
from impactmodel.bayes.diagnostics import Convergence, Thresholds
from impactmodel.bayes.gaussian import Parametrisation, scale_score_model
from impactmodel.bayes.item_data import ItemData, build_item_data
from impactmodel.bayes.model_data import (
    ModelDataError,
    OutcomeSelection,
    ScoreData,
    build_score_data,
)
from impactmodel.bayes.ordinal import ordinal_item_model
from impactmodel.bayes.predictive import (
    item_pointwise_log_likelihood,
    pointwise_log_likelihood,
    replicated_answers,
    replicated_scores,
    thinned,
)
from impactmodel.bayes.priors import OrdinalPriors, ScaleScorePriors
from impactmodel.bayes.pseudo_posterior import DesignAdjustment, adjust_fit
from impactmodel.bayes.sampling import Progress, SamplerSettings, sample_model
from impactmodel.bayes.spatial import Spatial, adjacency_graph
from impactmodel.specification import ModelSpec
from impactmodel.survey.design import SurveyDesign
from impactmodel.survey.impact import calibrated_design, design_from_survey
from impactmodel.survey_data import SurveyData
from impactmodel.territories import adjacency

INTERVAL = 0.9
#: replicated values held at once by the predictive check (rows x draws)
PREDICTIVE_CHUNK = 5_000_000


def _summary_table(values: xr.DataArray) -> pd.DataFrame:
    """Mean, sd, central 90% interval and P(> 0) of draws stacked as ``sample``."""
    dims = [d for d in values.dims if d != "sample"]
    lo, hi = (1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2
    table = xr.Dataset({
        "mean": values.mean("sample"), "sd": values.std("sample"),
        "low": values.quantile(lo, "sample").drop_vars("quantile"),
        "high": values.quantile(hi, "sample").drop_vars("quantile"),
        "prob_positive": (values > 0).mean("sample"),
    }).to_dataframe().reset_index()
    return table[[*dims, "mean", "sd", "low", "high", "prob_positive"]]


class _PosteriorTables:
    """Draws and tidy effect tables, shared by the fitted models."""

    idata: xr.DataTree

    def draws(self, name: str) -> xr.DataArray:
        """Posterior draws of ``name`` stacked over chains as ``sample``."""
        return self.idata["posterior"][name].stack(sample=("chain", "draw"))

    def effects(self, name: str = "effect_cell") -> pd.DataFrame:
        """Tidy posterior summary of an effect array (mean, sd, 90% interval, P(> 0))."""
        return _summary_table(self.draws(name))

    def population_cell_effects(self) -> pd.DataFrame:
        """Return the practice effect per population x impact x lens x dimension cell.

        ``effect_cell`` plus the population's own deviation (the model lets populations
        shift a practice's effect by the same amount in every cell).

        Returns
        -------
        pandas.DataFrame
            Columns ``practice, population, impact, lens, dimension, mean, sd, low, high,
            prob_positive``.
        """
        own = self.draws("effect_population") - self.draws("b")
        return _summary_table((self.draws("effect_cell") + own).transpose(
            "practice", "population", "impact", "lens", "dimension", "sample"))

    def population_impact_effects(self) -> pd.DataFrame:
        """Return the practice effect per population x impact.

        It is the mean over the impact's 18 lens x dimension cells of ``effect_cell``
        plus the population's own deviation.

        Returns
        -------
        pandas.DataFrame
            Columns ``practice, population, impact, mean, sd, low, high, prob_positive``.
        """
        cell = self.draws("effect_cell").mean(("lens", "dimension"))
        population = self.draws("effect_population") - self.draws("b")
        return _summary_table((cell + population).transpose(
            "practice", "population", "impact", "sample"))

    # --- predictive checks: each model supplies its observed values and simulators ---
    _outcome: str = "outcome"

    def _observed(self) -> NDArray[np.float64]:
        raise NotImplementedError

    def _row_population_impact(self) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
        raise NotImplementedError

    def _pointwise(self, posterior: xr.Dataset) -> xr.DataArray:
        raise NotImplementedError

    def _replicate(self, posterior: xr.Dataset, rng: np.random.Generator) -> xr.DataArray:
        raise NotImplementedError

    def log_likelihood(self, max_draws: int = 1000) -> xr.DataTree:
        """Posterior (thinned to ``max_draws``) with the per-respondent log-likelihood.

        The group ``log_likelihood`` holds one variable (chain, draw, respondent): see
        :mod:`impactmodel.bayes.predictive`.
        """
        posterior = thinned(self.idata["posterior"].to_dataset(), max_draws)
        return xr.DataTree.from_dict({"posterior": posterior,
                                      "log_likelihood": self._pointwise(posterior).to_dataset()})

    def loo(self, max_draws: int = 1000) -> object:
        """PSIS leave-one-respondent-out cross-validation (ArviZ ``loo``, pointwise)."""
        return az.loo(self.log_likelihood(max_draws), pointwise=True, var_name=self._outcome)

    def posterior_predictive(self, max_draws: int = 200, seed: int = 0) -> xr.DataTree:
        """Replicated outcomes (``posterior_predictive``) beside the ``observed_data``.

        Ready for ArviZ's predictive plots (``az.plot_ppc_dist``).
        """
        posterior = thinned(self.idata["posterior"].to_dataset(), max_draws)
        replicated = self._replicate(posterior, np.random.default_rng(seed))
        observed = xr.DataArray(self._observed(), dims="row", name=self._outcome)
        return xr.DataTree.from_dict({"posterior_predictive": replicated.to_dataset(),
                                      "observed_data": observed.to_dataset()})

    def predictive_check(self, max_draws: int = 200, seed: int = 0) -> pd.DataFrame:
        """Posterior predictive check of the mean and sd of the outcome per population x impact.

        Columns: observed statistic, replicated mean and 90% interval, and the posterior
        predictive p-value ``P(T(replicated) >= T(observed))`` (values near 0 or 1 flag a
        feature of the data the model does not reproduce).
        """
        posterior = thinned(self.idata["posterior"].to_dataset(), max_draws)
        rng = np.random.default_rng(seed)
        y = self._observed()
        population, impact = self._row_population_impact()
        coords = self.idata["posterior"].coords
        groups = {}
        for p_index, population_name in enumerate(coords["population"].values):
            for m, impact_name in enumerate(coords["impact"].values):
                sel = (population == p_index) & (impact == m)
                if sel.sum() >= 2:
                    groups[(str(population_name), str(impact_name))] = sel
        statistics = (("mean", np.mean), ("sd", np.std))
        simulated: dict[tuple[str, str, str], list[NDArray[np.float64]]] = {
            (*key, name): [] for key in groups for name, _ in statistics}
        # replicate a few draws at a time: memory stays bounded at any survey size
        step = max(1, PREDICTIVE_CHUNK // max(1, len(y) * posterior.sizes["chain"]))
        for start in range(0, posterior.sizes["draw"], step):
            part = posterior.isel(draw=slice(start, start + step))
            rep = self._replicate(part, rng).stack(sample=("chain", "draw")).values
            for key, sel in groups.items():
                for name, stat in statistics:
                    simulated[(*key, name)].append(stat(rep[sel], axis=0))
        rows = []
        for (population_name, impact_name), sel in groups.items():
            for name, stat in statistics:
                observed = float(stat(y[sel]))
                values = np.concatenate(simulated[(population_name, impact_name, name)])
                rows.append({"population": population_name, "impact": impact_name,
                             "statistic": name, "observed": observed,
                             "replicated": float(values.mean()),
                             "low": float(np.quantile(values, 0.05)),
                             "high": float(np.quantile(values, 0.95)),
                             "p_value": float((values >= observed).mean())})
        return pd.DataFrame(rows)

    def contrast(self, name: str, dim: str, first: str, second: str) -> pd.DataFrame:
        """Posterior of ``name[first] - name[second]`` along ``dim`` (e.g. two populations).

        Returns the tidy summary (mean, sd, 90% interval, P(> 0)) over the other dims.
        """
        values = self.draws(name)
        difference = values.sel({dim: first}) - values.sel({dim: second})
        return _summary_table(difference)


@dataclass(frozen=True)
class ScaleScoreFit(_PosteriorTables):
    """A fitted scale-score model.

    With survey weights (``data.weight``) it is a weighted pseudo-posterior whose global
    parameters were adjusted to design-consistent spread (``design_adjustment``;
    :mod:`impactmodel.bayes.pseudo_posterior`): ``idata["posterior"]`` holds the adjusted
    draws, ``idata["unadjusted_posterior"]`` the draws as sampled. Convergence is that of
    the sampled draws (the adjustment is one linear map applied to every draw).
    """

    idata: xr.DataTree
    convergence: Convergence
    data: ScoreData
    priors: ScaleScorePriors
    settings: SamplerSettings
    correlated_traits: bool = False
    design_adjustment: DesignAdjustment | None = None
    _outcome = "scores"

    def _observed(self) -> NDArray[np.float64]:
        return self.data.y

    def _row_population_impact(self) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
        d = self.data
        return d.population[d.respondent], d.cell_impact[d.cell]

    def _pointwise(self, posterior: xr.Dataset) -> xr.DataArray:
        return pointwise_log_likelihood(self.data, posterior)

    def _replicate(self, posterior: xr.Dataset, rng: np.random.Generator) -> xr.DataArray:
        return replicated_scores(self.data, posterior, rng)


    def expected_scores(self, level: Literal["department", "region"] = "department"
                        ) -> pd.DataFrame:
        """Posterior expected impact score per population x territory x impact.

        The mean over the cells of that impact asked of the population (cells with data
        for it) of the model's expected cell score for a respondent with the
        population-in-territory's mean practices (the overall mean where no respondent).
        At ``level="region"`` the territory is the region's typical department: its
        region deviations (departments' own deviations sum to zero within the region).

        Parameters
        ----------
        level : {"department", "region"}

        Returns
        -------
        pandas.DataFrame
            Columns ``population, <level>, impact, mean, sd, low, high`` (90% interval).
        """
        d = self.data
        if level not in ("department", "region"):
            raise ValueError(f"level must be 'department' or 'region', got {level!r}")
        territory_of = d.department if level == "department" else d.department_region[
            d.department]
        alpha = self.draws("alpha").values  # cell x population x sample
        u = self.draws(f"u_{level}").values  # impact x territory x sample
        effect = self.draws("effect_cell").values
        b_pop, b_ter = self.draws("b_population").values, self.draws(f"b_{level}").values
        resp = pd.DataFrame({"p": d.population, "t": territory_of})
        k = d.x.shape[1]
        x_mean = pd.DataFrame(d.regressors).groupby([resp["p"], resp["t"]]).mean()
        gamma = self.draws("gamma").values if "covariate" in d.coords else None
        cells_of_pop = {p: np.unique(d.cell[d.population[d.respondent] == p])
                        for p in np.unique(d.population)}
        rows = []
        for p, cells in cells_of_pop.items():
            for t, territory in enumerate(d.coords[level]):
                means = (x_mean.loc[(p, t)].to_numpy() if (p, t) in x_mean.index
                         else np.zeros(d.regressors.shape[1]))
                xbar, zbar = means[:k], means[k:]
                for m, impact in enumerate(d.coords["impact"]):
                    cs = cells[d.cell_impact[cells] == m]
                    if not len(cs):
                        continue
                    slopes = (effect[:, d.cell_impact[cs], d.cell_lens[cs],
                                     d.cell_dimension[cs]]
                              + b_pop[:, p][:, None] + b_ter[:, t][:, None])
                    score = (alpha[cs, p].mean(0) + u[m, t]
                             + np.einsum("k,kcs->s", xbar, slopes) / len(cs))
                    if gamma is not None:
                        score = score + np.einsum("q,qs->s", zbar, gamma[m])
                    rows.append({"population": d.coords["population"][p], level: territory,
                                 "impact": impact, "mean": score.mean(), "sd": score.std(),
                                 "low": np.quantile(score, 0.05),
                                 "high": np.quantile(score, 0.95)})
        return pd.DataFrame(rows)


def fit_scale_scores(survey: SurveyData, *, practices: Sequence[str] | None = None,
                     priors: Mapping[str, float] | None = None,
                     settings: SamplerSettings | None = None,
                     thresholds: Thresholds | None = None,
                     parametrisation: Parametrisation = "auto",
                     correlated_traits: bool = False,
                     progress: Progress | None = None,
                     selection: OutcomeSelection | None = None,
                     covariates: Sequence[str] = (),
                     design: SurveyDesign | None = None,
                     spatial: Spatial = "none") -> ScaleScoreFit:
    """Fit the gaussian scale-score model (:mod:`impactmodel.bayes.gaussian`).

    Parameters
    ----------
    survey : SurveyData
    practices : sequence of str, optional
        Practice columns (default: every non-categorical practice).
    priors : mapping, optional
        Overrides of :class:`ScaleScorePriors` by name.
    settings : SamplerSettings, optional
    thresholds : Thresholds, optional
    parametrisation : {"auto", "centred", "non-centred"}
        Of the territorial deviations (:func:`~impactmodel.bayes.gaussian.choose_parametrisation`).
    correlated_traits : bool
        Estimate the correlation of a respondent's traits across impacts (slower; see
        :func:`~impactmodel.bayes.gaussian.scale_score_model`).
    progress : callable, optional
        Sampling progress (:func:`~impactmodel.bayes.sampling.sample_model`).
    selection : OutcomeSelection, optional
        Impacts, lenses and dimensions to model (default: all).
    covariates : sequence of str
        Categorical covariates with a shift per impact (the post-stratification variables
        for MRP, :mod:`impactmodel.bayes.mrp`); default none.
    design : SurveyDesign, optional
        The survey's design (:func:`~impactmodel.survey.impact.design_from_survey`): given,
        the fit is a weighted pseudo-posterior adjusted to design-consistent spread
        (:mod:`impactmodel.bayes.pseudo_posterior`); the codebook must name a weight.
    spatial : {"none", "bym2"}
        "bym2": the departments' intercept deviations get a BYM2 effect over the
        department adjacency on top of the region nesting (:mod:`impactmodel.bayes.spatial`).

    Returns
    -------
    ScaleScoreFit
    """
    data = build_score_data(survey, practices, selection, covariates,
                            weighted=design is not None)
    return fit_score_data(data, priors=priors, settings=settings, thresholds=thresholds,
                          parametrisation=parametrisation, correlated_traits=correlated_traits,
                          progress=progress, design=design, spatial=spatial)


def fit_score_data(data: ScoreData, *, priors: Mapping[str, float] | None = None,
                   settings: SamplerSettings | None = None,
                   thresholds: Thresholds | None = None,
                   parametrisation: Parametrisation = "auto",
                   correlated_traits: bool = False,
                   progress: Progress | None = None,
                   design: SurveyDesign | None = None,
                   spatial: Spatial = "none") -> ScaleScoreFit:
    """Fit the scale-score model to prepared :class:`ScoreData`.

    Weighted data (``data.weight``) need the survey ``design`` (rows in the survey's
    order, ``data.survey_rows`` pointing into it): the pseudo-posterior is adjusted.
    """
    resolved = ScaleScorePriors().with_overrides(priors or {})
    sampler = settings or SamplerSettings()
    if (data.weight is None) != (design is None):
        raise ModelDataError("a weighted pseudo-posterior needs both weighted data and the "
                             "survey design; an unweighted fit takes neither")
    if design is not None:  # a lonely PSU among the model's rows fails now, not after sampling
        in_model = np.zeros((len(design.data), 1))
        in_model[data.survey_rows if data.survey_rows is not None else slice(None)] = 1.0
        design.covariance(in_model, diagonal=True)
    if spatial not in ("none", "bym2"):
        raise ValueError(f"spatial must be 'none' or 'bym2', got {spatial!r}")
    graph = (adjacency_graph(data.coords["department"], adjacency()) if spatial == "bym2"
             else None)
    model = scale_score_model(data, resolved, parametrisation, correlated_traits, graph)
    draws = sample_model(model, sampler, thresholds, progress=progress)
    idata, adjustment = draws.idata, None
    if design is not None:
        idata, adjustment = adjust_fit(idata, data, design)
    return ScaleScoreFit(idata, draws.convergence, data, resolved, draws.settings,
                         correlated_traits, adjustment)


@dataclass(frozen=True)
class ItemFit(_PosteriorTables):
    """A fitted ordinal item model (effects on the latent logit scale)."""

    idata: xr.DataTree
    convergence: Convergence
    data: ItemData
    priors: OrdinalPriors
    settings: SamplerSettings
    _outcome = "answers"

    def _observed(self) -> NDArray[np.float64]:
        return self.data.y.astype(float)

    def _row_population_impact(self) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
        d = self.data
        return d.population[d.respondent], d.item_impact[d.item]

    def _pointwise(self, posterior: xr.Dataset) -> xr.DataArray:
        return item_pointwise_log_likelihood(self.data, posterior)

    def _replicate(self, posterior: xr.Dataset, rng: np.random.Generator) -> xr.DataArray:
        return replicated_answers(self.data, posterior, rng)


def fit_items(survey: SurveyData, *, practices: Sequence[str] | None = None,
              covariates: Sequence[str] | None = None,
              priors: Mapping[str, float] | None = None,
              settings: SamplerSettings | None = None, thresholds: Thresholds | None = None,
              parametrisation: Parametrisation = "auto",
              progress: Progress | None = None,
              selection: OutcomeSelection | None = None) -> ItemFit:
    """Fit the ordinal item-level model (:mod:`impactmodel.bayes.ordinal`).

    Parameters
    ----------
    survey : SurveyData
    practices : sequence of str, optional
        Practice columns (default: every non-categorical practice).
    covariates : sequence of str, optional
        Categorical covariates (default: the codebook's post-stratification variables).
    priors : mapping, optional
        Overrides of :class:`~impactmodel.bayes.priors.OrdinalPriors` by name.
    settings : SamplerSettings, optional
    thresholds : Thresholds, optional
    parametrisation : {"auto", "centred", "non-centred"}
    progress : callable, optional
        Sampling progress (:func:`~impactmodel.bayes.sampling.sample_model`).
    selection : OutcomeSelection, optional
        Impacts, lenses and dimensions to model (default: all).

    Returns
    -------
    ItemFit
    """
    data = build_item_data(survey, practices, covariates, selection)
    resolved = OrdinalPriors().with_overrides(priors or {})
    sampler = settings or SamplerSettings()
    built = ordinal_item_model(data, resolved, parametrisation)
    draws = sample_model(built, sampler, thresholds, progress=progress)
    # the departments' own slope deviations, integrated out of the model, drawn back
    idata = draw_department_slopes(draws.idata, data, sampler.seed)
    return ItemFit(idata, draws.convergence, data, resolved, draws.settings)


def spec_covariates(spec: ModelSpec, survey: SurveyData) -> tuple[str, ...]:
    """Return the covariates of a scale-score specification.

    Its own, else for MRP the codebook's post-stratification variables, else none.
    """
    if spec.covariates is not None:
        return spec.covariates
    return tuple(survey.codebook.poststratification) if spec.weights == "mrp" else ()


def fit_spec(spec: ModelSpec, survey: SurveyData, progress: Progress | None = None,
             totals: pd.DataFrame | None = None) -> ScaleScoreFit | ItemFit:
    """Fit the model a specification describes (:mod:`impactmodel.specification`).

    Parameters
    ----------
    spec : ModelSpec
    survey : SurveyData
        The survey to fit (the specification's data, or data given on the command line).
    progress : callable, optional
        Sampling progress (:func:`~impactmodel.bayes.sampling.sample_model`).
    totals : pandas.DataFrame, optional
        Population totals (a post-stratification frame's cells) for a calibrated
        pseudo-posterior (``spec.calibration``):
        :func:`~impactmodel.survey.impact.calibrated_design`.

    Returns
    -------
    ScaleScoreFit or ItemFit
        By ``spec.outcome``; its priors, sampler settings and thresholds are the
        specification's.
    """
    priors = asdict(spec.priors)
    if spec.outcome == "items":
        return fit_items(survey, practices=spec.practices, covariates=spec.covariates,
                         priors=priors, settings=spec.sampler, thresholds=spec.thresholds,
                         parametrisation=spec.parametrisation, progress=progress,
                         selection=spec.selection)
    design: SurveyDesign | None = None
    notes: list[str] = []
    if spec.weights == "pseudo-posterior" and spec.calibration:
        if totals is None:
            raise ModelDataError("a calibrated pseudo-posterior needs the population totals "
                                 "its weights were raked to: a frame file ([weights] frame, "
                                 "frame.csv beside the respondents, or --frame)")
        design, notes = calibrated_design(survey, totals, spec.calibration,
                                          lonely_psu=spec.lonely_psu)
    elif spec.weights == "pseudo-posterior":
        design = design_from_survey(survey, lonely_psu=spec.lonely_psu)
    fit = fit_scale_scores(survey, practices=spec.practices, priors=priors,
                           settings=spec.sampler, thresholds=spec.thresholds,
                           parametrisation=spec.parametrisation,
                           correlated_traits=spec.correlated_traits, progress=progress,
                           selection=spec.selection, covariates=spec_covariates(spec, survey),
                           design=design, spatial=spec.spatial)
    if fit.design_adjustment is not None and spec.calibration:
        fit = replace(fit, design_adjustment=replace(
            fit.design_adjustment, calibration=spec.calibration,
            calibration_notes=tuple(notes)))
    return fit
