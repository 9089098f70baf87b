"""Can one compiled item model serve surveys of any size? A probe for the second fit.

```sh
.venv/bin/python benchmarks/generic_shapes.py \
    --surveys /tmp/impactmodel-bench/sim-10000-1-items13 /tmp/impactmodel-bench/sim-10000-2-items13
```

The item model's locations are a free variable of (respondents x impacts) coordinates.
nutpie's ``_make_functions``, which the package's compile cache calls, cuts the flat
parameter vector into the free variables with constant slices, so the compiled
log-density holds the number of respondents and a survey of another size compiles
anew (101 s at 1,144 then 1,097 respondents, ``bench_bayes.py``'s second fit, session
of 2026-12-08). The model's own graph does not hold it: the respondent dimension's
length is a shared variable.

This probe builds the log-density and gradient of the first survey's model the other
way: every free variable's slice has constant bounds except along the ``respondent``
axis, whose length is read from that shared variable (the other axes keep their static
lengths through ``specify_shape``, which PyTensor's rewrites need: without them the
gradient took 2.5 times as long at 1,144 respondents). It then

1. checks its log-density and gradient against nutpie's own function on the first
   survey, at a jittered point;
2. times both, alternating, on the same point (median of ``--calls`` calls);
3. swaps the second survey's data and respondent count into the first model's
   containers and checks the same compiled function against nutpie's function built
   for the second survey.

It does not sample: nutpie's compiled-model object, the stored draws' layout and the
package's compile cache still assume fixed sizes (the work this probe prepares).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from nutpie.compile_pymc import _make_functions
from pytensor.graph.replace import graph_replace
from pytensor.graph.rewriting.utils import rewrite_graph
from rich.console import Console
from rich.table import Table

from impactmodel import load_survey
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.ordinal import ordinal_item_model
from impactmodel.bayes.sampling import BuiltModel

PRACTICES = ["partners", "mode_cooperation", "maturity"]
#: the dimension whose length varies from survey to survey
VARYING = "respondent"


def item_model(folder: Path) -> BuiltModel:
    """The item model of a simulated survey folder (the harness's three practices)."""
    survey = load_survey(folder / "respondents.csv", folder / "codebook.toml")
    return ordinal_item_model(build_item_data(survey, PRACTICES))


def static_function(model: Any) -> tuple[Any, int, dict[str, tuple[int, ...]]]:
    """nutpie's log-density and gradient function, its dimension and the variables' shapes."""
    n_dim, _, logp_fn, _, _, (names, _, shapes), _ = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=lambda seed: {}, var_names=None)
    return logp_fn, int(n_dim), {name: tuple(map(int, shape))
                                 for name, shape in zip(names, shapes, strict=True)}


def generic_function(model: Any, shapes: dict[str, tuple[int, ...]]) -> Any:
    """The same function with the ``respondent`` axis's length read from the model's data."""
    joined = pt.dvector("unconstrained_point")
    start: Any = 0
    parts = []
    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    length = pt.cast(model.dim_lengths[VARYING], "int64")
    for rv, value in zip(model.free_RVs, values, strict=True):
        dims = model.named_vars_to_dims.get(rv.name) or ()
        fixed = shapes[value.name]
        if VARYING in dims:
            shape = [length if dim == VARYING else fixed[k] for k, dim in enumerate(dims)]
            size = pt.prod(pt.stack([pt.cast(s, "int64") for s in shape]))
            part = joined[start:start + size].reshape(shape, ndim=len(dims))
            part = pt.specify_shape(part, tuple(None if dim == VARYING else fixed[k]
                                                for k, dim in enumerate(dims)))
        else:
            size = int(np.prod(fixed))
            part = joined[start:start + size].reshape(fixed)
        parts.append(part.astype(value.dtype))
        start = start + size
    logp = rewrite_graph(model.logp(), include=["canonicalize", "stabilize"])
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in pt.grad(logp, values)])
    outputs = graph_replace([logp, grad], dict(zip(values, parts, strict=True)),
                            strict=False)
    return pytensor.function([joined], outputs, mode="NUMBA")


def largest_difference(first: Any, second: Any, point: np.ndarray) -> tuple[float, float]:
    """Absolute differences of two functions' log-density and largest gradient entry."""
    a, b = first(point), second(point)
    return (abs(float(a[0]) - float(b[0])),
            float(np.max(np.abs(np.asarray(a[1]) - np.asarray(b[1])))))


def main() -> None:
    """Build, check and time both functions, then reuse the generic one on survey 2."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--surveys", type=Path, nargs=2, required=True,
                        help="two simulated survey folders of different sizes")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--jitter", type=float, default=0.3)
    args = parser.parse_args()
    first, second = (item_model(folder) for folder in args.surveys)
    model = first.model
    counts = {int(built.model.dim_lengths[VARYING].get_value()) for built in (first, second)}
    others = [(a, b) for a, b in zip(first.structure, second.structure, strict=True)
              if a != b and {a, b} != counts]
    if others or len(first.structure) != len(second.structure):
        raise SystemExit(f"the two surveys' models differ beyond their respondents: {others}")
    table = Table(title="the item model's log-density and gradient: constant slices "
                        "(nutpie) against a respondent axis read from the data")
    for column in ("survey", "respondents", "coordinates", "compile s, nutpie / generic",
                   "|logp difference|", "largest |gradient difference|",
                   "ms per call, nutpie / generic"):
        table.add_column(column, justify="right")
    start = time.perf_counter()
    static, n_dim, shapes = static_function(model)
    static_s = time.perf_counter() - start
    start = time.perf_counter()
    generic = generic_function(model, shapes)
    generic_s = time.perf_counter() - start
    point = np.random.default_rng(0).normal(scale=args.jitter, size=n_dim)
    logp_diff, grad_diff = largest_difference(static, generic, point)
    static_ms, generic_ms = [], []
    for _ in range(args.calls):
        for function, record in ((static, static_ms), (generic, generic_ms)):
            tick = time.perf_counter()
            function(point)
            record.append(1e3 * (time.perf_counter() - tick))
    n_first = int(model.dim_lengths[VARYING].get_value())
    table.add_row(str(args.surveys[0].name), f"{n_first:,}", f"{n_dim:,}",
                  f"{static_s:.1f} / {generic_s:.1f}", f"{logp_diff:.2e}",
                  f"{grad_diff:.2e}",
                  f"{np.median(static_ms):.3f} / {np.median(generic_ms):.3f}")
    # the second survey through the first survey's compiled function
    static_two, n_dim_two, _ = static_function(second.model)
    for name, value in second.data.items():
        model[name].set_value(np.asarray(value, dtype=model[name].type.dtype))
    n_second = int(second.model.dim_lengths[VARYING].get_value())
    model.dim_lengths[VARYING].set_value(n_second)
    point_two = np.random.default_rng(1).normal(scale=args.jitter, size=n_dim_two)
    logp_diff, grad_diff = largest_difference(static_two, generic, point_two)
    table.add_row(f"{args.surveys[1].name} (the first's compiled function)", f"{n_second:,}",
                  f"{n_dim_two:,}", "", f"{logp_diff:.2e}", f"{grad_diff:.2e}", "")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
