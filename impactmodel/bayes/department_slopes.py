"""Departments' own slope deviations integrated out of the item model, and drawn back.

In the ordinal model (:mod:`impactmodel.bayes.ordinal`) a practice's slope for a
respondent of department ``d`` has a department-within-region part ``o[:, d]`` (practice
x department; the departments of a region sum to zero): ``o = c B'``, ``B`` the
departments x contrasts orthonormal basis of the within-region contrasts
(:func:`~impactmodel.bayes.effects.within_group_basis`) and ``c`` (practice x contrast)
iid ``N(0, s^2)``, ``s`` = ``b_department_scale``. It enters only the respondents'
locations, the same amount ``a_i = x_i . o[:, d_i]`` for each of respondent ``i``'s
impacts, whose prior is multivariate normal with covariance ``Sigma`` (the traits'). So
``c`` can be integrated out exactly. With ``r_i`` the location minus its predictor
without ``o`` (impacts), ``v_i = 1' Sigma^-1 r_i`` and ``w = 1' Sigma^-1 1``::

    sum_i log N(r_i; a_i 1, Sigma) = sum_i log N(r_i; 0, Sigma) + c . g - w/2 c' A c

    g = vec(sum_i v_i x_i B[d_i]'),   A = sum_i (x_i x_i') kron (B[d_i] B[d_i]')

(``vec`` row-major: practice, then contrast). ``A`` is data alone: with its
eigendecomposition ``A = U diag(lambda) U'`` (computed once per dataset), the integral
over ``c ~ N(0, s^2 I)`` is::

    log E[exp(c . g - w/2 c' A c)] = 1/2 sum_k q_k (U'g)_k^2 - 1/2 sum_k log(1 + s^2 w lambda_k)

with ``q_k = s^2 / (1 + s^2 w lambda_k)``: a product ``U'g`` per gradient, no
factorisation (:func:`slope_integral`; it is part of the locations' density,
:func:`impactmodel.bayes.locations.locations_logp`, whose one pass over the respondents
gives ``g``'s per-department sums beside the normal's quadratic form). The conditional
law of ``c`` given everything else is normal with mean ``U (q * U'g)`` and covariance
``U diag(q) U'``; the model reports the mean (as the departments' own deviations,
``b_department_own_mean``) and ``w`` (``location_total_precision``), and
:func:`with_department_slopes` draws ``c`` from that law for every posterior draw, which
gives ``b_department`` and ``effect_department`` exactly as the model with ``c`` sampled
would (a draw from the joint posterior).

Why: sampled, ``c`` and ``s`` formed a funnel the data barely inform (``s`` near zero:
the departments' slopes vary little beyond their region's), and ``s`` was the slowest
parameter of the fit (bulk ESS 193 of 4,000 draws at 9,202 respondents, see
``benchmarks/README.md``). Integrated out, ``s`` has its marginal posterior and no funnel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
import xarray as xr
from numpy.typing import NDArray

from impactmodel.bayes.effects import within_group_basis
from impactmodel.bayes.item_data import ItemData

#: deterministics the model reports for the draws (dropped once they are made)
CONDITIONAL_NAMES = ("b_department_own_mean", "location_total_precision")


@dataclass(frozen=True)
class DepartmentSlopeDesign:
    """What the integral needs from the data: the contrast basis and ``A``'s eigensystem.

    Attributes
    ----------
    basis : ndarray, shape (departments, contrasts)
        Orthonormal within-region contrasts (no column for a region of one department).
    eigenvalues : ndarray, shape (practices * contrasts,)
        Of ``A`` (clipped at zero).
    eigenvectors : ndarray, shape (practices * contrasts, practices * contrasts)
        Columns ``U``.
    """

    basis: NDArray[np.float64]
    eigenvalues: NDArray[np.float64]
    eigenvectors: NDArray[np.float64]

    @classmethod
    def of(cls, x: NDArray[np.float64], department: NDArray[np.integer],
           department_region: NDArray[np.integer]) -> DepartmentSlopeDesign:
        """Build it from the respondents' practices and departments.

        Parameters
        ----------
        x : ndarray, shape (respondents, practices)
        department : ndarray of int, shape (respondents,)
        department_region : ndarray of int, shape (departments,)
        """
        basis = within_group_basis(department_region)
        n_dept, n_practices = len(department_region), x.shape[1]
        gram = np.zeros((n_dept, n_practices, n_practices))  # sum of x x' per department
        for p in range(n_practices):
            for q in range(p, n_practices):
                gram[:, p, q] = gram[:, q, p] = np.bincount(
                    department, weights=x[:, p] * x[:, q], minlength=n_dept)
        size = n_practices * basis.shape[1]
        a = np.einsum("dj,dk,dpq->pjqk", basis, basis, gram).reshape(size, size)
        eigenvalues, eigenvectors = np.linalg.eigh(a)
        return cls(basis, np.clip(eigenvalues, 0.0, None), eigenvectors)


def slope_integral(by_department: pt.TensorVariable, total_precision: pt.TensorVariable,
                   eigenvalues: pt.TensorVariable, eigenvectors: pt.TensorVariable,
                   basis: pt.TensorVariable, scale: pt.TensorVariable
                   ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Return the integral's log-density and the departments' deviations' conditional mean.

    Parameters
    ----------
    by_department : TensorVariable, shape (departments, practices)
        ``sum_{i in d} v_i x_i`` per department (``v_i = 1' Sigma^-1 r_i``, ``r_i`` the
        location minus its predictor without the departments' own slope deviations):
        the per-group sums ``H`` of :mod:`impactmodel.bayes.locations`, by department.
    total_precision : TensorVariable
        ``w = 1' Sigma^-1 1``.
    eigenvalues, eigenvectors : TensorVariable
        Of :class:`DepartmentSlopeDesign` (data containers: they change with the data).
    basis : TensorVariable, shape (departments, contrasts)
    scale : TensorVariable
        ``s``, the sd of the departments' own deviations.

    Returns
    -------
    tuple of TensorVariable
        ``1/2 sum_k q_k (U'g)_k^2 - 1/2 sum_k log(1 + s^2 w lambda_k)`` (a scalar), and the
        conditional mean of the deviations ``o`` (practice x department).
    """
    g = pt.dot(by_department.T, basis).reshape((-1,))
    projected = pt.dot(eigenvectors.T, g)
    variance = scale**2
    shrink = variance / (1.0 + variance * total_precision * eigenvalues)  # q
    log_integral = (0.5 * pt.sum(shrink * projected**2)
                    - 0.5 * pt.sum(pt.log1p(variance * total_precision * eigenvalues)))
    mean = pt.dot(eigenvectors, shrink * projected).reshape((by_department.shape[1], -1))
    return log_integral, pt.dot(mean, basis.T)


