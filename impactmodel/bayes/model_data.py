"""Arrays for the Bayesian impact models, built once from a validated survey.

Rows are respondent x cell scale scores (POMP 0-100, :mod:`impactmodel.scores`) where the
respondent answered at least one item of the cell; cells not asked of a population are
missing by design and simply have no rows (nothing is imputed). Practices enter centred
at their sample means: binary as 0/1, ordinal as level / (levels - 1), counts as
``log1p``; categorical practices are not used by these models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impactmodel.errors import ImpactModelError
from impactmodel.scores import impact_scores
from impactmodel.survey_data import SurveyData
from impactmodel.territories import department_codes, region_of
from impactmodel.vocabulary import DIMENSIONS, IMPACTS, LENSES, POPULATIONS, closest


class ModelDataError(ImpactModelError):
    """The survey cannot feed the model as specified."""


@dataclass(frozen=True)
class ScoreData:
    """Long-format scale scores with every index a model needs.

    Attributes hold one entry per row (``y``, ``respondent``, ``cell``, ``group``) or per
    respondent (``x``, ``population``, ``department``), or per cell (``cell_impact`` ...).
    ``group`` numbers the respondent x impact pairs (the respondent trait's units).
    ``z`` holds centred covariate dummies (coordinate ``covariate``), None without.
    ``weight`` holds per-respondent likelihood weights (survey weights normalised within
    each population to sum to its number of respondents, for a weighted
    pseudo-posterior), None for 1.
    ``survey_rows`` is each respondent's row in the survey it was built from (None when
    not built from one).
    """

    y: NDArray[np.float64]
    respondent: NDArray[np.integer]
    cell: NDArray[np.integer]
    group: NDArray[np.integer]
    group_impact: NDArray[np.integer]
    x: NDArray[np.float64]
    x_means: NDArray[np.float64]
    population: NDArray[np.integer]
    department: NDArray[np.integer]
    cell_impact: NDArray[np.integer]
    cell_lens: NDArray[np.integer]
    cell_dimension: NDArray[np.integer]
    department_region: NDArray[np.integer]
    coords: dict[str, list[str]]
    z: NDArray[np.float64] | None = None
    z_means: NDArray[np.float64] | None = None
    weight: NDArray[np.float64] | None = None
    survey_rows: NDArray[np.integer] | None = None

    @property
    def respondent_weight(self) -> NDArray[np.float64]:
        """Each respondent's likelihood weight (ones when unweighted)."""
        return self.weight if self.weight is not None else np.ones(len(self.x))

    @property
    def covariates(self) -> NDArray[np.float64]:
        """Centred covariate dummies per respondent (respondents x 0 when none)."""
        return self.z if self.z is not None else np.zeros((len(self.x), 0))

    @property
    def regressors(self) -> NDArray[np.float64]:
        """Practices then covariate dummies, per respondent (what the scores regress on)."""
        return np.hstack([self.x, self.covariates])

    @property
    def n_rows(self) -> int:
        """Number of respondent x cell scores."""
        return len(self.y)


@dataclass(frozen=True)
class OutcomeSelection:
    """Which impacts, lenses and dimensions a model covers (default: all 54 cells).

    The model's coordinates are the selected names, in the vocabulary's order; items and
    cells outside the selection are left out.
    """

    impacts: tuple[str, ...] = IMPACTS
    lenses: tuple[str, ...] = LENSES
    dimensions: tuple[str, ...] = DIMENSIONS

    def __post_init__(self) -> None:
        for name, chosen, allowed in (("impacts", self.impacts, IMPACTS),
                                      ("lenses", self.lenses, LENSES),
                                      ("dimensions", self.dimensions, DIMENSIONS)):
            unknown = [v for v in chosen if v not in allowed]
            if unknown or not chosen:
                raise ModelDataError(f"outcome {name} must be a non-empty subset of "
                                     f"{', '.join(allowed)}; got {list(chosen)}")
            # the vocabulary's order, without repeats
            object.__setattr__(self, name, tuple(v for v in allowed if v in chosen))

    def covers(self, impact: str, lens: str, dimension: str) -> bool:
        """Whether the cell impact x lens x dimension is selected."""
        return impact in self.impacts and lens in self.lenses and dimension in self.dimensions

    def labels(self) -> list[str]:
        """Return the selected score labels (``impact:lens:dimension`` cells).

        The impacts themselves come first when every lens and dimension is selected.
        """
        cells = [f"{i}:{le}:{d}" for i in self.impacts for le in self.lenses
                 for d in self.dimensions]
        whole = len(self.lenses) == len(LENSES) and len(self.dimensions) == len(DIMENSIONS)
        return [*self.impacts, *cells] if whole else cells

    def coords(self) -> dict[str, list[str]]:
        """Return the model coordinates ``impact``, ``lens``, ``dimension``."""
        return {"impact": list(self.impacts), "lens": list(self.lenses),
                "dimension": list(self.dimensions)}


