"""Where one gradient of the item model goes: the whole, and each hand-written operation alone.

```sh
.venv/bin/python benchmarks/gradient_parts.py --survey /tmp/impactmodel-bench/sim-100000-1-items13
```

Builds the ordinal item model on a simulated survey (the harness's three practices),
compiles its log-density and gradient with PyTensor's numba backend (nutpie's), and times
it at the model's initial point (median of ``--calls`` calls after a warm-up). Then each
of the model's hand-written operations (the likelihood loop, the locations' prior and
its gradient) is compiled alone, on fresh inputs of the same types, and timed on the
values its inputs take at that point. The rest of the graph is the whole less the parts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.traversal import io_toposort
from rich.console import Console
from rich.table import Table

from impactmodel import load_survey
from impactmodel.bayes.cumulative_logit import CumulativeLogitLogp
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.locations import LocationSums, LocationSumsGradient
from impactmodel.bayes.ordinal import ordinal_item_model

PRACTICES = ["partners", "mode_cooperation", "maturity"]
PARTS = {CumulativeLogitLogp: "likelihood loop", LocationSums: "locations' prior",
         LocationSumsGradient: "locations' prior, gradient"}


def median_ms(call: Callable[[], Any], calls: int) -> float:
    """Median wall time of ``call`` in ms, after three calls of warm-up."""
    for _ in range(3):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", type=Path, required=True,
                        help="a folder with respondents.csv and codebook.toml")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="sd of normal noise added to every coordinate of the model's "
                             "initial point (seed 1)")
    args = parser.parse_args()
    survey = load_survey(args.survey / "respondents.csv", args.survey / "codebook.toml")
    data = build_item_data(survey, PRACTICES)
    model = ordinal_item_model(data).model
    point = model.initial_point()
    noise = np.random.default_rng(1)
    values = [point[v.name] + args.jitter * noise.standard_normal(np.shape(point[v.name]))
              for v in model.value_vars]
    logp = model.logp()
    grads = pt.grad(logp, model.value_vars)
    whole = pytensor.function(model.value_vars, [logp, *grads], mode="NUMBA")
    whole_ms = median_ms(lambda: whole(*values), args.calls)
    table = Table(title=f"{data.n_respondents:,} respondents, {len(data.y):,} answers, "
                        f"{sum(np.size(v) for v in values):,} parameters")
    for column in ("part", "ms", "share"):
        table.add_column(column, justify="left" if column == "part" else "right")
    parts_ms = 0.0
    for node in io_toposort(model.value_vars, [logp, *grads]):
        name = PARTS.get(type(node.op))
        if name is None:
            continue
        inputs = pytensor.function(model.value_vars, list(node.inputs), mode="NUMBA",
                                   on_unused_input="ignore")(*values)
        fresh = [pt.as_tensor_variable(v).type() for v in inputs]
        alone = pytensor.function(fresh, node.op.make_node(*fresh).outputs, mode="NUMBA")
        ms = median_ms(lambda alone=alone, inputs=inputs: alone(*inputs), args.calls)
        parts_ms += ms
        table.add_row(name, f"{ms:.2f}", f"{ms / whole_ms:.0%}")
    table.add_row("rest of the graph", f"{whole_ms - parts_ms:.2f}",
                  f"{(whole_ms - parts_ms) / whole_ms:.0%}")
    table.add_row("whole log-density and gradient", f"{whole_ms:.2f}", "100%")
    Console().print(table)


if __name__ == "__main__":
    main()
