"""Coverage of the weighted pseudo-posterior, adjusted and not, on repeated surveys.

One finite population (the simulator's, with every unit's answers) is the census; the
scale-score model fitted to the whole census, each unit of population ``p`` weighing
``n_p / N_p`` (what the pseudo-likelihood, normalised within populations, estimates),
gives the finite-population value of its population-level effects (``effect_cell``:
practice x impact x lens x dimension, and ``effect_population``: practice x population;
the census posterior sd is negligible).
Each replication draws a new survey from that census with the simulator's stratified,
clustered, unequal-probability designs, nonresponse and raked weights, and fits the
survey-weighted scale-score model (``impactmodel.bayes.pseudo_posterior``). Reported:
the share of 90% intervals covering the census value, unadjusted (the pseudo-posterior as
sampled) and adjusted (draws mapped to the design-based sandwich), with the binomial
standard error over replications x quantities (quantities within a replication are
correlated, so read it as a lower bound).

    .venv/bin/python benchmarks/pseudo_posterior_coverage.py --replications 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from rich.console import Console
from rich.table import Table

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings
from impactmodel.bayes.fit import fit_scale_scores
from impactmodel.bayes.gaussian import scale_score_model
from impactmodel.bayes.model_data import build_score_data
from impactmodel.bayes.sampling import sample_model
from impactmodel.simulate import (
    Census,
    SimulationSettings,
    draw_respondents,
    finite_population,
)
from impactmodel.simulate.questionnaire import AGE_GROUPS, MATURITY_LEVELS, SIZE_CLASSES
from impactmodel.simulate.run import population_frame
from impactmodel.survey.impact import calibrated_design, design_from_survey
from impactmodel.vocabulary import POPULATIONS

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]
QUANTITIES = ("effect_cell", "effect_population")
CALIBRATION = ("region", "age_group", "size_class")


def census_table(census: Census) -> pd.DataFrame:
    """Every unit of the finite population as a respondent (weight 1, its own PSU)."""
    units = census.units.units
    fp = census.units
    table = pd.DataFrame({
        "respondent_id": [f"U{k:07d}" for k in range(len(units))],
        "population": np.asarray(POPULATIONS)[units["population"]],
        "department": np.asarray(fp.department_codes)[units["department"]],
        "stratum": "census", "psu": [f"u{k}" for k in range(len(units))],
        "fpc": float(len(units)), "weight": 1.0,
        "age_group": np.asarray(AGE_GROUPS)[units["age_group"]],
        "size_class": np.asarray(SIZE_CLASSES)[units["size_class"]],
    })
    for name in ("partners", "with_association", "with_company", "with_public",
                 "mode_philanthropy", "mode_responsible", "mode_cooperation",
                 "mode_innovation"):
        table[name] = units[name].to_numpy()
    table["maturity"] = np.asarray(MATURITY_LEVELS)[units["maturity"]]
    table["n_partnerships"] = units["n_partnerships"].to_numpy()
    for j, item in enumerate(census.codebook.items):
        table[item.column] = pd.array(census.answers[:, j], dtype="Float64").astype("Int64")
    return table


def load(table: pd.DataFrame, census: Census, folder: Path, name: str):
    """Write a respondent table beside the simulated codebook and load it as a survey."""
    from impactmodel.codebook import dump_codebook

    book = folder / "codebook.toml"
    if not book.exists():
        book.write_text(dump_codebook(census.codebook), encoding="utf-8")
    path = folder / f"{name}.parquet"
    table.to_parquet(path, index=False)
    return load_survey(path, book)


def stacked(posterior: xr.Dataset, name: str) -> xr.DataArray:
    return posterior[name].stack(sample=("chain", "draw"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--respondents", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calibrate", action="store_true",
                        help="compute J on the design raked (within population) to the "
                             "census totals of region, age group and size class, the "
                             "margins the simulator's weights were raked to")
    args = parser.parse_args()
    console = Console(width=160)
    settings = SimulationSettings(seed=args.seed, respondents=args.respondents)
    census = finite_population(settings)
    totals = population_frame(census.units)
    sampler = SamplerSettings(draws=args.draws, tune=1000, chains=2, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        whole = load(census_table(census), census, folder, "census")
        data = build_score_data(whole, PRACTICES)
        size = np.bincount(data.population, minlength=len(POPULATIONS))
        expected = np.array([settings.shares[p] * args.respondents for p in POPULATIONS])
        data = replace(data, weight=(expected / size)[data.population])
        census_fit = sample_model(scale_score_model(data), SamplerSettings(
            draws=300, tune=500, chains=2, seed=1))
        truth = {q: stacked(census_fit.idata["posterior"].to_dataset(), q).mean("sample")
                 for q in QUANTITIES}
        console.print(f"census: {whole.n_respondents} units, fitted in "
                      f"{time.perf_counter() - start:.0f} s; converged "
                      f"{census_fit.convergence.converged}")
        rows = []
        for rep in range(args.replications):
            start = time.perf_counter()
            sample, _ = draw_respondents(census, settings, np.random.default_rng(10_000 + rep))
            survey = load(sample.drop(columns="unit"), census, folder, f"survey{rep}")
            if args.calibrate:
                design, _ = calibrated_design(survey, totals, CALIBRATION,
                                              lonely_psu="adjust")
            else:
                design = design_from_survey(survey, lonely_psu="adjust")
            fit = fit_scale_scores(survey, practices=PRACTICES, settings=sampler,
                                   design=design)
            row: dict[str, float] = {"replication": rep,
                                     "respondents": float(survey.n_respondents),
                                     "converged": float(fit.convergence.converged)}
            for group in ("unadjusted_posterior", "posterior"):
                posterior = fit.idata[group].to_dataset()
                for q in QUANTITIES:
                    draws = stacked(posterior, q)
                    low, high = draws.quantile(0.05, "sample"), draws.quantile(0.95, "sample")
                    inside = ((low <= truth[q]) & (truth[q] <= high)).values.ravel()
                    row[f"{group}:{q}"] = float(inside.mean())
                    row[f"{group}:{q}:n"] = float(inside.size)
            assert fit.design_adjustment is not None
            summary = fit.design_adjustment.summary()
            row["variance_ratio_median"] = summary["variance_ratio"]["median"]  # type: ignore[index]
            row["rank"], row["parameters"] = summary["rank"], summary["parameters"]  # type: ignore[assignment]
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            console.print({k: round(v, 3) for k, v in row.items()})
    results = pd.DataFrame(rows)
    table = Table(title=f"90% interval coverage of the census value, {args.replications} "
                        f"surveys of ~{args.respondents} respondents, 2 x {args.draws} draws"
                        + (", J on the calibrated design" if args.calibrate else ""))
    for column in ("quantity", "unadjusted", "adjusted", "(binomial se)"):
        table.add_column(column)
    for q in QUANTITIES:
        n = results[f"posterior:{q}:n"].sum()
        adjusted = float((results[f"posterior:{q}"] * results[f"posterior:{q}:n"]).sum() / n)
        raw = float((results[f"unadjusted_posterior:{q}"]
                     * results[f"unadjusted_posterior:{q}:n"]).sum() / n)
        table.add_row(q, f"{raw:.3f}", f"{adjusted:.3f}",
                      f"{np.sqrt(0.9 * 0.1 / n):.3f}")
    console.print(table)
    console.print(f"median variance ratio (adjusted / unadjusted): "
                  f"{results['variance_ratio_median'].median():.2f}; fits converged: "
                  f"{int(results['converged'].sum())}/{len(results)}; mean "
                  f"{results['seconds'].mean():.0f} s per replication")


if __name__ == "__main__":
    main()
