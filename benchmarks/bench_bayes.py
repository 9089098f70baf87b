"""Benchmark the Bayesian impact models: compile and sampling time, ESS/s, diagnostics.

Each (model, respondents, sampler) case runs in its own subprocess on a simulated survey
(peak memory = that process's max RSS). First version: the package's own formulations
with nutpie and with PyMC's NUTS; the naive-formulation baseline of the issue is still to
be added.

    .venv/bin/python benchmarks/bench_bayes.py [--respondents 1000 4000] [--models gaussian]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from rich.console import Console
from rich.table import Table

CASE = r"""
import json, resource, sys, tempfile, time
from impactmodel import load_survey
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.bayes import SamplerSettings, sample_model
model_name, n, sampler, draws = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
practices = ["partners", "mode_cooperation", "maturity"]
with tempfile.TemporaryDirectory() as tmp:
    paths = write_simulation(simulate(SimulationSettings(seed=1, respondents=n)), tmp)
    survey = load_survey(paths["respondents"], paths["codebook"])
if model_name == "gaussian":
    from impactmodel.bayes.model_data import build_score_data
    from impactmodel.bayes.gaussian import scale_score_model
    model = scale_score_model(build_score_data(survey, practices))
else:
    from impactmodel.bayes.item_data import build_item_data
    from impactmodel.bayes.ordinal import ordinal_item_model
    model = ordinal_item_model(build_item_data(survey, practices))
t0 = time.perf_counter()
result = sample_model(model, SamplerSettings(sampler=sampler, draws=draws, tune=draws,
                                             chains=4, seed=1))
wall = time.perf_counter() - t0
c = result.convergence
print(json.dumps({"wall_s": wall, "ess_bulk": c.min_ess_bulk, "ess_tail": c.min_ess_tail,
                  "rhat": c.max_rhat, "divergences": c.divergences, "bfmi": c.min_bfmi,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "respondents": survey.n_respondents}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--respondents", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--models", nargs="+", default=["gaussian", "ordinal"])
    parser.add_argument("--samplers", nargs="+", default=["nutpie", "pymc"])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed per case (a case over it is reported)")
    args = parser.parse_args()
    console = Console()
    table = Table(title="Bayesian impact models, 4 chains (wall time includes compilation)")
    for col in ("model", "target n", "sampler", "wall s", "min bulk ESS", "ESS/s",
                "max R-hat", "divergences", "peak MB"):
        table.add_column(col, justify="right")
    for model in args.models:
        for n in args.respondents:
            for sampler in args.samplers:
                try:
                    done = subprocess.run([sys.executable, "-c", CASE, model, str(n), sampler,
                                           str(args.draws)], capture_output=True, text=True,
                                          timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    row = [model, f"{n:,}", sampler, f"> {args.timeout:.0f}", "", "", "", "",
                           ""]
                else:
                    if done.returncode != 0:
                        console.print(done.stderr[-800:])
                        row = [model, f"{n:,}", sampler, "failed", "", "", "", "", ""]
                    else:
                        r = json.loads(done.stdout.strip().splitlines()[-1])
                        row = [model, f"{n:,}", sampler, f"{r['wall_s']:.0f}",
                               f"{r['ess_bulk']:.0f}", f"{r['ess_bulk'] / r['wall_s']:.1f}",
                               f"{r['rhat']:.3f}", str(r["divergences"]),
                               f"{r['peak_mb']:.0f}"]
                table.add_row(*row)
                console.print(" | ".join(row))  # progress, in case a later case hangs
    console.print(table)


if __name__ == "__main__":
    main()
