"""Convergence checks run on every fit: R-hat, bulk and tail ESS, divergences, E-BFMI.

Thresholds follow Vehtari et al. (2021, Bayesian Analysis 16(2)): R-hat <= 1.01 and
bulk/tail ESS >= 100 per chain (400 for 4 chains) for reliable summaries; E-BFMI below 0.3
signals poor exploration (Betancourt 2016). A fit failing any threshold is marked as not
converged and says why; it is never reported as fine.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import arviz as az
import numba
import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy import special


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


def _how_many(tree: xr.DataTree, limit: float, *, above: bool) -> str:
    """Say at how many of the checked parameters' elements a diagnostic misses ``limit``.

    Among many parameters a few miss a threshold by chance (R-hat <= 1.01 fails at some
    of 27,606 iid normal coordinates in most fits of 4 x 1,000 draws:
    ``benchmarks/README.md``, ``rhat_noise_floor.py``), so the count tells a sporadic
    miss from a systematic one. Elements whose diagnostic is undefined (NaN) count in
    neither.
    """
    missed = checked = 0
    for array in tree.ds.data_vars.values():
        values = np.asarray(array, dtype=float)
        defined = values[~np.isnan(values)]
        checked += defined.size
        missed += int(np.count_nonzero(defined > limit if above else defined < limit))
    return f"at {missed:,} of {checked:,} parameters"


def draws_to_reach(ess: float, limit: float, n_draws: int) -> str:
    """Advise how many draws per chain would bring an ESS of ``ess`` up to ``limit``.

    Once the chains are stationary, an ESS grows in proportion to the number of draws
    (it is the draws over the integrated autocorrelation time, which does not depend on
    how long the chains run), so ``n_draws * limit / ess`` draws per chain reach the limit
    at the rate measured. That rate is itself estimated: the advice is rounded up to a
    hundred and worded as an estimate. Nothing is advised when the ESS is not a positive
    number (no rate to extrapolate).

    Parameters
    ----------
    ess : float
        The smallest ESS measured.
    limit : float
        The threshold it should reach.
    n_draws : int
        Draws per chain in the fit that measured it.

    Returns
    -------
    str
        ``"; at this rate about N draws per chain would reach it"``, or ``""``.
    """
    if not ess > 0 or not np.isfinite(ess) or n_draws <= 0:
        return ""
    needed = int(np.ceil(n_draws * limit / ess / 100.0)) * 100
    return f"; at this rate about {needed:,} draws per chain would reach it"


def _diagnostic_trees(posterior: xr.Dataset, var_names: list[str] | None
                      ) -> tuple[xr.DataTree, xr.DataTree, xr.DataTree]:
    """R-hat, bulk ESS and tail ESS of ``var_names`` (default all), shaped as the variables."""
    names = var_names if var_names is not None else [str(v) for v in posterior.data_vars]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    per_kind: list[dict[str, xr.DataArray]] = [{}, {}, {}]
    for name in names:  # one variable at a time: no copy of the whole posterior
        array = posterior[name].transpose("chain", "draw", ...)
        template = array.isel(chain=0, draw=0, drop=True)
        results = array_diagnostics(np.asarray(array.values, dtype=np.float64).reshape(
            n_chain, n_draw, -1))
        for kind, values in zip(per_kind, results, strict=True):
            kind[name] = template.copy(data=values.reshape(template.shape))
    trees = [xr.DataTree(xr.Dataset(kind)) for kind in per_kind]
    return trees[0], trees[1], trees[2]


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
    rhat_tree, bulk_tree, tail_tree = _diagnostic_trees(idata["posterior"].ds, var_names)
    rhat, rhat_at = _extreme(rhat_tree, "max")
    bulk, bulk_at = _extreme(bulk_tree, "min")
    tail, tail_at = _extreme(tail_tree, "min")
    stats = idata["sample_stats"].ds
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    bfmi = _extreme(az.bfmi(idata), "min")[0] if "energy" in stats else float("nan")
    problems = []
    if not rhat <= limits.max_rhat:
        problems.append(f"R-hat {rhat:.3f} above {limits.max_rhat} "
                        f"{_how_many(rhat_tree, limits.max_rhat, above=True)} "
                        f"(worst: {rhat_at})")
    n_draws = int(idata["posterior"].ds.sizes["draw"])
    for kind, ess, limit, tree, at in (("bulk", bulk, limits.min_ess_bulk, bulk_tree, bulk_at),
                                       ("tail", tail, limits.min_ess_tail, tail_tree, tail_at)):
        if not ess >= limit:
            problems.append(f"{kind} ESS {ess:.0f} below {limit:.0f} "
                            f"{_how_many(tree, limit, above=False)} (worst: {at})"
                            f"{draws_to_reach(ess, limit, n_draws)}")
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
    rhat, bulk, tail = _diagnostic_trees(idata["posterior"].ds, var_names)
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


#: parameters per block in :func:`array_diagnostics` (bounds the temporary arrays)
_BLOCK = 256
#: sums may be reordered (vectorised): they still agree with ArviZ's FFT to 1e-10
_REASSOCIATE = {"reassoc", "contract"}
#: below this range a series is constant (numpy's float resolution, as before)
_RESOLUTION = float(np.finfo(float).resolution)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _average_rank_scores(values: NDArray[np.float64], positions: NDArray[np.intp],
                         table: NDArray[np.float64], out: NDArray[np.float64]) -> None:
    """Write the normal scores of sorted ``values`` at ``positions`` of ``out``, ties averaged.

    ``table[j]`` is the score of the (1-based) rank ``j / 2 + 1``: a run of equal values
    from sorted position ``s`` to ``e`` gets rank ``(s + e) / 2 + 1``, as
    ``scipy.stats.rankdata(method="average")`` gives.
    """
    n = values.shape[0]
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[end + 1] == values[start]:
            end += 1
        score = table[start + end]
        for i in range(start, end + 1):
            out[positions[i]] = score
        start = end + 1


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_REASSOCIATE)
def _rhat_of(series: NDArray[np.float64]) -> float:
    """Potential scale reduction of ``(chains, draws)``."""
    c, h = series.shape
    means = np.empty(c)
    within = 0.0
    for ch in range(c):
        means[ch] = series[ch].mean()
        within += np.sum((series[ch] - means[ch]) ** 2) / (h - 1)
    within /= c
    between = h * np.sum((means - means.mean()) ** 2) / (c - 1)
    return float(np.sqrt((between / within + h - 1) / h))


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_REASSOCIATE)
def _autocovariance(centred: NDArray[np.float64], lag: int) -> float:
    """Autocovariance at ``lag`` of centred ``(chains, draws)``, averaged over chains."""
    c, h = centred.shape
    total = 0.0
    for ch in range(c):
        for t in range(h - lag):
            total += centred[ch, t] * centred[ch, t + lag]
    return total / (c * h)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_REASSOCIATE)
def _ess_of(series: NDArray[np.float64], centred: NDArray[np.float64],
            rho: NDArray[np.float64], pairs: NDArray[np.float64]) -> float:
    """Effective sample size of ``(chains, draws)``: Geyer's initial monotone sequence.

    The autocorrelations combine the chains as in Vehtari et al. (2021, eq. 10); pairs
    of consecutive lags are summed while positive, made non-increasing, and the estimate
    is bounded by ``chains * draws * log10(chains * draws)``. Autocovariances are summed
    directly, lag by lag, only as far as the sequence goes (usually a few lags): the
    same sums as the FFT's, without the lags past the sequence's end. ``centred``,
    ``rho`` and ``pairs`` are work arrays (``series``' shape, ``draws``, ``draws``).
    """
    c, h = series.shape
    size = c * h
    if series.max() - series.min() < _RESOLUTION:
        return float(size)
    means = np.empty(c)
    for ch in range(c):
        means[ch] = series[ch].mean()
        for t in range(h):
            centred[ch, t] = series[ch, t] - means[ch]
    acov0 = 0.0
    for ch in range(c):
        for t in range(h):
            acov0 += centred[ch, t] * centred[ch, t]
    acov0 /= c * h
    mean_var = acov0 * h / (h - 1.0)
    var_plus = mean_var * (h - 1.0) / h
    if c > 1:
        var_plus += np.sum((means - means.mean()) ** 2) / (c - 1)
    if not np.isfinite(var_plus) or var_plus == 0.0:
        return np.nan
    n_pairs = max((h - 3) // 2 + 1, 1)
    rho[0] = 1.0
    known = 1  # lags with rho computed
    # the pair that ends the sequence: the first whose successor is not positive
    last = n_pairs - 1
    for j in range(n_pairs):
        for k in range(known, min(2 * j + 4, h)):
            rho[k] = 1.0 - (mean_var - _autocovariance(centred, k)) / var_plus
        known = max(known, min(2 * j + 4, h))
        pairs[j] = rho[2 * j] + rho[2 * j + 1]
        if j == 0 and pairs[0] <= 0.0:
            break
        if j + 1 < n_pairs:
            pairs[j + 1] = rho[2 * j + 2] + rho[2 * j + 3]
            if pairs[j + 1] <= 0.0:
                last = j + 1
                break
    if pairs[0] <= 0.0:
        last = 0
    kept = 0.0
    running = np.inf
    for j in range(last):
        running = min(running, pairs[j])
        kept += running
    even = rho[2 * last]
    tail = even if (even > 0.0 or pairs[last] >= 0.0) else 0.0
    tau = max(-1.0 + 2.0 * kept + tail, 1.0 / np.log10(size))
    return size / tau


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _quantile_of_sorted(ordered: NDArray[np.float64], prob: float) -> float:
    """:func:`numpy.quantile`'s "linear" method on sorted values, its interpolation too.

    (``a + t (b - a)``, or ``b - (b - a)(1 - t)`` when ``t >= 0.5``), so that the
    indicator of draws below it matches ArviZ's exactly.
    """
    n = ordered.shape[0]
    position = prob * (n - 1)
    below = min(int(np.floor(position)), n - 1)
    above = min(below + 1, n - 1)
    t = position - below
    a, b = ordered[below], ordered[above]
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + t * (b - a)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _block_kernel(x: NDArray[np.float64], order: NDArray[np.intp],
                  all_sorted: NDArray[np.float64], table: NDArray[np.float64],
                  probs: NDArray[np.float64], rhat: NDArray[np.float64],
                  bulk: NDArray[np.float64], tail: NDArray[np.float64]) -> None:
    """R-hat, bulk and tail ESS of each parameter of ``x`` (parameters, chains, draws).

    ``order`` sorts each parameter's split chains (first halves, then last halves,
    flattened); ``all_sorted`` holds each parameter's draws sorted when the draws are
    odd in number (the split chains leave the middle draws out), else nothing.
    """
    k, m, n = x.shape
    h = n // 2
    c = 2 * m
    total = c * h
    split = np.empty((c, h))
    flat = split.reshape(total)
    ordered = np.empty(total)
    folded = np.empty(total)
    folded_at = np.empty(total, dtype=np.intp)
    z = np.empty((c, h))
    z_flat = z.reshape(total)
    centred, series = np.empty((c, h)), np.empty((c, h))
    rho, pairs = np.empty(h), np.empty(h)
    for p in range(k):
        for ch in range(m):
            for t in range(h):
                split[ch, t] = x[p, ch, t]
                split[m + ch, t] = x[p, ch, n - h + t]
        for i in range(total):
            ordered[i] = flat[order[p, i]]
        _average_rank_scores(ordered, order[p], table, z_flat)
        bulk[p] = _ess_of(z, centred, rho, pairs)
        rhat_z = _rhat_of(z) if m > 1 else np.nan
        # folded draws |v - median|: the ordered draws below the median, read backwards,
        # merged with those from the median up, are the folded draws in order
        median = (ordered[(total - 1) // 2] + ordered[total // 2]) / 2.0
        upper = 0
        while upper < total and ordered[upper] < median:
            upper += 1
        lower = upper - 1
        for i in range(total):
            if upper < total and (lower < 0 or abs(ordered[upper] - median)
                                  <= abs(ordered[lower] - median)):
                folded[i], folded_at[i] = abs(ordered[upper] - median), order[p, upper]
                upper += 1
            else:
                folded[i], folded_at[i] = abs(ordered[lower] - median), order[p, lower]
                lower -= 1
        _average_rank_scores(folded, folded_at, table, z_flat)
        rhat[p] = max(rhat_z, _rhat_of(z)) if m > 1 else np.nan
        # tail: the indicators of the draws below two quantiles
        source = ordered if n % 2 == 0 else all_sorted[p]
        smallest = np.inf
        for prob in probs:
            quantile = _quantile_of_sorted(source, prob)
            for ch in range(c):
                for t in range(h):
                    series[ch, t] = 1.0 if split[ch, t] <= quantile else 0.0
            smallest = min(smallest, _ess_of(series, centred, rho, pairs))
        tail[p] = smallest


def _block_diagnostics(x: NDArray[np.float64]
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """R-hat, bulk ESS and tail ESS of ``x`` (parameters, chains, draws), NaN-free."""
    k, _, n = x.shape
    h = n // 2
    split = np.concatenate([x[:, :, :h], x[:, :, n - h:]], axis=1).reshape(k, -1)
    order = np.argsort(split, axis=1)
    all_sorted = np.sort(x.reshape(k, -1), axis=1) if n % 2 else np.empty((k, 0))
    total = split.shape[1]
    # normal score of each average rank (Blom's offset 3/8): ranks 1, 1.5, 2, ...
    table = special.ndtri((np.arange(2 * total - 1) / 2.0 + 1.0 - 0.375) / (total + 0.25))
    ci_prob = float(az.rcParams["stats.ci_prob"])
    probs = np.array(sorted((ci_prob, 1.0 - ci_prob)))
    out = [np.empty(k) for _ in range(3)]
    _block_kernel(np.ascontiguousarray(x), order, all_sorted, table, probs, *out)
    return out[0], out[1], out[2]


def array_diagnostics(samples: NDArray[np.floating]
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Rank-normalised split R-hat, bulk ESS and tail ESS of many parameters at once.

    The computations of Vehtari et al. (2021) as ArviZ writes them (``rhat`` with
    ``method="rank"``, ``ess`` with ``method="bulk"`` and ``"tail"``; the tests compare
    the two to 1e-10), for many parameters at once: ArviZ computes one parameter at a time
    in Python (about 3 ms each for 4 x 1,000 draws, 85 s for the ordinal model's 28,471
    parameters at 9,202 respondents). Here numpy sorts each block of parameters and a
    numba loop does the rest, in one thread per core: the folded draws' order is merged
    from the draws' (no second sort), and autocovariances are summed only as far as
    Geyer's sequence reaches (4 s for those 28,471 parameters on 2 cores, against 15 s
    with the previous numpy version's FFTs and second sort). The tail ESS is ArviZ's
    default: the smaller ESS of the indicators of the quantiles ``1 - p`` and ``p``,
    ``p`` ArviZ's ``rcParams["stats.ci_prob"]`` (0.89; the paper uses 5 % and 95 %).

    Parameters
    ----------
    samples : ndarray, shape (chains, draws, parameters)

    Returns
    -------
    rhat, ess_bulk, ess_tail : ndarray, shape (parameters,)
        NaN where a parameter has a NaN draw, fewer than 4 draws, or (R-hat) one chain.
    """
    x = np.asarray(samples, dtype=np.float64)
    out = [np.full(x.shape[2], np.nan) for _ in range(3)]
    if x.shape[1] < 4:
        return out[0], out[1], out[2]

    def compute(start: int) -> None:
        # consecutive parameters: each chain's draws of them are side by side in memory
        block = np.ascontiguousarray(np.moveaxis(x[:, :, start:start + _BLOCK], 2, 0))
        valid = ~np.isnan(block).any(axis=(1, 2))
        if not valid.any():
            return
        values = _block_diagnostics(block[valid])
        for target, block_values in zip(out, values, strict=True):
            target[start:start + len(valid)][valid] = block_values
    starts = range(0, x.shape[2], _BLOCK)
    # numpy's sorts and the numba kernel release the GIL: one thread per core
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1) or 1) as pool:
        list(pool.map(compute, starts))
    return out[0], out[1], out[2]
