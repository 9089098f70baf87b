"""Bayesian models: sampling (nutpie / PyMC / ADVI), convergence checks, model builders."""

from impactmodel.bayes.diagnostics import Convergence, Thresholds, check_convergence
from impactmodel.bayes.sampling import Draws, SamplerSettings, sample_model

__all__ = ["Convergence", "Draws", "SamplerSettings", "Thresholds", "check_convergence",
           "sample_model"]
