"""The one-pass cumulative-logit log-likelihood: value and derivatives, numba and numpy."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit

from impactmodel.bayes.cumulative_logit import (
    FLOAT_INPUTS,
    INDEX_INPUTS,
    cumulative_logit_logp,
)


def _case(seed: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Three items with 4 categories, 40 answers; cut-points and the op's inputs."""
    rng = np.random.default_rng(seed)
    n_items, n_cat, n = 3, 4, 40
    cuts = np.sort(rng.normal(0, 1.5, (n_items, n_cat - 1)), axis=1)
    wide = np.column_stack([np.full(n_items, -40.0), cuts, np.full(n_items, 40.0)])
    lower, upper = wide[:, :-1], wide[:, 1:]
    floats = [np.log(-np.expm1(lower - upper)).ravel(), np.exp(-upper).ravel(),
              np.exp(lower).ravel(), rng.normal(0, 0.5, 5), rng.normal(0, 1, 7),
              rng.normal(0, 1, 11)]
    item, y = rng.integers(0, n_items, n), rng.integers(0, n_cat, n)
    indices = [item * n_cat + y, rng.integers(0, 5, n), rng.integers(0, 7, n),
               rng.integers(0, 11, n)]
    return wide, floats, indices


def _function(mode: str, with_gradient: bool) -> pytensor.compile.Function:
    floats = [pt.dvector(name) for name in FLOAT_INPUTS]
    indices = [pt.lvector(name) for name in INDEX_INPUTS]
    logp = cumulative_logit_logp(*floats, *indices)[0]
    outputs = [logp, *pytensor.grad(logp, floats)] if with_gradient else [logp]
    return pytensor.function(floats + indices, outputs, mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_value_is_the_sum_of_logistic_differences(mode):
    wide, floats, (at, pair, person_at, item_at) = _case(0)
    shift, person, item = floats[3:]
    eta = shift[pair] + person[person_at] + item[item_at]
    n_cat = wide.shape[1] - 1
    j, k = at // n_cat, at % n_cat
    expected = np.sum(np.log(expit(wide[j, k + 1] - eta) - expit(wide[j, k] - eta)))
    value = _function(mode, False)(*floats, at, pair, person_at, item_at)[0]
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_derivatives_equal_finite_differences(mode):
    _, floats, indices = _case(1)
    logp_and_grads = _function(mode, True)
    gradients = logp_and_grads(*floats, *indices)[1:]
    value = _function(mode, False)
    step = 1e-6
    for which, (x, gradient) in enumerate(zip(floats, gradients, strict=True)):
        if which == 0:  # the gap terms enter linearly: d/dgap = answers per category
            np.testing.assert_array_equal(gradient, np.bincount(indices[0],
                                                                minlength=len(x)))
            continue
        for position in range(len(x)):
            up, down = [f.copy() for f in floats], [f.copy() for f in floats]
            up[which][position] += step
            down[which][position] -= step
            numeric = (value(*up, *indices)[0] - value(*down, *indices)[0]) / (2 * step)
            np.testing.assert_allclose(gradient[position], numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{FLOAT_INPUTS[which]}[{position}]")


def test_numba_and_numpy_agree_on_a_larger_case():
    rng = np.random.default_rng(2)
    _, floats, indices = _case(3)
    n = 5000
    indices = [rng.integers(0, 12, n), rng.integers(0, 5, n), rng.integers(0, 7, n),
               rng.integers(0, 11, n)]
    numba_out = _function("NUMBA", True)(*floats, *indices)
    numpy_out = _function("FAST_COMPILE", True)(*floats, *indices)
    for a, b in zip(numba_out, numpy_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_second_derivatives_are_refused():
    floats = [pt.dvector(name) for name in FLOAT_INPUTS]
    indices = [pt.lvector(name) for name in INDEX_INPUTS]
    outputs = cumulative_logit_logp(*floats, *indices)
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pytensor.grad(outputs[2].sum(), floats[1])
