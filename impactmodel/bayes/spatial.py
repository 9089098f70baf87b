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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import NDArray
from scipy.sparse import csgraph, csr_matrix

from impactmodel.bayes.effects import within_group_basis

#: spatial structures of the department intercepts
Spatial = Literal["none", "bym2"]
SPATIAL_STRUCTURES: tuple[str, ...] = ("none", "bym2")


@dataclass(frozen=True)
class AdjacencyGraph:
    """Departments' neighbours, its connected components and ICAR scaling.

    Attributes
    ----------
    pairs : ndarray of int, shape (edges, 2)
        Neighbouring departments (indices, each pair once).
    component : ndarray of int, shape (departments,)
        Connected component of each department.
    scaling : ndarray, shape (departments,)
        The scaling factor of each department's component (1 for a department alone).
    """

    pairs: NDArray[np.integer]
    component: NDArray[np.integer]
    scaling: NDArray[np.float64]

    @property
    def singleton(self) -> NDArray[np.bool_]:
        """Departments without neighbours."""
        return np.bincount(self.component)[self.component] == 1

    def laplacian(self) -> NDArray[np.float64]:
        """Return the graph Laplacian ``Q`` (degree on the diagonal, -1 per neighbour)."""
        n = len(self.component)
        q = np.zeros((n, n))
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        np.add.at(q, (i, j), -1.0)
        np.add.at(q, (j, i), -1.0)
        q[np.diag_indices(n)] = -q.sum(axis=1)
        return q


def icar_scaling(laplacian: NDArray[np.float64]) -> float:
    """Geometric mean of the marginal variances of a connected ICAR field.

    The diagonal of the generalised inverse of its Laplacian (the field constrained to sum
    to zero). A two-department component gives 1/4; a path of three, (50/729)^(1/3).
    """
    variances = np.diag(np.linalg.pinv(laplacian, hermitian=True))
    return float(np.exp(np.mean(np.log(variances))))


def adjacency_graph(departments: Sequence[str],
                    pairs: Sequence[tuple[str, str]]) -> AdjacencyGraph:
    """Build the graph of ``departments`` (their order) from neighbour pairs.

    Parameters
    ----------
    departments : sequence of str
        The model's department coordinate.
    pairs : sequence of (str, str)
        Neighbouring departments (:func:`impactmodel.territories.adjacency`); pairs naming
        a department outside ``departments`` are an error.

    Returns
    -------
    AdjacencyGraph
    """
    index = {d: k for k, d in enumerate(departments)}
    unknown = sorted({d for pair in pairs for d in pair if d not in index})
    if unknown:
        raise ValueError(f"adjacency names departments not in the model: {unknown[:5]}")
    edges = np.array(sorted({tuple(sorted((index[a], index[b]))) for a, b in pairs
                             if a != b}), dtype=np.int64).reshape(-1, 2)
    n = len(departments)
    matrix = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = csgraph.connected_components(matrix, directed=False)
    graph = AdjacencyGraph(edges, component.astype(np.int64), np.ones(n))
    q = graph.laplacian()
    scaling = np.ones(n)
    for c in np.unique(component):
        members = np.flatnonzero(component == c)
        if len(members) > 1:
            scaling[members] = icar_scaling(q[np.ix_(members, members)])
    return AdjacencyGraph(edges, graph.component, scaling)


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
