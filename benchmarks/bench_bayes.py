"""Benchmark the Bayesian impact models against the naive baseline, in the same run.

Each case (model x respondents x formulation x sampler x seed) runs in its own
subprocess on a simulated survey (simulated once per size and cached under ``--cache``;
simulation time is not counted). Per case: preparation (data arrays, sufficient
statistics), compilation in a new process (cold: empty PyTensor and impactmodel caches;
first: a structure not yet in impactmodel's cache of compiled models; cached: loaded
from it, as in the measured runs, see ``impactmodel.bayes.compile_cache``), sampling
time (with, for the ordinal model, the draws of the integrated department slopes that
``fit_items`` adds), end-to-end wall time, minimum bulk and tail ESS, ESS per second
(end to end) and per gradient evaluation (post-warmup), divergences, R-hat, E-BFMI, peak
memory (this process plus its largest child times the worker count), and, for the
package's formulation with nutpie, the overhead of a second fit of the same structure on
new data (model build + reuse of the compiled model). For the item model the second
survey has another number of respondents, which is another structure (its locations'
count is compiled in): its second fit compiles unless the package's cache already holds
that structure (``generic_shapes.py`` probes the way out).

The baseline is always PyMC's default NUTS on the naive formulation
(``benchmarks/naive_models.py``) of the same model on the same data. Only runs passing
R-hat <= 1.01, minimum bulk ESS >= 400 and no divergences pass, and as issue 4 asks the
table counts only them: each case's row gives the count of passing runs and the medians
over the passing ones. A case with no passing run shows the medians of all its completed
runs instead, marked ``*`` in its ``passed`` column, and so does a speed ratio either of
whose sides had no passing run (ESS of an unconverged run is not reliable).

``--tile k`` repeats the simulated respondents k times (the simulator holds every unit's
answers in memory, so 1,000,000 respondents are the 100,000 survey tiled 10 times; the
cost of the sufficient-statistics model depends on the questionnaire and territories,
not on the rows, which is what that size shows).

``--items-per-respondent k`` simulates a split questionnaire (each respondent asked k of
their population's items at random, ``SimulationSettings.items_per_respondent``). The
whole simulated questionnaire gives about 23 answers per respondent; issue 4 states its
item-model targets at about 12 (10,000 respondents, about 120,000 answers), which
``--items-per-respondent 13`` gives (13 asked, 4 % left unanswered). Its surveys are
cached apart (``sim-N-SEED-itemsK``). Each case prints its number of answers.

``--draw-storage memory|disk`` sets where nutpie keeps the draws while it samples
(``SamplerSettings.draw_storage``; by default the package chooses by their size), to
compare the peak memory and the time of both on the same chains.

    .venv/bin/python benchmarks/bench_bayes.py --models gaussian --respondents 1000 100000
    .venv/bin/python benchmarks/bench_bayes.py --models ordinal --respondents 1000 \
        --cases package:nutpie naive:pymc
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from impactmodel.bayes import SamplerSettings

#: the package's default warm-up, used by every case unless --tune says otherwise
DEFAULT_TUNE = SamplerSettings().tune

CASE = r"""
import json, os, resource, sys, time
from dataclasses import replace
import numpy as np
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
from impactmodel import load_survey
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.bayes import SamplerSettings, sample_model
from impactmodel.bayes.sampling import _compiled

model_name, n, formulation, sampler = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
draws, seed, tile, cache = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
tune, items_per_respondent = int(sys.argv[9]), int(sys.argv[10]) or None
draw_storage = sys.argv[11]
PRACTICES = ["partners", "mode_cooperation", "maturity"]


def survey_for(sim_seed):
    split = f"-items{items_per_respondent}" if items_per_respondent else ""
    folder = os.path.join(cache, f"sim-{n}-{sim_seed}{split}")
    if not os.path.exists(os.path.join(folder, "respondents.csv")):
        settings = SimulationSettings(seed=sim_seed, respondents=n,
                                      items_per_respondent=items_per_respondent)
        write_simulation(simulate(settings), folder)
    return load_survey(os.path.join(folder, "respondents.csv"),
                       os.path.join(folder, "codebook.toml"))


def tiled(data):
    if tile == 1:
        return data
    n_resp, n_groups = len(data.population), int(data.group.max()) + 1
    reps = np.arange(tile)
    return replace(data, y=np.tile(data.y, tile),
                   respondent=(data.respondent[None] + n_resp * reps[:, None]).ravel(),
                   cell=np.tile(data.cell, tile),
                   group=(data.group[None] + n_groups * reps[:, None]).ravel(),
                   group_impact=np.tile(data.group_impact, tile), x=np.tile(data.x, (tile, 1)),
                   population=np.tile(data.population, tile),
                   department=np.tile(data.department, tile))


