"""Post-stratification, raking, GREG calibration and trimming against R's survey package.

Population counts come from ``apipop.csv`` (R's population file); R's figures from
``tests/reference/r_survey_figures.R`` (raking there converges to 1e-12, as ours).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impactmodel.survey import SurveyDesign
from impactmodel.survey.calibration import CalibrationError

HERE = Path(__file__).resolve().parent
API = HERE / "reference" / "api"
R = json.loads((HERE / "reference" / "r_survey_figures.json").read_text())


def close(got, expected):
    np.testing.assert_allclose(np.ravel(np.asarray(got, float)),
                               np.ravel(np.asarray(expected, float)), rtol=1e-6)


@pytest.fixture(scope="module")
def pop() -> pd.DataFrame:
    return pd.read_csv(API / "apipop.csv")


@pytest.fixture(scope="module")
def counts(pop):
    return {"stype": pop["stype"].value_counts().to_dict(),
            "sch.wide": pop["sch.wide"].value_counts().to_dict()}


@pytest.fixture(scope="module")
def dclus1() -> SurveyDesign:
    return SurveyDesign(pd.read_csv(API / "apiclus1.csv"), ids="dnum", weights="pw", fpc="fpc")


def check(estimates, r):
    t = estimates.to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_population_counts_are_rs(counts):
    assert counts["stype"] == R["pop_counts"]["stype"]
    assert counts["sch.wide"] == R["pop_counts"]["sch_wide"]


def test_poststratify(dclus1, counts):
    d = dclus1.poststratify({"stype": counts["stype"]})
    check(d.mean("api00"), R["clus1_poststrat_mean"])
    check(d.total("enroll"), R["clus1_poststrat_total"])
    r = R["clus1_poststrat_by_schwide"]
    t = d.mean("api00", by="sch.wide").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    totals = pd.Series(d.weights).groupby(dclus1.data["stype"]).sum()
    close(totals.loc[["E", "H", "M"]], [counts["stype"][k] for k in "EHM"])


def test_poststratify_on_a_frame_of_crossed_cells(dclus1, counts):
    frame = pd.DataFrame({"stype": list(counts["stype"]), "count": list(counts["stype"].values())})
    check(dclus1.poststratify(frame).mean("api00"), R["clus1_poststrat_mean"])


def test_rake(dclus1, counts):
    d = dclus1.rake({"stype": counts["stype"], "sch.wide": counts["sch.wide"]})
    check(d.mean("api00"), R["clus1_rake_mean"])
    check(d.total("enroll"), R["clus1_rake_total"])
    for var in ("stype", "sch.wide"):
        got = pd.Series(d.weights).groupby(dclus1.data[var]).sum()
        close(got.sort_index(), pd.Series(counts[var]).sort_index())


def test_greg_calibration(dclus1, counts, pop):
    d = dclus1.calibrate({"stype": counts["stype"], "api99": pop["api99"].sum()})
    check(d.mean("api00"), R["clus1_greg_mean"])
    check(d.total("enroll"), R["clus1_greg_total"])
    close(d.weights @ dclus1.data["api99"], pop["api99"].sum())


def test_trim():
    strat = SurveyDesign(pd.read_csv(API / "apistrat.csv"), strata="stype", weights="pw",
                         fpc="fpc")
    d = strat.trim(upper=40)
    check(d.mean("api00"), R["strat_trim_mean"])
    close(d.weights.sum(), R["strat_trim_weights_sum"])
    assert d.weights.max() <= 40 + 1e-9
    assert strat.weights.max() > 40  # the original design is unchanged


def test_weighting_errors_are_specific(dclus1, counts):
    absent = r"level\(s\) \['X'\] of 'stype', which no respondent"
    with pytest.raises(CalibrationError, match=absent):
        dclus1.poststratify({"stype": {**counts["stype"], "X": 10}})
    with pytest.raises(CalibrationError, match=r"levels \['H'\] in the sample but no target"):
        dclus1.calibrate({"stype": {"E": 4421, "M": 1018}})
    with pytest.raises(CalibrationError, match="different totals"):
        dclus1.rake({"stype": counts["stype"], "sch.wide": {"No": 1, "Yes": 2}})
    with pytest.raises(CalibrationError, match="did not converge"):
        dclus1.rake({"stype": counts["stype"], "sch.wide": counts["sch.wide"]}, max_iter=1)
    with pytest.raises(CalibrationError, match="did you mean 'stype'"):
        dclus1.calibrate({"stypo": counts["stype"]})
