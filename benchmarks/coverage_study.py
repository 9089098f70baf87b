"""Repeated-simulation coverage of the ordinal model's practice effects (the long version).

The CI test (``tests/test_bayes_ordinal.py``) checks one simulated survey. Here each
replication simulates a new survey (new seed: new finite population, new parameters,
new sample), fits the item-level model through ``fit_items`` and records whether each
90% interval of ``effect_cell`` covers the simulator's value (the same target as the
test: the cell effect plus the means that the sum-to-zero parts move into it). Intervals
within one survey share parameters, so the uncertainty of the overall rate is taken
across replications (a t interval on the per-replication rates), not as if the
6 x 54 intervals were independent.

    .venv/bin/python benchmarks/coverage_study.py --replications 12 --respondents 800

Each fit runs 4 chains x 1,000 draws after 500 tuning steps; besides the whole fit's
convergence report, each replication prints the diagnostics of ``effect_cell`` itself
(the parameters whose intervals are scored).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import arviz as az
import numpy as np
from rich.console import Console
from scipy import stats

from impactmodel import load_survey
from impactmodel.bayes import SamplerSettings
from impactmodel.bayes.fit import fit_items
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.simulate.outcomes import effect_cell_in_sum_to_zero_coding

PRACTICES = ["partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
             "mode_innovation", "maturity"]


def main() -> None:
    """Run the replications and print the coverage with its uncertainty."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--respondents", type=int, default=800)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=500)
    args = parser.parse_args()
    console = Console()
    rates, converged, target_ok, start = [], 0, 0, time.perf_counter()
    for r in range(args.replications):
        with tempfile.TemporaryDirectory() as folder:
            paths = write_simulation(
                simulate(SimulationSettings(seed=100 + r, respondents=args.respondents)), folder)
            survey = load_survey(paths["respondents"], paths["codebook"])
            truth = json.loads(paths["truth"].read_text())["parameters"]
        fit = fit_items(survey, practices=PRACTICES, covariates=["age_group", "size_class"],
                        settings=SamplerSettings(draws=args.draws, tune=args.tune, seed=r))
        converged += fit.convergence.converged
        # the intervals' own diagnostics (the whole fit's may fail on a variance parameter)
        rhat = float(az.rhat(fit.idata, var_names=["effect_cell"]).ds["effect_cell"].max())
        ess = float(az.ess(fit.idata, var_names=["effect_cell"]).ds["effect_cell"].min())
        target_ok += rhat <= 1.01 and ess >= 400
        target = effect_cell_in_sum_to_zero_coding(truth, fit.data.department_region)
        post = fit.draws("effect_cell").values
        low, high = np.quantile(post, 0.05, axis=-1), np.quantile(post, 0.95, axis=-1)
        rates.append(float(np.mean((low <= target) & (target <= high))))
        console.print(f"replication {r + 1}: coverage {rates[-1]:.3f} "
                      f"({time.perf_counter() - start:.0f} s; effect_cell max R-hat {rhat:.3f}, "
                      f"min bulk ESS {ess:.0f}; whole fit: {fit.convergence})")
    mean = float(np.mean(rates))
    half = (stats.t.ppf(0.975, len(rates) - 1) * np.std(rates, ddof=1) / np.sqrt(len(rates))
            if len(rates) > 1 else float("nan"))
    console.print(f"90% intervals of effect_cell: coverage {mean:.3f} "
                  f"(95% CI {mean - half:.3f} to {mean + half:.3f}) over {len(rates)} "
                  f"simulated surveys of {args.respondents} target respondents; "
                  f"{converged} fits converged on every parameter, {target_ok} on effect_cell")


if __name__ == "__main__":
    main()