def with_department_slopes(posterior: xr.Dataset, design: DepartmentSlopeDesign,
                           department_region: NDArray[np.integer],
                           rng: np.random.Generator) -> xr.Dataset:
    """Draw the departments' own deviations for every draw; add the reported slopes.

    Parameters
    ----------
    posterior : xarray.Dataset
        With ``b``, ``b_region``, ``b_department_scale`` and :data:`CONDITIONAL_NAMES`.
    design : DepartmentSlopeDesign
        Of the data the posterior was fitted to.
    department_region : ndarray of int, shape (departments,)
    rng : numpy.random.Generator

    Returns
    -------
    xarray.Dataset
        ``posterior`` with ``b_department`` (region plus own deviation) and
        ``effect_department`` (``b`` plus it), practice x department, and without
        :data:`CONDITIONAL_NAMES`.
    """
    own_mean = posterior["b_department_own_mean"].transpose("chain", "draw", ...)
    n_chain, n_draw, n_practices, _ = own_mean.shape
    basis, lam, u = design.basis, design.eigenvalues, design.eigenvectors
    variance = posterior["b_department_scale"].values[..., None] ** 2
    precision = posterior["location_total_precision"].values[..., None]
    sd = np.sqrt(variance / (1.0 + variance * precision * lam))  # chain x draw x k
    noise = np.einsum("mk,cdk->cdm", u, sd * rng.standard_normal(sd.shape))
    contrasts = own_mean.values @ basis + noise.reshape(n_chain, n_draw, n_practices, -1)
    region = posterior["b_region"].transpose("chain", "draw", "practice", "region").values
    b_department = region[..., department_region] + contrasts @ basis.T
    dims = ("chain", "draw", "practice", "department")
    overall = posterior["b"].transpose("chain", "draw", "practice").values[..., None]
    coords = {k: own_mean.coords[k] for k in dims}
    return posterior.drop_vars(list(CONDITIONAL_NAMES)).assign(
        b_department=xr.DataArray(b_department, coords=coords, dims=dims),
        effect_department=xr.DataArray(overall + b_department, coords=coords, dims=dims))


def draw_department_slopes(idata: xr.DataTree, data: ItemData, seed: int) -> xr.DataTree:
    """Return ``idata`` with the department slopes drawn into its posterior.

    :func:`with_department_slopes` for a fit of the item model to ``data``; the draws are
    seeded from ``seed`` (the sampler's), so a fit is reproducible.
    """
    sampled = idata["posterior"].to_dataset()
    design = DepartmentSlopeDesign.of(data.x, data.department, data.department_region)
    tree = idata.copy()
    tree["posterior"] = xr.DataTree(with_department_slopes(
        sampled, design, data.department_region,
        np.random.default_rng([seed, 0xD5])).assign_attrs(sampled.attrs))
    return tree
