"""Item-level answers for the ordinal impact model, built once from a validated survey.

Rows are the answered items (item non-response and items not asked have no row). Answers
are reverse-coded where the codebook says so and shifted to ``0 .. K-1``. Respondents with
a missing practice or covariate are left out. Covariates (codebook ``[covariates]``,
categorical) enter as treatment dummies, first level as reference, centred at their
sample means like the practices (so that they are not confounded with the intercepts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from impactmodel.bayes.model_data import (
    ModelDataError,
    OutcomeSelection,
    covariate_matrix,
    practice_matrix,
)
from impactmodel.survey_data import SurveyData
from impactmodel.territories import department_codes, region_of
from impactmodel.vocabulary import POPULATIONS


@dataclass(frozen=True)
class ItemData:
    """Long-format item answers with the indices of the ordinal model."""

    y: NDArray[np.integer]
    respondent: NDArray[np.integer]
    item: NDArray[np.integer]
    n_levels: int
    x: NDArray[np.float64]
    x_means: NDArray[np.float64]
    z: NDArray[np.float64]
    population: NDArray[np.integer]
    department: NDArray[np.integer]
    item_impact: NDArray[np.integer]
    item_lens: NDArray[np.integer]
    item_dimension: NDArray[np.integer]
    department_region: NDArray[np.integer]
    coords: dict[str, list[str]]

    @property
    def n_respondents(self) -> int:
        """Respondents kept."""
        return len(self.population)

    def answers_per_respondent_and_impact(self) -> NDArray[np.int64]:
        """Respondents x impacts counts of answers (zero: no answer to that impact)."""
        n_impacts = len(self.coords["impact"])
        cells = self.respondent * n_impacts + self.item_impact[self.item]
        return np.bincount(cells, minlength=self.n_respondents * n_impacts).reshape(
            self.n_respondents, n_impacts)

    def impact_averaging(self) -> NDArray[np.float64]:
        """Impacts x items matrix averaging over each impact's items (zero row: no item)."""
        weights = np.zeros((len(self.coords["impact"]), len(self.item_impact)))
        weights[self.item_impact, np.arange(len(self.item_impact))] = 1.0
        return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def build_item_data(survey: SurveyData, practices: Sequence[str] | None = None,
                    covariates: Sequence[str] | None = None,
                    selection: OutcomeSelection | None = None) -> ItemData:
    """Assemble :class:`ItemData` (see the module docstring).

    Parameters
    ----------
    survey : SurveyData
    practices : sequence of str, optional
    covariates : sequence of str, optional
        Categorical covariates (default: the codebook's post-stratification variables).
    selection : OutcomeSelection, optional
        Items to model, by their cell (default: all).

    Returns
    -------
    ItemData
    """
    book = survey.codebook
    chosen = selection or OutcomeSelection()
    items = tuple(i for i in book.items if chosen.covers(i.impact, i.lens, i.dimension))
    if not items:
        raise ModelDataError("the codebook has no item in the selected impacts, lenses and "
                             "dimensions")
    scales = {i.scale.levels for i in items}
    if len(scales) != 1:
        raise ModelDataError("the ordinal model needs every item on the same scale; the "
                             f"codebook has {len(scales)} scales")
    x_raw, names = practice_matrix(survey, practices)
    z_raw, dummy_names = covariate_matrix(survey, covariates)
    all_answers = survey.frame[[i.column for i in items]].to_numpy(dtype=float)
    keep = (~np.isnan(x_raw).any(axis=1) & ~np.isnan(z_raw).any(axis=1)
            & ~np.isnan(all_answers).all(axis=1))
    if not keep.any():
        raise ModelDataError("no respondent has every practice and covariate value and an "
                             "answer in the selected cells")
    axes = chosen.coords()
    low, high = items[0].scale.low, items[0].scale.high
    answers = all_answers[keep]
    reverse = np.array([i.reverse for i in items])
    answers = np.where(reverse, low + high - answers, answers) - low
    respondent, item = np.nonzero(~np.isnan(answers))
    x_kept = x_raw[keep]
    departments = list(department_codes())
    regions = sorted(set(region_of().values()))
    dept = survey.department.astype(str).to_numpy()[keep]
    return ItemData(
        y=answers[respondent, item].astype(int), respondent=respondent, item=item,
        n_levels=high - low + 1, x=x_kept - x_kept.mean(axis=0), x_means=x_kept.mean(axis=0),
        z=np.asarray(z_raw[keep] - z_raw[keep].mean(axis=0), dtype=np.float64),
        population=np.array([POPULATIONS.index(p) for p in
                             survey.population.astype(str).to_numpy()[keep]]),
        department=np.array([departments.index(d) for d in dept]),
        item_impact=np.array([axes["impact"].index(i.impact) for i in items]),
        item_lens=np.array([axes["lens"].index(i.lens) for i in items]),
        item_dimension=np.array([axes["dimension"].index(i.dimension) for i in items]),
        department_region=np.array([regions.index(region_of()[d]) for d in departments]),
        coords={"practice": names, "covariate": dummy_names,
                "item": [i.column for i in items], **axes,
                "population": list(POPULATIONS), "region": regions,
                "department": departments,
                "cut": [str(k) for k in range(high - low)],
                "respondent": [str(k) for k in range(int(keep.sum()))]},
    )


__all__ = ["ItemData", "build_item_data"]
