"""The one-pass cumulative-logit log-likelihood: value and derivatives, numba and numpy."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit

from impactmodel.bayes.cumulative_logit import (
    DATA,
    PARAMETERS,
    answer_indices,
    cumulative_logit_logp,
)

N_ITEMS, N_CAT, N_POP, N_RESP, N_PRACTICES, N_IMPACTS = 4, 4, 2, 9, 2, 3


def _case(seed: int, n: int = 40, practice_levels: int | None = None
          ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Four items with 4 categories; cut-points, parameters and the raw data.

    The raw data are ``x, y, item, respondent, item_impact, pair_of, population``;
    :func:`_op_data` turns them into the op's inputs. ``practice_levels``: practices
    drawn from that many values (respondents then share rows), else continuous.
    """
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.normal(0, 1.5, (N_ITEMS, N_CAT - 1)), axis=1)
    wide = np.column_stack([np.full(N_ITEMS, -40.0), cuts, np.full(N_ITEMS, 40.0)])
    lower, upper = wide[:, :-1], wide[:, 1:]
    n_pairs = N_ITEMS * N_POP
    parameters = [np.log(-np.expm1(lower - upper)).ravel(), np.exp(-upper).ravel(),
                  np.exp(lower).ravel(), rng.normal(0, 0.5, n_pairs),
                  rng.normal(0, 1, (N_RESP, N_IMPACTS)), rng.normal(0, 0.5, (N_ITEMS,
                                                                            N_PRACTICES))]
    x = (rng.normal(0, 1, (N_RESP, N_PRACTICES)) if practice_levels is None
         else rng.integers(0, practice_levels, (N_RESP, N_PRACTICES)) - 0.4)
    data = [x, rng.integers(0, N_CAT, n),
            rng.integers(0, N_ITEMS, n), rng.integers(0, N_RESP, n),
            rng.integers(0, N_IMPACTS, N_ITEMS),
            rng.permutation(n_pairs).reshape(N_ITEMS, N_POP), rng.integers(0, N_POP, N_RESP)]
    return wide, parameters, data


def _op_data(data: list[np.ndarray], respondents_per_block: int | None = None
             ) -> list[np.ndarray]:
    indices = answer_indices(*data, n_categories=N_CAT, n_impacts=N_IMPACTS,
                             respondents_per_block=respondents_per_block)
    return [indices[name] for name, *_ in DATA]


def _function(mode: str, with_gradient: bool) -> pytensor.compile.Function:
    parameters = [pt.tensor(name, shape=(None,) * rank, dtype="float64")
                  for name, rank in PARAMETERS]
    data = [pt.tensor(name, shape=(None,) * rank,
                      dtype="float64" if kind == "float" else "int32")
            for name, rank, kind in DATA]
    logp = cumulative_logit_logp(*parameters, *data)[0]
    outputs = [logp, *pytensor.grad(logp, parameters)] if with_gradient else [logp]
    return pytensor.function(parameters + data, outputs, mode=mode)


