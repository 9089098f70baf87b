"""Simulation-based calibration (Talts et al. 2018) of the scale-score model, reduced size.

For each replication: draw every parameter from the model's prior, simulate scores from
them (:func:`impactmodel.bayes.predictive.replicated_scores`, the model's own generative
story), fit the model through the package's code path (nutpie, the compiled model reused
across replications), and record the rank of the true value among thinned posterior
draws. If the implementation is right, ranks are uniform: the script prints rank
histograms and a chi-square uniformity test per parameter, and saves the histograms.

The reduced survey: 300 respondents in 4 populations, 12 departments in 4 regions, six
cells (two per impact), two practices; the real model code, only smaller.

    .venv/bin/python benchmarks/sbc_scale_scores.py --replications 200
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pymc as pm
from rich.console import Console
from rich.table import Table
from scipy import stats

from impactmodel.bayes import SamplerSettings, sample_model
from impactmodel.bayes.gaussian import scale_score_model
from impactmodel.bayes.model_data import ScoreData
from impactmodel.bayes.predictive import replicated_scores

#: (variable, selection) checked; selections index the variable's named dims
CHECKED = [("b", {"practice": "partners"}), ("b", {"practice": "maturity"}),
           ("sigma", {}), ("trait_sd", {"impact": "trust"}),
           ("alpha", {"cell": "performance:ecosystem:political", "population": "citizen"}),
           ("effect_cell", {"practice": "partners", "impact": "innovation",
                            "lens": "individual", "dimension": "social"}),
           ("effect_population", {"practice": "partners", "population": "elected"}),
           ("u_department", {"impact": "performance", "department": "d00"}),
           ("u_department_scale", {}), ("u_region_scale", {})]


def reduced_design(seed: int = 0, n: int = 300) -> ScoreData:
    """The reduced survey's structure (scores are placeholders, replaced per replication)."""
    rng = np.random.default_rng(seed)
    n_dept, n_region = 12, 4
    cells = ["performance:ecosystem:political", "performance:organisation:economic",
             "innovation:ecosystem:social", "innovation:individual:social",
             "trust:organisation:environmental", "trust:individual:fulfilment"]
    impacts, lenses = ["performance", "innovation", "trust"], ["ecosystem", "organisation",
                                                               "individual"]
    dims = ["political", "economic", "social", "environmental", "societal", "fulfilment"]
    parts = [c.split(":") for c in cells]
    population = rng.integers(0, 4, n)
    department = rng.integers(0, n_dept, n)
    x = np.column_stack([rng.binomial(1, 0.4, n), rng.integers(0, 4, n) / 3]).astype(float)
    # each respondent answers a random 4 of the 6 cells (missing by design and nonresponse)
    answered = np.array([rng.permutation(6)[:4] for _ in range(n)])
    respondent = np.repeat(np.arange(n), 4)
    cell = answered.ravel()
    cell_impact = np.array([impacts.index(p[0]) for p in parts])
    codes, group = np.unique(respondent * 3 + cell_impact[cell], return_inverse=True)
    return ScoreData(
        y=np.zeros(len(cell)), respondent=respondent, cell=cell, group=group,
        group_impact=codes % 3, x=x - x.mean(axis=0), x_means=x.mean(axis=0),
        population=population, department=department, cell_impact=cell_impact,
        cell_lens=np.array([lenses.index(p[1]) for p in parts]),
        cell_dimension=np.array([dims.index(p[2]) for p in parts]),
        department_region=np.arange(n_dept) % n_region,
        coords={"practice": ["partners", "maturity"], "cell": cells, "impact": impacts,
                "lens": lenses, "dimension": dims,
                "population": ["citizen", "elected", "business", "association"],
                "region": [f"r{k}" for k in range(n_region)],
                "department": [f"d{k:02d}" for k in range(n_dept)]})


def main() -> None:
    """Run the calibration and print the uniformity tests."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--draws", type=int, default=250, help="per chain, 4 chains")
    parser.add_argument("--thin", type=int, default=10)
    parser.add_argument("--figure", type=Path, default=Path("benchmarks/sbc_ranks.png"))
    args = parser.parse_args()
    console = Console()
    design = reduced_design()
    model = scale_score_model(design, parametrisation="non-centred").model
    names = [v.name for v in model.free_RVs + model.deterministics]
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the model has potentials": intended
        prior = pm.sample_prior_predictive(draws=args.replications, random_seed=11,
                                           var_names=names)
    truths = prior["prior"].to_dataset()
    n_post = 4 * args.draws // args.thin
    ranks = {i: [] for i in range(len(CHECKED))}
    failures, start, ess = 0, time.perf_counter(), []
    for r in range(args.replications):
        truth = truths.isel(draw=[r])
        y = replicated_scores(design, truth, np.random.default_rng(1000 + r)).values.ravel()
        built = scale_score_model(replace(design, y=y), parametrisation="non-centred")
        fit = sample_model(built, SamplerSettings(draws=args.draws, tune=args.draws,
                                                  seed=r))
        failures += not fit.convergence.converged
        ess.append(fit.convergence.min_ess_bulk)
        post = fit.idata["posterior"].isel(draw=slice(None, None, args.thin))
        for i, (name, sel) in enumerate(CHECKED):
            true_value = float(truth[name].sel(sel).values.ravel()[0])
            draws = post[name].sel(sel).values.ravel()
            ranks[i].append(int((draws < true_value).sum()))
        if (r + 1) % 10 == 0:
            console.print(f"{r + 1} replications, {time.perf_counter() - start:.0f} s, "
                          f"{failures} not converged")
    bins = 10
    table = Table(title=f"SBC: {args.replications} replications, ranks among {n_post} "
                        f"posterior draws, {bins} bins (chi-square test of uniformity)")
    for col in ("parameter", "counts per bin", "chi-square", "p-value"):
        table.add_column(col, no_wrap=True)
    fig, axes = plt.subplots(2, (len(CHECKED) + 1) // 2, figsize=(16, 6), sharey=True)
    for i, (name, sel) in enumerate(CHECKED):
        counts = np.histogram(ranks[i], bins=bins, range=(0, n_post + 1))[0]
        chi2, p_value = stats.chisquare(counts)
        label = name + ("[" + ", ".join(str(v) for v in sel.values()) + "]" if sel else "")
        table.add_row(label, " ".join(f"{c:3d}" for c in counts), f"{chi2:.1f}",
                      f"{p_value:.3f}")
        ax = axes.ravel()[i]
        ax.bar(range(bins), counts, color="0.6")
        ax.axhline(args.replications / bins, color="k", lw=1)
        ax.set_title(label, fontsize=7)
    fig.suptitle("SBC rank histograms (uniform if the implementation is right)")
    fig.tight_layout()
    fig.savefig(args.figure, dpi=90)
    console.print(table)
    console.print(f"{failures} of {args.replications} fits flagged not converged at the "
                  f"default thresholds (ESS >= 400 for 4 x {args.draws} draws); minimum bulk "
                  f"ESS >= the {n_post} thinned draws in "
                  f"{np.mean(np.array(ess) >= n_post):.0%} of fits (median "
                  f"{np.median(ess):.0f}), so the ranks use near-independent draws; "
                  f"divergent fits: see above; figure: {args.figure}")


if __name__ == "__main__":
    main()
