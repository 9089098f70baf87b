"""The simulator: reproducibility, design structure, calibration, truth, statistical checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impactmodel import load_survey
from impactmodel.cli import app
from impactmodel.errors import SpecError
from impactmodel.simulate import SimulationSettings, simulate, write_simulation
from impactmodel.simulate.population import build_finite_population
from impactmodel.simulate.run import _raked_weights, sample_population
from impactmodel.simulate.sampling import draw_sample, systematic_pps
from impactmodel.territories import region_of
from impactmodel.vocabulary import IMPACTS, POPULATIONS
from impactmodel.weighting import RakingNotConverged, rake

runner = CliRunner()


def test_same_seed_gives_byte_identical_files(tmp_path):
    for name in ("a", "b"):
        result = runner.invoke(app, ["simulate", "--seed", "5", "--respondents", "800",
                                     "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    other = runner.invoke(app, ["simulate", "--seed", "6", "--respondents", "800",
                                "--out", str(tmp_path / "c")])
    assert other.exit_code == 0
    for f in ("respondents.csv", "codebook.toml", "frame.csv", "truth.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "respondents.csv").read_bytes() != (
        tmp_path / "c" / "respondents.csv").read_bytes()


def test_simulate_refuses_to_overwrite_and_rejects_bad_settings(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", "--respondents", "600", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "respondents.csv").read_bytes()
    again = runner.invoke(app, [*args, "--seed", "9"])
    assert again.exit_code == 2
    assert "--force" in again.output
    assert (out / "respondents.csv").read_bytes() == before
    tiny = runner.invoke(app, ["simulate", "--respondents", "10", "--out", str(tmp_path / "t")])
    assert tiny.exit_code == 2
    assert "at least 400" in tiny.output


def test_written_files_validate(tmp_path, small_simulation):
    paths = write_simulation(small_simulation, tmp_path)
    survey = load_survey(paths["respondents"], paths["codebook"])
    assert survey.n_respondents == len(small_simulation.respondents)
    assert set(survey.population.unique()) == set(POPULATIONS)


def test_weights_are_calibrated_to_the_frame(small_simulation):
    resp, frame = small_simulation.respondents, small_simulation.frame
    for pop in POPULATIONS:
        r = resp[resp["population"] == pop]
        f = frame[frame["population"] == pop]
        # the criterion: weights sum to the frame total within 1% (raking makes it exact)
        assert r["weight"].sum() == pytest.approx(f["count"].sum(), rel=1e-2)
        for var in ("age_group", "size_class"):
            weighted = r.groupby(var)["weight"].sum()
            known = f.groupby(var)["count"].sum()
            pd.testing.assert_series_equal(weighted, known.astype(float).loc[weighted.index],
                                           check_names=False, rtol=1e-6)


def test_raking_merges_the_smallest_category_when_the_margins_are_unattainable():
    """Hand-worked case: unit 0 alone is in region 0 and in age group 0, whose totals
    disagree (10 against 20), so no positive weights meet both margins and raking cycles.
    Merging region 0 (1 respondent, the first smallest) into region 1 leaves a region
    margin of one category (40) and age groups 20 | 20: weights 20, 10, 10."""
    population = pd.DataFrame({"region": [0] * 10 + [1] * 30,
                               "age_group": [0] * 20 + [1] * 20, "size_class": [0] * 40})
    sample = pd.DataFrame({"region": [0, 1, 1], "age_group": [0, 1, 1],
                           "size_class": [0, 0, 0]})
    with pytest.raises(RakingNotConverged):
        rake(np.ones(3), [(sample[v].to_numpy(), np.bincount(population[v]).astype(float))
                          for v in ("region", "age_group")])
    weights, collapsed = _raked_weights(sample, population, np.ones(3), n_regions=2)
    np.testing.assert_allclose(weights, [20.0, 10.0, 10.0], rtol=1e-9)
    assert collapsed == {"region": [0]}


@pytest.mark.parametrize(("respondents", "seed"), [(400, 5), (600, 8)])
def test_small_samples_whose_margins_are_unattainable_still_simulate(respondents, seed):
    """These seeds once stopped with "raking did not converge": a few respondents in a
    region could not meet its age and size margins. The simulation now merges regions
    and logs them; every other category still meets the frame's counts exactly."""
    sim = simulate(SimulationSettings(seed=seed, respondents=respondents))
    region_of_department = region_of()
    resp = sim.respondents.assign(region=sim.respondents["department"].map(region_of_department))
    frame = sim.frame.assign(region=sim.frame["department"].map(region_of_department))
    regions = sorted(set(region_of_department.values()))
    merged_somewhere = False
    for pop in POPULATIONS:
        r, f = resp[resp["population"] == pop], frame[frame["population"] == pop]
        collapsed = sim.truth["design"][pop]["raking_collapsed_categories"]
        merged = {regions[k] for k in collapsed.get("region", [])}
        merged_somewhere |= bool(merged)
        assert set(collapsed) <= {"region"}, collapsed
        weighted = r.groupby("region")["weight"].sum().reindex(regions, fill_value=0.0)
        known = f.groupby("region")["count"].sum().reindex(regions, fill_value=0)
        # merged regions go to the region with most respondents (the first, on a tie)
        largest = regions[int(r["region"].value_counts().reindex(regions, fill_value=0)
                              .to_numpy().argmax())]
        pooled = [*merged, largest]
        kept = [g for g in regions if g not in pooled]
        np.testing.assert_allclose(weighted[kept], known[kept].astype(float), rtol=1e-6)
        assert weighted[pooled].sum() == pytest.approx(known[pooled].sum(), rel=1e-6)
        assert r["weight"].sum() == pytest.approx(f["count"].sum(), rel=1e-9)
        for var in ("age_group", "size_class"):
            np.testing.assert_allclose(r.groupby(var)["weight"].sum().sort_index(),
                                       f.groupby(var)["count"].sum().sort_index(), rtol=1e-6)
    assert merged_somewhere


