"""Per-department scores: BYM2 spatial pooling against region nesting only.

Each replication simulates a survey (new seed) whose department intercepts are, for a
share ``--spatial-share`` of their variance, an ICAR field over the department adjacency
(``SimulationSettings.spatial_share``; 0 = no spatial structure, where BYM2 should not
hurt). The scale-score model is fitted twice — nested (departments within regions) and
with BYM2 department intercepts (``spatial="bym2"``) — and each model's expected score per
population x department x impact (``ScaleScoreFit.expected_scores``) is compared with the
finite population's mean score: RMSE over every cell, over the cells with at most 5
respondents (where pooling matters most), and the 90% interval coverage.

    .venv/bin/python benchmarks/bym2_vs_nested.py --replications 4 --spatial-share 0.8
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
from impactmodel.simulate import SimulationSettings, simulate, write_simulation

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]
KEYS = ["population", "department", "impact"]


def _rmse(error: pd.Series) -> float:
    return float(np.sqrt(np.mean(error**2)))


def replication(seed: int, respondents: int, draws: int, share: float) -> dict[str, float]:
    """One simulated survey: both models' RMSE and coverage per department."""
    with tempfile.TemporaryDirectory() as folder:
        settings = SimulationSettings(seed=seed, respondents=respondents, spatial_share=share)
        paths = write_simulation(simulate(settings), folder)
        survey = load_survey(paths["respondents"], paths["codebook"])
        truth = pd.DataFrame(json.loads(paths["truth"].read_text())["finite_population"][
            "by_population_department"]).rename(columns={"mean": "truth"})
        counts = (survey.frame.assign(population=survey.population.astype(str),
                                      department=survey.department.astype(str))
                  .groupby(["population", "department"]).size().rename("n").reset_index())
        sampler = SamplerSettings(draws=draws, tune=draws, seed=seed)
        row: dict[str, float] = {"seed": seed}
        for spatial in ("none", "bym2"):
            start = time.perf_counter()
            fit = fit_scale_scores(survey, practices=PRACTICES, settings=sampler,
                                   spatial=spatial)  # type: ignore[arg-type]
            scores = fit.expected_scores("department")
            table = truth.merge(scores, on=KEYS).merge(counts, on=["population",
                                                                   "department"], how="left")
            table["n"] = table["n"].fillna(0)
            error = table["mean"] - table["truth"]
            label = "nested" if spatial == "none" else "BYM2"
            row[f"rmse {label}"] = _rmse(error)
            row[f"rmse {label} n<=5"] = _rmse(error[table["n"] <= 5])
            row[f"cover {label}"] = float(((table["low"] <= table["truth"])
                                           & (table["truth"] <= table["high"])).mean())
            row[f"seconds {label}"] = time.perf_counter() - start
            row[f"converged {label}"] = float(fit.convergence.converged)
            if spatial == "bym2":
                rho = fit.draws("u_department_rho")
                row["rho (BYM2)"] = float(rho.mean())
    return row


def main() -> None:
    """Run the replications and print one row per replication and the means."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--respondents", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--spatial-share", type=float, default=0.8)
    args = parser.parse_args()
    console, rows, start = Console(width=200), [], time.perf_counter()
    for r in range(args.replications):
        rows.append(replication(300 + r, args.respondents, args.draws, args.spatial_share))
        console.print(f"replication {r + 1}: {rows[-1]}")
    results = pd.DataFrame(rows)
    table = Table(title=f"{args.replications} surveys, {args.respondents} target respondents, "
                        f"spatial share {args.spatial_share}, "
                        f"{time.perf_counter() - start:.0f} s")
    for column in results.columns:
        table.add_column(column, justify="right")
    for _, row in results.iterrows():
        table.add_row(*(f"{v:.3f}" for v in row))
    table.add_row(*(f"{v:.3f}" for v in results.mean()))
    console.print(table)


if __name__ == "__main__":
    main()
