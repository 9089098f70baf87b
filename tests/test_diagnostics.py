"""Vectorised convergence diagnostics against ArviZ's own, parameter by parameter.

ArviZ computes rank-normalised split R-hat and bulk / tail ESS (Vehtari et al. 2021) one
parameter at a time; :func:`impactmodel.bayes.diagnostics.array_diagnostics` computes the
same quantities for all parameters at once. ArviZ is the independent reference here.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from impactmodel.bayes.diagnostics import array_diagnostics, check_convergence


def _chains(rng: np.random.Generator, n_chain: int, n_draw: int, k: int) -> np.ndarray:
    """AR(1) chains with autocorrelations from 0 to 0.97, some offset between chains."""
    phi = np.linspace(0.0, 0.97, k)
    x = np.zeros((n_chain, n_draw, k))
    noise = rng.standard_normal((n_chain, n_draw, k))
    x[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n_draw):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    x += rng.normal(0, 0.3, (n_chain, 1, k)) * (np.arange(k) % 3 == 0)  # chains disagree
    x[:, :, 1] = np.round(x[:, :, 1])  # ties
    x[:, :, 2] = 1.5  # a constant
    x[:, :, 3] = np.exp(x[:, :, 3])  # skewed
    return x


def _arviz(x: np.ndarray, **kwargs: object) -> np.ndarray:
    ds = xr.Dataset({"p": (("chain", "draw", "k"), x)})
    function = az.rhat if not kwargs else az.ess
    return np.asarray(function(ds, **kwargs)["p"].values)


@pytest.mark.parametrize(("n_chain", "n_draw"), [(4, 200), (3, 77), (1, 60), (2, 5)])
def test_array_diagnostics_match_arviz(n_chain: int, n_draw: int) -> None:
    x = _chains(np.random.default_rng(n_draw), n_chain, n_draw, 24)
    x[n_chain - 1, 3, 5] = np.nan
    rhat, bulk, tail = array_diagnostics(x)
    with np.errstate(all="ignore"):  # ArviZ divides by zero for the constant
        expected = [_arviz(x), _arviz(x, method="bulk"), _arviz(x, method="tail")]
    for name, got, want in zip(("rhat", "bulk", "tail"), (rhat, bulk, tail), expected,
                               strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True, err_msg=name)
    assert np.isnan(bulk[5]) and np.isnan(tail[5])
    if n_chain == 1:
        assert np.isnan(rhat).all()
    else:
        assert np.isnan(rhat[5]) and np.isfinite(rhat[6:]).all()


def test_array_diagnostics_match_arviz_on_random_walks() -> None:
    # autocorrelations stay positive over many lags: Geyer's sequence runs far, and for
    # some parameters to its last pair (the autocovariances are summed lag by lag)
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.standard_normal((4, 120, 10)), axis=1)
    x[:, :, 5:] += np.linspace(0.0, 30.0, 120)[None, :, None]  # and a trend
    rhat, bulk, tail = array_diagnostics(x)
    expected = [_arviz(x), _arviz(x, method="bulk"), _arviz(x, method="tail")]
    for name, got, want in zip(("rhat", "bulk", "tail"), (rhat, bulk, tail), expected,
                               strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=name)


def test_check_convergence_names_the_worst_parameter() -> None:
    rng = np.random.default_rng(0)
    good = rng.standard_normal((4, 500, 3))
    bad = rng.standard_normal((4, 500))
    bad[0] += 3.0  # one chain elsewhere
    posterior = xr.Dataset(
        {"a": (("chain", "draw", "cell"), good, {"cell": ["x", "y", "z"]}),
         "b": (("chain", "draw"), bad)},
        coords={"chain": range(4), "draw": range(500)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 500), bool))},
                       coords={"chain": range(4), "draw": range(500)})
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    result = check_convergence(tree)
    assert not result.converged
    assert result.max_rhat == pytest.approx(_arviz(bad[:, :, None])[0], rel=1e-10)
    assert "worst: b" in result.problems[0]
    assert check_convergence(tree, ["a"]).converged


def test_check_convergence_counts_the_parameters_that_miss() -> None:
    """Three of 40 coordinates have one chain 3 sd away (R-hat far above 1.01, bulk
    ESS a few dozen); the 37 others are iid over 4 x 2,000 draws (R-hat within 0.005 of
    1, bulk ESS near 8,000). A constant has no R-hat (NaN: counted nowhere) but an ESS
    (as in ArviZ: checked, and not missing)."""
    rng = np.random.default_rng(1)
    draws = rng.standard_normal((4, 2000, 40))
    draws[0, :, [3, 17, 29]] += 3.0
    constant = np.ones((4, 2000))
    posterior = xr.Dataset({"a": (("chain", "draw", "k"), draws),
                            "c": (("chain", "draw"), constant)},
                           coords={"chain": range(4), "draw": range(2000)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 2000), bool))},
                       coords={"chain": range(4), "draw": range(2000)})
    result = check_convergence(xr.DataTree.from_dict({"posterior": posterior,
                                                      "sample_stats": stats}))
    rhat, bulk = result.problems[0], result.problems[1]
    assert rhat.startswith("R-hat") and "at 3 of 40 parameters" in rhat
    assert bulk.startswith("bulk ESS") and "at 3 of 41 parameters" in bulk


def _ar1_tree(rng: np.random.Generator, phi: float, n_draw: int) -> xr.DataTree:
    """Four stationary AR(1) chains of one parameter, no divergence."""
    x = np.zeros((4, n_draw))
    noise = rng.standard_normal((4, n_draw))
    x[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n_draw):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    coords = {"chain": range(4), "draw": range(n_draw)}
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset({"p": (("chain", "draw"), x)}, coords=coords),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"),
                                                  np.zeros((4, n_draw), bool))},
                                   coords=coords)})


def test_a_short_ess_says_how_many_draws_would_reach_the_threshold() -> None:
    """AR(1) with phi = 0.9: the ESS of the mean is (1 - phi) / (1 + phi) = 1/19 of the
    draws (the textbook integrated autocorrelation time), so 4 x 2,000 draws give about
    421 and 2,000 needs about 9,500 draws per chain. The advice, estimated from the short
    run, is within 20 % of that, and chains of the advised length do reach about 2,000."""
    from impactmodel.bayes.diagnostics import Thresholds

    limits = Thresholds(min_ess_bulk=2000.0, min_ess_tail=1.0)
    rng = np.random.default_rng(4)
    short = check_convergence(_ar1_tree(rng, 0.9, 2000), thresholds=limits)
    (problem,) = [p for p in short.problems if p.startswith("bulk ESS")]
    advised = int(problem.split("about ")[1].split(" draws")[0].replace(",", ""))
    assert 0.8 * 9500 <= advised <= 1.2 * 9500, problem
    longer = check_convergence(_ar1_tree(rng, 0.9, advised), thresholds=limits)
    assert 0.8 * 2000 <= longer.min_ess_bulk <= 1.25 * 2000
    assert "draws per chain" not in "".join(check_convergence(
        _ar1_tree(rng, 0.9, 2000)).problems)  # ESS above 400: nothing to advise
