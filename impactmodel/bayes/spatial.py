"""BYM2 spatial random effects over departments, islands included.

Riebler et al. (2016), *Stat. Methods Med. Res.* 25(4); disconnected graphs:
Freni-Sterrantino, Ventrucci & Rue (2018), *Spatial and Spatio-temporal Epidemiology* 26.
A department's deviation is ``sigma * (sqrt(rho) * phi_d + sqrt(1 - rho) * theta_d)``:
``theta`` independent standard normals, ``phi`` an intrinsic CAR (ICAR) field over the
adjacency graph, with density ``exp(-1/2 sum_{d ~ e} (phi_d - phi_e)^2)``, scaled so that
its typical marginal variance is 1 — so ``sigma`` is the sd of the deviations and ``rho``
the share of their variance that is spatially structured.

Islands (the graph is not connected: the mainland, Corsica's two departments, and the
five overseas departments without neighbours):

- each connected component of two or more departments has its own sum-to-zero
  constraint (the ICAR density says nothing about a component's mean) and its own
  scaling factor, the geometric mean of the diagonal of the generalised inverse of that
  component's graph Laplacian;
- a department without neighbours has no structured part: its ``phi`` is an independent
  standard normal, so its deviation is ``sigma`` times a standard normal, like the rest.

The field is drawn in the eigenbasis of each component's Laplacian (the constrained
ICAR is normal with covariance the Laplacian's generalised inverse): the sum-to-zero
constraints are exact and the sampler sees independent standard normals, where an ICAR
written as a pairwise-difference potential gives it the Laplacian's condition number
(measured on the example, 2 chains x 500 draws: bulk ESS of ``rho`` 85 with that form,
147 with this one; ``rho`` remains the slowest parameter, as is usual for BYM2).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.territories import AdjacencyGraph, adjacency_graph, icar_scaling

__all__ = ["SPATIAL_STRUCTURES", "AdjacencyGraph", "Spatial", "adjacency_graph",
           "bym2_deviations", "icar_scaling"]

#: spatial structures of the department intercepts
Spatial = Literal["none", "bym2"]
SPATIAL_STRUCTURES: tuple[str, ...] = ("none", "bym2")


def bym2_deviations(name: str, graph: AdjacencyGraph, scale: pt.TensorVariable,
                    dims: str) -> pt.TensorVariable:
    """Declare BYM2 deviations ``dims x department`` of sd ``scale`` in the current model.

    Declares ``{name}_rho`` (share of variance spatially structured; uniform prior),
    ``{name}_icar`` (standard normals: the ICAR field's coordinates in the eigenbasis of
    each component's Laplacian, :meth:`~impactmodel.territories.AdjacencyGraph.icar_root`,
    so the sampler sees independent standard normals rather than the Laplacian's
    correlations), ``{name}_iid`` (standard normals) and, for departments without
    neighbours, ``{name}_alone``; returns the deviations (a tensor, not registered).
    """
    root = graph.icar_root()  # departments x free dimensions
    singleton = graph.singleton
    model = pm.modelcontext(None)
    coord = f"{name}_icar_basis"
    if coord not in model.coords:
        model.add_coord(coord, list(range(root.shape[1])))
    rho = pm.Beta(f"{name}_rho", 1.0, 1.0)
    eta = pm.Normal(f"{name}_icar", 0.0, 1.0, dims=(dims, coord))
    structured = pt.dot(eta, pt.as_tensor_variable(root.T))  # dims x departments, scaled
    unstructured = pm.Normal(f"{name}_iid", 0.0, 1.0, dims=(dims, "department"))
    if singleton.any():  # no neighbours: the structured part is a standard normal too
        alone_coord = f"{name}_alone_department"
        if alone_coord not in model.coords:
            labels = list(model.coords["department"])
            model.add_coord(alone_coord, [labels[k] for k in np.flatnonzero(singleton)])
        alone = pm.Normal(f"{name}_alone", 0.0, 1.0, dims=(dims, alone_coord))
        structured = structured + pt.dot(alone, pt.as_tensor_variable(
            np.eye(len(singleton))[singleton]))
    return scale * (pt.sqrt(rho) * structured + pt.sqrt(1.0 - rho) * unstructured)
