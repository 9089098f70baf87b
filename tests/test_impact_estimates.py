"""Design-based impact scores: formula check, coverage of the simulator's truth, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impactmodel import load_survey
from impactmodel.cli import app
from impactmodel.scores import impact_scores
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.survey.impact import TABLE_COLUMNS, impact_score_table

runner = CliRunner()


@pytest.fixture(scope="module")
def example(example_paths):
    return load_survey(*example_paths)


def test_point_estimates_are_weighted_means_of_scores(example):
    table = impact_score_table(example, ["population"], lonely_psu="adjust")
    scores = impact_scores(example)
    w = example.weight
    for pop in ("citizen", "business"):
        rows = example.population == pop
        for impact in ("performance", "trust"):
            ok = rows & scores[impact].notna()
            by_hand = np.average(scores.loc[ok, impact], weights=w[ok])
            got = table.query("population == @pop and cell == @impact")
            assert got["estimate"].item() == pytest.approx(by_hand, rel=1e-12)
            assert got["n"].item() == ok.sum()
    assert list(table.columns) == ["population", *TABLE_COLUMNS]
    # cells never asked of a population are absent, not zero
    citizen_cells = set(table.loc[table["population"] == "citizen", "cell"])
    assert not any(":organisation:" in c for c in citizen_cells)


def test_intervals_cover_the_finite_population_truth(tmp_path):
    """Short version of the coverage study (benchmarks/ runs the long one): 90% intervals
    of population x impact means over independent simulated surveys."""
    hits, total = 0, 0
    for seed in range(6):
        paths = write_simulation(simulate(SimulationSettings(seed=100 + seed, respondents=1600)),
                                 tmp_path / str(seed))
        survey = load_survey(paths["respondents"], paths["codebook"])
        table = impact_score_table(survey, ["population"], lonely_psu="adjust", level=0.9)
        truth = pd.DataFrame(json.loads(paths["truth"].read_text())["finite_population"]
                             ["by_population"])
        merged = table.merge(truth, left_on=["population", "cell"],
                             right_on=["population", "impact"])
        assert len(merged) == 12
        hits += int(((merged["ci_low"] <= merged["mean"])
                     & (merged["mean"] <= merged["ci_high"])).sum())
        total += len(merged)
    coverage = hits / total
    # 72 intervals: a binomial 90% rate falls in [0.78, 0.99] with probability > 0.99
    assert 0.78 <= coverage <= 0.99, coverage


def test_cli_estimate_writes_csv_and_parquet(tmp_path, example_paths):
    out = tmp_path / "est"
    result = runner.invoke(app, ["estimate", str(example_paths[0]), "--codebook",
                                 str(example_paths[1]), "--by", "population,region",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(out / "estimates.csv", dtype={"region": str})
    parquet = pd.read_parquet(out / "estimates.parquet")
    assert list(csv.columns) == ["population", "region", *TABLE_COLUMNS]
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    assert csv["region"].nunique() == 18
    assert not list(out.glob("*.partial"))


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "populaton"], "did you mean 'population'"),
    (["--lonely-psu", "drop"], "is not one of"),
    (["--level", "1.5"], "--level must be in"),
    (["--lonely-psu", "fail"], "only one PSU at stage 1"),
])
def test_cli_estimate_bad_options_exit_2(tmp_path, example_paths, args, message):
    result = runner.invoke(app, ["estimate", str(example_paths[0]), "--out",
                                 str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_output_folder_that_is_a_file_exits_2(tmp_path, example_paths):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    for args in (["estimate", str(example_paths[0]), "--out", str(blocker / "x")],
                 ["simulate", "--respondents", "500", "--out", str(blocker / "x")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "cannot write to" in result.output
