"""Benchmark the foundation: simulate + write, and load + validate, at growing sizes.

Each case runs in a fresh subprocess so that peak memory (max RSS) is its own. The table
compares each figure with the recorded baseline (``baseline_foundation.json``) in the same
run; ``--record`` rewrites the baseline.

    .venv/bin/python benchmarks/bench_foundation.py [--sizes 4000 20000] [--record]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline_foundation.json"

CASE = r"""
import json, resource, sys, time
from impactmodel import load_survey
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
n, out = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
sim = simulate(SimulationSettings(seed=1, respondents=n))
paths = write_simulation(sim, out)
t1 = time.perf_counter()
survey = load_survey(paths["respondents"], paths["codebook"])
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"simulate_s": t1 - t0, "load_s": t2 - t1, "peak_mb": rss,
                  "respondents": survey.n_respondents}))
"""


def run_case(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", CASE, str(n), tmp], check=True,
                              capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 20000, 100000])
    parser.add_argument("--record", action="store_true", help="rewrite the baseline")
    args = parser.parse_args()
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    results = {str(n): run_case(n) for n in args.sizes}
    table = Table(title=f"foundation benchmark ({platform.node()}, {platform.processor()})")
    for col in ("target n", "respondents", "simulate+write s", "load+validate s", "peak MB",
                "vs baseline (sim / load)"):
        table.add_column(col, justify="right")
    for n, r in results.items():
        b = baseline.get(n)
        ratio = (f"{r['simulate_s'] / b['simulate_s']:.2f}x / {r['load_s'] / b['load_s']:.2f}x"
                 if b else "no baseline")
        table.add_row(n, f"{r['respondents']:,}", f"{r['simulate_s']:.2f}", f"{r['load_s']:.2f}",
                      f"{r['peak_mb']:.0f}", ratio)
    Console().print(table)
    if args.record:
        BASELINE.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
