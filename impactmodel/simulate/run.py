"""Run a simulation: finite population -> samples -> raked weights -> survey files + truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from impactmodel.codebook import Codebook, dump_codebook
from impactmodel.scores import group_means, pomp
from impactmodel.simulate.outcomes import draw_items, draw_parameters
from impactmodel.simulate.population import FinitePopulation, build_finite_population
from impactmodel.simulate.questionnaire import (
    AGE_GROUPS,
    BINARY_PRACTICES,
    EFFECT_PRACTICES,
    MATURITY_LEVELS,
    SIZE_CLASSES,
    simulated_codebook,
)
from impactmodel.simulate.sampling import draw_sample, drawn_size, respond
from impactmodel.simulate.settings import SimulationSettings
from impactmodel.territories import adjacency, adjacency_graph
from impactmodel.vocabulary import DIMENSIONS, IMPACTS, LENSES, POPULATIONS
from impactmodel.weighting import RakingNotConverged, rake

TRUTH_KIND = "impactmodel.simulation_truth"
TRUTH_SCHEMA_VERSION = 1
FILES = {"respondents": "respondents.csv", "codebook": "codebook.toml", "frame": "frame.csv",
         "truth": "truth.json"}


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` returns: the survey files' contents and the truth."""

    respondents: pd.DataFrame
    codebook: Codebook
    frame: pd.DataFrame
    truth: dict[str, Any]


RAKING_MARGINS = ("region", "age_group", "size_class")


