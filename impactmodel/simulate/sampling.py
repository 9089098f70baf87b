"""Draw each population's sample with its own stratified, clustered, unequal-probability design.

===========  ===================  ==============================  ========================
population   strata               stage 1 (PSU)                   stage 2
===========  ===================  ==============================  ========================
citizen      region x size class  communes, systematic PPS        SRS of 8 citizens
elected      region x size class  mayors, SRS, large oversampled  --
business     region               employment zones, SRS           Poisson, pi ~ size
association  region               local networks, systematic PPS  SRS of 4 leaders
===========  ===================  ==============================  ========================

Every stratum gets at least two PSUs. ``fpc`` is the number of PSUs in the stratum.
Nonresponse then removes units with a propensity depending on age group and size class --
variables the weights are raked on, so it is ignorable after raking -- and, only when
``SimulationSettings.informative_nonresponse`` is not zero, on partnership involvement
(not ignorable: for sensitivity studies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit, logit

from impactmodel.simulate.settings import SimulationSettings


def systematic_pps(size: NDArray[np.float64], n: int, rng: np.random.Generator
                   ) -> tuple[NDArray[np.int_], NDArray[np.float64]]:
    """Systematic sampling with probability proportional to size, in random order.

    Units whose probability ``n * size / sum(size)`` would reach 1 are taken with
    certainty and the rest re-allocated among the others.

    Parameters
    ----------
    size : ndarray, shape (N,)
        Positive size measures.
    n : int
        Sample size, ``1 <= n <= N``.
    rng : numpy.random.Generator

    Returns
    -------
    selected : ndarray of int
        Indices of the selected units (sorted).
    pi : ndarray, shape (N,)
        First-order inclusion probabilities of all units.
    """
    size = np.asarray(size, dtype=float)
    pi = np.zeros(len(size))
    certain = np.zeros(len(size), dtype=bool)
    while True:
        rest = ~certain
        pi[rest] = (n - certain.sum()) * size[rest] / size[rest].sum()
        newly = rest & (pi >= 1)
        if not newly.any():
            break
        certain |= newly
    pi[certain] = 1.0
    order = rng.permutation(np.flatnonzero(~certain))
    cum = np.concatenate([[0.0], np.cumsum(pi[order])])
    points = rng.random() + np.arange(round(cum[-1]))
    hit = order[np.searchsorted(cum, points, side="right") - 1]
    return np.sort(np.concatenate([np.flatnonzero(certain), hit])), pi


@dataclass(frozen=True)
class DrawnSample:
    """Selected units with their design: stratum, PSU, fpc and inclusion probability."""

    unit: NDArray[np.int_]
    stratum: NDArray[np.str_]
    psu: NDArray[np.str_]
    fpc: NDArray[np.float64]
    pi: NDArray[np.float64]


def _allocate(weights: NDArray[np.float64], total: int, available: NDArray[np.integer]
              ) -> NDArray[np.integer]:
    """Allocate ``total`` draws proportionally to ``weights``, at least 2, at most available."""
    n = np.round(total * weights / weights.sum()).astype(int)
    return np.minimum(np.maximum(n, 2), available)


def _two_stage(rng: np.random.Generator, units: pd.DataFrame, strata: pd.Series,
               n_psu: int, per_psu: int, pps: bool, poisson_size: NDArray[np.float64] | None
               ) -> DrawnSample:
    """Stratified two-stage sample of the clusters in ``units['cluster']``."""
    clusters = units.groupby([strata, units["cluster"]], sort=True).size()
    stratum_psus = clusters.groupby(level=0).size()
    stratum_units = clusters.groupby(level=0).sum()
    alloc = _allocate(np.asarray(stratum_units, dtype=float), n_psu,
                      np.asarray(stratum_psus, dtype=int))
    chosen_units: list[NDArray[np.int_]] = []
    st: list[NDArray[np.str_]] = []
    ps: list[NDArray[np.str_]] = []
    fp: list[NDArray[np.float64]] = []
    pis: list[NDArray[np.float64]] = []
    members = units.groupby([strata, units["cluster"]], sort=True).indices
    for h, n_h in zip(stratum_psus.index, alloc, strict=True):
        sizes = clusters.loc[h]
        if pps:
            picked, pi1 = systematic_pps(sizes.to_numpy(float), int(n_h), rng)
        else:
            picked = np.sort(rng.choice(len(sizes), size=int(n_h), replace=False))
            pi1 = np.full(len(sizes), n_h / len(sizes))
        for c in picked:
            idx = np.asarray(members[(h, sizes.index[c])], dtype=int)
            if poisson_size is None:
                m = min(per_psu, len(idx))
                take = np.sort(rng.choice(idx, size=m, replace=False))
                pi2 = np.full(m, m / len(idx))
            else:
                s = poisson_size[idx]
                p2 = np.minimum(1.0, per_psu * s / s.sum())
                keep = rng.random(len(idx)) < p2
                take, pi2 = idx[keep], p2[keep]
            chosen_units.append(take)
            st.append(np.full(len(take), str(h)))
            ps.append(np.full(len(take), str(sizes.index[c])))
            fp.append(np.full(len(take), float(len(sizes))))
            pis.append(pi1[c] * pi2)
    return DrawnSample(np.concatenate(chosen_units), np.concatenate(st), np.concatenate(ps),
                       np.concatenate(fp), np.concatenate(pis))


def _stratified_srs(rng: np.random.Generator, units: pd.DataFrame, strata: pd.Series,
                    n: int, oversample: NDArray[np.float64]) -> DrawnSample:
    groups = units.groupby(strata, sort=True).indices
    labels = sorted(groups, key=str)
    sizes = np.array([len(groups[h]) for h in labels])
    factor = np.array([oversample[units["size_class"].to_numpy()[groups[h][0]]] for h in labels])
    alloc = _allocate((sizes * factor).astype(float), n, sizes)
    chosen, st, fp, pis = [], [], [], []
    for h, n_h, big_n in zip(labels, alloc, sizes, strict=True):
        chosen.append(np.sort(rng.choice(groups[h], size=int(n_h), replace=False)))
        st.append(np.full(n_h, str(h)))
        fp.append(np.full(n_h, float(big_n)))
        pis.append(np.full(n_h, n_h / big_n))
    unit = np.concatenate(chosen)
    return DrawnSample(unit, np.concatenate(st), units["cluster"].to_numpy()[unit].astype(str),
                       np.concatenate(fp), np.concatenate(pis))


def draw_sample(rng: np.random.Generator, units: pd.DataFrame, population: str,
                n_drawn: int) -> DrawnSample:
    """Draw ``population``'s sample of about ``n_drawn`` units (before nonresponse).

    Parameters
    ----------
    rng : numpy.random.Generator
    units : pandas.DataFrame
        That population's units (index = unit index in the finite population).
    population : str
    n_drawn : int

    Returns
    -------
    DrawnSample
        With ``unit`` holding finite-population indices.
    """
    local = units.reset_index(drop=True)
    region = local["region"].map(lambda r: f"r{r:02d}")
    by_size = region + "-s" + local["size_class"].astype(str)
    if population == "citizen":
        s = _two_stage(rng, local, by_size, max(n_drawn // 8, 1), 8, pps=True, poisson_size=None)
    elif population == "elected":
        s = _stratified_srs(rng, local, by_size, n_drawn, np.array([1.0, 2.0, 4.0]))
    elif population == "business":
        size_measure = np.array([1.0, 3.0, 10.0])[local["size_class"].to_numpy()]
        n_zones = max(n_drawn // 8, 2)
        s = _two_stage(rng, local, region, n_zones, 8, pps=False, poisson_size=size_measure)
    else:
        s = _two_stage(rng, local, region, max(n_drawn // 4, 1), 4, pps=True, poisson_size=None)
    prefix = population[:3]
    return DrawnSample(units.index.to_numpy()[s.unit],
                       np.char.add(f"{prefix}-", s.stratum.astype(str)),
                       np.char.add(f"{prefix}-", s.psu.astype(str)), s.fpc, s.pi)


def respond(rng: np.random.Generator, units: pd.DataFrame, population: str,
            settings: SimulationSettings) -> NDArray[np.bool_]:
    """Draw who answers among the selected ``units``.

    Returns
    -------
    ndarray of bool
    """
    base = logit(settings.response_rates[population])
    lin = (base + np.array([-0.35, 0.0, 0.3])[units["age_group"].to_numpy()]
           + np.array([0.15, 0.0, -0.2])[units["size_class"].to_numpy()]
           + settings.informative_nonresponse * (units["partners"].to_numpy() - 0.5))
    return rng.random(len(units)) < expit(lin)


def drawn_size(settings: SimulationSettings, population: str) -> int:
    """How many units to draw so that about the target number respond."""
    target = settings.respondents * settings.shares[population]
    return round(target / settings.response_rates[population])


__all__ = ["DrawnSample", "draw_sample", "drawn_size", "respond",
           "systematic_pps"]
