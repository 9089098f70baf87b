"""Weighted residual sums of squares over blocks of moments, as one differentiable Op.

The scale-score likelihood (:mod:`impactmodel.bayes.gaussian`) is a sum over blocks ``b``
(design cells, respondent classes) of ``w_b * RSS_b`` with

    RSS_b = sum_{units in b} (v - a_b - x . s_b)^2
          = Svv - 2 a Sv - 2 s.Sxv + n a^2 + 2 a s.Sx + s' Sxx s

from the block's moments ``(n, Sx, Sxx, Sv, Sxv, Svv)``
(:mod:`impactmodel.bayes.sufficient`), where the block's intercept and slopes gather
parameters by index::

    a_b = a1[i1_b] + c_b a2[i2_b]
    s_b = s1[j1_b] + c_b (s2[j2_b] + s3[j3_b])
    w_b = weight[k_b]

Written as PyTensor operations, the gathers, their scatter-add gradients and a dozen
block-sized temporaries cost most of a gradient evaluation (about 0.8 ms at 81,471
respondents). This Op does the value and every gradient in one loop over the blocks
(numba, also when PyTensor runs its C or Python backends): the gradient is the Op's
second to seventh outputs, computed with the value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

#: input positions: parameters (differentiable) and the data around them
_PARAMETERS = {"weight": 0, "a1": 2, "a2": 4, "s1": 6, "s2": 8, "s3": 10}
_INPUTS = ("weight", "weight_index", "a1", "a1_index", "a2", "a2_index", "s1", "s1_index",
           "s2", "s2_index", "s3", "s3_index", "coef", "n", "sx", "sxx", "sv", "sxv", "svv")
_INTEGER = {"weight_index", "a1_index", "a2_index", "s1_index", "s2_index", "s3_index"}
_NDIM = {"weight": 1, "a1": 1, "a2": 1, "s1": 2, "s2": 2, "s3": 2, "coef": 1, "n": 1,
         "sx": 2, "sxx": 3, "sv": 1, "sxv": 2, "svv": 1}


#: most slopes per block for which the kernel is generated unrolled (its compile time
#: grows quickly: about 3 s for 6 slopes, 14 s for 16, minutes for 32)
UNROLLED_UP_TO = 8

_KERNEL_TEMPLATE = """
def kernel(weight, weight_index, a1, a1_index, a2, a2_index, s1, s1_index, s2, s2_index,
           s3, s3_index, coef, n, sx, sxx, sv, sxv, svv):
    if sx.shape[1] != {P} or s1.shape[1] != {P} or s2.shape[1] != {P} or s3.shape[1] != {P}:
        raise ValueError("the moments and slopes do not all have {P} columns")
    g_weight, g_a1, g_a2 = np.zeros_like(weight), np.zeros_like(a1), np.zeros_like(a2)
    g_s1, g_s2, g_s3 = np.zeros_like(s1), np.zeros_like(s2), np.zeros_like(s3)
    total = 0.0
    for b in range(sx.shape[0]):
        c = coef[b]
        a = a1[a1_index[b]] + c * a2[a2_index[b]]
        j1, j2, j3 = s1_index[b], s2_index[b], s3_index[b]
        w = weight[weight_index[b]]
        wc = w * c
{slopes}
{products}
        rss = (svv[b] - 2.0 * a * sv[b] + n[b] * a * a
{rss})
        d_a = 2.0 * (n[b] * a - sv[b]{d_a})
        total += w * rss
        g_weight[weight_index[b]] += rss
        g_a1[a1_index[b]] += w * d_a
        g_a2[a2_index[b]] += wc * d_a
{scatter}
    return np.array(total), g_weight, g_a1, g_a2, g_s1, g_s2, g_s3
