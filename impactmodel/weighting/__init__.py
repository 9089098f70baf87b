"""Weighting kernels (numpy arrays in, numpy arrays out)."""

from impactmodel.weighting.raking import RakingError, rake

__all__ = ["RakingError", "rake"]
