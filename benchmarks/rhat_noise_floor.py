"""How often a perfectly well-posed target fails the convergence check, by its dimension.

The harness (``bench_bayes.py``) passes a fit when every parameter's rank-normalised
R-hat (the larger of the bulk and the folded one; Vehtari et al. 2021) is at most 1.01.
The item model has one latent location per respondent and impact: 27,606 at the issue's
10,000-respondent survey, 244,413 at its 100,000 one. R-hat is a random variable even
for stationary chains, and the check takes its maximum over all of them.

Here nutpie samples an iid standard normal of that dimension (the easiest target there is:
its posterior is its prior, its mass matrix diagonal) with the package's chains and
warm-up (4 chains, 300 steps) and nutpie's own NUTS defaults (Euclidean trajectories,
target acceptance 0.8; the item model uses 0.72 and microcanonical ones), and the table
gives, per seed, the largest R-hat, how many coordinates exceed the threshold, and the
coordinates' bulk and folded ESS (the ESS of ``|x - median|``, which the folded R-hat
reads). A fit of the item model whose locations mix like these cannot do better on that
check.

    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 1000 27606 --seeds 1 2 3 4
    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 27606 --draws 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import nutpie
import pymc as pm
from rich.console import Console
from rich.table import Table

from impactmodel.bayes.diagnostics import Thresholds, array_diagnostics


def sample_normal(dimension: int, draws: int, seed: int) -> tuple[np.ndarray, float, float]:
    """Draws (chains, draws, dimension) of an iid standard normal, steps per draw, seconds."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=dimension)
    compiled = nutpie.compile_pymc_model(model)
    start = time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=300, chains=4, seed=seed,
                          progress_bar=False)
    seconds = time.perf_counter() - start
    steps = float(idata["sample_stats"]["n_steps"].mean())
    return np.asarray(idata["posterior"]["x"].values), steps, seconds


def main() -> None:
    """Sample each dimension and seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dimensions", type=int, nargs="+", default=[1000, 27606])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    args = parser.parse_args()
    threshold = Thresholds().max_rhat
    table = Table(title=f"iid standard normal, nutpie, 4 chains x {args.draws} draws "
                        f"(+ 300 warm-up): the R-hat <= {threshold} check")
    for column in ("dimension", "seed", "steps per draw", "sample s", "max R-hat",
                   f"coordinates > {threshold}", "passes", "bulk ESS (1 % / median)",
                   "folded ESS (1 % / median)"):
        table.add_column(column, justify="right")
    for dimension in args.dimensions:
        for seed in args.seeds:
            draws, steps, seconds = sample_normal(dimension, args.draws, seed)
            rhat, bulk, _ = array_diagnostics(draws)
            median = np.median(draws.reshape(-1, dimension), axis=0)
            _, folded, _ = array_diagnostics(np.abs(draws - median))
            over = int((rhat > threshold).sum())
            table.add_row(f"{dimension:,}", str(seed), f"{steps:.1f}", f"{seconds:.1f}",
                          f"{rhat.max():.4f}", f"{over:,}", "yes" if over == 0 else "no",
                          f"{np.quantile(bulk, 0.01):,.0f} / {np.median(bulk):,.0f}",
                          f"{np.quantile(folded, 0.01):,.0f} / {np.median(folded):,.0f}")
            del draws
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
