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

The field is drawn in an orthonormal basis of the vectors summing to zero within every
component (:func:`~impactmodel.bayes.effects.within_group_basis`), so the constraint is
exact and the sampler sees a proper density.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from impactmodel.bayes.effects import within_group_basis
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
    ``{name}_icar`` (the field in the within-component zero-sum basis, flat with the ICAR
    potential ``{name}_icar_density``) and ``{name}_iid`` (standard normals); returns the
    deviations (a tensor, not registered).
    """
    basis = within_group_basis(graph.component)  # departments x constrained dimensions
    singleton = graph.singleton
    model = pm.modelcontext(None)
    coord = f"{name}_icar_basis"
    if coord not in model.coords:
        model.add_coord(coord, list(range(basis.shape[1])))
    rho = pm.Beta(f"{name}_rho", 1.0, 1.0)
    z = pm.Flat(f"{name}_icar", dims=(dims, coord))
    structured = pt.dot(z, pt.as_tensor_variable(basis.T))  # dims x departments
    i, j = graph.pairs[:, 0], graph.pairs[:, 1]
    pm.Potential(f"{name}_icar_density",
                 -0.5 * pt.sum((structured[:, i] - structured[:, j]) ** 2))
    unstructured = pm.Normal(f"{name}_iid", 0.0, 1.0, dims=(dims, "department"))
    if singleton.any():  # no neighbours: the structured part is a standard normal too
        alone_coord = f"{name}_alone_department"
        if alone_coord not in model.coords:
            labels = list(model.coords["department"])
            model.add_coord(alone_coord, [labels[k] for k in np.flatnonzero(singleton)])
        alone = pm.Normal(f"{name}_alone", 0.0, 1.0, dims=(dims, alone_coord))
        structured = structured + pt.dot(alone, pt.as_tensor_variable(
            np.eye(len(singleton))[singleton]))
    phi = structured / pt.as_tensor_variable(np.sqrt(graph.scaling))
    return scale * (pt.sqrt(rho) * phi + pt.sqrt(1.0 - rho) * unstructured)
