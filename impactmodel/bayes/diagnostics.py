"""Convergence checks run on every fit: R-hat, bulk and tail ESS, divergences, E-BFMI.

Thresholds follow Vehtari et al. (2021, Bayesian Analysis 16(2)): R-hat <= 1.01 and
bulk/tail ESS >= 100 per chain (400 for 4 chains) for reliable summaries; E-BFMI below 0.3
signals poor exploration (Betancourt 2016). A fit failing any threshold is marked as not
converged and says why; it is never reported as fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr


@dataclass(frozen=True)
class Thresholds:
    """Limits a converged fit must meet."""

    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0
    min_bfmi: float = 0.3


@dataclass(frozen=True)
class Convergence:
    """Diagnostics of one fit and whether it passes the thresholds."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    min_bfmi: float
    thresholds: Thresholds
    problems: tuple[str, ...] = field(default=())
    approximate: bool = False

    @property
    def converged(self) -> bool:
        """True when no threshold is missed (never for an approximate fit)."""
        return not self.problems and not self.approximate

    def to_dict(self) -> dict[str, object]:
        """Plain values, for manifests and tables."""
        return {"converged": self.converged, "max_rhat": self.max_rhat,
                "min_ess_bulk": self.min_ess_bulk, "min_ess_tail": self.min_ess_tail,
                "divergences": self.divergences, "min_bfmi": self.min_bfmi,
                "approximate": self.approximate, "problems": list(self.problems)}

    def __str__(self) -> str:
        head = ("converged" if self.converged else
                "APPROXIMATE (variational), not MCMC" if self.approximate else "NOT CONVERGED")
        lines = [f"{head}: max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
                 f"min tail ESS {self.min_ess_tail:.0f}, divergences {self.divergences}, "
                 f"min E-BFMI {self.min_bfmi:.2f}"]
        return "\n".join([*lines, *(f"  - {p}" for p in self.problems)])


def _extreme(tree: xr.DataTree, op: str) -> tuple[float, str]:
    """Return the largest (``op="max"``) or smallest value of all variables, and where.

    The location reads ``name[label, ...]`` (coordinate labels of the element), so that
    a failed check says which parameter to look at.
    """
    best, where = float("nan"), ""
    for name, array in tree.ds.data_vars.items():
        values = np.asarray(array, dtype=float)
        finite = np.where(np.isfinite(values), values, -np.inf if op == "max" else np.inf)
        if not values.size or not np.isfinite(finite).any():
            continue
        flat = int(np.argmax(finite) if op == "max" else np.argmin(finite))
        value = float(finite.ravel()[flat])
        if np.isnan(best) or (value > best if op == "max" else value < best):
            position = np.unravel_index(flat, values.shape)
            labels = [str(array[dim].values[i]) if dim in array.coords else str(i)
                      for dim, i in zip(array.dims, position, strict=True)]
            best, where = value, f"{name}[{', '.join(labels)}]" if labels else str(name)
    return best, where


def check_convergence(idata: xr.DataTree, var_names: list[str] | None = None,
                      thresholds: Thresholds | None = None, *, approximate: bool = False
                      ) -> Convergence:
    """Compute the diagnostics of ``idata`` and compare them with ``thresholds``.

    Parameters
    ----------
    idata : xarray.DataTree
        With ``posterior`` (and ``sample_stats`` for MCMC).
    var_names : list of str, optional
        Parameters to check (default: all in the posterior).
    thresholds : Thresholds, optional
    approximate : bool
        The draws come from a variational approximation: report, but never "converged".

    Returns
    -------
    Convergence
    """
    limits = thresholds or Thresholds()
    if approximate:
        return Convergence(np.nan, np.nan, np.nan, 0, np.nan, limits,
                           ("draws from a variational approximation: no MCMC diagnostics",),
                           approximate=True)
    rhat, rhat_at = _extreme(az.rhat(idata, var_names=var_names), "max")
    bulk, bulk_at = _extreme(az.ess(idata, var_names=var_names, method="bulk"), "min")
    tail, tail_at = _extreme(az.ess(idata, var_names=var_names, method="tail"), "min")
    stats = idata["sample_stats"].ds
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    bfmi = _extreme(az.bfmi(idata), "min")[0] if "energy" in stats else float("nan")
    problems = []
    if not rhat <= limits.max_rhat:
        problems.append(f"R-hat {rhat:.3f} above {limits.max_rhat} (worst: {rhat_at})")
    if not bulk >= limits.min_ess_bulk:
        problems.append(f"bulk ESS {bulk:.0f} below {limits.min_ess_bulk:.0f} "
                        f"(worst: {bulk_at})")
    if not tail >= limits.min_ess_tail:
        problems.append(f"tail ESS {tail:.0f} below {limits.min_ess_tail:.0f} "
                        f"(worst: {tail_at})")
    if divergences > limits.max_divergences:
        problems.append(f"{divergences} divergent transitions (raise target_accept, e.g. "
                        "0.95, or reparametrise)")
    if np.isfinite(bfmi) and bfmi < limits.min_bfmi:
        problems.append(f"E-BFMI {bfmi:.2f} below {limits.min_bfmi}")
    return Convergence(rhat, bulk, tail, divergences, bfmi, limits, tuple(problems))


def per_parameter(idata: xr.DataTree, var_names: list[str] | None = None) -> pd.DataFrame:
    """Worst R-hat and smallest bulk and tail ESS of each parameter, with where they occur.

    Parameters
    ----------
    idata : xarray.DataTree
        With ``posterior``.
    var_names : list of str, optional
        Parameters (default: every posterior variable but the indicators ``prob_*``,
        whose R-hat is undefined when they never vary within a chain).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter, max_rhat, worst_rhat_at, min_ess_bulk, min_ess_tail``, one
        row per parameter, worst R-hat first.
    """
    if var_names is None:
        var_names = [str(v) for v in idata["posterior"].data_vars if not str(v).startswith(
            "prob_")]
    rhat = az.rhat(idata, var_names=var_names)
    bulk = az.ess(idata, var_names=var_names, method="bulk")
    tail = az.ess(idata, var_names=var_names, method="tail")
    rows = []
    for name in rhat.ds.data_vars:
        single = [xr.DataTree(tree.ds[[name]]) for tree in (rhat, bulk, tail)]
        worst, at = _extreme(single[0], "max")
        if not np.isfinite(worst):
            continue
        rows.append({"parameter": str(name), "max_rhat": worst, "worst_rhat_at": at,
                     "min_ess_bulk": _extreme(single[1], "min")[0],
                     "min_ess_tail": _extreme(single[2], "min")[0]})
    columns = ["parameter", "max_rhat", "worst_rhat_at", "min_ess_bulk", "min_ess_tail"]
    return pd.DataFrame(rows, columns=columns).sort_values(
        "max_rhat", ascending=False, ignore_index=True)