def test_realised_sample_matches_each_design(small_simulation):
    resp = small_simulation.respondents
    design = small_simulation.truth["design"]
    for pop in POPULATIONS:
        r = resp[resp["population"] == pop]
        # PSUs nested in strata, and strata carry several PSUs before nonresponse
        assert (r.groupby("psu")["stratum"].nunique() == 1).all()
        assert design[pop]["psus"] >= 2 * design[pop]["strata"]
        # fpc (PSUs in the stratum) is constant within a stratum and >= PSUs sampled there
        assert (r.groupby("stratum")["fpc"].nunique() == 1).all()
        assert (r.groupby("stratum")["fpc"].first() >= r.groupby("stratum")["psu"].nunique()).all()
    per_psu = resp.groupby(["population", "psu"]).size().groupby(level=0).mean()
    assert per_psu["citizen"] > 2  # clustered: several citizens per commune
    assert per_psu["elected"] == 1  # one mayor per commune, unclustered
    cv = resp.groupby("population")["weight"].agg(lambda w: w.std() / w.mean())
    assert cv["business"] > 0.5  # unequal probabilities: large companies oversampled
    # every population reaches all 18 regions
    assert (resp.assign(region=resp["department"]).groupby("population")["department"]
            .nunique() > 50).all()


def test_truth_records_parameters_with_their_coordinates(small_simulation):
    truth = json.loads(json.dumps(small_simulation.truth))  # JSON-clean
    coords = truth["coordinates"]
    for name, entry in truth["parameters"].items():
        shape = np.shape(entry["values"])
        assert len(shape) == len(entry["dims"]), name
        for size, dim in zip(shape, entry["dims"], strict=True):
            if dim in coords:
                assert size == len(coords[dim]), (name, dim)
    fpm = truth["finite_population"]
    by_dep = pd.DataFrame(fpm["by_population_department"])
    by_pop = pd.DataFrame(fpm["by_population"]).set_index(["population", "impact"])
    assert set(by_dep["impact"]) == set(IMPACTS)
    assert by_dep["department"].nunique() == 101
    # the national mean is the unit-weighted average of department means
    pooled = by_dep.assign(t=by_dep["mean"] * by_dep["n_units"]).groupby(
        ["population", "impact"])[["t", "n_units"]].sum()
    np.testing.assert_allclose(pooled["t"] / pooled["n_units"],
                               by_pop.loc[pooled.index, "mean"], rtol=1e-9)
    assert by_dep["mean"].between(0, 100).all()


@pytest.fixture(scope="module")
def finite_population():
    settings = SimulationSettings(citizens_per_commune=(2.0, 6.0, 20.0))
    return build_finite_population(settings, np.random.default_rng(3))


def test_raked_weights_are_unbiased_where_naive_means_are_not(finite_population):
    """Over repeated samples of company leaders (large companies oversampled, practices
    depending on size and territory), the raked-weight share in partnerships centres on
    the finite-population truth, the unweighted share does not."""
    fp = finite_population
    units = fp.units[fp.units["population"] == POPULATIONS.index("business")]
    truth = units["partners"].mean()
    settings = SimulationSettings(respondents=2000)
    rng = np.random.default_rng(8)
    naive, weighted = [], []
    for _ in range(80):
        part, _ = sample_population(rng, fp, "business", settings)
        y = fp.units.loc[part["unit"], "partners"].to_numpy()
        naive.append(y.mean())
        weighted.append(np.average(y, weights=part["weight"]))
    def z(values):
        values = np.asarray(values)
        return (values.mean() - truth) / (values.std(ddof=1) / np.sqrt(len(values)))
    assert abs(z(weighted)) < 4
    assert z(naive) > 8