"""


@numba.njit(cache=True, nogil=True)
def _loop_kernel(weight: np.ndarray, weight_index: np.ndarray, a1: np.ndarray,
            a1_index: np.ndarray, a2: np.ndarray, a2_index: np.ndarray, s1: np.ndarray,
            s1_index: np.ndarray, s2: np.ndarray, s2_index: np.ndarray, s3: np.ndarray,
            s3_index: np.ndarray, coef: np.ndarray, n: np.ndarray, sx: np.ndarray,
            sxx: np.ndarray, sv: np.ndarray, sxv: np.ndarray, svv: np.ndarray,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                       np.ndarray, np.ndarray]:
    """Value and gradients for any number of slopes (loops over them)."""
    n_blocks, n_slopes = sx.shape
    if s1.shape[1] != n_slopes or s2.shape[1] != n_slopes or s3.shape[1] != n_slopes:
        raise ValueError("the moments and slopes do not all have the same columns")
    g_weight, g_a1, g_a2 = np.zeros_like(weight), np.zeros_like(a1), np.zeros_like(a2)
    g_s1, g_s2, g_s3 = np.zeros_like(s1), np.zeros_like(s2), np.zeros_like(s3)
    s = np.empty(n_slopes)
    d_s = np.empty(n_slopes)
    total = 0.0
    for b in range(n_blocks):
        c = coef[b]
        a = a1[a1_index[b]] + c * a2[a2_index[b]]
        j1, j2, j3 = s1_index[b], s2_index[b], s3_index[b]
        for j in range(n_slopes):
            s[j] = s1[j1, j] + c * (s2[j2, j] + s3[j3, j])
        rss = svv[b] - 2.0 * a * sv[b] + n[b] * a * a
        d_a = -2.0 * sv[b] + 2.0 * n[b] * a
        for j in range(n_slopes):
            sxx_s = 0.0
            for k in range(n_slopes):
                sxx_s += sxx[b, j, k] * s[k]
            rss += s[j] * (sxx_s - 2.0 * sxv[b, j] + 2.0 * a * sx[b, j])
            d_a += 2.0 * s[j] * sx[b, j]
            d_s[j] = 2.0 * (sxx_s - sxv[b, j] + a * sx[b, j])
        w = weight[weight_index[b]]
        total += w * rss
        g_weight[weight_index[b]] += rss
        g_a1[a1_index[b]] += w * d_a
        g_a2[a2_index[b]] += w * c * d_a
        for j in range(n_slopes):
            g_s1[j1, j] += w * d_s[j]
            g_s2[j2, j] += w * c * d_s[j]
            g_s3[j3, j] += w * c * d_s[j]
    return np.array(total), g_weight, g_a1, g_a2, g_s1, g_s2, g_s3


def kernel_source(slopes: int) -> str:
    """Source of the value-and-gradient loop, unrolled over ``slopes`` slopes.

    Unrolled, a block's slopes and products stay in registers: about twice as fast as
    loops over the slopes (0.10 against 0.18 ms for 8,163 blocks of 3 slopes).
    """
    if not 1 <= slopes <= UNROLLED_UP_TO:
        raise ValueError(f"slopes must be 1 to {UNROLLED_UP_TO}, not {slopes}")
    pad = " " * 8
    js = range(slopes)
    return _KERNEL_TEMPLATE.format(
        P=slopes,
        slopes="\n".join(f"{pad}t{j} = s1[j1, {j}] + c * (s2[j2, {j}] + s3[j3, {j}])"
                         for j in js),
        products="\n".join(
            f"{pad}q{j} = " + " + ".join(f"sxx[b, {j}, {k}] * t{k}" for k in js) for j in js),
        rss="\n".join(f"{pad}       + t{j} * (q{j} - 2.0 * sxv[b, {j}] + 2.0 * a * sx[b, {j}])"
                      for j in js),
        d_a="".join(f" + t{j} * sx[b, {j}]" for j in js),
        scatter="\n".join(
            f"{pad}d = 2.0 * (q{j} - sxv[b, {j}] + a * sx[b, {j}])\n"
            f"{pad}g_s1[j1, {j}] += w * d\n{pad}g_s2[j2, {j}] += wc * d\n"
            f"{pad}g_s3[j3, {j}] += wc * d" for j in js))


@functools.cache
def kernel(slopes: int) -> Any:
    """Compile the value-and-gradient kernel for ``slopes`` slopes (module docstring).

    Up to :data:`UNROLLED_UP_TO` slopes, generated from :func:`kernel_source` (a fixed
    template and an integer, never user text) and compiled once per process; beyond,
    :func:`_loop_kernel`.
    """
    if slopes > UNROLLED_UP_TO:
        return _loop_kernel
    namespace: dict[str, Any] = {"np": np}
    exec(compile(kernel_source(slopes), f"<residual squares, {slopes} slopes>", "exec"),
         namespace)
    return numba.njit(nogil=True)(namespace["kernel"])


class BlockResidualSquares(Op):  # type: ignore[misc]
    """``sum_b w_b RSS_b`` and its gradients (see the module docstring).

    Outputs: the value, then its gradient with respect to ``weight, a1, a2, s1, s2, s3``.
    Only the value is meant to be used; differentiating it uses the other outputs.

    Parameters
    ----------
    slopes : int
        ``P``, the number of slopes per block (the kernel is generated for it).
    """

    __props__ = ("slopes",)

    def __init__(self, slopes: int):
        if slopes < 1:
            raise ValueError(f"slopes must be at least 1, not {slopes}")
        self.slopes = int(slopes)

    def make_node(self, *inputs: Any) -> Apply:
        """Check ranks, cast (indices to int64, the rest to float64) and type outputs."""
        if len(inputs) != len(_INPUTS):
            raise TypeError(f"{type(self).__name__} takes {len(_INPUTS)} inputs")
        tensors = []
        for name, value in zip(_INPUTS, inputs, strict=True):
            tensor = pt.as_tensor_variable(value)
            if name in _INTEGER:
                tensor = pt.cast(tensor, "int64")
            else:
                tensor = pt.cast(tensor, "float64")
            expected = 1 if name in _INTEGER else _NDIM[name]
            if tensor.ndim != expected:
                raise TypeError(f"input {name} must have {expected} dimensions, "
                                f"not {tensor.ndim}")
            tensors.append(tensor)
        width = tensors[_INPUTS.index("sx")].type.shape[1]
        if width is not None and width != self.slopes:
            raise TypeError(f"the moments have {width} slopes, not {self.slopes}")
        outputs = [pt.dscalar()] + [tensors[i].type() for i in _PARAMETERS.values()]
        return Apply(self, tensors, outputs)

    def perform(self, node: Apply, inputs: Sequence[Any],
                output_storage: list[list[Any]]) -> None:
        """Run the numba kernel from Python (PyTensor's C and Python backends)."""
        for storage, value in zip(output_storage, kernel(self.slopes)(*inputs),
                                  strict=True):
            storage[0] = value

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Only the value depends on the parameters; indices and moments are data."""
        differentiable = set(_PARAMETERS.values())
        return [[i in differentiable] + [False] * len(_PARAMETERS)
                for i in range(len(_INPUTS))]

    def pullback(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 cotangents: Sequence[Variable]) -> list[Variable]:
        """Return the value's cotangent times the gradient outputs (no second order)."""
        if not all(isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            raise NotImplementedError("the gradient outputs of BlockResidualSquares "
                                      "cannot be differentiated")
        grads = dict(zip(_PARAMETERS.values(), outputs[1:], strict=True))
        cotangent = cast(pt.TensorVariable, cotangents[0])
        return [cotangent * grads[i] if i in grads else disconnected_type()
                for i in range(len(_INPUTS))]


_SOURCE_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@register_funcify_and_cache_key(BlockResidualSquares)  # type: ignore[misc]
def _numba_block_residual_squares(op: BlockResidualSquares, node: Apply | None = None,
                                  **kwargs: Any) -> tuple[Any, str]:
    """PyTensor's numba backend calls the kernel itself (keyed by this file's source)."""
    return kernel(op.slopes), f"impactmodel.BlockResidualSquares-{op.slopes}-{_SOURCE_KEY}"


def block_residual_squares(moments: dict[str, Any], slopes: int, *,
                           a: tuple[Any, Any, Any, Any],
                           s: tuple[Any, Any, Any, Any, Any, Any], coef: Any,
                           weight: tuple[Any, Any] | None = None) -> pt.TensorVariable:
    """``sum_b w_b RSS_b`` as one Op (see the module docstring).

    Parameters
    ----------
    moments : dict
        The blocks' moments ``n, sx, sxx, sv, sxv, svv`` (shapes ``(B,)``, ``(B, P)``,
        ``(B, P, P)``, ``(B,)``, ``(B, P)``, ``(B,)``).
    slopes : int
        ``P``.
    a : tuple
        ``(a1, i1, a2, i2)``: the intercept is ``a1[i1] + coef * a2[i2]``.
    s : tuple
        ``(s1, j1, s2, j2, s3, j3)``: the slopes are ``s1[j1] + coef * (s2[j2] + s3[j3])``
        (each ``s`` has ``P`` columns).
    coef : tensor, shape (B,)
    weight : tuple, optional
        ``(weight, k)``: block ``b`` counts ``weight[k_b]`` times (default once).

    Every index must lie within its array: the kernel does not check them (they are built
    by :mod:`impactmodel.bayes.sufficient`, never taken from user input).

    Returns
    -------
    TensorVariable
        A scalar.
    """
    if weight is None:
        n_blocks = pt.as_tensor_variable(moments["n"]).shape[0]
        weight = (pt.ones(1), pt.zeros(n_blocks, dtype="int64"))
    outputs = BlockResidualSquares(slopes).make_node(
        *weight, *a, *s, coef, *(moments[k] for k in ("n", "sx", "sxx", "sv", "sxv", "svv"))
    ).outputs
    return cast(pt.TensorVariable, outputs[0])
