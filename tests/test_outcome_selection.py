"""Modelling a subset of the impacts, lenses and dimensions (``[outcome]`` of a spec)."""

from __future__ import annotations

import numpy as np
import pytest

from impactmodel import load_survey
from impactmodel.bayes.gaussian import scale_score_model
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.model_data import ModelDataError, OutcomeSelection, build_score_data
from impactmodel.scores import impact_scores


@pytest.fixture(scope="module")
def survey(example_paths):
    return load_survey(*example_paths)


def test_selected_cells_and_items_only(survey):
    chosen = OutcomeSelection(impacts=("trust", "performance"), lenses=("ecosystem",))
    data = build_score_data(survey, ["partners"], chosen)
    assert data.coords["impact"] == ["performance", "trust"]
    assert data.coords["lens"] == ["ecosystem"] and len(data.coords["dimension"]) == 6
    assert all(c.split(":")[0] in ("performance", "trust") and ":ecosystem:" in c
               for c in data.coords["cell"])
    scores = impact_scores(survey, by="cell")[data.coords["cell"]]
    answered = scores.notna().any(axis=1).to_numpy()
    # every score of the selected cells is a row, and nothing else is
    assert data.n_rows == int(scores.notna().to_numpy().sum())
    np.testing.assert_allclose(np.sort(data.y), np.sort(scores.to_numpy()[
        ~np.isnan(scores.to_numpy())]))
    assert len(data.population) == int(answered.sum())
    items = build_item_data(survey, ["partners"], [], chosen)
    book = {i.column: i for i in survey.codebook.items}
    assert items.coords["item"] and all(
        book[c].impact in ("performance", "trust") and book[c].lens == "ecosystem"
        for c in items.coords["item"])
    assert len(items.coords["item"]) == sum(
        i.impact in ("performance", "trust") and i.lens == "ecosystem"
        for i in survey.codebook.items)


def test_bad_selections_are_refused(survey):
    with pytest.raises(ModelDataError, match="non-empty subset"):
        OutcomeSelection(impacts=())
    with pytest.raises(ModelDataError, match="non-empty subset"):
        OutcomeSelection(lenses=("nation",))


def test_one_impact_correlated_traits_reduce_to_independent_ones(survey):
    """With a single impact there is no correlation to estimate: both forms of the
    scale-score model must give the same log density at any point."""
    data = build_score_data(survey, ["partners", "maturity"],
                            OutcomeSelection(impacts=("trust",)))
    rng = np.random.default_rng(7)
    point: dict[str, np.ndarray] = {}
    values = []
    for correlated in (False, True):
        model = scale_score_model(data, parametrisation="non-centred",
                                  correlated_traits=correlated).model
        point = point or {k: v + rng.normal(0, 0.3, np.shape(v))
                          for k, v in model.initial_point().items()}
        assert set(point) == set(model.initial_point())
        values.append(model.compile_logp()(point))
    assert np.isfinite(values[0])
    assert values[1] == pytest.approx(values[0], rel=1e-12)
