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
check. ``--dynamics package`` samples instead through the package's own sampler path
(``sample_model`` on a ``BuiltModel``) with the item model's depth cap, target acceptance
and microcanonical trajectories. ``--dynamics exact`` is the control: independent draws
from numpy's generator, no sampler at all, so the table shows what the check gives when
every coordinate's 4 x ``--draws`` draws are independent.

    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 1000 27606 --seeds 1 2 3 4
    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 27606 --draws 2000
    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 244741 --dynamics package
    .venv/bin/python benchmarks/rhat_noise_floor.py --dimensions 27606 244741 --dynamics exact
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
from impactmodel.bayes.ordinal import MAX_DEPTH, TARGET_ACCEPT, TRAJECTORY
from impactmodel.bayes.sampling import BuiltModel, SamplerSettings, sample_model


def sample_normal(dimension: int, draws: int, seed: int, dynamics: str
                  ) -> tuple[np.ndarray, float, float]:
    """Draws (chains, draws, dimension) of an iid standard normal, steps per draw, seconds.

    ``dynamics="nutpie"`` samples with nutpie's own NUTS defaults; ``"package"`` samples
    through the package's own path (``sample_model`` on a ``BuiltModel``: its compiled-model
    cache, its storage of the draws) with the item model's depth cap, target acceptance
    and trajectories; its seconds then include compiling the model (once per process).
    ``"exact"`` draws independent standard normals with numpy (no steps: NaN).
    """
    if dynamics == "exact":
        start = time.perf_counter()
        exact = np.random.default_rng(seed).standard_normal((4, draws, dimension))
        return exact, float("nan"), time.perf_counter() - start
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=dimension)
    if dynamics == "package":
        start = time.perf_counter()
        built = BuiltModel(model, {}, ("rhat_noise_floor", dimension), max_depth=MAX_DEPTH,
                           target_accept=TARGET_ACCEPT, trajectory=TRAJECTORY)
        settings = SamplerSettings(draws=draws, tune=300, chains=4, seed=seed)
        idata = sample_model(built, settings).idata
    else:
        compiled = nutpie.compile_pymc_model(model)
        start = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=300, chains=4, seed=seed,
                              progress_bar=False)
    seconds = time.perf_counter() - start
    steps = float(idata["sample_stats"]["n_steps"].mean())
    return np.asarray(idata["posterior"]["x"].values), steps, seconds


def folded_ess(draws: np.ndarray, block: int = 20_000) -> np.ndarray:
    """Bulk ESS of ``|x - median|`` per coordinate (what the folded R-hat reads), by blocks."""
    ess = np.empty(draws.shape[2])
    for start in range(0, draws.shape[2], block):
        part = draws[:, :, start:start + block]
        median = np.median(part.reshape(-1, part.shape[2]), axis=0)
        ess[start:start + block] = array_diagnostics(np.abs(part - median))[1]
    return ess


def main() -> None:
    """Sample each dimension and seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dimensions", type=int, nargs="+", default=[1000, 27606])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    parser.add_argument("--dynamics", choices=("nutpie", "package", "exact"),
                        default="nutpie",
                        help="nutpie's NUTS defaults, or the item model's settings "
                             f"(depth cap {MAX_DEPTH}, target acceptance {TARGET_ACCEPT}, "
                             f"{TRAJECTORY} trajectories) through the package's sampler, "
                             "or independent draws from numpy (the control)")
    args = parser.parse_args()
    threshold = Thresholds().max_rhat
    table = Table(title=f"iid standard normal, {args.dynamics} dynamics, 4 chains x "
                        f"{args.draws} draws (+ 300 warm-up): the R-hat <= {threshold} check")
    for column in ("dimension", "seed", "steps per draw", "sample s", "max R-hat",
                   f"coordinates > {threshold}", "passes", "bulk ESS (1 % / median)",
                   "folded ESS (1 % / median)"):
        table.add_column(column, justify="right")
    for dimension in args.dimensions:
        for seed in args.seeds:
            draws, steps, seconds = sample_normal(dimension, args.draws, seed, args.dynamics)
            rhat, bulk, _ = array_diagnostics(draws)
            folded = folded_ess(draws)
            over = int((rhat > threshold).sum())
            table.add_row(f"{dimension:,}", str(seed), f"{steps:.1f}", f"{seconds:.1f}",
                          f"{rhat.max():.4f}", f"{over:,}", "yes" if over == 0 else "no",
                          f"{np.quantile(bulk, 0.01):,.0f} / {np.median(bulk):,.0f}",
                          f"{np.quantile(folded, 0.01):,.0f} / {np.median(folded):,.0f}")
            del draws
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
