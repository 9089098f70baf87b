"""Design-based estimates against R's survey package, to a relative error of 1e-6.

Figures: ``tests/reference/api/expected.json`` (R 4.2.2, survey 4.1-1, as shipped in shared/) and
``tests/reference/r_survey_figures.json``, produced by ``tests/reference/r_survey_figures.R``
with the same R and survey versions (the R call of each figure is in that script).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impactmodel.errors import ValidationError
from impactmodel.survey import SurveyDesign
from impactmodel.survey.variance import LonelyPSUError

HERE = Path(__file__).resolve().parent
API = HERE / "reference" / "api"
SHARED = json.loads((API / "expected.json").read_text())
OURS = json.loads((HERE / "reference" / "r_survey_figures.json").read_text())
RTOL = 1e-6


def flat(value) -> np.ndarray:
    return np.ravel(np.asarray(value, dtype=float))


def close(got, expected, atol=0.0) -> None:
    np.testing.assert_allclose(flat(got), flat(expected), rtol=RTOL, atol=atol)


@pytest.fixture(scope="module")
def api() -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(API / f"{name}.csv") for name in ("apistrat", "apiclus1", "apiclus2")}


@pytest.fixture(scope="module")
def dstrat(api):
    return SurveyDesign(api["apistrat"], strata="stype", weights="pw", fpc="fpc")


@pytest.fixture(scope="module")
def dclus1(api):
    return SurveyDesign(api["apiclus1"], ids="dnum", weights="pw", fpc="fpc")


@pytest.fixture(scope="module")
def dclus2(api):
    return SurveyDesign(api["apiclus2"], ids=["dnum", "snum"], fpc=["fpc1", "fpc2"])


# --- reference/api/expected.json: every figure --------------------------------------

def test_expected_strat_mean(dstrat):
    r = SHARED["strat_mean_api00"]["result"]
    t = dstrat.mean("api00").to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_expected_strat_mean_by_stype(dstrat):
    r = SHARED["strat_mean_api00_by_stype"]["result"]
    t = dstrat.mean("api00", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_expected_strat_glm(dstrat):
    r = SHARED["strat_glm_gaussian"]["result"]
    t = dstrat.glm("api00 ~ ell + meals + mobility").to_frame()
    assert list(t.index) == r["terms"]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_expected_clus1_mean_deff(dclus1):
    r = SHARED["clus1_mean_api00_deff"]["result"]
    t = dclus1.mean("api00").to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    close(t["deff"], r["deff"])


def test_expected_clus1_total(dclus1):
    r = SHARED["clus1_total_enroll"]["result"]
    t = dclus1.total("enroll").to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


# --- tests/reference/r_survey_figures.json ----------------------------------------------

def check_stat(table: pd.DataFrame, r: dict, deff: bool = False) -> None:
    close(table["estimate"], r["estimate"])
    close(table["se"], r["se"], atol=1e-9)
    if "ci_low" in r:
        close(table["ci_low"], r["ci_low"])
        close(table["ci_high"], r["ci_high"])
    if deff:
        close(table["deff"], r["deff"])


def test_strat_mean_and_total_deff(dstrat):
    check_stat(dstrat.mean("api00").to_frame(), OURS["strat_mean_api00_deff"], deff=True)
    check_stat(dstrat.total("enroll").to_frame(), OURS["strat_total_enroll_deff"], deff=True)


def test_strat_proportions_of_a_categorical(dstrat):
    # stratified by stype: its proportions are known exactly (SE 0 in R)
    t = dstrat.mean("stype").to_frame()
    assert list(t.index) == ["stypeE", "stypeH", "stypeM"]
    check_stat(t, OURS["strat_mean_stype"])


def test_strat_two_variables(dstrat):
    check_stat(dstrat.mean(["api00", "api99"]).to_frame(), OURS["strat_mean_two"])


def test_clus1_domains(dclus1):
    r = OURS["clus1_by_stype_mean"]
    t = dclus1.mean("api00", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    close(t["deff"], r["deff"])
    r = OURS["clus1_by_stype_total"]
    t = dclus1.total("enroll", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_clus1_crossed_domains(dclus1):
    r = OURS["clus1_by_stype_sch_wide"]
    t = dclus1.mean("api00", by=["stype", "sch.wide"]).to_frame()
    t = t.loc[list(zip(r["domain"], r["sch_wide"], strict=True))]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_clus1_ratio(dclus1):
    r = OURS["clus1_ratio"]
    t = dclus1.ratio("api.stu", "enroll").to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_clus1_with_replacement(api):
    design = SurveyDesign(api["apiclus1"], ids="dnum", weights="pw")
    check_stat(design.mean("api00").to_frame(), OURS["clus1_wr_mean"], deff=True)


def test_clus2_two_stage(dclus2):
    check_stat(dclus2.mean("api00").to_frame(), OURS["clus2_mean_api00"], deff=True)
    check_stat(dclus2.total("enroll", na_rm=True).to_frame(), OURS["clus2_total_enroll"])
    r = OURS["clus2_by_stype"]
    t = dclus2.mean("api00", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_kish_design_effect_per_domain(dstrat):
    t = dstrat.mean("api00", by="stype").to_frame()
    # weights are constant within each stratum of apistrat: Kish's deff is 1 there
    close(t["deff_kish"], [1.0, 1.0, 1.0])
    overall = dstrat.data["pw"].to_numpy()
    by_hand = len(overall) * np.sum(overall**2) / np.sum(overall) ** 2
    close(dstrat.mean("api00").to_frame()["deff_kish"], by_hand)


def test_degrees_of_freedom(dstrat, dclus1, dclus2):
    r = OURS["degf"]
    assert (dstrat.degrees_of_freedom, dclus1.degrees_of_freedom,
            dclus2.degrees_of_freedom) == (r["strat"], r["clus1"], r["clus2"])


@pytest.mark.parametrize("rule", ["certainty", "remove", "adjust", "average"])
def test_lonely_psu_rules(api, rule):
    strat = api["apistrat"]
    first_high = strat.loc[strat["stype"] == "H", "snum"].iloc[0]
    lone = strat[(strat["stype"] != "H") | (strat["snum"] == first_high)]
    design = SurveyDesign(lone, strata="stype", weights="pw", lonely_psu=rule)
    check_stat(design.mean("api00").to_frame(), OURS[f"lonely_{rule}"])


@pytest.fixture(scope="module")
def lone(api) -> pd.DataFrame:
    strat = api["apistrat"]
    first_high = strat.loc[strat["stype"] == "H", "snum"].iloc[0]
    return strat[(strat["stype"] != "H") | (strat["snum"] == first_high)]


def test_lonely_average_by_domain_counts_the_strata_in_the_domain(lone):
    design = SurveyDesign(lone, strata="stype", weights="pw", lonely_psu="average")
    r = OURS["lonely_average_by_stype"]
    t = design.mean("api00", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t.loc[["E", "M"], "se"], [r["se"][0], r["se"][2]])
    assert np.isnan(t.loc["H", "se"])  # R: NaN, the domain's only stratum is lonely
    r = OURS["lonely_average_by_schwide"]
    t = design.mean("api00", by="sch.wide").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    check_stat(design.mean("acs.k3", na_rm=True).to_frame(), OURS["lonely_average_acs_narm"])


def test_lonely_fail_only_for_strata_in_use(lone):
    design = SurveyDesign(lone, strata="stype", weights="pw")
    # the lonely high school has no acs.k3: with na_rm it is outside the estimate, as in R
    check_stat(design.mean("acs.k3", na_rm=True).to_frame(), OURS["lonely_fail_acs_narm"])
    with pytest.raises(LonelyPSUError):
        design.mean("api00")


def test_domain_variable_with_missing_values(api):
    data = api["apiclus1"].copy()
    data["stype2"] = data["stype"].astype(object)
    data.loc[data.index[0:40:4], "stype2"] = None
    design = SurveyDesign(data, ids="dnum", weights="pw", fpc="fpc")
    r = OURS["clus1_by_with_na"]
    t = design.mean("api00", by="stype2").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_lonely_psu_fail_names_the_stratum(api):
    strat = api["apistrat"]
    lone = strat[(strat["stype"] != "H") | (strat.index == strat.index[strat["stype"] == "H"][0])]
    design = SurveyDesign(lone, strata="stype", weights="pw")
    with pytest.raises(LonelyPSUError, match="'H' has only one PSU at stage 1"):
        design.mean("api00")


@pytest.mark.parametrize(("name", "design", "formula", "family"), [
    ("strat_glm_gaussian", "dstrat", "api00 ~ ell + meals + mobility", "gaussian"),
    ("clus1_glm_quasibinomial", "dclus1", "sch.wide ~ ell + meals", "quasibinomial"),
    ("clus1_glm_binomial", "dclus1", "sch.wide ~ ell + meals", "binomial"),
    ("clus2_glm_poisson", "dclus2", "enroll ~ meals + ell", "poisson"),
    ("clus1_glm_factor", "dclus1", "api00 ~ stype + meals", "gaussian"),
])
def test_glm_against_r(request, name, design, formula, family):
    r = OURS[name]
    t = request.getfixturevalue(design).glm(formula, family=family).to_frame()
    assert list(t.index) == r["terms"]
    for col in ("estimate", "se", "statistic", "p_value", "ci_low", "ci_high"):
        close(t[col], r[col])


@pytest.mark.parametrize(("name", "kwargs"), [
    ("clus1_olr", {"table": "apiclus1", "ids": "dnum", "weights": "pw", "fpc": "fpc"}),
    ("strat_olr", {"table": "apistrat", "strata": "stype", "weights": "pw", "fpc": "fpc"}),
])
def test_proportional_odds_against_r(api, name, kwargs):
    data = api[kwargs.pop("table")].copy()
    data["api_cat"] = pd.cut(data["api00"], [-np.inf, 600, 700, np.inf],
                             labels=["low", "mid", "high"])
    result = SurveyDesign(data, **kwargs).olr("api_cat ~ meals + ell")
    r = OURS[name]
    t = result.to_frame()
    assert list(t.index) == r["terms"]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    assert not any("did not converge" in note for note in result.notes)


def test_probabilities_and_fpc_fractions_are_equivalent_forms(api):
    data = api["apistrat"].assign(prob=lambda f: 1 / f["pw"],
                                  fraction=lambda f: f.groupby("stype")["stype"]
                                  .transform("size") / f["fpc"])
    by_prob = SurveyDesign(data, strata="stype", probs="prob", fpc="fraction")
    r = SHARED["strat_mean_api00"]["result"]
    t = by_prob.mean("api00").to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    # without weights, the weights follow from the fpc: population / sample size
    no_weights = SurveyDesign(api["apistrat"], strata="stype", fpc="fpc")
    close(no_weights.weights, api["apistrat"]["pw"])


def test_design_errors_name_the_column(api):
    with pytest.raises(ValidationError, match="did you mean 'stype'"):
        SurveyDesign(api["apistrat"], strata="stypo", weights="pw")
    bad = api["apistrat"].assign(pw=lambda f: f["pw"].where(f.index != 3, -1.0))
    with pytest.raises(ValidationError, match=r"invalid weights(.|\n)*rows: 4"):
        SurveyDesign(bad, strata="stype", weights="pw")
    crossing = api["apiclus1"].assign(stratum=np.arange(183) % 2)
    with pytest.raises(ValidationError, match="PSU in more than one stratum"):
        SurveyDesign(crossing, ids="dnum", strata="stratum", weights="pw")
