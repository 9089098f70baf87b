"""The synthetic finite population: every citizen, mayor, company and association leader.

Departments get a random relative size; each has communes (rural / small-town / urban,
coded ``small`` / ``medium`` / ``large``), whose citizens and mayor are units of the
``citizen`` and ``elected`` populations. Company leaders sit in employment zones and
association leaders in local networks inside each department: those are the clusters the
designs draw. Practices depend on population, region, department, size class and age, so
that design-weighted and naive estimates differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from impactmodel.simulate.questionnaire import BINARY_PRACTICES, MATURITY_LEVELS
from impactmodel.simulate.settings import SimulationSettings
from impactmodel.territories import departments
from impactmodel.vocabulary import POPULATIONS

AGE_PROBS = {  # by population: 18-39, 40-59, 60+
    "citizen": (0.34, 0.34, 0.32), "elected": (0.08, 0.37, 0.55),
    "business": (0.25, 0.52, 0.23), "association": (0.18, 0.38, 0.44),
}
ORG_SIZE_PROBS = {"business": (0.70, 0.22, 0.08), "association": (0.62, 0.28, 0.10)}
ORG_PER_CITIZEN = {"business": 0.32, "association": 0.27}
ORG_PER_NETWORK = 25


@dataclass(frozen=True)
class FinitePopulation:
    """All units, one row each, and the parameters that generated their practices.

    ``units`` has integer-coded columns ``population``, ``department``, ``region``,
    ``age_group``, ``size_class`` (indices into the vocabularies), ``cluster`` (a label
    unique over the whole population), the practices, and ``commune`` for citizens and
    mayors.
    """

    units: pd.DataFrame
    region_codes: tuple[str, ...]
    department_codes: tuple[str, ...]
    parameters: dict[str, Any]


def _draw_codes(rng: np.random.Generator, probs: NDArray[np.float64]) -> NDArray[np.int_]:
    """One categorical draw per row of a (n, K) probability matrix."""
    u = rng.random(len(probs))
    return (u[:, None] > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)


def _geography(rng: np.random.Generator, scale: float
               ) -> tuple[pd.DataFrame, NDArray[np.int_], list[str]]:
    deps = departments()
    regions = sorted({d.region for d in deps})
    dept_region = np.array([regions.index(d.region) for d in deps])
    rel_size = rng.lognormal(0.0, 0.6, len(deps))
    rel_size /= rel_size.mean()
    n_communes = np.round(scale * (20 + rng.poisson(70 * rel_size))).astype(int)
    commune_dept = np.repeat(np.arange(len(deps)), n_communes)
    p_large = np.clip(0.06 * rel_size[commune_dept], 0.02, 0.3)
    p_medium = np.full_like(p_large, 0.28)
    probs = np.column_stack([1 - p_large - p_medium, p_medium, p_large])
    communes = pd.DataFrame({"department": commune_dept, "region": dept_region[commune_dept],
                             "size_class": _draw_codes(rng, probs)})
    return communes, dept_region, regions


def _units(rng: np.random.Generator, communes: pd.DataFrame, dept_region: NDArray[np.int_],
           settings: SimulationSettings) -> pd.DataFrame:
    per_commune = np.asarray(settings.citizens_per_commune)[communes["size_class"]]
    n_citizens = 1 + rng.poisson(per_commune)
    commune_id = np.arange(len(communes))
    cit = communes.loc[np.repeat(commune_id, n_citizens)].reset_index(drop=True)
    cit["commune"] = np.repeat(commune_id, n_citizens)
    cit["cluster"] = [f"commune-{c:05d}" for c in cit["commune"]]
    cit["population"] = POPULATIONS.index("citizen")
    mayors = communes.copy()
    mayors["commune"] = commune_id
    mayors["cluster"] = [f"commune-{c:05d}" for c in commune_id]
    mayors["population"] = POPULATIONS.index("elected")
    frames = [cit, mayors]
    citizens_by_dept = np.bincount(cit["department"], minlength=len(dept_region))
    for pop in ("business", "association"):
        counts = np.maximum(20, np.round(citizens_by_dept * ORG_PER_CITIZEN[pop])).astype(int)
        dept = np.repeat(np.arange(len(counts)), counts)
        org = pd.DataFrame({"department": dept, "region": dept_region[dept]})
        org["size_class"] = _draw_codes(rng, np.tile(ORG_SIZE_PROBS[pop], (len(org), 1)))
        if pop == "business":  # employment zones: 2 + Poisson(3) per department
            n_zones = 2 + rng.poisson(3, len(counts))
            zone = (rng.random(len(org)) * n_zones[dept]).astype(int)
            org["cluster"] = [f"zone-{d:03d}-{z:02d}" for d, z in zip(dept, zone, strict=True)]
        else:  # local networks of about ORG_PER_NETWORK associations
            n_networks = np.maximum(2, counts // ORG_PER_NETWORK)
            net = (rng.random(len(org)) * n_networks[dept]).astype(int)
            org["cluster"] = [f"network-{d:03d}-{k:03d}" for d, k in zip(dept, net, strict=True)]
        org["commune"] = -1
        org["population"] = POPULATIONS.index(pop)
        frames.append(org)
    units = pd.concat(frames, ignore_index=True)
    pop_names = np.asarray(POPULATIONS)[units["population"]]
    age_probs = np.array([AGE_PROBS[p] for p in POPULATIONS])[units["population"]]
    # rural citizens are older
    shift = np.where((pop_names == "citizen") & (units["size_class"] == 0), 0.08, 0.0)
    age_probs = age_probs + np.column_stack([-shift, np.zeros_like(shift), shift])
    units["age_group"] = _draw_codes(rng, age_probs)
    return units


def _practices(rng: np.random.Generator, units: pd.DataFrame, n_regions: int, n_depts: int
               ) -> dict[str, Any]:
    """Draw the practice variables into ``units``; return their generating parameters."""
    pop, reg, dep = units["population"], units["region"], units["department"]
    size, age = units["size_class"].to_numpy(), units["age_group"].to_numpy()
    params: dict[str, Any] = {
        "partners_population": [-1.2, 1.0, -0.2, 0.9],
        "partners_size": [0.0, 0.4, 0.9],
        "partners_age": [-0.2, 0.0, 0.15],
        "partners_region_sd": 0.45,
        "partners_department_sd": 0.3,
    }
    region_eff = rng.normal(0, params["partners_region_sd"], n_regions)
    dept_eff = rng.normal(0, params["partners_department_sd"], n_depts)
    params["partners_region_effect"] = region_eff.tolist()
    params["partners_department_effect"] = dept_eff.tolist()
    territory = region_eff[reg] + dept_eff[dep]
    lin = (np.asarray(params["partners_population"])[pop]
           + np.asarray(params["partners_size"])[size]
           + np.asarray(params["partners_age"])[age] + territory)
    partners = rng.random(len(units)) < expit(lin)
    units["partners"] = partners.astype(int)
    # with whom and how, given involvement: population-specific base rates
    base = {"with_association": [0.8, 0.9, 0.2, 0.6], "with_company": [-0.6, 0.3, 0.9, 0.4],
            "with_public": [-0.4, 0.2, -0.3, 0.9], "mode_philanthropy": [0.0, -0.5, 0.4, 0.6],
            "mode_responsible": [0.3, 0.0, 0.5, -0.2], "mode_cooperation": [-0.8, 0.1, 0.3, -0.1],
            "mode_innovation": [-0.5, 0.4, -0.2, 0.3]}
    params["practice_base_logit"] = base
    for name in BINARY_PRACTICES:
        if name == "partners":
            continue
        p = expit(np.asarray(base[name])[pop] + 0.3 * (size - 1) + 0.5 * territory)
        units[name] = (partners & (rng.random(len(units)) < p)).astype(int)
    n_modes = units[[c for c in BINARY_PRACTICES if c.startswith("mode_")]].sum(axis=1).to_numpy()
    cuts = [-0.3, 0.9, 1.9, 2.9]
    params["maturity_cutpoints"] = cuts
    latent = 1.2 * partners + 0.35 * n_modes + 0.8 * territory + rng.logistic(size=len(units))
    units["maturity"] = (latent[:, None] > np.asarray(cuts)).sum(axis=1)
    rate = np.exp(0.2 + 0.45 * size + 0.3 * territory + 0.15 * n_modes)
    units["n_partnerships"] = np.where(partners, 1 + rng.poisson(rate), 0)
    return params


def build_finite_population(settings: SimulationSettings, rng: np.random.Generator
                            ) -> FinitePopulation:
    """Draw the finite population of all four respondent populations.

    Parameters
    ----------
    settings : SimulationSettings
    rng : numpy.random.Generator

    Returns
    -------
    FinitePopulation
    """
    communes, dept_region, regions = _geography(rng, settings.population_scale)
    units = _units(rng, communes, dept_region, settings)
    params = _practices(rng, units, len(regions), len(dept_region))
    params["maturity_levels"] = list(MATURITY_LEVELS)
    codes = tuple(d.code for d in departments())
    return FinitePopulation(units, tuple(regions), codes, params)
