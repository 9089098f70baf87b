"""Where an item-model fit's time goes: warm-up, draws, reading, the check, per chain.

```sh
.venv/bin/python benchmarks/fit_phases.py --survey /tmp/impactmodel-bench/sim-100000-1-items13
```

Builds the ordinal item model on a simulated survey (the harness's three practices),
compiles it (the package's compile cache), and samples it exactly as the harness and
``impactmodel fit`` do (:func:`impactmodel.bayes.sampling.sample_model`, the package's
settings: 4 chains, ``--tune`` warm-up iterations, ``--draws`` draws, the model's
trajectory, depth cap and target acceptance). While nutpie samples, its per-chain
progress (leapfrog steps so far, still tuning or not, its own clock) is recorded every
100 ms; from it each chain's warm-up and draws are split into seconds and leapfrog
steps. The time after nutpie returns is split into reading the draws (the store on
disk, when used) and the convergence check; the department slopes drawn back after it
are timed as the harness times them.

Settings beyond the package's can be tried with ``--option NAME=VALUE`` (nutpie's
sampling options, e.g. ``--option mass_matrix_switch_freq=40``); values are read as
numbers when they parse as numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import nutpie
from rich.console import Console
from rich.table import Table

from impactmodel import load_survey
from impactmodel.bayes import sampling
from impactmodel.bayes.department_slopes import draw_department_slopes
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.ordinal import ordinal_item_model
from impactmodel.bayes.sampling import SamplerSettings, sample_model

PRACTICES = ["partners", "mode_cooperation", "maturity"]
#: warm-up iterations per window in the steps-per-iteration profile
WINDOW = 50


class Recorder:
    """nutpie's progress callback: each chain's state, every time nutpie reports it."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bool, int, int, float, float]] = []

    def __call__(self, chains: list[Any]) -> None:
        for index, chain in enumerate(chains):
            if chain.started:
                self.records.append((index, bool(chain.tuning), int(chain.finished_draws),
                                     int(chain.total_num_steps), float(chain.runtime_ms),
                                     float(chain.step_size)))

    def phases(self, tune: int) -> list[dict[str, Any]]:
        """Per chain: warm-up and draws as (seconds, leapfrog steps), from the records.

        The warm-up ends at the first record after ``tune`` finished draws (nutpie counts
        the warm-up's iterations among its draws); its figures are read there, so they
        include up to one reporting interval of draws. The windows' steps per iteration
        are read from the last record at or before each window's bounds, likewise.
        """
        rows = []
        for chain in sorted({r[0] for r in self.records}):
            mine = [r for r in self.records if r[0] == chain]
            end = next((r for r in mine if r[2] >= tune), mine[-1])
            last = mine[-1]
            windows = {}
            for first in range(0, tune, WINDOW):
                at = [r[3] for r in mine if r[2] <= first] or [0]
                until = [r[3] for r in mine if r[2] <= min(first + WINDOW, tune)]
                iterations = min(first + WINDOW, tune) - first
                windows[f"{first}-{first + iterations}"] = (until[-1] - at[-1]) / iterations
            rows.append({"chain": chain, "warmup_s": end[4] / 1000, "warmup_steps": end[3],
                         "warmup_steps_per_iteration_by_window": windows,
                         "warmup_iterations": end[2], "draws_s": (last[4] - end[4]) / 1000,
                         "draw_steps": last[3] - end[3],
                         "draw_iterations": last[2] - end[2], "step_size": last[5]})
        return rows


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", type=Path, required=True,
                        help="a folder with respondents.csv and codebook.toml")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tune", type=int, default=SamplerSettings().tune)
    parser.add_argument("--draws", type=int, default=SamplerSettings().draws)
    parser.add_argument("--option", action="append", default=[],
                        help="NAME=VALUE, an extra nutpie sampling option (repeatable)")
    parser.add_argument("--scale-exponent", type=float,
                        help="w of the locations' partial non-centring (default: the "
                             "package's rule, ordinal_item_model's scale_exponent)")
    parser.add_argument("--mean-exponent", type=float,
                        help="w_mu of the locations' partial non-centring in their mean "
                             "(default: the package's rule, ordinal_item_model's "
                             "mean_exponent)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--save-posterior", type=Path,
                        help="write the posterior draws, without the locations, to this "
                             "netCDF file (to study the slowest parameters)")
    args = parser.parse_args()
    if args.scale_exponent is not None and not 0.0 <= args.scale_exponent <= 1.0:
        parser.error(f"--scale-exponent takes a value in [0, 1], got {args.scale_exponent}")
    if args.mean_exponent is not None and not 0.0 <= args.mean_exponent <= 1.0:
        parser.error(f"--mean-exponent takes a value in [0, 1], got {args.mean_exponent}")
    malformed = [item for item in args.option if "=" not in item]
    if malformed:
        parser.error(f"--option takes NAME=VALUE, got {', '.join(malformed)}")
    extra = dict(item.split("=", 1) for item in args.option)
    extra = {name: _number(value) for name, value in extra.items()}

    console = Console(width=150)
    data = build_item_data(load_survey(args.survey / "respondents.csv",
                                       args.survey / "codebook.toml"), PRACTICES)
    built = ordinal_item_model(data, scale_exponent=args.scale_exponent,
                               mean_exponent=args.mean_exponent)
    start = time.perf_counter()
    sampling._compiled(built)
    compile_s = time.perf_counter() - start

    recorder = Recorder()
    clock: dict[str, float] = {}
    real_sample, real_check = nutpie.sample, sampling.check_convergence

    def timed_sample(*positional: Any, **options: Any) -> Any:
        options["progress_callback"] = recorder
        options.update(extra)
        clock["nutpie_start"] = time.perf_counter()
        try:
            return real_sample(*positional, **options)
        finally:
            clock["nutpie_end"] = time.perf_counter()

    def timed_check(*positional: Any, **options: Any) -> Any:
        clock["check_start"] = time.perf_counter()
        try:
            return real_check(*positional, **options)
        finally:
            clock["check_end"] = time.perf_counter()

    nutpie.sample, sampling.check_convergence = timed_sample, timed_check
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=4, seed=args.seed)
    try:
        start = time.perf_counter()
        result = sample_model(built, settings)
        sampled = time.perf_counter()
        draw_department_slopes(result.idata, data, args.seed)
        done = time.perf_counter()
    finally:
        nutpie.sample, sampling.check_convergence = real_sample, real_check

    chains = recorder.phases(args.tune)
    stats = result.idata["sample_stats"]
    figures = {
        "respondents": data.n_respondents, "answers": len(data.y), "options": extra,
        "scale_exponent": args.scale_exponent, "mean_exponent": args.mean_exponent,
        "compile_s": compile_s, "nutpie_s": clock["nutpie_end"] - clock["nutpie_start"],
        "before_nutpie_s": clock["nutpie_start"] - start,
        "reading_s": clock["check_start"] - clock["nutpie_end"],
        "check_s": clock["check_end"] - clock["check_start"],
        "after_check_s": sampled - clock["check_end"], "slopes_s": done - sampled,
        "total_s": done - start, "chains": chains,
        "draw_steps_in_stats": int(stats["n_steps"].sum()),
        "convergence": result.convergence.to_dict()}

    table = Table(title=f"{data.n_respondents:,} respondents, {len(data.y):,} answers, "
                        f"4 x ({args.tune} + {args.draws}), options {extra or 'none'}"
                        + ("" if args.scale_exponent is None
                           else f", scale exponent {args.scale_exponent}")
                        + ("" if args.mean_exponent is None
                           else f", mean exponent {args.mean_exponent}"))
    for column in ("chain", "warm-up s", "warm-up steps", "steps / iteration", "ms / step",
                   "draws s", "draw steps", "steps / draw", "ms / step ", "step size"):
        table.add_column(column, justify="right")
    for row in chains:
        table.add_row(str(row["chain"]), f"{row['warmup_s']:.1f}", f"{row['warmup_steps']:,}",
                      f"{row['warmup_steps'] / max(row['warmup_iterations'], 1):.1f}",
                      f"{1000 * row['warmup_s'] / max(row['warmup_steps'], 1):.2f}",
                      f"{row['draws_s']:.1f}", f"{row['draw_steps']:,}",
                      f"{row['draw_steps'] / max(row['draw_iterations'], 1):.1f}",
                      f"{1000 * row['draws_s'] / max(row['draw_steps'], 1):.2f}",
                      f"{row['step_size']:.3g}")
    console.print(table)
    for name in ("compile_s", "before_nutpie_s", "nutpie_s", "reading_s", "check_s",
                 "after_check_s", "slopes_s", "total_s"):
        console.print(f"{name:>16}: {figures[name]:8.1f}")
    for row in chains:
        profile = ", ".join(f"{k}: {v:.1f}" for k, v in
                            row["warmup_steps_per_iteration_by_window"].items())
        console.print(f"chain {row['chain']} warm-up steps per iteration by window: {profile}")
    console.print(f"convergence: {result.convergence}")
    if args.save_posterior:
        posterior = result.idata["posterior"].to_dataset()
        keep = [name for name in posterior.data_vars if "respondent" not in posterior[name].dims]
        saved = posterior[keep]
        for name in ("energy", "n_steps", "step_size", "diverging", "max_energy_error"):
            if name in stats:
                saved[f"sample_stats_{name}"] = stats[name]
        saved.to_netcdf(args.save_posterior)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