def _merge_category(margin: tuple[np.ndarray, np.ndarray], source: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Merge category ``source`` of a raking margin (its units and total) into the largest."""
    codes, totals = margin
    target = int(np.argmax(np.bincount(codes, minlength=len(totals))))
    totals = totals.copy()
    totals[target] += totals[source]
    totals[source] = 0
    return np.where(codes == source, target, codes), totals


def _smallest_category(margins: dict[str, tuple[np.ndarray, np.ndarray]]
                       ) -> tuple[str, int] | None:
    """Find the category with fewest respondents, in margins that still have two or more."""
    best: tuple[int, str, int] | None = None
    for var, (codes, totals) in margins.items():
        counts = np.bincount(codes, minlength=len(totals))
        present = np.flatnonzero(counts > 0)
        if len(present) < 2:
            continue
        k = int(present[np.argmin(counts[present])])
        if best is None or counts[k] < best[0]:
            best = (int(counts[k]), var, k)
    return None if best is None else (best[1], best[2])


def _raked_weights(sample: pd.DataFrame, pop_units: pd.DataFrame, base: np.ndarray,
                   n_regions: int) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Rake ``base`` to the population's counts by region, age group and size class.

    A category with no respondent merges into its margin's largest category. A small
    sample can also leave the margins unattainable with positive weights (a region whose
    few respondents miss an age group the other margins need): raking then does not
    converge. The category with the fewest respondents, over all margins, then merges into
    its margin's largest, and raking starts again, until it converges. Every merged
    category is returned, by margin, for the simulation's log.
    """
    sizes = {"region": n_regions, "age_group": len(AGE_GROUPS),
             "size_class": len(SIZE_CLASSES)}
    margins = {var: (sample[var].to_numpy(),
                     np.bincount(pop_units[var], minlength=sizes[var]).astype(float))
               for var in RAKING_MARGINS}
    collapsed: dict[str, list[int]] = {}

    def merge(var: str, source: int) -> None:
        margins[var] = _merge_category(margins[var], source)
        collapsed.setdefault(var, []).append(source)

    for var, (codes, totals) in list(margins.items()):
        counts = np.bincount(codes, minlength=len(totals))
        for k in np.flatnonzero((counts == 0) & (totals > 0)):
            merge(var, int(k))
    while True:
        try:
            return rake(base, list(margins.values())), collapsed
        except RakingNotConverged:
            smallest = _smallest_category(margins)
            if smallest is None:
                raise
            merge(*smallest)


def _score_truth(fp: FinitePopulation, answers: np.ndarray, codebook: Codebook
                 ) -> dict[str, list[dict[str, Any]]]:
    items = codebook.items
    low = np.array([i.scale.low for i in items], dtype=float)
    high = np.array([i.scale.high for i in items], dtype=float)
    reverse = np.array([i.reverse for i in items])
    groups = np.array([IMPACTS.index(i.impact) for i in items])
    scores = group_means(pomp(answers, low, high, reverse), groups, len(IMPACTS))
    u = fp.units
    table = pd.DataFrame({
        "population": np.asarray(POPULATIONS)[u["population"]],
        "department": np.asarray(fp.department_codes)[u["department"]],
        "region": np.asarray(fp.region_codes)[u["region"]],
    })
    for m, impact in enumerate(IMPACTS):
        table[impact] = scores[:, m]
    out = {}
    for name, keys in (("by_population", ["population"]),
                       ("by_population_region", ["population", "region"]),
                       ("by_population_department", ["population", "department"])):
        grouped = table.groupby(keys, sort=True)
        means = grouped[list(IMPACTS)].mean()
        means["n_units"] = grouped.size()
        long = means.reset_index().melt(id_vars=[*keys, "n_units"], value_vars=list(IMPACTS),
                                        var_name="impact", value_name="mean")
        records = long.sort_values([*keys, "impact"]).to_dict(orient="records")
        out[name] = [{str(k): v for k, v in r.items()} for r in records]
    return out


def sample_population(rng: np.random.Generator, fp: FinitePopulation, population: str,
                      settings: SimulationSettings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Draw one population's sample, its nonresponse, and rake the respondents' weights.

    Parameters
    ----------
    rng : numpy.random.Generator
    fp : FinitePopulation
    population : str
    settings : SimulationSettings

    Returns
    -------
    respondents : pandas.DataFrame
        Columns ``unit`` (finite-population index), ``population``, ``stratum``, ``psu``,
        ``fpc``, ``base_weight`` (1 / inclusion probability) and ``weight`` (raked).
    log : dict
        Sizes drawn and responding, strata and PSU counts, collapsed raking categories.
    """
    p = POPULATIONS.index(population)
    pop_units = fp.units[fp.units["population"] == p]
    drawn = draw_sample(rng, pop_units, population, drawn_size(settings, population))
    selected = fp.units.loc[drawn.unit]
    responded = respond(rng, selected, population, settings)
    base = 1.0 / drawn.pi[responded]
    weight, collapsed = _raked_weights(selected[responded], pop_units, base,
                                       len(fp.region_codes))
    part = pd.DataFrame({
        "unit": drawn.unit[responded], "population": population,
        "stratum": drawn.stratum[responded], "psu": drawn.psu[responded],
        "fpc": drawn.fpc[responded], "base_weight": base, "weight": weight,
    })
    log = {
        "finite_population_size": len(pop_units), "drawn": len(drawn.unit),
        "responded": int(responded.sum()), "strata": len(set(drawn.stratum)),
        "psus": len(set(drawn.psu)), "raking_collapsed_categories": collapsed,
    }
    return part, log


def _respondent_table(fp: FinitePopulation, answers: np.ndarray, codebook: Codebook,
                      settings: SimulationSettings, rng: np.random.Generator
                      ) -> tuple[pd.DataFrame, dict[str, Any]]:
    parts, design_log = [], {}
    for population in POPULATIONS:
        part, design_log[population] = sample_population(rng, fp, population, settings)
        parts.append(part.drop(columns="base_weight"))
    table = pd.concat(parts, ignore_index=True)
    u = fp.units.loc[table["unit"]].reset_index(drop=True)
    table.insert(0, "respondent_id", [f"R{k:06d}" for k in range(1, len(table) + 1)])
    table.insert(2, "department", np.asarray(fp.department_codes)[u["department"]])
    table["age_group"] = np.asarray(AGE_GROUPS)[u["age_group"]]
    table["size_class"] = np.asarray(SIZE_CLASSES)[u["size_class"]]
    for name in BINARY_PRACTICES:
        table[name] = u[name].to_numpy()
    table["maturity"] = np.asarray(MATURITY_LEVELS)[u["maturity"]]
    table["n_partnerships"] = u["n_partnerships"].to_numpy()
    item_values = answers[table["unit"].to_numpy()]
    if settings.items_per_respondent is not None:  # asked first, then left unanswered
        item_values = split_questionnaire(item_values, settings.items_per_respondent, rng)
    skipped = rng.random(item_values.shape) < settings.item_nonresponse
    item_values = np.where(skipped, np.nan, item_values)
    for j, item in enumerate(codebook.items):
        table[item.column] = pd.array(item_values[:, j], dtype="Float64").astype("Int64")
    return table, design_log


def split_questionnaire(item_values: np.ndarray, items_per_respondent: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Keep, per row, the answers to a random subset of the asked items (matrix sampling).

    Parameters
    ----------
    item_values : ndarray, shape (respondents, items)
        Answers, NaN where the item is not asked of the respondent's population (before
        any item nonresponse: a NaN counts as not asked).
    items_per_respondent : int
        Items asked of each respondent, drawn without replacement, each subset of that
        size equally likely, among the row's non-NaN entries (all of them when fewer).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        ``item_values`` with the items not drawn set to NaN.
    """
    keys = np.where(np.isnan(item_values), np.inf, rng.random(item_values.shape))
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return np.where(rank < items_per_respondent, item_values, np.nan)


def population_frame(fp: FinitePopulation) -> pd.DataFrame:
    """People per department x population x age group x size class (the frame file)."""
    u = fp.units
    index = pd.MultiIndex.from_product(
        [range(len(fp.department_codes)), range(len(POPULATIONS)), range(len(AGE_GROUPS)),
         range(len(SIZE_CLASSES))], names=["department", "population", "age_group", "size_class"])
    counts = u.groupby(list(index.names)).size().reindex(index, fill_value=0)
    frame = counts.rename("count").reset_index()
    frame["department"] = np.asarray(fp.department_codes)[frame["department"]]
    frame["population"] = np.asarray(POPULATIONS)[frame["population"]]
    frame["age_group"] = np.asarray(AGE_GROUPS)[frame["age_group"]]
    frame["size_class"] = np.asarray(SIZE_CLASSES)[frame["size_class"]]
    return frame


def _named(values: np.ndarray, dims: list[str]) -> dict[str, Any]:
    return {"dims": dims, "values": np.round(values, 12).tolist()}


@dataclass(frozen=True)
class Census:
    """A simulated finite population with every unit's answers (before any sampling).

    ``units`` holds the units and practices, ``answers`` units x items (every item asked
    of the unit's population answered; NaN otherwise), ``parameters`` the outcome model's
    parameters. ``sampling_stream`` is the random stream :func:`simulate` samples with;
    pass other generators to :func:`draw_respondents` for repeated samples from the same
    population.
    """

    units: FinitePopulation
    answers: np.ndarray
    codebook: Codebook
    parameters: dict[str, Any]
    sampling_stream: np.random.Generator


def finite_population(settings: SimulationSettings) -> Census:
    """Build the finite population and draw every unit's answers (no sampling yet).

    Parameters
    ----------
    settings : SimulationSettings

    Returns
    -------
    Census
    """
    streams = [np.random.default_rng(s)
               for s in np.random.SeedSequence(settings.seed).spawn(5)]
    codebook = simulated_codebook()
    fp = build_finite_population(settings, streams[0])
    spatial = (settings.spatial_share, streams[4],
               adjacency_graph(fp.department_codes, adjacency())
               ) if settings.spatial_share > 0 else None
    params = draw_parameters(streams[1], codebook.items, len(fp.region_codes),
                             len(fp.department_codes), spatial)
    answers = draw_items(streams[2], fp.units, codebook.items, params)
    return Census(fp, answers, codebook, params, streams[3])


def draw_respondents(census: Census, settings: SimulationSettings, rng: np.random.Generator
                     ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Draw one survey from the census: each population's design, nonresponse, raking.

    Parameters
    ----------
    census : Census
    settings : SimulationSettings
    rng : numpy.random.Generator

    Returns
    -------
    respondents : pandas.DataFrame
        The respondent table (as in :class:`Simulation`), plus ``unit``: each
        respondent's row in ``census.units.units`` and ``census.answers``.
    design : dict
        Per population: sizes drawn and responding, strata, PSUs.
    """
    return _respondent_table(census.units, census.answers, census.codebook, settings, rng)


def simulate(settings: SimulationSettings) -> Simulation:
    """Simulate a multi-population alliance survey with known truth.

    Parameters
    ----------
    settings : SimulationSettings

    Returns
    -------
    Simulation
        The respondent table, its codebook, the population frame and the truth.
    """
    census = finite_population(settings)
    fp, params, answers, codebook = census.units, census.parameters, census.answers, \
        census.codebook
    drawn, design_log = draw_respondents(census, settings, census.sampling_stream)
    respondents = drawn.drop(columns="unit")
    dims = {
        "beta_overall": ["practice"], "beta_impact": ["practice", "impact"],
        "beta_lens": ["practice", "lens"], "beta_dimension": ["practice", "dimension"],
        "beta_cell": ["practice", "impact", "lens", "dimension"],
        "beta_population": ["practice", "population"], "beta_region": ["practice", "region"],
        "beta_department": ["practice", "department"], "mu": ["population", "impact"],
        "a_region": ["region", "impact"], "a_department": ["department", "impact"],
        "gamma_age": ["impact", "age_group"], "gamma_size": ["impact", "size_class"],
        "alpha": ["item"], "kappa": ["item", "cutpoint"], "trait_sd": ["impact"],
        "trait_correlation": ["impact", "impact"],
    }
    practice_means = (fp.units.assign(population=np.asarray(POPULATIONS)[fp.units["population"]])
                      .groupby("population")[[*BINARY_PRACTICES, "n_partnerships"]].mean())
    truth = {
        "kind": TRUTH_KIND,
        "schema_version": TRUTH_SCHEMA_VERSION,
        "settings": asdict(settings),
        "coordinates": {
            "practice": list(EFFECT_PRACTICES), "impact": list(IMPACTS), "lens": list(LENSES),
            "dimension": list(DIMENSIONS), "population": list(POPULATIONS),
            "region": list(fp.region_codes), "department": list(fp.department_codes),
            "item": [i.column for i in codebook.items], "age_group": list(AGE_GROUPS),
            "size_class": list(SIZE_CLASSES),
        },
        "model": "see impactmodel.simulate.outcomes: cumulative logit, department effects are "
                 "deviations from their region's; maturity enters as level/4",
        "parameters": {name: _named(params[name], d) for name, d in dims.items()},
        "practice_parameters": fp.parameters,
        "design": design_log,
        "finite_population": {
            "impact_score_scale": "POMP 0-100 (impactmodel.scores)",
            "practice_means_by_population": {
                p: {k: float(v) for k, v in row.items()} for p, row in practice_means.iterrows()},
            **_score_truth(fp, answers, codebook),
        },
    }
    return Simulation(respondents, codebook, population_frame(fp), truth)


def write_simulation(sim: Simulation, out: str | Path) -> dict[str, Path]:
    """Write the respondent table, codebook, frame and truth into ``out``.

    Files are first written under temporary names and then renamed, so an interrupted
    run leaves no partial file under a final name.

    Parameters
    ----------
    sim : Simulation
    out : str or Path
        Output folder (created if needed).

    Returns
    -------
    dict of str to Path
        The written files by role.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "respondents": sim.respondents.to_csv(index=False, lineterminator="\n"),
        "codebook": dump_codebook(sim.codebook),
        "frame": sim.frame.to_csv(index=False, lineterminator="\n"),
        "truth": json.dumps(sim.truth, indent=1, sort_keys=True, allow_nan=False) + "\n",
    }
    paths = {}
    for role, text in contents.items():
        final = folder / FILES[role]
        tmp = final.with_name(final.name + ".partial")
        tmp.write_text(text, encoding="utf-8")
        paths[role] = final
    for role in contents:
        paths[role].with_name(paths[role].name + ".partial").replace(paths[role])
    return paths
