"""Loading each file format, typing, and missing by design vs item non-response."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from impactmodel import load_survey
from impactmodel.survey_data import SurveyData
from impactmodel.vocabulary import POPULATIONS


@pytest.fixture(scope="module")
def csv_survey(example_paths) -> SurveyData:
    return load_survey(*example_paths)


def _raw_numeric(example_paths) -> pd.DataFrame:
    data, _ = example_paths
    raw = pd.read_csv(data, dtype={"department": str})
    for col in raw.columns:  # SPSS / Stata have no nullable integers: write floats
        if pd.api.types.is_integer_dtype(raw[col]) or raw[col].dtype == float:
            raw[col] = raw[col].astype(float)
    return raw


def _write(raw: pd.DataFrame, path) -> None:
    if path.suffix == ".parquet":
        raw.to_parquet(path)
    elif path.suffix == ".sav":
        pyreadstat.write_sav(raw, str(path))
    else:
        pyreadstat.write_dta(raw, str(path))


@pytest.mark.parametrize("suffix", [".parquet", ".sav", ".dta"])
def test_every_format_loads_to_the_same_survey(tmp_path, example_paths, csv_survey, suffix):
    path = tmp_path / f"respondents{suffix}"
    _write(_raw_numeric(example_paths), path)
    survey = load_survey(path, example_paths[1])
    assert survey.n_respondents == csv_survey.n_respondents
    expected, got = csv_survey.frame, survey.frame
    for col in ["population", "department", "region", "maturity", "age_group"]:
        assert (got[col].astype(str) == expected[col].astype(str)).all(), col
    items = [i.column for i in csv_survey.codebook.items]
    np.testing.assert_array_equal(got[items].to_numpy(float), expected[items].to_numpy(float))
    np.testing.assert_allclose(got["weight"], expected["weight"], rtol=1e-12)


def test_typed_columns(csv_survey):
    f = csv_survey.frame
    assert list(f["population"].cat.categories) == list(POPULATIONS)
    assert f["department"].astype(str).str.fullmatch(r"\d\d|2[AB]|97\d").all()
    assert f["maturity"].cat.ordered
    assert f["maturity"].cat.categories[0] == "none"
    assert str(f["partners"].dtype) == "Int8"
    # every department code in the table maps to its INSEE region (a few hand-checked)
    lookup = dict(zip(f["department"].astype(str), f["region"].astype(str), strict=True))
    for dep, reg in {"75": "11", "13": "93", "2A": "94", "974": "04", "01": "84"}.items():
        if dep in lookup:
            assert lookup[dep] == reg


def test_missing_by_design_is_distinct_from_nonresponse(csv_survey):
    status = csv_survey.item_status()
    book = csv_survey.codebook
    for item in book.items:
        s = status[item.column]
        asked = csv_survey.population.isin(item.asked)
        assert (s[~asked] == "not_asked").all()
        assert (s[asked] != "not_asked").all()
        answered = csv_survey.frame[item.column].notna()
        assert ((s == "answered") == answered).all()
        # the simulator leaves about 4% of asked items unanswered: there is some non-response
        assert 0 < (s[asked] == "nonresponse").mean() < 0.1
    # every population answers every impact, but not every item
    for pop in POPULATIONS:
        asked_items = book.items_asked_of(pop)
        assert {i.impact for i in asked_items} == {"performance", "innovation", "trust"}
    assert len(book.items_asked_of("citizen")) < len(book.items)


def test_fingerprint_tracks_the_bytes(tmp_path, example_paths, csv_survey):
    copy = tmp_path / "respondents.csv"
    text = example_paths[0].read_text()
    copy.write_text(text)
    assert load_survey(copy, example_paths[1]).fingerprint == csv_survey.fingerprint
    copy.write_text(text.replace("\n", "\n", 1) + "\n")
    assert load_survey(copy, example_paths[1]).fingerprint != csv_survey.fingerprint
