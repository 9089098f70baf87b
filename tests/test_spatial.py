"""BYM2 department effects: graph components, ICAR scaling, the implied prior covariance.

Expected values are worked by hand: the Laplacian of a path a - b - c has eigenvalues
0, 1, 3 with eigenvectors (1, 0, -1)/sqrt2 and (1, -2, 1)/sqrt6, so its generalised
inverse is v1 v1' + v3 v3' / 3 (diagonal 5/9, 2/9, 5/9); that of a pair is
[[1, -1], [-1, 1]] / 4.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from impactmodel.bayes.spatial import adjacency_graph, bym2_deviations, icar_scaling
from impactmodel.territories import adjacency, department_codes

TOY = ["a", "b", "c", "d", "e", "f"]
TOY_PAIRS = [("a", "b"), ("c", "b"), ("d", "e")]  # path a-b-c, pair d-e, f alone

PATH_INVERSE = (np.array([[0.5, 0.0, -0.5], [0.0, 0.0, 0.0], [-0.5, 0.0, 0.5]])
                + np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]]) / 18)
PATH_SCALING = (5 / 9 * 2 / 9 * 5 / 9) ** (1 / 3)


def test_toy_graph_components_and_scaling_factors():
    graph = adjacency_graph(TOY, TOY_PAIRS)
    assert graph.pairs.tolist() == [[0, 1], [1, 2], [3, 4]]
    assert len(set(graph.component[:3])) == 1 and graph.component[3] == graph.component[4]
    assert graph.singleton.tolist() == [False] * 5 + [True]
    np.testing.assert_allclose(graph.scaling, [PATH_SCALING] * 3 + [0.25, 0.25, 1.0])
    np.testing.assert_allclose(icar_scaling(graph.laplacian()[:3, :3]), PATH_SCALING)
    # the ICAR root: R R' is the generalised inverse of each component's Laplacian over
    # its scaling factor, zero for a department alone
    root = graph.icar_root()
    expected = np.zeros((6, 6))
    expected[:3, :3] = PATH_INVERSE / PATH_SCALING
    expected[3:5, 3:5] = np.array([[1.0, -1.0], [-1.0, 1.0]])
    np.testing.assert_allclose(root @ root.T, expected, atol=1e-12)
    assert root.shape == (6, 3)


def test_french_departments_graph_has_the_mainland_corsica_and_five_islands():
    graph = adjacency_graph(department_codes(), adjacency())
    sizes = sorted(np.bincount(graph.component).tolist())
    assert sizes == [1, 1, 1, 1, 1, 2, 94]
    alone = [d for d, s in zip(department_codes(), graph.singleton, strict=True) if s]
    assert alone == ["971", "972", "973", "974", "976"]
    corsica = graph.component[list(department_codes()).index("2A")]
    assert graph.component[list(department_codes()).index("2B")] == corsica
    with pytest.raises(ValueError, match="not in the model"):
        adjacency_graph(["01", "02"], [("01", "99")])


def test_bym2_prior_covariance_matches_the_formula_on_a_toy_graph():
    """With sd 1 and rho uniform (mean 1/2), the deviations' prior covariance is
    (Q+ / s + I) / 2 per component (Q+ the hand-computed generalised inverse, s the
    scaling factor) and 1 for a department alone; the structured part sums to zero within
    each component. Checked on 4,000 NUTS draws of the prior."""
    graph = adjacency_graph(TOY, TOY_PAIRS)
    with pm.Model(coords={"department": TOY, "impact": ["trust"]}):
        pm.Deterministic(
            "deviation", bym2_deviations("u_department", graph, 1.0, "impact")[0],
            dims="department")
        idata = pm.sample(draws=2000, tune=1000, chains=2, random_seed=3, progressbar=False,
                          compute_convergence_checks=False)
    draws = idata.posterior["deviation"].stack(sample=("chain", "draw")).values.T
    expected = np.zeros((6, 6))
    expected[:3, :3] = PATH_INVERSE / PATH_SCALING
    expected[3:5, 3:5] = np.array([[1.0, -1.0], [-1.0, 1.0]])
    expected[5, 5] = 1.0
    expected = (expected + np.eye(6)) / 2
    np.testing.assert_allclose(np.cov(draws, rowvar=False), expected, atol=0.12)
    icar = idata.posterior["u_department_icar"]
    assert icar.sizes["u_department_icar_basis"] == 3  # 2 + 1 free dimensions: path, pair


def test_scale_score_model_with_bym2_department_intercepts():
    """The model builds with BYM2 department deviations over a toy adjacency of the
    synthetic data's 25 departments, and its department deviations are the region's
    plus the BYM2 effect."""
    from test_bayes_scale_scores import synthetic

    from impactmodel.bayes.gaussian import scale_score_model

    data, _ = synthetic(n=80)
    departments = data.coords["department"]
    pairs = [(departments[k], departments[k + 1]) for k in range(0, 20)]  # a long path
    graph = adjacency_graph(departments, pairs)  # 21 on a path, 4 alone
    model = scale_score_model(data, spatial=graph).model
    names = {v.name for v in model.free_RVs}
    assert {"u_department_rho", "u_department_icar", "u_department_iid",
            "u_department_alone"} <= names
    assert "u_department_own" not in names and "u_department_z" not in names
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in model.initial_point().items()}
    assert np.isfinite(model.compile_logp()(point))
    names = ["u_department", "u_region", "u_department_rho", "u_department_scale",
             "u_department_icar", "u_department_iid", "u_department_alone"]
    outputs = model.replace_rvs_by_values([model[n] for n in names])
    u, region, rho, scale, icar, iid, alone = model.compile_fn(
        outputs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True)(point)
    structured = icar @ graph.icar_root().T
    structured[:, graph.singleton] += alone
    own = scale * (np.sqrt(rho) * structured + np.sqrt(1 - rho) * iid)
    np.testing.assert_allclose(u, region[:, data.department_region] + own, rtol=1e-10)
    on_path = ~graph.singleton
    np.testing.assert_allclose(structured[:, on_path].sum(axis=1), 0.0, atol=1e-10)


def test_simulated_icar_field_has_the_hand_computed_covariance():
    """The simulator's spatially structured department effects (``spatial_share``):
    covariance Q+ / s within a component (hand-computed), 1 alone, 0 across components."""
    from impactmodel.simulate.outcomes import icar_field

    graph = adjacency_graph(TOY, TOY_PAIRS)
    field = icar_field(np.random.default_rng(2), graph, 40_000)
    expected = np.zeros((6, 6))
    expected[:3, :3] = PATH_INVERSE / PATH_SCALING
    expected[3:5, 3:5] = np.array([[1.0, -1.0], [-1.0, 1.0]])
    expected[5, 5] = 1.0
    np.testing.assert_allclose(np.cov(field), expected, atol=0.03)
    np.testing.assert_allclose(field[:3].sum(axis=0), 0.0, atol=1e-10)


def test_simulator_spatial_share_makes_neighbouring_departments_alike():
    from impactmodel.simulate import SimulationSettings, finite_population

    pairs = adjacency_graph(department_codes(), adjacency()).pairs
    correlation = {}
    for share in (0.0, 1.0):
        census = finite_population(SimulationSettings(seed=4, respondents=400,
                                                      spatial_share=share))
        a = census.parameters["a_department"]  # departments x impacts
        correlation[share] = np.mean([np.corrcoef(a[pairs[:, 0], m], a[pairs[:, 1], m])[0, 1]
                                      for m in range(a.shape[1])])
    assert correlation[1.0] > 0.5 > 0.2 > abs(correlation[0.0]), correlation
