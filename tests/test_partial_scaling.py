"""The locations' partial non-centring in the traits' covariance (bayes.partial_scaling).

Expected values come from the formula written out with numpy and scipy's fractional
matrix power (the locations), scipy's multivariate normal density with the Jacobian's
determinant from finite differences (the sampler's density), finite differences
(gradients) and, for the sampled posterior, quadrature over the covariance's three
parameters in a bivariate normal-normal model.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import linalg, stats

from impactmodel.bayes import SamplerSettings, sample_model
from impactmodel.bayes.effects import trait_covariance
from impactmodel.bayes.locations import (
    LocationPredictor,
    respondent_locations,
    scaled_locations,
)
from impactmodel.bayes.partial_scaling import (
    LARGE_SURVEY_FROM,
    LARGEST_EXPONENT,
    location_exponents,
    region_slope_exponent,
    scale_exponent,
    scaling_power,
)
from impactmodel.bayes.sampling import BuiltModel, _free_names

CHOL = np.array([[1.2, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.5]])


def _predictor(rng, n=7, groups=3, profiles=4):  # type: ignore[no-untyped-def]
    """G, S, C, group, profile, w, x of a small predictor (3 impacts, 2 practices, 4
    covariates; w and x per profile)."""
    return (rng.normal(size=(groups, 3)), rng.normal(size=(groups, 2)),
            rng.normal(size=(3, 4)), rng.integers(0, groups, n),
            rng.integers(0, profiles, n), rng.normal(size=(profiles, 4)),
            rng.normal(size=(profiles, 2)))


def _mu(g_mean, g_slope, coef, group, profile, w, x):  # type: ignore[no-untyped-def]
    """mu_i = G[g_i] + C w_i + (x_i . S[g_i]) 1, one respondent at a time."""
    return np.array([g_mean[g] + coef @ w[p] + x[p] @ g_slope[g]
                     for g, p in zip(group, profile, strict=True)])


def _located_and_density(rng, exponent, mean_exponent=0.0):  # type: ignore[no-untyped-def]
    """Functions of (v, G, S, C, chol) giving l and v's density, for a small predictor."""
    g_mean, g_slope, coef, group, profile, w, x = _predictor(rng)
    value, chol = pt.matrix("v", shape=(None, 3)), pt.matrix("chol", shape=(3, 3))
    parameters = [pt.matrix(n, shape=(None, k)) for n, k in
                  (("G", 3), ("S", 2), ("C", 4))]
    predictor = LocationPredictor(*parameters, *map(pt.as_tensor, (group, profile, w, x)))
    density, located = scaled_locations(value, predictor, chol, exponent=exponent,
                                        mean_exponent=mean_exponent)
    return ([value, *parameters, chol], density, located,
            (g_mean, g_slope, coef), (group, profile, w, x))


def test_scaling_power_is_the_symmetric_fractional_power():
    power = pytensor.function([], scaling_power(pt.as_tensor(CHOL), 0.4))()
    np.testing.assert_allclose(
        power, linalg.fractional_matrix_power(CHOL @ CHOL.T, 0.2).real, rtol=1e-12)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize(("exponent", "mean_exponent"), [(0.4, 0.0), (0.4, 0.6), (0.0, 0.6)])
def test_locations_and_density_are_the_formula_plus_the_log_jacobian(mode, exponent,
                                                                     mean_exponent):
    """l = mu + Sigma^(w/2) (v - (1 - w_mu) mu); v's density is the locations'
    multivariate normal (scipy) at l plus log |det dl/dv| (finite differences)."""
    rng = np.random.default_rng(3)
    inputs, density, located, parameters, data = _located_and_density(rng, exponent,
                                                                      mean_exponent)
    f = pytensor.function(inputs, [density, located], mode=mode)
    point = rng.normal(size=(7, 3))
    mu = _mu(*parameters, *data)
    got_density, got_located = f(point, *parameters, CHOL)
    power = linalg.fractional_matrix_power(CHOL @ CHOL.T, exponent / 2).real
    np.testing.assert_allclose(got_located, mu + (point - (1 - mean_exponent) * mu) @ power.T,
                               rtol=1e-12, atol=1e-12)
    step = 1e-6
    jacobian = np.column_stack([
        (f(point + step * e.reshape(7, 3), *parameters, CHOL)[1]
         - f(point - step * e.reshape(7, 3), *parameters, CHOL)[1]).ravel() / (2 * step)
        for e in np.eye(21)])
    normal = sum(stats.multivariate_normal(mu[i], CHOL @ CHOL.T).logpdf(got_located[i])
                 for i in range(7))
    assert got_density == pytest.approx(
        normal + np.log(abs(np.linalg.det(jacobian))), rel=1e-9)


