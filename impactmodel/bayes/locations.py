"""The respondents' locations: their normal prior and what the department slopes need, in one pass.

In the item model (:mod:`impactmodel.bayes.ordinal`) respondent ``i``'s location per
impact (row ``l_i``, length ``M``) has the multivariate normal prior ``N(mu_i, Sigma)``
around the respondent-level predictor

    mu_i = G[g_i] + C w_i + (x_i . S[g_i]) 1

with ``g_i`` the respondent's group (department x population), ``G`` the groups' part
per impact (intercepts, shifts), ``S`` the groups' slopes of the practices ``x_i`` (the
same for every impact), ``C`` the coefficients per impact of the respondent's
covariates and practices ``w_i``. Covariates and practices are survey answers of a few
levels each, so respondents share few distinct rows ``(w_i, x_i)``: each respondent has
a *profile* ``p_i``, and ``w_i``, ``x_i`` are row ``p_i`` of the profiles' tables
(135 profiles of 7 covariates and practices, for 9,202 as for 81,471 respondents, in
the simulated surveys of ``benchmarks/``). The loops compute ``C w`` once per profile,
read two indices per respondent instead of their rows, and sum the cotangents of ``C
w_i`` per profile before multiplying by ``w``.

The sampler's value ``v_i`` gives the location ``l_i = mu_i + K (v_i - alpha mu_i)``
for a matrix ``K`` and a constant ``alpha`` (``K`` the identity and ``alpha = 1`` when the
sampler draws the locations themselves; ``K = Sigma^(w/2)`` and ``alpha = 1 - w_mu`` when
it draws them partially non-centred, :mod:`impactmodel.bayes.partial_scaling`). With
``s_i = v_i - alpha mu_i``, ``r_i = K s_i = l_i - mu_i``, ``P = Sigma^-1`` and a weight
vector ``u`` (``P 1`` in the model), :class:`LocationSums` computes

    Q = sum_i r_i' P r_i,        H[g] = sum_{i in g} (u . r_i) x_i,        l_i

(the quadratic form of the prior, the per-group sums that the integral over the
departments' own slope deviations needs, :mod:`impactmodel.bayes.department_slopes`,
and the locations). :class:`LocationSumsGradient` computes, for cotangents ``a`` (of
``Q``), ``B`` (of ``H``) and ``c_i`` (of ``l_i``), with ``e_i = a (P + P') r_i +
u (B[g_i] . x_i) + c_i`` and ``t_i = K' e_i``::

    dv_i = t_i,   dG[g] = sum_{i in g} d_i,   dS[g] = sum_{i in g} (1' d_i) x_i,
    dC = sum_i d_i w_i',   dP = a sum_i r_i r_i',   du = sum_i (B[g_i] . x_i) r_i,
    dK = sum_i e_i s_i'      with d_i = c_i - alpha t_i (the cotangent of mu_i)

Indexing the profiles took the gradient at 81,471 respondents from 11.1 to 10.1 ms
(``benchmarks/README.md``, session of 2026-12-07, second). Both loops then go through
the respondents in chunks (:data:`RESPONDENTS_PER_CHUNK`): the reads by group and
profile, and the sums by group and profile, one respondent at a time; the products with
``K``, ``P`` and ``u`` and the sums over respondents along the chunk, one impact at a
time, which the compiler vectorises. A copy of the gradient loop alone, 81,471
respondents: 2.4 ms one respondent at a time, 1.5-2.0 ms in chunks of 128; the whole
gradient: 0.936 of the time it took one respondent at a time (median of 30
alternations in one process; 0.911 at 9,202 respondents).

Why an ``Op``: written as PyTensor operations, the gathers of ``G`` and ``S`` by
respondent, their scatter-add gradients, the triangular solve and a dozen
respondent-sized temporaries cost about 1.4 ms of the item model's 3.4 ms gradient at
9,202 respondents (``benchmarks/README.md``, session 15). Each loop here makes one pass
over the respondents. numba implements both (nutpie's backend); numpy implements them
too (every other backend, and the independent check of the loops in the tests). Giving
the locations ``l_i`` from the same pass means that the partially non-centred form
computes ``mu_i`` once per gradient: as PyTensor operations before this pass, ``mu_i``
and its scatter-add gradients cost 0.54 of 1.81 ms per gradient at 9,202 respondents
(``benchmarks/README.md``, session of 2026-12-06, eighth).

The numbers of impacts, practices and covariates are part of each Op (its sizes, read
from the inputs' static shapes): the numba loops are compiled with them as constants,
which took the two loops from 0.27 + 0.47 ms to 0.15 + 0.30 ms at 9,202 respondents
(``benchmarks/README.md``, session of 2026-12-06, second).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import NDArray
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

from impactmodel.bayes.department_slopes import slope_integral
from impactmodel.bayes.partial_scaling import scaling_power

#: differentiable inputs (and their ranks), in order
PARAMETERS = (("value", 2), ("group_mean", 2), ("group_slope", 2), ("coefficients", 2),
              ("precision", 2), ("weight", 1), ("scaling", 2))
#: data inputs (and their ranks): group and profile per respondent, the profiles'
#: covariates w and practices x
DATA = (("group", 1), ("profile", 1), ("covariates", 2), ("practices", 2))


@dataclass(frozen=True)
class LocationPredictor:
    """The respondent-level predictor ``mu_i = G[g_i] + C w_i + (x_i . S[g_i]) 1``.

    Attributes
    ----------
    group_mean : TensorVariable, shape (groups, impacts)
        ``G``.
    group_slope : TensorVariable, shape (groups, practices)
        ``S``.
    coefficients : TensorVariable, shape (impacts, covariates)
        ``C``.
    group : TensorVariable of int, shape (respondents,)
        ``g_i``, each within ``0 .. groups - 1`` (not checked by the loops).
    profile : TensorVariable of int, shape (respondents,)
        ``p_i``, each within ``0 .. profiles - 1`` (not checked by the loops).
    covariates : TensorVariable, shape (profiles, covariates)
        ``w`` of each profile.
    practices : TensorVariable, shape (profiles, practices)
        ``x`` of each profile.
    """

    group_mean: Any
    group_slope: Any
    coefficients: Any
    group: Any
    profile: Any
    covariates: Any
    practices: Any

    def parts(self) -> tuple[Any, ...]:
        """Return the seven arrays in :class:`LocationSums`'s order (``G, S, C``, then data)."""
        return (self.group_mean, self.group_slope, self.coefficients, self.group,
                self.profile, self.covariates, self.practices)


