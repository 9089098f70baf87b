"""Benchmark design-based domain means: impactmodel vs R survey (and svy when installed).

The job of the design-based issue: 100,000 respondents, 200 strata, 2,000 PSUs, 4
populations x 101 departments (404 domains), 54 impact cells; domain means of every cell
with linearised SEs. R's ``svyby`` is timed on ``--r-variables`` of the cells (it is slow)
and scaled to 54, one call per cell (with several variables R's ``na.rm`` drops a row
missing any of them); its estimates and SEs are compared with ours in the same run.

    .venv/bin/python benchmarks/bench_design_based.py [--respondents 100000] [--r-variables 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from impactmodel.survey import SurveyDesign

R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(TRUE)
d <- read.csv(args[1], colClasses = c(population = "character", department = "character"))
k <- as.integer(args[2])
vars <- paste0("cell", seq_len(k))
des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~weight, data = d)
# one svyby per cell: with several variables, na.rm drops a row missing any of them
t0 <- Sys.time()
fits <- lapply(vars, function(v) svyby(as.formula(paste("~", v)), ~population + department,
                                       des, svymean, na.rm = TRUE))
elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
res <- fits[[1]]
est <- sapply(fits, coef); se <- sapply(fits, SE)
writeLines(jsonlite::toJSON(list(seconds = elapsed, population = res$population,
  department = res$department, estimate = est, se = se), digits = NA, auto_unbox = TRUE),
  args[3])
"""


def make_data(n: int, seed: int = 1) -> pd.DataFrame:
    """Synthetic survey: 200 strata x 10 PSUs, 404 domains, 54 scores with missing values."""
    rng = np.random.default_rng(seed)
    psu = rng.integers(0, 2000, n)
    frame = pd.DataFrame({
        "stratum": psu // 10,
        "psu": psu,
        "weight": rng.lognormal(3, 0.5, n),
        "population": rng.choice(["citizen", "elected", "business", "association"], n),
        "department": rng.integers(1, 102, n).astype(str),
    })
    effect = rng.normal(0, 5, (2000, 54))
    cells = 60 + effect[psu] + rng.normal(0, 15, (n, 54))
    cells[rng.random((n, 54)) < 0.3] = np.nan  # not asked / no answer
    for k in range(54):
        frame[f"cell{k + 1}"] = cells[:, k]
    return frame


def time_ours(frame: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    variables = [f"cell{k + 1}" for k in range(54)]
    start = time.perf_counter()
    design = SurveyDesign(frame, ids="psu", strata="stratum", weights="weight")
    result = design.mean(variables, by=["population", "department"], na_rm=True).to_frame()
    return time.perf_counter() - start, result


def time_r(frame: pd.DataFrame, k: int) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data, script, out = Path(tmp, "d.csv"), Path(tmp, "b.R"), Path(tmp, "r.json")
        frame.to_csv(data, index=False)
        script.write_text(R_SCRIPT)
        done = subprocess.run(["Rscript", str(script), str(data), str(k), str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print("R failed:", done.stderr[-500:])
            return None
        return json.loads(out.read_text())


SVY_SCRIPT = r"""
import json, sys, time
import polars as pl
import svy
path, k = sys.argv[1], int(sys.argv[2])
df = pl.read_csv(path, schema_overrides={"population": pl.Utf8, "department": pl.Utf8})
sample = svy.Sample(df, svy.Design(stratum="stratum", psu="psu", wgt="weight"))
t0 = time.perf_counter()
res = sample.estimation.mean([f"cell{j + 1}" for j in range(k)],
                             by=["population", "department"], drop_nulls=True)
print(json.dumps({"seconds": time.perf_counter() - t0, "version": svy.__version__}))
"""


def time_svy(frame: pd.DataFrame, python: str | None, k: int) -> dict | None:
    """Time svy (samplics-org) in its own interpreter: it is never a project dependency."""
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp, "d.csv"), Path(tmp, "s.py")
        frame.to_csv(data, index=False)
        script.write_text(SVY_SCRIPT)
        done = subprocess.run([python, str(script), str(data), str(k)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            print("svy failed:", done.stderr[-500:])
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--respondents", type=int, default=100_000)
    parser.add_argument("--r-variables", type=int, default=5)
    parser.add_argument("--svy-python", default=None,
                        help="an interpreter with svy installed (pip install svy), optional")
    parser.add_argument("--svy-variables", type=int, default=5)
    args = parser.parse_args()
    frame = make_data(args.respondents)
    ours_s, ours = time_ours(frame)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = Table(title=f"Domain means of 54 cells x 404 domains, {args.respondents:,} "
                        "respondents, 200 strata, 2,000 PSUs")
    for col in ("engine", "wall s", "for 54 cells (s)", "peak MB", "agreement"):
        table.add_column(col, justify="right")
    table.add_row("impactmodel", f"{ours_s:.2f}", f"{ours_s:.2f}", f"{peak:.0f}", "—")
    r = time_r(frame, args.r_variables)
    if r is not None:
        k = args.r_variables
        mine = ours.reset_index()
        worst = 0.0
        for j in range(k):
            sub = mine[mine["variable"] == f"cell{j + 1}"].set_index(["population",
                                                                      "department"])
            theirs = pd.DataFrame({"population": r["population"],
                                   "department": r["department"],
                                   "estimate": np.asarray(r["estimate"])[:, j],
                                   "se": np.asarray(r["se"])[:, j]}).set_index(
                ["population", "department"])
            joined = sub.merge(theirs, left_index=True, right_index=True,
                               suffixes=("", "_r"))
            worst = max(worst, float(np.max(np.abs(joined["se"] / joined["se_r"] - 1))),
                        float(np.max(np.abs(joined["estimate"] / joined["estimate_r"] - 1))))
        table.add_row(f"R survey svyby ({k} cells)", f"{r['seconds']:.2f}",
                      f"{r['seconds'] * 54 / k:.1f} (scaled)", "—",
                      f"max rel. diff {worst:.1e}")
    else:
        table.add_row("R survey", "not installed", "—", "—", "—")
    svy = time_svy(frame, args.svy_python, args.svy_variables)
    if svy is None:
        table.add_row("svy", "not run (--svy-python)", "—", "—", "—")
    else:
        k = args.svy_variables
        table.add_row(f"svy {svy['version']} ({k} cells)", f"{svy['seconds']:.2f}",
                      f"{svy['seconds'] * 54 / k:.1f} (scaled)", "—", "—")
    Console().print(table)


if __name__ == "__main__":
    main()
