from __future__ import annotations

from pathlib import Path

import pytest

from impactmodel.simulate import Simulation, SimulationSettings, simulate

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "data" / "example"
MODELS = REPO / "models"


@pytest.fixture(scope="session")
def example_paths() -> tuple[Path, Path]:
    return EXAMPLE / "respondents.csv", EXAMPLE / "codebook.toml"


RUN_SPEC = """
[model]
name = "small"
[data]
respondents = "respondents.csv"
codebook = "codebook.toml"
[predictors]
practices = ["partners", "maturity"]
[sampler]
draws = 30
tune = 40
chains = 2
seed = {seed}
"""


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """A folder with survey files, two specifications differing in their seed, and a fit.

    Returns (folder, paths, survey, spec of seed 1, its fit): 500 simulated respondents,
    a tiny chain (not converged, which the report must say).
    """
    from impactmodel import load_survey
    from impactmodel.bayes.fit import fit_spec
    from impactmodel.simulate import write_simulation
    from impactmodel.specification import load_spec

    folder = tmp_path_factory.mktemp("project")
    paths = write_simulation(simulate(SimulationSettings(seed=5, respondents=500)), folder)
    for seed in (1, 2):
        (folder / f"seed{seed}.toml").write_text(RUN_SPEC.format(seed=seed), encoding="utf-8")
    survey = load_survey(paths["respondents"], paths["codebook"])
    spec = load_spec(folder / "seed1.toml")
    return folder, paths, survey, spec, fit_spec(spec, survey)


@pytest.fixture(scope="session")
def fitted_run(project, tmp_path_factory) -> Path:
    """The project's fit written as a run, with its report."""
    from impactmodel.runs import write_run

    _, paths, _, spec, fit = project
    return write_run(fit, spec, respondents=paths["respondents"], codebook=paths["codebook"],
                     root=tmp_path_factory.mktemp("results"), timings={"fit": 1.0})


@pytest.fixture(scope="session")
def small_simulation() -> Simulation:
    return simulate(SimulationSettings(seed=11, respondents=1200))


def potential_at_draw(model, posterior, chain: int, draw: int) -> float:
    """The model's likelihood Potential evaluated at one posterior draw."""
    import pytensor.tensor as pt

    point = {}
    for rv, value in zip(model.free_RVs, model.value_vars, strict=True):
        raw = posterior[rv.name].isel(chain=chain, draw=draw).values
        transform = model.rvs_to_transforms[rv]
        point[value.name] = (raw if transform is None else
                             transform.forward(pt.as_tensor_variable(raw),
                                               *rv.owner.inputs).eval())
    likelihood = next(p for p in model.potentials if p.name == "likelihood")
    potential = model.compile_fn(model.replace_rvs_by_values([likelihood])[0],
                                 inputs=model.value_vars, on_unused_input="ignore")
    return float(potential(point))
