from __future__ import annotations

from pathlib import Path

import pytest

from impactmodel.simulate import Simulation, SimulationSettings, simulate

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "data" / "example"


@pytest.fixture(scope="session")
def example_paths() -> tuple[Path, Path]:
    return EXAMPLE / "respondents.csv", EXAMPLE / "codebook.toml"


@pytest.fixture(scope="session")
def small_simulation() -> Simulation:
    return simulate(SimulationSettings(seed=11, respondents=1200))
