"""The respondents' locations: their prior and the sums of the department slopes, in one pass.

Checked against independent computations: scipy's multivariate normal density and a
predictor assembled term by term; the numba loops against the numpy versions on a larger
case; derivatives against central finite differences; draws against the stated mean
and covariance (40,000 draws: a mean's standard error is about 0.006 here, tolerances
five times that).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.stats import multivariate_normal

from impactmodel.bayes.locations import (
    _SIZE_PLACES,
    DATA,
    PARAMETERS,
    LocationPredictor,
    Sizes,
    _sizes_hold,
    location_sums,
    precision_and_weight,
    respondent_locations,
    respondent_profiles,
)

N_RESP, N_IMPACTS, N_GROUPS, N_PRACTICES, N_COVARIATES = 7, 3, 4, 2, 3
#: respondents share profiles (rows of covariates and practices): fewer than respondents
N_PROFILES = 5
CHOL = np.array([[1.2, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.5]])


def _case(seed: int, n: int = N_RESP, n_profiles: int = N_PROFILES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"value": rng.normal(0, 1, (n, N_IMPACTS)),
            "group_mean": rng.normal(0, 1, (N_GROUPS, N_IMPACTS)),
            "group_slope": rng.normal(0, 1, (N_GROUPS, N_PRACTICES)),
            "coefficients": rng.normal(0, 1, (N_IMPACTS, N_COVARIATES)),
            "group": rng.integers(0, N_GROUPS, n),
            "profile": rng.integers(0, n_profiles, n),
            "covariates": rng.normal(0, 1, (n_profiles, N_COVARIATES)),
            "practices": rng.normal(0, 1, (n_profiles, N_PRACTICES))}


def _respondent_practices(case: dict[str, np.ndarray]) -> np.ndarray:
    """Each respondent's row of practices (respondents x practices)."""
    return np.array([case["practices"][p] for p in case["profile"]])


def _mean_term_by_term(case: dict[str, np.ndarray]) -> np.ndarray:
    mean = np.empty((len(case["group"]), N_IMPACTS))
    for i, (g, p) in enumerate(zip(case["group"], case["profile"], strict=True)):
        for m in range(N_IMPACTS):
            mean[i, m] = (case["group_mean"][g, m]
                          + sum(case["coefficients"][m, c] * case["covariates"][p, c]
                                for c in range(N_COVARIATES))
                          + sum(case["practices"][p, s] * case["group_slope"][g, s]
                                for s in range(N_PRACTICES)))
    return mean


def _function(mode: str, b_weights: np.ndarray, c_weights: np.ndarray | None = None,
              mean_share: float = 1.0) -> pytensor.compile.Function:
    """``Q, H, l, a Q + sum(B * H) + sum(C * l)`` and the latter's gradient w.r.t. every
    parameter (``C`` zero when left out), for ``l_i = mu_i + K (v_i - c mu_i)``."""
    # the loops are built for the sizes the static shapes fix (locations.Sizes)
    shapes = {"value": (None, N_IMPACTS), "group_mean": (None, N_IMPACTS),
              "group_slope": (None, N_PRACTICES), "coefficients": (None, N_COVARIATES),
              "precision": (None, None)}
    parameters = ([pt.tensor(n, dtype="float64", shape=shape) for n, shape in shapes.items()]
                  + [pt.dvector("weight"), pt.dmatrix("scaling")])
    data = [pt.lvector("group"), pt.lvector("profile"), pt.dmatrix("covariates"),
            pt.dmatrix("practices")]
    predictor = LocationPredictor(parameters[1], parameters[2], parameters[3], *data)
    quadratic, by_group, located = location_sums(parameters[0], predictor, parameters[4],
                                                 parameters[5], parameters[6], mean_share)
    total = 0.7 * quadratic + pt.sum(pt.as_tensor_variable(b_weights) * by_group)
    if c_weights is not None:
        total = total + pt.sum(pt.as_tensor_variable(c_weights) * located)
    return pytensor.function(parameters + data,
                             [quadratic, by_group, located, total,
                              *pytensor.grad(total, parameters)],
                             mode=mode)


