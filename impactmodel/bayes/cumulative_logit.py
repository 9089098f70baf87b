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

and the partial derivatives are

    d/d eta = -(t a - b / t) / D,   d/da = -(t + b) / D,   d/db = -(1 / t + a) / D.

Written as PyTensor's elementwise operations, gathers and scatter-adds, one gradient
allocated about fifteen arrays the size of the answers and was bound by memory traffic.
:class:`CumulativeLogitLogp` computes the sum and every partial derivative in one loop.

What the loop avoids (214,365 answers: 5.7 ms per gradient with one ``exp`` and one
``log`` per answer; 2.1 ms with the tables below and four indices per answer; 1.3 ms
with the segments):

- **No exp per answer.** ``t`` is the product of two factors tabulated once per
  gradient: ``exp(person)`` per respondent x impact, and ``exp(shift + x . slope_j)``
  per *profile* x item. Practices are survey answers (yes/no, a few levels), so
  respondents share few distinct rows of practices; a profile is a distinct row of
  practices together with a population (60 in the simulated national survey). ``1 / t``
  is the product of the factors' reciprocals, tabulated likewise. With continuous
  practices the profiles are the respondents and the table costs about as many ``exp``
  as there are answers (no loss). ``exp(person)`` comes from
  :func:`~impactmodel.bayes.vector_exp.exp_into`, which numba vectorises: at 81,471
  respondents the C library's scalar ``exp`` took 1.1 ms of each gradient there.
- **No log per answer.** ``D >= 1``, so the ``D`` are multiplied together and the
  logarithm is taken when the product passes 1e200 (and for any ``D`` above 1e100 on its
  own): ``sum(log D) = log(prod D)`` to rounding.
- **One index per answer, one scatter-add.** The answers are stored in *segments* that
  share item, category and profile (:func:`answer_indices`), so the cut-point parts and
  the profile's factor are read once per segment and their derivatives are summed in
  registers; per answer the loop reads one 32-bit index (respondent x impact) and adds
  to one derivative. The respondent x impact table (``exp``, its reciprocal and the
  derivative side by side) is visited in blocks of respondents small enough to stay in
  the core's cache (:data:`TABLE_ENTRIES_PER_BLOCK`): the segments are ordered by block
  of respondents, then item, profile, category and respondent.

