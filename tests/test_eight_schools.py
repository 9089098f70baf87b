"""Eight schools through the package's sampling path against exact numerical integration.

The exact posterior (BDA3 §5.4, with the model's own priors): integrate over tau the
conditionally normal posterior of mu and theta_j. With mu ~ N(m0, s0^2),
y | tau ~ N(m0 1, diag(sigma^2 + tau^2) + s0^2 11'), and given tau
mu ~ N(mu_hat, V) with V^-1 = 1/s0^2 + sum 1/(sigma_j^2 + tau^2); theta_j has mean
w_j y_j + (1 - w_j) mu_hat and variance w_j sigma_j^2 + (1 - w_j)^2 V,
with w_j = tau^2 / (sigma_j^2 + tau^2).
"""

from __future__ import annotations

from dataclasses import replace

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

from impactmodel.bayes import SamplerSettings, sample_model, sampling
from impactmodel.bayes.hierarchical_normal import (
    HierarchicalNormalPriors,
    hierarchical_normal_model,
)
from impactmodel.bayes.sampling import BuiltModel, SamplingError

# ArviZ's centered_eight data (Rubin 1981): effects and standard errors
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss",
           "Lawrenceville", "St. Paul's", "Mt. Hermon"]
PRIORS = HierarchicalNormalPriors(mu_mean=0.0, mu_sd=5.0, tau_scale=5.0)


def exact_posterior() -> dict[str, tuple[float, ...]]:
    m0, s0 = PRIORS.mu_mean, PRIORS.mu_sd

    def log_marginal(tau: float) -> float:
        cov = np.diag(SIGMA**2 + tau**2) + s0**2
        return stats.multivariate_normal.logpdf(Y, mean=np.full(8, m0), cov=cov)

    def given_tau(tau: float):
        v_j = SIGMA**2 + tau**2
        v = 1 / (1 / s0**2 + np.sum(1 / v_j))
        mu_hat = v * (m0 / s0**2 + np.sum(Y / v_j))
        w = tau**2 / v_j
        theta_mean = w * Y + (1 - w) * mu_hat
        theta_var = w * SIGMA**2 + (1 - w) ** 2 * v
        return mu_hat, v, theta_mean, theta_var

    log_norm = log_marginal(5.0)

    def density(tau: float) -> float:
        prior = 2 / (np.pi * PRIORS.tau_scale * (1 + (tau / PRIORS.tau_scale) ** 2))
        return prior * np.exp(log_marginal(tau) - log_norm)

    def moment(f) -> float:
        return integrate.quad(lambda t: f(t) * density(t), 0, np.inf, limit=400)[0]

    z = moment(lambda t: 1.0)
    tau_mean = moment(lambda t: t) / z
    tau_sd = np.sqrt(moment(lambda t: t**2) / z - tau_mean**2)
    mu_mean = moment(lambda t: given_tau(t)[0]) / z
    mu_sd = np.sqrt(moment(lambda t: given_tau(t)[1] + given_tau(t)[0] ** 2) / z - mu_mean**2)
    theta_mean = np.array([moment(lambda t, j=j: given_tau(t)[2][j]) / z for j in range(8)])
    theta_sq = np.array([moment(lambda t, j=j: given_tau(t)[3][j] + given_tau(t)[2][j] ** 2)
                         / z for j in range(8)])
    return {"mu": (mu_mean, mu_sd), "tau": (tau_mean, tau_sd),
            "theta": (theta_mean, np.sqrt(theta_sq - theta_mean**2))}


@pytest.fixture(scope="module", params=[("diag", "euclidean"), ("low_rank", "euclidean"),
                                        ("diag", "microcanonical")])
def draws(request):
    """nutpie with each mass-matrix adaptation and each trajectory the package offers."""
    adaptation, trajectory = request.param
    model = hierarchical_normal_model(Y, SIGMA, SCHOOLS, PRIORS)
    return sample_model(model, SamplerSettings(draws=2000, tune=1000, chains=4, seed=20,
                                               target_accept=0.95, adaptation=adaptation,
                                               trajectory=trajectory))