def prepare(survey):
    if model_name == "gaussian":
        from impactmodel.bayes.model_data import build_score_data
        from impactmodel.bayes.gaussian import scale_score_model
        from naive_models import naive_scale_score_model
        data = tiled(build_score_data(survey, PRACTICES))
        return (scale_score_model(data) if formulation == "package"
                else naive_scale_score_model(data)), len(data.population)
    from impactmodel.bayes.item_data import build_item_data
    from impactmodel.bayes.ordinal import ordinal_item_model
    from naive_models import naive_ordinal_model
    data = build_item_data(survey, PRACTICES)
    ITEM_DATA.append(data)
    return (ordinal_item_model(data) if formulation == "package"
            else naive_ordinal_model(data)), data.n_respondents


ITEM_DATA = []  # the ordinal case's data, for the draws fit_items adds after sampling


if model_name == "simulate":  # prepare the cached surveys, outside any measurement
    survey_for(1), survey_for(2)
    sys.exit(0)
survey = survey_for(1)
second_survey = survey_for(2) if formulation == "package" and sampler == "nutpie" else None
t0 = time.perf_counter()
built, respondents = prepare(survey)
prepare_s = time.perf_counter() - t0
settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=4, seed=seed,
                           draw_storage=draw_storage if sampler == "nutpie" else "auto")
compile_s = float("nan")
if formulation == "package" and sampler == "nutpie":
    t1 = time.perf_counter()
    _compiled(built)
    compile_s = time.perf_counter() - t1
    if os.environ.get("IMPACTMODEL_BENCH_COMPILE_ONLY"):
        print(json.dumps({"compile_s": compile_s}))
        sys.exit(0)
t1 = time.perf_counter()
result = sample_model(built, settings)
if model_name == "ordinal" and formulation == "package":
    # as fit_items does: the department slope deviations drawn back from their
    # conditional law (part of the fit's cost)
    from impactmodel.bayes.department_slopes import draw_department_slopes
    draw_department_slopes(result.idata, ITEM_DATA[0], seed)
sample_s = time.perf_counter() - t1
wall_s = time.perf_counter() - t0
reuse_s = float("nan")
if formulation == "package" and sampler == "nutpie":
    t2 = time.perf_counter()
    second, _ = prepare(second_survey)
    _compiled(second)
    reuse_s = time.perf_counter() - t2
c = result.convergence
steps = float(result.idata["sample_stats"]["n_steps"].sum())
workers = 1 if sampler == "nutpie" else 2
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + workers * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
answers = len(ITEM_DATA[0].y) if ITEM_DATA else None
print(json.dumps({"respondents": respondents, "answers": answers, "prepare_s": prepare_s,
                  "compile_s": compile_s,
                  "sample_s": sample_s, "wall_s": wall_s, "reuse_s": reuse_s,
                  "ess_bulk": c.min_ess_bulk, "ess_tail": c.min_ess_tail,
                  "ess_per_grad": c.min_ess_bulk / steps, "rhat": c.max_rhat,
                  "divergences": c.divergences, "bfmi": c.min_bfmi, "peak_mb": peak,
                  "passed": c.converged, "problems": list(c.problems)}))
"""

COLUMNS = ("model", "respondents", "formulation", "sampler", "passed", "prepare s",
           "compile s (cold)", "compile s (first)", "compile s (cached)", "sample s", "wall s",
           "2nd fit s", "min bulk ESS", "min tail ESS",
           "ESS/s", "ESS/grad", "x naive ESS/s", "max R-hat", "div.", "E-BFMI", "peak MB")


def _case_argv(args: argparse.Namespace, model: str, n: int, formulation: str,
               sampler: str, seed: int) -> list[str]:
    """The command line of one case's subprocess."""
    return [sys.executable, "-c", CASE, model, str(n), formulation, sampler, str(args.draws),
            str(seed), str(args.tile), str(args.cache), str(args.tune),
            str(args.items_per_respondent or 0), args.draw_storage]


def run_case(args: argparse.Namespace, model: str, n: int, formulation: str, sampler: str,
             seed: int) -> dict[str, float] | str:
    """One case in a subprocess: its measurements, or why there are none."""
    argv = _case_argv(args, model, n, formulation, sampler, seed)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return f"> {args.timeout:.0f} s"
    if done.returncode != 0:
        Console().print(done.stderr[-1500:])
        return "failed"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compile_only(args: argparse.Namespace, model: str, n: int, kind: str) -> float:
    """Seconds to compile the package's model in a new process.

    ``kind``: ``cold`` with empty PyTensor and impactmodel caches (a new machine);
    ``first`` with PyTensor's cache as it is and an empty impactmodel cache (a new model
    structure on a used machine); ``cached`` with both caches as they are (this call fills
    the impactmodel cache for the measured runs, whose own compile then loads from it).
    """
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "IMPACTMODEL_BENCH_COMPILE_ONLY": "1"}
        if kind in ("cold", "first"):
            env["IMPACTMODEL_CACHE_DIR"] = empty
        if kind == "cold":
            env["PYTENSOR_FLAGS"] = f"base_compiledir={empty}"
        done = subprocess.run(_case_argv(args, model, n, "package", "nutpie", 1),
                              capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        Console().print(done.stderr[-1500:])
        return float("nan")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["compile_s"])


def median_of(runs: list[dict[str, float]], key: str) -> float:
    """Median of ``key`` over ``runs``."""
    return statistics.median(r[key] for r in runs)


