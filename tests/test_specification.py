"""Model specifications: shipped files load, every problem is reported, fits follow them."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pandas as pd
import pytest
from conftest import MODELS

from impactmodel import load_survey
from impactmodel.bayes.fit import ItemFit, ScaleScoreFit, fit_spec
from impactmodel.bayes.priors import OrdinalPriors, ScaleScorePriors
from impactmodel.bayes.sampling import SamplerSettings, SamplingError
from impactmodel.errors import ValidationError
from impactmodel.specification import load_spec, parse_spec


def write(tmp_path, text: str, name: str = "spec.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path) -> dict[str, str]:
    """Key -> rendered problem of a specification that must fail."""
    with pytest.raises(ValidationError) as info:
        load_spec(path)
    return {p.column or "": p.render() for p in info.value.problems}


def test_shipped_specifications_load():
    scores = load_spec(MODELS / "impact-scale-scores.toml")
    assert scores.name == "impact-scale-scores" and scores.outcome == "scale_scores"
    assert scores.respondents is None and scores.codebook is None  # the embedded example
    assert isinstance(scores.priors, ScaleScorePriors)
    assert scores.priors.effect_sd == 5.0
    assert scores.priors.residual_sd == ScaleScorePriors().residual_sd  # default kept
    assert scores.sampler.seed == 20261126 and scores.thresholds.min_ess_bulk == 400
    items = load_spec(MODELS / "impact-items.toml")
    assert items.outcome == "items" and isinstance(items.priors, OrdinalPriors)
    assert items.covariates == ("age_group", "size_class")
    resolved = items.resolved()
    assert resolved["priors"]["trait_correlation_eta"] == 2.0
    assert resolved["sampler"]["max_depth"] is None  # left to the model (6)
    assert resolved["sampler"]["target_accept"] is None  # left to the model (0.72)
    assert resolved["data"]["respondents"] == "(embedded example)"
    weighted = load_spec(MODELS / "pseudo-posterior.toml")
    assert weighted.weights == "pseudo-posterior" and weighted.lonely_psu == "adjust"
    assert weighted.calibration == ("region", "age_group", "size_class")
    assert weighted.resolved()["weights"]["lonely_psu"] == "adjust"
    assert scores.spatial == "none" and scores.resolved()["structure"]["spatial"] == "none"


def test_spatial_structure_is_validated_and_resolved():
    from impactmodel.specification import parse_spec

    spec = parse_spec({"model": {"name": "x"}, "structure": {"spatial": "bym2"}})
    assert spec.spatial == "bym2" and spec.resolved()["structure"]["spatial"] == "bym2"
    with pytest.raises(ValidationError) as info:
        parse_spec({"model": {"name": "x"}, "outcome": {"kind": "items"},
                    "structure": {"spatial": "bym"}})
    text = str(info.value)
    assert "structure.spatial" in text and "did you mean 'bym2'" in text
    with pytest.raises(ValidationError, match="BYM2 is available for the scale-score model"):
        parse_spec({"model": {"name": "x"}, "outcome": {"kind": "items"},
                    "structure": {"spatial": "bym2"}})


def test_every_problem_is_reported_with_key_value_and_what_is_allowed(tmp_path):
    found = problems(write(tmp_path, """
        [model]
        name = "bad name!"
        [outcome]
        kind = "poisson"
        [sampel]
        draws = 10
        [sampler]
        draw = 10
        chains = 0
        target_accept = 1.5
        adaptation = "dense"
        max_depth = 0
        trajectory = "riemannian"
        draw_storage = "tape"
        [convergence]
        max_rhat = 0.9
    """))
    assert "got: 0" in found["sampler.max_depth"] and "integer >= 1" in found["sampler.max_depth"]
    assert "did you mean 'sampler'" in found["sampel"]
    assert "did you mean 'draws'" in found["sampler.draw"]
    assert "'poisson'" in found["outcome.kind"] and "scale_scores, items" in found["outcome.kind"]
    assert "got: 0" in found["sampler.chains"] and "integer >= 1" in found["sampler.chains"]
    accept = found["sampler.target_accept"]
    assert "got: 1.5" in accept and "< 1.0" in accept
    assert "diag, low_rank" in found["sampler.adaptation"]
    assert "'riemannian'" in found["sampler.trajectory"]
    assert "euclidean, microcanonical" in found["sampler.trajectory"]
    assert "'tape'" in found["sampler.draw_storage"]
    assert "auto, memory, disk" in found["sampler.draw_storage"]
    # each bad value is reported once, under its own key
    assert "sampler" not in found
    assert "got: 0.9" in found["convergence.max_rhat"]
    assert "'bad name!'" in found["model.name"]
    # predictors of a design-based estimate are refused (no model uses them)
    found = problems(write(tmp_path, """
        [model]
        name = "m"
        method = "design-based"
        [predictors]
        covariates = ["age_group"]
    """))
    assert "Bayesian models only" in found["predictors"]


def test_priors_are_checked_by_name(tmp_path):
    found = problems(write(tmp_path, """
        [model]
        name = "m"
        [priors]
        efect_sd = 2.0
    """))
    assert "did you mean 'effect_sd'" in found["priors"]
    found = problems(write(tmp_path, """
        [model]
        name = "m"
        [outcome]
        kind = "items"
        [priors]
        residual_sd = 2.0
    """))
    assert "unknown prior 'residual_sd'" in found["priors"]  # a scale-score prior


def test_data_paths_stay_inside_the_specification_folder(tmp_path):
    inside = write(tmp_path, """
        [model]
        name = "m"
        [data]
        respondents = "data/survey.csv"
        codebook = "data/codebook.toml"
    """)
    spec = load_spec(inside)
    assert spec.respondents == (tmp_path / "data" / "survey.csv").resolve()
    assert spec.resolved()["data"]["codebook"] == "data/codebook.toml"
    found = problems(write(tmp_path, f"""
        [model]
        name = "m"
        [data]
        respondents = "../elsewhere/survey.csv"
        codebook = "{tmp_path / 'codebook.toml'}"
    """))
    assert "leaves the specification's folder" in found["data.respondents"]
    assert "leaves the specification's folder" in found["data.codebook"]  # absolute
    found = problems(write(tmp_path, """
        [model]
        name = "m"
        [data]
        respondents = "survey.csv"
    """))
    assert "both data files or neither" in found["data.codebook"]


def test_a_specification_is_data_not_code(tmp_path):
    """Values that look like code stay strings and fail validation as such."""
    found = problems(write(tmp_path, """
        [model]
        name = "__import__('os').system('true')"
        [sampler]
        draws = "1000 if True else 0"
    """))
    assert "not usable as a folder name" in found["model.name"]
    assert "'1000 if True else 0'" in found["sampler.draws"]


def test_fits_follow_the_specification_and_reproduce(example_paths, tmp_path):
    """The fit uses the specification's priors and sampler settings; the same
    specification on the same data with the same seed gives the same tables."""
    spec_text = (MODELS / "impact-scale-scores.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(spec_text)
    raw["sampler"].update(draws=40, tune=60, chains=2, seed=5)
    raw["predictors"]["practices"] = ["partners", "maturity"]
    raw["priors"]["effect_sd"] = 4.0
    spec = parse_spec(raw)
    survey = load_survey(*example_paths)
    first = fit_spec(spec, survey)
    assert isinstance(first, ScaleScoreFit)
    # the specification's settings, with the tree depth and dynamics the model applied
    # filled in
    assert first.priors.effect_sd == 4.0 and spec.sampler.max_depth is None
    assert first.settings == replace(spec.sampler, max_depth=10, trajectory="euclidean")
    posterior = first.idata["posterior"]
    assert posterior.sizes["draw"] == 40 and posterior.sizes["chain"] == 2
    assert list(posterior["practice"].values) == ["partners", "maturity"]
    second = fit_spec(spec, survey)
    pd.testing.assert_frame_equal(first.effects("effect_cell"), second.effects("effect_cell"))
    assert not isinstance(second, ItemFit)


def test_outcome_subsets_are_validated_and_resolved():
    spec = parse_spec({"model": {"name": "m"},
                       "outcome": {"impacts": ["trust", "performance"],
                                   "dimensions": ["social"]}})
    assert spec.selection.impacts == ("performance", "trust")  # the vocabulary's order
    assert spec.selection.lenses == ("ecosystem", "organisation", "individual")
    assert spec.resolved()["outcome"]["dimensions"] == ["social"]
    with pytest.raises(ValidationError) as caught:
        parse_spec({"model": {"name": "m"},
                    "outcome": {"impacts": ["trusts"], "lenses": []},
                    "report": {"impact": "innovation"}})
    text = str(caught.value)
    assert "outcome.impacts" in text and "did you mean 'trust'" in text
    assert "outcome.lenses" in text
    with pytest.raises(ValidationError, match=r"report\.impact"):
        parse_spec({"model": {"name": "m"}, "outcome": {"impacts": ["trust"]},
                    "report": {"impact": "innovation"}})


def test_tree_depth_is_the_models_unless_the_specification_says():
    assert parse_spec({"model": {"name": "x"}}).sampler.max_depth is None
    assert parse_spec({"model": {"name": "x"},
                       "sampler": {"max_depth": 7}}).sampler.max_depth == 7


def test_trajectory_is_the_models_unless_the_specification_says():
    assert parse_spec({"model": {"name": "x"}}).sampler.trajectory is None
    assert parse_spec({"model": {"name": "x"}, "sampler": {
        "trajectory": "euclidean"}}).sampler.trajectory == "euclidean"


def test_draw_storage_is_auto_unless_the_specification_says():
    assert parse_spec({"model": {"name": "x"}}).sampler.draw_storage == "auto"
    assert parse_spec({"model": {"name": "x"}, "sampler": {
        "draw_storage": "disk"}}).sampler.draw_storage == "disk"


def test_settings_that_conflict_are_reported(tmp_path):
    found = problems(write(tmp_path, """
        [model]
        name = "x"
        [sampler]
        sampler = "pymc"
        trajectory = "microcanonical"
    """))
    assert "needs the nutpie sampler, not 'pymc'" in found["sampler"]


def test_target_acceptance_is_the_models_unless_the_specification_says():
    assert parse_spec({"model": {"name": "x"}}).sampler.target_accept is None
    assert parse_spec({"model": {"name": "x"},
                       "sampler": {"target_accept": 0.9}}).sampler.target_accept == 0.9
    with pytest.raises(ValidationError, match=r"sampler\.target_accept"):
        parse_spec({"model": {"name": "x"}, "sampler": {"target_accept": 1.0}})
    with pytest.raises(SamplingError, match="target_accept must be in"):
        SamplerSettings(target_accept=0.0)
