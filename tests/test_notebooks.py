"""Every notebook's code cells run top to bottom against the current package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            # the project's own notebook, not user input
            exec(compile("".join(cell["source"]), path.name, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    monkeypatch.chdir(path.parent)
    run_notebook(path)


def test_example_notebook_weighted_scores_are_near_the_truth(monkeypatch):
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    monkeypatch.chdir(path.parent)
    comparison = run_notebook(path)["comparison"]
    assert set(comparison["population"]) == {"citizen", "elected", "business", "association"}
    error = (comparison["weighted"] - comparison["truth"]).abs()
    assert error.max() < 5.0  # points on the 0-100 scale; scores' sampling SE is ~1-2