def test_systematic_pps_has_the_stated_inclusion_probabilities():
    rng = np.random.default_rng(2024)
    size = rng.uniform(1, 10, 25)
    size[0] = 80.0  # a certainty unit
    n, reps = 6, 6000
    counts = np.zeros(len(size))
    for _ in range(reps):
        selected, pi = systematic_pps(size, n, rng)
        assert len(selected) == n and len(set(selected)) == n
        counts[selected] += 1
    assert pi[0] == 1.0
    assert pi.sum() == pytest.approx(n)
    freq = counts / reps
    se = np.sqrt(pi * (1 - pi) / reps) + 1e-12
    assert np.all(np.abs(freq - pi) <= 4 * se + 1e-9)


@pytest.mark.parametrize("population", POPULATIONS)
def test_designs_give_unbiased_horvitz_thompson_totals(population, finite_population):
    """Over repeated samples, sum(y / pi) averages to the finite-population total."""
    fp = finite_population
    units = fp.units[fp.units["population"] == POPULATIONS.index(population)]
    rng = np.random.default_rng(4)
    reps = 60
    estimates = np.array([
        (fp.units.loc[s.unit, "partners"].to_numpy() / s.pi).sum()
        for s in (draw_sample(rng, units, population, 600) for _ in range(reps))])
    true_total = units["partners"].sum()
    z = (estimates.mean() - true_total) / (estimates.std(ddof=1) / np.sqrt(reps))
    assert abs(z) < 4, (estimates.mean(), true_total)


def test_split_questionnaire_draws_each_subset_equally_often():
    """Matrix sampling: k of the asked items per row, every k-subset equally likely.

    Rows ask 4 of 6 items (NaN elsewhere); with k = 2 each of the C(4, 2) = 6 pairs has
    probability 1/6 (a chi-square test at the 0.1 % level); rows asking fewer than k
    items keep them all; values are kept as they are.
    """
    from itertools import combinations

    from scipy import stats

    from impactmodel.simulate.run import split_questionnaire

    rows = 6000
    values = np.tile(np.array([1.0, np.nan, 2.0, 3.0, np.nan, 4.0]), (rows, 1))
    values[:100, 2:] = np.nan  # these rows ask one item only
    kept = split_questionnaire(values, 2, np.random.default_rng(3))
    answered = ~np.isnan(kept)
    assert np.array_equal(kept[answered], values[answered])
    assert answered[:100].sum(axis=1).tolist() == [1] * 100
    assert answered[100:].sum(axis=1).tolist() == [2] * (rows - 100)
    pairs = [tuple(np.flatnonzero(row)) for row in answered[100:]]
    counts = [pairs.count(pair) for pair in combinations((0, 2, 3, 5), 2)]
    assert sum(counts) == rows - 100
    assert stats.chisquare(counts).pvalue > 1e-3


def test_items_per_respondent_asks_each_respondent_a_subset(small_simulation):
    """The simulated survey with a split questionnaire: the same respondents (the design
    draws come first), each answering at most k items, all of them asked of their
    population, with about k x (1 - item nonresponse) answers on average."""
    settings = SimulationSettings(seed=11, respondents=1200, items_per_respondent=5)
    split = simulate(settings).respondents
    full = small_simulation.respondents
    columns = [item.column for item in small_simulation.codebook.items]
    assert split["respondent_id"].equals(full["respondent_id"])
    split_answers, full_answers = split[columns].notna(), full[columns].notna()
    asked = np.array([[pop in item.asked for item in small_simulation.codebook.items]
                      for pop in split["population"]])
    assert not (split_answers.to_numpy() & ~asked).any()
    assert split_answers.sum(axis=1).max() <= 5
    expected = 5 * (1 - settings.item_nonresponse)
    standard_error = np.sqrt(5 * 0.04 * 0.96 / len(split))
    assert abs(split_answers.sum(axis=1).mean() - expected) < 4 * standard_error
    assert full_answers.sum(axis=1).min() > 5


def test_items_per_respondent_must_be_positive():
    with pytest.raises(SpecError, match="items_per_respondent must be at least 1"):
        SimulationSettings(items_per_respondent=0)


def test_simulate_command_takes_a_split_questionnaire(tmp_path, small_simulation):
    args = ["simulate", "--seed", "11", "--respondents", "1200", "--out"]
    done = runner.invoke(app, [*args, str(tmp_path / "split"), "--items-per-respondent", "6"])
    assert done.exit_code == 0, done.output
    written = pd.read_csv(tmp_path / "split" / "respondents.csv")
    columns = [item.column for item in small_simulation.codebook.items]
    answers = written[columns].notna().sum(axis=1)
    assert answers.max() <= 6 and answers.mean() > 5
    bad = runner.invoke(app, [*args, str(tmp_path / "bad"), "--items-per-respondent", "0"])
    assert bad.exit_code == 2
    assert "items_per_respondent must be at least 1" in bad.output
    assert not (tmp_path / "bad" / "respondents.csv").exists()
