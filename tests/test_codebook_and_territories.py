from __future__ import annotations

import tomllib

import pytest

from impactmodel.codebook import dump_codebook, load_codebook, parse_codebook
from impactmodel.territories import (
    adjacency,
    department_codes,
    normalise_department_code,
    region_names,
    region_of,
    suggest_department,
)


def test_territory_table():
    codes = department_codes()
    assert len(codes) == 101
    assert len(region_names()) == 18
    assert {"2A", "2B", "971", "976", "01", "95"} <= set(codes)
    assert region_of()["2A"] == region_of()["2B"] == "94"
    assert region_names()["11"] == "Île-de-France"
    pairs = adjacency()
    assert len(pairs) == 238
    linked = {c for pair in pairs for c in pair}
    assert not linked & {"971", "972", "973", "974", "976"}  # overseas: no land border
    assert ("2A", "2B") in pairs or ("2B", "2A") in pairs


@pytest.mark.parametrize(("raw", "code"), [
    (1, "01"), (1.0, "01"), ("1", "01"), ("01", "01"), ("2a", "2A"), (974, "974"),
    ("75", "75"), ("96", None), ("20", None), ("", None), (975, None)])
def test_normalise_department_code(raw, code):
    assert normalise_department_code(raw) == code


def test_suggestions_are_close():
    assert suggest_department("2C") == "2A"
    assert suggest_department("20") == "2A"
    assert suggest_department("96") == "95"
    assert suggest_department(975) == "974"
    assert suggest_department("9744") == "976"  # numerically nearest overseas code
    assert suggest_department("Ain") is None or suggest_department("Ain") in department_codes()


def test_codebook_round_trip(example_paths):
    book = load_codebook(example_paths[1])
    again = parse_codebook(tomllib.loads(dump_codebook(book)), book.path)
    assert again == book
    item = book.item("perf_eco_pol_1")
    assert item.cell == ("performance", "ecosystem", "political")
    assert book.design.psu == ("psu",)
