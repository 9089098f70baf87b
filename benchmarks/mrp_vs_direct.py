"""Per-territory scores against the simulator's finite-population truth: design-based
direct estimates, the model's expected scores, and MRP.

Each replication simulates a survey (new seed: new finite population and sample) whose
truth holds the mean impact score of every population x department (and population) of
the finite population. Three estimates of it:

- **direct**: the design-based domain mean (weights, strata, PSUs; Taylor SE), where the
  domain has respondents;
- **model**: the scale-score model's expected score at the respondents' mean practices
  (``ScaleScoreFit.expected_scores``), no post-stratification;
- **MRP**: the same model with the post-stratification variables as covariates,
  post-stratified to the simulator's frame (``impactmodel.bayes.mrp``), with the frame
  cells' practices from alike respondents plus shrunk territorial deviations (the
  default) or from alike respondents only ("alike-only").

Reported per replication: RMSE over the population x department x impact cells where the
direct estimate exists (and for MRP over all cells), and the coverage of the 90% posterior
intervals of MRP (and of the 90% confidence intervals of the direct estimates).

    .venv/bin/python benchmarks/mrp_vs_direct.py --replications 3 --respondents 4000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings
from impactmodel.bayes.fit import fit_scale_scores
from impactmodel.bayes.mrp import poststratify, read_frame
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.survey.impact import impact_score_table

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]
KEYS = ["population", "department", "impact"]


def _rmse(estimate: pd.Series, truth: pd.Series) -> float:
    return float(np.sqrt(np.mean((estimate - truth) ** 2)))


def replication(seed: int, respondents: int, draws: int) -> dict[str, float]:
    """One simulated survey: RMSE and coverage of the three estimates."""
    with tempfile.TemporaryDirectory() as folder:
        paths = write_simulation(simulate(SimulationSettings(seed=seed,
                                                             respondents=respondents)), folder)
        survey = load_survey(paths["respondents"], paths["codebook"])
        frame = read_frame(paths["frame"], survey.codebook)
        truth = pd.DataFrame(json.loads(paths["truth"].read_text())["finite_population"][
            "by_population_department"]).rename(columns={"mean": "truth"})
    direct = impact_score_table(survey, ["population", "department"], lonely_psu="adjust",
                                level=0.90)
    direct = direct[~direct["cell"].str.contains(":")].rename(columns={"cell": "impact"})
    settings = SamplerSettings(draws=draws, tune=draws, seed=seed)
    plain = fit_scale_scores(survey, practices=PRACTICES, settings=settings)
    mrp_fit = fit_scale_scores(survey, practices=PRACTICES, settings=settings,
                               covariates=list(frame.variables))
    model = plain.expected_scores("department")
    mrp = poststratify(mrp_fit, frame)["department"]
    alike = poststratify(mrp_fit, frame, territorial_practices=False)["department"]
    table = (truth.merge(direct[[*KEYS, "estimate", "ci_low", "ci_high"]], on=KEYS, how="left")
             .merge(model[[*KEYS, "mean"]].rename(columns={"mean": "model"}), on=KEYS)
             .merge(mrp[[*KEYS, "mean", "low", "high"]].rename(columns={"mean": "mrp"}),
                    on=KEYS)
             .merge(alike[[*KEYS, "mean", "low", "high"]].rename(columns={
                 "mean": "alike", "low": "alike_low", "high": "alike_high"}), on=KEYS))
    has_direct = table["estimate"].notna()
    sub = table[has_direct]
    return {
        "cells": len(table), "with direct": int(has_direct.sum()),
        "rmse direct": _rmse(sub["estimate"], sub["truth"]),
        "rmse model": _rmse(sub["model"], sub["truth"]),
        "rmse MRP": _rmse(sub["mrp"], sub["truth"]),
        "rmse MRP (all)": _rmse(table["mrp"], table["truth"]),
        "rmse MRP alike-only": _rmse(sub["alike"], sub["truth"]),
        "cover direct 90%": float(((sub["ci_low"] <= sub["truth"])
                                   & (sub["truth"] <= sub["ci_high"])).mean()),
        "cover MRP 90%": float(((table["low"] <= table["truth"])
                                & (table["truth"] <= table["high"])).mean()),
        "cover alike-only 90%": float(((table["alike_low"] <= table["truth"])
                                       & (table["truth"] <= table["alike_high"])).mean()),
        "converged": float(plain.convergence.converged and mrp_fit.convergence.converged),
    }


def main() -> None:
    """Run the replications and print one row per replication and the means."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=3)
    parser.add_argument("--respondents", type=int, default=4000)
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    console, rows, start = Console(), [], time.perf_counter()
    for r in range(args.replications):
        rows.append(replication(200 + r, args.respondents, args.draws))
        console.print(f"replication {r + 1}: {rows[-1]}")
    results = pd.DataFrame(rows)
    table = Table(title=f"{args.replications} surveys, {args.respondents} target respondents, "
                        f"{time.perf_counter() - start:.0f} s")
    for column in ("replication", *results.columns):
        table.add_column(column, justify="right")
    for k, row in results.iterrows():
        table.add_row(str(k + 1), *(f"{v:.3f}" if isinstance(v, float) else str(v)
                                    for v in row))
    table.add_row("mean", *(f"{v:.3f}" for v in results.mean()))
    console.print(table)


if __name__ == "__main__":
    main()
