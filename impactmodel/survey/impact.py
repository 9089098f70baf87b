"""Design-based impact scores: from a validated survey to a tidy table of domain means.

The codebook's design columns define the :class:`SurveyDesign`; each respondent's POMP
scores (:mod:`impactmodel.scores`) per impact and per impact x lens x dimension cell are
averaged by domain with linearised SEs. Respondents without a score for a cell (not asked,
or no answer) are left out of that cell's estimate but stay in the design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from impactmodel.errors import ImpactModelError
from impactmodel.scores import impact_scores
from impactmodel.survey.design import SurveyDesign
from impactmodel.survey.variance import LONELY_PSU_RULES, LonelyPSU
from impactmodel.survey_data import SurveyData
from impactmodel.territories import region_of
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


def calibrated_design(survey: SurveyData, totals: pd.DataFrame, variables: Sequence[str],
                      *, lonely_psu: LonelyPSU = "fail") -> tuple[SurveyDesign, list[str]]:
    """Rake the survey's design, within each population, to known population totals.

    Use it when the survey weights were calibrated (raked) to these totals: raking the
    design again leaves weights that already meet them unchanged, and records the
    calibration, so that variances use the residuals of the influence scores on the
    calibration variables, as R's ``rake`` / ``calibrate`` do; without it they are
    overstated.

    Parameters
    ----------
    survey : SurveyData
    totals : pandas.DataFrame
        People per ``department, population`` and the ``variables`` other than
        ``region`` / ``department``, in a ``count`` column (a post-stratification frame's
        cells, :mod:`impactmodel.bayes.mrp`).
    variables : sequence of str
        Calibration variables: ``region``, ``department`` or columns of both the survey
        and ``totals``. Each is raked within population (one margin per population x
        variable).
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}

    Returns
    -------
    design : SurveyDesign
    notes : list of str
        Levels without respondents merged into their population's most frequent level
        (raking cannot reach a total nobody in the sample carries).
    """
    frame = survey.frame.copy()
    cells = totals.copy()
    cells["region"] = cells["department"].astype(str).map(region_of())
    population = survey.population.astype(str)
    margins: dict[str, Mapping[object, float]] = {}
    notes: list[str] = []
    for variable in variables:
        column = {"region": "region", "department": survey.codebook.territory}.get(
            variable, variable)
        if column not in frame.columns or variable not in cells.columns:
            raise ImpactModelError(f"cannot calibrate on '{variable}': it must be a column "
                                   "of both the survey and the totals, or region/department")
        level = frame[column].astype(str)
        name = f"calibration:{variable}"
        frame[name] = population + "|" + level
        keyed = cells.assign(key=cells["population"].astype(str) + "|"
                             + cells[variable].astype(str))
        target = {str(k): float(v) for k, v in keyed.groupby("key")["count"].sum().items()}
        counts = {str(k): int(v) for k, v in frame[name].value_counts().items()}
        for pop in sorted(set(population)):
            empty = [k for k in target if k.startswith(f"{pop}|") and k not in counts
                     and target[k] > 0]
            if empty:
                present = [k for k in counts if k.startswith(f"{pop}|")]
                largest = max(present, key=counts.__getitem__)
                target[largest] += sum(target.pop(k) for k in empty)
                notes.append(f"{variable}: {', '.join(e.split('|', 1)[1] for e in empty)} "
                             f"of {pop} (no respondent) merged into "
                             f"{largest.split('|', 1)[1]}")
        margins[name] = {k: v for k, v in target.items()
                         if k.split("|", 1)[0] in set(population)}
    design = design_from_survey(replace(survey, frame=frame), lonely_psu=lonely_psu)
    return design.rake(margins), notes


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
