"""Check a respondent table against its codebook, gathering every problem found.

Each ``check_*`` function returns a list of :class:`~impactmodel.errors.Problem`; none
raises, so :func:`validate_table` can report everything at once. Row numbers in problems
are 1-based data rows (row 1 is the first row after a CSV header).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from impactmodel.codebook import Codebook, VariableSpec, level_text
from impactmodel.errors import Problem
from impactmodel.territories import normalise_department_code, suggest_department
from impactmodel.vocabulary import POPULATIONS, closest

MAX_EXAMPLES = 5
RESERVED_COLUMNS = ("region",)


def _problem(file: str, column: str, title: str, bad: pd.Series, expected: str,
             hint: str | None = None) -> Problem:
    """Build a problem illustrated by up to ``MAX_EXAMPLES`` rows of ``bad`` (index -> value)."""
    rows = tuple(int(i) + 1 for i in bad.index[:MAX_EXAMPLES])
    values = tuple(dict.fromkeys(repr(level_text(v)) if pd.notna(v) else "missing"
                                 for v in bad.iloc[:50]))[:MAX_EXAMPLES]
    return Problem(file, title, column=column, rows=rows, values=values, expected=expected,
                   hint=hint, count=len(bad))


def as_text(series: pd.Series) -> pd.Series:
    """Return the cells as canonical level text (``2.0`` -> ``'2'``), keeping missing values."""
    return series.map(lambda v: level_text(v) if pd.notna(v) else v)


def check_columns(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Every column the codebook names must exist; reserved names must not clash."""
    problems = []
    for column, role in codebook.column_roles().items():
        if column not in frame.columns:
            guess = closest(column, [str(c) for c in frame.columns])
            problems.append(Problem(
                file, f"column named in the codebook ({role}) is missing from the data",
                column=column, expected=f"a column '{column}' (codebook {codebook.path})",
                hint=f"the data has '{guess}': rename it or fix the codebook" if guess else None))
    for column in RESERVED_COLUMNS:
        if column in frame.columns and column != codebook.territory:
            problems.append(Problem(
                file, "column name is reserved: the region is derived from the department",
                column=column, expected="no column of that name",
                hint="drop or rename it; impactmodel adds 'region' from the territory table"))
    return problems


