"""Weighting kernels (numpy arrays in, numpy arrays out)."""

from impactmodel.weighting.raking import RakingError, RakingNotConverged, rake

__all__ = ["RakingError", "RakingNotConverged", "rake"]