@pytest.mark.parametrize("respondents_per_block", [None, 2])
@pytest.mark.parametrize("practice_levels", [None, 2])
@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_value_is_the_sum_of_logistic_differences(mode, practice_levels,
                                                   respondents_per_block):
    wide, parameters, data = _case(0, practice_levels=practice_levels)
    shift, person, slope = parameters[3:]
    x, y, item, respondent, item_impact, pair_of, population = data
    eta = (shift[pair_of[item, population[respondent]]]
           + person[respondent, item_impact[item]]
           + np.einsum("is,is->i", x[respondent], slope[item]))
    expected = np.sum(np.log(expit(wide[item, y + 1] - eta) - expit(wide[item, y] - eta)))
    op_data = _op_data(data, respondents_per_block)
    if practice_levels is not None:  # respondents share rows of practices
        assert len(op_data[0]) < N_RESP
    value = _function(mode, False)(*parameters, *op_data)[0]
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_derivatives_equal_finite_differences(mode):
    _, parameters, raw = _case(1, practice_levels=2)
    data = _op_data(raw)
    gradients = _function(mode, True)(*parameters, *data)[1:]
    value = _function(mode, False)
    step = 1e-6
    for which, (x, gradient) in enumerate(zip(parameters, gradients, strict=True)):
        assert gradient.shape == x.shape
        if which == 0:  # the gap terms enter linearly: d/dgap = answers per category
            np.testing.assert_array_equal(
                gradient, np.bincount(raw[2] * N_CAT + raw[1], minlength=len(x)))
            continue
        for position in np.ndindex(x.shape):
            up, down = [p.copy() for p in parameters], [p.copy() for p in parameters]
            up[which][position] += step
            down[which][position] -= step
            numeric = (value(*up, *data)[0] - value(*down, *data)[0]) / (2 * step)
            np.testing.assert_allclose(gradient[position], numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{PARAMETERS[which][0]}{position}")


@pytest.mark.parametrize(("practice_levels", "respondents_per_block"),
                         [(None, None), (2, None), (2, 4)])
def test_numba_and_numpy_agree_on_a_larger_case(practice_levels, respondents_per_block):
    # 5,000 answers: the numba loop takes the log of its running product of the D many
    # times over; the numpy version takes one log per answer
    _, parameters, data = _case(3, n=5000, practice_levels=practice_levels)
    op_data = _op_data(data, respondents_per_block)
    numba_out = _function("NUMBA", True)(*parameters, *op_data)
    numpy_out = _function("FAST_COMPILE", True)(*parameters, *op_data)
    for a, b in zip(numba_out, numpy_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


@pytest.mark.parametrize("respondents_per_block", [None, 2])
def test_segments_hold_every_answer_once_in_blocks(respondents_per_block):
    _, _, raw = _case(5, n=300, practice_levels=2)
    x, y, item, respondent, item_impact, pair_of, population = raw
    out = answer_indices(*raw, n_categories=N_CAT, n_impacts=N_IMPACTS,
                         respondents_per_block=respondents_per_block)
    lengths = np.diff(out["segment_start"])
    assert out["segment_start"][0] == 0 and lengths.min() >= 1
    assert out["segment_start"][-1] == len(y)
    k = np.repeat(out["segment_item_category"], lengths)
    profile, j = np.divmod(np.repeat(out["segment_profile_item"], lengths), N_ITEMS)
    r, m = np.divmod(out["respondent_impact"], N_IMPACTS)
    # the answers, each once: (respondent, item, category), with the respondent's
    # practices, population and the item's impact and shift position
    assert sorted(zip(r, j, k % N_CAT, strict=True)) == sorted(
        zip(respondent, item, y, strict=True))
    np.testing.assert_array_equal(k // N_CAT, j)
    np.testing.assert_array_equal(m, item_impact[j])
    np.testing.assert_array_equal(out["profiles"][profile], x[r])
    np.testing.assert_array_equal(out["profile_pair"][profile, j], pair_of[j, population[r]])
    np.testing.assert_array_equal(out["category_count"],
                                  np.bincount(item * N_CAT + y, minlength=N_ITEMS * N_CAT))
    # blocks of respondents in order; one block of respondents per segment
    block = np.repeat(np.arange(len(lengths)), lengths)
    per_block = respondents_per_block or N_RESP
    first = out["respondent_impact"][out["segment_start"][:-1]] // N_IMPACTS // per_block
    np.testing.assert_array_equal(r // per_block, first[block])
    assert np.all(np.diff(first) >= 0)
    if respondents_per_block is not None:
        assert len(np.unique(first)) > 1


def test_extreme_predictors_and_an_unchosen_category_stay_finite():
    # a respondent part of 260 makes D about exp(260) on its own (past the running
    # product's bound); a category no answer uses may have a gap of -inf
    _, parameters, raw = _case(4, n=400)
    parameters[4][2, :] = 260.0
    assert (raw[3] == 2).any()
    chosen = (raw[2] != 1) | (raw[1] != 2)  # nobody picks category 2 of item 1
    raw[1:4] = [v[chosen] for v in raw[1:4]]
    parameters[0][1 * N_CAT + 2] = -np.inf
    data = _op_data(raw)
    numba_out = _function("NUMBA", True)(*parameters, *data)
    numpy_out = _function("FAST_COMPILE", True)(*parameters, *data)
    assert np.isfinite(numba_out[0])
    for a, b in zip(numba_out, numpy_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_an_underflowing_location_gives_the_numpy_value_not_an_exception():
    # exp(-800) is 0 in double precision, so the loop's reciprocal 1 / exp(person) divides
    # by zero. PyMC's NUTS can reach such points in its first warm-up steps, and numba's
    # default (Python) error model raised ZeroDivisionError from the compiled log-density
    # and ended the sampling; the NUMBA loop must give what numpy's does (an infinite or
    # NaN log-density, which the sampler counts as a divergence)
    _, parameters, raw = _case(5, n=400)
    parameters[4][3, :] = -800.0
    assert (raw[3] == 3).any()
    data = _op_data(raw)
    numba_out = _function("NUMBA", True)(*parameters, *data)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        numpy_out = _function("FAST_COMPILE", True)(*parameters, *data)
    assert not np.isfinite(numba_out[0])
    for a, b in zip(numba_out, numpy_out, strict=True):  # NaN and inf where numpy has them
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_second_derivatives_are_refused():
    _, parameters, data = _case(0)
    outputs = cumulative_logit_logp(*[pt.as_tensor_variable(v)
                                      for v in parameters + _op_data(data)])
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pytensor.grad(outputs[2].sum(), outputs[0].owner.inputs[1])


def test_inputs_of_the_wrong_kind_are_refused():
    _, parameters, data = _case(0)
    data = _op_data(data)
    position = [name for name, *_ in DATA].index("respondent_impact")
    wrong = [v.astype(float) if k == position else v for k, v in enumerate(data)]
    with pytest.raises(TypeError, match="respondent_impact must hold integers"):
        cumulative_logit_logp(*parameters, *wrong)
    with pytest.raises(TypeError, match="person must have 2 dimensions"):
        cumulative_logit_logp(*parameters[:4], parameters[4].ravel(), *parameters[5:], *data)