@pytest.mark.parametrize("mean_exponent", [0.0, 0.6])
def test_gradients_agree_with_finite_differences(mean_exponent):
    """Through the one pass's locations and density, in the values, the predictor's
    parameters and (through eigh) the covariance factor."""
    rng = np.random.default_rng(5)
    inputs, density, located, parameters, _ = _located_and_density(rng, 0.3, mean_exponent)
    term = pytensor.function(inputs, density + pt.sum(pt.sin(located)), mode="NUMBA")
    gradient = pytensor.function(
        inputs, pytensor.grad(density + pt.sum(pt.sin(located)), inputs), mode="NUMBA")
    point = [rng.normal(size=(7, 3)), *parameters, CHOL]
    step = 1e-6
    for which, analytic in enumerate(gradient(*point)):
        for position in np.ndindex(np.shape(point[which])):
            up, down = [np.array(v, dtype=float) for v in point], [
                np.array(v, dtype=float) for v in point]
            up[which][position] += step
            down[which][position] -= step
            numeric = (term(*up) - term(*down)) / (2 * step)
            np.testing.assert_allclose(analytic[position], numeric, rtol=1e-5, atol=1e-6,
                                       err_msg=f"input {which} {position}")


def test_scale_exponent_is_the_prior_share_left_rounded_and_capped():
    # 30 answers: 1 / (1 + 30 x 0.3) = 0.1; 2 answers: 1 / 1.6 = 0.625 -> the cap
    assert scale_exponent(np.array([[30, 30, 30]])) == pytest.approx(0.1)
    assert scale_exponent(np.array([[2, 2], [2, 2]])) == LARGEST_EXPONENT
    # mean of 1/(1 + 0.3 n) over n = 10, 20: (0.25 + 1/7) / 2 = 0.196 -> 0.2
    assert scale_exponent(np.array([10, 20])) == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    predictor = LocationPredictor(*map(pt.as_tensor, _predictor(rng)))
    with pm.Model(), pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        respondent_locations("l", predictor, pt.as_tensor(CHOL), dims=("r", "m"),
                             exponent=1.5)
    with pm.Model(), pytest.raises(ValueError,
                                   match=r"mean exponent must be in \[0, 1\], got -0.1"):
        respondent_locations("l", predictor, pt.as_tensor(CHOL), dims=("r", "m"),
                             mean_exponent=-0.1)


def test_location_exponents_cap_the_scale_below_the_size_and_not_from_it():
    """4 answers per respondent and impact leave 1 / (1 + 4 x 0.3) = 0.4545 of the
    prior variance (-> 0.45): capped at 0.3 and centred in the mean for a small survey;
    0.45 for both from LARGE_SURVEY_FROM respondents."""
    assert LARGE_SURVEY_FROM == 27_000
    small = np.full((LARGE_SURVEY_FROM - 1, 3), 4)
    large = np.full((LARGE_SURVEY_FROM, 3), 4)
    assert location_exponents(small) == (LARGEST_EXPONENT, 0.0)
    assert location_exponents(large) == pytest.approx((0.45, 0.45))
    # a share below the cap is the same either way: 10 answers, 1 / 4 = 0.25
    assert location_exponents(np.full((100, 3), 10)) == pytest.approx((0.25, 0.0))
    assert location_exponents(np.full((LARGE_SURVEY_FROM, 3), 10)) == pytest.approx(
        (0.25, 0.25))


def test_region_slope_exponent_is_the_prior_share_left_by_hand():
    """Region 0: two respondents with x = +-2 and 10 answers to each of two impacts
    (each impact: 1 / (1 + 1 / (10 x 0.3)) = 0.75), so I = 2 x 4 x 1.5 = 12; region 1:
    one respondent with x = 1 and 10 answers to one impact, I = 0.75; region 2: nobody,
    I = 0. With a slope sd of 0.5 the shares are 1 / (1 + 0.25 I): 0.25, 0.8421, 1."""
    x = np.array([[2.0], [-2.0], [1.0]])
    answers = np.array([[10, 10, 0], [10, 0, 10], [0, 10, 0]])
    region = np.array([0, 0, 1])
    # regions 0 and 1: mean 0.5461 -> 0.55; with region 2: mean 0.6974 -> 0.7
    assert region_slope_exponent(x, answers, region, 2, slope_sd=0.5) == pytest.approx(0.55)
    assert region_slope_exponent(x, answers, region, 3, slope_sd=0.5) == pytest.approx(0.7)
    # the trait's variance adds to each location's: 2 x 1 / (3 + 1/3) = 0.6 per
    # respondent of region 0, I = 4.8 -> share 1 / 2.2; region 1: 0.3, share 1 / 1.075;
    # mean 0.6924 -> 0.7
    assert region_slope_exponent(x, answers, region, 2, slope_sd=0.5,
                                 trait_variance=3.0) == pytest.approx(0.7)
    # a second practice, zero for everyone: its shares are 1, mean (0.25 + 0.8421 + 2) / 4
    two = np.column_stack([x, np.zeros(3)])
    assert region_slope_exponent(two, answers, region, 2, slope_sd=0.5) == pytest.approx(0.75)


