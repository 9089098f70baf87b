"""The fused residual-squares Op against unit-level sums and finite differences."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from impactmodel.bayes.residual_squares import UNROLLED_UP_TO, block_residual_squares, kernel_source

SIZES = {"weight": 4, "a1": 5, "a2": 3, "s1": 6, "s2": 2, "s3": 4}


def _problem(seed: int = 0, blocks: int = 7, units: int = 60, slopes: int = 2):
    """Units with (x, v) in blocks; each block's indices and coefficient."""
    rng = np.random.default_rng(seed)
    unit_block = rng.integers(0, blocks, units)
    unit_block[:blocks] = np.arange(blocks)  # every block has a unit
    x, v = rng.normal(size=(units, slopes)), rng.normal(3.0, 2.0, units)
    index = {k: rng.integers(0, size, blocks) for k, size in SIZES.items()}
    coef = rng.uniform(0.5, 3.0, blocks)
    params = {k: rng.normal(size=(size, slopes) if k.startswith("s") else size)
              for k, size in SIZES.items()}
    params["weight"] = rng.uniform(0.2, 2.0, SIZES["weight"])
    return unit_block, x, v, index, coef, params


def _unit_level(unit_block, x, v, index, coef, params) -> float:
    """``sum_units w_b (v - a_b - x . s_b)^2`` unit by unit (the textbook sum)."""
    total = 0.0
    for i, b in enumerate(unit_block):
        a = params["a1"][index["a1"][b]] + coef[b] * params["a2"][index["a2"][b]]
        s = params["s1"][index["s1"][b]] + coef[b] * (params["s2"][index["s2"][b]]
                                                     + params["s3"][index["s3"][b]])
        total += params["weight"][index["weight"][b]] * (v[i] - a - x[i] @ s) ** 2
    return total


def _moments(unit_block, x, v, blocks: int) -> dict[str, np.ndarray]:
    """Per block: n, sum x, sum x x', sum v, sum x v, sum v^2 (by explicit loops)."""
    P = x.shape[1]
    out = {"n": np.zeros(blocks), "sx": np.zeros((blocks, P)), "sxx": np.zeros((blocks, P, P)),
           "sv": np.zeros(blocks), "sxv": np.zeros((blocks, P)), "svv": np.zeros(blocks)}
    for i, b in enumerate(unit_block):
        out["n"][b] += 1
        out["sx"][b] += x[i]
        out["sxx"][b] += np.outer(x[i], x[i])
        out["sv"][b] += v[i]
        out["sxv"][b] += x[i] * v[i]
        out["svv"][b] += v[i] ** 2
    return out


def _function(index, coef, moments, mode: Mode):
    """A compiled function of the six parameters: value and gradients."""
    P = moments["sx"].shape[1]
    variables = {k: (pt.dmatrix(k) if k.startswith("s") else pt.dvector(k)) for k in SIZES}
    value = block_residual_squares(
        moments, P, a=(variables["a1"], index["a1"], variables["a2"], index["a2"]),
        s=(variables["s1"], index["s1"], variables["s2"], index["s2"], variables["s3"],
           index["s3"]), coef=coef, weight=(variables["weight"], index["weight"]))
    grads = pt.grad(value, list(variables.values()))
    return pytensor.function(list(variables.values()), [value, *grads], mode=mode)


MODES = {"numba": Mode(linker="numba"), "c": Mode(linker="cvm", optimizer="fast_run")}


@pytest.mark.parametrize(("mode", "slopes"), [("numba", 1), ("numba", 3), ("c", 2),
                                              ("numba", UNROLLED_UP_TO + 2)])
def test_value_equals_the_unit_level_sum_and_gradients_the_finite_differences(mode, slopes):
    unit_block, x, v, index, coef, params = _problem(slopes=slopes)
    blocks = len(coef)
    f = _function(index, coef, _moments(unit_block, x, v, blocks), MODES[mode])
    value, *grads = f(*params.values())
    assert value == pytest.approx(_unit_level(unit_block, x, v, index, coef, params),
                                  rel=1e-12)
    step = 1e-6
    for (name, param), grad in zip(params.items(), grads, strict=True):
        numeric = np.zeros_like(param)
        for pos in np.ndindex(param.shape):
            shifted = {k: p.copy() for k, p in params.items()}
            shifted[name][pos] += step
            up = _unit_level(unit_block, x, v, index, coef, shifted)
            shifted[name][pos] -= 2 * step
            down = _unit_level(unit_block, x, v, index, coef, shifted)
            numeric[pos] = (up - down) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6, err_msg=name)


def test_default_weight_counts_each_block_once():
    unit_block, x, v, index, coef, params = _problem(seed=1)
    moments = _moments(unit_block, x, v, len(coef))
    value = block_residual_squares(
        moments, 2, a=(params["a1"], index["a1"], params["a2"], index["a2"]),
        s=(params["s1"], index["s1"], params["s2"], index["s2"], params["s3"], index["s3"]),
        coef=coef).eval()
    once = {**params, "weight": np.ones(SIZES["weight"])}
    assert value == pytest.approx(_unit_level(unit_block, x, v, index, coef, once), rel=1e-12)


def test_inputs_of_the_wrong_rank_or_width_are_refused():
    unit_block, x, v, index, coef, params = _problem()
    moments = _moments(unit_block, x, v, len(coef))
    a = (params["a1"], index["a1"], params["a2"], index["a2"])
    s = (params["s1"], index["s1"], params["s2"], index["s2"], params["s3"], index["s3"])
    with pytest.raises(TypeError, match="input s1 must have 2 dimensions"):
        block_residual_squares(moments, 2, a=a, s=(params["a1"], *s[1:]), coef=coef)
    with pytest.raises(TypeError, match="the moments have 2 slopes, not 3"):
        block_residual_squares(moments, 3, a=a, s=s, coef=coef)
    with pytest.raises(ValueError, match="slopes must be at least 1"):
        block_residual_squares(moments, 0, a=a, s=s, coef=coef)


def test_kernel_source_is_generated_only_for_few_slopes():
    assert "t2 = s1[j1, 2]" in kernel_source(3)
    with pytest.raises(ValueError, match=f"slopes must be 1 to {UNROLLED_UP_TO}"):
        kernel_source(UNROLLED_UP_TO + 1)
