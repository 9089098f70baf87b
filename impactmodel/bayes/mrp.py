"""Multilevel regression and post-stratification (MRP) of the scale-score model.

The model (:mod:`impactmodel.bayes.gaussian`, fitted with the post-stratification
variables as covariates) gives, per posterior draw, the expected impact score of a
person of population ``p`` in department ``t`` with covariate levels ``z`` and practices
``x``. A **frame** says how many people of each kind there are; the post-stratified score
of a population in a territory is the frame-weighted mean of the expected scores of its
frame cells (Gelman & Little 1997; Park, Gelman & Bafumi 2004)::

    score[p, t, m] = sum_f N_f theta_f[m] / sum_f N_f     (f: the frame cells of p x t)

with ``theta_f[m]`` the mean over the impact's cells asked of ``p`` of the model's
expected cell score at the frame cell's covariates and at its **practices**. The frame
does not count practices, so they are estimated: the sample mean of the respondents of
the same population and covariate levels (where none shares the levels, the
population's mean), plus the shrunk deviations from it of the respondents of the cell's
region and then of its department (sum over ``n`` respondents divided by
``n + PRACTICE_SHRINKAGE``): practices vary by territory. These practice means are taken
as known (their sampling uncertainty is not propagated). Regions and the nation are
frame-weighted means of their departments.
The full posterior is kept: each draw is post-stratified.

Frame file (CSV, Parquet, SPSS or Stata): one row per cell, columns ``department``
(INSEE code), ``population`` (``citizen``, ``elected``, ``business``, ``association``),
one column per post-stratification variable of the codebook (its levels) and ``count``
(people in the cell: a non-negative number, whole in a census, fractional in a
synthetic frame).

**Raked frames (MrsP; Leemann & Wasserfallen 2017, AJPS 61(4)).** In France the joint
distribution of the post-stratification variables is rarely known per department, but
their margins per department are, and the joint distribution nationally.
:func:`raked_frame` builds a synthetic frame: for each department x population, the
national joint of the population rescaled and raked (iterative proportional fitting,
:func:`impactmodel.weighting.raking.rake`) to the department's margins; the frame's
``source`` says so. Every problem is reported at once, naming
the file, column, rows and values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impactmodel.bayes.fit import INTERVAL, ScaleScoreFit
from impactmodel.codebook import Codebook
from impactmodel.errors import ImpactModelError, Problem, ValidationError
from impactmodel.readers import read_table
from impactmodel.territories import normalise_department_code, region_of, suggest_department
from impactmodel.vocabulary import POPULATIONS, closest
from impactmodel.weighting.raking import RakingError, rake

COUNT = "count"
#: pseudo-respondents with no deviation added to shrink territorial practice deviations
PRACTICE_SHRINKAGE = 10.0
_EXAMPLES = 5


@dataclass(frozen=True)
class PoststratificationFrame:
    """A validated frame: people per department x population x post-stratification cell.

    Attributes
    ----------
    cells : pandas.DataFrame
        Columns ``department, population, <variables...>, count`` (text labels).
    variables : tuple of str
    source : str
        Where it was read from, or how it was built.
    files : mapping of str to str
        The files it came from, by role (``frame``, or ``joint`` and ``margins``), for
        fingerprinting.
    """

    cells: pd.DataFrame
    variables: tuple[str, ...]
    source: str
    files: Mapping[str, str] = field(default_factory=dict)


def _problem(problems: list[Problem], source: str, column: str, mask: NDArray[np.bool_],
             values: pd.Series, title: str, expected: str, hint: str | None = None) -> None:
    rows = np.flatnonzero(mask)
    if len(rows):
        shown = list(dict.fromkeys(map(str, values.to_numpy()[rows])))[:_EXAMPLES]
        examples = tuple(int(r) + 1 for r in rows[:_EXAMPLES])
        problems.append(Problem(source, title, column, examples, tuple(shown), expected, hint,
                                len(rows)))


def validate_frame(table: pd.DataFrame, codebook: Codebook, source: str,
                   variables: Sequence[str] | None = None) -> PoststratificationFrame:
    """Check a frame table against the codebook (see the module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
    codebook : Codebook
        Gives the post-stratification variables and their levels.
    source : str
        File name, for messages.
    variables : sequence of str, optional
        Default: the codebook's post-stratification variables.

    Returns
    -------
    PoststratificationFrame

    Raises
    ------
    ValidationError
        With every problem found.
    """
    chosen = tuple(variables if variables is not None else codebook.poststratification)
    levels = {v.column: tuple(v.levels) for v in codebook.covariates}
    required = ("department", "population", *chosen, COUNT)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValidationError([Problem(
            source, "missing columns of the post-stratification frame", None, (),
            tuple(missing), "columns " + ", ".join(required),
            "one row per department x population x " + " x ".join(chosen) + " cell")])
    problems: list[Problem] = []
    frame = table[list(required)].copy()
    codes = frame["department"].map(normalise_department_code)
    bad = codes.isna().to_numpy()
    guess = suggest_department(frame["department"][bad].iloc[0]) if bad.any() else None
    _problem(problems, source, "department", bad, frame["department"],
             "unknown department codes", "INSEE codes such as 01, 2A, 971",
             f"did you mean '{guess}'?" if guess else None)
    population = frame["population"].astype(str).str.strip()
    bad = ~population.isin(POPULATIONS).to_numpy()
    guess = closest(population[bad].iloc[0], POPULATIONS) if bad.any() else None
    _problem(problems, source, "population", bad, population, "unknown populations",
             ", ".join(POPULATIONS), f"did you mean '{guess}'?" if guess else None)
    for variable in chosen:
        allowed = levels.get(variable)
        if allowed is None:
            problems.append(Problem(source, "not a covariate of the codebook", variable,
                                    expected=", ".join(levels) or "(no covariates)"))
            continue
        text = frame[variable].astype(str).str.strip()
        _problem(problems, source, variable, ~text.isin(allowed).to_numpy(), text,
                 "levels not in the codebook", ", ".join(allowed))
        frame[variable] = text
    count = pd.to_numeric(frame[COUNT], errors="coerce")
    bad = (count.isna() | (count < 0) | ~np.isfinite(count)).to_numpy()
    _problem(problems, source, COUNT, bad, frame[COUNT], "counts must be numbers >= 0",
             "a non-negative count per cell (whole for a census; fractional in a "
             "synthetic frame)")
    frame["department"], frame["population"] = codes, population
    keys = ["department", "population", *chosen]
    duplicated = frame.duplicated(keys, keep=False).to_numpy() & ~frame[keys].isna().any(
        axis=1).to_numpy()
    _problem(problems, source, "department", duplicated,
             frame[keys].astype(object).fillna("").astype(str).agg(" / ".join, axis=1),
             "cells listed more than once",
             "one row per " + " x ".join(keys))
    if problems:
        raise ValidationError(problems)
    frame[COUNT] = count.astype(np.float64)
    return PoststratificationFrame(frame.reset_index(drop=True), chosen, source)


def read_frame(path: str | Path, codebook: Codebook,
               variables: Sequence[str] | None = None) -> PoststratificationFrame:
    """Read and validate a post-stratification frame file.

    Raises
    ------
    ValidationError
        With every problem found, or when the file cannot be read.
    """
    p = Path(path)
    chosen = tuple(variables if variables is not None else codebook.poststratification)
    try:
        table = read_table(p, text_columns=("department", "population", *chosen))
    except ImpactModelError:
        raise
    except (OSError, ValueError) as exc:
        raise ValidationError([Problem(str(p), f"cannot read the frame: {exc}")]) from None
    return replace(validate_frame(table, codebook, str(p), chosen), files={"frame": str(p)})


def _cell_covariates(fit: ScaleScoreFit, frame: PoststratificationFrame,
                     territorial: bool = True
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centred dummies and practice means of every frame cell (cells x Q, cells x K)."""
    d = fit.data
    names = d.coords.get("covariate", [])
    modelled = list(dict.fromkeys(n.split("=")[0] for n in names))
    if modelled != list(frame.variables):
        raise ImpactModelError(
            "the model's covariates do not match the frame's post-stratification variables "
            f"({', '.join(frame.variables)}): fit the model with covariates = "
            f"{list(frame.variables)}")
    cells = frame.cells
    raw = np.column_stack([(cells[v] == level).to_numpy(dtype=float)
                           for v in frame.variables for level in _levels(fit, v)]
                          ) if names else np.zeros((len(cells), 0))
    z_means = d.z_means if d.z_means is not None else np.zeros(0)
    respondent_raw = np.round(d.covariates + z_means).astype(int)
    key = pd.Series([f"{p}|{row.tobytes().hex()}" for p, row in zip(
        d.population, respondent_raw, strict=True)])
    by_key = pd.DataFrame(d.x).groupby(key.to_numpy()).mean()
    by_population = pd.DataFrame(d.x).groupby(d.population).mean()
    population_index = cells["population"].map(POPULATIONS.index).to_numpy()
    x_cells = np.zeros((len(cells), d.x.shape[1]))
    for f, (p, row) in enumerate(zip(population_index, raw.astype(int), strict=True)):
        k = f"{p}|{row.tobytes().hex()}"
        if k in by_key.index:
            x_cells[f] = by_key.loc[k].to_numpy()
        elif p in by_population.index:
            x_cells[f] = by_population.loc[p].to_numpy()
    if territorial:
        x_cells += _territorial_deviations(fit, by_key.reindex(key).to_numpy(), cells)
    return raw - z_means, x_cells


def _territorial_deviations(fit: ScaleScoreFit, alike: NDArray[np.float64],
                            cells: pd.DataFrame) -> NDArray[np.float64]:
    """Shrunk region and department deviations of the practices, per frame cell.

    A respondent's deviation is its practices minus the mean of the alike respondents
    (same population and covariate levels). Per population x region, the deviations are
    summed and divided by ``n + PRACTICE_SHRINKAGE`` (a mean shrunk towards zero as if
    :data:`PRACTICE_SHRINKAGE` respondents with no deviation were added); what is left
    per population x department is shrunk the same way.
    """
    d = fit.data
    residual = d.x - alike
    region_of_respondent = d.department_region[d.department]
    departments = list(d.coords["department"])
    cell_department = cells["department"].map(departments.index).to_numpy()
    cell_population = cells["population"].map(POPULATIONS.index).to_numpy()
    cell_region = d.department_region[cell_department]
    out = np.zeros((len(cells), d.x.shape[1]))
    for territory, cell_territory in ((region_of_respondent, cell_region),
                                      (d.department, cell_department)):
        keys = pd.MultiIndex.from_arrays([d.population, territory])
        frame = pd.DataFrame(residual, index=keys)
        grouped = frame.groupby(level=[0, 1])
        shrunk = grouped.sum().div(grouped.size() + PRACTICE_SHRINKAGE, axis=0)
        wanted = pd.MultiIndex.from_arrays([cell_population, cell_territory])
        per_cell = shrunk.reindex(wanted).fillna(0.0).to_numpy()
        out += per_cell
        residual = residual - shrunk.reindex(keys).to_numpy()
    return out


def _levels(fit: ScaleScoreFit, variable: str) -> list[str]:
    """Non-reference levels of ``variable`` as the model's covariate names give them."""
    prefix = f"{variable}="
    return [n.removeprefix(prefix) for n in fit.data.coords.get("covariate", [])
            if n.startswith(prefix)]


def _summary(draws: NDArray[np.float64]) -> dict[str, float]:
    lo, hi = (1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2
    return {"mean": float(draws.mean()), "sd": float(draws.std()),
            "low": float(np.quantile(draws, lo)), "high": float(np.quantile(draws, hi))}


def poststratify(fit: ScaleScoreFit, frame: PoststratificationFrame,
                 territorial_practices: bool = True) -> dict[str, pd.DataFrame]:
    """Post-stratify the fitted model's expected impact scores to ``frame``.

    Parameters
    ----------
    fit : ScaleScoreFit
        Fitted with the frame's variables as covariates.
    frame : PoststratificationFrame
    territorial_practices : bool
        Add to each frame cell's practices the shrunk deviations of its region's and
        department's respondents from alike respondents nationally (practices vary by
        territory; the frame does not count them). False: alike respondents' means only.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``department``, ``region`` and ``population`` (national): columns
        ``population, <territory>, impact, mean, sd, low, high`` (90% interval),
        ``frame_count`` (people behind the estimate) and ``n`` (respondents).

    Raises
    ------
    ImpactModelError
        When the model's covariates are not the frame's variables.
    """
    d = fit.data
    z_cells, x_cells = _cell_covariates(fit, frame, territorial_practices)
    departments = list(d.coords["department"])
    cells = frame.cells
    dept_index = cells["department"].map(departments.index).to_numpy()
    pop_index = cells["population"].map(POPULATIONS.index).to_numpy()
    counts = cells[COUNT].to_numpy(dtype=float)
    alpha = fit.draws("alpha").values  # cell x population x S
    u = fit.draws("u_department").values  # impact x department x S
    effect = fit.draws("effect_cell").values  # K x impact x lens x dimension x S
    b_pop, b_dept = fit.draws("b_population").values, fit.draws("b_department").values
    gamma = fit.draws("gamma").values if "covariate" in d.coords else None
    respondents = pd.DataFrame({"p": d.population, "t": d.department})
    n_resp = respondents.groupby(["p", "t"]).size()
    region_code = region_of()
    rows: dict[str, list[dict[str, object]]] = {"department": [], "region": [],
                                                "population": []}
    for p in np.unique(pop_index):
        asked = np.unique(d.cell[d.population[d.respondent] == p])
        in_p = pop_index == p
        n_dept = np.bincount(dept_index[in_p], weights=counts[in_p], minlength=len(departments))
        x_star = np.zeros((len(departments), d.x.shape[1]))
        z_star = np.zeros((len(departments), z_cells.shape[1]))
        np.add.at(x_star, dept_index[in_p], counts[in_p, None] * x_cells[in_p])
        np.add.at(z_star, dept_index[in_p], counts[in_p, None] * z_cells[in_p])
        covered = n_dept > 0
        x_star[covered] /= n_dept[covered, None]
        z_star[covered] /= n_dept[covered, None]
        for m, impact in enumerate(d.coords["impact"]):
            cs = asked[d.cell_impact[asked] == m]
            if not len(cs):
                continue
            slope = (effect[:, m, d.cell_lens[cs], d.cell_dimension[cs]].mean(axis=1)
                     [:, None, :] + b_pop[:, p][:, None, :] + b_dept)  # K x dept x S
            score = (alpha[cs, p].mean(axis=0)[None, :] + u[m]
                     + np.einsum("tk,kts->ts", x_star, slope))  # dept x S
            if gamma is not None:
                score = score + np.einsum("tq,qs->ts", z_star, gamma[m])
            population = POPULATIONS[p]
            for t in np.flatnonzero(covered):
                rows["department"].append({
                    "population": population, "department": departments[t],
                    "impact": impact, **_summary(score[t]), "frame_count": float(n_dept[t]),
                    "n": int(n_resp.get((p, t), 0))})
            regions = np.array([region_code[departments[t]] for t in range(len(departments))])
            for region in sorted(set(regions[covered])):
                members = covered & (regions == region)
                weights = n_dept[members] / n_dept[members].sum()
                rows["region"].append({
                    "population": population, "region": region, "impact": impact,
                    **_summary(weights @ score[members]),
                    "frame_count": float(n_dept[members].sum()),
                    "n": int(sum(n_resp.get((p, t), 0) for t in np.flatnonzero(members)))})
            weights = n_dept[covered] / n_dept[covered].sum()
            rows["population"].append({
                "population": population, "impact": impact,
                **_summary(weights @ score[covered]), "frame_count": float(n_dept.sum()),
                "n": int((d.population == p).sum())})
    return {level: pd.DataFrame(r) for level, r in rows.items()}


def raked_frame(joint: pd.DataFrame, margins: pd.DataFrame, codebook: Codebook,
                variables: Sequence[str] | None = None) -> PoststratificationFrame:
    """Build a synthetic frame from a national joint and department margins (MrsP).

    Parameters
    ----------
    joint : pandas.DataFrame
        The national joint distribution per population: columns ``population``, the
        ``variables`` and ``count``.
    margins : pandas.DataFrame
        Per department x population, each variable's margin: columns ``department,
        population, variable, level, count``. A department x population's margins must
        all add up to its total.
    codebook : Codebook
        Levels of the variables (the frame is validated like a frame file).
    variables : sequence of str, optional
        Default: the codebook's post-stratification variables.

    Returns
    -------
    PoststratificationFrame
        One cell per department x population x joint cell, counts raked so that each
        variable's margin equals the department's; ``source`` names the construction.

    Raises
    ------
    ImpactModelError
        When a department's margins disagree with each other, or name a level the joint
        does not have for that population.
    """
    chosen = list(variables if variables is not None else codebook.poststratification)
    rows = []
    groups = margins.groupby(["department", "population"], sort=True)
    for (department, population), given in groups:
        base = joint[(joint["population"].astype(str) == str(population))
                     & (pd.to_numeric(joint[COUNT]) > 0)].reset_index(drop=True)
        if base.empty:
            raise ImpactModelError(f"no national joint for population {population!r}")
        totals = given.groupby("variable")[COUNT].sum()
        if not np.allclose(totals.to_numpy(dtype=float), float(totals.iloc[0]), rtol=1e-9):
            raise ImpactModelError(
                f"the margins of department {department}, population {population} do not "
                f"add up to the same total: {totals.to_dict()}")
        total = float(totals.iloc[0])
        plan, alive = [], np.ones(len(base), dtype=bool)
        for variable in chosen:
            margin = given[given["variable"] == variable]
            levels = list(margin["level"].astype(str))
            values = base[variable].astype(str)
            unknown = sorted(set(values) - set(levels))
            missing = [lv for lv, c in zip(levels, margin[COUNT], strict=True)
                       if c > 0 and lv not in set(values)]
            if unknown or missing:
                raise ImpactModelError(
                    f"department {department}, population {population}, {variable}: the "
                    f"joint's levels {sorted(set(values))} and the margin's {levels} differ")
            codes = values.map(levels.index).to_numpy()
            counts = margin[COUNT].to_numpy(dtype=float)
            alive &= counts[codes] > 0  # cells in an empty category stay empty
            plan.append((codes, counts))
        raked = np.zeros(len(base))
        if total > 0 and alive.any():
            weights = base[COUNT].to_numpy(dtype=float)[alive]
            try:
                raked[alive] = rake(weights * total / weights.sum(),
                                    [(codes[alive], counts) for codes, counts in plan])
            except RakingError as exc:
                raise ImpactModelError(
                    f"department {department}, population {population}: the joint's cells "
                    f"cannot be raked to the margins of {', '.join(chosen)} (margins "
                    f"0-{len(chosen) - 1} in that order, levels in the margins' order): "
                    f"{exc}") from None
        cells = base[["population", *chosen]].copy()
        cells.insert(0, "department", str(department))
        cells[COUNT] = raked
        rows.append(cells)
    source = "raked frame (MrsP): national joint raked to department margins"
    table = pd.concat(rows, ignore_index=True)
    frame = validate_frame(table, codebook, source, chosen)
    return PoststratificationFrame(frame.cells, frame.variables, source)


def read_raked_frame(joint: str | Path, margins: str | Path, codebook: Codebook,
                     variables: Sequence[str] | None = None) -> PoststratificationFrame:
    """Read a national joint and department margins and rake them (:func:`raked_frame`).

    Raises
    ------
    ValidationError
        When a file cannot be read or lacks a column.
    ImpactModelError
        When the margins and the joint do not fit together.
    """
    chosen = tuple(variables if variables is not None else codebook.poststratification)
    tables = {}
    for role, path, columns in (
            ("joint", Path(joint), ("population", *chosen, COUNT)),
            ("margins", Path(margins), ("department", "population", "variable", "level",
                                        COUNT))):
        try:
            table = read_table(path, text_columns=[c for c in columns if c != COUNT])
        except ImpactModelError:
            raise
        except (OSError, ValueError) as exc:
            raise ValidationError([Problem(str(path), f"cannot read the {role}: {exc}")]
                                  ) from None
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValidationError([Problem(str(path), f"missing columns of the {role}",
                                           None, (), tuple(missing),
                                           "columns " + ", ".join(columns))])
        count = pd.to_numeric(table[COUNT], errors="coerce")
        problems: list[Problem] = []
        _problem(problems, str(path), COUNT, (count.isna() | (count < 0)).to_numpy(),
                 table[COUNT], "counts must be numbers >= 0", "a non-negative count per row")
        if problems:
            raise ValidationError(problems)
        tables[role] = table.assign(**{COUNT: count})
    built = raked_frame(tables["joint"], tables["margins"], codebook, chosen)
    return replace(built, files={"joint": str(joint), "margins": str(margins)})
