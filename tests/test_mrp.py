"""MRP: post-stratification checked by hand on a tiny frame, and frame validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from impactmodel import load_survey
from impactmodel.bayes.diagnostics import Convergence, Thresholds
from impactmodel.bayes.fit import ScaleScoreFit
from impactmodel.bayes.model_data import build_score_data
from impactmodel.bayes.mrp import poststratify, read_frame, validate_frame
from impactmodel.bayes.priors import ScaleScorePriors
from impactmodel.bayes.sampling import SamplerSettings
from impactmodel.errors import ValidationError
from impactmodel.territories import region_of

VARIABLES = ["age_group", "size_class"]


@pytest.fixture(scope="module")
def survey(example_paths):
    return load_survey(*example_paths)


def fake_fit(survey) -> ScaleScoreFit:
    """The model's data with random draws of every parameter MRP reads (no sampling:
    post-stratification is arithmetic on whatever the draws are)."""
    data = build_score_data(survey, ["partners", "maturity"], None, VARIABLES)
    assert len(data.x) == len(survey.frame)  # everyone kept: rows match the survey's
    c, rng = data.coords, np.random.default_rng(4)
    shapes = {"alpha": ("cell", "population"), "u_department": ("impact", "department"),
              "effect_cell": ("practice", "impact", "lens", "dimension"),
              "b_population": ("practice", "population"),
              "b_department": ("practice", "department"), "gamma": ("impact", "covariate")}
    posterior = xr.Dataset({
        name: (("chain", "draw", *dims), rng.normal(50 if name == "alpha" else 0, 5,
                                                    (2, 7, *(len(c[d]) for d in dims))))
        for name, dims in shapes.items()}, coords={d: c[d] for dims in shapes.values()
                                                   for d in dims})
    converged = Convergence(1.0, 1e3, 1e3, 0, 1.0, Thresholds())
    return ScaleScoreFit(xr.DataTree.from_dict({"posterior": posterior}), converged, data,
                         ScaleScorePriors(), SamplerSettings())


@pytest.mark.parametrize("territorial", [True, False])
def test_poststratification_equals_the_frame_weighted_mean_worked_out_by_hand(survey,
                                                                             territorial):
    fit = fake_fit(survey)
    d = fit.data
    frame = validate_frame(pd.DataFrame({
        "department": ["01", "01", "01", "02", "03"],
        "population": ["elected"] * 5,
        "age_group": ["18-39", "60+", "40-59", "60+", "18-39"],
        "size_class": ["small", "large", "small", "medium", "large"],
        "count": [30, 10, 0, 5, 7]}), survey.codebook, "tiny frame")
    post = fit.idata["posterior"]
    draws = {k: post[k].stack(sample=("chain", "draw")).values
             for k in ("alpha", "u_department", "effect_cell", "b_population",
                       "b_department", "gamma")}
    p = d.coords["population"].index("elected")
    people = survey.frame
    asked = np.unique(d.cell[d.population[d.respondent] == p])
    dummies = d.coords["covariate"]
    # the practices of a frame cell: alike respondents' mean (same population, age group,
    # size class) plus, by default, the shrunk deviations of its region's and then its
    # department's respondents (divided by n + 10), worked out respondent by respondent
    group = (people["population"].astype(str) + "|" + people["age_group"].astype(str) + "|"
             + people["size_class"].astype(str)).to_numpy()
    alike = {g: d.x[group == g].mean(axis=0) for g in np.unique(group)}
    residual = d.x - np.array([alike[g] for g in group])
    region = np.array([region_of()[str(t)] for t in people["department"]])
    department = people["department"].astype(str).to_numpy()
    population = people["population"].astype(str).to_numpy()

    def shrunk(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return values[mask].sum(axis=0) / (mask.sum() + 10.0)

    region_deviation = {(q, r): shrunk(residual, (population == q) & (region == r))
                        for q in np.unique(population) for r in np.unique(region)}
    left = residual - np.array([region_deviation[(q, r)] for q, r in zip(
        population, region, strict=True)])
    department_deviation = {(q, t): shrunk(left, (population == q) & (department == t))
                            for q in np.unique(population) for t in np.unique(department)}

    def theta(cell: pd.Series, m: int) -> np.ndarray:
        """Expected impact-m score of one frame cell, every draw, term by term."""
        xbar = alike[f"elected|{cell['age_group']}|{cell['size_class']}"]
        if territorial:
            t_code = cell["department"]
            xbar = (xbar + region_deviation.get(("elected", region_of()[t_code]), 0.0)
                    + department_deviation.get(("elected", t_code), 0.0))
        z = np.array([float(cell[name.split("=")[0]] == name.split("=")[1])
                      for name in dummies]) - d.z_means
        t = d.coords["department"].index(cell["department"])
        cells = [k for k in asked if d.cell_impact[k] == m]
        total = 0.0
        for k in cells:
            slope = (draws["effect_cell"][:, m, d.cell_lens[k], d.cell_dimension[k]]
                     + draws["b_population"][:, p] + draws["b_department"][:, t])
            total = total + (draws["alpha"][k, p] + draws["u_department"][m, t]
                             + xbar @ slope + z @ draws["gamma"][m])
        return total / len(cells)

    result = poststratify(fit, frame, territorial_practices=territorial)
    for m, impact in enumerate(d.coords["impact"]):
        cells = frame.cells
        by_department = {}
        for department in ("01", "02", "03"):
            mine = cells[cells["department"] == department]
            weights = mine["count"].to_numpy(dtype=float)
            by_department[department] = (sum(w * theta(row, m) for w, (_, row) in zip(
                weights, mine.iterrows(), strict=True)) / weights.sum(), weights.sum())
            row = result["department"].set_index(["department", "impact"]).loc[
                (department, impact)]
            assert row["mean"] == pytest.approx(by_department[department][0].mean(), rel=1e-10)
            assert row["sd"] == pytest.approx(by_department[department][0].std(), rel=1e-8)
            assert row["frame_count"] == weights.sum()
        # regions and the nation: frame-weighted means of their departments
        for region in {region_of()[k] for k in by_department}:
            members = [k for k in by_department if region_of()[k] == region]
            total = sum(by_department[k][1] for k in members)
            expected = sum(by_department[k][0] * by_department[k][1] for k in members) / total
            row = result["region"].set_index(["region", "impact"]).loc[(region, impact)]
            assert row["mean"] == pytest.approx(expected.mean(), rel=1e-10)
        nation = sum(v[0] * v[1] for v in by_department.values()) / 52
        row = result["population"].set_index("impact").loc[impact]
        assert row["mean"] == pytest.approx(nation.mean(), rel=1e-10)
        assert row["frame_count"] == 52


def test_the_example_frame_is_valid_and_bad_frames_are_explained(survey, example_paths,
                                                                tmp_path):
    frame = read_frame(example_paths[0].with_name("frame.csv"), survey.codebook)
    assert frame.variables == tuple(VARIABLES) and (frame.cells["count"] >= 0).all()
    bad = pd.DataFrame({"department": ["01", "999", "2a"],
                        "population": ["citizen", "citizens", "elected"],
                        "age_group": ["18-39", "18-39", "teen"],
                        "size_class": ["small", "small", "small"],
                        "count": [10, -1, 2.5]})
    path = tmp_path / "frame.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ValidationError) as caught:
        read_frame(path, survey.codebook)
    text = str(caught.value)
    for expected in ("column 'department'", "999", "column 'population'",
                     "did you mean 'citizen'", "column 'age_group'", "teen",
                     "column 'count'", "-1", "rows: 2"):
        assert expected in text, expected
    assert "2a" not in text  # a lower-case Corsican code is read as 2A
    bad[["department", "population"]].to_csv(path, index=False)
    with pytest.raises(ValidationError, match="missing columns"):
        read_frame(path, survey.codebook)


MRP_SPEC = """
[model]
name = "mrp-small"
[data]
respondents = "respondents.csv"
codebook = "codebook.toml"
[predictors]
practices = ["partners", "maturity"]
[weights]
treatment = "mrp"
frame = "frame.csv"
[sampler]
draws = 30
tune = 40
chains = 2
seed = 3
"""


def test_mrp_specification_fits_and_writes_post_stratified_tables(project, tmp_path):
    from typer.testing import CliRunner

    from impactmodel.cli import app
    from impactmodel.runs import load_run

    folder = project[0]
    spec = folder / "mrp.toml"
    spec.write_text(MRP_SPEC, encoding="utf-8")
    result = CliRunner().invoke(app, ["fit", str(spec), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "mrp-small").iterdir()
    run = load_run(path)
    assert run.manifest["data"]["frame"]["path"].endswith("frame.csv")
    assert run.manifest["spec"]["resolved"]["weights"]["treatment"] == "mrp"
    assert "gamma" in run.posterior["posterior"]  # the post-stratification covariates
    department = run.tables["mrp_department"]
    frame = pd.read_csv(folder / "frame.csv", dtype={"department": str})
    shown = department[department["status"].isin(["published", "unreliable"])]
    heads = frame.groupby(["population", "department"])["count"].sum()
    assert len(shown) and all(
        heads[(r.population, r.department)] == r.frame_count for r in shown.itertuples())
    assert (department.loc[~department.index.isin(shown.index), "mean"].isna()).all()
    national = run.tables["mrp_population"].set_index(["population", "impact"])
    assert national["frame_count"].loc[("citizen", "trust")] == frame.loc[
        frame["population"] == "citizen", "count"].sum()
    page = (path / "report" / "report.html").read_text(encoding="utf-8")
    assert "post-stratified (MRP)" in page and "direct_vs_mrp.png" in page
    # side by side: the direct estimates are the design-based engine's, the model's MRP's
    from impactmodel.survey.impact import impact_score_table

    survey = load_survey(folder / "respondents.csv", folder / "codebook.toml")
    engine = impact_score_table(survey, ["population", "department"], lonely_psu="adjust",
                                level=0.9)
    engine = engine[~engine["cell"].str.contains(":")].set_index(
        ["population", "department", "cell"])
    side = run.tables["direct_vs_mrp_department"]
    published = side[side["status"].isin(["published", "unreliable"])
                     & side["direct"].notna()]
    assert len(published) > 10
    for row in published.itertuples():
        direct = engine.loc[(row.population, row.department, row.impact)]
        assert row.direct == pytest.approx(direct["estimate"], rel=1e-12)
        assert row.direct_se == pytest.approx(direct["se"], rel=1e-12)
        assert row.n == direct["n"]
    mrp = department.set_index(["population", "department", "impact"])
    for row in published.head(20).itertuples():
        assert row.model == pytest.approx(mrp.loc[(row.population, row.department,
                                                   row.impact), "mean"], rel=1e-12)


def test_mrp_settings_are_validated(tmp_path):
    from impactmodel.specification import parse_spec

    source = tmp_path / "spec.toml"
    with pytest.raises(ValidationError) as caught:
        parse_spec({"model": {"name": "m"}, "outcome": {"kind": "items"},
                    "weights": {"treatment": "mrp", "frame": "../frame.csv"}}, source)
    text = str(caught.value)
    assert "weights.treatment" in text and "scale-score model" in text
    assert "weights.frame" in text and "leaves the specification's folder" in text
    with pytest.raises(ValidationError, match="used by MRP and by a calibrated"):
        parse_spec({"model": {"name": "m"}, "weights": {"frame": "frame.csv"}}, source)
    with pytest.raises(ValidationError, match="weight treatment"):
        parse_spec({"model": {"name": "m"}, "weights": {"treatment": "raking"}}, source)


def test_raked_frame_matches_every_department_margin(survey, example_paths):
    from impactmodel.bayes.mrp import raked_frame

    census = read_frame(example_paths[0].with_name("frame.csv"), survey.codebook).cells
    joint = census.groupby(["population", *VARIABLES], as_index=False)["count"].sum()
    margins = pd.concat([
        census.groupby(["department", "population", v], as_index=False)["count"].sum()
        .rename(columns={v: "level"}).assign(variable=v) for v in VARIABLES])
    frame = raked_frame(joint, margins, survey.codebook)
    assert "MrsP" in frame.source
    cells = frame.cells
    for variable in VARIABLES:
        built = cells.groupby(["department", "population", variable])["count"].sum()
        given = margins[margins["variable"] == variable].set_index(
            ["department", "population", "level"])["count"]
        np.testing.assert_allclose(built.reindex(given.index).to_numpy(), given.to_numpy(),
                                   rtol=1e-8)
    assert cells["count"].sum() == pytest.approx(census["count"].sum())


def test_raking_an_independent_joint_gives_the_product_of_the_margins(survey):
    """Textbook case: a joint with no association raked to two margins is their outer
    product over the total (r_i c_j / N)."""
    from impactmodel.bayes.mrp import raked_frame

    ages, sizes = ["18-39", "40-59", "60+"], ["small", "medium", "large"]
    joint = pd.DataFrame([{"population": "business", "age_group": a, "size_class": s,
                           "count": float(ra * cs)}
                          for a, ra in zip(ages, [1, 2, 3], strict=True)
                          for s, cs in zip(sizes, [5, 3, 2], strict=True)])
    rows, cols = np.array([12.0, 20.0, 8.0]), np.array([25.0, 10.0, 5.0])
    margins = pd.DataFrame(
        [{"department": "2A", "population": "business", "variable": "age_group", "level": a,
          "count": c} for a, c in zip(ages, rows, strict=True)]
        + [{"department": "2A", "population": "business", "variable": "size_class",
            "level": s, "count": c} for s, c in zip(sizes, cols, strict=True)])
    cells = raked_frame(joint, margins, survey.codebook).cells.set_index(
        ["age_group", "size_class"])["count"]
    expected = np.outer(rows, cols) / rows.sum()
    for i, a in enumerate(ages):
        for j, s in enumerate(sizes):
            assert cells[(a, s)] == pytest.approx(expected[i, j], rel=1e-8)
    broken = margins.assign(count=np.where(margins["level"] == "small", 30.0,
                                           margins["count"]))
    from impactmodel.errors import ImpactModelError

    with pytest.raises(ImpactModelError, match="same total"):
        raked_frame(joint, broken, survey.codebook)


def test_a_joint_that_cannot_meet_the_margins_is_named_not_returned(survey):
    """A diagonal joint (each age group with one size class) pins each cell to both its
    age total and its size total; 10 | 20 | 30 against 30 | 20 | 10 cannot both hold.
    Raking then returns the same weights every cycle, meeting only the size margin."""
    from impactmodel.bayes.mrp import raked_frame
    from impactmodel.errors import ImpactModelError

    pairs = [("18-39", "small"), ("40-59", "medium"), ("60+", "large")]
    joint = pd.DataFrame([{"population": "business", "age_group": a, "size_class": s,
                           "count": 1.0} for a, s in pairs])
    margins = pd.DataFrame(
        [{"department": "2A", "population": "business", "variable": "age_group", "level": a,
          "count": c} for (a, _), c in zip(pairs, [10.0, 20.0, 30.0], strict=True)]
        + [{"department": "2A", "population": "business", "variable": "size_class",
            "level": s, "count": c} for (_, s), c in zip(pairs, [30.0, 20.0, 10.0],
                                                         strict=True)])
    with pytest.raises(ImpactModelError,
                       match=r"department 2A, population business: .*age_group, size_class"
                             r".*miss margin 0"):
        raked_frame(joint, margins, survey.codebook, ("age_group", "size_class"))


def test_raked_frame_specification_says_which_frame_it_used(project, tmp_path):
    from typer.testing import CliRunner

    from impactmodel.cli import app
    from impactmodel.runs import load_run

    folder = project[0]
    census = pd.read_csv(folder / "frame.csv", dtype={"department": str})
    census.groupby(["population", *VARIABLES], as_index=False)["count"].sum().to_csv(
        folder / "joint.csv", index=False)
    pd.concat([census.groupby(["department", "population", v], as_index=False)["count"]
               .sum().rename(columns={v: "level"}).assign(variable=v) for v in VARIABLES]
              ).to_csv(folder / "margins.csv", index=False)
    spec = folder / "mrsp.toml"
    spec.write_text(MRP_SPEC.replace('name = "mrp-small"', 'name = "mrsp-small"').replace(
        'frame = "frame.csv"', 'joint = "joint.csv"\nmargins = "margins.csv"'),
        encoding="utf-8")
    result = CliRunner().invoke(app, ["fit", str(spec), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "mrsp-small").iterdir()
    run = load_run(path)
    data = run.manifest["data"]
    assert "MrsP" in data["frame_source"] and "frame" not in data
    assert data["joint"]["path"].endswith("joint.csv")
    assert data["margins"]["path"].endswith("margins.csv")
    assert run.manifest["spec"]["resolved"]["weights"]["joint"] == "joint.csv"
    department = run.tables["mrp_department"]
    shown = department[department["status"].isin(["published", "unreliable"])]
    heads = census.groupby(["population", "department"])["count"].sum()
    assert len(shown) and all(heads[(r.population, r.department)] == pytest.approx(
        r.frame_count) for r in shown.itertuples())
    assert "MrsP" in (path / "report" / "report.html").read_text(encoding="utf-8")


def test_raked_frame_files_with_bad_counts_are_explained(survey, tmp_path):
    from impactmodel.bayes.mrp import read_raked_frame

    pd.DataFrame({"population": ["citizen"], "age_group": ["18-39"],
                  "size_class": ["small"], "count": ["many"]}).to_csv(
        tmp_path / "joint.csv", index=False)
    pd.DataFrame({"department": ["01"], "population": ["citizen"],
                  "variable": ["age_group"], "level": ["18-39"], "count": [3]}).to_csv(
        tmp_path / "margins.csv", index=False)
    with pytest.raises(ValidationError) as caught:
        read_raked_frame(tmp_path / "joint.csv", tmp_path / "margins.csv", survey.codebook)
    assert "column 'count'" in str(caught.value) and "many" in str(caught.value)
