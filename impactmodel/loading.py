"""Load a respondent table and its codebook into a validated :class:`SurveyData`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from impactmodel.codebook import Codebook, VariableSpec, load_codebook
from impactmodel.errors import ValidationError
from impactmodel.readers import read_table
from impactmodel.survey_data import SurveyData
from impactmodel.territories import department_codes, normalise_department_code, region_of
from impactmodel.validation import as_text, population_identifiers, validate_table
from impactmodel.vocabulary import POPULATIONS


def _typed_variable(spec: VariableSpec, raw: pd.Series) -> pd.Series:
    if spec.type == "binary":
        text = as_text(raw).map({"1": 1, "0": 0, "True": 1, "False": 0})
        return text.astype("Int8")
    if spec.type in ("ordinal", "categorical"):
        return pd.Series(pd.Categorical(as_text(raw), categories=list(spec.levels),
                                        ordered=spec.type == "ordinal"), index=raw.index)
    return pd.to_numeric(raw).astype("Int64")


def _typed_frame(frame: pd.DataFrame, codebook: Codebook) -> pd.DataFrame:
    out = frame.copy()
    out[codebook.population] = pd.Categorical(population_identifiers(frame, codebook),
                                              categories=list(POPULATIONS))
    departments = frame[codebook.territory].map(normalise_department_code)
    out[codebook.territory] = pd.Categorical(departments, categories=list(department_codes()))
    regions = sorted(set(region_of().values()))
    out["region"] = pd.Categorical(departments.map(region_of()), categories=regions)
    d = codebook.design
    if d.weight:
        out[d.weight] = pd.to_numeric(frame[d.weight]).astype(float)
    for col in d.fpc:
        out[col] = pd.to_numeric(frame[col]).astype(float)
    for spec in (*codebook.practices, *codebook.covariates):
        out[spec.column] = _typed_variable(spec, frame[spec.column])
    for item in codebook.items:
        out[item.column] = pd.to_numeric(frame[item.column]).astype(float)
    return out


def _fingerprint(*paths: str | Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def load_survey(data: str | Path, codebook: str | Path | Codebook) -> SurveyData:
    """Read a respondent table, check it against its codebook, and return typed survey data.

    Parameters
    ----------
    data : str or Path
        The respondent table (``.csv``, ``.parquet``, ``.sav`` or ``.dta``).
    codebook : str, Path or Codebook
        The codebook TOML file, or an already loaded codebook.

    Returns
    -------
    SurveyData

    Raises
    ------
    ValidationError
        Listing every problem found in the codebook, or else in the table.
    """
    book = codebook if isinstance(codebook, Codebook) else load_codebook(codebook)
    text_columns = [book.id, book.population, book.territory, *filter(None, [book.design.strata]),
                    *book.design.psu]
    frame = read_table(data, text_columns)
    problems = validate_table(frame, book, str(data))
    if problems:
        raise ValidationError(problems)
    return SurveyData(_typed_frame(frame, book), book, str(data),
                      _fingerprint(data, book.path) if Path(book.path).is_file()
                      else _fingerprint(data))