# a bivariate normal-normal model: l_i ~ N(G, Sigma), y_i ~ N(l_i, S^2 I), Sigma with
# half-normal(1) sds and an LKJ(2) correlation (density proportional to 1 - rho^2)
N, G, S = 50, np.array([0.7, -0.2]), 0.8
TRUE_COV = np.array([[1.0, 0.42], [0.42, 0.49]])  # sds 1 and 0.7, correlation 0.6
Y = np.random.default_rng(4).multivariate_normal(G, TRUE_COV + S**2 * np.eye(2), N)


def _exact() -> dict[str, float]:
    """Posterior means of the sds, the correlation and respondent 0's location by
    midpoint quadrature over (sd_1, sd_2, rho); given Sigma, y_i ~ N(G, Sigma + S^2 I)
    and l_0's conditional mean is G + Sigma (Sigma + S^2 I)^-1 (y_0 - G)."""
    width_sd, width_rho = 3.0 / 150, 2.0 / 150
    sd = (np.arange(150) + 0.5) * width_sd
    rho = -1 + (np.arange(150) + 0.5) * width_rho
    s1, s2, r = np.meshgrid(sd, sd, rho, indexing="ij")
    a, b, c = s1**2 + S**2, s2**2 + S**2, r * s1 * s2  # Sigma + S^2 I = [[a, c], [c, b]]
    det = a * b - c**2
    scatter = (Y - G).T @ (Y - G)
    quadratic = (b * scatter[0, 0] + a * scatter[1, 1] - 2 * c * scatter[0, 1]) / det
    log_density = (stats.halfnorm.logpdf(s1) + stats.halfnorm.logpdf(s2)
                   + np.log1p(-r**2) - N / 2 * np.log(det) - quadratic / 2)
    weight = np.exp(log_density - log_density.max())
    weight /= weight.sum()
    d = Y[0] - G
    # Sigma (Sigma + S^2 I)^-1 d = d - S^2 (Sigma + S^2 I)^-1 d
    inverse_d = np.stack([b * d[0] - c * d[1], a * d[1] - c * d[0]]) / det
    location = G[:, None, None, None] + d[:, None, None, None] - S**2 * inverse_d
    return {"sd_1": np.sum(weight * s1), "sd_2": np.sum(weight * s2),
            "rho": np.sum(weight * r), "l0_1": np.sum(weight * location[0]),
            "l0_2": np.sum(weight * location[1])}


def _normal_normal(exponent: float, mean_exponent: float = 0.0) -> BuiltModel:
    coords = {"respondent": range(N), "impact": ["a", "b"], "impact_bis": ["a", "b"]}
    with pm.Model(coords=coords) as model:
        chol = trait_covariance(1.0, 2.0, 2)
        predictor = LocationPredictor(
            pt.as_tensor(G[None, :]), pt.zeros((1, 1)), pt.zeros((2, 1)),
            pt.as_tensor(np.zeros(N, dtype=np.int64)), pt.as_tensor(np.zeros(N, dtype=np.int64)),
            pt.as_tensor(np.zeros((1, 1))), pt.as_tensor(np.zeros((1, 1))))
        location = respondent_locations("location", predictor, chol,
                                        dims=("respondent", "impact"), exponent=exponent,
                                        mean_exponent=mean_exponent)
        pm.Normal("y", location, S, observed=Y)
    return BuiltModel(model, {}, ("test_partial_scaling", exponent, mean_exponent),
                      stand_ins=(("location_scaled", "location"),))


@pytest.mark.parametrize(("exponent", "mean_exponent"), [(0.3, 0.0), (1.0, 0.0), (0.45, 0.45)])
def test_sampled_posterior_matches_quadrature(exponent, mean_exponent):
    """The same posterior whatever w and w_mu: within 4 Monte Carlo SEs (+ 0.005) of
    quadrature."""
    built = _normal_normal(exponent, mean_exponent)
    assert "location_scaled" in [v.name for v in built.model.free_RVs]
    fit = sample_model(built, SamplerSettings(draws=1000, tune=500, chains=4, seed=7))
    posterior = fit.idata["posterior"]
    # the sampler's coordinates are left out of the draws, the locations checked instead
    assert "location_scaled" not in posterior.data_vars
    checked = _free_names(built.model, built.stand_ins)
    assert "location" in checked and "location_scaled" not in checked
    draws = {"sd_1": posterior["trait_sd"].isel(impact=0),
             "sd_2": posterior["trait_sd"].isel(impact=1),
             "rho": posterior["trait_correlation"].isel(impact=0, impact_bis=1),
             "l0_1": posterior["location"].isel(respondent=0, impact=0),
             "l0_2": posterior["location"].isel(respondent=0, impact=1)}
    for name, expected in _exact().items():
        values = np.asarray(draws[name])
        mcse = float(az.mcse(values, method="mean"))
        assert abs(values.mean() - expected) <= 4 * mcse + 0.005, (name, expected)