def normalised_weights(weights: NDArray[np.float64],
                       groups: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
    """Survey weights scaled to sum to their number (a pseudo-likelihood's weights).

    Parameters
    ----------
    weights : ndarray, shape (n,)
        Positive, finite.
    groups : ndarray of int, shape (n,), optional
        Normalise within each group (e.g. the respondent populations, each a survey with
        its own design whose weights sum to its own population size): a group's weights
        then sum to its number of respondents.

    Returns
    -------
    ndarray, shape (n,)

    Raises
    ------
    ModelDataError
        When a weight is missing, not finite or not positive.
    """
    w = np.asarray(weights, dtype=float)
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ModelDataError(f"a weighted pseudo-posterior needs positive survey weights; "
                             f"{int(bad.sum())} respondents (model rows {rows}...) have "
                             f"{w[bad][:5].tolist()}")
    if groups is None:
        return w * len(w) / w.sum()
    _, group = np.unique(groups, return_inverse=True)
    counts, sums = np.bincount(group), np.bincount(group, weights=w)
    return w * (counts / sums)[group]


def practice_matrix(survey: SurveyData, practices: Sequence[str] | None
                    ) -> tuple[NDArray[np.float64], list[str]]:
    """Respondents x practices on the model's scale (before centring); missing -> NaN."""
    specs = {p.column: p for p in survey.codebook.practices}
    names = list(practices) if practices is not None else [
        p.column for p in survey.codebook.practices if p.type != "categorical"]
    columns = []
    for name in names:
        if name not in specs:
            guess = closest(name, specs)
            raise ModelDataError(f"'{name}' is not a practice of the codebook"
                                 + (f"; did you mean '{guess}'?" if guess else ""))
        spec, series = specs[name], survey.frame[name]
        if spec.type == "categorical":
            raise ModelDataError(f"practice '{name}' is categorical: code it as binary "
                                 "indicators to use it in a model")
        if spec.type == "ordinal":
            codes = series.cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            columns.append(codes / (len(spec.levels) - 1))
        elif spec.type == "count":
            columns.append(np.log1p(series.to_numpy(dtype=float, na_value=np.nan)))
        else:
            columns.append(series.to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns), names


def covariate_matrix(survey: SurveyData, covariates: Sequence[str] | None
                     ) -> tuple[NDArray[np.float64], list[str]]:
    """Return respondents x dummies of categorical covariates (first level the reference).

    Parameters
    ----------
    survey : SurveyData
    covariates : sequence of str, optional
        Covariate columns (default: the codebook's post-stratification variables).

    Returns
    -------
    z : numpy.ndarray
        0/1 dummies (NaN where the covariate is missing), one per non-reference level.
    names : list of str
        ``"<covariate>=<level>"`` per column.
    """
    book = survey.codebook
    chosen = list(covariates) if covariates is not None else list(book.poststratification)
    specs = {v.column: v for v in book.covariates}
    dummies, names = [], []
    for name in chosen:
        if name not in specs:
            guess = closest(name, specs)
            raise ModelDataError(f"'{name}' is not a covariate of the codebook"
                                 + (f"; did you mean '{guess}'?" if guess else ""))
        series = survey.frame[name].astype(str).where(survey.frame[name].notna())
        for level in specs[name].levels[1:]:
            column = (series == level).to_numpy(dtype=float, copy=True)
            column[series.isna().to_numpy()] = np.nan
            dummies.append(column)
            names.append(f"{name}={level}")
    z = (np.column_stack(dummies).astype(np.float64) if dummies
         else np.zeros((len(survey.frame), 0)))
    return z, names


def build_score_data(survey: SurveyData, practices: Sequence[str] | None = None,
                     selection: OutcomeSelection | None = None,
                     covariates: Sequence[str] = (), weighted: bool = False) -> ScoreData:
    """Assemble :class:`ScoreData` from a survey.

    Respondents with a missing practice value are left out (their count is reported by the
    caller through ``coords``-sized arrays); use complete practice data or impute upstream.

    Parameters
    ----------
    survey : SurveyData
    practices : sequence of str, optional
        Practice columns (default: every non-categorical practice of the codebook).
    selection : OutcomeSelection, optional
        Cells to model (default: all).
    covariates : sequence of str
        Categorical covariates entering as impact-specific shifts (needed for MRP: the
        post-stratification variables); default none.
    weighted : bool
        Carry the respondents' survey weights, normalised within each population to sum
        to its number of respondents, as likelihood weights (a weighted pseudo-posterior,
        :mod:`impactmodel.bayes.pseudo_posterior`); the codebook must name a weight.

    Returns
    -------
    ScoreData
    """
    if weighted and survey.codebook.design.weight is None:
        raise ModelDataError("a weighted pseudo-posterior needs survey weights: the "
                             "codebook's [design] names no weight column")
    chosen = selection or OutcomeSelection()
    x_raw, names = practice_matrix(survey, practices)
    z_raw, dummy_names = covariate_matrix(survey, covariates)
    by_cell = impact_scores(survey, by="cell")
    by_cell = by_cell[[c for c in by_cell.columns if chosen.covers(*c.split(":"))]]
    if by_cell.shape[1] == 0:
        raise ModelDataError("the codebook has no item in the selected impacts, lenses and "
                             "dimensions")
    keep = (~np.isnan(x_raw).any(axis=1) & ~np.isnan(z_raw).any(axis=1)
            & by_cell.notna().any(axis=1).to_numpy())
    if not keep.any():
        raise ModelDataError("no respondent has every practice and covariate value and a "
                             "score in the selected cells")
    scores = by_cell.to_numpy()[keep]
    cells = list(by_cell.columns)
    x_kept = x_raw[keep]
    x_means = x_kept.mean(axis=0)
    respondent, cell = np.nonzero(~np.isnan(scores))
    y = scores[respondent, cell]
    parts = [c.split(":") for c in cells]
    axes = chosen.coords()
    cell_impact = np.array([axes["impact"].index(p[0]) for p in parts])
    group_key = respondent * len(axes["impact"]) + cell_impact[cell]
    group_codes, group = np.unique(group_key, return_inverse=True)
    departments = list(department_codes())
    regions = sorted(set(region_of().values()))
    dept = survey.department.astype(str).to_numpy()[keep]
    population = np.array([POPULATIONS.index(p) for p in
                           survey.population.astype(str).to_numpy()[keep]])
    return ScoreData(
        y=y, respondent=respondent, cell=cell, group=group,
        group_impact=(group_codes % len(axes["impact"])).astype(int),
        x=x_kept - x_means, x_means=x_means,
        population=population,
        department=np.array([departments.index(d) for d in dept]),
        cell_impact=cell_impact,
        cell_lens=np.array([axes["lens"].index(p[1]) for p in parts]),
        cell_dimension=np.array([axes["dimension"].index(p[2]) for p in parts]),
        department_region=np.array([regions.index(region_of()[d]) for d in departments]),
        z=(z_raw[keep] - z_raw[keep].mean(axis=0)) if dummy_names else None,
        z_means=z_raw[keep].mean(axis=0) if dummy_names else None,
        weight=(normalised_weights(survey.weight.to_numpy(dtype=float)[keep], population)
                if weighted else None),
        survey_rows=np.flatnonzero(keep),
        coords={"practice": names, "cell": cells, **axes,
                **({"covariate": dummy_names} if dummy_names else {}),
                "population": list(POPULATIONS), "region": regions,
                "department": departments},
    )


def respondents_frame(data: ScoreData) -> pd.DataFrame:
    """One row per respondent kept: population and department indices (for summaries)."""
    return pd.DataFrame({"population": data.population, "department": data.department})
