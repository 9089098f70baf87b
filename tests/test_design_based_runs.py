"""`impactmodel fit` on a design-based specification: a versioned run of direct estimates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import MODELS
from typer.testing import CliRunner

from impactmodel import load_survey
from impactmodel.cli import app
from impactmodel.errors import ValidationError
from impactmodel.runs import diff_runs, list_runs, load_run
from impactmodel.specification import load_spec, parse_spec
from impactmodel.survey.impact import impact_score_table


@pytest.fixture(scope="module")
def design_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = CliRunner().invoke(app, ["fit", str(MODELS / "design-based.toml"), "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    (run,) = (out / "design-based").iterdir()
    return run


def test_design_based_run_holds_the_engines_estimates_through_the_gate(design_run,
                                                                        example_paths):
    run = load_run(design_run)
    assert run.posterior is None and run.manifest["run"]["status"] == "design-based"
    assert run.manifest["convergence"] is None and run.manifest["seed"] is None
    table = run.tables["domain_estimates"]
    engine = impact_score_table(load_survey(*example_paths), ["population", "region"],
                                lonely_psu="adjust")
    assert len(table) == len(engine)
    shown = table["status"].isin(["published", "unreliable"]).to_numpy()
    for column in ("estimate", "se", "ci_low", "ci_high"):
        np.testing.assert_allclose(table[column].to_numpy()[shown],
                                   engine[column].to_numpy()[shown], rtol=1e-12)
    assert (engine["n"].to_numpy()[~shown] < 11).sum() >= 1
    assert table.loc[~shown, "estimate"].isna().all()
    # secondary suppression: no population x score has exactly one suppressed region
    suppressed = ~shown
    per_group = pd.Series(suppressed).groupby([table["population"], table["cell"]]).sum()
    assert not (per_group == 1).any()
    cv = engine["se"] / engine["estimate"].abs()
    assert (table["status"][shown & (cv.to_numpy() > 0.30)] == "unreliable").all()


def test_design_based_run_has_a_report_and_is_listed_and_compared(design_run, tmp_path):
    manifest = json.loads((design_run / "manifest.json").read_text())
    assert "report/report.html" in manifest["files"]
    assert (design_run / "report" / "figures" / "ranked_region.png").is_file()
    page = (design_run / "report" / "report.html").read_text(encoding="utf-8")
    assert "Design-based estimates" in page and "95% confidence intervals" in page
    listed = list_runs(design_run.parents[1])
    assert list(listed["status"]) == ["design-based"]
    same = diff_runs(load_run(design_run), load_run(design_run))
    assert same["spec"] == {} and (same["estimates"]["shift"].dropna() == 0).all()
    shown = CliRunner().invoke(app, ["runs", "show", str(design_run)])
    assert shown.exit_code == 0 and "Design-based impact scores" in shown.output


def test_design_based_specifications_are_validated(tmp_path):
    spec = load_spec(MODELS / "design-based.toml")
    assert spec.method == "design-based" and spec.design.by == ("population", "region")
    with pytest.raises(ValidationError) as caught:
        parse_spec({"model": {"name": "d", "method": "design-based"},
                    "outcome": {"kind": "items"}, "sampler": {"draws": 10},
                    "design": {"lonely_psu": "drop", "level": 1.5}})
    text = str(caught.value)
    for expected in ("outcome.kind", "sampler", "design.lonely_psu", "design.level"):
        assert expected in text, expected
    with pytest.raises(ValidationError, match="design-based estimates only"):
        parse_spec({"model": {"name": "b"}, "design": {"by": ["population"]}})
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "d"\nmethod = "design-based"\n[design]\nby = ["sector"]\n',
                   encoding="utf-8")
    result = CliRunner().invoke(app, ["fit", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "sector" in result.output
    assert "Traceback" not in result.output and not list_runs(tmp_path / "out").shape[0]