def _inputs(case: dict[str, np.ndarray], precision: np.ndarray, weight: np.ndarray,
            scaling: np.ndarray | None = None) -> list[np.ndarray]:
    return [case["value"], case["group_mean"], case["group_slope"], case["coefficients"],
            precision, weight, np.eye(N_IMPACTS) if scaling is None else scaling,
            case["group"], case["profile"], case["covariates"], case["practices"]]


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize(("scaled", "mean_share"), [(False, 1.0), (True, 1.0), (True, 0.35)])
def test_sums_equal_the_quadratic_form_and_group_sums_term_by_term(mode, scaled, mean_share):
    # with a scaling K (general, not symmetric), l_i = mu_i + K (v_i - c mu_i) and the
    # sums are of r_i = l_i - mu_i; without, the value is the locations
    case = _case(0)
    rng = np.random.default_rng(1)
    precision = rng.normal(0, 1, (N_IMPACTS, N_IMPACTS))  # not symmetric: general P
    weight = rng.normal(0, 1, N_IMPACTS)
    scaling = rng.normal(0, 1, (N_IMPACTS, N_IMPACTS)) if scaled else np.eye(N_IMPACTS)
    mean = _mean_term_by_term(case)
    located = np.array([mean[i] + scaling @ (case["value"][i] - mean_share * mean[i])
                        for i in range(N_RESP)])
    r = located - mean
    expected_q = sum(r[i] @ precision @ r[i] for i in range(N_RESP))
    expected_h = np.zeros((N_GROUPS, N_PRACTICES))
    for i, g in enumerate(case["group"]):
        expected_h[g] += (weight @ r[i]) * case["practices"][case["profile"][i]]
    out = _function(mode, np.zeros((N_GROUPS, N_PRACTICES)), mean_share=mean_share)(
        *_inputs(case, precision, weight, scaling))
    assert out[0] == pytest.approx(expected_q, rel=1e-12)
    np.testing.assert_allclose(out[1], expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[2], located, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
@pytest.mark.parametrize("mean_share", [1.0, 0.35, 0.0])
def test_derivatives_equal_finite_differences(mode, mean_share):
    case = _case(2)
    rng = np.random.default_rng(3)
    precision, weight = rng.normal(0, 1, (N_IMPACTS, N_IMPACTS)), rng.normal(0, 1, N_IMPACTS)
    scaling = rng.normal(0, 1, (N_IMPACTS, N_IMPACTS))
    b_weights = rng.normal(0, 1, (N_GROUPS, N_PRACTICES))
    f = _function(mode, b_weights, rng.normal(0, 1, (N_RESP, N_IMPACTS)), mean_share)
    inputs = _inputs(case, precision, weight, scaling)
    gradients = f(*inputs)[4:]
    step = 1e-6
    for which in range(7):
        assert gradients[which].shape == inputs[which].shape
        for position in np.ndindex(inputs[which].shape):
            up, down = [v.copy() for v in inputs], [v.copy() for v in inputs]
            up[which][position] += step
            down[which][position] -= step
            numeric = (f(*up)[3] - f(*down)[3]) / (2 * step)
            np.testing.assert_allclose(gradients[which][position], numeric, rtol=1e-6,
                                       atol=1e-7, err_msg=f"input {which} {position}")


@pytest.mark.parametrize("mean_share", [1.0, 0.35])
def test_numba_and_numpy_agree_on_a_larger_case(mean_share):
    case = _case(4, n=3000, n_profiles=40)
    rng = np.random.default_rng(5)
    precision, weight = rng.normal(0, 1, (N_IMPACTS, N_IMPACTS)), rng.normal(0, 1, N_IMPACTS)
    b_weights = rng.normal(0, 1, (N_GROUPS, N_PRACTICES))
    c_weights = rng.normal(0, 1, (3000, N_IMPACTS))
    inputs = _inputs(case, precision, weight, rng.normal(0, 1, (N_IMPACTS, N_IMPACTS)))
    numba_out = _function("NUMBA", b_weights, c_weights, mean_share)(*inputs)
    numpy_out = _function("FAST_COMPILE", b_weights, c_weights, mean_share)(*inputs)
    for a, b in zip(numba_out, numpy_out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_precision_and_weight_invert_the_covariance():
    precision, weight = pytensor.function([], precision_and_weight(pt.as_tensor(CHOL)))()
    covariance = CHOL @ CHOL.T
    np.testing.assert_allclose(precision, np.linalg.inv(covariance), rtol=1e-12)
    np.testing.assert_allclose(weight, np.linalg.solve(covariance, np.ones(3)), rtol=1e-12)


def test_locations_have_the_stated_multivariate_normal_prior():
    # density: against scipy at random points; draws: mean and covariance of 40,000;
    # the start: the means
    case = _case(6, n=5)
    mean = _mean_term_by_term(case)
    with pm.Model(coords={"respondent": range(5), "impact": range(3)}) as model:
        predictor = LocationPredictor(*(pm.math.constant(case[k]) for k in (
            "group_mean", "group_slope", "coefficients", "group", "profile", "covariates",
            "practices")))
        person = respondent_locations("person", predictor, pm.math.constant(CHOL),
                                      dims=("respondent", "impact"))
    value = case["value"]
    covariance = CHOL @ CHOL.T
    expected = sum(multivariate_normal(mean[r], covariance).logpdf(value[r]) for r in range(5))
    for mode in ("NUMBA", "FAST_COMPILE"):
        logp = model.compile_logp(vars=[person], mode=mode)({"person": value})
        assert logp == pytest.approx(expected, rel=1e-12)
    draws = np.asarray(pm.draw(person, draws=40_000, random_seed=20261205,
                               mode="FAST_COMPILE"))
    centred = draws - mean
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=0.03)
    for r in range(5):
        np.testing.assert_allclose(np.cov(centred[:, r].T), covariance, atol=0.04)
    np.testing.assert_allclose(model.initial_point()["person"], mean, rtol=1e-12)


def test_inputs_of_the_wrong_kind_are_refused():
    case = _case(0)
    predictor = LocationPredictor(case["group_mean"], case["group_slope"],
                                  case["coefficients"], case["group"].astype(float),
                                  case["profile"], case["covariates"], case["practices"])
    with pytest.raises(TypeError, match="group must hold integers"):
        location_sums(case["value"], predictor, np.eye(3), np.ones(3))
    predictor = LocationPredictor(case["group_mean"], case["group_slope"],
                                  case["coefficients"], case["group"],
                                  case["profile"].astype(float), case["covariates"],
                                  case["practices"])
    with pytest.raises(TypeError, match="profile must hold integers"):
        location_sums(case["value"], predictor, np.eye(3), np.ones(3))
    predictor = LocationPredictor(case["group_mean"], case["group_slope"],
                                  case["coefficients"], case["group"], case["profile"],
                                  case["covariates"], case["practices"])
    with pytest.raises(TypeError, match="weight must have 1 dimensions"):
        location_sums(case["value"], predictor, np.eye(3), np.eye(3))
    # a share of the mean outside K needs K: unscaled, the value is the locations
    with pytest.raises(ValueError, match=r"mean share other than 1 \(0.5\) needs the scaled"):
        location_sums(case["value"], predictor, np.eye(3), np.ones(3), mean_share=0.5)


def test_sizes_must_be_fixed_agree_and_hold_at_run_time():
    # the loops are compiled for the numbers of impacts, practices and covariates
    unknown = LocationPredictor(pt.dmatrix(), pt.dmatrix(), pt.dmatrix(), pt.lvector(),
                                pt.lvector(), pt.dmatrix(), pt.dmatrix())
    with pytest.raises(TypeError, match="number of impacts must be fixed"):
        location_sums(pt.dmatrix(), unknown, pt.dmatrix(), pt.dvector())
    case = _case(0)
    disagreeing = LocationPredictor(case["group_mean"][:, :2], case["group_slope"],
                                    case["coefficients"], case["group"], case["profile"],
                                    case["covariates"], case["practices"])
    with pytest.raises(TypeError, match=r"impacts .*found \[2, 3\]"):
        location_sums(case["value"], disagreeing, np.eye(3), np.ones(3))
    rng = np.random.default_rng(2)
    short_covariates = _inputs(case, np.eye(N_IMPACTS), np.ones(N_IMPACTS))
    short_covariates[9] = rng.normal(0, 1, (N_PROFILES, N_COVARIATES - 1))  # a column short
    small_precision = _inputs(case, np.eye(N_IMPACTS - 1), np.ones(N_IMPACTS))
    for mode in ("NUMBA", "FAST_COMPILE"):
        function = _function(mode, rng.normal(0, 1, (N_GROUPS, N_PRACTICES)))
        for inputs in (short_covariates, small_precision):
            with pytest.raises(ValueError, match="other sizes than the Op's"):
                function(*inputs)


@pytest.mark.parametrize("size,name,axis",
                         [(size, name, axis) for size, places in _SIZE_PLACES.items()
                          for name, axis in places])
def test_every_sized_axis_is_checked_by_both_backends(size, name, axis):
    # the numba loops' guard (_sizes_hold) lists its axes by hand: each axis of the table
    # must be in it, and in the numpy version's check, or a loop reads out of bounds
    case = _case(0)
    inputs = _inputs(case, np.eye(N_IMPACTS), np.ones(N_IMPACTS))
    sizes = Sizes(impacts=N_IMPACTS, practices=N_PRACTICES, covariates=N_COVARIATES)
    def hold(arrays):  # the guard reads every input but the groups and profiles
        return _sizes_hold(N_IMPACTS, N_PRACTICES, N_COVARIATES, *arrays[:7], *arrays[9:])
    assert hold(inputs)
    sizes.check(inputs)
    position = [n for n, _ in PARAMETERS + DATA].index(name)
    shape = list(np.shape(inputs[position]))
    shape[axis] += 1
    inputs[position] = np.ones(shape)
    assert not hold(inputs)
    with pytest.raises(ValueError, match=f"got .*{getattr(sizes, size) + 1}"):
        sizes.check(inputs)


def test_locations_with_integrated_department_slopes_have_the_marginal_prior():
    # the stacked residuals (respondent-major) are normal with covariance
    # I (x) Sigma + s^2 Z Z', Z a respondent's practices times their department's row of
    # the within-region contrast basis: density against scipy, draws' covariance
    from impactmodel.bayes.department_slopes import DepartmentSlopeDesign
    from impactmodel.bayes.effects import within_group_basis
    from impactmodel.bayes.locations import IntegratedSlopes

    case = _case(8, n=6)
    department_region = np.array([0, 0, 1, 1])
    group_department = np.array([0, 1, 2, 3])  # one population: groups are departments
    department = group_department[case["group"]]
    design = DepartmentSlopeDesign.of(_respondent_practices(case), department,
                                      department_region)
    scale = 0.8
    with pm.Model(coords={"respondent": range(6), "impact": range(3)}) as model:
        predictor = LocationPredictor(*(pm.math.constant(case[k]) for k in (
            "group_mean", "group_slope", "coefficients", "group", "profile", "covariates",
            "practices")))
        slopes = IntegratedSlopes(pm.math.constant(scale), pm.math.constant(group_department),
                                  pm.math.constant(design.eigenvalues),
                                  pm.math.constant(design.eigenvectors),
                                  pm.math.constant(design.basis))
        person = respondent_locations("person", predictor, pm.math.constant(CHOL),
                                      dims=("respondent", "impact"), slopes=slopes)
    basis = within_group_basis(department_region)
    z_rows = np.einsum("ip,ij->ipj", _respondent_practices(case),
                       basis[department]).reshape(6, -1)
    z = np.repeat(z_rows, 3, axis=0)
    covariance = np.kron(np.eye(6), CHOL @ CHOL.T) + scale**2 * z @ z.T
    mean = _mean_term_by_term(case)
    marginal = multivariate_normal(mean.ravel(), covariance)
    logp = model.compile_logp(vars=[person])({"person": case["value"]})
    assert logp == pytest.approx(marginal.logpdf(case["value"].ravel()), rel=1e-10)
    draws = np.asarray(pm.draw(person, draws=40_000, random_seed=20261206,
                               mode="FAST_COMPILE")).reshape(40_000, -1)
    np.testing.assert_allclose(draws.mean(axis=0), mean.ravel(), atol=0.05)
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.06)


def test_respondent_profiles_index_the_distinct_rows():
    rng = np.random.default_rng(9)
    covariates = rng.integers(0, 2, (200, 3)).astype(float)
    practices = rng.choice([-0.5, 0.5, 1.5], (200, 2))
    profile, profile_covariates, profile_practices = respondent_profiles(covariates, practices)
    assert profile.dtype == np.int64
    np.testing.assert_array_equal(profile_covariates[profile], covariates)
    np.testing.assert_array_equal(profile_practices[profile], practices)
    distinct = {tuple(row) for row in np.column_stack([covariates, practices])}
    assert len(profile_covariates) == len(distinct) < 200
    with pytest.raises(ValueError, match=r"shapes \(200, 3\) and \(199, 2\)"):
        respondent_profiles(covariates, practices[:199])
