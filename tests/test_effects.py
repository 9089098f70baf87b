"""Effect and intercept priors drawn in other coordinates than they are stated in.

Two reparametrisations must leave the prior as documented. ``b`` and ``b_population``
are drawn as population levels around a centre
(:func:`impactmodel.bayes.effects._overall_and_population`); the prior must be
``b ~ N(0, effect_sd)`` independent of ``b_population``, a zero-sum normal whose
elements have covariance ``sd^2 (I - 1 1' / P)`` (the iid normal projected on the
zero-sum subspace). Intercepts are drawn as group means plus within-group deviations
(:func:`impactmodel.bayes.effects.iid_normal_by_group`); they must stay iid normal.

Checked on 40,000 prior draws: a standard deviation estimated from n draws has relative
error about ``1 / sqrt(2 n)`` (0.35 %), a correlation about ``1 / sqrt(n)`` (0.005); the
tolerances are four to five times those.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from impactmodel.bayes.effects import (
    _overall_and_population,
    iid_normal_by_group,
    partially_centred_zero_sum,
    practice_effects,
    scale_adaptive_zero_sum,
    zero_sum_part,
)

DRAWS = 40_000
COORDS = {"practice": ["p1", "p2"], "population": ["a", "b", "c", "d"]}


def _prior_draws(effect_sd: float, population_sd: float
                 ) -> tuple[pm.Model, np.ndarray, np.ndarray]:
    with pm.Model(coords=COORDS) as model:
        b, b_pop = _overall_and_population(effect_sd, population_sd)
    draws = pm.draw([b, b_pop], draws=DRAWS, random_seed=20261127)
    return model, np.asarray(draws[0]), np.asarray(draws[1])


@pytest.mark.parametrize(("effect_sd", "population_sd", "centred"),
                         [(5.0, 2.5, True), (1.0, 0.5, True), (1.0, 3.0, False)])
def test_prior_of_overall_and_population_parts(effect_sd: float, population_sd: float,
                                               centred: bool) -> None:
    model, b, b_pop = _prior_draws(effect_sd, population_sd)
    free = {v.name for v in model.free_RVs}
    # levels around a centre when a centre prior exists (effect_sd^2 > sd^2 / P), else the
    # zero-sum form
    assert free == ({"b_centre", "b_population_level"} if centred
                    else {"b", "b_population"})
    n_pop = len(COORDS["population"])
    np.testing.assert_allclose(b_pop.sum(axis=-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(b.std(axis=0), effect_sd, rtol=0.015)
    for practice in range(2):
        joint = np.column_stack([b[:, practice], b_pop[:, practice, :]])
        expected = np.zeros((n_pop + 1, n_pop + 1))
        expected[0, 0] = effect_sd**2
        expected[1:, 1:] = population_sd**2 * (np.eye(n_pop) - 1.0 / n_pop)
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected))) + 1e-300
        # relative to the sds: a correlation error of 0.025, a variance error of 2.5 %
        np.testing.assert_allclose(np.cov(joint, rowvar=False) / scale, expected / scale,
                                   atol=0.025)


def test_iid_normal_drawn_by_group_keeps_the_iid_prior() -> None:
    """``iid_normal_by_group``: group means plus within-group zero-sum coordinates must be
    the iid normal it replaces (mean mu, sd sigma, uncorrelated), for groups of 1 to 4
    units given in any order."""
    group = np.array([2, 0, 1, 0, 2, 3, 2, 0, 2])  # sizes 3, 1, 4, 1
    mu, sigma = 50.0, 20.0
    with pm.Model(coords={"unit": list(range(len(group)))}):
        value = iid_normal_by_group("alpha", group, mu, sigma, dims=("unit",))
    draws = np.asarray(pm.draw(value, draws=DRAWS, random_seed=20261128))
    np.testing.assert_allclose(draws.mean(axis=0), mu, atol=4 * sigma / np.sqrt(DRAWS))
    np.testing.assert_allclose(np.corrcoef(draws, rowvar=False), np.eye(len(group)),
                               atol=0.025)
    np.testing.assert_allclose(draws.std(axis=0), sigma, rtol=0.015)


def test_iid_normal_by_group_refuses_gaps_in_the_group_codes() -> None:
    with pm.Model(coords={"unit": [0, 1]}), pytest.raises(ValueError, match="without gaps"):
        iid_normal_by_group("alpha", np.array([0, 2]), 0.0, 1.0, dims=("unit",))


@pytest.mark.parametrize("centred", [True, False])
def test_zero_sum_part_has_the_same_prior_centred_or_not(centred: bool) -> None:
    """Both forms: a zero-sum normal whose elements have covariance ``s^2 (I - 1 1' / K)``
    given the scale ``s``; the non-centred one is drawn as ``s`` times a standard one."""
    scale, k = 0.7, 3
    with pm.Model(coords={"practice": ["p1", "p2"], "lens": ["a", "b", "c"]}) as model:
        part = zero_sum_part("b_lens", pm.math.constant(scale), ("practice", "lens"),
                             centred)
    assert {v.name for v in model.free_RVs} == ({"b_lens"} if centred else {"b_lens_z"})
    draws = np.asarray(pm.draw(part, draws=DRAWS, random_seed=20261206))
    np.testing.assert_allclose(draws.sum(axis=-1), 0.0, atol=1e-9)
    expected = scale**2 * (np.eye(k) - 1.0 / k)
    for practice in range(2):
        np.testing.assert_allclose(np.cov(draws[:, practice, :], rowvar=False), expected,
                                   atol=0.025 * scale**2)


def _assert_standard_given_the_scale(part_draws: np.ndarray, scale_draws: np.ndarray
                                     ) -> None:
    """Prior draws of a zero-sum part over ``scale``: zero sums, and ``part / scale`` a
    standard zero-sum normal (covariance ``I - 1 1' / K``) independent of the scale
    (``|part / scale|`` uncorrelated with ``log(scale)``)."""
    k = part_draws.shape[-1]
    np.testing.assert_allclose(part_draws.sum(axis=-1), 0.0, atol=1e-9)
    standard = part_draws / scale_draws[:, None, None]
    for practice in range(part_draws.shape[1]):
        np.testing.assert_allclose(np.cov(standard[:, practice, :], rowvar=False),
                                   np.eye(k) - 1.0 / k, atol=0.025)
        assert abs(np.corrcoef(np.log(scale_draws),
                               np.abs(standard[:, practice, 0]))[0, 1]) < 0.025


def test_scale_adaptive_zero_sum_keeps_the_prior_given_the_scale() -> None:
    """Whatever the knee and far exponent, ``part / scale`` is a standard zero-sum normal
    (covariance ``I - 1 1' / K``) independent of the scale: the scales drawn here (a
    half-normal of scale 0.05) lie on both sides of the knee (0.02)."""
    with pm.Model(coords={"practice": ["p1", "p2"], "lens": list("abc")}) as model:
        scale = pm.HalfNormal("scale", 0.05)
        part = scale_adaptive_zero_sum("b_lens", scale, ("practice", "lens"), 0.02, 0.3)
    assert {v.name for v in model.free_RVs} == {"scale", "b_lens_smooth"}
    part_draws, scale_draws = (np.asarray(d) for d in
                               pm.draw([part, scale], draws=DRAWS, random_seed=20261208))
    assert 0.2 < np.mean(scale_draws < 0.02) < 0.5
    _assert_standard_given_the_scale(part_draws, scale_draws)
    with pm.Model(coords={"practice": ["p1"], "lens": list("abc")}):
        with pytest.raises(ValueError, match="knee"):
            scale_adaptive_zero_sum("b_lens", pm.math.constant(0.1), ("practice", "lens"),
                                    0.0, 0.3)
        with pytest.raises(ValueError, match="far exponent"):
            scale_adaptive_zero_sum("b_lens", pm.math.constant(0.1), ("practice", "lens"),
                                    0.02, 1.5)


def test_scale_adaptive_zero_sum_has_the_centred_log_density_plus_its_jacobian() -> None:
    """The change of variables by hand: ``b = scale / spread x v`` with ``spread = (1 +
    scale / knee)^(1 - w)``, so the model's log-density at ``(scale, v)`` is the centred
    one's at ``(scale, b)`` plus ``(K - 1) log(scale / spread)`` per practice (the
    zero-sum normal's K - 1 free coordinates each scaled by that factor)."""
    knee, far, k = 0.02, 0.3, 3
    coords = {"practice": ["p1", "p2"], "lens": list("abc")}
    with pm.Model(coords=coords) as adaptive:
        scale = pm.HalfNormal("scale", 0.05)
        scale_adaptive_zero_sum("b_lens", scale, ("practice", "lens"), knee, far)
    with pm.Model(coords=coords) as centred:
        scale_c = pm.HalfNormal("scale", 0.05)
        pm.ZeroSumNormal("b_lens", sigma=scale_c, dims=("practice", "lens"))
    rng = np.random.default_rng(5)
    # the zero-sum transform is linear, so b = factor x v has the coordinates factor x z
    for value in (0.001, 0.02, 0.2):
        z = rng.standard_normal((2, k - 1))
        factor = value / (1.0 + value / knee) ** (1.0 - far)
        got = adaptive.compile_logp()({"scale_log__": np.log(value),
                                       "b_lens_smooth_zerosum__": z})
        want = centred.compile_logp()({"scale_log__": np.log(value),
                                       "b_lens_zerosum__": factor * z})
        assert got == pytest.approx(want + 2 * (k - 1) * np.log(factor), rel=1e-10)


def test_partially_centred_zero_sum_keeps_the_prior_given_the_scale() -> None:
    """With a half-normal scale, ``part / scale`` is a standard zero-sum normal whatever
    ``w`` (covariance ``I - 1 1' / K``, independent of the scale)."""
    with pm.Model(coords={"practice": ["p1", "p2"], "region": list("abcd")}) as model:
        scale = pm.HalfNormal("scale", 0.3)
        part = partially_centred_zero_sum("b_region", scale, ("practice", "region"), 0.4)
    assert {v.name for v in model.free_RVs} == {"scale", "b_region_partial"}
    part_draws, scale_draws = (np.asarray(d) for d in
                               pm.draw([part, scale], draws=DRAWS, random_seed=20261207))
    _assert_standard_given_the_scale(part_draws, scale_draws)


@pytest.mark.parametrize("exponent", [0.0, 0.35, 1.0])
def test_partially_centred_zero_sum_density_is_the_centred_one_plus_the_jacobian(
        exponent: float) -> None:
    """The model's log-density in the sampler's coordinates ``(log scale, v)`` is the
    half-normal's (with the log transform's Jacobian, ``log scale``) plus, for each
    practice, the zero-sum normal's density of ``part = scale^w v`` on its ``K - 1``
    dimensional subspace, ``-(K - 1) / 2 log(2 pi scale^2) - |part|^2 / (2 scale^2)``,
    plus ``log |d part / d v| = (K - 1) w log scale``."""
    k, scale_sd = 5, 0.3
    with pm.Model(coords={"practice": ["p1", "p2"], "region": list("abcde")}) as model:
        scale = pm.HalfNormal("scale", scale_sd)
        part = partially_centred_zero_sum("b_region", scale, ("practice", "region"),
                                          exponent)
    free = model.free_RVs[1]
    rng = np.random.default_rng(3)
    v = rng.normal(size=(2, k))
    v -= v.mean(axis=1, keepdims=True)
    logp = model.compile_logp()
    # the zero-sum transform is an isometry onto the subspace's coordinates (no Jacobian)
    transform = model.rvs_to_transforms[free]
    coordinates = transform.forward(pt.as_tensor(v)).eval()
    value_name = model.rvs_to_values[free].name
    for value in (0.05, 0.4):
        density = float(logp({"scale_log__": np.log(value), value_name: coordinates}))
        values = pytensor.function([scale, free], part, on_unused_input="ignore")(value, v)
        np.testing.assert_allclose(values, value**exponent * v, rtol=1e-12)
        expected = (stats.halfnorm.logpdf(value, scale=scale_sd) + np.log(value)
                    + 2 * (-(k - 1) / 2 * np.log(2 * np.pi * value**2)
                           + (k - 1) * exponent * np.log(value))
                    - np.sum(values**2) / (2 * value**2))
        assert density == pytest.approx(expected, rel=1e-9, abs=1e-6)
    with pm.Model(coords={"practice": ["p1"], "region": list("ab")}), \
            pytest.raises(ValueError, match=r"in \[0, 1\], got 1.2"):
        partially_centred_zero_sum("b_region", pm.math.constant(1.0), ("practice", "region"),
                                   1.2)


def test_cell_parts_centred_or_not_one_by_one() -> None:
    """``cell_centred`` as a triple chooses the impact, lens and dimension parts' forms."""
    coords = {"practice": ["p1"], "population": ["a", "b"], "impact": ["i1", "i2"],
              "lens": ["l1", "l2"], "dimension": ["d1", "d2"], "region": ["r1", "r2"],
              "department": ["d01", "d02", "d03"]}
    with pm.Model(coords=coords) as model:
        practice_effects(np.array([0, 0, 1]), effect_sd=1.0, component_sd=0.5,
                         centred=True, cell_centred=(True, False, True))
    free = {v.name for v in model.free_RVs}
    assert {"b_impact", "b_lens_z", "b_dimension"} <= free
    assert not {"b_impact_z", "b_lens", "b_dimension_z"} & free
