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
    potential = model.compile_fn(model.replace_rvs_by_values([model.potentials[0]])[0],
                                 inputs=model.value_vars, on_unused_input="ignore")
    return float(potential(point))