def respondent_profiles(covariates: NDArray[Any], practices: NDArray[Any]
                        ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Index each respondent's distinct row of covariates and practices (their profile).

    Parameters
    ----------
    covariates : ndarray, shape (respondents, covariates)
    practices : ndarray, shape (respondents, practices)

    Returns
    -------
    profile : ndarray of int64, shape (respondents,)
    profile_covariates : ndarray of float64, shape (profiles, covariates)
    profile_practices : ndarray of float64, shape (profiles, practices)
        Such that ``profile_covariates[profile]`` is ``covariates`` and
        ``profile_practices[profile]`` is ``practices``.
    """
    w = np.asarray(covariates, dtype=np.float64)
    x = np.asarray(practices, dtype=np.float64)
    if w.ndim != 2 or x.ndim != 2 or len(w) != len(x):
        raise ValueError(f"covariates and practices must be matrices of one row per "
                         f"respondent, got shapes {w.shape} and {x.shape}")
    rows, profile = np.unique(np.column_stack([w, x]), axis=0, return_inverse=True)
    return (profile.reshape(-1).astype(np.int64), np.ascontiguousarray(rows[:, :w.shape[1]]),
            np.ascontiguousarray(rows[:, w.shape[1]:]))


def predictor_mean(group_mean: Any, group_slope: Any, coefficients: Any, group: Any,
                   profile: Any, covariates: Any, practices: Any) -> Any:
    """``mu`` (respondents x impacts), for numpy arrays or tensors alike."""
    slope_term = (practices[profile] * group_slope[group]).sum(axis=1)
    return group_mean[group] + (covariates @ coefficients.T)[profile] + slope_term[:, None]


@dataclass(frozen=True)
class Sizes:
    """The numbers of impacts ``M``, practices and covariates the loops are built for."""

    impacts: int
    practices: int
    covariates: int

    @classmethod
    def of(cls, tensors: Sequence[Any]) -> Sizes:
        """Read the sizes from the static shapes of :data:`PARAMETERS` and :data:`DATA`.

        Raises
        ------
        TypeError
            When the static shapes fix none of them, or disagree.
        """
        known = {}
        for size, found in _static_sizes(tensors).items():
            if len(found) != 1:
                where = ", ".join(f"{name} axis {axis}" for name, axis in _SIZE_PLACES[size])
                raise TypeError(f"the number of {size} must be fixed by the static shapes "
                                f"({where}; use pt.specify_shape), found "
                                f"{sorted(found) or 'none'}")
            known[size] = found.pop()
        return cls(**known)

    def refuse_others(self, tensors: Sequence[Any]) -> None:
        """Raise TypeError when a static shape in ``tensors`` contradicts these sizes."""
        for size, found in _static_sizes(tensors).items():
            if found - {getattr(self, size)}:
                raise TypeError(f"locations built for {getattr(self, size)} {size}, "
                                f"given inputs with {sorted(found)}")

    def check(self, arrays: Sequence[NDArray[Any]]) -> None:
        """Raise ValueError when arrays do not have the sizes the loops are built for.

        ``arrays``: the values of :data:`PARAMETERS` then :data:`DATA`.
        """
        for size, found in _sizes_at([np.shape(a) for a in arrays]).items():
            if found != {getattr(self, size)}:
                raise ValueError(f"locations: inputs of other sizes than the Op's: built "
                                 f"for {getattr(self, size)} {size}, got {sorted(found)}")


#: where each size shows in the inputs' shapes: (input name, axis)
_SIZE_PLACES = {"impacts": (("value", 1), ("group_mean", 1), ("coefficients", 0),
                            ("precision", 0), ("precision", 1), ("weight", 0),
                            ("scaling", 0), ("scaling", 1)),
                "practices": (("group_slope", 1), ("practices", 1)),
                "covariates": (("coefficients", 1), ("covariates", 1))}


def _sizes_at(shapes: Sequence[tuple[int | None, ...]]) -> dict[str, set[int]]:
    """Return each size as the shapes of :data:`PARAMETERS` + :data:`DATA` give it."""
    by_name = dict(zip([name for name, _ in PARAMETERS + DATA], shapes, strict=True))
    return {size: {n for name, axis in places if (n := by_name[name][axis]) is not None}
            for size, places in _SIZE_PLACES.items()}


def _static_sizes(tensors: Sequence[Any]) -> dict[str, set[int]]:
    """Return the sizes that the static shapes of :data:`PARAMETERS` + :data:`DATA` fix."""
    return _sizes_at([t.type.shape for t in tensors])


@numba.njit(cache=True)
def _sizes_hold(m: int, n_slopes: int, n_covariates: int, value: Any, group_mean: Any,
                group_slope: Any, coefficients: Any, precision: Any, weight: Any,
                scaling: Any, covariates: Any, practices: Any) -> bool:
    """Whether every axis the loops index has the size they are compiled for."""
    return (value.shape[1] == m and group_mean.shape[1] == m
            and coefficients.shape[0] == m and precision.shape[0] == m
            and precision.shape[1] == m and weight.shape[0] == m
            and scaling.shape[0] == m and scaling.shape[1] == m
            and group_slope.shape[1] == n_slopes and practices.shape[1] == n_slopes
            and coefficients.shape[1] == n_covariates
            and covariates.shape[1] == n_covariates)


class _SizedOp(Op):
    """An Op whose loops are built for :class:`Sizes` (part of the Op's identity).

    Parameters
    ----------
    sizes : Sizes
    scaled : bool, optional
        False (the default): ``K`` is the identity (the ``scaling`` input is not read and ``dK`` is
        zero), the value is the locations, so ``l`` is not an output (nor its cotangent an
        input of the gradient), and the loops do what they did before ``K`` existed.
    mean_share : float, optional
        ``alpha`` in ``l_i = mu_i + K (v_i - alpha mu_i)`` (default 1); other values need
        ``scaled``.

    Raises
    ------
    ValueError
        When ``mean_share`` is not 1 and ``scaled`` is False.
    """

    __props__ = ("sizes", "scaled", "mean_share")

    def __init__(self, sizes: Sizes, scaled: bool = False, mean_share: float = 1.0) -> None:
        if not scaled and mean_share != 1.0:
            raise ValueError(f"locations: a mean share other than 1 ({mean_share}) needs "
                             f"the scaled form")
        self.sizes = sizes
        self.scaled = scaled
        self.mean_share = float(mean_share)


class LocationSums(_SizedOp):
    """``Q``, ``H`` and the locations ``l`` (see the module docstring).

    Inputs: :data:`PARAMETERS` then :data:`DATA`. Outputs: ``Q`` (a scalar), ``H``
    (groups x practices) and, when scaled, ``l`` (respondents x impacts).
    """

    def make_node(self, *inputs: Any) -> Apply:
        """Check the inputs' kinds, ranks and sizes."""
        tensors = _checked(inputs, self.sizes)
        h = pt.matrix(dtype="float64", shape=(tensors[1].type.shape[0],
                                              tensors[2].type.shape[1]))
        located = [tensors[0].type()] if self.scaled else []
        return Apply(self, tensors, [pt.dscalar(), h, *located])

    def perform(self, node: Apply, inputs: Sequence[Any],
                output_storage: list[list[Any]]) -> None:
        """Vectorised numpy version (the reference for the numba loop)."""
        self.sizes.check(inputs)
        value, g_mean, g_slope, coef, precision, weight, scaling, group, profile, w, x = inputs
        mean = predictor_mean(g_mean, g_slope, coef, group, profile, w, x)
        s = value - self.mean_share * mean
        r = s @ scaling.T if self.scaled else s
        output_storage[0][0] = np.asarray(np.einsum("ij,jk,ik->", r, precision, r))
        h = np.zeros(g_slope.shape)
        np.add.at(h, group, (r @ weight)[:, None] * x[profile])
        output_storage[1][0] = h
        if self.scaled:
            output_storage[2][0] = mean + r

    def pullback(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 output_grads: Sequence[Variable]) -> list[Variable]:
        """Apply the gradient Op, with a disconnected output's cotangent as zero."""
        cotangents = [(pt.zeros(()) if k == 0 else pt.zeros_like(output))
                      if isinstance(grad.type, DisconnectedType) else grad
                      for k, (output, grad) in enumerate(zip(outputs, output_grads,
                                                             strict=True))]
        grads = LocationSumsGradient(self.sizes, self.scaled, self.mean_share)(*inputs,
                                                                              *cotangents)
        assert isinstance(grads, list)
        return list(grads) + [disconnected_type() for _ in DATA]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Every output depends on the parameters; none on the data."""
        n_outputs = len(node.outputs)
        return [[True] * n_outputs for _ in PARAMETERS] + [[False] * n_outputs for _ in DATA]


class LocationSumsGradient(_SizedOp):
    """The derivatives of ``a Q + sum(B * H) + sum(c * l)`` w.r.t. :data:`PARAMETERS`.

    Inputs: those of :class:`LocationSums`, then ``a`` (a scalar), ``B`` (groups x
    practices) and, when scaled, ``c`` (respondents x impacts). Not differentiable
    itself.
    """

    def make_node(self, *inputs: Any) -> Apply:
        """Check the inputs' kinds, ranks and sizes."""
        n_cotangents = 3 if self.scaled else 2
        if len(inputs) != len(PARAMETERS) + len(DATA) + n_cotangents:
            raise TypeError(f"expected {len(PARAMETERS) + len(DATA) + n_cotangents} inputs, "
                            f"got {len(inputs)}")
        tensors = _checked(inputs[:-n_cotangents], self.sizes)
        cotangents = [pt.as_tensor_variable(v).astype("float64")
                      for v in inputs[-n_cotangents:]]
        if [v.ndim for v in cotangents] != [0, 2, 2][:n_cotangents]:
            raise TypeError("the cotangents must be a scalar and matrices")
        outputs = [v.type() for v in tensors[:len(PARAMETERS)]]
        return Apply(self, [*tensors, *cotangents], outputs)

    def perform(self, node: Apply, inputs: Sequence[Any],
                output_storage: list[list[Any]]) -> None:
        """Vectorised numpy version (the reference for the numba loop)."""
        if not self.scaled:
            inputs = [*inputs, np.zeros_like(inputs[0])]
        self.sizes.check(inputs[:-3])
        (value, g_mean, g_slope, coef, precision, weight, scaling, group, profile, w, x,
         a, b, c) = inputs
        if b.shape[1] != self.sizes.practices or c.shape != value.shape:
            raise ValueError(f"locations: cotangents of shapes {b.shape} and {c.shape}, "
                             f"the Op's H and l are (groups, {self.sizes.practices}) and "
                             f"{value.shape}")
        if not self.scaled:
            scaling = np.eye(self.sizes.impacts)
        s = value - self.mean_share * predictor_mean(g_mean, g_slope, coef, group, profile, w, x)
        r = s @ scaling.T
        x = x[profile]
        bx = np.sum(b[group] * x, axis=1)
        e = a * r @ (precision + precision.T).T + bx[:, None] * weight[None, :] + c
        t = e @ scaling
        d_mu = c - self.mean_share * t
        d_mean, d_slope = np.zeros(g_mean.shape), np.zeros(g_slope.shape)
        np.add.at(d_mean, group, d_mu)
        np.add.at(d_slope, group, d_mu.sum(axis=1)[:, None] * x)
        d_scaling = e.T @ s if self.scaled else np.zeros((self.sizes.impacts,) * 2)
        values = [t, d_mean, d_slope, d_mu.T @ w[profile], a * r.T @ r, r.T @ bx, d_scaling]
        for storage, v in zip(output_storage, values, strict=True):
            storage[0] = np.asarray(v, dtype=np.float64)


def _checked(inputs: Sequence[Any], sizes: Sizes | None = None) -> list[Any]:
    """Return the inputs as tensors of the stated ranks (floats; ints for groups).

    With ``sizes``, also refuse static shapes that contradict them.
    """
    specs = PARAMETERS + DATA
    if len(inputs) != len(specs):
        raise TypeError(f"expected {len(specs)} inputs, got {len(inputs)}")
    tensors = []
    for (name, rank), v in zip(specs, inputs, strict=True):
        tensor = pt.as_tensor_variable(v)
        if tensor.ndim != rank:
            raise TypeError(f"{name} must have {rank} dimensions, got {tensor.ndim}")
        if name in ("group", "profile"):
            if not tensor.dtype.startswith(("int", "uint")):
                raise TypeError(f"{name} must hold integers, got {tensor.dtype}")
            tensor = tensor.astype("int64")
        elif tensor.dtype != "float64":
            tensor = tensor.astype("float64")
        tensors.append(tensor)
    if sizes is not None:
        sizes.refuse_others(tensors)
    return tensors


def location_sums(value: Any, predictor: LocationPredictor, precision: Any, weight: Any,
                  scaling: Any = None, mean_share: float = 1.0
                  ) -> tuple[pt.TensorVariable, ...]:
    """``Q``, ``H`` and the locations ``l`` of the sampler's ``value`` (module docstring).

    Parameters
    ----------
    value : TensorVariable, shape (respondents, impacts)
        ``v``: the locations themselves when ``scaling`` is left out.
    predictor : LocationPredictor
    precision : TensorVariable, shape (impacts, impacts)
        ``P``.
    weight : TensorVariable, shape (impacts,)
        ``u``.
    scaling : TensorVariable, shape (impacts, impacts), optional
        ``K`` (default: the identity).
    mean_share : float, optional
        ``alpha`` in ``l_i = mu_i + K (v_i - alpha mu_i)`` (default 1); other values need
        ``scaling``.

    Returns
    -------
    tuple of TensorVariable
        ``Q`` (a scalar), ``H`` (groups x practices) and ``l`` (respondents x impacts;
        ``value`` itself when ``scaling`` is left out).

    Raises
    ------
    TypeError
        When the inputs' static shapes do not fix the numbers of impacts, practices and
        covariates (:class:`Sizes`).
    ValueError
        When ``mean_share`` is not 1 and ``scaling`` is left out.
    """
    p = predictor
    scaled = scaling is not None
    if scaling is None:  # not read by the loops
        impacts = pt.as_tensor_variable(value).type.shape[1]
        scaling = pt.eye(impacts if impacts is not None else value.shape[1])
    inputs = [value, p.group_mean, p.group_slope, p.coefficients, precision, weight, scaling,
              p.group, p.profile, p.covariates, p.practices]
    outputs = LocationSums(Sizes.of(_checked(inputs)), scaled, mean_share)(*inputs)
    assert isinstance(outputs, list)
    located = [] if scaled else [value]  # a new list: the node's own is not to be touched
    return tuple(pt.as_tensor_variable(v) for v in [*outputs, *located])


def precision_and_weight(chol: Any) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """``P = Sigma^-1`` and ``u = P 1`` from the lower Cholesky factor of ``Sigma``."""
    n = chol.shape[0]
    inverse = pt.linalg.solve_triangular(chol, pt.eye(n), lower=True)  # L^-1
    precision = inverse.T @ inverse
    return precision, inverse.T @ pt.sum(inverse, axis=1)


@dataclass(frozen=True)
class IntegratedSlopes:
    """The departments' own slope deviations, integrated out of the locations' prior.

    See :mod:`impactmodel.bayes.department_slopes`: with them, the locations' prior is
    the multivariate normal around ``mu_i + x_i . o[:, d_i]`` integrated over ``o = c
    B'``, ``c`` iid ``N(0, scale^2)``.

    Attributes
    ----------
    scale : TensorVariable
        ``s``, the sd of the deviations.
    group_department : TensorVariable of int, shape (groups,)
        Department of each group of :class:`LocationPredictor`.
    eigenvalues, eigenvectors : TensorVariable
        Of :class:`~impactmodel.bayes.department_slopes.DepartmentSlopeDesign`.
    basis : TensorVariable, shape (departments, contrasts)
        ``B``.
    """

    scale: Any
    group_department: Any
    eigenvalues: Any
    eigenvectors: Any
    basis: Any

    def parts(self) -> tuple[Any, ...]:
        """Return the five arrays in the order the locations' density takes them."""
        return (self.scale, self.group_department, self.eigenvalues, self.eigenvectors,
                self.basis)


def locations_logp(value: Any, predictor: LocationPredictor, chol: Any,
                   slopes: IntegratedSlopes | None = None) -> pt.TensorVariable:
    """Log-density of all the locations: one pass of :class:`LocationSums`.

    The multivariate normal ``sum_i log N(l_i; mu_i, chol chol')``, plus, with
    ``slopes``, the integral over the departments' own slope deviations
    (:func:`~impactmodel.bayes.department_slopes.slope_integral`). One Op gives both
    sums, so one pass of :class:`LocationSumsGradient` gives the derivatives.
    """
    return scaled_locations(value, predictor, chol, slopes)[0]


def scaled_locations(value: Any, predictor: LocationPredictor, chol: Any,
                     slopes: IntegratedSlopes | None = None, exponent: float = 0.0,
                     mean_exponent: float = 0.0
                     ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Return the density of the sampler's ``v`` and the locations ``l``, from one pass.

    ``l_i = mu_i + Sigma^(w/2) (v_i - (1 - w_mu) mu_i)`` for the ``exponent`` ``w`` and
    the ``mean_exponent`` ``w_mu`` (:func:`~impactmodel.bayes.partial_scaling.scaling_power`;
    both 0: ``v`` is the locations). The density is :func:`locations_logp`'s at ``l`` plus
    the log-determinant of ``dl / dv``, ``n (w / 2) log det Sigma``, whatever ``w_mu``.

    Returns
    -------
    tuple of TensorVariable
        The log-density (a scalar) and the locations (respondents x impacts).
    """
    precision, weight = precision_and_weight(chol)
    scaling = scaling_power(chol, exponent) if exponent > 0 or mean_exponent > 0 else None
    quadratic, by_group, located = location_sums(value, predictor, precision, weight, scaling,
                                                 1.0 - mean_exponent)
    n_rows, n = value.shape[0], value.shape[1]
    # log det Sigma = 2 sum log chol_kk, less w / 2 of it per respondent for dl / dv
    normal = (-0.5 * quadratic - n_rows * (1.0 - exponent) * pt.sum(pt.log(pt.diag(chol)))
              - 0.5 * n_rows * n * np.log(2 * np.pi))
    if slopes is None:
        return normal, located
    log_integral, _ = slope_integral(
        by_department(by_group, slopes), pt.sum(weight), slopes.eigenvalues,
        slopes.eigenvectors, slopes.basis, slopes.scale)
    return normal + log_integral, located


def by_department(by_group: Any, slopes: IntegratedSlopes) -> pt.TensorVariable:
    """Add the per-group sums ``H`` up by department (departments x practices)."""
    blank = pt.zeros((slopes.basis.shape[0], by_group.shape[1]))
    return pt.inc_subtensor(blank[slopes.group_department], by_group)


def _split(params: Sequence[Any]) -> tuple[LocationPredictor, Any, IntegratedSlopes | None]:
    """Split the density's parameters into (predictor, chol, slopes or None)."""
    g_mean, g_slope, coef, chol, group, profile, w, x, *rest = params
    predictor = LocationPredictor(g_mean, g_slope, coef, group, profile, w, x)
    return predictor, chol, IntegratedSlopes(*rest) if rest else None


def _locations_logp(value: Any, *params: Any) -> Any:
    predictor, chol, slopes = _split(params)
    return locations_logp(value, predictor, chol, slopes)


def _locations_random(*params: Any, rng: np.random.Generator | None = None,
                      size: tuple[int, ...] | None = None) -> NDArray[np.float64]:
    """Draw rows ``mu_i (+ x_i . o[:, d_i]) + chol @ standard normal``."""
    if size not in (None, ()):
        raise NotImplementedError("the locations are drawn one set at a time")
    generator = rng if rng is not None else np.random.default_rng()
    predictor, chol, slopes = _split(params)
    mean = predictor_mean(*predictor.parts())
    if slopes is not None:
        basis = np.asarray(slopes.basis)
        practices = np.asarray(predictor.practices)[np.asarray(predictor.profile)]
        own = (float(slopes.scale) * generator.standard_normal(
            (practices.shape[1], basis.shape[1]))) @ basis.T  # practice x department
        department = np.asarray(slopes.group_department)[np.asarray(predictor.group)]
        mean = mean + np.sum(practices * own.T[department], axis=1)[:, None]
    return np.asarray(mean + generator.standard_normal(mean.shape) @ np.asarray(chol).T)


def _locations_support_point(rv: Any, size: Any, *params: Any) -> Any:
    """Start at the means."""
    predictor, _, _ = _split(params)
    return predictor_mean(*predictor.parts())


def respondent_locations(name: str, predictor: LocationPredictor, chol: Any,
                         dims: tuple[str, str],
                         slopes: IntegratedSlopes | None = None,
                         exponent: float = 0.0, mean_exponent: float = 0.0
                         ) -> pt.TensorVariable:
    """Declare each respondent's location per impact: ``MvNormal(mu_i, chol chol')``.

    The trait is the location minus its mean (``trait_i = location_i - mu_i``, with
    the covariance of :func:`~impactmodel.bayes.effects.trait_covariance`): the same
    model as a trait drawn around zero and added to ``mu_i``, in hierarchically centred
    coordinates (Gelfand, Sahu and Carlin 1995). Why: a respondent's answers pin down
    their location, not its split between the trait and the respondent-level parts of
    ``mu`` (covariates, department intercepts, the slopes' population and department
    parts). Drawn as a standardised trait, every one of those parts moves together with
    the traits of all the respondents it touches; drawn as locations, those parts are
    informed through the locations' normal prior, as in a regression, and move on their
    own. With ``slopes``, the departments' own slope deviations are integrated out of
    the prior (:func:`locations_logp`).

    Parameters
    ----------
    name : str
    predictor : LocationPredictor
    chol : TensorVariable, shape (impacts, impacts)
        Lower-triangular factor of the traits' covariance.
    dims : tuple of str
    slopes : IntegratedSlopes, optional
    exponent : float, optional
        ``w`` in ``[0, 1]``. 0: the free variable is the locations themselves. Above 0:
        the free variable, ``name + "_scaled"``, is ``v`` with ``l_i = mu_i + Sigma^(w/2)
        (v_i - mu_i)`` (:mod:`~impactmodel.bayes.partial_scaling`); it is declared flat,
        with its density as the potential ``name + "_prior"``, and the locations are the
        deterministic ``name``: the density and the locations come from one pass of
        :class:`LocationSums`, in the model's graph (a distribution's density is built
        from a rewritten copy of its parameters' graph, which PyTensor cannot merge with
        the likelihood's, so the pass would run twice). Such locations have no prior
        draws.
    mean_exponent : float, optional
        ``w_mu`` in ``[0, 1]``: the locations' partial non-centring in their mean, ``l_i
        = mu_i + Sigma^(w/2) (v_i - (1 - w_mu) mu_i)``. A move of ``mu_i`` with ``v``
        held moves ``l_i`` by ``(I - (1 - w_mu) Sigma^(w/2))`` times it, about ``w_mu``
        times it when ``Sigma^(w/2)`` is near the identity: 0 (the default) leaves the
        locations centred in their mean, 1 makes ``v`` the scaled deviation from it. Above
        0, the free variable is ``name + "_scaled"`` as for ``exponent``.

    Returns
    -------
    TensorVariable
        The locations, respondents x impacts.

    Raises
    ------
    ValueError
        When ``exponent`` or ``mean_exponent`` is outside ``[0, 1]``.
    """
    for what, given in (("scale", exponent), ("mean", mean_exponent)):
        if not 0.0 <= given <= 1.0:
            raise ValueError(f"the {what} exponent must be in [0, 1], got {given}")
    signature = "(g,m),(g,s),(m,w),(m,m),(n),(n),(p,w),(p,s)"
    params = [*predictor.parts()[:3], chol, *predictor.parts()[3:]]
    if slopes is not None:
        signature += ",(),(g),(k),(k,k),(d,c)"
        params += list(slopes.parts())
    if exponent == 0 and mean_exponent == 0:
        return pm.CustomDist(name, *params, logp=_locations_logp, random=_locations_random,
                             support_point=_locations_support_point,
                             signature=signature + "->(n,m)", dims=dims)
    sampled = pm.Flat(f"{name}_scaled", dims=dims)
    density, located = scaled_locations(sampled, predictor, chol, slopes, exponent,
                                        mean_exponent)
    pm.Potential(f"{name}_prior", density)
    return pm.Deterministic(name, located, dims=dims)


_SOURCE_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _profile_terms(coefficients: Any, covariates: Any) -> Any:  # pragma: no cover - numba
    """``C w`` of each profile (profiles x impacts)."""
    terms = np.zeros((covariates.shape[0], coefficients.shape[0]))
    for p in range(covariates.shape[0]):
        for k in range(coefficients.shape[0]):
            for c in range(coefficients.shape[1]):
                terms[p, k] += coefficients[k, c] * covariates[p, c]
    return terms


#: respondents per chunk of the loops: a chunk's arrays (impacts x chunk) stay in the
#: core's first-level cache, and the steps along a chunk are vectorised by the compiler
RESPONDENTS_PER_CHUNK = 128


def _chunk_steps(m: int, n_slopes: int, with_cotangent: bool, mean_share: float,
                 keep_mean: bool) -> tuple[Any, Any]:
    """Return the loops' two steps on a chunk of respondents, compiled for the sizes.

    ``gather(start, length, ...)`` writes ``s_i = v_i - alpha mu_i`` (``alpha``
    the ``mean_share``) for respondents ``start .. start + length - 1`` into the columns of
    ``offset`` (impacts x chunk), with ``keep_mean`` ``mu_i`` into those of ``mean``, and,
    with the cotangent, ``B[g_i] . x_i`` into ``bx``: the reads by group and profile, one
    respondent at a time. ``times(matrix, source, target, length)`` writes ``matrix @
    source`` into ``target`` column by column, along the chunk. Both are inlined.
    """

    @numba_basic.numba_njit(boundscheck=False, inline="always")
    def gather(start, length, value, group, profile, group_mean, group_slope,
               profile_terms, practices, b, offset, mean,
               bx):  # type: ignore[no-untyped-def]
        for i in range(length):
            g, p = group[start + i], profile[start + i]
            slope_term = 0.0
            b_term = 0.0
            for s in range(n_slopes):
                slope_term += practices[p, s] * group_slope[g, s]
                if with_cotangent:
                    b_term += b[g, s] * practices[p, s]
            if with_cotangent:
                bx[i] = b_term
            for k in range(m):
                mu = group_mean[g, k] + slope_term + profile_terms[p, k]
                if keep_mean:
                    mean[k, i] = mu
                offset[k, i] = value[start + i, k] - mean_share * mu

    @numba_basic.numba_njit(boundscheck=False, inline="always")
    def times(matrix, source, target, length):  # type: ignore[no-untyped-def]
        for j in range(m):
            for i in range(length):
                target[j, i] = 0.0
            for k in range(m):
                factor = matrix[j, k]
                for i in range(length):
                    target[j, i] += factor * source[k, i]

    return gather, times


@register_funcify_and_cache_key(LocationSums)  # type: ignore[misc]
def _numba_location_sums(op: LocationSums, node: Apply | None = None,
                         **kwargs: Any) -> tuple[Any, str]:
    """One loop over the respondents (cached on disk under this file's source digest)."""
    m, n_slopes, n_covariates = op.sizes.impacts, op.sizes.practices, op.sizes.covariates
    scaled, mean_share = op.scaled, op.mean_share
    gather, times = _chunk_steps(m, n_slopes, False, mean_share, scaled)
    chunk = RESPONDENTS_PER_CHUNK

    @numba_basic.numba_njit(boundscheck=False)
    def location_sums_loop(value, group_mean, group_slope, coefficients, precision, weight,
                           scaling, group, profile, covariates,
                           practices):  # type: ignore[no-untyped-def]
        if not _sizes_hold(m, n_slopes, n_covariates, value, group_mean, group_slope,
                           coefficients, precision, weight, scaling, covariates, practices):
            raise ValueError("locations: inputs of other sizes than the Op's")
        profile_terms = _profile_terms(coefficients, covariates)
        quadratic = 0.0
        h = np.zeros(group_slope.shape)
        located = np.empty_like(value) if scaled else np.empty((0, m))
        offset = np.empty((m, chunk))
        r = np.empty((m, chunk)) if scaled else offset
        mean = np.empty((m, chunk)) if scaled else offset  # mu_i, for l_i = mu_i + r_i
        weighted = np.empty(chunk)
        for start in range(0, value.shape[0], chunk):
            length = min(chunk, value.shape[0] - start)
            gather(start, length, value, group, profile, group_mean, group_slope,
                   profile_terms, practices, group_slope, offset, mean,
                   weighted)  # no cotangent here: the third and first from last not read
            if scaled:
                times(scaling, offset, r, length)
            for j in range(m):  # sum_i r_i' P r_i = sum_jk P_jk sum_i r_ji r_ki
                for k in range(m):
                    products = 0.0
                    for i in range(length):
                        products += r[j, i] * r[k, i]
                    quadratic += precision[j, k] * products
            for i in range(length):
                weighted[i] = 0.0
            for j in range(m):
                for i in range(length):
                    weighted[i] += weight[j] * r[j, i]
            for i in range(length):
                g, p = group[start + i], profile[start + i]
                for s in range(n_slopes):
                    h[g, s] += weighted[i] * practices[p, s]
                if scaled:
                    for k in range(m):  # l_i = mu_i + r_i
                        located[start + i, k] = mean[k, i] + r[k, i]
        return np.asarray(quadratic), h, located

    @numba_basic.numba_njit
    def without_locations(value, group_mean, group_slope, coefficients, precision, weight,
                          scaling, group, profile, covariates,
                          practices):  # type: ignore[no-untyped-def]
        quadratic, h, _ = location_sums_loop(value, group_mean, group_slope, coefficients,
                                             precision, weight, scaling, group, profile,
                                             covariates, practices)
        return quadratic, h

    return (location_sums_loop if scaled else without_locations), (
        f"impactmodel.LocationSums-{m}-{n_slopes}-{n_covariates}-{scaled}-{mean_share!r}-"
        f"{_SOURCE_KEY}")


@register_funcify_and_cache_key(LocationSumsGradient)  # type: ignore[misc]
def _numba_location_sums_gradient(op: LocationSumsGradient, node: Apply | None = None,
                                  **kwargs: Any) -> tuple[Any, str]:
    """One loop over the respondents (cached on disk under this file's source digest)."""
    m, n_slopes, n_covariates = op.sizes.impacts, op.sizes.practices, op.sizes.covariates
    scaled, mean_share = op.scaled, op.mean_share
    gather, times = _chunk_steps(m, n_slopes, True, mean_share, False)
    chunk = RESPONDENTS_PER_CHUNK

    @numba_basic.numba_njit(boundscheck=False)
    def location_gradient_loop(value, group_mean, group_slope, coefficients, precision,
                               weight, scaling, group, profile, covariates, practices, a, b,
                               c):  # type: ignore[no-untyped-def]
        if not (_sizes_hold(m, n_slopes, n_covariates, value, group_mean, group_slope,
                            coefficients, precision, weight, scaling, covariates, practices)
                and b.shape[1] == n_slopes
                and (not scaled or (c.shape[0] == value.shape[0] and c.shape[1] == m))):
            raise ValueError("locations: inputs of other sizes than the Op's")
        profile_terms = _profile_terms(coefficients, covariates)
        a_value = a.item()
        symmetric = a_value * (precision + precision.T)
        scaling_t = np.ascontiguousarray(scaling.T)
        d_value = np.empty_like(value)
        d_mean, d_slope = np.zeros_like(group_mean), np.zeros_like(group_slope)
        d_profile = np.zeros(profile_terms.shape)  # the cotangent of C w per profile
        residual_squares = np.zeros((m, m))
        d_weight = np.zeros(m)
        d_scaling = np.zeros((m, m))
        offset, e, bx = np.empty((m, chunk)), np.empty((m, chunk)), np.empty(chunk)
        r = np.empty((m, chunk)) if scaled else offset
        t = np.empty((m, chunk)) if scaled else e
        for start in range(0, value.shape[0], chunk):
            length = min(chunk, value.shape[0] - start)
            gather(start, length, value, group, profile, group_mean, group_slope,
                   profile_terms, practices, b, offset, offset, bx)  # mu_i not kept
            if scaled:
                times(scaling, offset, r, length)
            for j in range(m):  # e_i = a (P + P') r_i + u (B[g_i] . x_i) + c_i
                for i in range(length):
                    e[j, i] = weight[j] * bx[i] + (c[start + i, j] if scaled else 0.0)
                for k in range(m):
                    for i in range(length):
                        e[j, i] += symmetric[j, k] * r[k, i]
            for j in range(m):
                by_weight = 0.0
                for i in range(length):
                    by_weight += bx[i] * r[j, i]
                d_weight[j] += by_weight
                for k in range(m):
                    squares, cross = 0.0, 0.0
                    for i in range(length):
                        squares += r[j, i] * r[k, i]
                        if scaled:
                            cross += e[j, i] * offset[k, i]
                    residual_squares[j, k] += squares
                    d_scaling[j, k] += cross
            if scaled:
                times(scaling_t, e, t, length)  # t_i = K' e_i (K = I: t_i = e_i)
            for i in range(length):  # v_i's cotangent t_i, mu_i's c_i - alpha t_i
                g, p = group[start + i], profile[start + i]
                mu_sum = 0.0
                for k in range(m):
                    t_k = t[k, i]
                    d_value[start + i, k] = t_k
                    d_mu = (c[start + i, k] if scaled else 0.0) - mean_share * t_k
                    mu_sum += d_mu
                    d_mean[g, k] += d_mu
                    d_profile[p, k] += d_mu
                for s in range(n_slopes):
                    d_slope[g, s] += mu_sum * practices[p, s]
        d_coefficients = np.zeros((m, n_covariates))
        for p in range(covariates.shape[0]):
            for k in range(m):
                for q in range(n_covariates):
                    d_coefficients[k, q] += d_profile[p, k] * covariates[p, q]
        return (d_value, d_mean, d_slope, d_coefficients, a_value * residual_squares,
                d_weight, d_scaling)

    @numba_basic.numba_njit
    def without_locations(value, group_mean, group_slope, coefficients, precision, weight,
                          scaling, group, profile, covariates, practices, a,
                          b):  # type: ignore[no-untyped-def]
        return location_gradient_loop(value, group_mean, group_slope, coefficients,
                                      precision, weight, scaling, group, profile, covariates,
                                      practices, a, b, np.empty((0, m)))

    return (location_gradient_loop if scaled else without_locations), (
        f"impactmodel.LocationSumsGradient-{m}-{n_slopes}-{n_covariates}-{scaled}-"
        f"{mean_share!r}-{_SOURCE_KEY}")


__all__ = ["DATA", "PARAMETERS", "IntegratedSlopes", "LocationPredictor", "LocationSums",
           "LocationSumsGradient", "Sizes", "by_department", "location_sums", "locations_logp",
           "precision_and_weight", "predictor_mean", "respondent_locations",
           "respondent_profiles", "scaled_locations"]
