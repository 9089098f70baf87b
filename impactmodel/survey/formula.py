"""A small model-formula language, parsed (never evaluated).

``response ~ term + term - 1``: terms are column names (letters, digits, ``_`` and ``.``,
or any text between backticks); ``1`` / ``0`` / ``- 1`` control the intercept. Categorical
columns expand to treatment dummies (first level as reference) named like R
(``stypeH``); numeric and boolean columns enter as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from impactmodel.errors import ImpactModelError
from impactmodel.vocabulary import closest

_TOKEN = re.compile(r"\s*(`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*|\d+|[~+\-])")


class FormulaError(ImpactModelError):
    """A formula that this language does not accept, or that names unknown columns."""


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed formula: response, terms in order, intercept or not."""

    response: str
    terms: tuple[str, ...]
    intercept: bool = True


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaError(f"cannot read the formula {text!r} at {text[pos:].strip()!r}: "
                               "only column names joined by '+' are allowed (no functions or "
                               "operators such as '*', ':' or '()')")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _name(token: str) -> str:
    return token[1:-1] if token.startswith("`") else token


def parse_formula(text: str) -> Formula:
    """Parse ``"y ~ a + b"``.

    Parameters
    ----------
    text : str

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        On anything but names joined by ``+`` (and intercept controls).
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text such as 'y ~ x', got {text!r}")
    tokens = _tokens(text)
    if tokens.count("~") != 1 or len(tokens) < 3 or tokens[1] != "~":
        raise FormulaError(f"a formula is 'response ~ term + term', got {text!r}")
    response = _name(tokens[0])
    intercept, terms = True, []
    sign, expect_term = "+", True
    for token in tokens[2:]:
        if expect_term:
            if token in ("+", "-", "~"):
                raise FormulaError(f"unexpected {token!r} in {text!r}")
            if token in ("0", "1"):
                intercept = (token == "1") if sign == "+" else (token == "0")
            elif token.isdigit():
                raise FormulaError(f"unexpected number {token!r} in {text!r}")
            elif sign == "-":
                raise FormulaError(f"only '- 1' can be subtracted in {text!r}")
            else:
                terms.append(_name(token))
            expect_term = False
        else:
            if token not in ("+", "-"):
                raise FormulaError(f"expected '+' before {token!r} in {text!r}")
            sign, expect_term = token, True
    if expect_term:
        raise FormulaError(f"the formula {text!r} ends with an operator")
    return Formula(response, tuple(dict.fromkeys(terms)), intercept)


def _levels(series: pd.Series) -> list[object]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.cat.categories)
    return sorted(series.dropna().unique(), key=str)


def model_matrix(formula: Formula, data: pd.DataFrame, usable: np.ndarray | None = None
                 ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Build the design matrix of ``formula`` on ``data``.

    Categorical terms get one dummy per level observed among the rows used (rows with every
    term present and ``usable``), the first such level as reference, as R drops unused
    levels.

    Returns
    -------
    X : ndarray, shape (n, p)
        ``NaN`` rows where a term is missing.
    names : list of str
        Column names, ``(Intercept)`` first.
    complete : ndarray of bool, shape (n,)
        Rows with every term present.
    """
    for name in (formula.response, *formula.terms):
        if name not in data.columns:
            guess = closest(name, [str(c) for c in data.columns])
            raise FormulaError(f"the formula names '{name}', which is not a column"
                               + (f"; did you mean '{guess}'?" if guess else ""))
    columns: list[np.ndarray] = []
    names: list[str] = []
    if formula.intercept:
        columns.append(np.ones(len(data)))
        names.append("(Intercept)")
    complete = np.ones(len(data), dtype=bool)
    for term in formula.terms:
        complete &= data[term].notna().to_numpy()
    used = complete if usable is None else complete & usable
    for term in formula.terms:
        series = data[term]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            columns.append(series.to_numpy(dtype=float, na_value=np.nan))
            names.append(term)
            continue
        observed = set(series[used].unique())
        levels = [lv for lv in _levels(series) if lv in observed]
        for level in levels[1 if formula.intercept or columns else 0:]:
            columns.append((series == level).to_numpy(dtype=float))
            names.append(f"{term}{level}")
    x = np.column_stack(columns) if columns else np.empty((len(data), 0))
    return x, names, complete


def response_vector(formula: Formula, data: pd.DataFrame, binary: bool) -> np.ndarray:
    """Return the response as floats; a two-level categorical becomes 0/1 (second level = 1)."""
    series = data[formula.response]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    levels = _levels(series)
    if not binary or len(levels) != 2:
        raise FormulaError(f"response '{formula.response}' is categorical with levels "
                           f"{levels}: use a numeric response, or a two-level one with a "
                           "binomial family")
    values = (series == levels[1]).to_numpy(dtype=float)
    values[series.isna().to_numpy()] = np.nan
    return values