def counted_runs(runs: list[dict[str, float]]) -> tuple[list[dict[str, float]], bool]:
    """The runs a case's medians are taken over, and whether they passed.

    The passing runs when there is one (issue 4 counts only those); otherwise every
    completed run, which the table then marks as not passing.
    """
    passing = [r for r in runs if r["passed"]]
    return (passing, True) if passing else (runs, False)


def main() -> None:
    """Run every case and print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--respondents", type=int, nargs="+", default=[1000])
    parser.add_argument("--models", nargs="+", default=["gaussian", "ordinal"])
    parser.add_argument("--cases", nargs="+",
                        default=["package:nutpie", "package:pymc", "naive:pymc"],
                        help="formulation:sampler pairs; naive:pymc is the baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    parser.add_argument("--tune", type=int, default=DEFAULT_TUNE,
                        help="tuning steps per chain (default: the package's)")
    parser.add_argument("--tile", type=int, default=1)
    parser.add_argument("--items-per-respondent", type=int, default=None,
                        help="simulate a split questionnaire: each respondent asked this "
                             "many of their population's items (default: all of them)")
    parser.add_argument("--draw-storage", choices=["auto", "memory", "disk"], default="auto",
                        help="where nutpie keeps the draws while sampling (SamplerSettings."
                             "draw_storage; default: the package's choice by size)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed per case (a case over it is reported)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/impactmodel-bench"))
    args = parser.parse_args()
    console = Console(width=max(Console().width, 240))
    split = (f", split questionnaire: {args.items_per_respondent} items per respondent"
             if args.items_per_respondent else "")
    table = Table(title=f"Bayesian impact models: 4 chains x {args.draws} draws "
                        f"(+ {args.tune} tuning), seeds {args.seeds}: medians over the "
                        f"passing runs (* none passed: over all){split}")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for n in args.respondents:
        subprocess.run([sys.executable, "-c", CASE, "simulate", str(n), "-", "-", "0", "0",
                        "1", str(args.cache), "0", str(args.items_per_respondent or 0),
                        args.draw_storage],
                       check=True, capture_output=True)
    for model in args.models:
        for n in args.respondents:
            summary: dict[str, list[dict[str, float]]] = {}
            cells: dict[str, list[str]] = {}
            cold = first = float("nan")
            if "package:nutpie" in args.cases:
                cold = compile_only(args, model, n, "cold")
                first = compile_only(args, model, n, "first")
                compile_only(args, model, n, "cached")
            console.print(f"{model} {n} package:nutpie compile: cold {cold:.1f} s, "
                          f"first {first:.1f} s")
            for case in args.cases:
                formulation, sampler = case.split(":")
                runs: list[dict[str, float]] = []
                notes: list[str] = []
                for seed in args.seeds:
                    outcome = run_case(args, model, n, formulation, sampler, seed)
                    if isinstance(outcome, str):
                        notes.append(outcome)
                        console.print(f"{model} {n} {case} seed {seed}: {outcome}")
                        continue
                    console.print(f"{model} {n} {case} seed {seed}: {json.dumps(outcome)}")
                    runs.append(outcome)
                summary[case] = runs
                cells[case] = notes
            baseline, base_passed = counted_runs(summary.get("naive:pymc", []))
            base_rate = (median_of(baseline, "ess_bulk") / median_of(baseline, "wall_s")
                         if baseline else float("nan"))
            for case, completed in summary.items():
                formulation, sampler = case.split(":")
                runs, runs_passed = counted_runs(completed)
                passed = (f"{sum(bool(r['passed']) for r in completed)}/{len(args.seeds)}"
                          + ("" if runs_passed else "*"))
                if not runs:
                    table.add_row(model, f"{n:,}", formulation, sampler, passed,
                                  *([""] * 5), "; ".join(sorted(set(cells[case]))),
                                  *([""] * (len(COLUMNS) - 11)))
                    continue
                rate = median_of(runs, "ess_bulk") / median_of(runs, "wall_s")
                flag = "" if base_passed and runs_passed else "*"
                table.add_row(
                    model, f"{int(median_of(runs, 'respondents')):,}", formulation, sampler,
                    passed, f"{median_of(runs, 'prepare_s'):.1f}",
                    f"{cold:.1f}" if case == "package:nutpie" else "",
                    f"{first:.1f}" if case == "package:nutpie" else "",
                    f"{median_of(runs, 'compile_s'):.1f}", f"{median_of(runs, 'sample_s'):.1f}",
                    f"{median_of(runs, 'wall_s'):.1f}", f"{median_of(runs, 'reuse_s'):.2f}",
                    f"{median_of(runs, 'ess_bulk'):.0f}", f"{median_of(runs, 'ess_tail'):.0f}",
                    f"{rate:.2f}", f"{median_of(runs, 'ess_per_grad'):.4f}",
                    f"{rate / base_rate:.1f}{flag}" if baseline else "no baseline",
                    f"{median_of(runs, 'rhat'):.3f}", f"{median_of(runs, 'divergences'):.0f}",
                    f"{median_of(runs, 'bfmi'):.2f}", f"{median_of(runs, 'peak_mb'):.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
