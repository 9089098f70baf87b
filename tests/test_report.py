"""The run report: its tables agree with the posterior, the page is self-contained, the
map's outlines are right, the command and the specification's options behave."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from typer.testing import CliRunner

from impactmodel.cli import app
from impactmodel.errors import ValidationError
from impactmodel.report import figures as figures_module
from impactmodel.report.build import ReportError, build_report
from impactmodel.report.maps import department_outlines, polygon_path
from impactmodel.report.options import ReportOptions
from impactmodel.runs import load_run
from impactmodel.specification import parse_spec
from impactmodel.territories import department_codes

SHOWN = ("published", "unreliable")


def test_population_effects_agree_with_the_posterior_draws(fitted_run):
    run = load_run(fitted_run)
    post = run.posterior["posterior"]
    cell = post["effect_cell"].values.mean(axis=(-2, -1))  # chain, draw, practice, impact
    own = post["effect_population"].values - post["b"].values[..., None]  # ..., practice, pop
    draws = (cell[:, :, :, None, :] + own[:, :, :, :, None]).reshape(
        -1, *own.shape[2:], cell.shape[-1])  # sample, practice, population, impact
    table = run.tables["effect_population_impact"]
    labels = {name: list(post[name].values) for name in ("practice", "population", "impact")}
    shown = table[table["status"].isin(SHOWN)]
    assert len(shown) > 0
    for row in shown.itertuples():
        values = draws[:, labels["practice"].index(row.practice),
                       labels["population"].index(row.population),
                       labels["impact"].index(row.impact)]
        assert row.mean == pytest.approx(values.mean(), rel=1e-9)
        assert row.low == pytest.approx(np.quantile(values, 0.05), rel=1e-9)
        assert row.high == pytest.approx(np.quantile(values, 0.95), rel=1e-9)
        assert row.prob_positive == pytest.approx((values > 0).mean())
    by_cell = run.tables["effect_population_cell"]
    shown = by_cell[by_cell["status"].isin(SHOWN)]
    assert len(by_cell) == 2 * 4 * 54 and len(shown) > 0
    effect = post["effect_cell"]
    for row in shown.sample(40, random_state=1).itertuples():
        values = (effect.sel(practice=row.practice, impact=row.impact, lens=row.lens,
                             dimension=row.dimension).values
                  + own[..., labels["practice"].index(row.practice),
                        labels["population"].index(row.population)]).ravel()
        assert row.mean == pytest.approx(values.mean(), rel=1e-9)
        assert row.high == pytest.approx(np.quantile(values, 0.95), rel=1e-9)


def test_report_tables_are_the_runs_gated_tables(fitted_run):
    run = load_run(fitted_run)
    report = fitted_run / "report"
    shown = pd.read_csv(report / "tables" / "expected_scores_department_citizen_performance.csv",
                        dtype={"department": str, "region": str})
    expected = run.tables["expected_scores_department"]
    expected = expected[(expected["population"] == "citizen")
                        & (expected["impact"] == "performance")]
    pd.testing.assert_frame_equal(shown.reset_index(drop=True),
                                  expected.reset_index(drop=True), check_dtype=False)
    assert len(shown) == 101 and shown["status"].str.startswith("suppressed").any()
    assert shown.loc[shown["status"].str.startswith("suppressed"), "mean"].isna().all()


def test_report_page_is_self_contained_and_complete(fitted_run):
    report = fitted_run / "report"
    page = (report / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    files = {p.name: p.read_bytes() for p in (report / "figures").glob("*.png")}
    assert len(sources) == len(files) >= 9
    assert {"forest_populations.png", "map_departments.png", "ranked_departments.png",
            "ranked_regions.png", "heatmap_partners.png", "heatmap_maturity.png",
            "convergence.png", "rank_worst.png", "predictive_check.png"} <= set(files)
    inlined = {base64.b64decode(s.removeprefix("data:image/png;base64,")) for s in sources}
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert inlined == set(files.values())
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "IGN – Admin Express" in page
    # a 2 x 30-draw chain is not converged, and the page says so before anything else
    assert page.index("NOT CONVERGED") < page.index("<h2>")
    table = pd.read_csv(report / "tables" / "expected_scores_department_citizen_performance.csv")
    assert page.count('<tr class="suppressed">') >= table["status"].str.startswith(
        "suppressed").sum()


def _painted(path: MplPath, point: tuple[float, float]) -> bool:
    """Whether drawing ``path`` filled (as the maps do) paints ``point``."""
    figure = Figure(figsize=(2, 2), dpi=100)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.add_patch(PathPatch(path, facecolor="black", edgecolor="none"))
    x, y = point
    ax.set_xlim(x - 0.1, x + 0.1)
    ax.set_ylim(y - 0.1, y + 0.1)
    ax.set_axis_off()
    canvas.draw()
    return bool(np.asarray(canvas.buffer_rgba())[100, 100, 0] < 128)


def test_department_outlines_leave_enclaves_to_their_own_department():
    outlines = department_outlines()
    assert set(outlines) == set(department_codes())
    valreas = (4.99, 44.38)  # the Enclave des Papes: Vaucluse (84) inside the Drôme (26)
    assert _painted(outlines["84"], valreas)
    assert not _painted(outlines["26"], valreas)
    assert _painted(outlines["26"], (5.05, 44.75))  # Crest, in the Drôme proper
    # holes stay empty whatever the orientation of the rings in the file
    outer = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [0.0, 0.0]]
    hole = [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0], [1.0, 1.0]]  # same turn
    for ring in (hole, hole[::-1]):
        path = polygon_path([[outer, ring]])
        assert not _painted(path, (2.0, 2.0)) and _painted(path, (0.5, 0.5))


def test_report_command_writes_a_new_folder_with_the_chosen_charts(fitted_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "elected"
    result = runner.invoke(app, ["report", str(fitted_run), "--out", str(out),
                                 "--population", "elected", "--impact", "innovation"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "tables" / "expected_scores_region_elected_innovation.csv")
    assert set(table["population"]) == {"elected"} and set(table["impact"]) == {"innovation"}
    again = runner.invoke(app, ["report", str(fitted_run), "--out", str(out)])
    assert again.exit_code == 2 and "exists already" in again.output
    wrong = runner.invoke(app, ["report", str(fitted_run), "--out", str(tmp_path / "x"),
                                "--practice", "lobbying"])
    assert wrong.exit_code == 2 and "'partners'" in wrong.output
    assert "Traceback" not in wrong.output and not (tmp_path / "x").exists()


def test_a_failed_report_leaves_no_folder(fitted_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures_module, "map_figure", broken)
    with pytest.raises(KeyboardInterrupt):
        build_report(load_run(fitted_run), tmp_path / "report", ReportOptions())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ReportError, match="not in this run"):
        build_report(load_run(fitted_run), tmp_path / "r", ReportOptions(population="nobody"))


def test_report_and_disclosure_options_are_validated():
    spec = parse_spec({"model": {"name": "m"}, "predictors": {"practices": ["partners"]},
                       "report": {"population": "elected", "impact": "innovation"},
                       "disclosure": {"min_count": 5, "max_cv": 0.2}})
    assert spec.report == ReportOptions(population="elected", impact="innovation")
    assert spec.disclosure.min_count == 5 and spec.resolved()["disclosure"]["max_cv"] == 0.2
    with pytest.raises(ValidationError) as caught:
        parse_spec({"model": {"name": "m"}, "predictors": {"practices": ["partners"]},
                    "report": {"population": "citizens", "practice": "maturity",
                               "figures": "yes", "colour": "red"},
                    "disclosure": {"min_count": 2}})
    text = str(caught.value)
    for expected in ("report.population", "did you mean 'citizen'", "report.practice",
                     "report.figures", "report.colour", "disclosure.min_count"):
        assert expected in text, expected
