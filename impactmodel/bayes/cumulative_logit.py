"""The cumulative-logit log-likelihood of item answers and its gradient, in one pass.

Answer ``i`` (respondent ``r``, item ``j`` of impact ``m(j)``, category ``y``) has linear
predictor

    eta_i = shift[pair(j, population(r))] + person[r, m(j)] + x[r] . slope[j]

(the item x population shift, the respondent's part per impact, the respondent's
practices times the item's slopes) and, with ``F`` the logistic function and ``kappa_j``
the item's ordered cut-points (``kappa_j0 = -inf``, ``kappa_jK = +inf``)::

    P(y_i = k) = F(kappa_j,k+1 - eta_i) - F(kappa_jk - eta_i)

Writing ``t = exp(eta)``, ``a = exp(-kappa_j,k+1)``, ``b = exp(kappa_jk)`` and
``gap = log(1 - exp(kappa_jk - kappa_j,k+1))`` (per item x category)::

    log P = gap - log(D),    D = 1 + t a + b / t + a b

so per answer one ``exp`` and one ``log``, and the partial derivatives are

    d/d eta = -(t a - b / t) / D,   d/da = -(t + b) / D,   d/db = -(1 / t + a) / D.

Written as PyTensor's elementwise operations, gathers and scatter-adds, one gradient
allocated about fifteen arrays the size of the answers (7.8 ms per gradient at 214,365
answers), and two chains on two cores ran hardly faster than one: the work was bound by
memory traffic. :class:`CumulativeLogitLogp` reads per answer only its respondent, item
and category (three 32-bit integers); everything else it reads is per respondent (in
order) or per item (small), and it computes the sum and every partial derivative in one
loop, with a numba implementation (nutpie's backend) and a numpy one (every other
backend; also the independent check of the numba loop in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

#: the inputs with a derivative (and their ranks), in order
PARAMETERS = (("gap", 1), ("a", 1), ("b", 1), ("shift", 1), ("person", 2), ("slope", 2))
#: the data inputs (and their ranks): practices, then integers
DATA = (("x", 2), ("y", 1), ("item", 1), ("respondent", 1), ("item_impact", 1),
        ("pair_of", 2), ("respondent_population", 1))


class CumulativeLogitLogp(Op):
    """Sum of the answers' log-probabilities, and its partial derivatives.

    Inputs, in order (see the module docstring):

    - ``gap, a, b``: per item x category, flat (item ``j``, category ``k`` at
      ``j * K + k``);
    - ``shift``: per item x population pair; ``person``: respondents x impacts;
      ``slope``: items x practices;
    - ``x``: respondents x practices (data: no derivative);
    - per answer ``y`` (category), ``item``, ``respondent``; per item ``item_impact``;
      ``pair_of``: items x populations, the pair's position in ``shift``;
      ``respondent_population``.

    Outputs: the log-likelihood (a scalar), then its derivatives with respect to ``gap,
    a, b, shift, person, slope``.
    """

    __props__ = ()

    def make_node(self, *inputs: Any) -> Apply:
        """Check the inputs' kinds and ranks."""
        specs = PARAMETERS + DATA
        if len(inputs) != len(specs):
            raise TypeError(f"expected {len(specs)} inputs, got {len(inputs)}")
        tensors = [pt.as_tensor_variable(v) for v in inputs]
        for position, ((name, rank), v) in enumerate(zip(specs, tensors, strict=True)):
            floating = position <= len(PARAMETERS)  # parameters and x
            if v.ndim != rank:
                raise TypeError(f"{name} must have {rank} dimensions, got {v.ndim}")
            if floating and v.dtype != "float64":
                tensors[position] = v.astype("float64")
            if not floating and not v.dtype.startswith(("int", "uint")):
                raise TypeError(f"{name} must hold integers, got {v.dtype}")
        outputs = [pt.dscalar()] + [v.type() for v in tensors[:len(PARAMETERS)]]
        return Apply(self, tensors, outputs)

    def perform(self, node: Apply, inputs: Sequence[Any],
                output_storage: list[list[Any]]) -> None:
        """Vectorised numpy version (the reference for the numba loop)."""
        values = _terms_numpy(*inputs)
        for storage, value in zip(output_storage, values, strict=True):
            storage[0] = value

    def pullback(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 output_grads: Sequence[Variable]) -> list[Variable]:
        """First derivatives only: the derivative outputs, scaled."""
        if any(not isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            raise NotImplementedError("second derivatives of the cumulative-logit "
                                      "log-likelihood are not implemented")
        scale = pt.as_tensor_variable(output_grads[0])
        return ([scale * d for d in outputs[1:]]
                + [disconnected_type() for _ in DATA])

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Every output depends on the parameters; none on the data."""
        n_out = len(node.outputs)
        return [[True] * n_out for _ in PARAMETERS] + [[False] * n_out for _ in DATA]


def _terms_numpy(gap: np.ndarray, a: np.ndarray, b: np.ndarray, shift: np.ndarray,
                 person: np.ndarray, slope: np.ndarray, x: np.ndarray, y: np.ndarray,
                 item: np.ndarray, respondent: np.ndarray, item_impact: np.ndarray,
                 pair_of: np.ndarray, respondent_population: np.ndarray
                 ) -> list[np.ndarray]:
    """Log-likelihood and partial derivatives, with numpy (see the module docstring)."""
    n_categories = len(gap) // slope.shape[0]
    at = item * n_categories + y
    pair = pair_of[item, respondent_population[respondent]]
    t = np.exp(shift[pair] + person[respondent, item_impact[item]]
               + np.sum(x[respondent] * slope[item], axis=1))
    a_i, b_i = a[at], b[at]
    total = 1.0 + t * a_i + b_i / t + a_i * b_i
    d_eta = -(t * a_i - b_i / t) / total
    logp = np.sum(gap[at]) - np.sum(np.log(total))

    def summed(index: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=size).astype(np.float64)
    n_items, n_impacts = slope.shape[0], person.shape[1]
    d_slope = np.column_stack([summed(item, d_eta * x[respondent, s], n_items)
                               for s in range(slope.shape[1])]).reshape(slope.shape)
    return [np.asarray(logp, dtype=np.float64), summed(at, None, len(gap)),
            summed(at, -(t + b_i) / total, len(a)),
            summed(at, -(1.0 / t + a_i) / total, len(b)), summed(pair, d_eta, len(shift)),
            summed(respondent * n_impacts + item_impact[item], d_eta,
                   person.size).reshape(person.shape), d_slope]


_OP = CumulativeLogitLogp()


def cumulative_logit_logp(*inputs: Any) -> list[pt.TensorVariable]:
    """Apply :class:`CumulativeLogitLogp`: ``[log-likelihood, derivatives...]``."""
    outputs = _OP(*inputs)
    assert isinstance(outputs, list)
    return [pt.as_tensor_variable(o) for o in outputs]


@register_funcify_default_op_cache_key(CumulativeLogitLogp)
def _numba_cumulative_logit(op: CumulativeLogitLogp, node: Apply, **kwargs: Any) -> Any:
    """One loop over the answers: the sum and every derivative, no temporary arrays."""
    @numba_basic.numba_njit(boundscheck=False)
    def cumulative_logit(gap, a, b, shift, person, slope, x, y, item, respondent,
                         item_impact, pair_of, respondent_population
                         ):  # type: ignore[no-untyped-def]
        d_gap, d_a, d_b = np.zeros_like(gap), np.zeros_like(a), np.zeros_like(b)
        d_shift, d_person = np.zeros_like(shift), np.zeros_like(person)
        d_slope = np.zeros_like(slope)
        n_categories = gap.shape[0] // slope.shape[0]
        n_practices = slope.shape[1]
        logp = 0.0
        for i in range(y.shape[0]):
            j, r = item[i], respondent[i]
            k = j * n_categories + y[i]
            pair = pair_of[j, respondent_population[r]]
            m = item_impact[j]
            eta = shift[pair] + person[r, m]
            for s in range(n_practices):
                eta += x[r, s] * slope[j, s]
            t = np.exp(eta)
            inv_t = 1.0 / t
            a_i, b_i = a[k], b[k]
            total = 1.0 + t * a_i + b_i * inv_t + a_i * b_i
            inv_total = 1.0 / total
            logp += gap[k] - np.log(total)
            d_eta = -(t * a_i - b_i * inv_t) * inv_total
            d_gap[k] += 1.0
            d_a[k] -= (t + b_i) * inv_total
            d_b[k] -= (inv_t + a_i) * inv_total
            d_shift[pair] += d_eta
            d_person[r, m] += d_eta
            for s in range(n_practices):
                d_slope[j, s] += d_eta * x[r, s]
        return np.asarray(logp), d_gap, d_a, d_b, d_shift, d_person, d_slope

    return cumulative_logit, 2
