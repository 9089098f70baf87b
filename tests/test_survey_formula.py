"""Formulas are parsed, never evaluated; bad ones get specific errors."""

from __future__ import annotations

import pandas as pd
import pytest

from impactmodel.survey import SurveyDesign
from impactmodel.survey.formula import FormulaError, parse_formula


def test_parse_terms_and_intercept():
    f = parse_formula("api00 ~ ell + meals + `odd name` - 1")
    assert (f.response, f.terms, f.intercept) == ("api00", ("ell", "meals", "odd name"), False)
    assert parse_formula("y~x").intercept
    assert parse_formula("y ~ 0 + x").intercept is False


@pytest.mark.parametrize(("text", "message"), [
    ("y ~ __import__('os').system('echo pwned')", "cannot read the formula"),
    ("y ~ log(x)", "cannot read the formula"),
    ("y ~ a * b", "cannot read the formula"),
    ("y ~ a +", "ends with an operator"),
    ("y + z ~ a", "response ~ term"),
    ("y ~ a - b", "only '- 1' can be subtracted"),
    ("~ a", "response ~ term"),
])
def test_rejected_formulas(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text)


def test_unknown_column_suggests_the_closest():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "meals": [1.0, 3.0, 2.0, 5.0]})
    design = SurveyDesign(data)
    with pytest.raises(FormulaError, match="did you mean 'meals'"):
        design.glm("y ~ meal")