The factored ``t`` differs from ``exp(eta)`` by a few units in the last place; it
overflows only where a factor does (``|eta|``-parts above about 700). There is a numba
implementation (nutpie's backend) and a numpy one that computes ``exp(eta)`` and ``log D``
per answer directly (every other backend; the independent check of the loop in the tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt
from numpy.typing import NDArray
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

from impactmodel.bayes import vector_exp
from impactmodel.bayes.vector_exp import exp_into

#: the inputs with a derivative (and their ranks), in order
PARAMETERS = (("gap", 1), ("a", 1), ("b", 1), ("shift", 1), ("person", 2), ("slope", 2))
#: the data inputs (name, rank, kind): the profiles' practices and pairs, the answers per
#: item x category, then the segments and the per-answer respondent x impact
DATA = (("profiles", 2, "float"), ("profile_pair", 2, "int"),
        ("category_count", 1, "float"), ("segment_start", 1, "int"),
        ("segment_item_category", 1, "int"), ("segment_profile_item", 1, "int"),
        ("respondent_impact", 1, "int"))
#: respondent x impact entries per block of respondents: 8,192 x 24 bytes (``exp``, its
#: reciprocal, the derivative) = 192 KiB, within a core's 512 KiB second-level cache
TABLE_ENTRIES_PER_BLOCK = 8192


def answer_indices(x: NDArray[np.float64], y: NDArray[np.integer],
                   item: NDArray[np.integer], respondent: NDArray[np.integer],
                   item_impact: NDArray[np.integer], pair_of: NDArray[np.integer],
                   respondent_population: NDArray[np.integer], n_categories: int,
                   n_impacts: int, respondents_per_block: int | None = None
                   ) -> dict[str, NDArray[Any]]:
    """Build the data inputs of :class:`CumulativeLogitLogp`, by name (see :data:`DATA`).

    Parameters
    ----------
    x : ndarray, shape (respondents, practices)
    y, item, respondent : ndarray of int, shape (answers,)
        Category (``0 .. n_categories - 1``), item and respondent of each answer.
    item_impact : ndarray of int, shape (items,)
    pair_of : ndarray of int, shape (items, populations)
        Position in ``shift`` of each item x population pair (negative where no answer
        uses the pair).
    respondent_population : ndarray of int, shape (respondents,)
    n_categories, n_impacts : int
    respondents_per_block : int, optional
        Respondents per block of the segments' order; by default as many as keep
        :data:`TABLE_ENTRIES_PER_BLOCK` respondent x impact entries.

    Returns
    -------
    dict of str to ndarray
        ``profiles`` (the practices of each distinct practices x population row),
        ``profile_pair`` (profiles x items: position in ``shift``), ``category_count``
        (answers per item x category, ``item * n_categories + y``), ``segment_start``
        (``int32``, segments + 1: the segments' first answers and the answers' count),
        per segment ``segment_item_category`` and ``segment_profile_item`` (``profile *
        items + item``), and per answer in the segments' order ``respondent_impact``
        (``respondent * n_impacts + impact``).
    """
    n_items = len(item_impact)
    item, y, respondent = (np.asarray(v, dtype=np.int64) for v in (item, y, respondent))
    rows, pattern = np.unique(np.asarray(x, dtype=np.float64), axis=0, return_inverse=True)
    kinds, profile = np.unique(
        np.column_stack([pattern.reshape(-1), respondent_population]), axis=0,
        return_inverse=True)
    answer_profile = profile.reshape(-1)[respondent]
    block = respondents_per_block or max(1, TABLE_ENTRIES_PER_BLOCK // n_impacts)
    keys = (respondent // block, item, answer_profile, y)
    order = np.lexsort((respondent, *keys[::-1]))
    sorted_keys = np.column_stack([k[order] for k in keys])
    starts = np.flatnonzero(np.r_[True, np.any(np.diff(sorted_keys, axis=0) != 0, axis=1)])
    first = order[starts]
    int32 = {
        "profile_pair": np.asarray(pair_of)[:, kinds[:, 1]].T,
        "segment_start": np.append(starts, len(order)),
        "segment_item_category": item[first] * n_categories + y[first],
        "segment_profile_item": answer_profile[first] * n_items + item[first],
        "respondent_impact": (respondent * n_impacts + item_impact[item])[order]}
    return {"profiles": np.ascontiguousarray(rows[kinds[:, 0]]),
            "category_count": np.bincount(item * n_categories + y,
                                          minlength=n_items * n_categories
                                          ).astype(np.float64),
            **{k: np.ascontiguousarray(v, dtype=np.int32) for k, v in int32.items()}}


class CumulativeLogitLogp(Op):
    """Sum of the answers' log-probabilities, and its partial derivatives.

    Inputs, in order (see the module docstring):

    - ``gap, a, b``: per item x category, flat (item ``j``, category ``k`` at
      ``j * K + k``);
    - ``shift``: per item x population pair; ``person``: respondents x impacts;
      ``slope``: items x practices;
    - data (no derivative), from :func:`answer_indices` (see :data:`DATA`): the
      profiles' practices and ``shift`` positions, the answers per item x category, the
      segments (start, item x category, profile x item) and, per answer, its respondent
      x impact.

    Outputs: the log-likelihood (a scalar), then its derivatives with respect to ``gap,
    a, b, shift, person, slope``.
    """

    __props__ = ()

    def make_node(self, *inputs: Any) -> Apply:
        """Check the inputs' kinds and ranks."""
        specs = [(name, rank, "float") for name, rank in PARAMETERS] + list(DATA)
        if len(inputs) != len(specs):
            raise TypeError(f"expected {len(specs)} inputs, got {len(inputs)}")
        tensors = [pt.as_tensor_variable(v) for v in inputs]
        for position, ((name, rank, kind), v) in enumerate(zip(specs, tensors, strict=True)):
            if v.ndim != rank:
                raise TypeError(f"{name} must have {rank} dimensions, got {v.ndim}")
            if kind == "float" and v.dtype != "float64":
                tensors[position] = v.astype("float64")
            if kind == "int" and not v.dtype.startswith(("int", "uint")):
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
                 person: np.ndarray, slope: np.ndarray, profiles: np.ndarray,
                 profile_pair: np.ndarray, category_count: np.ndarray,
                 segment_start: np.ndarray, segment_item_category: np.ndarray,
                 segment_profile_item: np.ndarray, respondent_impact: np.ndarray
                 ) -> list[np.ndarray]:
    """Log-likelihood and partial derivatives, with numpy: ``exp`` and ``log`` per answer.

    The segments are expanded back to one row per answer; ``category_count`` is not read
    (the answers are counted from the segments).
    """
    n_items = slope.shape[0]
    lengths = np.diff(segment_start)
    item_category = np.repeat(segment_item_category, lengths)
    profile, item = np.divmod(np.repeat(segment_profile_item, lengths), n_items)
    pair = profile_pair[profile, item]
    x = profiles[profile]
    t = np.exp(shift[pair] + person.ravel()[respondent_impact]
               + np.sum(x * slope[item], axis=1))
    a_i, b_i = a[item_category], b[item_category]
    total = 1.0 + t * a_i + b_i / t + a_i * b_i
    d_eta = -(t * a_i - b_i / t) / total
    logp = np.sum(gap[item_category]) - np.sum(np.log(total))

    def summed(index: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=size).astype(np.float64)
    d_slope = np.column_stack([summed(item, d_eta * x[:, s], n_items)
                               for s in range(slope.shape[1])]).reshape(slope.shape)
    return [np.asarray(logp, dtype=np.float64), summed(item_category, None, len(gap)),
            summed(item_category, -(t + b_i) / total, len(a)),
            summed(item_category, -(1.0 / t + a_i) / total, len(b)),
            summed(pair, d_eta, len(shift)),
            summed(respondent_impact, d_eta, person.size).reshape(person.shape), d_slope]


_OP = CumulativeLogitLogp()


def cumulative_logit_logp(*inputs: Any) -> list[pt.TensorVariable]:
    """Apply :class:`CumulativeLogitLogp`: ``[log-likelihood, derivatives...]``."""
    outputs = _OP(*inputs)
    assert isinstance(outputs, list)
    return [pt.as_tensor_variable(o) for o in outputs]


_SOURCE_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@register_funcify_and_cache_key(CumulativeLogitLogp)  # type: ignore[misc]
def _numba_cumulative_logit(op: CumulativeLogitLogp, node: Apply | None = None,
                            **kwargs: Any) -> tuple[Any, str]:
    """One loop over the answers: the sum and every derivative, no temporary arrays.

    PyTensor caches the compiled loop on disk under the returned key, which holds this
    file's source digest: an edited loop is compiled again, never read back stale.
    """
    @numba_basic.numba_njit(boundscheck=False, error_model="numpy")
    def cumulative_logit(gap, a, b, shift, person, slope, profiles, profile_pair,
                         category_count, segment_start, segment_item_category,
                         segment_profile_item, respondent_impact
                         ):  # type: ignore[no-untyped-def]
        n_items, n_practices = slope.shape
        n_profiles = profiles.shape[0]
        # per respondent x impact, side by side: exp(person), its reciprocal, d/d person
        flat_person = np.ascontiguousarray(person).ravel()
        exp_person = exp_into(flat_person, np.empty_like(flat_person))
        table = np.empty(3 * flat_person.shape[0])
        for r in range(flat_person.shape[0]):
            value = exp_person[r]
            table[3 * r] = value
            table[3 * r + 1] = 1.0 / value
            table[3 * r + 2] = 0.0
        # per profile x item: exp(shift + x . slope)
        factor = np.ones(n_profiles * n_items)
        for p in range(n_profiles):
            for j in range(n_items):
                q = profile_pair[p, j]
                if q >= 0:
                    value = shift[q]
                    for s in range(n_practices):
                        value += profiles[p, s] * slope[j, s]
                    factor[p * n_items + j] = np.exp(value)
        d_a, d_b = np.zeros_like(a), np.zeros_like(b)
        d_factor = np.zeros(n_profiles * n_items)
        log_large = 0.0  # sum of the logs taken so far
        product = 1.0  # product of the D not yet in log_large
        for g in range(segment_item_category.shape[0]):
            k, w = segment_item_category[g], segment_profile_item[g]
            f = factor[w]
            inv_f = 1.0 / f
            a_k, b_k = a[k], b[k]
            one_ab = 1.0 + a_k * b_k
            sum_a, sum_b, sum_eta = 0.0, 0.0, 0.0
            for i in range(segment_start[g], segment_start[g + 1]):
                r = 3 * respondent_impact[i]
                t = f * table[r]
                inv_t = inv_f * table[r + 1]
                total = one_ab + t * a_k + b_k * inv_t
                inv_total = 1.0 / total
                if total < 1e100:
                    product *= total
                    if product > 1e200:
                        log_large += np.log(product)
                        product = 1.0
                else:  # also +inf; NaN goes to the product and stays there
                    log_large += np.log(total)
                d_eta = (b_k * inv_t - t * a_k) * inv_total
                sum_a += (t + b_k) * inv_total
                sum_b += (inv_t + a_k) * inv_total
                sum_eta += d_eta
                table[r + 2] += d_eta
            d_a[k] -= sum_a
            d_b[k] -= sum_b
            d_factor[w] += sum_eta
        logp = -(log_large + np.log(product))
        for k in range(gap.shape[0]):
            if category_count[k] > 0.0:  # a category nobody chose adds nothing, even at -inf
                logp += category_count[k] * gap[k]
        d_shift, d_slope = np.zeros_like(shift), np.zeros_like(slope)
        for p in range(n_profiles):
            for j in range(n_items):
                q = profile_pair[p, j]
                if q >= 0:
                    d_w = d_factor[p * n_items + j]
                    d_shift[q] += d_w
                    for s in range(n_practices):
                        d_slope[j, s] += d_w * profiles[p, s]
        d_person = table[2::3].copy().reshape(person.shape)
        return (np.asarray(logp), category_count.copy(), d_a, d_b, d_shift, d_person,
                d_slope)

    return cumulative_logit, (f"impactmodel.CumulativeLogitLogp-{_SOURCE_KEY}-"
                              f"{vector_exp.SOURCE_KEY}")
