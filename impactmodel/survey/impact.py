"""Design-based impact scores: from a validated survey to a tidy table of domain means.

The codebook's design columns define the :class:`SurveyDesign`; each respondent's POMP
scores (:mod:`impactmodel.scores`) per impact and per impact x lens x dimension cell are
averaged by domain with linearised SEs. Respondents without a score for a cell (not asked,
or no answer) are left out of that cell's estimate but stay in the design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from impactmodel.errors import ImpactModelError
from impactmodel.scores import impact_scores
from impactmodel.survey.design import SurveyDesign
from impactmodel.survey.variance import LONELY_PSU_RULES, LonelyPSU
from impactmodel.survey_data import SurveyData
from impactmodel.vocabulary import closest

TABLE_COLUMNS = ("domain", "cell", "estimate", "se", "ci_low", "ci_high", "deff", "deff_kish",
                 "n", "weighted_n")


def design_from_survey(survey: SurveyData, *, lonely_psu: LonelyPSU = "fail") -> SurveyDesign:
    """Build the survey's design from its codebook's ``[design]`` columns.

    Parameters
    ----------
    survey : SurveyData
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}

    Returns
    -------
    SurveyDesign
    """
    d = survey.codebook.design
    return SurveyDesign(survey.frame, ids=list(d.psu) or None, strata=d.strata,
                        weights=d.weight, fpc=list(d.fpc) or None, lonely_psu=lonely_psu)


def domain_columns(survey: SurveyData, by: Sequence[str]) -> list[str]:
    """Map ``by`` names to columns: ``population``, ``department``, ``region`` or any column."""
    roles = {"population": survey.codebook.population,
             "department": survey.codebook.territory, "territory": survey.codebook.territory,
             "region": "region"}
    columns = []
    for name in by:
        column = roles.get(name, name)
        if column not in survey.frame.columns:
            guess = closest(name, [*roles, *map(str, survey.frame.columns)])
            raise ImpactModelError(f"cannot estimate by '{name}': no such column or role"
                                   + (f"; did you mean '{guess}'?" if guess else ""))
        columns.append(column)
    return columns


def impact_score_table(survey: SurveyData, by: Sequence[str] = ("population",), *,
                       lonely_psu: LonelyPSU = "fail", level: float = 0.95) -> pd.DataFrame:
    """Domain means of impact scores (per impact and per cell) with design-based SEs.

    Parameters
    ----------
    survey : SurveyData
    by : sequence of str
        Domain variables (crossed); ``population``, ``department``, ``region`` or columns.
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
    level : float

    Returns
    -------
    pandas.DataFrame
        Tidy: the ``by`` columns, ``domain`` (their labels joined by `` / ``), ``cell``
        (an impact, or ``impact:lens:dimension``), ``estimate, se, ci_low, ci_high, deff,
        deff_kish, n, weighted_n``; domains where nobody has the score are left out.
    """
    columns = domain_columns(survey, by)
    scores = pd.concat([impact_scores(survey, by="impact"), impact_scores(survey, by="cell")],
                       axis=1)
    names = [f"score {c}" for c in scores.columns]
    frame = survey.frame.copy()
    frame[names] = scores.to_numpy()
    design = design_from_survey(SurveyData(frame, survey.codebook, survey.source,
                                           survey.fingerprint), lonely_psu=lonely_psu)
    table = design.mean(names, by=columns or None, na_rm=True, level=level).to_frame()
    table = table.reset_index()
    if "variable" not in table.columns:
        table.insert(0, "variable", names[0])
    table["cell"] = table.pop("variable").str.removeprefix("score ")
    table = table[table["n"] > 0].copy()
    for col in columns:  # plain text labels, the same in CSV and Parquet
        table[col] = table[col].astype(str)
    if columns:
        table.insert(0, "domain", table[columns].astype(str).agg(" / ".join, axis=1))
    else:
        table.insert(0, "domain", "all")
    ordered = [*columns, *TABLE_COLUMNS]
    return table[ordered].sort_values([*columns, "cell"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class DesignOptions:
    """Settings of a design-based estimate (``[design]`` of a model specification).

    Attributes
    ----------
    by : tuple of str
        Domain variables, crossed (``population``, ``region``, ``department`` or columns).
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
    level : float
        Confidence level of the intervals.
    """

    by: tuple[str, ...] = ("population", "region")
    lonely_psu: LonelyPSU = "adjust"
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.lonely_psu not in LONELY_PSU_RULES:
            raise ImpactModelError(f"lonely_psu {self.lonely_psu!r} is not one of "
                                   + ", ".join(LONELY_PSU_RULES))
        if not 0 < self.level < 1:
            raise ImpactModelError(f"level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class DesignEstimates:
    """A design-based estimate: domain means of impact scores with linearised SEs.

    Attributes
    ----------
    table : pandas.DataFrame
        As :func:`impact_score_table` returns it (selected cells only).
    options : DesignOptions
    respondents : int
        Respondents in the survey (all of them stay in the design).
    """

    table: pd.DataFrame
    options: DesignOptions
    respondents: int


def estimate_design(survey: SurveyData, options: DesignOptions,
                    cells: Sequence[str] | None = None) -> DesignEstimates:
    """Run a design-based estimate (:func:`impact_score_table`) as a specification asks.

    Parameters
    ----------
    survey : SurveyData
    options : DesignOptions
    cells : sequence of str, optional
        Keep only these ``cell`` labels (impacts and ``impact:lens:dimension`` cells);
        default all.

    Returns
    -------
    DesignEstimates
    """
    table = impact_score_table(survey, options.by, lonely_psu=options.lonely_psu,
                               level=options.level)
    if cells is not None:
        table = table[table["cell"].isin(list(cells))].reset_index(drop=True)
    return DesignEstimates(table, options, len(survey.frame))


__all__ = ["TABLE_COLUMNS", "DesignEstimates", "DesignOptions", "design_from_survey",
           "estimate_design", "impact_score_table"]
