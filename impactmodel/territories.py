"""French departments and regions (INSEE codes), from the bundled territory table.

Source: INSEE Code officiel géographique, copied from ``shared/reference/territories.csv``;
department adjacency computed from IGN Admin Express COG 2018 (Licence Ouverte / Etalab).
:class:`AdjacencyGraph` holds the adjacency as a graph: its connected components (the
mainland, Corsica, five overseas departments alone) and the scaling of an intrinsic CAR
field on each (used by BYM2 effects, :mod:`impactmodel.bayes.spatial`, and the simulator).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csgraph, csr_matrix

from impactmodel.vocabulary import closest


@dataclass(frozen=True, slots=True)
class Department:
    """One department: its INSEE code and name, and its region's code and name."""

    code: str
    name: str
    region: str
    region_name: str


def _read_package_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("impactmodel").joinpath("_data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def departments() -> tuple[Department, ...]:
    """Return the 101 departments in INSEE order.

    Returns
    -------
    tuple of Department
    """
    return tuple(
        Department(r["department"], r["department_name"], r["region"], r["region_name"])
        for r in _read_package_csv("territories.csv")
    )


@cache
def department_codes() -> tuple[str, ...]:
    """Return the 101 department codes (``'01'`` .. ``'95'``, ``'2A'``, ``'2B'``, ``'971'`` ..)."""
    return tuple(d.code for d in departments())


@cache
def region_of() -> dict[str, str]:
    """Return the mapping department code -> region code."""
    return {d.code: d.region for d in departments()}


@cache
def region_names() -> dict[str, str]:
    """Return the mapping region code -> region name (18 regions)."""
    return {d.region: d.region_name for d in departments()}


@cache
def adjacency() -> tuple[tuple[str, str], ...]:
    """Return the pairs of departments that share a border (overseas departments have none)."""
    return tuple((r["department_a"], r["department_b"]) for r in _read_package_csv(
        "department_adjacency.csv"))


def normalise_department_code(value: object) -> str | None:
    """Return the INSEE department code that ``value`` denotes, or ``None`` if it is none.

    Codes are strings, but files written by Stata, SPSS or spreadsheets often hold them as
    numbers: ``1`` and ``1.0`` denote ``'01'``; ``'2a'`` denotes ``'2A'``.

    Parameters
    ----------
    value : object
        A cell of the territory column.

    Returns
    -------
    str or None
        The valid code, or ``None`` when ``value`` is not a department code.
    """
    valid = set(department_codes())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().upper()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    return text if text in valid else None


def suggest_department(value: object) -> str | None:
    """Return the valid department code closest to an invalid ``value``, if any.

    Numbers get the numerically nearest code of the same kind (metropolitan ``01``..``95``
    or overseas ``971``..``976``); ``20`` and ``2`` + letter (Corsica's former code and
    misspellings of it) get ``2A``; anything else the closest spelling.
    """
    text = str(value).strip().upper()
    if text.endswith(".0"):
        text = text[:-2]
    if text == "20" or (len(text) == 2 and text[0] == "2" and text[1].isalpha()):
        return "2A"
    if text.isdigit():
        number = int(text)
        pool = [c for c in department_codes() if c.isdigit() and (len(c) == 3) == (number > 100)]
        return min(pool, key=lambda c: (abs(int(c) - number), c))
    return closest(text, department_codes())


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

    def icar_root(self) -> NDArray[np.float64]:
        """Return ``R`` (departments x free dimensions) with ``R R'`` the scaled ICAR covariance.

        Per connected component of two or more departments, ``U L^-1/2 / sqrt(s)`` from
        the non-zero eigenpairs ``(L, U)`` of its Laplacian and its scaling factor ``s``:
        ``R R'`` is the generalised inverse of the Laplacian over ``s``, so
        ``R @ standard normals`` is an ICAR field summing to zero over each component with
        typical variance 1. Departments alone get a zero row.
        """
        q = self.laplacian()
        n = len(self.component)
        blocks = []
        for c in np.unique(self.component):
            members = np.flatnonzero(self.component == c)
            if len(members) == 1:
                continue
            values, vectors = np.linalg.eigh(q[np.ix_(members, members)])
            keep = values > 1e-9 * values.max()
            block = np.zeros((n, int(keep.sum())))
            block[members] = (vectors[:, keep] / np.sqrt(values[keep])
                              / np.sqrt(self.scaling[members][:, None]))
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

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
