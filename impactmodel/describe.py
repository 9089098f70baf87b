"""Describe a validated survey: who answered, which items, and how variable the weights are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impactmodel.survey_data import SurveyData
from impactmodel.territories import region_names
from impactmodel.vocabulary import POPULATIONS


def kish_design_effect(weights: np.ndarray) -> float:
    """Kish's design effect due to unequal weighting, ``n * sum(w^2) / sum(w)^2 = 1 + CV^2``.

    Kish (1965), *Survey Sampling*, section 11.7 (CV with divisor ``n``).

    Parameters
    ----------
    weights : ndarray
        Positive weights.

    Returns
    -------
    float
    """
    w = np.asarray(weights, dtype=float)
    return float(len(w) * np.sum(w**2) / np.sum(w) ** 2)


@dataclass(frozen=True)
class SurveyDescription:
    """Tables describing a survey.

    Attributes
    ----------
    respondents : pandas.DataFrame
        Respondents per region (rows, named) x population (columns), with totals.
    coverage : pandas.DataFrame
        Per item (rows) and population (columns): the share of asked respondents who
        answered, ``NaN`` where the item was not asked (missing by design).
    weights : pandas.DataFrame
        Per population: n, sum of weights, min, median, max, CV, Kish design effect and
        effective sample size ``n / deff``.
    """

    respondents: pd.DataFrame
    coverage: pd.DataFrame
    weights: pd.DataFrame


def describe_survey(survey: SurveyData) -> SurveyDescription:
    """Compute the description tables of ``survey``.

    Parameters
    ----------
    survey : SurveyData

    Returns
    -------
    SurveyDescription
    """
    names = region_names()
    region_label = survey.region.map(lambda r: f"{r} {names[r]}")
    respondents = pd.crosstab(region_label, survey.population, margins=True,
                              margins_name="total", dropna=False)
    respondents.index.name, respondents.columns.name = "region", "population"
    coverage = pd.DataFrame(np.nan, index=[i.column for i in survey.codebook.items],
                            columns=list(POPULATIONS))
    coverage.index.name = "item"
    for item in survey.codebook.items:
        answered = survey.frame[item.column].notna()
        for pop in item.asked:
            mask = survey.population == pop
            if mask.any():
                coverage.loc[item.column, pop] = answered[mask].mean()
    rows = []
    for pop in POPULATIONS:
        w = survey.weight[survey.population == pop].to_numpy()
        if len(w) == 0:
            continue
        deff = kish_design_effect(w)
        rows.append({"population": pop, "n": len(w), "sum_weights": w.sum(), "min": w.min(),
                     "median": float(np.median(w)), "max": w.max(),
                     "cv": float(np.std(w) / np.mean(w)), "kish_deff": deff,
                     "effective_n": len(w) / deff})
    weights = pd.DataFrame(rows).set_index("population")
    return SurveyDescription(respondents, coverage, weights)