def test_eight_schools_matches_numerical_integration(draws):
    exact = exact_posterior()
    summary = az.summary(draws.idata, var_names=["mu", "tau", "theta"], fmt="wide",
                         round_to="none")
    rows = {"mu": ["mu"], "tau": ["tau"], "theta": [f"theta[{s}]" for s in SCHOOLS]}
    for name, labels in rows.items():
        got = summary.loc[labels]
        mean, sd = (np.atleast_1d(v) for v in exact[name])
        # within Monte Carlo error: 4 MCSE (plus a hair for the tau tail's slower mixing)
        assert np.all(np.abs(got["mean"] - mean) <= 4 * got["mcse_mean"] + 0.02), name
        assert np.all(np.abs(got["sd"] - sd) <= 4 * got["mcse_sd"] + 0.02), name
    assert set(draws.idata["posterior"]["theta"].coords["group"].values) == set(SCHOOLS)


def test_convergence_is_reported(draws):
    c = draws.convergence
    assert c.max_rhat < 1.05
    assert c.min_ess_bulk > 100
    text = str(c)
    assert "R-hat" in text and "ESS" in text


def test_a_failed_check_names_the_worst_parameter(draws):
    """Shift one chain of one school's theta: R-hat fails and the message points at it."""
    import xarray as xr

    from impactmodel.bayes.diagnostics import check_convergence

    posterior = draws.idata["posterior"].ds.copy(deep=True)
    shifted = posterior["theta"].copy()
    school = str(shifted["group"].values[3])
    shifted.loc[{"chain": 0, "group": school}] += 40.0
    tree = xr.DataTree.from_dict({"posterior": posterior.assign(theta=shifted),
                                  "sample_stats": draws.idata["sample_stats"].ds})
    result = check_convergence(tree)
    assert not result.converged
    assert any(p.startswith("R-hat") and f"(worst: theta[{school}])" in p
               for p in result.problems), result.problems


def test_sampler_settings_are_checked():
    with pytest.raises(SamplingError, match="unknown adaptation 'dense'"):
        SamplerSettings(adaptation="dense")  # type: ignore[arg-type]
    with pytest.raises(SamplingError, match="needs the nutpie sampler"):
        SamplerSettings(sampler="pymc", adaptation="low_rank")
    with pytest.raises(SamplingError, match="draws must be positive"):
        SamplerSettings(draws=0)
    with pytest.raises(SamplingError, match="unknown trajectory 'riemannian'"):
        SamplerSettings(trajectory="riemannian")  # type: ignore[arg-type]
    with pytest.raises(SamplingError, match="'microcanonical' needs the nutpie sampler"):
        SamplerSettings(sampler="pymc", trajectory="microcanonical")
    with pytest.raises(SamplingError, match="unknown draw_storage 'tape'"):
        SamplerSettings(draw_storage="tape")  # type: ignore[arg-type]
    with pytest.raises(SamplingError, match="draw_storage 'disk' needs the nutpie sampler"):
        SamplerSettings(sampler="pymc", draw_storage="disk")


def test_draws_kept_on_disk_are_the_draws_kept_in_memory(tmp_path, monkeypatch):
    """Through a zarr store on disk or in nutpie's memory, one seed gives the same
    posterior (values, dimensions, labels), the same per-draw statistics and the same
    convergence report; the store is deleted once read, and ``auto`` goes to disk by
    the draws' size."""
    import tempfile

    import nutpie

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stored: list[bool] = []
    original = nutpie.sample

    def recording(*args, **kwargs):
        stored.append("zarr_store" in kwargs)
        return original(*args, **kwargs)

    def stores_left() -> list[str]:
        return [p.name for p in tmp_path.glob("impactmodel-draws-*")]

    monkeypatch.setattr(nutpie, "sample", recording)
    built = BuiltModel(hierarchical_normal_model(Y, SIGMA, SCHOOLS, PRIORS), {},
                       ("eight schools", "draw storage"))
    settings = SamplerSettings(draws=40, tune=40, chains=2, seed=5)
    memory = sample_model(built, replace(settings, draw_storage="memory"))
    disk = sample_model(built, replace(settings, draw_storage="disk"))
    assert stored == [False, True] and not stores_left()
    posterior = disk.idata["posterior"].ds
    assert "tau_log__" not in posterior  # the unconstrained copy, as in memory
    assert list(posterior["theta"].coords["group"].values) == SCHOOLS
    xr.testing.assert_equal(memory.idata["posterior"].ds, posterior)
    in_memory, on_disk = memory.idata["sample_stats"].ds, disk.idata["sample_stats"].ds
    assert {"diverging", "energy", "n_steps", "depth", "logp", "step_size"} <= set(
        on_disk.data_vars) <= set(in_memory.data_vars)
    for name in on_disk.data_vars:
        np.testing.assert_array_equal(on_disk[name].values, in_memory[name].values)
    assert disk.convergence == memory.convergence
    size = 8 * sampling._compiled(built).n_expanded * 2 * 40  # bytes: 2 chains x 40
    monkeypatch.setattr(sampling, "DISK_FROM_BYTES", size + 1)
    sample_model(built, settings)
    monkeypatch.setattr(sampling, "DISK_FROM_BYTES", size)
    sample_model(built, settings)
    assert stored[2:] == [False, True] and not stores_left()


