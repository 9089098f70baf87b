"""Default priors of the impact models, on the scale of each outcome.

The scale-score model works in POMP points (0-100), the ordinal model on the logit scale.

Every prior is overridable by name (``with_overrides``) from a model specification;
unknown names are refused with the closest valid one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Self

from impactmodel.errors import ImpactModelError
from impactmodel.vocabulary import closest


class PriorError(ImpactModelError):
    """A prior override that does not exist or is not a positive number where needed."""


class _Overridable:
    """Priors that a model specification may override by name."""

    def with_overrides(self, overrides: Mapping[str, float]) -> Self:
        """Return priors with ``overrides`` applied (names as the attributes)."""
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        for key, value in overrides.items():
            if key not in names:
                guess = closest(key, names)
                raise PriorError(f"unknown prior '{key}'"
                                 + (f"; did you mean '{guess}'?" if guess else "")
                                 + f" (priors: {', '.join(names)})")
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or (not key.endswith("_mean") and value <= 0)):
                raise PriorError(f"prior '{key}' must be a positive number, got {value!r}")
        return replace(self, **{k: float(v) for k, v in overrides.items()})  # type: ignore[type-var]


@dataclass(frozen=True)
class ScaleScorePriors(_Overridable):
    """Weakly informative priors of the gaussian scale-score model (POMP points).

    Attributes
    ----------
    intercept_mean, intercept_sd : float
        Each cell x population mean score ~ N(50, 20): anywhere in 0-100 is plausible.
    region_sd, department_sd : float
        Half-normal scales of the region and department-within-region sds.
    effect_sd : float
        Normal sd of a practice's overall effect (points per unit of the practice).
    component_sd : float
        Half-normal scale of the sds of the impact, lens and dimension parts of effects
        and of their region / department variation; normal sd of the (sum-to-zero)
        population part.
    residual_sd, trait_sd : float
        Half-normal scales of the residual sd and of the respondent trait sd per impact.
    trait_correlation_eta : float
        LKJ shape of the correlation between a respondent's traits across impacts (1:
        uniform over correlation matrices; 2, the default, mildly favours weak correlation).
    covariate_sd : float
        Normal sd of the covariate (dummy) shifts per impact, when covariates are used.
    """

    intercept_mean: float = 50.0
    intercept_sd: float = 20.0
    region_sd: float = 5.0
    department_sd: float = 5.0
    effect_sd: float = 5.0
    component_sd: float = 2.5
    residual_sd: float = 20.0
    trait_sd: float = 15.0
    trait_correlation_eta: float = 2.0
    covariate_sd: float = 10.0


@dataclass(frozen=True)
class OrdinalPriors(_Overridable):
    """Weakly informative priors of the ordinal item model (logit scale).

    Attributes
    ----------
    cutpoint_sd : float
        Normal sd of the ordered cut-points of each item (their location is the item's).
    population_sd : float
        Normal sd of an item's population shifts (sum-to-zero over the populations asked).
    region_sd, department_sd : float
        Half-normal scales of the region and department-within-region sds.
    covariate_sd : float
        Normal sd of the covariate (dummy) effects per impact.
    trait_sd : float
        Half-normal scale of the respondent trait sd per impact.
    trait_correlation_eta : float
        LKJ shape of the correlation between a respondent's traits across impacts (1:
        uniform over correlation matrices; 2, the default, mildly favours weak correlation).
    effect_sd, component_sd : float
        As in :class:`ScaleScorePriors`, in logits per unit of the practice.
    """

    cutpoint_sd: float = 3.0
    population_sd: float = 1.0
    region_sd: float = 0.5
    department_sd: float = 0.5
    covariate_sd: float = 1.0
    trait_sd: float = 1.5
    trait_correlation_eta: float = 2.0
    effect_sd: float = 1.0
    component_sd: float = 0.5
