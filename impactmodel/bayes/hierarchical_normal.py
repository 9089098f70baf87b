"""The hierarchical normal model of Gelman et al. (BDA3, §5.4-5.5), e.g. eight schools.

``y_j ~ N(theta_j, sigma_j)`` with known ``sigma_j``; ``theta_j = mu + tau z_j``,
``z_j ~ N(0, 1)`` (non-centred), ``mu ~ N(mu_mean, mu_sd)``, ``tau ~ HalfCauchy(tau_scale)``.
Built and sampled through the same code path as the impact models, so that it validates
that path against an exact answer (numerical integration over ``tau``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class HierarchicalNormalPriors:
    """Priors on the population mean and the between-group sd."""

    mu_mean: float = 0.0
    mu_sd: float = 5.0
    tau_scale: float = 5.0


def hierarchical_normal_model(y: ArrayLike, sigma: ArrayLike, labels: Sequence[str],
                              priors: HierarchicalNormalPriors | None = None) -> pm.Model:
    """Build the model with a ``group`` coordinate named by ``labels``.

    Returns
    -------
    pymc.Model
        Free variables ``mu``, ``tau``, ``z``; deterministic ``theta`` (dims ``group``).
    """
    p = priors or HierarchicalNormalPriors()
    with pm.Model(coords={"group": list(labels)}) as model:
        mu = pm.Normal("mu", p.mu_mean, p.mu_sd)
        tau = pm.HalfCauchy("tau", p.tau_scale)
        z = pm.Normal("z", 0.0, 1.0, dims="group")
        theta = pm.Deterministic("theta", mu + tau * z, dims="group")
        pm.Normal("y", theta, np.asarray(sigma, dtype=float),
                  observed=np.asarray(y, dtype=float), dims="group")
    return model