def test_a_store_that_cannot_fit_is_refused_before_sampling(tmp_path, monkeypatch):
    """1,000 bytes free in the temporary folder: the fit stops before nutpie runs, and
    says how much room the draws need, where, and what to do."""
    import shutil
    import tempfile

    import nutpie

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))

    def never(*args, **kwargs):
        raise AssertionError("nutpie ran")

    monkeypatch.setattr(nutpie, "sample", never)
    built = BuiltModel(hierarchical_normal_model(Y, SIGMA, SCHOOLS, PRIORS), {},
                       ("eight schools", "draw storage"))
    with pytest.raises(SamplingError, match=rf"temporary folder {tmp_path}.*TMPDIR.*memory"):
        sample_model(built, SamplerSettings(draws=40, tune=40, chains=2, seed=5,
                                            draw_storage="disk"))
    assert not list(tmp_path.glob("impactmodel-draws-*"))


@pytest.mark.parametrize("trajectory", [None, "euclidean", "microcanonical"])
def test_trajectory_reaches_nutpie(trajectory, monkeypatch):
    """The chosen dynamics is nutpie's switch, whether the package calls nutpie (a
    ``BuiltModel``, whose own default applies when the settings leave it out) or PyMC
    does (a plain model, Euclidean by default)."""
    import nutpie

    calls = []
    original = nutpie.sample

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(nutpie, "sample", recording)
    model = hierarchical_normal_model(Y, SIGMA, SCHOOLS, PRIORS)
    settings = SamplerSettings(draws=20, tune=20, chains=1, seed=3, trajectory=trajectory)
    built = BuiltModel(model, {}, ("eight schools", "trajectory test"),
                       trajectory="microcanonical")
    for target, default in ((model, "euclidean"), (built, "microcanonical")):
        calls.clear()
        draws = sample_model(target, settings)
        applied = trajectory or default
        assert len(calls) == 1
        assert calls[0].get("microcanonical_trajectory", False) == (applied == "microcanonical")
        # recorded as applied
        assert draws.settings.trajectory == applied
    calls.clear()
    pymc = sample_model(model, SamplerSettings(sampler="pymc", draws=20, tune=20, chains=1,
                                               seed=3))
    assert not calls and pymc.settings.trajectory is None


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_tree_depth_cap_reaches_the_sampler(sampler):
    """``max_depth`` bounds every draw's tree (eight schools at target_accept 0.95 wants
    deeper trees than 2, so the cap binds) whichever NUTS runs."""
    model = hierarchical_normal_model(Y, SIGMA, SCHOOLS, PRIORS)
    settings = SamplerSettings(sampler=sampler, draws=60, tune=60, chains=1, seed=3,
                               target_accept=0.95, max_depth=2)
    stats = sample_model(model, settings).idata["sample_stats"]
    depth = stats["depth"] if "depth" in stats else stats["tree_depth"]
    assert int(depth.max()) == 2
    with pytest.raises(SamplingError, match="max_depth must be positive"):
        SamplerSettings(max_depth=0)
