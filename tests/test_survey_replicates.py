"""Replicate weights: jackknives against R, BRR/Fay against the exact textbook identity,
the bootstrap against linearisation within Monte Carlo error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impactmodel.survey import SurveyDesign
from impactmodel.survey.replicates import ReplicateDesign, ReplicateError

HERE = Path(__file__).resolve().parent
API = HERE / "reference" / "api"
R = json.loads((HERE / "reference" / "r_survey_figures.json").read_text())


def close(got, expected, rtol=1e-6):
    np.testing.assert_allclose(np.ravel(np.asarray(got, float)),
                               np.ravel(np.asarray(expected, float)), rtol=rtol)


@pytest.fixture(scope="module")
def clus1() -> pd.DataFrame:
    return pd.read_csv(API / "apiclus1.csv")


@pytest.fixture(scope="module")
def strat() -> pd.DataFrame:
    return pd.read_csv(API / "apistrat.csv")


@pytest.fixture(scope="module")
def jk1(clus1):
    return SurveyDesign(clus1, ids="dnum", weights="pw", fpc="fpc").replicate("JK1")


def check(estimates, r):
    t = estimates.to_frame()
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])


def test_jk1_against_r(jk1, clus1):
    check(jk1.mean("api00"), R["jk1_mean"])
    check(jk1.total("enroll"), R["jk1_total"])
    check(jk1.ratio("api.stu", "enroll"), R["jk1_ratio"])
    r = R["jk1_by_stype"]
    t = jk1.mean("api00", by="stype").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    close(t["se"], r["se"])
    check(jk1.glm("api00 ~ ell + meals"), R["jk1_glm"])
    close(jk1.replicate_weights.scale, R["jk1_scale"]["scale"])
    no_fpc = SurveyDesign(clus1, ids="dnum", weights="pw").replicate("JK1")
    check(no_fpc.mean("api00"), R["jk1_nofpc_mean"])


def test_jk1_glm_inference_uses_t_on_replicate_df(jk1):
    r = R["jk1_glm_t"]
    t = jk1.glm("api00 ~ ell + meals + mobility").to_frame()
    close(t["p_value"], r["p_value"])
    close(t["ci_low"], r["ci_low"])
    close(t["ci_high"], r["ci_high"])
    assert jk1.degrees_of_freedom + 1 - 4 == r["df"]


def test_domains_in_a_single_psu_drop_undefined_replicates(jk1):
    r = R["jk1_by_cname"]
    t = jk1.mean("api00", by="cname").to_frame().loc[r["domain"]]
    close(t["estimate"], r["estimate"])
    np.testing.assert_allclose(t["se"], r["se"], rtol=1e-6, atol=1e-9)


def test_jkn_against_r(strat):
    jkn = SurveyDesign(strat, strata="stype", weights="pw", fpc="fpc").replicate("JKn")
    check(jkn.mean("api00"), R["jkn_mean"])
    check(jkn.total("enroll"), R["jkn_total"])


def test_supplied_replicate_columns_give_the_same_figures(jk1, clus1):
    rw = jk1.replicate_weights
    frame = clus1.copy()
    for r in range(rw.weights.shape[1]):
        frame[f"repw{r + 1}"] = rw.weights[:, r]
    supplied = ReplicateDesign(frame, weights="pw", repweights="repw[0-9]+", kind="JK1",
                               scale=rw.scale)
    check(supplied.mean("api00"), R["jk1_mean"])


@pytest.fixture(scope="module")
def paired(strat) -> SurveyDesign:
    """Two schools per school type: a design with two PSUs in each of three strata."""
    two = strat.groupby("stype").head(2).reset_index(drop=True)
    return SurveyDesign(two, strata="stype", weights="pw")


@pytest.mark.parametrize("kind", ["BRR", "Fay"])
def test_balanced_half_samples_equal_linearisation_for_a_total(paired, kind):
    # With two PSUs per stratum and a full orthogonal Hadamard set, the BRR (and Fay)
    # variance of a total is sum_h (t_h1 - t_h2)^2 exactly, the with-replacement
    # linearised variance (Wolter 2007, Introduction to Variance Estimation, ch. 3).
    data = paired.data
    by_hand = sum(
        (g["pw"].iloc[0] * g["enroll"].iloc[0] - g["pw"].iloc[1] * g["enroll"].iloc[1]) ** 2
        for _, g in data.groupby("stype"))
    replicated = paired.replicate(kind).total("enroll").to_frame()
    linear = paired.total("enroll").to_frame()
    close(replicated["se"], np.sqrt(by_hand), rtol=1e-10)
    close(linear["se"], np.sqrt(by_hand), rtol=1e-10)


def test_bootstrap_agrees_with_linearisation(strat):
    design = SurveyDesign(strat, strata="stype", weights="pw", fpc="fpc")
    linear = design.mean(["api00", "ell"]).to_frame()["se"].to_numpy()
    boot = design.replicate("bootstrap", replicates=2000, seed=7).mean(["api00", "ell"])
    # the SE of a bootstrap SE from R replicates is about SE / sqrt(2R): 1.6% here
    close(boot.to_frame()["se"], linear, rtol=0.06)
    again = design.replicate("bootstrap", replicates=2000, seed=7).mean(["api00", "ell"])
    close(again.to_frame()["se"], boot.to_frame()["se"], rtol=0)


def test_replicate_errors(strat, clus1):
    stratified = SurveyDesign(strat, strata="stype", weights="pw")
    with pytest.raises(ReplicateError, match="use 'JKn'"):
        stratified.replicate("JK1")
    with pytest.raises(ReplicateError, match="exactly two PSUs per stratum"):
        stratified.replicate("BRR")
    with pytest.raises(ReplicateError, match="unknown replicate kind 'jk2'"):
        stratified.replicate("jk2")
    calibrated = SurveyDesign(clus1, ids="dnum", weights="pw").poststratify(
        {"stype": {"E": 4421, "H": 755, "M": 1018}})
    with pytest.raises(ReplicateError, match="before post-stratifying"):
        calibrated.replicate("JK1")
