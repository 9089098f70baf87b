"""The practice-effect structure shared by the impact models.

Inside a ``pm.Model`` with coordinates ``practice, impact, lens, dimension, population,
region, department``: a practice's effect in cell (impact m, lens l, dimension k), for
population p in department d of region r, is

    b + b_impact[m] + b_lens[l] + b_dim[k] + b_pop[p] + b_region[r] + b_dept[d]

with sum-to-zero impact / lens / dimension / population parts (their sds estimated) and
non-centred region and department-within-region variation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import NDArray


@dataclass(frozen=True)
class PracticeEffects:
    """Tensors of the effect structure (practice first)."""

    cell: pt.TensorVariable  # practice x impact x lens x dimension
    population: pt.TensorVariable  # practice x population (sum-to-zero part)
    department: pt.TensorVariable  # practice x department (region + department variation)

    def slopes(self, impact: NDArray[np.integer], lens: NDArray[np.integer],
               dimension: NDArray[np.integer], population: NDArray[np.integer],
               department: NDArray[np.integer]) -> pt.TensorVariable:
        """Slopes (rows x practices) for rows indexed by their cell, population, department."""
        return (self.cell[:, impact, lens, dimension] + self.population[:, population]
                + self.department[:, department]).T


def practice_effects(department_region: NDArray[np.integer], *, effect_sd: float,
                     component_sd: float) -> PracticeEffects:
    """Declare the effect parameters and their reported summaries in the current model.

    Deterministics: ``effect_cell``, ``effect_population``, ``effect_region``,
    ``effect_department`` and ``prob_effect_positive`` (per cell).
    """
    b = pm.Normal("b", 0.0, effect_sd, dims="practice")
    scale = pm.HalfNormal("component_scale", component_sd, shape=4)
    b_impact = pm.ZeroSumNormal("b_impact", sigma=scale[0], dims=("practice", "impact"))
    b_lens = pm.ZeroSumNormal("b_lens", sigma=scale[1], dims=("practice", "lens"))
    b_dim = pm.ZeroSumNormal("b_dimension", sigma=scale[2], dims=("practice", "dimension"))
    b_pop = pm.ZeroSumNormal("b_population", sigma=scale[3], dims=("practice", "population"))
    territory = pm.HalfNormal("slope_territory_scale", component_sd, shape=2)
    b_region = pm.Deterministic(
        "b_region", territory[0] * pm.Normal("b_region_z", 0, 1, dims=("practice", "region")),
        dims=("practice", "region"))
    b_dept = pm.Deterministic(
        "b_department", b_region[:, department_region]
        + territory[1] * pm.Normal("b_department_z", 0, 1, dims=("practice", "department")),
        dims=("practice", "department"))
    cell = pm.Deterministic(
        "effect_cell", b[:, None, None, None] + b_impact[:, :, None, None]
        + b_lens[:, None, :, None] + b_dim[:, None, None, :],
        dims=("practice", "impact", "lens", "dimension"))
    pm.Deterministic("effect_population", b[:, None] + b_pop, dims=("practice", "population"))
    pm.Deterministic("effect_region", b[:, None] + b_region, dims=("practice", "region"))
    pm.Deterministic("effect_department", b[:, None] + b_dept,
                     dims=("practice", "department"))
    pm.Deterministic("prob_effect_positive", pt.gt(cell, 0),
                     dims=("practice", "impact", "lens", "dimension"))
    return PracticeEffects(cell, b_pop, b_dept)