def check_ids(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Respondent ids must be present and unique."""
    if codebook.id not in frame:
        return []
    ids = frame[codebook.id]
    problems = []
    if ids.isna().any():
        problems.append(_problem(file, codebook.id, "missing respondent ids",
                                 ids[ids.isna()], "an id on every row"))
    dup = ids[ids.notna() & ids.duplicated(keep=False)]
    if len(dup):
        problems.append(_problem(file, codebook.id, "duplicate respondent ids", dup,
                                 "each id once", hint="each row must be one respondent"))
    return problems


def population_identifiers(frame: pd.DataFrame, codebook: Codebook) -> pd.Series:
    """Map the population column to identifiers (``citizen`` ...); unknown values become NA."""
    text = as_text(frame[codebook.population])
    mapping = dict(codebook.population_codes) or {p: p for p in POPULATIONS}
    return text.map(mapping)


def check_population(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Every population value must denote one of the four respondent populations."""
    if codebook.population not in frame:
        return []
    raw = frame[codebook.population]
    bad = raw[population_identifiers(frame, codebook).isna()]
    if not len(bad):
        return []
    allowed = list(codebook.population_codes) or list(POPULATIONS)
    guesses = {level_text(v): closest(level_text(v), allowed)
               for v in bad.dropna().unique()[:MAX_EXAMPLES]}
    hints = [f"'{v}' -> did you mean '{g}'?" for v, g in guesses.items() if g]
    if bad.isna().any():
        hints.append("missing values: every respondent needs a population")
    if not codebook.population_codes:
        hints.append("map other codes with [survey.population_codes] in the codebook")
    hint = "; ".join(hints) or None
    return [_problem(file, codebook.population, "unknown population", bad,
                     "one of " + ", ".join(allowed), hint=hint)]


def check_territory(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Every territory value must be an INSEE department code (with the closest one suggested)."""
    if codebook.territory not in frame:
        return []
    raw = frame[codebook.territory]
    bad = raw[raw.map(normalise_department_code).isna()]
    if not len(bad):
        return []
    examples = bad.dropna().unique()[:MAX_EXAMPLES]
    suggestions = {level_text(v): suggest_department(v) for v in examples}
    hint = "; ".join(f"'{v}' -> closest valid code '{s}'" for v, s in suggestions.items() if s)
    return [_problem(file, codebook.territory, "unknown department code", bad,
                     "an INSEE department code: 01..95 (no 20), 2A, 2B, 971, 972, 973, 974, 976",
                     hint=hint or None)]


def check_weights(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Weights must be numeric, present, finite and strictly positive."""
    col = codebook.design.weight
    if col is None or col not in frame:
        return []
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    problems = []
    non_numeric = raw[values.isna() & raw.notna()]
    if len(non_numeric):
        problems.append(_problem(file, col, "non-numeric weights", non_numeric, "a number > 0"))
    missing = raw[raw.isna()]
    if len(missing):
        problems.append(_problem(file, col, "missing weights", missing, "a number > 0",
                                 hint="every respondent needs a weight"))
    nonpos = raw[values <= 0]
    if len(nonpos):
        problems.append(_problem(file, col, "zero or negative weights", nonpos, "a number > 0",
                                 hint="drop those rows or fix the weighting"))
    infinite = raw[np.isinf(values.astype(float))]
    if len(infinite):
        problems.append(_problem(file, col, "infinite weights", infinite,
                                 "a finite number > 0"))
    return problems


def check_design(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Strata and PSUs must be present; a first-stage PSU must lie in a single stratum."""
    d = codebook.design
    problems = []
    for col in [c for c in (d.strata, *d.psu) if c and c in frame]:
        missing = frame[col][frame[col].isna()]
        if len(missing):
            problems.append(_problem(file, col, "missing design values", missing,
                                     "a stratum / cluster label on every row"))
    if d.strata is not None and d.strata in frame and d.psu and d.psu[0] in frame:
        strata, psu_col = d.strata, d.psu[0]
        pairs = frame[[strata, psu_col]].dropna()
        n_strata = pairs.groupby(psu_col, sort=True)[strata].nunique()
        crossing = n_strata[n_strata > 1]
        if len(crossing):
            rows = pairs[pairs[psu_col].isin(crossing.index)]
            detail = ", ".join(
                f"{psu!r} in strata "
                f"{sorted(map(str, rows.loc[rows[psu_col] == psu, strata].unique()))}"
                for psu in crossing.index[:3])
            problems.append(_problem(
                file, d.psu[0], "PSU nested in two or more strata", rows[d.psu[0]],
                f"each PSU within one stratum of '{d.strata}'",
                hint=f"{detail}; if PSU labels restart in each stratum, make them unique "
                     "(e.g. stratum + PSU)"))
    for col in [c for c in d.fpc if c in frame]:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        bad = raw[values.isna() | (values <= 0)]
        if len(bad):
            problems.append(_problem(file, col, "invalid finite population correction", bad,
                                     "a population count (> 1) or sampling fraction in (0, 1]"))
        elif d.strata is not None and d.strata in frame:
            spread = values.groupby(frame[d.strata]).nunique()
            varying = spread[spread > 1]
            if len(varying):
                problems.append(_problem(
                    file, col, "fpc varies within a stratum",
                    raw[frame[d.strata].isin(varying.index)],
                    "one fpc value per stratum",
                    hint="strata: " + ", ".join(map(str, varying.index[:MAX_EXAMPLES]))))
    return problems


def _variable_bad_values(spec: VariableSpec, raw: pd.Series) -> tuple[pd.Series, str]:
    present = raw[raw.notna()]
    if spec.type == "binary":
        ok = as_text(present).isin(["0", "1", "True", "False"])
        return present[~ok], "0 or 1"
    if spec.type in ("ordinal", "categorical"):
        ok = as_text(present).isin(spec.levels)
        return present[~ok], "one of " + ", ".join(spec.levels)
    values = pd.to_numeric(present, errors="coerce")
    ok = values.notna() & (values >= 0) & (np.floor(values) == values)
    return present[~ok], "a whole number >= 0"


def check_variables(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Practice and covariate values must fit their declared type and levels."""
    problems = []
    for section, specs in (("practice", codebook.practices), ("covariate", codebook.covariates)):
        for spec in [s for s in specs if s.column in frame]:
            bad, expected = _variable_bad_values(spec, frame[spec.column])
            if len(bad):
                problems.append(_problem(file, spec.column, f"invalid {spec.type} {section} value",
                                         bad, expected))
    return problems


def check_items(frame: pd.DataFrame, codebook: Codebook, file: str,
                populations: pd.Series) -> list[Problem]:
    """Item answers must be on the declared scale and only from populations asked."""
    problems = []
    for item in [i for i in codebook.items if i.column in frame]:
        raw = frame[item.column]
        present = raw[raw.notna()]
        values = pd.to_numeric(present, errors="coerce")
        bad = present[~values.isin(item.scale.levels)]
        if len(bad):
            problems.append(_problem(
                file, item.column, "answer outside the item's scale", bad,
                f"one of {list(item.scale.levels)} (scale '{item.scale.name}') or empty",
                hint="recode 'don't know' / refusal codes (e.g. 9, 99) to empty"))
        not_asked = present[~populations.loc[present.index].isin(item.asked)
                            & populations.loc[present.index].notna()]
        if len(not_asked):
            who = sorted(populations.loc[not_asked.index].dropna().unique())
            problems.append(_problem(
                file, item.column, "answers from a population the item was not asked of",
                not_asked, "empty (missing by design) for populations other than "
                + ", ".join(item.asked),
                hint=f"answered by {', '.join(who)}: fix the item's 'asked' list in the codebook"))
    return problems


CHECKS: tuple[Callable[[pd.DataFrame, Codebook, str], list[Problem]], ...] = (
    check_ids, check_population, check_territory, check_weights, check_design, check_variables,
)


def validate_table(frame: pd.DataFrame, codebook: Codebook, file: str) -> list[Problem]:
    """Run every check and return all problems (empty when the table is valid).

    Parameters
    ----------
    frame : pandas.DataFrame
        The respondent table as read.
    codebook : Codebook
        Its validated codebook.
    file : str
        The table's path, for messages.

    Returns
    -------
    list of Problem
    """
    problems = check_columns(frame, codebook, file)
    if frame.empty:
        problems.append(Problem(file, "the table has no respondent rows",
                                expected="one row per respondent after the header"))
        return problems
    # Each check skips the columns found missing above, so every other problem still shows.
    for check in CHECKS:
        problems.extend(check(frame, codebook, file))
    if codebook.population in frame:
        populations = population_identifiers(frame, codebook)
    else:
        populations = pd.Series(pd.NA, index=frame.index, dtype="object")
    problems.extend(check_items(frame, codebook, file, populations))
    return problems
